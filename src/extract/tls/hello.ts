import { Status } from '../../util/status.js'
import { u16, u24 } from '../../util/bytes.js'

/**
 * The ClientHello handshake message, without its record layer (tls.ts reads
 * records; QUIC carries the message bare in CRYPTO frames, RFC 9001 §4):
 * SNI, ALPN and Encrypted Client Hello presence.
 *
 *   Handshake     { uint8 msg_type = 1; uint24 length; ClientHello }
 *   ClientHello   { uint16 legacy_version; opaque random[32];
 *                   opaque session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
 *                   opaque compression_methods<1..2^8-1>;
 *                   Extension extensions<8..2^16-1> }          (RFC 8446 §4.1.2)
 *   Extension     { uint16 type; opaque data<0..2^16-1> }
 *
 * TLS 1.0-1.2 share this layout (RFC 5246 §7.4.1.2).
 */

export const HS_CLIENT_HELLO = 1
/** Our cap on a ClientHello gathered over several records (post-quantum hellos are ~1.8 kB). */
export const MAX_CLIENT_HELLO = 65536
/** RFC 8446 §4.1.2. */
const MAX_SESSION_ID = 32
export const RANDOM_LEN = 32

export const EXT_SERVER_NAME = 0 // RFC 6066 §3
export const EXT_ALPN = 16 // RFC 7301 §3.1
/** draft-ietf-tls-esni: encrypted_client_hello. */
export const EXT_ECH = 0xfe0d
const SNI_HOST_NAME = 0
const ECH_OUTER = 0

/** What a ClientHello says, as offsets into `buf`. Caller-owned and reused; every parse resets it. */
export class TlsHello {
  /** Buffer that sniStart/alpnStart index: the input, or the scratch buffer after gathering records. */
  buf: Buffer = Buffer.alloc(0)
  sniStart = 0
  sniEnd = 0
  hasSni = false
  /** ALPN ProtocolNameList body [alpnStart, alpnEnd): entries of uint8 length + bytes. */
  alpnStart = 0
  alpnEnd = 0
  /** encrypted_client_hello extension present, GREASE or real (the outer bytes do not tell which). */
  ech = false
  /** ECH extension is of the outer type (0); false for inner (1) or absent. */
  echOuter = false
  /** Number of TLS records that carried bytes of the handshake message. */
  records = 0
  /**
   * Records a server drops that came before the hello or between its
   * pieces (warning alerts, empty records: see MAX_SKIPPED_ALERTS,
   * MAX_EMPTY_RECORDS), counted as far as the parser read. 0 for an
   * ordinary hello; more than 0 on any status means the stream did not
   * start with the hello's own record.
   */
  skipped = 0
  /** Offset in the input of the header of the first record with hello bytes (start when nothing was skipped). */
  helloStart = 0
  /** With NeedMore: bytes from the start needed so far (a lower bound when records are split). */
  needed = 0
  /** Bytes of the input consumed by the records read (skipped ones included). */
  consumed = 0

  reset (): void {
    this.hasSni = this.ech = this.echOuter = false
    this.sniStart = this.sniEnd = this.alpnStart = this.alpnEnd = 0
    this.records = this.skipped = this.helloStart = this.needed = this.consumed = 0
  }
}

/**
 * Parse a bare handshake message (no record layer), as QUIC carries it in
 * CRYPTO frames (RFC 9001 §4): `Handshake { msg_type = 1; uint24 length; ClientHello }`.
 * NeedMore (with out.needed) when the message continues past `end`.
 */
export function parseHandshake (buf: Buffer, start: number, end: number, out: TlsHello): Status {
  out.reset()
  out.buf = buf
  if (end - start < 4) return needMore(out, 4)
  if (buf[start] !== HS_CLIENT_HELLO) return Status.Unsupported
  const hsLen = u24(buf, start + 1)
  if (hsLen > MAX_CLIENT_HELLO) return Status.Malformed
  if (start + 4 + hsLen > end) return needMore(out, 4 + hsLen)
  out.consumed = 4 + hsLen
  return parseClientHello(buf, start + 4, start + 4 + hsLen, out)
}

/** NeedMore, with the bytes from the start needed so far in out.needed. */
export function needMore (out: TlsHello, needed: number): Status {
  out.needed = needed
  return Status.NeedMore
}

/**
 * The ClientHello body b[p, q) (after the 4-byte handshake header): Ok when
 * it has a server name, NoName when not, Malformed when a length runs past
 * its container or server_name or ALPN comes twice.
 */
export function parseClientHello (b: Buffer, p: number, q: number, out: TlsHello): Status {
  // legacy_version + random
  if (p + 2 + RANDOM_LEN + 1 > q) return Status.Malformed
  p += 2 + RANDOM_LEN
  const sidLen = b[p] as number
  if (sidLen > MAX_SESSION_ID) return Status.Malformed
  p += 1 + sidLen
  if (p + 2 > q) return Status.Malformed
  const csLen = u16(b, p)
  if (csLen < 2 || (csLen & 1) !== 0) return Status.Malformed
  p += 2 + csLen
  if (p + 1 > q) return Status.Malformed
  const cmLen = b[p] as number
  if (cmLen < 1) return Status.Malformed
  p += 1 + cmLen
  if (p > q) return Status.Malformed
  if (p === q) return Status.NoName // no extensions (SSL 3.0 style hello)
  if (p + 2 > q) return Status.Malformed
  const extEnd = p + 2 + u16(b, p)
  if (extEnd > q) return Status.Malformed
  p += 2
  let sawSni = false
  let sawAlpn = false
  while (p < extEnd) {
    if (p + 4 > extEnd) return Status.Malformed
    const type = u16(b, p)
    const dataEnd = p + 4 + u16(b, p + 2)
    if (dataEnd > extEnd) return Status.Malformed
    const data = p + 4
    if (type === EXT_SERVER_NAME) {
      // RFC 8446 §4.2: no extension type twice. A second SNI is an evasion attempt.
      if (sawSni) return Status.Malformed
      sawSni = true
      if (!readServerName(b, data, dataEnd, out)) return Status.Malformed
    } else if (type === EXT_ALPN) {
      if (sawAlpn) return Status.Malformed
      sawAlpn = true
      if (!readAlpn(b, data, dataEnd, out)) return Status.Malformed
    } else if (type === EXT_ECH) {
      out.ech = true
      out.echOuter = dataEnd > data && b[data] === ECH_OUTER
    }
    p = dataEnd // advances by at least 4
  }
  return out.hasSni ? Status.Ok : Status.NoName
}


// RFC 6066 §3: ServerNameList { ServerName server_name_list<1..2^16-1> }
export function readServerName (b: Buffer, p: number, q: number, out: TlsHello): boolean {
  if (p + 2 > q) return false
  const listEnd = p + 2 + u16(b, p)
  if (listEnd !== q) return false
  p += 2
  while (p < listEnd) {
    if (p + 3 > listEnd) return false
    const type = b[p] as number
    const nameEnd = p + 3 + u16(b, p + 1)
    if (nameEnd > listEnd) return false
    if (type === SNI_HOST_NAME) {
      // RFC 6066: at most one name of a type.
      if (out.hasSni || nameEnd === p + 3) return false
      out.hasSni = true
      out.sniStart = p + 3
      out.sniEnd = nameEnd
    }
    p = nameEnd
  }
  return true
}

// RFC 7301 §3.1: ProtocolNameList { ProtocolName protocol_name_list<2..2^16-1> }
function readAlpn (b: Buffer, p: number, q: number, out: TlsHello): boolean {
  if (p + 2 > q) return false
  const listEnd = p + 2 + u16(b, p)
  if (listEnd !== q) return false
  for (let i = p + 2; i < listEnd;) {
    const n = b[i] as number
    if (n === 0 || i + 1 + n > listEnd) return false
    i += 1 + n
  }
  out.alpnStart = p + 2
  out.alpnEnd = listEnd
  return true
}

/** The ALPN protocol names as strings (tests and tools; allocates; decision lines read the bytes in place). */
export function alpnList (h: TlsHello): string[] {
  const list: string[] = []
  for (let i = h.alpnStart; i < h.alpnEnd;) {
    const n = h.buf[i] as number
    list.push(h.buf.toString('latin1', i + 1, i + 1 + n))
    i += 1 + n
  }
  return list
}
