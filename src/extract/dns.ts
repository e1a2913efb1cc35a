import { Status } from '../util/status.js'
import { u16 } from '../util/bytes.js'
import { NameOut, readName, type Name, type NameError } from '../name/index.js'

/**
 * DNS query reader: every question's name and type (RFC 1035 §4.1).
 *
 *   Header   { uint16 id; uint16 flags; uint16 qdcount, ancount, nscount, arcount }
 *   Question { name (labels / compression pointers); uint16 qtype; uint16 qclass }
 *
 * Names are decoded label by label into a scratch buffer. Compression pointers
 * (RFC 1035 §4.1.4) may point anywhere in the message, forward too: dnsmasq
 * follows them (rfc1035.c extract_name) and answers, so a name behind a
 * forward pointer is one a server acts on (issue 11, class 3). A loop ends
 * at MAX_POINTER_JUMPS jumps, as dnsmasq's does; labels are capped by
 * MAX_WIRE_NAME across jumps, so every name is read in bounded steps.
 */

const HEADER_LEN = 12
const FLAG_QR = 0x8000
const OPCODE_MASK = 0x7800 // opcode 0 = QUERY
/** Most questions we read from one message; real resolvers send one (RFC 9619). */
export const MAX_QUESTIONS = 16
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
const MAX_WIRE_NAME = 255
/** dnsmasq rfc1035.c extract_name: "hops > 255" breaks malicious loops; a longer chain no server we know follows. */
export const MAX_POINTER_JUMPS = 255
/** RFC 1035 §4.2.2: TCP messages carry a 2-byte length prefix. */
const TCP_PREFIX = 2

export class DnsQuery {
  /** Number of questions read into names/qtypes. */
  count = 0
  /** Questions declared in the header (may exceed count, see MAX_QUESTIONS). */
  declared = 0
  readonly names: Name[] = new Array<Name>(MAX_QUESTIONS).fill('' as Name)
  /** Why a question's name is not a valid Name; null for valid ones. */
  readonly nameErrors: Array<NameError | null> = new Array<NameError | null>(MAX_QUESTIONS).fill(null)
  readonly qtypes = new Uint16Array(MAX_QUESTIONS)
  id = 0
  /** With TCP: bytes of the input taken by this message, prefix included; NeedMore: bytes needed. */
  consumed = 0
  needed = 0
}

const scratch = Buffer.alloc(MAX_WIRE_NAME + 1)
const nameOut = new NameOut()

/** Parse one DNS message (UDP payload) at buf[start, end). */
export function parseDns (buf: Buffer, start: number, end: number, out: DnsQuery): Status {
  out.count = out.declared = out.consumed = out.needed = 0
  if (end - start < HEADER_LEN) return Status.Malformed
  const flags = u16(buf, start + 2)
  if ((flags & FLAG_QR) !== 0 || (flags & OPCODE_MASK) !== 0) return Status.Unsupported
  out.id = u16(buf, start)
  const qd = u16(buf, start + 4)
  out.declared = qd
  if (qd === 0) return Status.NoName
  let p = start + HEADER_LEN
  const n = Math.min(qd, MAX_QUESTIONS)
  for (let i = 0; i < n; i++) {
    const next = readQuestionName(buf, start, p, end)
    if (next < 0) return Status.Malformed
    if (next + 4 > end) return Status.Malformed
    out.qtypes[i] = u16(buf, next)
    if (readName(scratch, 0, scratchLen, nameOut)) {
      out.names[i] = nameOut.name
      out.nameErrors[i] = null
    } else {
      out.names[i] = '' as Name
      out.nameErrors[i] = nameOut.error
    }
    out.count = i + 1
    p = next + 4
  }
  out.consumed = end - start
  return Status.Ok
}

/** Parse the first DNS message of a TCP stream at buf[start, end) (RFC 1035 §4.2.2, RFC 7766). */
export function parseDnsTcp (buf: Buffer, start: number, end: number, out: DnsQuery): Status {
  out.count = out.declared = out.consumed = out.needed = 0
  if (end - start < TCP_PREFIX) { out.needed = TCP_PREFIX; return Status.NeedMore }
  const len = u16(buf, start)
  if (len < HEADER_LEN) return Status.Malformed
  if (start + TCP_PREFIX + len > end) { out.needed = TCP_PREFIX + len; return Status.NeedMore }
  const s = parseDns(buf, start + TCP_PREFIX, start + TCP_PREFIX + len, out)
  out.consumed = TCP_PREFIX + len
  return s
}

let scratchLen = 0

/**
 * Decode the name at `p` into scratch as dotted text. Returns the offset just
 * after the name in the message (not after a jump target), or -1.
 */
function readQuestionName (buf: Buffer, msg: number, p: number, end: number): number {
  scratchLen = 0
  let after = -1 // where the question continues once a pointer has been followed
  let jumps = 0
  let wire = 0
  for (;;) {
    if (p >= end) return -1
    const len = buf[p] as number
    if (len === 0) {
      if (after < 0) after = p + 1
      return after
    }
    const kind = len & 0xc0
    if (kind === 0xc0) {
      if (p + 2 > end) return -1
      const target = msg + (u16(buf, p) & 0x3fff)
      if (after < 0) after = p + 2
      if (++jumps > MAX_POINTER_JUMPS) return -1 // a loop, or a chain no server follows
      p = target // outside the message: the next read fails
      continue
    }
    if (kind !== 0) return -1 // 0x40/0x80: extended label types (RFC 6891 §5) are not names
    if (p + 1 + len > end) return -1
    wire += len + 1
    if (wire > MAX_WIRE_NAME) return -1
    if (scratchLen > 0) scratch[scratchLen++] = 0x2e
    for (let i = p + 1; i <= p + len; i++) {
      const c = buf[i] as number
      // A dot inside a label would read as two labels; keep it from matching.
      scratch[scratchLen++] = c === 0x2e ? 0x00 : c
    }
    p += 1 + len
  }
}
