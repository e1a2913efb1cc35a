/*
 * netbench: traffic generators and servers for `npm run bench:net`
 * (test/bench/net/main.ts). Every mode prints one line of key=value pairs on
 * stdout when it ends. Build: make -C test/bench/net
 *
 *   netbench flood DST PORT SECONDS PAYLOAD SRC_FIRST SRC_COUNT START [NAMES [RATE]]
 *       UDP DNS queries as fast as sendmmsg allows (or RATE datagrams/s,
 *       paced per batch of 64 on an absolute clock), from a raw socket
 *       (IP_HDRINCL), so that every datagram is a new 5-tuple: datagram i
 *       (counting from START) comes from SRC_FIRST + (i / 64512) % SRC_COUNT,
 *       port 1024 + i % 64512, with DNS ID i & 0xffff. PAYLOAD is a file with
 *       the DNS message (e.g. test/fixtures/dns/dig-9.18-udp-a.bin). NAMES > 1
 *       rewrites the first label of the question with base-36 digits of
 *       i % NAMES (that many distinct names). UDP checksums are computed.
 *       Open loop: the socket never waits for the gateway.
 *       -> sent=N failed=F seconds=S pps=P next=START+N
 *
 *   netbench overflood KIND DST SECONDS RATE SRC [HELLO]
 *       The overload workload's flood, from ONE source address SRC (raw
 *       socket, IP_HDRINCL), a new source port per datagram or connection
 *       (1024 + i % 64512), RATE packets/s paced per batch of 64 (0: as fast
 *       as sendmmsg goes). KIND:
 *         quic  1250-byte UDP payloads to DST:443 shaped like QUIC v1 client
 *               Initials (long header 0xc3, version 1, a random 8-byte DCID
 *               per datagram, no SCID, no token, Length filled in), random
 *               bytes inside: each costs the daemon a key derivation and a
 *               failed AEAD open
 *         dns   DNS queries (A, RD) to DST:53 for a random name per query,
 *               <10 random letters and digits>.com
 *         tcp   per new 5-tuple to DST:443, a SYN then the HELLO file in one
 *               ACK|PSH segment (the handshake is never finished: the server
 *               side drops them); 2 packets per tuple
 *       UDP checksums are 0 (none, legal on IPv4), TCP checksums computed.
 *       -> sent=N failed=F seconds=S pps=P
 *
 *   netbench probe ALLOWED_DST BLOCKED_DST PORT SECONDS INTERVAL_MS TIMEOUT_MS SRC ALLOWED_HELLO BLOCKED_HELLO...
 *       The overload workload's second client: every INTERVAL_MS, one TLS
 *       attempt with ALLOWED_HELLO to ALLOWED_DST and one with each
 *       BLOCKED_HELLO (a captured ClientHello naming a blocked name) to
 *       BLOCKED_DST, each a new connection from SRC (ephemeral port): connect,
 *       send the hello, wait up to TIMEOUT_MS for the server's answer (a
 *       server --reply listener answers once it has the whole hello record).
 *       An attempt succeeds when the answer arrives. Attempts are issued for
 *       SECONDS, then the last ones are waited for.
 *       -> allowed_tried= allowed_ok= allowed_p50_ms= allowed_p99_ms= allowed_max_ms= blocked_tried= blocked_ok=
 *
 *   netbench server [--close ADDR:PORT:NBYTES] [--sink ADDR:PORT] [--echo ADDR:PORT] [--reply ADDR:PORT]...
 *       One epoll loop until SIGTERM/SIGINT (up to 8 listeners).
 *       --close  accept, read NBYTES (or EOF), close: one short TLS connection
 *       --sink   accept, read and discard until EOF, close: bulk transfer
 *       --echo   UDP: send every datagram back with the DNS QR bit set
 *       --reply  accept, read one whole TLS record (5-byte header + its
 *                length), answer "ok\n", close: the probe's server
 *       -> accepted=N closed=N sunk_bytes=B echoed=E replied=R
 *
 *   netbench conn DST PORT SECONDS CONCURRENCY HELLO SRC_FIRST SRC_COUNT START
 *       Keeps CONCURRENCY connections in flight: each binds the next
 *       (source address, port) of the same sequence as flood, connects,
 *       sends the HELLO file (a captured ClientHello), waits for the server
 *       to close, closes. Connections still open at the end are not counted.
 *       -> ok=N failed=F seconds=S cps=C next=I
 *
 *   netbench bulk DST PORT SECONDS HELLO
 *       One connection: sends HELLO, then 64 KiB writes for SECONDS, then
 *       shuts down its side and waits for the server's EOF (every byte
 *       acknowledged and read). Rate counted from after the hello to EOF.
 *       -> bytes=B seconds=S mbps=M
 *
 *   netbench ping DST PORT SECONDS RATE PAYLOAD SRC_FIRST SRC_COUNT START
 *       UDP DNS ping-pong at a fixed RATE (queries/s, paced on an absolute
 *       clock): each query from a new socket bound to the next (source
 *       address, port), so each is a new flow; waits up to 200 ms for the
 *       answer. Round-trip time from just before sendto to just after recv.
 *       -> sent=N ok=K lost=L p50_us=.. p90_us=.. p99_us=.. max_us=.. next=I
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PORTS 64512u /* source ports 1024..65535 */
#define VLEN 64
#define MAXPKT 2048

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Open-loop rate: sleep until batch number `batch` (of VLEN packets) is due, `rate` packets/s from t0ns. */
static void pace(uint64_t t0ns, uint64_t batch, double rate)
{
	uint64_t due = t0ns + (uint64_t)((double)batch * VLEN * 1e9 / rate);
	struct timespec at = { .tv_sec = (time_t)(due / 1000000000ull), .tv_nsec = (long)(due % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
		;
}

static size_t read_file(const char *path, uint8_t *buf, size_t max)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		die(path);
	n = fread(buf, 1, max, f);
	fclose(f);
	if (n == 0 || n == max) {
		fprintf(stderr, "netbench: %s: empty or larger than %zu bytes\n", path, max - 1);
		exit(1);
	}
	return n;
}

static struct in_addr addr_arg(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, "netbench: not an IPv4 address: %s\n", s);
		exit(2);
	}
	return a;
}

/* Source (address, port) number i of the sequence shared by flood, conn and ping. */
static void tuple(uint64_t i, struct in_addr first, unsigned count, struct in_addr *src, uint16_t *port)
{
	src->s_addr = htonl(ntohl(first.s_addr) + (uint32_t)((i / PORTS) % count));
	*port = (uint16_t)(1024 + i % PORTS);
}

static void set_name(uint8_t *dns, size_t len, uint64_t i, unsigned names)
{
	/* The first label starts at offset 12 (after the DNS header). */
	unsigned l, k;
	uint64_t v = i % names;

	if (len < 14)
		return;
	l = dns[12];
	if (l == 0 || 13 + l > len)
		return;
	for (k = 0; k < l; k++) {
		unsigned d = (unsigned)(v % 36);

		dns[13 + l - 1 - k] = (uint8_t)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= 36;
	}
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	while (n > 1) {
		s += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		n -= 2;
	}
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* ------------------------------------------------------------------ flood */

static int cmd_flood(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	static uint8_t pkts[VLEN][MAXPKT];
	static uint8_t payload[MAXPKT];
	struct mmsghdr msgs[VLEN];
	struct iovec iov[VLEN];
	struct in_addr first;
	unsigned count, names = 1, k;
	uint64_t start, i, sent = 0, failed = 0, batch = 0, t0ns = 0;
	double seconds, t0, t, rate = 0;
	size_t plen, len;
	int fd, one = 1;

	if (argc < 9) {
		fprintf(stderr, "usage: netbench flood DST PORT SECONDS PAYLOAD SRC_FIRST SRC_COUNT START [NAMES]\n");
		return 2;
	}
	dst.sin_addr = addr_arg(argv[2]);
	dst.sin_port = htons((uint16_t)atoi(argv[3]));
	seconds = atof(argv[4]);
	plen = read_file(argv[5], payload, sizeof(payload) - 28);
	first = addr_arg(argv[6]);
	count = (unsigned)atoi(argv[7]);
	start = strtoull(argv[8], NULL, 10);
	if (argc > 9)
		names = (unsigned)atoi(argv[9]);
	if (argc > 10)
		rate = atof(argv[10]);
	if (count == 0 || names == 0)
		return 2;
	len = 20 + 8 + plen;

	fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0)
		die("socket(SOCK_RAW)");
	if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0)
		die("IP_HDRINCL");
	memset(msgs, 0, sizeof(msgs));
	for (k = 0; k < VLEN; k++) {
		struct iphdr *ip = (struct iphdr *)pkts[k];
		struct udphdr *udp = (struct udphdr *)(pkts[k] + 20);

		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons((uint16_t)len);
		ip->frag_off = htons(IP_DF);
		ip->daddr = dst.sin_addr.s_addr;
		udp->dest = dst.sin_port;
		udp->len = htons((uint16_t)(8 + plen));
		memcpy(pkts[k] + 28, payload, plen);
		iov[k].iov_base = pkts[k];
		iov[k].iov_len = len;
		msgs[k].msg_hdr.msg_iov = &iov[k];
		msgs[k].msg_hdr.msg_iovlen = 1;
		msgs[k].msg_hdr.msg_name = &dst;
		msgs[k].msg_hdr.msg_namelen = sizeof(dst);
	}

	i = start;
	t0 = now_s();
	t0ns = now_ns();
	for (t = t0; t < t0 + seconds; t = now_s()) {
		int r;

		if (rate > 0)
			pace(t0ns, batch++, rate);

		for (k = 0; k < VLEN; k++) {
			struct iphdr *ip = (struct iphdr *)pkts[k];
			struct udphdr *udp = (struct udphdr *)(pkts[k] + 20);
			uint8_t *dns = pkts[k] + 28;
			struct in_addr src;
			uint16_t sport;
			uint32_t s;
			uint64_t n = i + k;

			tuple(n, first, count, &src, &sport);
			ip->saddr = src.s_addr;
			ip->id = htons((uint16_t)n);
			ip->check = 0; /* the kernel fills it in */
			udp->source = htons(sport);
			dns[0] = (uint8_t)(n >> 8);
			dns[1] = (uint8_t)n;
			if (names > 1)
				set_name(dns, plen, n, names);
			udp->check = 0;
			s = sum16((const uint8_t *)&ip->saddr, 8, 0);
			s += IPPROTO_UDP + (uint32_t)(8 + plen);
			s = sum16((const uint8_t *)udp, 8 + plen, s);
			udp->check = htons(fold(s));
			if (udp->check == 0)
				udp->check = 0xffff;
		}
		r = sendmmsg(fd, msgs, VLEN, 0);
		if (r > 0) {
			sent += (unsigned)r;
			i += (unsigned)r;
		} else if (r < 0 && errno != EINTR) {
			failed++;
			i++; /* skip the refused one */
		}
	}
	t = now_s() - t0;
	printf("sent=%" PRIu64 " failed=%" PRIu64 " seconds=%.4f pps=%.0f next=%" PRIu64 "\n", sent, failed, t,
	       (double)sent / t, i + 1);
	return 0;
}

/* ----------------------------------------------------------------- server */

enum kind { K_CLOSE_L = 1, K_SINK_L, K_ECHO, K_CLOSE_C, K_SINK_C, K_REPLY_L, K_REPLY_C };

struct conn {
	int fd;
	enum kind kind;
	size_t got;
	uint8_t hdr[5];
};

static int listen_on(const char *spec, int type, size_t *nbytes)
{
	char host[64];
	unsigned port = 0;
	size_t nb = 0;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, one = 1;

	if (sscanf(spec, "%63[^:]:%u:%zu", host, &port, &nb) < 2) {
		fprintf(stderr, "netbench: bad ADDR:PORT: %s\n", spec);
		exit(2);
	}
	if (nbytes)
		*nbytes = nb;
	a.sin_addr = addr_arg(host);
	a.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die(spec);
	if (type == SOCK_STREAM && listen(fd, 4096) < 0)
		die("listen");
	return fd;
}

static void watch(int ep, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl");
}

static int cmd_server(int argc, char **argv)
{
	static uint8_t buf[1 << 17];
	struct conn listeners[8];
	struct epoll_event evs[256];
	struct sigaction sa;
	size_t close_after = 0;
	uint64_t accepted = 0, closed = 0, sunk = 0, echoed = 0, replied = 0;
	int ep, i, nl = 0;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	for (i = 2; i + 1 < argc; i += 2) {
		struct conn *l = &listeners[nl];

		if (nl == 8)
			break;
		if (!strcmp(argv[i], "--close")) {
			l->fd = listen_on(argv[i + 1], SOCK_STREAM, &close_after);
			l->kind = K_CLOSE_L;
		} else if (!strcmp(argv[i], "--sink")) {
			l->fd = listen_on(argv[i + 1], SOCK_STREAM, NULL);
			l->kind = K_SINK_L;
		} else if (!strcmp(argv[i], "--echo")) {
			l->fd = listen_on(argv[i + 1], SOCK_DGRAM, NULL);
			l->kind = K_ECHO;
		} else if (!strcmp(argv[i], "--reply")) {
			l->fd = listen_on(argv[i + 1], SOCK_STREAM, NULL);
			l->kind = K_REPLY_L;
		} else {
			fprintf(stderr, "netbench server: unknown option %s\n", argv[i]);
			return 2;
		}
		watch(ep, l);
		nl++;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fprintf(stderr, "netbench server: ready\n");

	while (!stop) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->kind == K_CLOSE_L || c->kind == K_SINK_L || c->kind == K_REPLY_L) {
				for (;;) {
					int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					struct conn *nc;

					if (fd < 0)
						break;
					nc = calloc(1, sizeof(*nc));
					if (!nc)
						die("calloc");
					nc->fd = fd;
					nc->kind = c->kind == K_CLOSE_L ? K_CLOSE_C : c->kind == K_SINK_L ? K_SINK_C : K_REPLY_C;
					watch(ep, nc);
					accepted++;
				}
			} else if (c->kind == K_ECHO) {
				for (;;) {
					struct sockaddr_in from;
					socklen_t fl = sizeof(from);
					ssize_t r = recvfrom(c->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

					if (r < 0)
						break;
					if (r >= 3)
						buf[2] |= 0x80; /* QR: a response */
					if (sendto(c->fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl) == r)
						echoed++;
				}
			} else {
				ssize_t r;
				int done = 0;

				for (;;) {
					r = read(c->fd, buf, sizeof(buf));
					if (r > 0 && c->kind == K_REPLY_C) {
						/* The record's length is in the first 5 bytes: keep them (c->hdr). */
						for (ssize_t b = 0; b < r && c->got + (size_t)b < 5; b++)
							c->hdr[c->got + (size_t)b] = buf[b];
						c->got += (size_t)r;
						if (c->got >= 5 && c->got >= 5 + ((size_t)c->hdr[3] << 8 | c->hdr[4])) {
							if (write(c->fd, "ok\n", 3) == 3)
								replied++;
							done = 1;
							break;
						}
						continue;
					}
					if (r > 0) {
						c->got += (size_t)r;
						if (c->kind == K_SINK_C)
							sunk += (uint64_t)r;
						if (c->kind == K_CLOSE_C && c->got >= close_after) {
							done = 1;
							break;
						}
						continue;
					}
					if (r == 0 || (errno != EAGAIN && errno != EINTR))
						done = 1;
					break;
				}
				if (done) {
					close(c->fd); /* also removes it from the epoll set */
					free(c);
					closed++;
				}
			}
		}
	}
	printf("accepted=%" PRIu64 " closed=%" PRIu64 " sunk_bytes=%" PRIu64 " echoed=%" PRIu64 " replied=%" PRIu64 "\n",
	       accepted, closed, sunk, echoed, replied);
	return 0;
}

/* ------------------------------------------------------------------- conn */

struct cconn {
	int fd;
	int sent;
	double t;
};

static int cmd_conn(int argc, char **argv)
{
	static uint8_t hello[16384], buf[4096];
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct epoll_event evs[256];
	struct cconn *cs;
	struct in_addr first;
	unsigned count, conc, k;
	uint64_t i, ok = 0, failed = 0;
	double seconds, t0, t;
	size_t hlen;
	int ep;

	if (argc < 10) {
		fprintf(stderr, "usage: netbench conn DST PORT SECONDS CONCURRENCY HELLO SRC_FIRST SRC_COUNT START\n");
		return 2;
	}
	dst.sin_addr = addr_arg(argv[2]);
	dst.sin_port = htons((uint16_t)atoi(argv[3]));
	seconds = atof(argv[4]);
	conc = (unsigned)atoi(argv[5]);
	hlen = read_file(argv[6], hello, sizeof(hello));
	first = addr_arg(argv[7]);
	count = (unsigned)atoi(argv[8]);
	i = strtoull(argv[9], NULL, 10);
	if (conc == 0 || conc > 4096 || count == 0)
		return 2;
	cs = calloc(conc, sizeof(*cs));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cs || ep < 0)
		die("setup");

	t0 = now_s();
	for (k = 0; k < conc; k++)
		cs[k].fd = -1;
	for (t = t0; t < t0 + seconds; t = now_s()) {
		int n;

		/* Fill every free slot with a new connection. */
		for (k = 0; k < conc; k++) {
			struct sockaddr_in src = { .sin_family = AF_INET };
			struct epoll_event ev;
			uint16_t port;
			int fd, one = 1;

			if (cs[k].fd >= 0)
				continue;
			tuple(i++, first, count, &src.sin_addr, &port);
			src.sin_port = htons(port);
			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0)
				die("socket");
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
			    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
				failed++;
				close(fd);
				continue;
			}
			cs[k].fd = fd;
			cs[k].sent = 0;
			cs[k].t = t;
			ev.events = EPOLLOUT | EPOLLIN;
			ev.data.u32 = k;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
				die("epoll_ctl");
		}
		n = epoll_wait(ep, evs, 256, 10);
		for (int e = 0; e < n; e++) {
			struct cconn *c = &cs[evs[e].data.u32];
			int err = 0, done = 0;
			socklen_t el = sizeof(err);

			if (c->fd < 0)
				continue;
			if (evs[e].events & (EPOLLERR | EPOLLHUP)) {
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			}
			if (!c->sent && (evs[e].events & EPOLLOUT) && !err) {
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = evs[e].data.u32 };

				if (write(c->fd, hello, hlen) != (ssize_t)hlen) {
					err = 1;
				} else {
					c->sent = 1;
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (!err && c->sent && (evs[e].events & (EPOLLIN | EPOLLHUP))) {
				for (;;) {
					ssize_t r = read(c->fd, buf, sizeof(buf));

					if (r > 0)
						continue;
					if (r == 0)
						done = 1;
					else if (errno != EAGAIN && errno != EINTR)
						err = 1;
					break;
				}
			}
			if (err || done) {
				close(c->fd);
				c->fd = -1;
				if (done)
					ok++;
				else
					failed++;
			}
		}
	}
	t = now_s() - t0;
	for (k = 0; k < conc; k++)
		if (cs[k].fd >= 0)
			close(cs[k].fd);
	printf("ok=%" PRIu64 " failed=%" PRIu64 " seconds=%.4f cps=%.0f next=%" PRIu64 "\n", ok, failed, t,
	       (double)ok / t, i);
	return 0;
}

/* ------------------------------------------------------------------- bulk */

static int cmd_bulk(int argc, char **argv)
{
	static uint8_t hello[16384], chunk[65536], buf[4096];
	struct sockaddr_in dst = { .sin_family = AF_INET };
	uint64_t bytes = 0;
	double seconds, t0, t;
	size_t hlen;
	int fd;

	if (argc < 6) {
		fprintf(stderr, "usage: netbench bulk DST PORT SECONDS HELLO\n");
		return 2;
	}
	dst.sin_addr = addr_arg(argv[2]);
	dst.sin_port = htons((uint16_t)atoi(argv[3]));
	seconds = atof(argv[4]);
	hlen = read_file(argv[5], hello, sizeof(hello));
	memset(chunk, 0x17, sizeof(chunk)); /* looks like TLS application data; content does not matter */

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		die("connect");
	if (write(fd, hello, hlen) != (ssize_t)hlen)
		die("write hello");
	t0 = now_s();
	while (now_s() < t0 + seconds) {
		ssize_t w = write(fd, chunk, sizeof(chunk));

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		bytes += (uint64_t)w;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	t = now_s() - t0;
	close(fd);
	printf("bytes=%" PRIu64 " seconds=%.4f mbps=%.1f\n", bytes, t, (double)bytes * 8 / t / 1e6);
	return 0;
}

/* ------------------------------------------------------------------- ping */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmd_ping(int argc, char **argv)
{
	static uint8_t payload[MAXPKT], buf[MAXPKT];
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct in_addr first;
	unsigned count;
	uint64_t i, n, k, sent = 0, ok = 0, *rtt;
	double seconds, rate;
	uint64_t start, period;
	size_t plen;

	if (argc < 10) {
		fprintf(stderr, "usage: netbench ping DST PORT SECONDS RATE PAYLOAD SRC_FIRST SRC_COUNT START\n");
		return 2;
	}
	dst.sin_addr = addr_arg(argv[2]);
	dst.sin_port = htons((uint16_t)atoi(argv[3]));
	seconds = atof(argv[4]);
	rate = atof(argv[5]);
	plen = read_file(argv[6], payload, sizeof(payload));
	first = addr_arg(argv[7]);
	count = (unsigned)atoi(argv[8]);
	i = strtoull(argv[9], NULL, 10);
	if (rate <= 0 || count == 0)
		return 2;
	n = (uint64_t)(seconds * rate);
	rtt = calloc(n + 1, sizeof(*rtt));
	if (!rtt)
		die("calloc");
	period = (uint64_t)(1e9 / rate);
	start = now_ns();

	for (k = 0; k < n; k++) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		struct timespec at;
		uint64_t due = start + k * period, t1, t2;
		struct pollfd p;
		uint16_t port;
		int fd, one = 1;

		at.tv_sec = (time_t)(due / 1000000000ull);
		at.tv_nsec = (long)(due % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
			;
		tuple(i++, first, count, &src.sin_addr, &port);
		src.sin_port = htons(port);
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			close(fd);
			continue;
		}
		payload[0] = (uint8_t)(k >> 8);
		payload[1] = (uint8_t)k;
		t1 = now_ns();
		if (send(fd, payload, plen, 0) != (ssize_t)plen) {
			close(fd);
			continue;
		}
		sent++;
		p.fd = fd;
		p.events = POLLIN;
		while (poll(&p, 1, 200) > 0) {
			ssize_t r = recv(fd, buf, sizeof(buf), 0);

			if (r >= 2 && buf[0] == payload[0] && buf[1] == payload[1]) {
				t2 = now_ns();
				rtt[ok++] = t2 - t1;
				break;
			}
		}
		close(fd);
	}
	qsort(rtt, ok, sizeof(*rtt), cmp_u64);
#define PCT(q) (ok ? rtt[(uint64_t)((double)(ok - 1) * (q) + 0.5)] / 1e3 : 0.0)
	printf("sent=%" PRIu64 " ok=%" PRIu64 " lost=%" PRIu64 " p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f next=%" PRIu64
	       "\n",
	       sent, ok, sent - ok, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0), i);
	return 0;
}

/* -------------------------------------------------------------- overflood */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: plenty for random DCIDs and names, and cheap. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

#define QUIC_LEN 1250u
#define DNS_LABEL 10u

/* A DNS query (A, RD, no EDNS) for <DNS_LABEL chars>.com; the label is rewritten per query. */
static size_t dns_template(uint8_t *p)
{
	static const uint8_t head[12] = { 0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
	size_t n = 0;

	memcpy(p, head, 12);
	n = 12;
	p[n++] = DNS_LABEL;
	memset(p + n, 'a', DNS_LABEL);
	n += DNS_LABEL;
	p[n++] = 3;
	memcpy(p + n, "com", 3);
	n += 3;
	p[n++] = 0;
	p[n++] = 0;
	p[n++] = 1; /* QTYPE A */
	p[n++] = 0;
	p[n++] = 1; /* QCLASS IN */
	return n;
}

static uint16_t tcp_checksum(const struct iphdr *ip, const uint8_t *tcp, size_t len)
{
	uint32_t s = sum16((const uint8_t *)&ip->saddr, 8, 0);

	s += IPPROTO_TCP + (uint32_t)len;
	return htons(fold(sum16(tcp, len, s)));
}

static int cmd_overflood(int argc, char **argv)
{
	static uint8_t pkts[VLEN][MAXPKT];
	static uint8_t hello[MAXPKT];
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct mmsghdr msgs[VLEN];
	struct iovec iov[VLEN];
	struct in_addr src;
	uint64_t i = 0, sent = 0, failed = 0, batch = 0, t0ns;
	double seconds, rate, t0, t;
	size_t hlen = 0, dlen = 0;
	const char *kind;
	int fd, one = 1, k;
	enum { QUIC, DNS, TCP } mode;

	if (argc < 7) {
		fprintf(stderr, "usage: netbench overflood quic|dns|tcp DST SECONDS RATE SRC [HELLO]\n");
		return 2;
	}
	kind = argv[2];
	dst.sin_addr = addr_arg(argv[3]);
	seconds = atof(argv[4]);
	rate = atof(argv[5]);
	src = addr_arg(argv[6]);
	if (!strcmp(kind, "quic")) {
		mode = QUIC;
	} else if (!strcmp(kind, "dns")) {
		mode = DNS;
	} else if (!strcmp(kind, "tcp") && argc > 7) {
		mode = TCP;
		hlen = read_file(argv[7], hello, sizeof(hello) - 40);
	} else {
		fprintf(stderr, "netbench overflood: KIND is quic, dns or tcp HELLO\n");
		return 2;
	}
	rng_state ^= (uint64_t)getpid() << 32 ^ now_ns();
	dst.sin_port = htons(mode == DNS ? 53 : 443);

	fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0)
		die("socket(SOCK_RAW)");
	if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0)
		die("IP_HDRINCL");
	memset(msgs, 0, sizeof(msgs));
	memset(pkts, 0, sizeof(pkts));
	for (k = 0; k < VLEN; k++) {
		struct iphdr *ip = (struct iphdr *)pkts[k];
		uint8_t *l4 = pkts[k] + 20;
		size_t len = 0;

		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->frag_off = htons(IP_DF);
		ip->saddr = src.s_addr;
		ip->daddr = dst.sin_addr.s_addr;
		if (mode == QUIC) {
			struct udphdr *udp = (struct udphdr *)l4;
			uint8_t *q = l4 + 8;
			unsigned b;

			for (b = 0; b < QUIC_LEN; b++)
				q[b] = (uint8_t)rng();
			q[0] = 0xc3; /* long header, fixed bit, Initial, 4-byte packet number */
			q[1] = 0;
			q[2] = 0;
			q[3] = 0;
			q[4] = 1; /* version 1 */
			q[5] = 8; /* DCID length */
			q[14] = 0; /* SCID length */
			q[15] = 0; /* token length */
			q[16] = (uint8_t)(0x40 | (QUIC_LEN - 18) >> 8);
			q[17] = (uint8_t)(QUIC_LEN - 18);
			ip->protocol = IPPROTO_UDP;
			udp->dest = dst.sin_port;
			udp->len = htons(8 + QUIC_LEN);
			len = 28 + QUIC_LEN;
		} else if (mode == DNS) {
			struct udphdr *udp = (struct udphdr *)l4;

			dlen = dns_template(l4 + 8);
			ip->protocol = IPPROTO_UDP;
			udp->dest = dst.sin_port;
			udp->len = htons((uint16_t)(8 + dlen));
			len = 28 + dlen;
		} else {
			struct tcphdr *tcp = (struct tcphdr *)l4;

			/* Even slots: the SYN; odd slots: the hello on the same 5-tuple. */
			ip->protocol = IPPROTO_TCP;
			tcp->dest = dst.sin_port;
			tcp->doff = 5;
			tcp->window = htons(64240);
			if (k % 2 == 0) {
				tcp->syn = 1;
				len = 40;
			} else {
				tcp->ack = 1;
				tcp->psh = 1;
				memcpy(l4 + 20, hello, hlen);
				len = 40 + hlen;
			}
		}
		ip->tot_len = htons((uint16_t)len);
		iov[k].iov_base = pkts[k];
		iov[k].iov_len = len;
		msgs[k].msg_hdr.msg_iov = &iov[k];
		msgs[k].msg_hdr.msg_iovlen = 1;
		msgs[k].msg_hdr.msg_name = &dst;
		msgs[k].msg_hdr.msg_namelen = sizeof(dst);
	}

	t0 = now_s();
	t0ns = now_ns();
	for (t = t0; t < t0 + seconds; t = now_s()) {
		int r;

		if (rate > 0)
			pace(t0ns, batch++, rate);
		for (k = 0; k < VLEN; k++) {
			struct iphdr *ip = (struct iphdr *)pkts[k];
			uint8_t *l4 = pkts[k] + 20;
			uint64_t n = mode == TCP ? (i + (uint64_t)k) / 2 : i + (uint64_t)k; /* tuple number */
			uint16_t sport = (uint16_t)(1024 + n % PORTS);

			ip->id = htons((uint16_t)(i + (uint64_t)k));
			ip->check = 0; /* the kernel fills it in */
			if (mode == QUIC) {
				uint64_t r1 = rng();

				((struct udphdr *)l4)->source = htons(sport);
				memcpy(l4 + 8 + 6, &r1, 8); /* the DCID */
			} else if (mode == DNS) {
				uint8_t *d = l4 + 8;
				uint64_t r1 = rng(), r2 = rng();
				unsigned c;

				((struct udphdr *)l4)->source = htons(sport);
				d[0] = (uint8_t)r2;
				d[1] = (uint8_t)(r2 >> 8);
				for (c = 0; c < DNS_LABEL; c++) {
					unsigned v = (unsigned)(r1 % 36);

					d[13 + c] = (uint8_t)(v < 10 ? '0' + v : 'a' + v - 10);
					r1 /= 36;
				}
			} else {
				struct tcphdr *tcp = (struct tcphdr *)l4;
				/* The same initial sequence number for both packets of a tuple, from its number. */
				uint32_t isn = (uint32_t)(n * 2654435761u);

				tcp->source = htons(sport);
				tcp->seq = htonl(k % 2 == 0 ? isn : isn + 1);
				tcp->ack_seq = k % 2 == 0 ? 0 : htonl(isn ^ 0x5a5a5a5au);
				tcp->check = 0;
				tcp->check = tcp_checksum(ip, l4, k % 2 == 0 ? 20 : 20 + hlen);
			}
		}
		r = sendmmsg(fd, msgs, VLEN, 0);
		if (r > 0) {
			sent += (unsigned)r;
			i += VLEN; /* keep the SYN/hello pairing on even/odd slots */
		} else if (r < 0 && errno != EINTR) {
			failed++;
			i += VLEN;
		}
	}
	t = now_s() - t0;
	printf("sent=%" PRIu64 " failed=%" PRIu64 " seconds=%.4f pps=%.0f\n", sent, failed, t, (double)sent / t);
	return 0;
}

/* ------------------------------------------------------------------ probe */

struct attempt {
	int fd;
	int blocked;
	int sent;
	uint64_t t0;
	size_t hlen;
	const uint8_t *hello;
};

static int cmd_probe(int argc, char **argv)
{
	static uint8_t hellos[8][16384];
	static uint8_t buf[4096];
	struct sockaddr_in adst = { .sin_family = AF_INET }, bdst = { .sin_family = AF_INET }, src = { .sin_family = AF_INET };
	struct epoll_event evs[64];
	struct attempt *at;
	size_t hlen[8];
	unsigned nh, h, slots, k;
	uint64_t interval_ns, timeout_ns, start, end, next, *lat;
	uint64_t a_tried = 0, a_ok = 0, b_tried = 0, b_ok = 0, open = 0;
	double seconds;
	int ep;

	if (argc < 11) {
		fprintf(stderr, "usage: netbench probe ALLOWED_DST BLOCKED_DST PORT SECONDS INTERVAL_MS TIMEOUT_MS SRC ALLOWED_HELLO BLOCKED_HELLO...\n");
		return 2;
	}
	adst.sin_addr = addr_arg(argv[2]);
	bdst.sin_addr = addr_arg(argv[3]);
	adst.sin_port = bdst.sin_port = htons((uint16_t)atoi(argv[4]));
	seconds = atof(argv[5]);
	interval_ns = (uint64_t)(atof(argv[6]) * 1e6);
	timeout_ns = (uint64_t)(atof(argv[7]) * 1e6);
	src.sin_addr = addr_arg(argv[8]);
	nh = (unsigned)(argc - 9);
	if (nh > 8 || interval_ns == 0)
		return 2;
	for (h = 0; h < nh; h++)
		hlen[h] = read_file(argv[9 + h], hellos[h], sizeof(hellos[h]));
	/* In flight at most: every hello of every interval within one timeout, and some room. */
	slots = nh * (unsigned)(timeout_ns / interval_ns + 2);
	at = calloc(slots, sizeof(*at));
	lat = calloc((size_t)(seconds * 1e9 / (double)interval_ns) + 2, sizeof(*lat));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!at || !lat || ep < 0)
		die("setup");
	for (k = 0; k < slots; k++)
		at[k].fd = -1;

	start = now_ns();
	end = start + (uint64_t)(seconds * 1e9);
	next = start;
	for (;;) {
		uint64_t t = now_ns();
		int n, wait_ms;

		/* New attempts, one per hello, every interval until the end. */
		while (next < end && t >= next) {
			for (h = 0; h < nh; h++) {
				struct epoll_event ev;
				int fd;

				for (k = 0; k < slots && at[k].fd >= 0; k++)
					;
				if (k == slots)
					break; /* cannot happen with the sizing above */
				if (h == 0)
					a_tried++;
				else
					b_tried++;
				fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
				if (fd < 0)
					die("socket");
				if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
				    (connect(fd, (struct sockaddr *)(h == 0 ? &adst : &bdst), sizeof(adst)) < 0 && errno != EINPROGRESS)) {
					close(fd); /* counted as tried, not ok */
					continue;
				}
				at[k] = (struct attempt){ .fd = fd, .blocked = h != 0, .sent = 0, .t0 = t, .hlen = hlen[h], .hello = hellos[h] };
				ev.events = EPOLLOUT | EPOLLIN;
				ev.data.u32 = k;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
					die("epoll_ctl");
				open++;
			}
			next += interval_ns;
		}
		/* Timeouts. */
		for (k = 0; k < slots; k++) {
			if (at[k].fd >= 0 && t - at[k].t0 >= timeout_ns) {
				close(at[k].fd);
				at[k].fd = -1;
				open--;
			}
		}
		if (next >= end && open == 0)
			break;
		wait_ms = next < end ? (int)((next > t ? next - t : 0) / 1000000) : 5;
		n = epoll_wait(ep, evs, 64, wait_ms > 5 ? 5 : wait_ms);
		for (int e = 0; e < n; e++) {
			struct attempt *a = &at[evs[e].data.u32];
			int err = 0, ok = 0;
			socklen_t el = sizeof(err);

			if (a->fd < 0)
				continue;
			if (evs[e].events & (EPOLLERR | EPOLLHUP))
				getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (!err && !a->sent && (evs[e].events & EPOLLOUT)) {
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = evs[e].data.u32 };

				if (write(a->fd, a->hello, a->hlen) != (ssize_t)a->hlen)
					err = 1;
				a->sent = 1;
				epoll_ctl(ep, EPOLL_CTL_MOD, a->fd, &ev);
			}
			if (!err && a->sent && (evs[e].events & EPOLLIN)) {
				ssize_t r = read(a->fd, buf, sizeof(buf));

				if (r >= 2 && buf[0] == 'o' && buf[1] == 'k')
					ok = 1;
				else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
					err = 1;
			}
			if (ok || err) {
				if (ok && a->blocked)
					b_ok++;
				if (ok && !a->blocked)
					lat[a_ok++] = now_ns() - a->t0;
				close(a->fd);
				a->fd = -1;
				open--;
			}
		}
	}
	qsort(lat, a_ok, sizeof(*lat), cmp_u64);
#define LAT(q) (a_ok ? lat[(uint64_t)((double)(a_ok - 1) * (q) + 0.5)] / 1e6 : 0.0)
	printf("allowed_tried=%" PRIu64 " allowed_ok=%" PRIu64 " allowed_p50_ms=%.2f allowed_p99_ms=%.2f allowed_max_ms=%.2f blocked_tried=%" PRIu64
	       " blocked_ok=%" PRIu64 "\n",
	       a_tried, a_ok, LAT(0.5), LAT(0.99), LAT(1.0), b_tried, b_ok);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "flood"))
		return cmd_flood(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "server"))
		return cmd_server(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "conn"))
		return cmd_conn(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "bulk"))
		return cmd_bulk(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "ping"))
		return cmd_ping(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "overflood"))
		return cmd_overflood(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "probe"))
		return cmd_probe(argc, argv);
	fprintf(stderr, "usage: netbench flood|server|conn|bulk|ping|overflood|probe ... (see the comment at the top of netbench.c)\n");
	return 2;
}
