import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { pathToFileURL } from 'node:url'
import { PACKAGE_ROOT } from '../../../src/config/index.js'
import { FIXTURES } from '../../helpers/fixtures.js'

/**
 * `aigate classify` run from the TypeScript source (through tap's loader), in
 * a child process: decision lines go to descriptor 1 directly.
 */
const LOADER = process.execArgv.find((a) => a.includes('@tapjs/typescript')) ??
  `--import=${pathToFileURL(join(PACKAGE_ROOT, 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs')).href}`
const MAIN = pathToFileURL(join(PACKAGE_ROOT, 'src', 'cli', 'main.ts')).href
const PCAP = join(FIXTURES, 'pcap', 'clients.pcap')

const NODE_ARGS = [LOADER, '--input-type=module', '-e', `import(${JSON.stringify(MAIN)}).then((m) => m.main(process.argv.slice(1)))`, '--']

function aigate (args: string[], input?: Buffer, env?: NodeJS.ProcessEnv): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [...NODE_ARGS, ...args],
    { encoding: 'utf8', ...(input !== undefined ? { input } : {}), ...(env !== undefined ? { env: { ...process.env, ...env } } : {}) })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** `cat file | aigate args`: stdin is a pipe, as from a shell (spawn's own stdin is a socket). */
function aigatePiped (file: string, args: string[], env: NodeJS.ProcessEnv): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync('sh', ['-c', 'f=$1; shift; cat "$f" | "$@"', 'sh', file, process.execPath, ...NODE_ARGS, ...args],
    { encoding: 'utf8', env: { ...process.env, ...env } })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Lines with observer.name (the capture file's name, which differs between these runs) left out. */
const anyCapture = (s: string): string => s.replace(/"observer":\{[^}]*\}/g, '"observer":{}')

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
  t.ok(anyCapture(whole.stdout).startsWith(anyCapture(r.stdout)), 'the same lines as the whole capture begins with')
  t.match(r.stdout, /"observer":\{[^}]*"name":"cut\.pcap"\}/, 'observer.name: the capture file')
})

t.test('stdin (-) and a pipe are read through a private copy, removed afterwards', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-cli-tmp-'))
  const bytes = readFileSync(PCAP)
  const copies = (): string[] => readdirSync(tmp).filter((f) => f.startsWith('aigate-'))
  for (const arg of ['-', '/dev/stdin']) {
    // `-` with stdin a socket, `/dev/stdin` with stdin a pipe (as `<(cat x.pcap)` gives).
    const r = arg === '-' ? aigate(['classify', arg], bytes, { TMPDIR: tmp }) : aigatePiped(PCAP, ['classify', arg], { TMPDIR: tmp })
    t.equal(r.status, 0, `${arg}: exit 0 (${r.stderr.trim()})`)
    t.equal(anyCapture(r.stdout), anyCapture(whole.stdout), `${arg}: the same lines as the file gives`)
    t.match(r.stderr, new RegExp(`^aigate: ${arg}: \\d+ packets, `), 'the summary names the input as given')
    t.same(copies(), [], 'the copy is gone')
  }
  const junk = aigate(['classify', '-'], Buffer.from('not a capture\n'), { TMPDIR: tmp })
  t.equal(junk.status, 1)
  t.equal(junk.stderr, 'aigate: -: not a pcap or pcapng capture file\n', 'errors name the input, not the copy')
  t.same(copies(), [], 'the copy is gone after an error too')
})
