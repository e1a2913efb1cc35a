/**
 * The network of `npm run bench:net`: the demo Sandbox (client -> gateway ->
 * server namespaces, offloads off) plus what the workloads need, and the
 * counters read around every measurement: the server's packet counter, the
 * gateway's NFQUEUE instances (/proc/net/netfilter/nfnetlink_queue), its
 * conntrack statistics, the consumer's CPU time and peak RSS, host CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs'
import { Sandbox, waitUntil } from '../../../src/demo/sandbox.js'

export const NET = 217
/** Addresses of the client that ping and conn bind (replies must come back to them). */
export const PING_SRC = { first: `10.${NET}.1.10`, count: 32 }
export const CONN_SRC = { first: `10.${NET}.1.42`, count: 32 }
/** Spoofed, never-assigned sources of the flood (raw socket): one new 5-tuple per datagram. */
export const FLOOD_SRC = { first: `10.${NET}.1.100`, count: 150 }
/** Server address of the flood (counted and dropped in raw PREROUTING) and of the bulk sink. */
export const SERVER2 = `10.${NET}.2.3`
const FLOOD_COMMENT = 'aigate-bench-flood'
/**
 * The overload workload (main.ts): ONE flooding client address, a second
 * client address that probes, and three server addresses: the flood's
 * target (every packet counted and dropped in raw PREROUTING, so the server
 * answers nothing), and the probe's allowed and blocked targets (a --reply
 * listener on 443 each; every TCP segment with payload that reaches the
 * blocked one is counted, in case a hello gets through and its answer does not).
 */
export const OVERLOAD = {
  flooder: `10.${NET}.1.80`,
  prober: `10.${NET}.1.81`,
  floodDst: `10.${NET}.2.6`,
  allowedDst: `10.${NET}.2.4`,
  blockedDst: `10.${NET}.2.5`,
}
const OVERFLOOD_COMMENT = 'aigate-bench-overflood'
const BLOCKED_DATA_COMMENT = 'aigate-bench-blocked-data'

export class BenchNet {
  readonly sb: Sandbox
  readonly #procs = new Set<ChildProcess>()
  /** Next index of each source-tuple sequence, so no 5-tuple is used twice in a run. */
  readonly next = { flood: 0, ping: 0, conn: 0 }
  hasConntrackTool = false

  constructor () {
    this.sb = new Sandbox(`agnb${process.pid % 100000}`, NET)
  }

  get client (): string { return this.sb.cli }
  get gw (): string { return this.sb.gw }
  get srv (): string { return this.sb.srv }

  /** Build the namespaces and extra addresses, the server's flood counter, the servers. */
  async create (netbench: string): Promise<void> {
    const sb = this.sb
    sb.create()
    const p = sb.prefix.slice(0, 9)
    const cdev = `${p}-c`; const sdev = `${p}-s`
    const batch: string[] = []
    for (const r of [PING_SRC, CONN_SRC]) {
      for (let i = 0; i < r.count; i++) batch.push(`addr add ${addOffset(r.first, i)}/24 dev ${cdev}`)
    }
    batch.push(`addr add ${OVERLOAD.flooder}/24 dev ${cdev}`, `addr add ${OVERLOAD.prober}/24 dev ${cdev}`)
    const file = `/tmp/aigate-bench-net-${process.pid}.ip`
    writeFileSync(file, batch.join('\n') + '\n')
    try { sb.exec(this.client, 'ip', ['-batch', file]) } finally { unlinkSync(file) }
    for (const a of [SERVER2, OVERLOAD.floodDst, OVERLOAD.allowedDst, OVERLOAD.blockedDst]) sb.exec(this.srv, 'ip', ['addr', 'add', `${a}/24`, 'dev', sdev])
    // The flood is counted, and dropped, before anything else runs in the server.
    sb.exec(this.srv, 'iptables', ['-w', '-t', 'raw', '-A', 'PREROUTING', '-d', SERVER2, '-p', 'udp', '--dport', '53',
      '-m', 'comment', '--comment', FLOOD_COMMENT, '-j', 'DROP'])
    sb.exec(this.srv, 'iptables', ['-w', '-t', 'raw', '-A', 'PREROUTING', '-d', OVERLOAD.floodDst,
      '-m', 'comment', '--comment', OVERFLOOD_COMMENT, '-j', 'DROP'])
    // Counted only (no target): a blocked hello's bytes that reach the server.
    sb.exec(this.srv, 'iptables', ['-w', '-t', 'raw', '-A', 'PREROUTING', '-d', OVERLOAD.blockedDst, '-p', 'tcp', '--dport', '443',
      '-m', 'length', '--length', '100:65535', '-m', 'comment', '--comment', BLOCKED_DATA_COMMENT])
    try { sb.exec(this.gw, 'conntrack', ['-C']); this.hasConntrackTool = true } catch { this.hasConntrackTool = false }
    const server = sb.spawn(this.srv, netbench, ['server', '--close', `${sb.addrs.server}:443:517`, '--sink', `${SERVER2}:443`, '--echo', `${sb.addrs.server}:53`,
      '--reply', `${OVERLOAD.allowedDst}:443`, '--reply', `${OVERLOAD.blockedDst}:443`])
    let err = ''
    server.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    if (!await waitUntil(() => err.includes('ready'), 5000)) throw new Error(`netbench server did not start: ${err}`)
  }

  /** Offloads (gro, gso, tso) still on, per veth, as `ethtool -k` shows them; empty when all are off. */
  offloadsOn (): string[] {
    const p = this.sb.prefix.slice(0, 9)
    const on: string[] = []
    for (const [ns, dev] of [[this.client, `${p}-c`], [this.gw, `${p}-gc`], [this.gw, `${p}-gs`], [this.srv, `${p}-s`]] as const) {
      let text = ''
      try { text = this.sb.exec(ns, 'ethtool', ['-k', dev]) } catch { on.push(`${dev}: ethtool failed`); continue }
      for (const f of ['generic-receive-offload', 'generic-segmentation-offload', 'tcp-segmentation-offload']) {
        if (new RegExp(`^${f}: on`, 'm').test(text)) on.push(`${dev} ${f}`)
      }
    }
    return on
  }

  /** Run a command in a namespace, asynchronously; rejects on a non-zero exit or after timeoutMs. */
  run (ns: string, cmd: string, args: string[], timeoutMs = 60000): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      this.#procs.add(child)
      let out = ''; let err = ''
      child.stdout.on('data', (d: Buffer) => { out += d.toString() })
      child.stderr.on('data', (d: Buffer) => { err += d.toString() })
      const timer = setTimeout(() => { if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }, timeoutMs)
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        this.#procs.delete(child)
        if (code === 0) resolve(out)
        else reject(new Error(`${cmd} ${args.join(' ')}: exit ${code ?? signal}: ${err.trim()}`))
      })
    })
  }

  /** Empty the gateway's conntrack table (between workloads), when the conntrack tool is installed. */
  flushConntrack (): void {
    if (!this.hasConntrackTool) return
    try { this.sb.exec(this.gw, 'conntrack', ['-F']) } catch { /* already empty: exit 1 on some versions */ }
  }

  /** Datagrams counted (and dropped) at the server's raw PREROUTING rule. */
  serverFloodCount (): number { return this.serverCounters()[FLOOD_COMMENT] as number }

  /** The overload workload's server-side counters: flood packets that reached the server, and segments with payload that reached the blocked target. */
  overloadCounters (): { floodDelivered: number, blockedData: number } {
    const c = this.serverCounters()
    return { floodDelivered: c[OVERFLOOD_COMMENT] as number, blockedData: c[BLOCKED_DATA_COMMENT] as number }
  }

  /** Packet counters of the server's raw PREROUTING rules, by comment. */
  serverCounters (): Record<string, number> {
    const out = this.sb.exec(this.srv, 'iptables-save', ['-c', '-t', 'raw'])
    const c: Record<string, number> = {}
    for (const name of [FLOOD_COMMENT, OVERFLOOD_COMMENT, BLOCKED_DATA_COMMENT]) {
      const line = out.split('\n').find((l) => l.includes(`"${name}"`) || l.includes(` ${name} `) || l.endsWith(` ${name}`))
      const m = line === undefined ? null : /^\[(\d+):/.exec(line)
      if (m === null) throw new Error(`server counter rule ${name} not found`)
      c[name] = Number(m[1])
    }
    return c
  }

  /** The gateway's bound NFQUEUE instances, summed. */
  queueCounters (): QueueCounters {
    const c: QueueCounters = { instances: 0, waiting: 0, dropped: 0, userDropped: 0, idSequence: 0 }
    let text = ''
    try { text = this.sb.exec(this.gw, 'cat', ['/proc/net/netfilter/nfnetlink_queue']) } catch { return c }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/).map(Number)
      if (f.length < 8 || f.some((x) => Number.isNaN(x))) continue
      c.instances++
      c.waiting += f[2] as number
      c.dropped += f[5] as number
      c.userDropped += f[6] as number
      c.idSequence += f[7] as number
    }
    return c
  }

  /** The gateway's conntrack statistics (summed over CPUs): drop, early_drop, insert_failed. */
  conntrackStats (): { drop: number, earlyDrop: number, insertFailed: number } {
    const s = { drop: 0, earlyDrop: 0, insertFailed: 0 }
    let text = ''
    try { text = this.sb.exec(this.gw, 'cat', ['/proc/net/stat/nf_conntrack']) } catch { return s }
    const lines = text.trim().split('\n')
    const head = (lines[0] ?? '').trim().split(/\s+/)
    const col = (n: string): number => head.indexOf(n)
    for (const l of lines.slice(1)) {
      const f = l.trim().split(/\s+/).map((x) => parseInt(x, 16))
      s.drop += f[col('drop')] ?? 0
      s.earlyDrop += f[col('early_drop')] ?? 0
      s.insertFailed += f[col('insert_failed')] ?? 0
    }
    return s
  }

  /** End whatever `run` still has going, then the Sandbox (its children, the namespaces). */
  destroy (): void {
    for (const c of this.#procs) {
      if (c.pid !== undefined && c.exitCode === null) try { process.kill(c.pid, 'SIGKILL') } catch { /* gone */ }
    }
    this.#procs.clear()
    this.sb.destroy()
  }
}

export interface QueueCounters { instances: number, waiting: number, dropped: number, userDropped: number, idSequence: number }

/** utime + stime of a process (all its threads) in seconds; null when it is gone. */
export function cpuSeconds (pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 of stat(5); f[0] is field 3.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return null
  }
}

/** VmHWM (peak resident set) of a process in bytes; null when it is gone. */
export function peakRss (pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : Number(m[1]) * 1024
  } catch {
    return null
  }
}

/** Host CPU: busy and total jiffies over all CPUs. */
export function hostCpu (): { busy: number, total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  return { busy: total - idle, total }
}

/** Dropped packets of the host's softnet backlogs (second column of /proc/net/softnet_stat, all CPUs). */
export function softnetDrops (): number {
  return readFileSync('/proc/net/softnet_stat', 'utf8').trim().split('\n')
    .reduce((n, l) => n + parseInt(l.trim().split(/\s+/)[1] ?? '0', 16), 0)
}

// Linux reports /proc/<pid>/stat times in USER_HZ, 100 on every architecture Node runs on.
const CLK_TCK = 100

/** `key=value key=value` -> numbers. */
export function kv (line: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const m of line.matchAll(/(\w+)=([-\d.]+)/g)) out[m[1] as string] = Number(m[2])
  return out
}

function addOffset (ip: string, n: number): string {
  const p = ip.split('.').map(Number)
  return `${p[0]}.${p[1]}.${p[2]}.${(p[3] as number) + n}`
}

export { waitUntil }

const CALIBRATION = Buffer.alloc(1 << 16, 0x5a)
/**
 * How fast this VM runs right now: milliseconds for a fixed piece of pure
 * CPU work (FNV-1a over 64 KiB, 300 times; about 20 ms on a quiet host). A
 * shared host's neighbours can slow every vCPU by tens of percent for
 * seconds at a time; measured before each slot, it tells a disturbed
 * repetition from a slow variant.
 */
export function hostSpeedMs (): number {
  const t0 = process.hrtime.bigint()
  let h = 0x811c9dc5
  for (let r = 0; r < 300; r++) {
    for (let i = 0; i < CALIBRATION.length; i++) h = Math.imul(h ^ (CALIBRATION[i] as number), 0x01000193)
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  return h === 0.5 ? -1 : ms // h is used, so the loop is not dropped
}
