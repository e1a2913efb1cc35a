/**
 * What the addon hands over and takes back, one batch at a time: the packet
 * records (`META_*` words, `PKT_*` flags) and the verdict arrays, laid out as
 * `struct nfq_pkt` in native/src/nfq.h, and the counters.
 */

/** Words per packet record in {@link Batch.meta}. */
export const META_STRIDE = 8
/** Packet id; {@link Batch.ids} already holds a copy. */
export const META_ID = 0
/** Packet mark (skb->mark) when queued; 0 if none. */
export const META_MARK = 1
/** Offset in {@link Batch.buf} of the packet, starting at its IP header. */
export const META_OFFSET = 2
/** Bytes of the packet present in {@link Batch.buf} (at most `copyRange`). */
export const META_LEN = 3
/** Length of the whole packet; larger than META_LEN when truncated (copy range, GSO). */
export const META_ORIG_LEN = 4
/** Input interface index, 0 if none (e.g. OUTPUT hook). */
export const META_INDEV = 5
/** Output interface index, 0 if none (e.g. PREROUTING hook). */
export const META_OUTDEV = 6
/**
 * Packed word: `hwProtocol` (ethertype, bits 0-15: 0x0800 IPv4, 0x86dd IPv6),
 * netfilter `hook` (bits 16-23: NF_INET_PRE_ROUTING 0 ... POST_ROUTING 4),
 * `flags` (bits 24-31, the `PKT_*` bits).
 */
export const META_INFO = 7

/** META_INFO flag: META_LEN < META_ORIG_LEN. */
export const PKT_TRUNCATED = 1 << 24
/** META_INFO flag: a GSO packet larger than the MTU (kernel flag NFQA_SKB_GSO). */
export const PKT_GSO = 1 << 25
/** META_INFO flag: checksum not computed yet (NFQA_SKB_CSUMNOTREADY): do not validate it. */
export const PKT_CSUM_NOTREADY = 1 << 26
/** META_INFO flag: checksum not verified by the device (NFQA_SKB_CSUM_NOTVERIFIED). */
export const PKT_CSUM_NOTVERIFIED = 1 << 27
/** META_INFO flag: the netlink message was cut short; no payload (should never happen). */
export const PKT_MSG_TRUNCATED = 1 << 28

/** `marks[i]` value that leaves the packet mark unchanged. */
export const MARK_KEEP = 0xffffffff
/** What `verdicts[i]` holds before the handler writes it; sending it throws a RangeError. */
export const VERDICT_UNSET = 0xffffffff

/** Counters since open; all grow monotonically. */
export type QueueStats = {
  /** Packet records handed to the handler. */
  packets: number
  /** Reads that returned at least one packet. */
  batches: number
  /** recv() ENOBUFS (normally 0: NETLINK_NO_ENOBUFS is set and the kernel drops silently). */
  enobufs: number
  /** Failed recv() calls and malformed messages. */
  recvErrors: number
  /** Failed verdict sendmsg() calls. */
  sendErrors: number
  /** Verdicts handed to the kernel. */
  verdicts: number
  /** Verdicts the kernel refused (error replies, e.g. ENOENT for an unknown id). */
  verdictErrors: number
}

/**
 * One batch. The same object, and the same arrays, are passed to every
 * handler call: copy what must outlive the call.
 */
export interface Batch {
  /** Packets in this batch: records `0 .. count-1` of {@link meta}. */
  count: number
  /** Packet bytes; find packet i with META_OFFSET / META_LEN of its record. */
  readonly buf: Uint8Array
  /** `count` records of {@link META_STRIDE} words: see the `META_*` constants. */
  readonly meta: Uint32Array
  /** Packet ids of the verdicts to send; prefilled: `ids[i]` is packet i's id. */
  readonly ids: Uint32Array
  /** Verdict for `ids[i]` (NF_ACCEPT, NF_DROP, NF_REPEAT); prefilled with VERDICT_UNSET. */
  readonly verdicts: Uint32Array
  /** Mark to set with `verdicts[i]`; prefilled with MARK_KEEP. */
  readonly marks: Uint32Array
}

/**
 * Called once per batch. Write `verdicts[i]` (and `marks[i]` if the mark
 * must change) for `i < count` and return how many entries of `ids`,
 * `verdicts` and `marks` to send, normally `count`. A packet left without a
 * verdict stays in the kernel queue; on close the kernel drops it.
 *
 * If the handler throws, nothing is sent for this batch and the exception
 * propagates out of {@link Queue.drain}.
 */
export type BatchHandler = (batch: Batch) => number
