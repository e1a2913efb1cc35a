import t from 'tap'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { FragTable } from '../../../src/flow/ipfrag.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads, expected } from '../../helpers/fixtures.js'
import { tcp4, udp4 } from '../../helpers/packets.js'

/**
 * IP fragments (zapret ipfrag2-style) built around real captured payloads:
 * the offline path puts them together before classifying.
 */
const exp = expected()
const ruleset = loadRuleset()
let c = new Classifier(ruleset)
const view = new PacketView()
const whole = new PacketView()
const out = new Outcome()

/** Split an IPv4 packet into fragments of `size` payload bytes (multiple of 8). */
function fragment4 (pkt: Buffer, size: number): Buffer[] {
  const ihl = (pkt[0]! & 15) * 4
  const body = pkt.subarray(ihl)
  const frags: Buffer[] = []
  for (let off = 0; off < body.length; off += size) {
    const part = body.subarray(off, Math.min(body.length, off + size))
    const f = Buffer.concat([Buffer.from(pkt.subarray(0, ihl)), part])
    f.writeUInt16BE(f.length, 2)
    f.writeUInt16BE(0x1234, 4)
    f.writeUInt16BE(((off + size < body.length) ? 0x2000 : 0) | (off / 8), 6)
    frags.push(f)
  }
  return frags
}

function run (frags: Buffer[], table: FragTable): number {
  let named = 0
  for (const f of frags) {
    decodeIp(f, 0, f.length, view)
    if (!view.isFragment) throw new Error('not a fragment')
    const p = table.add(view, 1)
    if (p === null) continue
    t.equal(decodeIp(p, 0, p.length, whole), Status.Ok)
    named += c.classify(whole, out, 1)
  }
  return named
}

t.test('a fragmented ClientHello and DNS query, fragments in any order', async (t) => {
  const [hf, hello] = payloads('tls').find(([n]) => n.includes('curl-7.88-api.openai.com')) as [string, Buffer]
  const [df, query] = payloads('dns').find(([n]) => n.includes('udp-a.bin')) as [string, Buffer]
  const tcp = tcp4({ src: '10.1.1.1', dst: '10.1.1.2', sport: 33333, dport: 443 }, 1, hello)
  const udp = udp4({ src: '10.1.1.1', dst: '10.1.1.2', sport: 33334, dport: 53 }, query)
  for (const size of [8, 16, 32, 128]) {
    for (const reverse of [false, true]) {
      const table = new FragTable()
      c = new Classifier(ruleset) // a fresh flow table: the same flow again would be a retransmission
      const tf = fragment4(tcp, size)
      t.ok(tf.length > 1)
      t.equal(run(reverse ? tf.reverse() : tf, table), 1, `tls size ${size} reverse ${reverse}`)
      t.equal(out.names[0], exp[hf]?.sni)
      if (size < udp.length - 20) {
        t.equal(run(reverse ? fragment4(udp, size).reverse() : fragment4(udp, size), table), 1)
        t.equal(out.names[0], exp[df]?.names?.[0])
      }
      t.equal(table.size, 0)
    }
  }
})

t.test('bounded: incomplete datagrams are evicted at the cap; a repeated fragment is dropped as a duplicate', async (t) => {
  const table = new FragTable(16)
  const [, hello] = payloads('tls')[0] as [string, Buffer]
  for (let i = 0; i < 100; i++) {
    const f = fragment4(tcp4({ src: `10.2.0.${i}`, dst: '10.1.1.2', sport: 1000, dport: 443 }, 1, hello), 64)[0] as Buffer
    decodeIp(f, 0, f.length, view)
    t.equal(table.add(view, 1), null)
  }
  t.equal(table.size, 16)
  t.equal(table.stats.evicted, 84)
  const frags = fragment4(tcp4({ src: '10.3.0.1', dst: '10.1.1.2', sport: 1000, dport: 443 }, 1, hello), 64)
  const evil = Buffer.from(frags[1] as Buffer)
  evil[evil.length - 1] = (evil[evil.length - 1] as number) ^ 0xff
  for (const f of [frags[1] as Buffer, evil]) { decodeIp(f, 0, f.length, view); table.add(view, 1) }
  // Linux drops a fragment that lies inside a held one; the first copy stays.
  t.equal(table.stats.duplicates, 1)
  t.equal(table.stats.overlaps, 0)
})
