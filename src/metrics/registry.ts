import { createServer, type Server } from 'node:http'
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client'
import type { DecisionRow } from './counts.js'

/**
 * The Prometheus registry the daemon's main thread serves at /metrics. Every
 * value is read, at scrape time, from the workers' latest reports (they come
 * once a second, see daemon/report.ts): a scrape never asks a worker and
 * never waits on one, so it cannot hold a verdict back. Label sets are
 * bounded: action, vendor (a list's name, `none`), how the name was seen,
 * the queue; never a name from the wire.
 */

/** What the registry reads (daemon/health.ts gives it). */
export interface MetricsSource {
  readonly version: string
  readonly reports: ReadonlyMap<number, { readonly lastVerdict: number, readonly counters: Readonly<Record<string, number>>, readonly decisions: readonly DecisionRow[] }>
  readonly rules: { readonly loadedAt: number, readonly entries: number }
  readonly reloadFailures: number
  /** Packets the queue rules sent that the daemon never read; null when the firewall's counters cannot be read. */
  bypassed (): number | null
  /** Packets the firewall's per-source budget dropped since start; null when not readable. */
  overBudget (): number | null
}

/** Per-queue counters from the worker reports: metric name, help, counter key. */
const QUEUE_COUNTERS: ReadonlyArray<readonly [string, string, string]> = [
  ['aigate_queue_packets_total', 'Packets read from the queue.', 'packets'],
  ['aigate_queue_batches_total', 'Reads of the queue that returned packets.', 'batches'],
  ['aigate_queue_enobufs_total', 'Queue reads that failed with ENOBUFS (the socket buffer overflowed).', 'enobufs'],
  ['aigate_verdict_errors_total', 'Verdicts the kernel refused, and verdict sends that failed.', 'verdictErrors'],
  ['aigate_undecodable_packets_total', 'Queued packets whose headers could not be read (dropped).', 'undecodable'],
  ['aigate_cache_hits_total', 'Decision cache hits.', 'cacheHits'],
  ['aigate_cache_misses_total', 'Decision cache misses.', 'cacheMisses'],
  ['aigate_log_lines_total', 'Decision log lines written.', 'logLines'],
  ['aigate_log_lines_lost_total', 'Decision log lines lost (the log could not be written).', 'logLost'],
  ['aigate_implausible_packets_total', 'Packets ignored as unable to reach the server (low TTL, fake data).', 'implausible'],
]

export function metricsRegistry (src: MetricsSource): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const each = (fn: (q: string, r: { lastVerdict: number, counters: Readonly<Record<string, number>>, decisions: readonly DecisionRow[] }) => void): void => {
    for (const [q, r] of src.reports) fn(String(q), r)
  }

  new Counter({
    name: 'aigate_decisions_total',
    help: 'Names decided, by action, vendor list (none: no list holds the name), how the name was seen, and queue.',
    labelNames: ['action', 'vendor', 'seen', 'queue'],
    registers,
    collect () {
      this.reset()
      each((queue, r) => { for (const d of r.decisions) this.inc({ action: d.action, vendor: d.vendor, seen: d.seen, queue }, d.n) })
    },
  })
  for (const [name, help, key] of QUEUE_COUNTERS) {
    new Counter({
      name, help, labelNames: ['queue'], registers,
      collect () {
        this.reset()
        each((queue, r) => { this.inc({ queue }, Math.max(0, r.counters[key] ?? 0)) })
      },
    })
  }
  new Counter({
    name: 'aigate_overload_total',
    help: 'Packets dropped for overload: the queue was full (kind="queue-full", the kernel\'s count) or a source went over its budget (kind="source-budget", the firewall\'s count).',
    labelNames: ['kind'],
    registers,
    collect () {
      this.reset()
      let full = 0
      each((_q, r) => { full += Math.max(0, r.counters.overloadDropped ?? 0) })
      this.inc({ kind: 'queue-full' }, full)
      const budget = src.overBudget()
      if (budget !== null) this.inc({ kind: 'source-budget' }, budget)
    },
  })
  new Counter({
    name: 'aigate_queue_bypassed_packets_total',
    help: 'Packets the firewall\'s queue rules sent since the daemon started that it never read (absent when the firewall\'s counters cannot be read).',
    registers,
    collect () {
      this.reset()
      const b = src.bypassed()
      // reset() leaves a label-less counter at 0: unknown must be absent, not a healthy zero.
      if (b === null) this.remove()
      else this.inc(b)
    },
  })
  new Gauge({
    name: 'aigate_queue_bound',
    help: '1 when the kernel lists the queue as bound (and its worker reports), else 0.',
    labelNames: ['queue'],
    registers,
    collect () { each((queue, r) => { this.set({ queue }, r.counters.bound === 1 ? 1 : 0) }) },
  })
  new Gauge({
    name: 'aigate_last_verdict_timestamp_seconds',
    help: 'When the queue\'s worker last answered a packet.',
    labelNames: ['queue'],
    registers,
    collect () { each((queue, r) => { if (r.lastVerdict > 0) this.set({ queue }, r.lastVerdict / 1000) }) },
  })
  new Gauge({
    name: 'aigate_flow_entries',
    help: 'Flows held (TCP openings being read or watched, QUIC flows).',
    labelNames: ['queue', 'table'],
    registers,
    collect () {
      each((queue, r) => {
        this.set({ queue, table: 'tcp' }, r.counters.tcpFlows ?? 0)
        this.set({ queue, table: 'quic' }, r.counters.quicFlows ?? 0)
      })
    },
  })
  new Counter({
    name: 'aigate_flow_evictions_total',
    help: 'TCP flows that left the table other than by being decided: pushed out (evicted), idle (expired), bytes taken back (shed), forgotten mid-opening (lost).',
    labelNames: ['queue', 'reason'],
    registers,
    collect () {
      this.reset()
      each((queue, r) => {
        this.inc({ queue, reason: 'evicted' }, r.counters.flowsEvicted ?? 0)
        this.inc({ queue, reason: 'expired' }, r.counters.flowsExpired ?? 0)
        this.inc({ queue, reason: 'shed' }, r.counters.flowsShed ?? 0)
        this.inc({ queue, reason: 'lost' }, r.counters.flowsLost ?? 0)
      })
    },
  })
  new Gauge({
    name: 'aigate_rules_loaded_timestamp_seconds',
    help: 'When the rules in use were loaded.',
    registers,
    collect () { this.set(src.rules.loadedAt / 1000) },
  })
  new Gauge({
    name: 'aigate_rules_entries',
    help: 'Entries in the vendor lists in use.',
    registers,
    collect () { this.set(src.rules.entries) },
  })
  new Counter({
    name: 'aigate_reload_failures_total',
    help: 'Reloads refused (the old rules stayed).',
    registers,
    collect () { this.reset(); this.inc(src.reloadFailures) },
  })
  new Gauge({
    name: 'aigate_build_info',
    help: 'The running version, as a label; always 1.',
    labelNames: ['version'],
    registers,
    collect () { this.set({ version: src.version }, 1) },
  })
  return registry
}

/** Where `--metrics PORT` listens: loopback only, unless an address is given. */
export const DEFAULT_METRICS_HOST = '127.0.0.1'

/** `--metrics [ADDR:]PORT`: host and port; an IPv6 address in brackets; a bare port is on loopback. Null when it does not parse. */
export function parseListen (text: string): { host: string, port: number } | null {
  if (/^\d{1,5}$/.test(text)) return parseListen(`${DEFAULT_METRICS_HOST}:${text}`)
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text)
  if (m === null) return null
  const port = Number(m[3])
  if (port < 1 || port > 65535) return null
  return { host: (m[1] ?? m[2]) as string, port }
}

/** Serve the registry at /metrics (GET only); everything else is 404. Resolves once listening. */
export function serveMetrics (registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('aigate: only GET /metrics here\n')
      return
    }
    registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(text)
    }, (err: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`aigate: ${err.message}\n`)
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve(server) })
  })
}
