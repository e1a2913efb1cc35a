import { printable } from '../util/text.js'
import { LogLine, readLine, type LineKind } from '../log/read.js'
import { Filter } from './filter.js'
import { Formatter } from './format.js'
import { OVERLONG } from './follow.js'

export { Filter, FilterError, type FilterOptions } from './filter.js'
export { Formatter, type FormatOptions } from './format.js'
export { fileLines, streamLines, startOfLast, LineSplitter, FileError, MAX_LINE_BYTES, POLL_MS, type FileLinesOptions } from './follow.js'

/**
 * `aigate logs`: raw lines in, what a person (or, with --json, a program)
 * reads out. Each line is read once into a reused LogLine (log/read.ts), asked of the
 * filter, then either formatted or, with --json, passed on as the very bytes
 * read. Lines that cannot be shown are counted by reason, with the first of
 * each quoted (escaped), for one summary at the end; they never stop the
 * reading.
 */

export interface ViewOptions {
  filter: Filter
  /** null: --json, the selected lines' own bytes. */
  format: Formatter | null
  /**
   * A line that is not JSON is the daemon's own text (journalctl shows what
   * the daemon wrote to stderr too: "aigate: ..."), shown as a daemon line
   * rather than counted as unreadable.
   */
  plainIsDaemon?: boolean
}

const NEWLINE = Buffer.from('\n')
/** Characters of a skipped line quoted in the summary. */
const QUOTE_CHARS = 60

export class LogView {
  readonly #filter: Filter
  readonly #format: Formatter | null
  readonly #plainIsDaemon: boolean
  readonly #e = new LogLine()
  /** Lines shown. */
  shown = 0
  /** Unreadable lines, by reason, with the first quoted. */
  readonly bad = new Map<string, { count: number, first: string }>()
  /** JSON lines of other datasets (not aigate's), by dataset. */
  readonly other = new Map<string, number>()

  constructor (o: ViewOptions) {
    this.#filter = o.filter
    this.#format = o.format
    this.#plainIsDaemon = o.plainIsDaemon ?? false
  }

  #read (line: Buffer): LineKind | 'plain' {
    if (line === OVERLONG) { this.#e.note = 'longer than 1 MiB'; return 'bad' }
    const kind = readLine(line.toString('utf8'), this.#e)
    // The summary has said "not a JSON object" since `aigate logs` first shipped.
    if (kind === 'bad' && this.#e.note === 'not an object') this.#e.note = 'not a JSON object'
    if (kind === 'bad' && this.#plainIsDaemon && this.#e.note === 'not JSON') {
      const e = this.#e
      e.ms = Number.POSITIVE_INFINITY // no time of its own: --since keeps it
      e.level = null
      e.action = ''
      e.message = line.toString('utf8')
      return 'plain'
    }
    return kind
  }

  /** Whether the line would be shown (no counting): where `-n` starts. */
  selects (line: Buffer): boolean {
    const kind = this.#read(line)
    return this.#filter.selects(kind === 'plain' ? 'daemon' : kind, this.#e)
  }

  /** What to write for one raw line (without its newline): text, bytes, or null for nothing. */
  take (line: Buffer): string | Buffer[] | null {
    const kind = this.#read(line)
    const e = this.#e
    if (kind === 'bad') {
      const b = this.bad.get(e.note)
      if (b !== undefined) b.count++
      else this.bad.set(e.note, { count: 1, first: quote(line) })
      return null
    }
    if (kind === 'other') {
      this.other.set(e.note, (this.other.get(e.note) ?? 0) + 1)
      return null
    }
    if (!this.#filter.selects(kind === 'plain' ? 'daemon' : kind, e)) return null
    this.shown++
    if (this.#format === null) return [line, NEWLINE]
    if (kind === 'decision') return this.#format.decision(e)
    if (kind === 'plain') return this.#format.plain(e.message ?? '')
    return this.#format.daemon(e)
  }

  /** One line for stderr about what was skipped, or null when nothing was. */
  summary (): string | null {
    const parts: string[] = []
    let n = 0
    for (const [why, b] of this.bad) {
      n += b.count
      parts.push(`${b.count} ${why} (first: ${b.first})`)
    }
    let others = 0
    for (const c of this.other.values()) others += c
    if (others > 0) parts.push(`${others} of other datasets (${[...this.other.keys()].slice(0, 5).map(printable).join(', ')})`)
    if (parts.length === 0) return null
    return `${n + others} line${n + others === 1 ? '' : 's'} skipped: ${parts.join('; ')}`
  }
}

function quote (line: Buffer): string {
  const s = line === OVERLONG ? '' : line.toString('utf8')
  const cut = s.length > QUOTE_CHARS ? s.slice(0, QUOTE_CHARS) + '...' : s
  return `"${printable(cut)}"`
}
