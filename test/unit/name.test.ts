import t from 'tap'
import { parseName, readName, NameOut } from '../../src/name/index.js'

const norm = (s: string): string => {
  const out = new NameOut()
  return parseName(s, out) ? out.name : `!${out.error}`
}

t.test('normalises case, trailing dot and IDN', async (t) => {
  t.equal(norm('API.OpenAI.com'), 'api.openai.com')
  t.equal(norm('claude.ai.'), 'claude.ai')
  t.equal(norm('bücher.example'), 'xn--bcher-kva.example')
  t.equal(norm('ＡＰＩ.example'), 'api.example', 'full-width letters map per UTS #46')
  t.equal(norm('_dmarc.example.com'), '_dmarc.example.com', 'underscore labels are real DNS names')
  t.equal(norm('a'.repeat(63) + '.com'), 'a'.repeat(63) + '.com')
})

t.test('rejects what is not a host name, with the reason', async (t) => {
  t.equal(norm(''), '!empty')
  t.equal(norm('.'), '!empty')
  t.equal(norm('a..b'), '!empty-label')
  t.equal(norm('.a'), '!empty-label')
  t.equal(norm('a.b..'), '!empty-label')
  t.equal(norm('a'.repeat(64) + '.com'), '!label-too-long')
  t.equal(norm(('a'.repeat(63) + '.').repeat(4) + 'com'), '!too-long')
  t.equal(norm('-a.com'), '!hyphen-edge')
  t.equal(norm('a-.com'), '!hyphen-edge')
  t.equal(norm('a b.com'), '!bad-char')
  t.equal(norm('a\u0000b.com'), '!bad-char')
  t.equal(norm('evil.com\nX-Injected: 1'), '!bad-char', 'a newline never reaches a log line')
  t.equal(norm('10.0.0.1'), '!ip-literal')
  t.equal(norm('[::1]'), '!bad-char')
})

t.test('reads wire bytes in place and rejects invalid UTF-8', async (t) => {
  const out = new NameOut()
  const buf = Buffer.from('xxWWW.Example.COMyy', 'latin1')
  t.ok(readName(buf, 2, 17, out))
  t.equal(out.name, 'www.example.com')
  t.notOk(readName(Buffer.from([0x61, 0xff, 0xfe, 0x2e, 0x63, 0x6f]), 0, 6, out))
  t.equal(out.error, 'bad-idn')
})
