import type { Pattern } from '../match/pattern.js'
import type { Rule } from '../match/trie.js'
import { parseCidr, type Action, type Decision } from '../policy/index.js'
import type { Ruleset } from './index.js'

/**
 * `aigate check --explain`: why a name got its decision. The decision itself
 * comes from the ruleset as the daemon computes it (matcher, then policy);
 * this only lays out what led there, off the hot path:
 *
 * 1. every entry that matches the name (vendor lists and allow-exceptions),
 *    the one the matcher picked, and why it beat the others: an
 *    allow-exception beats every list entry; then more labels; then `=exact`
 *    over a subtree entry; then a literal label over a glob over a `*`;
 * 2. the network the client address falls in (the first network of the
 *    policy with a CIDR that holds it), if any;
 * 3. the policy's steps in the order they are tried, the first that is set
 *    giving the action: the network's vendors, the network's categories, the
 *    global vendors, the global categories, the network's default, the global
 *    default. An allow-exception is decided before any of them.
 */

export interface Candidate {
  /** The entry as written: `openai.com`, `=api.openai.com`. */
  readonly rule: string
  /** `rules/vendors/openai.txt:12`, or the policy file for an allow-exception. */
  readonly source: string
  readonly vendor: string | null
  readonly category: string | null
  readonly exception: boolean
  readonly won: boolean
  /** Why this entry won, or why it lost to the one that did. */
  readonly why: string
}

export interface Step {
  /** `networks[research].vendors.openai`, `categories.ai`, `default`. */
  readonly step: string
  /** The action set there, or null when the policy sets none. */
  readonly action: Action | null
  readonly used: boolean
}

export interface Explanation {
  readonly name: string
  readonly from: string | null
  /** The network the address falls in and the CIDR that holds it, or null for the global policy. */
  readonly network: { readonly name: string, readonly index: number, readonly cidr: string } | null
  readonly matched: readonly Candidate[]
  readonly steps: readonly Step[]
  readonly decision: Decision
}

/** Labels of `name` (normalised) against a pattern, as the matcher reads them. */
export function patternMatches (p: Pattern, name: string): boolean {
  const labels = name.split('.').reverse()
  if (p.exact ? labels.length !== p.labels.length : labels.length < p.labels.length) return false
  for (let i = 0; i < p.labels.length; i++) {
    const want = p.labels[i] as string
    const got = labels[i] as string
    if (want === '*') continue
    const star = want.indexOf('*')
    if (star < 0) { if (want !== got) return false; continue }
    const pre = want.slice(0, star)
    const suf = want.slice(star + 1)
    if (got.length < pre.length + suf.length || !got.startsWith(pre) || !got.endsWith(suf)) return false
  }
  return true
}

/** The matcher's order (match/trie.ts): labels, then exact, then literal over glob over `*`. */
function score (p: Pattern): number {
  let s = p.labels.length * 16 + (p.exact ? 8 : 0)
  for (const l of p.labels) s -= l === '*' ? 2 : l.includes('*') ? 1 : 0
  return s
}

function whyLost (c: Rule, w: Rule): string {
  if (w.exception && !c.exception) return `lost: the allow-exception "${w.pattern.text}" beats every list entry`
  const cl = c.pattern.labels.length
  const wl = w.pattern.labels.length
  if (cl !== wl) return `lost: "${w.pattern.text}" matches more labels (${wl} against ${cl})`
  if (w.pattern.exact !== c.pattern.exact) return `lost: the exact entry "${w.pattern.text}" beats a subtree entry of the same length`
  if (score(c.pattern) !== score(w.pattern)) return `lost: "${w.pattern.text}" has more literal labels (a literal beats a glob, a glob beats *)`
  return `lost: as specific as "${w.pattern.text}", which was loaded first`
}

function whyWon (w: Rule, others: number): string {
  if (others === 0) return w.exception ? 'the only match: an allow-exception' : 'the only entry that matches'
  return w.exception ? 'won: an allow-exception beats every list entry' : 'won: the most specific entry that matches'
}

/** Does the CIDR text hold the address (`v`, bytes)? */
function holds (cidr: string, v: 4 | 6, bytes: Uint8Array): boolean {
  const c = parseCidr(cidr)
  if (c === null || c.v !== v) return false
  if (c.v === 4) {
    const a = (((bytes[0] as number) << 24) | ((bytes[1] as number) << 16) | ((bytes[2] as number) << 8) | (bytes[3] as number)) >>> 0
    return ((a & c.range.mask) >>> 0) === c.range.base
  }
  let bits = c.range.bits
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((((bytes[i] as number) ^ (c.range.bytes[i] as number)) & m) !== 0) return false
  }
  return true
}

/**
 * Explain the decision for a normalised `name` seen from an address (its
 * text, version and bytes; null: no address, the global policy).
 */
export function explain (rs: Ruleset, name: string, from: { text: string, v: 4 | 6, bytes: Uint8Array } | null): Explanation {
  const cls = from === null ? 0 : rs.policy.sourceClass(from.bytes, 0, from.v === 4 ? 4 : 6)
  const winner = rs.matcher.lookup(name)
  const decision = rs.policy.decide(winner, cls)
  const input = rs.policy.input

  const rules: Rule[] = []
  for (const p of input.allow) {
    if (patternMatches(p, name)) rules.push({ pattern: p, vendor: null, category: null, exception: true, source: input.file })
  }
  for (const l of rs.lists) {
    for (const e of l.entries) {
      if (patternMatches(e.pattern, name)) rules.push({ pattern: e.pattern, vendor: l.vendor, category: l.category, exception: false, source: `${l.file}:${e.line}` })
    }
  }
  rules.sort((a, b) => Number(b.exception) - Number(a.exception) || score(b.pattern) - score(a.pattern))
  const matched: Candidate[] = rules.map((r) => {
    const won = winner !== null && r.pattern === winner.pattern
    return {
      rule: r.pattern.text, source: r.source, vendor: r.vendor, category: r.category, exception: r.exception, won,
      why: won ? whyWon(winner, rules.length - 1) : winner === null ? 'not picked' : whyLost(r, winner),
    }
  })

  const net = cls > 0 ? input.networks[cls - 1] ?? null : null
  const network = net === null || from === null
    ? null
    : { name: net.name, index: cls - 1, cidr: net.cidrs.find((c) => holds(c, from.v, from.bytes)) ?? '' }

  const steps: Step[] = []
  const nn = net === null ? '' : `networks[${net.name}].`
  if (winner !== null && !winner.exception) {
    const v = winner.vendor ?? ''
    const c = winner.category ?? ''
    if (net !== null) {
      steps.push({ step: `${nn}vendors.${v}`, action: net.vendors.get(v) ?? null, used: false })
      steps.push({ step: `${nn}categories.${c}`, action: net.categories.get(c) ?? null, used: false })
    }
    steps.push({ step: `vendors.${v}`, action: input.vendors.get(v) ?? null, used: false })
    steps.push({ step: `categories.${c}`, action: input.categories.get(c) ?? null, used: false })
  }
  if (winner === null || !winner.exception) {
    if (net !== null) steps.push({ step: `${nn}default`, action: net.default, used: false })
    steps.push({ step: 'default', action: input.default, used: false })
  }
  const first = steps.findIndex((s) => s.action !== null)
  const marked = steps.map((s, i) => i === first ? { ...s, used: true } : s)
  return { name, from: from?.text ?? null, network, matched, steps: marked, decision }
}

/** The explanation as lines of text (`check --explain` without --json). */
export function explanationText (x: Explanation): string[] {
  const out: string[] = [`${x.name}`]
  out.push(x.from === null
    ? '  from: no address given: the global policy'
    : x.network === null
      ? `  from: ${x.from}: in no network of the policy: the global policy`
      : `  from: ${x.from}: network "${x.network.name}" (networks[${x.network.index}], ${x.network.cidr}; the first network that holds the address)`)
  if (x.matched.length === 0) out.push('  matched: no entry of any list')
  else {
    out.push('  matched:')
    for (const m of x.matched) {
      const who = m.exception ? 'allow-exception' : `vendor ${m.vendor ?? '-'}, category ${m.category ?? '-'}`
      out.push(`    ${m.won ? '*' : ' '} ${m.rule}  (${who}; ${m.source})  ${m.why}`)
    }
  }
  if (x.decision.reason === 'exception') out.push('  policy: an allow-exception is allowed before any other step')
  else {
    out.push('  policy, in order (the first that is set applies):')
    for (const s of x.steps) out.push(`    ${s.used ? '*' : ' '} ${s.step}: ${s.action ?? 'not set'}`)
  }
  const d = x.decision
  out.push(`  decision: ${d.action} (reason ${d.reason}${d.network === null ? '' : `, network ${d.network}`}${d.rule === null ? '' : `, rule ${d.rule} at ${d.ruleSource ?? '-'}`})`)
  return out
}
