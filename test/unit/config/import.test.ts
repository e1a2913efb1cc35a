import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { importList } from '../../../src/config/import.js'

t.test('plain and hosts', async (t) => {
  t.same(importList('# c\nOpenAI.com\nclaude.ai.  # trailing\n\nbad name\n', 'plain').entries, ['claude.ai', 'openai.com'])
  const h = importList('127.0.0.1 localhost\n0.0.0.0 api.openai.com chatgpt.com # x\n::1 ip6-localhost\n', 'hosts')
  t.same(h.entries, ['=api.openai.com', '=chatgpt.com'], 'hosts entries are exact names')
})

t.test('adblock: ||domain^, exceptions, and what cannot be imported', async (t) => {
  const r = importList('! title\n[Adblock Plus 2.0]\n||openai.com^\n@@||help.openai.com^\n||claude.ai^$important\n||x.com/path^\n/regex/\n||*.foo.com^\n', 'adblock')
  t.same(r.entries, ['*.foo.com', 'claude.ai', 'openai.com'], 'AdGuard ||*.x^ (the subdomains of x) is *.x')
  t.same(r.exceptions, ['help.openai.com'])
  t.same(r.skipped.map((s) => s.line), [6, 7])
})

t.test('v2fly: domain, full, include with attributes, @ads skipped, regexp reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-v2fly-'))
  writeFileSync(join(dir, 'openai'), 'openai.com\nfull:cdn.openai.com\nfull:o1.ingest.sentry.io @ads\nregexp:^chatgpt-\\d+\\.example$\nkeyword:openai\ninclude:sub\n')
  writeFileSync(join(dir, 'sub'), 'domain:sora.com @cn\nloop.example\ninclude:openai\n')
  const r = importList('include:openai\n', 'v2fly', { includeDir: dir })
  t.same(r.entries, ['=cdn.openai.com', 'loop.example', 'openai.com', 'sora.com'])
  t.same(r.skipped.map((s) => s.reason.split(' ')[0]).sort(), ['include', 'keyword:', 'regexp:', 'tagged'])
  const filtered = importList('include:sub @cn\n', 'v2fly', { includeDir: dir })
  t.same(filtered.entries, ['sora.com'], 'include:name @attr keeps only entries with that attribute')
  const keep = importList('full:o1.ingest.sentry.io @ads\n', 'v2fly', { keepAds: true })
  t.same(keep.entries, ['=o1.ingest.sentry.io'])
})

t.test('v2fly: include: stays inside the include directory', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'aigate-v2fly-jail-'))
  const dir = join(root, 'data')
  mkdirSync(dir)
  writeFileSync(join(root, 'outside'), 'secret.example\n')
  writeFileSync(join(dir, 'inside'), 'ok.example\n')
  symlinkSync(join(root, 'outside'), join(dir, 'link-out'))
  symlinkSync(join(dir, 'inside'), join(dir, 'link-in'))
  const r = importList(`include:../outside\ninclude:${join(root, 'outside')}\ninclude:link-out\ninclude:sub/../../outside\ninclude:link-in\n`, 'v2fly', { includeDir: dir })
  t.same(r.entries, ['ok.example'], 'only the file inside, also through a symlink that stays inside')
  t.same(r.skipped.map((s) => [s.line, s.reason]), [1, 2, 3, 4].map((l) => [l, 'include: must name a file inside --include-dir']))
  t.notOk(r.skipped.some((s) => s.text.includes('secret')), 'nothing of the outside file is read')
})

t.test('v2fly: the top file is on the include stack, so including it back adds nothing twice', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-v2fly-top-'))
  writeFileSync(join(dir, 'main'), 'main.example\ninclude:sub\n')
  writeFileSync(join(dir, 'sub'), 'sub.example\ninclude:main\n')
  const file = join(dir, 'main')
  const r = importList(readFileSync(file, 'utf8'), 'v2fly', { includeDir: dir, file })
  t.same(r.entries, ['main.example', 'sub.example'])
  t.same(r.skipped.map((s) => [s.file, s.line, s.reason]), [[join(dir, 'sub'), 2, 'include cycle or too deep']])
})
