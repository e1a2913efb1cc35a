import { readdirSync } from 'node:fs'
import { join, basename } from 'node:path'
import { parsePattern, isPatternError } from '../match/pattern.js'
import type { ListEntry, VendorList } from '../rules/index.js'
import { AigateError } from '../util/errors.js'
import { MAX_LIST_BYTES, readTextFile, ReadError } from './read.js'

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
 * Problems are reported as `file:line: message`, all of them, not only the first.
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

/** Parse one list file's text. `problems` collects every error; `strict` adds order/duplicate checks. */
export function parseList (text: string, file: string, problems: string[], strict = false): VendorList {
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
    const p = parsePattern(body)
    if (isPatternError(p)) { problems.push(`${file}:${lineNo}: ${p.error}`); continue }
    if (strict) {
      if (p.text !== body) problems.push(`${file}:${lineNo}: write "${p.text}" (lower case, punycode, no trailing dot)`)
      const dup = seen.get(p.text)
      if (dup !== undefined) problems.push(`${file}:${lineNo}: duplicate of line ${dup}`)
      else if (body < previous) problems.push(`${file}:${lineNo}: not sorted: "${body}" after "${previous}"`)
      previous = body
    }
    seen.set(p.text, lineNo)
    entries.push({ pattern: p, line: lineNo })
  }
  const expected = basename(file).replace(/\.txt$/, '')
  const vendor = header.vendor ?? ''
  if (vendor === '') problems.push(`${file}:1: missing "# vendor: ${expected}" header`)
  else if (vendor !== expected) problems.push(`${file}:1: "# vendor: ${vendor}" must equal the file name "${expected}"`)
  else if (!VENDOR_ID.test(vendor)) problems.push(`${file}:1: vendor "${vendor}" must be lower case letters, digits and -`)
  if (header.category === undefined || header.category === '') problems.push(`${file}:1: missing "# category:" header`)
  if (strict && sources.length === 0) problems.push(`${file}:1: missing "# source:" header (where the entries come from)`)
  if (strict && header.title === undefined) problems.push(`${file}:1: missing "# title:" header`)
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
 * Read every `*.txt` list in a directory, sorted by name. Throws ConfigError
 * listing all problems. `texts`, when given, receives each file's text as read
 * and parsed, in the same order, for parseLists to compile again elsewhere.
 */
export function loadLists (dir: string, strict = false, texts?: FileText[]): VendorList[] {
  let names: string[]
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.txt')).sort()
  } catch (err) {
    throw new ConfigError([`${dir}: cannot read rules directory: ${(err as NodeJS.ErrnoException).code ?? String(err)}`])
  }
  if (names.length === 0) throw new ConfigError([`${dir}: no *.txt vendor lists found`])
  const problems: string[] = []
  const lists: VendorList[] = []
  for (const n of names) {
    const file = join(dir, n)
    let text: string
    try {
      // Only regular files: a FIFO or a device named *.txt would hang the loader.
      text = readTextFile(file, 'list', MAX_LIST_BYTES)
    } catch (err) {
      if (!(err instanceof ReadError)) throw err
      problems.push(err.message)
      continue
    }
    texts?.push({ file, text })
    lists.push(parseList(text, file, problems, strict))
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return lists
}

/** Parse lists already read (by loadLists): no file is opened. Throws ConfigError listing all problems. */
export function parseLists (texts: readonly FileText[], strict = false): VendorList[] {
  const problems: string[] = []
  const lists = texts.map((t) => parseList(t.text, t.file, problems, strict))
  if (problems.length > 0) throw new ConfigError(problems)
  return lists
}
