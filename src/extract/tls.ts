import { Status } from '../util/status.js'
import { u16, u24 } from '../util/bytes.js'
import {
  EXT_SERVER_NAME, HS_CLIENT_HELLO, MAX_CLIENT_HELLO, RANDOM_LEN, TlsHello, needMore, parseClientHello, readServerName,
} from './tls/hello.js'

export {
  TlsHello, parseHandshake, alpnList, EXT_SERVER_NAME, EXT_ALPN, EXT_ECH, MAX_CLIENT_HELLO,
} from './tls/hello.js'

/**
 * TLS ClientHello reader over the record layer: SNI, ALPN and Encrypted
 * Client Hello presence (the message itself is read by tls/hello.ts).
 *
 * Layout (RFC 8446 §5.1; TLS 1.0-1.2 share it, RFC 5246 §6.2.1):
 *
 *   TLSPlaintext  { uint8 type = 22; uint16 version; uint16 length; fragment }
 *   fragment      = Handshake { uint8 msg_type = 1; uint24 length; ClientHello },
 *                   or a piece of it: a message may span several records
 *
 * Every length is checked against the container it sits in before use, and a
 * handshake message spread over several records is gathered into a scratch
 * buffer (the only copy, and only for that rare case).
 */

const CONTENT_CCS = 20
const CONTENT_ALERT = 21
const CONTENT_HANDSHAKE = 22
const RECORD_HEADER = 5
/** RFC 8446 §5.1: a TLSPlaintext fragment MUST NOT exceed 2^14 bytes. */
export const MAX_TLS_PLAINTEXT = 16384

/**
 * Records a server drops before (and between the pieces of) a ClientHello.
 * We read the stream as the most lenient of the common servers does, so a
 * record one of them skips cannot hide the hello from us (issue 11, class 3).
 * Measured with the servers themselves (test/unit/extract/differential.test.ts):
 *
 * - Go crypto/tls (conn.go readRecordOrCCS, Go 1.19 to today): until the
 *   hello is read a record must be an alert or a handshake with a record
 *   version under 0x1000 ("first record does not look like a TLS
 *   handshake"). A warning alert (level 1, 2 bytes, not close_notify) is
 *   dropped; more than maxUselessRecords (16) in a row is an error, and the
 *   count restarts at every handshake record with data. An empty handshake
 *   record, a fatal alert and close_notify end the connection.
 * - OpenSSL 3 (ssl3_get_record, ssl3_read_bytes): no alert and no
 *   change_cipher_spec with data before the hello, a record version of major
 *   3, but empty records (handshake or change_cipher_spec) are dropped, up to
 *   MAX_EMPTY_RECORDS (32) in a row.
 *
 * A sequence only a server that has already given up would go on reading is
 * refused: neither server reads a hello behind it.
 */
/** Go common.go maxUselessRecords: warning alerts dropped in a row. */
export const MAX_SKIPPED_ALERTS = 16
/** OpenSSL ssl/record/record.h MAX_EMPTY_RECORDS: empty records dropped in a row. */
export const MAX_EMPTY_RECORDS = 32
/** Go conn.go: before the version is agreed, a record version >= 0x1000 "does not look like a TLS handshake". */
const GO_RECORD_VERSION_LIMIT = 0x1000
const ALERT_WARNING = 1 // RFC 5246 §7.2 AlertLevel
const ALERT_CLOSE_NOTIFY = 0

const scratch = Buffer.alloc(MAX_CLIENT_HELLO + 4)

/**
 * Whether Go's and OpenSSL's servers would still be reading, after the
 * records seen so far (see MAX_SKIPPED_ALERTS). One instance, reset per
 * call: parsing is synchronous.
 */
class RecordRules {
  go = true
  openssl = true
  /** Go: warning alerts since the last handshake record with data. */
  alerts = 0
  /** OpenSSL: empty records in a row. */
  empty = 0

  reset (): void {
    this.go = this.openssl = true
    this.alerts = this.empty = 0
  }

  /** The 5-byte header at buf[off]: false when no server takes a record of this type and version. */
  header (buf: Buffer, off: number): boolean {
    const type = buf[off] as number
    if (type !== CONTENT_HANDSHAKE && type !== CONTENT_ALERT) this.go = false
    else if (u16(buf, off + 1) >= GO_RECORD_VERSION_LIMIT) this.go = false
    if ((type !== CONTENT_HANDSHAKE && type !== CONTENT_CCS) || buf[off + 1] !== 3) this.openssl = false
    return this.go || this.openssl
  }

  /** A whole record that carries no handshake bytes: false when no server drops it. */
  skip (buf: Buffer, off: number, len: number): boolean {
    const type = buf[off] as number
    const body = off + RECORD_HEADER
    if (type === CONTENT_ALERT) {
      this.openssl = false
      if (len !== 2 || buf[body] !== ALERT_WARNING || buf[body + 1] === ALERT_CLOSE_NOTIFY || ++this.alerts > MAX_SKIPPED_ALERTS) this.go = false
    } else {
      // An empty handshake or change_cipher_spec record (header() let no other type through).
      this.go = false
      if (len !== 0 || ++this.empty > MAX_EMPTY_RECORDS) this.openssl = false
    }
    return this.go || this.openssl
  }

  /** A handshake record with data: both servers restart their counts. */
  data (): void {
    this.alerts = this.empty = 0
  }
}

const rules = new RecordRules()

/**
 * Parse the TLS records at buf[start, end) as a ClientHello, after any
 * records a server drops first (RecordRules; out.skipped, out.helloStart).
 * Ok: the hello is whole and has a server name (out.sniStart/sniEnd);
 * NoName: whole, without one. NeedMore (out.needed): the records end first.
 * Unsupported: the stream does not start with a hello (another record type,
 * a handshake message of another type, a record no server skips).
 * Malformed: a hello whose lengths do not hold (past their container, a
 * record over MAX_TLS_PLAINTEXT, a hello over MAX_CLIENT_HELLO), a second
 * server_name or ALPN, or a record no server takes between its pieces.
 */
export function parseTls (buf: Buffer, start: number, end: number, out: TlsHello): Status {
  out.reset()
  out.buf = buf
  rules.reset()
  const st = skipLeading(buf, start, end, out)
  if (st !== Status.Ok) return st
  const rec = out.helloStart
  const recLen = u16(buf, rec + 3)
  const body = rec + RECORD_HEADER
  if (recLen >= 4 && end - body >= 4) {
    if (buf[body] !== HS_CLIENT_HELLO) return Status.Unsupported
    const hsLen = u24(buf, body + 1)
    if (hsLen > MAX_CLIENT_HELLO) return Status.Malformed
    if (4 + hsLen <= recLen) {
      // Common case: the whole hello sits in one record; parse in place.
      if (body + recLen > end) return needMore(out, body + recLen - start)
      out.records = 1
      out.consumed = body + recLen - start
      return parseClientHello(buf, body + 4, body + 4 + hsLen, out)
    }
  } else if (end > body && buf[body] !== HS_CLIENT_HELLO) {
    return Status.Unsupported
  }
  return gather(buf, start, rec, end, out)
}

/**
 * Walk the records a server drops at buf[start, end) up to the first
 * handshake record with data, whose header offset goes to out.helloStart
 * (its header is whole, its body may not be). Ok when found; NeedMore when
 * the bytes end first. A record no server reads here gets the status it had
 * before records were skipped: Unsupported for another type or record
 * version (a later record of a stream), for an alert no server drops
 * (close_notify, fatal, or one too many), Malformed for a handshake record
 * that is too long or one empty record too many. Each record read advances by at least 5 bytes.
 */
function skipLeading (buf: Buffer, start: number, end: number, out: TlsHello): Status {
  let off = start
  for (;;) {
    if (off + RECORD_HEADER > end) return needMore(out, off + RECORD_HEADER - start)
    const type = buf[off] as number
    const len = u16(buf, off + 3)
    if (!rules.header(buf, off)) return Status.Unsupported
    if (len > MAX_TLS_PLAINTEXT) return type === CONTENT_HANDSHAKE ? Status.Malformed : Status.Unsupported
    if (type === CONTENT_HANDSHAKE && len > 0) {
      out.helloStart = off
      return Status.Ok
    }
    if (off + RECORD_HEADER + len > end) return needMore(out, off + RECORD_HEADER + len - start)
    if (!rules.skip(buf, off, len)) return type === CONTENT_HANDSHAKE ? Status.Malformed : Status.Unsupported
    out.skipped++
    off += RECORD_HEADER + len
  }
}

/**
 * The hello spans several records (or its 4-byte header does): copy the
 * handshake bytes of consecutive records from `rec` on into scratch until
 * the message is whole, dropping what a server drops between them. Each
 * record read advances by at least 5 bytes.
 */
function gather (buf: Buffer, start: number, rec: number, end: number, out: TlsHello): Status {
  let have = 0
  let want = 4 // the handshake header first, then the whole message
  let off = rec
  let records = 0
  while (have < want) {
    if (off + RECORD_HEADER > end) return needMore(out, off + RECORD_HEADER - start)
    const len = u16(buf, off + 3)
    if (!rules.header(buf, off)) return Status.Malformed // interleaved record no server takes
    if (len > MAX_TLS_PLAINTEXT) return Status.Malformed
    if (off + RECORD_HEADER + len > end) return needMore(out, off + RECORD_HEADER + len - start)
    if (buf[off] !== CONTENT_HANDSHAKE || len === 0) {
      if (!rules.skip(buf, off, len)) return Status.Malformed
      out.skipped++
      off += RECORD_HEADER + len
      continue
    }
    rules.data()
    let from = off + RECORD_HEADER
    const to = from + len
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
 * The server name of a ClientHello of which we hold only the start (it runs
 * past our reassembly cap, as a hello padded to tens of KiB does): its
 * first record (after records a server drops, as parseTls skips them),
 * read in place up to `end`, its extensions in order until one is
 * cut off. True, with out.sniStart/sniEnd set, when a whole server_name
 * extension was found. That name is final: a server aborts on a second one
 * (RFC 8446 §4.2), so what follows cannot change it.
 */
export function peekSni (buf: Buffer, start: number, end: number, out: TlsHello): boolean {
  out.reset()
  out.buf = buf
  rules.reset()
  // Records a server drops may come first (RecordRules); the hello's first record is read.
  if (skipLeading(buf, start, end, out) !== Status.Ok) return false
  const rec = out.helloStart
  if (end - rec < 9 || buf[rec + 5] !== HS_CLIENT_HELLO) return false
  const stop = Math.min(end, rec + 5 + u16(buf, rec + 3))
  let p = rec + 9 + 2 + RANDOM_LEN // record and handshake headers, legacy_version, random
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

