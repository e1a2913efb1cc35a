import t from 'tap'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadLists, parseList } from '../../../src/config/lists.js'

/** config/lists.ts: a vendor list file read into checked entries, problems with file:line. */

t.test('a list file that starts with a UTF-8 byte order mark reads as without it', async (t) => {
  const problems: string[] = []
  const warnings: string[] = []
  const l = parseList('\ufeff# vendor: acme\n# title: Acme\n# category: ai\n# source: test\nacme.example\n', 'rules/acme.txt', problems, warnings)
  t.same(problems, [])
  t.same(warnings, [])
  t.equal(l.vendor, 'acme')
  t.same(l.entries.map((e) => e.pattern.text), ['acme.example'])
  parseList('\ufeff\ufeff# vendor: acme\n# category: ai\n', 'rules/acme.txt', problems)
  t.match(problems, [/acme\.txt:1: missing "# vendor: acme" header/], 'only one mark is taken away')
})

t.test('a directory named like a list is a problem that names its path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-rules-dir-'))
  mkdirSync(join(dir, 'd.txt'))
  writeFileSync(join(dir, 'acme.txt'), '# vendor: acme\n# category: ai\nacme.example\n')
  const err = t.throws(() => loadLists(dir)) as unknown as ConfigError
  t.ok(err instanceof ConfigError)
  t.same(err.problems, [`${join(dir, 'd.txt')}: cannot read list: is a directory`])
})
