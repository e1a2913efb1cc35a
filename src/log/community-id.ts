import { hash } from 'node:crypto'
import { PROTO_TCP, PROTO_UDP, type PacketView } from '../decode/packet.js'

/**
 * Community ID v1 of a flow (https://github.com/corelight/community-id-spec):
 * how a SOC joins our line to Zeek's conn.log and Suricata's flow events.
 *
 *   "1:" + base64(SHA-1(seed u16be | addr lo | addr hi | proto u8 | 0 u8 | port lo u16be | port hi u16be))
 *
 * The two endpoints are ordered so both directions give one ID: the smaller
 * address (network byte order) first, on equal addresses the smaller port.
 * Ports only for TCP, UDP and SCTP (ICMP's type/code mapping is not needed:
 * we log only TCP and UDP flows). SHA-1 is node:crypto's, one-shot
 * (`crypto.hash`, ~0.5 us; createHash() per line cost twice that, measured
 * in-process on a 16-byte input, node 20).
 */

const PROTO_SCTP = 132
const SEED = 0
const HEAD = 2 // seed
const TAIL = 2 // proto, padding
const PORTS = 4

export class CommunityId {
  /**
   * One input buffer per exact length (IPv4/IPv6, with or without ports):
   * hashing a whole buffer, bytes copied in by hand, measured ~2x faster
   * than hashing subarray()s filled with set() (~0.6 us against ~1.2 us).
   */
  readonly #in: Buffer[] = [
    Buffer.alloc(HEAD + 8 + TAIL), Buffer.alloc(HEAD + 8 + TAIL + PORTS),
    Buffer.alloc(HEAD + 32 + TAIL), Buffer.alloc(HEAD + 32 + TAIL + PORTS),
  ]

  constructor (seed = SEED) {
    for (const b of this.#in) b.writeUInt16BE(seed, 0)
  }

  /** The flow's ID from the packet's addresses, protocol and ports. */
  of (view: PacketView): string {
    return this.from(view.buf, view.srcAddr, view.dstAddr, view.ipVersion === 4 ? 4 : 16, view.proto, view.srcPort, view.dstPort)
  }

  /** The ID of addresses `len` (4 or 16) bytes long at buf[src] and buf[dst]. */
  from (buf: Uint8Array, src: number, dst: number, len: number, proto: number, sport: number, dport: number): string {
    let order = 0
    for (let i = 0; i < len && order === 0; i++) order = (buf[src + i] as number) - (buf[dst + i] as number)
    const ports = proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP
    if (order === 0 && ports) order = sport - dport
    if (order > 0) {
      const a = src; src = dst; dst = a
      const p = sport; sport = dport; dport = p
    }
    const b = this.#in[(len === 4 ? 0 : 2) + (ports ? 1 : 0)] as Buffer
    let p = HEAD
    for (let i = 0; i < len; i++) b[p++] = buf[src + i] as number
    for (let i = 0; i < len; i++) b[p++] = buf[dst + i] as number
    b[p++] = proto
    b[p++] = 0
    if (ports) {
      b[p++] = sport >>> 8; b[p++] = sport & 0xff
      b[p++] = dport >>> 8; b[p] = dport & 0xff
    }
    return '1:' + hash('sha1', b, 'base64')
  }
}
