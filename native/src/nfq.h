/*
 * nfq: one NFQUEUE netlink socket, in plain C on libmnl and the kernel UAPI.
 *
 * Mechanism only: bind and configure a queue, read a batch of packet messages
 * into caller memory as fixed records, send a batch of verdicts in one
 * sendmsg. No globals, no names, no policy. Every function that can fail
 * returns a negative errno.
 *
 * Buffer rule (why no message is ever truncated or lost): nfq_read_batch()
 * receives netlink datagrams straight into the caller's buffer, with
 * recvmmsg() into slots of nfq_max_msg() bytes (recv() when one slot is
 * left), and only while at least one slot is free. nfq_max_msg() is the copy
 * range plus NFQ_MSG_OVERHEAD, an upper bound on what the kernel puts around
 * the payload, so a datagram always fits its slot. One read therefore returns
 * at most buflen / nfq_max_msg() packets. The payload is not copied: a record
 * gives its offset inside the caller's buffer. Messages that cannot be
 * reported in this call (record array full, or packets the kernel queued
 * before the ack of open()'s BIND, which happens under load) are kept inside
 * the handle and returned first by the next call; nfq_pending() says when
 * that is the case.
 */
#ifndef AIGATE_NFQ_H
#define AIGATE_NFQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Upper bound on the bytes the kernel adds around NFQA_PAYLOAD in one
 * NFQNL_MSG_PACKET: nlmsghdr 16 + nfgenmsg 4 + PACKET_HDR 12 + 4 ifindex 32 +
 * MARK 8 + PRIORITY 8 + HWADDR 16 + HWHEADER/L2HDR (device hard header, < 256)
 * + TIMESTAMP 20 + UID/GID 16 + SKB_INFO 8 + VLAN 20 + CAP_LEN 8 + payload
 * header 4 (see nfqnl_build_packet_message() in net/netfilter/
 * nfnetlink_queue.c). We never ask for CT, EXP or SECCTX. 1024 leaves > 2x
 * margin.
 */
#define NFQ_MSG_OVERHEAD 1024u

/* The kernel clamps the copy range to 0xffff - NLA_HDRLEN (NFQNL_MAX_COPY_RANGE). */
#define NFQ_MAX_COPY_RANGE 65531u

/* nfq_pkt.flags */
#define NFQ_PKT_F_TRUNCATED      (1u << 0) /* len < orig_len (copy range, GSO) */
#define NFQ_PKT_F_GSO            (1u << 1) /* NFQA_SKB_GSO: larger than the MTU */
#define NFQ_PKT_F_CSUM_NOTREADY  (1u << 2) /* NFQA_SKB_CSUMNOTREADY: csum filled later */
#define NFQ_PKT_F_CSUM_NOTVERIFIED (1u << 3) /* NFQA_SKB_CSUM_NOTVERIFIED */
#define NFQ_PKT_F_MSG_TRUNCATED  (1u << 4) /* netlink message cut short: no payload */

/* One packet; offsets are into the buffer given to nfq_read_batch(). The
 * addon hands this array to JS as-is: 8 u32 words, and on little-endian
 * hosts word 7 reads as hw_protocol | hook << 16 | flags << 24. */
struct nfq_pkt {
	uint32_t id;       /* packet id, echoed in the verdict */
	uint32_t mark;     /* skb mark (0 when the kernel sent none) */
	uint32_t offset;   /* payload (starts at the network header) offset in buf */
	uint32_t len;      /* payload bytes present in buf */
	uint32_t orig_len; /* packet length (NFQA_CAP_LEN), len if absent */
	uint32_t indev;    /* input ifindex, 0 if none */
	uint32_t outdev;   /* output ifindex, 0 if none */
	uint16_t hw_protocol; /* ethertype, host order (0x0800 IPv4, 0x86dd IPv6) */
	uint8_t hook;      /* NF_INET_* hook */
	uint8_t flags;     /* NFQ_PKT_F_* */
};

struct nfq_config {
	uint16_t queue_num;
	uint32_t copy_range;  /* bytes of each packet copied to userspace; 0 = max */
	uint32_t max_len;     /* queue length in packets (NFQA_CFG_QUEUE_MAXLEN) */
	int rcvbuf;           /* socket receive buffer in bytes */
	int fail_open;        /* accept instead of drop when the queue is full */
	int gso;              /* pass GSO packets unsegmented */
	int verdict_batch;    /* the consumer never holds a packet back: nfq_send_verdicts may answer
	                         a run of equal verdicts with one NFQNL_MSG_VERDICT_BATCH */
};

struct nfq_stats {
	uint64_t packets;      /* packet records returned */
	uint64_t batches;      /* nfq_read_batch calls that returned >= 1 packet */
	uint64_t enobufs;      /* recv() ENOBUFS: the kernel dropped messages */
	uint64_t recv_errors;  /* other recv() failures and malformed messages */
	uint64_t send_errors;  /* failed verdict sendmsg calls */
	uint64_t verdicts;     /* verdict messages handed to the kernel */
	uint64_t verdict_errors; /* NLMSG_ERROR replies (e.g. ENOENT: unknown id) */
};

struct nfq_handle;

/*
 * Open a NETLINK_NETFILTER socket (nonblocking, close-on-exec), bind queue
 * cfg->queue_num and configure it. On failure returns -errno and sets *step to
 * a static string naming the failed operation ("socket", "setsockopt",
 * "bind", "NFQNL_CFG_CMD_BIND", "recv", ...). A queue already bound by
 * another socket gives -EBUSY (the kernel answers EPERM; a capability probe
 * tells the two apart). Without CAP_NET_ADMIN: -EPERM.
 */
int nfq_open(struct nfq_handle **out, const struct nfq_config *cfg, const char **step);

/* Close the socket (the kernel unbinds the queue and drops unanswered packets) and free. */
void nfq_close(struct nfq_handle *h);

int nfq_fd(const struct nfq_handle *h);

/* Bytes that must be free in the caller's buffer for one more message. */
size_t nfq_max_msg(const struct nfq_handle *h);

/* Nonzero when kept messages wait for the next nfq_read_batch() (no fd event will announce them). */
int nfq_pending(const struct nfq_handle *h);

/*
 * Read up to maxpkts packets without blocking (recvmmsg, NFQ_RECV_VLEN
 * datagrams per call, until the socket is empty). Returns the number of records
 * written to pkts (0 when nothing is waiting), or -errno: -ENOSPC if buflen <
 * nfq_max_msg(h), -EINVAL if maxpkts is 0, or a recv() error when no packet
 * was read yet (after one packet, errors end the batch and are counted).
 */
int nfq_read_batch(struct nfq_handle *h, uint8_t *buf, size_t buflen,
		   struct nfq_pkt *pkts, unsigned maxpkts);

/*
 * Send n verdicts: ids[i] gets verdicts[i], and marks[i] unless it is
 * NFQ_MARK_KEEP. Messages are built with mnl_nlmsg_batch into one buffer and
 * sent in one sendmsg per NFQ_VERDICT_BATCH_BYTES (1638 messages); with
 * cfg.verdict_batch a run of equal verdicts is one message. Returns 0 or -errno.
 *
 * Every verdicts[i] must be NF_DROP, NF_ACCEPT, NF_QUEUE (with its queue
 * number and flags in the upper bits) or NF_REPEAT: NF_STOLEN would leak the
 * packet in the kernel, NF_STOP is deprecated. Mechanism, not policy: this
 * is not checked here but once, where the values enter native code (the
 * addon's verdict(), native/src/queue.cc, which refuses the whole batch).
 */
#define NFQ_MARK_KEEP 0xffffffffu
#define NFQ_VERDICT_BATCH_BYTES 65536u
int nfq_send_verdicts(struct nfq_handle *h, unsigned n, const uint32_t *ids,
		      const uint32_t *verdicts, const uint32_t *marks);

void nfq_get_stats(const struct nfq_handle *h, struct nfq_stats *out);

#ifdef __cplusplus
}
#endif

#endif
