import { Option, type Command } from 'commander'
import { spawn } from 'node:child_process'
import { parseWhen } from '../../report/time.js'
import { fileLines, FileError, Filter, FilterError, Formatter, LogView, streamLines } from '../../logs/index.js'
import { AigateError } from '../../util/errors.js'
import { intOption, printable, UsageError } from '../shared.js'

interface LogsOpts {
  follow?: boolean
  lines?: number | 'all'
  action?: string[]
  vendor?: string[]
  source?: string[]
  since?: string
  json?: boolean
  daemon: boolean
  utc?: boolean
  color: 'auto' | 'always' | 'never'
  unit: string
}

/** A log that cannot be read (a file, journalctl): exit status 1. */
export class LogsError extends AigateError {
  constructor (message: string) {
    super(message)
    this.name = 'LogsError'
  }
}

/** Lines shown first with -f when -n is not given, as tail and journalctl do. */
const FOLLOW_LINES = 10

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v]

function linesOption (v: string): number | 'all' {
  return v === 'all' ? 'all' : intOption('--lines', 0)(v)
}

/**
 * Colour only for a person: stdout a terminal, NO_COLOR unset or empty
 * (no-color.org), TERM not "dumb"; --color always/never overrides.
 */
function wantColour (when: LogsOpts['color']): boolean {
  if (when !== 'auto') return when === 'always'
  const noColor = process.env.NO_COLOR
  return process.stdout.isTTY === true && (noColor === undefined || noColor === '') && process.env.TERM !== 'dumb'
}

/**
 * stdout with backpressure: a slow reader (a pager) holds reading back
 * rather than letting output pile up in memory; a reader that went away
 * (EPIPE, `| head`) ends the command quietly through `gone`.
 */
class Out {
  readonly gone = new AbortController()
  constructor () {
    const stop = (): void => { this.gone.abort() }
    process.stdout.on('error', stop)
    process.stdout.on('close', stop)
  }

  async write (s: string | Buffer[]): Promise<void> {
    if (this.gone.signal.aborted) return
    let ok = true
    if (typeof s === 'string') ok = process.stdout.write(s)
    else for (const b of s) ok = process.stdout.write(b)
    if (!ok && !this.gone.signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          process.stdout.off('drain', done)
          this.gone.signal.removeEventListener('abort', done)
          resolve()
        }
        process.stdout.once('drain', done)
        this.gone.signal.addEventListener('abort', done, { once: true })
      })
    }
  }
}

/** `journalctl -u UNIT -o cat` (and -f): the daemon's stdout (the decision log by default) and stderr, as the journal keeps them. */
function journal (o: LogsOpts, since: number | undefined, signal: AbortSignal): { lines: AsyncGenerator<Buffer>, done: () => Promise<void> } {
  const args = ['-u', o.unit, '-o', 'cat', '--no-pager']
  if (o.follow === true) args.push('-f')
  if (o.lines !== undefined) args.push('-n', String(o.lines))
  // An epoch time: journalctl reads our ISO forms and ages differently from us.
  if (since !== undefined) args.push('--since', `@${Math.floor(since / 1000)}`)
  // An argument array, no shell: the unit name is passed as it was typed.
  const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let failed: Error | null = null
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => { failed = err; resolve(null) })
    child.on('close', (code) => { resolve(code) })
  })
  const kill = (): void => { child.kill('SIGTERM') }
  signal.addEventListener('abort', kill, { once: true })
  return {
    lines: streamLines(child.stdout),
    done: async () => {
      const code = await exited
      signal.removeEventListener('abort', kill)
      const err = failed as NodeJS.ErrnoException | null
      if (err !== null) {
        throw new LogsError(err.code === 'ENOENT'
          ? 'logs: journalctl not found: give the decision log file (the --log FILE of aigate run)'
          : `logs: journalctl: ${err.message}`)
      }
      if (code !== 0 && code !== null && !signal.aborted) throw new LogsError(`logs: journalctl -u ${printable(o.unit)} exited with status ${code}`)
    },
  }
}

/** `aigate logs [-f] [FILE]`: the decision log, one aligned line per decision, for a person; or the selected lines as they are (--json). */
export function registerLogs (program: Command): void {
  program.command('logs')
    .description('show the decision log as one aligned line per decision (colour on a terminal), with filters; -f follows it')
    .argument('[file]', 'decision log file (the --log of aigate run); - reads stdin; none: the journal (journalctl -u aigate)')
    .option('-f, --follow', 'keep showing new lines: the file is followed by name across rotation and truncation, like tail -F')
    .addOption(new Option('-n, --lines <n>', 'start with the last n lines shown (for the journal: its last n lines), or all').argParser(linesOption))
    .option('--action <list>', 'only these actions: allow, monitor, block, reject (comma list)', collect)
    .option('--vendor <list>', 'only these vendors (comma list, as in aigate.vendor: openai,anthropic)', collect)
    .option('--source <cidr>', 'only clients in this network (IPv4 or IPv6 CIDR or address; comma list)', collect)
    .option('--since <time>', 'only lines at or after this time: ISO 8601 (2026-11-25T21:00Z) or an age (10m, 24h, 7d)')
    .option('--json', 'print the selected lines unchanged (byte for byte) instead of formatting them')
    .option('--no-daemon', 'leave out the daemon\'s own lines (start, reload, stop; shown dimmed otherwise)')
    .option('--utc', 'times in UTC (default: local time)')
    .addOption(new Option('--color <when>', 'colour: auto (a terminal, unless NO_COLOR is set), always, never').choices(['auto', 'always', 'never']).default('auto'))
    .addOption(new Option('--unit <name>', 'systemd unit whose journal is read when no FILE is given').default('aigate'))
    .addHelpText('after', `
Columns: time, action, vendor (- for none), name (destination.domain, or the root "name"
of older lines), source address:port, how the name was seen (sni, quic, dns, http, ech),
reason (with aigate.detail in parentheses, and xN for a line standing for N decisions).
Filters combine: a line is shown when it passes every one given. The daemon's own lines
are shown dimmed unless --no-daemon or an --action, --vendor or --source filter is given.
Unreadable lines are skipped and counted; the count is printed on stderr at the end.

Examples:
  aigate logs -f /var/log/aigate/decisions.log
  aigate logs --action block,reject --since 1h /var/log/aigate/decisions.log
  aigate logs -f --source 10.20.0.0/16 --vendor openai
  aigate logs --json --vendor anthropic decisions.log | jq .source.ip`)
    .action(async (file: string | undefined, opts: LogsOpts) => {
      let since: number | undefined
      if (opts.since !== undefined) {
        const ms = parseWhen(opts.since, Date.now())
        if (typeof ms === 'string') throw new UsageError(`--since: ${printable(ms)}`)
        since = ms
      }
      let filter: Filter
      try {
        filter = new Filter({ actions: opts.action, vendors: opts.vendor, sources: opts.source, since, daemon: opts.daemon })
      } catch (err) {
        if (err instanceof FilterError) throw new UsageError(printable(err.message))
        throw err
      }
      if (file === '-' && opts.lines !== undefined) throw new UsageError('--lines needs a FILE or the journal: stdin has no end to count back from')
      const out = new Out()
      const view = new LogView({
        filter,
        format: opts.json === true ? null : new Formatter({ colour: wantColour(opts.color), utc: opts.utc === true }),
        plainIsDaemon: file === undefined,
      })
      // ^C (or a stop) ends a followed log as the reader going away does: the summary, then exit 0.
      const stop = new AbortController()
      const onSignal = (): void => { stop.abort() }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      const signal = AbortSignal.any([stop.signal, out.gone.signal])
      const notice = (text: string): void => { process.stderr.write(`aigate: logs: ${printable(text)}\n`) }
      let source: { lines: AsyncGenerator<Buffer>, done: () => Promise<void> }
      if (file === undefined) {
        source = journal(opts, since, signal)
      } else if (file === '-') {
        signal.addEventListener('abort', () => { process.stdin.destroy() }, { once: true })
        source = { lines: streamLines(process.stdin), done: async () => {} }
      } else {
        const last = opts.lines === undefined ? (opts.follow === true ? FOLLOW_LINES : null) : opts.lines === 'all' ? null : opts.lines
        source = { lines: fileLines(file, { follow: opts.follow === true, last, selects: (l) => view.selects(l), notice, signal }), done: async () => {} }
      }
      try {
        for await (const line of source.lines) {
          if (signal.aborted) break
          const s = view.take(line)
          if (s !== null) await out.write(s)
        }
        await source.done()
      } catch (err) {
        if (err instanceof FileError) throw new LogsError(`logs: ${printable(err.message)}`)
        throw err
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
        const summary = view.summary()
        if (summary !== null) notice(summary)
      }
      if (file === '-') process.stdin.destroy()
    })
}
