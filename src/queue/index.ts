/**
 * NFQUEUE for TypeScript: presents the native addon (`native/`, built by
 * `npm run build:native`) as one {@link Queue} per queue number.
 *
 * The hot path allocates nothing: one batch buffer, one `Uint32Array` of
 * packet records and three verdict arrays are allocated when the queue is
 * opened and reused for every batch. No JS object is made per packet.
 *
 * A queue is served from a thread whose only job is that queue (a daemon
 * worker, src/daemon/worker.ts): it blocks in {@link Queue.wait} and answers
 * what waits with {@link Queue.drain}, which calls the handler once per batch.
 *
 * ```ts
 * import { Queue, META_STRIDE, META_OFFSET, META_LEN, NF_ACCEPT } from './queue/index.js'
 * const q = new Queue(0, { failOpen: true })
 * q.serveWith((b) => {
 *   for (let i = 0; i < b.count; i++) {
 *     const r = i * META_STRIDE
 *     const packet = b.buf.subarray(b.meta[r + META_OFFSET]!, b.meta[r + META_OFFSET]! + b.meta[r + META_LEN]!)
 *     b.verdicts[i] = NF_ACCEPT // b.ids[i] is already the packet id; b.marks[i] is MARK_KEEP
 *   }
 *   return b.count
 * })
 * for (;;) if (q.wait(1000)) q.drain()
 * ```
 *
 * Beside this file: records.ts (the batch: `META_*` record words, verdict
 * arrays, counters), options.ts (defaults and their checks), error.ts
 * (QueueError), addon.ts (finding and loading the `.node` file).
 *
 * @module
 */
import { loadAddon, type NativeQueue } from './addon.js'
import { QueueError, explainOpenError } from './error.js'
import { checkInt, resolveOptions, type QueueOptions } from './options.js'
import { META_STRIDE, MARK_KEEP, VERDICT_UNSET, type Batch, type BatchHandler, type QueueStats } from './records.js'

/** Kernel verdict codes (linux/netfilter.h); defined in src/verdict/marks.ts, beside the marks they go with. */
export { NF_DROP, NF_ACCEPT, NF_REPEAT } from '../verdict/marks.js'
export {
  META_STRIDE, META_ID, META_MARK, META_OFFSET, META_LEN, META_ORIG_LEN, META_INDEV, META_OUTDEV, META_INFO,
  PKT_TRUNCATED, PKT_GSO, PKT_CSUM_NOTREADY, PKT_CSUM_NOTVERIFIED, PKT_MSG_TRUNCATED,
  MARK_KEEP, VERDICT_UNSET,
  type Batch, type BatchHandler, type QueueStats,
} from './records.js'
export { resolveOptions, MSG_OVERHEAD, MAX_COPY_RANGE, type QueueOptions } from './options.js'
export { QueueError } from './error.js'
export { loadQuicCrypto, QUIC_SLOT_SIZE, type QuicCryptoAddon } from './addon.js'

/**
 * Reads per {@link Queue.drain} call: under a flood the serving thread still
 * gets back to its other duties (messages from the main thread, log flushes).
 */
const MAX_READS_PER_DRAIN = 16

/**
 * One bound NFQUEUE. Opening binds the queue immediately (packets start to
 * wait in the kernel); {@link Queue.drain}, after {@link Queue.serveWith},
 * hands them to the handler.
 */
export class Queue {
  /** The queue number (iptables `--queue-num`). */
  readonly queueNum: number
  readonly options: Readonly<Required<QueueOptions>>
  #native: NativeQueue | null
  #batch: Batch
  #handler: BatchHandler | null = null
  #draining = false

  /**
   * Binds `queueNum` and configures it. Throws TypeError/RangeError for bad
   * arguments and {@link QueueError} when the kernel refuses: `code` 'EPERM'
   * without CAP_NET_ADMIN, 'EBUSY' when another socket has the queue.
   */
  constructor(queueNum: number, options: QueueOptions = {}) {
    checkInt('queueNum', queueNum, 0, 65535, 'queue number')
    const o = resolveOptions(options)
    const native = loadAddon()
    this.queueNum = queueNum
    this.options = Object.freeze(o)
    try {
      this.#native = native.open(queueNum, o)
    } catch (err) {
      throw explainOpenError(err, queueNum)
    }
    const ids = new Uint32Array(o.batchSize)
    this.#batch = {
      count: 0,
      buf: new Uint8Array(o.bufferSize),
      meta: new Uint32Array(o.batchSize * META_STRIDE),
      ids,
      verdicts: new Uint32Array(o.batchSize),
      marks: new Uint32Array(o.batchSize),
    }
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#native === null
  }

  /** The netlink socket's file descriptor (for diagnostics; do not read from it). */
  get fd(): number {
    return this.#open().fd
  }

  /**
   * Sets the batch handler; calling it again replaces it. The caller serves
   * the queue itself with {@link wait} and {@link drain}, from a thread whose
   * only job is this queue. Each packet then costs what it costs a C loop
   * (poll, recvmmsg, one verdict sendmsg), without an event-loop turn and
   * a callback into JavaScript per wake-up.
   */
  serveWith(handler: BatchHandler): this {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    this.#handler = handler
    return this
  }

  /**
   * Blocks the calling thread until packets wait or `timeoutMs` pass; true
   * when {@link drain} will find something. It blocks the event loop of the
   * thread that calls it.
   */
  wait(timeoutMs: number): boolean {
    checkInt('timeoutMs', timeoutMs, 0, 0x7fffffff, 'timeoutMs')
    return this.#open().wait(timeoutMs)
  }

  /** Reads and hands to the handler whatever waits (a bounded number of reads); returns the packets handled. */
  drain(): number {
    if (this.#draining) return 0 // a handler must not re-enter; the next drain resumes
    const native = this.#native
    const handler = this.#handler
    if (native === null || handler === null) return 0
    const b = this.#batch
    const { buf, meta, ids, verdicts, marks } = b
    let handled = 0
    this.#draining = true
    try {
      for (let reads = 0; reads < MAX_READS_PER_DRAIN; reads++) {
        const n = native.read(buf, meta)
        if (n === 0) {
          if (native.pending()) continue
          return handled
        }
        for (let i = 0; i < n; i++) {
          ids[i] = meta[i * META_STRIDE]!
          verdicts[i] = VERDICT_UNSET
          marks[i] = MARK_KEEP
        }
        b.count = n
        handled += n
        const send = handler(b)
        if (!(send >= 0 && send <= ids.length) || !Number.isInteger(send)) {
          throw new RangeError(`batch handler must return an integer from 0 to ${ids.length}, got ${String(send)}`)
        }
        if (send > 0) native.verdict(send, ids, verdicts, marks)
        if (this.#native === null || this.#handler !== handler) return handled // closed or replaced inside
        // A short batch means the socket was empty (the buffer holds more than
        // batchSize messages): skip the read that would only say so; anything
        // that arrived since makes the next wait() return at once.
        if (n < ids.length && !native.pending()) return handled
      }
      return handled
    } finally {
      this.#draining = false
    }
  }

  /** Counters since open (zeros after close). */
  stats(): QueueStats {
    return this.#native ? this.#native.stats() : { packets: 0, batches: 0, enobufs: 0, recvErrors: 0, sendErrors: 0, verdicts: 0, verdictErrors: 0 }
  }

  /** Unbinds the queue; the kernel drops packets still waiting for a verdict. Idempotent. */
  close(): void {
    this.#handler = null
    this.#native?.close()
    this.#native = null
  }

  #open(): NativeQueue {
    if (this.#native === null) throw new QueueError(`NFQUEUE ${this.queueNum} is closed`, 'EBADF', -9, 'closed')
    return this.#native
  }
}
