import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FIXTURES } from '../../helpers/fixtures.js'
import { Netns, netnsSkipReason, waitFor } from '../../helpers/netns.js'

/**
 * Every command ends quietly when its reader goes away (issue 12, item 4):
 * `aigate check x | head -1` used to print "Error: write EPIPE" and a stack
 * trace and exit 1, because Node ignores SIGPIPE and the failed write comes
 * back as an 'error' event on process.stdout that nobody handled. The built
 * CLI runs here as a shell runs it, piped into `head -n 0`, which exits
 * before reading anything, so the first write already meets a closed pipe.
 */

const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))
const PCAP = join(FIXTURES, 'pcap', 'clients.pcap')

interface Exit { status: number | null, stdout: string, stderr: string }

/**
 * `aigate args | reader` in bash: the status is aigate's (PIPESTATUS), the
 * stderr is what aigate wrote there (with `merge`, stderr goes into the pipe too).
 */
function piped (args: string[], reader = 'head -n 0', merge = false): Exit {
  const script = `"$@" ${merge ? '2>&1 ' : ''}| ${reader}; exit "\${PIPESTATUS[0]}"`
  const r = spawnSync('bash', ['-c', script, 'bash', process.execPath, BIN, ...args], { encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const dir = mkdtempSync(join(tmpdir(), 'aigate-epipe-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const list = join(dir, 'list.txt')
writeFileSync(list, 'b.example\na.example\n')

t.test('a reader that closes at once: no stack, no EPIPE message, exit 0', async (t) => {
  const cases: string[][] = [
    ['check', 'api.openai.com', 'chatgpt.com', 'example.org'],
    ['check', '--json', 'api.anthropic.com'],
    ['rules', 'lint'],
    ['rules', 'import', list, '--format', 'plain', '--vendor', 'x'],
    ['classify', '-q', PCAP],
    ['classify', PCAP],
    ['--help'],
    ['--version'],
    ['rules', '--help'],
  ]
  for (const args of cases) {
    const r = piped(args)
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`)
    t.equal(r.status, 0, `${args.join(' ')}: exit 0`)
  }
})

t.test('the reader leaves in the middle of a long output (more than a pipe holds)', async (t) => {
  const names = Array.from({ length: 5000 }, (_, i) => `host${i}.api.openai.com`)
  const r = piped(['check', '--json', ...names], 'head -n 1')
  t.equal(r.stderr, '')
  t.equal(r.status, 0)
  t.match(r.stdout, /^\{"name":"host0\.api\.openai\.com","action":"monitor","vendor":"openai"/)
  t.equal(r.stdout.split('\n').length, 2, 'one line came through')
})

t.test('stderr in the same closed pipe: still no stack', async (t) => {
  const ok = piped(['check', 'api.openai.com'], 'head -n 0', true)
  t.same(ok, { status: 0, stdout: '', stderr: '' })
  const summary = piped(['classify', PCAP], 'head -n 0', true)
  t.same(summary, { status: 0, stdout: '', stderr: '' }, 'classify\'s summary line goes to a closed stderr')
})

t.test('a closed reader does not change what the command answers', async (t) => {
  // The status is the command's own: a pipefail script still sees bad input.
  const bad = piped(['check', 'bad..name', 'api.openai.com'])
  t.same(bad, { status: 1, stdout: '', stderr: '' }, 'an invalid name is still exit 1')
  const policy = join(dir, 'policy.yaml')
  writeFileSync(policy, 'default: alow\n')
  const lint = piped(['rules', 'lint', '--policy', policy], 'head -n 0', true)
  t.same(lint, { status: 1, stdout: '', stderr: '' }, 'rules that fail lint still fail, their message lost with the reader')
})

const fwSkip = netnsSkipReason(['iptables'])
t.test('firewall status into a closed pipe, in a namespace', { skip: fwSkip }, async (t) => {
  const net = new Netns('epipe')
  t.teardown(() => net.cleanup())
  const ns = net.add('fw')
  const args = ['firewall', 'status', '--backend', 'iptables', '--netns', ns]
  const env = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` }
  const up = spawnSync(process.execPath, [BIN, 'firewall', 'up', '--backend', 'iptables', '--netns', ns], { env, encoding: 'utf8' })
  t.equal(up.status, 0, up.stderr)
  for (const extra of [[], ['--json']]) {
    const r = spawnSync('bash', ['-c', '"$@" | head -n 0; exit "${PIPESTATUS[0]}"', 'bash', process.execPath, BIN, ...args, ...extra], { env, encoding: 'utf8' })
    t.equal(r.stderr, '', `status ${extra.join(' ')}: nothing on stderr`)
    t.equal(r.status, 0, 'installed: exit 0')
  }
  t.equal(spawnSync(process.execPath, [BIN, 'firewall', 'down', '--backend', 'iptables', '--netns', ns], { env }).status, 0)
})

t.test('capture --log - into a closed pipe ends, quietly, at its first decision', { skip: netnsSkipReason() }, async (t) => {
  const net = new Netns('epipe')
  t.teardown(() => net.cleanup())
  const ns = net.add('cap')
  const child = spawn('ip', ['netns', 'exec', ns, 'bash', '-c', '"$@" | head -n 0; exit "${PIPESTATUS[0]}"', 'bash', process.execPath, BIN, 'capture', 'lo'],
    { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdout.resume()
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  t.ok(await waitFor(() => stderr.includes('capturing on lo'), 20_000), 'capture started')
  // DNS queries for a listed name to 127.0.0.1:53, every 50 ms, until the capture ends.
  net.spawn(ns, process.execPath, ['-e', `
    const s = require('node:dgram').createSocket('udp4')
    const q = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...'api.openai.com'.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])])
    setInterval(() => s.send(q, 53, '127.0.0.1'), 50)`])
  const status = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000))])
  t.equal(status, 0, 'capture ended by itself with status 0')
  t.match(stderr, /^aigate: capturing on lo \(log only\), filter: [^\n]*\n$/, 'only the start line on stderr')
})
