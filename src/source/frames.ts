import { decodeIp, ipOffset, PacketView, srcMacOffset } from '../decode/packet.js'
import { Status } from '../util/status.js'
import { Classifier, Outcome } from '../classify/index.js'
import { FragTable } from '../flow/ipfrag.js'

/** Counters of one frame reader: the summary of `aigate classify` and of `aigate capture`. */
export interface FrameStats {
  /** Frames read. */
  packets: number
  /** Frames with an IP packet after their link header. */
  ip: number
  /** IP packets (or rebuilt datagrams) handed to the classifier. */
  decoded: number
  /** Names decided. */
  decisions: number
  /** Frames whose link header holds no IP packet (ARP, LLDP, a link header cut short). */
  notIp: number
  /** IP packets, or rebuilt datagrams, whose headers no stack sends: not classified. */
  malformed: number
  /**
   * Fragmented IP datagrams not rebuilt, as Linux would not: fragments that
   * overlap, disagree, are misaligned, cut short or never completed (those
   * still waiting count too). Filled by {@link FrameReader.finish}.
   */
  fragDiscarded: number
}

/**
 * From captured frames to classified packets, the one path of both capture
 * edges: `aigate classify` (a capture file) and `aigate capture` (a live
 * interface). Per frame: skip the link header, decode the IP packet, rebuild
 * IP fragments (there is no conntrack before us to put them together, so we
 * do it as the receiving host will), classify, and count what was not read
 * and why. The inline daemon has its own edge: NFQUEUE hands it IP packets
 * that conntrack already rebuilt.
 *
 * Allocates nothing per frame: one outcome and two packet views, reused.
 */
export class FrameReader {
  readonly stats: FrameStats = { packets: 0, ip: 0, decoded: 0, decisions: 0, notIp: 0, malformed: 0, fragDiscarded: 0 }
  /** What the last classified packet decided; read it when {@link read} returned more than 0. */
  readonly out = new Outcome()
  /** The last classified packet: the frame's own, or the datagram its fragments rebuilt. */
  packet: PacketView
  /** Where the last classified packet's source MAC address is in `packet.buf` (the frame's link header), or -1: none on this link, or a rebuilt datagram. */
  srcMac = -1
  readonly #classifier: Classifier
  readonly #view = new PacketView()
  readonly #whole = new PacketView()
  readonly #frags = new FragTable()

  constructor (classifier: Classifier) {
    this.#classifier = classifier
    this.packet = this.#view
  }

  /**
   * One frame: `caplen` bytes of `buf` captured at `timeMs` on a link of type
   * `linkType` (a LINKTYPE_ number). Returns the names it decided (then
   * {@link packet} and {@link out} say what to log), or 0: none, or the frame
   * was not read (counted in {@link stats}) or is a fragment still waiting.
   */
  read (linkType: number, buf: Buffer, caplen: number, timeMs: number): number {
    const stats = this.stats
    stats.packets++
    const ip = ipOffset(linkType, buf, 0, caplen)
    if (ip < 0) { stats.notIp++; return 0 }
    stats.ip++
    const view = this.#view
    const s = decodeIp(buf, ip, caplen, view)
    if (s === Status.Malformed) { stats.malformed++; return 0 }
    let v = view
    if (view.isFragment) {
      // decodeIp read only the IP header of a fragment (a first fragment may
      // be cut inside the TCP header); the transport is read once rebuilt.
      const packet = this.#frags.add(view, timeMs)
      if (packet === null) return 0
      const w = decodeIp(packet, 0, packet.length, this.#whole)
      if (w === Status.Malformed) { stats.malformed++; return 0 }
      if (w !== Status.Ok) return 0
      v = this.#whole
    } else if (s !== Status.Ok) {
      return 0
    }
    stats.decoded++
    this.packet = v
    this.srcMac = v === view ? srcMacOffset(linkType, buf, 0, ip) : -1
    const named = this.#classifier.classify(v, this.out, timeMs)
    if (named > 0) stats.decisions += this.out.count
    return named
  }

  /** The counters at the end of the input, with {@link FrameStats.fragDiscarded} filled in. */
  finish (): FrameStats {
    const f = this.#frags.stats
    this.stats.fragDiscarded = f.overlaps + f.inconsistent + f.oversized + f.truncated + f.headersCut + f.evicted + f.expired + this.#frags.size
    return this.stats
  }
}

/**
 * The frames read and left unread, for a summary line: "N not IP, M
 * malformed", then the fragmented datagrams not rebuilt when there were any
 * (what an analyst may want to chase).
 */
export function unreadText (s: FrameStats): string {
  return `${s.notIp} not IP, ${s.malformed} malformed` +
    (s.fragDiscarded > 0 ? `, ${s.fragDiscarded} fragmented datagrams not rebuilt (overlapping, inconsistent or incomplete)` : '')
}
