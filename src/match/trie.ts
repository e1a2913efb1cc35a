import type { Pattern } from './pattern.js'

/**
 * Reversed-label trie (TLD first). Lookup walks the labels of a name from the
 * right, so its cost grows with the labels of the name, not with the number
 * of rules. It allocates nothing: labels are never cut out of the name;
 * children are found by a hash of the label's characters and confirmed with
 * `startsWith` at the label's offset.
 *
 * Precedence, when several entries match: an allow-exception always wins
 * (policy: "allow internal-llm.corp.example" beats "block corp.example");
 * otherwise the entry that matched more labels wins, then `=exact` over a
 * subtree entry, then a literal label over a glob over a `*`.
 */

/** What a trie entry points at: a vendor-list entry or an allow-exception. */
export interface Rule {
  readonly pattern: Pattern
  /** Vendor list name (file basename), or null for an exception. */
  readonly vendor: string | null
  readonly category: string | null
  /** Allow-exception: beats every vendor match. */
  readonly exception: boolean
  /** Where it was written: `rules/vendors/openai.txt:12`. */
  readonly source: string
}

interface Glob { prefix: string, suffix: string, node: TrieNode }

class TrieNode {
  label: string
  /** Next node in the same hash bucket. */
  chain: TrieNode | null = null
  children: Map<number, TrieNode> | null = null
  wild: TrieNode | null = null
  globs: Glob[] | null = null
  exact: Rule | null = null
  subtree: Rule | null = null
  exactException: Rule | null = null
  subtreeException: Rule | null = null
  constructor (label: string) { this.label = label }
}

/** FNV-1a over the char codes of s[from, to). */
function hashRange (s: string, from: number, to: number): number {
  let h = 0x811c9dc5
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h | 0
}

const SCORE_LABEL = 16
const SCORE_EXACT = 8
const PENALTY_GLOB = 1
const PENALTY_WILD = 2

export class Matcher {
  readonly #root = new TrieNode('')
  #size = 0
  #nodes = 1
  // Walk state (lookup is synchronous and not re-entrant).
  #name = ''
  #best: Rule | null = null
  #bestScore = -1
  #exception: Rule | null = null
  #exceptionScore = -1

  /** Number of entries compiled in. */
  get size (): number { return this.#size }
  /** Number of trie nodes (memory is proportional to it). */
  get nodes (): number { return this.#nodes }

  /**
   * Add one entry. When two entries have the same pattern, the first one
   * added stays (lists are loaded in a stable order, so this is deterministic).
   */
  add (rule: Rule): void {
    let node = this.#root
    for (const label of rule.pattern.labels) node = this.#child(node, label)
    if (rule.exception) {
      if (rule.pattern.exact) node.exactException ??= rule
      else node.subtreeException ??= rule
    } else {
      if (rule.pattern.exact) node.exact ??= rule
      else node.subtree ??= rule
    }
    this.#size++
  }

  #child (node: TrieNode, label: string): TrieNode {
    if (label === '*') {
      if (node.wild === null) { node.wild = new TrieNode('*'); this.#nodes++ }
      return node.wild
    }
    const star = label.indexOf('*')
    if (star >= 0) {
      const prefix = label.slice(0, star)
      const suffix = label.slice(star + 1)
      node.globs ??= []
      for (const g of node.globs) if (g.prefix === prefix && g.suffix === suffix) return g.node
      const g = { prefix, suffix, node: new TrieNode(label) }
      node.globs.push(g)
      this.#nodes++
      return g.node
    }
    const h = hashRange(label, 0, label.length)
    node.children ??= new Map()
    const head = node.children.get(h)
    for (let n: TrieNode | null | undefined = head; n !== undefined && n !== null; n = n.chain) if (n.label === label) return n
    const created = new TrieNode(label)
    created.chain = head ?? null
    node.children.set(h, created)
    this.#nodes++
    return created
  }

  /**
   * The rule that decides `name` (a normalised Name), or null when no entry
   * matches. Allocates nothing.
   */
  lookup (name: string): Rule | null {
    this.#name = name
    this.#best = this.#exception = null
    this.#bestScore = this.#exceptionScore = -1
    this.#walk(this.#root, name.length, 0, 0)
    return this.#exception ?? this.#best
  }

  /** `e`: the unread part of the name is [0, e); -1 once every label is read. */
  #walk (node: TrieNode, e: number, depth: number, penalty: number): void {
    const done = e < 0
    const base = depth * SCORE_LABEL - penalty
    if (node.subtree !== null) this.#offer(node.subtree, base)
    if (node.subtreeException !== null) this.#offer(node.subtreeException, base)
    if (done) {
      if (node.exact !== null) this.#offer(node.exact, base + SCORE_EXACT)
      if (node.exactException !== null) this.#offer(node.exactException, base + SCORE_EXACT)
      return
    }
    const name = this.#name
    const s = name.lastIndexOf('.', e - 1) + 1
    const next = s - 1
    if (node.children !== null) {
      const len = e - s
      for (let n: TrieNode | null | undefined = node.children.get(hashRange(name, s, e)); n !== undefined && n !== null; n = n.chain) {
        if (n.label.length === len && name.startsWith(n.label, s)) {
          this.#walk(n, next, depth + 1, penalty)
          break
        }
      }
    }
    if (node.globs !== null) {
      for (const g of node.globs) {
        if (e - s >= g.prefix.length + g.suffix.length &&
            name.startsWith(g.prefix, s) && name.startsWith(g.suffix, e - g.suffix.length)) {
          this.#walk(g.node, next, depth + 1, penalty + PENALTY_GLOB)
        }
      }
    }
    if (node.wild !== null) this.#walk(node.wild, next, depth + 1, penalty + PENALTY_WILD)
  }

  #offer (rule: Rule, score: number): void {
    if (rule.exception) {
      if (score > this.#exceptionScore) { this.#exception = rule; this.#exceptionScore = score }
    } else if (score > this.#bestScore) {
      this.#best = rule; this.#bestScore = score
    }
  }
}
