import { parseCidr } from '../policy/index.js'
import { cidrError } from '../config/policy.js'
import { ACTIONS, type LineKind, type LogLine } from '../log/read.js'

/**
 * Which lines `aigate logs` shows. Built once from the command line (every
 * check of the options' text is here, with the message the user sees), then
 * asked once per line. Within one option the values are alternatives (a
 * comma list); the options together must all hold.
 *
 * The daemon's own lines carry no action, vendor or source: they are shown
 * only when none of those filters is given (and not with --no-daemon);
 * --since applies to them as to decisions.
 */

export interface FilterOptions {
  /** Comma lists, as typed (each option may be given more than once). */
  actions?: readonly string[]
  vendors?: readonly string[]
  sources?: readonly string[]
  /** Milliseconds since the epoch; lines stamped earlier are not shown. */
  since?: number
  /** Show the daemon's own lines (default true). */
  daemon?: boolean
}

interface V4 { v: 4, base: number, mask: number }
interface V6 { v: 6, bytes: Uint8Array, bits: number }
type Net = V4 | V6

/** Thrown for a value the user typed; the CLI turns it into a usage error. */
export class FilterError extends Error {}

const split = (list: readonly string[]): string[] =>
  list.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '')

function parseNet (text: string): Net {
  // As strict as the policy's own networks (config/policy.ts): 10.020.0.0/16 and host bits under the prefix are refused, not guessed.
  const bad = cidrError(text)
  const c = parseCidr(text)
  if (bad !== null || c === null) throw new FilterError(`--source: ${bad ?? `"${text}" is not a CIDR (10.0.0.0/8, fd00::/8)`}`)
  return c.v === 4 ? { v: 4, base: c.range.base, mask: c.range.mask } : { v: 6, bytes: c.range.bytes, bits: c.range.bits }
}

function inV6 (ip: Uint8Array, n: V6): boolean {
  const whole = n.bits >> 3
  for (let i = 0; i < whole; i++) if (ip[i] !== n.bytes[i]) return false
  const rest = n.bits & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return (((ip[whole] as number) ^ (n.bytes[whole] as number)) & mask) === 0
}

export class Filter {
  readonly #actions: ReadonlySet<string> | null
  readonly #vendors: ReadonlySet<string> | null
  readonly #nets: readonly Net[] | null
  readonly #since: number
  readonly #daemon: boolean
  /** One source address parsed per distinct text: a busy client repeats its address on line after line. */
  #lastIp: string | null = null
  #lastAddr: ReturnType<typeof parseCidr> = null

  constructor (o: FilterOptions = {}) {
    const actions = o.actions === undefined ? [] : split(o.actions)
    for (const a of actions) {
      if (!(ACTIONS as readonly string[]).includes(a)) throw new FilterError(`--action: "${a}" is not an action (${ACTIONS.join(', ')})`)
    }
    if (o.actions !== undefined && actions.length === 0) throw new FilterError(`--action: give one or more of ${ACTIONS.join(', ')}`)
    const vendors = o.vendors === undefined ? [] : split(o.vendors).map((v) => v.toLowerCase())
    if (o.vendors !== undefined && vendors.length === 0) throw new FilterError('--vendor: give one or more vendor names (openai,anthropic)')
    const sources = o.sources === undefined ? [] : split(o.sources)
    if (o.sources !== undefined && sources.length === 0) throw new FilterError('--source: give one or more CIDRs (10.0.0.0/8, fd00::/8)')
    this.#actions = actions.length > 0 ? new Set(actions) : null
    this.#vendors = vendors.length > 0 ? new Set(vendors) : null
    this.#nets = sources.length > 0 ? sources.map(parseNet) : null
    this.#since = o.since ?? Number.NEGATIVE_INFINITY
    this.#daemon = (o.daemon ?? true) && this.#actions === null && this.#vendors === null && this.#nets === null
  }

  /** Whether a line read as `kind` into `e` is shown. */
  selects (kind: LineKind, e: LogLine): boolean {
    if (kind === 'daemon') return this.#daemon && e.ms >= this.#since
    if (kind !== 'decision') return false
    if (e.ms < this.#since) return false
    if (this.#actions !== null && !this.#actions.has(e.action)) return false
    if (this.#vendors !== null && (e.vendor === null || !this.#vendors.has(e.vendor.toLowerCase()))) return false
    if (this.#nets !== null && !this.#sourceIn(e.sourceIp)) return false
    return true
  }

  #sourceIn (ip: string | null): boolean {
    if (ip === null) return false
    if (ip !== this.#lastIp) {
      this.#lastIp = ip
      // A bare address parses as /32 or /128; a text with a slash is not an address.
      this.#lastAddr = ip.includes('/') ? null : parseCidr(ip)
    }
    const a = this.#lastAddr
    if (a === null) return false
    for (const n of this.#nets ?? []) {
      if (a.v === 4 && n.v === 4 && ((a.range.base & n.mask) >>> 0) === n.base) return true
      if (a.v === 6 && n.v === 6 && inV6(a.range.bytes, n)) return true
    }
    return false
  }
}
