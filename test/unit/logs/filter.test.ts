import t from 'tap'
import { Filter, FilterError } from '../../../src/logs/index.js'
import { LogLine as Entry, readLine as readEntry } from '../../../src/log/read.js'
import { daemonLine, decision, type Fields } from './log.js'

/**
 * Every filter of `aigate logs`, alone and together, and the exact message
 * for each value it refuses (the CLI prints it as a usage error).
 */

function picks (f: Filter, fields: Fields): boolean {
  const e = new Entry()
  return f.selects(readEntry(decision(fields), e), e)
}

function picksDaemon (f: Filter, ts = '2026-11-25T21:00:00.000Z'): boolean {
  const e = new Entry()
  return f.selects(readEntry(daemonLine('start', 'up', ts), e), e)
}

t.test('no filter: every decision and daemon line', async (t) => {
  const f = new Filter()
  for (const action of ['allow', 'monitor', 'block', 'reject']) t.ok(picks(f, { action }), action)
  t.ok(picksDaemon(f))
})

t.test('--action: a comma list, given once or more', async (t) => {
  const f = new Filter({ actions: ['block, reject'] })
  t.same(['allow', 'monitor', 'block', 'reject'].map((action) => picks(f, { action })), [false, false, true, true])
  const g = new Filter({ actions: ['monitor', 'allow'] })
  t.same(['allow', 'monitor', 'block', 'reject'].map((action) => picks(g, { action })), [true, true, false, false])
  t.notOk(picksDaemon(f), 'daemon lines have no action: not shown under an action filter')
  t.throws(() => new Filter({ actions: ['block,drop'] }), new FilterError('--action: "drop" is not an action (allow, monitor, block, reject)'))
  t.throws(() => new Filter({ actions: ['Block'] }), new FilterError('--action: "Block" is not an action (allow, monitor, block, reject)'))
  t.throws(() => new Filter({ actions: [','] }), new FilterError('--action: give one or more of allow, monitor, block, reject'))
})

t.test('--vendor: a comma list, case-insensitive; a line without a vendor never matches', async (t) => {
  const f = new Filter({ vendors: ['OpenAI,anthropic'] })
  t.ok(picks(f, { vendor: 'openai' }))
  t.ok(picks(f, { vendor: 'Anthropic' }))
  t.notOk(picks(f, { vendor: 'mistral' }))
  t.notOk(picks(f, { vendor: null }))
  t.notOk(picks(f, { vendor: 'openai-azure' }), 'whole names, not prefixes')
  t.notOk(picksDaemon(f))
  t.throws(() => new Filter({ vendors: [''] }), new FilterError('--vendor: give one or more vendor names (openai,anthropic)'))
})

t.test('--source: IPv4 and IPv6 networks and single addresses', async (t) => {
  const v4 = new Filter({ sources: ['10.20.0.0/16'] })
  t.ok(picks(v4, { ip: '10.20.0.1' }))
  t.ok(picks(v4, { ip: '10.20.255.255' }))
  t.notOk(picks(v4, { ip: '10.21.0.1' }))
  t.notOk(picks(v4, { ip: 'fd00::1' }), 'an IPv6 client is not in an IPv4 network')
  t.notOk(picks(v4, { ip: 'not-an-ip' }), 'a source.ip that is not an address matches nothing')
  t.notOk(picks(v4, { ip: '10.20.0.0/24' }), 'nor does a CIDR written as the source')
  const v6 = new Filter({ sources: ['fd00:230::/32'] })
  t.ok(picks(v6, { ip: 'fd00:230::1' }))
  t.ok(picks(v6, { ip: 'fd00:230:ffff::1' }))
  t.notOk(picks(v6, { ip: 'fd00:231::1' }))
  t.notOk(picks(v6, { ip: '10.0.0.1' }))
  const odd = new Filter({ sources: ['fd00:230::/33'] })
  t.ok(picks(odd, { ip: 'fd00:230:7fff::1' }), 'a prefix that ends inside a byte')
  t.notOk(picks(odd, { ip: 'fd00:230:8000::1' }))
  const both = new Filter({ sources: ['10.0.0.7', 'fd00::/8'] })
  t.ok(picks(both, { ip: '10.0.0.7' }), 'an address is a /32')
  t.notOk(picks(both, { ip: '10.0.0.8' }))
  t.ok(picks(both, { ip: 'fd12::9' }))
  const all = new Filter({ sources: ['0.0.0.0/0,::/0'] })
  t.ok(picks(all, { ip: '192.0.2.1' }))
  t.ok(picks(all, { ip: '2001:db8::1' }))
  // The same parser and checks as the policy's networks (config/policy.ts cidrError).
  t.throws(() => new Filter({ sources: ['10.20.1.0/16'] }), new FilterError('--source: "10.20.1.0/16" has host bits set: the network is 10.20.0.0/16'))
  t.throws(() => new Filter({ sources: ['10.020.0.0/16'] }), /leading zero/)
  t.throws(() => new Filter({ sources: ['10.0.0.0/33'] }), new FilterError('--source: "10.0.0.0/33" is not a CIDR (10.0.0.0/8, fd00::/8)'))
  t.throws(() => new Filter({ sources: ['example.com'] }), new FilterError('--source: "example.com" is not a CIDR (10.0.0.0/8, fd00::/8)'))
  t.throws(() => new Filter({ sources: ['fd00::1/64'] }), /has host bits set under \/64/)
})

t.test('--since: decision and daemon lines stamped earlier are left out', async (t) => {
  const f = new Filter({ since: Date.parse('2026-11-25T21:00:00Z') })
  t.ok(picks(f, { ts: '2026-11-25T21:00:00.000Z' }), 'at the time: shown')
  t.ok(picks(f, { ts: '2026-11-26T00:00:00.000Z' }))
  t.notOk(picks(f, { ts: '2026-11-25T20:59:59.999Z' }))
  t.ok(picksDaemon(f, '2026-11-25T21:00:01Z'))
  t.notOk(picksDaemon(f, '2026-11-25T20:00:00Z'))
})

t.test('--no-daemon, and filters together: every one must hold', async (t) => {
  t.notOk(picksDaemon(new Filter({ daemon: false })))
  t.ok(picks(new Filter({ daemon: false }), {}))
  const f = new Filter({ actions: ['block'], vendors: ['anthropic'], sources: ['10.0.0.0/8'], since: Date.parse('2026-11-25T00:00:00Z') })
  t.ok(picks(f, { action: 'block', vendor: 'anthropic', ip: '10.1.2.3', ts: '2026-11-25T21:00:00Z' }))
  t.notOk(picks(f, { action: 'reject', vendor: 'anthropic', ip: '10.1.2.3', ts: '2026-11-25T21:00:00Z' }), 'action')
  t.notOk(picks(f, { action: 'block', vendor: 'openai', ip: '10.1.2.3', ts: '2026-11-25T21:00:00Z' }), 'vendor')
  t.notOk(picks(f, { action: 'block', vendor: 'anthropic', ip: '192.168.0.1', ts: '2026-11-25T21:00:00Z' }), 'source')
  t.notOk(picks(f, { action: 'block', vendor: 'anthropic', ip: '10.1.2.3', ts: '2026-11-24T21:00:00Z' }), 'since')
})

t.test('bad and other lines are never selected', async (t) => {
  const f = new Filter()
  const e = new Entry()
  t.notOk(f.selects(readEntry('nope', e), e))
  t.notOk(f.selects(readEntry('{"@timestamp":"2026-11-25T21:00:00Z","event":{"dataset":"other"}}', e), e))
})
