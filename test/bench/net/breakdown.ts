/**
 * Where a queued DNS query's userspace time goes, in-process (no network,
 * no queue): the same packet the flood sends, a new source port each time,
 * through decodeIp + Classifier.classify, and then also through the decision
 * log line (logOutcome to /dev/null, synchronous, as the daemon's worker
 * writes it). Nanoseconds per packet, best of a few rounds.
 */
import { readFileSync } from 'node:fs'
import pino from 'pino'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DEFAULT_CACHE_SIZE } from '../../../src/cache/index.js'
import { createLogger, logOutcome, type LogExtra } from '../../../src/log/index.js'

export interface Breakdown { classifyNs: number, classifyAndLogNs: number, logNs: number }

export function costBreakdown (dnsFixture: string, n = 100000): Breakdown {
  const dns = readFileSync(dnsFixture)
  const pkt = Buffer.alloc(28 + dns.length)
  pkt[0] = 0x45; pkt.writeUInt16BE(pkt.length, 2); pkt[8] = 64; pkt[9] = 17
  pkt.set([10, 217, 1, 100], 12); pkt.set([10, 217, 2, 3], 16)
  pkt.writeUInt16BE(53, 22); pkt.writeUInt16BE(8 + dns.length, 24)
  dns.copy(pkt, 28)
  const classifier = new Classifier(loadRuleset(), DEFAULT_CACHE_SIZE)
  const view = new PacketView()
  const out = new Outcome()
  const dest = pino.destination({ dest: '/dev/null', sync: true })
  const log = createLogger(dest)
  const extra: LogExtra = { queue: 0, durationNs: 0 }
  const round = (withLog: boolean): number => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      pkt.writeUInt16BE(1024 + (i % 60000), 20)
      decodeIp(pkt, 0, pkt.length, view)
      const named = classifier.classify(view, out, Date.now())
      if (withLog && named > 0) logOutcome(log, view, out, extra)
    }
    return Number(process.hrtime.bigint() - t0) / n
  }
  let c = Infinity; let cl = Infinity
  for (let r = 0; r < 4; r++) {
    c = Math.min(c, round(false))
    cl = Math.min(cl, round(true))
  }
  return { classifyNs: c, classifyAndLogNs: cl, logNs: cl - c }
}
