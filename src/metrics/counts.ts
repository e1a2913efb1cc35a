import type { Decision } from '../policy/index.js'
import type { Outcome, Seen } from '../classify/index.js'

/**
 * Decisions counted in a worker, for the metrics the main thread serves.
 * Keyed by the Decision object itself (the policy hands out one per rule and
 * network, so there are as many as rules in use, never one per name): the
 * hot path does a Map lookup and an increment, and allocates nothing once a
 * decision has been seen. Labels (action, vendor, how seen) are made only
 * when the main thread asks for a snapshot.
 */

const SEEN: readonly Seen[] = ['sni', 'quic', 'dns', 'http', 'ech']
const SEEN_INDEX: Record<Seen, number> = { sni: 0, quic: 1, dns: 2, http: 3, ech: 4 }

/** One row of a snapshot: a label set and its count so far. */
export interface DecisionRow { action: string, vendor: string, seen: string, n: number }

export class DecisionCounts {
  readonly #by = new Map<Decision, Float64Array>()

  /** Count every decision the packet's outcome made. */
  add (out: Outcome): void {
    const k = SEEN_INDEX[out.seen ?? 'sni']
    for (let i = 0; i < out.count; i++) {
      const d = out.decisions[i]
      if (d === null || d === undefined) continue
      let row = this.#by.get(d)
      if (row === undefined) { row = new Float64Array(SEEN.length); this.#by.set(d, row) }
      row[k] = (row[k] as number) + 1
    }
  }

  /** Rows of decisions of rules no longer loaded (see fold). */
  readonly #folded = new Map<string, DecisionRow>()

  /** Totals by (action, vendor, seen); vendor `none` for names no list holds. */
  snapshot (): DecisionRow[] {
    const sums = new Map<string, DecisionRow>()
    for (const [key, r] of this.#folded) sums.set(key, { ...r })
    this.#sum(sums)
    return [...sums.values()]
  }

  /**
   * A reload made new Decision objects: the counts of the old ones are kept
   * by label and the objects let go, so the map stays as big as the rules in
   * use however often rules are reloaded.
   */
  fold (): void {
    this.#sum(this.#folded)
    this.#by.clear()
  }

  #sum (sums: Map<string, DecisionRow>): void {
    for (const [d, row] of this.#by) {
      for (let k = 0; k < SEEN.length; k++) {
        const n = row[k] as number
        if (n === 0) continue
        const vendor = d.vendor ?? 'none'
        const seen = SEEN[k] as string
        const key = `${d.action}\u0000${vendor}\u0000${seen}`
        const r = sums.get(key)
        if (r === undefined) sums.set(key, { action: d.action, vendor, seen, n })
        else r.n += n
      }
    }
  }
}
