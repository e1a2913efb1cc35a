/**
 * Options of {@link Queue}: checked once here, in TypeScript, before any
 * native call (exact messages, TypeError/RangeError), so the addon trusts
 * what it gets.
 */

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

/** An integer option (or argument) in [min, max]; TypeError when not an integer, RangeError when out of range. */
export function checkInt(name: string, value: unknown, min: number, max: number, what = `${name} option`): number {
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
