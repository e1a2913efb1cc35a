import t from 'tap'
import { Filter, Formatter, LogView } from '../../../src/logs/index.js'
import { LogLine as Entry, readLine as readEntry } from '../../../src/log/read.js'
import { daemonLine, decision } from './log.js'

/**
 * The text an analyst reads: one line per decision, columns aligned, every
 * string from the log escaped before it reaches the terminal, colour only
 * when asked for, and lines that cannot be read counted, never thrown.
 */

const view = (o: { colour?: boolean, json?: boolean, filter?: Filter } = {}): LogView =>
  new LogView({ filter: o.filter ?? new Filter(), format: o.json === true ? null : new Formatter({ colour: o.colour ?? false, utc: true }) })

const text = (v: LogView, line: string): string | null => {
  const r = v.take(Buffer.from(line))
  if (r === null) return null
  if (typeof r === 'string') return r
  return Buffer.concat(r).toString('utf8')
}

t.test('a decision line: time, action, vendor, name, source, seen, reason', async (t) => {
  const v = view()
  t.equal(text(v, decision({ ts: '2026-11-25T21:00:23.803Z', action: 'block', vendor: 'anthropic', name: 'claude.ai', ip: '10.200.0.1', port: 40002, seen: 'sni', reason: 'vendor' })),
    '2026-11-25 21:00:23.803Z  block    anthropic      claude.ai                 10.200.0.1:40002       sni   vendor\n')
  t.equal(text(v, decision({ action: 'allow', vendor: null, name: 'www.example.com', ip: 'fd00:230::1', port: 58652, seen: 'quic', reason: 'default' })),
    '2026-11-25 21:00:00.000Z  allow    -              www.example.com           [fd00:230::1]:58652    quic  default\n', 'IPv6 in brackets; no vendor is -')
  t.match(text(v, decision({ reason: 'evasion', detail: 'second-hello' })), / evasion \(second-hello\)\n$/, 'detail in parentheses')
  t.match(text(v, decision({ action: 'allow', reason: 'default', count: 42 })), / default x42\n$/, 'an aggregated line says how many decisions it stands for')
})

t.test('the name: destination.domain, else the root name of older lines; dotted fields read too', async (t) => {
  const v = view()
  t.match(text(v, decision({ name: 'api.openai.com' })), /  api\.openai\.com  /)
  t.match(text(v, decision({ name: 'chatgpt.com', oldName: true })), /  chatgpt\.com  /)
  const dotted = JSON.stringify({ '@timestamp': '2026-11-25T21:00:00Z', 'event.dataset': 'aigate.decision', 'event.action': 'reject', 'aigate.vendor': 'openai', 'destination.domain': 'x.openai.com', 'source.ip': '10.1.1.1', 'source.port': 1, 'aigate.seen': 'dns', 'aigate.reason': 'vendor' })
  t.equal(text(v, dotted), '2026-11-25 21:00:00.000Z  reject   openai         x.openai.com              10.1.1.1:1             dns   vendor\n')
  const e = new Entry()
  t.equal(readEntry(JSON.stringify({ '@timestamp': '2026-11-25T21:00:00Z', event: { dataset: 'aigate.decision', action: 'block' } }), e), 'decision', 'a line with only the required fields')
  t.equal(e.name, null)
  t.equal(text(view(), JSON.stringify({ '@timestamp': '2026-11-25T21:00:00Z', event: { dataset: 'aigate.decision', action: 'block' } })),
    '2026-11-25 21:00:00.000Z  block    -              -                         -                      -     -\n', 'absent fields are -')
})

t.test('columns line up, and a column widened by a long value stays wide for the lines after it', async (t) => {
  const v = view()
  const rows = [
    decision({ action: 'monitor', vendor: 'openai', name: 'api.openai.com', ip: '10.0.0.1', port: 1 }),
    decision({ action: 'block', vendor: 'anthropic', name: 'claude.ai', ip: 'fd00::1', port: 65535 }),
    decision({ action: 'reject', vendor: 'cloudflare-ai-gateway', name: 'a-very-long-name.gateway.ai.cloudflare.com', ip: '2001:db8:1:2:3:4:5:6', port: 443, seen: 'quic' }),
    decision({ action: 'allow', vendor: null, name: 'x.example', ip: '10.0.0.2', port: 2, seen: 'dns' }),
    decision({ action: 'block', vendor: 'anthropic', name: 'claude.ai', ip: '10.0.0.3', port: 3, seen: 'http' }),
  ].map((l) => text(v, l) as string)
  // Where each column starts: the position of the seen column, found from the known source text.
  const starts = (line: string, of: string): number => line.indexOf(of)
  t.equal(starts(rows[0] as string, 'openai'), starts(rows[1] as string, 'anthropic'), 'vendor column')
  t.equal(starts(rows[0] as string, 'api.openai.com'), starts(rows[1] as string, 'claude.ai'), 'name column')
  t.equal(starts(rows[0] as string, '10.0.0.1:1'), starts(rows[1] as string, '[fd00::1]:65535'), 'source column')
  // After the long row, the later rows share its columns.
  const long = rows[2] as string
  for (const [i, row] of [[3, rows[3]], [4, rows[4]]] as const) {
    t.equal(starts(row as string, i === 3 ? '-  ' : 'anthropic'), starts(long, 'cloudflare-ai-gateway'), `row ${i}: vendor column after widening`)
    t.equal(starts(row as string, i === 3 ? 'x.example' : 'claude.ai'), starts(long, 'a-very-long-name'), `row ${i}: name column after widening`)
    t.equal(starts(row as string, i === 3 ? '10.0.0.2:2' : '10.0.0.3:3'), starts(long, '[2001:db8'), `row ${i}: source column after widening`)
    t.equal(starts(row as string, i === 3 ? 'dns' : 'http'), starts(long, 'quic'), `row ${i}: seen column after widening`)
  }
  // A column stops widening at 64: one absurd value does not push every later line off the screen.
  text(v, decision({ name: 'a'.repeat(200) }))
  const after = text(v, decision({ name: 'b.example', ip: '10.0.0.9', port: 9 })) as string
  t.ok(after.indexOf('10.0.0.9:9') - after.indexOf('b.example') <= 64 + 2, 'name column capped')
})

t.test('hostile strings from the log are escaped before the terminal: ANSI escapes, U+202E, C1, newlines', async (t) => {
  const v = view({ colour: true })
  const evil = '\u001b[2J\u001b]0;pwned\u0007claude.ai\u202eexe.gpj\u009b31m\r\nX'
  const out = text(v, decision({ name: evil, vendor: 'anth\u001b[8mropic', seen: 'sni\u202e', reason: 'vendor\u0000', detail: '\u2028d', ip: '10.0.0.1\u001b[1m' })) as string
  // Our own colour is SGR sequences; strip exactly those, then nothing outside printable ASCII may remain.
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '')
  t.notMatch(plain.slice(0, -1), /[^\x20-\x7e]/, 'only printable ASCII between our SGR sequences')
  t.match(plain, /\\u001b\[2J\\u001b\]0;pwned\\u0007claude\.ai\\u202eexe\.gpj\\u009b31m\\u000d\\u000aX/)
  t.match(plain, /anth\\u001b\[8mropic/)
  t.match(plain, /vendor\\u0000 \(\\u2028d\)/)
  t.equal(out.split('\n').length, 2, 'one line, whatever the strings hold')
  const d = text(v, daemonLine('reload\u001b[31m', 'rules \u202ereloaded\u001b[0m')) as string
  t.match(d.replace(/\x1b\[[0-9;]*m/g, ''), /reload\\u001b\[31m: rules \\u202ereloaded\\u001b\[0m/)
  t.notMatch(d.replace(/\x1b\[[0-9;]*m/g, '').slice(0, -1), /[^\x20-\x7e]/)
})

t.test('colour: only when asked; each action its own colour, daemon lines dimmed', async (t) => {
  t.notMatch(text(view(), decision()), /\x1b/, 'no colour: no escape at all')
  const v = view({ colour: true })
  const block = text(v, decision({ action: 'block' })) as string
  const allow = text(v, decision({ action: 'allow' })) as string
  t.match(block, /\x1b\[1m\x1b\[31mblock  \x1b\[0m/)
  t.match(allow, /\x1b\[32mallow  \x1b\[0m/)
  t.match(text(v, decision({ action: 'monitor' })), /\x1b\[33mmonitor\x1b\[0m/)
  t.match(text(v, decision({ action: 'reject' })), /\x1b\[1m\x1b\[35mreject \x1b\[0m/)
  t.match(text(v, daemonLine('start', 'aigate started')), /^\x1b\[2m2026-11-25 21:00:00\.000Z  daemon   \[info\] start: aigate started\x1b\[0m\n$/)
})

t.test('local time unless --utc', async (t) => {
  const f = new Formatter({ colour: false, utc: false })
  const ms = Date.parse('2026-11-25T21:00:23.803Z')
  const d = new Date(ms)
  t.equal(f.time(ms), `2026-11-${String(d.getDate()).padStart(2, '0')} ${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:23.803`)
  t.equal(new Formatter({ colour: false, utc: true }).time(ms), '2026-11-25 21:00:23.803Z')
})

t.test('bad lines: counted by reason with the first quoted (escaped), never thrown; other datasets counted apart', async (t) => {
  const v = view()
  const bad = [
    'not json at all',
    '',
    '[1,2]',
    '"a string"',
    '{"event":{"dataset":"aigate.decision","action":"block"}}',
    '{"@timestamp":"yesterday","event":{"dataset":"aigate.decision","action":"block"}}',
    '{"@timestamp":12,"event":{"dataset":"aigate.decision","action":"block"}}',
    '{"@timestamp":"2026-11-25T21:00:00Z","event":{"dataset":"aigate.decision","action":"explode"}}',
    '{"@timestamp":"2026-11-25T21:00:00Z","event":{"dataset":"aigate.decision"}}',
    '{"@timestamp":"2026-11-25T21:00:00Z","event":{"dataset":"aigate.decision","action":"block"},"source":{"ip":7,"port":"x"},"destination":{"domain":["a"]},"aigate":{"vendor":{}}}',
    '\u001b[31m{not json\u202e',
    '{"truncated":',
  ]
  const shown = bad.map((l) => text(v, l))
  t.same(shown.map((s) => s !== null), [false, false, false, false, false, false, false, false, false, true, false, false], 'only the line with wrong-typed optional fields is shown')
  t.match(shown[9], /block    -              -                         -                      /, 'wrong types read as absent')
  t.same(Object.fromEntries([...v.bad].map(([k, b]) => [k, b.count])), {
    'not JSON': 3, 'empty line': 1, 'not a JSON object': 2, 'no @timestamp': 2, 'bad @timestamp': 1, 'unknown event.action': 1, 'no event.action': 1,
  })
  t.equal(text(v, JSON.stringify({ '@timestamp': '2026-11-25T21:00:00Z', event: { dataset: 'nginx.access' } })), null)
  t.equal(text(v, JSON.stringify({ '@timestamp': '2026-11-25T21:00:00Z' })), null)
  const s = v.summary() as string
  t.match(s, /^13 lines skipped: /)
  t.match(s, /3 not JSON \(first: "not json at all"\)/)
  t.match(s, /2 of other datasets \(nginx\.access, \(none\)\)/)
  t.notMatch(s, /[^\x20-\x7e]/, 'the summary is printable ASCII')
  t.equal(view().summary(), null, 'nothing skipped: no summary')
})

t.test('--json: the line\'s own bytes, even bytes that are not UTF-8', async (t) => {
  const v = view({ json: true })
  const line = Buffer.concat([Buffer.from(decision({ name: 'x' }).slice(0, -1)), Buffer.from(',"junk":"\xff\xfe"}', 'latin1')])
  const r = v.take(line)
  t.ok(Array.isArray(r))
  t.ok(Buffer.concat(r as Buffer[]).equals(Buffer.concat([line, Buffer.from('\n')])), 'byte for byte, with a newline')
  t.equal(v.take(Buffer.from('nope')), null, 'a bad line is not passed through')
})
