import { parse as parseDomain } from 'tldts'
import { parsePattern, isPatternError, type Pattern } from '../match/pattern.js'

/**
 * One entry of a vendor list or of the policy's `allow:`, checked the same way
 * wherever it is read (lint, check, classify, run, reload, import). The entry
 * must already be in the form the matcher compiles, and it must not cover a
 * public suffix.
 *
 * Public suffixes come from the Public Suffix List as `tldts` ships it, with
 * its private section (`github.io`, `hf.space`, `googleapis.com`): names under
 * one belong to different owners, so one entry for the suffix blocks all of
 * them. `com` in a list would take every .com name with it.
 *
 * - An ICANN suffix (`com`, `co.uk`), and any one-label name (a TLD, known or
 *   not), is never a subtree entry, nor the tail of a wildcard that stands for
 *   the label in front of it (`*-x.co.uk`).
 * - A private-section suffix is the one case a vendor list may need: some
 *   vendors put their own user-content domain on the list (`hf.space`,
 *   `claudeusercontent.com`, `chatgpt.site`), so every name under it is the
 *   vendor's. Such an entry says so, on its line:
 *       hf.space  # public-suffix: Hugging Face's own Spaces domain
 *   and the reason is there for the reviewer. Without the mark it is refused.
 * - An `=exact` entry names one host only. It may name a public suffix of
 *   either kind where a vendor serves from that very host (`=ai.studio`), with
 *   the same mark.
 */

/** The trailing comment that marks an entry as knowingly naming a public suffix: `# public-suffix: <why>`. */
export const SUFFIX_MARK = /(?:^|\s)#\s*public-suffix:\s*(\S.*?)?\s*$/

const PSL = { allowPrivateDomains: true, extractHostname: false, validateHostname: false, detectIp: false, mixedInputs: false } as const

/** The public suffix `name` is, with its section, or null when it is not one. */
export function publicSuffix (name: string): { kind: 'icann' | 'private' } | null {
  if (!name.includes('.')) return { kind: 'icann' } // a TLD, or a one-label name under no TLD at all
  const r = parseDomain(name, PSL)
  if (r.publicSuffix !== name) return null
  return { kind: r.isPrivate === true ? 'private' : 'icann' }
}

/**
 * The literal labels to the right of the pattern's rightmost `*` or glob
 * label, joined (`googleapis.com` for `*-aiplatform.googleapis.com`), or null
 * for a pattern without one.
 */
function literalTail (p: Pattern): string | null {
  // labels run TLD first
  const i = p.labels.findIndex((l) => l.includes('*'))
  return i < 0 ? null : p.labels.slice(0, i).reverse().join('.')
}

export interface EntryOptions {
  /** The entry's line carries `# public-suffix: <why>`. */
  readonly marked?: boolean
  /** Where the entry is: `allow` entries in the policy cannot carry the mark. */
  readonly where?: 'list' | 'allow'
}

/**
 * Check one entry as written (no comment, trimmed). Returns the pattern, or
 * the reason it is refused (a message without the file:line in front).
 */
export function checkEntry (body: string, opts: EntryOptions = {}): Pattern | { error: string } {
  const p = parsePattern(body)
  if (isPatternError(p)) return p
  // What the matcher would compile must be what the file says: `bad..` must
  // not quietly become `bad`, nor `OpenAI.com.` `openai.com`.
  if (p.text !== body) return { error: `"${body}" would be read as "${p.text}": write "${p.text}" (lower case, punycode, no trailing dot)` }
  const suffixProblem = suffixError(p, opts)
  return suffixProblem === null ? p : { error: suffixProblem }
}

function suffixError (p: Pattern, opts: EntryOptions): string | null {
  const marked = opts.marked === true
  const mark = opts.where === 'allow'
    ? 'an allow-exception cannot name one'
    : 'if the vendor owns the whole suffix, say so after the entry: "# public-suffix: <why>"'
  const tail = literalTail(p)
  if (tail === null) {
    const name = p.exact ? p.text.slice(1) : p.text
    const s = publicSuffix(name)
    if (s === null) return null
    if (p.exact) {
      if (marked && opts.where !== 'allow') return null
      return `"${p.text}" names the public suffix "${name}"; an exact entry may name one only where a vendor serves from that host: ` +
        (opts.where === 'allow' ? 'an allow-exception cannot name one' : 'mark it "# public-suffix: <why>"')
    }
    if (s.kind === 'icann') return `"${p.text}" is a public suffix (a top-level domain or ICANN suffix): it would match every name under it`
    if (marked && opts.where !== 'allow') return null
    return `"${p.text}" is a public suffix (PSL private section: the names under it belong to different owners); ${mark}`
  }
  const s = publicSuffix(tail)
  if (s === null) return null
  const why = `"${p.text}": the wildcard stands for the label in front of the public suffix "${tail}", so it matches names of many owners`
  if (s.kind === 'icann') return why
  if (marked && opts.where !== 'allow') return null
  return `${why}; ${mark}`
}

/** True when `p` names or spans a public suffix, so it needs the mark (a mark on any other entry is noise). */
export function needsMark (p: Pattern): boolean {
  return suffixError(p, {}) !== null
}
