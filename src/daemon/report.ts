import type { DecisionRow } from '../metrics/counts.js'
import type { QueueStats } from '../queue/index.js'

/**
 * What a worker tells the main thread about itself, once a second from its
 * serving loop (so a report that stops coming means a stuck or dead loop):
 * counters since it started, the decisions by label, when it last answered
 * a packet. The main thread serves metrics and `aigate status` from the
 * latest reports, never by asking a worker and waiting.
 */
export interface WorkerReport {
  type: 'report'
  queue: number
  /** Date.now() when the report was made. */
  at: number
  /** Date.now() of the last verdict handed to the kernel; 0 before the first. */
  lastVerdict: number
  counters: WorkerCounters
  decisions: DecisionRow[]
}

/** A worker's counters, each a total since it started: the queue's own (QueueStats: packets, batches, enobufs, verdicts...) and these. */
export type WorkerCounters = QueueStats & {
  /** The kernel's own counters of the queue (-1: not readable): full-queue drops, messages the socket could not take. */
  overloadDropped: number
  userDropped: number
  /** The kernel lists the queue as bound (its /proc line), and the netlink port id bound to it. */
  bound: number
  portId: number
  decided: number
  undecodable: number
  classified: number
  implausible: number
  tooManySegments: number
  cacheHits: number
  cacheMisses: number
  tcpFlows: number
  quicFlows: number
  flowsEvicted: number
  flowsExpired: number
  flowsShed: number
  flowsLost: number
  logLines: number
  logLost: number
}

/** The kernel's line for a queue in /proc/net/netfilter/nfnetlink_queue, parsed; null when it is not bound here. */
export interface KernelQueue { portId: number, overloadDropped: number, userDropped: number }

/**
 * The kernel's own counters of a queue (this network namespace):
 * `overloadDropped`, packets dropped because the queue was full (the
 * overload a flood causes; never counted with fail-open), and `userDropped`,
 * messages the socket could not take. The line exists only while a socket
 * is bound to the queue.
 */
export function parseKernelQueues (text: string, queue: number): KernelQueue | null {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (Number(f[0]) === queue && f.length >= 7) return { portId: Number(f[1]), overloadDropped: Number(f[5]), userDropped: Number(f[6]) }
  }
  return null
}
