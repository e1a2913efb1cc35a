import { Status } from '../util/status.js'
import { PacketView, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_SYN, TCP_URG } from '../decode/packet.js'
import { parseTls, peekSni, TlsHello } from '../extract/tls.js'
import { parseDns, parseDnsTcp, DnsQuery, MAX_QUESTIONS } from '../extract/dns.js'
import { parseHttp, HttpHead, skipEmptyLines } from '../extract/http.js'
import { NameOut, readName, type Name } from '../name/index.js'
import { DecisionCache } from '../cache/index.js'
import type { Decision, Action, EvasionDetail } from '../policy/index.js'
import type { Ruleset } from '../rules/index.js'
import { FlowTable, MAX_IMPLAUSIBLE, DEFAULT_MAX_FLOW_SEGMENTS, OFFLINE_MAX_FLOW_SEGMENTS, type Flow, type FlowLimits } from '../flow/index.js'
import { parseQuicInitial, CryptoAssembler, QuicInfo } from '../extract/quic.js'
import { LRUCache } from 'lru-cache'

/**
 * The one place that knows the order of the data path:
 * packet view -> extract (tls | dns | http) -> name -> cache -> trie -> policy.
 * It is pure: no I/O, no clock, no logger. NFQUEUE, pcap and tests all call it.
 */

/** How a name was seen. */
export type Seen = 'sni' | 'quic' | 'dns' | 'http' | 'ech'

export const PORT_DNS = 53
/** Category of the lists of ECH providers' public names (rules/vendors/ech-providers.txt). */
export const CATEGORY_ECH = 'ech'
const PORT_HTTPS = 443
/** QUIC flows whose ClientHello is still arriving (each holds a 32 KiB assembler). */
export const DEFAULT_MAX_QUIC_FLOWS = 1024
/** RFC 9000 §14.1: the smallest UDP payload that may carry a client Initial. */
export const QUIC_MIN_INITIAL_DATAGRAM = 1200
/**
 * Connections one UDP port pair may open one after another before it is
 * evasion (a client retries after a Retry or version negotiation, or opens
 * a new connection; a tool cycles decoys).
 */
const MAX_QUIC_SWITCHES = 4
/** RFC 9000 §17.2: the first bit of a long header. */
const QUIC_LONG_HEADER = 0x80
const PORT_HTTP = 80
const PORT_DOT = 853

/**
 * First byte of a record version a server still reads a hello under: Go's
 * crypto/tls takes any version below 0x1000 in the first record (extract/tls.ts),
 * so a hello record versioned 0x0001 is an opening too.
 */
const GO_RECORD_MAJOR_LIMIT = 0x10

/**
 * A record with such an odd version (major byte under 0x10, not 3) is taken
 * as an opening only when the rest of its header says so too: a plausible
 * length, and a ClientHello (handshake type 1), a 2-byte alert or an empty
 * record behind it. Bytes from the middle of a stream rarely look like that.
 */
function oddVersionRecord (buf: Buffer, s: number, e: number): boolean {
  if ((buf[s + 1] as number) >= GO_RECORD_MAJOR_LIMIT || e - s < 5) return false
  const len = ((buf[s + 3] as number) << 8) | (buf[s + 4] as number)
  const c = buf[s] as number
  if (c === 0x16) return len > 0 && len <= 16384 && (e - s < 6 || buf[s + 5] === 1)
  return c === 0x15 ? len === 2 : len === 0
}

/**
 * Could a TCP payload begin an opening (a TLS record a server reads or drops
 * before the hello: handshake, alert, change_cipher_spec; an HTTP method;
 * DNS-over-TCP by port)? A server that skips a warning alert in front of the
 * hello (Go) must not let that alert hide the hello from us.
 */
function startsOpening (buf: Buffer, s: number, e: number, dstPort: number): boolean {
  const c = buf[s] as number
  if (c === 0x15 || c === 0x14) return e - s < 2 || buf[s + 1] === 0x03 || oddVersionRecord(buf, s, e)
  return startsMessage(buf, s, e, dstPort)
}

/** Does a TCP payload begin a message we read (TLS handshake record, HTTP method, DNS-over-TCP by port)? */
function startsMessage (buf: Buffer, s: number, e: number, dstPort: number): boolean {
  const c = buf[s] as number
  if (c === 0x16) return e - s < 2 || buf[s + 1] === 0x03 || oddVersionRecord(buf, s, e)
  if (dstPort === PORT_DNS) return true
  if (dstPort === PORT_HTTPS || dstPort === PORT_DOT) return false
  if (c === CR || c === LF) {
    // RFC 9112 §2.2: servers skip empty lines before a request line. Too many is a start too (Malformed, unknown).
    const p = skipEmptyLines(buf, s, e)
    return p < 0 || (p < e && (buf[p] as number) >= 0x41 && (buf[p] as number) <= 0x5a)
  }
  return c >= 0x41 && c <= 0x5a
}
const CR = 0x0d
const LF = 0x0a

/** A TLS record other than a handshake (change_cipher_spec, alert, application data, heartbeat): the hello is behind us. */
function laterTlsRecord (buf: Buffer, s: number, e: number): boolean {
  const c = buf[s] as number
  return e - s >= 3 && c >= 20 && c <= 24 && c !== 22 && buf[s + 1] === 0x03 && (buf[s + 2] as number) <= 0x04
}

/** TCP ports whose connections open with a name we read (TLS, DoT, HTTP): their SYNs are queued. */
function opensWithName (port: number): boolean {
  return port === PORT_HTTPS || port === PORT_HTTP || port === PORT_DOT
}

/** How a name on this TCP port would be seen, for a line about a flow we could not read. */
function seenOnPort (port: number): Seen {
  return port === PORT_HTTP ? 'http' : port === PORT_DNS ? 'dns' : 'sni'
}

/**
 * A whole opening message that names nothing we can read: no name in it
 * (a hello without SNI, HTTP to an IP literal), only names that are not
 * host names (`api.example.com:1`, bytes no resolver takes), or one the
 * parser finds malformed. The policy's `unknown` applies, as to a message
 * that never completed: a server may still act on what we could not read.
 * Unsupported (another handshake message, another protocol) is not ours.
 */
function unreadable (out: Outcome): boolean {
  return out.status === Status.Ok ? out.count === 0 : out.status === Status.NoName || out.status === Status.Malformed
}

/** The names an opening message showed, as one string to compare a later one with (no allocation for one name). */
function namesOf (out: Outcome): string {
  if (out.count <= 1) return out.names[0] as string
  let s = out.names[0] as string
  for (let i = 1; i < out.count; i++) s += ' ' + (out.names[i] as string)
  return s
}

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

/**
 * Could this segment be the client's real data after its watched hello?
 * It must acknowledge (every segment after the handshake does), come with
 * no fewer hops left than the hello (the same host on the same path) and at
 * least MIN_TRUSTED_TTL (a fake hello and a fake data segment may share a low
 * TTL), and start at or shortly after the hello's end. A TCP checksum is not checked:
 * NFQUEUE may hand over GRO/offloaded packets whose checksum field is not final.
 */
function plausibleNext (view: PacketView, flow: Flow): boolean {
  const ahead = (view.seq - flow.watchNext) | 0
  return (view.tcpFlags & TCP_ACK) !== 0 && view.ttl >= flow.ttl && view.ttl >= MIN_TRUSTED_TTL && ahead >= 0 && ahead < MAX_SEQ_AHEAD &&
    !deadOnArrival(view)
}

/**
 * TCP options a server drops a segment for, where we cannot check them: an
 * MD5 signature (RFC 2385, kind 19) or TCP-AO (RFC 5925, kind 29) that a
 * public server never agreed to. zapret's "md5sig" fooling makes fakes so.
 */
function deadOnArrival (view: PacketView): boolean {
  const b = view.buf
  for (let p = view.l4Start + 20; p < view.payloadStart;) {
    const kind = b[p] as number
    if (kind === 0) return false // end of options
    if (kind === 1) { p++; continue } // no-op
    if (kind === 19 || kind === 29) return true
    const len = b[p + 1] as number
    if (len < 2) return false
    p += len
  }
  return false
}

/**
 * Has the server answered since the watched hello? Data that acknowledges
 * nothing more could have been sent before any answer, as a fake is (to save
 * the allow before the real hello comes); a real client's next data (its
 * Finished, its key exchange) follows the server's flight.
 */
function answered (view: PacketView, flow: Flow): boolean {
  return !flow.watchAckKnown || ((view.ack - flow.watchAck) | 0) > 0
}

/**
 * A segment of a watched HTTP flow that is part of the request we decided
 * (its body, up to Content-Length) or only empty lines (servers skip them
 * before the next request line, RFC 9112 §2.2): held, the next request is
 * still to be read. Anything else after the body (a WebSocket frame after an
 * upgrade) may end the watch.
 */
function httpHeld (view: PacketView, flow: Flow, buf: Buffer, s: number, e: number): boolean {
  if (((view.seq - flow.watchNext) | 0) < 0) return true
  const p = skipEmptyLines(buf, s, e)
  return p === e
}

/** An allowed QUIC flow (Classifier #quicWatched): every later Initial is read. */
class QuicWatch {
  /** The client answered the server: the allow is saved on the port pair (later Initials are still read). */
  saved = false
  /** Connections that replaced an earlier one on this port pair (see MAX_QUIC_SWITCHES). */
  switches = 0
  /** The assembler went on to another watch: not back to the pool when this one goes. */
  asmTaken = false
  /**
   * Decided on a version we cannot read: a readable hello that follows (the
   * client's answer to version negotiation, or a connection behind a decoy)
   * is decided on its own name, not called a second story.
   */
  versionOnly = false
  /** Datagrams ignored as implausible (see MAX_IMPLAUSIBLE). */
  implausible = 0
  constructor (
    readonly decision: Decision,
    /** The name decided; '' when the hello had none. */
    readonly name: string,
    /** TTL (hop limit) of the flow's first Initial. */
    readonly ttl: number,
    /** Reads later Initials; knows the flow's original DCID (its Initial keys). */
    readonly asm: CryptoAssembler,
  ) {}
}

/** A QUIC hello still arriving over several datagrams. */
class QuicGather {
  /** Datagrams ignored as implausible (see MAX_IMPLAUSIBLE). */
  implausible = 0
  /** Connections that replaced an earlier one on this port pair (see MAX_QUIC_SWITCHES). */
  switches = 0
  /** The assembler went on to the flow's watch: not back to the pool when this goes. */
  asmTaken = false
  constructor (
    readonly asm: CryptoAssembler,
    /** TTL (hop limit) of the flow's first datagram: a piece with fewer hops left is not read. */
    readonly ttl: number,
  ) {}
}

/** Strictness of actions, for a packet that carries several names (DNS). */
const SEVERITY: Record<Action, number> = { allow: 0, monitor: 1, block: 2, reject: 3 }

/** Reused per-packet result. Holds up to MAX_QUESTIONS decisions (DNS). */
export class Outcome {
  /** Parser status for the packet's payload; Unsupported when no extractor applied. */
  status: Status = Status.Unsupported
  /** Which extractor ran, or null. */
  seen: Seen | null = null
  /** Number of names decided in this packet. */
  count = 0
  readonly names: Name[] = new Array<Name>(MAX_QUESTIONS).fill('' as Name)
  readonly decisions: Array<Decision | null> = new Array<Decision | null>(MAX_QUESTIONS).fill(null)
  readonly cached: boolean[] = new Array<boolean>(MAX_QUESTIONS).fill(false)
  /** DNS question types, parallel to names. */
  readonly qtypes = new Uint16Array(MAX_QUESTIONS)
  /** The strictest decision of the packet (what the verdict follows), or null. */
  verdict: Decision | null = null
  /** Names present on the wire but invalid (counted, not matched). */
  invalidNames = 0
  /** The name came from bytes gathered over several TCP segments. */
  reassembled = false
  /** Segments of the flow seen when the decision was made. */
  segments = 1
  /**
   * Decided (and logged), but not to be saved on the connection: an allowed
   * TLS/HTTP flow stays under watch until the client's first data after the
   * hello, so a decoy hello cannot wave the real one through; an allowed DNS
   * query never is, as the same socket or TCP connection may ask for another
   * name next. The verdict for such a packet is a plain accept.
   */
  hold = false
  readonly tls = new TlsHello()
  readonly quic = new QuicInfo()
  readonly dns = new DnsQuery()
  readonly http = new HttpHead()
}

/** Counters, kept as plain numbers (free when nobody reads them). */
export class ClassifyStats {
  packets = 0
  named = 0
  decisions = 0
  invalidNames = 0
  readonly byStatus = new Float64Array(5)
}

export class Classifier {
  ruleset: Ruleset
  readonly cache: DecisionCache
  readonly stats = new ClassifyStats()
  readonly #nameOut = new NameOut()
  #keyed: boolean

  /** TCP flows whose opening message spans several segments. */
  readonly flows: FlowTable
  /**
   * QUIC flows (by 5-tuple): an assembler while the ClientHello spans several
   * Initial datagrams, a watch after an allow (see #quicWatched), the decision
   * once it is final.
   */
  readonly quicFlows: LRUCache<string, QuicGather | Decision | QuicWatch>
  /** Assemblers to reuse: one scratch for single-datagram hellos, and those of finished flows. */
  readonly #quicPool: CryptoAssembler[] = []
  #quicScratch = new CryptoAssembler()

  /**
   * Inline (NFQUEUE): the firewall queues only packets of flows without a
   * verdict, so payload that opens nothing (a flow whose opening we never
   * saw) gets `midstream`. Offline (a capture, a mirror port) every packet
   * of every flow is seen, and later data is simply not an opening.
   */
  readonly inline: boolean

  constructor (ruleset: Ruleset, cacheSize?: number, flowLimits?: Partial<FlowLimits>, inline = false) {
    this.ruleset = ruleset
    this.inline = inline
    this.cache = new DecisionCache(cacheSize)
    this.flows = new FlowTable({ maxSegments: inline ? DEFAULT_MAX_FLOW_SEGMENTS : OFFLINE_MAX_FLOW_SEGMENTS, ...flowLimits })
    this.quicFlows = new LRUCache<string, QuicGather | Decision | QuicWatch>({
      max: DEFAULT_MAX_QUIC_FLOWS,
      updateAgeOnGet: true,
      ttl: flowLimits?.ttlMs ?? 10000,
      ttlResolution: 0,
      perf: { now: () => this.#now },
      dispose: (v, k, reason) => {
        if (v instanceof QuicGather && (reason === 'evict' || reason === 'expire')) this.flows.markLost(k)
        const a = (v instanceof QuicWatch || v instanceof QuicGather) && !v.asmTaken ? v.asm : null
        if (a !== null && this.#quicPool.length < 64) this.#quicPool.push(a)
      },
    })
    this.#keyed = ruleset.policy.classes > 1
  }

  /** Swap in a new ruleset (reload): one reference, and the cache is emptied. */
  swap (ruleset: Ruleset): void {
    this.ruleset = ruleset
    this.#keyed = ruleset.policy.classes > 1
    this.cache.clear()
  }

  /** Decide one normalised name for a source class (0 = no network exception). */
  decide (name: Name, cls: number, out?: { cached: boolean }): Decision {
    const key = this.#keyed ? cls + '|' + name : name
    let d = this.cache.get(key)
    if (d !== undefined) {
      if (out !== undefined) out.cached = true
      return d
    }
    const rs = this.ruleset
    d = rs.policy.decide(rs.matcher.lookup(name), cls)
    this.cache.set(key, d)
    if (out !== undefined) out.cached = false
    return d
  }

  /**
   * Classify one decoded packet (client to server). Returns the number of
   * names decided (0 when the packet carries none we can read).
   */
  classify (view: PacketView, out: Outcome, now = 0): number {
    this.stats.packets++
    out.count = 0
    out.reassembled = false
    out.segments = 1
    out.hold = false
    out.seen = null
    out.verdict = null
    out.invalidNames = 0
    out.status = Status.Unsupported
    const buf = view.buf
    const s = view.payloadStart
    const e = view.payloadEnd
    if (view.proto === PROTO_TCP && (view.tcpFlags & TCP_SYN) !== 0) {
      // A new connection on these ports: nothing of an earlier one carries over.
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
    if (e <= s) return 0
    if (view.proto === PROTO_TCP) {
      this.#tcp(view, out, buf, s, e, now)
    } else if (view.proto === PROTO_UDP && view.dstPort === PORT_HTTPS) {
      // RFC 9000 §14.1: a server discards a client Initial in a datagram under
      // 1200 bytes, so a short one is a decoy the server never reads.
      if (((buf[s] as number) & QUIC_LONG_HEADER) !== 0 && e - s >= QUIC_MIN_INITIAL_DATAGRAM) this.#quic(view, out, buf, s, e, now)
    } else if (view.proto === PROTO_UDP && view.dstPort === PORT_DNS) {
      out.seen = 'dns'
      out.status = parseDns(buf, s, e, out.dns)
      if (out.status === Status.Ok) {
        this.#dns(view, out)
        if (out.count === 0 && out.invalidNames > 0) this.#special(view, out, null, this.ruleset.policy.unknown)
      }
    }
    // DNS: a pass is never saved on the connection. The next query on the same
    // socket or TCP connection may ask for a blocked name, so every one is read.
    const v = out.verdict as Decision | null // set by the extractors above
    if (out.seen === 'dns' && v !== null && SEVERITY[v.action] < SEVERITY.block) out.hold = true
    if (out.seen !== null) (this.stats.byStatus as Float64Array)[out.status] = (this.stats.byStatus[out.status] ?? 0) + 1
    if (out.count > 0) this.stats.named++
    return out.count
  }

  /**
   * TCP: a message in one segment is read in place (no state, no copy); one
   * that needs more bytes, or a segment that continues a flow we hold, goes
   * through the flow table.
   */
  #tcp (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, now: number): void {
    const table = this.flows
    let key: string | null = null
    let flow: Flow | undefined
    if (table.size > 0) {
      key = FlowTable.keyOf(view)
      flow = table.get(key, now)
    }
    let starts = startsOpening(buf, s, e, view.dstPort)
    if (flow !== undefined && flow.decided !== null) {
      if (!startsMessage(buf, s, e, view.dstPort)) {
        // Decided already: a packet that was in the queue behind the one that
        // decided, or (offline) the rest of the flow (an alert such as
        // close_notify too). Same verdict, no new line.
        out.status = Status.Ok
        out.verdict = flow.decided as Decision
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
        this.#implausible(view, out, flow, now)
        return
      }
      if (rel === 0 && starts) {
        // The opening, right after the SYN: read in place, as with no state.
        synStart = true
        table.delete(flow)
        flow = undefined
      }
    }
    if ((view.tcpFlags & TCP_URG) !== 0 && (flow !== undefined || starts)) {
      // Urgent data inside an opening: the server's kernel takes the urgent
      // byte out of the stream, we would read it in. Two stories.
      out.seen = seenOnPort(view.dstPort)
      out.status = Status.Malformed
      this.#evasion(view, out, flow ?? null, 'urgent', now)
      return
    }
    if (flow === undefined && !starts && table.anyLost && table.takeLost(key ?? FlowTable.keyOf(view))) {
      // The rest of an opening whose first part we held until the flow was
      // forgotten (a pause past the table's idle time, or pushed out).
      out.seen = seenOnPort(view.dstPort)
      out.status = Status.Malformed
      this.#evasion(view, out, null, 'expired', now)
      return
    }
    if (flow === undefined) {
      if (starts) {
        this.#read(view, out, buf, s, e)
        if (!synStart && (buf[s] as number) <= 0x16 && buf[s + 1] !== 0x03 && e - s >= 2 && out.status !== Status.NeedMore && !(out.status === Status.Ok && out.count > 0)) {
          // A record with an odd version (oddVersionRecord) that does not read as
          // a whole hello here, where we do not know the stream's start: more
          // likely bytes from the middle of one. Kept as a piece, not decided.
          starts = false
          out.status = Status.NeedMore
          out.count = 0
          out.verdict = null
        }
      }
      if (starts) {
        if (out.status === Status.Ok && out.count > 0) {
          if (out.seen === 'dns') this.#dnsCarry(key ?? FlowTable.keyOf(view), view.seq, buf, s, e, view.ttl, now)
          this.#watch(view, out, key, now)
          return
        }
        if (unreadable(out)) {
          // A whole opening message with no name we can read: the same
          // decision as for one gathered over several segments, and an allow
          // is watched like any other (a nameless decoy hello must not save it).
          this.#special(view, out, null, this.ruleset.policy.unknown)
          this.#watch(view, out, key, now)
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
      flow = table.create(key ?? FlowTable.keyOf(view), now)
      flow.ttl = view.ttl
      flow.synSeen = synStart
      table.addSegment(flow, view.seq, buf, s, e, starts, now)
      if (out.seen === null) out.seen = seenOnPort(view.dstPort)
      return
    }
    if (flow.watchName !== null && flow.have === 0 && flow.pendingSeq.length === 0) {
      this.#watched(view, out, flow, buf, s, e, now)
      return
    }
    out.count = 0
    out.seen = view.dstPort === PORT_DNS ? 'dns' : seenOnPort(view.dstPort)
    if (view.ttl < flow.ttl) {
      // Fewer hops left than the flow's first segment: not from the same
      // sender on the same path, a piece made to die before the server (and
      // to complete the hello here with another name). Not read.
      out.status = Status.NeedMore
      this.#implausible(view, out, flow, now)
      return
    }
    // Where the stream starts is known from the SYN: no later segment moves it.
    table.addSegment(flow, view.seq, buf, s, e, flow.synSeen ? view.seq === flow.base : starts, now)
    if (flow.shed) {
      // Its bytes went when the table ran past its byte bound: what it opened
      // with can no longer be read.
      this.#special(view, out, flow, this.ruleset.policy.unknown)
      this.#final(out, flow.key, now)
      return
    }
    if (flow.have === 0) {
      out.status = Status.NeedMore
      if (flow.overflow || flow.packets >= table.limits.maxSegments) this.#noStart(view, out, flow, now)
      return
    }
    this.#read(view, out, flow.data, 0, flow.have)
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
      this.#one(view, out, out.tls.buf, out.tls.sniStart, out.tls.sniEnd, 0)
    }
    table.delete(flow)
    table.stats.completed++
    if (out.seen === 'dns' && out.status === Status.Ok) this.#dnsCarry(flow.key, flow.base, flow.data, 0, flow.have, flow.ttl, now)
    if (out.status !== Status.Ok || out.count === 0) {
      if (flow.watchName !== null && flow.watchName !== '') {
        // A second opening message we cannot read behind an allowed name: two stories.
        this.#evasion(view, out, flow, 'second-hello', now)
      } else {
        this.#special(view, out, flow, this.ruleset.policy.unknown)
        if (!flow.overflow) this.#watch(view, out, flow.key, now, flow)
        else this.#final(out, flow.key, now)
      }
    } else if (flow.disagree) {
      // Overlapping copies disagreed: the name read is only one of two stories.
      this.#evasion(view, out, flow, 'disagree', now)
    } else if (flow.watchName !== null && namesOf(out) !== flow.watchName) {
      // A second hello names another host than the first.
      this.#evasion(view, out, flow, 'second-hello', now)
    } else if (flow.watchName !== null) {
      this.#holdAgain(out, flow, now)
    } else {
      this.#watch(view, out, flow.key, now, flow)
    }
  }

  /**
   * A message cut short by the copy range (a GRO/TSO-merged or defragmented
   * packet larger than what the kernel copies to us): its rest is in the same
   * packet, so it never comes. A server name that came before the cut is
   * final (a second one would make the server abort); without one, evasion.
   */
  #cut (view: PacketView, out: Outcome, flow: Flow | null, buf: Buffer, s: number, e: number, now: number): void {
    if (out.seen === 'sni' && peekSni(buf, s, e, out.tls)) {
      out.status = Status.Ok
      this.#one(view, out, out.tls.buf, out.tls.sniStart, out.tls.sniEnd, 0)
      if (out.count > 0) {
        if (flow !== null) this.flows.delete(flow)
        this.#watch(view, out, flow?.key ?? null, now)
        return
      }
    }
    this.#evasion(view, out, flow, 'truncated', now)
  }

  /**
   * Pieces of a stream whose start never came, past the segment limit: after
   * a SYN we saw, an opening hidden from us (evasion); else, inline, an
   * opening we did not see (midstream).
   */
  #noStart (view: PacketView, out: Outcome, flow: Flow, now: number): void {
    if (flow.synSeen) { this.#evasion(view, out, flow, 'segments', now); return }
    this.flows.delete(flow)
    if (this.inline) this.#midstream(view, out, flow.key, now)
  }

  /** Inline: payload of a flow whose opening went by unseen (the daemon restarted, the queue was bypassed). */
  #midstream (view: PacketView, out: Outcome, key: string | null, now: number): void {
    if (out.seen === null) out.seen = seenOnPort(view.dstPort)
    out.count = 0
    this.#special(view, out, null, this.ruleset.policy.nameless('midstream'))
    this.#final(out, key ?? FlowTable.keyOf(view), now)
  }

  /** A packet that cannot reach the server, on a flow being read or watched: ignored, and evasion when it keeps happening. */
  #implausible (view: PacketView, out: Outcome, flow: Flow, now: number): void {
    this.flows.stats.implausible++
    flow.packets++
    if (++flow.implausible > MAX_IMPLAUSIBLE) this.#evasion(view, out, flow, 'implausible', now)
  }

  /** The policy's evasion action with what the flow did; final for the flow. */
  #evasion (view: PacketView, out: Outcome, flow: Flow | null, detail: EvasionDetail, now: number): void {
    this.#special(view, out, flow, this.ruleset.policy.evaded(detail))
    this.#final(out, flow?.key ?? FlowTable.keyOf(view), now)
  }

  /** Remember a flow's final decision, for its packets still in flight (inline) or the rest of it (offline). */
  #final (out: Outcome, key: string, now: number): void {
    const f = this.flows.create(key, now)
    f.decided = out.verdict
  }

  /** The opening message is still incomplete after the segments we read of it (FlowLimits.maxSegments). */
  #tooManySegments (view: PacketView, out: Outcome, flow: Flow, now: number): void {
    out.segments = flow.packets
    this.flows.stats.tooManySegments++
    this.#evasion(view, out, flow, 'segments', now)
  }

  #now = 0

  /**
   * QUIC Initial datagrams: decrypt, gather CRYPTO frames (across datagrams,
   * in any order), read the ClientHello. Decisions belong to a connection: an
   * Initial of another connection on the same port pair (its own DCID) is
   * read as that connection's, not mixed into the first (a decoy connection
   * cannot lend its name to the next one).
   */
  #quic (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, now: number): void {
    this.#now = now
    const key = FlowTable.keyOf(view)
    const held = this.quicFlows.get(key)
    out.seen = 'quic'
    if (held instanceof QuicWatch) {
      this.#quicWatched(view, out, buf, s, e, key, held)
      return
    }
    if (held !== undefined && !(held instanceof QuicGather)) {
      out.status = Status.Ok
      out.verdict = held
      return
    }
    if (held !== undefined && view.ttl < held.ttl) {
      // Fewer hops left than the flow's first datagram: a piece made to die
      // before the server (and to complete the hello here with another name).
      out.status = Status.NeedMore
      this.#quicImplausible(view, out, key, held)
      return
    }
    if (held === undefined && this.flows.anyLost && this.flows.takeLost(key)) {
      // The rest of a QUIC hello whose first datagrams we held until the
      // flow was forgotten (a pause, or pushed out by a flood of new ones).
      this.#quicFinal(view, out, key, this.ruleset.policy.evaded('expired'))
      return
    }
    this.#quicRead(view, out, buf, s, e, key, held, held?.ttl ?? view.ttl, held?.switches ?? 0)
  }

  /** Read a datagram into the flow's gather (or a fresh one), and decide once a hello is whole. */
  #quicRead (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string, held: QuicGather | undefined, ttl: number, switches: number): void {
    let asm = held?.asm
    if (asm === undefined) {
      asm = this.#quicScratch
      asm.reset()
    }
    out.status = parseQuicInitial(buf, s, e, asm, out.quic)
    if (out.quic.ambiguous) { this.#quicFinal(view, out, key, this.ruleset.policy.evaded('ambiguous')); return }
    if (out.quic.otherConnection && held !== undefined) {
      // Another connection's Initial (its own DCID) while this one's hello is
      // still arriving: read it as that connection's.
      this.#quicSwitch(view, out, buf, s, e, key, ttl, switches)
      return
    }
    if (out.quic.disagree) { this.#quicFinal(view, out, key, this.ruleset.policy.evaded('disagree')); return }
    if (out.status === Status.NeedMore) {
      if (held === undefined) {
        // Keep this assembler for the flow; take a fresh scratch.
        const g = new QuicGather(asm, ttl)
        g.switches = switches
        this.quicFlows.set(key, g)
        this.#quicScratch = this.#quicPool.pop() ?? new CryptoAssembler()
      }
      return
    }
    if (out.status === Status.Unsupported && out.quic.unknownVersion && held === undefined) {
      // A version we cannot decrypt, that a server may speak: no name to read.
      // Watched like a nameless allow: an Initial we can read later on the same
      // port pair (a v1 connection behind the decoy) is still read.
      out.count = 0
      this.#special(view, out, null, this.ruleset.policy.nameless('quic-version'))
      const d = out.verdict as Decision
      if (d.action === 'allow' || d.action === 'monitor') {
        const w = new QuicWatch(d, '', ttl, this.#quicPool.pop() ?? new CryptoAssembler())
        w.asm.reset()
        w.versionOnly = true
        w.switches = switches
        this.quicFlows.set(key, w)
        out.hold = true
      } else {
        this.quicFlows.set(key, d)
      }
      return
    }
    if (out.quic.shortDcid && out.quic.authenticated) {
      // RFC 9000 §7.2: a first Initial's DCID has at least 8 bytes; servers drop
      // a shorter one, so it is a decoy meant for us alone.
      this.#quicFinal(view, out, key, this.ruleset.policy.evaded('short-dcid'))
      return
    }
    if (out.status !== Status.Ok && out.status !== Status.NoName) {
      if (out.status !== Status.Malformed || held === undefined) out.seen = null
      return
    }
    const h = asm.hello
    if (out.status === Status.Ok) this.#one(view, out, h.buf, h.sniStart, h.sniEnd, 0)
    if (out.count === 0) this.#special(view, out, null, this.ruleset.policy.unknown) // no SNI, or not a host name
    if (h.ech && out.count > 0 && out.decisions[0]?.category === CATEGORY_ECH) out.seen = 'ech'
    const v = out.verdict
    if (v === null) {
      if (held !== undefined) this.quicFlows.delete(key)
    } else if (v.action === 'allow' || v.action === 'monitor') {
      // Held, as an allowed TCP flow is: a decoy Initial must not wave through
      // a second connection opened on the same port pair. The watch keeps the
      // decided CRYPTO bytes, so a later copy that differs is evasion.
      const w = new QuicWatch(v, out.count > 0 && v.reason !== 'unknown' ? out.names[0] as string : '', ttl, asm)
      w.switches = switches
      if (held !== undefined) held.asmTaken = true
      else this.#quicScratch = this.#quicPool.pop() ?? new CryptoAssembler()
      this.quicFlows.set(key, w)
      out.hold = true
    } else {
      this.quicFlows.set(key, v)
    }
  }

  /** Another connection on this port pair: its own gather and decision, a bounded number of times. */
  #quicSwitch (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string, ttl: number, switches: number): void {
    if (switches + 1 > MAX_QUIC_SWITCHES) {
      // Connections that keep replacing each other on one port pair: decoys.
      this.#quicFinal(view, out, key, this.ruleset.policy.evaded('second-hello'))
      return
    }
    this.quicFlows.delete(key)
    out.count = 0
    out.verdict = null
    out.hold = false
    this.#quicRead(view, out, buf, s, e, key, undefined, ttl, switches + 1)
  }

  /** A datagram that cannot reach the server, ignored; true when there were too many (then evasion, final). */
  #quicImplausible (view: PacketView, out: Outcome, key: string, flow: QuicGather | QuicWatch): boolean {
    this.flows.stats.implausible++
    if (++flow.implausible <= MAX_IMPLAUSIBLE) return false
    this.#quicFinal(view, out, key, this.ruleset.policy.evaded('implausible'))
    return true
  }

  /** A final decision for a QUIC port pair, logged once (later datagrams get it silently). */
  #quicFinal (view: PacketView, out: Outcome, key: string, d: Decision): void {
    out.seen = 'quic'
    out.count = 0
    this.#special(view, out, null, d)
    this.quicFlows.set(key, d)
  }

  /**
   * A datagram of an allowed QUIC flow under watch. Every Initial is read:
   * the same hello again (retransmission) keeps the decision, and its bytes
   * are compared with the decided ones (a copy that differs is evasion);
   * another connection's Initial is read as that connection's. The allow is
   * saved on the port pair once the client sends a Handshake packet behind
   * an Initial of this connection (it answers a server that replied), with
   * no fewer hops left than its first Initial; the watch stays, as the
   * firewall queues every Initial whatever the port pair's mark.
   */
  #quicWatched (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string, w: QuicWatch): void {
    out.status = Status.Ok
    let handshake = false
    if (view.ttl < w.ttl) {
      // Fewer hops left than the decided Initial: cannot be the same client's; not read.
      if (this.#quicImplausible(view, out, key, w)) return
    } else if (((buf[s] as number) & QUIC_LONG_HEADER) !== 0) {
      const st = parseQuicInitial(buf, s, e, w.asm, out.quic)
      if (out.quic.ambiguous) { this.#quicFinal(view, out, key, this.ruleset.policy.evaded('ambiguous')); return }
      if (out.quic.otherConnection) { this.#quicSwitch(view, out, buf, s, e, key, w.ttl, w.switches); return }
      if (out.quic.disagree) { this.#quicFinal(view, out, key, this.ruleset.policy.evaded('disagree')); return }
      handshake = out.quic.handshake && out.quic.initials > 0
      if (st === Status.Ok || st === Status.NoName) {
        if (st === Status.Ok) this.#one(view, out, w.asm.hello.buf, w.asm.hello.sniStart, w.asm.hello.sniEnd, 0)
        const same = out.count > 0 ? out.names[0] === w.name : w.name === ''
        if (!same && w.versionOnly && out.count > 0) {
          // The first hello we can read on this port pair: its own decision.
          const d = out.verdict as Decision
          const next = new QuicWatch(d, out.names[0] as string, w.ttl, w.asm)
          next.switches = w.switches
          w.asmTaken = true
          this.quicFlows.set(key, d.action === 'allow' || d.action === 'monitor' ? next : d)
          out.hold = d.action === 'allow' || d.action === 'monitor'
          return
        }
        if (!same) {
          out.status = st
          this.#special(view, out, null, this.ruleset.policy.evaded('second-hello'))
          this.quicFlows.set(key, out.verdict as Decision)
          return
        }
      }
    }
    out.count = 0
    out.verdict = w.decision
    out.hold = !w.saved
    if (handshake && view.ttl >= MIN_TRUSTED_TTL) {
      w.saved = true
      out.hold = false
    }
  }

  /**
   * After an allow or monitor decision on TLS or HTTP: watch the flow (see
   * Outcome.hold). `from`: the flow the message was gathered in, whose bytes
   * the watch keeps to compare later copies with. Other decisions are final.
   */
  #watch (view: PacketView, out: Outcome, key: string | null, now: number, from: Flow | null = null): void {
    const d = out.verdict
    if (d === null || out.seen === 'dns') return
    if (d.action !== 'allow' && d.action !== 'monitor') {
      this.#final(out, key ?? FlowTable.keyOf(view), now)
      return
    }
    const f = this.flows.create(key ?? FlowTable.keyOf(view), now)
    f.watchName = namesOf(out)
    f.watchDecision = d
    f.ttl = from !== null ? from.ttl : view.ttl
    f.watchAck = view.ack
    f.watchAckKnown = (view.tcpFlags & TCP_ACK) !== 0 // a hello in a SYN (Fast Open) acknowledges nothing
    // HTTP: the message ends after its body (Content-Length), which may run
    // on past what we read; the watch waits for what comes after it.
    const body = out.seen === 'http' && !out.http.bodyUnknown ? out.http.next : -1
    if (from !== null && from.base >= 0) {
      f.watchData = from.data.subarray(0, from.have)
      f.watchBase = from.base
      f.watchNext = (from.base + Math.max(from.have, body)) >>> 0
    } else {
      f.watchNext = (view.seq + Math.max(view.payloadEnd, body) - view.payloadStart) >>> 0
    }
    out.hold = true
  }

  /** The same name again (a retransmitted hello): no new decision line, keep watching. */
  #holdAgain (out: Outcome, flow: Flow, now: number): void {
    this.flows.regather(flow, now)
    out.count = 0
    out.verdict = flow.watchDecision as Decision
    out.hold = true
  }

  /** A packet of a watched (allowed) flow. */
  #watched (view: PacketView, out: Outcome, flow: Flow, buf: Buffer, s: number, e: number, now: number): void {
    const table = this.flows
    // A warning alert a server skips, then a second hello, is a second opening
    // too; change_cipher_spec (the client's usual next record) is data.
    const c = buf[s] as number
    if (!(c === 0x15 ? startsOpening(buf, s, e, view.dstPort) : startsMessage(buf, s, e, view.dstPort))) {
      out.count = 0
      out.status = Status.Ok
      out.verdict = flow.watchDecision as Decision
      const copy = this.#againstHello(view, flow, buf, s, e)
      if (copy < 0) {
        // A copy of the decided hello's bytes that differs: we decided on a
        // piece the server never got (a fake with a checksum or TTL that
        // kills it), and this is the real one.
        out.seen = seenOnPort(view.dstPort)
        this.#evasion(view, out, flow, 'disagree', now)
        return
      }
      if (copy > 0) { out.hold = true; return } // a retransmitted piece of the hello
      // Data that may come before any answer (an HTTP body, empty lines, TLS
      // early data, a one-way upload) is held, for at most MAX_HELD_DATA
      // packets: past that the allow is saved (the flow leaves the queue).
      if (flow.heldData < MAX_HELD_DATA) {
        if (view.dstPort === PORT_HTTP && httpHeld(view, flow, buf, s, e)) { flow.heldData++; out.hold = true; return }
        if (plausibleNext(view, flow) && !answered(view, flow)) { flow.heldData++; out.hold = true; return }
      }
      if (!plausibleNext(view, flow)) {
        // A fake "first data" (zapret's fake packets with low TTL, badseq,
        // datanoack) would end the watch and save the allow before the real
        // hello comes: accept it unsaved and keep watching, for a while.
        out.hold = true
        this.#implausible(view, out, flow, now)
        if (out.verdict !== flow.watchDecision) out.seen = seenOnPort(view.dstPort)
        return
      }
      // The client moved on to data: the allow stands and is saved now (its
      // packets already in the queue behind this one get it too).
      table.delete(flow)
      this.#final(out, flow.key, now)
      return
    }
    this.#read(view, out, buf, s, e)
    if (out.status === Status.NeedMore) {
      // A second hello that spans segments: gather it, compare when whole.
      table.addSegment(flow, view.seq, buf, s, e, true, now)
      out.count = 0
      out.verdict = null
      return
    }
    if (out.status !== Status.Ok || out.count === 0) {
      out.count = 0
      out.verdict = null
      return
    }
    table.delete(flow)
    if (out.seen === 'http') {
      // HTTP/1.1 keeps a connection for many requests: each one is decided on
      // its own hosts (a new line when they differ), and watched again.
      if (namesOf(out) === flow.watchName) { out.count = 0; out.verdict = flow.watchDecision as Decision }
      this.#watch(view, out, flow.key, now)
      if (out.count === 0) out.hold = true
      return
    }
    if (namesOf(out) === flow.watchName) this.#holdAgain(out, flow, now)
    else this.#evasion(view, out, flow, 'second-hello', now)
  }

  /**
   * Does this segment repeat bytes of the watched hello? 1: it does, and they
   * agree (a retransmission); -1: they differ; 0: it lies past the hello, or
   * the hello's bytes were not kept (read from one segment).
   */
  #againstHello (view: PacketView, flow: Flow, buf: Buffer, s: number, e: number): number {
    const data = flow.watchData
    if (data === null) return 0
    const rel = (view.seq - flow.watchBase) | 0
    if (rel >= data.length || rel + (e - s) <= 0) return 0
    const from = Math.max(0, rel)
    const to = Math.min(data.length, rel + (e - s))
    return buf.compare(data, from, to, s + (from - rel), s + (to - rel)) === 0 ? 1 : -1
  }

  /** Read one message starting at buf[s] (TLS, DNS over TCP, HTTP) and decide its names. */
  #read (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number): void {
    const first = buf[s] as number
    if (first === 0x16 || ((first === 0x15 || first === 0x14) && (e - s < 2 || buf[s + 1] === 0x03 || oddVersionRecord(buf, s, e)))) {
      out.seen = 'sni'
      out.status = parseTls(buf, s, e, out.tls)
      if (out.status === Status.Ok) {
        this.#one(view, out, out.tls.buf, out.tls.sniStart, out.tls.sniEnd, 0)
        // Real ECH: the outer SNI is a provider's public name. Chrome's GREASE
        // ECH carries the real name outside, so the extension alone says nothing.
        if (out.tls.ech && out.count > 0 && out.decisions[0]?.category === CATEGORY_ECH) out.seen = 'ech'
      }
    } else if (view.dstPort === PORT_DNS) {
      out.seen = 'dns'
      this.#dnsTcp(view, out, buf, s, e)
    } else if ((first >= 0x41 && first <= 0x5a) || first === CR || first === LF) {
      out.seen = 'http'
      out.status = parseHttp(buf, s, e, out.http)
      if (out.status === Status.Ok) this.#httpNames(view, out, buf, e)
    } else {
      out.status = Status.Unsupported
    }
  }

  /** Replace the outcome with a policy-wide decision (unknown, evasion), keeping a name read if any. */
  #special (view: PacketView, out: Outcome, flow: Flow | null, d: Decision): void {
    if (flow !== null) this.flows.delete(flow)
    if (out.count === 0) {
      out.names[0] = '' as Name
      out.qtypes[0] = 0
    }
    out.count = 1
    out.decisions[0] = d
    out.cached[0] = false
    out.verdict = d
    this.stats.decisions++
    void view
  }

  /**
   * Every host the request heads name (each pipelined request's target, first
   * and last Host header: servers differ on which they act on), so the strictest
   * decision applies. One that is an IP literal or no host name while others
   * are read adds the policy's unknown: a server may act on it.
   */
  #httpNames (view: PacketView, out: Outcome, buf: Buffer, e: number): void {
    const h = out.http
    // Hosts past what one head holds, bytes behind a body we cannot measure
    // (chunked) or that are no request: a server may act on what we did not read.
    let unread = h.moreHosts || (h.bodyUnknown && h.next < e) || h.tail === Status.Malformed || h.tail === Status.Unsupported ? 1 : 0
    for (let i = 0; i < h.count; i++) {
      const a = h.starts[i] as number
      if (buf[a] === 0x5b) { unread++; continue } // '[': an IP literal
      const before = out.count
      this.#one(view, out, buf, a, h.ends[i] as number, 0)
      if (out.count === before) unread++
    }
    if (unread > 0 && out.count > 0 && out.count < MAX_QUESTIONS) this.#push(out, '' as Name, this.ruleset.policy.unknown, false, 0)
  }

  #one (view: PacketView, out: Outcome, buf: Buffer, start: number, end: number, qtype: number): void {
    if (!readName(buf, start, end, this.#nameOut)) {
      out.invalidNames++
      this.stats.invalidNames++
      return
    }
    this.#record(view, out, this.#nameOut.name, qtype)
  }

  /** Every complete length-prefixed DNS message in buf[s, e) (RFC 7766 §6.2.1: clients may pipeline). */
  #dnsTcp (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number): void {
    let p = s
    let messages = 0
    this.#dnsRest = -1
    for (;;) {
      const st = parseDnsTcp(buf, p, e, out.dns)
      if (st !== Status.Ok) {
        // A partial message after whole ones: the whole ones are decided, and
        // the partial one is kept from its own start (#dnsCarry).
        if (messages > 0 && st === Status.NeedMore) this.#dnsRest = p
        out.status = messages > 0 && st === Status.NeedMore ? Status.Ok : st
        return
      }
      this.#dns(view, out)
      messages++
      p += out.dns.consumed
      if (p >= e) { out.status = Status.Ok; return }
      if (out.count >= MAX_QUESTIONS) {
        // More queries than one outcome holds: the last slot says unknown for
        // those we did not read (a server answers them all).
        out.count--
        this.#push(out, '' as Name, this.ruleset.policy.unknown, false, 0)
        out.status = Status.Ok
        return
      }
    }
  }

  /** Where the partial DNS message after whole ones begins in the buffer #dnsTcp read, or -1. */
  #dnsRest = -1

  /** Keep the partial DNS message after whole ones as a flow of its own, starting at its length prefix. */
  #dnsCarry (key: string, seq: number, buf: Buffer, s: number, e: number, ttl: number, now: number): void {
    if (this.#dnsRest < 0) return
    const rest = this.#dnsRest
    this.#dnsRest = -1
    const f = this.flows.create(key, now)
    f.ttl = ttl
    this.flows.addSegment(f, (seq + (rest - s)) >>> 0, buf, rest, e, true, now)
  }

  #dns (view: PacketView, out: Outcome): void {
    const q = out.dns
    for (let i = 0; i < q.count && out.count < MAX_QUESTIONS; i++) {
      if (q.nameErrors[i] !== null) { out.invalidNames++; this.stats.invalidNames++; continue }
      this.#record(view, out, q.names[i] as Name, q.qtypes[i] as number)
    }
  }

  readonly #cachedFlag = { cached: false }

  #record (view: PacketView, out: Outcome, name: Name, qtype: number): void {
    const ruleset = this.ruleset
    const cls = ruleset.policy.classes > 1 ? ruleset.policy.sourceClass(view.buf, view.srcAddr, view.ipVersion) : 0
    const d = this.decide(name, cls, this.#cachedFlag)
    this.#push(out, name, d, this.#cachedFlag.cached, qtype)
  }

  /** Add one decision to the outcome; the packet's verdict is the strictest so far. */
  #push (out: Outcome, name: Name, d: Decision, cached: boolean, qtype: number): void {
    const i = out.count++
    out.names[i] = name
    out.decisions[i] = d
    out.cached[i] = cached
    out.qtypes[i] = qtype
    if (out.verdict === null || SEVERITY[d.action] > SEVERITY[out.verdict.action]) out.verdict = d
    this.stats.decisions++
  }
}
