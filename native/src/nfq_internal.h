/*
 * What the files of nfq share and nothing else sees: the handle, and the
 * message helpers (nfq_msg.c) and kept-message store (nfq.c) that more than
 * one file calls. The public contract is nfq.h.
 *
 *   nfq.c        the handle's life: open, bind and configure (request/ack), close
 *   nfq_msg.c    netlink messages: the queue header, a packet message parsed
 *                into a record, a verdict message built
 *   nfq_batch.c  the batch paths: read packets into records, send verdicts
 */
#ifndef AIGATE_NFQ_INTERNAL_H
#define AIGATE_NFQ_INTERNAL_H

#include "nfq.h"

/* glibc's socket headers before the kernel's (linux/libc-compat.h then
 * leaves struct in_addr and friends to glibc). */
#include <arpa/inet.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>

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

/* nfq.c: make room for need more bytes in pend (grows; a rare path); -ENOMEM. */
int nfq_pend_reserve(struct nfq_handle *h, size_t need);
/* nfq.c: keep bytes for the next nfq_read_batch(); -ENOMEM. */
int nfq_pend_append(struct nfq_handle *h, const void *data, size_t len);

static inline int nfq_is_packet_msg(const struct nlmsghdr *nlh)
{
	return nlh->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET);
}

/* nfq_msg.c: a request or verdict header for queue, with its nfgenmsg, at buf. */
struct nlmsghdr *nfq_put_queue_hdr(void *buf, uint8_t type, uint16_t flags,
				   uint32_t seq, uint16_t queue);

/*
 * nfq_msg.c: parse one message that lies in buf; fill *p for a packet and
 * return 1, else 0 (an error reply or malformed message is counted in h->st).
 * cut: the message is what arrived of a longer one.
 */
int nfq_parse_msg(struct nfq_handle *h, const struct nlmsghdr *nlh, const uint8_t *buf,
		  struct nfq_pkt *p, int cut);

/*
 * nfq_msg.c: one verdict message at buf: NFQNL_MSG_VERDICT (or _BATCH, which
 * the kernel applies to every queued packet up to id) with the mark unless it
 * is NFQ_MARK_KEEP. The verdict is not checked (nfq.h, nfq_send_verdicts).
 */
void nfq_put_verdict(void *buf, uint16_t queue, uint8_t type, uint32_t verdict, uint32_t id,
		     uint32_t mark);

#endif
