import type { PacketView } from '../decode/packet.js'

/**
 * IP fragment reassembly for the offline and passive paths (inline, the
 * kernel's conntrack reassembles before the queue). Evasion tools fragment
 * the packet that carries the hello (zapret `ipfrag2`: TCP at byte 32, UDP at
 * byte 8) so that no single fragment holds the name.
 *
 * Bounded: at most `maxDatagrams` datagrams in progress, each at most
 * MAX_DATAGRAM bytes (RFC 791 §3.2 / RFC 8200 §4.5 total length), forgotten
 * after `ttlMs` (RFC 791 suggests 15 s; Linux ipfrag_time is 30 s).
 *
 * Overlaps are judged as Linux judges them (net/ipv4/inet_fragment.c
 * inet_frag_queue_insert, used for IPv4 and IPv6), so that we never read a
 * datagram the host would not rebuild: a fragment that overlaps what is held
 * discards the whole datagram (RFC 5722 §4 for IPv6), except a duplicate that
 * lies inside one "run" of held fragments, which alone is dropped. A run is a
 * fragment plus those appended right after it when each arrived as the new
 * highest fragment.
 */
export const MAX_DATAGRAM = 65535
export const DEFAULT_MAX_DATAGRAMS = 1024
export const DEFAULT_FRAG_TTL_MS = 30000

class Datagram {
  readonly key: string
  lastSeen: number
  /** IP header of the first fragment (offset 0), once held. */
  header: Buffer | null = null
  data = Buffer.alloc(2048)
  /** Runs of held fragments, [runStart[i], runEnd[i]), disjoint and sorted. */
  readonly runStart: number[] = []
  readonly runEnd: number[] = []
  /** Bytes held (no two fragments overlap, so no byte is counted twice). */
  meat = 0
  /** Highest fragment end seen; the payload length once `lastIn`. */
  len = 0
  /** The last fragment (no MF) has arrived. */
  lastIn = false
  /** Protocol (v6: Next Header of the first fragment's Fragment header). */
  proto = 0
  constructor (key: string, now: number) { this.key = key; this.lastSeen = now }
}

export class FragStats {
  datagrams = 0; completed = 0; evicted = 0; expired = 0; oversized = 0
  /** Fragments the capture cut short of their IP length: their data is not all there. */
  truncated = 0
  /**
   * First IPv6 fragments without every header through the upper-layer one,
   * dropped as Linux drops them (RFC 8200 §4.5; ipv6frag_thdr_truncated).
   */
  headersCut = 0
  /** Datagrams discarded because a fragment overlapped held ones (Linux ReasmOverlaps). */
  overlaps = 0
  /** Datagrams discarded because fragments disagree on the end, or a fragment is empty. */
  inconsistent = 0
  /** Fragments dropped as duplicates inside a held run (the first copy stays). */
  duplicates = 0
  /** IPv6 fragments with M set and a length not a multiple of 8, dropped (RFC 8200 §4.5). */
  misaligned = 0
}

export class FragTable {
  readonly stats = new FragStats()
  readonly #map = new Map<string, Datagram>()
  readonly #max: number
  readonly #ttl: number

  constructor (maxDatagrams = DEFAULT_MAX_DATAGRAMS, ttlMs = DEFAULT_FRAG_TTL_MS) {
    this.#max = maxDatagrams
    this.#ttl = ttlMs
  }

  get size (): number { return this.#map.size }

  /**
   * Add the fragment in `view` (decodeIp filled it; `view.isFragment`).
   * Returns the whole IP packet once every fragment is there (a new Buffer,
   * fragment fields cleared), else null.
   */
  add (view: PacketView, now: number): Buffer | null {
    if (view.truncated) { this.stats.truncated++; return null }
    const b = view.buf
    const v4 = view.ipVersion === 4
    const alen = v4 ? 4 : 16
    // The fragment's data: from the end of the IP header (v6: of the
    // Fragment header) to the IP length, never to the frame end.
    const from = view.payloadStart
    const off = view.fragOffset
    let end = off + view.payloadEnd - from
    if (!v4) {
      if (view.fragOffset === 0 && v6UpperHeaderCut(b, from, view.payloadEnd, view.proto)) { this.stats.headersCut++; return null }
      // Linux ip6_frag_queue: answered with a Parameter Problem, the datagram kept.
      if (view.moreFragments && (end & 7) !== 0) { this.stats.misaligned++; return null }
      if (end > MAX_DATAGRAM) { this.stats.oversized++; return null }
    }
    // RFC 791 §3.2: source, destination, protocol, identification. RFC 8200
    // §4.5: source, destination, identification (the Next Header of later
    // fragments may differ; the first fragment's is used).
    const key = String.fromCharCode(view.ipVersion, v4 ? view.proto : 0) + b.toString('latin1', view.srcAddr, view.srcAddr + alen) +
      b.toString('latin1', view.dstAddr, view.dstAddr + alen) + String(view.ipId)
    let d = this.#map.get(key)
    if (d !== undefined && now - d.lastSeen > this.#ttl) { this.#map.delete(key); this.stats.expired++; d = undefined }
    if (d === undefined) {
      if (this.#map.size >= this.#max) {
        this.#map.delete(this.#map.keys().next().value as string)
        this.stats.evicted++
      }
      d = new Datagram(key, now)
      this.#map.set(key, d)
      this.stats.datagrams++
    }
    d.lastSeen = now
    // Linux ip_frag_queue / ip6_frag_queue, in their order.
    if (!view.moreFragments) {
      if (end < d.len || (d.lastIn && end !== d.len)) return this.#discard(key, 'inconsistent')
      d.lastIn = true
      d.len = end
    } else {
      end &= ~7 // IPv4: a non-last fragment's data is cut to 8-byte units
      if (end > d.len) {
        if (d.lastIn) return this.#discard(key, 'inconsistent')
        d.len = end
      }
    }
    if (end === off) return this.#discard(key, 'inconsistent')
    // Linux ip_frag_reasm: the rebuilt IPv4 packet must fit its total length.
    if (v4 && from - view.ipStart + end > MAX_DATAGRAM) return this.#discard(key, 'oversized')
    const ins = insertRun(d, off, end)
    if (ins === DUPLICATE) { this.stats.duplicates++; return null }
    if (ins === OVERLAP) return this.#discard(key, 'overlaps')
    if (end > d.data.length) {
      const grown = Buffer.alloc(Math.min(MAX_DATAGRAM, Math.max(d.data.length * 2, end)))
      d.data.copy(grown)
      d.data = grown
    }
    b.copy(d.data, off, from, from + end - off)
    d.meat += end - off
    if (off === 0) { d.header = ipHeader(view); d.proto = view.proto }
    if (d.header === null || !d.lastIn || d.meat !== d.len) return null
    this.#map.delete(key)
    this.stats.completed++
    return assemble(d.header, view.ipVersion, d.proto, d.data, d.len)
  }

  #discard (key: string, why: 'inconsistent' | 'overlaps' | 'oversized'): null {
    this.#map.delete(key)
    this.stats[why]++
    return null
  }
}

const INSERTED = 0
const DUPLICATE = 1
const OVERLAP = 2

/**
 * Place [off, end) among the held runs as Linux inet_frag_queue_insert does:
 * past the highest run it extends that run (when adjacent) or starts a new
 * one, and overlapping the highest run is an overlap; below, it must either
 * touch no run (a new run), or lie inside one run (a duplicate).
 */
function insertRun (d: Datagram, off: number, end: number): number {
  const starts = d.runStart
  const ends = d.runEnd
  const n = starts.length
  const lastEnd = n === 0 ? -1 : ends[n - 1] as number
  if (lastEnd < end) {
    if (off < lastEnd) return OVERLAP
    if (off === lastEnd) ends[n - 1] = end
    else { starts.push(off); ends.push(end) }
    return INSERTED
  }
  // The first run that ends after `off`: the only one that can hold it.
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((ends[mid] as number) <= off) lo = mid + 1
    else hi = mid
  }
  if ((starts[lo] as number) < end) {
    return off >= (starts[lo] as number) && end <= (ends[lo] as number) ? DUPLICATE : OVERLAP
  }
  starts.splice(lo, 0, off)
  ends.splice(lo, 0, end)
  return INSERTED
}

const V6_HOP_BY_HOP = 0
const V6_ROUTING = 43
const V6_FRAGMENT = 44
const V6_AH = 51
const V6_NO_NEXT = 59
const V6_DEST_OPTS = 60
/** Minimum upper-layer header Linux wants in a first fragment: TCP, UDP, ICMPv6 (RFC 9293, 768, 4443); others 1 byte. */
const PROTO_TCP = 6
const PROTO_UDP = 17
const PROTO_ICMPV6 = 58

/**
 * Whether the first IPv6 fragment's data [off, end), whose first header is
 * `next`, stops before the end of its upper-layer header (RFC 8200 §4.5:
 * "should be discarded"). Follows Linux (ipv6frag_thdr_truncated over
 * ipv6_skip_exthdr): a chain it cannot walk is not judged cut. Each step
 * advances by at least 8 bytes.
 */
function v6UpperHeaderCut (b: Buffer, off: number, end: number, next: number): boolean {
  while (next === V6_HOP_BY_HOP || next === V6_ROUTING || next === V6_FRAGMENT ||
         next === V6_AH || next === V6_DEST_OPTS) {
    if (off + 2 > end) return false
    let len: number
    if (next === V6_FRAGMENT) {
      if (off + 4 > end || (b.readUInt16BE(off + 2) & 0xfff8) !== 0) return false
      len = 8
    } else if (next === V6_AH) {
      len = ((b[off + 1] as number) + 2) * 4 // RFC 4302 §2.2
    } else {
      len = ((b[off + 1] as number) + 1) * 8
    }
    next = b[off] as number
    off += len
  }
  if (next === V6_NO_NEXT) return false
  const need = next === PROTO_TCP ? 20 : next === PROTO_UDP ? 8 : next === PROTO_ICMPV6 ? 8 : 1
  return off + need > end
}

/** The header to put in front of the reassembled payload (v6: the fixed header only). */
function ipHeader (view: PacketView): Buffer {
  if (view.ipVersion === 4) return Buffer.from(view.buf.subarray(view.ipStart, view.l4Start))
  return Buffer.from(view.buf.subarray(view.ipStart, view.ipStart + 40))
}

function assemble (header: Buffer, version: number, proto: number, data: Buffer, total: number): Buffer {
  const out = Buffer.alloc(header.length + total)
  header.copy(out)
  data.copy(out, header.length, 0, total)
  if (version === 4) {
    out.writeUInt16BE(header.length + total, 2)
    out.writeUInt16BE(0, 6) // no MF, offset 0
  } else {
    out.writeUInt16BE(total, 4)
    out[6] = proto // extension headers before the fragment header are dropped
  }
  return out
}
