import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * `aigate rules lint|import` and `check` as an admin runs them (the built
 * CLI, npm test builds first): lint and the commands that load rules agree,
 * because they load through the same validator.
 */
const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))
const aigate = (...args: string[]): { status: number | null, stdout: string, stderr: string } => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
const HEAD = '# vendor: acme\n# title: Acme\n# category: ai\n# source: test\n'

t.test('what lint refuses, check and classify refuse too, with the same file:line (was: bad.. loaded as bad)', async (t) => {
  const dir = t.testdir({ rules: { 'acme.txt': HEAD + 'acme.example\nbad..\ncom\n' }, 'policy.yaml': 'default: allow\n' })
  const rules = join(dir, 'rules')
  const policy = join(dir, 'policy.yaml')
  const expected = `aigate: ${rules}/acme.txt:6: "bad.." would be read as "bad": write "bad" (lower case, punycode, no trailing dot)\n` +
    `aigate: ${rules}/acme.txt:7: "com" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it\n`
  const lint = aigate('rules', 'lint', '--rules', rules, '--policy', policy)
  t.equal(lint.status, 1)
  t.equal(lint.stderr, expected)
  const check = aigate('check', '--rules', rules, '--policy', policy, 'www.bbc.com')
  t.equal(check.status, 1)
  t.equal(check.stderr, expected)
  t.equal(check.stdout, '', 'no decision from rules that do not load')
  const classify = aigate('classify', '--rules', rules, '--policy', policy, join(dir, 'none.pcap'))
  t.equal(classify.status, 1)
  t.equal(classify.stderr, expected)
})

t.test('lint: warnings alone do not fail, and are printed', async (t) => {
  const dir = t.testdir({ rules: { 'acme.txt': '# vendor: acme\n# category: ai\nb.example\na.example\n' }, 'policy.yaml': 'default: allow\n' })
  const r = aigate('rules', 'lint', '--rules', join(dir, 'rules'), '--policy', join(dir, 'policy.yaml'))
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr, `aigate: warning: ${join(dir, 'rules')}/acme.txt:4: not sorted: "a.example" after "b.example"\n` +
    `aigate: warning: ${join(dir, 'rules')}/acme.txt:1: missing "# source:" header (where the entries come from)\n` +
    `aigate: warning: ${join(dir, 'rules')}/acme.txt:1: missing "# title:" header\n`)
  t.equal(r.stdout, `ok: 1 vendor lists, 2 entries, policy ${join(dir, 'policy.yaml')}, 3 warnings\n`)
})

t.test('import --strict: any skipped line exits 1 and prints no list', async (t) => {
  const dir = t.testdir({ 'ab.txt': '! test\n||openai.com^\n||chatgpt.com^$third-party\n' })
  const file = join(dir, 'ab.txt')
  const loose = aigate('rules', 'import', '--vendor', 'acme', file)
  t.equal(loose.status, 0)
  t.match(loose.stdout, /^# vendor: acme\n# title: acme\n# category: ai\n# source: .*ab\.txt \(imported as adblock, told from the content\)\nopenai\.com\n$/)
  t.match(loose.stderr, /ab\.txt:3: skipped "\|\|chatgpt\.com\^\$third-party": modifier \$third-party: /)
  const strict = aigate('rules', 'import', '--strict', '--vendor', 'acme', file)
  t.equal(strict.status, 1)
  t.equal(strict.stdout, '')
  t.match(strict.stderr, /^aigate: .*ab\.txt:3: skipped "\|\|chatgpt\.com\^\$third-party": modifier \$third-party: .*\naigate: .*ab\.txt: 1 line skipped \(--strict\)\n$/)
  writeFileSync(file, '||openai.com^\n')
  t.equal(aigate('rules', 'import', '--strict', '--vendor', 'acme', file).status, 0, 'nothing skipped: exit 0')
})

t.test('import without --format: content that points two ways is a usage error', async (t) => {
  const dir = t.testdir({ 'mixed.txt': '||openai.com^\n0.0.0.0 claude.ai\n' })
  const r = aigate('rules', 'import', '--vendor', 'acme', join(dir, 'mixed.txt'))
  t.equal(r.status, 2)
  t.equal(r.stdout, '')
  t.match(r.stderr, /cannot tell the format from the content \(adblock at line 1, hosts at line 2\); give --format/)
  t.equal(aigate('rules', 'import', '--format', 'adblock', '--vendor', 'acme', join(dir, 'mixed.txt')).status, 0, '--format decides')
})

t.test('the shipped rules lint clean, with no warning', async (t) => {
  const r = aigate('rules', 'lint')
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr, '')
  t.match(r.stdout, /^ok: \d+ vendor lists, \d+ entries, policy .*policy\.example\.yaml\n$/)
})

t.test('the default rules follow an install: <etc>/rules and <etc>/policy.yaml when <etc>/policy.yaml exists', async (t) => {
  // AIGATE_ETC stands for /etc/aigate, so this holds whether or not this machine has aigate installed.
  const dir = t.testdir({
    etc: { rules: { 'acme.txt': HEAD + 'acme.example\n' }, 'policy.yaml': 'default: allow\nvendors:\n  acme: block\n' },
    bare: { rules: { 'acme.txt': HEAD + 'acme.example\n' } },
  })
  const etc = join(dir, 'etc')
  const env = { ...process.env, AIGATE_ETC: etc }
  const run = (...args: string[]): { status: number | null, stdout: string, stderr: string } => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, env })
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  }
  const lint = run('rules', 'lint')
  t.equal(lint.stdout, `ok: 1 vendor lists, 1 entries, policy ${join(etc, 'policy.yaml')}\n`, lint.stderr)
  t.match(run('check', 'www.acme.example').stdout, /^www\.acme\.example\tblock\tacme\t/, 'check uses the installed rules')
  t.match(run('check', '--help').stdout.replace(/\s+/g, ' '), `(default: ${etc}/rules)`, '--help names the installed files')
  // Without <etc>/policy.yaml (a checkout), the shipped files, even when <etc>/rules exists.
  const bare = join(dir, 'bare')
  const r = spawnSync(process.execPath, [BIN, 'rules', 'lint'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, AIGATE_ETC: bare } })
  t.match(r.stdout, /^ok: \d+ vendor lists, \d+ entries, policy .*rules\/policy\.example\.yaml\n$/)
  t.match(run('check', 'www.openai.com').stdout, /^www\.openai\.com\tallow\t-\tno rule/, 'the installed lists replace the shipped ones')
  t.match(spawnSync(process.execPath, [BIN, 'check', '--help'], { encoding: 'utf8', env: { ...process.env, AIGATE_ETC: bare } }).stdout.replace(/\s+/g, ' '),
    `(no ${bare}/policy.yaml: the shipped files)`)
})
