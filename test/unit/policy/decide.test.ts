import t from 'tap'
import { parsePolicy } from '../../../src/config/policy.js'
import { Policy, parseCidr } from '../../../src/policy/index.js'
import { rule } from '../../helpers/rules.js'

const known = { vendors: new Set(['anthropic', 'openai']), categories: new Set(['ai']) }

t.test('vendor beats category beats default; exceptions allow', async (t) => {
  const p = new Policy(parsePolicy('default: allow\nvendors: {anthropic: block}\ncategories: {ai: monitor}\nallow: [x.corp]\n', 'p.yaml', known))
  t.equal(p.decide(rule('anthropic.com', 'anthropic'), 0).action, 'block')
  t.equal(p.decide(rule('anthropic.com', 'anthropic'), 0).reason, 'vendor')
  t.equal(p.decide(rule('openai.com', 'openai'), 0).action, 'monitor')
  t.equal(p.decide(rule('openai.com', 'openai'), 0).reason, 'category')
  t.equal(p.decide(null, 0).action, 'allow')
  t.equal(p.decide(rule('x.corp', null, true), 0).action, 'allow')
  t.equal(p.decide(rule('x.corp', null, true), 0).reason, 'exception')
  const r = rule('claude.ai', 'anthropic')
  t.equal(p.decide(r, 0), p.decide(r, 0), 'the decision object is made once and reused')
})

t.test('per-network exceptions by source address, IPv4 and IPv6', async (t) => {
  const p = new Policy(parsePolicy(`
default: allow
vendors: {anthropic: reject}
networks:
  - name: lab
    cidrs: [10.20.0.0/16, "fd00:20::/32"]
    vendors: {anthropic: monitor}
  - name: guests
    cidrs: [192.168.7.0/24]
    default: block
`, 'p.yaml', known))
  const v4 = (s: string): Uint8Array => new Uint8Array(s.split('.').map(Number))
  t.equal(p.sourceClass(v4('10.20.3.4'), 0, 4), 1)
  t.equal(p.sourceClass(v4('10.21.0.1'), 0, 4), 0)
  t.equal(p.sourceClass(v4('192.168.7.9'), 0, 4), 2)
  const c6 = parseCidr('fd00:20:ffff::1')
  t.ok(c6 !== null && c6.v === 6)
  if (c6?.v === 6) t.equal(p.sourceClass(c6.range.bytes, 0, 6), 1)
  const other6 = parseCidr('fd00:21::1')
  if (other6?.v === 6) t.equal(p.sourceClass(other6.range.bytes, 0, 6), 0)
  const r = rule('anthropic.com', 'anthropic')
  t.equal(p.decide(r, 0).action, 'reject')
  t.equal(p.decide(r, 1).action, 'monitor')
  t.equal(p.decide(r, 1).network, 'lab')
  t.equal(p.decide(null, 2).action, 'block', 'a network default applies to unmatched names')
  t.equal(p.decide(r, 2).action, 'reject', 'the global vendor action still applies in a network without one')
})

t.test('CIDR parser', async (t) => {
  t.same(parseCidr('10.0.0.0/8'), { v: 4, range: { base: 0x0a000000, mask: 0xff000000 } })
  t.same(parseCidr('0.0.0.0/0'), { v: 4, range: { base: 0, mask: 0 } })
  for (const bad of ['10.0.0/8', '10.0.0.256/32', '10.0.0.0/-1', 'fd00::1::2/64', 'fd00::/129', 'x', '1:2:3:4:5:6:7:8:9/64']) {
    t.equal(parseCidr(bad), null, bad)
  }
  const v6 = parseCidr('2001:db8::/32')
  t.ok(v6 !== null && v6.v === 6 && v6.range.bits === 32 && v6.range.bytes[1] === 0x01 && v6.range.bytes[3] === 0xb8)
})
