import { Matcher, type Rule } from '../match/trie.js'
import { Policy, type PolicyInput } from '../policy/index.js'
import { parsePattern, isPatternError } from '../match/pattern.js'
import type { VendorList } from '../config/lists.js'

/**
 * Compiled, immutable state the hot path reads: the trie and the policy.
 * Reload builds a new Ruleset and swaps one reference.
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
    for (const text of policyInput.allow) {
      const p = parsePattern(text)
      if (isPatternError(p)) throw new Error(`${policyInput.file}: allow: ${p.error}`)
      this.matcher.add({ pattern: p, vendor: null, category: null, exception: true, source: policyInput.file })
    }
    this.policy = new Policy(policyInput)
  }
}
