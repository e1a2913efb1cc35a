import t from 'tap'
import { appendFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { LineSplitter, MAX_LINE_BYTES, startOfLast } from '../../../src/logs/index.js'
import { decision, Follower, tmp } from './log.js'

/**
 * `aigate logs -f` follows a log the way `tail -F` does: appended lines
 * (a half-written line waits for its end), the file moved away and a new one
 * created by the name (logrotate's default, the daemon reopening on SIGUSR2),
 * truncation (copytruncate), removal and re-creation. The built CLI runs as
 * a child process and its stdout is read as an analyst's terminal would.
 */

const { dir, cleanup } = tmp()
t.teardown(cleanup)

const line = (n: number, name = `n${n}.example`): string => decision({ ts: `2026-11-25T21:00:${String(n).padStart(2, '0')}.000Z`, name, ip: '10.0.0.1', port: 1000 + n })
const names = (f: Follower): string[] => f.lines.map((l) => l.split(/ +/)[4] as string)

t.test('LineSplitter: the same lines wherever chunks cut them; an overlong line dropped, the next kept', async (t) => {
  const text = Buffer.from('a\nbb\n\nccc\r\ndddd')
  for (let size = 1; size <= text.length; size++) {
    const s = new LineSplitter()
    const out: Buffer[] = []
    for (let i = 0; i < text.length; i += size) s.push(text.subarray(i, i + size), out)
    s.end(out)
    t.same(out.map(String), ['a', 'bb', '', 'ccc\r', 'dddd'], `chunks of ${size}`)
  }
  const s = new LineSplitter()
  const out: Buffer[] = []
  s.push(Buffer.alloc(MAX_LINE_BYTES, 0x41), out)
  s.push(Buffer.from('AAAA\nok\n'), out)
  t.same(out.map((b) => b.length), [0, 2], 'the long line is one empty marker, then "ok"')
  t.equal(String(out[1]), 'ok')
})

t.test('startOfLast: where the last n selected lines start, read backwards in chunks', async (t) => {
  const f = join(dir, 'back.log')
  // Lines of mixed length, some longer than a read chunk (64 KiB), with and without a final newline.
  const lines = Array.from({ length: 40 }, (_, i) => `${i}:` + 'x'.repeat(i % 7 === 0 ? 70_000 : i * 13))
  for (const ending of ['\n', '']) {
    writeFileSync(f, lines.join('\n') + ending)
    const fh = await open(f, 'r')
    const size = (await fh.stat()).size
    const all = (): boolean => true
    for (const n of [1, 2, 7, 39, 40]) {
      const at = await startOfLast(fh, size, n, all)
      t.equal(at, lines.slice(0, 40 - n).join('\n').length + (n === 40 ? 0 : 1), `last ${n}, ending ${JSON.stringify(ending)}`)
    }
    t.equal(await startOfLast(fh, size, 41, all), 0, 'more than the file holds: from the start')
    t.equal(await startOfLast(fh, size, 0, all), size, 'none: from the end')
    const even = (b: Buffer): boolean => Number(b.toString('latin1').split(':')[0]) % 2 === 0
    const at = await startOfLast(fh, size, 3, even)
    t.equal(at, lines.slice(0, 34).join('\n').length + 1, 'the last 3 even lines start at line 34')
    await fh.close()
  }
})

t.test('-f: appended lines, a half-written line, rotation (moved, recreated), truncation, removal', async (t) => {
  const f = join(dir, 'decisions.log')
  writeFileSync(f, [line(1), line(2), line(3)].join('\n') + '\n')
  const follow = new Follower(['-f', '-n', 'all', f])
  t.teardown(async () => { await follow.stop() })
  await follow.until('the first three lines', () => follow.lines.length === 3)
  t.same(names(follow), ['n1.example', 'n2.example', 'n3.example'])

  // Appended, one line in two writes: nothing of the line shows before its newline.
  appendFileSync(f, line(4) + '\n')
  const half = line(5)
  appendFileSync(f, half.slice(0, 40))
  await follow.until('line 4', () => follow.lines.length === 4)
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal(follow.lines.length, 4, 'a half-written line waits')
  appendFileSync(f, half.slice(40) + '\n')
  await follow.until('line 5', () => follow.lines.length === 5)
  t.same(names(follow).slice(3), ['n4.example', 'n5.example'])

  // logrotate: the file moved away, a last line still lands in it (the daemon has not reopened yet),
  // then a new file under the name, which the daemon writes to after SIGUSR2.
  renameSync(f, f + '.1')
  appendFileSync(f + '.1', line(6) + '\n')
  writeFileSync(f, line(7) + '\n')
  await follow.until('lines 6 and 7', () => follow.lines.length === 7)
  t.same(names(follow).slice(5), ['n6.example', 'n7.example'], 'the old file read to its end, then the new one from its start')
  t.match(follow.stderr, /decisions\.log: was replaced \(rotated\); following the new file/)
  appendFileSync(f + '.1', line(99) + '\n')
  appendFileSync(f, line(8) + '\n')
  await follow.until('line 8', () => follow.lines.length === 8)
  t.equal(names(follow)[7], 'n8.example', 'the new file is followed; the rotated one no longer')

  // copytruncate: the file cut to nothing, then written again.
  truncateSync(f, 0)
  await follow.until('the truncation notice', () => /truncated; reading it from the start/.test(follow.stderr))
  appendFileSync(f, line(9) + '\n')
  await follow.until('line 9', () => follow.lines.length === 9)
  t.equal(names(follow)[8], 'n9.example')

  // Removed, then created again.
  rmSync(f)
  await follow.until('the removal notice', () => /moved away or removed; waiting/.test(follow.stderr))
  writeFileSync(f, line(10) + '\nnot json\n')
  await follow.until('line 10', () => follow.lines.length === 10)
  t.equal(names(follow)[9], 'n10.example')
  t.match(follow.stderr, /a new file appeared; following the new file/)

  t.equal(await follow.stop(), 0, '^C ends it with status 0')
  t.match(follow.stderr, /aigate: logs: 1 line skipped: 1 not JSON \(first: "not json"\)\n$/, 'the summary at the end')
  t.notOk(names(follow).includes('n99.example'))
})

t.test('-f starts with the last 10 lines (or -n), and waits for a file not there yet', async (t) => {
  const f = join(dir, 'long.log')
  writeFileSync(f, Array.from({ length: 30 }, (_, i) => line(i)).join('\n') + '\n')
  const ten = new Follower(['-f', f])
  await ten.until('10 lines', () => ten.lines.length === 10)
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(ten.lines.length, 10)
  t.equal(names(ten)[0], 'n20.example')
  await ten.stop()

  const two = new Follower(['-f', '-n', '2', '--action', 'block', f])
  await two.until('2 lines', () => two.lines.length === 2)
  t.same(names(two), ['n28.example', 'n29.example'])
  await two.stop()

  const later = join(dir, 'later.log')
  const wait = new Follower(['-f', '--json', later])
  await wait.until('the waiting notice', () => /later\.log: not there yet; waiting for it/.test(wait.stderr))
  writeFileSync(later, line(1) + '\n')
  await wait.until('the line', () => wait.lines.length === 1)
  t.equal(wait.stdout, line(1) + '\n', '--json while following: the bytes written')
  t.match(wait.stderr, /later\.log: appeared; following it/)
  t.equal(await wait.stop(), 0)
})
