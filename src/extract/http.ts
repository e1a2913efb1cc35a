import { Status } from '../util/status.js'
import { MAX_HTTP_NAMES, readHost, readTarget } from './http/hosts.js'

export { MAX_HTTP_NAMES } from './http/hosts.js'

/**
 * HTTP/1.x request head reader: the authority of the request target and the
 * Host header (RFC 9112 §3.2, RFC 9110 §7.2).
 *
 *   HTTP-message = *( CRLF ) request-line ...   (leading empty lines, §2.2)
 *   request-line = method SP request-target SP HTTP-version CRLF
 *   *( field-line CRLF ) CRLF
 *
 * Field names are case-insensitive (`hOsT:` is the same header), the value is
 * trimmed of optional whitespace, the host ends at the first ':' outside an
 * IP literal, and an IP literal is reported as such (http/hosts.ts cuts the
 * hosts out). Only heads are read, each up to MAX_HTTP_HEAD bytes: a body is
 * skipped by its Content-Length to reach a pipelined request (see HttpHead).
 */

/** Our cap on the bytes of a request head we look at. */
export const MAX_HTTP_HEAD = 8192
/**
 * CR and LF bytes we skip before the request line. RFC 9112 §2.2: a server
 * SHOULD ignore at least one empty line there; nginx and llhttp (Node) skip
 * any number of CR and LF bytes, Apache up to 10 empty lines. Beyond this the
 * head is Malformed (not Unsupported): a server may still read the request.
 */
export const MAX_LEADING_EMPTY = 32
/** Longest method token we accept (`OPTIONS`, `CONNECT`, WebDAV's `PROPPATCH`...). */
const MAX_METHOD = 16

/** Most pipelined request heads read from one buffer; a head past them sets HttpHead.moreHosts. */
export const MAX_HTTP_HEADS = 8

/**
 * What a request head names. A server that follows RFC 9112 §3.2.2 (nginx,
 * Go, Apache) acts on the authority of an absolute-form or CONNECT target
 * and ignores Host; a lenient one, or an application reading the Host
 * header, acts on Host. Several Host lines: nginx and Go answer 400, Apache
 * joins them (`a, b`) and answers 400, Node keeps the first, other lenient
 * servers the last; so the first and the last are read (one in between is
 * used by none). When these hosts differ all are reported, so a filter can
 * apply the stricter decision; equal ones (case, one trailing dot aside) are
 * reported once. To know there is no later Host the whole head must be
 * seen: NeedMore until its empty line, Malformed past MAX_HTTP_HEAD bytes
 * (the flow table then applies the policy's unknown).
 *
 * A client may send requests one after another without waiting (RFC 9112
 * §9.3.2), and a server answers each: the hosts of every whole head in the
 * bytes are reported, in order, up to MAX_HTTP_NAMES (issue 11, class 3).
 * The next request starts after a head's body: Content-Length bytes, none
 * without framing (RFC 9112 §6.3). Where a chunked (Transfer-Encoding) body
 * ends, or an unreadable Content-Length's, is not worked out: bodyUnknown
 * says so, and nothing after that head is read.
 */
export class HttpHead {
  /** Distinct hosts found, in the order target, first Host, last Host (meaningful when the status is Ok). */
  count = 0
  /** Host i is buf[starts[i], ends[i]) of the input buffer: userinfo and port removed, [v6] with its brackets. */
  readonly starts = new Int32Array(MAX_HTTP_NAMES)
  readonly ends = new Int32Array(MAX_HTTP_NAMES)
  /** Host 0 [hostStart, hostEnd): what an RFC 9112 server acts on. */
  hostStart = 0
  hostEnd = 0
  /** Host 0 is a bracketed IP literal, not a name (a host i is one when buf[starts[i]] is '['). */
  ipLiteral = false
  /** Whole request heads read: 1, or more when requests are pipelined (a later head's hosts follow the earlier ones'). */
  heads = 0
  /** More hosts were present than starts/ends hold (MAX_HTTP_NAMES), or more heads than MAX_HTTP_HEADS were sent. */
  moreHosts = false
  /**
   * A head read declares Transfer-Encoding, or a Content-Length that is not
   * one decimal number (servers answer 400 or read a chunked body): where
   * the next request would start is not known, and nothing after that head
   * was read. A caller may treat those bytes as an unread opening.
   */
  bodyUnknown = false
  /**
   * Offset just past the last request read, its head and Content-Length
   * body (past `end` when that body runs on beyond the bytes given).
   * Meaningful when the status is Ok or NoName.
   */
  next = 0
  /**
   * What the bytes from `next` to `end` are: Ok when there are none,
   * NeedMore when they begin a request not yet whole (or the last body is
   * still arriving), Malformed or Unsupported when they are no request
   * head we read. Not set (Ok) when bodyUnknown stopped the reading.
   */
  tail: Status = Status.Ok
}

// Byte values are this file's own consts, as in http/hosts.ts, not imported from a
// shared file: imported, parseHttp ran 1.2-1.6x slower (A/B of the two builds on
// test/fixtures/http, one process, interleaved rounds); V8 seems to fold only a
// module's own consts into the scanning loops.
const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const HT = 0x09
const COLON = 0x3a
const LBRACKET = 0x5b

function isTchar (c: number): boolean {
  // RFC 9110 §5.6.2 token characters, upper case letters only for methods.
  return (c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f
}

/**
 * Where the request line begins in buf[s, e), after leading empty lines: the
 * first byte that is neither CR nor LF, e when the bytes end first, or -1 when
 * more than MAX_LEADING_EMPTY such bytes come first.
 */
export function skipEmptyLines (buf: Buffer, s: number, e: number): number {
  const stop = Math.min(e, s + MAX_LEADING_EMPTY)
  let p = s
  while (p < stop && (buf[p] === CR || buf[p] === LF)) p++
  if (p < e && p === s + MAX_LEADING_EMPTY && (buf[p] === CR || buf[p] === LF)) return -1
  return p
}

/**
 * Parse the request heads at buf[start, end): the first, then each one
 * pipelined after it (see HttpHead). Ok with out filled (out.count >= 1),
 * NoName when neither a target nor a Host names a host, Malformed when a
 * Host's host part is empty (`Host: :80`) and nothing else names one;
 * NeedMore, Malformed or Unsupported when the first head is not whole or
 * not a request (later heads then set out.tail).
 */
export function parseHttp (buf: Buffer, start: number, end: number, out: HttpHead): Status {
  out.count = out.heads = 0
  out.ipLiteral = out.moreHosts = out.bodyUnknown = false
  out.tail = Status.Ok
  out.next = start
  const first = readHead(buf, start, end, out)
  if (first !== Status.Ok && first !== Status.NoName && first !== Status.Malformed) return first
  if (first === Status.Malformed && headEnd < 0) return first // not a whole head (too long)
  out.heads = 1
  let none: Status = out.count > 0 ? Status.Ok : first
  for (;;) {
    if (bodyLen < 0) { out.bodyUnknown = true; out.next = headEnd; break }
    out.next = headEnd + bodyLen
    if (out.next >= end) {
      if (out.next > end) out.tail = Status.NeedMore
      break
    }
    if (out.heads === MAX_HTTP_HEADS) { out.moreHosts = true; break }
    const count = out.count
    const more = out.moreHosts
    const st = readHead(buf, out.next, end, out)
    if (headEnd < 0) {
      // A later head not whole, or no request: a target read from it may be cut short, so none of it counts.
      out.count = count
      out.moreHosts = more
      out.tail = st
      break
    }
    out.heads++
    if (none !== Status.Ok && st !== Status.NoName) none = st
  }
  return finish(buf, out, none)
}

/**
 * Where the head read by readHead ends (just past its empty line), or -1
 * when it is not whole; and its body's length: 0 without framing, the
 * Content-Length, or -1 when not known (Transfer-Encoding, an odd
 * Content-Length, CONNECT). Set by every readHead call (parsing is synchronous).
 */
let headEnd = -1
let bodyLen = 0

/** Read one request head at buf[start, end) into out (hosts added after those there). */
function readHead (buf: Buffer, start: number, end: number, out: HttpHead): Status {
  headEnd = -1
  bodyLen = 0
  const stop = Math.min(end, start + MAX_HTTP_HEAD)
  let p = skipEmptyLines(buf, start, end)
  if (p < 0) return Status.Malformed
  if (p === end) return Status.NeedMore
  const method = p
  while (p < stop && isTchar(buf[p] as number)) p++
  if (p === stop) return p - method > MAX_METHOD ? Status.Unsupported : Status.NeedMore
  if (p === method || p - method > MAX_METHOD || buf[p] !== SP) return Status.Unsupported
  const connect = p - method === 7 && isConnect(buf, method)
  // After CONNECT the bytes are the tunnel's, not requests.
  if (connect) bodyLen = -1
  // More than one SP or HT before the target: nginx and lenient Apache accept it (GoodbyeDPI -a).
  while (p < stop && (buf[p] === SP || buf[p] === HT)) p++
  readTarget(buf, p, stop, connect, out)
  // Skip the rest of the request line.
  while (p < stop && buf[p] !== LF) p++
  if (p === stop) return stop === end ? Status.NeedMore : Status.Malformed
  p++
  // Field lines until the empty line. The whole head is read: a second Host
  // may follow the first (see HttpHead).
  const before = out.count
  let hosts = 0
  let lastStart = 0
  let lastEnd = 0
  let none: Status = Status.NoName
  let lengthStart = -1 // the first Content-Length value, to compare later ones with
  let lengthEnd = -1
  for (;;) {
    if (p >= stop) return stop === end ? Status.NeedMore : Status.Malformed
    const c = buf[p] as number
    if (c === LF || (c === CR && p + 1 < stop && buf[p + 1] === LF)) {
      if (hosts > 1) none = readHost(buf, lastStart, lastEnd, out, none)
      headEnd = c === LF ? p + 1 : p + 2
      if (bodyLen >= 0 && lengthStart >= 0) bodyLen = readLength(buf, lengthStart, lengthEnd)
      return out.count > before ? Status.Ok : none
    }
    let lineEnd = p
    while (lineEnd < stop && buf[lineEnd] !== LF) lineEnd++
    if (lineEnd === stop) return stop === end ? Status.NeedMore : Status.Malformed
    if (lineEnd - p >= 5 && isHostName(buf, p) && buf[p + 4] === COLON) {
      if (hosts++ === 0) {
        none = readHost(buf, p + 5, lineEnd, out, none)
      } else {
        lastStart = p + 5
        lastEnd = lineEnd
      }
    } else if (lineEnd - p >= 18 && buf[p + 17] === COLON && matchLower(buf, p, TRANSFER_ENCODING)) {
      bodyLen = -1
    } else if (lineEnd - p >= 15 && buf[p + 14] === COLON && matchLower(buf, p, CONTENT_LENGTH)) {
      // Several Content-Length lines: one body length only when all say the same (Go); else unknown.
      if (lengthStart < 0) {
        lengthStart = p + 15
        lengthEnd = lineEnd
      } else if (!sameValue(buf, lengthStart, lengthEnd, p + 15, lineEnd)) {
        bodyLen = -1
      }
    }
    p = lineEnd + 1
  }
}

const CONTENT_LENGTH = Buffer.from('content-length')
const TRANSFER_ENCODING = Buffer.from('transfer-encoding')
/** Larger bodies than this are "past the bytes" anyway (the flow table holds 16 KiB); keeps the sum exact. */
const MAX_BODY = 0x7fffffff

/** b[p, p + name.length) equals the lower-case `name`, ignoring case. */
function matchLower (b: Buffer, p: number, name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) if (((b[p + i] as number) | 0x20) !== name[i]) return false
  return true
}

/** A field value b[p, q) (CR included) trimmed of white space. */
function trimStart (b: Buffer, p: number, q: number): number {
  while (p < q && (b[p] === SP || b[p] === HT)) p++
  return p
}
function trimEnd (b: Buffer, p: number, q: number): number {
  if (q > p && b[q - 1] === CR) q--
  while (q > p && (b[q - 1] === SP || b[q - 1] === HT)) q--
  return q
}

/** Two Content-Length values, trimmed, are the same bytes. */
function sameValue (b: Buffer, p1: number, q1: number, p2: number, q2: number): boolean {
  p1 = trimStart(b, p1, q1); q1 = trimEnd(b, p1, q1)
  p2 = trimStart(b, p2, q2); q2 = trimEnd(b, p2, q2)
  if (q1 - p1 !== q2 - p2) return false
  for (let i = 0; i < q1 - p1; i++) if (b[p1 + i] !== b[p2 + i]) return false
  return true
}

/** RFC 9110 §8.6: Content-Length = 1*DIGIT. The value, or -1 when it is not one number. */
function readLength (b: Buffer, p: number, q: number): number {
  p = trimStart(b, p, q)
  q = trimEnd(b, p, q)
  if (p === q) return -1
  let n = 0
  for (let i = p; i < q; i++) {
    const c = b[i] as number
    if (c < 0x30 || c > 0x39) return -1
    n = Math.min(MAX_BODY, n * 10 + c - 0x30)
  }
  return n
}

/** Ok when some host was found (host 0 mirrored in hostStart/hostEnd/ipLiteral), else `none`. */
function finish (b: Buffer, out: HttpHead, none: Status): Status {
  if (out.count === 0) return none === Status.Ok ? Status.NoName : none
  out.hostStart = out.starts[0] as number
  out.hostEnd = out.ends[0] as number
  out.ipLiteral = b[out.hostStart] === LBRACKET
  return Status.Ok
}

function isHostName (b: Buffer, p: number): boolean {
  return ((b[p] as number) | 0x20) === 0x68 && ((b[p + 1] as number) | 0x20) === 0x6f &&
    ((b[p + 2] as number) | 0x20) === 0x73 && ((b[p + 3] as number) | 0x20) === 0x74
}

/** `CONNECT` (methods are case-sensitive, RFC 9110 §9.1). */
function isConnect (b: Buffer, p: number): boolean {
  return b[p] === 0x43 && b[p + 1] === 0x4f && b[p + 2] === 0x4e && b[p + 3] === 0x4e &&
    b[p + 4] === 0x45 && b[p + 5] === 0x43 && b[p + 6] === 0x54
}
