import type { Action } from '../policy/index.js'
import { AIGATE_MARK_MASK, MARK_ACCEPT, MARK_DROP, MARK_REJECT, NF_ACCEPT, NF_REPEAT } from './marks.js'

/**
 * Turn a decision into the kernel verdict and packet mark. A decided packet
 * goes back with NF_REPEAT and our mark: it walks the firewall chain again,
 * which saves the mark into the connection (CONNMARK) and drops, rejects or
 * lets it pass, so later packets of the flow never reach userspace.
 * Bits of the mark outside AIGATE_MARK_MASK are kept.
 */
const MARK_OF: Record<Action, number> = {
  allow: MARK_ACCEPT,
  monitor: MARK_ACCEPT,
  block: MARK_DROP,
  reject: MARK_REJECT,
}

export function markFor (action: Action, current: number): number {
  return ((current & ~AIGATE_MARK_MASK) | MARK_OF[action]) >>> 0
}

/** What of a classified packet's outcome its verdict follows (classify's Outcome). */
export interface Classified {
  /** The strictest decision of the packet, or null. */
  readonly verdict: { readonly action: Action } | null
  /** The decision is not the flow's yet (see Outcome.hold): the next packet is queued again. */
  readonly hold: boolean
}

/**
 * The hold rule, decided here only: a packet with a verdict it does not hold
 * goes back NF_REPEAT with our mark (see markFor), and the firewall ends its
 * flow's trip through userspace; any other (no verdict yet, or one held: an
 * allowed flow under watch, an allowed DNS query) goes back with a plain NF_ACCEPT and its mark as
 * it was, so the flow's next packet is queued again. Writes `verdicts[i]`,
 * and `marks[i]` only when decided (else it keeps what the caller put there,
 * the queue's MARK_KEEP). `current`: the packet's mark when queued. True when
 * decided.
 */
export function answer (out: Classified, current: number, verdicts: Uint32Array, marks: Uint32Array, i: number): boolean {
  const v = out.verdict
  if (v === null || out.hold) {
    verdicts[i] = NF_ACCEPT
    return false
  }
  verdicts[i] = NF_REPEAT
  marks[i] = markFor(v.action, current)
  return true
}
