import { readdirSync } from 'node:fs'
import { join, basename } from 'node:path'
import { isPatternError } from '../match/pattern.js'
import { checkEntry, needsMark, SUFFIX_MARK } from './entry.js'
import type { ListEntry, VendorList } from '../rules/index.js'
import { AigateError } from '../util/errors.js'
import { MAX_LIST_BYTES, readTextFile, ReadError } from './read.js'
import { overlapProblems } from './overlap.js'

/**
 * Vendor list files (rules/vendors/<vendor>.txt), our one compiled format:
 *
 *   # vendor: openai            (must equal the file's basename)
 *   # title: OpenAI / ChatGPT
 *   # category: ai
 *   # source: <url> (retrieved YYYY-MM-DD)      (one or more)
 *   openai.com                  the name and all its subdomains
 *   =api.example.com            exactly this name
 *   bedrock-runtime.*.amazonaws.com   `*` = exactly one label; `*-aiplatform` = glob in a label
 *
 * A line that names a public suffix on purpose says so: `hf.space  # public-suffix: <why>`
 * (config/entry.ts). Problems are reported as `file:line: message`, all of
 * them, not only the first.
 */

export type { ListEntry, VendorList }

/** A rule file's name and the text read from it: what the main thread checked and the workers compile. */
export interface FileText { readonly file: string, readonly text: string }

/** Rule lists or a policy that cannot be used: every problem, one `file:line: message` each. */
export class ConfigError extends AigateError {
  readonly #problems: readonly string[]
  constructor (problems: readonly string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
    this.#problems = problems
  }

  override get problems (): readonly string[] { return this.#problems }
}

const HEADER = /^#\s*(vendor|title|category|source):\s*(.*?)\s*$/
/** A vendor id (the list's file name) or a category: lower case letters, digits and -. */
export const VENDOR_ID = /^[a-z0-9][a-z0-9-]*$/

/** The text without one leading UTF-8 byte order mark, which some Windows editors write. */
export function stripBom (text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
}

/**
 * Parse one list file's text. `problems` collects every error: an entry or a
 * header the loader refuses, so nothing that has one is ever loaded.
 * `warnings` collects what lint points out but loading does not need (order,
 * a repeated entry, the title and source headers); see config/index.ts.
 */
export function parseList (text: string, file: string, problems: string[], warnings: string[] = []): VendorList {
  const header: Record<string, string> = {}
  const sources: string[] = []
  const entries: ListEntry[] = []
  const seen = new Map<string, number>()
  let previous = ''
  const lines = stripBom(text).split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, '')
    const lineNo = i + 1
    const h = HEADER.exec(raw)
    if (h !== null) {
      const key = h[1] as string
      const value = h[2] as string
      if (key === 'source') sources.push(value)
      else if (header[key] !== undefined) problems.push(`${file}:${lineNo}: duplicate "# ${key}:" header`)
      else header[key] = value
      continue
    }
    const body = raw.replace(/(^|\s)#.*$/, '').trim()
    if (body === '') continue
    if (/\s/.test(body)) { problems.push(`${file}:${lineNo}: one pattern per line, got "${body}"`); continue }
    const mark = SUFFIX_MARK.exec(raw)
    if (mark !== null && mark[1] === undefined) { problems.push(`${file}:${lineNo}: "# public-suffix:" needs the reason the whole suffix is the vendor's`); continue }
    const p = checkEntry(body, { marked: mark !== null, where: 'list' })
    if (isPatternError(p)) { problems.push(`${file}:${lineNo}: ${p.error}`); continue }
    if (mark !== null && !needsMark(p)) warnings.push(`${file}:${lineNo}: "${body}" is not a public suffix: the "# public-suffix:" mark is not needed`)
    const dup = seen.get(p.text)
    if (dup !== undefined) warnings.push(`${file}:${lineNo}: duplicate of line ${dup}`)
    else if (body < previous) warnings.push(`${file}:${lineNo}: not sorted: "${body}" after "${previous}"`)
    previous = body
    if (dup !== undefined) continue
    seen.set(p.text, lineNo)
    entries.push({ pattern: p, line: lineNo })
  }
  const expected = basename(file).replace(/\.txt$/, '')
  const vendor = header.vendor ?? ''
  if (vendor === '') problems.push(`${file}:1: missing "# vendor: ${expected}" header`)
  else if (vendor !== expected) problems.push(`${file}:1: "# vendor: ${vendor}" must equal the file name "${expected}"`)
  else if (!VENDOR_ID.test(vendor)) problems.push(`${file}:1: vendor "${vendor}" must be lower case letters, digits and -`)
  if (header.category === undefined || header.category === '') problems.push(`${file}:1: missing "# category:" header`)
  if (sources.length === 0) warnings.push(`${file}:1: missing "# source:" header (where the entries come from)`)
  if (header.title === undefined) warnings.push(`${file}:1: missing "# title:" header`)
  return {
    vendor: vendor === '' ? expected : vendor,
    title: header.title ?? vendor,
    category: header.category ?? 'ai',
    sources,
    file,
    entries,
  }
}

/**
 * Read every `*.txt` list in a directory, sorted by name, each regular file
 * once. Returns the texts as read, for parseLists; a file that cannot be read
 * is a problem that names it.
 */
export function readLists (dir: string, problems: string[]): FileText[] {
  let names: string[]
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.txt')).sort()
  } catch (err) {
    problems.push(`${dir}: cannot read rules directory: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
    return []
  }
  if (names.length === 0) { problems.push(`${dir}: no *.txt vendor lists found`); return [] }
  const texts: FileText[] = []
  for (const n of names) {
    const file = join(dir, n)
    try {
      // Only regular files: a FIFO or a device named *.txt would hang the loader.
      texts.push({ file, text: readTextFile(file, 'list', MAX_LIST_BYTES) })
    } catch (err) {
      if (!(err instanceof ReadError)) throw err
      problems.push(err.message)
    }
  }
  return texts
}

/**
 * Parse lists already read: every file on its own, then the names two lists
 * both cover (config/overlap.ts). Problems and warnings as parseList.
 */
export function parseLists (texts: readonly FileText[], problems: string[], warnings: string[] = []): VendorList[] {
  const lists = texts.map((t) => parseList(t.text, t.file, problems, warnings))
  problems.push(...overlapProblems(lists))
  return lists
}

/** Read and check the lists of a directory; throws ConfigError listing every problem. */
export function loadLists (dir: string, warnings: string[] = []): VendorList[] {
  const problems: string[] = []
  const lists = parseLists(readLists(dir, problems), problems, warnings)
  if (problems.length > 0) throw new ConfigError(problems)
  return lists
}
