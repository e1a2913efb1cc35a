import t from 'tap'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../../src/config/lists.js'
import { DEFAULT_POLICY, DEFAULT_RULES_DIR, PACKAGE_ROOT, loadRules } from '../../../src/config/index.js'
import { detectFormat, importList } from '../../../src/config/import.js'

/**
 * Issue 12: importing v2fly's `category-ai-!cn` beside the shipped lists
 * moved chatgpt.com from `openai` to the new list, and `vendors: openai:
 * block` silently stopped applying. Now the loader refuses the pair and names
 * both lines. Fixture: test/fixtures/v2fly (see its SOURCES.md).
 */
const DATA = join(PACKAGE_ROOT, 'test', 'fixtures', 'v2fly', 'data')
const TOP = join(DATA, 'category-ai-!cn')

t.test('v2fly category-ai-!cn beside the shipped lists: every shared name is reported with both file:line', async (t) => {
  const text = readFileSync(TOP, 'utf8')
  t.same(detectFormat(text), { format: 'v2fly' }, 'include: lines make it v2fly')
  const r = importList(text, 'v2fly', { file: TOP, includeDir: DATA })
  t.ok(r.entries.includes('chatgpt.com'), 'chatgpt.com comes in through include:openai')
  // The vendor-owned suffixes v2fly lists are skipped with the reason, not imported unmarked.
  t.ok(r.skipped.some((s) => s.text === 'hf.space' && /public suffix/.test(s.reason)))

  const dir = mkdtempSync(join(tmpdir(), 'aigate-v2fly-beside-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const f of readdirSync(DEFAULT_RULES_DIR)) copyFileSync(join(DEFAULT_RULES_DIR, f), join(dir, f))
  // `category-ai.txt` sorts before `openai.txt`: loaded first, it used to take chatgpt.com.
  writeFileSync(join(dir, 'category-ai.txt'), ['# vendor: category-ai', '# title: v2fly category-ai-!cn', '# category: ai', '# source: test fixture', ...r.entries].join('\n') + '\n')
  const err = t.throws(() => loadRules(dir, DEFAULT_POLICY)) as unknown as ConfigError
  t.ok(err instanceof ConfigError)
  const listed = readFileSync(join(dir, 'category-ai.txt'), 'utf8').split('\n')
  const lineOf = (file: string, entry: string): number => (file === 'category-ai.txt' ? listed : readFileSync(join(dir, file), 'utf8').split('\n'))
    .findIndex((l) => l.split(/\s/)[0] === entry) + 1
  const expect = (name: string, vendorFile: string, entry = name): void => {
    const a = lineOf('category-ai.txt', name)
    const b = lineOf(vendorFile, entry)
    t.ok(a > 0 && b > 0, `${name} is in both files`)
    t.ok(err.problems.some((p) => p.includes(`"${name}" is covered by two vendor lists`) &&
      p.includes(`${join(dir, 'category-ai.txt')}:${a}`) && p.includes(`${join(dir, vendorFile)}:${b}`)), `${name}: category-ai.txt:${a} and ${vendorFile}:${b}`)
  }
  expect('chatgpt.com', 'openai.txt')
  expect('openai.com', 'openai.txt')
  expect('claude.ai', 'anthropic.txt')
  expect('anthropic.com', 'anthropic.txt')
  expect('perplexity.ai', 'perplexity.txt')
  expect('mistral.ai', 'mistral.txt')
  t.ok(err.problems.every((p) => p.includes('is covered by two vendor lists')), 'overlaps are the only problems: the import itself loads')
  t.ok(err.problems.length >= 30, `${err.problems.length} names reported`)

  // Without the shipped lists beside it the imported list loads on its own.
  const alone = mkdtempSync(join(tmpdir(), 'aigate-v2fly-alone-'))
  t.teardown(() => rmSync(alone, { recursive: true, force: true }))
  copyFileSync(join(dir, 'category-ai.txt'), join(alone, 'category-ai.txt'))
  const policy = join(alone, 'policy.yaml')
  writeFileSync(policy, 'default: allow\ncategories: {ai: monitor}\n')
  t.equal(loadRules(alone, policy).ruleset.lists.length, 1)
})
