import t from 'tap'
import { parseTls, peekSni, TlsHello, MAX_SKIPPED_ALERTS, MAX_EMPTY_RECORDS } from '../../../src/extract/tls.js'
import { readName, NameOut } from '../../../src/name/index.js'
import { Status } from '../../../src/util/status.js'
import { payloads } from '../../helpers/fixtures.js'

/**
 * Issue 11, class 3: read as leniently as the most lenient common server.
 * Each rule below was measured against Go 1.19 crypto/tls and OpenSSL 3.0
 * servers (test/unit/extract/differential.test.ts keeps measuring OpenSSL).
 */

const nameOut = new NameOut()
const h = new TlsHello()
const [file, hello] = payloads('tls').find(([n]) => n === 'tls/curl-7.88-claude.ai.bin') as [string, Buffer]
const body = hello.subarray(5, 5 + hello.readUInt16BE(3))

function rec (type: number, data: number[] | Buffer, ver = 0x0303): Buffer {
  const d = Buffer.from(data)
  return Buffer.concat([Buffer.from([type, ver >> 8, ver & 255, d.length >> 8, d.length & 255]), d])
}
const warning = rec(0x15, [1, 90]) // warning user_canceled: Go drops it
const emptyHs = rec(0x16, []) // OpenSSL drops it
const emptyCcs = rec(0x14, []) // OpenSSL drops it
function times (b: Buffer, n: number): Buffer { return Buffer.concat(new Array<Buffer>(n).fill(b)) }
function nameOf (st: Status): string {
  if (st !== Status.Ok) return `status ${st}`
  return readName(h.buf, h.sniStart, h.sniEnd, nameOut) ? nameOut.name : 'invalid'
}
/** The hello's handshake bytes in records of `size`, with `between` after each but the last. */
function fragmented (size: number, between: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let i = 0; i < body.length; i += size) {
    if (i > 0) parts.push(between)
    parts.push(rec(0x16, body.subarray(i, Math.min(body.length, i + size)), 0x0301))
  }
  return Buffer.concat(parts)
}

t.test(`${file} as sent: nothing skipped`, async (t) => {
  t.equal(nameOf(parseTls(hello, 0, hello.length, h)), 'claude.ai')
  t.equal(h.skipped, 0)
  t.equal(h.helloStart, 0)
})

t.test('a warning alert before the hello (Go drops up to 16 in a row)', async (t) => {
  const b = Buffer.concat([warning, hello])
  t.equal(nameOf(parseTls(b, 0, b.length, h)), 'claude.ai', 'a 7-byte alert in front: the name is read')
  t.equal(h.skipped, 1)
  t.equal(h.helloStart, 7, 'where the hello record begins')
  t.equal(h.consumed, b.length)
  const sixteen = Buffer.concat([times(warning, MAX_SKIPPED_ALERTS), hello])
  t.equal(nameOf(parseTls(sixteen, 0, sixteen.length, h)), 'claude.ai')
  t.equal(h.skipped, 16)
  // Go: "tls: too many ignored records"; OpenSSL takes no alert before the hello.
  const seventeen = Buffer.concat([times(warning, MAX_SKIPPED_ALERTS + 1), hello])
  t.equal(parseTls(seventeen, 0, seventeen.length, h), Status.Unsupported, '17 alerts: no server reads on')
  // Any warning other than close_notify, any record version under 0x1000 (Go's first-record test).
  const odd = Buffer.concat([rec(0x15, [1, 40], 0x0001), hello])
  t.equal(nameOf(parseTls(odd, 0, odd.length, h)), 'claude.ai', 'warning handshake_failure, record version 0x0001')
  // Every prefix waits for more bytes, inside the alert too.
  let bad = 0
  for (let n = 0; n < b.length; n++) if (parseTls(b, 0, n, h) !== Status.NeedMore) bad++
  t.equal(bad, 0, 'every truncation asks for more bytes')
  t.equal(parseTls(warning, 0, warning.length, h), Status.NeedMore, 'the alert alone: need more')
  t.equal(h.needed, 12, 'at least the next record header')
})

t.test('alerts no server drops keep today\'s status', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['close_notify (Go: EOF)', rec(0x15, [1, 0])],
    ['fatal alert', rec(0x15, [2, 40])],
    ['unknown level', rec(0x15, [3, 40])],
    ['3-byte alert', rec(0x15, [1, 40, 0])],
    ['two alerts in one record', rec(0x15, [1, 90, 1, 90])],
    ['record version 0x1001', rec(0x15, [1, 90], 0x1001)],
    ['change_cipher_spec with its byte (both refuse it before the hello)', rec(0x14, [1])],
    ['application data', rec(0x17, [1, 2, 3])],
  ]
  for (const [what, r] of cases) {
    const b = Buffer.concat([r, hello])
    t.equal(parseTls(b, 0, b.length, h), Status.Unsupported, what)
  }
  // An alert and an empty record: Go refuses the empty one, OpenSSL the alert.
  const mixed = Buffer.concat([warning, emptyHs, hello])
  t.not(parseTls(mixed, 0, mixed.length, h), Status.Ok, 'alert then empty record: neither server reads on')
})

t.test('empty handshake and change_cipher_spec records (OpenSSL drops up to 32 in a row)', async (t) => {
  const one = Buffer.concat([emptyHs, hello])
  t.equal(nameOf(parseTls(one, 0, one.length, h)), 'claude.ai', 'one empty handshake record (was Malformed)')
  t.equal(h.skipped, 1)
  t.equal(h.helloStart, 5)
  const ccs = Buffer.concat([emptyCcs, emptyHs, hello])
  t.equal(nameOf(parseTls(ccs, 0, ccs.length, h)), 'claude.ai', 'an empty change_cipher_spec record')
  const max = Buffer.concat([times(emptyHs, MAX_EMPTY_RECORDS), hello])
  t.equal(nameOf(parseTls(max, 0, max.length, h)), 'claude.ai')
  t.equal(h.skipped, 32)
  const over = Buffer.concat([times(emptyHs, MAX_EMPTY_RECORDS + 1), hello])
  t.equal(parseTls(over, 0, over.length, h), Status.Malformed, '33: RECORD_TOO_SMALL')
  const cOver = Buffer.concat([times(emptyCcs, MAX_EMPTY_RECORDS + 1), hello])
  t.equal(parseTls(cOver, 0, cOver.length, h), Status.Unsupported, '33 empty change_cipher_spec')
  // OpenSSL wants record version major 3 (an empty record of version 0x0201 is refused by both).
  const v2 = Buffer.concat([rec(0x16, [], 0x0201), hello])
  t.equal(parseTls(v2, 0, v2.length, h), Status.Malformed, 'empty record of version 0x0201')
})

t.test('the hello record itself: any record version Go takes', async (t) => {
  for (const ver of [0x0001, 0x0203, 0x0300, 0x0f01]) {
    const b = rec(0x16, body, ver)
    t.equal(nameOf(parseTls(b, 0, b.length, h)), 'claude.ai', `record version ${ver.toString(16)}`)
  }
  const b = rec(0x16, body, 0x1001)
  t.equal(parseTls(b, 0, b.length, h), Status.Unsupported, 'version 0x1001: no server')
})

t.test('dropped records between the pieces of a fragmented hello', async (t) => {
  const cases: Array<[string, Buffer, number]> = [
    ['16 warnings between each piece (Go restarts its count at each piece)', times(warning, 16), 16],
    ['32 empty handshake records between each piece', times(emptyHs, 32), 32],
    ['an empty change_cipher_spec between each piece', emptyCcs, 1],
  ]
  for (const [what, between, each] of cases) {
    const b = fragmented(100, between)
    t.equal(nameOf(parseTls(b, 0, b.length, h)), 'claude.ai', what)
    t.equal(h.skipped, each * (h.records - 1))
    t.ok(h.records > 1)
    let bad = 0
    for (let n = 0; n < b.length; n += 7) if (parseTls(b, 0, n, h) !== Status.NeedMore) bad++
    t.equal(bad, 0, 'prefixes ask for more bytes')
  }
  const over = fragmented(100, times(warning, 17))
  t.equal(parseTls(over, 0, over.length, h), Status.Malformed, '17 warnings between two pieces')
  const ccs = fragmented(100, rec(0x14, [1]))
  t.equal(parseTls(ccs, 0, ccs.length, h), Status.Malformed, 'a change_cipher_spec with data between pieces (as before)')
})

t.test('peekSni reads past the same records', async (t) => {
  const b = Buffer.concat([warning, emptyHs.subarray(0, 0), hello])
  t.equal(peekSni(b, 0, b.length - 100, h), true)
  t.equal(h.buf.toString('latin1', h.sniStart, h.sniEnd), 'claude.ai')
  const e = Buffer.concat([times(emptyHs, 3), hello])
  t.equal(peekSni(e, 0, e.length - 100, h), true)
  const bad = Buffer.concat([rec(0x15, [2, 40]), hello])
  t.equal(peekSni(bad, 0, bad.length, h), false, 'behind a fatal alert: nothing')
})

t.test('DNS: a question name behind a forward compression pointer (dnsmasq follows it)', async (t) => {
  const { parseDns, DnsQuery, MAX_POINTER_JUMPS } = await import('../../../src/extract/dns.js')
  const q = new DnsQuery()
  const header = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
  const name = [6, ...Buffer.from('Claude'), 2, ...Buffer.from('ai'), 0]
  // Question at 12: a pointer to 18, past qtype/qclass, where the labels are.
  const fwd = Buffer.from([...header, 0xc0, 18, 0, 1, 0, 1, ...name])
  t.equal(parseDns(fwd, 0, fwd.length, q), Status.Ok, 'forward pointer: read (was Malformed)')
  t.equal(q.count, 1)
  t.equal(q.names[0], 'claude.ai', 'the same lower-cased Name as without compression')
  t.equal(q.qtypes[0], 1, 'qtype read after the pointer, not after its target')
  // A label, then a forward pointer to the rest: "api." + "claude.ai".
  const mixed = Buffer.from([...header, 3, ...Buffer.from('api'), 0xc0, 22, 0, 28, 0, 1, ...name])
  t.equal(parseDns(mixed, 0, mixed.length, q), Status.Ok)
  t.equal(q.names[0], 'api.claude.ai')
  t.equal(q.qtypes[0], 28)
  // A forward pointer to a backward one: both directions in one name.
  const both = Buffer.from([...header, 0xc0, 18, 0, 1, 0, 1, 3, ...Buffer.from('www'), 0xc0, 24, ...name])
  t.equal(parseDns(both, 0, both.length, q), Status.Ok)
  t.equal(q.names[0], 'www.claude.ai')
  // Chains: MAX_POINTER_JUMPS jumps are followed (dnsmasq's 255), one more is not.
  const chain = (jumps: number): Buffer => {
    const b: number[] = [...header, 0xc0, 18, 0, 1, 0, 1]
    // jumps - 1 pointers in a row from offset 18, each to the next, then the labels.
    for (let i = 1; i < jumps; i++) { const to = 18 + 2 * i; b.push(0xc0 | (to >> 8), to & 255) }
    return Buffer.from([...b, ...name])
  }
  const ok = chain(MAX_POINTER_JUMPS)
  t.equal(parseDns(ok, 0, ok.length, q), Status.Ok, `${MAX_POINTER_JUMPS} jumps`)
  t.equal(q.names[0], 'claude.ai')
  const long = chain(MAX_POINTER_JUMPS + 1)
  t.equal(parseDns(long, 0, long.length, q), Status.Malformed, 'one jump more')
  // Loops end: two forward/backward pointers at each other, a label looping forward.
  const pair = Buffer.from([...header, 0xc0, 18, 0, 1, 0, 1, 0xc0, 12])
  t.equal(parseDns(pair, 0, pair.length, q), Status.Malformed, 'pointer pair')
  const grow = Buffer.from([...header, 0xc0, 18, 0, 1, 0, 1, 1, 0x61, 0xc0, 18])
  t.equal(parseDns(grow, 0, grow.length, q), Status.Malformed, 'a label repeated through a loop hits the 255-octet cap')
  const out = Buffer.from([...header, 0xc0, 200, 0, 1, 0, 1])
  t.equal(parseDns(out, 0, out.length, q), Status.Malformed, 'pointer past the message')
})

t.test('HTTP: every whole head of pipelined requests is read', async (t) => {
  const { parseHttp, HttpHead, MAX_HTTP_NAMES, MAX_HTTP_HEADS } = await import('../../../src/extract/http.js')
  const hh = new HttpHead()
  /** The hosts reported, joined, or 'status N'; plus the flags. */
  const read = (s: string): string => {
    const b = Buffer.from(s, 'latin1')
    const st = parseHttp(b, 0, b.length, hh)
    if (st !== Status.Ok) return `status ${st}`
    const names: string[] = []
    for (let i = 0; i < hh.count; i++) names.push(b.toString('latin1', hh.starts[i], hh.ends[i]).toLowerCase())
    return names.join(' ')
  }
  const get = (host: string): string => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`
  const two = get('example.org') + get('claude.ai')
  t.equal(read(two), 'example.org claude.ai', 'two GETs in one segment: the server answers both (was example.org only)')
  t.equal(hh.heads, 2)
  t.equal(hh.next, two.length)
  t.equal(hh.tail, Status.Ok)
  t.equal(hh.hostStart, 'GET / HTTP/1.1\r\nHost: '.length, 'host 0 is still the first head\'s')
  const post = 'POST /x HTTP/1.1\r\nHost: example.org\r\nContent-Length: 11\r\n\r\nhello world' + get('claude.ai')
  t.equal(read(post), 'example.org claude.ai', 'a second request after a Content-Length body')
  t.equal(read('POST /x HTTP/1.1\r\nHost: example.org\r\ncontent-length: 7\r\n\r\nGET / HTTP/1.1\r\nHost: claude.ai\r\n\r\n'), 'example.org', 'the body is skipped, not read as a request')
  t.equal(hh.heads, 1)
  t.equal(hh.tail, Status.Unsupported, 'what follows the body is no request')
  const twice = 'POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\nContent-Length:  2\r\n\r\nhi' + get('claude.ai')
  t.equal(read(twice), 'a.example claude.ai', 'the same Content-Length twice (Go takes it)')
  t.equal(read('POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 100\r\n\r\nab'), 'example.org')
  t.equal(hh.tail, Status.NeedMore, 'a body still arriving')
  t.ok(hh.next > 'POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 100\r\n\r\nab'.length)
  t.equal(read(get('example.org') + '\r\n' + get('claude.ai')), 'example.org claude.ai', 'an empty line between requests (RFC 9112 §2.2)')
  t.equal(read('GET / HTTP/1.0\r\n\r\n' + get('claude.ai')), 'claude.ai', 'a first head naming nothing: the second still decides (was NoName)')
  t.equal(hh.heads, 2)
})

t.test('HTTP: what cannot be read after a head is flagged, never half read', async (t) => {
  const { parseHttp, HttpHead, MAX_HTTP_NAMES, MAX_HTTP_HEADS } = await import('../../../src/extract/http.js')
  const hh = new HttpHead()
  const read = (s: string): string => {
    const b = Buffer.from(s, 'latin1')
    const st = parseHttp(b, 0, b.length, hh)
    if (st !== Status.Ok) return `status ${st}`
    const names: string[] = []
    for (let i = 0; i < hh.count; i++) names.push(b.toString('latin1', hh.starts[i], hh.ends[i]).toLowerCase())
    return names.join(' ')
  }
  const get = (host: string): string => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`
  // A later head cut inside its target: the piece is not a name.
  t.equal(read(get('example.org') + 'GET http://claude.a'), 'example.org')
  t.equal(hh.tail, Status.NeedMore, 'a later request not yet whole')
  t.equal(hh.heads, 1)
  t.equal(read(get('example.org') + 'GET / HTTP/1.1\r\nHost: claude.ai\r\n'), 'example.org', 'a later head before its empty line')
  t.equal(hh.tail, Status.NeedMore)
  // Chunked: where the next request starts is not worked out.
  const chunked = 'POST / HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + get('claude.ai')
  t.equal(read(chunked), 'example.org')
  t.equal(hh.bodyUnknown, true, 'Transfer-Encoding: the caller decides (unknown)')
  t.equal(hh.heads, 1)
  t.equal(read('POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'), 'example.org')
  t.equal(hh.bodyUnknown, true, 'two different Content-Lengths')
  t.equal(read('POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: +1\r\n\r\na'), 'example.org')
  t.equal(hh.bodyUnknown, true, 'a Content-Length that is not 1*DIGIT')
  t.equal(read('CONNECT claude.ai:443 HTTP/1.1\r\nHost: claude.ai\r\n\r\n' + get('example.org')), 'claude.ai')
  t.equal(hh.bodyUnknown, true, 'after CONNECT the bytes are the tunnel\'s')
  t.equal(read(get('example.org')), 'example.org')
  t.equal(hh.bodyUnknown, false)
  t.equal(hh.moreHosts, false)
  // Limits: MAX_HTTP_HEADS heads, MAX_HTTP_NAMES hosts.
  let many = ''
  for (let i = 0; i < MAX_HTTP_HEADS + 2; i++) many += get(`h${i}.example`)
  t.equal(read(many).split(' ').length, MAX_HTTP_HEADS)
  t.equal(hh.heads, MAX_HTTP_HEADS)
  t.equal(hh.moreHosts, true, 'heads past MAX_HTTP_HEADS: said so')
  let wide = ''
  for (let i = 0; i < 5; i++) wide += `GET http://t${i}.example/ HTTP/1.1\r\nHost: a${i}.example\r\nHost: z${i}.example\r\n\r\n`
  t.equal(read(wide).split(' ').length, MAX_HTTP_NAMES)
  t.equal(hh.moreHosts, true, 'hosts past MAX_HTTP_NAMES: said so')
  t.equal(read(get('claude.ai') + get('CLAUDE.ai.')), 'claude.ai', 'the same host in two heads: once')
  t.equal(hh.heads, 2)
})

t.test('HTTP: the classifier decides on every pipelined head (no classify change needed)', async (t) => {
  const { decodeIp, PacketView } = await import('../../../src/decode/packet.js')
  const { Classifier, Outcome } = await import('../../../src/classify/index.js')
  const { loadRuleset } = await import('../../../src/config/index.js')
  const { tcp4 } = await import('../../helpers/packets.js')
  const c = new Classifier(loadRuleset()) // shipped rules: anthropic is blocked
  const view = new PacketView()
  const out = new Outcome()
  const payload = Buffer.from('GET / HTTP/1.1\r\nHost: example.org\r\n\r\nGET / HTTP/1.1\r\nHost: claude.ai\r\n\r\n', 'latin1')
  const pkt = tcp4({ src: '10.0.0.1', dst: '10.0.0.2', sport: 40100, dport: 80 }, 1000, payload)
  t.equal(decodeIp(pkt, 0, pkt.length, view), Status.Ok)
  c.classify(view, out, 1)
  t.same(out.names.slice(0, out.count), ['example.org', 'claude.ai'], 'both hosts decided')
  t.equal(out.verdict?.action, 'block', 'the stricter decision: the second request names a blocked host')
})
