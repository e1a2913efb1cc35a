/**
 * Options of `aigate firewall up|down|status`, checked once here (exact
 * messages, RangeError/TypeError) so the backends trust what they get.
 */

/** Where the kernel hands packets to aigate: forwarded traffic (a gateway) and/or the host's own. */
export type Hook = 'forward' | 'output'
export type BackendName = 'iptables' | 'nft'
/**
 * Which iptables binaries the iptables backend drives: `default` is whatever
 * `iptables` is on this host (Debian: the alternatives system picks
 * iptables-nft or iptables-legacy); `nft`/`legacy` force `iptables-nft`/`iptables-legacy`.
 */
export type IptablesVariant = 'default' | 'nft' | 'legacy'

export interface FirewallOptions {
  /**
   * NFQUEUE numbers the daemon reads (one worker per queue). Default `[0]`.
   * More than one must be consecutive (`[0, 1, 2, 3]`): flows are spread with
   * `--queue-balance 0:3`, which keeps every packet of a connection on one queue.
   */
  queues?: readonly number[]
  /**
   * `forward` (traffic routed through the gateway) and/or `output` (the
   * host's own connections). Default `['forward']`.
   */
  hooks?: readonly Hook[]
  /**
   * Default `false`: `--queue-bypass`, packets pass when no daemon is bound to
   * the queue (stopped, restarting). `true`: they are dropped instead.
   * (A bound daemon whose queue is full is a separate, daemon-side setting.)
   */
  failClosed?: boolean
  /**
   * Packets per second one source address may send to the queue (its burst
   * is twice that); packets over it are dropped before the queue, so one
   * client flooding new flows cannot fill the queue for every other client.
   * IPv6 sources are counted per /64. Default 2000; 0 turns the budget off.
   */
  sourceBudget?: number
  /** Also install the ip6tables rules (or IPv6 in the nft table). Default `true`. */
  ipv6?: boolean
  /** Run every command in this network namespace (`ip netns exec NS ...`). Default: the host. */
  netns?: string
  /** Default `'auto'`: nft when the kernel has the nft `queue` expression, else iptables. */
  backend?: BackendName | 'auto'
  /** iptables backend only; default `'default'`. */
  iptables?: IptablesVariant
}

export interface Resolved {
  readonly queues: readonly number[]
  readonly hooks: readonly Hook[]
  readonly failClosed: boolean
  readonly sourceBudget: number
  readonly ipv6: boolean
  readonly netns: string | null
  readonly backend: BackendName | 'auto'
  readonly iptables: IptablesVariant
}

export const DEFAULT_SOURCE_BUDGET = 2000
/** xt_hashlimit takes rates up to 10^6/s (XT_HASHLIMIT_SCALE_v2); more would be no budget at all. */
export const MAX_SOURCE_BUDGET = 1000000
/** NFQUEUE numbers are 16 bits (linux/netfilter/xt_NFQUEUE.h). */
export const MAX_QUEUE = 65535
const HOOKS: readonly Hook[] = ['forward', 'output']
const VARIANTS: readonly IptablesVariant[] = ['default', 'nft', 'legacy']
const KNOWN = new Set(['queues', 'hooks', 'failClosed', 'sourceBudget', 'ipv6', 'netns', 'backend', 'iptables'])

export function resolveOptions (opts: FirewallOptions = {}): Resolved {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('firewall options must be an object')
  for (const k of Object.keys(opts)) {
    if (!KNOWN.has(k)) throw new TypeError(`unknown firewall option "${k}"`)
  }
  const queues = opts.queues === undefined ? [0] : [...opts.queues]
  if (queues.length === 0) throw new RangeError('queues must name at least one queue')
  for (const q of queues) {
    if (!Number.isInteger(q) || q < 0 || q > MAX_QUEUE) throw new RangeError(`queue numbers must be integers from 0 to ${MAX_QUEUE} (got ${String(q)})`)
  }
  for (let i = 1; i < queues.length; i++) {
    if (queues[i] !== (queues[i - 1] as number) + 1) {
      throw new RangeError(`queues must be consecutive and ascending, as --queue-balance takes a range (got ${queues.join(',')})`)
    }
  }
  const hooks = opts.hooks === undefined ? ['forward' as const] : [...new Set(opts.hooks)]
  if (hooks.length === 0) throw new RangeError('hooks must name at least one of forward, output')
  for (const h of hooks) {
    if (!HOOKS.includes(h)) throw new RangeError(`unknown hook "${String(h)}" (forward or output)`)
  }
  const sourceBudget = opts.sourceBudget ?? DEFAULT_SOURCE_BUDGET
  if (!Number.isInteger(sourceBudget) || sourceBudget < 0 || sourceBudget > MAX_SOURCE_BUDGET) {
    throw new RangeError(`sourceBudget must be an integer from 0 (off) to ${MAX_SOURCE_BUDGET} (got ${String(sourceBudget)})`)
  }
  const netns = opts.netns ?? null
  if (netns !== null && (typeof netns !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(netns) || netns === '.' || netns === '..')) {
    throw new RangeError(`netns must be a namespace name of letters, digits, "_", "." and "-" (got ${JSON.stringify(netns)})`)
  }
  const backend = opts.backend ?? 'auto'
  if (backend !== 'auto' && backend !== 'iptables' && backend !== 'nft') throw new RangeError(`unknown backend "${String(backend)}" (auto, iptables or nft)`)
  const iptables = opts.iptables ?? 'default'
  if (!VARIANTS.includes(iptables)) throw new RangeError(`unknown iptables variant "${String(iptables)}" (default, nft or legacy)`)
  for (const k of ['failClosed', 'ipv6'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') throw new TypeError(`${k} must be a boolean`)
  }
  // Always in the HOOKS order, so the same options give the same rules.
  const ordered = HOOKS.filter((h) => hooks.includes(h))
  return Object.freeze({
    queues: Object.freeze(queues),
    hooks: Object.freeze(ordered),
    failClosed: opts.failClosed ?? false,
    sourceBudget,
    ipv6: opts.ipv6 ?? true,
    netns,
    backend,
    iptables,
  })
}

/** Rule counters and state reported by `status`. */
export interface RuleCounter {
  /** `ipv4`, `ipv6` (iptables) or `inet` (nft). */
  readonly family: 'ipv4' | 'ipv6' | 'inet'
  /** iptables table (`mangle`, `filter`) or the nft table (`aigate`). */
  readonly table: string
  readonly chain: string
  /** Stable rule name (see RULE_NAMES in the backends), e.g. `queue-tls-http`, `decided-drop`. */
  readonly name: string
  /** The rule as the tool prints it. */
  readonly rule: string
  readonly packets: number
  readonly bytes: number
}

export interface FirewallStatus {
  /** Every chain and at least one hook jump are in place (for each family the backend manages). */
  readonly installed: boolean
  readonly backend: BackendName
  /** Hooks that currently send traffic to aigate's rules. */
  readonly hooks: readonly Hook[]
  readonly rules: readonly RuleCounter[]
  /** Sum of the packet counters of the NFQUEUE rules: packets that went to userspace. */
  readonly queuedPackets: number
  /** Packets dropped before the queue because their source was over its budget (the *-over-budget rules). */
  readonly overBudgetPackets: number
}

/** The queue and over-budget totals of a backend's rule counters. */
export function queueTotals (rules: readonly RuleCounter[]): { queuedPackets: number, overBudgetPackets: number } {
  let queuedPackets = 0
  let overBudgetPackets = 0
  for (const r of rules) {
    if (r.name.includes('over-budget')) overBudgetPackets += r.packets
    else if (r.name.startsWith('queue-')) queuedPackets += r.packets
  }
  return { queuedPackets, overBudgetPackets }
}

/** The common surface of both backends. */
export interface Firewall {
  readonly name: BackendName
  /** Install (or bring back to exactly the requested state): idempotent. */
  up (opts?: FirewallOptions): void
  /** Remove exactly what `up` added; fine on a clean host. */
  down (opts?: FirewallOptions): void
  status (opts?: FirewallOptions): FirewallStatus
}

/** `0x0f000000` the way iptables and nft accept it. */
export function hex (n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`
}
