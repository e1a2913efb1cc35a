/*
 * accept_loop: the bare C baseline for the NFQUEUE benchmarks. Accepts every
 * packet of one queue, with no JS and no classification, using the same
 * nfq C code as the addon (nfq.c, nfq_msg.c, nfq_batch.c), so "aigate minus accept_loop --batch" is the cost of
 * everything above the socket.
 *
 *   --per-packet  one recv, one verdict sendmsg per packet (the classic
 *                 libnetfilter_queue loop)
 *   --batch       read until the socket is empty or --batch-size packets,
 *                 then send all verdicts in one sendmsg, a run of equal
 *                 verdicts as one NFQNL_MSG_VERDICT_BATCH (what the daemon does)
 *   --save-accept answer NF_REPEAT with aigate's accept mark, so aigate's rules
 *                 save the flow as decided (they queue every packet of an
 *                 undecided flow): the bare cost of deciding, with no reading
 *
 * Prints one line on SIGTERM/SIGINT:
 *   mode=batch queue=0 packets=N batches=B seconds=S pps=P enobufs=E recv_errors=R send_errors=S verdict_errors=V
 * seconds runs from the first to the last packet handled.
 *
 * Build: make -C native/bench   (or: gcc -O2 -Wall -Wextra -o accept_loop accept_loop.c
 *        ../src/nfq.c ../src/nfq_msg.c ../src/nfq_batch.c -lmnl)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/nfq.h"

static volatile sig_atomic_t stop;

/* src/verdict/marks.ts MARK_ACCEPT: the mark aigate's firewall rules save as "decided: accept". */
#define MARK_ACCEPT 0x01000000u

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s --per-packet|--batch [--queue N] [--copy-range BYTES] [--batch-size N]\n"
		"          [--max-len N] [--rcvbuf BYTES] [--fail-open] [--save-accept]\n",
		argv0);
	exit(2);
}

static unsigned long arg_num(const char *s, const char *argv0)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || end == s)
		usage(argv0);
	return v;
}

int main(int argc, char **argv)
{
	struct nfq_config cfg = {
		.queue_num = 0,
		.copy_range = 4096,
		.max_len = 4096,
		.rcvbuf = 8 << 20,
		.fail_open = 0,
		.gso = 1,
	};
	unsigned batch_size = 256, max = 0, i;
	int per_packet = -1;
	int save_accept = 0;
	struct sigaction sa;
	struct nfq_handle *h;
	struct nfq_stats st;
	const char *step;
	uint64_t handled = 0, batches = 0;
	double first = 0, last = 0;
	size_t buflen;
	uint8_t *buf;
	struct nfq_pkt *pkts;
	uint32_t *ids, *verdicts, *marks;
	int err;

	for (i = 1; i < (unsigned)argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--per-packet")) {
			per_packet = 1;
			continue;
		}
		if (!strcmp(a, "--batch")) {
			per_packet = 0;
			continue;
		}
		if (!strcmp(a, "--fail-open")) {
			cfg.fail_open = 1;
			continue;
		}
		if (!strcmp(a, "--save-accept")) {
			save_accept = 1;
			continue;
		}
		if (i + 1 >= (unsigned)argc)
			usage(argv[0]);
		unsigned long v = arg_num(argv[++i], argv[0]);

		if (!strcmp(a, "--queue") && v <= 65535)
			cfg.queue_num = (uint16_t)v;
		else if (!strcmp(a, "--copy-range") && v <= NFQ_MAX_COPY_RANGE)
			cfg.copy_range = (uint32_t)v;
		else if (!strcmp(a, "--batch-size") && v >= 1 && v <= 65536)
			batch_size = (unsigned)v;
		else if (!strcmp(a, "--max-len") && v >= 1 && v <= UINT32_MAX)
			cfg.max_len = (uint32_t)v;
		else if (!strcmp(a, "--rcvbuf") && v <= (1ul << 30))
			cfg.rcvbuf = (int)v;
		else
			usage(argv[0]);
	}
	if (per_packet < 0 || batch_size == 0)
		usage(argv[0]);
	max = per_packet ? 1 : batch_size;
	cfg.verdict_batch = !per_packet;

	err = nfq_open(&h, &cfg, &step);
	if (err < 0) {
		fprintf(stderr, "accept_loop: queue %u: %s: %s\n", cfg.queue_num, step, strerror(-err));
		return 1;
	}
	/* One message for --per-packet; the addon's default 4 MiB for --batch. */
	buflen = per_packet ? nfq_max_msg(h) : (size_t)4 << 20;
	if (buflen < nfq_max_msg(h))
		buflen = nfq_max_msg(h);
	buf = malloc(buflen);
	pkts = calloc(max, sizeof(*pkts));
	ids = calloc(max, sizeof(*ids));
	verdicts = calloc(max, sizeof(*verdicts));
	marks = calloc(max, sizeof(*marks));
	if (!buf || !pkts || !ids || !verdicts || !marks) {
		fprintf(stderr, "accept_loop: out of memory\n");
		return 1;
	}
	for (i = 0; i < max; i++) {
		verdicts[i] = save_accept ? NF_REPEAT : NF_ACCEPT;
		marks[i] = save_accept ? MARK_ACCEPT : NFQ_MARK_KEEP;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fprintf(stderr, "accept_loop: queue %u ready (%s)\n", cfg.queue_num, per_packet ? "per-packet" : "batch");

	while (!stop) {
		int n = nfq_read_batch(h, buf, buflen, pkts, max);

		if (n < 0) {
			fprintf(stderr, "accept_loop: read: %s\n", strerror(-n));
			break;
		}
		if (n == 0) {
			struct pollfd p = { .fd = nfq_fd(h), .events = POLLIN };

			if (poll(&p, 1, -1) < 0 && errno != EINTR) {
				perror("accept_loop: poll");
				break;
			}
			continue;
		}
		for (i = 0; i < (unsigned)n; i++)
			ids[i] = pkts[i].id;
		err = nfq_send_verdicts(h, (unsigned)n, ids, verdicts, marks);
		if (err < 0) {
			fprintf(stderr, "accept_loop: verdict: %s\n", strerror(-err));
			break;
		}
		last = now_s();
		if (handled == 0)
			first = last;
		handled += (unsigned)n;
		batches++;
	}

	nfq_get_stats(h, &st);
	printf("mode=%s queue=%u packets=%" PRIu64 " batches=%" PRIu64 " seconds=%.3f pps=%.0f"
	       " enobufs=%" PRIu64 " recv_errors=%" PRIu64 " send_errors=%" PRIu64 " verdict_errors=%" PRIu64 "\n",
	       per_packet ? "per-packet" : "batch", cfg.queue_num, handled, batches, last - first,
	       last > first ? (double)handled / (last - first) : 0.0, st.enobufs, st.recv_errors,
	       st.send_errors, st.verdict_errors);
	fflush(stdout);
	nfq_close(h);
	free(buf);
	free(pkts);
	free(ids);
	free(verdicts);
	free(marks);
	return 0;
}
