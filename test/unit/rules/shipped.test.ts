import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadRules, loadRuleset, PACKAGE_ROOT } from '../../../src/config/index.js'
import { Classifier } from '../../../src/classify/index.js'
import { parseName, NameOut, type Name } from '../../../src/name/index.js'

/**
 * The shipped lists and policy: they lint clean, AI names reach their vendor,
 * and popular non-AI names (shared services and look-alikes included) come
 * out `allow` with the shipped policy.
 */
const dataFile = (f: string): string[] => readFileSync(join(PACKAGE_ROOT, 'test', 'data', f), 'utf8')
  .split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter((l) => l !== '')

const classifier = new Classifier(loadRuleset())
const decide = (name: string) => {
  const out = new NameOut()
  if (!parseName(name, out)) throw new Error(`bad test name ${name}: ${out.error}`)
  return classifier.decide(out.name as Name, 0)
}

t.test('the shipped lists and policy pass the loader every command uses, with no warning', async (t) => {
  const { ruleset, warnings } = loadRules()
  t.same(warnings, [], 'sorted, no repeats, title and source headers')
  const lists = ruleset.lists
  t.ok(lists.length >= 25, `${lists.length} vendor lists`)
  for (const l of lists) {
    t.ok(l.sources.length > 0, `${l.vendor} says where its entries come from`)
    t.ok(l.entries.length > 0, `${l.vendor} has entries`)
  }
  const required = ['anthropic', 'openai', 'google-gemini', 'google-vertex', 'microsoft-copilot', 'azure-openai', 'github-copilot',
    'aws-bedrock', 'meta-ai', 'mistral', 'perplexity', 'xai', 'deepseek', 'alibaba-qwen', 'moonshot-kimi', 'bytedance-doubao',
    'baidu-ernie', 'zhipu-glm', 'cohere', 'huggingface', 'poe', 'character-ai', 'cursor', 'codeium-windsurf', 'tabnine',
    'replicate', 'openrouter', 'groq', 'together']
  const have = new Set(lists.map((l) => l.vendor))
  for (const v of required) t.ok(have.has(v), `list for ${v}`)
})

t.test('AI names reach their vendor; the shipped policy blocks Anthropic and monitors the rest', async (t) => {
  const lines = dataFile('ai-names.txt')
  t.ok(lines.length >= 80)
  for (const line of lines) {
    const [name, vendor] = line.split(/\s+/) as [string, string]
    const d = decide(name)
    t.equal(d.vendor, vendor, `${name} -> ${vendor}`)
    t.equal(d.action, vendor === 'anthropic' ? 'block' : 'monitor', `${name} action`)
  }
})

t.test('popular non-AI names, shared services and look-alikes are allowed', async (t) => {
  const names = dataFile('non-ai-names.txt')
  t.ok(names.length >= 200, `${names.length} names`)
  for (const name of names) {
    const d = decide(name)
    t.equal(d.action, 'allow', `${name} allowed`)
    t.equal(d.vendor, null, `${name} matches no vendor (got ${d.vendor} by ${d.rule})`)
  }
  for (const n of ['gemini.com', 'sentry.io', 'intercom.io', 'myaccount.blob.core.windows.net']) t.ok(names.includes(n), `${n} is in the list`)
})
