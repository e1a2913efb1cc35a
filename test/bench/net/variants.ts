/**
 * The variants of `npm run bench:net`: what the gateway does with the
 * traffic. Every queue variant uses the same aigate firewall rules
 * (src/fw `up({ netns: gw, queues })`) and the same queue settings where the
 * consumer lets us choose them: fail-closed (a full queue drops, so what
 * reaches the server was really handled) and 1024 packets of queue length
 * (the kernel's default, which aigate and the npm binding use).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { up, down } from '../../../src/fw/index.js'
import { waitUntil, type BenchNet } from './env.js'

export type VariantId = 'no-queue' | 'conntrack-only' | 'kernel-string' | 'c-per-packet' | 'c-batch' | 'nfqueue-npm' | 'nfqueue-npm-nolog' | 'aigate-1q' | 'aigate-1q-scraped' | 'aigate-2q' | 'aigate-defaults'

export interface Variant {
  readonly id: VariantId
  readonly label: string
  /** Queues the aigate firewall rules send to; null: no aigate rules. */
  readonly queues: number[] | null
  /** Why it cannot run here (e.g. the npm binding does not build); null when it can. */
  blocked: string | null
  /** Not one of the compared variants, only there to explain a difference; left out of --quick. */
  readonly diagnostic?: boolean
}

export const VARIANTS: Variant[] = [
  { id: 'no-queue', label: 'forwarding, no queue', queues: null, blocked: null },
  { id: 'conntrack-only', label: 'forwarding + conntrack, no queue', queues: null, blocked: null, diagnostic: true },
  { id: 'kernel-string', label: 'kernel string match, no queue', queues: null, blocked: null },
  { id: 'c-per-packet', label: 'bare C loop, per packet', queues: [0], blocked: null },
  { id: 'c-batch', label: 'bare C loop, batched', queues: [0], blocked: null },
  { id: 'nfqueue-npm', label: 'nfqueue npm + classifier', queues: [0], blocked: null },
  { id: 'nfqueue-npm-nolog', label: 'nfqueue npm + classifier, no log', queues: [0], blocked: null, diagnostic: true },
  { id: 'aigate-1q', label: 'aigate, 1 queue', queues: [0], blocked: null },
  { id: 'aigate-2q', label: 'aigate, 2 queues', queues: [0, 1], blocked: null },
  { id: 'aigate-1q-scraped', label: 'aigate, 1 queue, /metrics scraped every second', queues: [0], blocked: null },
]

/** Where the scraped variant serves metrics, in the gateway namespace. */
const SCRAPE_PORT = 9843
/** The scraper: GET /metrics every second, as Prometheus would (a long-lived process, so no spawn per scrape). */
const SCRAPER = `
const http = require('http')
let n = 0
setInterval(() => {
  http.get('http://127.0.0.1:${SCRAPE_PORT}/metrics', (res) => { res.resume(); res.on('end', () => { n++ }) }).on('error', () => {})
}, 1000)
process.on('SIGTERM', () => { process.stdout.write('scrapes=' + n + '\\n'); process.exit(0) })`

/**
 * The overload workload's gateway (not one of the compared VARIANTS): `aigate
 * firewall up` and `aigate run` exactly as shipped, one queue. So the source
 * budget (2000 packets/s, burst 4000) is on, the queue rules bypass when no
 * daemon is bound, and a full queue drops (the daemon's default).
 */
export const DEFAULTS_VARIANT: Variant = { id: 'aigate-defaults', label: 'aigate, shipped defaults (1 queue)', queues: [0], blocked: null }

/** Names the naive kernel-only variant drops wherever they appear in a forwarded packet. */
export const STRING_NAMES = ['anthropic.com', 'claude.ai', 'claude.com', 'clau.de', 'anthropic.team']

const CT_RULE = (op: string): string[] => ['-w', '-t', 'mangle', op, 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID',
  '-m', 'comment', '--comment', 'aigate-bench-conntrack', '-j', 'DROP']

export const NFQUEUE_DIR = '/tmp/aigate-nfqueue-baseline'
export const NFQUEUE_MODULE = join(NFQUEUE_DIR, 'node_modules', 'nfqueue')

/**
 * Make sure the `nfqueue` npm package is installed in the scratch directory
 * and loads on this Node; returns null, or why not (the variant is then
 * reported as blocked).
 */
export function prepareNfqueue (say: (s: string) => void): string | null {
  if (!existsSync(join(NFQUEUE_MODULE, 'build', 'Release', 'nfqueue.node'))) {
    say(`installing the nfqueue npm baseline into ${NFQUEUE_DIR} (npm install, node-gyp)`)
    const r = spawnSync('npm', ['install', '--prefix', NFQUEUE_DIR, '--no-audit', '--no-fund', '--no-save', 'nfqueue'],
      { encoding: 'utf8', timeout: 300000 })
    if (!existsSync(join(NFQUEUE_MODULE, 'build', 'Release', 'nfqueue.node'))) {
      const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-4).join(' | ')
      return `npm install nfqueue did not build (needs libnetfilter-queue-dev, a compiler, Node headers): ${r.error?.message ?? tail}`
    }
  }
  const load = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(NFQUEUE_MODULE)})`], { encoding: 'utf8' })
  if (load.status !== 0) return `the nfqueue binding does not load on Node ${process.version}: ${load.stderr.trim().split('\n').slice(-2).join(' | ')}`
  return null
}

let backend: string | null = null
/** The firewall backend `up` chose (auto: nft when the kernel has the nft queue expression, else iptables). */
export function firewallBackend (): string | null { return backend }

export interface Consumer {
  readonly pid: number
  readonly child: ChildProcess
  /** aigate-1q-scraped: the process that scrapes /metrics every second. */
  scraper?: ChildProcess
  readonly readyMs: number
  stdout: string
  stderr: string
}

export interface Paths {
  root: string
  /** Decision log of aigate and the npm baseline: /dev/null unless --log FILE (to check what was decided). */
  log: string
  /** --cpu-prof DIR: node's CPU profiles of aigate and the npm baseline go here (worker threads included). */
  cpuProfDir?: string
  acceptLoop: string
  nfqueueConsumer: string
  /** --pin-consumer CPU: every consumer (all its threads) runs on this CPU only (taskset). */
  pinCpu?: number
}

/** Firewall (or string rules) for the variant; the consumer, started and ready; null for no consumer. */
const profArgs = (p: Paths): string[] => p.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', p.cpuProfDir]

/** Departures from the shipped defaults, for diagnosis only (the overload workload's --overload-source-budget, --overload-fail-open). */
export interface Overrides { sourceBudget?: number, runArgs?: string[] }

export async function startVariant (v: Variant, net: BenchNet, paths: Paths, over: Overrides = {}): Promise<Consumer | null> {
  if (v.queues !== null) backend = up({ netns: net.gw, queues: v.queues, ...(over.sourceBudget === undefined ? {} : { sourceBudget: over.sourceBudget }) })
  if (v.id === 'kernel-string') {
    for (const name of STRING_NAMES) {
      net.sb.exec(net.gw, 'iptables', ['-w', '-A', 'FORWARD', '-m', 'string', '--algo', 'bm', '--string', name,
        '-m', 'comment', '--comment', 'aigate-bench-string', '-j', 'DROP'])
    }
  }
  if (v.id === 'conntrack-only') {
    // One conntrack match is enough to turn connection tracking on for the namespace:
    // the part of aigate's rules that any CONNMARK design pays for every packet.
    net.sb.exec(net.gw, 'iptables', CT_RULE('-A'))
  }
  let cmd: string; let args: string[]; let ready: RegExp
  switch (v.id) {
    case 'no-queue': case 'conntrack-only': case 'kernel-string': return null
    case 'c-per-packet': case 'c-batch':
      cmd = paths.acceptLoop
      // --save-accept: aigate's rules queue every packet of a flow until a verdict
      // is saved, so the bare loop must save one too, as the daemon does.
      args = [v.id === 'c-batch' ? '--batch' : '--per-packet', '--save-accept', '--queue', '0', '--max-len', '1024']
      ready = /ready/
      break
    case 'nfqueue-npm': case 'nfqueue-npm-nolog':
      cmd = process.execPath
      args = [...profArgs(paths), paths.nfqueueConsumer, '--module', NFQUEUE_MODULE, '--queue', '0', '--log', v.id === 'nfqueue-npm' ? paths.log : 'none']
      ready = /ready/
      break
    case 'aigate-1q': case 'aigate-2q': case 'aigate-1q-scraped':
      cmd = process.execPath
      args = [...profArgs(paths), join(paths.root, 'bin', 'aigate.js'), 'run', '--queues', v.id === 'aigate-2q' ? '0-1' : '0', '--log', paths.log, '--fail-closed',
        ...(v.id === 'aigate-1q-scraped' ? ['--metrics', `127.0.0.1:${SCRAPE_PORT}`] : [])]
      ready = /running on queue/
      break
    case 'aigate-defaults':
      cmd = process.execPath
      args = [...profArgs(paths), join(paths.root, 'bin', 'aigate.js'), 'run', '--log', paths.log, ...(over.runArgs ?? [])]
      ready = /running on queue/
      break
  }
  const t0 = Date.now()
  // taskset execs the consumer: the pid stays the one we measure.
  const child = paths.pinCpu === undefined ? net.sb.spawn(net.gw, cmd, args) : net.sb.spawn(net.gw, 'taskset', ['-c', String(paths.pinCpu), cmd, ...args])
  const c: Consumer = { pid: child.pid as number, child, readyMs: 0, stdout: '', stderr: '' }
  child.stdout?.on('data', (d: Buffer) => { c.stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { c.stderr += d.toString() })
  const ok = await waitUntil(() => ready.test(c.stderr) || child.exitCode !== null, 30000, 20)
  if (!ok || child.exitCode !== null) throw new Error(`${v.id}: consumer did not start: ${c.stderr.trim()}`)
  ;(c as { readyMs: number }).readyMs = Date.now() - t0
  if (v.id === 'aigate-1q-scraped') {
    await waitUntil(() => c.stderr.includes('metrics at'), 5000, 20)
    c.scraper = net.sb.spawn(net.gw, process.execPath, ['-e', SCRAPER])
  }
  return c
}

/** aigate only: its per-queue counters (SIGUSR1 -> stderr). */
export async function aigateStats (c: Consumer): Promise<Array<Record<string, number>>> {
  const before = c.stderr.length
  try { process.kill(c.pid, 'SIGUSR1') } catch { return [] }
  await waitUntil(() => (c.stderr.slice(before).match(/stats queue/g) ?? []).length > 0, 2000, 20)
  await new Promise((r) => setTimeout(r, 100))
  const out: Array<Record<string, number>> = []
  for (const m of c.stderr.slice(before).matchAll(/stats queue (\d+): (\{.*\})/g)) {
    try { out.push({ queue: Number(m[1]), ...(JSON.parse(m[2] as string) as Record<string, number>) }) } catch { /* partial line */ }
  }
  return out
}

/** Stop the consumer (SIGTERM, then SIGKILL after 5 s) and remove the variant's rules. */
export async function stopVariant (v: Variant, net: BenchNet, c: Consumer | null): Promise<void> {
  if (c?.scraper !== undefined && c.scraper.exitCode === null) {
    const done = new Promise<void>((resolve) => c.scraper?.once('exit', () => resolve()))
    c.scraper.kill('SIGTERM')
    await done
  }
  if (c !== null && c.child.exitCode === null && c.child.signalCode === null) {
    const exited = new Promise<void>((resolve) => c.child.once('exit', () => resolve()))
    try { process.kill(c.pid, 'SIGTERM') } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(c.pid, 'SIGKILL') } catch { /* gone */ } }, 5000)
    await exited
    clearTimeout(t)
  }
  if (v.queues !== null) down({ netns: net.gw })
  if (v.id === 'conntrack-only') try { net.sb.exec(net.gw, 'iptables', CT_RULE('-D')) } catch { /* already gone */ }
  if (v.id === 'kernel-string') {
    for (const name of STRING_NAMES) {
      try {
        net.sb.exec(net.gw, 'iptables', ['-w', '-D', 'FORWARD', '-m', 'string', '--algo', 'bm', '--string', name,
          '-m', 'comment', '--comment', 'aigate-bench-string', '-j', 'DROP'])
      } catch { /* already gone */ }
    }
  }
}
