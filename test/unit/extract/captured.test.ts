import t from 'tap'
import { domainToASCII } from 'node:url'
import { parseTls, TlsHello, alpnList } from '../../../src/extract/tls.js'
import { parseDns, parseDnsTcp, DnsQuery } from '../../../src/extract/dns.js'
import { parseHttp, HttpHead } from '../../../src/extract/http.js'
import { readName, NameOut } from '../../../src/name/index.js'
import { Status } from '../../../src/util/status.js'
import { expected, payloads } from '../../helpers/fixtures.js'

/**
 * Each real captured payload (test/fixtures/SOURCES.md) gives exactly the
 * names tshark read in it (test/fixtures/expected.json).
 */
const exp = expected()
const nameOut = new NameOut()

t.test('TLS ClientHellos from real clients', async (t) => {
  const hellos = payloads('tls').filter(([n]) => !/-seg\d+\.bin$/.test(n))
  t.ok(hellos.length >= 5, `${hellos.length} hellos`)
  for (const [file, bytes] of hellos) {
    const e = exp[file]
    if (e === undefined) { t.fail(`${file} has no entry in expected.json`); continue }
    const h = new TlsHello()
    t.equal(parseTls(bytes, 0, bytes.length, h), Status.Ok, `${file} parses`)
    t.ok(readName(h.buf, h.sniStart, h.sniEnd, nameOut), `${file} name valid`)
    t.equal(nameOut.name, e.sni, `${file} sni`)
    if (e.alpn !== undefined) t.same(alpnList(h), e.alpn, `${file} alpn`)
    // Every strict prefix is "need more", never a wrong name or a failure.
    let bad = 0
    for (let n = 0; n < bytes.length; n++) if (parseTls(bytes, 0, n, h) !== Status.NeedMore) bad++
    t.equal(bad, 0, `${file}: every truncation asks for more bytes`)
  }
})

t.test('a hello spread over several TLS records in one segment', async (t) => {
  const [file, bytes] = payloads('tls').find(([n]) => !/-seg\d+\.bin$/.test(n)) as [string, Buffer]
  const sni = exp[file]?.sni
  const body = bytes.subarray(5, 5 + bytes.readUInt16BE(3))
  // Re-frame the same handshake bytes into records of 1, 7 and 100 bytes (tpws --tlsrec style).
  for (const size of [1, 2, 7, 100]) {
    const parts: Buffer[] = []
    for (let i = 0; i < body.length; i += size) {
      const frag = body.subarray(i, Math.min(body.length, i + size))
      parts.push(Buffer.from([0x16, 3, 1, frag.length >> 8, frag.length & 255]), frag)
    }
    const b = Buffer.concat(parts)
    const h = new TlsHello()
    t.equal(parseTls(b, 0, b.length, h), Status.Ok, `records of ${size}`)
    readName(h.buf, h.sniStart, h.sniEnd, nameOut)
    t.equal(nameOut.name, sni)
    t.ok(h.records > 1)
    t.equal(parseTls(b, 0, b.length - 1, h), Status.NeedMore)
  }
})

t.test('DNS queries from dig, UDP and TCP', async (t) => {
  const qs = payloads('dns')
  t.ok(qs.length >= 4, `${qs.length} queries`)
  for (const [file, bytes] of qs) {
    const e = exp[file]
    if (e === undefined) { t.fail(`${file} has no entry in expected.json`); continue }
    const q = new DnsQuery()
    const tcp = /tcp/.test(file)
    t.equal(tcp ? parseDnsTcp(bytes, 0, bytes.length, q) : parseDns(bytes, 0, bytes.length, q), Status.Ok, file)
    // tshark shows UTF-8 names as they are; our names are punycode.
    t.same(q.names.slice(0, q.count), e.names?.map((n) => domainToASCII(n)), `${file} names`)
    if (e.qtypes !== undefined) t.same(Array.from(q.qtypes.subarray(0, q.count)), e.qtypes, `${file} qtypes`)
  }
})

t.test('HTTP Host from curl', async (t) => {
  const hs = payloads('http')
  t.ok(hs.length >= 2)
  for (const [file, bytes] of hs) {
    const e = exp[file]
    if (e === undefined) { t.fail(`${file} has no entry in expected.json`); continue }
    const h = new HttpHead()
    t.equal(parseHttp(bytes, 0, bytes.length, h), Status.Ok, file)
    t.ok(readName(bytes, h.hostStart, h.hostEnd, nameOut))
    t.equal(nameOut.name, e.host, `${file} host`)
  }
})

t.test('HTTP host variants', async (t) => {
  const host = (s: string): string => {
    const b = Buffer.from(s, 'latin1')
    const h = new HttpHead()
    const st = parseHttp(b, 0, b.length, h)
    if (st !== Status.Ok) return `status ${st}`
    if (h.ipLiteral) return 'ip'
    return readName(b, h.hostStart, h.hostEnd, nameOut) ? nameOut.name : `!${nameOut.error}`
  }
  t.equal(host('GET / HTTP/1.1\r\nhOsT:   ChatGPT.com:8080  \r\n\r\n'), 'chatgpt.com', 'GoodbyeDPI -r/-m: mixed case name and header')
  t.equal(host('GET / HTTP/1.1\r\nHost:claude.ai\r\n\r\n'), 'claude.ai', 'GoodbyeDPI -s: no space after the colon')
  t.equal(host('GET / HTTP/1.1\nUser-Agent: x\nHost: a.example\n\n'), 'a.example', 'bare LF lines')
  t.equal(host('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n'), 'ip')
  t.equal(host('GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n'), '!ip-literal')
  t.equal(host('GET / HTTP/1.1\r\nX-Host: evil.example\r\n\r\n'), 'status 4')
  t.equal(host('GET / HTTP/1.1\r\nHost: a.example'), 'status 1', 'head not finished: need more')
  t.equal(host('\x16\x03\x01'), 'status 3')
})
