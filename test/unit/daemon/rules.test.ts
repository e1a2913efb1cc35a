import t, { type Test } from 'tap'
import { Worker } from 'node:worker_threads'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadRules, compileRules, PACKAGE_ROOT, type RuleTexts } from '../../../src/config/index.js'
import { ConfigError } from '../../../src/config/lists.js'
import { newWriteLock } from '../../../src/log/index.js'
import type { FromWorker, WorkerConfig } from '../../../src/daemon/worker.js'

/**
 * The rule files are read once, by the daemon's main thread, at start and per
 * SIGHUP; the workers compile the texts that were checked, never the files
 * (which may have changed since). test/e2e/daemon-rules.test.ts counts the
 * opens of the real daemon; here the worker thread is started directly.
 */

/** The built worker, as `aigate run` starts it (npm test builds first). */
const WORKER = join(PACKAGE_ROOT, 'dist', 'src', 'daemon', 'worker.js')
const LIST = '# vendor: acme\n# category: ai\nacme.example\n'
/** Line 4 is not a pattern. */
const BAD_LIST = '# vendor: acme\n# category: ai\nacme.example\nbad name\n'
const POLICY = 'default: allow\nvendors: {acme: block}\nallow: [ok.acme.example]\n'

const files = (t: Test): { dir: string, list: string, policy: string } => {
  const dir = t.testdir({ vendors: { 'acme.txt': LIST }, 'policy.yaml': POLICY })
  return { dir, list: join(dir, 'vendors', 'acme.txt'), policy: join(dir, 'policy.yaml') }
}

const problems = (f: () => unknown): readonly string[] => {
  try {
    f()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('loadRules returns exactly the texts it checked; compileRules builds the same rules from them and opens no file', async (t) => {
  const { dir, list, policy } = files(t)
  const { ruleset, texts } = loadRules(join(dir, 'vendors'), policy)
  t.same(texts, { lists: [{ file: list, text: LIST }], policy: { file: policy, text: POLICY } })
  t.ok(Object.isFrozen(texts) && Object.isFrozen(texts.lists) && Object.isFrozen(texts.policy), 'the checked texts cannot be changed')
  rmSync(dir, { recursive: true })
  const again = compileRules(texts)
  t.same(again.lists, ruleset.lists)
  t.equal(again.matcher.size, ruleset.matcher.size)
  t.equal(again.matcher.lookup('api.acme.example')?.source, `${list}:3`)
  t.equal(again.matcher.lookup('ok.acme.example')?.exception, true, 'the allow-exception')
  // Texts that were never checked are refused with the same file:line as a file would be.
  const bad: RuleTexts = { ...texts, lists: [{ file: list, text: BAD_LIST }] }
  t.same(problems(() => compileRules(bad)), [`${list}:4: one pattern per line, got "bad name"`])
})

t.test('allow patterns are parsed once, by the policy loader, and a bad one is reported at file:line', async (t) => {
  const { dir, policy } = files(t)
  const { ruleset } = loadRules(join(dir, 'vendors'), policy)
  t.same(ruleset.policy.input.allow.map((p) => p.text), ['ok.acme.example'], 'the policy input holds the parsed patterns')
  writeFileSync(policy, 'default: allow\nallow:\n  - ok.acme.example\n  - "bad name"\n')
  const p = problems(() => loadRules(join(dir, 'vendors'), policy))
  t.equal(p.length, 1)
  t.match(p[0], new RegExp(`^${policy.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: allow: `))
})

/** Starts the worker thread with the texts `rules` and returns its first message. */
const firstMessage = async (t: Test, rules: RuleTexts, log: string): Promise<FromWorker> => {
  // 65536 is past the last queue number: the worker compiles its rules, then
  // the queue refuses the number before any socket is opened (no root needed).
  const cfg: WorkerConfig = { queue: 65536, rules, cacheSize: 16, log, failOpen: false, logLock: newWriteLock() }
  const w = new Worker(WORKER, { workerData: cfg })
  t.teardown(() => w.terminate())
  return await new Promise<FromWorker>((resolve, reject) => {
    w.once('message', resolve)
    w.once('error', reject)
  })
}

t.test('a worker runs the texts the main thread checked, not the files as they are when it starts', async (t) => {
  const { dir, list, policy } = files(t)
  const log = join(dir, 'log.ndjson')
  const { texts } = loadRules(join(dir, 'vendors'), policy)
  // The file changes between the check and the worker's start: a bad line.
  writeFileSync(list, BAD_LIST)
  const m = await firstMessage(t, texts, log)
  t.match(m, { type: 'error', code: 'EINVAL' }, 'the checked rules compiled; only the queue number was refused')
  t.match((m as { message: string }).message, /queue number/)
  t.notMatch((m as { message: string }).message, /acme\.txt/, 'the bad file on disk was not read')

  // The other way round: good files on disk, a bad text. The worker reports the text's line.
  writeFileSync(list, LIST)
  const bad = await firstMessage(t, { ...texts, lists: [{ file: list, text: BAD_LIST }] }, log)
  t.same(bad, { type: 'error', queue: 65536, code: 'ECONFIG', message: `${list}:4: one pattern per line, got "bad name"` })
})
