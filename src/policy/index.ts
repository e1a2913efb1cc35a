import type { Rule } from '../match/trie.js'
import type { Pattern } from '../match/pattern.js'

/**
 * Policy: map (the rule a name matched, the client's network) to a Decision.
 * Compiled once from config/policy.ts input; `decide` allocates nothing after
 * the first time a (rule, network) pair is seen.
 */

export const ACTIONS = ['allow', 'monitor', 'block', 'reject'] as const
export type Action = (typeof ACTIONS)[number]

/** Why the action was chosen, for the log line. */
export type Reason = 'exception' | 'vendor' | 'category' | 'default' | 'unknown' | 'evasion' | 'midstream' | 'quic-version'

/**
 * Reasons decided by the policy's `unknown` action: no name to read. `midstream`:
 * payload of a flow whose opening the daemon never saw (it restarted, or the
 * opening slipped past); `quic-version`: a QUIC version aigate cannot decrypt.
 */
export type UnknownReason = 'unknown' | 'midstream' | 'quic-version'

/**
 * What made a flow `evasion` (the log's `aigate.detail`): `disagree` (copies of
 * the same bytes differ), `second-hello` (another name behind the first),
 * `segments` (an opening still incomplete after the segments we read), `urgent`
 * (URG data inside an opening: the server's kernel removes it, we would not),
 * `truncated` (a merged or oversized packet cut short before its name),
 * `implausible` (packets that cannot reach the server, again and again),
 * `short-dcid` (a QUIC first Initial with a DCID under 8 bytes), `expired`
 * (the rest of an opening whose first part was held until the flow was
 * forgotten: a pause past the idle time, or pushed out by a flood),
 * `ambiguous` (a QUIC packet crafted to open under two connections' keys).
 */
export type EvasionDetail = 'disagree' | 'second-hello' | 'segments' | 'urgent' | 'truncated' | 'implausible' | 'short-dcid' | 'expired' | 'ambiguous'

export interface Decision {
  readonly action: Action
  /** Vendor list that matched, or null. */
  readonly vendor: string | null
  readonly category: string | null
  /** The matching entry as written (`anthropic.com`, `=api.x.ai`), or null. */
  readonly rule: string | null
  /** `rules/vendors/anthropic.txt:7`, or `policy.yaml` for exceptions, or null. */
  readonly ruleSource: string | null
  readonly reason: Reason
  /** Name of the network exception that applied, or null for the global policy. */
  readonly network: string | null
  /** For `evasion`: what the flow did (see EvasionDetail); absent otherwise. */
  readonly detail?: EvasionDetail
}

export interface NetworkPolicy {
  readonly name: string
  /** CIDRs as text, already validated. */
  readonly cidrs: readonly string[]
  readonly vendors: ReadonlyMap<string, Action>
  readonly categories: ReadonlyMap<string, Action>
  readonly default: Action | null
}

export interface PolicyInput {
  readonly default: Action
  readonly vendors: ReadonlyMap<string, Action>
  readonly categories: ReadonlyMap<string, Action>
  /** Allow-exception patterns, parsed (and checked, at file:line) by config/policy.ts. */
  readonly allow: readonly Pattern[]
  readonly networks: readonly NetworkPolicy[]
  /** A flow whose opening message names nothing readable: no SNI, an IP literal, not a host name, malformed, or past the limits (default allow: accept and log). */
  readonly unknown?: Action
  /** A flow whose overlapping bytes or repeated hellos disagree (default block). */
  readonly evasion?: Action
  readonly file: string
}

interface V4Range { base: number, mask: number }
interface V6Range { bytes: Uint8Array, bits: number }
interface CompiledNet { readonly net: NetworkPolicy, readonly v4: V4Range[], readonly v6: V6Range[] }

/** Parse `a.b.c.d/n` or `x:y::/n` (validated). Returns null when invalid. */
export function parseCidr (text: string): { v: 4, range: V4Range } | { v: 6, range: V6Range } | null {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const bitsText = slash < 0 ? null : text.slice(slash + 1)
  if (bitsText !== null && !/^\d{1,3}$/.test(bitsText)) return null
  if (addr.includes(':')) {
    const bytes = parseV6(addr)
    const bits = bitsText === null ? 128 : Number(bitsText)
    if (bytes === null || bits > 128) return null
    return { v: 6, range: { bytes, bits } }
  }
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr)
  if (m === null) return null
  const o = m.slice(1).map(Number)
  if (o.some((x) => x > 255)) return null
  const bits = bitsText === null ? 32 : Number(bitsText)
  if (bits > 32) return null
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0
  const base = ((((o[0] as number) << 24) | ((o[1] as number) << 16) | ((o[2] as number) << 8) | (o[3] as number)) >>> 0) & mask
  return { v: 4, range: { base: base >>> 0, mask } }
}

function parseV6 (addr: string): Uint8Array | null {
  if (!/^[0-9a-fA-F:.]+$/.test(addr)) return null
  const halves = addr.split('::')
  if (halves.length > 2) return null
  const part = (s: string): number[] | null => {
    if (s === '') return []
    const out: number[] = []
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null
      out.push(parseInt(g, 16))
    }
    return out
  }
  const left = part(halves[0] as string)
  const right = halves.length === 2 ? part(halves[1] as string) : []
  if (left === null || right === null) return null
  const fill = 8 - left.length - right.length
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null
  const groups = [...left, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...right]
  const bytes = new Uint8Array(16)
  groups.forEach((g, i) => { bytes[i * 2] = g >> 8; bytes[i * 2 + 1] = g & 0xff })
  return bytes
}

export class Policy {
  readonly input: PolicyInput
  readonly #nets: CompiledNet[]
  readonly #hasV4: boolean
  readonly #hasV6: boolean
  /** decisions[classIndex]: Map rule -> Decision; index 0 = no network exception. */
  readonly #decisions: Array<Map<Rule, Decision>>
  readonly #unmatched: Decision[]

  constructor (input: PolicyInput) {
    this.input = input
    this.#nets = input.networks.map((net) => {
      const v4: V4Range[] = []
      const v6: V6Range[] = []
      for (const c of net.cidrs) {
        const r = parseCidr(c)
        if (r === null) throw new Error(`invalid CIDR "${c}"`)
        if (r.v === 4) v4.push(r.range); else v6.push(r.range)
      }
      return { net, v4, v6 }
    })
    this.#hasV4 = this.#nets.some((n) => n.v4.length > 0)
    this.#hasV6 = this.#nets.some((n) => n.v6.length > 0)
    this.#decisions = [null, ...this.#nets].map(() => new Map<Rule, Decision>())
    this.#unmatched = [null, ...this.#nets].map((n) => Object.freeze({
      action: n?.net.default ?? input.default,
      vendor: null,
      category: null,
      rule: null,
      ruleSource: null,
      reason: 'default' as const,
      network: n?.net.default != null ? n.net.name : null,
    }))
  }

  /** For flows whose opening message names nothing readable (see PolicyInput.unknown). */
  get unknown (): Decision { return this.nameless('unknown') }
  /** For flows that showed two different names (overlap or decoy tricks); `rule` names the first one. */
  get evasion (): Decision { return this.evaded(null) }

  readonly #specials = new Map<string, Decision>()

  /** The policy's `unknown` action, for one of the reasons a flow shows no name (one frozen Decision per reason). */
  nameless (reason: UnknownReason): Decision {
    return this.#special(reason, this.input.unknown ?? 'allow', null)
  }

  /** The policy's `evasion` action, with what the flow did (null: two stories, the general case). */
  evaded (detail: EvasionDetail | null): Decision {
    return this.#special('evasion', this.input.evasion ?? 'block', detail)
  }

  #special (reason: UnknownReason | 'evasion', action: Action, detail: EvasionDetail | null): Decision {
    const key = detail === null ? reason : reason + ':' + detail
    let d = this.#specials.get(key)
    if (d === undefined) {
      d = Object.freeze({
        action, vendor: null, category: null, rule: null, ruleSource: null, reason, network: null, ...(detail === null ? {} : { detail }),
      })
      this.#specials.set(key, d)
    }
    return d
  }

  /** Number of source classes (network exceptions + the global one). */
  get classes (): number { return this.#nets.length + 1 }

  /**
   * Which network exception a source address falls in: 0 for none, i+1 for
   * the i-th network of the policy (first match wins). Reads the address in
   * place; allocates nothing.
   */
  sourceClass (buf: Uint8Array, off: number, ipVersion: number): number {
    if (ipVersion === 4) {
      if (!this.#hasV4) return 0
      const a = (((buf[off] as number) << 24) | ((buf[off + 1] as number) << 16) |
        ((buf[off + 2] as number) << 8) | (buf[off + 3] as number)) >>> 0
      for (let i = 0; i < this.#nets.length; i++) {
        for (const r of (this.#nets[i] as CompiledNet).v4) if (((a & r.mask) >>> 0) === r.base) return i + 1
      }
      return 0
    }
    if (!this.#hasV6) return 0
    for (let i = 0; i < this.#nets.length; i++) {
      for (const r of (this.#nets[i] as CompiledNet).v6) if (v6In(buf, off, r)) return i + 1
    }
    return 0
  }

  /** The decision for a name that matched `rule` (or nothing), seen from source class `cls`. */
  decide (rule: Rule | null, cls: number): Decision {
    if (rule === null) return this.#unmatched[cls] as Decision
    const table = this.#decisions[cls] as Map<Rule, Decision>
    let d = table.get(rule)
    if (d === undefined) {
      d = this.#compute(rule, cls)
      table.set(rule, d)
    }
    return d
  }

  #compute (rule: Rule, cls: number): Decision {
    const base = {
      vendor: rule.vendor,
      category: rule.category,
      rule: rule.pattern.text,
      ruleSource: rule.source,
    }
    if (rule.exception) return Object.freeze({ ...base, action: 'allow', reason: 'exception', network: null })
    const net = cls > 0 ? (this.#nets[cls - 1] as CompiledNet).net : null
    const v = rule.vendor ?? ''
    const c = rule.category ?? ''
    const pick = (action: Action | undefined, reason: Reason, network: string | null): Decision | null =>
      action === undefined ? null : Object.freeze({ ...base, action, reason, network })
    return (net !== null ? pick(net.vendors.get(v), 'vendor', net.name) ?? pick(net.categories.get(c), 'category', net.name) : null) ??
      pick(this.input.vendors.get(v), 'vendor', null) ??
      pick(this.input.categories.get(c), 'category', null) ??
      Object.freeze({ ...base, action: net?.default ?? this.input.default, reason: 'default', network: net?.default != null ? net.name : null })
  }
}

function v6In (buf: Uint8Array, off: number, r: V6Range): boolean {
  let bits = r.bits
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((((buf[off + i] as number) ^ (r.bytes[i] as number)) & m) !== 0) return false
  }
  return true
}
