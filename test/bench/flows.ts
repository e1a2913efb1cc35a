/**
 * Flow-table benchmarks (evasion issue): reassembled hellos per second
 * against the single-segment parse, and memory under a flood of 1,000,000
 * flows that each send half a hello (RSS before and after; the table must
 * sit at its cap).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeIp, PacketView } from '../../src/decode/packet.js'
import { Classifier, Outcome } from '../../src/classify/index.js'
import { loadRuleset } from '../../src/config/index.js'
import { Status } from '../../src/util/status.js'
import { parseTls, TlsHello } from '../../src/extract/tls.js'
import { parseQuicInitial, CryptoAssembler, QuicInfo } from '../../src/extract/quic.js'
import { opsPerSec, fmt } from './stats.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** An IPv4+TCP packet around a payload (headers built here, payload real). */
function tcp4 (src: number, sport: number, seq: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(40 + payload.length)
  b[0] = 0x45; b.writeUInt16BE(b.length, 2); b[8] = 64; b[9] = 6
  b.writeUInt32BE(src >>> 0, 12); b.writeUInt32BE(0x0a090002, 16)
  b.writeUInt16BE(sport, 20); b.writeUInt16BE(443, 22); b.writeUInt32BE(seq >>> 0, 24)
  b[32] = 0x50; b[33] = 0x18
  b.set(payload, 40)
  return b
}

export function runFlowBench (say: (s: string) => void, results: Record<string, unknown>, quick: boolean): void {
  const dir = join(ROOT, 'test', 'fixtures', 'tls')
  const file = readdirSync(dir).find((f) => f.startsWith('curl-7.88-api.openai.com'))
  if (file === undefined) return
  const hello = readFileSync(join(dir, file))
  const ruleset = loadRuleset()
  const view = new PacketView()
  const out = new Outcome()
  const res: Record<string, unknown> = {}

  say('\n## Reassembly: hellos per second, whole (one segment) vs split in two and in three segments')
  // Block everything so no flow stays under watch: we measure reassembly alone.
  const whole = tcp4(0x0a000001, 1000, 1, hello)
  const cut = 200
  const n = quick ? 50000 : 200000
  let c = new Classifier(ruleset, 1 << 16)
  const single = opsPerSec(n, 5, (k) => {
    for (let i = 0; i < k; i++) {
      whole.writeUInt16BE(1024 + (i & 0x7fff), 20)
      decodeIp(whole, 0, whole.length, view)
      c.classify(view, out, i)
    }
  })
  const a = tcp4(0x0a000001, 1000, 1, hello.subarray(0, cut))
  const b = tcp4(0x0a000001, 1000, 1 + cut, hello.subarray(cut))
  c = new Classifier(ruleset, 1 << 16)
  let ok = 0
  const split2 = opsPerSec(n, 5, (k) => {
    for (let i = 0; i < k; i++) {
      const port = 1024 + (i & 0x7fff)
      a.writeUInt16BE(port, 20); b.writeUInt16BE(port, 20)
      decodeIp(a, 0, a.length, view); c.classify(view, out, i)
      decodeIp(b, 0, b.length, view); if (c.classify(view, out, i) === 1) ok++
    }
  })
  const s1 = tcp4(0x0a000001, 1000, 1, hello.subarray(0, 100))
  const s2 = tcp4(0x0a000001, 1000, 101, hello.subarray(100, 300))
  const s3 = tcp4(0x0a000001, 1000, 301, hello.subarray(300))
  const split3 = opsPerSec(n, 5, (k) => {
    for (let i = 0; i < k; i++) {
      const port = 1024 + (i & 0x7fff)
      for (const p of [s3, s1, s2]) { p.writeUInt16BE(port, 20); decodeIp(p, 0, p.length, view); c.classify(view, out, i) }
    }
  })
  say(`one segment: ${fmt(single.median)}/s; two segments: ${fmt(split2.median)}/s (${(split2.median / single.median).toFixed(2)}x); ` +
    `three, out of order: ${fmt(split3.median)}/s (${(split3.median / single.median).toFixed(2)}x)${ok === 0 ? ' (no name recovered!)' : ''}`)
  res.reassembly = { single, split2, split3, ratio2: split2.median / single.median, ratio3: split3.median / single.median }

  say('\n## QUIC: Chromium Initials (two datagrams per hello) decrypted and parsed, against the TCP hello parse')
  const qdir = join(ROOT, 'test', 'fixtures', 'quic')
  const dg = ['chromium-156-v1-claude.ai-dg1.bin', 'chromium-156-v1-claude.ai-dg2.bin'].map((f) => readFileSync(join(qdir, f)))
  const asm = new CryptoAssembler()
  const qi = new QuicInfo()
  let qok = 0
  const quicHello = opsPerSec(quick ? 5000 : 20000, 5, (k) => {
    for (let i = 0; i < k; i++) {
      asm.reset()
      parseQuicInitial(dg[0] as Buffer, 0, (dg[0] as Buffer).length, asm, qi)
      if (parseQuicInitial(dg[1] as Buffer, 0, (dg[1] as Buffer).length, asm, qi) === Status.Ok) qok++
    }
  })
  const th = new TlsHello()
  const tcpHello = opsPerSec(1_000_000, 5, (k) => { for (let i = 0; i < k; i++) parseTls(hello, 0, hello.length, th) })
  say(`QUIC hello (2 Initials, keys cached per DCID): ${fmt(quicHello.median)}/s = ${fmt(quicHello.median * 2)} Initials/s; ` +
    `TCP hello parse: ${fmt(tcpHello.median)}/s; QUIC/TCP = ${(quicHello.median / tcpHello.median).toFixed(3)}x${qok === 0 ? ' (no name!)' : ''}`)
  res.quic = { hellos: quicHello, initialsPerSec: quicHello.median * 2, tcpHello, ratio: quicHello.median / tcpHello.median }

  say('\n## Memory: a flood of 1,000,000 flows that each send half a hello')
  const flood = new Classifier(ruleset)
  const half = tcp4(0, 1000, 7, hello.subarray(0, Math.floor(hello.length / 2)))
  ;(globalThis as { gc?: () => void }).gc?.()
  const rss0 = process.memoryUsage().rss
  const N = quick ? 200000 : 1000000
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    half.writeUInt32BE((0x0b000000 + i) >>> 0, 12)
    if (decodeIp(half, 0, half.length, view) !== Status.Ok) continue
    flood.classify(view, out, i >> 10) // ~1000 flows per "millisecond": nothing expires
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  ;(globalThis as { gc?: () => void }).gc?.()
  const rss1 = process.memoryUsage().rss
  const st = flood.flows.stats
  say(`${N} flows in ${secs.toFixed(1)} s (${fmt(N / secs)}/s): table ${flood.flows.size} (cap ${flood.flows.limits.maxFlows}), ` +
    `evicted ${st.evicted}; RSS ${(rss0 / 1048576).toFixed(0)} MB before, ${(rss1 / 1048576).toFixed(0)} MB after (+${((rss1 - rss0) / 1048576).toFixed(0)} MB)`)
  res.flood = { flows: N, tableSize: flood.flows.size, cap: flood.flows.limits.maxFlows, evicted: st.evicted, rssBeforeMB: rss0 / 1048576, rssAfterMB: rss1 / 1048576 }
  results.flows = res
}
