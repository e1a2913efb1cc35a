import { parseList, type FileText } from '../config/lists.js'

/** What `aigate rules update` changes, per vendor list: the entries added and removed. */

export interface VendorDiff {
  readonly vendor: string
  /** 'new': no such list before; 'changed': entries differ; 'headers': the same entries, other header lines. */
  readonly kind: 'new' | 'changed' | 'headers'
  readonly added: readonly string[]
  readonly removed: readonly string[]
}

/** The entries of each list (by file name without .txt), as the loader reads them; a list's problems are lint's to report. */
export function entriesByVendor (texts: readonly FileText[]): Map<string, { entries: Set<string>, text: string }> {
  const m = new Map<string, { entries: Set<string>, text: string }>()
  for (const t of texts) {
    const list = parseList(t.text, t.file, [], [])
    const name = t.file.replace(/^.*\//, '').replace(/\.txt$/, '')
    m.set(name, { entries: new Set(list.entries.map((e) => e.pattern.text)), text: t.text })
  }
  return m
}

/**
 * The lists that differ between `before` and `after`, sorted by vendor. Lists
 * only in `before` are not reported: an update never removes a list (it keeps
 * every list no source names).
 */
export function diffLists (before: ReadonlyMap<string, { entries: Set<string>, text: string }>, after: ReadonlyMap<string, { entries: Set<string>, text: string }>): VendorDiff[] {
  const out: VendorDiff[] = []
  for (const vendor of [...after.keys()].sort()) {
    const a = after.get(vendor) as { entries: Set<string>, text: string }
    const b = before.get(vendor)
    if (b === undefined) { out.push({ vendor, kind: 'new', added: [...a.entries].sort(), removed: [] }); continue }
    if (b.text === a.text) continue
    const added = [...a.entries].filter((e) => !b.entries.has(e)).sort()
    const removed = [...b.entries].filter((e) => !a.entries.has(e)).sort()
    out.push({ vendor, kind: added.length + removed.length === 0 ? 'headers' : 'changed', added, removed })
  }
  return out
}

/** The diff for a person: a line per vendor, then `+ name` / `- name` lines. */
export function diffText (diffs: readonly VendorDiff[]): string[] {
  const lines: string[] = []
  for (const d of diffs) {
    if (d.kind === 'new') lines.push(`${d.vendor}: new list, ${d.added.length} entries`)
    else if (d.kind === 'headers') lines.push(`${d.vendor}: the same entries, header lines changed`)
    else lines.push(`${d.vendor}: ${d.added.length} added, ${d.removed.length} removed`)
    for (const e of d.added) lines.push(`  + ${e}`)
    for (const e of d.removed) lines.push(`  - ${e}`)
  }
  return lines
}
