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
 * @module
 */
import { createRequire } from 'node:module'

/** Kernel verdict codes (linux/netfilter.h); defined in src/verdict/marks.ts, beside the marks they go with. */
export { NF_DROP, NF_ACCEPT, NF_REPEAT } from '../verdict/marks.js'

/** Words per packet record in {@link Batch.meta}. */
export const META_STRIDE = 8
/** Packet id; {@link Batch.ids} already holds a copy. */
export const META_ID = 0
/** Packet mark (skb->mark) when queued; 0 if none. */
export const META_MARK = 1
/** Offset in {@link Batch.buf} of the packet, starting at its IP header. */
export const META_OFFSET = 2
/** Bytes of the packet present in {@link Batch.buf} (at most `copyRange`). */
export const META_LEN = 3
/** Length of the whole packet; larger than META_LEN when truncated (copy range, GSO). */
export const META_ORIG_LEN = 4
/** Input interface index, 0 if none (e.g. OUTPUT hook). */
export const META_INDEV = 5
/** Output interface index, 0 if none (e.g. PREROUTING hook). */
export const META_OUTDEV = 6
/**
 * Packed word: `hwProtocol` (ethertype, bits 0-15: 0x0800 IPv4, 0x86dd IPv6),
 * netfilter `hook` (bits 16-23: NF_INET_PRE_ROUTING 0 ... POST_ROUTING 4),
 * `flags` (bits 24-31, the `PKT_*` bits).
 */
export const META_INFO = 7

/** META_INFO flag: META_LEN < META_ORIG_LEN. */
export const PKT_TRUNCATED = 1 << 24
/** META_INFO flag: a GSO packet larger than the MTU (kernel flag NFQA_SKB_GSO). */
export const PKT_GSO = 1 << 25
/** META_INFO flag: checksum not computed yet (NFQA_SKB_CSUMNOTREADY): do not validate it. */
export const PKT_CSUM_NOTREADY = 1 << 26
/** META_INFO flag: checksum not verified by the device (NFQA_SKB_CSUM_NOTVERIFIED). */
export const PKT_CSUM_NOTVERIFIED = 1 << 27
/** META_INFO flag: the netlink message was cut short; no payload (should never happen). */
export const PKT_MSG_TRUNCATED = 1 << 28

/** `marks[i]` value that leaves the packet mark unchanged. */
export const MARK_KEEP = 0xffffffff
/** What `verdicts[i]` holds before the handler writes it; sending it throws a RangeError. */
export const VERDICT_UNSET = 0xffffffff

/** Options of {@link Queue}; every field is optional. */
export interface QueueOptions {
  /**
   * Bytes of each packet copied to userspace, counted from the IP header.
   * Integer from 1 to 65531 (the kernel's NFQNL_MAX_COPY_RANGE). Default 4096: a
   * post-quantum ClientHello (about 1.8 kB) plus headers fits.
   */
  copyRange?: number
  /** Packets the kernel holds for us before it drops (or, with `failOpen`, accepts). Integer from 1 to 4294967295. Default 1024 (the kernel's default). */
  maxLen?: number
  /**
   * When the queue is full, accept packets instead of dropping them
   * (NFQA_CFG_F_FAIL_OPEN). Default `false`, as the kernel. Not the same as
   * iptables `--queue-bypass`, which accepts when no program is bound.
   */
  failOpen?: boolean
  /** Receive GSO packets unsegmented (NFQA_CFG_F_GSO); cheaper, and we never rewrite packets. Default `true`. */
  gso?: boolean
  /**
   * The handler answers every packet of its batch (returns `count`): then a
   * run of packets with the same verdict and mark is answered with one
   * NFQNL_MSG_VERDICT_BATCH message instead of one message each, less work
   * for the kernel per packet. Default `false`: the kernel applies a batch
   * verdict to every queued packet up to the id it names, so one the handler
   * left unanswered would be answered too.
   */
  verdictBatch?: boolean
  /** Socket receive buffer in bytes (SO_RCVBUFFORCE). Integer from 65536 to 1073741824. Default 8 MiB. */
  rcvbuf?: number
  /** Most packets per batch (size of `meta` and the verdict arrays). Integer from 1 to 65536. Default 256. */
  batchSize?: number
  /**
   * Bytes of the batch buffer. Integer from `copyRange + 1024` to 1073741824.
   * Default 4 MiB. The addon receives with recvmmsg into slots of
   * `copyRange + 1024` bytes, so one read takes at most
   * `bufferSize / (copyRange + 1024)` packets (819 with the defaults); it
   * stops before a message could overflow the buffer, and the rest waits in
   * the socket for the next read.
   */
  bufferSize?: number
}

/** Counters since open; all grow monotonically. */
export interface QueueStats {
  /** Packet records handed to the handler. */
  packets: number
  /** Reads that returned at least one packet. */
  batches: number
  /** recv() ENOBUFS (normally 0: NETLINK_NO_ENOBUFS is set and the kernel drops silently). */
  enobufs: number
  /** Failed recv() calls and malformed messages. */
  recvErrors: number
  /** Failed verdict sendmsg() calls. */
  sendErrors: number
  /** Verdicts handed to the kernel. */
  verdicts: number
  /** Verdicts the kernel refused (error replies, e.g. ENOENT for an unknown id). */
  verdictErrors: number
}

/**
 * One batch. The same object, and the same arrays, are passed to every
 * handler call: copy what must outlive the call.
 */
export interface Batch {
  /** Packets in this batch: records `0 .. count-1` of {@link meta}. */
  count: number
  /** Packet bytes; find packet i with META_OFFSET / META_LEN of its record. */
  readonly buf: Uint8Array
  /** `count` records of {@link META_STRIDE} words: see the `META_*` constants. */
  readonly meta: Uint32Array
  /** Packet ids of the verdicts to send; prefilled: `ids[i]` is packet i's id. */
  readonly ids: Uint32Array
  /** Verdict for `ids[i]` (NF_ACCEPT, NF_DROP, NF_REPEAT); prefilled with VERDICT_UNSET. */
  readonly verdicts: Uint32Array
  /** Mark to set with `verdicts[i]`; prefilled with MARK_KEEP. */
  readonly marks: Uint32Array
}

/**
 * Called once per batch. Write `verdicts[i]` (and `marks[i]` if the mark
 * must change) for `i < count` and return how many entries of `ids`,
 * `verdicts` and `marks` to send, normally `count`. A packet left without a
 * verdict stays in the kernel queue; on close the kernel drops it.
 *
 * If the handler throws, nothing is sent for this batch and the exception
 * propagates out of {@link Queue.drain}.
 */
export type BatchHandler = (batch: Batch) => number

/** A failed system or netlink call. Thrown by {@link Queue} methods; constructed by the addon too. */
export class QueueError extends Error {
  /** Error name in Node's style: 'EPERM', 'EBUSY', 'EBADF', ... */
  readonly code: string
  /** Negative errno, as `err.errno` of Node's own system errors. */
  readonly errno: number
  /** The failed operation: 'socket', 'bind', 'NFQNL_CFG_CMD_BIND', 'recv', 'sendmsg', ... */
  readonly syscall: string

  constructor(message: string, code: string, errno: number, syscall: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.errno = errno
    this.syscall = syscall
  }
}
Object.defineProperty(QueueError.prototype, 'name', { value: 'QueueError', enumerable: false, writable: true, configurable: true })

interface NativeQueue {
  readonly fd: number
  readonly maxMessage: number
  read(buf: Uint8Array, meta: Uint32Array): number
  pending(): boolean
  wait(timeoutMs: number): boolean
  verdict(n: number, ids: Uint32Array, verdicts: Uint32Array, marks: Uint32Array): void
  stats(): QueueStats
  close(): void
}

interface Addon {
  readonly META_STRIDE: number
  readonly MSG_OVERHEAD: number
  readonly MAX_COPY_RANGE: number
  init(errorClass: typeof QueueError): void
  open(
    queueNum: number,
    options: { copyRange: number; maxLen: number; rcvbuf: number; failOpen: boolean; gso: boolean; verdictBatch: boolean },
  ): NativeQueue
}

/** Paths tried in order: from src/queue/ (tsx, tap) and from dist/src/queue/ (tsc output). */
const ADDON_PATHS = ['../../native/build/Release/aigate_nfq.node', '../../../native/build/Release/aigate_nfq.node']

let addon: Addon | undefined

function loadAddon(): Addon {
  if (addon) return addon
  const require = createRequire(import.meta.url)
  let lastError: unknown
  for (const rel of ADDON_PATHS) {
    let loaded: Addon
    try {
      loaded = require(new URL(rel, import.meta.url).pathname) as Addon
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
      lastError = err
      continue
    }
    if (loaded.META_STRIDE !== META_STRIDE || loaded.MSG_OVERHEAD !== MSG_OVERHEAD || loaded.MAX_COPY_RANGE !== MAX_COPY_RANGE) {
      throw new Error('aigate_nfq.node does not match src/queue/index.ts (META_STRIDE, MSG_OVERHEAD, MAX_COPY_RANGE): rebuild it with npm run build:native')
    }
    loaded.init(QueueError) // per module instance, so per worker thread
    addon = loaded
    return loaded
  }
  throw new Error('native/build/Release/aigate_nfq.node not found: build it with npm run build:native', { cause: lastError })
}

/**
 * The addon's QUIC Initial crypto (`native/src/quic_crypto.cc`, OpenSSL EVP),
 * used by src/extract/quic.ts. A slot is a Uint8Array of `QUIC_SLOT_SIZE`
 * bytes that holds one DCID's keys; the layout is in quic_crypto.cc.
 */
export interface QuicCryptoAddon {
  readonly QUIC_SLOT_SIZE: number
  /** Derive every key of the slot's (version, DCID) (tests). */
  quicDerive(slot: Uint8Array): void
  /** Header protection off + AES-128-GCM open of buf[pkt, pktEnd): plaintext length in `out`, or -1. */
  quicOpen(slot: Uint8Array, buf: Uint8Array, pkt: number, pnOff: number, pktEnd: number, out: Uint8Array): number
}

/** Slot size quic_crypto.cc and src/extract/quic.ts agree on. */
export const QUIC_SLOT_SIZE = 112

/**
 * The addon's QUIC crypto, or null when the addon is not built, does not load
 * (e.g. libmnl missing), or has no QUIC crypto (an older build, or an OpenSSL
 * without the algorithms). Never throws: offline `aigate classify` works
 * without the addon, and quic.ts then uses node:crypto.
 */
export function loadQuicCrypto(): QuicCryptoAddon | null {
  const require = createRequire(import.meta.url)
  for (const rel of ADDON_PATHS) {
    try {
      const loaded = require(new URL(rel, import.meta.url).pathname) as Partial<QuicCryptoAddon>
      if (typeof loaded.quicOpen !== 'function' || typeof loaded.quicDerive !== 'function' || loaded.QUIC_SLOT_SIZE !== QUIC_SLOT_SIZE) return null
      return loaded as QuicCryptoAddon
    } catch {
      continue
    }
  }
  return null
}

/** Bytes the addon needs free in the batch buffer beyond copyRange (NFQ_MSG_OVERHEAD in nfq.h). */
export const MSG_OVERHEAD = 1024
/** Largest copy range the kernel honours (NFQNL_MAX_COPY_RANGE = 0xffff - NLA_HDRLEN). */
export const MAX_COPY_RANGE = 65531

const DEFAULTS = {
  copyRange: 4096,
  maxLen: 1024,
  failOpen: false,
  gso: true,
  verdictBatch: false,
  rcvbuf: 8 * 1024 * 1024,
  batchSize: 256,
  bufferSize: 4 * 1024 * 1024,
} as const satisfies Required<QueueOptions>

const OPTION_NAMES = Object.keys(DEFAULTS) as (keyof QueueOptions)[]
const MAX_BYTES = 1024 * 1024 * 1024

function checkInt(name: string, value: unknown, min: number, max: number, what = `${name} option`): number {
  const message = `${what} must be an integer from ${min} to ${max}`
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(message)
  if (value < min || value > max) throw new RangeError(message)
  return value
}

function checkBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} option must be a boolean`)
  return value
}

/** Validates options and fills defaults; throws TypeError/RangeError with exact messages. */
export function resolveOptions(options: QueueOptions = {}): Required<QueueOptions> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  for (const key of Object.keys(options)) {
    if ((OPTION_NAMES as string[]).includes(key)) continue
    const near = OPTION_NAMES.find((n) => n.toLowerCase() === key.toLowerCase())
    throw new TypeError(near ? `Misspelled option "${key}" should be "${near}"` : `Unknown option "${key}"`)
  }
  const o = { ...DEFAULTS, ...options }
  // An explicit undefined means "default", as if the key were absent.
  for (const n of OPTION_NAMES) if (o[n] === undefined) (o as Record<string, unknown>)[n] = DEFAULTS[n]
  const copyRange = checkInt('copyRange', o.copyRange, 1, MAX_COPY_RANGE)
  return {
    copyRange,
    maxLen: checkInt('maxLen', o.maxLen, 1, 0xffffffff),
    failOpen: checkBool('failOpen', o.failOpen),
    gso: checkBool('gso', o.gso),
    verdictBatch: checkBool('verdictBatch', o.verdictBatch),
    rcvbuf: checkInt('rcvbuf', o.rcvbuf, 65536, MAX_BYTES),
    batchSize: checkInt('batchSize', o.batchSize, 1, 65536),
    bufferSize: checkInt('bufferSize', o.bufferSize, copyRange + MSG_OVERHEAD, MAX_BYTES),
  }
}

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

function explainOpenError(err: unknown, queueNum: number): unknown {
  if (!(err instanceof QueueError)) return err
  let message: string
  if (err.code === 'EPERM') {
    message = `cannot open NFQUEUE ${queueNum}: operation not permitted (EPERM); the process needs CAP_NET_ADMIN in its network namespace`
  } else if (err.code === 'EBUSY') {
    message = `cannot open NFQUEUE ${queueNum}: queue ${queueNum} is already bound by another socket (EBUSY); stop the other consumer or use another queue number`
  } else {
    message = `cannot open NFQUEUE ${queueNum}: ${err.message}`
  }
  return new QueueError(message, err.code, err.errno, err.syscall, { cause: err })
}
