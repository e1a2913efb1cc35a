import t from 'tap'
import { parsePattern, isPatternError } from '../../../src/match/pattern.js'
import { rule, matcherOf } from '../../helpers/rules.js'

const hit = (m: ReturnType<typeof matcherOf>, name: string): string | null => m.lookup(name)?.pattern.text ?? null

t.test('a plain entry is the name and all its subdomains', async (t) => {
  const m = matcherOf(rule('openai.com'))
  t.equal(hit(m, 'openai.com'), 'openai.com')
  t.equal(hit(m, 'api.openai.com'), 'openai.com')
  t.equal(hit(m, 'a.b.c.openai.com'), 'openai.com')
  t.equal(hit(m, 'notopenai.com'), null, 'a label boundary, not a suffix of characters')
  t.equal(hit(m, 'openai.com.evil.example'), null)
  t.equal(hit(m, 'com'), null)
})

t.test('=name is exactly that name', async (t) => {
  const m = matcherOf(rule('=api.example.com'))
  t.equal(hit(m, 'api.example.com'), '=api.example.com')
  t.equal(hit(m, 'x.api.example.com'), null)
  t.equal(hit(m, 'example.com'), null)
})

t.test('* is exactly one label, anywhere', async (t) => {
  const m = matcherOf(rule('bedrock-runtime.*.amazonaws.com'), rule('*.openai.azure.com'))
  t.equal(hit(m, 'bedrock-runtime.us-east-1.amazonaws.com'), 'bedrock-runtime.*.amazonaws.com')
  t.equal(hit(m, 'bedrock-runtime.amazonaws.com'), null, '* needs a label')
  t.equal(hit(m, 'bedrock-runtime.a.b.amazonaws.com'), null, '* is one label, not two')
  t.equal(hit(m, 'myres.openai.azure.com'), '*.openai.azure.com')
  t.equal(hit(m, 'deep.myres.openai.azure.com'), '*.openai.azure.com', 'and its subdomains')
  t.equal(hit(m, 'openai.azure.com'), null)
})

t.test('a glob inside one label', async (t) => {
  const m = matcherOf(rule('*-aiplatform.googleapis.com'), rule('chatgpt-async-*.webpubsub.azure.com'))
  t.equal(hit(m, 'us-central1-aiplatform.googleapis.com'), '*-aiplatform.googleapis.com')
  t.equal(hit(m, 'aiplatform.googleapis.com'), null, 'the glob part needs its "-"')
  t.equal(hit(m, '-aiplatform.googleapis.com'), '*-aiplatform.googleapis.com', '* may match an empty run inside the label')
  t.equal(hit(m, 'x.y-aiplatform.googleapis.com'), '*-aiplatform.googleapis.com')
  t.equal(hit(m, 'storage.googleapis.com'), null)
  t.equal(hit(m, 'chatgpt-async-webps-prod-x-1.webpubsub.azure.com'), 'chatgpt-async-*.webpubsub.azure.com')
  t.equal(hit(m, 'other.webpubsub.azure.com'), null)
})

t.test('precedence: exception beats everything, then the longer match, then exact, then literal over glob over *', async (t) => {
  const m = matcherOf(
    rule('corp.example', 'blocker'),
    rule('internal-llm.corp.example', null, true),
    rule('example.com', 'a'),
    rule('api.example.com', 'b'),
    rule('=api.example.com', 'c'),
    rule('*.example.org', 'wild'),
    rule('x*.example.org', 'glob'),
    rule('xy.example.org', 'lit'),
  )
  t.equal(m.lookup('internal-llm.corp.example')?.exception, true)
  t.equal(m.lookup('a.internal-llm.corp.example')?.exception, true)
  t.equal(m.lookup('other.corp.example')?.vendor, 'blocker')
  t.equal(m.lookup('x.example.com')?.vendor, 'a')
  t.equal(m.lookup('v1.api.example.com')?.vendor, 'b')
  t.equal(m.lookup('api.example.com')?.vendor, 'c')
  t.equal(m.lookup('xy.example.org')?.vendor, 'lit')
  t.equal(m.lookup('xz.example.org')?.vendor, 'glob')
  t.equal(m.lookup('zz.example.org')?.vendor, 'wild')
})

t.test('an exception that is wider than the block still wins', async (t) => {
  const m = matcherOf(rule('=api.corp.example', 'blocker'), rule('corp.example', null, true))
  t.equal(m.lookup('api.corp.example')?.exception, true)
})

t.test('hash collisions do not confuse labels', async (t) => {
  // Many sibling labels under one parent: every one must find itself only.
  const rules = Array.from({ length: 5000 }, (_, i) => rule(`l${i}.example`, `v${i}`))
  const m = matcherOf(...rules)
  for (let i = 0; i < 5000; i += 97) t.equal(m.lookup(`l${i}.example`)?.vendor, `v${i}`)
  t.equal(m.lookup('l5000.example'), null)
  t.equal(m.size, 5000)
})

t.test('pattern syntax errors are reported', async (t) => {
  const err = (s: string): string => { const p = parsePattern(s); return isPatternError(p) ? p.error : 'ok' }
  t.equal(err('Example.COM.'), 'ok')
  t.match(err(''), /empty/)
  t.match(err('a..b'), /invalid/)
  t.match(err('a**b.com'), /at most one \*/)
  t.match(err('*.*'), /no literal label/)
  t.match(err('openai.*'), /too broad/)
  t.match(err('*.com'), /too broad/)
  t.match(err('exa mple.com'), /invalid/)
  const p = parsePattern('=BÜCHER.example')
  t.equal(isPatternError(p) ? p.error : p.text, '=xn--bcher-kva.example')
})
