import t, { type Test } from 'tap'
import { spawnSync, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadLists, ConfigError } from '../../../src/config/lists.js'
import { loadPolicy, parsePolicy, MAX_POLICY_DEPTH } from '../../../src/config/policy.js'
import { importList } from '../../../src/config/import.js'
import { readTextFile, MAX_LIST_BYTES, MAX_POLICY_BYTES, ReadError } from '../../../src/config/read.js'

/**
 * Files that are not what a loader expects (issue 11, "smaller holes"): a
 * device, a FIFO or a huge file where a list or the policy should be, and
 * YAML nested past what the parser's recursion survives. Each ends in one
 * clear error naming the file, quickly; none hangs the loader.
 */

const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))
const LIST = '# vendor: a\n# title: A\n# category: ai\n# source: test\na.example\n'

const problems = (f: () => unknown): string[] => {
  try {
    f()
    return []
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
}

function tmp (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-hostile-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `aigate ...` in a child with a deadline: a hang is a failed test, not a stuck run. */
function aigate (args: string[], timeoutMs = 20_000): { status: number | null, stderr: string, ms: number, signal: NodeJS.Signals | null } {
  const t0 = Date.now()
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' })
  return { status: r.status, stderr: r.stderr ?? '', ms: Date.now() - t0, signal: r.signal }
}

t.test('--policy /dev/zero: a clear error, at once (was: read for ever)', async (t) => {
  const dir = tmp(t)
  writeFileSync(join(dir, 'a.txt'), LIST)
  const r = aigate(['rules', 'lint', '--rules', dir, '--policy', '/dev/zero'])
  t.equal(r.signal, null, 'not killed by the deadline')
  t.equal(r.status, 1)
  t.equal(r.stderr, 'aigate: /dev/zero: cannot read policy: not a regular file (a character device)\n')
  t.ok(r.ms < 10_000, `took ${r.ms} ms`)
  // In this process only once the child showed it cannot hang.
  if (r.signal !== null) return
  t.same(problems(() => loadPolicy('/dev/zero')), ['/dev/zero: cannot read policy: not a regular file (a character device)'])
})

t.test('a FIFO named x.txt in the rules directory: an error, not a hang (was: open waited for a writer)', async (t) => {
  const dir = tmp(t)
  writeFileSync(join(dir, 'a.txt'), LIST)
  execFileSync('mkfifo', [join(dir, 'x.txt')])
  const policy = join(dir, 'policy.yaml')
  writeFileSync(policy, 'default: allow\n')
  const r = aigate(['rules', 'lint', '--rules', dir, '--policy', policy])
  t.equal(r.signal, null, 'not killed by the deadline')
  t.equal(r.status, 1)
  t.equal(r.stderr, `aigate: ${join(dir, 'x.txt')}: cannot read list: not a regular file (a FIFO)\n`)
  // In this process only once the child showed it cannot hang.
  if (r.signal !== null) return
  t.same(problems(() => loadLists(dir)), [`${join(dir, 'x.txt')}: cannot read list: not a regular file (a FIFO)`])
  // The policy as a FIFO too.
  const fifoPolicy = join(dir, 'p.fifo')
  execFileSync('mkfifo', [fifoPolicy])
  t.same(problems(() => loadPolicy(fifoPolicy)), [`${fifoPolicy}: cannot read policy: not a regular file (a FIFO)`])
  // A device behind a symlink with a .txt name is still a device.
  symlinkSync('/dev/zero', join(dir, 'z.txt'))
  t.match(problems(() => loadLists(dir)), [/x\.txt: cannot read list: not a regular file \(a FIFO\)$/, /z\.txt: cannot read list: not a regular file \(a character device\)$/])
})

t.test('oversized files: refused with the cap named', async (t) => {
  const dir = tmp(t)
  const policy = join(dir, 'policy.yaml')
  writeFileSync(policy, 'default: allow\n' + '#'.repeat(MAX_POLICY_BYTES))
  t.same(problems(() => loadPolicy(policy)), [`${policy}: cannot read policy: larger than 1 MiB, the most a policy may hold`])
  // Exactly at the cap is fine.
  writeFileSync(policy, 'default: allow\n' + '#'.repeat(MAX_POLICY_BYTES - 15))
  t.equal(loadPolicy(policy).default, 'allow')
  const big = join(dir, 'big.txt')
  writeFileSync(big, LIST.replace('vendor: a', 'vendor: big') + '#'.repeat(MAX_LIST_BYTES))
  writeFileSync(join(dir, 'a.txt'), LIST)
  t.same(problems(() => loadLists(dir)), [`${big}: cannot read list: larger than 16 MiB, the most a list may hold`])
})

t.test('readTextFile: what it reads and what it refuses', async (t) => {
  const dir = tmp(t)
  const f = join(dir, 'f')
  writeFileSync(f, 'héllo\n')
  t.equal(readTextFile(f, 'list', 100), 'héllo\n')
  t.throws(() => readTextFile(f, 'list', 3), { name: 'ReadError', code: 'EFBIG', message: `${f}: cannot read list: larger than 3 bytes, the most a list may hold` })
  t.throws(() => readTextFile(join(dir, 'nope'), 'list', 100), { code: 'ENOENT', message: `${join(dir, 'nope')}: cannot read list: ENOENT` })
  t.throws(() => readTextFile(dir, 'list', 100), { code: 'EISDIR', message: `${dir}: cannot read list: is a directory` })
  // A /proc file says size 0 and has content: read to its end, counted against the cap.
  t.match(readTextFile('/proc/self/status', 'list', 1 << 20), /^Name:/m)
  t.throws(() => readTextFile('/proc/self/status', 'list', 10), ReadError)
})

t.test('v2fly include: a FIFO is skipped with the reason, not read (was: open waited for a writer)', async (t) => {
  const dir = tmp(t)
  execFileSync('mkfifo', [join(dir, 'pipe')])
  const top = join(dir, 'top')
  writeFileSync(top, 'include:pipe\nfull:a.example\n')
  const c = aigate(['rules', 'import', '--format', 'v2fly', '--vendor', 'x', '--include-dir', dir, top])
  t.equal(c.signal, null, 'not killed by the deadline')
  t.equal(c.stderr, `${top}:1: skipped "include:pipe": ${join(dir, 'pipe')}: cannot read include: not a regular file (a FIFO)\n`)
  if (c.signal !== null) return
  const r = importList('include:pipe\nfull:a.example\n', 'v2fly', { includeDir: dir, file: top })
  t.same(r.entries, ['=a.example'])
  t.same(r.skipped.map((s) => s.reason), [`${join(dir, 'pipe')}: cannot read include: not a regular file (a FIFO)`])
})

t.test('rules import: a device is refused, a pipe is read (capped)', async (t) => {
  const r = aigate(['rules', 'import', '--format', 'plain', '--vendor', 'x', '/dev/zero'])
  t.equal(r.signal, null, 'not killed by the deadline')
  t.equal(r.status, 2)
  t.equal(r.stderr, 'aigate: /dev/zero: cannot read list to import: not a regular file (a character device)\n')
  // A shell pipe (Node's own stdio pipes are socket pairs, which /dev/stdin cannot open).
  const p = spawnSync('sh', ['-c', 'printf "b.example\\na.example\\n" | "$0" "$1" rules import --format plain --vendor x /dev/stdin', process.execPath, BIN], { encoding: 'utf8', timeout: 20_000 })
  t.equal(p.status, 0, p.stderr)
  t.match(p.stdout, /\na\.example\nb\.example\n$/)
})

t.test(`YAML nested past ${MAX_POLICY_DEPTH} levels: file:line and the limit (was: "Maximum call stack size exceeded")`, async (t) => {
  t.same(problems(() => parsePolicy('['.repeat(10000), 'policy.yaml')), [`policy.yaml:1: nesting deeper than ${MAX_POLICY_DEPTH} levels (a policy needs 4)`])
  t.same(problems(() => parsePolicy('default: ' + '['.repeat(10000) + ']'.repeat(10000) + '\n', 'policy.yaml')), [`policy.yaml:1: nesting deeper than ${MAX_POLICY_DEPTH} levels (a policy needs 4)`])
  t.same(problems(() => parsePolicy('vendors: ' + '{a: '.repeat(20000) + 'x' + '}'.repeat(20000) + '\n', 'policy.yaml')), [`policy.yaml:1: nesting deeper than ${MAX_POLICY_DEPTH} levels (a policy needs 4)`])
  // Block sequences, one level per line: the line of the first one too deep.
  const block = 'default:\n' + Array.from({ length: 5000 }, (_, i) => ' '.repeat(i) + '- ').join('\n') + 'x\n'
  t.same(problems(() => parsePolicy(block, 'policy.yaml')), [`policy.yaml:${MAX_POLICY_DEPTH + 1}: nesting deeper than ${MAX_POLICY_DEPTH} levels (a policy needs 4)`])
  // At the limit the document is composed and judged as usual.
  const atLimit = 'default: ' + '['.repeat(MAX_POLICY_DEPTH - 1) + ']'.repeat(MAX_POLICY_DEPTH - 1) + '\n'
  t.match(problems(() => parsePolicy(atLimit, 'policy.yaml')), [/^policy\.yaml:1: default: .* is not an action/])
  // Through the loader from a file, too.
  const dir = tmp(t)
  const f = join(dir, 'policy.yaml')
  writeFileSync(f, '['.repeat(10000))
  t.same(problems(() => loadPolicy(f)), [`${f}:1: nesting deeper than ${MAX_POLICY_DEPTH} levels (a policy needs 4)`])
  t.equal(readFileSync(f, 'utf8').length, 10000)
})
