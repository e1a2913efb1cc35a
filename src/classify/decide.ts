import { Status } from '../util/status.js'
import type { PacketView } from '../decode/packet.js'
import { parseTls } from '../extract/tls.js'
import { parseDnsTcp, MAX_QUESTIONS } from '../extract/dns.js'
import { parseHttp } from '../extract/http.js'
import { NameOut, readName, type Name } from '../name/index.js'
import { DecisionCache } from '../cache/index.js'
import type { Decision } from '../policy/index.js'
import type { Ruleset } from '../rules/index.js'
import { ClassifyStats, SEVERITY, type Outcome } from './outcome.js'
import { Opening, openingOf } from './opening.js'

/** Category of the lists of ECH providers' public names (rules/vendors/ech-providers.txt). */
export const CATEGORY_ECH = 'ech'

/**
 * The decision step, shared by every transport: a span of wire bytes ->
 * name -> cache -> trie -> policy, written into the packet's Outcome. Also
 * reads one whole message (TLS, DNS over TCP, HTTP) and decides its names.
 */
export class Decider {
  ruleset: Ruleset
  readonly cache: DecisionCache
  readonly stats = new ClassifyStats()
  readonly #nameOut = new NameOut()
  readonly #cachedFlag = { cached: false }
  #keyed: boolean

  constructor (ruleset: Ruleset, cacheSize?: number) {
    this.ruleset = ruleset
    this.cache = new DecisionCache(cacheSize)
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

  /** Read one message starting at buf[s] (TLS, DNS over TCP, HTTP) and decide its names. */
  read (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number): void {
    switch (openingOf(buf, s, e, view.dstPort)) {
      case Opening.Tls:
      case Opening.TlsPrelude:
        out.seen = 'sni'
        out.status = parseTls(buf, s, e, out.tls)
        if (out.status === Status.Ok) this.hello(view, out, out.tls.buf, out.tls.sniStart, out.tls.sniEnd, out.tls.ech)
        break
      case Opening.Dns:
        out.seen = 'dns'
        this.#dnsTcp(view, out, buf, s, e)
        break
      case Opening.Http:
        out.seen = 'http'
        out.status = parseHttp(buf, s, e, out.http)
        if (out.status === Status.Ok) this.#httpNames(view, out, buf, e)
        break
      default:
        out.status = Status.Unsupported
    }
  }

  /**
   * A ClientHello's server name (TLS or QUIC). Real ECH: the outer SNI is a
   * provider's public name. Chrome's GREASE ECH carries the real name
   * outside, so the extension alone says nothing.
   */
  hello (view: PacketView, out: Outcome, buf: Buffer, sniStart: number, sniEnd: number, ech: boolean): void {
    this.one(view, out, buf, sniStart, sniEnd, 0)
    if (ech && out.count > 0 && out.decisions[0]?.category === CATEGORY_ECH) out.seen = 'ech'
  }

  /** Replace the outcome with a policy-wide decision (unknown, evasion), keeping a name read if any. */
  special (out: Outcome, d: Decision): void {
    if (out.count === 0) {
      out.names[0] = '' as Name
      out.qtypes[0] = 0
    }
    out.count = 1
    out.decisions[0] = d
    out.cached[0] = false
    out.verdict = d
    this.stats.decisions++
  }

  /** Decide the name in buf[start, end), or count it invalid. */
  one (view: PacketView, out: Outcome, buf: Buffer, start: number, end: number, qtype: number): void {
    if (!readName(buf, start, end, this.#nameOut)) {
      out.invalidNames++
      this.stats.invalidNames++
      return
    }
    this.#record(view, out, this.#nameOut.name, qtype)
  }

  /** The questions of the DNS message in out.dns. */
  dns (view: PacketView, out: Outcome): void {
    const q = out.dns
    for (let i = 0; i < q.count && out.count < MAX_QUESTIONS; i++) {
      if (q.nameErrors[i] !== null) { out.invalidNames++; this.stats.invalidNames++; continue }
      this.#record(view, out, q.names[i] as Name, q.qtypes[i] as number)
    }
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
      this.one(view, out, buf, a, h.ends[i] as number, 0)
      if (out.count === before) unread++
    }
    if (unread > 0 && out.count > 0 && out.count < MAX_QUESTIONS) this.#push(out, '' as Name, this.ruleset.policy.unknown, false, 0)
  }

  /**
   * Where the partial DNS message after whole ones begins in the buffer the
   * last read() took, or -1: the TCP room keeps it as a flow of its own.
   */
  dnsRest = -1

  /** Every complete length-prefixed DNS message in buf[s, e) (RFC 7766 §6.2.1: clients may pipeline). */
  #dnsTcp (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number): void {
    let p = s
    let messages = 0
    this.dnsRest = -1
    for (;;) {
      const st = parseDnsTcp(buf, p, e, out.dns)
      if (st !== Status.Ok) {
        // A partial message after whole ones: the whole ones are decided, and
        // the partial one is kept from its own start (dnsRest).
        if (messages > 0 && st === Status.NeedMore) this.dnsRest = p
        out.status = messages > 0 && st === Status.NeedMore ? Status.Ok : st
        return
      }
      this.dns(view, out)
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
