import { createCipheriv, createDecipheriv, createHmac, type Cipher } from 'node:crypto'
import { Status } from '../util/status.js'
import { u32 } from '../util/bytes.js'
import { parseHandshake, TlsHello } from './tls.js'
import { loadQuicCrypto, QUIC_SLOT_SIZE, type QuicCryptoAddon } from '../queue/index.js'

/**
 * QUIC client Initial reader: decrypts the Initial packets of one UDP datagram
 * (QUIC v1, RFC 9000/9001; v2, RFC 9369; and draft-29, draft-ietf-quic-tls-29,
 * which Caddy/quic-go and older clients still speak) and reassembles the CRYPTO
 * stream they carry into the TLS ClientHello, read by tls.ts.
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

/** RFC 9000 §15: QUIC version 1. */
export const QUIC_V1 = 0x00000001
/** RFC 9369 §3.1: QUIC version 2. */
export const QUIC_V2 = 0x6b3343cf
/**
 * draft-ietf-quic-transport-29 §15: 0xff000000 + draft number. Read like v1
 * (same header, type bits and HKDF labels), with its own salt. Drafts 30-32
 * shared the salt but are not read: no current stack sends them.
 */
export const QUIC_DRAFT29 = 0xff00001d

/** RFC 9001 §5.2 (https://www.rfc-editor.org/rfc/rfc9001#section-5.2): initial_salt of QUIC v1. */
export const INITIAL_SALT_V1 = Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex')
/** RFC 9369 §3.3.1 (https://www.rfc-editor.org/rfc/rfc9369#section-3.3.1): initial_salt of QUIC v2. */
export const INITIAL_SALT_V2 = Buffer.from('0dede3def700a6db819381be6e269dcbf9bd2ed9', 'hex')
/**
 * draft-ietf-quic-tls-29 §5.2 (https://datatracker.ietf.org/doc/html/draft-ietf-quic-tls-29#section-5.2):
 * initial_salt of draft-29 (also in quic-go's VersionDraft29, Suricata, nDPI).
 */
export const INITIAL_SALT_DRAFT29 = Buffer.from('afbfec289993d24c9e9786f19c6111e04390a899', 'hex')

/** RFC 9000 §17.2: "In QUIC version 1, this value MUST NOT exceed 20 bytes" (v2 keeps it, RFC 9369 §3). */
export const MAX_CID_LEN = 20
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
/** RFC 9001 §5.3: AEAD_AES_128_GCM tag length. */
const AEAD_TAG_LEN = 16
/** RFC 9001 §5.4.2: header protection samples 16 bytes ... */
const HP_SAMPLE_LEN = 16
/** ... starting 4 bytes after the start of the Packet Number field. */
const HP_SAMPLE_OFFSET = 4
/** RFC 9001 §5.3: the nonce is the 12-byte IV XORed with the packet number. */
const AEAD_IV_LEN = 12
const AEAD_KEY_LEN = 16
/** RFC 9000 §16: largest value of a variable-length integer is 2^62-1. */
const MAX_VARINT = 2 ** 62 - 1
/** RFC 768: the 16-bit UDP length covers the 8-byte header, so a payload is at most 65527 bytes; a QUIC header is smaller. */
const MAX_UDP_PAYLOAD = 65527

/**
 * Cap on CRYPTO-stream bytes one assembler buffers (offset + length of every
 * frame must stay under it). A post-quantum Chromium ClientHello is ~1.9 kB;
 * 16 KiB is the TLS record limit (RFC 8446 §5.1), the size sniffers settled on
 * for split hellos (caddy-l4 #346, see shared/FIELD-NOTES.md). Beyond it: Malformed.
 */
export const MAX_CRYPTO_BYTES = 16384

// Frame types allowed in Initial packets (RFC 9000 §12.4, Table 3).
const FRAME_PADDING = 0x00 // §19.1
const FRAME_PING = 0x01 // §19.2
const FRAME_ACK = 0x02 // §19.3
const FRAME_ACK_ECN = 0x03 // §19.3 with ECN Counts
const FRAME_CRYPTO = 0x06 // §19.6
const FRAME_CONNECTION_CLOSE = 0x1c // §19.19 (transport variant; 0x1d is not allowed in Initial)

// Long packet types after mapping to v1 numbering (RFC 9000 §17.2 Table 5).
const TYPE_INITIAL = 0
const TYPE_0RTT = 1
const TYPE_HANDSHAKE = 2
const TYPE_RETRY = 3
/** RFC 9369 §3.2: v2 type bits → v1 meaning (0b01 Initial, 0b10 0-RTT, 0b11 Handshake, 0b00 Retry). */
const V2_TYPE_TO_V1 = [TYPE_RETRY, TYPE_INITIAL, TYPE_0RTT, TYPE_HANDSHAKE] as const

/**
 * HkdfLabel for HKDF-Expand-Label (RFC 8446 §7.1), precomputed once:
 * `uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255> = ""`.
 * RFC 9001 §A.1 lists the v1 bytes (e.g. "client in" = 00200f746c73313320636c69656e7420696e00).
 */
export function hkdfLabel (label: string, length: number): Buffer {
  const full = Buffer.from('tls13 ' + label, 'latin1')
  return Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0])])
}

/**
 * Labels of one QUIC version (RFC 9001 §5.1-5.2; v2: RFC 9369 §3.3.2), each
 * HkdfLabel already followed by HKDF-Expand's counter byte 0x01 (see hkdfExpand32).
 */
interface VersionParams {
  salt: Buffer
  clientIn: Buffer
  key: Buffer
  iv: Buffer
  hp: Buffer
}

/** HkdfLabel || 0x01: T(1)'s input in one piece, so each expansion is one update(). */
const expandInfo = (label: string, length: number): Buffer => Buffer.concat([hkdfLabel(label, length), Buffer.from([1])])

const V1: VersionParams = {
  salt: INITIAL_SALT_V1,
  clientIn: expandInfo('client in', 32),
  key: expandInfo('quic key', AEAD_KEY_LEN),
  iv: expandInfo('quic iv', AEAD_IV_LEN),
  hp: expandInfo('quic hp', AEAD_KEY_LEN),
}
const V2: VersionParams = {
  salt: INITIAL_SALT_V2,
  clientIn: V1.clientIn, // RFC 9369 §3.3.2 changes only the key, iv, hp and ku labels
  key: expandInfo('quicv2 key', AEAD_KEY_LEN),
  iv: expandInfo('quicv2 iv', AEAD_IV_LEN),
  hp: expandInfo('quicv2 hp', AEAD_KEY_LEN),
}
/** draft-ietf-quic-tls-29 §5.1-5.2: v1's labels ("client in", "quic key", "quic iv", "quic hp"), another salt. */
const DRAFT29: VersionParams = { ...V1, salt: INITIAL_SALT_DRAFT29 }

/** The versions read here, or null: the only place that decides which versions are known. */
function paramsOf (version: number): VersionParams | null {
  return version === QUIC_V1 ? V1 : version === QUIC_V2 ? V2 : version === QUIC_DRAFT29 ? DRAFT29 : null
}

/** Whether parseQuicInitial reads Initials of this version (v1, v2, draft-29). */
export function isKnownVersion (version: number): boolean {
  return paramsOf(version) !== null
}

/**
 * HKDF-Expand (RFC 5869 §2.3) for L <= HashLen (32 for SHA-256): only
 * T(1) = HMAC(PRK, info || 0x01) is needed, truncated to L; `infoOne` is
 * info || 0x01 already.
 */
function hkdfExpand32 (prk: Buffer, infoOne: Buffer): Buffer {
  return createHmac('sha256', prk).update(infoOne).digest()
}

/**
 * Client Initial keys for one (version, DCID), through node:crypto (the path
 * without the addon; the addon keeps its keys in {@link NativeKeys} slots,
 * and the test sealer uses this class): the header-protection cipher
 * (AES-128-ECB, kept open and reused: `update()` of one 16-byte block returns
 * its encryption; no padding is ever flushed because final() is never
 * called), and the AEAD key and IV. RFC 9001 §5.4.3: mask = AES-ECB(hp_key,
 * sample) is an *encryption* of the sample, on the receiving side too, hence
 * createCipheriv (a decipher would give another mask).
 *
 * Derived in two steps, because most packets that reach the crypto and do not
 * authenticate fail at the header-protection step: {@link deriveHp} (HKDF
 * extract, client secret, hp key: 3 HMACs and an AES key schedule), then
 * {@link deriveAead} (key and IV: 2 HMACs) only for a packet whose reserved
 * bits came out 0.
 */
export class InitialKeys {
  version = 0
  readonly dcid = Buffer.alloc(MAX_CID_LEN)
  dcidLen = -1 // -1: empty slot
  key: Buffer = Buffer.alloc(AEAD_KEY_LEN)
  iv: Buffer = Buffer.alloc(AEAD_IV_LEN)
  hp: Cipher | null = null
  /** key and iv belong to this slot's DCID (deriveAead ran since deriveHp). */
  aead = false
  #client: Buffer = Buffer.alloc(0)
  #params: VersionParams = V1
  /** Number of derivations (deriveHp) done into this slot (for tests and benchmarks). */
  derivations = 0

  matches (version: number, b: Uint8Array, off: number, len: number): boolean {
    if (this.version !== version || this.dcidLen !== len) return false
    for (let i = 0; i < len; i++) if (this.dcid[i] !== b[off + i]) return false
    return true
  }

  /**
   * RFC 9001 §5.2: initial_secret = HKDF-Extract(initial_salt, DCID), the
   * client secret, and the header-protection key. `version` must be known
   * ({@link isKnownVersion}); an unknown one is derived as v1.
   */
  deriveHp (version: number, b: Uint8Array, off: number, len: number): void {
    const p = paramsOf(version) ?? V1
    this.dcid.set(b.subarray(off, off + len))
    this.dcidLen = len
    this.version = version
    this.#params = p
    // HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2).
    const initial = createHmac('sha256', p.salt).update(this.dcid.subarray(0, len)).digest()
    this.#client = hkdfExpand32(initial, p.clientIn)
    this.hp = createCipheriv('aes-128-ecb', hkdfExpand32(this.#client, p.hp).subarray(0, AEAD_KEY_LEN), null)
    this.aead = false
    this.derivations++
  }

  /** The AEAD key and IV from the client secret deriveHp kept. */
  deriveAead (): void {
    this.key = hkdfExpand32(this.#client, this.#params.key).subarray(0, AEAD_KEY_LEN)
    this.iv = hkdfExpand32(this.#client, this.#params.iv).subarray(0, AEAD_IV_LEN)
    this.aead = true
  }

  /** All client Initial keys at once (tests, the test sealer). */
  derive (version: number, b: Uint8Array, off: number, len: number): void {
    this.deriveHp(version, b, off, len)
    this.deriveAead()
  }
}

/**
 * Keys of the last DCID seen: a client sends its first flight, and
 * retransmits it, with the same DCID, so a repeat costs no HKDF. One slot
 * per module instance (one per worker thread).
 */
const lastKeys = new InitialKeys()
/** Keys of an assembler's original DCID when a datagram carries another one (see CryptoAssembler.dcid). */
const connKeys = new InitialKeys()

/**
 * One DCID's keys in the addon's slot layout (native/src/quic_crypto.cc):
 * the (version, DCID) they belong to is written here, and the addon derives
 * the keys into the slot lazily (hp first, key and IV only for a packet whose
 * reserved bits came out 0), as {@link InitialKeys} does.
 */
class NativeKeys {
  readonly slot = Buffer.alloc(QUIC_SLOT_SIZE)
  #empty = true
  derivations = 0

  /** Make the slot hold (version, b[off, off + len)), keeping the keys when it already does. */
  select (version: number, b: Uint8Array, off: number, len: number): void {
    const s = this.slot
    if (!this.#empty && s[SLOT_DCID_LEN] === len && s.readUInt32LE(SLOT_VERSION) === version && sameBytes(s, SLOT_DCID, b, off, len)) return
    s[SLOT_STATE] = 0
    s[SLOT_DCID_LEN] = len
    s.writeUInt32LE(version, SLOT_VERSION)
    for (let i = 0; i < len; i++) s[SLOT_DCID + i] = b[off + i] as number
    this.#empty = false
    this.derivations++
  }
}
// Slot fields JS writes and reads (quic_crypto.cc has the whole layout).
const SLOT_STATE = 0
const SLOT_DCID_LEN = 1
const SLOT_VERSION = 4
const SLOT_DCID = 8
const SLOT_PN = 28

const addon = loadQuicCrypto()
/** The addon's crypto while it is used, null for node:crypto. */
let native: QuicCryptoAddon | null = addon
const lastSlot = new NativeKeys()
const connSlot = new NativeKeys()
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

/** How many HKDF derivations this module (thread) has done: a cache-hit counter for tests and metrics. */
export function keyDerivations (): number {
  return lastKeys.derivations + connKeys.derivations + lastSlot.derivations + connSlot.derivations
}

/**
 * Reassembles the client's Initial CRYPTO stream (RFC 9000 §19.6) from frames
 * that arrive in any order, duplicated or overlapping, over one or more
 * datagrams. The first copy of a byte wins, as in a TLS stack, and every
 * later copy is compared with it: one that differs sets {@link disagree}
 * (RFC 9000 §2.2 makes differing copies a protocol error, so an honest
 * client never sends them; a copy made to die before the server, with a low
 * TTL, is how a decoy name gets read here while the server reads another:
 * the same overlap trick the TCP flow table calls `disagree`).
 *
 * Memory is fixed at construction: {@link MAX_CRYPTO_BYTES} of data plus one
 * byte of "filled" flag per data byte. Keep one per flow (5-tuple or DCID)
 * until the hello is complete, then {@link CryptoAssembler.reset} and reuse.
 */
export class CryptoAssembler {
  /** Stream bytes [0, MAX_CRYPTO_BYTES); only filled positions are meaningful. */
  readonly buf: Buffer = Buffer.alloc(MAX_CRYPTO_BYTES)
  /** 1 where buf holds a received byte. */
  readonly #filled = new Uint8Array(MAX_CRYPTO_BYTES)
  /** Bytes [0, contiguous) are all present: the prefix TLS can read. */
  contiguous = 0
  /** One past the highest byte received (bounds the reset). */
  highWater = 0
  /** Distinct bytes buffered. */
  buffered = 0
  /** CRYPTO frames accepted (duplicates included). */
  frames = 0
  /** A frame reached past MAX_CRYPTO_BYTES (the flow is Malformed for good). */
  overflow = false
  /**
   * A byte arrived again with another value than the copy held (which is
   * kept). Sticky until {@link restart}: the hello read is only one of two
   * stories, so a classifier must not trust its name (evasion, `disagree`).
   * parse() still reads the first copies, so the name can be logged.
   */
  disagree = false
  /** The ClientHello as read from the prefix (valid when parse() returned Ok or NoName). */
  readonly hello = new TlsHello()
  /**
   * DCID of the first Initial this flow authenticated. RFC 9001 §5.2: Initial
   * keys come from the DCID of the client's *first* Initial; after the server
   * replies the client switches DCID but keeps those keys, so later Initials
   * (e.g. ACKs coalesced with Handshake packets) are opened with this one.
   */
  readonly dcid = Buffer.alloc(MAX_CID_LEN)
  dcidLen = 0
  /** Version of that Initial; 0 until the flow has authenticated one. */
  dcidVersion = 0

  /** Forget everything; the buffers are kept. */
  reset (): void {
    this.restart()
    this.dcidLen = this.dcidVersion = 0
  }

  /** Forget the stream but keep the flow's original DCID (its Initial keys): to read a later hello of the same flow. */
  restart (): void {
    this.#filled.fill(0, 0, this.highWater)
    this.contiguous = this.highWater = this.buffered = this.frames = 0
    this.overflow = this.disagree = false
    this.hello.reset()
  }

  /** Take another assembler's original DCID (see {@link dcid}). */
  adoptDcid (from: CryptoAssembler): void {
    from.dcid.copy(this.dcid, 0, 0, from.dcidLen)
    this.dcidLen = from.dcidLen
    this.dcidVersion = from.dcidVersion
  }

  /**
   * Add stream bytes src[from, to) at stream offset `offset`. Copies only the
   * bytes not yet present (first copy wins); bytes already present are
   * compared, and a difference sets {@link disagree}. Malformed when the
   * frame ends beyond MAX_CRYPTO_BYTES; Ok otherwise.
   */
  add (offset: number, src: Buffer, from: number, to: number): Status {
    const len = to - from
    if (len < 0 || offset < 0) return Status.Malformed
    if (offset > MAX_CRYPTO_BYTES - len) { // offset + len > cap, without overflow for huge offsets
      this.overflow = true
      return Status.Malformed
    }
    this.frames++
    const end = offset + len
    const filled = this.#filled
    // Below highWater, copy each run of missing bytes. Plain loops bounded by
    // the frame: TypedArray.indexOf has no end bound and scanned the whole
    // 16 KiB flag array per frame (60% of the time on a Chromium Initial).
    const scanEnd = end < this.highWater ? end : this.highWater
    let i = offset
    while (i < scanEnd) {
      if (filled[i] === 1) { // a run held already: compare, keep ours
        let stop = i + 1
        while (stop < scanEnd && filled[stop] === 1) stop++
        if (src.compare(this.buf, i, stop, from + i - offset, from + stop - offset) !== 0) this.disagree = true
        i = stop
        continue
      }
      let stop = i + 1
      while (stop < scanEnd && filled[stop] === 0) stop++
      src.copy(this.buf, i, from + i - offset, from + stop - offset)
      filled.fill(1, i, stop)
      this.buffered += stop - i
      i = stop
    }
    // At and past highWater nothing has arrived yet: one copy.
    if (end > this.highWater) {
      const s = offset > this.highWater ? offset : this.highWater
      src.copy(this.buf, s, from + s - offset, from + len)
      filled.fill(1, s, end)
      this.buffered += end - s
      this.highWater = end
    }
    if (offset <= this.contiguous && end > this.contiguous) {
      let c = end // [offset, end) is filled now; extend over frames that arrived earlier
      while (c < this.highWater && filled[c] === 1) c++
      this.contiguous = c
    }
    return Status.Ok
  }

  /**
   * Read the ClientHello from the contiguous prefix (tls.ts parseHandshake):
   * Ok (with SNI) or NoName when it is complete, NeedMore until then,
   * Malformed/Unsupported when the stream is not a valid ClientHello.
   */
  parse (): Status {
    if (this.overflow) return Status.Malformed
    const st = parseHandshake(this.buf, 0, this.contiguous, this.hello)
    // A hello that cannot fit under the cap will never complete.
    if (st === Status.NeedMore && this.hello.needed > MAX_CRYPTO_BYTES) return Status.Malformed
    return st
  }
}

/**
 * Why parseQuicInitial stopped before reading a datagram, in `QuicInfo.refused`
 * (stable names: {@link quicRefusalName}). All but Unauthenticated are decided
 * from the header alone, before any key derivation.
 */
export const QuicRefusal = {
  /** Not refused: read (any status), or not a client Initial (Unsupported). */
  None: 0,
  /**
   * The first packet's version is not one read here (v1, v2, draft-29) nor 0
   * (version negotiation), in a datagram of at least 1200 bytes: Unsupported,
   * `unknownVersion` set. A server answers it with Version Negotiation (RFC 9000 §6).
   */
  Version: 1,
  /**
   * A client Initial, or an unknown version, in a datagram under 1200 bytes:
   * Malformed. Servers discard it (RFC 9000 §14.1, §5.2.2).
   */
  Small: 2,
  /**
   * The first Initial of a flow, without a token, has the fixed bit cleared:
   * Malformed. RFC 9287 §3 lets a client clear it in an Initial only with a
   * NEW_TOKEN token; otherwise RFC 9000 §17.2 requires 1.
   */
  FixedBit: 3,
  /** The first packet's header runs past the datagram (CID length over 20, token or Length past the end): Malformed. */
  Header: 4,
  /**
   * Keys were derived but no Initial authenticated: its reserved bits were not
   * 0 once header protection was removed (RFC 9000 §17.2, checked before the
   * AEAD), or its GCM tag failed, or it was too short for the header-protection
   * sample. Malformed.
   */
  Unauthenticated: 5,
} as const
export type QuicRefusal = (typeof QuicRefusal)[keyof typeof QuicRefusal]
const refusalNames = ['none', 'quic-version', 'small', 'fixed-bit', 'header', 'unauthenticated'] as const
/** Stable text for logs and counters. */
export function quicRefusalName (r: QuicRefusal): (typeof refusalNames)[number] {
  return refusalNames[r] as (typeof refusalNames)[number]
}

/**
 * What parseQuicInitial learnt about the datagram itself (the TLS findings
 * live in the assembler's `hello`). Caller-owned and reused.
 *
 * What a classifier can trust: only `authenticated` says the bytes are a QUIC
 * Initial of this DCID (or of the flow's original DCID). That proves the
 * sender derived the keys, which anyone can, from the DCID on the wire: it
 * rules out random and mutated bytes, not a crafted decoy from the client
 * itself. Fields read from an unauthenticated datagram (version, DCID, SCID,
 * shortDcid) are claims of the sender.
 */
export class QuicInfo {
  /** Version of the first long-header packet (0 for version negotiation), read before any check. */
  version = 0
  /**
   * The first packet's version is not one read here: Unsupported with
   * `refused === QuicRefusal.Version`, no crypto done. The classifier maps it
   * to `unknown` with reason `quic-version`. Not set for version negotiation
   * (0, sent by servers) nor in a datagram under 1200 bytes (Small).
   */
  unknownVersion = false
  /** Why the datagram was not read ({@link QuicRefusal}); None when it was, or when it is not a client Initial. */
  refused: QuicRefusal = QuicRefusal.None
  /**
   * The first Initial of a flow (the assembler has no authenticated DCID yet)
   * carries no token and a DCID under 8 bytes, which RFC 9000 §7.2 forbids
   * (quic-go drops it: a decoy the server never sees). The datagram is still
   * decrypted: with `authenticated` it is really a first Initial with a short
   * DCID (a later Initial, whose DCID the server chose and may be short, opens
   * with the original DCID's keys, so it cannot authenticate with its own);
   * the classifier calls that `evasion`. Without `authenticated` it proves nothing.
   */
  shortDcid = false
  /**
   * At least one Initial of this datagram opened with AES-128-GCM (tag
   * verified) under keys of its own DCID or the flow's original DCID. Only an
   * authenticated datagram may change a flow's state, e.g. end a watch; with
   * `otherConnection` or `ambiguous` it is another connection's, not this
   * flow's (`initials` is 0).
   */
  authenticated = false
  /** DCID of the first packet, as offsets into the datagram buffer: the key a flow table can use. */
  dcidStart = 0
  dcidLen = 0
  /** SCID of the first packet. */
  scidStart = 0
  scidLen = 0
  /** Long-header packets walked (coalesced packets included). */
  packets = 0
  /** Initial packets of this flow decrypted, authenticated and walked (another connection's are not counted). */
  initials = 0
  /** CRYPTO frames passed to the assembler. */
  cryptoFrames = 0
  /** ACK frames seen. */
  acks = 0
  /** Packet number of the last Initial decrypted. */
  pn = 0
  /** An Initial carried a non-empty token (NEW_TOKEN or Retry). */
  token = false
  /** An Initial carried CONNECTION_CLOSE (0x1c): the client gave up. */
  closed = false
  /** An Initial was opened with the assembler's original DCID (a later packet of the flow). */
  usedFlowKeys = false
  /**
   * The datagram is the Initial of ANOTHER connection: its Initial packets
   * carry a (version, DCID) other than the one the assembler already holds
   * (`asm.dcidVersion !== 0`), open under the keys of their own DCID, and do
   * not open under the flow's original keys. A server routes such a packet
   * by its DCID to a connection of its own (a new one, or the one a Retry
   * asked for), so it is not read into this flow: its CRYPTO bytes are not
   * added to `asm`, `initials` and `cryptoFrames` stay 0, `handshake` is not
   * set, and the status is Unsupported. `authenticated` is set (it is a real
   * Initial), and `dcidStart`/`dcidLen` (every packet of the datagram walked
   * has that DCID) and `version` name the connection. To read it, parse the
   * datagram again into an assembler of its own (reset, or a fresh one).
   * Honest clients do this after a Retry (with `token`) or after Version
   * Negotiation; it is also how a decoy connection hides a real one on the
   * same UDP socket.
   */
  otherConnection = false
  /**
   * An Initial with another (version, DCID) than the flow's opened under
   * BOTH its own DCID's keys and the flow's original keys: no client's key
   * derivation does that, only a crafted packet (AES-GCM does not commit to
   * its key, so one tag can be made valid under two). Not read; Malformed.
   * What a server reads from it depends on which connection it routes it
   * to, so a classifier calls it evasion.
   */
  ambiguous = false
  /**
   * The assembler's copy of `asm.disagree` after this datagram, whatever
   * the status: since its last restart, a CRYPTO byte arrived twice with
   * different values. The
   * status is still the hello read from the first copies; a classifier
   * calls the flow evasion (`disagree`) rather than trust that name.
   */
  disagree = false
  /**
   * A Handshake packet with the same version and DCID was coalesced after an
   * Initial of this datagram that authenticated (as Chromium sends its Initial
   * ACK with its first Handshake packet). Its own bytes are under Handshake
   * keys aigate does not have, so they are not checked; a datagram whose
   * *first* packet is Handshake-shaped (random bytes included) never sets it.
   */
  handshake = false

  reset (): void {
    this.version = this.dcidStart = this.dcidLen = this.scidStart = this.scidLen = 0
    this.packets = this.initials = this.cryptoFrames = this.acks = this.pn = 0
    this.refused = QuicRefusal.None
    this.unknownVersion = this.shortDcid = this.authenticated = false
    this.token = this.closed = this.usedFlowKeys = this.handshake = false
    this.otherConnection = this.ambiguous = this.disagree = false
  }
}

// Result of the last readVarint (kept out of the return value to avoid allocation).
let vv = 0

/**
 * RFC 9000 §16 variable-length integer at b[p]: returns the offset after it,
 * or -1 when it runs past `end`. The value goes to `vv` (exact up to 2^53;
 * larger values exceed every bound they are compared with anyway).
 */
function readVarint (b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1
  const first = b[p] as number
  const n = 1 << (first >> 6)
  if (p + n > end) return -1
  let v = first & 0x3f
  for (let i = 1; i < n; i++) v = v * 256 + (b[p + i] as number)
  vv = v
  return p + n
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
 * Walk the frames of a decrypted Initial payload (RFC 9000 §12.4: only
 * PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE may appear) and feed every
 * CRYPTO frame to the assembler. Ok, or Malformed on any other frame type, a
 * length past the payload, or a CRYPTO frame past the cap.
 */
function walkFrames (p: Buffer, end: number, asm: CryptoAssembler, out: QuicInfo): Status {
  if (end === 0) return Status.Malformed // RFC 9000 §12.4: a packet MUST contain at least one frame
  let i = 0
  while (i < end) {
    // Frame types are varints that must use the shortest encoding (RFC 9000
    // §12.4). All types allowed here fit in one byte, so a first byte >= 0x40
    // is a longer encoding or a forbidden type: the final else rejects it.
    const type = p[i] as number
    i++
    if (type === FRAME_PADDING) {
      while (i < end && p[i] === 0) i++
    } else if (type === FRAME_PING) {
      // no body
    } else if (type === FRAME_CRYPTO) {
      // CRYPTO Frame { Type (i) = 0x06, Offset (i), Length (i), Crypto Data (..) }  §19.6
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      const offset = vv
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      const len = vv
      if (len > end - i) return Status.Malformed
      if (offset + len > MAX_VARINT) return Status.Malformed // §19.6: FRAME_ENCODING_ERROR
      if (asm.add(offset, p, i, i + len) !== Status.Ok) return Status.Malformed
      out.cryptoFrames++
      i += len
    } else if (type === FRAME_ACK || type === FRAME_ACK_ECN) {
      // ACK Frame { Type (i), Largest Acknowledged (i), ACK Delay (i),
      //   ACK Range Count (i), First ACK Range (i), ACK Range (..) ...,
      //   [ECN Counts (..)] }                                                §19.3
      // ACK Range { Gap (i), ACK Range Length (i) }; ECN Counts { ECT0 (i), ECT1 (i), ECN-CE (i) }
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      let smallest = vv // becomes the smallest acknowledged packet of each range
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed // ACK Delay
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      const ranges = vv
      // Each range takes at least 2 bytes: an absurd count fails here, before any loop.
      if (ranges > (end - i) / 2) return Status.Malformed
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      smallest -= vv
      // §19.3.1: a range that reaches below packet number 0 is a FRAME_ENCODING_ERROR.
      if (smallest < 0) return Status.Malformed
      for (let r = 0; r < ranges; r++) {
        if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
        const largest = smallest - vv - 2 // §19.3.1: largest = previous smallest - gap - 2
        if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
        smallest = largest - vv
        if (largest < 0 || smallest < 0) return Status.Malformed
      }
      if (type === FRAME_ACK_ECN) {
        for (let k = 0; k < 3; k++) if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      }
      out.acks++
    } else if (type === FRAME_CONNECTION_CLOSE) {
      // CONNECTION_CLOSE { Type (i) = 0x1c, Error Code (i), Frame Type (i),
      //   Reason Phrase Length (i), Reason Phrase (..) }                    §19.19
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      if ((i = readVarint(p, i, end)) < 0) return Status.Malformed
      if (vv > end - i) return Status.Malformed
      i += vv
      out.closed = true
    } else {
      return Status.Malformed // §12.4: any other frame in an Initial is a PROTOCOL_VIOLATION
    }
  }
  return Status.Ok
}

function sameBytes (a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false
  return true
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
 *   past {@link MAX_CRYPTO_BYTES}, or a ClientHello tls.ts rejects. Do not
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
    const params = paramsOf(version)
    if (params === null) {
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
    if ((p = readVarint(buf, p, end)) < 0) return BAD_HEADER
    tokenLen = vv
    if (tokenLen > end - p) return BAD_HEADER
    p += tokenLen
  }
  if ((p = readVarint(buf, p, end)) < 0) return BAD_HEADER
  const length = vv // Packet Number + Packet Payload (RFC 9000 §17.2)
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

/** The payload the last successful {@link openWith} decrypted, in [0, its return value). */
let plain: Buffer = plainOut

/**
 * Open buf[pkt, pktEnd) with the keys of (version, DCID src[off, off + len)),
 * cached in `js` or `nat` (the path in use): the plaintext length (payload in
 * {@link plain}, packet number in out.pn), or -1 when it does not authenticate.
 */
function openWith (js: InitialKeys, nat: NativeKeys, version: number, src: Uint8Array, off: number, len: number,
  buf: Buffer, pkt: number, pnOff: number, pktEnd: number, out: QuicInfo): number {
  if (native !== null) {
    nat.select(version, src, off, len)
    if (pktEnd - pnOff > plainOut.length) plainOut = Buffer.alloc(pktEnd - pnOff)
    const n = native.quicOpen(nat.slot, buf, pkt, pnOff, pktEnd, plainOut)
    if (n < 0) return -1
    out.pn = nat.slot.readUInt32LE(SLOT_PN)
    plain = plainOut
    return n
  }
  if (!js.matches(version, src, off, len)) js.deriveHp(version, src, off, len)
  const p = openInitial(buf, pkt, pnOff, pktEnd, js, out)
  if (p === null) return -1
  plain = p
  return p.length
}

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
  let n = openWith(lastKeys, lastSlot, version, buf, dcidStart, dcidLen, buf, pkt, pnOff, pktEnd, out)
  if (!ours) {
    const flowKeys = asm.dcidVersion === version
    if (n >= 0) {
      // Authentic under its own DCID, which is not the flow's: what a server
      // routes to a connection of its own. Opening under the flow's keys as
      // well is no client's doing (a crafted tag valid under both).
      out.authenticated = true
      const pn = out.pn
      if (flowKeys && openWith(connKeys, connSlot, version, asm.dcid, 0, asm.dcidLen, buf, pkt, pnOff, pktEnd, out) >= 0) {
        out.ambiguous = true
      } else {
        out.otherConnection = true
      }
      out.pn = pn
      return OTHER_CONNECTION
    }
    if (!flowKeys) return NOT_AUTHENTIC
    n = openWith(connKeys, connSlot, version, asm.dcid, 0, asm.dcidLen, buf, pkt, pnOff, pktEnd, out)
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
  return walkFrames(plain, n, asm, out)
}
