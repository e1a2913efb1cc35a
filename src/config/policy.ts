import { LineCounter, Parser, parseDocument, isMap, isSeq, isScalar, type CST, type Node } from 'yaml'
import { ACTIONS, parseCidr, type Action, type NetworkPolicy, type PolicyInput } from '../policy/index.js'
import { isPatternError, type Pattern } from '../match/pattern.js'
import { checkEntry } from './entry.js'
import { ConfigError, stripBom } from './lists.js'
import { MAX_POLICY_BYTES, readTextFile, ReadError } from './read.js'

/**
 * The policy file (YAML, parsed by the `yaml` package):
 *
 *   default: allow                 # action for names no list matches (required)
 *   unknown: allow                 # a flow whose opening message names nothing readable (no SNI, an IP literal, not a host name, malformed, past the limits)
 *   evasion: block                 # a flow that showed two different names (overlap/decoy tricks)
 *   vendors: { anthropic: block }  # per vendor list (file basename)
 *   categories: { ai: monitor }    # per `# category:` of the lists
 *   allow: [internal-llm.corp.example]   # allow-exceptions, beat any block
 *   networks:                      # per-source-network exceptions, first match wins
 *     - name: research
 *       cidrs: [10.20.0.0/16, "fd00:20::/32"]
 *       vendors: { openai: allow }
 *       categories: {}
 *       default: allow
 *
 * Actions: allow | monitor (log, accept) | block (drop) | reject (TCP reset / ICMP).
 * Every problem is reported as `file:line: message`.
 */

const TOP_KEYS = ['default', 'unknown', 'evasion', 'vendors', 'categories', 'allow', 'networks']
const NET_KEYS = ['name', 'cidrs', 'vendors', 'categories', 'default']

/**
 * The deepest nesting of collections a policy may have. A real policy needs 4
 * (networks, an entry, vendors, the action); the `yaml` composer recurses once
 * per level and, thousands of levels down, reports only "Maximum call stack
 * size exceeded", so deeper documents are refused before composing.
 */
export const MAX_POLICY_DEPTH = 64

/**
 * The offset of the first collection nested deeper than `max`, or -1. Walks
 * the CST of `yaml`'s Parser (which keeps its own stack, no recursion) with an
 * explicit stack, so it cannot run out of call stack either.
 */
export function nestingPastDepth (text: string, max: number): number {
  const stack: Array<{ tok: CST.Token, depth: number }> = []
  for (const tok of new Parser().parse(text)) {
    if (tok.type === 'document' && tok.value !== undefined) stack.push({ tok: tok.value, depth: 0 })
    while (stack.length > 0) {
      const { tok: t, depth } = stack.pop() as { tok: CST.Token, depth: number }
      if (t.type !== 'block-map' && t.type !== 'block-seq' && t.type !== 'flow-collection') continue
      if (depth + 1 > max) return t.offset
      for (const item of t.items) {
        if (item.key != null) stack.push({ tok: item.key, depth: depth + 1 })
        if (item.value !== undefined) stack.push({ tok: item.value, depth: depth + 1 })
      }
    }
  }
  return -1
}

/**
 * Why `text` is not a network this policy accepts, or null when it is one.
 * Stricter than parseCidr (policy/), which the compiled policy uses after
 * this check: an octet with a leading zero (`10.020.0.0`) is octal to
 * inet_aton and to iptables, decimal to us, so it is refused rather than
 * guessed; so is a prefix length with one (`/016`). Host bits set under the
 * prefix (`10.20.1.0/16`) are refused too: the admin meant either the
 * network (`10.20.0.0/16`) or a longer prefix, and we cannot tell which.
 * Without a `/` the text is one address (`/32`, `/128`).
 */
export function cidrError (text: string): string | null {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const bits = slash < 0 ? null : text.slice(slash + 1)
  if (bits !== null && /^0\d/.test(bits)) return `"${text}": the prefix length "/${bits}" has a leading zero`
  if (!addr.includes(':') && addr.split('.').some((o) => /^0\d/.test(o))) {
    return `"${text}": an octet with a leading zero is ambiguous (octal to some tools, decimal to others); write it without`
  }
  const c = parseCidr(text)
  if (c === null) return `"${text}" is not a CIDR (10.0.0.0/8, fd00::/8)`
  if (c.v === 4) {
    const o = addr.split('.').map(Number)
    const value = ((((o[0] as number) << 24) | ((o[1] as number) << 16) | ((o[2] as number) << 8) | (o[3] as number)) >>> 0)
    if (value !== c.range.base) {
      const b = c.range.base
      return `"${text}" has host bits set: the network is ${b >>> 24}.${(b >>> 16) & 255}.${(b >>> 8) & 255}.${b & 255}/${bits ?? 32}`
    }
    return null
  }
  const { bytes, bits: n } = c.range
  for (let i = 0; i < 16; i++) {
    const keep = n >= (i + 1) * 8 ? 0xff : n <= i * 8 ? 0 : (0xff << (8 - (n - i * 8))) & 0xff
    if (((bytes[i] as number) & ~keep & 0xff) !== 0) return `"${text}" has host bits set under /${n}`
  }
  return null
}

export interface KnownNames { readonly vendors: ReadonlySet<string>, readonly categories: ReadonlySet<string> }

/** The policy file's text; a file that cannot be read is a ConfigError naming it. */
export function readPolicy (file: string): string {
  try {
    return readTextFile(file, 'policy', MAX_POLICY_BYTES)
  } catch (err) {
    if (err instanceof ReadError) throw new ConfigError([err.message])
    throw err
  }
}

export function loadPolicy (file: string, known?: KnownNames): PolicyInput {
  return parsePolicy(readPolicy(file), file, known)
}

export function parsePolicy (text: string, file: string, known?: KnownNames): PolicyInput {
  const src = stripBom(text)
  const deep = nestingPastDepth(src, MAX_POLICY_DEPTH)
  if (deep >= 0) {
    let line = 1
    for (let i = src.indexOf('\n'); i >= 0 && i < deep; i = src.indexOf('\n', i + 1)) line++
    throw new ConfigError([`${file}:${line}: nesting deeper than ${MAX_POLICY_DEPTH} levels (a policy needs 4)`])
  }
  const lc = new LineCounter()
  const doc = parseDocument(src, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  const problems: string[] = []
  const at = (node: Node | null | undefined): string => {
    const off = node?.range?.[0] ?? 0
    return `${file}:${lc.linePos(off).line}`
  }
  // With prettyErrors off the errors carry no linePos, only the offset.
  for (const e of doc.errors) problems.push(`${file}:${lc.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`)
  if (problems.length > 0) throw new ConfigError(problems)
  const root = doc.contents
  if (!isMap(root)) throw new ConfigError([`${file}:1: the policy must be a mapping with "default", "vendors", "categories", "allow", "networks"`])

  const action = (node: Node | null | undefined, what: string): Action | undefined => {
    const v = isScalar(node) ? node.value : undefined
    if (typeof v === 'string' && (ACTIONS as readonly string[]).includes(v)) return v as Action
    problems.push(`${at(node)}: ${what}: "${String(v)}" is not an action (${ACTIONS.join(', ')})`)
    return undefined
  }
  const actionMap = (node: Node | null | undefined, what: 'vendors' | 'categories'): Map<string, Action> => {
    const m = new Map<string, Action>()
    if (node == null || (isScalar(node) && node.value === null)) return m
    if (!isMap(node)) { problems.push(`${at(node)}: "${what}" must be a mapping of name: action`); return m }
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : ''
      const known2 = what === 'vendors' ? known?.vendors : known?.categories
      if (known2 !== undefined && !known2.has(key)) {
        problems.push(`${at(pair.key as Node)}: unknown ${what === 'vendors' ? 'vendor' : 'category'} "${key}" (known: ${[...known2].sort().join(', ')})`)
      }
      const a = action(pair.value as Node, `${what}.${key}`)
      if (a !== undefined) m.set(key, a)
    }
    return m
  }
  const keysOf = (node: Node, allowed: string[], where: string): Map<string, Node | null> => {
    const m = new Map<string, Node | null>()
    if (!isMap(node)) return m
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : ''
      if (!allowed.includes(key)) problems.push(`${at(pair.key as Node)}: unknown key "${key}" in ${where} (allowed: ${allowed.join(', ')})`)
      m.set(key, pair.value as Node | null)
    }
    return m
  }

  const top = keysOf(root, TOP_KEYS, 'the policy')
  const defNode = top.get('default')
  // No implied default: which way an unmatched name goes is the policy's first decision.
  if (defNode === undefined) problems.push(`${file}:1: missing "default:" (the action for names no list matches: ${ACTIONS.join(', ')})`)
  const def = defNode === undefined ? undefined : action(defNode, 'default')
  const unknownNode = top.get('unknown')
  const unknown = unknownNode == null ? undefined : action(unknownNode, 'unknown')
  const evasionNode = top.get('evasion')
  const evasion = evasionNode == null ? undefined : action(evasionNode, 'evasion')
  const vendors = actionMap(top.get('vendors'), 'vendors')
  const categories = actionMap(top.get('categories'), 'categories')

  const allow: Pattern[] = []
  const allowNode = top.get('allow')
  if (allowNode != null) {
    if (!isSeq(allowNode)) problems.push(`${at(allowNode)}: "allow" must be a list of names or patterns`)
    else {
      for (const item of allowNode.items as Node[]) {
        const v = isScalar(item) ? String(item.value) : ''
        const p = checkEntry(v, { where: 'allow' })
        if (isPatternError(p)) problems.push(`${at(item)}: allow: ${p.error}`)
        else allow.push(p)
      }
    }
  }

  const networks: NetworkPolicy[] = []
  const netsNode = top.get('networks')
  if (netsNode != null) {
    if (!isSeq(netsNode)) problems.push(`${at(netsNode)}: "networks" must be a list`)
    else {
      (netsNode.items as Node[]).forEach((item, i) => {
        if (!isMap(item)) { problems.push(`${at(item)}: networks[${i}] must be a mapping`); return }
        const k = keysOf(item, NET_KEYS, `networks[${i}]`)
        const nameNode = k.get('name')
        const name = isScalar(nameNode) ? String(nameNode.value) : `network-${i + 1}`
        const cidrs: string[] = []
        const cNode = k.get('cidrs')
        if (!isSeq(cNode) || cNode.items.length === 0) problems.push(`${at(cNode ?? item)}: networks[${i}].cidrs must be a non-empty list of CIDRs`)
        else {
          for (const c of cNode.items as Node[]) {
            const t = isScalar(c) ? String(c.value) : ''
            const bad = cidrError(t)
            if (bad !== null) problems.push(`${at(c)}: networks[${i}].cidrs: ${bad}`)
            else cidrs.push(t)
          }
        }
        const nd = k.get('default')
        networks.push({
          name,
          cidrs,
          vendors: actionMap(k.get('vendors'), 'vendors'),
          categories: actionMap(k.get('categories'), 'categories'),
          default: nd == null ? null : action(nd, `networks[${i}].default`) ?? null,
        })
      })
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return { default: def as Action, unknown, evasion, vendors, categories, allow, networks, file }
}
