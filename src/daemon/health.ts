import { createHash } from 'node:crypto'
import type { RuleTexts } from '../config/index.js'
import type { WorkerReport, WorkerCounters } from './report.js'

/**
 * The main thread's picture of the daemon, from the workers' reports: what
 * `aigate status` answers and `/metrics` serves. Healthy, or degraded with
 * the reasons: a queue not bound (or its worker silent), packets dropped for
 * overload or sent past the daemon in the last minute.
 */

/** A worker that has not reported for this long is not serving its queue. */
export const SILENT_MS = 5000
/** How far back "recently" looks for overload and bypass. */
export const RECENT_MS = 60_000

/** What was loaded: a hash of the rule texts (the rules' version), when, how many entries. */
export interface RulesInfo { version: string, loadedAt: number, lists: number, entries: number, policy: string }

/** The firewall's counters, when they can be read: packets its queue rules sent, and those the per-source budget dropped. */
export interface FirewallTotals { queuedPackets: number, overBudgetPackets: number }

/** The version of a set of rule texts: what was checked is what runs, so this names what runs. */
export function rulesVersion (texts: RuleTexts): string {
  const h = createHash('sha256')
  for (const f of [...texts.lists].sort((a, b) => a.file < b.file ? -1 : 1)) h.update(f.file).update('\0').update(f.text).update('\0')
  h.update(texts.policy.file).update('\0').update(texts.policy.text)
  return h.digest('hex').slice(0, 16)
}

interface Sample { at: number, overload: number, bypass: number }

export interface StatusReport {
  state: 'healthy' | 'degraded'
  reasons: string[]
  pid: number
  version: string
  startedAt: string
  uptimeSeconds: number
  rules: { version: string, loadedAt: string, lists: number, entries: number, policy: string, reloadFailures: number }
  queues: Array<{ queue: number, bound: boolean, portId: number, reportAgeMs: number, lastVerdict: string | null, counters: WorkerCounters | null }>
  totals: { packets: number, decided: number, verdictErrors: number, overloadDropped: number, overBudgetPackets: number | null, bypassedPackets: number | null, logLost: number }
  recent: { overloadDropped: number, bypassedPackets: number | null, seconds: number }
}

export class Health {
  readonly startedAt = Date.now()
  readonly reports = new Map<number, WorkerReport>()
  reloadFailures = 0
  #firewall: FirewallTotals | null = null
  #firewallAt0: FirewallTotals | null = null
  /** Packets read and queue-full drops (the reports' sums) when the baseline was read. */
  #readAt0 = 0
  /** The latest firewall reading, until every worker has reported since (see #settle). */
  #pending: { t: FirewallTotals, at: number } | null = null
  #bypass = 0
  #samples: Sample[] = []

  constructor (readonly queues: readonly number[], public rules: RulesInfo, readonly version: string) {}

  report (r: WorkerReport): void {
    this.reports.set(r.queue, r)
    this.#settle(r.at)
    this.#sample(r.at)
  }

  /** The firewall's counters just read at `at` (null: not readable); the first reading is the baseline. */
  firewall (t: FirewallTotals | null, at = Date.now()): void {
    if (t !== null && this.#firewallAt0 === null) {
      this.#firewallAt0 = { ...t }
      this.#readAt0 = this.#read()
    }
    this.#firewall = t
    if (t !== null) {
      this.#pending = { t: { ...t }, at }
      this.#settle(at)
    }
  }

  #read (): number {
    return this.#sum('packets') + this.#sum('overloadDropped')
  }

  /**
   * Bypass from a firewall reading against reports made after it: the
   * reports are up to a second old, and a reading newer than them would
   * count every packet sent since (read a moment later) as never read, so a
   * steady load would flap to "bypass". A worker silent for SILENT_MS is not
   * waited for (it reads nothing: what it misses is bypass). Kept as a
   * running maximum: a counter never goes down.
   */
  #settle (now: number): void {
    const p = this.#pending
    if (p === null || this.#firewallAt0 === null) return
    const caughtUp = this.queues.every((q) => { const r = this.reports.get(q); return r !== undefined && r.at >= p.at })
    if (!caughtUp && now - p.at < SILENT_MS) return
    this.#pending = null
    const sent = p.t.queuedPackets - this.#firewallAt0.queuedPackets
    this.#bypass = Math.max(this.#bypass, sent - (this.#read() - this.#readAt0))
  }

  #sum (key: keyof WorkerCounters): number {
    let n = 0
    for (const r of this.reports.values()) n += Math.max(0, r.counters[key])
    return n
  }

  /** Packets the queue rules sent since we started that no worker read, nor the kernel dropped for a full queue; null without firewall counters. */
  bypassed (): number | null {
    return this.#firewall === null || this.#firewallAt0 === null ? null : this.#bypass
  }

  /** Packets the firewall's per-source budget dropped since we started; null when its counters cannot be read. */
  overBudget (): number | null {
    return this.#firewall === null || this.#firewallAt0 === null ? null : Math.max(0, this.#firewall.overBudgetPackets - this.#firewallAt0.overBudgetPackets)
  }

  /** Overload: full-queue drops, and packets the per-source budget dropped (when the firewall is readable). */
  overload (): number {
    return this.#sum('overloadDropped') + (this.overBudget() ?? 0)
  }

  #sample (at: number): void {
    const last = this.#samples[this.#samples.length - 1]
    if (last !== undefined && at - last.at < 1000) return
    this.#samples.push({ at, overload: this.overload(), bypass: this.bypassed() ?? 0 })
    while (this.#samples.length > 0 && at - (this.#samples[0] as Sample).at > RECENT_MS + 5000) this.#samples.shift()
  }

  /** Has every queue's worker reported within the last `ms`? (What feeds the systemd watchdog.) */
  allReporting (now: number, ms: number): boolean {
    return this.queues.every((q) => { const r = this.reports.get(q); return r !== undefined && now - r.at < ms })
  }

  status (now = Date.now()): StatusReport {
    this.#settle(now)
    const reasons: string[] = []
    const queues = this.queues.map((q) => {
      const r = this.reports.get(q)
      const age = r === undefined ? now - this.startedAt : now - r.at
      const bound = r !== undefined && r.counters.bound === 1 && age < SILENT_MS
      if (r === undefined || age >= SILENT_MS) reasons.push(`queue ${q}: no report from its worker for ${Math.round(age / 1000)} s`)
      else if (r.counters.bound !== 1) reasons.push(`queue ${q}: not bound in the kernel`)
      return { queue: q, bound, portId: r?.counters.portId ?? 0, reportAgeMs: age, lastVerdict: r !== undefined && r.lastVerdict > 0 ? new Date(r.lastVerdict).toISOString() : null, counters: r?.counters ?? null }
    })
    this.#sample(now)
    const old = this.#samples.find((s) => now - s.at <= RECENT_MS) ?? this.#samples[0]
    const overload = this.overload()
    const bypass = this.bypassed()
    const recentOverload = old === undefined ? 0 : overload - old.overload
    const recentBypass = bypass === null ? null : old === undefined ? 0 : bypass - old.bypass
    if (recentOverload > 0) reasons.push(`overload: ${recentOverload} packets dropped in the last minute`)
    if (recentBypass !== null && recentBypass > 0) reasons.push(`bypass: ${recentBypass} queued packets never read in the last minute`)
    return {
      state: reasons.length === 0 ? 'healthy' : 'degraded',
      reasons,
      pid: process.pid,
      version: this.version,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      rules: { ...this.rules, loadedAt: new Date(this.rules.loadedAt).toISOString(), reloadFailures: this.reloadFailures },
      queues,
      totals: {
        packets: this.#sum('packets'),
        decided: this.#sum('decided'),
        verdictErrors: this.#sum('verdictErrors'),
        overloadDropped: this.#sum('overloadDropped'),
        overBudgetPackets: this.overBudget(),
        bypassedPackets: bypass,
        logLost: this.#sum('logLost'),
      },
      recent: { overloadDropped: recentOverload, bypassedPackets: recentBypass, seconds: Math.round(RECENT_MS / 1000) },
    }
  }
}
