import t from 'tap'
import { parseTls, peekSni, TlsHello } from '../../src/extract/tls.js'
import { parseHttp, HttpHead, MAX_HTTP_NAMES, MAX_HTTP_HEADS } from '../../src/extract/http.js'
import { parseDns, DnsQuery } from '../../src/extract/dns.js'
import { Status } from '../../src/util/status.js'
import { rng } from '../helpers/rng.js'

/**
 * The lenient paths (test/unit/extract/lenient.test.ts) on hostile bytes: runs of
 * small records before a hello, pipelined HTTP heads with odd framing, DNS
 * pointers in every direction. A typed status, offsets inside the input,
 * no throw, and an end (the test finishing is the bound on steps).
 */

const r = rng(0x1e41e7)
const byte = (): number => Math.floor(r() * 256)
const tls = new TlsHello()
const http = new HttpHead()
const dns = new DnsQuery()
const STATUSES: number[] = Object.values(Status)

t.test('TLS: random record runs, cut at every offset', async (t) => {
  let bad = 0
  for (let i = 0; i < 3000; i++) {
    const parts: number[] = []
    const n = 1 + Math.floor(r() * 6)
    for (let k = 0; k < n; k++) {
      const type = [20, 21, 22, 23, byte()][Math.floor(r() * 5)] as number
      const len = [0, 1, 2, 3, 4, Math.floor(r() * 60)][Math.floor(r() * 6)] as number
      parts.push(type, r() < 0.9 ? 3 : byte(), byte(), len >> 8, len & 255)
      for (let j = 0; j < len; j++) parts.push(k === n - 1 && j === 0 ? 1 : (r() < 0.5 ? 1 : byte()))
    }
    const b = Buffer.from(parts)
    for (let end = 0; end <= b.length; end++) {
      const st = parseTls(b, 0, end, tls)
      if (!STATUSES.includes(st)) bad++
      if (st === Status.Ok && (tls.sniStart < 0 || tls.sniEnd > tls.buf.length || tls.sniEnd <= tls.sniStart)) bad++
      if (tls.helloStart < 0 || tls.helloStart > end || tls.consumed > end) bad++
      if (peekSni(b, 0, end, tls) && (tls.sniEnd > end || tls.sniStart < 0)) bad++
    }
  }
  t.equal(bad, 0, 'typed status and offsets in bounds')
})

t.test('HTTP: random pipelined heads, cut at every offset', async (t) => {
  const pieces = ['GET / HTTP/1.1\r\n', 'POST http://a.example/ HTTP/1.1\r\n', 'CONNECT b.example:443 HTTP/1.1\r\n', 'Host: c.example\r\n', 'Host: [::1]\r\n',
    'Content-Length: 3\r\n', 'Content-Length: 99999999999999999999\r\n', 'content-length: x\r\n', 'Transfer-Encoding: chunked\r\n', '\r\n', '\n', 'abc', 'X: y\r\n']
  let bad = 0
  for (let i = 0; i < 3000; i++) {
    let s = ''
    const n = 2 + Math.floor(r() * 14)
    for (let k = 0; k < n; k++) s += pieces[Math.floor(r() * pieces.length)]
    const b = Buffer.from(s, 'latin1')
    for (let end = 0; end <= b.length; end++) {
      const st = parseHttp(b, 0, end, http)
      if (!STATUSES.includes(st)) bad++
      if (st !== Status.Ok) continue
      if (http.count < 1 || http.count > MAX_HTTP_NAMES || http.heads < 1 || http.heads > MAX_HTTP_HEADS) bad++
      for (let k = 0; k < http.count; k++) if ((http.starts[k] as number) < 0 || (http.ends[k] as number) > end || (http.ends[k] as number) <= (http.starts[k] as number)) bad++
    }
  }
  t.equal(bad, 0, 'typed status, hosts inside the bytes given')
})

t.test('DNS: pointers to random offsets, forward and back', async (t) => {
  let bad = 0
  for (let i = 0; i < 20000; i++) {
    const len = 13 + Math.floor(r() * 60)
    const b = Buffer.alloc(len)
    for (let j = 0; j < len; j++) b[j] = r() < 0.3 ? 0xc0 : (r() < 0.5 ? Math.floor(r() * len) : byte() & 0x3f)
    b.writeUInt16BE(0x0100, 2)
    b.writeUInt16BE(1 + Math.floor(r() * 3), 4)
    const st = parseDns(b, 0, len, dns)
    if (!STATUSES.includes(st) || dns.count > dns.declared) bad++
  }
  t.equal(bad, 0, 'typed status')
})
