import t from 'tap'
import { parseName, readName, NameOut } from '../../../src/name/index.js'

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

t.test('names read again come back as the same string: right under case changes and slot collisions, no allocation', async (t) => {
  const { getHeapSpaceStatistics } = await import('node:v8')
  const out = new NameOut()
  const read = (s: string): string => {
    const b = Buffer.from(s, 'latin1')
    return readName(b, 0, b.length, out) ? out.name : `!${out.error}`
  }
  // 20k distinct names through 4096 slots: every slot is taken over many
  // times, and each read must still give its own name, lower-cased.
  let wrong = 0
  for (let i = 0; i < 20000; i++) {
    const name = `host${i}.Example.COM`
    if (read(name) !== name.toLowerCase()) wrong++
    if (i % 7 === 0 && read(`HOST${i >> 1}.example.com`) !== `host${i >> 1}.example.com`) wrong++
  }
  t.equal(wrong, 0, 'every read gave its own name')
  t.equal(read('WWW.Example.com'), 'www.example.com')
  t.equal(read('www.example.com'), 'www.example.com', 'the lower-case spelling after the mixed one')
  t.equal(read('www.example.co'), 'www.example.co', 'a prefix of a stored name is another name')

  const wire = Buffer.from('xxapi.openai.comxx', 'latin1')
  readName(wire, 2, 16, out)
  const first = out.name
  const used = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_used_size ?? 0
  let grew = Infinity
  for (let round = 0; round < 5 && grew > 0; round++) {
    const before = used()
    for (let i = 0; i < 10000; i++) readName(wire, 2, 16, out)
    const after = used()
    if (after >= before) grew = Math.min(grew, after - before)
  }
  t.equal(out.name, first, 'the same string object')
  t.ok(grew < 10000, `10000 reads of a known name allocated ${grew} bytes, under 1 byte a read (a string each would be 300 kB)`)
})
