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

interface Glob { prefix: string, suffix: string, node: number }

/** Node flags. */
const HAS_EXACT = 1
const HAS_SUBTREE = 2
const HAS_EXACT_EX = 4
const HAS_SUBTREE_EX = 8
const HAS_WILD = 16
const HAS_GLOBS = 32

/** Rule slots per node in the exception map: exact, subtree. */
const EX_EXACT = 0
const EX_SUBTREE = 1

/**
 * FNV-1a over the char codes of s[from, to), cut to 30 bits so values stay
 * V8 small integers.
 */
function hashRange (s: string, from: number, to: number): number {
  let h = 0x811c9dc5
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h & 0x3fffffff
}

/** Slot of (parent, hash) in the edge table: a multiplicative mix of both. */
function mix (parent: number, hash: number): number {
  return (Math.imul(parent, 0x9e3779b1) ^ hash) >>> 0
}

const SCORE_LABEL = 16
const SCORE_EXACT = 8
const PENALTY_GLOB = 1
const PENALTY_WILD = 2
const INITIAL_NODES = 1024

/*
 * Layout (measured in `npm run bench`: a Map per node reached 2.2M lookups/s
 * at 100k patterns, bounded by cache misses through node -> Map -> bucket ->
 * node): nodes are integers; the literal edges of all nodes live in ONE
 * open-addressing table of Int32 triples (parent, label hash, child + 1), so a
 * label costs one probe into a flat array plus one string compare.
 */
export class Matcher {
  #size = 0
  #nodes = 1 // node 0 is the root
  #labels: string[] = ['']
  #flags = new Uint8Array(INITIAL_NODES)
  #wild = new Int32Array(INITIAL_NODES)
  #globs = new Map<number, Glob[]>()
  /** Vendor rules by node * 2 + (0 exact | 1 subtree). */
  #rules: Array<Rule | undefined> = [undefined, undefined]
  /** Allow-exceptions by node * 2 + (0 exact | 1 subtree); rare, so a Map. */
  #exceptions = new Map<number, Rule>()
  /** Edge table: [parent, hash, child + 1] per slot; child + 1 = 0 marks an empty slot. */
  #edges = new Int32Array(3 * 2048)
  #edgeMask = 2047
  #edgeCount = 0
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
    let node = 0
    for (const label of rule.pattern.labels) node = this.#child(node, label)
    const kind = rule.pattern.exact ? EX_EXACT : EX_SUBTREE
    const key = node * 2 + kind
    const flags = this.#flags
    if (rule.exception) {
      const bit = kind === EX_EXACT ? HAS_EXACT_EX : HAS_SUBTREE_EX
      if ((flags[node]! & bit) === 0) { flags[node]! |= bit; this.#exceptions.set(key, rule) }
    } else {
      const bit = kind === EX_EXACT ? HAS_EXACT : HAS_SUBTREE
      if ((flags[node]! & bit) === 0) { flags[node]! |= bit; this.#rules[key] = rule }
    }
    this.#size++
  }

  #newNode (label: string): number {
    const id = this.#nodes++
    if (id >= this.#flags.length) {
      const flags = new Uint8Array(this.#flags.length * 2)
      flags.set(this.#flags)
      this.#flags = flags
      const wild = new Int32Array(this.#wild.length * 2)
      wild.set(this.#wild)
      this.#wild = wild
    }
    this.#labels.push(label)
    // Keep the rule slots dense (two per node): a sparse array would fall into
    // V8's slow dictionary mode.
    this.#rules.push(undefined, undefined)
    return id
  }

  #child (node: number, label: string): number {
    if (label === '*') {
      if ((this.#flags[node]! & HAS_WILD) === 0) {
        const c = this.#newNode('*')
        this.#wild[node] = c
        this.#flags[node]! |= HAS_WILD
      }
      return this.#wild[node]!
    }
    const star = label.indexOf('*')
    if (star >= 0) {
      const prefix = label.slice(0, star)
      const suffix = label.slice(star + 1)
      let list = this.#globs.get(node)
      if (list === undefined) { list = []; this.#globs.set(node, list); this.#flags[node]! |= HAS_GLOBS }
      for (const g of list) if (g.prefix === prefix && g.suffix === suffix) return g.node
      const g = { prefix, suffix, node: this.#newNode(label) }
      list.push(g)
      return g.node
    }
    const h = hashRange(label, 0, label.length)
    const found = this.#find(node, h, label, 0, label.length)
    if (found >= 0) return found
    const c = this.#newNode(label)
    if ((this.#edgeCount + 1) * 2 > this.#edgeMask + 1) this.#growEdges()
    this.#insertEdge(node, h, c)
    this.#edgeCount++
    return c
  }

  #insertEdge (parent: number, hash: number, child: number): void {
    const edges = this.#edges
    const mask = this.#edgeMask
    let i = mix(parent, hash) & mask
    while (edges[i * 3 + 2] !== 0) i = (i + 1) & mask
    edges[i * 3] = parent
    edges[i * 3 + 1] = hash
    edges[i * 3 + 2] = child + 1
  }

  #growEdges (): void {
    const old = this.#edges
    this.#edges = new Int32Array(old.length * 2)
    this.#edgeMask = this.#edgeMask * 2 + 1
    for (let i = 0; i < old.length; i += 3) {
      if (old[i + 2] !== 0) this.#insertEdge(old[i]!, old[i + 1]!, old[i + 2]! - 1)
    }
  }

  /** The child of `parent` labelled s[from, to) (hash h), or -1. */
  #find (parent: number, h: number, s: string, from: number, to: number): number {
    const edges = this.#edges
    const mask = this.#edgeMask
    const len = to - from
    for (let i = mix(parent, h) & mask; ; i = (i + 1) & mask) {
      const c = edges[i * 3 + 2]!
      if (c === 0) return -1
      if (edges[i * 3] === parent && edges[i * 3 + 1] === h) {
        const label = this.#labels[c - 1]!
        if (label.length === len && s.startsWith(label, from)) return c - 1
      }
    }
  }

  /**
   * The rule that decides `name` (a normalised Name), or null when no entry
   * matches. Allocates nothing.
   */
  lookup (name: string): Rule | null {
    this.#name = name
    this.#best = this.#exception = null
    this.#bestScore = this.#exceptionScore = -1
    this.#walk(0, name.length, 0, 0)
    return this.#exception ?? this.#best
  }

  /** `e`: the unread part of the name is [0, e); -1 once every label is read. */
  #walk (node: number, e: number, depth: number, penalty: number): void {
    const flags = this.#flags[node]!
    const base = depth * SCORE_LABEL - penalty
    if (flags !== 0) {
      if ((flags & HAS_SUBTREE) !== 0) this.#offer(this.#rules[node * 2 + 1]!, base)
      if ((flags & HAS_SUBTREE_EX) !== 0) this.#offerException(this.#exceptions.get(node * 2 + 1)!, base)
    }
    if (e < 0) {
      if ((flags & HAS_EXACT) !== 0) this.#offer(this.#rules[node * 2]!, base + SCORE_EXACT)
      if ((flags & HAS_EXACT_EX) !== 0) this.#offerException(this.#exceptions.get(node * 2)!, base + SCORE_EXACT)
      return
    }
    const name = this.#name
    const s = name.lastIndexOf('.', e - 1) + 1
    const next = s - 1
    const child = this.#find(node, hashRange(name, s, e), name, s, e)
    if (child >= 0) this.#walk(child, next, depth + 1, penalty)
    if ((flags & HAS_GLOBS) !== 0) {
      for (const g of this.#globs.get(node)!) {
        if (e - s >= g.prefix.length + g.suffix.length &&
            name.startsWith(g.prefix, s) && name.startsWith(g.suffix, e - g.suffix.length)) {
          this.#walk(g.node, next, depth + 1, penalty + PENALTY_GLOB)
        }
      }
    }
    if ((flags & HAS_WILD) !== 0) this.#walk(this.#wild[node]!, next, depth + 1, penalty + PENALTY_WILD)
  }

  #offer (rule: Rule, score: number): void {
    if (score > this.#bestScore) { this.#best = rule; this.#bestScore = score }
  }

  #offerException (rule: Rule, score: number): void {
    if (score > this.#exceptionScore) { this.#exception = rule; this.#exceptionScore = score }
  }
}
