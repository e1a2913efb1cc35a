import t from 'tap'
import { readFileSync } from 'node:fs'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DEFAULT_MAX_FLOW_SEGMENTS, MAX_IMPLAUSIBLE } from '../../../src/flow/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads } from '../../helpers/fixtures.js'
import { tcp4, udp4, type Tuple } from '../../helpers/packets.js'

/**
 * Issue 11: every flow to a watched port is decided from bytes we saw, or
 * gets an explicit decision (midstream, evasion with what the flow did);
 * never a silent accept. Each case fails without its fix. The hellos are
 * curl's and chromium's captured ones (test/fixtures/SOURCES.md).
 */
const view = new PacketView()
const out = new Outcome()
const ruleset = loadRuleset()
const URG_ACK = 0x30
const PSH_ACK = 0x18

function feed (c: Classifier, pkt: Buffer, end = pkt.length, now = 1): number {
  if (decodeIp(pkt, 0, end, view) !== Status.Ok) throw new Error('bad packet')
  return c.classify(view, out, now)
}
/** What the outcome says, in one string: "reason/detail action name". */
function said (): string {
  const d = out.decisions[0]
  return `${d?.reason}/${d?.detail ?? '-'} ${out.verdict?.action} ${out.names[0]}`
}

let port = 41000
function tuple (dport = 443): Tuple { port++; return { src: '10.9.0.1', dst: '10.9.0.2', sport: port, dport } }
const hello = (name: string): Buffer => {
  const f = payloads('tls').find(([n]) => n === `tls/curl-7.88-${name}.bin`)
  if (f === undefined) throw new Error(`no fixture for ${name}`)
  return f[1]
}
const blocked = hello('api.anthropic.com')
/** The blocked hello with the same-length allowed name www.wikipedia.org in its SNI. */
const decoy = Buffer.from(blocked)
decoy.write('www.wikipedia.org', blocked.indexOf('api.anthropic.com'), 'latin1')
const nameAt = blocked.indexOf('api.anthropic.com')
const inline = (): Classifier => new Classifier(ruleset, undefined, undefined, true)

t.test('mid-stream: payload of a flow whose opening was never seen is unknown/midstream inline, nothing offline', async (t) => {
  const appData = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4])
  let c = inline()
  t.equal(feed(c, tcp4(tuple(), 5000, appData)), 1, 'inline: one line')
  t.equal(said(), 'midstream/- allow ', 'the policy\'s unknown action (allow in the example), reason midstream')
  t.equal(out.hold, false, 'saved on the connection: the flow is not queued again')
  // Pieces that never show a start: midstream at the segment limit, not before.
  const tu = tuple()
  const lines: number[] = []
  for (let i = 0; i < DEFAULT_MAX_FLOW_SEGMENTS; i++) lines.push(feed(c, tcp4(tu, 9000 + i * 100, Buffer.alloc(100, 0x41 + (i % 20)))))
  t.equal(lines.indexOf(1), DEFAULT_MAX_FLOW_SEGMENTS - 1, 'decided at the segment limit')
  t.equal(said(), 'midstream/- allow ')
  c = new Classifier(ruleset)
  t.equal(feed(c, tcp4(tuple(), 5000, appData)), 0, 'offline: later data of a flow is simply not an opening')
})

t.test('urgent data inside an opening is evasion (the server\'s kernel removes the byte, we would not)', async (t) => {
  const c = inline()
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 1, blocked.subarray(0, 100))), 0)
  t.equal(feed(c, tcp4(tu, 101, blocked.subarray(100), URG_ACK)), 1)
  t.equal(said(), 'evasion/urgent block ')
  t.equal(feed(c, tcp4(tuple(), 1, decoy, URG_ACK)), 1, 'in a whole hello too')
  t.equal(said(), 'evasion/urgent block ')
})

t.test('a merged packet cut by the copy range: decided on a name before the cut, else evasion/truncated', async (t) => {
  const c = inline()
  const big = Buffer.concat([blocked, Buffer.alloc(3000, 0x16)]) // a hello record claiming more than we copy
  big.writeUInt16BE(blocked.length - 5 + 3000, 3)
  big.writeUInt32BE(0x01000000 | (blocked.length - 9 + 3000), 5)
  big.writeUInt8(1, 5)
  const pkt = tcp4(tuple(), 1, big)
  t.equal(feed(c, pkt, 40 + blocked.length), 1, 'cut after the name')
  t.ok(view.truncated)
  t.equal(said(), 'vendor/- block api.anthropic.com', 'the name before the cut decides')
  t.equal(feed(c, tcp4(tuple(), 1, big), 40 + nameAt - 20), 1, 'cut before the name')
  t.equal(said(), 'evasion/truncated block ')
})

t.test('a piece with fewer hops left than the flow\'s first is not read: a fake completion dies before the server', async (t) => {
  const c = inline()
  const tu = tuple()
  const cut = nameAt + 4
  t.equal(feed(c, tcp4(tu, 1, blocked.subarray(0, cut), PSH_ACK, 60)), 0, 'the real first part')
  t.equal(feed(c, tcp4(tu, 1 + cut, decoy.subarray(cut), PSH_ACK, 3)), 0, 'a fake second part with TTL 3: not read, no decision')
  t.equal(c.flows.stats.implausible, 1)
  t.equal(feed(c, tcp4(tu, 1 + cut, blocked.subarray(cut), PSH_ACK, 60)), 1, 'the real second part')
  t.equal(said(), 'vendor/- block api.anthropic.com')
  // A stream of them is a tool.
  const tu2 = tuple()
  feed(c, tcp4(tu2, 1, blocked.subarray(0, cut), PSH_ACK, 60))
  let n = 0
  for (let i = 0; i <= MAX_IMPLAUSIBLE; i++) n += feed(c, tcp4(tu2, 1 + cut, decoy.subarray(cut), PSH_ACK, 3))
  t.equal(n, 1)
  t.equal(said(), 'evasion/implausible block ')
})

t.test('a fake piece with the same TTL (a bad checksum) decides allow, the real piece that follows is evasion', async (t) => {
  const c = inline()
  const tu = tuple()
  const cut = nameAt + 4
  feed(c, tcp4(tu, 1, blocked.subarray(0, cut)))
  t.equal(feed(c, tcp4(tu, 1 + cut, decoy.subarray(cut))), 1, 'the fake completes the hello here')
  t.equal(said(), 'default/- allow api.wikipedia.org')
  t.equal(out.hold, true, 'held under watch')
  t.equal(feed(c, tcp4(tu, 1 + cut, decoy.subarray(cut))), 0, 'the same bytes again: a retransmission, still held')
  t.equal(out.hold, true)
  t.equal(feed(c, tcp4(tu, 1 + cut, blocked.subarray(cut))), 1, 'the real piece, as the server got it')
  t.equal(said(), 'evasion/disagree block ')
})

t.test('a decided flow\'s packets still in flight get its verdict, without a second line; a new opening is read', async (t) => {
  const c = inline()
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 1, blocked)), 1)
  t.equal(said(), 'vendor/- block api.anthropic.com')
  t.equal(feed(c, tcp4(tu, 1 + blocked.length, Buffer.from([0x17, 0x03, 0x03, 0, 1, 0]))), 0, 'in flight behind it')
  t.equal(out.verdict?.action, 'block')
  t.equal(feed(c, tcp4(tu, 777777, decoy)), 1, 'a new hello on the same ports (a new connection) is read')
  t.equal(said(), 'default/- allow www.wikipedia.org')
})

t.test('TLS alert and empty records a server skips before the hello do not hide it', async (t) => {
  const alert = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x5a]) // warning, user_canceled (Go drops it)
  const c = inline()
  t.equal(feed(c, tcp4(tuple(), 1, Buffer.concat([alert, blocked]))), 1, 'alert + hello in one segment')
  t.equal(said(), 'vendor/- block api.anthropic.com')
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 1, alert)), 0, 'the alert alone: need more')
  t.equal(feed(c, tcp4(tu, 1 + alert.length, blocked)), 1, 'then the hello')
  t.equal(said(), 'vendor/- block api.anthropic.com')
})

t.test('QUIC: a version we cannot read is unknown/quic-version; a low-TTL datagram does not complete a hello', async (t) => {
  const dir = new URL('../../fixtures/quic/', import.meta.url)
  const dg = (n: number): Buffer => readFileSync(new URL(`chromium-156-v1-claude.ai-dg${n}.bin`, dir))
  const c = inline()
  const unknown = Buffer.from(dg(1))
  unknown.writeUInt32BE(0x0a1a2a3a, 1) // a version no stack we read speaks
  t.equal(feed(c, udp4(tuple(), unknown)), 1)
  t.equal(said(), 'quic-version/- allow ', 'the policy\'s unknown action, reason quic-version')
  const tu = tuple()
  t.equal(feed(c, udp4(tu, dg(1))), 0, 'the first datagram: need more')
  const low = udp4(tu, dg(2))
  low[8] = 3
  t.equal(feed(c, low), 0, 'the second at TTL 3: not read')
  t.equal(feed(c, udp4(tu, dg(2))), 1, 'the second at TTL 64: read')
  t.equal(said(), 'vendor/- block claude.ai')
})

t.test('HTTP: every pipelined request in a segment is decided; bytes behind a chunked body add unknown', async (t) => {
  const c = inline()
  const two = Buffer.from('GET / HTTP/1.1\r\nHost: example.org\r\n\r\nGET / HTTP/1.1\r\nHost: claude.ai\r\n\r\n')
  t.equal(feed(c, tcp4(tuple(80), 1, two)), 2, 'two names')
  t.equal(out.verdict?.action, 'block', 'the strictest: the second request\'s host is blocked')
  t.equal(out.names[1], 'claude.ai')
  const chunked = Buffer.from('POST / HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: claude.ai\r\n\r\n')
  t.equal(feed(c, tcp4(tuple(80), 1, chunked)), 2, 'the head read, and unknown for what follows its body')
  t.equal(out.decisions[1]?.reason, 'unknown')
})

t.test('after the SYN, only a message right after it is the opening: a decoy behind the stream is not read; Fast Open data is', async (t) => {
  const SYN = 0x02
  const c = inline()
  const tu = tuple()
  const isn = 100000
  t.equal(feed(c, tcp4(tu, isn, Buffer.alloc(0), SYN)), 0, 'the SYN')
  t.equal(feed(c, tcp4(tu, isn + 1 - 40000, decoy)), 0, 'a decoy hello 40 kB behind the stream: no line')
  t.equal(out.verdict, null)
  t.equal(feed(c, tcp4(tu, isn + 1, blocked)), 1, 'the real hello at the stream\'s start')
  t.equal(said(), 'vendor/- block api.anthropic.com', 'one line, for the real name')
  // A hello split after the SYN: a piece placed as "a start" later cannot move the start.
  const tu2 = tuple()
  feed(c, tcp4(tu2, 5000, Buffer.alloc(0), SYN))
  const cut = nameAt + 4
  t.equal(feed(c, tcp4(tu2, 5001 + cut, blocked.subarray(cut))), 0, 'the second piece first')
  t.equal(feed(c, tcp4(tu2, 5001, blocked.subarray(0, cut))), 1, 'then the first: read whole')
  t.equal(said(), 'vendor/- block api.anthropic.com')
  // TCP Fast Open: the hello rides in the SYN.
  t.equal(feed(c, tcp4(tuple(), 9000, blocked, SYN)), 1, 'a hello in the SYN is read')
  t.equal(said(), 'vendor/- block api.anthropic.com')
})

t.test('the flow table is bounded in bytes: past it the oldest held flows give their bytes up and get unknown', async (t) => {
  const c = new Classifier(ruleset, undefined, { maxTotalBytes: 64 * 1024 }, true)
  const cut = nameAt + 4
  const tus: Tuple[] = []
  for (let i = 0; i < 400; i++) {
    const tu = tuple()
    tus.push(tu)
    feed(c, tcp4(tu, 1, blocked.subarray(0, cut)))
    if (c.flows.bytes > 64 * 1024) t.fail(`past the bound: ${c.flows.bytes}`)
  }
  t.ok(c.flows.stats.shed > 0, `${c.flows.stats.shed} flows shed`)
  t.equal(feed(c, tcp4(tus[0] as Tuple, 1 + cut, blocked.subarray(cut))), 1, 'the oldest flow\'s rest arrives')
  t.equal(said(), 'unknown/- allow ', 'its opening cannot be read any more: the policy\'s unknown')
  t.equal(feed(c, tcp4(tus[399] as Tuple, 1 + cut, blocked.subarray(cut))), 1, 'the newest flow is whole')
  t.equal(said(), 'vendor/- block api.anthropic.com')
})

t.test('QUIC: a datagram of a version we cannot read does not unlock the port pair for the connection that follows', async (t) => {
  const dir = new URL('../../fixtures/quic/', import.meta.url)
  const dg = (n: number): Buffer => readFileSync(new URL(`chromium-156-v1-claude.ai-dg${n}.bin`, dir))
  const c = inline()
  const tu = tuple()
  const unknown = Buffer.from(dg(1))
  unknown.writeUInt32BE(0x1a2a3a4a, 1)
  t.equal(feed(c, udp4(tu, unknown)), 1)
  t.equal(said(), 'quic-version/- allow ')
  t.equal(out.hold, true, 'not saved on the port pair')
  t.equal(feed(c, udp4(tu, dg(1))), 0, 'the real v1 connection on the same port pair: its first datagram')
  t.equal(feed(c, udp4(tu, dg(2))), 1, 'its second: read, and decided on its own name')
  t.equal(said(), 'vendor/- block claude.ai')
})

t.test('a watched flow: a warning alert a server skips and a second hello behind it is a second story', async (t) => {
  const alert = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x5a])
  const c = inline()
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 1 - decoy.length, decoy)), 1, 'a decoy hello (no SYN seen: placed as the opening)')
  t.equal(feed(c, tcp4(tu, 1, Buffer.concat([alert, blocked]))), 1, 'alert + the real hello')
  t.equal(said(), 'evasion/second-hello block api.anthropic.com', 'the line names what the second hello read')
})

/** A DNS query over TCP: the 2-byte length, then the message (RFC 1035 §4.2.2, RFC 7766). */
function dnsTcp (name: string, id = 7): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]))
  const msg = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])])
  return Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 255]), msg])
}

t.test('DNS over TCP: a query split after a whole one is read from its own start; queries past the outcome\'s room add unknown', async (t) => {
  const c = inline()
  const tu = tuple(53)
  const q1 = dnsTcp('www.example.com')
  const q2 = dnsTcp('claude.ai', 8)
  t.equal(feed(c, tcp4(tu, 1, Buffer.concat([q1, q2.subarray(0, 1)]))), 1, 'the whole query is decided')
  t.equal(said(), 'default/- allow www.example.com')
  t.equal(feed(c, tcp4(tu, 1 + q1.length + 1, q2.subarray(1))), 1, 'the rest of the second')
  t.equal(said(), 'vendor/- block claude.ai')
  const many = Buffer.concat([...Array.from({ length: 16 }, (_, i) => dnsTcp(`n${i}.example.com`, i)), dnsTcp('claude.ai', 99)])
  t.equal(feed(c, tcp4(tuple(53), 1, many)), 16)
  t.equal(out.decisions[15]?.reason, 'unknown', 'the 17th query was not read: unknown in the last slot')
})

t.test('HTTP keep-alive: a body and empty lines do not end the watch; the next request is read on its own hosts', async (t) => {
  const c = inline()
  const tu = tuple(80)
  const post = Buffer.from('POST / HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 5\r\n\r\n')
  t.equal(feed(c, tcp4(tu, 1, post)), 1)
  t.equal(said(), 'default/- allow www.example.com')
  t.equal(out.hold, true)
  let seq = 1 + post.length
  t.equal(feed(c, tcp4(tu, seq, Buffer.from('hello'), PSH_ACK, 64, 900)), 0, 'the body')
  t.equal(out.hold, true, 'held: the request is not over')
  seq += 5
  t.equal(feed(c, tcp4(tu, seq, Buffer.from('\r\n'), PSH_ACK, 64, 2000)), 0, 'an empty line after the answer')
  t.equal(out.hold, true, 'held: servers skip it before the next request')
  seq += 2
  t.equal(feed(c, tcp4(tu, seq, Buffer.from('GET / HTTP/1.1\r\nHost: claude.ai\r\n\r\n'), PSH_ACK, 64, 3000)), 1, 'the second request')
  t.equal(said(), 'vendor/- block claude.ai', 'decided on its own host')
  // Another allowed host on the same connection: its own line, still watched.
  const tu2 = tuple(80)
  const get = (h: string): Buffer => Buffer.from(`GET / HTTP/1.1\r\nHost: ${h}\r\n\r\n`)
  feed(c, tcp4(tu2, 1, get('www.example.com')))
  t.equal(feed(c, tcp4(tu2, 1 + get('www.example.com').length, get('www.example.com'), PSH_ACK, 64, 100)), 0, 'the same host again: no line')
  t.equal(out.hold, true)
  t.equal(feed(c, tcp4(tu2, 1 + 2 * get('www.example.com').length, get('www.wikipedia.org'), PSH_ACK, 64, 200)), 1, 'another host: its line')
  t.equal(out.hold, true, 'still watched')
})

t.test('an opening paused past the idle time (or pushed out) does not pass as a stream we never saw', async (t) => {
  const c = inline()
  const tu = tuple()
  const cut = nameAt - 20
  t.equal(feed(c, tcp4(tu, 1, blocked.subarray(0, cut))), 0, 'the first part, no name yet')
  t.equal(feed(c, tcp4(tu, 1 + cut, blocked.subarray(cut)), undefined, 11000), 1, 'the rest, 11 s later')
  t.equal(said(), 'evasion/expired block ')
  const dir = new URL('../../fixtures/quic/', import.meta.url)
  const dg = (n: number): Buffer => readFileSync(new URL(`chromium-156-v1-claude.ai-dg${n}.bin`, dir))
  const q = inline()
  const qt = tuple()
  t.equal(feed(q, udp4(qt, dg(1))), 0, 'QUIC: the first datagram')
  t.equal(feed(q, udp4(qt, dg(2)), undefined, 11000), 1, 'the second, 11 s later')
  t.equal(said(), 'evasion/expired block ')
})

t.test('a connection idle past the table\'s time after its SYN: old bytes behind its start are not midstream', async (t) => {
  const c = inline()
  const tu = tuple()
  feed(c, tcp4(tu, 5000, Buffer.alloc(0), 0x02))
  t.equal(feed(c, tcp4(tu, 5001 - 100, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4])), undefined, 12000), 1, '12 s later, an app-data record behind the start')
  t.equal(said(), 'evasion/expired block ', 'not midstream (which the example policy allows)')
  const tu2 = tuple()
  feed(c, tcp4(tu2, 7000, Buffer.alloc(0), 0x02))
  t.equal(feed(c, tcp4(tu2, 7001, blocked), undefined, 12000), 1, 'a late but real opening is read')
  t.equal(said(), 'vendor/- block api.anthropic.com')
})

t.test('QUIC: a decoy connection cannot lend its CRYPTO bytes to the next one; a differing copy of the decided bytes is evasion', async (t) => {
  const { sealInitial, cryptoFrame } = await import('../../fixtures/quic/seal.js')
  const full = (name: string): Buffer => hello(name).subarray(5)
  const mk = (dcid: string, frames: Buffer): Buffer => {
    const bare = sealInitial({ dcid: Buffer.from(dcid, 'hex'), frames })
    return sealInitial({ dcid: Buffer.from(dcid, 'hex'), frames: Buffer.concat([frames, Buffer.alloc(Math.max(0, 1250 - bare.length))]) })
  }
  const real = full('api.anthropic.com')
  const fake = Buffer.from(real)
  fake.write('www.wikipedia.org', real.indexOf('api.anthropic.com'), 'latin1')
  const k = real.indexOf('api.anthropic.com') + 30
  // Another DCID carries the decoy's first part; the real connection then sends its whole hello.
  const c = inline()
  const tu = tuple()
  t.equal(feed(c, udp4(tu, mk('a1a2a3a4a5a6a7a8', cryptoFrame(0, fake.subarray(0, k))))), 0, 'the decoy\'s first part')
  t.equal(feed(c, udp4(tu, mk('b1b2b3b4b5b6b7b8', cryptoFrame(0, real)))), 1, 'the real connection')
  t.equal(said(), 'vendor/- block api.anthropic.com', 'read as its own connection, not merged with the decoy')
  // Same DCID: a decoy copy of the bytes, then the real copy.
  const c2 = inline()
  const tu2 = tuple()
  t.equal(feed(c2, udp4(tu2, mk('c1c2c3c4c5c6c7c8', cryptoFrame(0, fake)))), 1)
  t.equal(said(), 'default/- allow www.wikipedia.org')
  t.equal(feed(c2, udp4(tu2, mk('c1c2c3c4c5c6c7c8', cryptoFrame(0, real)))), 1, 'the real copy of the same bytes')
  t.equal(said(), 'evasion/disagree block ')
})

t.test('a watched flow that keeps sending before any answer leaves the queue after a bounded number of packets', async (t) => {
  const c = inline()
  const tu = tuple()
  const allowed = hello('www.example.com')
  feed(c, tcp4(tu, 1, allowed, PSH_ACK, 64, 500))
  let seq = 1 + allowed.length
  let held = 0
  for (let i = 0; i < 100 && out.hold; i++) {
    feed(c, tcp4(tu, seq, Buffer.alloc(1000, 0x17), PSH_ACK, 64, 500))
    seq += 1000
    if (out.hold) held++
  }
  t.equal(held, 64, 'held for 64 packets of one-way data, then saved')
  t.equal(out.hold, false)
  t.equal(out.verdict?.action, 'allow')
})

t.test('a close_notify alert still in the queue behind the data that saved an allow gets the allow, no second line', async (t) => {
  const c = inline()
  const tu = tuple()
  const allowed = hello('www.example.com')
  t.equal(feed(c, tcp4(tu, 1, allowed, PSH_ACK, 64, 100)), 1)
  let seq = 1 + allowed.length
  const fin = Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb])
  t.equal(feed(c, tcp4(tu, seq, fin, PSH_ACK, 64, 2000)), 0, 'CCS + Finished after the answer: the allow is saved')
  t.equal(out.hold, false)
  seq += fin.length
  const closeNotify = Buffer.concat([Buffer.from([0x15, 0x03, 0x03, 0x00, 0x1a]), Buffer.alloc(26, 0x42)])
  t.equal(feed(c, tcp4(tu, seq, closeNotify, PSH_ACK, 64, 2000)), 0, 'the encrypted close_notify behind it: no line')
  t.equal(out.verdict?.action, 'allow')
})
