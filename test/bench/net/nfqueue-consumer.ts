/**
 * The `nfqueue` npm baseline of `npm run bench:net`: the per-packet binding
 * (libnetfilter_queue, one recv and one JS callback per packet, GPL-2.0,
 * unmaintained) running exactly what an aigate worker runs per packet
 * (src/daemon/worker.ts): decodeIp, Classifier.classify, the same verdict
 * and mark (NF_REPEAT + our mark once decided, NF_ACCEPT while undecided) and
 * one decision line per decision through the same logger. Never a project
 * dependency: the package is loaded from a scratch directory given on the
 * command line (installed there by the benchmark).
 *
 *   node dist/test/bench/net/nfqueue-consumer.js --module DIR/node_modules/nfqueue --queue 0 --log /dev/null
 *
 * `--log none` leaves the decision line out (a diagnostic: what the binding
 * and the classifier cost without it).
 *
 * Prints "nfqueue-consumer: ready" on stderr once bound, and one line of
 * counters on stdout at SIGTERM/SIGINT.
 */
import { createRequire } from 'node:module'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Status } from '../../../src/util/status.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DEFAULT_CACHE_SIZE } from '../../../src/cache/index.js'
import { DecisionLog, FdLines, type LogExtra } from '../../../src/log/index.js'
import { answer } from '../../../src/verdict/index.js'
import { NF_ACCEPT } from '../../../src/verdict/marks.js'

interface NfqPacket { info: { id: number, nfmark?: number }, payload: Buffer, setVerdict: (verdict: number, mark?: number) => void }
interface NfqModule { createQueueHandler: (num: number, buf: number, cb: (p: NfqPacket) => void) => unknown }

function arg (name: string, dflt?: string): string {
  const i = process.argv.indexOf(name)
  const v = i >= 0 ? process.argv[i + 1] : dflt
  if (v === undefined) throw new Error(`missing ${name}`)
  return v
}

const modulePath = arg('--module')
const queueNum = Number(arg('--queue', '0'))
const logFile = arg('--log', '/dev/null')
const nfq = createRequire(import.meta.url)(modulePath) as NfqModule

const classifier = new Classifier(loadRuleset(), DEFAULT_CACHE_SIZE)
const sink = logFile === 'none' ? null : new FdLines(logFile)
const log = sink === null ? null : new DecisionLog(sink)
// The binding hands over one packet per callback; lines are written once per
// event-loop turn (the closest it has to a batch), as the daemon does per batch.
let flushQueued = false
const flush = (): void => { flushQueued = false; sink?.flush() }
const view = new PacketView()
const out = new Outcome()
const extra: LogExtra = { queue: queueNum, durationNs: 0 }
let packets = 0
let decided = 0
/** The packet's verdict and mark, as the worker's batch arrays hold them (mark 0: left alone). */
const verdicts = new Uint32Array(1)
const marks = new Uint32Array(1)

// 8 MiB receive buffer, as accept_loop and the aigate addon use (the binding's default is 64 KiB).
nfq.createQueueHandler(queueNum, 8 << 20, (p) => {
  packets++
  const buf = p.payload
  const t0 = performance.now()
  verdicts[0] = NF_ACCEPT
  marks[0] = 0
  if (decodeIp(buf, 0, buf.length, view) === Status.Ok) {
    const named = classifier.classify(view, out, Date.now())
    if (answer(out, p.info.nfmark ?? 0, verdicts, marks, 0)) decided++
    if (named > 0 && log !== null) {
      extra.durationNs = Math.round((performance.now() - t0) * 1e6)
      log.write(view, out, extra)
      if (!flushQueued) { flushQueued = true; setImmediate(flush) }
    }
  }
  // The binding sets a mark only when it is non-zero; 0 leaves the packet's mark alone.
  if (marks[0] !== 0) p.setVerdict(verdicts[0] as number, marks[0])
  else p.setVerdict(verdicts[0] as number)
})
process.stderr.write('nfqueue-consumer: ready\n')

const stop = (): void => {
  process.stdout.write(`packets=${packets} decided=${decided} classified=${classifier.stats.packets}\n`)
  sink?.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
