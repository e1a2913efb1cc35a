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

/** The version nibble, the high 4 bits of the first byte of either IP header. */
const IP_VERSION = 0
/** IPv4's IHL and TCP's Data Offset count 32-bit words. */
const HEADER_WORD = 4

/** IPv4 header fields (RFC 791 §3.1), as offsets from its start. */
const IPV4_MIN_HEADER = 20
const IPV4_VERSION_IHL = 0 // IHL in the low nibble
const IPV4_TOTAL_LENGTH = 2
const IPV4_IDENTIFICATION = 4
const IPV4_FLAGS_FRAGMENT = 6
const IPV4_TTL = 8
const IPV4_PROTOCOL = 9
const IPV4_SRC = 12
const IPV4_DST = 16
/** Flags and fragment offset (RFC 791 §3.1): MF, and the offset in 8-byte units. */
const IPV4_MF = 0x2000
const IPV4_FRAG_OFFSET = 0x1fff
/** IPv4 fragment offset and MF bits together; DF (0x4000) is not a fragment. */
const FRAG_OFFSET_MF = 0x3fff
/** Fragment offsets (IPv4 and IPv6) count 8-byte units. */
const FRAG_UNIT = 8

/** IPv6 header fields (RFC 8200 §3), as offsets from its start. */
const IPV6_HEADER = 40
const IPV6_PAYLOAD_LENGTH = 4
const IPV6_NEXT_HEADER = 6
const IPV6_HOP_LIMIT = 7
const IPV6_SRC = 8
const IPV6_DST = 24
/** Every extension header starts with Next Header, then (all but Fragment) Hdr Ext Len (RFC 8200 §4). */
const V6_EXT_NEXT_HEADER = 0
const V6_EXT_LENGTH = 1
/** Extension header lengths count 8-octet units, not counting the first 8 (RFC 8200 §4.3); AH's count 4-octet units, minus 2 (RFC 4302 §2.2). */
const V6_EXT_UNIT = 8
const V6_AH_UNIT = 4
/** Fragment header (RFC 8200 §4.5): 8 bytes; offset (13 bits, 8-byte units) and M in one 16-bit word, then the identification. */
const V6_FRAG_HEADER = 8
const V6_FRAG_OFFSET_WORD = 2
const V6_FRAG_ID = 4
const V6_FRAG_OFFSET = 0xfff8
const V6_FRAG_M = 0x0001

/** TCP header fields (RFC 9293 §3.1), as offsets from its start. */
const TCP_MIN_HEADER = 20
const TCP_SRC_PORT = 0
const TCP_DST_PORT = 2
const TCP_SEQ = 4
const TCP_ACK_NUMBER = 8
const TCP_DATA_OFFSET = 12 // in the high nibble
const TCP_FLAGS = 13

/** UDP header fields (RFC 768), as offsets from its start. */
const UDP_HEADER = 8
const UDP_SRC_PORT = 0
const UDP_DST_PORT = 2
const UDP_LENGTH = 4

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
  const version = (buf[start + IP_VERSION] as number) >> 4
  if (version === 4) return decodeV4(buf, start, end, view)
  if (version === 6) return decodeV6(buf, start, end, view)
  return Status.Unsupported
}

// RFC 791 §3.1
function decodeV4 (buf: Buffer, start: number, end: number, view: PacketView): Status {
  if (end - start < IPV4_MIN_HEADER) return Status.Malformed
  const ihl = ((buf[start + IPV4_VERSION_IHL] as number) & 0x0f) * HEADER_WORD
  let total = u16(buf, start + IPV4_TOTAL_LENGTH)
  // BIG TCP (Linux 6.3+): a GRO packet over 64 KiB carries total length 0.
  if (total === 0 && ihl >= IPV4_MIN_HEADER) { total = end - start; view.truncated = true }
  if (ihl < IPV4_MIN_HEADER || total < ihl) return Status.Malformed
  let ipEnd = start + total
  if (ipEnd > end) { view.truncated = true; ipEnd = end }
  if (start + ihl > ipEnd) return Status.Malformed
  view.ipVersion = 4
  view.ipId = u16(buf, start + IPV4_IDENTIFICATION)
  const frag = u16(buf, start + IPV4_FLAGS_FRAGMENT)
  view.moreFragments = (frag & IPV4_MF) !== 0
  view.fragOffset = (frag & IPV4_FRAG_OFFSET) * FRAG_UNIT
  view.ttl = buf[start + IPV4_TTL] as number
  view.proto = buf[start + IPV4_PROTOCOL] as number
  view.srcAddr = start + IPV4_SRC
  view.dstAddr = start + IPV4_DST
  if ((frag & FRAG_OFFSET_MF) !== 0) return fragment(view, start + ihl, ipEnd)
  return decodeL4(buf, start + ihl, ipEnd, view)
}

// RFC 8200 §3, §4
function decodeV6 (buf: Buffer, start: number, end: number, view: PacketView): Status {
  if (end - start < IPV6_HEADER) return Status.Malformed
  let ipEnd = start + IPV6_HEADER + u16(buf, start + IPV6_PAYLOAD_LENGTH)
  if (ipEnd > end) { view.truncated = true; ipEnd = end }
  view.ipVersion = 6
  view.ipId = 0
  view.ttl = buf[start + IPV6_HOP_LIMIT] as number
  view.srcAddr = start + IPV6_SRC
  view.dstAddr = start + IPV6_DST
  let next = buf[start + IPV6_NEXT_HEADER] as number
  let off = start + IPV6_HEADER
  for (let i = 0; ; i++) {
    if (next !== V6_HOP_BY_HOP && next !== V6_ROUTING && next !== V6_FRAGMENT &&
        next !== V6_DEST_OPTS && next !== V6_AH) break
    if (i === MAX_V6_EXT_HEADERS) return Status.Unsupported
    if (off + V6_EXT_UNIT > ipEnd) return Status.Malformed
    let len: number
    if (next === V6_FRAGMENT) {
      const fo = u16(buf, off + V6_FRAG_OFFSET_WORD)
      if ((fo & V6_FRAG_OFFSET_M) !== 0) {
        view.fragOffset = fo & V6_FRAG_OFFSET // already in bytes: 8-byte units, shifted left by 3
        view.moreFragments = (fo & V6_FRAG_M) !== 0
        view.ipId = u32(buf, off + V6_FRAG_ID)
        view.proto = buf[off + V6_EXT_NEXT_HEADER] as number
        // RFC 8200 §4.5: the headers after the Fragment header are part of
        // the fragmentable part, read in the rebuilt packet.
        return fragment(view, off + V6_FRAG_HEADER, ipEnd)
      }
      len = V6_FRAG_HEADER // RFC 6946: an atomic fragment is a whole packet; read on
    } else if (next === V6_AH) {
      len = ((buf[off + V6_EXT_LENGTH] as number) + 2) * V6_AH_UNIT // RFC 4302 §2.2: in 4-octet units, minus 2
    } else {
      len = ((buf[off + V6_EXT_LENGTH] as number) + 1) * V6_EXT_UNIT
    }
    next = buf[off + V6_EXT_NEXT_HEADER] as number
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
    if (off + TCP_MIN_HEADER > end) return Status.Malformed
    const dataOff = ((buf[off + TCP_DATA_OFFSET] as number) >> 4) * HEADER_WORD
    if (dataOff < TCP_MIN_HEADER || off + dataOff > end) return Status.Malformed
    view.srcPort = u16(buf, off + TCP_SRC_PORT)
    view.dstPort = u16(buf, off + TCP_DST_PORT)
    view.seq = u32(buf, off + TCP_SEQ)
    view.ack = u32(buf, off + TCP_ACK_NUMBER)
    view.tcpFlags = buf[off + TCP_FLAGS] as number
    view.payloadStart = off + dataOff
    view.payloadEnd = end
    return Status.Ok
  }
  if (view.proto === PROTO_UDP) {
    // RFC 768
    if (off + UDP_HEADER > end) return Status.Malformed
    const len = u16(buf, off + UDP_LENGTH)
    view.srcPort = u16(buf, off + UDP_SRC_PORT)
    view.dstPort = u16(buf, off + UDP_DST_PORT)
    view.payloadStart = off + UDP_HEADER
    if (len < UDP_HEADER) return Status.Malformed
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

/** Ethernet II: two 6-byte addresses, then the EtherType; an 802.1Q/802.1ad tag inserts 4 bytes before it. */
const ETH_TYPE = 12
const ETHERTYPE_LEN = 2
const VLAN_TAG = 4
/** BSD loopback (LINKTYPE_NULL): a 4-byte address family, then the packet. */
const NULL_HEADER = 4
/** Linux cooked capture v1 (LINKTYPE_LINUX_SLL): 16-byte header, protocol (EtherType) at 14. */
const SLL_HEADER = 16
const SLL_PROTOCOL = 14
/** Linux cooked capture v2 (LINKTYPE_LINUX_SLL2): 20-byte header, protocol (EtherType) first. */
const SLL2_HEADER = 20
const SLL2_PROTOCOL = 0

/**
 * Offset of the IP header in a frame of the given link type, or -1 when the
 * frame does not carry IPv4/IPv6.
 */
export function ipOffset (linkType: number, buf: Buffer, start: number, end: number): number {
  switch (linkType) {
    case LINKTYPE_RAW: case LINKTYPE_IPV4: case LINKTYPE_IPV6:
      return start
    case LINKTYPE_NULL: {
      return end - start >= NULL_HEADER ? start + NULL_HEADER : -1
    }
    case LINKTYPE_ETHERNET: {
      let off = start + ETH_TYPE
      for (let tags = 0; ; tags++) {
        if (off + ETHERTYPE_LEN > end) return -1
        const type = u16(buf, off)
        if (type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6) return off + ETHERTYPE_LEN
        if ((type !== ETHERTYPE_VLAN && type !== ETHERTYPE_QINQ) || tags === MAX_VLAN_TAGS) return -1
        off += VLAN_TAG
      }
    }
    case LINKTYPE_LINUX_SLL: {
      if (end - start < SLL_HEADER) return -1
      const type = u16(buf, start + SLL_PROTOCOL)
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? start + SLL_HEADER : -1
    }
    case LINKTYPE_LINUX_SLL2: {
      if (end - start < SLL2_HEADER) return -1
      const type = u16(buf, start + SLL2_PROTOCOL)
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? start + SLL2_HEADER : -1
    }
    default:
      return -1
  }
}

const ETH_SRC = 6
const MAC_LEN = 6
const ARPHRD_ETHER = 1
const SLL_HATYPE = 2
const SLL_HALEN = 4
const SLL_ADDR = 6
const SLL2_HATYPE = 8
const SLL2_HALEN = 11
const SLL2_ADDR = 12

/**
 * Where the sender's MAC address is in a frame at buf[start, end) whose IP
 * packet ipOffset found, or -1: Ethernet's source address; Linux cooked
 * captures' link-layer address (the sender's, for packets in and out) when
 * it is an Ethernet one. Other links carry none.
 */
export function srcMacOffset (linkType: number, buf: Buffer, start: number, end: number): number {
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      return end - start >= ETH_SRC + MAC_LEN ? start + ETH_SRC : -1
    case LINKTYPE_LINUX_SLL:
      return end - start >= SLL_HEADER && u16(buf, start + SLL_HATYPE) === ARPHRD_ETHER && u16(buf, start + SLL_HALEN) === MAC_LEN ? start + SLL_ADDR : -1
    case LINKTYPE_LINUX_SLL2:
      return end - start >= SLL2_HEADER && u16(buf, start + SLL2_HATYPE) === ARPHRD_ETHER && buf[start + SLL2_HALEN] === MAC_LEN ? start + SLL2_ADDR : -1
    default:
      return -1
  }
}
