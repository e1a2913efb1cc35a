import { createRequire } from 'node:module'

/**
 * Finding the native addon (`native/`, built by `npm run build:native`), at
 * the bottom of the layers: the queue (src/queue) binds NFQUEUE with it, the
 * QUIC parser (src/extract) decrypts Initials with its OpenSSL EVP code, the
 * daemon sends sd_notify through it. Each user checks the part it needs.
 */

/** Paths tried in order: from src/native/ (tap) and from dist/src/native/ (tsc output). */
const ADDON_PATHS = ['../../native/build/Release/aigate_nfq.node', '../../../native/build/Release/aigate_nfq.node']

/**
 * The addon's exports, loaded once per module instance (so per worker
 * thread); throws when no build is found, with the reason.
 */
export function requireAddon (): Record<string, unknown> {
  if (loaded !== undefined) return loaded
  const require = createRequire(import.meta.url)
  let lastError: unknown
  for (const rel of ADDON_PATHS) {
    try {
      loaded = require(new URL(rel, import.meta.url).pathname) as Record<string, unknown>
      return loaded
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
      lastError = err
    }
  }
  throw new Error('native/build/Release/aigate_nfq.node not found: build it with npm run build:native', { cause: lastError })
}
let loaded: Record<string, unknown> | undefined

/**
 * The addon's QUIC Initial crypto (`native/src/quic_crypto.cc`, OpenSSL EVP),
 * used by src/extract/quic. A slot is a Uint8Array of `QUIC_SLOT_SIZE`
 * bytes that holds one DCID's keys; the layout is in quic_crypto.cc.
 */
export interface QuicCryptoAddon {
  readonly QUIC_SLOT_SIZE: number
  /** Derive every key of the slot's (version, DCID) (tests). */
  quicDerive(slot: Uint8Array): void
  /** Header protection off + AES-128-GCM open of buf[pkt, pktEnd): plaintext length in `out`, or -1. */
  quicOpen(slot: Uint8Array, buf: Uint8Array, pkt: number, pnOff: number, pktEnd: number, out: Uint8Array): number
}

/** Slot size quic_crypto.cc and src/extract/quic agree on. */
export const QUIC_SLOT_SIZE = 112

/**
 * The addon's QUIC crypto, or null when the addon is not built, does not load
 * (e.g. libmnl missing), or has no QUIC crypto (an older build, or an OpenSSL
 * without the algorithms). Never throws: offline `aigate classify` works
 * without the addon, and quic.ts then uses node:crypto.
 */
export function loadQuicCrypto (): QuicCryptoAddon | null {
  try {
    const a = requireAddon() as Partial<QuicCryptoAddon>
    if (typeof a.quicOpen !== 'function' || typeof a.quicDerive !== 'function' || a.QUIC_SLOT_SIZE !== QUIC_SLOT_SIZE) return null
    return a as QuicCryptoAddon
  } catch {
    return null
  }
}

/**
 * sd_notify(3) through the addon (native/src/notify.cc): one datagram to a
 * systemd notify socket (a path, or `@name` for the abstract namespace).
 * False when it was not sent or the addon is missing; never throws.
 */
export function notifySocket (path: string, state: string): boolean {
  try {
    const a = requireAddon() as { notify?: (path: string, state: string) => boolean }
    return typeof a.notify === 'function' && a.notify(path, state)
  } catch {
    return false
  }
}
