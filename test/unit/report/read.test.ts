import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { Readable } from 'node:stream'
import { buildReport, MAX_LINE_BYTES } from '../../../src/report/index.js'
import { splitLines, type FileRead } from '../../../src/report/read.js'
import { fixtureLog, report } from './log.js'

/**
 * Reading logs: gzip as plain, lines cut anywhere by the reader's chunks,
 * and every kind of bad line counted with its reason and place, never a
 * throw (issue 14 item 5: "per-line errors counted and reported").
 */

const log = fixtureLog()
t.teardown(log.cleanup)

const fresh = (): FileRead => ({ path: 'x', bytes: 0, lines: 0, gzip: false, tooLong: 0 })

async function split (chunks: Buffer[]): Promise<{ lines: Array<string | null>, r: FileRead }> {
  const lines: Array<string | null> = []
  const r = fresh()
  await splitLines(Readable.from(chunks), (text) => lines.push(text), r)
  return { lines, r }
}

t.test('lines are the same wherever the chunks cut them', async (t) => {
  const bytes = Buffer.from(log.text)
  const want = log.lines
  for (const size of [1, 2, 7, 64, 700, 4096, bytes.length]) {
    const chunks: Buffer[] = []
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size))
    const { lines } = await split(chunks)
    t.same(lines, want, `chunks of ${size} bytes`)
  }
})

t.test('CRLF, empty lines, a last line without a newline, a line too long', async (t) => {
  const { lines, r } = await split([Buffer.from('a\r\n\nb\n'), Buffer.from('c')])
  t.same(lines, ['a', 'b', 'c'], 'CR removed, the empty line skipped, the unterminated last line read')
  t.equal(r.lines, 4, 'line numbers count the empty line')
  const long = Buffer.alloc(MAX_LINE_BYTES + 10, 0x61)
  for (const chunks of [[Buffer.concat([long, Buffer.from('\nz\n')])], [long.subarray(0, 5), long.subarray(5), Buffer.from('\nz\n')], [Buffer.from('y\n'), long]]) {
    const got = await split(chunks)
    t.equal(got.r.tooLong, 1, 'one line too long')
    t.equal(got.lines.filter((l) => l === null).length, 1, 'reported as null, not read')
    t.ok(got.lines.every((l) => l === null || l.length < 10), 'the other lines intact')
  }
})

t.test('gzip reads as plain: one member, several members (rotated and concatenated), a .gz name not needed', async (t) => {
  const plain = JSON.parse(report(['--json', log.path]).stdout)
  const gz = join(log.dir, 'decisions.log.1')
  writeFileSync(gz, gzipSync(log.text))
  const multi = join(log.dir, 'decisions.log.2.gz')
  const half = log.lines.length >> 1
  writeFileSync(multi, Buffer.concat([gzipSync(log.lines.slice(0, half).join('\n') + '\n'), gzipSync(log.lines.slice(half).join('\n') + '\n')]))
  for (const f of [gz, multi]) {
    const r = report(['--json', f])
    t.equal(r.status, 0, `exit 0 ${r.stderr}`)
    const got = JSON.parse(r.stdout)
    t.equal(got.files[0].gzip, true, 'told gzip by its content')
    t.same({ ...got, files: [], generated: '' }, { ...plain, files: [], generated: '' }, `${f}: the same report as the plain file`)
  }
  const both = JSON.parse(report(['--json', log.path, gz]).stdout)
  t.equal(both.decisions, 2 * plain.decisions, 'several files add up')
})

t.test('a gzip file cut short: the lines before count, the file is named, exit 1', async (t) => {
  const whole = gzipSync(Buffer.from(log.text.repeat(50)))
  const cut = join(log.dir, 'cut.gz')
  writeFileSync(cut, whole.subarray(0, whole.length >> 1))
  const r = report(['--json', cut])
  t.equal(r.status, 1, 'exit 1')
  t.match(r.stderr, /cut\.gz: stopped after line \d+: unexpected end of file/)
  const got = JSON.parse(r.stdout)
  t.ok(got.decisions > 0 && got.decisions < 50 * log.lines.length, `${got.decisions} decisions read before the cut`)
  t.match(got.files[0].error, /unexpected end of file/)
})

t.test('bad lines are counted by reason and the first few quoted with file:line; no throw', async (t) => {
  const good = log.lines[0] as string
  const o = JSON.parse(good)
  const bad = [
    '{"truncated": ',
    '[1,2,3]',
    '"a string"',
    'null',
    JSON.stringify({ ...o, event: { ...o.event, action: undefined } }),
    JSON.stringify({ ...o, event: { ...o.event, action: 'explode' } }),
    JSON.stringify({ ...o, '@timestamp': undefined }),
    JSON.stringify({ ...o, '@timestamp': 'yesterday' }),
    JSON.stringify({ ...o, aigate: { ...o.aigate, count: -1 } }),
    JSON.stringify({ ...o, aigate: { ...o.aigate, count: '5' } }),
    JSON.stringify({ ...o, aigate: { ...o.aigate, count: 1.5 } }),
    '\u0000\u00ff binary',
  ]
  const file = join(log.dir, 'bad.log')
  writeFileSync(file, [good, ...bad, good].join('\n') + '\n' + 'x'.repeat(MAX_LINE_BYTES + 1) + '\n')
  const r = await buildReport([file], { since: null, until: null, top: 5 })
  t.equal(r.lines.decisions, 2, 'the two good lines counted')
  t.equal(r.lines.badTotal, bad.length + 1, 'every bad line counted')
  t.same(r.lines.bad, {
    'not JSON': 2,
    'not an object': 3,
    'no event.action': 1,
    'unknown event.action': 1,
    'no @timestamp': 1,
    'bad @timestamp': 1,
    'bad count': 3,
    [`longer than ${MAX_LINE_BYTES} bytes`]: 1,
  })
  t.same(r.lines.badExamples.map((b) => `${b.line} ${b.reason}`), ['2 not JSON', '3 not an object', '4 not an object', '5 not an object', '6 no event.action'], 'the first five, with their line numbers')
  t.ok(r.lines.badExamples.every((b) => b.file === file))
  const cli = report([file])
  t.equal(cli.status, 0, 'bad lines do not fail the command')
  t.match(cli.stdout, /13 unreadable/)
  t.match(cli.stdout, new RegExp(`${file.replace(/[.]/g, '\\.')}:2: not JSON`))
})

t.test('files that cannot be read are named before any is read; exit 1', async (t) => {
  const r = report([log.path, join(log.dir, 'missing.log'), log.dir])
  t.equal(r.status, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, /report: .*missing\.log: no such file/)
  t.match(r.stderr, /report: .*: not a file/)
})

t.test('- reads stdin', async (t) => {
  const r = report(['--json', '-'], log.text)
  t.equal(r.status, 0)
  t.equal(JSON.parse(r.stdout).lines.decisions, log.lines.length)
})
