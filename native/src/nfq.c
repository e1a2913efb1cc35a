/*
 * nfq: NFQUEUE on libmnl and the kernel UAPI. See nfq.h for the contract
 * and nfq_internal.h for how the files divide the work; this one holds the
 * handle's life: open, bind and configure the queue (a request and its ack),
 * close, and the store of kept messages.
 * Kernel side referred to below: net/netfilter/nfnetlink_queue.c.
 */
#define _GNU_SOURCE
#include "nfq_internal.h"

#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* The kernel answers a config request while our sendmsg runs; this only
 * bounds a wait that should never happen. */
#define NFQ_ACK_TIMEOUT_MS 2000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* See nfq_internal.h. */
int nfq_pend_reserve(struct nfq_handle *h, size_t need)
{
	size_t cap;
	uint8_t *p;

	if (h->pend_cap - h->pend_len >= need)
		return 0;
	cap = h->pend_cap * 2 > h->pend_len + need ? h->pend_cap * 2 : h->pend_len + need;
	p = realloc(h->pend, cap);
	if (!p)
		return -ENOMEM;
	h->pend = p;
	h->pend_cap = cap;
	return 0;
}

/* See nfq_internal.h. */
int nfq_pend_append(struct nfq_handle *h, const void *data, size_t len)
{
	int err = nfq_pend_reserve(h, len);

	if (err < 0)
		return err;
	memcpy(h->pend + h->pend_len, data, len);
	h->pend_len += len;
	return 0;
}

/*
 * Send one request with NLM_F_ACK and wait for its ack. Returns 0 or the
 * kernel's -errno. Once BIND has been processed the kernel may queue packets
 * to us before the ack (another CPU, a tiny window): those messages are kept
 * in h->pend for the first nfq_read_batch(), so no packet is left without a
 * verdict.
 */
static int nfq_request(struct nfq_handle *h, struct nlmsghdr *nlh)
{
	const uint32_t seq = nlh->nlmsg_seq;
	const int64_t deadline = now_ms() + NFQ_ACK_TIMEOUT_MS;

	if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;

	for (;;) {
		uint8_t *dst;
		size_t room;
		struct nlmsghdr *m;
		ssize_t r;
		int rem, err;

		/* Bounded: packets without a verdict never exceed the queue's maxlen. */
		err = nfq_pend_reserve(h, h->max_msg);
		if (err < 0)
			return err;
		dst = h->pend + h->pend_len;
		room = h->pend_cap - h->pend_len;
		r = recv(h->fd, dst, room, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0) {
			struct pollfd p = { .fd = h->fd, .events = POLLIN };
			int64_t left;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			left = deadline - now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if ((size_t)r > room)
			return -EMSGSIZE; /* cannot happen while NFQ_MSG_OVERHEAD holds */

		/* Keep packet messages (compacting in place), act on the ack. */
		m = (struct nlmsghdr *)dst;
		rem = (int)r;
		int result = 1; /* 1: not our ack yet */
		while (mnl_nlmsg_ok(m, rem)) {
			size_t adv = NLMSG_ALIGN(m->nlmsg_len);

			if (nfq_is_packet_msg(m)) {
				memmove(h->pend + h->pend_len, m, m->nlmsg_len);
				h->pend_len += adv;
			} else if (m->nlmsg_type == NLMSG_ERROR && m->nlmsg_seq == seq &&
				   m->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);

				result = e->error; /* 0 (ack) or -errno */
			}
			if (adv >= (size_t)rem)
				break;
			rem -= (int)adv;
			m = (struct nlmsghdr *)((uint8_t *)m + adv);
		}
		if (result <= 0)
			return result;
	}
}

/* Bind and configure in ONE message, so the instance never runs in the
 * default copy mode (NFQNL_COPY_META) longer than one kernel function. */
static int nfq_bind_config(struct nfq_handle *h, const struct nfq_config *cfg,
			   uint32_t copy_range)
{
	uint8_t buf[256];
	struct nlmsghdr *nlh = nfq_put_queue_hdr(buf, NFQNL_MSG_CONFIG, NLM_F_ACK, ++h->seq, h->queue);
	struct nfqnl_msg_config_cmd cmd = { .command = NFQNL_CFG_CMD_BIND, .pf = htons(AF_UNSPEC) };
	struct nfqnl_msg_config_params params = {
		.copy_range = htonl(copy_range),
		.copy_mode = NFQNL_COPY_PACKET,
	};
	uint32_t flags = 0;

	if (cfg->fail_open)
		flags |= NFQA_CFG_F_FAIL_OPEN;
	if (cfg->gso)
		flags |= NFQA_CFG_F_GSO;
	mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof(cmd), &cmd);
	mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof(params), &params);
	mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(cfg->max_len));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	return nfq_request(h, nlh);
}

/*
 * The kernel answers EPERM both without CAP_NET_ADMIN (nfnetlink_rcv) and
 * when the queue belongs to another socket (nfqnl_recv_config checks
 * peer_portid before it looks at the command). PF_BIND is obsolete and
 * returns 0 before any queue lookup, so it succeeds iff we are capable.
 */
static int nfq_probe_capable(struct nfq_handle *h)
{
	uint8_t buf[128];
	struct nlmsghdr *nlh = nfq_put_queue_hdr(buf, NFQNL_MSG_CONFIG, NLM_F_ACK, ++h->seq, 0);
	struct nfqnl_msg_config_cmd cmd = { .command = NFQNL_CFG_CMD_PF_BIND, .pf = htons(AF_INET) };

	mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof(cmd), &cmd);
	return nfq_request(h, nlh);
}

int nfq_open(struct nfq_handle **out, const struct nfq_config *cfg, const char **step)
{
	struct nfq_handle *h;
	uint32_t copy_range = cfg->copy_range;
	int one = 1, err;

	*out = NULL;
	*step = "malloc";
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = -1;
	h->queue = cfg->queue_num;
	h->verdict_batch = cfg->verdict_batch;
	if (copy_range == 0 || copy_range > NFQ_MAX_COPY_RANGE)
		copy_range = NFQ_MAX_COPY_RANGE;
	h->max_msg = NLMSG_ALIGN(copy_range + NFQ_MSG_OVERHEAD);
	h->pend_cap = 2 * h->max_msg;
	h->pend = malloc(h->pend_cap);
	h->vbuf = malloc(NFQ_VERDICT_BATCH_BYTES + NFQ_VERDICT_MSG_MAX);
	if (!h->pend || !h->vbuf)
		goto fail_errno;
	h->vb = mnl_nlmsg_batch_start(h->vbuf, NFQ_VERDICT_BATCH_BYTES);
	if (!h->vb)
		goto fail_errno;

	*step = "socket";
	h->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!h->nl)
		goto fail_errno;
	h->fd = mnl_socket_get_fd(h->nl);

	/* SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN;
	 * without it fall back to SO_RCVBUF (capped by rmem_max) and let the
	 * bind below report the missing capability. */
	*step = "setsockopt(SO_RCVBUFFORCE)";
	if (setsockopt(h->fd, SOL_SOCKET, SO_RCVBUFFORCE, &cfg->rcvbuf, sizeof(cfg->rcvbuf)) < 0) {
		if (errno != EPERM)
			goto fail_errno;
		*step = "setsockopt(SO_RCVBUF)";
		if (setsockopt(h->fd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf, sizeof(cfg->rcvbuf)) < 0)
			goto fail_errno;
	}
	/* Overruns drop silently instead of failing recv() (Suricata does the same). */
	*step = "setsockopt(NETLINK_NO_ENOBUFS)";
	if (setsockopt(h->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0)
		goto fail_errno;
	/* Error replies to verdicts need not echo the request; best effort. */
	(void)setsockopt(h->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));

	*step = "bind";
	if (mnl_socket_bind(h->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail_errno;

	*step = "NFQNL_CFG_CMD_BIND";
	err = nfq_bind_config(h, cfg, copy_range);
	if (err == -EPERM) {
		int probe = nfq_probe_capable(h);

		if (probe == 0)
			err = -EBUSY;
		else if (probe != -EPERM)
			err = probe;
	}
	if (err < 0)
		goto fail;
	*step = NULL;
	*out = h;
	return 0;

fail_errno:
	err = errno ? -errno : -ENOMEM;
fail:
	nfq_close(h);
	return err;
}

void nfq_close(struct nfq_handle *h)
{
	if (!h)
		return;
	/* Closing the socket is enough: NETLINK_URELEASE destroys the instance
	 * and the kernel drops the packets that had no verdict. */
	if (h->nl)
		mnl_socket_close(h->nl);
	if (h->vb)
		mnl_nlmsg_batch_stop(h->vb);
	free(h->vbuf);
	free(h->pend);
	free(h);
}

int nfq_fd(const struct nfq_handle *h)
{
	return h->fd;
}

size_t nfq_max_msg(const struct nfq_handle *h)
{
	return h->max_msg;
}

int nfq_pending(const struct nfq_handle *h)
{
	return h->pend_off < h->pend_len;
}

void nfq_get_stats(const struct nfq_handle *h, struct nfq_stats *out)
{
	*out = h->st;
}
