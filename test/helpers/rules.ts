import { Matcher, type Rule } from '../../src/match/trie.js'
import { parsePattern, isPatternError } from '../../src/match/pattern.js'

/** Build a rule from list syntax, for tests. */
export function rule (text: string, vendor: string | null = 'v', exception = false): Rule {
  const p = parsePattern(text)
  if (isPatternError(p)) throw new Error(p.error)
  return { pattern: p, vendor, category: vendor === null ? null : 'ai', exception, source: `test:${text}` }
}

export function matcherOf (...rules: Rule[]): Matcher {
  const m = new Matcher()
  for (const r of rules) m.add(r)
  return m
}
