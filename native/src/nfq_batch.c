/*
 * nfq: the batch paths, one call per batch each way. nfq_read_batch()
 * receives packet messages straight into the caller's buffer (the buffer
 * rule is in nfq.h) and writes one record per packet; nfq_send_verdicts()
 * sends a batch of verdicts in one sendmsg. Messages are parsed and built in
 * nfq_msg.c.
 */
#define _GNU_SOURCE
#include "nfq_internal.h"

#include <errno.h>
#include <linux/netlink.h>
#include <string.h>

/* Datagrams per recvmmsg() call (1: one recv() per datagram; for A/B benchmarks). */
#ifndef NFQ_RECV_VLEN
#define NFQ_RECV_VLEN 64u
#endif

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
			if (nfq_pend_append(h, m, rem) < 0)
				h->st.recv_errors++;
			return;
		}
		*n += (unsigned)nfq_parse_msg(h, m, buf, &pkts[*n], cut && m->nlmsg_len == rem);
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
		n += (unsigned)nfq_parse_msg(h, (const struct nlmsghdr *)(buf + pos), buf, &pkts[n], 0);
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

		if (h->verdict_batch) {
			while (last + 1 < n && verdicts[last + 1] == verdicts[i] &&
			       marks[last + 1] == marks[i] && ids[last + 1] > ids[last])
				last++;
			if (last > i)
				type = NFQNL_MSG_VERDICT_BATCH;
		}
		nfq_put_verdict(mnl_nlmsg_batch_current(h->vb), h->queue, type, verdicts[i], ids[last],
				marks[i]);
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
