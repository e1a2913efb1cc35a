import t from 'tap'
import { parseWhen, Progress } from '../../../src/report/index.js'
import { fixtureLog, report } from './log.js'

/** --since and --until: the forms they take, what they select, what they refuse; the progress bar. */

const log = fixtureLog()
t.teardown(log.cleanup)

const NOW = Date.parse('2026-11-26T12:00:00Z')

t.test('parseWhen: ISO times and ages', async (t) => {
  t.equal(parseWhen('24h', NOW), NOW - 24 * 3600_000)
  t.equal(parseWhen('90m', NOW), NOW - 90 * 60_000)
  t.equal(parseWhen('7d', NOW), NOW - 7 * 86400_000)
  t.equal(parseWhen('2w', NOW), NOW - 14 * 86400_000)
  t.equal(parseWhen('30s', NOW), NOW - 30_000)
  t.equal(parseWhen('1.5h', NOW), NOW - 5400_000)
  t.equal(parseWhen('now', NOW), NOW)
  t.equal(parseWhen('2026-11-25T21:00Z', NOW), Date.UTC(2026, 10, 25, 21))
  t.equal(parseWhen('2026-11-25T21:00:00.500Z', NOW), Date.UTC(2026, 10, 25, 21, 0, 0, 500))
  t.equal(parseWhen('2026-11-25T22:00:00+01:00', NOW), Date.UTC(2026, 10, 25, 21))
  t.equal(parseWhen('2026-11-25', NOW), Date.UTC(2026, 10, 25), 'a date alone is UTC midnight (Date.parse)')
  t.equal(parseWhen('2026-11-25 21:00Z', NOW), Date.UTC(2026, 10, 25, 21), 'a space for the T')
  for (const bad of ['', 'yesterday', '24', 'h', '-1h', '24 h', '1y', '2026-13-01', '2026-11-25T25:00Z', '1', 'Tue Nov 25 2026']) {
    t.type(parseWhen(bad, NOW), 'string', `"${bad}" refused with a message`)
  }
})

/** Decision lines whose stamp is in [since, until), by the stamp's text (ISO UTC stamps sort as text). */
function inWindow (since: string | null, until: string | null): number {
  return log.lines.filter((l) => {
    const s = JSON.parse(l)['@timestamp'] as string
    return (since === null || s >= since) && (until === null || s < until)
  }).length
}

t.test('--since and --until select decisions by their @timestamp, since included, until not', async (t) => {
  const stamps = log.lines.map((l) => JSON.parse(l)['@timestamp'] as string).sort()
  const mid = stamps[stamps.length >> 1] as string
  const cases: Array<[string | null, string | null]> = [
    ['2026-11-25T22:00:00.000Z', null],
    [null, '2026-11-25T22:00:00.000Z'],
    ['2026-11-25T22:00:00.000Z', '2026-11-26T00:00:00.000Z'],
    [mid, null],
    [null, mid],
    [stamps[0] as string, stamps[stamps.length - 1] as string],
    ['2030-01-01T00:00:00.000Z', null],
  ]
  for (const [since, until] of cases) {
    const args = ['--json', ...(since === null ? [] : ['--since', since]), ...(until === null ? [] : ['--until', until]), log.path]
    const r = report(args)
    t.equal(r.status, 0, `exit 0 ${r.stderr}`)
    const got = JSON.parse(r.stdout)
    const want = inWindow(since, until)
    t.equal(got.lines.decisions, want, `since ${since} until ${until}: ${want} decisions`)
    t.equal(got.lines.outside, log.lines.length - want, 'the rest counted as outside')
    t.equal(got.range.since, since)
    t.equal(got.range.until, until)
  }
  const age = JSON.parse(report(['--json', '--since', '100000d', log.path]).stdout)
  t.equal(age.lines.decisions, log.lines.length, 'an age reaching back before the log selects all of it')
  const none = report(['--since', '2030-01-01', log.path])
  t.match(none.stdout, /0 decision lines/, 'nothing selected: still a report, saying so')
})

t.test('usage errors: exit 2 with the reason', async (t) => {
  for (const [args, msg] of [
    [['--since', 'yesterday'], /--since: "yesterday" is not a time/],
    [['--until', '5'], /--until: "5" is not a time/],
    [['--since', '2026-11-26', '--until', '2026-11-25'], /--since must be before --until/],
    [['--top', '0'], /--top must be an integer from 1 to 1000/],
  ] as Array<[string[], RegExp]>) {
    const r = report([...args, log.path])
    t.equal(r.status, 2, args.join(' '))
    t.match(r.stderr, msg)
  }
  const none = report([])
  t.equal(none.status, 2, 'no log: usage error')
})

t.test('the progress bar: redrawn at most every 100 ms, cleared at the end, file names made printable', async (t) => {
  const out: string[] = []
  let now = 0
  const p = new Progress({ write: (s: string) => out.push(s) }, 2_000_000, () => now)
  p.file('a.log\u001b[2J', 0)
  now = 200
  p.update(500_000)
  now = 250
  p.update(600_000)
  t.equal(out.length, 1, 'one redraw within 100 ms')
  t.match(out[0], /^\r\x1b\[K\[#{8}\.{22}\]  25% 0\.5\/2\.0 MB 2\.5 MB\/s a\.log\?\[2J$/)
  p.file('b.log', 1_000_000)
  now = 400
  p.update(1_000_000)
  t.match(out[1], /\[#{30}\] 100% 2\.0\/2\.0 MB/, 'bytes of the earlier files count')
  p.end()
  t.equal(out[2], '\r\x1b[K', 'the line cleared')
  p.end()
  t.equal(out.length, 3, 'cleared once')
  const r = report([log.path])
  t.notMatch(r.stderr, /\[#/, 'no bar when stderr is not a terminal')
})
