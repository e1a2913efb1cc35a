import { createCipheriv, createHmac, type Cipher } from 'node:crypto'
import { QUIC_SLOT_SIZE } from '../../native/index.js'

/**
 * Client Initial secrets (RFC 9001 §5.1-5.2; v2: RFC 9369 §3.3): the versions
 * read, their salts and HKDF labels, and the keys of one (version, DCID) on
 * each crypto path: {@link InitialKeys} through node:crypto, {@link NativeKeys}
 * in the addon's slot layout. Opening a packet with them is open.ts.
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
/** RFC 9001 §5.3: AEAD_AES_128_GCM key length. */
export const AEAD_KEY_LEN = 16
/** RFC 9001 §5.3: the nonce is the 12-byte IV XORed with the packet number. */
export const AEAD_IV_LEN = 12

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
 * One DCID's keys in the addon's slot layout (native/src/quic_crypto.cc):
 * the (version, DCID) they belong to is written here, and the addon derives
 * the keys into the slot lazily (hp first, key and IV only for a packet whose
 * reserved bits came out 0), as {@link InitialKeys} does.
 */
export class NativeKeys {
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

  /** The packet number the addon wrote with its last successful open in this slot. */
  get pn (): number {
    return this.slot.readUInt32LE(SLOT_PN)
  }
}
// Slot fields JS writes and reads (quic_crypto.cc has the whole layout).
const SLOT_STATE = 0
const SLOT_DCID_LEN = 1
const SLOT_VERSION = 4
const SLOT_DCID = 8
const SLOT_PN = 28

/** a[aOff, aOff + len) and b[bOff, bOff + len) hold the same bytes (DCIDs: at most 20). */
export function sameBytes (a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false
  return true
}
