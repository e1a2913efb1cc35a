/**
 * Accuracy against the naive kernel-only approach: the iptables `string`
 * match (`-m string --algo bm --string NAME`) looks for the name's bytes in
 * each packet on its own, case-sensitively. Here both see the same packets
 * (real captured payloads, cut and re-cased the way evasion tools do) and
 * the table says who catches the blocked name. The string match is
 * simulated (a byte search per packet), which is exactly its semantics.
 */
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeIp, PacketView } from '../../src/decode/packet.js'
import { Classifier, Outcome } from '../../src/classify/index.js'
import { loadRuleset } from '../../src/config/index.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const fx = (p: string): Buffer => readFileSync(join(ROOT, 'test', 'fixtures', p))

function ip4 (proto: number, sport: number, dport: number, seq: number, payload: Buffer): Buffer {
  const h = proto === 6 ? 20 : 8
  const b = Buffer.alloc(20 + h + payload.length)
  b[0] = 0x45; b.writeUInt16BE(b.length, 2); b[8] = 64; b[9] = proto
  b.writeUInt32BE(0x0a000001, 12); b.writeUInt32BE(0x0a000002, 16)
  b.writeUInt16BE(sport, 20); b.writeUInt16BE(dport, 22)
  if (proto === 6) { b.writeUInt32BE(seq, 24); b[32] = 0x50; b[33] = 0x18 } else b.writeUInt16BE(8 + payload.length, 24)
  payload.copy(b, 20 + h)
  return b
}

/** Re-case the ASCII letters of `name` inside `buf` (DNS 0x20, HTTP --domcase). */
function recase (buf: Buffer, name: string): Buffer {
  const out = Buffer.from(buf)
  for (let at = out.indexOf(name); at >= 0; at = out.indexOf(name, at + 1)) {
    for (let i = 0; i < name.length; i++) if (i % 2 === 0) out[at + i] = name.toUpperCase().charCodeAt(i)
  }
  return out
}

export function runAccuracy (say: (s: string) => void, results: Record<string, unknown>): void {
  const hello = fx('tls/curl-7.88-claude.ai.bin')
  const at = hello.indexOf('claude.ai')
  const dnsQ = fx('dns/dig-9.18-udp-a.bin')
  const dnsName = 'api.openai.com'
  const http = fx('http/curl-7.88-chatgpt.com.bin')
  const quic = [fx('quic/chromium-156-v1-claude.ai-dg1.bin'), fx('quic/chromium-156-v1-claude.ai-dg2.bin')]
  const body = hello.subarray(5)
  const twoRecords = Buffer.concat([Buffer.from([0x16, 3, 1, 0, 100]), body.subarray(0, 100), Buffer.from([0x16, 3, 1, (body.length - 100) >> 8, (body.length - 100) & 255]), body.subarray(100)])
  const cases: Array<{ name: string, needle: string, pkts: Buffer[] }> = [
    { name: 'ClientHello, one segment', needle: 'claude.ai', pkts: [ip4(6, 40001, 443, 1, hello)] },
    { name: 'ClientHello split inside the SNI', needle: 'claude.ai', pkts: [ip4(6, 40002, 443, 1, hello.subarray(0, at + 4)), ip4(6, 40002, 443, 1 + at + 4, hello.subarray(at + 4))] },
    { name: 'ClientHello split, segments reversed', needle: 'claude.ai', pkts: [ip4(6, 40003, 443, 1 + at + 4, hello.subarray(at + 4)), ip4(6, 40003, 443, 1, hello.subarray(0, at + 4))] },
    { name: 'ClientHello in two TLS records', needle: 'claude.ai', pkts: [ip4(6, 40004, 443, 1, twoRecords)] },
    { name: 'ClientHello, SNI in mixed case', needle: 'claude.ai', pkts: [ip4(6, 40005, 443, 1, recase(hello, 'claude.ai'))] },
    { name: 'QUIC Initials (Chromium, 2 datagrams)', needle: 'claude.ai', pkts: quic.map((d) => ip4(17, 40006, 443, 0, d)) },
    { name: 'DNS query', needle: dnsName, pkts: [ip4(17, 40007, 53, 0, dnsQ)] },
    { name: 'DNS query, 0x20 mixed case', needle: dnsName, pkts: [ip4(17, 40008, 53, 0, recase(dnsQ, 'api'))] },
    { name: 'HTTP Host', needle: 'chatgpt.com', pkts: [ip4(6, 40009, 80, 1, http)] },
    { name: 'HTTP Host, mixed case', needle: 'chatgpt.com', pkts: [ip4(6, 40010, 80, 1, recase(http, 'chatgpt.com'))] },
  ]
  // DNS wire names are length-prefixed labels: the string match needs the wire form.
  const wire = (n: string): Buffer => Buffer.concat(n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])))
  const c = new Classifier(loadRuleset())
  const view = new PacketView()
  const out = new Outcome()
  const rows: Array<{ case: string, aigate: boolean, stringMatch: boolean }> = []
  for (const k of cases) {
    let ours = false
    let theirs = false
    const needle = k.name.startsWith('DNS') ? wire(k.needle) : Buffer.from(k.needle)
    for (const p of k.pkts) {
      decodeIp(p, 0, p.length, view)
      if (c.classify(view, out, 1) > 0 && out.names.slice(0, out.count).includes(k.needle as never) && out.verdict?.action !== 'allow') ours = true
      if (p.indexOf(needle) >= 0) theirs = true
    }
    rows.push({ case: k.name, aigate: ours, stringMatch: theirs })
  }
  say('\n## Accuracy: who catches the name (aigate vs kernel `-m string --algo bm`, same packets)')
  say('case | aigate | string match')
  for (const r of rows) say(`${r.case} | ${r.aigate ? 'caught' : 'MISSED'} | ${r.stringMatch ? 'caught' : 'MISSED'}`)
  say(`total: aigate ${rows.filter((r) => r.aigate).length}/${rows.length}, string match ${rows.filter((r) => r.stringMatch).length}/${rows.length}`)
  results.accuracy = rows
}
