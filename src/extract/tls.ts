import { Status } from '../util/status.js'
import { u16, u24 } from '../util/bytes.js'

/**
 * TLS ClientHello reader: SNI, ALPN and Encrypted Client Hello presence.
 *
 * Layout (RFC 8446 §5.1, §4.1.2; TLS 1.0-1.2 share it, RFC 5246 §7.4.1.2):
 *
 *   TLSPlaintext  { uint8 type = 22; uint16 version; uint16 length; fragment }
 *   Handshake     { uint8 msg_type = 1; uint24 length; ClientHello }
 *   ClientHello   { uint16 legacy_version; opaque random[32];
 *                   opaque session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
 *                   opaque compression_methods<1..2^8-1>;
 *                   Extension extensions<8..2^16-1> }
 *   Extension     { uint16 type; opaque data<0..2^16-1> }
 *
 * Every length is checked against the container it sits in before use, and a
 * handshake message spread over several records is gathered into a scratch
 * buffer (the only copy, and only for that rare case).
 */

const CONTENT_HANDSHAKE = 22
const HS_CLIENT_HELLO = 1
/** RFC 8446 §5.1: a TLSPlaintext fragment MUST NOT exceed 2^14 bytes. */
export const MAX_TLS_PLAINTEXT = 16384
/** Our cap on a ClientHello gathered over several records (post-quantum hellos are ~1.8 kB). */
export const MAX_CLIENT_HELLO = 65536
/** RFC 8446 §4.1.2. */
const MAX_SESSION_ID = 32
const RANDOM_LEN = 32

export const EXT_SERVER_NAME = 0 // RFC 6066 §3
export const EXT_ALPN = 16 // RFC 7301 §3.1
/** draft-ietf-tls-esni: encrypted_client_hello. */
export const EXT_ECH = 0xfe0d
const SNI_HOST_NAME = 0
const ECH_OUTER = 0

export class TlsHello {
  /** Buffer that sniStart/alpnStart index: the input, or the scratch buffer after gathering records. */
  buf: Buffer = Buffer.alloc(0)
  sniStart = 0
  sniEnd = 0
  hasSni = false
  /** ALPN ProtocolNameList body [alpnStart, alpnEnd): entries of uint8 length + bytes. */
  alpnStart = 0
  alpnEnd = 0
  /** encrypted_client_hello extension present (GREASE or real; see issue on ECH). */
  ech = false
  /** ECH extension is of the outer type (0); false for inner (1) or absent. */
  echOuter = false
  /** Number of TLS records the handshake message used. */
  records = 0
  /** With NeedMore: bytes from the start needed so far (a lower bound when records are split). */
  needed = 0
  /** Bytes of the input consumed by the records read. */
  consumed = 0

  reset (): void {
    this.hasSni = this.ech = this.echOuter = false
    this.sniStart = this.sniEnd = this.alpnStart = this.alpnEnd = 0
    this.records = this.needed = this.consumed = 0
  }
}

const scratch = Buffer.alloc(MAX_CLIENT_HELLO + 4)

/**
 * Parse the TLS records at buf[start, end) as a ClientHello.
 * Ok: out.hasSni tells whether there is a name (NoName when none).
 */
export function parseTls (buf: Buffer, start: number, end: number, out: TlsHello): Status {
  out.reset()
  out.buf = buf
  if (end - start < 5) return needMore(out, 5)
  if (buf[start] !== CONTENT_HANDSHAKE) return Status.Unsupported
  if (buf[start + 1] !== 3) return Status.Unsupported
  const recLen = u16(buf, start + 3)
  if (recLen === 0 || recLen > MAX_TLS_PLAINTEXT) return Status.Malformed
  const body = start + 5
  const recEnd = body + recLen
  if (recLen >= 4 && end - body >= 4) {
    if (buf[body] !== HS_CLIENT_HELLO) return Status.Unsupported
    const hsLen = u24(buf, body + 1)
    if (hsLen > MAX_CLIENT_HELLO) return Status.Malformed
    if (4 + hsLen <= recLen) {
      // Common case: the whole hello sits in the first record; parse in place.
      if (recEnd > end) return needMore(out, 5 + recLen)
      out.records = 1
      out.consumed = 5 + recLen
      return parseClientHello(buf, body + 4, body + 4 + hsLen, out)
    }
  } else if (recEnd <= end && recLen >= 1 && buf[body] !== HS_CLIENT_HELLO) {
    return Status.Unsupported
  }
  return gather(buf, start, end, out)
}

/**
 * The hello spans several records (or its 4-byte header does): copy the
 * handshake bytes of consecutive records into scratch until the message is
 * whole. Each record read advances by at least 6 bytes.
 */
function gather (buf: Buffer, start: number, end: number, out: TlsHello): Status {
  let have = 0
  let want = 4 // the handshake header first, then the whole message
  let off = start
  let records = 0
  while (have < want) {
    if (off + 5 > end) return needMore(out, off + 5 - start)
    if (buf[off] !== CONTENT_HANDSHAKE) return Status.Malformed // interleaved non-handshake record
    const len = u16(buf, off + 3)
    if (len === 0 || len > MAX_TLS_PLAINTEXT) return Status.Malformed // RFC 8446 §5.1: no empty handshake records
    if (off + 5 + len > end) return needMore(out, off + 5 + len - start)
    let from = off + 5
    const to = off + 5 + len
    while (from < to && have < want) {
      const take = Math.min(to - from, want - have)
      buf.copy(scratch, have, from, from + take)
      have += take
      from += take
      if (want === 4 && have === 4) {
        if (scratch[0] !== HS_CLIENT_HELLO) return Status.Unsupported
        const hsLen = u24(scratch, 1)
        if (hsLen > MAX_CLIENT_HELLO) return Status.Malformed
        want = 4 + hsLen
      }
    }
    off = to
    records++
  }
  out.buf = scratch
  out.records = records
  out.consumed = off - start
  return parseClientHello(scratch, 4, want, out)
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

function needMore (out: TlsHello, needed: number): Status {
  out.needed = needed
  return Status.NeedMore
}

function parseClientHello (b: Buffer, p: number, q: number, out: TlsHello): Status {
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

/**
 * The server name of a ClientHello of which we hold only the start (it runs
 * past our reassembly cap, as a hello padded to tens of KiB does): the first
 * record, read in place up to `end`, its extensions in order until one is
 * cut off. True, with out.sniStart/sniEnd set, when a whole server_name
 * extension was found. That name is final: a server aborts on a second one
 * (RFC 8446 §4.2), so what follows cannot change it.
 */
export function peekSni (buf: Buffer, start: number, end: number, out: TlsHello): boolean {
  out.reset()
  out.buf = buf
  if (end - start < 9 || buf[start] !== CONTENT_HANDSHAKE || buf[start + 1] !== 3 || buf[start + 5] !== HS_CLIENT_HELLO) return false
  const stop = Math.min(end, start + 5 + u16(buf, start + 3))
  let p = start + 9 + 2 + RANDOM_LEN // record and handshake headers, legacy_version, random
  if (p + 1 > stop) return false
  p += 1 + (buf[p] as number) // session id
  if (p + 2 > stop) return false
  p += 2 + u16(buf, p) // cipher suites
  if (p + 1 > stop) return false
  p += 1 + (buf[p] as number) // compression methods
  p += 2 // extensions length: the list runs past what we hold
  while (p + 4 <= stop) {
    const type = u16(buf, p)
    const dataEnd = p + 4 + u16(buf, p + 2)
    if (dataEnd > stop) return false
    if (type === EXT_SERVER_NAME) return readServerName(buf, p + 4, dataEnd, out) && out.hasSni
    p = dataEnd // advances by at least 4
  }
  return false
}

// RFC 6066 §3: ServerNameList { ServerName server_name_list<1..2^16-1> }
function readServerName (b: Buffer, p: number, q: number, out: TlsHello): boolean {
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
