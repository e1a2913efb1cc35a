/*
 * udp_flood: send UDP datagrams as fast as sendmmsg allows, for the NFQUEUE
 * benchmarks. Blocking socket: while the queue holds packets they stay
 * charged to our send buffer, so the sender waits for verdicts and the rate
 * measured is the queue consumer's (closed loop) once the buffer is full.
 *
 *   udp_flood ADDR PORT SECONDS [SIZE [SNDBUF]]
 *
 * Prints: sent=N failed=F seconds=S pps=P
 * (failed counts datagrams the kernel refused, e.g. EPERM when a full queue
 * without fail-open drops them.)
 *
 * Build: make -C native/bench
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VLEN 64

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct mmsghdr msgs[VLEN];
	struct iovec iov[VLEN];
	static char payload[65507];
	uint64_t sent = 0, failed = 0;
	double seconds, start, end, t;
	size_t size = 64;
	int fd, i, sndbuf = 0;

	if (argc < 4 || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "usage: %s ADDR PORT SECONDS [SIZE [SNDBUF]]\n", argv[0]);
		return 2;
	}
	dst.sin_port = htons((uint16_t)atoi(argv[2]));
	seconds = atof(argv[3]);
	if (argc > 4)
		size = (size_t)atol(argv[4]);
	if (argc > 5)
		sndbuf = atoi(argv[5]);
	if (size > sizeof(payload))
		size = sizeof(payload);
	memset(payload, 'x', sizeof(payload));

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		perror("setsockopt(SO_SNDBUFFORCE)");
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		perror("connect");
		return 1;
	}
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < VLEN; i++) {
		iov[i].iov_base = payload;
		iov[i].iov_len = size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	start = now_s();
	end = start + seconds;
	for (t = start; t < end; t = now_s()) {
		int r = sendmmsg(fd, msgs, VLEN, 0);

		if (r > 0) {
			sent += (unsigned)r;
		} else if (r < 0 && errno != EINTR) {
			failed++; /* the first datagram of this call was refused */
		}
	}
	t = now_s() - start;
	printf("sent=%" PRIu64 " failed=%" PRIu64 " seconds=%.3f pps=%.0f\n", sent, failed, t,
	       (double)sent / t);
	close(fd);
	return 0;
}
