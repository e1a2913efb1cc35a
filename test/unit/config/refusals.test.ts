import t from 'tap'
import { ConfigError, parseLists, parseList } from '../../../src/config/lists.js'
import { parsePolicy, cidrError } from '../../../src/config/policy.js'
import { compileRules, loadRules } from '../../../src/config/index.js'
import { checkEntry, publicSuffix } from '../../../src/config/entry.js'
import { commonName } from '../../../src/config/overlap.js'
import { parsePattern, type Pattern } from '../../../src/match/pattern.js'

/**
 * Issue 12, item 5: each refusal of the one validator, one test each, with
 * the file:line the message must carry. Every loader (lint, check, classify,
 * run, reload, the workers) goes through config/index.ts, so a refusal here
 * is a refusal everywhere.
 */

const HEAD = '# vendor: acme\n# title: Acme\n# category: ai\n# source: test\n'

/** Problems of one list file acme.txt (the header takes lines 1-4, so the first entry is line 5). */
const listProblems = (body: string): string[] => {
  const problems: string[] = []
  parseList(HEAD + body, 'rules/acme.txt', problems)
  return problems
}

const policyProblems = (yaml: string): string[] => {
  try {
    parsePolicy(yaml, 'p.yaml', { vendors: new Set(['acme']), categories: new Set(['ai']) })
    return []
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
}

t.test('bad.. is refused by every loader, not loaded as "bad" (was: lint-only strict check)', async (t) => {
  t.same(listProblems('acme.example\nbad..\n'), ['rules/acme.txt:6: "bad.." would be read as "bad": write "bad" (lower case, punycode, no trailing dot)'])
  // The workers compile the texts the main thread read; they refuse the same line.
  const texts = { lists: [{ file: 'rules/acme.txt', text: HEAD + 'acme.example\nbad..\n' }], policy: { file: 'p.yaml', text: 'default: allow\n' } }
  const err = t.throws(() => compileRules(texts)) as unknown as ConfigError
  t.same(err.problems, ['rules/acme.txt:6: "bad.." would be read as "bad": write "bad" (lower case, punycode, no trailing dot)'])
})

t.test('an entry the normaliser would rewrite: upper case, trailing dot, IDN not in punycode', async (t) => {
  t.same(listProblems('OpenAI.example\n'), ['rules/acme.txt:5: "OpenAI.example" would be read as "openai.example": write "openai.example" (lower case, punycode, no trailing dot)'])
  t.same(listProblems('acme.example.\n'), ['rules/acme.txt:5: "acme.example." would be read as "acme.example": write "acme.example" (lower case, punycode, no trailing dot)'])
  t.same(listProblems('bücher.example\n'), ['rules/acme.txt:5: "bücher.example" would be read as "xn--bcher-kva.example": write "xn--bcher-kva.example" (lower case, punycode, no trailing dot)'])
})

t.test('a bare TLD is refused (was: `com` linted clean and then matched all of .com)', async (t) => {
  t.same(listProblems('com\n'), ['rules/acme.txt:5: "com" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it'])
  // A TLD the list does not know is still one label: refused the same way.
  t.same(listProblems('corp\n'), ['rules/acme.txt:5: "corp" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it'])
})

t.test('an ICANN public suffix of two labels is refused, even when marked', async (t) => {
  t.same(listProblems('co.uk\n'), ['rules/acme.txt:5: "co.uk" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it'])
  t.same(listProblems('co.uk  # public-suffix: no mark makes a TLD one vendor\'s\n'), ['rules/acme.txt:5: "co.uk" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it'])
})

t.test('a private-section public suffix (github.io) is refused unless the line says why the vendor owns it', async (t) => {
  t.same(listProblems('github.io\n'), ['rules/acme.txt:5: "github.io" is a public suffix (PSL private section: the names under it belong to different owners); if the vendor owns the whole suffix, say so after the entry: "# public-suffix: <why>"'])
  t.same(listProblems('hf.space  # public-suffix: the vendor\'s own Spaces domain\n'), [])
  t.same(listProblems('hf.space  # public-suffix:\n'), ['rules/acme.txt:5: "# public-suffix:" needs the reason the whole suffix is the vendor\'s'])
})

t.test('a wildcard that stands for the label in front of a public suffix is refused', async (t) => {
  // `*-ai.co.uk` passes the pattern syntax (no wildcard in the last two labels) but takes every such .co.uk registration.
  t.same(listProblems('*-ai.co.uk\n'), ['rules/acme.txt:5: "*-ai.co.uk": the wildcard stands for the label in front of the public suffix "co.uk", so it matches names of many owners'])
  t.same(listProblems('*.github.io\n'), ['rules/acme.txt:5: "*.github.io": the wildcard stands for the label in front of the public suffix "github.io", so it matches names of many owners; if the vendor owns the whole suffix, say so after the entry: "# public-suffix: <why>"'])
  t.same(listProblems('*-aiplatform.googleapis.com  # public-suffix: googleapis.com is the vendor\'s own\n'), [])
  t.same(listProblems('bedrock-runtime.*.amazonaws.com\n'), [], 'amazonaws.com itself is no suffix: the * is a region label')
})

t.test('an exact entry may name a public suffix only where the line marks it as the vendor\'s host', async (t) => {
  t.same(listProblems('=github.io\n'), ['rules/acme.txt:5: "=github.io" names the public suffix "github.io"; an exact entry may name one only where a vendor serves from that host: mark it "# public-suffix: <why>"'])
  t.same(listProblems('=com\n'), ['rules/acme.txt:5: "=com" names the public suffix "com"; an exact entry may name one only where a vendor serves from that host: mark it "# public-suffix: <why>"'])
  t.same(listProblems('=ai.studio  # public-suffix: the studio itself is served at ai.studio\n'), [])
})

t.test('a mark on an entry that is no public suffix is a warning, not a refusal', async (t) => {
  const problems: string[] = []
  const warnings: string[] = []
  parseList(HEAD + 'acme.example  # public-suffix: not one\n', 'rules/acme.txt', problems, warnings)
  t.same(problems, [])
  t.same(warnings, ['rules/acme.txt:5: "acme.example" is not a public suffix: the "# public-suffix:" mark is not needed'])
})

t.test('a name covered by two vendor lists is an error naming both file:line', async (t) => {
  const a = { file: 'rules/a.txt', text: '# vendor: a\n# title: A\n# category: ai\n# source: t\nchatgpt.com\n' }
  const b = { file: 'rules/b.txt', text: '# vendor: b\n# title: B\n# category: ai\n# source: t\n=api.x.example\nchatgpt.com\n' }
  const problems: string[] = []
  parseLists([a, b], problems)
  t.same(problems, ['rules/b.txt:6: "chatgpt.com" is covered by two vendor lists: "chatgpt.com" here (b) and "chatgpt.com" at rules/a.txt:5 (a); ' +
    'a name belongs to one list, or the vendor a decision reports depends on which lists are loaded'])
})

t.test('overlap is not only the same text: a subtree, an exact name under it, a wildcard', async (t) => {
  const a = { file: 'rules/a.txt', text: '# vendor: a\n# title: A\n# category: ai\n# source: t\nanthropic.com\nbedrock-runtime.*.amazonaws.com\n' }
  const b = { file: 'rules/b.txt', text: '# vendor: b\n# title: B\n# category: ai\n# source: t\n=api.anthropic.com\n=bedrock-runtime.us-east-1.amazonaws.com\n=other.amazonaws.com\n' }
  const problems: string[] = []
  parseLists([a, b], problems)
  t.match(problems, [
    /^rules\/b\.txt:5: "api\.anthropic\.com" is covered by two vendor lists: "=api\.anthropic\.com" here \(b\) and "anthropic\.com" at rules\/a\.txt:5 \(a\)/,
    /^rules\/b\.txt:6: "bedrock-runtime\.us-east-1\.amazonaws\.com" is covered by two vendor lists: .* at rules\/a\.txt:6 \(a\)/,
  ])
  t.equal(problems.length, 2, '=other.amazonaws.com overlaps nothing (a subtree other.amazonaws.com would: bedrock-runtime.other.amazonaws.com)')
})

t.test('commonName: the overlap test of two patterns', async (t) => {
  const p = (s: string): Pattern => parsePattern(s) as Pattern
  t.equal(commonName(p('openai.com'), p('openai.com')), 'openai.com')
  t.equal(commonName(p('openai.com'), p('=api.openai.com')), 'api.openai.com')
  t.equal(commonName(p('=openai.com'), p('api.openai.com')), null, 'an exact name is not under a longer subtree')
  t.equal(commonName(p('=a.openai.com'), p('=b.openai.com')), null)
  t.equal(commonName(p('*-aiplatform.googleapis.com'), p('us-*.googleapis.com')), 'us--aiplatform.googleapis.com', 'both prefixes, both suffixes')
  t.equal(commonName(p('*-aiplatform.googleapis.com'), p('*-run.googleapis.com')), null)
  t.equal(commonName(p('x.*.example.com'), p('=x.y.example.com')), 'x.y.example.com')
  t.equal(commonName(p('x.*.example.com'), p('y.z.example.com')), null)
})

t.test('policy: a missing default: is an error at line 1', async (t) => {
  t.same(policyProblems('vendors: {acme: block}\n'), ['p.yaml:1: missing "default:" (the action for names no list matches: allow, monitor, block, reject)'])
})

t.test('policy: 10.020.0.0/16 is refused (a leading zero is octal to some tools)', async (t) => {
  t.same(policyProblems('default: allow\nnetworks:\n  - name: lab\n    cidrs:\n      - 10.020.0.0/16\n'),
    ['p.yaml:5: networks[0].cidrs: "10.020.0.0/16": an octet with a leading zero is ambiguous (octal to some tools, decimal to others); write it without'])
})

t.test('policy: a prefix length with a leading zero is refused', async (t) => {
  t.same(policyProblems('default: allow\nnetworks:\n  - name: lab\n    cidrs: [10.20.0.0/016]\n'), ['p.yaml:4: networks[0].cidrs: "10.20.0.0/016": the prefix length "/016" has a leading zero'])
})

t.test('policy: host bits under the prefix are refused, with the network named', async (t) => {
  t.same(policyProblems('default: allow\nnetworks:\n  - name: lab\n    cidrs: [10.20.1.0/16]\n'), ['p.yaml:4: networks[0].cidrs: "10.20.1.0/16" has host bits set: the network is 10.20.0.0/16'])
  t.same(policyProblems('default: allow\nnetworks:\n  - name: lab\n    cidrs: ["fd00:20::1/32"]\n'), ['p.yaml:4: networks[0].cidrs: "fd00:20::1/32" has host bits set under /32'])
  t.equal(cidrError('10.0.0.0/8'), null)
  t.equal(cidrError('0.0.0.0/0'), null)
  t.equal(cidrError('fd00:0020::/32'), null, 'IPv6 groups may keep leading zeros: they are hexadecimal everywhere')
  t.equal(cidrError('192.168.7.9'), null, 'one address')
})

t.test('policy: an allow-exception gets the list entry check (no public suffix, no rewrite)', async (t) => {
  t.same(policyProblems('default: block\nallow:\n  - com\n'), ['p.yaml:3: allow: "com" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it'])
  t.same(policyProblems('default: block\nallow:\n  - github.io\n'), ['p.yaml:3: allow: "github.io" is a public suffix (PSL private section: the names under it belong to different owners); an allow-exception cannot name one'])
  t.same(policyProblems('default: block\nallow:\n  - Internal.Corp.Example\n'), ['p.yaml:3: allow: "Internal.Corp.Example" would be read as "internal.corp.example": write "internal.corp.example" (lower case, punycode, no trailing dot)'])
})

t.test('the list and the policy problems come out of one load together', async (t) => {
  const dir = t.testdir({ vendors: { 'acme.txt': HEAD + 'com\n' }, 'policy.yaml': 'vendors: {acme: block}\n' })
  const warnings: string[] = []
  const err = t.throws(() => loadRules(`${dir}/vendors`, `${dir}/policy.yaml`, warnings)) as unknown as ConfigError
  t.same(err.problems, [
    `${dir}/vendors/acme.txt:5: "com" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it`,
    `${dir}/policy.yaml:1: missing "default:" (the action for names no list matches: allow, monitor, block, reject)`,
  ])
  t.same(warnings, [])
})

t.test('publicSuffix and checkEntry, directly', async (t) => {
  t.same(publicSuffix('com'), { kind: 'icann' })
  t.same(publicSuffix('co.uk'), { kind: 'icann' })
  t.same(publicSuffix('github.io'), { kind: 'private' })
  t.equal(publicSuffix('openai.com'), null)
  t.match(checkEntry('openai.com'), { text: 'openai.com', exact: false })
  t.match(checkEntry('=openai.com'), { text: '=openai.com', exact: true })
})
