import pino, { type Logger, type DestinationStream } from 'pino'
import { hostname } from 'node:os'
import { formatAddr, PROTO_TCP, PROTO_UDP, type PacketView } from '../decode/packet.js'
import { alpnList } from '../extract/tls.js'
import type { Outcome } from '../classify/index.js'

/**
 * One JSON line per decision, written by pino, with Elastic Common Schema
 * field names (ECS 8.x: https://www.elastic.co/guide/en/ecs/current/) so a
 * SIEM takes them as they are, plus a flat `name` that is always present.
 *
 * Names reach the log only after normalisation (letters, digits, `-`, `_`,
 * `.`), and pino JSON-escapes every string, so wire bytes cannot forge a
 * field or a line.
 */

export const ECS_VERSION = '8.11.0'

/** Clock for the `@timestamp` of the next line: packet time when replaying a capture. */
export class LogClock {
  /** Milliseconds since the epoch; NaN means "now". */
  ms = Number.NaN
}

export function createLogger (dest: DestinationStream, clock: LogClock = new LogClock(), level = 'info'): Logger {
  return pino({
    level,
    messageKey: 'message',
    base: { 'ecs.version': ECS_VERSION, host: { hostname: hostname() } },
    timestamp: () => `,"@timestamp":"${new Date(Number.isNaN(clock.ms) ? Date.now() : clock.ms).toISOString()}"`,
    formatters: { level: (label) => ({ 'log.level': label }) },
  }, dest)
}

/** DNS type codes worth a name in logs (RFC 1035, RFC 3596, RFC 9460). */
const QTYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY',
}

const EVENT_TYPE: Record<string, string[]> = {
  allow: ['connection', 'allowed'],
  monitor: ['connection', 'allowed'],
  block: ['connection', 'denied'],
  reject: ['connection', 'denied'],
}

export interface LogExtra {
  /** NFQUEUE number, when inline. */
  queue?: number
  /** Decision latency in nanoseconds (ECS event.duration). */
  durationNs?: number
}

/** Write the decision lines of one packet's outcome. */
export function logOutcome (log: Logger, view: PacketView, out: Outcome, extra?: LogExtra): void {
  const transport = view.proto === PROTO_TCP ? 'tcp' : view.proto === PROTO_UDP ? 'udp' : String(view.proto)
  const source = { ip: formatAddr(view, 'src'), port: view.srcPort }
  const destination = { ip: formatAddr(view, 'dst'), port: view.dstPort }
  for (let i = 0; i < out.count; i++) {
    const d = out.decisions[i]
    if (d == null) continue
    const name = out.names[i] as string
    const line: Record<string, unknown> = {
      name,
      event: {
        kind: 'event',
        category: ['network'],
        type: EVENT_TYPE[d.action],
        action: d.action,
        dataset: 'aigate.decision',
        ...(extra?.durationNs !== undefined ? { duration: extra.durationNs } : {}),
      },
      aigate: {
        seen: out.seen,
        vendor: d.vendor,
        reason: d.reason,
        network: d.network,
        cache: out.cached[i] === true ? 'hit' : 'miss',
        ...(out.seen === 'sni' ? { ech: out.tls.ech, alpn: alpnList(out.tls) } : {}),
        ...(extra?.queue !== undefined ? { queue: extra.queue } : {}),
      },
      rule: d.rule === null ? undefined : { name: d.rule, ruleset: d.vendor, category: d.category, reference: d.ruleSource },
      source,
      destination,
      network: {
        transport,
        iana_number: String(view.proto),
        type: view.ipVersion === 4 ? 'ipv4' : 'ipv6',
        protocol: out.seen === 'sni' || out.seen === 'ech' ? (transport === 'udp' ? 'quic' : 'tls') : out.seen,
      },
    }
    if (out.seen === 'sni' || out.seen === 'quic' || out.seen === 'ech') line.tls = { client: { server_name: name } }
    else if (out.seen === 'dns') line.dns = { type: 'query', id: out.dns.id, question: { name, type: QTYPES[out.qtypes[i] as number] ?? String(out.qtypes[i]) } }
    else if (out.seen === 'http') line.url = { domain: name }
    log.info(line, `${d.action} ${name}${d.vendor !== null ? ` (${d.vendor})` : ''}`)
  }
}
