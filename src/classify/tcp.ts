import { Status } from '../util/status.js'
import { TCP_ACK, TCP_URG, type PacketView } from '../decode/packet.js'
import { peekSni } from '../extract/tls.js'
import { FlowTable, MAX_IMPLAUSIBLE, DEFAULT_MAX_FLOW_SEGMENTS, OFFLINE_MAX_FLOW_SEGMENTS, type Flow, type FlowLimits } from '../flow/index.js'
import type { Decision, EvasionDetail } from '../policy/index.js'
import type { Decider } from './decide.js'
import { lets, namesOf, shownBy, unreadable, type Outcome } from './outcome.js'
import { laterTlsRecord, oddRecordStart, openingHere, Opening, opensWithName, PORT_DOT, PORT_HTTP, PORT_HTTPS, seenOnPort } from './opening.js'
import { TcpWatch, watched } from './tcp-watch.js'

/** A TCP flow as the classifier keeps it: gathered bytes, its watch, its final decision. */
export type TcpFlow = Flow<TcpWatch, Decision>

/**
 * TCP openings: a message in one segment is read in place (no state, no
 * copy); one that needs more bytes, or a segment that continues a flow we
 * hold, goes through the flow table; an allowed flow is watched
 * (tcp-watch.ts) until the client moves on to data.
 */
export class TcpOpenings {
  readonly flows: FlowTable<TcpWatch, Decision>

  constructor (
    readonly decider: Decider,
    /**
     * Inline (NFQUEUE): the firewall queues only packets of flows without a
     * verdict, so payload that opens nothing (a flow whose opening we never
     * saw) gets `midstream`. Offline (a capture, a mirror port) every packet
     * of every flow is seen, and later data is simply not an opening.
     */
    readonly inline: boolean,
    limits?: Partial<FlowLimits>,
  ) {
    this.flows = new FlowTable({ maxSegments: inline ? DEFAULT_MAX_FLOW_SEGMENTS : OFFLINE_MAX_FLOW_SEGMENTS, ...limits })
  }

  /** A SYN (or SYN-ACK): a new connection on these ports, nothing of an earlier one carries over. */
  syn (view: PacketView, now: number): void {
    if ((view.tcpFlags & TCP_ACK) === 0 && opensWithName(view.dstPort)) {
      // The client's SYN: its stream starts right after it. Only a message
      // there is the opening; data in the SYN (TCP Fast Open) is read too.
      const f = this.flows.create(FlowTable.keyOf(view), now)
      f.base = (view.seq + 1) >>> 0
      f.synSeen = true
      f.ttl = view.ttl
      view.seq = f.base
    } else if (this.flows.size > 0) {
      const f = this.flows.get(FlowTable.keyOf(view), now)
      if (f !== undefined) this.flows.delete(f)
    }
  }

  /** A TCP segment with payload. */
  packet (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, now: number): void {
    const table = this.flows
    let key: string | null = null
    let flow: TcpFlow | undefined
    if (table.size > 0) {
      key = FlowTable.keyOf(view)
      flow = table.get(key, now)
    }
    const kind = openingHere(buf, s, e, view.dstPort, true)
    if (flow !== undefined && flow.decided !== null) {
      // After evasion the flow stays decided whatever it sends next: a new
      // connection on these ports starts with a SYN (syn() forgets the flow),
      // so another opening here is the same stream, still evasive, not a
      // new line each time (one flow, one line).
      if (flow.decided.reason === 'evasion' || openingHere(buf, s, e, view.dstPort, false) === Opening.None) {
        // Decided already: a packet that was in the queue behind the one that
        // decided, or (offline) the rest of the flow (an alert such as
        // close_notify too). Same verdict, no new line.
        out.status = Status.Ok
        out.verdict = flow.decided
        return
      }
      // A new opening on the same ports (a new connection) is read afresh.
      table.delete(flow)
      flow = undefined
    }
    let synStart = false
    if (flow !== undefined && flow.synSeen && flow.have === 0 && flow.pendingSeq.length === 0) {
      const rel = (view.seq - flow.base) | 0
      if (rel < 0) {
        // Before the stream's first byte: the server drops it as old data (a
        // decoy placed behind the stream). Not read, not a decision.
        out.seen = seenOnPort(view.dstPort)
        out.status = Status.NeedMore
        this.implausible(view, out, flow, now)
        return
      }
      if (rel === 0 && kind !== Opening.None) {
        // The opening, right after the SYN: read in place, as with no state.
        synStart = true
        table.delete(flow)
        flow = undefined
      }
    }
    if ((view.tcpFlags & TCP_URG) !== 0 && (flow !== undefined || kind !== Opening.None)) {
      // Urgent data inside an opening: the server's kernel takes the urgent
      // byte out of the stream, we would read it in. Two stories.
      out.seen = seenOnPort(view.dstPort)
      out.status = Status.Malformed
      this.evasion(view, out, flow ?? null, 'urgent', now)
      return
    }
    if (flow === undefined && kind === Opening.None && table.anyLost && table.takeLost(key ?? FlowTable.keyOf(view))) {
      // The rest of an opening whose first part we held until the flow was
      // forgotten (a pause past the table's idle time, or pushed out).
      out.seen = seenOnPort(view.dstPort)
      out.status = Status.Malformed
      this.evasion(view, out, null, 'expired', now)
      return
    }
    if (flow === undefined) this.#first(view, out, buf, s, e, key, kind !== Opening.None, synStart, now)
    else if (flow.watch !== null && flow.have === 0 && flow.pendingSeq.length === 0) watched(this, view, out, flow, flow.watch, buf, s, e, now)
    else this.#gathered(view, out, flow, buf, s, e, kind !== Opening.None, now)
  }

  /** A segment of no flow we hold: a whole opening is decided in place; a piece starts a flow. */
  #first (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string | null, starts: boolean, synStart: boolean, now: number): void {
    const decider = this.decider
    if (starts) {
      decider.read(view, out, buf, s, e)
      if (!synStart && oddRecordStart(buf, s, e) && out.status !== Status.NeedMore && !(out.status === Status.Ok && out.count > 0)) {
        // A record with an odd version (opening.ts) that does not read as a
        // whole hello here, where we do not know the stream's start: more
        // likely bytes from the middle of one. Kept as a piece, not decided.
        starts = false
        out.status = Status.NeedMore
        out.clear()
      }
    }
    if (starts) {
      if (out.status === Status.Ok && out.count > 0) {
        if (out.seen === 'dns') this.#dnsCarry(key ?? FlowTable.keyOf(view), view.seq, buf, s, e, view.ttl, now)
        this.watch(view, out, key, now)
        return
      }
      if (unreadable(out)) {
        // A whole opening message with no name we can read: the same
        // decision as for one gathered over several segments, and an allow
        // is watched like any other (a nameless decoy hello must not save it).
        this.#special(out, null, decider.ruleset.policy.unknown)
        this.watch(view, out, key, now)
        return
      }
      if (out.status === Status.NeedMore && view.truncated) {
        // The rest of this message was in the same (merged) packet, cut at the
        // copy range: it will never be queued.
        this.#cut(view, out, null, buf, s, e, now)
        return
      }
    }
    if (out.status !== Status.NeedMore) {
      // Not a whole message here. On the ports that open with a name, keep the
      // bytes: they may be a later piece of a hello whose start comes after
      // them (segments out of order). Ordinary later traffic is left alone.
      if (starts || laterTlsRecord(buf, s, e)) {
        // A whole message that is not an opening (a ClientKeyExchange, an
        // application data record): inline, the flow's opening went by unseen.
        if (this.inline) this.#midstream(view, out, key, now)
        return
      }
      if (view.dstPort !== PORT_HTTPS && view.dstPort !== PORT_HTTP && view.dstPort !== PORT_DOT) return
    }
    out.status = Status.NeedMore
    const flow = this.flows.create(key ?? FlowTable.keyOf(view), now)
    flow.ttl = view.ttl
    flow.synSeen = synStart
    this.flows.addSegment(flow, view.seq, buf, s, e, starts, now)
    if (out.seen === null) out.seen = seenOnPort(view.dstPort)
  }

  /** A segment of a flow whose opening is being gathered (or a second opening on a watched one). */
  #gathered (view: PacketView, out: Outcome, flow: TcpFlow, buf: Buffer, s: number, e: number, opens: boolean, now: number): void {
    const table = this.flows
    out.count = 0
    out.seen = seenOnPort(view.dstPort)
    if (view.ttl < flow.ttl) {
      // Fewer hops left than the flow's first segment: not from the same
      // sender on the same path, a piece made to die before the server (and
      // to complete the hello here with another name). Not read.
      out.status = Status.NeedMore
      this.implausible(view, out, flow, now)
      return
    }
    // Where the stream starts is known from the SYN: no later segment moves it.
    table.addSegment(flow, view.seq, buf, s, e, flow.synSeen ? view.seq === flow.base : opens, now)
    if (flow.shed) {
      // Its bytes went when the table ran past its byte bound: what it opened
      // with can no longer be read.
      this.#special(out, flow, this.decider.ruleset.policy.unknown)
      this.final(out, flow.key, now)
      return
    }
    if (flow.have === 0) {
      out.status = Status.NeedMore
      if (flow.overflow || flow.packets >= table.limits.maxSegments) this.#noStart(view, out, flow, now)
      return
    }
    this.decider.read(view, out, flow.data, 0, flow.have)
    out.reassembled = true
    out.segments = flow.packets
    if (out.status === Status.NeedMore && !flow.overflow) {
      if (view.truncated) this.#cut(view, out, flow, flow.data, 0, flow.have, now)
      else if (flow.packets >= table.limits.maxSegments) this.#tooManySegments(view, out, flow, now)
      return
    }
    if (out.status === Status.NeedMore && out.seen === 'sni' && peekSni(flow.data, 0, flow.have, out.tls)) {
      // A hello longer than we keep (padded): its name came early, and is final.
      out.status = Status.Ok
      this.decider.one(view, out, out.tls.buf, out.tls.sniStart, out.tls.sniEnd, 0)
    }
    table.delete(flow)
    table.stats.completed++
    if (out.seen === 'dns' && out.status === Status.Ok) this.#dnsCarry(flow.key, flow.base, flow.data, 0, flow.have, flow.ttl, now)
    const w = flow.watch
    if (out.status !== Status.Ok || out.count === 0) {
      if (w !== null && w.name !== '') {
        // A second opening message we cannot read behind an allowed name: two stories.
        this.evasion(view, out, flow, 'second-hello', now)
      } else {
        this.#special(out, flow, this.decider.ruleset.policy.unknown)
        if (!flow.overflow) this.watch(view, out, flow.key, now, flow)
        else this.final(out, flow.key, now)
      }
    } else if (flow.disagree) {
      // Overlapping copies disagreed: the name read is only one of two stories.
      this.evasion(view, out, flow, 'disagree', now)
    } else if (w !== null && namesOf(out) !== w.name) {
      // A second hello names another host than the first.
      this.evasion(view, out, flow, 'second-hello', now)
    } else if (w !== null) {
      this.holdAgain(out, flow, w, now)
    } else {
      this.watch(view, out, flow.key, now, flow)
    }
  }

  /**
   * After an allow or monitor decision on TLS or HTTP: watch the flow (see
   * Outcome.hold). `from`: the flow the message was gathered in, whose bytes
   * the watch keeps to compare later copies with. Other decisions are final.
   */
  watch (view: PacketView, out: Outcome, key: string | null, now: number, from: TcpFlow | null = null): void {
    const d = out.verdict
    if (d === null || out.seen === 'dns') return
    if (!lets(d)) {
      this.final(out, key ?? FlowTable.keyOf(view), now)
      return
    }
    const f = this.flows.create(key ?? FlowTable.keyOf(view), now)
    f.ttl = from !== null ? from.ttl : view.ttl
    // HTTP: the message ends after its body (Content-Length), which may run
    // on past what we read; the watch waits for what comes after it.
    const body = out.seen === 'http' && !out.http.bodyUnknown ? out.http.next : -1
    const ackKnown = (view.tcpFlags & TCP_ACK) !== 0 // a hello in a SYN (Fast Open) acknowledges nothing
    f.watch = from !== null && from.base >= 0
      ? new TcpWatch(namesOf(out), d, (from.base + Math.max(from.have, body)) >>> 0, view.ack, ackKnown, from.data.subarray(0, from.have), from.base)
      : new TcpWatch(namesOf(out), d, (view.seq + Math.max(view.payloadEnd, body) - view.payloadStart) >>> 0, view.ack, ackKnown, null, 0)
    out.hold = true
  }

  /** The same name again (a retransmitted hello): no new decision line, keep watching. */
  holdAgain (out: Outcome, flow: TcpFlow, w: TcpWatch, now: number): void {
    this.flows.regather(flow, now)
    out.count = 0
    out.verdict = w.decision
    out.hold = true
  }

  /** A packet that cannot reach the server, on a flow being read or watched: ignored, and evasion when it keeps happening. */
  implausible (view: PacketView, out: Outcome, flow: TcpFlow, now: number): void {
    this.flows.stats.implausible++
    flow.packets++
    if (++flow.implausible > MAX_IMPLAUSIBLE) this.evasion(view, out, flow, 'implausible', now)
  }

  /** The policy's evasion action with what the flow did; final for the flow. */
  evasion (view: PacketView, out: Outcome, flow: TcpFlow | null, detail: EvasionDetail, now: number): void {
    out.shown = shownBy(flow?.watch?.name ?? '', out)
    this.#special(out, flow, this.decider.ruleset.policy.evaded(detail))
    this.final(out, flow?.key ?? FlowTable.keyOf(view), now)
  }

  /** Remember a flow's final decision, for its packets still in flight (inline) or the rest of it (offline). */
  final (out: Outcome, key: string, now: number): void {
    const f = this.flows.create(key, now)
    f.decided = out.verdict
  }

  /** A policy-wide decision (unknown, evasion) for the packet; the flow's gathered state goes. */
  #special (out: Outcome, flow: TcpFlow | null, d: Decision): void {
    if (flow !== null) this.flows.delete(flow)
    this.decider.special(out, d)
  }

  /**
   * A message cut short by the copy range (a GRO/TSO-merged or defragmented
   * packet larger than what the kernel copies to us): its rest is in the same
   * packet, so it never comes. A server name that came before the cut is
   * final (a second one would make the server abort); without one, evasion.
   */
  #cut (view: PacketView, out: Outcome, flow: TcpFlow | null, buf: Buffer, s: number, e: number, now: number): void {
    if (out.seen === 'sni' && peekSni(buf, s, e, out.tls)) {
      out.status = Status.Ok
      this.decider.one(view, out, out.tls.buf, out.tls.sniStart, out.tls.sniEnd, 0)
      if (out.count > 0) {
        if (flow !== null) this.flows.delete(flow)
        this.watch(view, out, flow?.key ?? null, now)
        return
      }
    }
    this.evasion(view, out, flow, 'truncated', now)
  }

  /**
   * Pieces of a stream whose start never came, past the segment limit: after
   * a SYN we saw, an opening hidden from us (evasion); else, inline, an
   * opening we did not see (midstream).
   */
  #noStart (view: PacketView, out: Outcome, flow: TcpFlow, now: number): void {
    if (flow.synSeen) { this.evasion(view, out, flow, 'segments', now); return }
    this.flows.delete(flow)
    if (this.inline) this.#midstream(view, out, flow.key, now)
  }

  /** Inline: payload of a flow whose opening went by unseen (the daemon restarted, the queue was bypassed). */
  #midstream (view: PacketView, out: Outcome, key: string | null, now: number): void {
    if (out.seen === null) out.seen = seenOnPort(view.dstPort)
    out.count = 0
    this.decider.special(out, this.decider.ruleset.policy.nameless('midstream'))
    this.final(out, key ?? FlowTable.keyOf(view), now)
  }

  /** The opening message is still incomplete after the segments we read of it (FlowLimits.maxSegments). */
  #tooManySegments (view: PacketView, out: Outcome, flow: TcpFlow, now: number): void {
    out.segments = flow.packets
    this.flows.stats.tooManySegments++
    this.evasion(view, out, flow, 'segments', now)
  }

  /** Keep the partial DNS message after whole ones (Decider.dnsRest) as a flow of its own, starting at its length prefix. */
  #dnsCarry (key: string, seq: number, buf: Buffer, s: number, e: number, ttl: number, now: number): void {
    const rest = this.decider.dnsRest
    if (rest < 0) return
    this.decider.dnsRest = -1
    const f = this.flows.create(key, now)
    f.ttl = ttl
    this.flows.addSegment(f, (seq + (rest - s)) >>> 0, buf, rest, e, true, now)
  }
}

