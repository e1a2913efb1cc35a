import { Status } from '../util/status.js'
import { TlsHello } from '../extract/tls.js'
import { DnsQuery, MAX_QUESTIONS } from '../extract/dns.js'
import { HttpHead } from '../extract/http.js'
import { QuicInfo } from '../extract/quic.js'
import type { Name } from '../name/index.js'
import type { Decision, Action } from '../policy/index.js'

/** How a name was seen. */
export type Seen = 'sni' | 'quic' | 'dns' | 'http' | 'ech'

/** Strictness of actions, for a packet that carries several names (DNS). */
export const SEVERITY: Record<Action, number> = { allow: 0, monitor: 1, block: 2, reject: 3 }

/** Does the decision let the flow go on (and so get watched)? */
export function lets (d: Decision): boolean {
  return d.action === 'allow' || d.action === 'monitor'
}

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
   * Every name the flow showed, space-separated in the order seen, when its
   * decision is evasion (a first hello and a second, a watched name and the
   * copy that disagrees); '' otherwise. The log names them all.
   */
  shown = ''
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

  /** Ready for the next packet. */
  reset (): void {
    this.count = 0
    this.reassembled = false
    this.segments = 1
    this.shown = ''
    this.hold = false
    this.seen = null
    this.verdict = null
    this.invalidNames = 0
    this.status = Status.Unsupported
  }

  /** Nothing decided (yet) by this packet. */
  clear (): void {
    this.count = 0
    this.verdict = null
  }
}

/** Counters, kept as plain numbers (free when nobody reads them). */
export class ClassifyStats {
  packets = 0
  named = 0
  decisions = 0
  invalidNames = 0
  readonly byStatus = new Float64Array(5)
}

/**
 * A whole opening message that names nothing we can read: no name in it
 * (a hello without SNI, HTTP to an IP literal), only names that are not
 * host names (`api.example.com:1`, bytes no resolver takes), or one the
 * parser finds malformed. The policy's `unknown` applies, as to a message
 * that never completed: a server may still act on what we could not read.
 * Unsupported (another handshake message, another protocol) is not ours.
 */
export function unreadable (out: Outcome): boolean {
  return out.status === Status.Ok ? out.count === 0 : out.status === Status.NoName || out.status === Status.Malformed
}

/** The names an opening message showed, as one string to compare a later one with (no allocation for one name). */
export function namesOf (out: Outcome): string {
  if (out.count <= 1) return out.names[0] as string
  let s = out.names[0] as string
  for (let i = 1; i < out.count; i++) s += ' ' + (out.names[i] as string)
  return s
}

/** Outcome.shown for an evasion: the names decided earlier on the flow (namesOf), then those this packet read. */
export function shownBy (earlier: string, out: Outcome): string {
  if (out.count === 0 || out.decisions[0] === null) return earlier
  const now = namesOf(out)
  return earlier === '' ? now : now === '' ? earlier : earlier + ' ' + now
}
