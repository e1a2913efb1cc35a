import { Status } from '../util/status.js'
import { TCP_ACK, type PacketView } from '../decode/packet.js'
import { skipEmptyLines } from '../extract/http.js'
import type { Decision } from '../policy/index.js'
import type { Outcome } from './outcome.js'
import { namesOf } from './outcome.js'
import { openingHere, Opening, PORT_HTTP, seenOnPort, TLS_ALERT } from './opening.js'
import type { TcpOpenings, TcpFlow } from './tcp.js'

/**
 * The watch of an allowed TCP flow: until the client sends data that is not
 * an opening (after the server answered), a second hello or request is read
 * and one that names another host is evasion; a decoy hello cannot save the
 * allow for the real one behind it.
 */

/**
 * Packets of a watched flow held before the server answers (an HTTP body,
 * TLS early data, a one-way upload): the watch reads the next request or
 * hello behind them, but a flow that keeps sending without an answer leaves
 * the queue after this many (its allow is saved).
 */
const MAX_HELD_DATA = 64
/** How far past the hello a real first data segment may start (reordering within a window). */
const MAX_SEQ_AHEAD = 1 << 20
/**
 * Fewest hops a packet may have left at the gateway and still end a watch.
 * Clients start at 64, 128 or 255 and are a few hops away; fakes are made to
 * die before the server, 10-20 hops on, so they arrive with less (zapret's
 * autottl picks 3-20). A real client this low only loses the saved allow
 * (its later packets are accepted, through the whole chain).
 */
export const MIN_TRUSTED_TTL = 24
/** TCP option kinds a server drops a segment for unless it agreed to them: MD5 signature (RFC 2385), TCP-AO (RFC 5925). */
const TCPOPT_MD5SIG = 19
const TCPOPT_AO = 29

/** What the classifier keeps of a decided opening while its flow is watched (Flow.watch). */
export class TcpWatch {
  /** Packets held on this watch before the server answered (MAX_HELD_DATA). */
  held = 0
  constructor (
    /** The names first decided (namesOf), '' for a nameless opening. */
    readonly name: string,
    readonly decision: Decision,
    /** The sequence number just past the watched message (its TTL is the flow's). */
    readonly next: number,
    /** Acknowledgment number of the watched hello: data that ends the watch acknowledges more (the server answered). */
    readonly ack: number,
    /** False for a hello in a SYN (Fast Open), which acknowledges nothing. */
    readonly ackKnown: boolean,
    /**
     * The bytes of the hello that was decided, from sequence number `base`,
     * when it was gathered over several segments: a later copy of any of them
     * that differs means we decided on bytes the server never got (a fake
     * piece). Null for a hello read from one segment.
     */
    readonly data: Buffer | null,
    readonly base: number,
  ) {}

  /**
   * Could this segment be the client's real data after the watched hello?
   * It must acknowledge (every segment after the handshake does), come with
   * no fewer hops left than the hello (the same host on the same path) and at
   * least MIN_TRUSTED_TTL (a fake hello and a fake data segment may share a low
   * TTL), and start at or shortly after the hello's end. A TCP checksum is not checked:
   * NFQUEUE may hand over GRO/offloaded packets whose checksum field is not final.
   */
  plausibleNext (view: PacketView, ttl: number): boolean {
    const ahead = (view.seq - this.next) | 0
    return (view.tcpFlags & TCP_ACK) !== 0 && view.ttl >= ttl && view.ttl >= MIN_TRUSTED_TTL && ahead >= 0 && ahead < MAX_SEQ_AHEAD &&
      !deadOnArrival(view)
  }

  /**
   * Has the server answered since the watched hello? Data that acknowledges
   * nothing more could have been sent before any answer, as a fake is (to save
   * the allow before the real hello comes); a real client's next data (its
   * Finished, its key exchange) follows the server's flight.
   */
  answered (view: PacketView): boolean {
    return !this.ackKnown || ((view.ack - this.ack) | 0) > 0
  }

  /**
   * A segment of a watched HTTP flow that is part of the request we decided
   * (its body, up to Content-Length) or only empty lines (servers skip them
   * before the next request line, RFC 9112 §2.2): held, the next request is
   * still to be read. Anything else after the body (a WebSocket frame after an
   * upgrade) may end the watch.
   */
  httpHeld (view: PacketView, buf: Buffer, s: number, e: number): boolean {
    if (((view.seq - this.next) | 0) < 0) return true
    return skipEmptyLines(buf, s, e) === e
  }

  /**
   * Does this segment repeat bytes of the watched hello? 1: it does, and they
   * agree (a retransmission); -1: they differ; 0: it lies past the hello, or
   * the hello's bytes were not kept (read from one segment).
   */
  againstHello (view: PacketView, buf: Buffer, s: number, e: number): number {
    const data = this.data
    if (data === null) return 0
    const rel = (view.seq - this.base) | 0
    if (rel >= data.length || rel + (e - s) <= 0) return 0
    const from = Math.max(0, rel)
    const to = Math.min(data.length, rel + (e - s))
    return buf.compare(data, from, to, s + (from - rel), s + (to - rel)) === 0 ? 1 : -1
  }
}

/**
 * TCP options a server drops a segment for, where we cannot check them: an
 * MD5 signature or TCP-AO that a public server never agreed to. zapret's
 * "md5sig" fooling makes fakes so.
 */
function deadOnArrival (view: PacketView): boolean {
  const b = view.buf
  for (let p = view.l4Start + 20; p < view.payloadStart;) {
    const kind = b[p] as number
    if (kind === 0) return false // end of options
    if (kind === 1) { p++; continue } // no-op
    if (kind === TCPOPT_MD5SIG || kind === TCPOPT_AO) return true
    const len = b[p + 1] as number
    if (len < 2) return false
    p += len
  }
  return false
}

/** A packet of a watched (allowed) flow. */
export function watched (room: TcpOpenings, view: PacketView, out: Outcome, flow: TcpFlow, w: TcpWatch, buf: Buffer, s: number, e: number, now: number): void {
  // A warning alert a server skips, then a second hello, is a second opening
  // too; change_cipher_spec (the client's usual next record) is data.
  if (openingHere(buf, s, e, view.dstPort, buf[s] === TLS_ALERT) === Opening.None) {
    data(room, view, out, flow, w, buf, s, e, now)
    return
  }
  room.decider.read(view, out, buf, s, e)
  if (out.status === Status.NeedMore) {
    // A second hello that spans segments: gather it, compare when whole.
    room.flows.addSegment(flow, view.seq, buf, s, e, true, now)
    out.clear()
    return
  }
  if (out.status !== Status.Ok || out.count === 0) {
    out.clear()
    return
  }
  room.flows.delete(flow)
  if (out.seen === 'http') {
    // HTTP/1.1 keeps a connection for many requests: each one is decided on
    // its own hosts (a new line when they differ), and watched again.
    if (namesOf(out) === w.name) { out.count = 0; out.verdict = w.decision }
    room.watch(view, out, flow.key, now)
    if (out.count === 0) out.hold = true
    return
  }
  if (namesOf(out) === w.name) room.holdAgain(out, flow, w, now)
  else room.evasion(view, out, flow, 'second-hello', now)
}

/** Data on a watched flow that opens nothing: a retransmission, data before the answer, a fake, or the end of the watch. */
function data (room: TcpOpenings, view: PacketView, out: Outcome, flow: TcpFlow, w: TcpWatch, buf: Buffer, s: number, e: number, now: number): void {
  out.count = 0
  out.status = Status.Ok
  out.verdict = w.decision
  const copy = w.againstHello(view, buf, s, e)
  if (copy < 0) {
    // A copy of the decided hello's bytes that differs: we decided on a
    // piece the server never got (a fake with a checksum or TTL that
    // kills it), and this is the real one.
    out.seen = seenOnPort(view.dstPort)
    room.evasion(view, out, flow, 'disagree', now)
    return
  }
  if (copy > 0) { out.hold = true; return } // a retransmitted piece of the hello
  // Data that may come before any answer (an HTTP body, empty lines, TLS
  // early data, a one-way upload) is held, for at most MAX_HELD_DATA
  // packets: past that the allow is saved (the flow leaves the queue).
  if (w.held < MAX_HELD_DATA) {
    if (view.dstPort === PORT_HTTP && w.httpHeld(view, buf, s, e)) { w.held++; out.hold = true; return }
    if (w.plausibleNext(view, flow.ttl) && !w.answered(view)) { w.held++; out.hold = true; return }
  }
  if (!w.plausibleNext(view, flow.ttl)) {
    // A fake "first data" (zapret's fake packets with low TTL, badseq,
    // datanoack) would end the watch and save the allow before the real
    // hello comes: accept it unsaved and keep watching, for a while.
    out.hold = true
    room.implausible(view, out, flow, now)
    if (out.verdict !== w.decision) out.seen = seenOnPort(view.dstPort)
    return
  }
  // The client moved on to data: the allow stands and is saved now (its
  // packets already in the queue behind this one get it too).
  room.flows.delete(flow)
  room.final(out, flow.key, now)
}

