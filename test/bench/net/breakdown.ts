/**
 * Where a queued DNS query's userspace time goes, in-process (no network,
 * no queue): the same packet the flood sends, a new source port each time,
 * through decodeIp + Classifier.classify, then also through its decision
 * line (DecisionLog into FdLines on /dev/null, flushed every 64 packets as a
 * worker flushes per batch). For comparison, the same lines written by pino
 * (each line parsed back to an object first, outside the timing, so only
 * pino's serialise-and-write is measured). Nanoseconds per packet, best of a
 * few rounds.
 */
import { readFileSync } from 'node:fs'
import pino from 'pino'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DEFAULT_CACHE_SIZE } from '../../../src/cache/index.js'
import { DecisionLog, FdLines, MemoryLines, ECS_VERSION, type LogExtra } from '../../../src/log/index.js'

export interface Breakdown { classifyNs: number, classifyAndLogNs: number, logNs: number, pinoLineNs: number }

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
  const sink = new FdLines('/dev/null')
  const log = new DecisionLog(sink)
  const extra: LogExtra = { queue: 0, durationNs: 0 }
  const round = (withLog: boolean): number => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      pkt.writeUInt16BE(1024 + (i % 60000), 20)
      decodeIp(pkt, 0, pkt.length, view)
      const named = classifier.classify(view, out, Date.now())
      if (withLog && named > 0) log.write(view, out, extra)
      if ((i & 63) === 63) sink.flush()
    }
    sink.flush()
    return Number(process.hrtime.bigint() - t0) / n
  }
  // pino, on the same lines as objects.
  const mem = new MemoryLines()
  const memLog = new DecisionLog(mem)
  for (let i = 0; i < Math.min(n, 10000); i++) {
    pkt.writeUInt16BE(1024 + (i % 60000), 20)
    decodeIp(pkt, 0, pkt.length, view)
    if (classifier.classify(view, out, Date.now()) > 0) memLog.write(view, out, extra)
  }
  const objects = mem.parsed().map(({ message, 'log.level': _l, '@timestamp': _t, 'ecs.version': _v, host: _h, ...rest }) => ({ message: message as string, rest }))
  const plog = pino({ messageKey: 'message', base: { 'ecs.version': ECS_VERSION, host: { hostname: 'x' } } }, pino.destination({ dest: '/dev/null', sync: true }))
  const pinoRound = (): number => {
    const t0 = process.hrtime.bigint()
    for (const o of objects) plog.info(o.rest, o.message)
    return Number(process.hrtime.bigint() - t0) / objects.length
  }
  let c = Infinity; let cl = Infinity; let p = Infinity
  for (let r = 0; r < 4; r++) {
    c = Math.min(c, round(false))
    cl = Math.min(cl, round(true))
    p = Math.min(p, pinoRound())
  }
  return { classifyNs: c, classifyAndLogNs: cl, logNs: cl - c, pinoLineNs: p }
}
