import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures')

export interface Expected {
  kind: 'tls' | 'dns' | 'http'
  sni?: string
  alpn?: string[]
  names?: string[]
  qtypes?: number[]
  host?: string
}

/** test/fixtures/expected.json: what tshark read in each payload fixture. */
export function expected (): Record<string, Expected> {
  return JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as Record<string, Expected>
}

/** Every payload fixture of a protocol folder, as [relative name, bytes]. */
export function payloads (proto: 'tls' | 'dns' | 'http'): Array<[string, Buffer]> {
  const dir = join(FIXTURES, proto)
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter((f) => f.endsWith('.bin')).sort()
    .map((f) => [`${proto}/${f}`, readFileSync(join(dir, f))])
}
