import t, { type Test } from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fixtureLog, report } from './log.js'

/**
 * The report's counts equal those computed here, independently, from the raw
 * lines of a log made from the fixture captures (issue 14, "What must
 * hold"). The computation below shares no code with src/report: it walks
 * each parsed line with plain property access, buckets hours by the stamp's
 * text (the first 13 characters), and counts what the README says a report
 * counts.
 */

const log = fixtureLog()
t.teardown(log.cleanup)

type Line = Record<string, any>

/** A field nested or dotted, as ECS allows both. */
const field = (o: Line, a: string, b: string): any => o[a]?.[b] !== undefined ? o[a][b] : o[`${a}.${b}`]

interface Expected {
  lines: number
  decisions: number
  actions: Record<string, number>
  sources: Set<string>
  aiSources: Set<string>
  vendors: Map<string, { decisions: number, passed: number, blocked: number, sources: Map<string, number>, names: Map<string, number> }>
  blocked: number
  evasions: number
  details: Map<string, number>
  hours: Map<string, { decisions: number, ai: number, aiBlocked: number, blocked: number }>
  daemon: number
}

const bump = (m: Map<string, number>, k: string, n: number): void => { m.set(k, (m.get(k) ?? 0) + n) }

function compute (raw: string[]): Expected {
  const e: Expected = { lines: 0, decisions: 0, actions: { allow: 0, monitor: 0, block: 0, reject: 0 }, sources: new Set(), aiSources: new Set(), vendors: new Map(), blocked: 0, evasions: 0, details: new Map(), hours: new Map(), daemon: 0 }
  for (const text of raw) {
    let o: Line
    try { o = JSON.parse(text) } catch { continue }
    if (field(o, 'event', 'dataset') === 'aigate.daemon') { e.daemon++; continue }
    if (field(o, 'event', 'dataset') !== 'aigate.decision') continue
    const n = field(o, 'aigate', 'count') ?? field(o, 'event', 'count') ?? 1
    if (!Number.isInteger(n) || n < 1) continue
    const action = field(o, 'event', 'action') as string
    const vendor = field(o, 'aigate', 'vendor') as string | null
    const ip = field(o, 'source', 'ip') as string
    const blocked = action === 'block' || action === 'reject'
    e.lines++
    e.decisions += n
    e.actions[action] = (e.actions[action] ?? 0) + n
    e.sources.add(ip)
    if (vendor !== null) {
      e.aiSources.add(ip)
      const v = e.vendors.get(vendor) ?? { decisions: 0, passed: 0, blocked: 0, sources: new Map(), names: new Map() }
      e.vendors.set(vendor, v)
      v.decisions += n
      if (blocked) v.blocked += n
      else v.passed += n
      bump(v.sources, ip, n)
      bump(v.names, field(o, 'destination', 'domain') ?? o.name, n)
    }
    if (blocked) e.blocked += n
    if (field(o, 'aigate', 'reason') === 'evasion') { e.evasions += n; bump(e.details, field(o, 'aigate', 'detail'), n) }
    const hour = `${(o['@timestamp'] as string).slice(0, 13)}:00:00.000Z`
    const h = e.hours.get(hour) ?? { decisions: 0, ai: 0, aiBlocked: 0, blocked: 0 }
    e.hours.set(hour, h)
    h.decisions += n
    if (blocked) h.blocked += n
    if (vendor !== null) { h.ai += n; if (blocked) h.aiBlocked += n }
  }
  return e
}

const sortedMap = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => a[0] < b[0] ? -1 : 1)
const sortedTop = (t: Array<{ key: string, n: number }>): Array<[string, number]> => t.map((x) => [x.key, x.n] as [string, number]).sort((a, b) => a[0] < b[0] ? -1 : 1)

function same (t: Test, r: any, e: Expected, what: string): void {
  t.equal(r.lines.decisions, e.lines, `${what}: decision lines`)
  t.equal(r.decisions, e.decisions, `${what}: decisions`)
  t.same(r.actions, e.actions, `${what}: decisions per action`)
  t.equal(r.sources, e.sources.size, `${what}: distinct sources`)
  t.equal(r.ai.sources, e.aiSources.size, `${what}: distinct sources reaching AI vendors`)
  t.equal(r.ai.vendors, e.vendors.size, `${what}: AI vendors`)
  t.same(r.vendors.map((v: any) => v.vendor).sort(), [...e.vendors.keys()].sort(), `${what}: the vendors`)
  for (const [name, v] of e.vendors) {
    const got = r.vendors.find((x: any) => x.vendor === name)
    t.same({ decisions: got.decisions, passed: got.passed, blocked: got.blocked, sources: got.sources },
      { decisions: v.decisions, passed: v.passed, blocked: v.blocked, sources: v.sources.size }, `${what}: ${name}`)
    t.same(sortedTop(got.topSources), sortedMap(v.sources), `${what}: ${name}: decisions per source`)
    t.same(sortedTop(got.topNames), sortedMap(v.names), `${what}: ${name}: decisions per name`)
  }
  t.equal(r.blocks.decisions, e.blocked, `${what}: blocked or rejected`)
  t.equal(r.evasions.decisions, e.evasions, `${what}: evasions`)
  t.same(sortedTop(r.evasions.details), sortedMap(e.details), `${what}: evasions by detail`)
  t.same(r.hours, [...e.hours].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([hour, h]) => ({ hour, ...h })), `${what}: activity per hour`)
  t.equal(r.lines.daemon, e.daemon, `${what}: daemon lines skipped`)
}

t.test('the fixture log: the report counts what the raw lines say', async (t) => {
  t.ok(log.lines.length >= 60, `${log.lines.length} decision lines from the fixture captures`)
  const e = compute(log.lines)
  t.ok(e.vendors.size >= 4 && e.blocked > 0 && e.evasions === 1 && e.hours.size >= 2, 'the log has vendors, blocks, an evasion and several hours')
  const r = report(['--json', '--top', '1000', log.path])
  t.equal(r.status, 0, `exit 0 ${r.stderr}`)
  const got = JSON.parse(r.stdout)
  same(t, got, e, 'cli --json')
  t.equal(got.lines.badTotal, 0, 'no bad lines')
  t.equal(got.approximate, false)
  t.equal(got.range.first, log.lines.map((l) => JSON.parse(l)['@timestamp'] as string).sort()[0], 'first decision')
})

t.test('the terminal tables and the HTML page show the same counts', async (t) => {
  const e = compute(log.lines)
  const html = join(log.dir, 'counts.html')
  const r = report(['--html', html, log.path])
  t.equal(r.status, 0, `exit 0 ${r.stderr}`)
  const page = readFileSync(html, 'utf8')
  const num = (n: number): string => n.toLocaleString('en-US')
  for (const [name, v] of e.vendors) {
    t.match(r.stdout, new RegExp(`^${name} +${num(v.decisions)} +${num(v.passed)} +${num(v.blocked)} +${v.sources.size} `, 'm'), `terminal row of ${name}`)
    t.ok(page.includes(`<tr><td>${name}</td><td class="n">${num(v.decisions)}</td><td class="n">${num(v.passed)}</td><td class="n">${num(v.blocked)}</td><td class="n">${num(v.sources.size)}</td>`), `HTML row of ${name}`)
  }
  t.match(page, new RegExp(`<div class="kl">Decisions</div><div class="kv">${num(e.decisions)}</div>`), 'HTML: decisions')
  t.match(page, new RegExp(`<div class="kl">Blocked</div><div class="kv">${num(e.blocked)}</div>`), 'HTML: blocked')
  t.match(page, new RegExp(`<div class="kl">Evasions</div><div class="kv">${num(e.evasions)}</div>`), 'HTML: evasions')
  t.match(r.stdout, new RegExp(`^Evasions: ${e.evasions}$`, 'm'))
  t.match(r.stdout, new RegExp(`^Blocked or rejected: ${e.blocked}$`, 'm'))
})

t.test('aggregated lines count what they stand for; the ECS-clean name; daemon and other lines skipped', async (t) => {
  const base = JSON.parse(log.lines.find((l) => JSON.parse(l).aigate.vendor === 'openai') as string)
  const agg = (patch: (o: Line) => void): string => { const o = structuredClone(base); patch(o); return JSON.stringify(o) }
  const extra = [
    agg((o) => { o.aigate.count = 7 }),
    agg((o) => { o.event.count = 3; o.source.ip = '192.0.2.77' }),
    // The ECS-clean line: destination.domain, no root name.
    agg((o) => { delete o.name; o.destination.domain = 'api.openai.com'; o.aigate.count = 2 }),
    // Dotted fields, as pino and some shippers write them.
    JSON.stringify({ '@timestamp': base['@timestamp'], 'event.dataset': 'aigate.decision', 'event.action': 'block', 'aigate.vendor': 'openai', 'aigate.count': 4, 'source.ip': '192.0.2.78', 'destination.domain': 'chatgpt.com' }),
    JSON.stringify({ '@timestamp': base['@timestamp'], 'log.level': 'info', event: { dataset: 'aigate.daemon', action: 'start' }, message: 'started' }),
    JSON.stringify({ '@timestamp': base['@timestamp'], event: { dataset: 'suricata.eve' }, message: 'not ours' }),
  ]
  const lines = [...log.lines, ...extra]
  const file = join(log.dir, 'aggregated.log')
  writeFileSync(file, lines.join('\n') + '\n')
  const e = compute(lines)
  t.equal(e.decisions, compute(log.lines).decisions + 7 + 3 + 2 + 4, 'the independent count weighs the counts')
  const r = report(['--json', '--top', '1000', file])
  t.equal(r.status, 0)
  const got = JSON.parse(r.stdout)
  same(t, got, e, 'with aggregated lines')
  t.same(got.lines.other, { 'suricata.eve': 1 }, 'another dataset is counted apart, not as a decision')
  t.equal(got.lines.badTotal, 0)
})
