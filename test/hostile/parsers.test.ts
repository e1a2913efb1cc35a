import t, { type Test } from 'tap'
import { parseTls, TlsHello } from '../../src/extract/tls.js'
import { parseDns, parseDnsTcp, DnsQuery } from '../../src/extract/dns.js'
import { parseHttp, HttpHead, MAX_HTTP_NAMES } from '../../src/extract/http.js'
import { decodeIp, PacketView } from '../../src/decode/packet.js'
import { readName, NameOut } from '../../src/name/index.js'
import { Status } from '../../src/util/status.js'
import { payloads } from '../helpers/fixtures.js'
import { rng } from '../helpers/rng.js'

/**
 * Hostile input: real captured payloads truncated at every offset, every byte
 * flipped to several values, and seeded random bytes. Every parser must
 * return a Status (never throw) and stay inside the bytes it was given: each
 * input is placed inside a larger buffer whose surroundings are poisoned, and
 * a name the parser reports must lie inside the window.
 */


const STATUSES = new Set<number>(Object.values(Status))
const PAD = 64
const tls = new TlsHello()
const dns = new DnsQuery()
const http = new HttpHead()
const view = new PacketView()
const nameOut = new NameOut()
let cases = 0

/** Put `bytes` at offset PAD of a buffer poisoned with 0x16 0x03 ... around it. */
function framed (bytes: Uint8Array): Buffer {
  const b = Buffer.alloc(bytes.length + 2 * PAD, 0x16)
  b.set(bytes, PAD)
  return b
}

function runAll (t: Test, bytes: Uint8Array, label: string): void {
  const b = framed(bytes)
  const s = PAD
  const e = PAD + bytes.length
  cases++
  let st = parseTls(b, s, e, tls)
  if (!STATUSES.has(st)) t.fail(`${label}: tls status ${st}`)
  if (st === Status.Ok && tls.buf === b && (tls.sniStart < s || tls.sniEnd > e)) t.fail(`${label}: tls name out of bounds`)
  if (st === Status.Ok) readName(tls.buf, tls.sniStart, tls.sniEnd, nameOut)
  st = parseDns(b, s, e, dns)
  if (!STATUSES.has(st)) t.fail(`${label}: dns status ${st}`)
  st = parseDnsTcp(b, s, e, dns)
  if (!STATUSES.has(st)) t.fail(`${label}: dns/tcp status ${st}`)
  st = parseHttp(b, s, e, http)
  if (!STATUSES.has(st)) t.fail(`${label}: http status ${st}`)
  if (st === Status.Ok && (http.hostStart < s || http.hostEnd > e)) t.fail(`${label}: http host out of bounds`)
  if (st === Status.Ok && (http.count < 1 || http.count > MAX_HTTP_NAMES)) t.fail(`${label}: http count ${http.count}`)
  for (let i = 0; st === Status.Ok && i < http.count; i++) {
    const hs = http.starts[i] as number
    const he = http.ends[i] as number
    if (hs < s || he > e || he <= hs) t.fail(`${label}: http host ${i} [${hs},${he}) outside [${s},${e})`)
  }
  st = decodeIp(b, s, e, view)
  if (!STATUSES.has(st)) t.fail(`${label}: ip status ${st}`)
  if (st === Status.Ok && (view.payloadStart < s || view.payloadEnd > e || view.payloadStart > view.payloadEnd)) {
    t.fail(`${label}: payload [${view.payloadStart},${view.payloadEnd}) outside [${s},${e})`)
  }
}

/** Built HTTP heads of the evasion cases (test/unit/extract/http-evasion.test.ts): target, CONNECT, leading empty lines, odd ports, two Hosts. */
const httpBuilt: Array<[string, Buffer]> = [
  'GET http://u:p@api.openai.com:8080/x HTTP/1.1\r\nHost: example.org\r\n\r\n',
  'GET http://e.example\\@[::1]:1/ HTTP/1.1\r\nHost: [::2]\r\n\r\n',
  'CONNECT api.openai.com:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n',
  '\r\n\nGET / HTTP/1.1\r\nHost: api.openai.com:80:80\r\nHost: example.org\r\n\r\n',
].map((h, i) => [`http-built#${i}`, Buffer.from(h, 'latin1')])

const seeds: Array<[string, Buffer]> = [...payloads('tls'), ...payloads('dns'), ...payloads('http'), ...httpBuilt]

t.test('real payloads truncated at every offset', async (t) => {
  t.ok(seeds.length >= 10, `fixtures present (${seeds.length})`)
  for (const [name, bytes] of seeds) {
    for (let n = 0; n <= bytes.length; n++) runAll(t, bytes.subarray(0, n), `${name}[0,${n})`)
    for (let n = 1; n < Math.min(bytes.length, 64); n++) runAll(t, bytes.subarray(n), `${name}[${n},)`)
  }
})

t.test('every byte of every real payload set to 0x00, 0xff, +1 and -1', async (t) => {
  for (const [name, bytes] of seeds) {
    const m = Buffer.from(bytes)
    for (let i = 0; i < m.length; i++) {
      const orig = m[i] as number
      for (const v of [0x00, 0xff, (orig + 1) & 0xff, (orig - 1) & 0xff]) {
        m[i] = v
        runAll(t, m, `${name} byte ${i}=${v}`)
      }
      m[i] = orig
    }
  }
})

t.test('seeded random bytes, with and without a plausible header', async (t) => {
  const r = rng(0xa16a7e)
  const heads = [[0x16, 0x03, 0x01], [0x45, 0x00], [0x60, 0x00], [0x00, 0x00, 0x01, 0x00, 0x00, 0x01], [0x47, 0x45, 0x54, 0x20], []]
  for (let i = 0; i < 20000; i++) {
    const len = Math.floor(r() * 600)
    const b = new Uint8Array(len)
    for (let j = 0; j < len; j++) b[j] = Math.floor(r() * 256)
    const h = heads[i % heads.length] as number[]
    b.set(h.slice(0, len))
    runAll(t, b, `random #${i}`)
  }
})

t.test('self-referencing and oversized inputs terminate with a failure', async (t) => {
  // DNS name that points at itself, and two pointers pointing at each other.
  const self = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])
  t.equal(parseDns(self, 0, self.length, dns), Status.Malformed)
  const pair = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0xc0, 12, 0, 1, 0, 1])
  t.equal(parseDns(pair, 0, pair.length, dns), Status.Malformed)
  // 65535 questions declared: only MAX_QUESTIONS read, the rest is truncated input.
  const many = Buffer.from([0, 1, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1])
  t.equal(parseDns(many, 0, many.length, dns), Status.Malformed)
  // TLS record claiming 2^14 + 1 bytes, handshake claiming 16 MiB.
  t.equal(parseTls(Buffer.from([0x16, 3, 1, 0x40, 0x01, 1, 0, 0, 0]), 0, 9, tls), Status.Malformed)
  t.equal(parseTls(Buffer.from([0x16, 3, 1, 0, 8, 1, 0xff, 0xff, 0xff, 0, 0, 0, 0]), 0, 13, tls), Status.Malformed)
  // An IPv6 chain of 100 hop-by-hop headers that fills the packet: walked to
  // its end (each header moves on 8 bytes at least), then Malformed: no
  // upper-layer header is left. Never walked forever.
  const v6 = Buffer.alloc(40 + 100 * 8)
  v6[0] = 0x60; v6.writeUInt16BE(100 * 8, 4); v6[6] = 0
  for (let i = 0; i < 100; i++) v6[40 + i * 8] = 0
  t.equal(decodeIp(v6, 0, v6.length, view), Status.Malformed)
  // HTTP head without an end, longer than the cap.
  const longHead = Buffer.from('GET / HTTP/1.1\r\n' + 'X-A: b\r\n'.repeat(2000))
  t.equal(parseHttp(longHead, 0, longHead.length, http), Status.Malformed)
  t.equal(parseHttp(longHead, 0, 4000, http), Status.NeedMore)
})

t.test('case count', async (t) => {
  t.ok(cases >= 100000, `ran ${cases} generated cases`)
})
