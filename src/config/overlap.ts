import type { Pattern } from '../match/pattern.js'
import type { VendorList } from '../rules/index.js'

/**
 * A name that entries of two vendor lists both match. The matcher keeps one
 * rule per name: the more specific entry wins, and of two equal ones the list
 * loaded first. Either way the vendor a decision reports would depend on which
 * lists happen to sit beside each other: importing v2fly's `category-ai-!cn`
 * as a new list moved chatgpt.com from `openai` to it, and `vendors: openai:
 * block` silently stopped applying. So a name belongs to one list, and any
 * overlap between two lists is an error, reported with both file:line.
 *
 * Patterns end in two literal labels (match/pattern.ts refuses a wildcard
 * there), so two can only overlap when their last two labels are equal:
 * entries are grouped by those and compared pairwise within a group.
 */

interface At { readonly list: VendorList, readonly pattern: Pattern, readonly line: number }

/** Can one label match both `a` and `b` (each a literal, `*`, or a glob `pre*suf`)? */
function labelsMeet (a: string, b: string): string | null {
  const ga = a.indexOf('*')
  const gb = b.indexOf('*')
  if (ga < 0 && gb < 0) return a === b ? a : null
  if (ga < 0) return globMatches(b, gb, a) ? a : null
  if (gb < 0) return globMatches(a, ga, b) ? b : null
  // Two globs: some label has both prefixes and both suffixes when one prefix
  // starts the other and one suffix ends the other: the longer ones, joined.
  const pa = a.slice(0, ga)
  const sa = a.slice(ga + 1)
  const pb = b.slice(0, gb)
  const sb = b.slice(gb + 1)
  if (!(pa.startsWith(pb) || pb.startsWith(pa)) || !(sa.endsWith(sb) || sb.endsWith(sa))) return null
  const joined = (pa.length >= pb.length ? pa : pb) + (sa.length >= sb.length ? sa : sb)
  return joined === '' ? 'x' : joined
}

function globMatches (glob: string, star: number, label: string): boolean {
  const pre = glob.slice(0, star)
  const suf = glob.slice(star + 1)
  return label.length >= pre.length + suf.length && label.startsWith(pre) && label.endsWith(suf)
}

/**
 * A name both patterns match, or null when there is none. Labels are compared
 * from the right; an `=exact` pattern fixes the length, a subtree pattern
 * lets any labels stand to its left.
 */
export function commonName (a: Pattern, b: Pattern): string | null {
  const la = a.labels
  const lb = b.labels
  if (a.exact && b.exact && la.length !== lb.length) return null
  if (a.exact && la.length < lb.length) return null
  if (b.exact && lb.length < la.length) return null
  const out: string[] = []
  const n = Math.max(la.length, lb.length)
  for (let i = 0; i < n; i++) {
    const x = la[i]
    const y = lb[i]
    const m = x === undefined ? (y as string) : y === undefined ? x : labelsMeet(x, y)
    if (m === null) return null
    out.push(m.replace('*', 'x')) // an example label for a `*` or a glob left alone
  }
  return out.reverse().join('.')
}

/** `file:line: message` for every name two vendor lists both cover, at the entry of the list later in load order. */
export function overlapProblems (lists: readonly VendorList[]): string[] {
  const groups = new Map<string, At[]>()
  for (const list of lists) {
    for (const e of list.entries) {
      const l = e.pattern.labels
      if (l.length < 2) continue // a one-label entry is refused as a public suffix already
      const key = (l[1] as string) + '.' + (l[0] as string)
      let g = groups.get(key)
      if (g === undefined) groups.set(key, g = [])
      g.push({ list, pattern: e.pattern, line: e.line })
    }
  }
  const problems: string[] = []
  for (const g of groups.values()) {
    if (g.length < 2) continue
    for (let i = 0; i < g.length; i++) {
      const a = g[i] as At
      for (let j = i + 1; j < g.length; j++) {
        const b = g[j] as At
        if (a.list === b.list) continue
        const name = commonName(a.pattern, b.pattern)
        if (name === null) continue
        problems.push(`${b.list.file}:${b.line}: "${name}" is covered by two vendor lists: ` +
          `"${b.pattern.text}" here (${b.list.vendor}) and "${a.pattern.text}" at ${a.list.file}:${a.line} (${a.list.vendor}); ` +
          'a name belongs to one list, or the vendor a decision reports depends on which lists are loaded')
      }
    }
  }
  return problems
}
