import { realpathSync } from 'node:fs'
import { isAbsolute, join, sep } from 'node:path'
import { parsePattern, isPatternError } from '../match/pattern.js'
import { checkEntry } from './entry.js'
import { MAX_LIST_BYTES, readTextFile, ReadError } from './read.js'
import { parseCidr } from '../policy/index.js'

/**
 * Importers for the list formats admins already keep. Each turns a file into
 * entries of our own list syntax (see config/lists.ts); the daemon compiles
 * only that syntax, so an import is a reviewable, diffable step.
 *
 * - plain:  `example.com` per line -> the name and its subdomains
 * - hosts:  `0.0.0.0 a.example b.example` -> each name exactly (`=a.example`)
 * - adblock: `||example.com^` -> name and subdomains; `||*.example.com^` (AdGuard: the
 *            subdomains only) -> `*.example.com`; `@@||x^` -> an allow-exception; the
 *            modifiers `$important` and `$all` are read (they do not narrow the rule); any other
 *            modifier, a path, a rule without `||` or `^`, a regexp or a cosmetic rule is
 *            skipped with the reason (each needs a page, a URL or a request type, which we never see)
 * - v2fly:  domain-list-community `data/` files: `domain:`/bare -> subtree, `full:` -> exact,
 *           `include:` followed (with `@attr` / `@-attr` filters) only to files inside the include
 *           directory, symlinks resolved; `keyword:` and `regexp:` skipped;
 *           entries tagged `@ads` are skipped unless asked for (they are trackers, not the service)
 *
 * Every entry is then checked as a list entry is (config/entry.ts): one that
 * names a public suffix is skipped with the reason, so what an import prints
 * always loads, except for names another list already covers (`rules lint`).
 * Without --format the format is told from the content (detectFormat).
 */
export type ListFormat = 'plain' | 'hosts' | 'adblock' | 'v2fly'
export const LIST_FORMATS: readonly ListFormat[] = ['plain', 'hosts', 'adblock', 'v2fly']

export interface Skipped { readonly line: number, readonly text: string, readonly reason: string, readonly file: string }

export interface ImportResult {
  /** Entries in our syntax, sorted and unique. */
  readonly entries: string[]
  /** Allow-exceptions (adblock `@@`), in our syntax. */
  readonly exceptions: string[]
  readonly skipped: Skipped[]
}

export interface ImportOptions {
  /** v2fly: directory holding the files `include:` names (default: none, includes are skipped). */
  readonly includeDir?: string
  /** v2fly: keep entries tagged `@ads`. */
  readonly keepAds?: boolean
  /** Name of the file, for messages. */
  readonly file?: string
}

const MAX_INCLUDE_DEPTH = 16

export function importList (text: string, format: ListFormat, opts: ImportOptions = {}): ImportResult {
  const entries = new Set<string>()
  const exceptions = new Set<string>()
  const skipped: Skipped[] = []
  const file = opts.file ?? '<input>'
  const add = (target: Set<string>, entry: string, line: number, raw: string, f: string): void => {
    // Imported text is normalised (case, IDN, a trailing dot), then checked as any list entry.
    const n = parsePattern(entry)
    const p = isPatternError(n) ? n : checkEntry(n.text, { where: target === exceptions ? 'allow' : 'list' })
    if (isPatternError(p)) skipped.push({ line, text: raw, reason: p.error, file: f })
    else target.add(p.text)
  }
  if (format === 'v2fly') {
    // The top file is on the stack too, so a file that includes it back adds nothing twice.
    const stack = new Set<string>()
    if (opts.file !== undefined) {
      const top = realPath(opts.file)
      if (top !== null) stack.add(top)
    }
    importV2fly(text, file, opts, stack, 0, null, add, entries, skipped)
  } else {
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const raw = (lines[i] as string).replace(/\r$/, '')
      const line = i + 1
      if (format === 'plain') {
        const body = raw.replace(/(^|\s)#.*$/, '').trim()
        if (body !== '') add(entries, body, line, raw, file)
      } else if (format === 'hosts') {
        const body = raw.replace(/#.*$/, '').trim()
        if (body === '') continue
        const fields = body.split(/\s+/)
        if (fields.length < 2 || parseCidr(fields[0] as string) === null || (fields[0] as string).includes('/')) {
          skipped.push({ line, text: raw, reason: 'not an address followed by names', file })
          continue
        }
        for (const host of fields.slice(1)) {
          if (host === 'localhost' || host.startsWith('localhost.') || host === 'broadcasthost' || host.startsWith('ip6-')) continue
          add(entries, '=' + host, line, raw, file)
        }
      } else {
        const r = adblockRule(raw.trim())
        if (r === null) continue
        if ('reason' in r) skipped.push({ line, text: raw, reason: r.reason, file })
        else add(r.exception ? exceptions : entries, r.entry, line, raw, file)
      }
    }
  }
  return { entries: [...entries].sort(), exceptions: [...exceptions].sort(), skipped }
}

function realPath (p: string): string | null {
  try {
    return realpathSync(p)
  } catch {
    return null
  }
}

/**
 * The real path of the file an `include:` names, or null when the name could
 * lead out of the include directory: the name comes from the imported file,
 * so it is outside data. No absolute paths, no `..`, and after symlinks the
 * file must still lie inside the directory.
 */
function includePath (dir: string, name: string): string | null {
  if (name === '' || isAbsolute(name) || name.split(/[\\/]/).includes('..')) return null
  const root = realPath(dir)
  const target = realPath(join(dir, name))
  if (root === null) return null
  if (target === null) return join(root, name)
  return target.startsWith(root.endsWith(sep) ? root : root + sep) ? target : null
}

type AttrFilter = { want: string[], not: string[] } | null

function importV2fly (
  text: string, file: string, opts: ImportOptions, stack: Set<string>, depth: number, filter: AttrFilter,
  add: (t: Set<string>, e: string, line: number, raw: string, f: string) => void,
  entries: Set<string>, skipped: Skipped[]
): void {
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, '')
    const line = i + 1
    const body = raw.replace(/#.*$/, '').trim()
    if (body === '') continue
    const parts = body.split(/\s+/)
    const head = parts[0] as string
    const attrs = parts.slice(1).filter((a) => a.startsWith('@')).map((a) => a.slice(1))
    const colon = head.indexOf(':')
    const kind = colon < 0 ? 'domain' : head.slice(0, colon)
    const value = colon < 0 ? head : head.slice(colon + 1)
    if (kind === 'include') {
      if (opts.includeDir === undefined) { skipped.push({ line, text: raw, reason: 'include: needs --include-dir', file }); continue }
      const incFile = includePath(opts.includeDir, value)
      if (incFile === null) { skipped.push({ line, text: raw, reason: 'include: must name a file inside --include-dir', file }); continue }
      if (depth >= MAX_INCLUDE_DEPTH || stack.has(incFile)) { skipped.push({ line, text: raw, reason: 'include cycle or too deep', file }); continue }
      let incText: string
      try {
        // The name comes from the imported file: only a regular file, and not a huge one.
        incText = readTextFile(incFile, 'include', MAX_LIST_BYTES)
      } catch (err) {
        skipped.push({ line, text: raw, reason: err instanceof ReadError ? err.message : `cannot read ${incFile}`, file })
        continue
      }
      // The filter of an outer include also holds for everything it pulls in.
      const incFilter: AttrFilter = attrs.length === 0
        ? filter
        : { want: attrs.filter((a) => !a.startsWith('-')), not: attrs.filter((a) => a.startsWith('-')).map((a) => a.slice(1)) }
      stack.add(incFile)
      importV2fly(incText, incFile, opts, stack, depth + 1, incFilter, add, entries, skipped)
      stack.delete(incFile)
      continue
    }
    if (filter !== null) {
      if (!filter.want.every((a) => attrs.includes(a)) || filter.not.some((a) => attrs.includes(a))) continue
    }
    if (attrs.includes('ads') && opts.keepAds !== true) { skipped.push({ line, text: raw, reason: 'tagged @ads (tracker, not the service)', file }); continue }
    if (kind === 'domain') add(entries, value, line, raw, file)
    else if (kind === 'full') add(entries, '=' + value, line, raw, file)
    else skipped.push({ line, text: raw, reason: `${kind}: entries are not imported (no exact equivalent)`, file })
  }
}

/** Modifiers that do not narrow a `||name^` rule: read as the rule without them. */
const READ_MODIFIERS = new Set(['important', 'all'])
const PARTY = new Set(['third-party', '3p', 'first-party', '1p', 'strict3p', 'strict1p', 'strict-third-party', 'strict-first-party'])
const REQUEST_TYPES = new Set(['document', 'doc', 'script', 'image', 'stylesheet', 'css', 'xmlhttprequest', 'xhr', 'subdocument', 'frame',
  'media', 'font', 'websocket', 'ping', 'other', 'object', 'popup', 'popunder', 'inline-script', 'inline-font', 'webrtc', 'genericblock', 'generichide', 'elemhide', 'ehide', 'content', 'jsinject', 'urlblock', 'extension'])
const DNS_MODIFIERS = new Set(['client', 'ctag', 'dnstype', 'dnsrewrite'])

/** Why a modifier cannot be read at the level of names, or null when it can. */
function modifierReason (mod: string): string | null {
  const eq = mod.indexOf('=')
  const name = (eq < 0 ? mod : mod.slice(0, eq)).replace(/^~/, '').toLowerCase()
  if (READ_MODIFIERS.has(name) && !mod.startsWith('~') && eq < 0) return null
  const m = `modifier $${mod}`
  if (PARTY.has(name)) return `${m}: the rule depends on whether the request is first- or third-party, and aigate sees no page to tell`
  if (REQUEST_TYPES.has(name)) return `${m}: the rule applies to some request types only, and aigate sees names, not requests`
  if (name === 'domain' || name === 'from' || name === 'to') return `${m}: the rule applies on some pages only, and aigate sees no page`
  if (name === 'denyallow') return `${m}: the rule excepts the requests of some pages, and aigate sees no page`
  if (name === 'badfilter') return `${m}: the rule disables another rule`
  if (DNS_MODIFIERS.has(name)) return `${m}: an AdGuard Home client or DNS answer rule, not a name to list`
  return `${m}: not a plain block, with no equivalent for a name`
}

/**
 * One adblock or AdGuard line: null for a comment or header, the entry in our
 * syntax, or the reason it is skipped.
 */
export function adblockRule (body: string): { entry: string, exception: boolean } | { reason: string } | null {
  if (body === '' || body.startsWith('!') || /^\[.*\]$/.test(body)) return null
  if (/#[@?$%]?#|#@[$%?]#/.test(body)) return { reason: 'a cosmetic (element hiding) rule: aigate sees names, not pages' }
  if (body.startsWith('#')) return null // AdGuard DNS lists also take # comments
  let rest = body
  const exception = rest.startsWith('@@')
  if (exception) rest = rest.slice(2)
  if (rest.startsWith('/') && rest.length > 1) return { reason: 'a regular expression: no exact equivalent for a name' }
  if (!rest.startsWith('||')) return { reason: 'not anchored with ||: the rule matches inside URLs, not a name' }
  rest = rest.slice(2)
  const dollar = rest.indexOf('$')
  const target = dollar < 0 ? rest : rest.slice(0, dollar)
  if (dollar >= 0) {
    for (const mod of rest.slice(dollar + 1).split(',')) {
      const why = modifierReason(mod.trim())
      if (why !== null) return { reason: why }
    }
  }
  if (target.includes('/')) return { reason: 'the rule has a path: aigate sees names, never URLs' }
  if (!target.endsWith('^')) {
    return target.endsWith('^|')
      ? { reason: 'the rule ends with |: it matches only URLs that end there' }
      : { reason: 'no ^ after the name: the rule also matches names that only begin with it (example.com matches example.com.evil.example)' }
  }
  let name = target.slice(0, -1)
  // AdGuard `||*.example.com^`: the subdomains of example.com, not the name itself: our `*.example.com`.
  const subdomains = name.startsWith('*.')
  if (subdomains) name = name.slice(2)
  if (name.includes('*')) return { reason: 'a wildcard inside the name: no exact equivalent' }
  if (!/^[a-z0-9._-]+$/i.test(name) && !/[^\x00-\x7f]/.test(name)) return { reason: 'not a host name' }
  return { entry: (subdomains ? '*.' : '') + name, exception }
}

/**
 * The format of a list, told from its content: a line no other format has
 * decides (`||x^`, `!` comments for adblock; `full:`, `domain:`, `include:`,
 * an `@attr` for v2fly; an address before the names for hosts). Names alone
 * are plain (a v2fly file of bare names reads the same either way). Lines
 * that point two ways are an error naming both, so --format must be given.
 */
export function detectFormat (text: string): { format: ListFormat } | { error: string } {
  const first = new Map<ListFormat, number>()
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const body = (lines[i] as string).replace(/\r$/, '').trim()
    if (body === '' || (body.startsWith('#') && !body.startsWith('##'))) continue
    let f: ListFormat | null = null
    if (body.startsWith('!') || body.startsWith('||') || body.startsWith('@@') || /^\[adblock/i.test(body) || body.includes('^') || /#[@?$%]?#/.test(body)) f = 'adblock'
    else if (/^(domain|full|include|keyword|regexp):/.test(body) || /\s@[a-z!-]+(\s|$)/i.test(body)) f = 'v2fly'
    else if (/^\S+\s+\S/.test(body) && parseCidr(body.split(/\s+/)[0] as string) !== null) f = 'hosts'
    if (f !== null && !first.has(f)) first.set(f, i + 1)
  }
  if (first.size === 0) return { format: 'plain' }
  if (first.size === 1) return { format: [...first.keys()][0] as ListFormat }
  const seen = [...first].map(([f, l]) => `${f} at line ${l}`).join(', ')
  return { error: `cannot tell the format from the content (${seen}); give --format` }
}
