import { Status } from '../util/status.js'

/**
 * HTTP/1.x request head reader: the Host header (RFC 9112 §3.2, RFC 9110 §7.2).
 *
 *   HTTP-message = *( CRLF ) request-line ...   (leading empty lines, §2.2)
 *   request-line = method SP request-target SP HTTP-version CRLF
 *   *( field-line CRLF ) CRLF
 *
 * Field names are case-insensitive (`hOsT:` is the same header), the value is
 * trimmed of optional whitespace, the host ends at the first ':' outside an
 * IP literal, and an IP literal is reported as such. Only the head is read,
 * and at most MAX_HTTP_HEAD bytes.
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

export class HttpHead {
  /** Host value [hostStart, hostEnd) in the input buffer, port removed ([v6] keeps its brackets). */
  hostStart = 0
  hostEnd = 0
  /** The Host value is an IP literal ([v6] or dotted v4), not a name. */
  ipLiteral = false
}

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const HT = 0x09
const COLON = 0x3a
const LBRACKET = 0x5b
const RBRACKET = 0x5d

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

/** Parse a request head at buf[start, end). Ok with out filled, NoName without Host. */
export function parseHttp (buf: Buffer, start: number, end: number, out: HttpHead): Status {
  out.ipLiteral = false
  const stop = Math.min(end, start + MAX_HTTP_HEAD)
  let p = skipEmptyLines(buf, start, end)
  if (p < 0) return Status.Malformed
  if (p === end) return Status.NeedMore
  const method = p
  while (p < stop && isTchar(buf[p] as number)) p++
  if (p === stop) return p - method > MAX_METHOD ? Status.Unsupported : Status.NeedMore
  if (p === method || p - method > MAX_METHOD || buf[p] !== SP) return Status.Unsupported
  // Skip the rest of the request line.
  while (p < stop && buf[p] !== LF) p++
  if (p === stop) return stop === end ? Status.NeedMore : Status.Malformed
  p++
  // Field lines until the empty line.
  for (;;) {
    if (p >= stop) return stop === end ? Status.NeedMore : Status.Malformed
    const c = buf[p] as number
    if (c === LF || (c === CR && p + 1 < stop && buf[p + 1] === LF)) return Status.NoName
    let lineEnd = p
    while (lineEnd < stop && buf[lineEnd] !== LF) lineEnd++
    if (lineEnd === stop) return stop === end ? Status.NeedMore : Status.Malformed
    if (lineEnd - p >= 5 && isHostName(buf, p) && buf[p + 4] === COLON) {
      return readHost(buf, p + 5, lineEnd, out)
    }
    p = lineEnd + 1
  }
}

function isHostName (b: Buffer, p: number): boolean {
  return ((b[p] as number) | 0x20) === 0x68 && ((b[p + 1] as number) | 0x20) === 0x6f &&
    ((b[p + 2] as number) | 0x20) === 0x73 && ((b[p + 3] as number) | 0x20) === 0x74
}

function readHost (b: Buffer, p: number, q: number, out: HttpHead): Status {
  if (q > p && b[q - 1] === CR) q--
  while (p < q && (b[p] === SP || b[p] === HT)) p++
  while (q > p && (b[q - 1] === SP || b[q - 1] === HT)) q--
  if (p === q) return Status.NoName
  const h = cutHost(b, p, q)
  out.ipLiteral = b[p] === LBRACKET
  out.hostStart = p
  out.hostEnd = h
  return h > p ? Status.Ok : Status.Malformed
}

/**
 * End of the host in a Host value or authority at b[p, q): at the first ':'
 * (`api.example.com:x` and `api.example.com:80:80` are api.example.com, as
 * nginx's ngx_http_validate_host reads them), or after the ']' of an IP
 * literal that opens the value (RFC 3986 §3.2.2; the rest after ']' is
 * ignored, as by nginx). A '[' elsewhere is an ordinary byte.
 */
function cutHost (b: Buffer, p: number, q: number): number {
  if (b[p] === LBRACKET) {
    for (let i = p + 1; i < q; i++) if (b[i] === RBRACKET) return i + 1
    return q
  }
  for (let i = p; i < q; i++) if (b[i] === COLON) return i
  return q
}
