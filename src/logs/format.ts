import { printable } from '../util/text.js'
import type { LogLine } from '../log/read.js'

/**
 * One aligned line per decision for a person:
 *
 *   2026-11-26 05:31:20.569  block    anthropic  claude.ai        [fd00:230::1]:58652  sni   vendor
 *   time                     action   vendor     name             source               seen  reason (detail, count)
 *
 * Every string from the log goes through `printable` (anything outside
 * printable ASCII as \uXXXX) before it is measured or written, so a name,
 * vendor or message cannot move the cursor, recolour the terminal or
 * reorder the line (U+202E), and a column's width is its string length.
 *
 * Columns are read as they come (a followed log has no end to measure), so
 * each starts at a width that fits the usual values and widens, for good,
 * when a longer value arrives: lines after it stay aligned with each other.
 * The last column (reason) is never padded.
 */

/** SGR sequences; only used when colour is on. */
const SGR = {
  reset: '\x1b[0m',
  dim: '\x1b[2m',
  bold: '\x1b[1m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
} as const

const ACTION_COLOUR: Record<string, string> = {
  allow: SGR.green,
  monitor: SGR.yellow,
  block: SGR.bold + SGR.red,
  reject: SGR.bold + SGR.magenta,
}

/** Starting widths: most vendor lists' names (google-gemini), a typical host name, an IPv4 address with port (`255.255.255.255:65535`), a seen value (`quic`). */
const START = { vendor: 13, name: 24, source: 21, seen: 4 } as const
/** "monitor" and "reject" are the longest actions; "daemon" fits too. */
const ACTION_WIDTH = 7
/** A column stops widening here; a longer value (a 253-byte name escaped) overflows that one line rather than push every later line right. */
const MAX_WIDTH = 64

const pad2 = (n: number): string => n < 10 ? `0${n}` : String(n)
const pad3 = (n: number): string => n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n)

export interface FormatOptions {
  /** SGR colour (the CLI decides: a terminal, NO_COLOR unset, or --color always). */
  colour: boolean
  /** Times in UTC (with a Z) instead of local time. */
  utc: boolean
}

export class Formatter {
  readonly #colour: boolean
  readonly #utc: boolean
  #vendor: number = START.vendor
  #name: number = START.name
  #source: number = START.source
  #seen: number = START.seen

  constructor (o: FormatOptions) {
    this.#colour = o.colour
    this.#utc = o.utc
  }

  /** `2026-11-26 05:31:20.487` (local) or `2026-11-26 05:31:20.487Z`. */
  time (ms: number): string {
    const d = new Date(ms)
    if (this.#utc) {
      return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${pad3(d.getUTCMilliseconds())}Z`
    }
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${pad3(d.getMilliseconds())}`
  }

  #paint (sgr: string, s: string): string {
    return this.#colour && sgr !== '' ? sgr + s + SGR.reset : s
  }

  /** One decision line, with its newline. */
  decision (e: LogLine): string {
    const vendor = e.vendor === null ? '-' : printable(e.vendor)
    const name = e.name === null ? '-' : printable(e.name)
    const source = e.sourceIp === null
      ? '-'
      : e.sourcePort === null
        ? printable(e.sourceIp)
        : e.sourceIp.includes(':') ? `[${printable(e.sourceIp)}]:${e.sourcePort}` : `${printable(e.sourceIp)}:${e.sourcePort}`
    const seen = e.seen === null ? '-' : printable(e.seen)
    let reason = e.reason === null ? '-' : printable(e.reason)
    if (e.detail !== null) reason += ` (${printable(e.detail)})`
    if (e.count > 1) reason += ` x${e.count}`
    this.#vendor = widen(this.#vendor, vendor)
    this.#name = widen(this.#name, name)
    this.#source = widen(this.#source, source)
    this.#seen = widen(this.#seen, seen)
    const evasive = e.reason === 'evasion'
    return this.#paint(SGR.dim, this.time(e.ms)) + '  ' +
      this.#paint(ACTION_COLOUR[e.action] ?? '', e.action.padEnd(ACTION_WIDTH)) + '  ' +
      this.#paint(e.vendor === null ? '' : SGR.cyan, vendor.padEnd(this.#vendor)) + '  ' +
      this.#paint(SGR.bold, name) + ' '.repeat(Math.max(0, this.#name - name.length)) + '  ' +
      source.padEnd(this.#source) + '  ' +
      seen.padEnd(this.#seen) + '  ' +
      this.#paint(evasive ? SGR.red : '', reason) + '\n'
  }

  /** One of the daemon's own lines (start, reload, stop, counters): dimmed, in the action column "daemon". */
  daemon (e: LogLine): string {
    const parts: string[] = []
    if (e.level !== null) parts.push(`[${printable(e.level)}]`)
    if (e.action !== '') parts.push(`${printable(e.action)}:`)
    parts.push(e.message === null ? '-' : printable(e.message))
    return this.#paint(SGR.dim, `${this.time(e.ms)}  ${'daemon'.padEnd(ACTION_WIDTH)}  ${parts.join(' ')}`) + '\n'
  }

  /** A line of the daemon's text that is not JSON (its stderr, in the journal): dimmed, as it is, escaped. */
  plain (text: string): string {
    return this.#paint(SGR.dim, `${' '.repeat(this.time(0).length)}  ${'daemon'.padEnd(ACTION_WIDTH)}  ${printable(text)}`) + '\n'
  }
}

function widen (width: number, s: string): number {
  return s.length > width ? Math.min(MAX_WIDTH, s.length) : width
}
