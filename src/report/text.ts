import { series, type Report, type Top } from './aggregate.js'

/**
 * A Report as plain-text tables for a terminal. Every string from a log
 * (vendors, names, addresses, reasons) is data: anything outside printable
 * ASCII is shown as \uXXXX before columns are measured, so a hostile name
 * can neither drive the terminal nor break the alignment (the same escape
 * as the CLI's printable()).
 */

const esc = (s: string): string => s.replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))

/** 1234567 -> 1,234,567 */
export function num (n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** Cells longer than this are cut (with ...): one hostile name should not push every row off screen. */
const MAX_CELL = 60

function cut (s: string): string {
  const e = esc(s)
  return e.length > MAX_CELL ? e.slice(0, MAX_CELL - 3) + '...' : e
}

/** Columns aligned; numbers (right) where `right[i]`. */
export function table (head: string[], rows: string[][], right: boolean[] = []): string {
  const cells = [head, ...rows].map((r) => r.map(cut))
  const width = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return cells.map((r) => r.map((c, i) => right[i] === true ? c.padStart(width[i] as number) : c.padEnd(width[i] as number)).join('  ').trimEnd()).join('\n') + '\n'
}

const tops = (t: Top[]): string => t.length === 0 ? '-' : t.map((x) => `${x.key} (${num(x.n)})`).join(', ')

const pct = (n: number, of: number): string => of === 0 ? '0%' : `${(100 * n / of).toFixed(n === of || n === 0 ? 0 : 1)}%`

const when = (iso: string | null): string => iso === null ? '-' : iso.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z')

/** Rows of the activity chart. */
const ACTIVITY_ROWS = 48
const BAR = 40

export function renderText (r: Report): string {
  const out: string[] = []
  const approx = r.approximate ? '>= ' : ''
  out.push(`aigate report: ${r.files.length} file${r.files.length === 1 ? '' : 's'}, ${num(r.lines.decisions)} decision lines, ` +
    `${num(r.decisions)} decisions from ${when(r.range.first)} to ${when(r.range.last)} (UTC)`)
  if (r.range.since !== null || r.range.until !== null) out.push(`selected: ${when(r.range.since)} to ${when(r.range.until)}; ${num(r.lines.outside)} decision lines outside`)
  out.push(`actions: allow ${num(r.actions.allow)}, monitor ${num(r.actions.monitor)}, block ${num(r.actions.block)}, reject ${num(r.actions.reject)}; ` +
    `${approx}${num(r.sources)} distinct sources`)
  out.push('')
  out.push(`AI vendors reached: ${r.ai.vendors}, ${num(r.ai.decisions)} decisions (${pct(r.ai.decisions, r.decisions)} of all) from ${approx}${num(r.ai.sources)} sources; ` +
    `${num(r.ai.blocked)} blocked or rejected`)
  if (r.vendors.length > 0) {
    out.push(table(['vendor', 'decisions', 'passed', 'blocked', 'sources', 'top names'],
      r.vendors.map((v) => [v.vendor, num(v.decisions), num(v.passed), num(v.blocked), num(v.sources), tops(v.topNames.slice(0, 3))]),
      [false, true, true, true, true, false]))
    out.push('Top sources per vendor')
    const rows: string[][] = []
    for (const v of r.vendors) v.topSources.forEach((s, i) => rows.push([i === 0 ? v.vendor : '', s.key, num(s.n), pct(s.n, v.decisions)]))
    out.push(table(['vendor', 'source', 'decisions', 'share'], rows, [false, false, true, true]))
  }
  out.push(`Blocked or rejected: ${num(r.blocks.decisions)}`)
  if (r.blocks.decisions > 0) {
    out.push(`  names:   ${esc(tops(r.blocks.topNames))}`)
    out.push(`  sources: ${esc(tops(r.blocks.topSources))}`)
  }
  out.push(`Evasions: ${num(r.evasions.decisions)}`)
  if (r.evasions.decisions > 0) {
    out.push(`  what:    ${esc(tops(r.evasions.details))}`)
    out.push(`  names:   ${esc(tops(r.evasions.topNames))}`)
    out.push(`  sources: ${esc(tops(r.evasions.topSources))}`)
  }
  out.push(`Reasons: ${esc(tops(r.reasons))}`)
  out.push(`Seen as: ${esc(tops(r.seen))}`)
  const buckets = series(r.hours, ACTIVITY_ROWS)
  if (buckets.length > 0) {
    const size = buckets[0]?.hours ?? 1
    out.push('')
    out.push(`Activity per ${size === 1 ? 'hour' : size % 24 === 0 ? `${size / 24} day${size === 24 ? '' : 's'}` : `${size} hours`} (UTC; # AI passed, x AI blocked, . other)`)
    const max = Math.max(...buckets.map((b) => b.decisions))
    const rows: string[][] = []
    let empty = 0
    const gap = (): void => {
      // A run of empty buckets is one row: a sparse log over months stays short.
      if (empty > 1) rows.push(['...', '', '', '', `(${empty} empty)`])
      else if (empty === 1) rows.push([stamp(prev), '0', '0', '0', ''])
      empty = 0
    }
    let prev = 0
    const stamp = (ms: number): string => new Date(ms).toISOString().slice(0, 16).replace('T', ' ')
    for (const b of buckets) {
      if (b.decisions === 0) { empty++; prev = b.start; continue }
      gap()
      const scale = (n: number): number => max === 0 ? 0 : Math.round(BAR * n / max)
      const blocked = scale(b.aiBlocked)
      const ai = Math.max(scale(b.ai) - blocked, 0)
      const other = Math.max(scale(b.decisions) - blocked - ai, 0)
      rows.push([stamp(b.start), num(b.decisions), num(b.ai), num(b.blocked), '#'.repeat(ai) + 'x'.repeat(blocked) + '.'.repeat(other)])
    }
    out.push(table(['from', 'decisions', 'ai', 'blocked', ''], rows, [false, true, true, true, false]).trimEnd())
  }
  out.push('')
  const other = Object.entries(r.lines.other).map(([k, n]) => `${k} ${num(n)}`).join(', ')
  out.push(`Lines: ${num(r.lines.read)} read, ${num(r.lines.decisions)} decisions counted, ${num(r.lines.outside)} outside the time range, ` +
    `${num(r.lines.daemon)} daemon events${other === '' ? '' : `, other datasets: ${esc(other)}`}, ${num(r.lines.badTotal)} unreadable`)
  if (r.lines.badTotal > 0) {
    out.push(`  unreadable: ${esc(Object.entries(r.lines.bad).map(([k, n]) => `${k} ${num(n)}`).join(', '))}`)
    for (const b of r.lines.badExamples) out.push(`  ${esc(b.file)}:${b.line}: ${esc(b.reason)}`)
  }
  for (const f of r.files) if (f.error !== undefined) out.push(`  ${esc(f.path)}: stopped after line ${f.lines}: ${esc(f.error)}`)
  if (r.approximate) out.push('  approximate: too many distinct sources and names to keep; distinct counts are lower bounds')
  return out.join('\n') + '\n'
}
