import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome, QUIC_MIN_INITIAL_DATAGRAM } from '../../../src/classify/index.js'
import { loadRuleset, DEFAULT_RULES_DIR, DEFAULT_POLICY } from '../../../src/config/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads } from '../../helpers/fixtures.js'
import { tcp4, udp4, type Tuple } from '../../helpers/packets.js'
import { sealInitial, cryptoFrame } from '../../fixtures/quic/seal.js'

/**
 * Tricks that show the filter one story and the server another, found in a
 * review on 2026-11-26 (zapret/GoodbyeDPI-style fakes, decoys and names no
 * host-name reader takes). Each case fails without its fix.
 */
const view = new PacketView()
const out = new Outcome()
const ACK = 0x10
const PSH_ACK = 0x18

function feed (c: Classifier, pkt: Buffer, now = 1): number {
  if (decodeIp(pkt, 0, pkt.length, view) !== Status.Ok) throw new Error('bad packet')
  return c.classify(view, out, now)
}

let port = 30000
function tuple (dport = 443): Tuple { port++; return { src: '10.9.0.1', dst: '10.9.0.2', sport: port, dport } }

const hello = (name: string): Buffer => {
  const f = payloads('tls').find(([n]) => n === `tls/curl-7.88-${name}.bin`)
  if (f === undefined) throw new Error(`no fixture for ${name}`)
  return f[1]
}
/** A copy of a captured hello with its SNI bytes replaced by others of the same length. */
function withSni (h: Buffer, from: string, to: string): Buffer {
  if (from.length !== to.length) throw new Error('same length only')
  const i = h.indexOf(Buffer.from(from, 'latin1'))
  if (i < 0) throw new Error('SNI not found')
  const b = Buffer.from(h)
  b.write(to, i, 'latin1')
  return b
}

/** A policy file that differs from the example in one line. */
function policyWith (line: RegExp, replacement: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-evasion-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'policy.yaml')
  const text = readFileSync(DEFAULT_POLICY, 'utf8')
  if (!line.test(text)) throw new Error('policy line not found')
  writeFileSync(file, text.replace(line, replacement))
  return file
}
const blockUnknown = loadRuleset(DEFAULT_RULES_DIR, policyWith(/^unknown: allow$/m, 'unknown: block'))

t.test('fake "first data" on an allowed flow does not end the watch', async (t) => {
  const allowed = hello('www.example.com')
  const blocked = hello('api.anthropic.com')
  const data = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb])
  const fakes: Array<[string, (tu: Tuple) => Buffer]> = [
    ['lower TTL than the hello', (tu) => tcp4(tu, 1 + allowed.length, data, PSH_ACK, 3)],
    ['no ACK flag (datanoack)', (tu) => tcp4(tu, 1 + allowed.length, data, 0x08, 64)],
    ['sequence number before the hello ends (badseq)', (tu) => tcp4(tu, 1 + allowed.length - 10000, data, PSH_ACK, 64)],
  ]
  for (const [what, fake] of fakes) {
    const c = new Classifier(loadRuleset())
    const tu = tuple()
    t.equal(feed(c, tcp4(tu, 1, allowed)), 1, `${what}: the decoy hello is decided`)
    t.equal(out.verdict?.action, 'allow')
    t.equal(out.hold, true, 'an allow is held under watch')
    feed(c, fake(tu))
    t.equal(out.hold, true, `${what}: not saved on the connection`)
    t.equal(c.flows.size, 1, `${what}: still watched`)
    t.equal(c.flows.stats.implausible, 1, `${what}: counted`)
    // The real hello, with another name, now reaches the daemon: evasion.
    t.equal(feed(c, tcp4(tu, 1, blocked)), 1)
    t.equal(out.verdict?.reason, 'evasion', `${what}: the real hello after the fake is evasion`)
    t.equal(out.verdict?.action, 'block')
    t.equal(out.hold, false)
  }
  // A fake hello and a fake data segment that share a low TTL: the data is no proof either.
  {
    const c = new Classifier(loadRuleset())
    const tu = tuple()
    t.equal(feed(c, tcp4(tu, 1, allowed, PSH_ACK, 2)), 1, 'a decoy hello with TTL 2')
    feed(c, tcp4(tu, 1 + allowed.length, data, PSH_ACK, 2))
    t.equal(out.hold, true, 'data with the same low TTL does not end the watch')
    t.equal(feed(c, tcp4(tu, 1, blocked, PSH_ACK, 63)), 1)
    t.equal(out.verdict?.reason, 'evasion', 'the real hello after both fakes is evasion')
  }
  // The real first data, ACK set, same TTL, at the hello's end: the allow is saved.
  const c = new Classifier(loadRuleset())
  const tu = tuple()
  feed(c, tcp4(tu, 1, allowed, PSH_ACK, 60))
  feed(c, tcp4(tu, 1 + allowed.length, data, ACK, 60))
  t.equal(out.hold, true, 'data that acknowledges nothing new (sent before any answer) does not end the watch')
  feed(c, tcp4(tu, 1 + allowed.length, data, ACK, 60, 5000))
  t.equal(out.hold, false, 'real data, after the server answered, ends the watch')
  t.equal(out.verdict?.action, 'allow')
  t.equal(c.flows.reassembling(), 0, 'no longer watched (offline a decided mark stays for the rest of the flow)')
  t.equal(feed(c, tcp4(tu, 1 + allowed.length + data.length, data, ACK, 60, 6000)), 0, 'later data: no new line')
  t.equal(out.verdict?.action, 'allow')
  t.equal(c.flows.stats.implausible, 0)
})

t.test('a hello whose SNI is not a host name gets the unknown decision', async (t) => {
  // nginx cuts an SNI at ':' and serves api.openai.com; we cannot read it as a name.
  const odd = withSni(hello('api.openai.com'), 'api.openai.com', 'api.openai.c:1')
  const c = new Classifier(loadRuleset())
  t.equal(feed(c, tcp4(tuple(), 1, odd)), 1, 'one decision')
  t.equal(out.verdict?.reason, 'unknown')
  t.equal(out.verdict?.action, 'allow', 'the example policy: unknown allow')
  t.equal(out.invalidNames, 1)
  const strict = new Classifier(blockUnknown)
  t.equal(feed(strict, tcp4(tuple(), 1, odd)), 1)
  t.equal(out.verdict?.action, 'block', 'unknown: block blocks it')
  t.equal(out.hold, false, 'saved on the connection')
})

t.test('a whole hello without SNI in one segment gets the unknown decision, as a reassembled one does', async (t) => {
  // TLS 1.2 ClientHello, no extensions: record, handshake header, version, random, no session, 1 suite, null compression.
  const body = Buffer.concat([Buffer.from([0x03, 0x03]), Buffer.alloc(32, 7), Buffer.from([0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00])])
  const hs = Buffer.concat([Buffer.from([0x01, 0x00, 0x00, body.length]), body])
  const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, hs.length]), hs])
  const c = new Classifier(blockUnknown)
  t.equal(feed(c, tcp4(tuple(), 1, rec)), 1)
  t.equal(out.status, Status.NoName)
  t.equal(out.verdict?.reason, 'unknown')
  t.equal(out.verdict?.action, 'block')
  // Split in two, the same hello went through the flow table and got the same.
  const tu = tuple()
  t.equal(feed(c, tcp4(tu, 1, rec.subarray(0, 20))), 0)
  t.equal(feed(c, tcp4(tu, 21, rec.subarray(20))), 1)
  t.equal(out.verdict?.reason, 'unknown')
  // A handshake message that is not a hello (ClientKeyExchange after a restart) is not ours: no decision.
  const cke = Buffer.from([0x16, 0x03, 0x03, 0x00, 0x06, 0x10, 0x00, 0x00, 0x02, 0x01, 0x02])
  t.equal(feed(c, tcp4(tuple(), 1, cke)), 0)
  t.equal(out.verdict, null)
})

t.test('a DNS query whose only name is not a host name gets the unknown decision', async (t) => {
  // dig's query for api.openai.com with a space in the first label.
  const q = payloads('dns').find(([n]) => n === 'dns/dig-9.18-udp-a.bin')?.[1] as Buffer
  const i = q.indexOf(Buffer.from('openai'))
  const bad = Buffer.from(q); bad[i + 2] = 0x20
  const c = new Classifier(blockUnknown)
  t.equal(feed(c, udp4(tuple(53), bad)), 1)
  t.equal(out.verdict?.reason, 'unknown')
  t.equal(out.verdict?.action, 'block')
  t.equal(feed(c, udp4(tuple(53), q)), 1, 'the real query still reads')
  t.equal(out.names[0], 'api.openai.com')
})

t.test('QUIC: a short decoy Initial is ignored, a bad packet coalesced with a good one does not hide it', async (t) => {
  // The handshake message of curl's hello (without its 5-byte record header) as QUIC CRYPTO data.
  const dcid = Buffer.from('8394c8f03e515708', 'hex')
  const ch = (name: string): Buffer => hello(name).subarray(5)
  const initial = (name: string, size: number, id = dcid): Buffer => {
    const frames = cryptoFrame(0, ch(name))
    const bare = sealInitial({ dcid: id, frames })
    return sealInitial({ dcid: id, frames: Buffer.concat([frames, Buffer.alloc(Math.max(0, size - bare.length))]) })
  }
  const c = new Classifier(loadRuleset())
  const short = initial('www.example.com', 600)
  t.ok(short.length < QUIC_MIN_INITIAL_DATAGRAM)
  const tu = tuple()
  t.equal(feed(c, udp4(tu, short)), 0, 'a client Initial in a datagram under 1200 bytes is not read')
  t.equal(out.verdict, null)
  t.equal(c.quicFlows.size, 0, 'and leaves no state')
  t.equal(feed(c, udp4(tu, initial('api.anthropic.com', 1200))), 1, 'the full-size Initial after it decides')
  t.equal(out.names[0], 'api.anthropic.com')
  t.equal(out.verdict?.action, 'block')

  // Good Initial + an Initial of the same connection whose tag does not verify.
  const good = initial('api.anthropic.com', 1200)
  const bad = Buffer.from(initial('www.example.com', 200))
  bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0xff
  const c2 = new Classifier(loadRuleset())
  t.equal(feed(c2, udp4(tuple(), Buffer.concat([good, bad]))), 1, 'the good packet is read')
  t.equal(out.names[0], 'api.anthropic.com')
  t.equal(out.verdict?.action, 'block')
  const c3 = new Classifier(loadRuleset())
  t.equal(feed(c3, udp4(tuple(), Buffer.concat([bad, good]))), 1, 'also when the bad one comes first')
  t.equal(out.names[0], 'api.anthropic.com')
})

t.test('QUIC: an allow is held until the client answers the server; a decoy Initial does not wave a second connection through', async (t) => {
  const dg = (conn: string, i: number): Buffer => readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'quic', `chromium-156-v1-${conn}-dg${i}.bin`))
  const withTtl = (b: Buffer, ttl: number): Buffer => { b[8] = ttl; return b }

  // Chromium to www.example.com (allowed): two hello datagrams, then Initial ACK + Handshake.
  const c = new Classifier(loadRuleset())
  const tu = tuple()
  t.equal(feed(c, udp4(tu, dg('www.example.com', 1))), 0, 'the hello continues')
  t.equal(feed(c, udp4(tu, dg('www.example.com', 2))), 1)
  t.equal(out.verdict?.action, 'allow')
  t.equal(out.hold, true, 'held, not saved on the connection')
  t.equal(feed(c, udp4(tu, dg('www.example.com', 1))), 0, 'a retransmitted first flight: no second line')
  t.equal(out.hold, true)
  t.equal(out.verdict?.action, 'allow')
  // A fake Handshake answer with fewer hops left does not end the watch.
  t.equal(feed(c, withTtl(udp4(tu, dg('www.example.com', 3)), 3)), 0)
  t.equal(out.hold, true, 'lower TTL: still held')
  t.equal(feed(c, udp4(tu, dg('www.example.com', 3))), 0)
  t.equal(out.hold, false, 'Initial ACK + Handshake: the allow is saved')
  t.equal(out.verdict?.action, 'allow')

  // A full-size decoy for an allowed name, then a real Initial of a new connection on the same port pair.
  const mk = (name: string, dcid: string): Buffer => {
    const frames = cryptoFrame(0, hello(name).subarray(5))
    const bare = sealInitial({ dcid: Buffer.from(dcid, 'hex'), frames })
    return sealInitial({ dcid: Buffer.from(dcid, 'hex'), frames: Buffer.concat([frames, Buffer.alloc(1250 - bare.length)]) })
  }
  const c2 = new Classifier(loadRuleset())
  const tu2 = tuple()
  t.equal(feed(c2, udp4(tu2, mk('www.example.com', '0102030405060708'))), 1)
  t.equal(out.verdict?.action, 'allow')
  t.equal(out.hold, true)
  t.equal(feed(c2, udp4(tu2, mk('api.anthropic.com', '1112131415161718'))), 1, 'the second connection is read')
  t.equal(out.names[0], 'api.anthropic.com')
  t.equal(out.verdict?.reason, 'vendor', 'decided as its own connection (a QUIC decision belongs to a DCID)')
  t.equal(out.verdict?.action, 'block')
  t.equal(out.hold, false)
  // A blocked QUIC flow is saved at once, as before.
  const c3 = new Classifier(loadRuleset())
  t.equal(feed(c3, udp4(tuple(), mk('api.anthropic.com', '2122232425262728'))), 1)
  t.equal(out.verdict?.action, 'block')
  t.equal(out.hold, false)
})

t.test('HTTP: every host a server may act on is decided, leading empty lines included', async (t) => {
  const req = (s: string): Buffer => Buffer.from(s, 'latin1')
  const c = new Classifier(loadRuleset())
  t.equal(feed(c, tcp4(tuple(80), 1, req('GET http://api.anthropic.com/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n'))), 2, 'target and Host')
  t.same([out.names[0], out.names[1]], ['api.anthropic.com', 'www.example.com'])
  t.equal(out.verdict?.action, 'block', 'the strictest applies')
  t.equal(feed(c, tcp4(tuple(80), 1, req('\r\n\r\nGET / HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n'))), 1, 'after empty lines')
  t.equal(out.verdict?.action, 'block')
  t.equal(feed(c, tcp4(tuple(80), 1, req('GET / HTTP/1.1\r\nHost: api.anthropic.com:x\r\n\r\n'))), 1, 'a host with an odd port')
  t.equal(out.names[0], 'api.anthropic.com')
  // An IP-literal target beside an allowed Host: the literal cannot be read, so unknown is added.
  const strict = new Classifier(blockUnknown)
  t.equal(feed(strict, tcp4(tuple(80), 1, req('GET http://[2001:db8::1]/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n'))), 2)
  t.equal(out.decisions[1]?.reason, 'unknown')
  t.equal(out.verdict?.action, 'block')
  // A retransmitted request with two names on an allowed flow is the same story, not evasion.
  const tu = tuple(80)
  const two = req('GET http://www.example.org/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n')
  t.equal(feed(c, tcp4(tu, 1, two)), 2)
  t.equal(out.verdict?.action, 'allow')
  t.equal(feed(c, tcp4(tu, 1, two)), 0, 'no second line')
  t.equal(out.verdict?.action, 'allow')
  t.equal(out.hold, true)
})

t.test('a nameless decoy hello does not save an allow: the unknown decision is watched', async (t) => {
  const body = Buffer.concat([Buffer.from([0x03, 0x03]), Buffer.alloc(32, 7), Buffer.from([0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00])])
  const hs = Buffer.concat([Buffer.from([0x01, 0x00, 0x00, body.length]), body])
  const nameless = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, hs.length]), hs])
  const blocked = hello('api.anthropic.com')
  for (const split of [false, true]) {
    const c = new Classifier(loadRuleset())
    const tu = tuple()
    if (split) {
      feed(c, tcp4(tu, 1, nameless.subarray(0, 20)))
      t.equal(feed(c, tcp4(tu, 21, nameless.subarray(20))), 1)
    } else {
      t.equal(feed(c, tcp4(tu, 1, nameless)), 1)
    }
    t.equal(out.verdict?.reason, 'unknown')
    t.equal(out.hold, true, `split=${split}: the unknown allow is held under watch`)
    t.equal(feed(c, tcp4(tu, 1, blocked)), 1)
    t.equal(out.verdict?.reason, 'evasion', `split=${split}: the named hello behind it is evasion`)
    t.equal(out.verdict?.action, 'block')
  }
  // Behind an allowed name, a second hello we cannot read is two stories too.
  const c = new Classifier(loadRuleset())
  const tu = tuple()
  const allowed = hello('www.example.com')
  feed(c, tcp4(tu, 1, allowed))
  t.equal(out.hold, true)
  feed(c, tcp4(tu, 1, nameless.subarray(0, 20)))
  t.equal(feed(c, tcp4(tu, 21, nameless.subarray(20))), 1)
  t.equal(out.verdict?.reason, 'evasion')
})

t.test('a hello padded past the reassembly cap is decided on its server name when the name comes first', async (t) => {
  const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 255])
  const bigHello = (name: string, paddingFirst: boolean): Buffer => {
    const host = Buffer.from(name)
    const sni = Buffer.concat([u16(0), u16(host.length + 5), u16(host.length + 3), Buffer.from([0]), u16(host.length), host])
    const pad = Buffer.concat([u16(21), u16(20000), Buffer.alloc(20000)]) // RFC 7685 padding
    const exts = paddingFirst ? Buffer.concat([pad, sni]) : Buffer.concat([sni, pad])
    const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 9), Buffer.from([0]), u16(2), Buffer.from([0x13, 0x01, 1, 0]), u16(exts.length), exts])
    const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body])
    const records: Buffer[] = []
    for (let i = 0; i < hs.length; i += 16384) {
      const chunk = hs.subarray(i, i + 16384)
      records.push(Buffer.from([0x16, 3, 1]), u16(chunk.length), chunk)
    }
    return Buffer.concat(records)
  }
  const deliver = (c: Classifier, stream: Buffer): number => {
    const tu = tuple()
    const step = Math.ceil(stream.length / 5)
    let decided = 0
    for (let i = 0; i < stream.length && decided === 0; i += step) decided = feed(c, tcp4(tu, 1 + i, stream.subarray(i, i + step)))
    return decided
  }
  const c = new Classifier(loadRuleset())
  t.equal(deliver(c, bigHello('api.anthropic.com', false)), 1)
  t.equal(out.names[0], 'api.anthropic.com', 'the name before the padding is read')
  t.equal(out.verdict?.action, 'block')
  t.ok(c.flows.stats.overflowed >= 1, 'the hello did run past the cap')
  t.equal(deliver(c, bigHello('api.anthropic.com', true)), 1)
  t.equal(out.verdict?.reason, 'unknown', 'a name behind 20 KB of padding is out of reach: unknown')
})

t.test('peekSni on hostile bytes: never throws, never points outside what it was given', async (t) => {
  const { peekSni, TlsHello } = await import('../../../src/extract/tls.js')
  const h = new TlsHello()
  const real = hello('api.openai.com')
  let seed = 7
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed }
  let found = 0
  for (let i = 0; i < 20000; i++) {
    const b = Buffer.from(real)
    for (let k = 0; k < 1 + (i % 4); k++) b[rnd() % b.length] = rnd() & 255
    const end = rnd() % (b.length + 1)
    if (peekSni(b, 0, end, h)) {
      found++
      if (h.sniStart < 0 || h.sniEnd > end || h.sniEnd <= h.sniStart) { t.fail(`bad range ${h.sniStart}-${h.sniEnd} of ${end}`); break }
    }
  }
  t.ok(found > 0, `${found} mutated prefixes still named a host, all inside their bytes`)
  t.equal(peekSni(real, 0, real.length, h), true)
  t.equal(real.toString('latin1', h.sniStart, h.sniEnd), 'api.openai.com')
})
