import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { classifyFile, type ReplayStats } from '../../../src/source/classify-file.js'
import { Classifier } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DecisionLog, MemoryLines } from '../../../src/log/index.js'
import { FragTable } from '../../../src/flow/ipfrag.js'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { payloads, expected } from '../../helpers/fixtures.js'
import { eth, frag4, pcapOf } from '../../helpers/packets.js'

/**
 * IP fragments cut where evasion tools cut them, written into capture files
 * and replayed through `aigate classify` (classifyFile). The transport
 * payloads are real captured requests; the headers are built here.
 */
const exp = expected()
const ruleset = loadRuleset()
const [httpName, httpReq] = payloads('http').find(([n]) => n.includes('curl-7.88-chatgpt.com')) as [string, Buffer]
const HOST = exp[httpName]?.host as string
const dir = mkdtempSync(join(tmpdir(), 'aigate-frag-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** A TCP segment to port 80 carrying `payload`, with `optLen` bytes of NOP options. */
function tcpSegment (payload: Buffer, optLen = 0): Buffer {
  const h = 20 + optLen
  const b = Buffer.alloc(h + payload.length)
  b.writeUInt16BE(40000, 0); b.writeUInt16BE(80, 2); b.writeUInt32BE(1, 4)
  b[12] = (h / 4) << 4; b[13] = 0x18
  b.fill(1, 20, h) // NOP
  payload.copy(b, h)
  return b
}

/** Cut `seg` at the given offsets (multiples of 8) into IPv4 fragments. */
function cut4 (seg: Buffer, ...at: number[]): Buffer[] {
  const edges = [0, ...at, seg.length]
  const out: Buffer[] = []
  for (let i = 0; i + 1 < edges.length; i++) {
    out.push(frag4(seg.subarray(edges[i], edges[i + 1]), edges[i] as number, i + 2 < edges.length))
  }
  return out
}

/** A pcap file (LINKTYPE_ETHERNET) of the frames, one per millisecond. */
function pcap (frames: Buffer[]): string {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.pcap`)
  writeFileSync(path, pcapOf(frames))
  return path
}

/** Replay the frames; the names logged and the replay counters. */
async function replay (frames: Buffer[]): Promise<{ names: string[], stats: ReplayStats }> {
  const mem = new MemoryLines()
  const stats = await classifyFile(pcap(frames), new Classifier(ruleset), new DecisionLog(mem))
  return { names: mem.parsed().map((l) => (l as Record<string, any>).destination?.domain as string), stats }
}

t.test('a first fragment with under 20 bytes of TCP in a padded Ethernet frame', async (t) => {
  // zapret ipfrag2 with the cut at byte 8: the frame is padded to 60 bytes,
  // and the padding must not be taken as the fragment's data.
  const frames = cut4(tcpSegment(httpReq), 8).map(eth)
  t.ok(frames[0]!.length > 14 + 28, 'the first frame carries padding')
  for (const order of [frames, [...frames].reverse()]) {
    const r = await replay(order)
    t.same(r.names, [HOST])
    t.equal(r.stats.malformed, 0)
  }
})

t.test('a fragment cut short by the capture is not taken as whole', async (t) => {
  const frames = cut4(tcpSegment(httpReq), 24).map(eth)
  const last = frames[1]!.subarray(0, frames[1]!.length - 10)
  t.same((await replay([frames[0]!, last])).names, [])
  const table = new FragTable()
  const view = new PacketView()
  for (const f of [frames[0]!, last]) {
    decodeIp(f, 14, f.length, view)
    t.equal(table.add(view, 1), null)
  }
  t.equal(table.stats.truncated, 1)
})

t.test('a first fragment cut inside the TCP options is handed to reassembly', async (t) => {
  // dataOff 32 (12 bytes of options), cut at byte 24: the first fragment
  // holds a partial TCP header, which is fine for a fragment.
  const frames = cut4(tcpSegment(httpReq, 12), 24).map(eth)
  for (const order of [frames, [...frames].reverse()]) {
    const r = await replay(order)
    t.same(r.names, [HOST])
    t.equal(r.stats.malformed, 0)
    t.equal(r.stats.decoded, 1)
  }
  // Three fragments, the middle one inside the options too.
  t.same((await replay(cut4(tcpSegment(httpReq, 12), 16, 24).map(eth))).names, [HOST])
})

t.test('a rebuilt packet whose TCP header contradicts its length is counted as malformed', async (t) => {
  const seg = tcpSegment(Buffer.alloc(0), 12)
  seg[12] = 0xf0 // dataOff 60 > 32 bytes
  const r = await replay(cut4(seg, 16).map(eth))
  t.same(r.names, [])
  t.equal(r.stats.malformed, 1)
})

/**
 * An IPv6 fragment of datagram 99: fixed header, Fragment header whose Next
 * Header is `next`, then `data` at byte `off` of the fragmentable part.
 */
function frag6 (data: Buffer, off: number, more: boolean, next: number, id = 99): Buffer {
  const b = Buffer.alloc(48 + data.length)
  b[0] = 0x60; b.writeUInt16BE(8 + data.length, 4); b[6] = 44; b[7] = 64
  b[8] = 0x20; b[9] = 0x01; b[23] = 1 // 2001::1
  b[24] = 0x20; b[25] = 0x01; b[39] = 2 // 2001::2
  b[40] = next; b.writeUInt16BE(off | (more ? 1 : 0), 42); b.writeUInt32BE(id, 44)
  data.copy(b, 48)
  return b
}

function cut6 (part: Buffer, next: number, ...at: number[]): Buffer[] {
  const edges = [0, ...at, part.length]
  const out: Buffer[] = []
  for (let i = 0; i + 1 < edges.length; i++) {
    out.push(frag6(part.subarray(edges[i], edges[i + 1]), edges[i] as number, i + 2 < edges.length, next))
  }
  return out
}

/** Destination Options (RFC 8200 §4.6) of 8 bytes, then TCP: one PadN option. */
const DEST_OPTS = Buffer.from([6, 0, 1, 4, 0, 0, 0, 0])

t.test('IPv6: headers after the Fragment header belong to the fragmentable part', async (t) => {
  // RFC 8200 §4.5: Destination Options after the Fragment header travel in
  // the fragments; the rebuilt packet is read from them.
  const part = Buffer.concat([DEST_OPTS, tcpSegment(httpReq)])
  for (const at of [[32], [32, 48], [40, 64, 96]]) {
    const frames = cut6(part, 60, ...at).map(eth)
    for (const order of [frames, [...frames].reverse()]) {
      const r = await replay(order)
      t.same(r.names, [HOST], `cut at ${at.join(',')}`)
      t.equal(r.stats.malformed, 0)
    }
  }
  // Without extension headers after it, the same.
  t.same((await replay(cut6(tcpSegment(httpReq), 6, 24).map(eth))).names, [HOST])
  // Later fragments may carry another Next Header: the first fragment's counts.
  const frames = cut6(part, 60, 32)
  frames[1]![40] = 6
  t.same((await replay(frames.map(eth))).names, [HOST])
})

t.test('IPv6: an atomic fragment (offset 0, no M) is read as a whole packet', async (t) => {
  // RFC 6946 §4
  const r = await replay(cut6(Buffer.concat([DEST_OPTS, tcpSegment(httpReq)]), 60).map(eth))
  t.same(r.names, [HOST])
})

t.test('IPv6: a first fragment cut before the end of the TCP header is dropped, as Linux drops it', async (t) => {
  // RFC 8200 §4.5: the first fragment must hold every header through the
  // upper-layer header; Linux discards it (ipv6frag_thdr_truncated).
  const part = Buffer.concat([DEST_OPTS, tcpSegment(httpReq)])
  for (const at of [8, 16, 24]) t.same((await replay(cut6(part, 60, at, 48).map(eth))).names, [], `cut at ${at}`)
  const table = new FragTable()
  const view = new PacketView()
  for (const f of cut6(part, 60, 24)) {
    decodeIp(f, 0, f.length, view)
    t.equal(table.add(view, 1), null)
  }
  t.equal(table.stats.headersCut, 1)
  t.equal(table.size, 1, 'the later fragment waits for a whole first fragment')
  // The whole TCP header but only part of its options: kept (Linux checks 20 bytes).
  t.same((await replay(cut6(Buffer.concat([DEST_OPTS, tcpSegment(httpReq, 12)]), 60, 32).map(eth))).names, [HOST])
})

/** Feed IPv4 packets to a FragTable; the packets it rebuilt. */
function feed (table: FragTable, packets: Buffer[]): Buffer[] {
  const view = new PacketView()
  const out: Buffer[] = []
  for (const p of packets) {
    decodeIp(p, 0, p.length, view)
    const whole = table.add(view, 1)
    if (whole !== null) out.push(whole)
  }
  return out
}

t.test('overlapping fragments discard the datagram, as Linux and RFC 5722 do', async (t) => {
  const seg = tcpSegment(httpReq)
  const [a, b] = [seg.subarray(0, 32), seg.subarray(24)]
  // b starts inside a: the host drops the datagram, so no name may be read,
  // whichever copy of the overlap would have won, and in either order.
  for (const order of [[frag4(a, 0, true), frag4(b, 24, false)], [frag4(b, 24, false), frag4(a, 0, true)]]) {
    t.same((await replay(order.map(eth))).names, [])
    const table = new FragTable()
    t.same(feed(table, order), [])
    t.equal(table.stats.overlaps, 1)
    t.equal(table.size, 0, 'the datagram is gone')
  }
  // A later fragment with the same id starts a new datagram.
  const table = new FragTable()
  t.equal(feed(table, [frag4(a, 0, true), frag4(b, 24, false), ...cut4(seg, 32)]).length, 1)
  // An overlap that rewrites the Host header (the classic evasion): no name.
  const fake = Buffer.from(seg)
  fake.write('Host: example.org', seg.indexOf('Host: '), 'latin1')
  const rewritten = await replay([frag4(seg.subarray(0, 48), 0, true), frag4(fake.subarray(40), 40, false)].map(eth))
  t.same(rewritten.names, [])
  t.equal(rewritten.stats.fragDiscarded, 1, 'the replay counts the datagram it did not rebuild')
  // IPv6 (RFC 5722 §4): the same.
  const part = Buffer.concat([DEST_OPTS, seg])
  const six = [frag6(part.subarray(0, 40), 0, true, 60), frag6(part.subarray(32), 32, false, 60)]
  t.same((await replay(six.map(eth))).names, [])
})

t.test('a duplicate inside a held run is dropped and the datagram kept', async (t) => {
  const seg = tcpSegment(httpReq)
  const [f0, f1, f2] = cut4(seg, 32, 64) as [Buffer, Buffer, Buffer]
  // Retransmitted fragments, whole or in part (a 16-byte piece of the first run).
  const piece = frag4(seg.subarray(8, 24), 8, true)
  for (const order of [[f0, f0, f1, f2], [f0, f1, piece, f2], [f2, f1, f1, f0]]) {
    const table = new FragTable()
    const out = feed(table, order)
    t.equal(out.length, 1)
    t.same(out[0]!.subarray(20), seg)
    t.equal(table.stats.duplicates, 1)
    t.equal(table.stats.overlaps, 0)
    t.same((await replay(order.map(eth))).names, [HOST])
  }
  // Fragments that arrived below the highest one make separate runs: a
  // copy spanning two of them is an overlap for Linux, and for us.
  const [g0, g1, g2, g3] = cut4(seg, 16, 32, 64) as [Buffer, Buffer, Buffer, Buffer]
  const table = new FragTable()
  t.same(feed(table, [g3, g0, g1, frag4(seg.subarray(0, 32), 0, true), g2]), [])
  t.equal(table.stats.overlaps, 1)
  // While in order they form one run, and the same copy is a duplicate.
  const inOrder = new FragTable()
  t.equal(feed(inOrder, [f0, f1, frag4(seg.subarray(0, 64), 0, true), f2]).length, 1)
  t.equal(inOrder.stats.duplicates, 1)
})

t.test('fragments that disagree on the end, or are empty, discard the datagram', async (t) => {
  const seg = tcpSegment(httpReq)
  const [f0, f1] = cut4(seg, 32) as [Buffer, Buffer]
  const short = frag4(seg.subarray(32, 48), 32, false)
  const beyond = frag4(seg.subarray(48, 56), 48, true)
  const empty = frag4(Buffer.alloc(0), 32, true)
  // (The fragments after the discard start a new datagram, left incomplete.)
  for (const order of [[f1, short, f0], [short, beyond, f0], [f0, empty, f1]]) {
    const table = new FragTable()
    feed(table, order)
    t.equal(table.stats.inconsistent, 1)
    t.same((await replay(order.map(eth))).names, [])
  }
})

t.test('IPv6: a non-last fragment whose length is not a multiple of 8 is dropped alone', async (t) => {
  // RFC 8200 §4.5; Linux answers with a Parameter Problem and keeps the datagram.
  const part = Buffer.concat([DEST_OPTS, tcpSegment(httpReq)])
  const odd = frag6(part.subarray(32, 45), 32, true, 60)
  const table = new FragTable()
  const view = new PacketView()
  decodeIp(odd, 0, odd.length, view)
  t.equal(table.add(view, 1), null)
  t.equal(table.stats.misaligned, 1)
  t.same((await replay([odd, ...cut6(part, 60, 32)].map(eth))).names, [HOST])
})
