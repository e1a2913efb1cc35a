/**
 * Packet/connection mark layout shared by the daemon (verdicts) and the
 * firewall rules (src/fw). The daemon sets one of these values inside
 * AIGATE_MARK_MASK on the packet; the firewall chain saves it into the
 * connection (CONNMARK) so later packets of a decided flow are handled by the
 * kernel and never reach userspace. Bits outside the mask are left alone so
 * other tools' marks survive.
 */
export const AIGATE_MARK_MASK = 0x0f000000

/** Flow decided, let it through; later packets skip the queue. */
export const MARK_ACCEPT = 0x01000000
/** Flow decided, drop silently (client sees a timeout). */
export const MARK_DROP = 0x02000000
/** Flow decided, refuse: TCP reset for TCP, ICMP port unreachable for UDP. */
export const MARK_REJECT = 0x03000000

/** Kernel verdict codes (linux/netfilter.h), defined here only (src/queue re-exports them). */
export const NF_DROP = 0
export const NF_ACCEPT = 1
export const NF_REPEAT = 4
