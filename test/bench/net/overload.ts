/**
 * The overload workload of `npm run bench:net` (issue 11, class 5): can one
 * client's flood get a blocked name through, or starve another client?
 *
 * Gateway: `aigate firewall up` + `aigate run` with their shipped defaults
 * (variants.ts DEFAULTS_VARIANT: per-source budget 2000 pkt/s, burst 4000;
 * a full queue drops). One client address (OVERLOAD.flooder) floods, at
 * increasing rates up to the sender's maximum (netbench overflood):
 *   quic  random-DCID 1250-byte QUIC v1 Initials to UDP 443, a new source port each
 *   dns   DNS queries for random names (<10 chars>.com) to UDP 53, a new source port each
 *   tcp   a SYN then a ClientHello (curl, www.example.com) on a new 5-tuple to TCP 443
 * while a second address (OVERLOAD.prober, netbench probe) makes, every
 * 100 ms, one TLS attempt for an allowed name (www.example.com) and one for
 * each blocked name (claude.ai, api.anthropic.com: anthropic is blocked by
 * rules/policy.example.yaml), each a new connection that sends a captured
 * ClientHello and waits up to 1 s for the server's answer. Before any flood,
 * one step with no flood measures the probe alone.
 *
 * Per step: blocked attempts answered (target 0) and blocked payload that
 * reached the server at all (server raw counter), the allowed success rate
 * (target >= 95% at 20k pkt/s), the daemon's SIGUSR1 counters (packets,
 * overloadDropped = the kernel's queue_dropped, userDropped) and the
 * firewall's queuedPackets/overBudgetPackets, as deltas over the step.
 */
import { status } from '../../../src/fw/index.js'
import { BenchNet, OVERLOAD, hostCpu, kv } from './env.js'
import { DEFAULTS_VARIANT, aigateStats, startVariant, stopVariant, type Consumer, type Overrides, type Paths } from './variants.js'

export type FloodKind = 'none' | 'quic' | 'dns' | 'tcp'
export const FLOOD_KINDS: FloodKind[] = ['quic', 'dns', 'tcp']

export interface OverloadConfig {
  /** Flood rates in packets/s; 0 = as fast as the sender goes. */
  rates: number[]
  kinds: FloodKind[]
  /** How long the probe starts attempts, per step. */
  probeS: number
  /** Flood alone before the probe starts (the queue and the budget reach their steady state). */
  leadS: number
  intervalMs: number
  timeoutMs: number
  /** Diagnosis only, not the shipped defaults: the firewall's source budget (0: none), and `aigate run --fail-open`. */
  sourceBudget?: number
  failOpen?: boolean
}

export const OVERLOAD_DEFAULTS: OverloadConfig = { rates: [5000, 20000, 60000, 0], kinds: FLOOD_KINDS, probeS: 3, leadS: 0.5, intervalMs: 100, timeoutMs: 1000 }
export const OVERLOAD_QUICK: OverloadConfig = { ...OVERLOAD_DEFAULTS, rates: [20000, 0], probeS: 1.5 }

/** The rate at which the allowed success target applies. */
export const TARGET_RATE = 20000
export const TARGET_ALLOWED_PCT = 95

export interface OverloadRow {
  kind: FloodKind
  /** Asked packets/s; 0: the sender's maximum. */
  rate: number
  seconds: number
  sent: number
  sentPps: number
  /** Flood packets that reached the server (counted and dropped there). */
  delivered: number
  allowedTried: number
  allowedOk: number
  allowedPct: number
  allowedP50Ms: number
  allowedP99Ms: number
  blockedTried: number
  /** Blocked attempts the server answered: the blocked name was reached. */
  blockedOk: number
  /** TCP segments with payload that reached the blocked target (a hello got through, answered or not). */
  blockedDataAtServer: number
  /** Firewall rule counters (status()), deltas. */
  queued: number
  overBudget: number
  /** Daemon counters (SIGUSR1, summed over queues), deltas. */
  daemonPackets: number
  overloadDropped: number
  userDropped: number
  decided: number
  daemonAlive: boolean
  hostCpuPct: number
}

export interface OverloadResult {
  config: OverloadConfig
  gateway: string
  flooder: string
  prober: string
  rows: OverloadRow[]
  /** Blocked attempts answered, over every step; and blocked payload at the server. */
  blockedOkTotal: number
  blockedDataTotal: number
  /** Allowed success at TARGET_RATE, per flood kind (null: no such step). */
  allowedAtTarget: Record<string, number | null>
  blockedMet: boolean
  allowedMet: boolean | null
  daemonStderrTail: string
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface Snap { stats: Record<string, number>, queued: number, overBudget: number, server: { floodDelivered: number, blockedData: number }, host: { busy: number, total: number } }

function sum (per: Array<Record<string, number>>): Record<string, number> {
  const s: Record<string, number> = {}
  for (const q of per) for (const [k, v] of Object.entries(q)) if (typeof v === 'number') s[k] = (s[k] ?? 0) + v
  return s
}

async function snap (net: BenchNet, c: Consumer): Promise<Snap> {
  const st = status({ netns: net.gw })
  return { stats: sum(await aigateStats(c)), queued: st.queuedPackets, overBudget: st.overBudgetPackets, server: net.overloadCounters(), host: hostCpu() }
}

export async function runOverload (net: BenchNet, cfg: OverloadConfig, paths: Paths, netbench: string, hellos: { allowed: string, blocked: string[], flood: string }, progress: (s: string) => void): Promise<OverloadResult> {
  const over: Overrides = { ...(cfg.sourceBudget === undefined ? {} : { sourceBudget: cfg.sourceBudget }), ...(cfg.failOpen === true ? { runArgs: ['--fail-open'] } : {}) }
  const defaults = Object.keys(over).length === 0
  const c = await startVariant(DEFAULTS_VARIANT, net, paths, over) as Consumer
  const rows: OverloadRow[] = []
  try {
    const steps: Array<{ kind: FloodKind, rate: number }> = [{ kind: 'none', rate: 0 }]
    for (const kind of cfg.kinds) for (const rate of cfg.rates) steps.push({ kind, rate })
    for (const step of steps) {
      net.flushConntrack()
      await sleep(150)
      const b = await snap(net, c)
      const floodS = cfg.leadS + cfg.probeS + cfg.timeoutMs / 1000
      const t0 = Date.now()
      const flood = step.kind === 'none'
        ? Promise.resolve('')
        : net.run(net.client, netbench, ['overflood', step.kind, OVERLOAD.floodDst, String(floodS), String(step.rate), OVERLOAD.flooder,
          ...(step.kind === 'tcp' ? [hellos.flood] : [])])
      await sleep(cfg.leadS * 1000)
      const probe = net.run(net.client, netbench, ['probe', OVERLOAD.allowedDst, OVERLOAD.blockedDst, '443', String(cfg.probeS), String(cfg.intervalMs),
        String(cfg.timeoutMs), OVERLOAD.prober, hellos.allowed, ...hellos.blocked])
      const [fl, pr] = await Promise.all([flood, probe])
      const seconds = (Date.now() - t0) / 1000
      await sleep(250) // what waits in the queue is answered, counters settle
      const e = await snap(net, c)
      const f = kv(fl); const p = kv(pr)
      const d = (k: string): number => (e.stats[k] ?? 0) - (b.stats[k] ?? 0)
      const row: OverloadRow = {
        kind: step.kind,
        rate: step.rate,
        seconds: f.seconds ?? seconds,
        sent: f.sent ?? 0,
        sentPps: f.pps ?? 0,
        delivered: e.server.floodDelivered - b.server.floodDelivered,
        allowedTried: p.allowed_tried ?? 0,
        allowedOk: p.allowed_ok ?? 0,
        allowedPct: (p.allowed_tried ?? 0) > 0 ? 100 * (p.allowed_ok ?? 0) / (p.allowed_tried as number) : 0,
        allowedP50Ms: p.allowed_p50_ms ?? 0,
        allowedP99Ms: p.allowed_p99_ms ?? 0,
        blockedTried: p.blocked_tried ?? 0,
        blockedOk: p.blocked_ok ?? 0,
        blockedDataAtServer: e.server.blockedData - b.server.blockedData,
        queued: e.queued - b.queued,
        overBudget: e.overBudget - b.overBudget,
        daemonPackets: d('packets'),
        overloadDropped: d('overloadDropped'),
        userDropped: d('userDropped'),
        decided: d('decided'),
        daemonAlive: c.child.exitCode === null && c.child.signalCode === null,
        hostCpuPct: e.host.total > b.host.total ? 100 * (e.host.busy - b.host.busy) / (e.host.total - b.host.total) : 0,
      }
      rows.push(row)
      progress(`overload ${step.kind.padEnd(4)} ${rateText(step.rate).padStart(6)}: sent ${Math.round(row.sentPps)}/s, blocked ok ${row.blockedOk}/${row.blockedTried} ` +
        `(at server ${row.blockedDataAtServer}), allowed ${row.allowedOk}/${row.allowedTried}, queued ${row.queued}, over budget ${row.overBudget}, ` +
        `daemon packets ${row.daemonPackets}, overloadDropped ${row.overloadDropped}`)
      if (!row.daemonAlive) { progress('overload: the daemon exited'); break }
    }
  } finally {
    await stopVariant(DEFAULTS_VARIANT, net, c)
  }
  const atTarget: Record<string, number | null> = {}
  for (const k of cfg.kinds) {
    const r = rows.find((x) => x.kind === k && x.rate === TARGET_RATE)
    atTarget[k] = r === undefined ? null : r.allowedPct
  }
  const present = Object.values(atTarget).filter((x): x is number => x !== null)
  const blockedOkTotal = rows.reduce((n, r) => n + r.blockedOk, 0)
  const blockedDataTotal = rows.reduce((n, r) => n + r.blockedDataAtServer, 0)
  return {
    config: cfg,
    gateway: defaults
      ? `${DEFAULTS_VARIANT.label}: firewall up({ queues: [0] }) defaults, aigate run --log ${paths.log}`
      : `NOT THE DEFAULTS (diagnosis): firewall up({ queues: [0]${over.sourceBudget === undefined ? '' : `, sourceBudget: ${over.sourceBudget}`} }), aigate run --log ${paths.log} ${(over.runArgs ?? []).join(' ')}`,
    flooder: OVERLOAD.flooder,
    prober: OVERLOAD.prober,
    rows,
    blockedOkTotal,
    blockedDataTotal,
    allowedAtTarget: atTarget,
    blockedMet: blockedOkTotal === 0 && blockedDataTotal === 0,
    allowedMet: present.length === 0 ? null : present.every((x) => x >= TARGET_ALLOWED_PCT),
    daemonStderrTail: c.stderr.trim().split('\n').filter((l) => !l.includes('stats queue')).slice(-5).join('\n'),
  }
}

function rateText (r: number): string { return r === 0 ? 'max' : r >= 1000 ? `${r / 1000}k` : String(r) }

export function printOverload (r: OverloadResult, out: (s: string) => void): void {
  const c = r.config
  out('')
  out(`(f) overload: one client (${r.flooder}) floods at increasing rates (pkt/s asked; max = as fast as the raw sender goes), ` +
    `quic = random-DCID 1250-byte QUIC v1 Initials to UDP 443, dns = queries for random names to UDP 53, tcp = SYN + ClientHello on a new 5-tuple to TCP 443 ` +
    `(a new source port per datagram or connection); a second client (${r.prober}) every ${c.intervalMs} ms tries www.example.com (allowed) and claude.ai + ` +
    `api.anthropic.com (blocked) over TCP 443 (ClientHello, wait ${c.timeoutMs} ms for the answer), ${c.probeS} s per step after ${c.leadS} s of flood alone; ` +
    `gateway: ${r.gateway}; counters are deltas over the step: queued and over budget from the firewall's rules (status()), daemon pkts, overloadDrop ` +
    `(the kernel's queue_dropped) and userDrop from SIGUSR1; unread = queued - daemon pkts, packets the queue rules sent that the daemon never read ` +
    `(dropped when the queue was full; with --fail-open accepted unread, and then not in overloadDrop)`)
  const head = ['flood', 'asked/s', 'sent/s', 'at server/s', 'blocked ok', 'blk data@srv', 'allowed ok', 'p50/p99 ms', 'queued', 'over budget', 'daemon pkts', 'unread', 'overloadDrop', 'userDrop', 'host CPU']
  const rows = r.rows.map((x) => [
    x.kind,
    x.kind === 'none' ? '-' : rateText(x.rate),
    x.kind === 'none' ? '-' : k(x.sentPps),
    x.kind === 'none' ? '-' : k(x.delivered / x.seconds),
    `${x.blockedOk}/${x.blockedTried}`,
    String(x.blockedDataAtServer),
    `${x.allowedOk}/${x.allowedTried} ${x.allowedPct.toFixed(0)}%`,
    `${x.allowedP50Ms.toFixed(1)}/${x.allowedP99Ms.toFixed(0)}`,
    String(x.queued),
    String(x.overBudget),
    String(x.daemonPackets),
    String(x.queued - x.daemonPackets),
    String(x.overloadDropped),
    String(x.userDropped),
    `${x.hostCpuPct.toFixed(0)}%${x.daemonAlive ? '' : ' DAEMON GONE'}`,
  ])
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)))
  out('  ' + head.map((h, i) => i === 0 ? h.padEnd(w[i] as number) : h.padStart(w[i] as number)).join('  '))
  for (const row of rows) out('  ' + row.map((x, i) => i === 0 ? x.padEnd(w[i] as number) : x.padStart(w[i] as number)).join('  '))
  out(`  target: 0 blocked attempts succeed at any rate: ${r.blockedOkTotal} answered, ${r.blockedDataTotal} blocked payload segments at the server: ${r.blockedMet ? 'MET' : 'NOT MET'}`)
  const at = Object.entries(r.allowedAtTarget).map(([kind, v]) => `${kind} ${v === null ? 'n/a' : `${v.toFixed(0)}%`}`).join(', ')
  out(`  target: >= ${TARGET_ALLOWED_PCT}% of the second client's allowed attempts succeed at ${TARGET_RATE / 1000}k pkt/s: ${at}: ${r.allowedMet === null ? 'n/a' : r.allowedMet ? 'MET' : 'NOT MET'}`)
}

function k (x: number): string { return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0) }

