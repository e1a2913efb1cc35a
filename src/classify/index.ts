import { Status } from '../util/status.js'
import { PROTO_TCP, PROTO_UDP, TCP_SYN, type PacketView } from '../decode/packet.js'
import { parseDns } from '../extract/dns.js'
import type { Name } from '../name/index.js'
import type { DecisionCache } from '../cache/index.js'
import type { Decision } from '../policy/index.js'
import type { Ruleset } from '../rules/index.js'
import type { FlowLimits, FlowTable } from '../flow/index.js'
import { Decider } from './decide.js'
import { SEVERITY, type ClassifyStats, type Outcome } from './outcome.js'
import { PORT_DNS, PORT_HTTPS } from './opening.js'
import { QuicOpenings, QUIC_LONG_HEADER, QUIC_MIN_INITIAL_DATAGRAM } from './quic.js'
import { TcpOpenings } from './tcp.js'
import type { TcpWatch } from './tcp-watch.js'

/**
 * The one place that knows the order of the data path:
 * packet view -> extract (tls | dns | http | quic) -> name -> cache -> trie -> policy.
 * It is pure: no I/O, no clock, no logger. NFQUEUE, pcap and tests all call it.
 *
 * The rooms: this entry chooses by transport; outcome.ts is what a packet
 * decided; decide.ts the decision step (span, name, cache, rules, policy);
 * opening.ts what kind of opening a payload begins; tcp.ts and tcp-watch.ts
 * TCP openings (in place, reassembled, the watch of allowed flows); quic.ts
 * QUIC openings (their flows, assemblers and watch).
 */

export { Outcome, ClassifyStats, type Seen } from './outcome.js'
export { CATEGORY_ECH } from './decide.js'
export { PORT_DNS } from './opening.js'
export { DEFAULT_MAX_QUIC_FLOWS, QUIC_MIN_INITIAL_DATAGRAM } from './quic.js'
export { MIN_TRUSTED_TTL } from './tcp-watch.js'

export class Classifier {
  readonly #decider: Decider
  readonly #tcp: TcpOpenings
  readonly #quic: QuicOpenings

  constructor (ruleset: Ruleset, cacheSize?: number, flowLimits?: Partial<FlowLimits>, inline = false) {
    this.#decider = new Decider(ruleset, cacheSize)
    this.#tcp = new TcpOpenings(this.#decider, inline, flowLimits)
    this.#quic = new QuicOpenings(this.#decider, this.#tcp.flows, flowLimits?.ttlMs ?? 10000)
  }

  get ruleset (): Ruleset { return this.#decider.ruleset }
  get cache (): DecisionCache { return this.#decider.cache }
  get stats (): ClassifyStats { return this.#decider.stats }
  /** TCP flows whose opening message spans several segments, watched or decided. */
  get flows (): FlowTable<TcpWatch, Decision> { return this.#tcp.flows }
  /** QUIC flows by 5-tuple (see classify/quic.ts). */
  get quicFlows (): QuicOpenings['flows'] { return this.#quic.flows }
  /** Inline (NFQUEUE) rather than offline (a capture): see TcpOpenings.inline. */
  get inline (): boolean { return this.#tcp.inline }

  /** Swap in a new ruleset (reload): one reference, and the cache is emptied. */
  swap (ruleset: Ruleset): void { this.#decider.swap(ruleset) }

  /** Decide one normalised name for a source class (0 = no network exception). */
  decide (name: Name, cls: number, out?: { cached: boolean }): Decision {
    return this.#decider.decide(name, cls, out)
  }

  /**
   * Classify one decoded packet (client to server). Returns the number of
   * names decided (0 when the packet carries none we can read).
   */
  classify (view: PacketView, out: Outcome, now = 0): number {
    const stats = this.#decider.stats
    stats.packets++
    out.reset()
    const buf = view.buf
    const s = view.payloadStart
    const e = view.payloadEnd
    if (view.proto === PROTO_TCP && (view.tcpFlags & TCP_SYN) !== 0) this.#tcp.syn(view, now)
    if (e <= s) return 0
    if (view.proto === PROTO_TCP) {
      this.#tcp.packet(view, out, buf, s, e, now)
    } else if (view.proto === PROTO_UDP && view.dstPort === PORT_HTTPS) {
      // RFC 9000 §14.1: a server discards a client Initial in a datagram under
      // 1200 bytes, so a short one is a decoy the server never reads.
      if (((buf[s] as number) & QUIC_LONG_HEADER) !== 0 && e - s >= QUIC_MIN_INITIAL_DATAGRAM) this.#quic.datagram(view, out, buf, s, e, now)
    } else if (view.proto === PROTO_UDP && view.dstPort === PORT_DNS) {
      out.seen = 'dns'
      out.status = parseDns(buf, s, e, out.dns)
      if (out.status === Status.Ok) {
        this.#decider.dns(view, out)
        if (out.count === 0 && out.invalidNames > 0) this.#decider.special(out, this.#decider.ruleset.policy.unknown)
      }
    }
    // DNS: a pass is never saved on the connection. The next query on the same
    // socket or TCP connection may ask for a blocked name, so every one is read.
    const v = out.verdict as Decision | null // set by the extractors above
    if (out.seen === 'dns' && v !== null && SEVERITY[v.action] < SEVERITY.block) out.hold = true
    if (out.seen !== null) (stats.byStatus as Float64Array)[out.status] = (stats.byStatus[out.status] ?? 0) + 1
    if (out.count > 0) stats.named++
    return out.count
  }
}
