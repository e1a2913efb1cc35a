import { hostname } from 'node:os'
import pino, { type Logger } from 'pino'
import { formatAddr, PROTO_TCP, PROTO_UDP, type PacketView } from '../decode/packet.js'
import type { TlsHello } from '../extract/tls.js'
import type { Outcome } from '../classify/index.js'
import type { Decision } from '../policy/index.js'
import type { LineBuffer } from './sink.js'
import { readVersion } from '../util/version.js'
import { CommunityId } from './community-id.js'
import { DAEMON_DATASET, DECISION_DATASET } from './read.js'

export { LineBuffer, FdLines, MemoryLines, newWriteLock, type WriteError } from './sink.js'
export { CommunityId } from './community-id.js'
export { DAEMON_DATASET, DECISION_DATASET } from './read.js'

/**
 * One JSON line per decision, every field a published Elastic Common Schema
 * field (ECS 8.11: elastic/ecs generated/csv/fields.csv, the copy in
 * test/fixtures/ecs/) or under `aigate.*`, so a SIEM takes them as they are.
 * The name a client reaches is `destination.domain` (and in `related.hosts`,
 * with every name an evasive flow showed); the gateway is `observer.*`; the
 * flow's Community ID v1 is `network.community_id`. The line has pino's
 * shape (`log.level`, `@timestamp`, bindings, `message` last); the daemon's
 * own events are written by pino into the same stream (daemonLogger).
 *
 * Why not pino for these lines: a decision line through pino cost ~10 us
 * (it serialises the nested object key by key, then writes); the inline
 * daemon writes one per DNS query, so that was 30x the cost of deciding.
 * Here the constant parts are bytes made once (per process, per action, per
 * cached decision) and a line is copied piece by piece straight into the
 * writer's buffer: no intermediate string, no allocation (~0.3 us).
 *
 * Escaping: names reach the log only after normalisation (letters, digits,
 * `-`, `_`, `.`); every other string (rule files' text, ALPN bytes from the
 * wire) goes through `json()`, which is JSON.stringify plus \u escapes for
 * anything outside printable ASCII, so wire bytes can neither forge a field
 * nor break a line, and a line's byte length is its string length.
 */

export const ECS_VERSION = '8.11.0'

/** Clock for the `@timestamp` of the next line: packet time when replaying a capture. */
export class LogClock {
  /** Milliseconds since the epoch; NaN means "now". */
  ms = Number.NaN
}

const NON_ASCII = /[\u007f-\uffff]/g
/** The same test without the global flag (no lastIndex carried between calls). */
const HAS_NON_ASCII = /[\u007f-\uffff]/
const uEscape = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')

/** A JSON string literal in printable ASCII. */
export function json (s: string | null): string {
  if (s === null) return 'null'
  const j = JSON.stringify(s)
  return HAS_NON_ASCII.test(j) ? j.replace(NON_ASCII, uEscape) : j
}

/** DNS type codes worth a name in logs (RFC 1035, RFC 3596, RFC 9460). */
const QTYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY',
}

const EVENT_TYPE: Record<string, string> = {
  allow: '["connection","allowed"]',
  monitor: '["connection","allowed"]',
  block: '["connection","denied"]',
  reject: '["connection","denied"]',
}

/**
 * Who makes the lines (ECS `observer.*`): the gateway inline and on a live
 * capture (its host name); offline, the capture file replayed (its name),
 * never the analyst's host.
 */
export interface Observer {
  /** observer.hostname: this gateway's host name. */
  hostname?: string
  /** observer.name: the capture file's name (offline). */
  name?: string
}

/** observer.type/vendor/product/version, the same on every line. */
function observerJson (o: Observer): string {
  return `{"type":"firewall","vendor":"aigate","product":"aigate","version":${json(readVersion())}` +
    (o.hostname !== undefined ? `,"hostname":${json(o.hostname)}` : '') +
    (o.name !== undefined ? `,"name":${json(o.name)}` : '') + '}'
}

export interface LogExtra {
  /** NFQUEUE number, when inline. */
  queue?: number
  /** Decision latency in nanoseconds (ECS event.duration). */
  durationNs?: number
}

// ---------------------------------------------------------------------------
// Writing ASCII into a buffer. Each returns the position after what it wrote;
// the caller made room first (LineBuffer.room).

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1')

function put (b: Buffer, p: number, src: Uint8Array): number {
  b.set(src, p)
  return p + src.length
}

/** A string known to be ASCII (normalised names, json() output, constants). */
function putStr (b: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i)
  return p
}

/** A non-negative integer in decimal. */
function putUint (b: Buffer, p: number, n: number): number {
  if (n < 10) { b[p] = 0x30 + n; return p + 1 }
  if (n >= 0x80000000) return putStr(b, p, String(n))
  // Small integers (ports, octets, ids): int32 arithmetic, digits from the right.
  let len = 2
  for (let x = (n / 100) | 0; x > 0; x = (x / 10) | 0) len++
  let q = p + len
  do {
    const next = (n / 10) | 0
    b[--q] = 0x30 + n - next * 10
    n = next
  } while (n > 0)
  return p + len
}

/** An IP address from the packet: IPv4 from its bytes, IPv6 in RFC 5952 text. */
function putAddr (b: Buffer, p: number, view: PacketView, which: 'src' | 'dst'): number {
  if (view.ipVersion !== 4) return putStr(b, p, formatAddr(view, which))
  const a = which === 'src' ? view.srcAddr : view.dstAddr
  const v = view.buf
  p = putUint(b, p, v[a] as number); b[p++] = 0x2e
  p = putUint(b, p, v[a + 1] as number); b[p++] = 0x2e
  p = putUint(b, p, v[a + 2] as number); b[p++] = 0x2e
  return putUint(b, p, v[a + 3] as number)
}

/** Wire bytes as a JSON string: copied when plain printable ASCII, else through json(). */
function putJsonBytes (b: Buffer, p: number, src: Buffer, s: number, e: number): number {
  for (let i = s; i < e; i++) {
    const c = src[i] as number
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return putStr(b, p, json(src.toString('latin1', s, e)))
  }
  b[p++] = 0x22
  p += src.copy(b, p, s, e)
  b[p++] = 0x22
  return p
}

/** ALPN in a line: the first 16 protocols, each cut at 64 bytes (a hostile hello could carry 16 KiB of them). */
const ALPN_MAX = 16
const ALPN_MAX_BYTES = 64
/** Bytes the ALPN list can take at most: each entry escaped (\u00XX) and quoted, commas, brackets. */
const ALPN_ROOM = ALPN_MAX * (ALPN_MAX_BYTES * 6 + 3) + 2

function putAlpn (b: Buffer, p: number, h: TlsHello): number {
  b[p++] = 0x5b
  let n = 0
  for (let i = h.alpnStart; i < h.alpnEnd && n < ALPN_MAX; n++) {
    const len = h.buf[i] as number
    if (n > 0) b[p++] = 0x2c
    p = putJsonBytes(b, p, h.buf, i + 1, i + 1 + Math.min(len, ALPN_MAX_BYTES))
    i += 1 + len
  }
  b[p++] = 0x5d
  return p
}

// The constant pieces of a line, in order (the rest is cached per decision,
// per packet kind and per millisecond, so a line is ~25 copies).
const HEAD = '{"log.level":"info","@timestamp":"'
const STAMP_LEN = 24
const DURATION = ascii(',"duration":')
const CACHE_HIT = ascii(',"cache":"hit"')
const CACHE_MISS = ascii(',"cache":"miss"')
const ECH_TRUE = ascii(',"ech":true,"alpn":')
const ECH_FALSE = ascii(',"ech":false,"alpn":')
const PORT = ascii('","port":')
const MAC = ascii(',"mac":"')
const DESTINATION = ascii('},"destination":{"ip":"')
const DOMAIN = ascii(',"domain":"')
const DNS_NAME = ascii(',"question":{"name":"')
const DNS_TYPE = ascii('","type":"')
const CLOSE_STRING_2 = ascii('"}}')
const CLOSE_STRING_1 = ascii('"}')
const CLOSE_1 = ascii('}')
const RELATED = ascii(',"related":{"hosts":["')
const RELATED_END = ascii('"]}')
const QUOTE = 0x22

type SeenKind = NonNullable<Outcome['seen']>
const SEEN_INDEX: Record<SeenKind, number> = { sni: 0, quic: 1, dns: 2, http: 3, ech: 4 }

/**
 * Where each kind of line puts the name besides destination.domain, opened
 * after network.community_id's value: ECS tls.client.server_name, dns.*,
 * url.domain. Index: SEEN_INDEX.
 */
const PROTOCOL_FIELD = [
  ascii('"},"tls":{"client":{"server_name":"'),
  ascii('"},"tls":{"client":{"server_name":"'),
  ascii('"},"dns":{"type":"query","id":'),
  ascii('"},"url":{"domain":"'),
  ascii('"},"tls":{"client":{"server_name":"'),
]
/** The same for a line without a name: network closed, and only DNS has fields left (type, id). */
const PROTOCOL_NAMELESS = [ascii('"}'), ascii('"}'), ascii('"},"dns":{"type":"query","id":'), ascii('"}'), ascii('"}')]

/** MAC bytes as ECS writes them: two upper-case hex digits each, `-` between. */
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, '0'))

/** The parts of a line that depend only on the decision and the packet kind (cached decisions share them). */
interface DecisionParts {
  /** `,"event":{...,"action":"block","dataset":"aigate.decision"` */
  event: Buffer
  /** `},"aigate":{"seen":"dns","vendor":..,"reason":..,"network":..` */
  aigate: Buffer
  /** `}` + `,"rule":{...}` + `,"source":{"ip":"` */
  rule: Buffer
  /** `,"message":"block ` */
  message: Buffer
  /** ` (vendor)"}`, escaped, or `"}` */
  end: Buffer
  size: number
}

export class DecisionLog {
  readonly out: LineBuffer
  readonly clock: LogClock
  /** Lines written. */
  lines = 0
  /**
   * Where the 6 bytes of the packet's source MAC address are in the next
   * packet's `view.buf`, or -1 (NFQUEUE hands us IP packets only; a capture
   * with an Ethernet link has them). Set per packet by the caller, as clock.ms.
   */
  srcMac = -1
  /** `{"log.level":"info","@timestamp":"<stamp>","ecs.version":..,"observer":{..}`, the stamp rewritten each millisecond. */
  #head: Buffer
  readonly #parts = new WeakMap<Decision, Array<DecisionParts | undefined>>()
  /** `},"network":{...,"community_id":"`, by transport, IP version and packet kind. */
  readonly #network = new Map<number, Buffer>()
  readonly #communityId = new CommunityId()
  #stampMs = Number.NaN
  #queue = -1
  #queueBytes = ascii('')

  constructor (out: LineBuffer, clock: LogClock = new LogClock(), observer: Observer | string = hostname()) {
    this.out = out
    this.clock = clock
    this.#head = this.#makeHead(observer)
  }

  /** Lines from now on come from this observer (the next capture file of a replay). */
  observe (observer: Observer | string): void {
    this.#head = this.#makeHead(observer)
    this.#stampMs = Number.NaN
  }

  #makeHead (observer: Observer | string): Buffer {
    const o = typeof observer === 'string' ? { hostname: observer } : observer
    return ascii(`${HEAD}${'0'.repeat(STAMP_LEN)}","ecs.version":"${ECS_VERSION}","observer":${observerJson(o)}`)
  }

  #headNow (): Buffer {
    const ms = Number.isNaN(this.clock.ms) ? Date.now() : this.clock.ms
    if (ms !== this.#stampMs) {
      this.#stampMs = ms
      this.#head.write(new Date(ms).toISOString().padStart(STAMP_LEN, '+'), HEAD.length, 'latin1')
    }
    return this.#head
  }

  #partsOf (d: Decision, seen: SeenKind): DecisionParts {
    let bySeen = this.#parts.get(d)
    if (bySeen === undefined) {
      bySeen = []
      this.#parts.set(d, bySeen)
    }
    const k = SEEN_INDEX[seen]
    let p = bySeen[k]
    if (p === undefined) {
      const rule = d.rule === null
        ? ''
        : `,"rule":{"name":${json(d.rule)},"ruleset":${json(d.vendor)},"category":${json(d.category)},"reference":${json(d.ruleSource)}}`
      p = {
        event: ascii(`,"event":{"kind":"event","category":["network"],"type":${EVENT_TYPE[d.action] ?? '[]'},"action":"${d.action}","dataset":"${DECISION_DATASET}"`),
        aigate: ascii(`},"aigate":{"seen":"${seen}","vendor":${json(d.vendor)},"reason":${json(d.reason)},${d.detail === undefined ? '' : `"detail":${json(d.detail)},`}"network":${json(d.network)}`),
        rule: ascii(`}${rule},"source":{"ip":"`),
        message: ascii(`,"message":"${d.action} `),
        end: ascii((d.vendor !== null ? json(` (${d.vendor})`).slice(1, -1) : '') + '"}'),
        size: 0,
      }
      p.size = p.event.length + p.aigate.length + p.rule.length + p.message.length + p.end.length
      bySeen[k] = p
    }
    return p
  }

  #networkOf (view: PacketView, seen: SeenKind): Buffer {
    const key = (view.proto << 8) | (view.ipVersion << 4) | SEEN_INDEX[seen]
    let n = this.#network.get(key)
    if (n === undefined) {
      const transport = view.proto === PROTO_TCP ? 'tcp' : view.proto === PROTO_UDP ? 'udp' : String(view.proto)
      const protocol = seen === 'sni' || seen === 'ech' ? (transport === 'udp' ? 'quic' : 'tls') : seen
      n = ascii(`},"network":{"transport":"${transport}","iana_number":"${view.proto}","type":"${view.ipVersion === 4 ? 'ipv4' : 'ipv6'}","protocol":"${protocol}","community_id":"`)
      this.#network.set(key, n)
    }
    return n
  }

  #queueOf (q: number): Buffer {
    if (q !== this.#queue) {
      this.#queue = q
      this.#queueBytes = ascii(`,"queue":${q}`)
    }
    return this.#queueBytes
  }

  /** Write the decision lines of one packet's outcome. */
  write (view: PacketView, out: Outcome, extra?: LogExtra): void {
    const seen = out.seen
    if (seen === null) return
    const lb = this.out
    const head = this.#headNow()
    const network = this.#networkOf(view, seen)
    const k = SEEN_INDEX[seen]
    const sni = seen === 'sni'
    const dns = seen === 'dns'
    const close = seen === 'http' ? CLOSE_STRING_1 : CLOSE_STRING_2
    const queue = extra?.queue !== undefined ? this.#queueOf(extra.queue) : null
    const duration = extra?.durationNs
    const mac = this.srcMac
    // One flow per packet: its ID serves every line of the packet (DNS questions).
    const cid = this.#communityId.of(view)
    // An evasion names every host the flow showed (Outcome.shown), the
    // earlier ones too; destination.domain is the one read last.
    const shown = out.shown === '' ? null : related(out.shown)
    for (let i = 0; i < out.count; i++) {
      const d = out.decisions[i]
      if (d == null) continue
      const read = out.names[i] as string
      const name = read !== '' || shown === null ? read : (shown[shown.length - 1] as string)
      const hosts = shown ?? (name !== '' ? null : EMPTY)
      const parts = this.#partsOf(d, seen)
      const b = lb.room(640 + head.length + 4 * name.length + (hosts !== null ? out.shown.length * 2 : 0) + parts.size + network.length + (sni ? ALPN_ROOM : 0))
      let p = put(b, lb.pos, head)
      p = put(b, p, parts.event)
      if (duration !== undefined) { p = put(b, p, DURATION); p = putUint(b, p, duration) }
      p = put(b, p, parts.aigate)
      p = put(b, p, out.cached[i] === true ? CACHE_HIT : CACHE_MISS)
      if (sni) { p = put(b, p, out.tls.ech ? ECH_TRUE : ECH_FALSE); p = putAlpn(b, p, out.tls) }
      if (queue !== null) p = put(b, p, queue)
      p = put(b, p, parts.rule)
      p = putAddr(b, p, view, 'src')
      p = put(b, p, PORT)
      p = putUint(b, p, view.srcPort)
      if (mac >= 0) p = putMac(b, p, view.buf, mac)
      p = put(b, p, DESTINATION)
      p = putAddr(b, p, view, 'dst')
      p = put(b, p, PORT)
      p = putUint(b, p, view.dstPort)
      if (name !== '') { p = put(b, p, DOMAIN); p = putStr(b, p, name); b[p++] = QUOTE }
      p = put(b, p, network)
      p = putStr(b, p, cid)
      if (read !== '') {
        p = put(b, p, PROTOCOL_FIELD[k] as Buffer)
        if (dns) {
          const qt = out.qtypes[i] as number
          const type = QTYPES[qt]
          p = putUint(b, p, out.dns.id)
          p = put(b, p, DNS_NAME)
          p = putStr(b, p, read)
          p = put(b, p, DNS_TYPE)
          p = type !== undefined ? putStr(b, p, type) : putUint(b, p, qt)
        } else {
          p = putStr(b, p, read)
        }
        p = put(b, p, close)
      } else {
        p = put(b, p, PROTOCOL_NAMELESS[k] as Buffer)
        if (dns) { p = putUint(b, p, out.dns.id); p = put(b, p, CLOSE_1) }
      }
      if (hosts === null) {
        p = put(b, p, RELATED); p = putStr(b, p, name); p = put(b, p, RELATED_END)
      } else if (hosts.length > 0) {
        p = put(b, p, RELATED)
        for (let h = 0; h < hosts.length; h++) {
          if (h > 0) { b[p++] = QUOTE; b[p++] = 0x2c; b[p++] = QUOTE }
          p = putStr(b, p, hosts[h] as string)
        }
        p = put(b, p, RELATED_END)
      }
      p = put(b, p, parts.message)
      p = putStr(b, p, name)
      p = put(b, p, parts.end)
      lb.pos = p
      lb.end()
      this.lines++
    }
  }
}

const EMPTY: readonly string[] = []

/** The distinct names of Outcome.shown (space-separated, in the order seen). Only evasion lines: allocates. */
function related (shown: string): string[] {
  const all: string[] = []
  for (const n of shown.split(' ')) if (n !== '' && !all.includes(n)) all.push(n)
  return all
}

/** A MAC address at buf[at, at + 6) as ECS writes it: `00-00-5E-00-53-23`. */
function putMac (b: Buffer, p: number, buf: Buffer, at: number): number {
  p = put(b, p, MAC)
  for (let i = 0; i < 6; i++) {
    if (i > 0) b[p++] = 0x2d
    const h = HEX2[buf[at + i] as number] as string
    b[p++] = h.charCodeAt(0)
    b[p++] = h.charCodeAt(1)
  }
  b[p++] = QUOTE
  return p
}

/**
 * The daemon's own events (start, reload, stop, counters, log trouble) as
 * pino lines in the decision stream, so the analyst's trail shows when the
 * rules changed. Written through the same FdLines lock as the workers'
 * lines. Fields: event.dataset `aigate.daemon`, event.action, message.
 */
export function daemonLogger (out: LineBuffer, host: string = hostname()): Logger {
  return pino({
    messageKey: 'message',
    // host.hostname: these events happen on this host (ECS host.*); observer
    // as on decision lines, so one filter selects a gateway's whole trail.
    base: { 'ecs.version': ECS_VERSION, observer: JSON.parse(observerJson({ hostname: host })) as unknown, host: { hostname: host } },
    timestamp: () => `,"@timestamp":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ 'log.level': label }) },
  }, {
    // pino ends each line with a newline; FdLines adds its own. JSON.stringify
    // (pino's) leaves non-ASCII as is, so escape it to keep lines ASCII.
    write (s: string): void {
      const line = s.endsWith('\n') ? s.slice(0, -1) : s
      out.line(HAS_NON_ASCII.test(line) ? line.replace(NON_ASCII, uEscape) : line)
      out.flush()
    },
  })
}
