import { Matcher, type Rule } from '../match/trie.js'
import type { Pattern } from '../match/pattern.js'
import { Policy, type PolicyInput } from '../policy/index.js'

/**
 * Compiled rules, one home below their users: `config/` builds them from the
 * files it checked, `classify/` reads them on the hot path, `daemon/` swaps
 * them. Imports only `match/` and `policy/`.
 */

/** One list entry, with the line of the list file it came from. */
export interface ListEntry { readonly pattern: Pattern, readonly line: number }

/** One vendor list file (rules/vendors/<vendor>.txt), parsed and checked by config/lists.ts. */
export interface VendorList {
  readonly vendor: string
  readonly title: string
  readonly category: string
  readonly sources: readonly string[]
  readonly file: string
  readonly entries: readonly ListEntry[]
}

/**
 * Compiled, immutable state the hot path reads: the trie and the policy.
 * Reload builds a new Ruleset and swaps one reference. The inputs are
 * already checked (config/), so building cannot fail.
 */
export class Ruleset {
  readonly matcher: Matcher
  readonly policy: Policy
  readonly lists: readonly VendorList[]

  constructor (lists: readonly VendorList[], policyInput: PolicyInput) {
    this.lists = lists
    this.matcher = new Matcher()
    for (const list of lists) {
      for (const e of list.entries) {
        const rule: Rule = {
          pattern: e.pattern,
          vendor: list.vendor,
          category: list.category,
          exception: false,
          source: `${list.file}:${e.line}`,
        }
        this.matcher.add(rule)
      }
    }
    // Parsed once, by config/policy.ts, which reports a bad one at file:line.
    for (const p of policyInput.allow) {
      this.matcher.add({ pattern: p, vendor: null, category: null, exception: true, source: policyInput.file })
    }
    this.policy = new Policy(policyInput)
  }
}
