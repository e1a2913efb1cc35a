import t from 'tap'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Status } from '../../../src/util/status.js'
import { payloads } from '../../helpers/fixtures.js'
import { tcp4, type Tuple } from '../../helpers/packets.js'

/**
 * decode/packet.ts reads what a receiving Linux host delivers, around a real
 * captured hello (curl's, test/fixtures/SOURCES.md). Hostile bytes for the
 * same reader: test/hostile/parsers.test.ts.
 */
const PSH_ACK = 0x18
const blocked = (payloads('tls').find(([n]) => n === 'tls/curl-7.88-api.anthropic.com.bin') as [string, Buffer])[1]
const tuple = (): Tuple => ({ src: '10.9.0.1', dst: '10.9.0.2', sport: 41000, dport: 443 })

t.test('decode: what a receiving Linux host delivers is read (9 IPv6 extension headers, IPv4 BIG TCP with total length 0)', async (t) => {
  const v = new PacketView()
  // IPv6: 9 destination-options headers (8 bytes each) before TCP.
  const ext = 9 * 8
  const tcpLen = 20 + blocked.length
  const b6 = Buffer.alloc(40 + ext + tcpLen)
  b6[0] = 0x60; b6.writeUInt16BE(ext + tcpLen, 4); b6[6] = 60; b6[7] = 64
  for (let i = 0; i < 9; i++) b6[40 + i * 8] = i === 8 ? 6 : 60 // next header; length 0 = 8 bytes
  const tcp = 40 + ext
  b6.writeUInt16BE(40000, tcp); b6.writeUInt16BE(443, tcp + 2); b6[tcp + 12] = 0x50; b6[tcp + 13] = PSH_ACK
  blocked.copy(b6, tcp + 20)
  t.equal(decodeIp(b6, 0, b6.length, v), Status.Ok, 'nine extension headers')
  t.equal(v.payloadEnd - v.payloadStart, blocked.length)
  // IPv4 BIG TCP: total length 0, the packet is as long as what was captured (and more).
  const b4 = tcp4(tuple(), 1, blocked)
  b4.writeUInt16BE(0, 2)
  t.equal(decodeIp(b4, 0, b4.length, v), Status.Ok, 'total length 0')
  t.equal(v.truncated, true, 'taken as cut: its end is past what we have')
  t.equal(v.payloadEnd - v.payloadStart, blocked.length)
})
