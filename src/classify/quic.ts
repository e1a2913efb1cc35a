import { LRUCache } from 'lru-cache'
import { Status } from '../util/status.js'
import type { PacketView } from '../decode/packet.js'
import { parseQuicInitial, CryptoAssembler } from '../extract/quic.js'
import { FlowTable, MAX_IMPLAUSIBLE } from '../flow/index.js'
import type { Decision } from '../policy/index.js'
import type { Decider } from './decide.js'
import { lets, shownBy, type Outcome } from './outcome.js'
import { MIN_TRUSTED_TTL } from './tcp-watch.js'

/** QUIC flows whose ClientHello is still arriving (each holds a 32 KiB assembler). */
export const DEFAULT_MAX_QUIC_FLOWS = 1024
/** RFC 9000 §14.1: the smallest UDP payload that may carry a client Initial. */
export const QUIC_MIN_INITIAL_DATAGRAM = 1200
/** RFC 9000 §17.2: the first bit of a long header. */
export const QUIC_LONG_HEADER = 0x80
/**
 * Connections one UDP port pair may open one after another before it is
 * evasion (a client retries after a Retry or version negotiation, or opens
 * a new connection; a tool cycles decoys).
 */
const MAX_QUIC_SWITCHES = 4
/** Assemblers of finished flows kept for reuse. */
const POOL_MAX = 64

/** An allowed QUIC flow (QuicOpenings #watched): every later Initial is read. */
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

/**
 * QUIC Initial datagrams: decrypt, gather CRYPTO frames (across datagrams,
 * in any order), read the ClientHello. Decisions belong to a connection: an
 * Initial of another connection on the same port pair (its own DCID) is
 * read as that connection's, not mixed into the first (a decoy connection
 * cannot lend its name to the next one).
 */
export class QuicOpenings {
  /**
   * QUIC flows (by 5-tuple): an assembler while the ClientHello spans several
   * Initial datagrams, a watch after an allow (see #watched), the decision
   * once it is final.
   */
  readonly flows: LRUCache<string, QuicGather | Decision | QuicWatch>
  /** Assemblers to reuse: one scratch for single-datagram hellos, and those of finished flows. */
  readonly #pool: CryptoAssembler[] = []
  #scratch = new CryptoAssembler()
  #now = 0

  constructor (
    readonly decider: Decider,
    /** The TCP table: its lost keys (a QUIC hello forgotten mid-way) and implausible count are shared. */
    readonly tcp: Pick<FlowTable, 'markLost' | 'takeLost' | 'anyLost' | 'stats'>,
    ttlMs: number,
  ) {
    this.flows = new LRUCache<string, QuicGather | Decision | QuicWatch>({
      max: DEFAULT_MAX_QUIC_FLOWS,
      updateAgeOnGet: true,
      ttl: ttlMs,
      ttlResolution: 0,
      perf: { now: () => this.#now },
      dispose: (v, k, reason) => {
        if (v instanceof QuicGather && (reason === 'evict' || reason === 'expire')) this.tcp.markLost(k)
        const a = (v instanceof QuicWatch || v instanceof QuicGather) && !v.asmTaken ? v.asm : null
        if (a !== null && this.#pool.length < POOL_MAX) this.#pool.push(a)
      },
    })
  }

  /** A UDP datagram to 443 that may be a client Initial (long header, at least QUIC_MIN_INITIAL_DATAGRAM bytes). */
  datagram (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, now: number): void {
    this.#now = now
    const key = FlowTable.keyOf(view)
    const held = this.flows.get(key)
    out.seen = 'quic'
    if (held instanceof QuicWatch) {
      this.#watched(view, out, buf, s, e, key, held)
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
      this.#implausible(view, out, key, held)
      return
    }
    if (held === undefined && this.tcp.anyLost && this.tcp.takeLost(key)) {
      // The rest of a QUIC hello whose first datagrams we held until the
      // flow was forgotten (a pause, or pushed out by a flood of new ones).
      this.#final(view, out, key, this.decider.ruleset.policy.evaded('expired'))
      return
    }
    this.#read(view, out, buf, s, e, key, held, held?.ttl ?? view.ttl, held?.switches ?? 0)
  }

  /** A fresh assembler: from the pool, or new. */
  #take (): CryptoAssembler {
    return this.#pool.pop() ?? new CryptoAssembler()
  }

  /** Read a datagram into the flow's gather (or a fresh one), and decide once a hello is whole. */
  #read (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string, held: QuicGather | undefined, ttl: number, switches: number): void {
    const policy = this.decider.ruleset.policy
    let asm = held?.asm
    if (asm === undefined) {
      asm = this.#scratch
      asm.reset()
    }
    out.status = parseQuicInitial(buf, s, e, asm, out.quic)
    if (out.quic.ambiguous) { this.#final(view, out, key, policy.evaded('ambiguous')); return }
    if (out.quic.otherConnection && held !== undefined) {
      // Another connection's Initial (its own DCID) while this one's hello is
      // still arriving: read it as that connection's.
      this.#switch(view, out, buf, s, e, key, ttl, switches)
      return
    }
    if (out.quic.disagree) { this.#final(view, out, key, policy.evaded('disagree')); return }
    if (out.status === Status.NeedMore) {
      if (held === undefined) {
        // Keep this assembler for the flow; take a fresh scratch.
        const g = new QuicGather(asm, ttl)
        g.switches = switches
        this.flows.set(key, g)
        this.#scratch = this.#take()
      }
      return
    }
    if (out.status === Status.Unsupported && out.quic.unknownVersion && held === undefined) {
      // A version we cannot decrypt, that a server may speak: no name to read.
      // Watched like a nameless allow: an Initial we can read later on the same
      // port pair (a v1 connection behind the decoy) is still read.
      out.count = 0
      this.decider.special(out, policy.nameless('quic-version'))
      const d = out.verdict as Decision
      if (lets(d)) {
        const w = new QuicWatch(d, '', ttl, this.#take())
        w.asm.reset()
        w.versionOnly = true
        w.switches = switches
        this.flows.set(key, w)
        out.hold = true
      } else {
        this.flows.set(key, d)
      }
      return
    }
    if (out.quic.shortDcid && out.quic.authenticated) {
      // RFC 9000 §7.2: a first Initial's DCID has at least 8 bytes; servers drop
      // a shorter one, so it is a decoy meant for us alone.
      this.#final(view, out, key, policy.evaded('short-dcid'))
      return
    }
    if (out.status !== Status.Ok && out.status !== Status.NoName) {
      if (out.status !== Status.Malformed || held === undefined) out.seen = null
      return
    }
    const h = asm.hello
    if (out.status === Status.Ok) this.decider.hello(view, out, h.buf, h.sniStart, h.sniEnd, h.ech)
    if (out.count === 0) this.decider.special(out, policy.unknown) // no SNI, or not a host name
    const v = out.verdict
    if (v === null) {
      if (held !== undefined) this.flows.delete(key)
    } else if (lets(v)) {
      // Held, as an allowed TCP flow is: a decoy Initial must not wave through
      // a second connection opened on the same port pair. The watch keeps the
      // decided CRYPTO bytes, so a later copy that differs is evasion.
      const w = new QuicWatch(v, out.count > 0 && v.reason !== 'unknown' ? out.names[0] as string : '', ttl, asm)
      w.switches = switches
      if (held !== undefined) held.asmTaken = true
      else this.#scratch = this.#take()
      this.flows.set(key, w)
      out.hold = true
    } else {
      this.flows.set(key, v)
    }
  }

  /** Another connection on this port pair: its own gather and decision, a bounded number of times. */
  #switch (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string, ttl: number, switches: number): void {
    if (switches + 1 > MAX_QUIC_SWITCHES) {
      // Connections that keep replacing each other on one port pair: decoys.
      this.#final(view, out, key, this.decider.ruleset.policy.evaded('second-hello'))
      return
    }
    this.flows.delete(key)
    out.clear()
    out.hold = false
    this.#read(view, out, buf, s, e, key, undefined, ttl, switches + 1)
  }

  /** A datagram that cannot reach the server, ignored; true when there were too many (then evasion, final). */
  #implausible (view: PacketView, out: Outcome, key: string, flow: QuicGather | QuicWatch): boolean {
    this.tcp.stats.implausible++
    if (++flow.implausible <= MAX_IMPLAUSIBLE) return false
    this.#final(view, out, key, this.decider.ruleset.policy.evaded('implausible'), flow instanceof QuicWatch ? flow.name : '')
    return true
  }

  /** A final decision for a QUIC port pair, logged once (later datagrams get it silently). */
  #final (view: PacketView, out: Outcome, key: string, d: Decision, shown = ''): void {
    out.seen = 'quic'
    out.count = 0
    out.shown = shown
    this.decider.special(out, d)
    this.flows.set(key, d)
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
  #watched (view: PacketView, out: Outcome, buf: Buffer, s: number, e: number, key: string, w: QuicWatch): void {
    const policy = this.decider.ruleset.policy
    out.status = Status.Ok
    let handshake = false
    if (view.ttl < w.ttl) {
      // Fewer hops left than the decided Initial: cannot be the same client's; not read.
      if (this.#implausible(view, out, key, w)) return
    } else if (((buf[s] as number) & QUIC_LONG_HEADER) !== 0) {
      const st = parseQuicInitial(buf, s, e, w.asm, out.quic)
      if (out.quic.ambiguous) { this.#final(view, out, key, policy.evaded('ambiguous'), w.name); return }
      if (out.quic.otherConnection) { this.#switch(view, out, buf, s, e, key, w.ttl, w.switches); return }
      if (out.quic.disagree) { this.#final(view, out, key, policy.evaded('disagree'), w.name); return }
      handshake = out.quic.handshake && out.quic.initials > 0
      if (st === Status.Ok || st === Status.NoName) {
        if (st === Status.Ok) this.decider.one(view, out, w.asm.hello.buf, w.asm.hello.sniStart, w.asm.hello.sniEnd, 0)
        const same = out.count > 0 ? out.names[0] === w.name : w.name === ''
        if (!same && w.versionOnly && out.count > 0) {
          // The first hello we can read on this port pair: its own decision.
          const d = out.verdict as Decision
          const next = new QuicWatch(d, out.names[0] as string, w.ttl, w.asm)
          next.switches = w.switches
          w.asmTaken = true
          this.flows.set(key, lets(d) ? next : d)
          out.hold = lets(d)
          return
        }
        if (!same) {
          out.status = st
          out.shown = shownBy(w.name, out)
          this.decider.special(out, policy.evaded('second-hello'))
          this.flows.set(key, out.verdict as Decision)
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
}
