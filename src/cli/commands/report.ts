import { Option, type Command } from 'commander'
import { writeFileSync, statSync } from 'node:fs'
import { buildReport, checkFiles, parseWhen, Progress, renderHtml, renderText, ReportError } from '../../report/index.js'
import { readVersion } from '../../util/version.js'
import { asciiJson, intOption, printable, UsageError } from '../shared.js'

interface ReportOpts { since?: string, until?: string, html?: string, json?: boolean, top: number, progress: boolean }

function when (flag: string, text: string | undefined, now: number): number | null {
  if (text === undefined) return null
  const ms = parseWhen(text, now)
  if (typeof ms === 'string') throw new UsageError(`${flag}: ${ms}`)
  return ms
}

/** `aigate report LOG...`: who reached which AI vendor, what was blocked, when; tables, JSON or one HTML page. */
export function registerReport (program: Command): void {
  program.command('report')
    .description('summarise decision logs (plain or gzip): AI vendors reached, by how many sources, top sources, blocks, evasions, activity per hour')
    .argument('<log...>', 'decision log files (plain or gzip, told by content); - reads stdin')
    .option('--since <time>', 'only decisions at or after this time: ISO 8601 (2026-11-25T21:00Z) or an age (24h, 7d)')
    .option('--until <time>', 'only decisions before this time (same forms)')
    .option('--html <file>', 'also write the report as one self-contained HTML page (charts, no scripts, no network)')
    .option('--json', 'print the aggregates as one JSON object instead of tables')
    .addOption(new Option('--top <n>', 'entries in each top list (sources, names), 1 to 1000').default(5).argParser(intOption('--top', 1, 1000)))
    .option('--no-progress', 'no progress bar (there is none unless stderr is a terminal)')
    .addHelpText('after', `
Counts: a decision line (event.dataset "aigate.decision") counts aigate.count times (else
event.count, else once), so aggregated lines count what they stand for. The name is
destination.domain, or the root "name" of older lines. Daemon lines and other datasets
are skipped and counted; unreadable lines are counted and the first few quoted.

Examples:
  aigate report /var/log/aigate/decisions.log /var/log/aigate/decisions.log.1.gz
  aigate report --since 24h --html /tmp/ai-report.html /var/log/aigate/decisions.log*
  aigate report --json --since 2026-11-25 --until 2026-11-26 decisions.log`)
    .action(async (logs: string[], opts: ReportOpts) => {
      const now = Date.now()
      const since = when('--since', opts.since, now)
      const until = when('--until', opts.until, now)
      if (since !== null && until !== null && since >= until) throw new UsageError('--since must be before --until')
      const problems = checkFiles(logs)
      if (problems.length > 0) throw new ReportError(problems.map((p) => `report: ${p}`))
      const progress = opts.progress && process.stderr.isTTY
        ? new Progress(process.stderr, logs.reduce((s, p) => s + (p === '-' ? 0 : statSync(p).size), 0))
        : undefined
      const r = await buildReport(logs, { since, until, top: opts.top, progress, now })
      if (opts.html !== undefined) {
        writeFileSync(opts.html, renderHtml(r, { generator: `aigate ${readVersion()}` }))
        process.stderr.write(`aigate: report: wrote ${printable(opts.html)}\n`)
      }
      process.stdout.write(opts.json === true ? asciiJson(r) + '\n' : renderText(r))
      const failed = r.files.filter((f) => f.error !== undefined)
      for (const f of failed) process.stderr.write(`aigate: report: ${printable(f.path)}: stopped after line ${f.lines}: ${printable(f.error ?? '')}\n`)
      if (failed.length > 0) process.exitCode = 1
    })
}
