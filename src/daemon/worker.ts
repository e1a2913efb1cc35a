import { readFileSync } from 'node:fs'
import { parentPort, workerData, receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import { Queue, QueueError, MAX_COPY_RANGE, NF_DROP, META_STRIDE, META_OFFSET, META_LEN, META_MARK } from '../queue/index.js'
import { decodeIp, PacketView } from '../decode/packet.js'
import { Status } from '../util/status.js'
import { Classifier, Outcome } from '../classify/index.js'
import { compileRules, type RuleTexts } from '../config/index.js'
import { DecisionLog, FdLines, type LogExtra } from '../log/index.js'
import { answer } from '../verdict/index.js'
import { DecisionCounts } from '../metrics/counts.js'
import { parseKernelQueues, type KernelQueue, type WorkerCounters, type WorkerReport } from './report.js'

/**
 * One worker thread per queue: owns its queue, its compiled rules, its cache
 * and its log writer, so workers share nothing and never wait on each other.
 * Messages from the main thread: 'reload' (compile the rule texts it carries,
 * which the main thread read and checked, and swap), 'reopen'
 * (open the log file again, after logrotate), 'stop' (answer what is held,
 * close), 'stats'.
 *
 * The thread serves its queue in a plain loop, as a C program would: block
 * in poll(2) until packets wait, read and answer them, look at messages and
 * the log's flush time, block again. Its event loop never runs while the
 * queue is open (messages are taken with receiveMessageOnPort), so a packet
 * costs poll, recvmmsg and one verdict sendmsg, the C per-packet loop's
 * calls, and no event-loop turn (which cost a second epoll_pwait and a
 * callback into JavaScript per wake-up).
 */
export interface WorkerConfig {
  queue: number
  /** The rule files' texts the main thread read and checked; the worker opens no rule file. */
  rules: RuleTexts
  cacheSize: number
  /** '-' for stdout, else a file path (appended). */
  log: string
  failOpen: boolean
  /** Shared by every worker's log writer (see FdLines). */
  logLock: SharedArrayBuffer
}

/** From the main thread: swap in these rules (read and checked there). */
export interface ReloadMessage { type: 'reload', rules: RuleTexts }

export type FromWorker =
  | { type: 'ready', queue: number }
  | { type: 'error', queue: number, code: string, message: string }
  | { type: 'reloaded', queue: number, ok: boolean, message?: string }
  | { type: 'stats', queue: number, stats: Record<string, number> }
  | { type: 'stopped', queue: number }
  | { type: 'logerror', queue: number, code: string, message: string }
  | { type: 'reopened', queue: number, ok: boolean, code?: string, message?: string }
  | WorkerReport

/** Longest a decision line waits in the worker's buffer. */
const LOG_FLUSH_MS = 50
/** Reads of what waits in the kernel's queue when stopping (each takes up to a batch). */
const STOP_DRAIN_ROUNDS = 64
/** Longest the loop blocks with nothing to do: how soon a message (reload, stats, stop) is seen. */
const IDLE_WAIT_MS = 100

/** The kernel's line for the queue; the -1s when it is not readable here. */
function kernelQueue (queueNum: number): KernelQueue | null {
  try {
    return parseKernelQueues(readFileSync('/proc/net/netfilter/nfnetlink_queue', 'latin1'), queueNum)
  } catch {
    return { portId: -1, overloadDropped: -1, userDropped: -1 }
  }
}

/** How often the loop reports to the main thread (metrics, status, the systemd watchdog). */
const REPORT_MS = 1000

const cfg = workerData as WorkerConfig
if (parentPort === null) throw new Error('daemon/worker.ts must run in a worker thread')
const port: MessagePort = parentPort
const post = (m: FromWorker): void => port.postMessage(m)

/** Opens the queue and everything it needs; returns the serving loop, or null when it could not (an 'error' was posted). */
function start (): (() => void) | null {
  const classifier = new Classifier(compileRules(cfg.rules), cfg.cacheSize, undefined, true)
  // Lines are gathered in a 64 KiB buffer and written as one run of whole
  // lines, under a lock all workers share (see FdLines), when the buffer is
  // full or LOG_FLUSH_MS after the first line waiting: a write(2) per line or
  // per small batch costs more than the line.
  const sink = new FdLines(cfg.log, cfg.logLock)
  sink.onError = (e) => { post({ type: 'logerror', queue: cfg.queue, code: e.code, message: e.message }) }
  const log = new DecisionLog(sink)
  /** When the oldest line in the buffer was written (performance.now()); 0: none waits. */
  let lineWaitsSince = 0
  let queue: Queue
  try {
    // Every packet is answered in its own batch (none is held back), so runs of
    // equal verdicts may go as one batch verdict. The whole packet is copied:
    // with GRO on the ingress NIC or TSO on a client, one queued packet can
    // hold a whole 6 kB hello (or, defragmented, a 64 KiB datagram), and a cut
    // one would hide its name. The buffer holds 256 such packets per read.
    queue = new Queue(cfg.queue, { failOpen: cfg.failOpen, verdictBatch: true, copyRange: MAX_COPY_RANGE, bufferSize: 256 * (MAX_COPY_RANGE + 1024) })
  } catch (err) {
    const e = err as QueueError
    sink.close()
    post({ type: 'error', queue: cfg.queue, code: e.code ?? 'EINVAL', message: e.message })
    return null
  }
  const view = new PacketView()
  const out = new Outcome()
  const extra: LogExtra = { queue: cfg.queue, durationNs: 0 }
  let bufView: Buffer | null = null
  let bufSource: Uint8Array | null = null
  let decided = 0
  /** Queued packets whose IP/transport headers we could not read: dropped. */
  let undecodable = 0
  const counts = new DecisionCounts()
  let lastVerdict = 0
  queue.serveWith((b) => {
    if (b.buf !== bufSource) { bufSource = b.buf; bufView = Buffer.from(b.buf.buffer, b.buf.byteOffset, b.buf.byteLength) }
    const buf = bufView as Buffer
    const meta = b.meta
    const t0 = performance.now()
    const now = Date.now()
    for (let i = 0; i < b.count; i++) {
      const r = i * META_STRIDE
      const off = meta[r + META_OFFSET] as number
      if (decodeIp(buf, off, off + (meta[r + META_LEN] as number), view) !== Status.Ok) {
        // The firewall queues only packets that may open a flow; one we cannot
        // decode (a header chain or length no stack sends) is not waved through.
        b.verdicts[i] = NF_DROP
        undecodable++
      } else {
        const named = classifier.classify(view, out, now)
        if (answer(out, meta[r + META_MARK] as number, b.verdicts, b.marks, i)) decided++
        if (named > 0) {
          counts.add(out)
          extra.durationNs = Math.round((performance.now() - t0) * 1e6)
          log.write(view, out, extra)
        }
      }
    }
    if (sink.pos > 0 && lineWaitsSince === 0) lineWaitsSince = t0
    lastVerdict = now
    return b.count
  })
  post({ type: 'ready', queue: cfg.queue })

  const counters = (): WorkerCounters => {
    const k = kernelQueue(cfg.queue)
    const f = classifier.flows.stats
    return {
      ...queue.stats(),
      overloadDropped: k?.overloadDropped ?? -1,
      userDropped: k?.userDropped ?? -1,
      bound: k === null ? 0 : 1,
      portId: k?.portId ?? 0,
      decided,
      undecodable,
      classified: classifier.stats.packets,
      implausible: f.implausible,
      tooManySegments: f.tooManySegments,
      cacheHits: classifier.cache.hits,
      cacheMisses: classifier.cache.misses,
      tcpFlows: classifier.flows.size,
      quicFlows: classifier.quicFlows.size,
      flowsEvicted: f.evicted,
      flowsExpired: f.expired,
      flowsShed: f.shed,
      flowsLost: f.lost,
      logLines: sink.written,
      logLost: sink.lost,
    }
  }
  let reportedAt = 0
  const report = (): void => {
    const at = Date.now()
    if (at - reportedAt < REPORT_MS) return
    reportedAt = at
    post({ type: 'report', queue: cfg.queue, at, lastVerdict, counters: counters(), decisions: counts.snapshot() })
  }

  /** Handles one message from the main thread; false after 'stop'. */
  const onMessage = (m: { type: string }): boolean => {
    if (m.type === 'reload') {
      try {
        classifier.swap(compileRules((m as ReloadMessage).rules))
        counts.fold()
        post({ type: 'reloaded', queue: cfg.queue, ok: true })
      } catch (err) {
        post({ type: 'reloaded', queue: cfg.queue, ok: false, message: (err as Error).message })
      }
    } else if (m.type === 'reopen') {
      // The lines waiting in the buffer go to the old file first (see FdLines.reopen).
      const e = sink.reopen()
      lineWaitsSince = 0
      post(e === null ? { type: 'reopened', queue: cfg.queue, ok: true } : { type: 'reopened', queue: cfg.queue, ok: false, code: e.code, message: e.message })
    } else if (m.type === 'stats') {
      post({ type: 'stats', queue: cfg.queue, stats: counters() as unknown as Record<string, number> })
    } else if (m.type === 'stop') {
      // Batches are answered synchronously, so nothing is held between them.
      // Packets still in the kernel's queue would be dropped by the unbind:
      // answer what waits first (bounded, as new packets keep coming).
      for (let i = 0; i < STOP_DRAIN_ROUNDS && queue.wait(0); i++) queue.drain()
      queue.close()
      sink.close()
      post({ type: 'stopped', queue: cfg.queue })
      port.close()
      return false
    }
    return true
  }

  return () => {
    for (;;) {
      const waited = lineWaitsSince === 0 ? 0 : performance.now() - lineWaitsSince
      const timeout = lineWaitsSince === 0 ? IDLE_WAIT_MS : Math.max(0, Math.ceil(LOG_FLUSH_MS - waited))
      if (queue.wait(timeout)) queue.drain()
      if (lineWaitsSince !== 0 && (performance.now() - lineWaitsSince >= LOG_FLUSH_MS || sink.pos === 0)) {
        sink.flush()
        lineWaitsSince = 0
      }
      for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
        if (!onMessage(m.message as { type: string })) return
      }
      report()
    }
  }
}

let serve: (() => void) | null = null
try {
  serve = start()
} catch (err) {
  post({ type: 'error', queue: cfg.queue, code: (err as { code?: string }).code ?? 'ECONFIG', message: (err as Error).message })
}
// Outside the try: a failure while serving is the worker's uncaught error, as it would be in a callback.
serve?.()
