import { decodeIp, ipOffset, PacketView } from '../decode/packet.js'
import { Status } from '../util/status.js'
import { Classifier, Outcome } from '../classify/index.js'
import type { DecisionLog } from '../log/index.js'
import { readCapture } from './pcapfile.js'
import { FragTable } from '../flow/ipfrag.js'

/** Counters of one replay, printed as the summary of `aigate classify`. */
export interface ReplayStats {
  packets: number
  ip: number
  decoded: number
  decisions: number
  notIp: number
  malformed: number
  /**
   * Fragmented IP datagrams not rebuilt, as Linux would not: fragments that
   * overlap, disagree, are misaligned, cut short or never completed.
   */
  fragDiscarded: number
}

/**
 * Replay a capture file through the same path as the inline daemon, writing
 * one decision line per name seen. Only the source (a file) and the sink (the
 * log, no verdicts) differ from `aigate run`.
 */
export async function classifyFile (path: string, classifier: Classifier, log: DecisionLog): Promise<ReplayStats> {
  const view = new PacketView()
  const whole = new PacketView()
  const out = new Outcome()
  const frags = new FragTable()
  const stats: ReplayStats = { packets: 0, ip: 0, decoded: 0, decisions: 0, notIp: 0, malformed: 0, fragDiscarded: 0 }
  await readCapture(path, (p) => {
    stats.packets++
    const ip = ipOffset(p.linkType, p.buf, 0, p.caplen)
    if (ip < 0) { stats.notIp++; return }
    stats.ip++
    const s = decodeIp(p.buf, ip, p.caplen, view)
    if (s === Status.Malformed) { stats.malformed++; return }
    let v = view
    if (view.isFragment) {
      // Offline there is no conntrack to put fragments together: we do it.
      // decodeIp read only the IP header of a fragment (a first fragment may
      // be cut inside the TCP header); the transport is read once rebuilt.
      const packet = frags.add(view, p.timeMs)
      if (packet === null) return
      const w = decodeIp(packet, 0, packet.length, whole)
      if (w === Status.Malformed) { stats.malformed++; return }
      if (w !== Status.Ok) return
      v = whole
    } else if (s !== Status.Ok) {
      return
    }
    stats.decoded++
    if (classifier.classify(v, out, p.timeMs) > 0) {
      stats.decisions += out.count
      log.clock.ms = p.timeMs
      log.write(v, out)
    }
  })
  const f = frags.stats
  stats.fragDiscarded = f.overlaps + f.inconsistent + f.oversized + f.truncated + f.headersCut + f.evicted + f.expired + frags.size
  return stats
}
