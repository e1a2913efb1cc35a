import { Status } from '../util/status.js'
import { u16, u32 } from '../util/bytes.js'

/**
 * Decode IPv4/IPv6 + TCP/UDP headers into one reused {@link PacketView}:
 * offsets into the caller's buffer, no copies, no allocation.
 */

export const PROTO_TCP = 6
export const PROTO_UDP = 17

/** IPv6 extension headers we walk through (RFC 8200 §4; AH is RFC 4302). */
const V6_HOP_BY_HOP = 0
const V6_ROUTING = 43
const V6_FRAGMENT = 44
const V6_DEST_OPTS = 60
const V6_AH = 51
/** Fragment Offset and M bits of the Fragment header (RFC 8200 §4.5); both 0 = atomic fragment. */
const V6_FRAG_OFFSET_M = 0xfff9
/**
 * Bound on the extension-header chain. Each header moves on by at least 8
 * bytes, so the packet's length already bounds the walk; a receiving Linux
 * host walks as far (a 9-header chain is delivered), so we must too.
 */
const MAX_V6_EXT_HEADERS = 8192

/** IPv4 fragment offset and MF bits (RFC 791 §3.1); DF (0x4000) is not a fragment. */
const FRAG_OFFSET_MF = 0x3fff

export const TCP_FIN = 0x01
export const TCP_SYN = 0x02
export const TCP_RST = 0x04
export const TCP_ACK = 0x10
export const TCP_URG = 0x20

export class PacketView {
  buf: Buffer = Buffer.alloc(0)
  /** 4 or 6. */
  ipVersion = 0
  /** Start of the IP header. */
  ipStart = 0
  /** Offsets of the source and destination address (4 or 16 bytes). */
  srcAddr = 0
  dstAddr = 0
  ttl = 0
  /** IPv4 identification or IPv6 fragment identification. */
  ipId = 0
  /** Fragment offset in bytes and more-fragments flag; offset 0 and !more = not fragmented. */
  fragOffset = 0
  moreFragments = false
  /** IP protocol of the transport header: PROTO_TCP, PROTO_UDP or other. */
  proto = 0
  /** Start of the transport header (for a fragment: of the fragment's bytes). */
  l4Start = 0
  srcPort = 0
  dstPort = 0
  tcpFlags = 0
  seq = 0
  /** TCP acknowledgment number (meaningful with ACK set). */
  ack = 0
  /** Transport payload [payloadStart, payloadEnd) inside buf. */
  payloadStart = 0
  payloadEnd = 0
  /** The capture cut the packet short of its IP total length. */
  truncated = false

  get isFragment (): boolean { return this.fragOffset !== 0 || this.moreFragments }
}

/**
 * Decode the IP packet at buf[start, end). Returns Ok with `view` filled,
 * Unsupported for other protocols and for fragments, Malformed for headers
 * that contradict their lengths. A fragment is described from its IP header
 * alone (offset, more-fragments, id, and its data in [l4Start, payloadEnd)):
 * its transport header is read in the rebuilt packet (flow/ipfrag.ts).
 */
export function decodeIp (buf: Buffer, start: number, end: number, view: PacketView): Status {
  view.buf = buf
  view.ipStart = start
  view.truncated = false
  view.fragOffset = 0
  view.moreFragments = false
  view.srcPort = view.dstPort = view.tcpFlags = view.seq = 0
  view.payloadStart = view.payloadEnd = end
  if (end - start < 1) return Status.Malformed
  const version = (buf[start] as number) >> 4
  if (version === 4) return decodeV4(buf, start, end, view)
  if (version === 6) return decodeV6(buf, start, end, view)
  return Status.Unsupported
}

// RFC 791 §3.1
function decodeV4 (buf: Buffer, start: number, end: number, view: PacketView): Status {
  if (end - start < 20) return Status.Malformed
  const ihl = ((buf[start] as number) & 0x0f) * 4
  let total = u16(buf, start + 2)
  // BIG TCP (Linux 6.3+): a GRO packet over 64 KiB carries total length 0.
  if (total === 0 && ihl >= 20) { total = end - start; view.truncated = true }
  if (ihl < 20 || total < ihl) return Status.Malformed
  let ipEnd = start + total
  if (ipEnd > end) { view.truncated = true; ipEnd = end }
  if (start + ihl > ipEnd) return Status.Malformed
  view.ipVersion = 4
  view.ipId = u16(buf, start + 4)
  const frag = u16(buf, start + 6)
  view.moreFragments = (frag & 0x2000) !== 0
  view.fragOffset = (frag & 0x1fff) * 8
  view.ttl = buf[start + 8] as number
  view.proto = buf[start + 9] as number
  view.srcAddr = start + 12
  view.dstAddr = start + 16
  if ((frag & FRAG_OFFSET_MF) !== 0) return fragment(view, start + ihl, ipEnd)
  return decodeL4(buf, start + ihl, ipEnd, view)
}

// RFC 8200 §3, §4
function decodeV6 (buf: Buffer, start: number, end: number, view: PacketView): Status {
  if (end - start < 40) return Status.Malformed
  let ipEnd = start + 40 + u16(buf, start + 4)
  if (ipEnd > end) { view.truncated = true; ipEnd = end }
  view.ipVersion = 6
  view.ipId = 0
  view.ttl = buf[start + 7] as number
  view.srcAddr = start + 8
  view.dstAddr = start + 24
  let next = buf[start + 6] as number
  let off = start + 40
  for (let i = 0; ; i++) {
    if (next !== V6_HOP_BY_HOP && next !== V6_ROUTING && next !== V6_FRAGMENT &&
        next !== V6_DEST_OPTS && next !== V6_AH) break
    if (i === MAX_V6_EXT_HEADERS) return Status.Unsupported
    if (off + 8 > ipEnd) return Status.Malformed
    let len: number
    if (next === V6_FRAGMENT) {
      const fo = u16(buf, off + 2)
      if ((fo & V6_FRAG_OFFSET_M) !== 0) {
        view.fragOffset = fo & 0xfff8
        view.moreFragments = (fo & 1) !== 0
        view.ipId = u32(buf, off + 4)
        view.proto = buf[off] as number
        // RFC 8200 §4.5: the headers after the Fragment header are part of
        // the fragmentable part, read in the rebuilt packet.
        return fragment(view, off + 8, ipEnd)
      }
      len = 8 // RFC 6946: an atomic fragment is a whole packet; read on
    } else if (next === V6_AH) {
      len = ((buf[off + 1] as number) + 2) * 4 // RFC 4302 §2.2: in 4-octet units, minus 2
    } else {
      len = ((buf[off + 1] as number) + 1) * 8
    }
    next = buf[off] as number
    off += len // always advances by at least 8
  }
  if (off > ipEnd) return Status.Malformed
  view.proto = next
  return decodeL4(buf, off, ipEnd, view)
}

function decodeL4 (buf: Buffer, off: number, end: number, view: PacketView): Status {
  view.l4Start = off
  if (view.proto === PROTO_TCP) {
    // RFC 9293 §3.1
    if (off + 20 > end) return Status.Malformed
    const dataOff = ((buf[off + 12] as number) >> 4) * 4
    if (dataOff < 20 || off + dataOff > end) return Status.Malformed
    view.srcPort = u16(buf, off)
    view.dstPort = u16(buf, off + 2)
    view.seq = u32(buf, off + 4)
    view.ack = u32(buf, off + 8)
    view.tcpFlags = buf[off + 13] as number
    view.payloadStart = off + dataOff
    view.payloadEnd = end
    return Status.Ok
  }
  if (view.proto === PROTO_UDP) {
    // RFC 768
    if (off + 8 > end) return Status.Malformed
    const len = u16(buf, off + 4)
    view.srcPort = u16(buf, off)
    view.dstPort = u16(buf, off + 2)
    view.payloadStart = off + 8
    if (len < 8) return Status.Malformed
    if (off + len > end && !view.truncated) return Status.Malformed
    view.payloadEnd = Math.min(off + len, end)
    return Status.Ok
  }
  view.payloadStart = off
  view.payloadEnd = end
  return Status.Unsupported
}

/**
 * A fragment: its data is [off, end), ending where the IP length says, never
 * at the frame end (Ethernet pads short frames). No transport header is read
 * here, as a first fragment may be cut anywhere (zapret ipfrag2 cuts TCP at
 * byte 8, or inside the options).
 */
function fragment (view: PacketView, off: number, end: number): Status {
  view.l4Start = view.payloadStart = off
  view.payloadEnd = end
  return Status.Unsupported
}

/** Text form of an address of the view (for logs only: allocates). */
export function formatAddr (view: PacketView, which: 'src' | 'dst'): string {
  const b = view.buf
  const o = which === 'src' ? view.srcAddr : view.dstAddr
  if (view.ipVersion === 4) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`
  // RFC 5952 text form, with the longest zero run compressed.
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push(u16(b, o + i))
  let bestStart = -1; let bestLen = 0
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen && j - i > 1) { bestStart = i; bestLen = j - i }
    i = j
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(':')
  if (bestStart < 0) return hex(groups)
  return hex(groups.slice(0, bestStart)) + '::' + hex(groups.slice(bestStart + bestLen))
}

/** Link types (tcpdump.org/linktypes.html) and the offset of the IP header. */
export const LINKTYPE_NULL = 0
export const LINKTYPE_ETHERNET = 1
export const LINKTYPE_RAW = 101
export const LINKTYPE_LINUX_SLL = 113
export const LINKTYPE_IPV4 = 228
export const LINKTYPE_IPV6 = 229
export const LINKTYPE_LINUX_SLL2 = 276

const ETHERTYPE_IPV4 = 0x0800
const ETHERTYPE_IPV6 = 0x86dd
const ETHERTYPE_VLAN = 0x8100
const ETHERTYPE_QINQ = 0x88a8
const MAX_VLAN_TAGS = 2

/**
 * Offset of the IP header in a frame of the given link type, or -1 when the
 * frame does not carry IPv4/IPv6.
 */
export function ipOffset (linkType: number, buf: Buffer, start: number, end: number): number {
  switch (linkType) {
    case LINKTYPE_RAW: case LINKTYPE_IPV4: case LINKTYPE_IPV6:
      return start
    case LINKTYPE_NULL: {
      return end - start >= 4 ? start + 4 : -1
    }
    case LINKTYPE_ETHERNET: {
      let off = start + 12
      for (let tags = 0; ; tags++) {
        if (off + 2 > end) return -1
        const type = u16(buf, off)
        if (type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6) return off + 2
        if ((type !== ETHERTYPE_VLAN && type !== ETHERTYPE_QINQ) || tags === MAX_VLAN_TAGS) return -1
        off += 4
      }
    }
    case LINKTYPE_LINUX_SLL: {
      if (end - start < 16) return -1
      const type = u16(buf, start + 14)
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? start + 16 : -1
    }
    case LINKTYPE_LINUX_SLL2: {
      if (end - start < 20) return -1
      const type = u16(buf, start)
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? start + 20 : -1
    }
    default:
      return -1
  }
}
