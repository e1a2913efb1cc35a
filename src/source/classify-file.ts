import type { Classifier } from '../classify/index.js'
import type { DecisionLog } from '../log/index.js'
import { readCapture } from './pcapfile.js'
import { FrameReader, type FrameStats } from './frames.js'

/** Counters of one replay, printed as the summary of `aigate classify`. */
export type ReplayStats = FrameStats

/**
 * Replay a capture file through the same path as the inline daemon, writing
 * one decision line per name seen. Only the source (a file) and the sink (the
 * log, no verdicts) differ from `aigate run`. Decision lines carry the
 * packet's capture time.
 */
export async function classifyFile (path: string, classifier: Classifier, log: DecisionLog): Promise<ReplayStats> {
  const frames = new FrameReader(classifier)
  await readCapture(path, (p) => {
    if (frames.read(p.linkType, p.buf, p.caplen, p.timeMs) > 0) {
      log.clock.ms = p.timeMs
      log.srcMac = frames.srcMac
      log.write(frames.packet, frames.out)
    }
  })
  return frames.finish()
}
