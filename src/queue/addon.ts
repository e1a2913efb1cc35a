import { createRequire } from 'node:module'
import { QueueError } from './error.js'
import { MAX_COPY_RANGE, MSG_OVERHEAD } from './options.js'
import { META_STRIDE, type QueueStats } from './records.js'

/**
 * Finding and loading the native addon (`native/`, built by
 * `npm run build:native`): its queue part for {@link Queue}, its QUIC crypto
 * for src/extract/quic.ts. Nothing else loads the `.node` file.
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
  /** sd_notify(3): one datagram to a systemd notify socket (a path or @abstract); whether it was sent (native/src/notify.cc). */
  notify(path: string, state: string): boolean
  open(
    queueNum: number,
    options: { copyRange: number; maxLen: number; rcvbuf: number; failOpen: boolean; gso: boolean; verdictBatch: boolean },
  ): NativeQueue
}

/** Paths tried in order: from src/queue/ (tsx, tap) and from dist/src/queue/ (tsc output). */
const ADDON_PATHS = ['../../native/build/Release/aigate_nfq.node', '../../../native/build/Release/aigate_nfq.node']

let addon: Addon | undefined

/** The addon, loaded once per module instance (so per worker thread) and checked against this side's constants. */
export function loadAddon(): Addon {
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
      throw new Error('aigate_nfq.node does not match src/queue (META_STRIDE, MSG_OVERHEAD, MAX_COPY_RANGE): rebuild it with npm run build:native')
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
