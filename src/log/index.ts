import { hostname } from 'node:os'
import pino, { type Logger } from 'pino'
import { formatAddr, PROTO_TCP, PROTO_UDP, type PacketView } from '../decode/packet.js'
import type { TlsHello } from '../extract/tls.js'
import type { Outcome } from '../classify/index.js'
import type { Decision } from '../policy/index.js'
import type { LineOut } from './sink.js'

export { FdLines, MemoryLines, newWriteLock, type LineOut, type WriteError } from './sink.js'

/**
 * One JSON line per decision, with Elastic Common Schema field names (ECS
 * 8.x: https://www.elastic.co/guide/en/ecs/current/) so a SIEM takes them as
 * they are, plus a flat `name` that is always present. The line has pino's
 * shape (`log.level`, `@timestamp`, bindings, `message` last); the daemon's
 * own events are written by pino into the same stream (daemonLogger).
 *
 * Why not pino for these lines: a decision line through pino cost ~12 us
 * (it serialises the nested object key by key); the inline daemon writes one
 * per DNS query, so that was 40x the cost of deciding. Here the constant
 * parts are built once (per process, per action, per cached decision) and a
 * line is a handful of string joins, ~1 us.
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
const uEscape = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')

/** A JSON string literal in printable ASCII. */
export function json (s: string | null): string {
  if (s === null) return 'null'
  const j = JSON.stringify(s)
  return NON_ASCII.test(j) ? j.replace(NON_ASCII, uEscape) : j
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

export interface LogExtra {
  /** NFQUEUE number, when inline. */
  queue?: number
  /** Decision latency in nanoseconds (ECS event.duration). */
  durationNs?: number
}

/** The parts of a line that depend only on the decision (cached decisions share them). */
interface DecisionParts {
  /** `"type":[...],"action":"block","dataset":"aigate.decision"` */
  event: string
  /** `"vendor":..,"reason":..,"network":..` */
  aigate: string
  /** `,"rule":{...}` or '' */
  rule: string
  /** ` (vendor)`, escaped, or '' */
  msgVendor: string
}

/** ALPN in a line: the first 16 protocols, each cut at 64 bytes (a hostile hello could carry 16 KiB of them). */
const ALPN_MAX = 16
const ALPN_MAX_BYTES = 64

function alpnJson (h: TlsHello): string {
  let s = '['
  let n = 0
  for (let i = h.alpnStart; i < h.alpnEnd && n < ALPN_MAX; n++) {
    const len = h.buf[i] as number
    s += (n === 0 ? '' : ',') + json(h.buf.toString('latin1', i + 1, i + 1 + Math.min(len, ALPN_MAX_BYTES)))
    i += 1 + len
  }
  return s + ']'
}

export class DecisionLog {
  readonly out: LineOut
  readonly clock: LogClock
  /** Lines written. */
  lines = 0
  readonly #head: string
  readonly #parts = new WeakMap<Decision, DecisionParts>()
  #stampMs = Number.NaN
  #stamp = ''

  constructor (out: LineOut, clock: LogClock = new LogClock(), host: string = hostname()) {
    this.out = out
    this.clock = clock
    this.#head = `","ecs.version":"${ECS_VERSION}","host":{"hostname":${json(host)}},"name":"`
  }

  #timestamp (): string {
    const ms = Number.isNaN(this.clock.ms) ? Date.now() : this.clock.ms
    if (ms !== this.#stampMs) {
      this.#stampMs = ms
      this.#stamp = new Date(ms).toISOString()
    }
    return this.#stamp
  }

  #partsOf (d: Decision): DecisionParts {
    let p = this.#parts.get(d)
    if (p === undefined) {
      p = {
        event: `"type":${EVENT_TYPE[d.action] ?? '[]'},"action":"${d.action}","dataset":"aigate.decision"`,
        aigate: `"vendor":${json(d.vendor)},"reason":${json(d.reason)},"network":${json(d.network)}`,
        rule: d.rule === null
          ? ''
          : `,"rule":{"name":${json(d.rule)},"ruleset":${json(d.vendor)},"category":${json(d.category)},"reference":${json(d.ruleSource)}}`,
        msgVendor: d.vendor !== null ? json(` (${d.vendor})`).slice(1, -1) : '',
      }
      this.#parts.set(d, p)
    }
    return p
  }

  /** Write the decision lines of one packet's outcome. */
  write (view: PacketView, out: Outcome, extra?: LogExtra): void {
    const transport = view.proto === PROTO_TCP ? 'tcp' : view.proto === PROTO_UDP ? 'udp' : String(view.proto)
    const seen = out.seen
    const protocol = seen === 'sni' || seen === 'ech' ? (transport === 'udp' ? 'quic' : 'tls') : seen
    const tail = `,"source":{"ip":"${formatAddr(view, 'src')}","port":${view.srcPort}},` +
      `"destination":{"ip":"${formatAddr(view, 'dst')}","port":${view.dstPort}},` +
      `"network":{"transport":"${transport}","iana_number":"${view.proto}","type":"${view.ipVersion === 4 ? 'ipv4' : 'ipv6'}","protocol":"${protocol}"}`
    const tlsExtra = seen === 'sni' ? `,"ech":${out.tls.ech},"alpn":${alpnJson(out.tls)}` : ''
    const duration = extra?.durationNs !== undefined ? `,"duration":${extra.durationNs}` : ''
    const queue = extra?.queue !== undefined ? `,"queue":${extra.queue}` : ''
    const stamp = this.#timestamp()
    for (let i = 0; i < out.count; i++) {
      const d = out.decisions[i]
      if (d == null) continue
      const name = out.names[i] as string
      const p = this.#partsOf(d)
      let proto: string
      if (seen === 'sni' || seen === 'quic' || seen === 'ech') proto = `,"tls":{"client":{"server_name":"${name}"}}`
      else if (seen === 'dns') {
        const qt = out.qtypes[i] as number
        proto = `,"dns":{"type":"query","id":${out.dns.id},"question":{"name":"${name}","type":"${QTYPES[qt] ?? qt}"}}`
      } else if (seen === 'http') proto = `,"url":{"domain":"${name}"}`
      else proto = ''
      this.out.line(`{"log.level":"info","@timestamp":"${stamp}${this.#head}${name}",` +
        `"event":{"kind":"event","category":["network"],${p.event}${duration}},` +
        `"aigate":{"seen":"${seen}",${p.aigate},"cache":"${out.cached[i] === true ? 'hit' : 'miss'}"${tlsExtra}${queue}}` +
        `${p.rule}${tail}${proto},"message":"${d.action} ${name}${p.msgVendor}"}`)
      this.lines++
    }
  }
}

/**
 * The daemon's own events (start, reload, stop, counters, log trouble) as
 * pino lines in the decision stream, so the analyst's trail shows when the
 * rules changed. Written through the same FdLines lock as the workers'
 * lines. Fields: event.dataset `aigate.daemon`, event.action, message.
 */
export function daemonLogger (out: LineOut, host: string = hostname()): Logger {
  return pino({
    messageKey: 'message',
    base: { 'ecs.version': ECS_VERSION, host: { hostname: host } },
    timestamp: () => `,"@timestamp":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ 'log.level': label }) },
  }, {
    // pino ends each line with a newline; FdLines adds its own. JSON.stringify
    // (pino's) leaves non-ASCII as is, so escape it to keep lines ASCII.
    write (s: string): void {
      const line = s.endsWith('\n') ? s.slice(0, -1) : s
      out.line(NON_ASCII.test(line) ? line.replace(NON_ASCII, uEscape) : line)
      out.flush()
    },
  })
}
