import { createDecipheriv } from 'node:crypto'
import { loadQuicCrypto, type QuicCryptoAddon } from '../../native/index.js'
import { AEAD_IV_LEN, InitialKeys, NativeKeys } from './keys.js'
import type { QuicInfo } from './info.js'

/**
 * Opening one client Initial packet (RFC 9001 §5.3-5.4): header protection
 * off, then AES-128-GCM with the packet number in the nonce. Through the
 * addon (native/src/quic_crypto.cc, one call per packet) when it is built,
 * through node:crypto otherwise ({@link quicNativeCrypto}); both give the
 * same results. {@link KeyCache} keeps one DCID's keys on the path in use.
 */

/** RFC 9001 §5.3: AEAD_AES_128_GCM tag length. */
const AEAD_TAG_LEN = 16
/** RFC 9001 §5.4.2: header protection samples 16 bytes ... */
export const HP_SAMPLE_LEN = 16
/** ... starting 4 bytes after the start of the Packet Number field. */
export const HP_SAMPLE_OFFSET = 4
/** RFC 768: the 16-bit UDP length covers the 8-byte header, so a payload is at most 65527 bytes; a QUIC header is smaller. */
const MAX_UDP_PAYLOAD = 65527

const addon = loadQuicCrypto()
/** The addon's crypto while it is used, null for node:crypto. */
let native: QuicCryptoAddon | null = addon
/** Where the addon writes a plaintext; grown for a packet longer than any UDP payload (never on the wire). */
let plainOut = Buffer.alloc(MAX_UDP_PAYLOAD)

/**
 * Whether Initials are opened by the addon (true) or node:crypto (false).
 * `quicNativeCrypto(false)` switches this thread to node:crypto,
 * `quicNativeCrypto(true)` back to the addon when it loaded (tests and the
 * benchmark compare both). Returns the path in use afterwards.
 */
export function quicNativeCrypto (use?: boolean): boolean {
  if (use !== undefined) native = use ? addon : null
  return native !== null
}

/** Unprotected header copy, used as the AEAD's associated data (never write into the caller's buffer). */
const hdr = Buffer.alloc(MAX_UDP_PAYLOAD)
const nonce = Buffer.alloc(AEAD_IV_LEN)

/**
 * Decrypt one Initial packet b[pkt, pktEnd) whose Packet Number field starts
 * at pnOff, with `keys` (header-protection key derived). Returns the plaintext
 * payload, or null when the packet does not authenticate (wrong keys, mutated
 * bytes, random bytes) or is inconsistent. On success `out.pn` holds the
 * packet number.
 */
function openInitial (b: Buffer, pkt: number, pnOff: number, pktEnd: number, keys: InitialKeys, out: QuicInfo): Buffer | null {
  const hp = keys.hp
  if (hp === null) return null
  // RFC 9001 §5.4.2: sample_offset = pn_offset + 4; the caller checked that 16 bytes are there.
  const sampleAt = pnOff + HP_SAMPLE_OFFSET
  const mask = hp.update(b.subarray(sampleAt, sampleAt + HP_SAMPLE_LEN))
  // RFC 9001 §5.4.1: long header: 4 low bits of the first byte.
  const first = (b[pkt] as number) ^ ((mask[0] as number) & 0x0f)
  // RFC 9000 §17.2: the reserved bits (0x0c) are 0 once protection is removed;
  // a packet with others is dropped (not authentic) or a connection error
  // (authentic): either way the server goes no further, so neither do we, and
  // random bytes stop here 3 times in 4 without the AEAD key derivation.
  if ((first & 0x0c) !== 0) return null
  const pnLen = (first & 0x03) + 1
  const hdrLen = pnOff + pnLen - pkt
  if (pnOff + pnLen + AEAD_TAG_LEN > pktEnd || hdrLen > hdr.length) return null
  if (!keys.aead) keys.deriveAead()
  b.copy(hdr, 0, pkt, pnOff + pnLen)
  hdr[0] = first
  let pn = 0
  for (let i = 0; i < pnLen; i++) {
    const x = (b[pnOff + i] as number) ^ (mask[1 + i] as number)
    hdr[pnOff - pkt + i] = x
    pn = pn * 256 + x
  }
  // RFC 9000 §17.1/§A.3: the full packet number is decoded against the largest
  // one received, which a stateless reader does not have. Before the server has
  // acknowledged anything the client must send enough bits for the full number
  // (RFC 9000 §17.1), and client Initial numbers stay small: truncated == full.
  // RFC 9001 §5.3: nonce = iv XOR packet number (left-padded to 12 bytes).
  keys.iv.copy(nonce, 0, 0, AEAD_IV_LEN)
  for (let i = 0, x = pn; i < pnLen; i++, x = Math.floor(x / 256)) {
    const j = AEAD_IV_LEN - 1 - i
    nonce[j] = (nonce[j] as number) ^ (x & 0xff)
  }
  const ctEnd = pktEnd - AEAD_TAG_LEN
  let plain: Buffer | null = null
  // A failed tag makes final() throw, and V8 captures a stack trace for the
  // error: ~4 µs of the ~12 µs a failed open cost (bench: random-DCID Initial).
  // No trace is wanted here, so none is taken.
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    const d = createDecipheriv('aes-128-gcm', keys.key, nonce)
    d.setAAD(hdr.subarray(0, hdrLen))
    d.setAuthTag(b.subarray(ctEnd, pktEnd))
    plain = d.update(b.subarray(pnOff + pnLen, ctEnd))
    d.final() // throws when the tag does not verify
  } catch {
    plain = null
  } finally {
    Error.stackTraceLimit = limit
  }
  if (plain === null) return null
  out.pn = pn
  return plain
}


/**
 * The keys of the last (version, DCID) a packet was opened with, on the
 * crypto path in use, so a repeat of that DCID costs no HKDF.
 */
export class KeyCache {
  readonly #js = new InitialKeys()
  readonly #nat = new NativeKeys()
  /** The payload the last successful {@link open} decrypted, in [0, its return value). */
  plain: Buffer = plainOut

  /** HKDF derivations done into this cache, on both paths (tests and metrics). */
  get derivations (): number {
    return this.#js.derivations + this.#nat.derivations
  }

  /**
   * Open buf[pkt, pktEnd) with the keys of (version, DCID src[off, off + len)):
   * the plaintext length (payload in {@link plain}, packet number in out.pn),
   * or -1 when it does not authenticate. The addon writes every attempt, of
   * every cache, into the same buffer: `plain` holds this open's payload
   * until the next open of any cache.
   */
  open (version: number, src: Uint8Array, off: number, len: number,
    buf: Buffer, pkt: number, pnOff: number, pktEnd: number, out: QuicInfo): number {
    if (native !== null) {
      const nat = this.#nat
      nat.select(version, src, off, len)
      if (pktEnd - pnOff > plainOut.length) plainOut = Buffer.alloc(pktEnd - pnOff)
      const n = native.quicOpen(nat.slot, buf, pkt, pnOff, pktEnd, plainOut)
      if (n < 0) return -1
      out.pn = nat.pn
      this.plain = plainOut
      return n
    }
    const js = this.#js
    if (!js.matches(version, src, off, len)) js.deriveHp(version, src, off, len)
    const p = openInitial(buf, pkt, pnOff, pktEnd, js, out)
    if (p === null) return -1
    this.plain = p
    return p.length
  }
}
