import { Status } from '../../util/status.js'
import type { HttpHead } from '../http.js'

/**
 * Where a request head names a host: the authority of its request target
 * ({@link readTarget}) and the value of a Host field ({@link readHost}),
 * each cut to the host, and recorded in an {@link HttpHead} once (see
 * HttpHead for which ones a head reports).
 */

/**
 * Most hosts reported for the heads in one buffer. One head names at most
 * 4: the request target's authority (read two ways when it holds a '\', see
 * readTarget), the first Host and the last Host; pipelined heads add theirs
 * (HttpHead.heads). 12 leaves room in a classifier outcome of 16 decisions
 * for the unknown an unread host adds.
 */
export const MAX_HTTP_NAMES = 12
/** Longest URI scheme we look at before "://" (IANA's longest registered ones are under 32). */
const MAX_SCHEME = 32

// Byte values are this file's own consts, not imported: measurably faster (see http.ts).
const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const HT = 0x09
const COLON = 0x3a
const LBRACKET = 0x5b
const RBRACKET = 0x5d
const SLASH = 0x2f
const BACKSLASH = 0x5c
const QUESTION = 0x3f
const HASH = 0x23
const AT = 0x40
const DOT = 0x2e

function isAlpha (c: number): boolean {
  c |= 0x20
  return c >= 0x61 && c <= 0x7a
}

/**
 * The authority of the request target at b[p, stop), if it has one
 * (RFC 9112 §3.2.2, §3.2.3):
 *
 *   absolute-form  = scheme "://" authority path-abempty [ "?" query ]
 *   authority-form = uri-host ":" port                     (CONNECT only)
 *   authority      = [ userinfo "@" ] host [ ":" port ]
 *
 * Any scheme (RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ))
 * counts, in any case: nginx, Go and Apache take the host of `ftp://h/` as
 * well. The authority ends at '/', '?', '#' or white space; the userinfo ends
 * at its last '@' (Go, Apache, WHATWG). A '\' in it is read both ways: up to
 * the '\' as WHATWG URL parsers do (`new URL()` in a Node proxy), and past it
 * as Go and Apache do. origin-form ('/') and asterisk-form ('*') name nothing.
 */
export function readTarget (b: Buffer, p: number, stop: number, connect: boolean, out: HttpHead): void {
  let a = p
  if (p < stop && isAlpha(b[p] as number)) {
    let i = p + 1
    while (i < stop && i - p < MAX_SCHEME) {
      const c = b[i] as number
      if (!(isAlpha(c) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e)) break
      i++
    }
    if (i + 2 < stop && b[i] === COLON && b[i + 1] === SLASH && b[i + 2] === SLASH) a = i + 3
  }
  if (a === p && !connect) return
  let z = a
  let backslash = -1
  for (; z < stop; z++) {
    const c = b[z] as number
    if (c === SLASH || c === QUESTION || c === HASH || c === SP || c === HT || c === CR || c === LF) break
    if (c === BACKSLASH && backslash < 0) backslash = z
  }
  addAuthority(b, a, z, out)
  if (backslash >= 0) addAuthority(b, a, backslash, out)
}

/** The host of authority b[a, z): after the last '@', up to the port. */
function addAuthority (b: Buffer, a: number, z: number, out: HttpHead): void {
  for (let i = z - 1; i >= a; i--) if (b[i] === AT) { a = i + 1; break }
  add(b, a, cutHost(b, a, z), out)
}

/** Record host b[p, q) unless empty, already recorded (case-insensitive, one trailing dot aside), or no slot is left. */
function add (b: Buffer, p: number, q: number, out: HttpHead): void {
  if (q <= p) return
  const qq = b[q - 1] === DOT ? q - 1 : q
  for (let k = 0; k < out.count; k++) {
    const s = out.starts[k] as number
    let e = out.ends[k] as number
    if (b[e - 1] === DOT) e--
    if (e - s !== qq - p) continue
    let i = 0
    while (i < qq - p && ((b[s + i] as number) | 0x20) === ((b[p + i] as number) | 0x20)) i++
    if (i === qq - p) return
  }
  if (out.count >= MAX_HTTP_NAMES) { out.moreHosts = true; return }
  out.starts[out.count] = p
  out.ends[out.count] = q
  out.count++
}

/**
 * Record the host of a Host field value b[p, q) (CR included). Returns the
 * status for a head that names no host: `none`, or Malformed when this
 * value is not empty but its host part is (`Host: :80`).
 */
export function readHost (b: Buffer, p: number, q: number, out: HttpHead, none: Status): Status {
  if (q > p && b[q - 1] === CR) q--
  while (p < q && (b[p] === SP || b[p] === HT)) p++
  while (q > p && (b[q - 1] === SP || b[q - 1] === HT)) q--
  if (p === q) return none
  const h = cutHost(b, p, q)
  add(b, p, h, out)
  return h > p ? none : Status.Malformed
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
