import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import { ConfigError, stripBom, VENDOR_ID } from '../config/lists.js'
import { LIST_FORMATS, type ListFormat } from '../config/import.js'
import { nestingPastDepth } from '../config/policy.js'

/**
 * /etc/aigate/sources.yaml: where `aigate rules update` gets each vendor list.
 * A YAML list; each item one vendor list (rules/<vendor>.txt):
 *
 *   - vendor: openai                 the list's file name and "# vendor:" (required)
 *     url: https://.../openai.txt    https:// only, or file:// for a local mirror (required)
 *     format: aigate                 aigate | v2fly | plain | hosts | adblock | auto (default auto)
 *     sha256: 9f86d0...              pinned: the bytes must hash to this
 *     # or  commit: <40 hex>         pinned: the URL names this git commit as a path segment
 *     # or  follow: latest           not pinned: whatever the URL serves now
 *     category: ai                   "# category:" of a converted list (default ai)
 *     title: OpenAI                  "# title:" of a converted list (default the vendor)
 *
 * Exactly one of sha256, commit, follow. Read with YAML's failsafe schema, so
 * every value is the text written (a hash of digits stays a string). Every
 * problem is collected as `file:line: message`, as the policy's are.
 */

export type SourceFormat = 'aigate' | ListFormat | 'auto'
export const SOURCE_FORMATS: readonly SourceFormat[] = ['aigate', ...LIST_FORMATS, 'auto']

export type Pin =
  | { readonly kind: 'sha256', readonly sha256: string }
  | { readonly kind: 'commit', readonly commit: string }
  | { readonly kind: 'latest' }

export interface Source {
  readonly vendor: string
  readonly url: URL
  readonly format: SourceFormat
  readonly pin: Pin
  readonly category: string
  readonly title: string
  /** Where the item starts in sources.yaml, for messages. */
  readonly line: number
}

/** The most sources one file may list (the project's own lists are ~50; v2fly's AI ones a few dozen). */
export const MAX_SOURCES = 1000
/** sources.yaml needs 2 levels; as the policy, refuse deep nesting before the YAML library recurses into it. */
const MAX_DEPTH = 16
const KEYS = ['vendor', 'url', 'format', 'sha256', 'commit', 'follow', 'category', 'title']
const SHA256 = /^[0-9a-f]{64}$/
const COMMIT = /^[0-9a-f]{40}$/

export function parseSources (text: string, file: string): Source[] {
  const src = stripBom(text)
  const deep = nestingPastDepth(src, MAX_DEPTH)
  if (deep >= 0) throw new ConfigError([`${file}:${lineAt(src, deep)}: nesting deeper than ${MAX_DEPTH} levels (sources need 2)`])
  const lc = new LineCounter()
  const doc = parseDocument(src, { lineCounter: lc, schema: 'failsafe', prettyErrors: false, uniqueKeys: true })
  const problems: string[] = []
  for (const e of doc.errors) problems.push(`${file}:${lc.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`)
  if (problems.length > 0) throw new ConfigError(problems)
  const at = (node: Node | null | undefined): number => lc.linePos(node?.range?.[0] ?? 0).line
  const root = doc.contents
  if (root === null || (isScalar(root) && root.value === '')) throw new ConfigError([`${file}:1: no sources: the file must be a list of sources (- vendor: ..., url: ...)`])
  if (!isSeq(root)) throw new ConfigError([`${file}:${at(root)}: the file must be a list of sources (- vendor: ..., url: ...)`])
  if (root.items.length > MAX_SOURCES) throw new ConfigError([`${file}:${at(root)}: ${root.items.length} sources, more than ${MAX_SOURCES}`])
  const sources: Source[] = []
  const vendors = new Map<string, number>()
  for (const item of root.items as Node[]) {
    const line = at(item)
    const bad = (node: Node | null | undefined, msg: string): void => { problems.push(`${file}:${node == null ? line : at(node)}: ${msg}`) }
    if (!isMap(item)) { bad(item, 'a source must be a mapping (vendor:, url:, format:, and sha256:, commit: or follow:)'); continue }
    const v = new Map<string, { node: Node, text: string }>()
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : ''
      const value = pair.value as Node | null
      if (!KEYS.includes(key)) { bad(pair.key as Node, `unknown key "${key}" (known: ${KEYS.join(', ')})`); continue }
      if (!isScalar(value) || typeof value.value !== 'string' || value.value === '') { bad(value ?? (pair.key as Node), `${key}: must be a non-empty text`); continue }
      v.set(key, { node: value, text: value.value })
    }
    const vendor = v.get('vendor')
    const url = v.get('url')
    if (vendor === undefined) bad(item, 'missing "vendor:" (the list\'s file name, e.g. openai)')
    else if (!VENDOR_ID.test(vendor.text)) bad(vendor.node, `vendor: "${vendor.text}" is not an id (lower case letters, digits and -, not starting with -)`)
    else if (vendors.has(vendor.text)) bad(vendor.node, `vendor "${vendor.text}" is listed twice (first at line ${vendors.get(vendor.text) ?? 0}): one source per list`)
    else vendors.set(vendor.text, at(vendor.node))
    let parsed: URL | null = null
    if (url === undefined) bad(item, 'missing "url:"')
    else {
      const why = urlProblem(url.text)
      if (typeof why === 'string') bad(url.node, why)
      else parsed = why
    }
    const format = (v.get('format')?.text ?? 'auto') as SourceFormat
    if (!SOURCE_FORMATS.includes(format)) bad(v.get('format')?.node, `format: "${format}" is not one of ${SOURCE_FORMATS.join(', ')}`)
    const pins = ['sha256', 'commit', 'follow'].filter((k) => v.has(k))
    let pin: Pin | null = null
    if (pins.length !== 1) {
      bad(pins.length === 0 ? item : v.get(pins[1] as string)?.node, pins.length === 0
        ? 'not pinned: give sha256: <hash of the file>, commit: <the git commit the URL names>, or follow: latest'
        : `give one of sha256, commit, follow, not ${pins.join(' and ')}`)
    } else if (pins[0] === 'sha256') {
      const h = v.get('sha256') as { node: Node, text: string }
      const hex = h.text.replace(/^sha256:/, '').toLowerCase()
      if (!SHA256.test(hex)) bad(h.node, `sha256: "${h.text}" is not 64 hex digits`)
      else pin = { kind: 'sha256', sha256: hex }
    } else if (pins[0] === 'commit') {
      const c = v.get('commit') as { node: Node, text: string }
      const hex = c.text.toLowerCase()
      if (!COMMIT.test(hex)) bad(c.node, `commit: "${c.text}" is not a full git commit (40 hex digits)`)
      else if (parsed !== null && !parsed.pathname.toLowerCase().split('/').includes(hex)) bad(c.node, `commit: the URL does not name ${hex} as a path segment, so it does not pin it`)
      else pin = { kind: 'commit', commit: hex }
    } else {
      const f = v.get('follow') as { node: Node, text: string }
      if (f.text !== 'latest') bad(f.node, `follow: "${f.text}" must be latest`)
      else pin = { kind: 'latest' }
    }
    const category = v.get('category')
    if (category !== undefined && !VENDOR_ID.test(category.text)) bad(category.node, `category: "${category.text}" is not an id (lower case letters, digits and -)`)
    const title = v.get('title')
    if (title !== undefined && /[\p{Cc}\p{Zl}\p{Zp}]/u.test(title.text)) bad(title.node, 'title: has control characters or line breaks, which cannot go into a header line')
    if (format === 'aigate' && (category !== undefined || title !== undefined)) bad((category ?? title)?.node, 'category: and title: are for converted lists; an aigate list carries its own headers')
    if (vendor !== undefined && parsed !== null && pin !== null && SOURCE_FORMATS.includes(format)) {
      sources.push({ vendor: vendor.text, url: parsed, format, pin, category: category?.text ?? 'ai', title: title?.text ?? vendor.text, line })
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return sources
}

/**
 * The URL, or why it is refused: https:// (fetched with certificate checks)
 * or file:// (a local mirror); no http://, no credentials in it (the file is
 * world-readable, and they would land in every log line that names the URL).
 */
export function urlProblem (text: string): URL | string {
  let u: URL
  try {
    u = new URL(text)
  } catch {
    return `url: "${text}" is not a URL`
  }
  if (u.protocol !== 'https:' && u.protocol !== 'file:') return `url: "${text}": only https:// (or file:// for a local mirror); ${u.protocol.replace(/:$/, '')} is not`
  if (u.username !== '' || u.password !== '') return `url: "${u.protocol}//${u.host}${u.pathname}": no credentials in the URL`
  if (u.protocol === 'file:' && u.host !== '') return `url: "${text}": a file:// URL names a local path (file:///path)`
  return u
}

function lineAt (text: string, offset: number): number {
  let line = 1
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++
  return line
}
