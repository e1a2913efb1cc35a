import { readFileSync } from 'node:fs'

/** aigate's version, from package.json (from src/util and dist/src/util alike); '0.0.0' when unreadable. */
export function readVersion (): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'aigate' && typeof pkg.version === 'string') return pkg.version
    } catch { /* try the next */ }
  }
  return '0.0.0'
}
