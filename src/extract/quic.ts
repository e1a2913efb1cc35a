import { Status } from '../util/status.js'
import { u32 } from '../util/bytes.js'
import type { CryptoAssembler } from './quic/assembler.js'
import { walkFrames } from './quic/frames.js'
import { type QuicInfo, QuicRefusal } from './quic/info.js'
import { isKnownVersion, MAX_CID_LEN, QUIC_V2, sameBytes } from './quic/keys.js'
import { HP_SAMPLE_LEN, HP_SAMPLE_OFFSET, KeyCache } from './quic/open.js'
import { readVarint, varintLen } from './quic/varint.js'

export { MAX_CRYPTO_BYTES, CryptoAssembler } from './quic/assembler.js'
export { QuicRefusal, quicRefusalName, QuicInfo } from './quic/info.js'
export {
  QUIC_V1, QUIC_V2, QUIC_DRAFT29, INITIAL_SALT_V1, INITIAL_SALT_V2, INITIAL_SALT_DRAFT29, MAX_CID_LEN,
  hkdfLabel, isKnownVersion, InitialKeys,
} from './quic/keys.js'
export { quicNativeCrypto } from './quic/open.js'

/**
 * QUIC client Initial reader: decrypts the Initial packets of one UDP datagram
 * (QUIC v1, RFC 9000/9001; v2, RFC 9369; and draft-29, draft-ietf-quic-tls-29,
 * which Caddy/quic-go and older clients still speak) and reassembles the CRYPTO
 * stream they carry into the TLS ClientHello, read by tls/hello.ts.
 *
 * Initial packets are encrypted, but with keys anyone can derive from the
 * Destination Connection ID the client chose (RFC 9001 §5.2, §7): this is
 * "obfuscation", not confidentiality, and it is what lets a gateway read the
 * SNI. The steps for each Initial packet:
 *
 *   0. cheap refusals, no crypto: unknown version, datagram under 1200 bytes,
 *      fixed bit cleared or DCID under 8 bytes on a first Initial without a
 *      token, CID/token/Length fields past the datagram   (RFC 9000 §5.2.2,
 *      §7.2, §14.1, §17.2; RFC 9287 §3)
 *   1. hp     = HKDF(version salt, DCID) → client secret → hp   (RFC 9001 §5.1-5.2)
 *   2. header protection off: AES-ECB(hp, sample) masks the low bits of the
 *      first byte and the packet number                        (RFC 9001 §5.4);
 *      non-zero reserved bits end here (RFC 9000 §17.2)
 *   3. key, iv = HKDF(client secret), only for a packet that got this far
 *   4. payload = AES-128-GCM-open(key, iv ^ pn, AAD = header)   (RFC 9001 §5.3)
 *   5. frames: PADDING, PING, ACK, CRYPTO (+ CONNECTION_CLOSE)  (RFC 9000 §12.4, §19)
 *   6. CRYPTO data into the stream, read as a ClientHello once contiguous
 *
 * Where each step lives: this file walks the packets of a datagram (step 0)
 * and re-exports the public names of its parts, so `extract/quic.js` stays
 * the one import; quic/keys.ts derives the secrets (1, 3), quic/open.ts
 * removes header protection and opens the AEAD (2, 4), quic/frames.ts walks
 * the frames (5), quic/assembler.ts orders the CRYPTO stream (6), and
 * quic/info.ts holds the caller-owned {@link QuicInfo} the walk fills.
 *
 * The only crypto primitives are OpenSSL's (HMAC-SHA256, AES-128-ECB,
 * AES-128-GCM); nothing is hand-rolled. Steps 1-4 run in the addon
 * (native/src/quic_crypto.cc, OpenSSL's EVP API, one call per packet) when it
 * is built, and through node:crypto otherwise ({@link quicNativeCrypto});
 * both give the same results. A failed GCM tag is a Malformed packet, so a
 * mutated payload can never yield a name.
 *
 * Long header (RFC 9000 §17.2; RFC 9369 §3.2 for v2's type bits):
 *
 *   Long Header Packet {
 *     Header Form (1) = 1, Fixed Bit (1), Long Packet Type (2),
 *     Type-Specific Bits (4),            // reserved (2) + PN length (2), protected
 *     Version (32),
 *     Destination Connection ID Length (8), Destination Connection ID (0..160),
 *     Source Connection ID Length (8), Source Connection ID (0..160),
 *     Type-Specific Payload (..),
 *   }
 *   Initial Packet {                     // RFC 9000 §17.2.2
 *     ... long header ...,
 *     Token Length (i), Token (..),
 *     Length (i),                        // of Packet Number + Packet Payload
 *     Packet Number (8..32), Packet Payload (8..),
 *   }
 */

/**
 * RFC 9000 §7.2: the DCID of a client's first Initial "MUST be at least 8 bytes";
 * quic-go drops a token-less Initial with a shorter one (protocol.MinConnectionIDLenInitial).
 */
export const MIN_FIRST_DCID_LEN = 8
/**
 * RFC 9000 §14.1: a server MUST discard an Initial in a UDP datagram whose payload is
 * under 1200 bytes; §5.2.2: it MUST drop smaller datagrams of unsupported versions.
 */
export const MIN_INITIAL_DATAGRAM = 1200

// Long packet types after mapping to v1 numbering (RFC 9000 §17.2 Table 5).
const TYPE_INITIAL = 0
const TYPE_0RTT = 1
const TYPE_HANDSHAKE = 2
const TYPE_RETRY = 3
/** RFC 9369 §3.2: v2 type bits → v1 meaning (0b01 Initial, 0b10 0-RTT, 0b11 Handshake, 0b00 Retry). */
const V2_TYPE_TO_V1 = [TYPE_RETRY, TYPE_INITIAL, TYPE_0RTT, TYPE_HANDSHAKE] as const

/**
 * Keys of the last DCID seen: a client sends its first flight, and
 * retransmits it, with the same DCID, so a repeat costs no HKDF. One cache
 * per module instance (one per worker thread).
 */
const lastKeys = new KeyCache()
/** Keys of an assembler's original DCID when a datagram carries another one (see CryptoAssembler.dcid). */
const connKeys = new KeyCache()

/** How many HKDF derivations this module (thread) has done: a cache-hit counter for tests and metrics. */
export function keyDerivations (): number {
  return lastKeys.derivations + connKeys.derivations
}

/**
 * Parse one client-to-server UDP datagram payload buf[start, end) that may
 * hold several coalesced QUIC long-header packets (RFC 9000 §12.2). Every
 * Initial packet of QUIC v1, v2 or draft-29 is decrypted and its CRYPTO frames go into
 * `asm`, which the caller keeps per flow across datagrams (keyed by 5-tuple,
 * or by the DCID in `out.dcidStart/dcidLen`).
 *
 * Returns:
 * - `Ok`: the ClientHello is complete and has an SNI: `asm.hello.buf`
 *   `[sniStart, sniEnd)` is the name; ALPN and ECH presence are in `asm.hello`.
 * - `NoName`: the ClientHello is complete but has no server_name.
 * - `NeedMore`: the Initial packets were valid, the hello continues in a later
 *   datagram (Chromium's post-quantum hello spans two): keep `asm`.
 * - `Unsupported`: not a client Initial we read, no crypto done: version
 *   negotiation, short header, 0-RTT, Handshake or Retry first; or a version
 *   we cannot read (`out.unknownVersion`, `out.refused === QuicRefusal.Version`).
 *   Also when the CRYPTO stream starts with another handshake message, and
 *   when the datagram is another connection's Initial (`out.otherConnection`:
 *   authentic under its own DCID, which is not the flow's; `asm` untouched).
 * - `Malformed`: refused from the header (`out.refused`: Small, FixedBit,
 *   Header), no Initial that authenticates (Unauthenticated: mutated or random
 *   bytes, or keys from a DCID this flow never saw; one that does not is
 *   skipped, as a server drops it alone), a forbidden frame, a CRYPTO stream
 *   past {@link MAX_CRYPTO_BYTES}, or a ClientHello tls/hello.ts rejects. Do not
 *   wait for more on this flow. Also an Initial that opens under both its own
 *   DCID's keys and the flow's (`out.ambiguous`, crafted).
 *
 * `out.authenticated` says whether any Initial opened; `out.shortDcid` flags
 * a first Initial with a DCID under 8 bytes; `out.disagree` (= `asm.disagree`)
 * says a CRYPTO byte of the flow came twice with different values, whatever
 * the status (see {@link QuicInfo}).
 *
 * After the first packet, unreadable trailing bytes end the walk without
 * failing it. Cost: see `npm run bench` ("QUIC: random-DCID Initials"); a
 * new DCID costs 3 HMACs and an AES key schedule before its header
 * protection can be removed, 2 HMACs and the AEAD after that: one addon call
 * per packet (about 3 µs for a random-DCID Initial), or 4-7 node:crypto
 * objects without the addon (about 10x that).
 * Never throws on wire bytes and never writes into `buf`.
 *
 * @example
 * const asm = new CryptoAssembler(); const q = new QuicInfo()
 * if (parseQuicInitial(udp, 0, udp.length, asm, q) === Status.Ok) {
 *   const h = asm.hello // h.buf.toString('latin1', h.sniStart, h.sniEnd)
 * }
 */
export function parseQuicInitial (buf: Buffer, start: number, end: number, asm: CryptoAssembler, out: QuicInfo): Status {
  out.reset()
  const st = walkDatagram(buf, start, end, asm, out)
  out.disagree = asm.disagree
  return st
}

/** parseQuicInitial's walk over the datagram's packets (out reset). */
function walkDatagram (buf: Buffer, start: number, end: number, asm: CryptoAssembler, out: QuicInfo): Status {
  let off = start
  let first = true
  // Header errors in the first packet make the datagram Malformed. After an
  // authenticated Initial, unreadable trailing bytes end the walk instead
  // (RFC 9000 §12.2: a receiver may drop what it cannot process); they cannot
  // change what the authenticated packets said.
  while (off < end) {
    const b0 = buf[off] as number
    // Short header (RFC 9000 §17.3): no length, it ends the datagram; we have no keys for it.
    // Zero bytes after the last packet (padding outside any packet) also land here.
    if ((b0 & 0x80) === 0) {
      if (first) return Status.Unsupported
      break
    }
    if (off + 7 > end) {
      if (first) {
        out.refused = QuicRefusal.Header
        return Status.Malformed
      }
      break
    }
    const version = u32(buf, off + 1)
    if (first) out.version = version
    if (!isKnownVersion(version)) {
      // The rest of the datagram has no length we can trust.
      if (!first) break
      // Version negotiation (0, RFC 9000 §17.2.1) comes from servers.
      if (version === 0) return Status.Unsupported
      // RFC 9000 §5.2.2: servers drop unsupported versions under 1200 bytes,
      // and may answer larger ones with Version Negotiation.
      if (end - start < MIN_INITIAL_DATAGRAM) {
        out.refused = QuicRefusal.Small
        return Status.Malformed
      }
      out.unknownVersion = true
      out.refused = QuicRefusal.Version
      return Status.Unsupported
    }
    const next = walkPacket(buf, off, start, end, version, first, asm, out)
    if (next === BAD_HEADER) {
      if (first) {
        if (out.refused === QuicRefusal.None) out.refused = QuicRefusal.Header
        return Status.Malformed
      }
      break
    }
    if (next === STOP) {
      if (first) return Status.Unsupported
      break
    }
    if (next === BAD_PAYLOAD) return Status.Malformed
    off = next // the packet's end: > off, so the loop always advances
    first = false
  }
  if (out.initials === 0) {
    // Another connection's Initials only (every packet walked has the first's version and DCID).
    if (out.ambiguous) return Status.Malformed
    if (out.otherConnection) return Status.Unsupported
    out.refused = QuicRefusal.Unauthenticated
    return Status.Malformed
  }
  return asm.parse()
}

// walkPacket results other than the end offset of the packet.
/** The header does not parse (a length or CID length runs past the datagram), or is refused (out.refused). */
const BAD_HEADER = -1
/** Not a packet we continue past: first packet not an Initial, or a Retry. */
const STOP = -2
/** An authenticated Initial whose frames are invalid. */
const BAD_PAYLOAD = -3

/**
 * Read the long-header packet at buf[off] (version known) and, for an
 * Initial, decrypt it and feed its CRYPTO frames to `asm`. Returns the offset
 * where the packet ends, or BAD_HEADER, STOP, BAD_PAYLOAD. The datagram is
 * buf[start, end).
 */
function walkPacket (buf: Buffer, off: number, start: number, end: number, version: number, first: boolean,
  asm: CryptoAssembler, out: QuicInfo): number {
  const b0 = buf[off] as number
  const bits = (b0 >> 4) & 0x03
  const type = version === QUIC_V2 ? V2_TYPE_TO_V1[bits] as number : bits
  // RFC 9000 §14.1: a server discards an Initial in a datagram under 1200 bytes.
  if (first && type === TYPE_INITIAL && end - start < MIN_INITIAL_DATAGRAM) {
    out.version = version
    out.refused = QuicRefusal.Small
    return BAD_HEADER
  }
  let p = off + 5
  const dcidLen = buf[p] as number
  if (dcidLen > MAX_CID_LEN || p + 1 + dcidLen + 1 > end) return BAD_HEADER
  const dcidStart = p + 1
  p = dcidStart + dcidLen
  const scidLen = buf[p] as number
  if (scidLen > MAX_CID_LEN || p + 1 + scidLen > end) return BAD_HEADER
  const scidStart = p + 1
  p = scidStart + scidLen
  if (first) {
    out.dcidStart = dcidStart
    out.dcidLen = dcidLen
    out.scidStart = scidStart
    out.scidLen = scidLen
    // Only a client Initial opens a flow: 0-RTT, Handshake or Retry first is not ours to read.
    if (type !== TYPE_INITIAL) return STOP
  }
  // Retry has no Length field (RFC 9000 §17.2.5) and comes from servers.
  if (type === TYPE_RETRY) return STOP
  out.packets++
  let tokenLen = 0
  if (type === TYPE_INITIAL) {
    tokenLen = readVarint(buf, p, end)
    if (tokenLen < 0) return BAD_HEADER
    p += varintLen(buf, p)
    if (tokenLen > end - p) return BAD_HEADER
    p += tokenLen
  }
  const length = readVarint(buf, p, end) // Packet Number + Packet Payload (RFC 9000 §17.2)
  if (length < 0) return BAD_HEADER
  p += varintLen(buf, p)
  if (length > end - p) return BAD_HEADER // the network never cuts a datagram: the field lies
  const pktEnd = p + length
  // RFC 9000 §12.2: receivers SHOULD ignore coalesced packets with another DCID.
  // One of another version is not of this connection either: so every packet
  // walked in a datagram has the first one's (version, DCID).
  const sameDcid = first || (version === out.version && dcidLen === out.dcidLen && sameBytes(buf, dcidStart, buf, out.dcidStart, dcidLen))
  if (type !== TYPE_INITIAL) { // 0-RTT, Handshake: skipped by Length
    // Only behind an Initial that authenticated, of the same connection, does a Handshake packet mean anything.
    if (type === TYPE_HANDSHAKE && out.initials > 0 && sameDcid) out.handshake = true
    return pktEnd
  }
  if (!sameDcid) return pktEnd
  if (first && tokenLen === 0 && asm.dcidVersion === 0) {
    // The client's first Initial (no token, and this flow has not opened one yet).
    // RFC 9287 §3: without a NEW_TOKEN token the client may not clear the fixed bit.
    if ((b0 & 0x40) === 0) {
      out.refused = QuicRefusal.FixedBit
      return BAD_HEADER
    }
    if (dcidLen < MIN_FIRST_DCID_LEN) out.shortDcid = true
  }
  // RFC 9001 §5.4.2: the sample needs 4 + 16 bytes after the start of the packet number.
  if (p + HP_SAMPLE_OFFSET + HP_SAMPLE_LEN > pktEnd) {
    if (first) out.refused = QuicRefusal.Header
    return BAD_PAYLOAD
  }
  if (tokenLen > 0) out.token = true
  const st = decryptAndWalk(buf, off, p, pktEnd, version, dcidStart, dcidLen, asm, out)
  // RFC 9001 §5.5 / RFC 9000 §12.2: a packet that does not authenticate is
  // dropped on its own and the server goes on with the rest of the datagram,
  // so we do too: a bad packet put next to a good one must not hide it.
  // Another connection's packet is not read into this flow (out.otherConnection).
  if (st === NOT_AUTHENTIC || st === OTHER_CONNECTION) return pktEnd
  if (st !== Status.Ok) return BAD_PAYLOAD
  return pktEnd
}

/** decryptAndWalk: the packet does not open with any key we may use (mutated, or random bytes). */
const NOT_AUTHENTIC = -1
/** decryptAndWalk: the packet is another connection's Initial (out.otherConnection or out.ambiguous), not read. */
const OTHER_CONNECTION = -2

/**
 * Open one Initial and walk its frames into `asm`. Which keys, and what it means:
 * - the assembler holds no DCID yet: the packet's own DCID; the first one that
 *   opens becomes the flow's (version, DCID);
 * - the packet has the flow's (version, DCID): those keys (the same);
 * - another (version, DCID): its own DCID's keys first. When they open, the
 *   packet is another connection's (out.otherConnection), unless the flow's
 *   original keys open it too (out.ambiguous): either way it is not walked.
 *   When they do not, and the version is the flow's, the flow's original keys
 *   (RFC 9001 §5.2: after the server's reply the client sends to the server's
 *   CID, keeping the first DCID's keys): a later Initial of this flow.
 * Own keys first on every path keeps the walked plaintext the last one opened
 * (the addon writes every attempt into the same buffer).
 */
function decryptAndWalk (buf: Buffer, pkt: number, pnOff: number, pktEnd: number, version: number,
  dcidStart: number, dcidLen: number, asm: CryptoAssembler, out: QuicInfo): Status | typeof NOT_AUTHENTIC | typeof OTHER_CONNECTION {
  const ours = asm.dcidVersion === 0 ||
    (asm.dcidVersion === version && asm.dcidLen === dcidLen && sameBytes(asm.dcid, 0, buf, dcidStart, dcidLen))
  let keys = lastKeys // the cache whose plaintext is walked
  let n = lastKeys.open(version, buf, dcidStart, dcidLen, buf, pkt, pnOff, pktEnd, out)
  if (!ours) {
    const flowKeys = asm.dcidVersion === version
    if (n >= 0) {
      // Authentic under its own DCID, which is not the flow's: what a server
      // routes to a connection of its own. Opening under the flow's keys as
      // well is no client's doing (a crafted tag valid under both).
      out.authenticated = true
      const pn = out.pn
      if (flowKeys && connKeys.open(version, asm.dcid, 0, asm.dcidLen, buf, pkt, pnOff, pktEnd, out) >= 0) {
        out.ambiguous = true
      } else {
        out.otherConnection = true
      }
      out.pn = pn
      return OTHER_CONNECTION
    }
    if (!flowKeys) return NOT_AUTHENTIC
    keys = connKeys
    n = connKeys.open(version, asm.dcid, 0, asm.dcidLen, buf, pkt, pnOff, pktEnd, out)
    if (n < 0) return NOT_AUTHENTIC
    out.usedFlowKeys = true
  } else if (n < 0) {
    return NOT_AUTHENTIC
  }
  if (asm.dcidVersion === 0) {
    buf.copy(asm.dcid, 0, dcidStart, dcidStart + dcidLen)
    asm.dcidLen = dcidLen
    asm.dcidVersion = version
  }
  out.initials++
  out.authenticated = true
  return walkFrames(keys.plain, n, asm, out)
}
