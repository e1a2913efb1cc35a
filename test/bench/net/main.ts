/**
 * `npm run bench:net` (root): packets through a real gateway namespace,
 * aigate against baselines, in one run. Builds its namespaces (client ->
 * gateway -> server, src/demo/sandbox.ts) and removes them at the end, on
 * error and on Ctrl-C.
 *
 * Workloads (the C tools are in netbench.c):
 *   dns      UDP DNS query flood (real dig query bytes), every datagram a new
 *            5-tuple, so every one is queued and classified; packets/s that
 *            reach the server, queue drops
 *   conn     new TLS connections/s: connect, send a captured ClientHello, the
 *            server reads it and closes
 *   bulk     Mbit/s over one TCP flow to port 443 after a ClientHello
 *   latency  UDP DNS round trip p50/p99 at a fixed rate, a new flow per query
 *   overload (overload.ts) one client floods (random-DCID QUIC Initials,
 *            random DNS names, TCP hellos on new 5-tuples) at rising rates up
 *            to the sender's maximum while a second client tries a blocked
 *            and an allowed name; aigate only, shipped defaults; run once,
 *            after the repetitions. --overload runs only this one (with
 *            --workloads too: those and this); --overload-rates N,N (0 =
 *            the sender's maximum), --overload-kinds quic,dns,tcp; for
 *            diagnosis only (the table then says NOT THE DEFAULTS):
 *            --overload-source-budget N (0: none), --overload-fail-open
 * Variants (variants.ts): forwarding with no queue, the kernel string match,
 * the bare C accept loop per packet and batched, the nfqueue npm binding
 * with aigate's classifier, aigate with 1 and 2 queues.
 *
 * Every repetition runs every variant in the same order (A B C ... A B C),
 * each variant all workloads. Printed: medians [min-max] over repetitions,
 * ratios, and with --json the whole result as one JSON object on the last
 * line. --quick: one short repetition. Other options: --reps N,
 * --variants id,id  --workloads id,id  --dns-names N (distinct query names
 * in the flood; default 1, the fixture's name), --log FILE (decision log of
 * aigate and the npm baseline; default /dev/null), --cpu-prof DIR (node's
 * CPU profiles of aigate's threads and the npm baseline, for
 * test/bench/net/top-frames.mjs), --pin-consumer CPU (every consumer on one
 * CPU, taskset), --dns-rate N (the flood's packets/s; default as fast as
 * the sender goes).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { status } from '../../../src/fw/index.js'
import { summarize, type Sample } from '../stats.js'
import { BenchNet, FLOOD_SRC, PING_SRC, CONN_SRC, SERVER2, cpuSeconds, peakRss, hostCpu, hostSpeedMs, softnetDrops, kv, type QueueCounters } from './env.js'
import { costBreakdown } from './breakdown.js'
import { runOverload, printOverload, OVERLOAD_DEFAULTS, OVERLOAD_QUICK, FLOOD_KINDS, type FloodKind, type OverloadResult } from './overload.js'
import { VARIANTS, firewallBackend, prepareNfqueue, startVariant, stopVariant, aigateStats, STRING_NAMES, type Variant, type VariantId, type Consumer } from './variants.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const HERE_SRC = join(ROOT, 'test', 'bench', 'net')
const NETBENCH = join(HERE_SRC, 'netbench')
const ACCEPT_LOOP = join(ROOT, 'native', 'bench', 'accept_loop')
const DNS_FIXTURE = join(ROOT, 'test', 'fixtures', 'dns', 'dig-9.18-udp-a.bin')
const HELLO_FIXTURE = join(ROOT, 'test', 'fixtures', 'tls', 'curl-7.88-www.example.com.bin')
const BLOCKED_HELLOS = ['curl-7.88-claude.ai.bin', 'curl-7.88-api.anthropic.com.bin'].map((f) => join(ROOT, 'test', 'fixtures', 'tls', f))

const argv = process.argv.slice(2)
const flag = (f: string): boolean => argv.includes(f)
const opt = (f: string): string | undefined => { const i = argv.indexOf(f); return i >= 0 ? argv[i + 1] : undefined }
const JSON_OUT = flag('--json')
const QUICK = flag('--quick')
const LOG = opt('--log') ?? '/dev/null'
const PIN = opt('--pin-consumer') === undefined ? undefined : Number(opt('--pin-consumer'))

interface Config { reps: number, warmS: number, dnsS: number, connS: number, bulkS: number, latencyS: number, latencyRate: number, connConcurrency: number, dnsNames: number, dnsRate: number }
const CFG: Config = QUICK
  ? { reps: 1, warmS: 0.3, dnsS: 0.8, connS: 0.8, bulkS: 0.5, latencyS: 0.7, latencyRate: 1000, connConcurrency: 32, dnsNames: 1, dnsRate: 0 }
  : { reps: 3, warmS: 1, dnsS: 3, connS: 3, bulkS: 2, latencyS: 5, latencyRate: 1000, connConcurrency: 32, dnsNames: 1, dnsRate: 0 }
if (opt('--reps') !== undefined) CFG.reps = Math.max(1, Number(opt('--reps')))
if (opt('--dns-rate') !== undefined) CFG.dnsRate = Math.max(0, Number(opt('--dns-rate')))
if (opt('--dns-names') !== undefined) CFG.dnsNames = Math.max(1, Number(opt('--dns-names')))

type WorkloadId = 'dns' | 'conn' | 'bulk' | 'latency'
const WORKLOADS: WorkloadId[] = ['dns', 'conn', 'bulk', 'latency']
const wlFilter = opt('--workloads')?.split(',')
const vFilter = opt('--variants')?.split(',')
const OVERLOAD_FLAG = flag('--overload')
// --overload alone: only the overload workload; a full run (no --workloads) has it last.
const workloads = WORKLOADS.filter((w) => wlFilter === undefined ? !OVERLOAD_FLAG : wlFilter.includes(w))
const RUN_OVERLOAD = OVERLOAD_FLAG || wlFilter === undefined || wlFilter.includes('overload')
const OCFG = { ...(QUICK ? OVERLOAD_QUICK : OVERLOAD_DEFAULTS) }
if (opt('--overload-rates') !== undefined) OCFG.rates = (opt('--overload-rates') as string).split(',').map((x) => Math.max(0, Number(x)))
if (opt('--overload-source-budget') !== undefined) OCFG.sourceBudget = Math.max(0, Number(opt('--overload-source-budget')))
if (flag('--overload-fail-open')) OCFG.failOpen = true
if (opt('--overload-kinds') !== undefined) OCFG.kinds = (opt('--overload-kinds') as string).split(',').filter((x): x is FloodKind => (FLOOD_KINDS as string[]).includes(x))
const variants = VARIANTS.filter((v) => vFilter === undefined ? !(QUICK && v.diagnostic === true) : vFilter.includes(v.id))

const out = (s: string): void => { process.stdout.write(s + '\n') }
const progress = (s: string): void => { process.stderr.write(`bench:net: ${s}\n`) }
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One workload on one variant in one repetition. */
interface Trial {
  rep: number
  variant: VariantId
  workload: WorkloadId
  /** The workload's own numbers (pps, cps, mbps, p50Us, p99Us, ...). */
  metrics: Record<string, number>
  /** Packets that hit the NFQUEUE rules (firewall status().queuedPackets). */
  queued: number
  /** Packets the kernel handed to the consumer (NFQUEUE id sequence). */
  handled: number
  /** Queue full (queue_dropped) + socket full (user_dropped). */
  queueDrops: number
  conntrackDrops: number
  softnetDrops: number
  consumerCpuS: number | null
  cpuSecPerMPkt: number | null
  hostCpuPct: number
  seconds: number
}

interface Slot { rep: number, variant: VariantId, readyMs: number | null, peakRssBytes: number | null, aigateStats?: Array<Record<string, number>>, consumerOut?: string, hostSpeedMs?: number }

interface Snap { cpu: number | null, q: QueueCounters, queued: number, ct: number, softnet: number, host: { busy: number, total: number }, flood: number }

function snap (net: BenchNet, v: Variant, c: Consumer | null, wl: WorkloadId): Snap {
  const ct = net.conntrackStats()
  return {
    cpu: c === null ? null : cpuSeconds(c.pid),
    q: net.queueCounters(),
    queued: v.queues === null ? 0 : status({ netns: net.gw }).queuedPackets,
    ct: ct.drop + ct.insertFailed,
    softnet: softnetDrops(),
    host: hostCpu(),
    flood: wl === 'dns' ? net.serverFloodCount() : 0,
  }
}

async function runWorkload (net: BenchNet, wl: WorkloadId, seconds: number): Promise<Record<string, number>> {
  const a = net.sb.addrs
  switch (wl) {
    case 'dns': {
      // The sender (and with it the gateway's ingress work, which runs in its softirq) stays on CPU 0.
      const r = kv(await net.run(net.client, 'taskset', ['-c', '0', NETBENCH, 'flood', SERVER2, '53', String(seconds), DNS_FIXTURE,
        FLOOD_SRC.first, String(FLOOD_SRC.count), String(net.next.flood), String(CFG.dnsNames), String(CFG.dnsRate)]))
      net.next.flood = r.next ?? net.next.flood
      return { sent: r.sent ?? 0, seconds: r.seconds ?? seconds, sentPps: r.pps ?? 0, sendFailed: r.failed ?? 0 }
    }
    case 'conn': {
      const r = kv(await net.run(net.client, NETBENCH, ['conn', a.server, '443', String(seconds), String(CFG.connConcurrency),
        HELLO_FIXTURE, CONN_SRC.first, String(CONN_SRC.count), String(net.next.conn)]))
      net.next.conn = r.next ?? net.next.conn
      return { cps: r.cps ?? 0, ok: r.ok ?? 0, failed: r.failed ?? 0, seconds: r.seconds ?? seconds }
    }
    case 'bulk': {
      const r = kv(await net.run(net.client, NETBENCH, ['bulk', SERVER2, '443', String(seconds), HELLO_FIXTURE]))
      return { mbps: r.mbps ?? 0, bytes: r.bytes ?? 0, seconds: r.seconds ?? seconds }
    }
    case 'latency': {
      const r = kv(await net.run(net.client, NETBENCH, ['ping', a.server, '53', String(seconds), String(CFG.latencyRate),
        DNS_FIXTURE, PING_SRC.first, String(PING_SRC.count), String(net.next.ping)]))
      net.next.ping = r.next ?? net.next.ping
      return { p50Us: r.p50_us ?? 0, p90Us: r.p90_us ?? 0, p99Us: r.p99_us ?? 0, maxUs: r.max_us ?? 0, sent: r.sent ?? 0, lost: r.lost ?? 0, seconds }
    }
  }
}

/** Warm-up of each workload in units of CFG.warmS: the latency workload's fixed rate needs longer for as many packets. */
const WARM_FACTOR: Record<WorkloadId, number> = { dns: 1, conn: 1, bulk: 0.5, latency: 2 }
const DURATION: Record<WorkloadId, () => number> = { dns: () => CFG.dnsS, conn: () => CFG.connS, bulk: () => CFG.bulkS, latency: () => CFG.latencyS }

async function runSlot (net: BenchNet, v: Variant, rep: number, trials: Trial[], slots: Slot[]): Promise<void> {
  const speed = hostSpeedMs()
  progress(`rep ${rep + 1} ${v.id.padEnd(13)} host speed: calibration ${speed.toFixed(1)} ms`)
  // The capacity workloads send from one client address: the per-source budget
  // (2000 pkt/s by default) exists to cap exactly that sender, so it is off
  // here and these rows measure the pipeline. The overload workload runs the
  // shipped defaults, budget included.
  const c = await startVariant(v, net, { root: ROOT, log: LOG, acceptLoop: ACCEPT_LOOP, nfqueueConsumer: join(ROOT, 'dist', 'test', 'bench', 'net', 'nfqueue-consumer.js'), cpuProfDir: opt('--cpu-prof'), ...(PIN === undefined ? {} : { pinCpu: PIN }) }, { sourceBudget: 0 })
  const slot: Slot = { rep, variant: v.id, readyMs: c?.readyMs ?? null, peakRssBytes: null, hostSpeedMs: speed }
  slots.push(slot)
  try {
    for (const wl of workloads) {
      // Warm-up: the same workload, not measured, the same for every variant.
      // It fills neighbour caches and brings a JIT-compiled consumer to its
      // steady state on this workload's code path (a TLS hello takes other
      // functions than a DNS query, one packet per read other type feedback
      // than a full batch): a daemon runs for weeks, and its first second is
      // not what a user waits on.
      if (CFG.warmS > 0) await runWorkload(net, wl, CFG.warmS * WARM_FACTOR[wl])
      net.flushConntrack()
      await sleep(100)
      const b = snap(net, v, c, wl)
      const t0 = Date.now()
      const m = await runWorkload(net, wl, DURATION[wl]())
      await sleep(150) // queued packets drain
      const e = snap(net, v, c, wl)
      const seconds = (Date.now() - t0) / 1000
      const queueDrops = (e.q.dropped - b.q.dropped) + (e.q.userDropped - b.q.userDropped)
      const handled = v.queues === null ? 0 : Math.max(0, (e.q.idSequence - b.q.idSequence) - (e.q.userDropped - b.q.userDropped))
      const cpu = b.cpu !== null && e.cpu !== null ? e.cpu - b.cpu : null
      if (wl === 'dns') {
        const delivered = e.flood - b.flood
        m.delivered = delivered
        m.pps = delivered / (m.seconds as number)
        m.otherLoss = Math.max(0, (m.sent as number) - delivered - queueDrops)
      }
      const t: Trial = {
        rep,
        variant: v.id,
        workload: wl,
        metrics: m,
        queued: e.queued - b.queued,
        handled,
        queueDrops,
        conntrackDrops: e.ct - b.ct,
        softnetDrops: e.softnet - b.softnet,
        consumerCpuS: cpu,
        cpuSecPerMPkt: cpu !== null && handled >= 1000 ? cpu / handled * 1e6 : null,
        hostCpuPct: e.host.total > b.host.total ? 100 * (e.host.busy - b.host.busy) / (e.host.total - b.host.total) : 0,
        seconds,
      }
      trials.push(t)
      progress(`rep ${rep + 1} ${v.id.padEnd(13)} ${wl.padEnd(7)} ${brief(t)}`)
    }
    if (c !== null) {
      slot.peakRssBytes = peakRss(c.pid)
      if (v.id.startsWith('aigate')) slot.aigateStats = await aigateStats(c)
    }
  } finally {
    await stopVariant(v, net, c)
    if (c !== null) slot.consumerOut = c.stdout.trim()
  }
}

function brief (t: Trial): string {
  const m = t.metrics
  const q = t.handled > 0 ? ` handled=${t.handled} drops=${t.queueDrops}` : ''
  const cpu = t.cpuSecPerMPkt !== null ? ` cpu=${t.cpuSecPerMPkt.toFixed(2)}s/Mpkt` : ''
  switch (t.workload) {
    case 'dns': return `${Math.round(m.pps ?? 0)} pps delivered (sent ${Math.round(m.sentPps ?? 0)}/s, other loss ${m.otherLoss})${q}${cpu}`
    case 'conn': return `${Math.round(m.cps ?? 0)} conn/s (failed ${m.failed})${q}${cpu}`
    case 'bulk': return `${(m.mbps ?? 0).toFixed(0)} Mbit/s${q}`
    case 'latency': return `p50 ${(m.p50Us ?? 0).toFixed(0)} us p99 ${(m.p99Us ?? 0).toFixed(0)} us (lost ${m.lost})${q}${cpu}`
  }
}

// ---------------------------------------------------------------- report

type Getter = (t: Trial) => number | null
const METRICS: Record<WorkloadId, Array<{ key: string, head: string, get: Getter, fmt: (x: number) => string, range?: boolean }>> = {
  dns: [
    { key: 'pps', head: 'delivered pkt/s', get: (t) => t.metrics.pps ?? null, fmt: k, range: true },
    { key: 'sentPps', head: 'sent pkt/s', get: (t) => t.metrics.sentPps ?? null, fmt: k },
    // Near 100%: the variant kept up with the sender, and its pkt/s is the sender's ceiling, not its own.
    { key: 'deliveredPct', head: 'of sent', get: (t) => (t.metrics.sent ?? 0) > 0 ? 100 * (t.metrics.delivered ?? 0) / (t.metrics.sent as number) : null, fmt: pct },
    { key: 'queueDrops', head: 'queue drops', get: (t) => t.handled > 0 || t.queueDrops > 0 ? t.queueDrops : null, fmt: int },
    { key: 'otherLoss', head: 'other loss', get: (t) => t.metrics.otherLoss ?? null, fmt: int },
    { key: 'cpuSecPerMPkt', head: 'CPU s/Mpkt', get: (t) => t.cpuSecPerMPkt, fmt: (x) => x.toFixed(2) },
    { key: 'hostCpuPct', head: 'host CPU', get: (t) => t.hostCpuPct, fmt: pct },
  ],
  conn: [
    { key: 'cps', head: 'conn/s', get: (t) => t.metrics.cps ?? null, fmt: (x) => x.toFixed(0), range: true },
    { key: 'failed', head: 'failed', get: (t) => t.metrics.failed ?? null, fmt: int },
    { key: 'queuedPerConn', head: 'queued/conn', get: (t) => t.queued > 0 && (t.metrics.ok ?? 0) > 0 ? t.queued / (t.metrics.ok as number) : null, fmt: (x) => x.toFixed(2) },
    { key: 'queueDrops', head: 'queue drops', get: (t) => t.handled > 0 || t.queueDrops > 0 ? t.queueDrops : null, fmt: int },
    { key: 'cpuSecPerMPkt', head: 'CPU s/Mpkt', get: (t) => t.cpuSecPerMPkt, fmt: (x) => x.toFixed(2) },
    { key: 'hostCpuPct', head: 'host CPU', get: (t) => t.hostCpuPct, fmt: pct },
  ],
  bulk: [
    { key: 'mbps', head: 'Mbit/s', get: (t) => t.metrics.mbps ?? null, fmt: (x) => x.toFixed(0), range: true },
    { key: 'queued', head: 'queued pkts', get: (t) => t.queued > 0 ? t.queued : null, fmt: int },
    { key: 'consumerCpuS', head: 'consumer CPU s', get: (t) => t.consumerCpuS, fmt: (x) => x.toFixed(2) },
    { key: 'hostCpuPct', head: 'host CPU', get: (t) => t.hostCpuPct, fmt: pct },
  ],
  latency: [
    { key: 'p50Us', head: 'p50 us', get: (t) => t.metrics.p50Us ?? null, fmt: (x) => x.toFixed(0), range: true },
    { key: 'p99Us', head: 'p99 us', get: (t) => t.metrics.p99Us ?? null, fmt: (x) => x.toFixed(0), range: true },
    { key: 'lost', head: 'lost', get: (t) => t.metrics.lost ?? null, fmt: int },
    { key: 'queueDrops', head: 'queue drops', get: (t) => t.handled > 0 || t.queueDrops > 0 ? t.queueDrops : null, fmt: int },
    { key: 'cpuSecPerMPkt', head: 'CPU s/Mpkt', get: (t) => t.cpuSecPerMPkt, fmt: (x) => x.toFixed(2) },
  ],
}

function k (x: number): string { return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0) }
function int (x: number): string { return String(Math.round(x)) }
function pct (x: number): string { return `${x.toFixed(0)}%` }

type Summary = Record<string, Record<string, Record<string, Sample>>>

function summarizeAll (trials: Trial[]): Summary {
  const s: Summary = {}
  for (const wl of workloads) {
    s[wl] = {}
    for (const v of variants) {
      const ts = trials.filter((t) => t.workload === wl && t.variant === v.id)
      if (ts.length === 0) continue
      const per: Record<string, Sample> = {}
      for (const m of METRICS[wl]) {
        const xs = ts.map(m.get).filter((x): x is number => x !== null && Number.isFinite(x))
        if (xs.length > 0) per[m.key] = summarize(xs)
      }
      ;(s[wl] as Record<string, Record<string, Sample>>)[v.id] = per
    }
  }
  return s
}

const TITLES: Record<WorkloadId, () => string> = {
  dns: () => `(a) DNS query flood: UDP to port 53, ${readFileSync(DNS_FIXTURE).length}-byte dig query (+28 bytes IP/UDP), a new 5-tuple per datagram ` +
    `(source address and port varied), ${CFG.dnsNames === 1 ? 'one name (api.openai.com, monitor: accepted)' : `${CFG.dnsNames} names (xxx.openai.com)`}, ${CFG.dnsRate > 0 ? `raw-socket sender paced at ${CFG.dnsRate}/s` : 'open-loop raw-socket sender pinned to CPU 0'}, ${CFG.dnsS} s`,
  conn: () => `(b) new TLS connections: ${CFG.connConcurrency} in flight, each: connect, send curl's ClientHello for www.example.com (allowed), server reads it and closes, ${CFG.connS} s`,
  bulk: () => `(c) bulk transfer: one TCP flow to port 443, ClientHello then 64 KiB writes, ${CFG.bulkS} s`,
  latency: () => `(d) round trip: UDP DNS query/answer at ${CFG.latencyRate}/s, a new flow per query, ${CFG.latencyS} s`,
}

function printTables (summary: Summary, slots: Slot[]): void {
  for (const wl of workloads) {
    out('')
    out(TITLES[wl]())
    const cols = METRICS[wl]
    const widths = cols.map((c) => Math.max(c.head.length, c.range === true ? 26 : 10))
    out(`  ${'variant'.padEnd(33)}${cols.map((c, i) => c.head.padStart((widths[i] as number) + 2)).join('')}`)
    for (const v of variants) {
      if (v.blocked !== null) { out(`  ${v.label.padEnd(33)}  BLOCKED: ${v.blocked}`); continue }
      const per = summary[wl]?.[v.id]
      if (per === undefined) continue
      const cells = cols.map((c, i) => {
        const s = per[c.key]
        const text = s === undefined ? '-' : c.range === true && s.runs > 1 ? `${c.fmt(s.median)} [${c.fmt(s.min)}-${c.fmt(s.max)}]` : c.fmt(s.median)
        return text.padStart((widths[i] as number) + 2)
      })
      out(`  ${v.label.padEnd(33)}${cells.join('')}`)
    }
  }
  out('')
  out('consumers (userspace queue readers): peak RSS (VmHWM) and time to ready, median [min-max] over repetitions')
  for (const v of variants) {
    if (v.blocked !== null || v.queues === null) continue
    const ss = slots.filter((s) => s.variant === v.id)
    const rss = ss.map((s) => s.peakRssBytes).filter((x): x is number => x !== null)
    const ready = ss.map((s) => s.readyMs).filter((x): x is number => x !== null)
    if (rss.length === 0) continue
    const r = summarize(rss.map((x) => x / 1048576)); const rd = summarize(ready)
    out(`  ${v.label.padEnd(33)}  peak RSS ${r.median.toFixed(1)} MiB [${r.min.toFixed(1)}-${r.max.toFixed(1)}]   ready after ${rd.median.toFixed(0)} ms`)
  }
  const speeds = slots.map((s) => s.hostSpeedMs).filter((x): x is number => x !== undefined && x > 0)
  if (speeds.length > 1) {
    const sp = summarize(speeds)
    out('')
    out(`host speed before each slot (fixed CPU work, ms; lower is faster): median ${sp.median.toFixed(1)} [${sp.min.toFixed(1)}-${sp.max.toFixed(1)}]` +
      (sp.max > 1.2 * sp.min ? `: the host slowed by up to ${Math.round(100 * (sp.max / sp.min - 1))}% during the run; slots over ${(1.2 * sp.min).toFixed(1)} ms: ` +
        slots.filter((s) => (s.hostSpeedMs ?? 0) > 1.2 * sp.min).map((s) => `${s.variant} (rep ${s.rep + 1})`).join(', ') : ''))
  }
}

/**
 * A ratio of two variants' medians over the repetitions, or with `stat: 'min'`
 * of their best (lowest) repetitions: for a latency tail on a shared VM, where
 * a neighbour's burst can land in any one repetition and only ever adds, the
 * least disturbed repetition of each variant is the closer estimate of its own
 * tail. Shown next to the median ratio, never instead of it.
 */
interface Ratio { id: string, label: string, workload: WorkloadId, metric: string, num: VariantId, den: VariantId, target: string | null, check: ((r: number) => boolean) | null, stat?: 'min', value: number | null, perRep: number[], met: boolean | null, note?: string }

function ratios (trials: Trial[], summary: Summary): Ratio[] {
  const defs: Array<Omit<Ratio, 'value' | 'perRep' | 'met'>> = [
    { id: 'dns-aigate1q-cpp-issue3', label: 'DNS flood pkt/s  aigate(1q) / bare C per-packet', workload: 'dns', metric: 'pps', num: 'aigate-1q', den: 'c-per-packet', target: '>= 1.0 (issue 3)', check: (r) => r >= 1.0 },
    { id: 'dns-aigate1q-cpp-issue5', label: 'DNS flood pkt/s  aigate(1q) / bare C per-packet', workload: 'dns', metric: 'pps', num: 'aigate-1q', den: 'c-per-packet', target: '>= 1.2 (issue 5)', check: (r) => r >= 1.2 },
    { id: 'dns-aigate1q-cbatch', label: 'DNS flood pkt/s  aigate(1q) / batched C', workload: 'dns', metric: 'pps', num: 'aigate-1q', den: 'c-batch', target: '>= 0.75 (issue 5)', check: (r) => r >= 0.75 },
    { id: 'dns-aigate1q-npm', label: 'DNS flood pkt/s  aigate(1q) / nfqueue npm', workload: 'dns', metric: 'pps', num: 'aigate-1q', den: 'nfqueue-npm', target: '>= 5 (issue 5)', check: (r) => r >= 5 },
    // CPU per packet does not depend on how fast the sender is: how many times
    // the consumer's capacity, where pkt/s is capped by the sender.
    { id: 'dns-cpu-npm-aigate1q', label: 'DNS CPU s/Mpkt   nfqueue npm / aigate(1q)', workload: 'dns', metric: 'cpuSecPerMPkt', num: 'nfqueue-npm', den: 'aigate-1q', target: null, check: null },
    { id: 'dns-cpu-cpp-aigate1q', label: 'DNS CPU s/Mpkt   bare C per-packet / aigate(1q)', workload: 'dns', metric: 'cpuSecPerMPkt', num: 'c-per-packet', den: 'aigate-1q', target: null, check: null },
    { id: 'dns-cpu-cbatch-aigate1q', label: 'DNS CPU s/Mpkt   batched C / aigate(1q)', workload: 'dns', metric: 'cpuSecPerMPkt', num: 'c-batch', den: 'aigate-1q', target: null, check: null },
    { id: 'dns-aigate1q-npm-nolog', label: 'DNS flood pkt/s  aigate(1q) / nfqueue npm, no log', workload: 'dns', metric: 'pps', num: 'aigate-1q', den: 'nfqueue-npm-nolog', target: null, check: null },
    { id: 'dns-aigate1q-noqueue', label: 'DNS flood pkt/s  aigate(1q) / no queue', workload: 'dns', metric: 'pps', num: 'aigate-1q', den: 'no-queue', target: null, check: null },
    { id: 'dns-aigate1q-scraped', label: 'DNS flood pkt/s  aigate(1q) scraped 1/s / aigate(1q)', workload: 'dns', metric: 'pps', num: 'aigate-1q-scraped', den: 'aigate-1q', target: '>= 0.95 (issue 12: a scrape never blocks verdicts)', check: (r) => r >= 0.95 },
    { id: 'p99-aigate1q-scraped', label: 'p99 latency      aigate(1q) scraped 1/s / aigate(1q)', workload: 'latency', metric: 'p99Us', num: 'aigate-1q-scraped', den: 'aigate-1q', target: null, check: null },
    { id: 'dns-aigate2q-cpp', label: 'DNS flood pkt/s  aigate(2q) / bare C per-packet', workload: 'dns', metric: 'pps', num: 'aigate-2q', den: 'c-per-packet', target: null, check: null },
    { id: 'dns-cpp-noqueue', label: 'DNS flood pkt/s  bare C per-packet / no queue', workload: 'dns', metric: 'pps', num: 'c-per-packet', den: 'no-queue', target: null, check: null },
    { id: 'dns-cbatch-noqueue', label: 'DNS flood pkt/s  batched C / no queue', workload: 'dns', metric: 'pps', num: 'c-batch', den: 'no-queue', target: null, check: null },
    { id: 'dns-ct-noqueue', label: 'DNS flood pkt/s  conntrack only / no queue', workload: 'dns', metric: 'pps', num: 'conntrack-only', den: 'no-queue', target: null, check: null },
    { id: 'bulk-aigate1q-noqueue', label: 'bulk Mbit/s      aigate(1q) / no queue', workload: 'bulk', metric: 'mbps', num: 'aigate-1q', den: 'no-queue', target: '>= 0.95 (issue 5)', check: (r) => r >= 0.95 },
    { id: 'bulk-aigate1q-ct', label: 'bulk Mbit/s      aigate(1q) / conntrack only', workload: 'bulk', metric: 'mbps', num: 'aigate-1q', den: 'conntrack-only', target: null, check: null },
    { id: 'bulk-ct-noqueue', label: 'bulk Mbit/s      conntrack only / no queue', workload: 'bulk', metric: 'mbps', num: 'conntrack-only', den: 'no-queue', target: null, check: null },
    { id: 'bulk-aigate2q-noqueue', label: 'bulk Mbit/s      aigate(2q) / no queue', workload: 'bulk', metric: 'mbps', num: 'aigate-2q', den: 'no-queue', target: null, check: null },
    { id: 'conn-aigate1q-noqueue', label: 'new conn/s       aigate(1q) / no queue', workload: 'conn', metric: 'cps', num: 'aigate-1q', den: 'no-queue', target: '>= 0.8 (issue 5)', check: (r) => r >= 0.8 },
    { id: 'conn-aigate1q-ct', label: 'new conn/s       aigate(1q) / conntrack only', workload: 'conn', metric: 'cps', num: 'aigate-1q', den: 'conntrack-only', target: null, check: null },
    { id: 'conn-aigate2q-noqueue', label: 'new conn/s       aigate(2q) / no queue', workload: 'conn', metric: 'cps', num: 'aigate-2q', den: 'no-queue', target: null, check: null },
    { id: 'conn-aigate1q-cpp', label: 'new conn/s       aigate(1q) / bare C per-packet', workload: 'conn', metric: 'cps', num: 'aigate-1q', den: 'c-per-packet', target: null, check: null },
    { id: 'p99-aigate1q-cpp', label: 'p99 latency      aigate(1q) / bare C per-packet', workload: 'latency', metric: 'p99Us', num: 'aigate-1q', den: 'c-per-packet', target: '<= 1.5 (issue 5)', check: (r) => r <= 1.5 },
    { id: 'p99-aigate1q-cpp-best', label: 'p99 latency      aigate(1q) / C per-packet, best rep', workload: 'latency', metric: 'p99Us', num: 'aigate-1q', den: 'c-per-packet', target: null, check: null, stat: 'min' },
    { id: 'p99-aigate2q-cpp', label: 'p99 latency      aigate(2q) / bare C per-packet', workload: 'latency', metric: 'p99Us', num: 'aigate-2q', den: 'c-per-packet', target: null, check: null },
    { id: 'p50-aigate1q-cpp', label: 'p50 latency      aigate(1q) / bare C per-packet', workload: 'latency', metric: 'p50Us', num: 'aigate-1q', den: 'c-per-packet', target: null, check: null },
  ]
  const getter = (wl: WorkloadId, key: string): Getter => (METRICS[wl].find((m) => m.key === key) as { get: Getter }).get
  const present = new Set(variants.map((v) => v.id))
  return defs.filter((d) => workloads.includes(d.workload) && present.has(d.num) && present.has(d.den)).map((d) => {
    const n = summary[d.workload]?.[d.num]?.[d.metric]
    const dd = summary[d.workload]?.[d.den]?.[d.metric]
    const value = n === undefined || dd === undefined ? null
      : d.stat === 'min' ? (dd.min > 0 ? n.min / dd.min : null)
        : dd.median > 0 ? n.median / dd.median : null
    const perRep: number[] = []
    const get = getter(d.workload, d.metric)
    for (let r = 0; r < CFG.reps; r++) {
      const a = trials.find((t) => t.rep === r && t.workload === d.workload && t.variant === d.num)
      const b = trials.find((t) => t.rep === r && t.workload === d.workload && t.variant === d.den)
      const x = a === undefined ? null : get(a); const y = b === undefined ? null : get(b)
      if (x !== null && y !== null && y > 0) perRep.push(x / y)
    }
    const blocked = variants.find((v) => (v.id === d.num || v.id === d.den) && v.blocked !== null)
    return {
      ...d,
      value,
      perRep,
      met: value === null || d.check === null ? null : d.check(value),
      ...(blocked !== undefined ? { note: `blocked: ${blocked.id}` } : value === null ? { note: 'not measured' } : {}),
    }
  })
}

function printRatios (rs: Ratio[]): void {
  out('')
  out('ratios (of medians, or of the best repetitions where it says so; [min-max] of the same ratio within each repetition)' +
    (QUICK ? ': --quick is one short repetition, a smoke check; judge the targets on a full run' : ''))
  for (const r of rs) {
    const v = r.value === null ? (r.note ?? 'n/a') : `${r.value.toFixed(2)}x`
    const range = r.perRep.length > 1 ? ` [${Math.min(...r.perRep).toFixed(2)}-${Math.max(...r.perRep).toFixed(2)}]` : ''
    const target = r.target === null ? '' : `   target ${r.target}: ${r.met === null ? 'n/a' : r.met ? 'MET' : 'NOT MET'}`
    out(`  ${r.label.padEnd(50)} ${(v + range).padStart(20)}${target}`)
  }
}

// ---------------------------------------------------------------- main

function checkEnv (): void {
  if (process.getuid?.() !== 0) throw new Error('bench:net needs root (network namespaces, iptables, NFQUEUE)')
  for (const tool of ['ip', 'iptables', 'iptables-save', 'make', 'cc']) {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }) } catch { throw new Error(`bench:net needs ${tool}`) }
  }
  if (!existsSync(join(ROOT, 'native', 'build', 'Release', 'aigate_nfq.node'))) throw new Error('the NFQUEUE addon is not built: npm run build:native')
}

/** The commit built, and whether the work tree differed from it (what was measured is what `npm run build` compiled). */
function gitTree (): string {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native', 'test/bench'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    return dirty ? `${head} + uncommitted changes` : head
  } catch { return 'unknown (no git)' }
}

async function main (): Promise<void> {
  const started = Date.now()
  checkEnv()
  // How busy the host is before we start: other work on these 2 cores skews every number.
  const h0 = hostCpu()
  await sleep(QUICK ? 500 : 1000)
  const h1 = hostCpu()
  const idleBusyPct = 100 * (h1.busy - h0.busy) / Math.max(1, h1.total - h0.total)
  const load0 = loadavg()[0] as number
  if (idleBusyPct > 10) progress(`WARNING: the host is ${idleBusyPct.toFixed(0)}% busy before the benchmark starts (load ${load0.toFixed(2)}): numbers will be skewed`)
  execFileSync('make', ['-s', '-C', HERE_SRC], { stdio: ['ignore', 'ignore', 'inherit'] })
  execFileSync('make', ['-s', '-C', join(ROOT, 'native', 'bench'), 'accept_loop'], { stdio: ['ignore', 'ignore', 'inherit'] })
  const npmVariants = workloads.length === 0 ? [] : variants.filter((v) => v.id.startsWith('nfqueue-npm'))
  if (npmVariants.length > 0) {
    const why = prepareNfqueue(progress)
    for (const v of npmVariants) v.blocked = why
    if (why !== null) progress(`nfqueue npm baseline BLOCKED: ${why}`)
  }

  const net = new BenchNet()
  let cleaned = false
  const cleanup = (): void => { if (!cleaned) { cleaned = true; net.destroy() } }
  const onSignal = (sig: NodeJS.Signals): void => {
    progress(`${sig}: removing the namespaces`)
    cleanup()
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)

  const trials: Trial[] = []
  const slots: Slot[] = []
  let backend = 'none (no queue variant ran)'
  let offloads: string[] = []
  let overload: OverloadResult | null = null
  try {
    await net.create(NETBENCH)
    offloads = net.offloadsOn()
    if (offloads.length > 0) progress(`WARNING: offloads still on: ${offloads.join(', ')}`)
    if (!net.hasConntrackTool) progress('conntrack tool not found: the gateway conntrack table is not flushed between workloads')
    progress(`namespaces ${net.client}, ${net.gw}, ${net.srv}; ` +
      (workloads.length > 0 ? `${CFG.reps} repetition(s) x ${variants.length} variants x ${workloads.length} workloads` : 'no compared workloads') +
      (RUN_OVERLOAD ? `; overload: ${OCFG.kinds.length} floods x ${OCFG.rates.length} rates, once` : ''))
    if (workloads.length > 0) {
      for (let rep = 0; rep < CFG.reps; rep++) {
        for (const v of variants) {
          if (v.blocked !== null) continue
          await runSlot(net, v, rep, trials, slots)
        }
      }
    }
    if (RUN_OVERLOAD) {
      overload = await runOverload(net, OCFG, { root: ROOT, log: LOG, acceptLoop: ACCEPT_LOOP, nfqueueConsumer: '' }, NETBENCH,
        { allowed: HELLO_FIXTURE, blocked: BLOCKED_HELLOS, flood: HELLO_FIXTURE }, progress)
    }
  } finally {
    cleanup()
  }
  backend = firewallBackend() ?? backend

  const load1 = loadavg()[0] as number
  const cost = workloads.length === 0 ? null : (progress('per-packet userspace cost, in-process'), costBreakdown(DNS_FIXTURE, QUICK ? 10000 : 30000))
  const summary = summarizeAll(trials)
  const rs = ratios(trials, summary)
  const seconds = (Date.now() - started) / 1000
  const tree = gitTree()
  out(`aigate bench:net (${QUICK ? 'quick' : 'full'}): ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), Linux ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, ` +
    `node ${process.version}, ${new Date().toISOString()}, tree ${tree}`)
  if (workloads.length > 0) {
    out(`${CFG.reps} repetition(s), variants interleaved in every repetition; each workload run unmeasured first (warm-up: ${WORKLOADS.map((w) => `${w} ${(CFG.warmS * WARM_FACTOR[w]).toFixed(1)} s`).join(", ")}); medians [min-max]; firewall backend ${backend}; ` +
      `queue consumers fail-closed, queue length 1024; aigate and the npm baseline log decisions to ${LOG}; ` +
      `kernel string variant drops ${STRING_NAMES.join(', ')}; gateway conntrack ${net.hasConntrackTool ? 'flushed' : 'not flushed'} before each workload; ` +
      `veth offloads (gro, gso, tso): ${offloads.length === 0 ? 'all off' : `STILL ON: ${offloads.join(', ')}`}`)
  } else {
    out(`overload workload only (--overload); firewall backend ${backend}; gateway conntrack ${net.hasConntrackTool ? 'flushed' : 'not flushed (no conntrack tool)'} before each step; veth offloads (gro, gso, tso): ${offloads.length === 0 ? 'all off' : `STILL ON: ${offloads.join(', ')}`}`)
  }
  out(`host CPU busy before the run: ${idleBusyPct.toFixed(0)}% (1-min load ${load0.toFixed(2)} at start, ${load1.toFixed(2)} at end)` +
    (idleBusyPct > 10 ? ': OTHER WORK WAS RUNNING, numbers are skewed' : ''))
  if (workloads.length > 0) {
    printTables(summary, slots)
    printRatios(rs)
  }
  if (cost !== null) {
    out('')
    out(`(e) userspace cost of one queued DNS query, in-process (no network): decodeIp + classify ${cost.classifyNs.toFixed(0)} ns; ` +
      `+ its decision line (to /dev/null, flushed per 64) ${cost.classifyAndLogNs.toFixed(0)} ns (the line: ${cost.logNs.toFixed(0)} ns; ` +
      `the same line through pino, sync: ${cost.pinoLineNs.toFixed(0)} ns)`)
  }
  if (overload !== null) printOverload(overload, out)
  const blocked = variants.filter((v) => v.blocked !== null).map((v) => ({ variant: v.id, reason: v.blocked }))
  for (const b of blocked) out(`BLOCKED baseline ${b.variant}: ${b.reason ?? ''}`)
  out(`total ${seconds.toFixed(0)} s`)
  if (JSON_OUT) {
    out(JSON.stringify({
      bench: 'bench:net',
      mode: QUICK ? 'quick' : 'full',
      date: new Date().toISOString(),
      env: { tree, hostBusyBeforePct: idleBusyPct, loadStart: load0, loadEnd: load1, cpus: cpus().length, cpuModel: cpus()[0]?.model, kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(), node: process.version, firewallBackend: backend, conntrackFlushed: net.hasConntrackTool, offloadsOn: offloads },
      config: { ...CFG, workloads, variants: variants.map((v) => v.id), stringNames: STRING_NAMES, dnsFixture: 'test/fixtures/dns/dig-9.18-udp-a.bin', helloFixture: 'test/fixtures/tls/curl-7.88-www.example.com.bin', log: LOG, queueMaxLen: 1024, failClosed: true },
      variants: variants.map((v) => ({ id: v.id, label: v.label, queues: v.queues, blocked: v.blocked })),
      summary,
      costBreakdown: cost,
      ratios: rs.map(({ check: _c, ...r }) => r),
      overload,
      consumers: slots,
      trials,
      blocked,
      seconds,
    }))
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:net: ${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
