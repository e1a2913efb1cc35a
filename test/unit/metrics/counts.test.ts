import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DecisionCounts, type DecisionRow } from '../../../src/metrics/counts.js'
import type { Decision } from '../../../src/policy/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads } from '../../helpers/fixtures.js'
import { tcp4, udp4, type Tuple } from '../../helpers/packets.js'

/**
 * The decisions a worker counts for /metrics (metrics/counts.ts): real
 * captured hellos and DNS queries through a real Classifier with the shipped
 * rules and policy (anthropic: block, ai: monitor, default: allow), counted
 * by (action, vendor, how seen); vendor `none` for a name no list holds;
 * every name of a DNS query with two questions; totals kept across a reload
 * while the old Decision objects are let go.
 */
const view = new PacketView()
const out = new Outcome()
let port = 40000
const tuple = (dport: number): Tuple => ({ src: '10.9.0.1', dst: '10.9.0.2', sport: ++port, dport })
const fixture = (kind: 'dns' | 'tls', file: string): Buffer => {
  const f = payloads(kind).find(([n]) => n === `${kind}/${file}`)
  if (f === undefined) throw new Error(`no fixture ${kind}/${file}`)
  return f[1]
}
const HELLO_ANTHROPIC = fixture('tls', 'curl-7.88-api.anthropic.com.bin')
const HELLO_OPENAI = fixture('tls', 'curl-7.88-api.openai.com.bin')
const HELLO_EXAMPLE = fixture('tls', 'curl-7.88-www.example.com.bin')
const DNS_TWO = fixture('dns', 'python-3.11-built-udp-2questions.bin') // api.openai.com and claude.ai
const DNS_EXAMPLE = fixture('dns', 'dig-9.18-udp-a-noedns.bin') // www.example.com

/** Classify one packet and count it as the worker does (only packets that named something). */
function feed (c: Classifier, counts: DecisionCounts, pkt: Buffer): number {
  if (decodeIp(pkt, 0, pkt.length, view) !== Status.Ok) throw new Error('bad packet')
  const named = c.classify(view, out, 1)
  if (named > 0) counts.add(out)
  return named
}
const hello = (c: Classifier, counts: DecisionCounts, h: Buffer): number => feed(c, counts, tcp4(tuple(443), 1, h))
const dns = (c: Classifier, counts: DecisionCounts, q: Buffer): number => feed(c, counts, udp4(tuple(53), q))

/** The snapshot as `action/vendor/seen=n`, sorted. */
const rows = (s: DecisionRow[]): string[] => s.map((r) => `${r.action}/${r.vendor}/${r.seen}=${r.n}`).sort()

t.test('counts by action, vendor and how the name was seen; none for unmatched names', async (t) => {
  const c = new Classifier(loadRuleset())
  const counts = new DecisionCounts()
  t.same(counts.snapshot(), [], 'nothing counted yet')
  for (let i = 0; i < 3; i++) t.equal(hello(c, counts, HELLO_ANTHROPIC), 1)
  for (let i = 0; i < 2; i++) t.equal(hello(c, counts, HELLO_OPENAI), 1)
  t.equal(hello(c, counts, HELLO_EXAMPLE), 1)
  t.equal(dns(c, counts, DNS_EXAMPLE), 1)
  t.same(rows(counts.snapshot()), [
    'allow/none/dns=1',
    'allow/none/sni=1',
    'block/anthropic/sni=3',
    'monitor/openai/sni=2',
  ])
  for (const r of counts.snapshot()) t.notMatch(JSON.stringify(r), /example|anthropic\.com|openai\.com/, 'no name from the wire in a label')
})

t.test('a DNS query with two questions counts both names', async (t) => {
  const c = new Classifier(loadRuleset())
  const counts = new DecisionCounts()
  t.equal(dns(c, counts, DNS_TWO), 2, 'two names decided in one packet')
  t.equal(dns(c, counts, DNS_TWO), 2)
  t.same(rows(counts.snapshot()), ['block/anthropic/dns=2', 'monitor/openai/dns=2'], 'each question counted, with its own vendor and action')
})

t.test('an outcome filled by hand: every decision up to count, null slots skipped, seen null counts as sni', async (t) => {
  const d = (action: Decision['action'], vendor: string | null): Decision =>
    ({ action, vendor, category: vendor === null ? null : 'ai', rule: null, ruleSource: null, reason: vendor === null ? 'default' : 'vendor', network: null })
  const block = d('block', 'acme')
  const allow = d('allow', null)
  const o = new Outcome()
  o.seen = 'quic'
  o.count = 3
  o.decisions[0] = block
  o.decisions[1] = null
  o.decisions[2] = allow
  o.decisions[3] = block // past count: not counted
  const counts = new DecisionCounts()
  counts.add(o)
  counts.add(o)
  o.seen = null
  o.count = 1
  counts.add(o)
  t.same(rows(counts.snapshot()), ['allow/none/quic=2', 'block/acme/quic=2', 'block/acme/sni=1'])
})

t.test('fold() keeps totals across a reload, and the old decisions are let go', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const counts = new DecisionCounts()
  const refs: Array<WeakRef<Decision>> = []
  /** One "rules generation": a classifier with its own Decision objects; gone when this returns. */
  const generation = (): void => {
    const c = new Classifier(loadRuleset())
    hello(c, counts, HELLO_ANTHROPIC)
    refs.push(new WeakRef(out.verdict as Decision)) // the object the counts were keyed by
    dns(c, counts, DNS_TWO)
    hello(c, counts, HELLO_EXAMPLE)
  }
  const RELOADS = 20
  for (let i = 0; i < RELOADS; i++) {
    generation()
    counts.fold() // the worker folds as it swaps in the new rules
  }
  generation() // the rules in use now: not folded
  t.same(rows(counts.snapshot()), [
    `allow/none/sni=${RELOADS + 1}`,
    `block/anthropic/dns=${RELOADS + 1}`,
    `block/anthropic/sni=${RELOADS + 1}`,
    `monitor/openai/dns=${RELOADS + 1}`,
  ], 'totals across every reload, one row per label set')
  t.equal(counts.snapshot().length, 4, 'rows do not multiply with reloads')
  // The map is keyed by Decision objects: after fold() it must not hold the
  // old rules' objects (or it grows by a rule set per reload).
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  const alive = refs.slice(0, RELOADS).filter((r) => r.deref() !== undefined).length
  t.equal(alive, 0, 'no folded generation\'s Decision is still held')
  // And the last generation folds too: its counts stay.
  counts.fold()
  t.equal(rows(counts.snapshot()).join(' '), [`allow/none/sni=${RELOADS + 1}`, `block/anthropic/dns=${RELOADS + 1}`, `block/anthropic/sni=${RELOADS + 1}`, `monitor/openai/dns=${RELOADS + 1}`].join(' '))
})
