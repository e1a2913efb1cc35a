import { statSync } from 'node:fs'
import { AigateError } from '../util/errors.js'
import { Aggregator, type Report, type Window } from './aggregate.js'
import { LogLine, readLine } from '../log/read.js'
import { readLog, MAX_LINE_BYTES } from './read.js'
import type { Progress } from './progress.js'

/**
 * `aigate report`: decision logs in, one Report out. The files are read one
 * after another, line by line (read.ts), each line parsed into one reused
 * LogLine (log/read.ts) and counted (aggregate.ts); the renderers (text.ts,
 * html.ts) only read the Report.
 */

export { Aggregator, series, KEY_BUDGET, type Report, type Top, type VendorReport, type HourReport, type Bucket } from './aggregate.js'
export { Progress } from './progress.js'
export { parseWhen } from './time.js'
export { renderText } from './text.js'
export { renderHtml } from './html.js'
export { MAX_LINE_BYTES } from './read.js'

export interface ReportOptions extends Window {
  /** How many entries each top list keeps. */
  top: number
  progress?: Progress
  now?: number
}

/** Log files that cannot be read (missing, not a file): every one named, exit status 1. */
export class ReportError extends AigateError {
  readonly #problems: string[]
  constructor (problems: string[]) {
    super(problems.join('; '))
    this.name = 'ReportError'
    this.#problems = problems
  }

  override get problems (): readonly string[] { return this.#problems }
}

/** Whether every file can be read before any is: a typo should fail at once, not after an hour of reading. */
export function checkFiles (paths: readonly string[]): string[] {
  const problems: string[] = []
  for (const p of paths) {
    if (p === '-') continue
    try {
      if (!statSync(p).isFile()) problems.push(`${p}: not a file`)
    } catch (err) {
      problems.push(`${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
    }
  }
  return problems
}

export async function buildReport (paths: readonly string[], opts: ReportOptions): Promise<Report> {
  const agg = new Aggregator(opts)
  const d = new LogLine()
  let before = 0
  for (const path of paths) {
    opts.progress?.file(path, before)
    const r = await readLog(path, (text, lineNo) => {
      if (text === null) { agg.skip('bad', `longer than ${MAX_LINE_BYTES} bytes`, path, lineNo); return }
      const kind = readLine(text, d)
      if (kind === 'decision') agg.add(d)
      else agg.skip(kind, d.note, path, lineNo)
    }, opts.progress === undefined ? undefined : (b) => opts.progress?.update(b))
    before += r.bytes
    agg.files.push({ path, bytes: r.bytes, lines: r.lines, gzip: r.gzip, ...(r.error === undefined ? {} : { error: r.error }) })
  }
  opts.progress?.end()
  return agg.report(opts.top, opts.now)
}
