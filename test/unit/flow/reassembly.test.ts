import t from 'tap'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads, expected } from '../../helpers/fixtures.js'
import { tcp4, type Tuple } from '../../helpers/packets.js'
import { rng } from '../../helpers/rng.js'
import { everySplit, looksLikeLaterTlsRecord, IN_ORDER } from '../../helpers/split.js'
import { DEFAULT_MAX_FLOW_SEGMENTS } from '../../../src/flow/index.js'

/**
 * TCP reassembly of real captured hellos: split at every byte offset, in
 * order and reversed, in random orders, retransmitted and overlapping; the
 * name is always the same. Overlapping copies that disagree are evasion.
 */
const ruleset = loadRuleset()
const exp = expected()
const view = new PacketView()
const out = new Outcome()

function feed (c: Classifier, pkt: Buffer, now = 1): number {
  if (decodeIp(pkt, 0, pkt.length, view) !== Status.Ok) throw new Error('bad packet')
  return c.classify(view, out, now)
}

let port = 20000
function tuple (): Tuple { port = port === 60000 ? 20000 : port + 1; return { src: '10.9.0.1', dst: '10.9.0.2', sport: port, dport: 443 } }


const hellos = payloads('tls').filter(([n]) => !/-seg\d+\.bin$/.test(n))

t.test('every split point, both orders, gives the same name', async (t) => {
  const c = new Classifier(ruleset)
  let checked = 0
  let ambiguous = 0
  for (const [file, bytes] of hellos) {
    const want = exp[file]?.sni
    everySplit(bytes, ({ cut, reversed, tail, first, second }) => {
      if (reversed && looksLikeLaterTlsRecord(tail)) { ambiguous++; return }
      const tu = tuple()
      const isn = 0xfffffff0 // sequence numbers wrap inside the hello
      if (feed(c, tcp4(tu, isn + first.offset, first.bytes)) !== 0) { t.fail(`${file} cut ${cut}: decided on the first segment`); return }
      if (feed(c, tcp4(tu, isn + second.offset, second.bytes)) !== 1 || out.names[0] !== want) {
        t.fail(`${file} cut ${cut} reversed=${reversed}: got ${out.count} ${out.names[0]} status ${out.status}`)
        return
      }
      checked++
    })
  }
  t.ok(checked > 10000, `${checked} split deliveries recovered the name`)
  t.ok(ambiguous < 5, `${ambiguous} ambiguous tails skipped`)
  t.equal(c.flows.reassembling(), 0, 'finished flows leave the table (allowed ones stay under watch)')
})

t.test('real multi-segment captures, segments in every order, with retransmissions', async (t) => {
  const c = new Classifier(ruleset)
  const multi = payloads('tls').filter(([n]) => /-seg1\.bin$/.test(n)).map(([n]) => n.replace('-seg1.bin', ''))
  t.ok(multi.length >= 2, 'two real hellos that span several segments')
  for (const base of multi) {
    const segs = payloads('tls').filter(([n]) => n.startsWith(base + '-seg')).map(([, b]) => b)
    const want = exp[base + '.bin']?.sni
    const perms = permutations(segs.map((_, i) => i))
    for (const order of perms) {
      for (const dup of [false, true]) {
        const tu = tuple()
        const offs: number[] = []
        let o = 1000
        for (const s of segs) { offs.push(o); o += s.length }
        let decided = 0
        for (const i of order) {
          const pkt = tcp4(tu, offs[i] as number, segs[i] as Buffer)
          if (feed(c, pkt) > 0) decided++
          if (dup && decided === 0) feed(c, pkt) // a retransmission of the same bytes
        }
        t.equal(decided, 1, `${base} order ${order.join('')} dup=${dup}: one decision`)
        t.equal(out.names[0], want)
        t.equal(out.reassembled, true)
      }
    }
  }
})

t.test('random splits into 3-6 segments, shuffled, some duplicated (at most 6 packets: what the firewall queues)', async (t) => {
  const c = new Classifier(ruleset)
  const r = rng(42)
  let ok = 0
  for (let n = 0; n < 3000; n++) {
    const [file, bytes] = hellos[n % hellos.length] as [string, Buffer]
    const k = 3 + Math.floor(r() * 4)
    const cuts = new Set<number>()
    while (cuts.size < k - 1) cuts.add(1 + Math.floor(r() * (bytes.length - 1)))
    const points = [0, ...[...cuts].sort((x, y) => x - y), bytes.length]
    const tu = tuple()
    const pkts = points.slice(0, -1).map((p, i) => tcp4(tu, 5000 + p, bytes.subarray(p, points[i + 1])))
    if (r() < 0.3 && k < DEFAULT_MAX_FLOW_SEGMENTS) pkts.push(pkts[Math.floor(r() * pkts.length)] as Buffer)
    for (let i = pkts.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [pkts[i], pkts[j]] = [pkts[j] as Buffer, pkts[i] as Buffer] }
    let got: string | null = null
    for (const p of pkts) if (feed(c, p) > 0 && got === null) got = out.names[0] as string
    if (got === exp[file]?.sni) ok++
    else t.fail(`${file} split ${points.join(',')}: got ${got}`)
  }
  t.equal(ok, 3000)
})

t.test('inline, a hello still incomplete after DEFAULT_MAX_FLOW_SEGMENTS segments is evasion; offline it is read whole, in one line', async (t) => {
  const c = new Classifier(ruleset, undefined, undefined, true)
  const n = DEFAULT_MAX_FLOW_SEGMENTS
  for (const [file, bytes] of hellos.filter(([name]) => name.includes('curl-7.88-www.example.com'))) {
    const cut = (k: number): Buffer[] => {
      const at = (i: number): number => Math.floor(i * bytes.length / k)
      return Array.from({ length: k }, (_, i) => bytes.subarray(at(i), at(i + 1)))
    }
    // n segments: the name is read.
    let tu = tuple()
    let seq = 7000
    let lines = 0
    const segsN = cut(n)
    t.equal(segsN.length, n)
    for (const seg of segsN) { lines += feed(c, tcp4(tu, seq, seg)); seq += seg.length }
    t.equal(lines, 1, `${file}: ${n} segments, one decision`)
    t.equal(out.names[0], exp[file]?.sni)
    t.equal(out.decisions[0]?.action, 'allow')
    // n + 1 segments: at the n-th the hello is still incomplete.
    tu = tuple()
    seq = 7000
    const segs = cut(n + 1)
    const got: number[] = []
    const verdicts: string[] = []
    for (const seg of segs) {
      got.push(feed(c, tcp4(tu, seq, seg)))
      seq += seg.length
      if (got.at(-1) === 1) verdicts.push(`${out.decisions[0]?.reason} ${out.decisions[0]?.detail} ${out.verdict?.action}`)
    }
    t.equal(got.indexOf(1), n - 1, 'decided at the n-th segment')
    t.same(verdicts, ['evasion segments block'], 'one line for the flow: the segment still in flight behind it gets the same verdict, silently')
    t.equal(out.verdict?.action, 'block', 'the last segment too')
    // Offline: 10-byte segments, the name is read, one line.
    const off = new Classifier(ruleset)
    tu = tuple()
    seq = 9000
    lines = 0
    for (let i = 0; i < bytes.length; i += 10) { lines += feed(off, tcp4(tu, seq + i, bytes.subarray(i, i + 10))) }
    t.equal(lines, 1, 'offline: one line for a hello in 10-byte segments')
    t.equal(out.names[0], exp[file]?.sni, 'offline: the name is read')
  }
  t.ok(c.flows.stats.tooManySegments >= 1)
})

t.test('overlapping segments that disagree are reported as evasion', async (t) => {
  const c = new Classifier(ruleset)
  const [file, bytes] = hellos.find(([n]) => n.includes('api.anthropic.com')) as [string, Buffer]
  const at = bytes.indexOf(Buffer.from('api.anthropic.com'))
  t.ok(at > 0, file)
  const tu = tuple()
  // First copy of the name bytes says api.anthropic.com; a later overlapping copy says otherwise.
  t.equal(feed(c, tcp4(tu, 100, bytes.subarray(0, at + 5))), 0)
  const fake = Buffer.from(bytes.subarray(at, at + 10))
  fake.write('zzzzz', 0, 'latin1')
  t.equal(feed(c, tcp4(tu, 100 + at, fake)), 0)
  t.equal(feed(c, tcp4(tu, 100 + at + 5, bytes.subarray(at + 5))), 1)
  t.equal(out.decisions[0]?.reason, 'evasion')
  t.equal(out.decisions[0]?.action, 'block', 'the shipped policy blocks evasion')
  t.equal(out.names[0], 'api.anthropic.com', 'the first copy is what we read')
  t.equal(c.flows.stats.disagreements, 1)
})

t.test('bytes before the stream start are discarded like a receiver does; overflow gives the unknown action', async (t) => {
  const c = new Classifier(ruleset, undefined, { maxBytes: 256 })
  const [, bytes] = hellos[0] as [string, Buffer]
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 1, bytes.subarray(0, 100))), 0)
  t.equal(feed(c, tcp4(tu, 101, bytes.subarray(100, 400))), 1, 'the flow runs past its byte cap')
  t.equal(out.decisions[0]?.reason, 'unknown')
  t.equal(out.decisions[0]?.action, 'allow')
  t.equal(c.flows.reassembling(), 0)
})

t.test('the table stays at its cap under a flood of half hellos', async (t) => {
  const c = new Classifier(ruleset, undefined, { maxFlows: 1000 })
  const [, bytes] = hellos[0] as [string, Buffer]
  for (let i = 0; i < 20000; i++) {
    const tu: Tuple = { src: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, dst: '10.9.0.2', sport: 40000, dport: 443 }
    feed(c, tcp4(tu, 7, bytes.subarray(0, 200)))
  }
  t.equal(c.flows.size, 1000)
  t.equal(c.flows.stats.evicted, 19000)
  // Flows past their time are dropped when looked up.
  const tu: Tuple = { src: '10.0.78.31', dst: '10.9.0.2', sport: 40000, dport: 443 }
  t.equal(feed(c, tcp4(tu, 207, bytes.subarray(200)), 1e9), 1, 'an expired flow does not complete: its rest is evasion (expired)')
  t.equal(out.decisions[0]?.detail, 'expired')
  t.equal(c.flows.stats.lost, 19001, 'every flow forgotten mid-opening was remembered as lost')
})

function permutations (xs: number[]): number[][] {
  if (xs.length <= 1) return [xs]
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]))
}

t.test('DNS over TCP: several messages in one segment, one message split anywhere', async (t) => {
  const c = new Classifier(ruleset)
  const tcpq = payloads('dns').filter(([n]) => n.includes('-tcp'))
  t.ok(tcpq.length >= 2)
  const [[f1, m1], [f2, m2]] = tcpq as [[string, Buffer], [string, Buffer]]
  const dnsTuple = (): Tuple => ({ ...tuple(), dport: 53 })
  t.equal(feed(c, tcp4(dnsTuple(), 1, Buffer.concat([m1, m2]))), 2, 'two pipelined queries, two decisions')
  t.same(out.names.slice(0, 2), [...(exp[f1]?.names ?? []), ...(exp[f2]?.names ?? [])].map((n) => n.toLowerCase()))
  everySplit(m1, ({ cut, first, second }) => {
    const tu = dnsTuple()
    t.equal(feed(c, tcp4(tu, 77 + first.offset, first.bytes)), 0)
    if (feed(c, tcp4(tu, 77 + second.offset, second.bytes)) !== 1 || out.names[0] !== exp[f1]?.names?.[0]?.toLowerCase()) t.fail(`cut ${cut}: ${out.names[0]}`)
  }, IN_ORDER)
  t.equal(c.flows.reassembling(), 0)
})

t.test('a decoy hello for an allowed name does not wave the real one through', async (t) => {
  const c = new Classifier(ruleset)
  const decoy = (hellos.find(([n]) => n.includes('curl-7.88-www.example.com')) as [string, Buffer])[1]
  const real = (hellos.find(([n]) => n.includes('curl-7.88-api.anthropic.com')) as [string, Buffer])[1]
  const tu = tuple()
  // zapret "fake": a hello for an allowed name that dies before the server (low TTL), then the real one at the same sequence number.
  t.equal(feed(c, tcp4(tu, 500, decoy, 0x18, 1)), 1)
  t.equal(out.names[0], 'www.example.com')
  t.equal(out.hold, true, 'allowed, but not yet saved on the connection')
  t.equal(feed(c, tcp4(tu, 500, real)), 1)
  t.equal(out.names[0], 'api.anthropic.com')
  t.equal(out.decisions[0]?.reason, 'evasion')
  t.equal(out.verdict?.action, 'block')
  t.equal(out.hold, false)
})

t.test('an allowed flow: a retransmitted hello adds no line; the first data saves the allow', async (t) => {
  const c = new Classifier(ruleset)
  const hello = (hellos.find(([n]) => n.includes('curl-7.88-www.example.com')) as [string, Buffer])[1]
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 9, hello)), 1)
  t.equal(out.hold, true)
  t.equal(feed(c, tcp4(tu, 9, hello)), 0, 'retransmission: no second decision line')
  t.equal(out.hold, true)
  t.equal(out.verdict?.action, 'allow')
  // TLS application data record from the client: the watch ends, the allow is saved.
  t.equal(feed(c, tcp4(tu, 9 + hello.length, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb]), 0x18, 64, 4000)), 0)
  t.equal(out.verdict?.action, 'allow')
  t.equal(out.hold, false)
  t.equal(c.flows.reassembling(), 0)
  // A blocked name is saved on the connection at once.
  t.equal(feed(c, tcp4(tuple(), 1, (hellos.find(([n]) => n.includes('api.anthropic.com')) as [string, Buffer])[1])), 1)
  t.equal(out.hold, false)
  t.equal(out.verdict?.action, 'block')
})
