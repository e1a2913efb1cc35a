import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { pathToFileURL } from 'node:url'
import { PACKAGE_ROOT } from '../../src/config/index.js'
import { FIXTURES } from '../helpers/fixtures.js'

/**
 * `aigate classify` run from the TypeScript source (through tap's loader), in
 * a child process: decision lines go to descriptor 1 directly.
 */
const LOADER = process.execArgv.find((a) => a.includes('@tapjs/typescript')) ??
  `--import=${pathToFileURL(join(PACKAGE_ROOT, 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs')).href}`
const MAIN = pathToFileURL(join(PACKAGE_ROOT, 'src', 'cli', 'main.ts')).href
const PCAP = join(FIXTURES, 'pcap', 'clients.pcap')

function aigate (args: string[], input?: Buffer): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [LOADER, '--input-type=module', '-e', `import(${JSON.stringify(MAIN)}).then((m) => m.main(process.argv.slice(1)))`, '--', ...args],
    { encoding: 'utf8', ...(input !== undefined ? { input } : {}) })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const dir = mkdtempSync(join(tmpdir(), 'aigate-cli-classify-'))
const whole = aigate(['classify', '-q', PCAP])

t.test('a capture cut off mid-record: the decisions before the cut are written, then the error', async (t) => {
  const full = readFileSync(PCAP)
  const cut = join(dir, 'cut.pcap')
  writeFileSync(cut, full.subarray(0, Math.floor(full.length / 2)))
  const r = aigate(['classify', '-q', cut])
  t.equal(r.status, 1)
  t.match(r.stderr, /cut\.pcap: truncated or corrupt after packet \d+\n$/)
  t.ok(r.stdout.split('\n').length > 5, 'some decisions were made before the cut')
  t.ok(whole.stdout.startsWith(r.stdout), 'the same lines as the whole capture begins with')
})
