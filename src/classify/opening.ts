import { skipEmptyLines } from '../extract/http.js'
import type { Seen } from './outcome.js'

/**
 * What kind of opening a TCP payload begins: one answer, from its first
 * bytes and the server port, for the reader (which parser to run), for the
 * flow table (may this segment be where a stream starts?) and for the log
 * (how a name here would be seen).
 */

export const PORT_DNS = 53
export const PORT_HTTP = 80
export const PORT_HTTPS = 443
export const PORT_DOT = 853

export const enum Opening {
  /** Nothing we read. */
  None,
  /** A TLS handshake record: a ClientHello. */
  Tls,
  /** A TLS alert or change_cipher_spec a server reads (or skips) before the hello. */
  TlsPrelude,
  /** A DNS-over-TCP message (by port). */
  Dns,
  /** An HTTP request line (or the empty lines servers skip before one). */
  Http,
}

const CR = 0x0d
const LF = 0x0a
const TLS_CHANGE_CIPHER_SPEC = 0x14
export const TLS_ALERT = 0x15
const TLS_HANDSHAKE = 0x16

/**
 * First byte of a record version a server still reads a hello under: Go's
 * crypto/tls takes any version below 0x1000 in the first record (extract/tls.ts),
 * so a hello record versioned 0x0001 is an opening too.
 */
const GO_RECORD_MAJOR_LIMIT = 0x10

/**
 * A record with such an odd version (major byte under 0x10, not 3) is taken
 * as an opening only when the rest of its header says so too: a plausible
 * length, and a ClientHello (handshake type 1), a 2-byte alert or an empty
 * record behind it. Bytes from the middle of a stream rarely look like that.
 */
function oddVersionRecord (buf: Buffer, s: number, e: number): boolean {
  if ((buf[s + 1] as number) >= GO_RECORD_MAJOR_LIMIT || e - s < 5) return false
  const len = ((buf[s + 3] as number) << 8) | (buf[s + 4] as number)
  const c = buf[s] as number
  if (c === TLS_HANDSHAKE) return len > 0 && len <= 16384 && (e - s < 6 || buf[s + 5] === 1)
  return c === TLS_ALERT ? len === 2 : len === 0
}

/** Is the record version at buf[s + 1] one a server reads a first record under? */
function plausibleVersion (buf: Buffer, s: number, e: number): boolean {
  return e - s < 2 || buf[s + 1] === 0x03 || oddVersionRecord(buf, s, e)
}

/** An uppercase letter: how every HTTP method begins. */
function methodStart (c: number): boolean {
  return c >= 0x41 && c <= 0x5a
}

/**
 * The kind of message buf[s, e) begins, read as a server that takes it as
 * the start of its stream would: any handshake record is TLS, any request
 * line HTTP whatever the port (a plain proxy on 443 is read, not skipped).
 */
export function openingOf (buf: Buffer, s: number, e: number, dstPort: number): Opening {
  const c = buf[s] as number
  if (c === TLS_HANDSHAKE) return Opening.Tls
  if ((c === TLS_ALERT || c === TLS_CHANGE_CIPHER_SPEC) && plausibleVersion(buf, s, e)) return Opening.TlsPrelude
  if (dstPort === PORT_DNS) return Opening.Dns
  if (methodStart(c) || c === CR || c === LF) return Opening.Http
  return Opening.None
}

/**
 * Could the segment begin an opening, where we do not know where the stream
 * starts? Stricter than openingOf: a handshake record needs a version a
 * server reads, HTTP is not looked for on the TLS ports, and empty lines
 * count only with a request line (or too many of them) behind. `prelude`:
 * an alert or change_cipher_spec counts (a server that skips a warning alert
 * in front of the hello, as Go does, must not let it hide the hello from us).
 */
export function opensHere (kind: Opening, buf: Buffer, s: number, e: number, dstPort: number, prelude: boolean): boolean {
  switch (kind) {
    case Opening.Tls: return plausibleVersion(buf, s, e)
    case Opening.TlsPrelude: return prelude || dstPort === PORT_DNS
    case Opening.Dns: return true
    case Opening.Http: {
      if (dstPort === PORT_HTTPS || dstPort === PORT_DOT) return false
      const c = buf[s] as number
      if (c !== CR && c !== LF) return true
      // RFC 9112 §2.2: servers skip empty lines before a request line. Too many is a start too (Malformed, unknown).
      const p = skipEmptyLines(buf, s, e)
      return p < 0 || (p < e && methodStart(buf[p] as number))
    }
    default: return false
  }
}

/** The opening's kind when it could begin one here (opensHere), else None. */
export function openingHere (buf: Buffer, s: number, e: number, dstPort: number, prelude: boolean): Opening {
  const kind = openingOf(buf, s, e, dstPort)
  return opensHere(kind, buf, s, e, dstPort, prelude) ? kind : Opening.None
}

/** A TLS record other than a handshake (change_cipher_spec, alert, application data, heartbeat): the hello is behind us. */
export function laterTlsRecord (buf: Buffer, s: number, e: number): boolean {
  const c = buf[s] as number
  return e - s >= 3 && c >= 20 && c <= 24 && c !== TLS_HANDSHAKE && buf[s + 1] === 0x03 && (buf[s + 2] as number) <= 0x04
}

/** A record with an odd version (see oddVersionRecord) that opens this segment. */
export function oddRecordStart (buf: Buffer, s: number, e: number): boolean {
  return (buf[s] as number) <= TLS_HANDSHAKE && buf[s + 1] !== 0x03 && e - s >= 2
}

/** TCP ports whose connections open with a name we read (TLS, DoT, HTTP): their SYNs are queued. */
export function opensWithName (port: number): boolean {
  return port === PORT_HTTPS || port === PORT_HTTP || port === PORT_DOT
}

/** How a name on this TCP port would be seen, for a line about a flow whose opening we could not read. */
export function seenOnPort (port: number): Seen {
  return port === PORT_HTTP ? 'http' : port === PORT_DNS ? 'dns' : 'sni'
}
