import { parseName, NameOut, MAX_LABEL_LENGTH } from '../name/index.js'

/**
 * One list entry, compiled: `example.com` (the name and all its subdomains),
 * `=api.example.com` (exactly that name), `*` as a whole label (exactly one
 * label), `pre*suf` inside a label (a glob within that one label).
 */
export interface Pattern {
  /** The entry as written in the list (normalised). */
  readonly text: string
  /** true for `=name`: this name only; false: the name and its subdomains. */
  readonly exact: boolean
  /** Labels from right to left (TLD first): a literal, `*`, or a glob `pre*suf`. */
  readonly labels: readonly string[]
}

export type PatternError = { error: string }

const GLOB_LABEL = /^[a-z0-9_-]*\*[a-z0-9_-]*$/

/** Parse one entry of our list syntax; returns the pattern or an error text. */
export function parsePattern (entry: string): Pattern | PatternError {
  let text = entry.trim()
  let exact = false
  if (text.startsWith('=')) { exact = true; text = text.slice(1) }
  if (text === '') return { error: 'empty pattern' }
  if (text.endsWith('.')) text = text.slice(0, -1)
  const out = new NameOut()
  if (!text.includes('*')) {
    if (!parseName(text, out)) return { error: `invalid name "${text}": ${out.error}` }
    text = out.name
    return { text: (exact ? '=' : '') + text, exact, labels: text.split('.').reverse() }
  }
  const labels = text.toLowerCase().split('.')
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as string
    if (l === '*') continue
    if (l.includes('*')) {
      if (!GLOB_LABEL.test(l)) return { error: `invalid glob label "${l}": at most one * and letters, digits, - or _` }
      if (l.length > MAX_LABEL_LENGTH) return { error: `label too long "${l}"` }
      continue
    }
    if (!parseName(l, out) || out.name.includes('.')) return { error: `invalid label "${l}": ${out.error ?? 'dot'}` }
    labels[i] = out.name
  }
  if (labels.every((l) => l.includes('*'))) return { error: `pattern "${text}" has no literal label` }
  // `*.com` or `openai.*` would match far more than one vendor.
  if (labels.slice(-2).some((l) => l.includes('*'))) return { error: `pattern "${text}": no wildcard in the last two labels (too broad)` }
  const norm = labels.join('.')
  return { text: (exact ? '=' : '') + norm, exact, labels: labels.reverse() }
}

export function isPatternError (p: Pattern | PatternError): p is PatternError {
  return (p as PatternError).error !== undefined
}
