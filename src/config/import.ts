import { realpathSync } from 'node:fs'
import { isAbsolute, join, sep } from 'node:path'
import { parsePattern, isPatternError } from '../match/pattern.js'
import { MAX_LIST_BYTES, readTextFile, ReadError } from './read.js'

/**
 * Importers for the list formats admins already keep. Each turns a file into
 * entries of our own list syntax (see config/lists.ts); the daemon compiles
 * only that syntax, so an import is a reviewable, diffable step.
 *
 * - plain:  `example.com` per line -> the name and its subdomains
 * - hosts:  `0.0.0.0 a.example b.example` -> each name exactly (`=a.example`)
 * - adblock: `||example.com^` -> name and subdomains; `@@||x^` -> an allow-exception;
 *            rules with paths, options or wildcards are skipped (they need a URL, which we never see)
 * - v2fly:  domain-list-community `data/` files: `domain:`/bare -> subtree, `full:` -> exact,
 *           `include:` followed (with `@attr` / `@-attr` filters) only to files inside the include
 *           directory, symlinks resolved; `keyword:` and `regexp:` skipped;
 *           entries tagged `@ads` are skipped unless asked for (they are trackers, not the service)
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
    const p = parsePattern(entry)
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
        for (const host of fields.slice(1)) {
          if (host === 'localhost' || host.startsWith('localhost.') || host === 'broadcasthost' || host.startsWith('ip6-')) continue
          add(entries, '=' + host, line, raw, file)
        }
      } else {
        const body = raw.trim()
        if (body === '' || body.startsWith('!') || body.startsWith('[')) continue
        const m = /^(@@)?\|\|([a-z0-9.*_-]+)\^(\$important)?$/i.exec(body)
        if (m === null || (m[2] as string).includes('*')) {
          skipped.push({ line, text: raw, reason: 'not a plain ||domain^ rule', file })
          continue
        }
        add(m[1] === '@@' ? exceptions : entries, m[2] as string, line, raw, file)
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
