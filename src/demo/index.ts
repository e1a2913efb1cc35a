import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync, openSync, readSync, closeSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Sandbox, waitUntil } from './sandbox.js'
import { startServers, probe } from './servers.js'
import { firewallUp, firewallDown } from './fw-adapter.js'
import { paint, runDemoBody, say } from './run.js'

/**
 * `aigate demo` (root): a sandbox of namespaces, a TLS, HTTP and DNS server,
 * aigate inline on the gateway with the shipped rules and policy, and real
 * clients (curl, openssl s_client, dig) at AI-vendor and ordinary names. The
 * decision log scrolls by; a summary table ends it. Everything is removed
 * afterwards, also on Ctrl-C or an error.
 */

export interface DemoOptions { rulesDir: string, policyFile: string, timeoutSec: number }

const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))

const NAMES: Array<{ name: string, note: string }> = [
  { name: 'api.anthropic.com', note: 'Anthropic API' },
  { name: 'claude.ai', note: 'Claude' },
  { name: 'api.openai.com', note: 'OpenAI API' },
  { name: 'chatgpt.com', note: 'ChatGPT' },
  { name: 'gemini.google.com', note: 'Google Gemini' },
  { name: 'api.mistral.ai', note: 'Mistral' },
  { name: 'www.example.com', note: 'ordinary site' },
  { name: 'en.wikipedia.org', note: 'ordinary site' },
]

interface Row { name: string, client: string, saw: string, action: string, vendor: string }

const ACTION_COLOUR: Record<string, string> = { block: '31', reject: '31', monitor: '33', allow: '32' }

export async function runDemo (opts: DemoOptions): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('aigate demo: run as root (it builds network namespaces and firewall rules)\n')
    return 1
  }
  for (const tool of ['ip', 'iptables', 'curl', 'openssl', 'dig', 'dnsmasq']) {
    if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0) {
      process.stderr.write(`aigate demo: "${tool}" is missing; ./quickstart.sh demo installs it\n`)
      return 1
    }
  }
  const sb = new Sandbox(`agdemo${process.pid % 10000}`, 203)
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-demo-'))
  const logFile = join(tmp, 'decisions.ndjson')
  const cleanup = (): void => {
    try { firewallDown(sb.gw) } catch { /* namespace goes anyway */ }
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  }
  return await runDemoBody({ command: 'aigate demo', cleanup, removed: 'namespaces, firewall rules, servers, temporary files' }, async (tail) => {
    const rows: Row[] = []
    say('building the sandbox: client -> gateway (aigate) -> server, in network namespaces')
    sb.create()
    const a = sb.addrs
    startServers(sb, tmp)
    say(`gateway: firewall rules (NFQUEUE 0 with bypass, CONNMARK) and aigate run, policy ${opts.policyFile}`)
    firewallUp(sb.gw)
    const daemon = sb.spawn(sb.gw, process.execPath, [BIN, 'run', '--queues', '0', '--log', logFile, '--rules', opts.rulesDir, '--policy', opts.policyFile])
    let daemonErr = ''
    daemon.stderr?.on('data', (d: Buffer) => { daemonErr += d.toString() })
    if (!await waitUntil(() => daemonErr.includes('running on queue') || daemon.exitCode !== null, 15000)) throw new Error('aigate run did not start')
    if (daemon.exitCode !== null) throw new Error(`aigate run failed: ${daemonErr.trim()}`)
    if (!await waitUntil(() => probe(sb, a.server, 443) && probe(sb, a.server, 80) && probe(sb, a.server, 53), 10000)) throw new Error('demo servers did not start')
    say('decision log (one JSON line per decision; shown here in short):\n')
    let offset = 0
    tail(() => { offset = printNew(logFile, offset) })
    const t = String(opts.timeoutSec)
    for (const { name } of NAMES) {
      rows.push({ name, client: 'curl https', saw: curlSaw(sb, ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', t, '--resolve', `${name}:443:${a.server}`, `https://${name}/index.html`]), action: '', vendor: '' })
    }
    rows.push({ name: 'claude.ai', client: 'curl https IPv6', saw: curlSaw(sb, ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', t, '--resolve', `claude.ai:443:[${a.server6}]`, 'https://claude.ai/index.html']), action: '', vendor: '' })
    rows.push({ name: 'chatgpt.com', client: 'curl http', saw: curlSaw(sb, ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', t, '--resolve', `chatgpt.com:80:${a.server}`, 'http://chatgpt.com/']), action: '', vendor: '' })
    for (const name of ['api.anthropic.com', 'www.example.com']) {
      rows.push({ name, client: 'openssl s_client', saw: opensslSaw(sb, name, opts.timeoutSec), action: '', vendor: '' })
    }
    for (const name of ['claude.ai', 'api.openai.com', 'en.wikipedia.org']) {
      rows.push({ name, client: 'dig (UDP)', saw: digSaw(sb, name, false), action: '', vendor: '' })
      rows.push({ name, client: 'dig +tcp', saw: digSaw(sb, name, true), action: '', vendor: '' })
    }
    await new Promise((r) => setTimeout(r, 300))
    offset = printNew(logFile, offset)
    const decisions = readDecisions(logFile)
    for (const r of rows) {
      const d = decisions.get(r.name)
      r.action = d?.action ?? '-'
      r.vendor = d?.vendor ?? '-'
    }
    summary(rows)
    return 0
  })
}

function curlSaw (sb: Sandbox, args: string[]): string {
  const r = spawnSync('ip', ['netns', 'exec', sb.cli, 'curl', ...args], { encoding: 'utf8' })
  if (r.status === 0) return `HTTP ${r.stdout.trim()}`
  if (r.status === 28) return 'timed out (dropped)'
  if (r.status === 35 || r.status === 56 || r.status === 7) return 'connection reset'
  return `curl exit ${r.status ?? 'signal'}`
}

function opensslSaw (sb: Sandbox, name: string, timeoutSec: number): string {
  const r = spawnSync('ip', ['netns', 'exec', sb.cli, 'timeout', String(timeoutSec), 'openssl', 's_client', '-connect', `${sb.addrs.server}:443`, '-servername', name, '-brief'],
    { encoding: 'utf8', input: '' })
  if (r.status === 124) return 'timed out (dropped)'
  if (/CONNECTION ESTABLISHED|Protocol version/.test(r.stderr + r.stdout)) return 'handshake done'
  return /reset|errno=104/i.test(r.stderr) ? 'connection reset' : 'handshake failed'
}

function digSaw (sb: Sandbox, name: string, tcp: boolean): string {
  const r = spawnSync('ip', ['netns', 'exec', sb.cli, 'dig', `@${sb.addrs.server}`, name, 'A', '+short', '+time=1', '+tries=1', ...(tcp ? ['+tcp'] : [])], { encoding: 'utf8' })
  const answer = r.stdout.trim().split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l))
  if (answer.length > 0) return `answer ${answer.join(', ')}`
  return /timed out|no servers/i.test(r.stdout + r.stderr) ? 'no answer (dropped)' : /refused|reset/i.test(r.stdout + r.stderr) ? 'refused' : 'no answer'
}

function readDecisions (file: string): Map<string, { action: string, vendor: string }> {
  const m = new Map<string, { action: string, vendor: string }>()
  if (!existsSync(file)) return m
  for (const line of execFileSync('cat', [file], { encoding: 'utf8' }).split('\n')) {
    if (line === '') continue
    try {
      const d = JSON.parse(line) as { destination?: { domain?: string }, event: { action: string, dataset: string }, aigate: { vendor: string | null } }
      if (d.event.dataset === DECISIONS) m.set(d.destination?.domain ?? '', { action: d.event.action, vendor: d.aigate.vendor ?? '-' })
    } catch { /* a partial line: the next read has it */ }
  }
  return m
}

/** event.dataset of decision lines (the daemon's own events share the log). */
const DECISIONS = 'aigate.decision'

/** Print decision lines added since `offset` in short form; returns the new offset. */
function printNew (file: string, offset: number): number {
  if (!existsSync(file)) return offset
  const fd = openSync(file, 'r')
  try {
    const buf = Buffer.alloc(1 << 20)
    const n = readSync(fd, buf, 0, buf.length, offset)
    const text = buf.toString('utf8', 0, n)
    const end = text.lastIndexOf('\n') + 1
    for (const line of text.slice(0, end).split('\n')) {
      if (line === '') continue
      const d = JSON.parse(line) as Record<string, any>
      if (d.event?.dataset !== DECISIONS) continue
      const action = String(d.event.action)
      process.stdout.write(`  ${String(d['@timestamp']).slice(11, 23)}  ${paint(ACTION_COLOUR[action] ?? '0', action.toUpperCase().padEnd(7))} ` +
        `${String(d.destination?.domain ?? '').padEnd(22)} ${String(d.aigate.vendor ?? '-').padEnd(14)} via ${String(d.aigate.seen).padEnd(4)} ` +
        `${d.source.ip}:${d.source.port} -> ${d.destination.ip}:${d.destination.port}/${d.network.transport}\n`)
    }
    return offset + Buffer.byteLength(text.slice(0, end))
  } finally {
    closeSync(fd)
  }
}

function summary (rows: Row[]): void {
  const head: Row = { name: 'name', vendor: 'vendor', action: 'action', client: 'client', saw: 'what the client saw' }
  const w = (k: keyof Row): number => Math.max(...[head, ...rows].map((r) => r[k].length))
  const line = (r: Row, colour = false): string =>
    `  ${r.name.padEnd(w('name'))}  ${r.vendor.padEnd(w('vendor'))}  ${(colour ? paint(ACTION_COLOUR[r.action] ?? '0', r.action.padEnd(w('action'))) : r.action.padEnd(w('action')))}  ${r.client.padEnd(w('client'))}  ${r.saw}`
  process.stdout.write('\n')
  say('summary')
  process.stdout.write(paint('1', line(head)) + '\n')
  for (const r of rows) process.stdout.write(line(r, true) + '\n')
  process.stdout.write('\n')
}
