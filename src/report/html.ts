import { series, type Bucket, type Report, type Top, type VendorReport } from './aggregate.js'
import { num } from './text.js'

/**
 * A Report as one self-contained HTML page: inline CSS and inline SVG charts,
 * no script, no font, no image, no link to anything (a Content-Security-Policy
 * of default-src 'none' says so to the browser too), readable offline and
 * printable.
 *
 * Every string from a log (vendor, name, address, reason, file name) is data:
 * it goes through esc() (HTML entities for & < > " ', and \uXXXX for control
 * and bidirectional-override characters, which could reorder what is shown)
 * in text and attributes alike; nothing from a log reaches a tag, an
 * attribute name, a style or a URL.
 */

/** Colours of the charts (also what the screenshot test looks for). */
export const COLOURS = {
  passed: '#2f6fb0',
  blocked: '#d1453b',
  other: '#c5cbd3',
  evasion: '#7b3fa0',
  allow: '#9dbad9',
  monitor: '#2f6fb0',
  block: '#d1453b',
  reject: '#8c2a23',
} as const

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
// C0, DEL, C1, and the bidi marks, embeddings, overrides and isolates.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** Text for HTML, in an element or a quoted attribute. */
export function esc (s: string): string {
  return s.replace(INVISIBLE, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).replace(/[&<>"']/g, (c) => ENTITIES[c] as string)
}

/** Names longer than this are cut in charts (the full text stays in the tooltip). */
const LABEL_MAX = 28

const short = (s: string, max = LABEL_MAX): string => s.length > max ? s.slice(0, max - 1) + '\u2026' : s

const plural = (n: number, word: string): string => `${num(n)} ${word}${n === 1 ? '' : 's'}`

const pct = (n: number, of: number): string => of === 0 ? '0%' : `${(100 * n / of).toFixed(n === of || n === 0 || 100 * n / of >= 10 ? 0 : 1)}%`

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

function day (ms: number): string {
  const d = new Date(ms)
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()] as string} ${d.getUTCFullYear()}`
}

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 16)

function when (iso: string | null): string {
  if (iso === null) return '-'
  const ms = Date.parse(iso)
  return `${day(ms)} ${clock(ms)}`
}

// ---------------------------------------------------------------------------
// Charts

/** Round up to 1, 2 or 5 times a power of ten, for axis ticks. */
function niceStep (max: number, ticks: number): number {
  const raw = Math.max(max / ticks, 1)
  const p = 10 ** Math.floor(Math.log10(raw))
  const m = raw / p
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p
}

const VENDOR_ROWS = 20

/** One horizontal bar per vendor: passed, then blocked, stacked; decisions and sources after it. */
function vendorChart (vendors: VendorReport[]): string {
  const shown = vendors.slice(0, VENDOR_ROWS)
  const W = 1040
  const label = 190
  const bar = 600
  const row = 30
  const max = Math.max(1, ...shown.map((v) => v.decisions))
  const H = shown.length * row + 8
  const parts: string[] = []
  shown.forEach((v, i) => {
    const y = i * row + 4
    const wp = bar * v.passed / max
    const wb = bar * v.blocked / max
    const tip = `${v.vendor}: ${num(v.decisions)} decisions, ${num(v.passed)} passed, ${num(v.blocked)} blocked, ${num(v.sources)} sources`
    parts.push(`<g><title>${esc(tip)}</title>` +
      `<text x="${label - 10}" y="${y + 16}" text-anchor="end" class="lab">${esc(short(v.vendor))}</text>` +
      `<rect x="${label}" y="${y}" width="${bar}" height="${row - 8}" fill="#eef0f3" rx="3"/>` +
      (wp > 0 ? `<rect x="${label}" y="${y}" width="${wp.toFixed(1)}" height="${row - 8}" fill="${COLOURS.passed}"/>` : '') +
      (wb > 0 ? `<rect x="${(label + wp).toFixed(1)}" y="${y}" width="${wb.toFixed(1)}" height="${row - 8}" fill="${COLOURS.blocked}"/>` : '') +
      `<text x="${label + bar + 12}" y="${y + 16}" class="val"><tspan class="strong">${num(v.decisions)}</tspan>` +
      `<tspan dx="8" class="dim">${plural(v.sources, 'source')}${v.blocked > 0 ? ` \u00b7 ${pct(v.blocked, v.decisions)} blocked` : ''}</tspan></text></g>`)
  })
  const more = vendors.length > shown.length ? `<p class="dim">and ${vendors.length - shown.length} more vendors (all in the table below)</p>` : ''
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="decisions per AI vendor">${parts.join('')}</svg>${more}`
}

function bucketLabel (b: Bucket, prev: Bucket | undefined): string {
  if (b.hours >= 24) return day(b.start).replace(/ \d{4}$/, '')
  const newDay = prev === undefined || new Date(prev.start).getUTCDate() !== new Date(b.start).getUTCDate()
  return newDay ? `${day(b.start).replace(/ \d{4}$/, '')} ${clock(b.start)}` : clock(b.start)
}

/** Stacked columns per bucket: AI blocked at the bottom, AI passed, then everything else. */
function activityChart (buckets: Bucket[]): string {
  const W = 1040
  const H = 280
  const left = 56
  const right = 12
  const top = 12
  const bottom = 44
  const plotW = W - left - right
  const plotH = H - top - bottom
  const max = Math.max(1, ...buckets.map((b) => b.decisions))
  const step = niceStep(max, 4)
  const ceil = Math.ceil(max / step) * step
  const y = (n: number): number => top + plotH - plotH * n / ceil
  const parts: string[] = []
  for (let v = 0; v <= ceil; v += step) {
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>` +
      `<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" class="tick">${num(v)}</text>`)
  }
  const slot = plotW / buckets.length
  const bw = Math.max(1, slot * 0.78)
  const every = Math.max(1, Math.ceil(buckets.length / 10))
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - bw) / 2
    const aiPassed = b.ai - b.aiBlocked
    const rest = b.decisions - b.ai
    let base = b.aiBlocked + aiPassed + rest
    const seg = (n: number, fill: string): string => {
      if (n <= 0) return ''
      const r = `<rect x="${x.toFixed(1)}" y="${y(base).toFixed(1)}" width="${bw.toFixed(1)}" height="${(y(base - n) - y(base)).toFixed(1)}" fill="${fill}"/>`
      base -= n
      return r
    }
    const tip = `${new Date(b.start).toISOString().slice(0, 16).replace('T', ' ')} UTC, ${b.hours} h: ${num(b.decisions)} decisions, ${num(b.ai)} AI (${num(b.aiBlocked)} blocked), ${num(b.blocked)} blocked in all`
    parts.push(`<g><title>${esc(tip)}</title>${seg(rest, COLOURS.other)}${seg(aiPassed, COLOURS.passed)}${seg(b.aiBlocked, COLOURS.blocked)}</g>`)
    if (i % every === 0) {
      parts.push(`<text x="${(left + i * slot + slot / 2).toFixed(1)}" y="${H - bottom + 18}" text-anchor="middle" class="tick">${esc(bucketLabel(b, buckets[i - every]))}</text>`)
    }
  })
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(0)}" y2="${y(0)}" class="axis"/>`)
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="activity over time">${parts.join('')}</svg>`
}

/** One 100% bar split by action. */
function actionBar (r: Report): string {
  const W = 1040
  const total = r.decisions
  let x = 0
  const parts: string[] = []
  const legend: string[] = []
  for (const a of ['allow', 'monitor', 'block', 'reject'] as const) {
    const n = r.actions[a]
    const w = total === 0 ? 0 : W * n / total
    if (w > 0) parts.push(`<rect x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="26" fill="${COLOURS[a]}"><title>${a}: ${num(n)}</title></rect>`)
    x += w
    legend.push(`<span class="key"><i style="background:${COLOURS[a]}"></i>${a} <b>${num(n)}</b> <span class="dim">${pct(n, total)}</span></span>`)
  }
  return `<svg viewBox="0 0 ${W} 26" width="100%" role="img" aria-label="decisions by action">${parts.join('')}</svg><p class="legend">${legend.join('')}</p>`
}

// ---------------------------------------------------------------------------
// Tables

/** Rows of key, count, and a bar as wide as the count's share of `of`. */
function topList (t: Top[], of: number, fill: string, empty = 'none'): string {
  if (t.length === 0) return `<p class="dim">${empty}</p>`
  const max = Math.max(1, ...t.map((x) => x.n))
  return '<table class="top">' + t.map((x) => `<tr><td class="k" title="${esc(x.key)}">${esc(short(x.key, 40))}</td>` +
    `<td class="barcell"><span class="bar" style="width:${(100 * x.n / max).toFixed(1)}%;background:${fill}"></span></td>` +
    `<td class="n">${num(x.n)}</td><td class="n dim">${pct(x.n, of)}</td></tr>`).join('') + '</table>'
}

function vendorTable (vendors: VendorReport[]): string {
  const rows = vendors.map((v) => `<tr><td>${esc(v.vendor)}</td><td class="n">${num(v.decisions)}</td><td class="n">${num(v.passed)}</td>` +
    `<td class="n">${num(v.blocked)}</td><td class="n">${num(v.sources)}</td><td class="names">${v.topNames.map((t) => `${esc(t.key)} <span class="dim">${num(t.n)}</span>`).join(', ')}</td></tr>`)
  return `<table class="grid"><thead><tr><th>vendor</th><th class="n">decisions</th><th class="n">passed</th><th class="n">blocked</th><th class="n">sources</th><th>top names</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
}

const card = (label: string, value: string, note: string, cls = ''): string =>
  `<div class="kpi ${cls}"><div class="kl">${label}</div><div class="kv">${value}</div><div class="kn">${note}</div></div>`

const CSS = `
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2933;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 24px 40px}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:17px;margin:0 0 12px}
.sub{color:#52606d;margin:0 0 22px}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-bottom:18px}
.kpi{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06);border-top:4px solid #9aa5b1}
.kpi.ai{border-top-color:${COLOURS.passed}}.kpi.bad{border-top-color:${COLOURS.blocked}}.kpi.ev{border-top-color:${COLOURS.evasion}}
.kl{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#616e7c}
.kv{font-size:28px;font-weight:650;margin:2px 0}
.kn{font-size:12px;color:#7b8794}
section{background:#fff;border-radius:10px;padding:18px 20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:18px}.cols>section{margin-bottom:0}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.vcard{border:1px solid #e4e7eb;border-radius:8px;padding:10px 12px}
section h3{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#616e7c;margin:12px 0 4px}
.vcard h3{font-size:14px;margin:0 0 2px;text-transform:none;letter-spacing:0;color:#1f2933}
.legend{margin:8px 0 0;color:#3e4c59}.key{margin-right:18px;white-space:nowrap}
.key i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#323f4b}
svg .lab{font-size:13px}svg .val{font-size:13px}svg .strong{font-weight:650}svg .dim{fill:#7b8794}
svg .tick{fill:#7b8794;font-size:11px}svg .grid{stroke:#e4e7eb}svg .axis{stroke:#9aa5b1}
table{border-collapse:collapse;width:100%}
table.top{table-layout:fixed}table.top td{padding:3px 4px;vertical-align:middle}
td.k{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:240px}
td.k{width:42%}td.barcell{width:34%}table.top td.n{width:11%}.bar{display:block;height:10px;border-radius:2px;min-width:2px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.grid th{text-align:left;font-size:12px;color:#616e7c;font-weight:600;border-bottom:1px solid #cbd2d9;padding:6px 8px}
table.grid td{border-bottom:1px solid #eef0f3;padding:6px 8px;vertical-align:top}
td.names{font-size:12.5px;word-break:break-all}
.dim{color:#7b8794}.warn{color:#a61b1b}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
footer{color:#616e7c;font-size:12.5px}
@media print{body{background:#fff}section,.kpi{box-shadow:none;border:1px solid #e4e7eb}}
`

export interface HtmlOptions {
  /** Shown in the footer, e.g. "aigate 0.1.0". */
  generator?: string
}

export function renderHtml (r: Report, opts: HtmlOptions = {}): string {
  const buckets = series(r.hours, 168)
  const size = buckets[0]?.hours ?? 1
  const per = size === 1 ? 'hour' : size % 24 === 0 ? (size === 24 ? 'day' : `${size / 24} days`) : `${size} hours`
  const ge = r.approximate ? '\u2265 ' : ''
  const reached = r.vendors.filter((v) => v.passed > 0).length
  const files = r.files.length === 1 ? esc((r.files[0] as { path: string }).path) : `${r.files.length} logs`
  const range = r.range.first === null ? 'no decisions' : `${when(r.range.first)} \u2013 ${when(r.range.last)} UTC`
  const selected = r.range.since !== null || r.range.until !== null
    ? ` \u00b7 selected ${r.range.since === null ? 'start' : when(r.range.since)} \u2013 ${r.range.until === null ? 'end' : when(r.range.until)}`
    : ''
  const body: string[] = []
  body.push(`<h1>Who uses which AI service</h1><p class="sub">${files} \u00b7 ${range}${selected}</p>`)
  body.push('<div class="kpis">' +
    card('Decisions', num(r.decisions), `${num(r.lines.decisions)} lines`) +
    card('AI decisions', num(r.ai.decisions), `${pct(r.ai.decisions, r.decisions)} of all`, 'ai') +
    card('AI vendors', num(reached), `reached; ${num(r.ai.vendors)} seen`, 'ai') +
    card('Sources using AI', ge + num(r.ai.sources), `of ${ge}${num(r.sources)} sources`, 'ai') +
    card('Blocked', num(r.blocks.decisions), `${num(r.ai.blocked)} of them AI`, 'bad') +
    card('Evasions', num(r.evasions.decisions), r.evasions.decisions === 0 ? 'none seen' : 'flows that hid a name', r.evasions.decisions > 0 ? 'ev' : '') +
    '</div>')
  if (r.vendors.length > 0) {
    body.push(`<section><h2>AI vendors: decisions and sources</h2>${vendorChart(r.vendors)}` +
      `<p class="legend"><span class="key"><i style="background:${COLOURS.passed}"></i>passed (allow, monitor)</span>` +
      `<span class="key"><i style="background:${COLOURS.blocked}"></i>blocked (block, reject)</span></p></section>`)
  } else {
    body.push('<section><h2>AI vendors</h2><p class="dim">No decision named an AI vendor.</p></section>')
  }
  if (buckets.length > 0) {
    body.push(`<section><h2>Activity per ${per} (UTC)</h2>${activityChart(buckets)}` +
      `<p class="legend"><span class="key"><i style="background:${COLOURS.blocked}"></i>AI, blocked</span>` +
      `<span class="key"><i style="background:${COLOURS.passed}"></i>AI, passed</span>` +
      `<span class="key"><i style="background:${COLOURS.other}"></i>other names</span></p></section>`)
  }
  if (r.vendors.length > 0) {
    body.push('<section><h2>Top sources per vendor</h2><div class="cards">' + r.vendors.map((v) =>
      `<div class="vcard"><h3>${esc(v.vendor)}</h3><p class="dim" style="margin:0 0 6px">${plural(v.decisions, 'decision')} \u00b7 ${plural(v.sources, 'source')}</p>` +
      topList(v.topSources, v.decisions, v.blocked === v.decisions ? COLOURS.blocked : COLOURS.passed) + '</div>').join('') + '</div></section>')
  }
  body.push('<div class="cols">' +
    `<section><h2>Blocked or rejected: ${num(r.blocks.decisions)}</h2><h3>names</h3>${topList(r.blocks.topNames, r.blocks.decisions, COLOURS.blocked)}` +
    `<h3>sources</h3>${topList(r.blocks.topSources, r.blocks.decisions, COLOURS.blocked)}</section>` +
    `<section><h2>Evasions: ${num(r.evasions.decisions)}</h2>` +
    (r.evasions.decisions === 0
      ? '<p class="dim">No flow tried to hide its name (split, conflicting or second hellos, and the like).</p>'
      : `<h3>what the flow did</h3>${topList(r.evasions.details, r.evasions.decisions, COLOURS.evasion)}<h3>names read</h3>${topList(r.evasions.topNames, r.evasions.decisions, COLOURS.evasion)}` +
        `<h3>sources</h3>${topList(r.evasions.topSources, r.evasions.decisions, COLOURS.evasion)}`) +
    '</section></div><div style="height:18px"></div>')
  body.push(`<section><h2>All decisions by action</h2>${actionBar(r)}<div class="cols" style="margin-top:14px"><div><h3>reason</h3>${topList(r.reasons, r.decisions, '#9aa5b1')}</div>` +
    `<div><h3>seen as</h3>${topList(r.seen, r.decisions, '#9aa5b1')}</div></div></section>`)
  if (r.vendors.length > 0) body.push(`<section><h2>Every AI vendor</h2>${vendorTable(r.vendors)}</section>`)
  const other = Object.entries(r.lines.other)
  const foot: string[] = [
    `Read ${num(r.lines.read)} lines: ${num(r.lines.decisions)} decision lines counted, ${num(r.lines.outside)} outside the selected time, ` +
    `${num(r.lines.daemon)} daemon events${other.length === 0 ? '' : `, other datasets: ${other.map(([k, n]) => `${esc(k)} ${num(n)}`).join(', ')}`}, ` +
    `<span class="${r.lines.badTotal > 0 ? 'warn' : ''}">${num(r.lines.badTotal)} unreadable</span>.`,
  ]
  if (r.lines.badTotal > 0) {
    foot.push(`Unreadable: ${Object.entries(r.lines.bad).map(([k, n]) => `${esc(k)} ${num(n)}`).join(', ')}; first: ` +
      r.lines.badExamples.map((b) => `<code>${esc(b.file)}:${b.line}</code> ${esc(b.reason)}`).join('; '))
  }
  if (r.approximate) foot.push('<span class="warn">Approximate: too many distinct sources and names to keep; distinct counts are lower bounds.</span>')
  foot.push('Files: ' + r.files.map((f) => `<code>${esc(f.path)}</code> (${num(f.bytes)} bytes${f.gzip ? ', gzip' : ''}, ${num(f.lines)} lines` +
    `${f.error === undefined ? '' : `, <span class="warn">stopped: ${esc(f.error)}</span>`})`).join(', '))
  foot.push(`Generated ${when(r.generated)} UTC${opts.generator === undefined ? '' : ` by ${esc(opts.generator)}`}. ` +
    'Passed = allow + monitor; blocked = block + reject; a source is a distinct source.ip.')
  body.push(`<footer>${foot.map((l) => `<p>${l}</p>`).join('')}</footer>`)
  return '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1">' +
    `<title>aigate report: ${esc(range)}</title><style>${CSS}</style></head>\n<body><main>\n${body.join('\n')}\n</main></body></html>\n`
}
