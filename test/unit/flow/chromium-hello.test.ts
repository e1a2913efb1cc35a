import t from 'tap'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { parseTls, TlsHello, alpnList, EXT_ECH } from '../../../src/extract/tls.js'
import { readName, NameOut } from '../../../src/name/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads, expected } from '../../helpers/fixtures.js'
import { tcp4, type Tuple } from '../../helpers/packets.js'
import { rng } from '../../helpers/rng.js'
import { everySplit, looksLikeLaterTlsRecord } from '../../helpers/split.js'

/**
 * Real Chromium 156 ClientHellos over TCP (test/fixtures/chromium-capture.sh,
 * SOURCES.md "Chromium over TCP"): ~1.9 kB with an X25519MLKEM768 key share,
 * so each spans two TCP segments; a GREASE encrypted_client_hello extension;
 * extensions in a new random order per connection. The parser and the TCP
 * reassembly path recover the exact name from every split, in any order. ECH
 * is reported present, but as GREASE ECH keeps the real name in the outer SNI,
 * the name is still "seen" as sni (only a provider's public name makes it ech).
 */

interface ChromiumExpected {
  sni: string
  alpn: string[]
  segments: number
  segment_bytes: number[]
  bytes: number
  ech: boolean
  extension_types: number[]
  key_share_groups: number[]
}

const ruleset = loadRuleset() // the shipped rules and policy: anthropic block, other AI monitor
const exp = expected() as unknown as Record<string, ChromiumExpected | undefined>
const view = new PacketView()
const out = new Outcome()
const nameOut = new NameOut()

const all = payloads('tls')
const hellos = all.filter(([n]) => /^tls\/chromium-\d+-/.test(n) && !/-seg\d+\.bin$/.test(n))
const ACTION: Record<string, string> = { 'claude.ai': 'block', 'chatgpt.com': 'monitor', 'api.openai.com': 'monitor', 'www.example.com': 'allow' }

function feed (c: Classifier, pkt: Buffer): number {
  if (decodeIp(pkt, 0, pkt.length, view) !== Status.Ok) throw new Error('bad packet')
  return c.classify(view, out, 1)
}

let port = 30000
function tuple (): Tuple { port = port === 60000 ? 30000 : port + 1; return { src: '10.9.0.1', dst: '10.9.0.2', sport: port, dport: 443 } }


/** Extension types in wire order, and the ECH extension's first byte, walked here independently of src/extract. */
function walkExtensions (b: Buffer): { types: number[], echType: number | null } {
  let o = 5 + 4 + 2 + 32 // record header, handshake header, legacy_version, random
  o += 1 + (b[o] as number) // session id
  o += 2 + b.readUInt16BE(o) // cipher suites
  o += 1 + (b[o] as number) // compression methods
  const end = o + 2 + b.readUInt16BE(o)
  o += 2
  const types: number[] = []
  let echType: number | null = null
  while (o < end) {
    const type = b.readUInt16BE(o)
    const len = b.readUInt16BE(o + 2)
    if (type === EXT_ECH) echType = b[o + 4] as number
    types.push(type)
    o += 4 + len
  }
  if (o !== end || end !== b.length) throw new Error('extensions do not end where the hello ends')
  return { types, echType }
}

t.test('the fixtures: four names, two real segments each, matching tshark', async (t) => {
  t.same(hellos.map(([n]) => exp[n]?.sni).sort(), ['api.openai.com', 'chatgpt.com', 'claude.ai', 'www.example.com'])
  const orders = new Set<string>()
  for (const [file, bytes] of hellos) {
    const e = exp[file] as ChromiumExpected
    t.equal(bytes.length, e.bytes, `${file}: ${bytes.length} bytes`)
    t.ok(bytes.length > 1448, `${file}: longer than one MSS`)
    const segs = all.filter(([n]) => n.startsWith(file.replace(/\.bin$/, '-seg'))).map(([, b]) => b)
    t.equal(segs.length, 2, `${file}: two segments`)
    t.same(segs.map((s) => s.length), e.segment_bytes, `${file}: segment sizes ${e.segment_bytes.join(' + ')}`)
    t.ok(Buffer.concat(segs).equals(bytes), `${file}: the segments joined are the hello`)
    t.ok(e.key_share_groups.includes(0x11ec), `${file}: X25519MLKEM768 key share`)
    const { types, echType } = walkExtensions(bytes)
    t.same(types, e.extension_types, `${file}: extension order as tshark read it`)
    t.equal(e.ech, true)
    t.equal(echType, 0, `${file}: ECH of the outer type (GREASE)`)
    orders.add(types.join(','))
  }
  t.equal(orders.size, hellos.length, 'every connection has its own extension order')
})

t.test('parseTls: name, ALPN, ECH present; the first segment alone asks for more', async (t) => {
  const h = new TlsHello()
  for (const [file, bytes] of hellos) {
    const e = exp[file] as ChromiumExpected
    t.equal(parseTls(bytes, 0, bytes.length, h), Status.Ok, `${file} parses`)
    t.ok(readName(h.buf, h.sniStart, h.sniEnd, nameOut))
    t.equal(nameOut.name, e.sni, `${file}: ${e.sni}`)
    t.same(alpnList(h), e.alpn)
    t.equal(h.ech, true, 'ech reported present')
    t.equal(h.echOuter, true, 'outer ECH extension')
    t.equal(h.records, 1)
    t.equal(parseTls(bytes, 0, e.segment_bytes[0] as number, h), Status.NeedMore, 'segment 1 alone: need more')
    t.equal(h.needed, bytes.length, 'and it knows how much')
  }
})

t.test('reassembly: every split point, both orders, gives the exact name, seen sni', async (t) => {
  const c = new Classifier(ruleset)
  let checked = 0
  let ambiguous = 0
  for (const [file, bytes] of hellos) {
    const want = (exp[file] as ChromiumExpected).sni
    let bad = 0
    everySplit(bytes, ({ cut, reversed, tail, first, second }) => {
      if (reversed && looksLikeLaterTlsRecord(tail)) { ambiguous++; return }
      const tu = tuple()
      const isn = 0xfffffc00 // sequence numbers wrap inside the hello
      const early = feed(c, tcp4(tu, isn + first.offset, first.bytes))
      const n = feed(c, tcp4(tu, isn + second.offset, second.bytes))
      if (early !== 0 || n !== 1 || out.names[0] !== want || out.seen !== 'sni' || !out.tls.ech || !out.reassembled ||
          out.decisions[0]?.action !== ACTION[want]) {
        if (bad++ < 5) t.fail(`${file} cut ${cut} reversed=${reversed}: ${early}/${n} decisions, ${out.names[0]} seen ${out.seen} ech ${out.tls.ech} ${out.decisions[0]?.action}`)
        return
      }
      checked++
    })
    t.equal(bad, 0, `${file}: all ${2 * (bytes.length - 1)} deliveries`)
  }
  t.ok(checked > 15000, `${checked} split deliveries recovered the name`)
  t.ok(ambiguous < 10, `${ambiguous} tails that look like a later TLS record skipped`)
  t.equal(c.flows.reassembling(), 0, 'no flow left half gathered')
})

t.test('the two real segments, in order and reversed, with a retransmission', async (t) => {
  const c = new Classifier(ruleset)
  for (const [file] of hellos) {
    const want = (exp[file] as ChromiumExpected).sni
    const segs = all.filter(([n]) => n.startsWith(file.replace(/\.bin$/, '-seg'))).map(([, b]) => b) as [Buffer, Buffer]
    for (const order of [[0, 1], [1, 0], [0, 0, 1], [1, 1, 0]]) {
      const tu = tuple()
      const seqs = [1000, 1000 + segs[0].length]
      const counts = order.map((i) => feed(c, tcp4(tu, seqs[i] as number, segs[i] as Buffer)))
      t.same(counts, [...order.slice(0, -1).map(() => 0), 1], `${file} segments ${order.join(',')}: one decision, on the last`)
      t.equal(out.names[0], want)
      t.equal(out.seen, 'sni', 'GREASE ECH: seen stays sni')
      t.equal(out.tls.ech, true, 'ech present')
      t.equal(out.segments, order.length)
      t.equal(out.verdict?.action, ACTION[want], `${want}: ${ACTION[want]}`)
    }
  }
})

t.test('random splits into 3-5 segments, shuffled (seeded)', async (t) => {
  const c = new Classifier(ruleset)
  const r = rng(0xc1a0de)
  let ok = 0
  let ambiguous = 0
  const runs = 2000
  for (let n = 0; n < runs; n++) {
    const [file, bytes] = hellos[n % hellos.length] as [string, Buffer]
    const want = (exp[file] as ChromiumExpected).sni
    const k = 3 + Math.floor(r() * 3)
    const cuts = new Set<number>()
    while (cuts.size < k - 1) cuts.add(1 + Math.floor(r() * (bytes.length - 1)))
    const points = [0, ...[...cuts].sort((x, y) => x - y), bytes.length]
    const parts = points.slice(0, -1).map((p, i) => ({ at: p, bytes: bytes.subarray(p, points[i + 1]) }))
    for (let i = parts.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [parts[i], parts[j]] = [parts[j] as typeof parts[0], parts[i] as typeof parts[0]] }
    const head = parts[0] as typeof parts[0]
    if (head.at !== 0 && looksLikeLaterTlsRecord(head.bytes)) { ambiguous++; continue }
    const tu = tuple()
    const isn = Math.floor(r() * 0x100000000)
    const counts = parts.map((p) => feed(c, tcp4(tu, isn + p.at, p.bytes)))
    const decided = counts.reduce((x, y) => x + y, 0)
    if (decided === 1 && counts[counts.length - 1] === 1 && out.names[0] === want && out.seen === 'sni' && out.tls.ech && out.segments === k) ok++
    else t.fail(`${file} split ${points.join(',')} order ${parts.map((p) => p.at).join(',')}: ${counts.join(',')} ${out.names[0]} ${out.seen}`)
  }
  t.equal(ok + ambiguous, runs)
  t.ok(ambiguous < 20, `${ambiguous} ambiguous first segments skipped`)
  t.ok(ok > 1900, `${ok} random splits recovered the exact name`)
})
