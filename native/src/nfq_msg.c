/*
 * nfq: the netlink messages of NFQUEUE (kernel side:
 * net/netfilter/nfnetlink_queue.c): the queue header every request and
 * verdict starts with, a packet message parsed into a struct nfq_pkt, and a
 * verdict message built. No I/O here.
 */
#include "nfq_internal.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>

/* See nfq_internal.h. */
struct nlmsghdr *nfq_put_queue_hdr(void *buf, uint8_t type, uint16_t flags,
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

/* See nfq_internal.h. */
int nfq_parse_msg(struct nfq_handle *h, const struct nlmsghdr *nlh, const uint8_t *buf,
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
	if (!nfq_is_packet_msg(nlh))
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

/* See nfq_internal.h. */
void nfq_put_verdict(void *buf, uint16_t queue, uint8_t type, uint32_t verdict, uint32_t id,
		     uint32_t mark)
{
	struct nlmsghdr *nlh = nfq_put_queue_hdr(buf, type, 0, 0, queue);
	struct nfqnl_msg_verdict_hdr vh;

	vh.verdict = htonl(verdict);
	vh.id = htonl(id);
	mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof(vh), &vh);
	if (mark != NFQ_MARK_KEEP)
		mnl_attr_put_u32(nlh, NFQA_MARK, htonl(mark));
}
