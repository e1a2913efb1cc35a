import { requireAddon } from '../native/index.js'
import { QueueError } from './error.js'
import { MAX_COPY_RANGE, MSG_OVERHEAD } from './options.js'
import { META_STRIDE, type QueueStats } from './records.js'

/**
 * The queue part of the native addon (found by src/native, which the QUIC
 * crypto and sd_notify use too): checked against this side's record layout
 * before {@link Queue} binds with it.
 */

/** One bound queue on the native side (native/src/queue.cc); {@link Queue} holds it. */
export interface NativeQueue {
  readonly fd: number
  readonly maxMessage: number
  read(buf: Uint8Array, meta: Uint32Array): number
  pending(): boolean
  wait(timeoutMs: number): boolean
  verdict(n: number, ids: Uint32Array, verdicts: Uint32Array, marks: Uint32Array): void
  stats(): QueueStats
  close(): void
}

/** The addon's exports (native/src/addon.cc). */
export interface Addon {
  readonly META_STRIDE: number
  readonly MSG_OVERHEAD: number
  readonly MAX_COPY_RANGE: number
  init(errorClass: typeof QueueError): void
  open(
    queueNum: number,
    options: { copyRange: number; maxLen: number; rcvbuf: number; failOpen: boolean; gso: boolean; verdictBatch: boolean },
  ): NativeQueue
}

/** The addon, checked against this side's constants and given QueueError (once per module instance, so per worker thread). */
export function loadAddon(): Addon {
  if (addon) return addon
  const loaded = requireAddon() as unknown as Addon
  if (loaded.META_STRIDE !== META_STRIDE || loaded.MSG_OVERHEAD !== MSG_OVERHEAD || loaded.MAX_COPY_RANGE !== MAX_COPY_RANGE) {
    throw new Error('aigate_nfq.node does not match src/queue (META_STRIDE, MSG_OVERHEAD, MAX_COPY_RANGE): rebuild it with npm run build:native')
  }
  loaded.init(QueueError)
  addon = loaded
  return loaded
}
let addon: Addon | undefined

export { loadQuicCrypto, QUIC_SLOT_SIZE, type QuicCryptoAddon } from '../native/index.js'
