import type { Action, LogLine } from '../log/read.js'

/**
 * What a report counts, from decision lines one at a time: per AI vendor
 * (decisions, passed, blocked, distinct sources, top sources and names),
 * blocks, evasions, reasons and activity per hour. Every count is weighted
 * by the line's count (aggregated lines stand for many decisions).
 *
 * Memory is bounded by KEY_BUDGET distinct keys over every tally (sources,
 * names, vendors, hours). Names are kept only for AI vendors, blocks and
 * evasions: a day of DNS holds millions of ordinary names and the report
 * asks nothing about them. Past the budget, a new key's count goes to the
 * tally's `other` and the report says it is approximate (distinct counts
 * become "at least").
 */

/** Distinct keys kept over all tallies: ~100 bytes each, so ~100 MB at most. */
export const KEY_BUDGET = 1_000_000

export interface Budget { left: number }

/** Counts per key, drawing new keys from a shared budget. */
export class Tally {
  readonly counts = new Map<string, number>()
  /** Count of keys that found the budget spent. */
  other = 0
  readonly #budget: Budget

  constructor (budget: Budget) {
    this.#budget = budget
  }

  add (key: string, n: number): void {
    const c = this.counts.get(key)
    if (c !== undefined) {
      this.counts.set(key, c + n)
    } else if (this.#budget.left > 0) {
      this.#budget.left--
      this.counts.set(key, n)
    } else {
      this.other += n
    }
  }

  /** The `n` largest, ties by key, so a report is the same on every run. */
  top (n: number): Top[] {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, n).map(([key, count]) => ({ key, n: count }))
  }
}

export interface Top { key: string, n: number }

export type ActionCounts = Record<Action, number>

const noActions = (): ActionCounts => ({ allow: 0, monitor: 0, block: 0, reject: 0 })

/** block and reject stop the connection; allow and monitor let it pass. */
export const isBlocked = (a: Action): boolean => a === 'block' || a === 'reject'

class VendorTally {
  decisions = 0
  readonly actions = noActions()
  readonly sources: Tally
  readonly names: Tally
  constructor (budget: Budget) {
    this.sources = new Tally(budget)
    this.names = new Tally(budget)
  }
}

interface HourTally { decisions: number, ai: number, aiBlocked: number, blocked: number }

export interface VendorReport {
  vendor: string
  decisions: number
  /** allow + monitor */
  passed: number
  /** block + reject */
  blocked: number
  actions: ActionCounts
  /** Distinct source.ip values (at least, when approximate). */
  sources: number
  topSources: Top[]
  topNames: Top[]
}

export interface HourReport {
  /** Start of the hour, ISO 8601 UTC. */
  hour: string
  decisions: number
  /** Decisions naming an AI vendor. */
  ai: number
  /** Of those, blocked or rejected. */
  aiBlocked: number
  /** All blocked or rejected decisions. */
  blocked: number
}

export interface FileReport {
  path: string
  bytes: number
  lines: number
  gzip: boolean
  error?: string
}

export interface BadExample { file: string, line: number, reason: string }

export interface Report {
  generated: string
  files: FileReport[]
  range: {
    since: string | null
    until: string | null
    /** First and last decision counted. */
    first: string | null
    last: string | null
  }
  lines: {
    read: number
    /** Decision lines counted (each may stand for several decisions). */
    decisions: number
    /** event.dataset aigate.daemon: the daemon's own events, not counted. */
    daemon: number
    /** Lines of other datasets, by dataset: not counted. */
    other: Record<string, number>
    /** Decision lines outside --since/--until. */
    outside: number
    /** Lines that could not be read, by reason. */
    bad: Record<string, number>
    badTotal: number
    /** The first few bad lines, where they are. */
    badExamples: BadExample[]
  }
  /** A tally ran out of KEY_BUDGET: distinct counts are lower bounds, tops may miss keys. */
  approximate: boolean
  /** Decisions (lines weighted by their count). */
  decisions: number
  actions: ActionCounts
  /** Distinct source.ip values over all decisions. */
  sources: number
  ai: { decisions: number, passed: number, blocked: number, sources: number, vendors: number }
  vendors: VendorReport[]
  blocks: { decisions: number, topNames: Top[], topSources: Top[] }
  evasions: { decisions: number, details: Top[], topNames: Top[], topSources: Top[] }
  reasons: Top[]
  seen: Top[]
  hours: HourReport[]
}

const HOUR_MS = 3_600_000
/** Bad lines quoted with file and line number. */
export const BAD_EXAMPLES = 5

export interface Window { since: number | null, until: number | null }

export class Aggregator {
  readonly budget: Budget = { left: KEY_BUDGET }
  readonly #window: Window
  decisions = 0
  readonly actions = noActions()
  readonly sources = new Tally(this.budget)
  readonly aiSources = new Tally(this.budget)
  readonly vendors = new Map<string, VendorTally>()
  blocked = 0
  readonly blockedNames = new Tally(this.budget)
  readonly blockedSources = new Tally(this.budget)
  evasions = 0
  readonly evasionDetails = new Tally(this.budget)
  readonly evasionNames = new Tally(this.budget)
  readonly evasionSources = new Tally(this.budget)
  readonly reasons = new Tally(this.budget)
  readonly seen = new Tally(this.budget)
  readonly hours = new Map<number, HourTally>()
  /** Hours that found the budget spent (not charted). */
  hoursLost = 0
  first = Infinity
  last = -Infinity
  // Lines
  read = 0
  decisionLines = 0
  daemon = 0
  outside = 0
  readonly other = new Map<string, number>()
  readonly bad = new Map<string, number>()
  badTotal = 0
  readonly badExamples: BadExample[] = []
  readonly files: FileReport[] = []

  constructor (window: Window = { since: null, until: null }) {
    this.#window = window
  }

  /** A line that is not a decision: counted by kind, bad ones quoted (the first few). */
  skip (kind: 'daemon' | 'other' | 'bad', note: string, file: string, line: number): void {
    this.read++
    if (kind === 'daemon') { this.daemon++; return }
    const m = kind === 'other' ? this.other : this.bad
    // Reasons and datasets: keys from the log, so bounded like the rest.
    const key = m.has(note) || m.size < 100 ? note : '(more)'
    m.set(key, (m.get(key) ?? 0) + 1)
    if (kind === 'bad') {
      this.badTotal++
      if (this.badExamples.length < BAD_EXAMPLES) this.badExamples.push({ file, line, reason: note })
    }
  }

  /** A `decision` line (readLine checked that its action is one of ACTIONS). */
  add (d: LogLine): void {
    this.read++
    const w = this.#window
    if ((w.since !== null && d.ms < w.since) || (w.until !== null && d.ms >= w.until)) { this.outside++; return }
    this.decisionLines++
    const n = d.count
    const action = d.action as Action
    const source = d.sourceIp
    const blocked = isBlocked(action)
    this.decisions += n
    this.actions[action] += n
    if (d.ms < this.first) this.first = d.ms
    if (d.ms > this.last) this.last = d.ms
    if (source !== null) this.sources.add(source, n)
    this.reasons.add(d.reason ?? '(none)', n)
    this.seen.add(d.seen ?? '(none)', n)
    const name = d.name === null || d.name === '' ? '(no name)' : d.name
    if (d.vendor !== null) {
      let v = this.vendors.get(d.vendor)
      if (v === undefined) {
        v = new VendorTally(this.budget)
        this.vendors.set(d.vendor, v)
      }
      v.decisions += n
      v.actions[action] += n
      if (source !== null) { v.sources.add(source, n); this.aiSources.add(source, n) }
      v.names.add(name, n)
    }
    if (blocked) {
      this.blocked += n
      this.blockedNames.add(name, n)
      if (source !== null) this.blockedSources.add(source, n)
    }
    if (d.reason === 'evasion') {
      this.evasions += n
      this.evasionDetails.add(d.detail ?? '(none)', n)
      this.evasionNames.add(name, n)
      if (source !== null) this.evasionSources.add(source, n)
    }
    const hour = Math.floor(d.ms / HOUR_MS)
    let h = this.hours.get(hour)
    if (h === undefined) {
      if (this.budget.left === 0) { this.hoursLost += n; return }
      this.budget.left--
      h = { decisions: 0, ai: 0, aiBlocked: 0, blocked: 0 }
      this.hours.set(hour, h)
    }
    h.decisions += n
    if (blocked) h.blocked += n
    if (d.vendor !== null) {
      h.ai += n
      if (blocked) h.aiBlocked += n
    }
  }

  report (top: number, now: number = Date.now()): Report {
    const iso = (ms: number): string | null => Number.isFinite(ms) ? new Date(ms).toISOString() : null
    const vendors: VendorReport[] = [...this.vendors].map(([vendor, v]) => ({
      vendor,
      decisions: v.decisions,
      passed: v.actions.allow + v.actions.monitor,
      blocked: v.actions.block + v.actions.reject,
      actions: { ...v.actions },
      sources: v.sources.counts.size,
      topSources: v.sources.top(top),
      topNames: v.names.top(top),
    })).sort((a, b) => b.decisions - a.decisions || (a.vendor < b.vendor ? -1 : 1))
    const ai = vendors.reduce((s, v) => { s.decisions += v.decisions; s.passed += v.passed; s.blocked += v.blocked; return s },
      { decisions: 0, passed: 0, blocked: 0, sources: this.aiSources.counts.size, vendors: vendors.length })
    return {
      generated: new Date(now).toISOString(),
      files: this.files,
      range: { since: iso(this.#window.since ?? NaN), until: iso(this.#window.until ?? NaN), first: iso(this.first), last: iso(this.last) },
      lines: {
        read: this.read,
        decisions: this.decisionLines,
        daemon: this.daemon,
        other: Object.fromEntries(this.other),
        outside: this.outside,
        bad: Object.fromEntries(this.bad),
        badTotal: this.badTotal,
        badExamples: this.badExamples,
      },
      approximate: this.budget.left === 0,
      decisions: this.decisions,
      actions: { ...this.actions },
      sources: this.sources.counts.size,
      ai,
      vendors,
      blocks: { decisions: this.blocked, topNames: this.blockedNames.top(top), topSources: this.blockedSources.top(top) },
      evasions: { decisions: this.evasions, details: this.evasionDetails.top(100), topNames: this.evasionNames.top(top), topSources: this.evasionSources.top(top) },
      reasons: this.reasons.top(100),
      seen: this.seen.top(100),
      hours: [...this.hours].sort((a, b) => a[0] - b[0]).map(([hour, h]) => ({ hour: new Date(hour * HOUR_MS).toISOString(), ...h })),
    }
  }
}

/** One bar of an activity chart: `size` hours from `start`. */
export interface Bucket { start: number, hours: number, decisions: number, ai: number, aiBlocked: number, blocked: number }

/** Bucket sizes in hours, smallest first. */
const BUCKET_HOURS = [1, 2, 3, 6, 12, 24, 24 * 7, 24 * 30]

/**
 * The hours of a report as at most `max` consecutive buckets, gaps as zeros:
 * hourly when the span allows, else 2, 3, 6, 12 hours, days, weeks, months.
 */
export function series (hours: readonly HourReport[], max: number): Bucket[] {
  if (hours.length === 0) return []
  const idx = hours.map((h) => Date.parse(h.hour) / HOUR_MS)
  const first = idx[0] as number
  const span = (idx[idx.length - 1] as number) - first + 1
  const size = BUCKET_HOURS.find((b) => Math.ceil(span / b) <= max) ?? Math.ceil(span / max)
  // Buckets of a day or more start at a UTC midnight; shorter ones on a multiple of their size.
  const start = Math.floor(first / Math.min(size, 24)) * Math.min(size, 24)
  const n = Math.ceil(((idx[idx.length - 1] as number) - start + 1) / size)
  const out: Bucket[] = Array.from({ length: n }, (_, i) => ({ start: (start + i * size) * HOUR_MS, hours: size, decisions: 0, ai: 0, aiBlocked: 0, blocked: 0 }))
  hours.forEach((h, i) => {
    const b = out[Math.floor(((idx[i] as number) - start) / size)] as Bucket
    b.decisions += h.decisions
    b.ai += h.ai
    b.aiBlocked += h.aiBlocked
    b.blocked += h.blocked
  })
  return out
}
