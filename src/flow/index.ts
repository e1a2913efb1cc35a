import { LRUCache } from 'lru-cache'
import type { PacketView } from '../decode/packet.js'

/**
 * The first bytes of TCP flows whose opening message (ClientHello, HTTP
 * request head, DNS-over-TCP query) does not fit in one segment.
 *
 * Bounded by construction: at most `maxFlows` flows, at most `maxBytes`
 * buffered per flow (contiguous and out-of-order bytes together), at most
 * `maxTotalBytes` buffered by all flows together, and a flow idle longer than
 * `ttlMs` is forgotten. When the table is full the oldest flow goes, and that
 * is counted (`evicted`). When the bytes are, the oldest flows holding bytes
 * lose them and are marked `shed` (counted): the classifier gives them the
 * policy's unknown. So one queue holds at most maxTotalBytes of segments
 * (128 MiB by default) plus maxFlows small flow objects (about 20 MiB), not
 * maxFlows x maxBytes (1 GiB).
 *
 * Overlap policy: the first copy of a byte wins, as a receiving Linux host
 * keeps data it already has in order. A later copy that disagrees marks the
 * flow `disagree` (an evasion trick: overlapping segments that show a DPI box
 * one name and the server another).
 */

export const DEFAULT_MAX_FLOWS = 65536
/** Enough for a post-quantum ClientHello split any way (~1.8 kB) with room: RFC 8446 allows more, we stop here. */
export const DEFAULT_MAX_FLOW_BYTES = 16384
export const DEFAULT_FLOW_TTL_MS = 10000
/** Bytes all flows of one table may hold together (8192 flows at maxBytes). */
export const DEFAULT_MAX_TOTAL_FLOW_BYTES = 128 * 1024 * 1024
/**
 * Segments an opening message may take, inline. The firewall queues every
 * segment with payload of a flow until it has a verdict, so this bounds the
 * packets one undecided flow costs the daemon: a message still incomplete
 * after this many segments is evasion (real clients use 1 to 3; evasion
 * tools cut hellos into many).
 */
export const DEFAULT_MAX_FLOW_SEGMENTS = 32
/**
 * Offline (a capture) there is no queue to protect and every segment is in
 * the file: a hello cut into 10-byte segments is read whole (maxBytes still
 * bounds it).
 */
export const OFFLINE_MAX_FLOW_SEGMENTS = 4096
/**
 * Packets of one flow that cannot reach the server (a lower TTL than the
 * flow's first segment, fake data on a watched flow) before the flow is
 * evasion: a few are tolerated and ignored, a stream of them is a tool.
 */
export const MAX_IMPLAUSIBLE = 8
/** Keys of flows forgotten mid-opening that are remembered (FlowTable lost), and for how long. */
const LOST_MAX = 16384
const LOST_TTL_MS = 60000
/** Out-of-order segments held per flow. */
const MAX_PENDING_SEGMENTS = 64

export interface FlowLimits { maxFlows: number, maxBytes: number, maxTotalBytes: number, ttlMs: number, maxSegments: number }

/**
 * One TCP flow: the bytes of its opening gathered so far, and, typed by the
 * classifier, its watch (W) and final decision (D).
 */
export class Flow<W = unknown, D = unknown> {
  readonly key: string
  /** Sequence number of the first byte of the stream; -1 until a segment that starts a message is seen. */
  base = -1
  /** Contiguous bytes from base (allocated when the first byte arrives, grown to at most maxBytes). */
  data: Buffer = EMPTY
  have = 0
  /**
   * Out-of-order segments: sequence number and a copy of their bytes. Shared
   * empty arrays until the first one (see pend): most flows never hold one,
   * and a flow only watched after an allow should cost little.
   */
  pendingSeq: number[] = NO_SEQ
  pendingData: Buffer[] = NO_DATA
  pendingBytes = 0
  lastSeen: number
  /** Bytes seen twice disagreed (overlap evasion). */
  disagree = false
  /** The table ran past maxTotalBytes and took this flow's bytes (the oldest first). */
  shed = false
  /** The flow ran past maxBytes without finishing its message. */
  overflow = false
  /** Packets of this flow seen. */
  packets = 0
  /** The client's SYN was seen: `base` is where the stream starts, for certain. */
  synSeen = false
  /** TTL (hop limit) of the flow's first segment: a later piece with fewer hops left cannot come from the same sender on the same path. */
  ttl = 0
  /** Packets ignored as implausible (see MAX_IMPLAUSIBLE). */
  implausible = 0
  /**
   * The final decision, once made: later packets of the flow (still in the
   * queue when the verdict was saved, or the rest of a capture) get it
   * without a new line. The table does not look inside it.
   */
  decided: D | null = null
  /**
   * An allowed flow under watch (what the classifier keeps of the decided
   * opening, see classify/tcp-watch.ts), or null. Bytes gathered while it is
   * set are a second opening.
   */
  watch: W | null = null
  constructor (key: string, now: number) {
    this.key = key
    this.lastSeen = now
  }
}

export class FlowStats {
  created = 0
  completed = 0
  evicted = 0
  /** Flows whose bytes were taken back when the table ran past maxTotalBytes. */
  shed = 0
  /** Flows forgotten (idle or evicted) while they held part of an opening. */
  lost = 0
  expired = 0
  overflowed = 0
  disagreements = 0
  /** Opening messages still incomplete after maxSegments segments (evasion). */
  tooManySegments = 0
  /**
   * Data on a watched flow that cannot be the client's real next segment
   * (no ACK, a lower TTL than the hello's, a sequence number before the
   * hello's end): a fake meant to die before the server. Ignored.
   */
  implausible = 0
}

const EMPTY = Buffer.alloc(0)
/** Scratch for keyOf: addresses (IPv6 at most), protocol, ports. */
const KEY = Buffer.alloc(16 + 16 + 5)
/** Never written: Flow's pending arrays until its first out-of-order segment. */
const NO_SEQ: number[] = Object.freeze([]) as unknown as number[]
const NO_DATA: Buffer[] = Object.freeze([]) as unknown as Buffer[]

/** Keep an out-of-order segment (its own arrays on the first). */
function pend (f: Flow<unknown, unknown>, seq: number, data: Buffer): void {
  if (f.pendingSeq === NO_SEQ) { f.pendingSeq = []; f.pendingData = [] }
  f.pendingSeq.push(seq)
  f.pendingData.push(data)
}

/** Signed distance a - b in 32-bit sequence space (RFC 9293 §3.4). */
function seqDiff (a: number, b: number): number {
  return ((a - b) | 0)
}

export class FlowTable<W = unknown, D = unknown> {
  readonly limits: FlowLimits
  readonly stats = new FlowStats()
  /**
   * lru-cache: a hard cap, O(1) eviction of the least recently used flow and
   * TTL by our clock (packet time offline, wall time inline).
   */
  readonly #flows: LRUCache<string, Flow<W, D>>
  #now = 0

  constructor (limits: Partial<FlowLimits> = {}) {
    this.limits = {
      maxFlows: limits.maxFlows ?? DEFAULT_MAX_FLOWS,
      maxBytes: limits.maxBytes ?? DEFAULT_MAX_FLOW_BYTES,
      maxTotalBytes: limits.maxTotalBytes ?? DEFAULT_MAX_TOTAL_FLOW_BYTES,
      maxSegments: limits.maxSegments ?? DEFAULT_MAX_FLOW_SEGMENTS,
      ttlMs: limits.ttlMs ?? DEFAULT_FLOW_TTL_MS,
    }
    if (!Number.isInteger(this.limits.maxFlows) || this.limits.maxFlows < 1) throw new TypeError('maxFlows must be a positive integer')
    if (!Number.isInteger(this.limits.maxBytes) || this.limits.maxBytes < 64) throw new TypeError('maxBytes must be an integer >= 64')
    this.#flows = new LRUCache<string, Flow<W, D>>({
      max: this.limits.maxFlows,
      ttl: this.limits.ttlMs,
      ttlResolution: 0,
      updateAgeOnGet: true,
      perf: { now: () => this.#now },
      dispose: (f, k, reason) => {
        this.#bytes -= f.data.length + f.pendingBytes
        // A flow that goes while it holds part of an opening: its rest must not
        // pass as a stream whose start we never saw (see lost()).
        // So is a connection whose SYN we saw and whose opening never came: data
        // that is not an opening (old bytes behind its start, say) is not midstream.
        if ((reason === 'evict' || reason === 'expire') && f.decided === null && (f.have > 0 || f.pendingBytes > 0 || (f.synSeen && f.watch === null))) this.markLost(k)
        if (reason === 'evict') this.stats.evicted++
        else if (reason === 'expire') this.stats.expired++
      },
    })
  }

  get size (): number { return this.#flows.size }

  /**
   * Flows forgotten (idle past ttlMs, or evicted) while they held part of an
   * opening, remembered by key for a minute: the client that paused its hello
   * (or had it pushed out) cannot pass the rest as a stream we never saw.
   * Keys only, at most LOST_MAX of them.
   */
  readonly #lost = new LRUCache<string, true>({ max: LOST_MAX, ttl: LOST_TTL_MS, ttlResolution: 0, perf: { now: () => this.#now } })

  markLost (key: string): void { this.#lost.set(key, true); this.stats.lost++ }

  /** Was this flow forgotten mid-opening? (Asked once: the answer is taken.) */
  takeLost (key: string): boolean { return this.#lost.delete(key) }

  /** Any flow forgotten mid-opening is remembered (so a caller may skip building a key). */
  get anyLost (): boolean { return this.#lost.size > 0 }

  /** Bytes the flows hold now (buffers and out-of-order segments). */
  get bytes (): number { return this.#bytes }
  #bytes = 0

  /** Past maxTotalBytes: the oldest flows holding bytes give them up until a quarter is free again. */
  #shed (keep: Flow<W, D>): void {
    const target = this.limits.maxTotalBytes * 3 / 4
    for (const f of this.#flows.rvalues()) {
      if (this.#bytes <= target) break
      if (f === undefined || f === keep || (f.data.length === 0 && f.pendingBytes === 0)) continue
      this.#bytes -= f.data.length + f.pendingBytes
      f.data = EMPTY
      f.have = 0
      f.pendingSeq = NO_SEQ
      f.pendingData = NO_DATA
      f.pendingBytes = 0
      f.shed = true
      this.stats.shed++
    }
  }

  /** Flows gathering a message (not merely watched after an allow, nor decided). O(flows): for tests and stats. */
  reassembling (): number {
    let n = 0
    for (const f of this.#flows.values()) if ((f.watch === null && f.decided === null) || f.have > 0 || f.pendingSeq.length > 0) n++
    return n
  }

  /** Key of the packet's flow (client side first): protocol, addresses, ports. Allocates a short string. */
  static keyOf (v: PacketView): string {
    const alen = v.ipVersion === 4 ? 4 : 16
    const b = v.buf
    for (let i = 0; i < alen; i++) {
      KEY[i] = b[v.srcAddr + i] as number
      KEY[alen + i] = b[v.dstAddr + i] as number
    }
    let o = 2 * alen
    KEY[o++] = v.proto
    KEY[o++] = v.srcPort >> 8; KEY[o++] = v.srcPort & 255
    KEY[o++] = v.dstPort >> 8; KEY[o++] = v.dstPort & 255
    return KEY.toString('latin1', 0, o)
  }

  get (key: string, now: number): Flow<W, D> | undefined {
    this.#now = now
    return this.#flows.get(key)
  }

  create (key: string, now: number): Flow<W, D> {
    this.#now = now
    const f = new Flow<W, D>(key, now)
    this.#flows.set(key, f)
    this.stats.created++
    return f
  }

  /**
   * Put a flow back, its gathered bytes forgotten and what it knows besides
   * (its watch, TTL, counts) kept: a second hello read and found the same as
   * the first goes on being watched.
   */
  regather (f: Flow<W, D>, now: number): void {
    this.#flows.delete(f.key)
    f.base = -1
    f.data = EMPTY
    f.have = 0
    f.pendingSeq = NO_SEQ
    f.pendingData = NO_DATA
    f.pendingBytes = 0
    f.disagree = f.overflow = false
    f.packets = 0
    f.lastSeen = now
    this.#now = now
    this.#flows.set(f.key, f)
  }

  delete (f: Flow<W, D>): void {
    if (this.#flows.peek(f.key) === f) this.#flows.delete(f.key)
  }

  clear (): void { this.#flows.clear() }

  /**
   * Add the segment [s, e) of `buf` at sequence number `seq` to the flow.
   * `starts`: the segment begins a message (TLS record, HTTP method, DNS
   * length), used to learn the stream's first byte when the flow has none.
   */
  addSegment (f: Flow<W, D>, seq: number, buf: Buffer, s: number, e: number, starts: boolean, now: number): void {
    f.lastSeen = now
    f.packets++
    this.#now = now
    this.#flows.get(f.key) // touch: the young end of the age order, TTL restarted
    if (e <= s) return
    if (starts && f.base !== -1 && seqDiff(seq, f.base) < 0) {
      // A message start before what we took as the start: the earlier bytes
      // were a later piece that arrived first. Start over from here.
      if (f.have > 0) {
        pend(f, f.base, Buffer.from(f.data.subarray(0, f.have)))
        f.pendingBytes += f.have
        this.#bytes += f.have
        f.have = 0
      }
      f.base = -1
    }
    if (f.base === -1) {
      if (starts && (f.pendingSeq.length === 0 || f.pendingSeq.every((p) => seqDiff(p, seq) > 0))) {
        f.base = seq
      } else {
        this.#hold(f, seq, buf, s, e)
        return
      }
    }
    this.#place(f, seq, buf, s, e)
    // Out-of-order segments that now touch the contiguous part.
    for (let progress = true; progress && f.pendingSeq.length > 0;) {
      progress = false
      for (let i = 0; i < f.pendingSeq.length; i++) {
        const rel = seqDiff(f.pendingSeq[i] as number, f.base)
        if (rel <= f.have) {
          const d = f.pendingData[i] as Buffer
          f.pendingSeq.splice(i, 1)
          f.pendingData.splice(i, 1)
          f.pendingBytes -= d.length
          this.#bytes -= d.length
          this.#place(f, (f.base + rel) >>> 0, d, 0, d.length)
          progress = true
          break
        }
      }
    }
  }

  #place (f: Flow<W, D>, seq: number, buf: Buffer, s: number, e: number): void {
    let rel = seqDiff(seq, f.base)
    if (rel < 0) { // bytes before the stream start: the receiver discards them
      s -= rel
      rel = 0
      if (s >= e) return
    }
    if (rel > f.have) { this.#hold(f, seq, buf, s, e); return }
    // Overlap with what we already have: first copy wins, disagreement is noted.
    const overlap = Math.min(e - s, f.have - rel)
    if (overlap > 0 && buf.compare(f.data, rel, rel + overlap, s, s + overlap) !== 0) {
      if (!f.disagree) this.stats.disagreements++
      f.disagree = true
    }
    const from = s + overlap
    if (from >= e) return
    const room = this.limits.maxBytes - f.have
    const take = Math.min(e - from, room)
    if (take < e - from) {
      if (!f.overflow) this.stats.overflowed++
      f.overflow = true
    }
    if (take <= 0) return
    if (f.have + take > f.data.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.limits.maxBytes, Math.max(f.data.length * 2, f.have + take, 256)))
      f.data.copy(grown, 0, 0, f.have)
      this.#bytes += grown.length - f.data.length
      f.data = grown
      if (this.#bytes > this.limits.maxTotalBytes) this.#shed(f)
    }
    buf.copy(f.data, f.have, from, from + take)
    f.have += take
  }

  #hold (f: Flow<W, D>, seq: number, buf: Buffer, s: number, e: number): void {
    if (f.pendingSeq.length >= MAX_PENDING_SEGMENTS || f.have + f.pendingBytes + (e - s) > this.limits.maxBytes) {
      if (!f.overflow) this.stats.overflowed++
      f.overflow = true
      return
    }
    // A copy: the packet buffer is reused for the next batch.
    pend(f, seq, Buffer.from(buf.subarray(s, e)))
    f.pendingBytes += e - s
    this.#bytes += e - s
    if (this.#bytes > this.limits.maxTotalBytes) this.#shed(f)
  }
}
