import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { Classifier } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { LINKTYPE_ETHERNET } from '../../../src/decode/packet.js'
import { DecisionLog, MemoryLines } from '../../../src/log/index.js'
import { classifyFile } from '../../../src/source/classify-file.js'
import { FrameReader, unreadText, type FrameStats } from '../../../src/source/frames.js'
import { onLivePacket } from '../../../src/source/live.js'
import { payloads, expected } from '../../helpers/fixtures.js'
import { eth, frag4, pcapOf, tcp4 } from '../../helpers/packets.js'

/**
 * The frame reader is the one path from captured frames to the classifier,
 * for a capture file (`aigate classify`) and a live interface (`aigate
 * capture`). Live capture used to drop malformed packets without counting
 * them; it now counts what it leaves unread exactly as a replay does. The
 * frames are built here around a real captured HTTP request.
 */
const ruleset = loadRuleset()
const exp = expected()
const [httpName, httpReq] = payloads('http').find(([n]) => n.includes('curl-7.88-chatgpt.com')) as [string, Buffer]
const HOST = exp[httpName]?.host as string
const dir = mkdtempSync(join(tmpdir(), 'aigate-frames-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const tuple = { src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 80 }

/** A TCP header whose data offset (60) runs past its 20 bytes: no stack sends it. */
const badTcp = tcp4({ ...tuple, sport: 40001 }, 1, Buffer.alloc(0), 0x02)
badTcp[32] = 0xf0
/** An ARP frame. */
const arp = eth(Buffer.alloc(28))
arp.writeUInt16BE(0x0806, 12)
/** The same contradiction, in a datagram cut in two fragments: malformed once rebuilt. */
const badSeg = Buffer.from(badTcp.subarray(20))
const frames = [
  eth(tcp4(tuple, 1, httpReq)), // a request that names HOST
  eth(badTcp), // malformed
  arp, // not IP
  eth(frag4(badSeg.subarray(0, 16), 0, true)),
  eth(frag4(badSeg.subarray(16), 16, false)), // rebuilt: malformed
]

/** The frames written as a capture file, to replay. */
function pcap (list: Buffer[]): string {
  const path = join(dir, 'frames.pcap')
  writeFileSync(path, pcapOf(list))
  return path
}

/** The frames as the `pcap` package hands them to a live session: bytes and libpcap's record header (caplen at byte 8). */
function live (list: Buffer[]): { stats: FrameStats, names: string[] } {
  const reader = new FrameReader(new Classifier(ruleset))
  const mem = new MemoryLines()
  const onPacket = onLivePacket(reader, LINKTYPE_ETHERNET, new DecisionLog(mem))
  for (const f of list) {
    const header = Buffer.alloc(16)
    header.writeUInt32LE(f.length, 8); header.writeUInt32LE(f.length, 12)
    onPacket({ buf: f, header })
  }
  return { stats: reader.finish(), names: mem.parsed().map((l) => (l as Record<string, any>).destination?.domain as string) }
}

t.test('live capture counts the malformed packets it drops', async (t) => {
  const r = live(frames)
  t.same(r.names, [HOST], 'the request is still classified and logged')
  t.equal(r.stats.packets, 5)
  t.equal(r.stats.notIp, 1, 'the ARP frame')
  t.equal(r.stats.malformed, 2, 'the bad TCP header, whole and rebuilt from fragments')
  t.equal(r.stats.decoded, 1)
  t.equal(r.stats.decisions, 1)
  t.equal(r.stats.fragDiscarded, 0)
  t.equal(unreadText(r.stats), '1 not IP, 2 malformed', 'what `aigate capture` reports when it stops')
})

t.test('live capture and a replay of the same frames count alike', async (t) => {
  const mem = new MemoryLines()
  const replay = await classifyFile(pcap(frames), new Classifier(ruleset), new DecisionLog(mem))
  t.same(live(frames).stats, replay)
  t.same(mem.parsed().map((l) => (l as Record<string, any>).destination?.domain as string), [HOST])
})

t.test('a fragment that never completes is counted at the end, live as in a replay', async (t) => {
  const lone = [eth(frag4(badSeg.subarray(0, 16), 0, true))]
  const r = live(lone)
  t.equal(r.stats.fragDiscarded, 1)
  t.equal(r.stats.malformed, 0)
  t.match(unreadText(r.stats), /, 1 fragmented datagrams not rebuilt/)
  t.same(r.stats, await classifyFile(pcap(lone), new Classifier(ruleset), new DecisionLog(new MemoryLines())))
})

t.test('a frame cut short by the capture is read up to its caplen', async (t) => {
  // libpcap's caplen, not the buffer's length, bounds the frame: here it
  // ends inside the IP header.
  const reader = new FrameReader(new Classifier(ruleset))
  const onPacket = onLivePacket(reader, LINKTYPE_ETHERNET, new DecisionLog(new MemoryLines()))
  const header = Buffer.alloc(16)
  header.writeUInt32LE(14 + 10, 8)
  onPacket({ buf: frames[0]!, header })
  t.equal(reader.stats.packets, 1)
  t.equal(reader.stats.decoded, 0)
  t.equal(reader.stats.decisions, 0)
})
