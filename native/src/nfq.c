/*
 * nfq: NFQUEUE on libmnl and the kernel UAPI. See nfq.h for the contract.
 * Kernel side referred to below: net/netfilter/nfnetlink_queue.c.
 */
#define _GNU_SOURCE
#include "nfq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* The kernel answers a config request while our sendmsg runs; this only
 * bounds a wait that should never happen. */
#define NFQ_ACK_TIMEOUT_MS 2000

/* Datagrams per recvmmsg() call (1: one recv() per datagram; for A/B benchmarks). */
#ifndef NFQ_RECV_VLEN
#define NFQ_RECV_VLEN 64u
#endif

/* One verdict message: nlmsghdr 16 + nfgenmsg 4 + VERDICT_HDR 12 + MARK 8. */
#define NFQ_VERDICT_MSG_MAX 64u

struct nfq_handle {
	struct mnl_socket *nl;
	int fd;
	uint16_t queue;
	uint32_t seq;
	size_t max_msg;
	/* Kept messages, returned first by the next nfq_read_batch(). */
	uint8_t *pend;
	size_t pend_cap, pend_len, pend_off;
	/* Verdict batch: NFQ_VERDICT_BATCH_BYTES plus room for the overflowing message. */
	uint8_t *vbuf;
	struct mnl_nlmsg_batch *vb;
	int verdict_batch;
	struct nfq_stats st;
};

static struct nlmsghdr *put_queue_hdr(void *buf, uint8_t type, uint16_t flags,
				      uint32_t seq, uint16_t queue)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(queue);
	return nlh;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_packet_msg(const struct nlmsghdr *nlh)
{
	return nlh->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET);
}

/* Make room for need more bytes in pend (grows; a rare path). */
static int pend_reserve(struct nfq_handle *h, size_t need)
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

/* Keep bytes for the next nfq_read_batch(). */
static int pend_append(struct nfq_handle *h, const void *data, size_t len)
{
	int err = pend_reserve(h, len);

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
		err = pend_reserve(h, h->max_msg);
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

			if (is_packet_msg(m)) {
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
	struct nlmsghdr *nlh = put_queue_hdr(buf, NFQNL_MSG_CONFIG, NLM_F_ACK, ++h->seq, h->queue);
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
	struct nlmsghdr *nlh = put_queue_hdr(buf, NFQNL_MSG_CONFIG, NLM_F_ACK, ++h->seq, 0);
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

struct attrs {
	const struct nlattr *hdr, *mark, *indev, *outdev, *payload, *cap_len, *skb_info;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t len = mnl_attr_get_payload_len(a);

	/* mnl_attr_parse() already checked that a lies inside the message;
	 * here each attribute we read must be at least as long as we read. */
	switch (mnl_attr_get_type(a)) {
	case NFQA_PACKET_HDR:
		if (len >= sizeof(struct nfqnl_msg_packet_hdr))
			t->hdr = a;
		break;
	case NFQA_MARK:
		if (len >= sizeof(uint32_t))
			t->mark = a;
		break;
	case NFQA_IFINDEX_INDEV:
		if (len >= sizeof(uint32_t))
			t->indev = a;
		break;
	case NFQA_IFINDEX_OUTDEV:
		if (len >= sizeof(uint32_t))
			t->outdev = a;
		break;
	case NFQA_PAYLOAD:
		t->payload = a;
		break;
	case NFQA_CAP_LEN:
		if (len >= sizeof(uint32_t))
			t->cap_len = a;
		break;
	case NFQA_SKB_INFO:
		if (len >= sizeof(uint32_t))
			t->skb_info = a;
		break;
	default:
		break; /* unknown or unused: skip */
	}
	return MNL_CB_OK;
}

static uint32_t attr_be32(const struct nlattr *a)
{
	uint32_t v;

	memcpy(&v, mnl_attr_get_payload(a), sizeof(v));
	return ntohl(v);
}

/* Parse one message that lies in buf; fill *p for a packet. Returns 1 if *p was filled. */
static int nfq_parse(struct nfq_handle *h, const struct nlmsghdr *nlh, const uint8_t *buf,
		     struct nfq_pkt *p, int cut)
{
	struct attrs t = { 0 };
	struct nfqnl_msg_packet_hdr ph;

	if (nlh->nlmsg_type == NLMSG_ERROR) {
		if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

			if (e->error != 0)
				h->st.verdict_errors++;
		} else {
			h->st.recv_errors++;
		}
		return 0;
	}
	if (!is_packet_msg(nlh))
		return 0; /* NLMSG_DONE, NOOP, other types: nothing to answer */
	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg))) {
		h->st.recv_errors++;
		return 0;
	}
	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, &t);
	if (!t.hdr) {
		h->st.recv_errors++; /* no id: nothing we could answer */
		return 0;
	}
	memcpy(&ph, mnl_attr_get_payload(t.hdr), sizeof(ph));
	p->id = ntohl(ph.packet_id);
	p->hw_protocol = ntohs(ph.hw_protocol);
	p->hook = ph.hook;
	p->mark = t.mark ? attr_be32(t.mark) : 0;
	p->indev = t.indev ? attr_be32(t.indev) : 0;
	p->outdev = t.outdev ? attr_be32(t.outdev) : 0;
	p->flags = 0;
	if (t.payload) {
		p->offset = (uint32_t)((const uint8_t *)mnl_attr_get_payload(t.payload) - buf);
		p->len = mnl_attr_get_payload_len(t.payload);
	} else {
		p->offset = (uint32_t)((const uint8_t *)nlh - buf);
		p->len = 0;
	}
	p->orig_len = t.cap_len ? attr_be32(t.cap_len) : p->len;
	if (t.skb_info) {
		uint32_t info = attr_be32(t.skb_info);

		if (info & NFQA_SKB_GSO)
			p->flags |= NFQ_PKT_F_GSO;
		if (info & NFQA_SKB_CSUMNOTREADY)
			p->flags |= NFQ_PKT_F_CSUM_NOTREADY;
		if (info & NFQA_SKB_CSUM_NOTVERIFIED)
			p->flags |= NFQ_PKT_F_CSUM_NOTVERIFIED;
	}
	if (cut) {
		p->flags |= NFQ_PKT_F_MSG_TRUNCATED;
		if (!t.payload || p->orig_len < p->len)
			p->orig_len = p->len;
	}
	if (p->len < p->orig_len)
		p->flags |= NFQ_PKT_F_TRUNCATED;
	return 1;
}

/*
 * Walk the messages of one datagram that lies in buf; a record per packet.
 * cut: the datagram was longer than its slot (MSG_TRUNC), len is what fits.
 * When the record array is full the rest of the datagram is kept in pend.
 */
static void take_datagram(struct nfq_handle *h, uint8_t *buf, uint8_t *dg, size_t len, int cut,
			  struct nfq_pkt *pkts, unsigned *n, unsigned maxpkts)
{
	struct nlmsghdr *m = (struct nlmsghdr *)dg;
	size_t rem = len;

	if (cut)
		h->st.recv_errors++;
	while (rem >= NLMSG_HDRLEN) {
		size_t adv;

		if (m->nlmsg_len < NLMSG_HDRLEN) {
			h->st.recv_errors++;
			return;
		}
		if (m->nlmsg_len > rem) {
			if (!cut) {
				h->st.recv_errors++;
				return;
			}
			m->nlmsg_len = (uint32_t)rem; /* parse what arrived; flagged below */
		}
		if (*n == maxpkts) {
			if (pend_append(h, m, rem) < 0)
				h->st.recv_errors++;
			return;
		}
		*n += (unsigned)nfq_parse(h, m, buf, &pkts[*n], cut && m->nlmsg_len == rem);
		adv = NLMSG_ALIGN(m->nlmsg_len);
		if (adv >= rem)
			return;
		rem -= adv;
		m = (struct nlmsghdr *)((uint8_t *)m + adv);
	}
}

/* recv()/recvmmsg() error: 1 to try again, 0 to end the batch, -errno to fail it. */
static int recv_error(struct nfq_handle *h, int err, unsigned n)
{
	if (err == EINTR)
		return 1;
	if (err == EAGAIN || err == EWOULDBLOCK)
		return 0;
	if (err == ENOBUFS) {
		h->st.enobufs++;
		return 1;
	}
	h->st.recv_errors++;
	return n > 0 ? 0 : -err;
}

int nfq_read_batch(struct nfq_handle *h, uint8_t *buf, size_t buflen,
		   struct nfq_pkt *pkts, unsigned maxpkts)
{
	size_t pos = 0;
	unsigned n = 0;

	if (maxpkts == 0)
		return -EINVAL;
	if (buflen > UINT32_MAX)
		buflen = UINT32_MAX; /* offsets are u32 */
	if (buflen < h->max_msg)
		return -ENOSPC;

	/* 1. Messages kept from an earlier call. Each is <= buflen, so the
	 * first always fits and every call makes progress. */
	while (h->pend_off < h->pend_len && n < maxpkts) {
		const struct nlmsghdr *m = (const struct nlmsghdr *)(h->pend + h->pend_off);
		size_t left = h->pend_len - h->pend_off;
		size_t adv;

		if (left < NLMSG_HDRLEN || m->nlmsg_len < NLMSG_HDRLEN || m->nlmsg_len > left ||
		    m->nlmsg_len > buflen) {
			h->st.recv_errors++; /* cannot be parsed or never fits: discard the rest */
			h->pend_off = h->pend_len;
			break;
		}
		if (m->nlmsg_len > buflen - pos)
			break;
		memcpy(buf + pos, m, m->nlmsg_len);
		n += (unsigned)nfq_parse(h, (const struct nlmsghdr *)(buf + pos), buf, &pkts[n], 0);
		adv = NLMSG_ALIGN(m->nlmsg_len);
		pos = adv < buflen - pos ? pos + adv : buflen;
		h->pend_off += adv;
	}
	if (h->pend_off >= h->pend_len)
		h->pend_off = h->pend_len = 0;

	/* 2. The socket, straight into buf, while a whole datagram still fits:
	 * recvmmsg into max_msg slots (one syscall for many packets), or one
	 * recv when only one slot is left. */
	while (n < maxpkts && h->pend_len == 0 && buflen - pos >= h->max_msg) {
		size_t space = buflen - pos;
		size_t k = space / h->max_msg;
		int r;

		if (k > maxpkts - n)
			k = maxpkts - n;
		if (k > NFQ_RECV_VLEN)
			k = NFQ_RECV_VLEN;
		if (k <= 1) {
			ssize_t len = recv(h->fd, buf + pos, space, MSG_DONTWAIT | MSG_TRUNC);

			if (len < 0) {
				r = recv_error(h, errno, n);
				if (r < 0)
					return r;
				if (r == 0)
					break;
				continue;
			}
			take_datagram(h, buf, buf + pos, (size_t)len > space ? space : (size_t)len,
				      (size_t)len > space, pkts, &n, maxpkts);
			pos += NLMSG_ALIGN((size_t)len > space ? space : (size_t)len);
		} else {
			struct mmsghdr mm[NFQ_RECV_VLEN];
			struct iovec iov[NFQ_RECV_VLEN];
			size_t j, len = 0;

			memset(mm, 0, sizeof(mm[0]) * k);
			for (j = 0; j < k; j++) {
				iov[j].iov_base = buf + pos + j * h->max_msg;
				iov[j].iov_len = h->max_msg;
				mm[j].msg_hdr.msg_iov = &iov[j];
				mm[j].msg_hdr.msg_iovlen = 1;
			}
			r = recvmmsg(h->fd, mm, (unsigned)k, MSG_DONTWAIT | MSG_TRUNC, NULL);
			if (r < 0) {
				r = recv_error(h, errno, n);
				if (r < 0)
					return r;
				if (r == 0)
					break;
				continue;
			}
			for (j = 0; j < (size_t)r; j++) {
				len = mm[j].msg_len;
				take_datagram(h, buf, iov[j].iov_base, len > h->max_msg ? h->max_msg : len,
					      len > h->max_msg, pkts, &n, maxpkts);
			}
			/* The last slot only uses what it got; the next read starts there. */
			if (r > 0)
				pos += (size_t)(r - 1) * h->max_msg +
				       NLMSG_ALIGN(len > h->max_msg ? h->max_msg : len);
			if ((size_t)r < k)
				break; /* the socket is empty */
		}
		if (pos > buflen)
			pos = buflen;
	}

	if (n > 0) {
		h->st.packets += n;
		h->st.batches++;
	}
	return (int)n;
}

static int verdict_ok(uint32_t v)
{
	/* NF_STOLEN would leak the packet in the kernel, NF_STOP is deprecated;
	 * NF_QUEUE carries a queue number and flags in the upper bits. */
	switch (v & NF_VERDICT_MASK) {
	case NF_DROP:
	case NF_ACCEPT:
	case NF_QUEUE:
	case NF_REPEAT:
		return 1;
	default:
		return 0;
	}
}

static int nfq_flush_verdicts(struct nfq_handle *h, size_t len, unsigned count)
{
	for (;;) {
		ssize_t r = mnl_socket_sendto(h->nl, mnl_nlmsg_batch_head(h->vb), len);

		if (r >= 0) {
			h->st.verdicts += count;
			return 0;
		}
		if (errno != EINTR) {
			h->st.send_errors++;
			return -errno;
		}
	}
}

int nfq_send_verdicts(struct nfq_handle *h, unsigned n, const uint32_t *ids,
		      const uint32_t *verdicts, const uint32_t *marks)
{
	unsigned i, in_batch = 0, covered;
	int err;

	/* Check everything first so a bad entry sends nothing. */
	for (i = 0; i < n; i++)
		if (!verdict_ok(verdicts[i]))
			return -EINVAL;

	mnl_nlmsg_batch_reset(h->vb);
	for (i = 0; i < n; i++) {
		/*
		 * With verdict_batch, a run of packets with the same verdict and
		 * mark, ids ascending, is one NFQNL_MSG_VERDICT_BATCH for the run's
		 * last id: the kernel applies it to every packet of the queue with
		 * an id up to that one. The consumer holds none back, so those are
		 * exactly this run and packets answered by the messages before it
		 * (the kernel takes the messages of a sendmsg in order).
		 */
		unsigned last = i;
		uint8_t type = NFQNL_MSG_VERDICT;
		struct nlmsghdr *nlh;
		struct nfqnl_msg_verdict_hdr vh;

		if (h->verdict_batch) {
			while (last + 1 < n && verdicts[last + 1] == verdicts[i] &&
			       marks[last + 1] == marks[i] && ids[last + 1] > ids[last])
				last++;
			if (last > i)
				type = NFQNL_MSG_VERDICT_BATCH;
		}
		nlh = put_queue_hdr(mnl_nlmsg_batch_current(h->vb), type, 0, 0, h->queue);
		vh.verdict = htonl(verdicts[i]);
		vh.id = htonl(ids[last]);
		mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof(vh), &vh);
		if (marks[i] != NFQ_MARK_KEEP)
			mnl_attr_put_u32(nlh, NFQA_MARK, htonl(marks[i]));
		covered = last - i + 1;
		i = last;
		if (mnl_nlmsg_batch_next(h->vb)) {
			in_batch += covered;
			continue;
		}
		/* Full: send what came before this message; reset() moves it to the front. */
		err = nfq_flush_verdicts(h, mnl_nlmsg_batch_size(h->vb), in_batch);
		mnl_nlmsg_batch_reset(h->vb);
		in_batch = covered;
		if (err < 0)
			return err;
	}
	if (!mnl_nlmsg_batch_is_empty(h->vb)) {
		err = nfq_flush_verdicts(h, mnl_nlmsg_batch_size(h->vb), in_batch);
		mnl_nlmsg_batch_reset(h->vb);
		if (err < 0)
			return err;
	}
	return 0;
}
