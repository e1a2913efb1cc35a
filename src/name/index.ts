import { domainToASCII } from 'node:url'

/**
 * One normalisation for every name aigate sees or is told about: wire names
 * (SNI, DNS, HTTP Host), rule patterns and CLI arguments all pass through here,
 * so a rule and a packet can never disagree about case, dots or IDN.
 *
 * A Name is lower case, ASCII (IDN as punycode, via node's own UTS #46
 * mapping), without a trailing dot, at most 253 characters, labels of 1..63
 * characters made of letters, digits, hyphen and underscore, no label starting
 * or ending with a hyphen (RFC 1035 §2.3.1, RFC 1123 §2.1; underscore is
 * allowed because service names such as `_dmarc.example.com` are real DNS
 * question names, RFC 2181 §11).
 */
export type Name = string & { readonly __brand: 'aigate.Name' }

/** RFC 1035 §2.3.4: 255 octets on the wire = 253 characters in text form. */
export const MAX_NAME_LENGTH = 253
/** RFC 1035 §2.3.4. */
export const MAX_LABEL_LENGTH = 63

export type NameError =
  | 'empty' | 'too-long' | 'empty-label' | 'label-too-long' | 'bad-char'
  | 'hyphen-edge' | 'ip-literal' | 'bad-idn'

/** Reused result of {@link readName}: one per caller, never per packet. */
export class NameOut {
  name: Name = '' as Name
  error: NameError | null = null
}

const C_DOT = 0x2e
const C_HYPHEN = 0x2d
const C_UNDERSCORE = 0x5f

/** Byte classes: 0 invalid, 1 lower/digit/underscore, 2 upper, 3 hyphen, 4 dot, 5 non-ASCII. */
const CLASS = new Uint8Array(256)
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = 1
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = 1
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = 2
CLASS[C_UNDERSCORE] = 1
CLASS[C_HYPHEN] = 3
CLASS[C_DOT] = 4
for (let c = 0x80; c <= 0xff; c++) CLASS[c] = 5

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Names read recently, by a hash of their lower-cased bytes (direct-mapped,
 * a new name takes its slot's place): a name seen before comes back as the
 * same string, so a stream of packets for known names allocates nothing.
 * At most INTERN_SLOTS names of at most 253 bytes: about 1 MiB, whatever
 * the traffic.
 */
const INTERN_SLOTS = 4096
const interned: Array<string | undefined> = new Array<string | undefined>(INTERN_SLOTS).fill(undefined)

/** `s` equals the bytes `buf[start, e)` lower-cased (ASCII). */
function sameLower (s: string, buf: Buffer, start: number, e: number): boolean {
  if (s.length !== e - start) return false
  for (let i = start, j = 0; i < e; i++, j++) {
    const c = buf[i] as number
    if (s.charCodeAt(j) !== (CLASS[c] === 2 ? c | 0x20 : c)) return false
  }
  return true
}

/**
 * Read and normalise the name in `buf[start, end)`. Returns true and sets
 * `out.name`, or false and sets `out.error`. Allocates one string for a
 * valid ASCII name not read recently (two when it had upper case), nothing
 * else.
 */
export function readName (buf: Buffer, start: number, end: number, out: NameOut): boolean {
  let e = end
  if (e > start && buf[e - 1] === C_DOT) e-- // one trailing dot: the root
  const n = e - start
  if (n <= 0) return fail(out, 'empty')
  let upper = false
  let labelLen = 0
  let labelStart = true
  let digitsAndDots = true
  let hash = 0x811c9dc5 // FNV-1a over the lower-cased bytes
  for (let i = start; i < e; i++) {
    const c = buf[i] as number
    hash = Math.imul(hash ^ (CLASS[c] === 2 ? c | 0x20 : c), 0x01000193)
    switch (CLASS[c]) {
      case 1:
        if (c > 0x39) digitsAndDots = false
        labelLen++; labelStart = false
        break
      case 2:
        upper = true; digitsAndDots = false
        labelLen++; labelStart = false
        break
      case 3:
        if (labelStart || i + 1 === e || buf[i + 1] === C_DOT) return fail(out, 'hyphen-edge')
        digitsAndDots = false
        labelLen++; labelStart = false
        break
      case 4:
        if (labelLen === 0) return fail(out, 'empty-label')
        labelLen = 0; labelStart = true
        break
      case 5:
        return readIdn(buf, start, e, out)
      default:
        return fail(out, 'bad-char')
    }
    if (labelLen > MAX_LABEL_LENGTH) return fail(out, 'label-too-long')
  }
  if (labelLen === 0) return fail(out, 'empty-label')
  if (n > MAX_NAME_LENGTH) return fail(out, 'too-long')
  if (digitsAndDots) return fail(out, 'ip-literal')
  const slot = (hash >>> 0) & (INTERN_SLOTS - 1)
  let name = interned[slot]
  if (name === undefined || !sameLower(name, buf, start, e)) {
    const s = buf.toString('latin1', start, e)
    name = upper ? s.toLowerCase() : s
    interned[slot] = name
  }
  out.name = name as Name
  out.error = null
  return true
}

function readIdn (buf: Buffer, start: number, end: number, out: NameOut): boolean {
  let text: string
  try {
    text = utf8.decode(buf.subarray(start, end))
  } catch {
    return fail(out, 'bad-idn')
  }
  return idnToName(text, out)
}

function idnToName (text: string, out: NameOut): boolean {
  const ascii = domainToASCII(text)
  if (ascii === '') return fail(out, 'bad-idn')
  for (let i = 0; i < ascii.length; i++) {
    if (ascii.charCodeAt(i) >= 0x80) return fail(out, 'bad-idn')
  }
  // Validate the punycode form with the same rules as any ASCII name.
  return readName(Buffer.from(ascii, 'latin1'), 0, ascii.length, out)
}

/** Normalise a name typed by a person (CLI, rules, policy). */
export function parseName (text: string, out: NameOut = new NameOut()): boolean {
  let plain = true // already lower-case LDH: the common case for rule files
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) return idnToName(text, out)
    if (CLASS[c] !== 1 && CLASS[c] !== 4 && CLASS[c] !== 3) plain = false
  }
  if (plain && isPlainName(text)) {
    out.name = text as Name
    out.error = null
    return true
  }
  return readName(Buffer.from(text, 'latin1'), 0, text.length, out)
}

/**
 * The same rules as readName for a string of lower-case letters, digits, `-`,
 * `_` and `.` without a trailing dot; false sends it down the full path,
 * which also names the error.
 */
function isPlainName (s: string): boolean {
  const n = s.length
  if (n === 0 || n > MAX_NAME_LENGTH) return false
  let labelLen = 0
  let digitsAndDots = true
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c === C_DOT) {
      if (labelLen === 0) return false
      labelLen = 0
      continue
    }
    if (c === C_HYPHEN && (labelLen === 0 || i + 1 === n || s.charCodeAt(i + 1) === C_DOT)) return false
    if (c > 0x39 || c === C_HYPHEN) digitsAndDots = false
    if (++labelLen > MAX_LABEL_LENGTH) return false
  }
  return labelLen > 0 && !digitsAndDots
}

function fail (out: NameOut, error: NameError): false {
  out.error = error
  out.name = '' as Name
  return false
}
