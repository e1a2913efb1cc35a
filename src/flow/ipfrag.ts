import type { PacketView } from '../decode/packet.js'

/**
 * IP fragment reassembly for the offline and passive paths (inline, the
 * kernel's conntrack reassembles before the queue). Evasion tools fragment
 * the packet that carries the hello (zapret `ipfrag2`: TCP at byte 32, UDP at
 * byte 8) so that no single fragment holds the name.
 *
 * Bounded: at most `maxDatagrams` datagrams in progress, each at most
 * MAX_DATAGRAM bytes (RFC 791 §3.2 / RFC 8200 §4.5 total length), forgotten
 * after `ttlMs` (RFC 791 suggests 15 s; Linux ipfrag_time is 30 s). The first
 * copy of a byte wins; a later copy that disagrees is counted.
 */
export const MAX_DATAGRAM = 65535
export const DEFAULT_MAX_DATAGRAMS = 1024
export const DEFAULT_FRAG_TTL_MS = 30000

class Datagram {
  readonly key: string
  lastSeen: number
  /** IP header of the first fragment (offset 0), once seen. */
  header: Buffer | null = null
  data = Buffer.alloc(2048)
  /** Bytes present, as a bitmap of 8-byte blocks (fragment offsets are in 8-byte units). */
  readonly have = new Uint8Array(MAX_DATAGRAM / 8 + 1)
  /** Total length of the payload, known once the last fragment (no MF) arrives; -1 before. */
  total = -1
  /** Protocol (v6: Next Header of the first fragment's Fragment header). */
  proto = 0
  constructor (key: string, now: number) { this.key = key; this.lastSeen = now }
}

export class FragStats {
  datagrams = 0; completed = 0; evicted = 0; expired = 0; overlapsDisagree = 0; oversized = 0
  /** Fragments the capture cut short of their IP length: their data is not all there. */
  truncated = 0
  /**
   * First IPv6 fragments without every header through the upper-layer one,
   * dropped as Linux drops them (RFC 8200 §4.5; ipv6frag_thdr_truncated).
   */
  headersCut = 0
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
    if (!v4 && view.fragOffset === 0 && v6UpperHeaderCut(b, view.payloadStart, view.payloadEnd, view.proto)) {
      this.stats.headersCut++
      return null
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
    // The fragment's data: from the end of the IP header to the IP length
    // (decodeIp ends it there, not at the frame end).
    const from = view.l4Start
    const to = view.payloadEnd
    const off = view.fragOffset
    const len = to - from
    if (off + len > MAX_DATAGRAM - 60) { this.#map.delete(key); this.stats.oversized++; return null }
    if (off === 0) { d.header = ipHeader(view); d.proto = view.proto }
    if (!view.moreFragments) d.total = off + len
    if (off + len > d.data.length) {
      const grown = Buffer.alloc(Math.min(MAX_DATAGRAM, Math.max(d.data.length * 2, off + len)))
      d.data.copy(grown)
      d.data = grown
    }
    // Copy block by block; blocks we already have keep their first copy.
    for (let p = 0; p < len; p += 8) {
      const blk = (off + p) >> 3
      const n = Math.min(8, len - p)
      if (d.have[blk] === 1) {
        if (b.compare(d.data, off + p, off + p + n, from + p, from + p + n) !== 0) this.stats.overlapsDisagree++
        continue
      }
      b.copy(d.data, off + p, from + p, from + p + n)
      if (n === 8 || off + p + n === d.total) d.have[blk] = 1
    }
    if (d.total < 0 || d.header === null) return null
    for (let blk = 0; blk < Math.ceil(d.total / 8); blk++) if (d.have[blk] !== 1) return null
    this.#map.delete(key)
    this.stats.completed++
    return assemble(d.header, view.ipVersion, d.proto, d.data, d.total)
  }
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
