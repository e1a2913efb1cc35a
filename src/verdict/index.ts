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

export const VERDICT_DECIDED = NF_REPEAT
export const VERDICT_UNDECIDED = NF_ACCEPT
