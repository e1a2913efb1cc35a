import { spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HaSandbox, GATEWAYS, type Gw } from './ha-sandbox.js'
import { startServers, probe } from './servers.js'
import { waitUntil } from './netns.js'
import { paint, runDemoBody, say } from './run.js'

/**
 * `aigate demo --ha` (root): two aigate gateways between the client and the
 * server (src/demo/ha-sandbox.ts: keepalived, conntrackd, aigate on both), a
 * 20 MB download of an allowed name and a blocked name's attempt running
 * across a forced failover (the primary's links cut at the switch), retries
 * of the blocked name before and after, a fail back, and a summary: what
 * each client saw, which gateway decided each flow, the failover time.
 * Everything is removed afterwards, also on Ctrl-C or an error.
 */

export interface HaDemoOptions { rulesDir: string, policyFile: string, timeoutSec: number }

const DOWNLOAD_BYTES = 20 * 1048576

interface Row { when: string, name: string, client: string, saw: string, port: number, decided: string }
interface Decision { name: string, action: string, port: number, gateway: string }

export async function runHaDemo (opts: HaDemoOptions): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('aigate demo --ha: run as root (it builds network namespaces and firewall rules)\n')
    return 1
  }
  const path = `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`
  for (const tool of ['ip', 'iptables', 'curl', 'openssl', 'dnsmasq', 'keepalived', 'conntrackd', 'conntrack', 'unshare']) {
    if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { env: { ...process.env, PATH: path } }).status !== 0) {
      process.stderr.write(`aigate demo --ha: "${tool}" is missing; ./quickstart.sh demo installs it\n`)
      return 1
    }
  }
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-demo-ha-'))
  const sb = new HaSandbox(`aghd${process.pid % 10000}`, 204, tmp)
  const cleanup = (): void => {
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  }
  const removed = 'namespaces, firewall rules, keepalived, conntrackd, daemons, servers, temporary files'
  return await runDemoBody({ command: 'aigate demo --ha', cleanup, removed }, async (tail) => {
    const a = sb.addrs
    say(`building the sandbox: client ${a.client} -> [switch] -> gwa | gwb (aigate, keepalived, conntrackd) -> [switch] -> server ${a.server}`)
    sb.create()
    startServers(sb, tmp)
    writeFileSync(join(tmp, 'big20.bin'), Buffer.alloc(DOWNLOAD_BYTES, 0x62))
    say('keepalived (VRRP, advert 0.5 s) on both: gwa primary (priority 150); conntrackd FTFW over the sync link; aigate firewall rules and `aigate run` on both')
    await sb.start({ rulesDir: opts.rulesDir, policyFile: opts.policyFile, advertSec: 0.5 })
    if (!await waitUntil(() => probe(sb, a.server, 443) && probe(sb, a.server, 80), 10_000)) throw new Error('demo servers did not start')
    say(`gw${sb.holder() ?? '?'} holds ${a.vipClient} (client's default route) and ${a.vipServer} (server's route back)\n`)
    const offsets: Record<Gw, number> = { a: 0, b: 0 }
    tail(() => { for (const g of GATEWAYS) offsets[g] = printNew(sb.log(g), offsets[g]) })

    const rows: Row[] = []
    const t = String(opts.timeoutSec)
    const curlArgs = (name: string, extra: string[], file = ''): string[] => ['-sk', '-o', '/dev/null', '-w', '%{http_code} %{num_connects} %{size_download} %{local_port}',
      ...extra, '--resolve', `${name}:443:${a.server}`, `https://${name}/${file}`]
    const once = (when: string, name: string): void => {
      const r = sb.run(sb.cli, 'curl', curlArgs(name, ['--max-time', t]), { timeoutMs: (opts.timeoutSec + 5) * 1000 })
      rows.push({ when, name, client: 'curl https', saw: saw(r.status, r.stdout), port: Number(r.stdout.split(' ')[3] ?? 0), decided: '' })
    }
    const background = (name: string, extra: string[], file = ''): Promise<{ code: number | null, out: string }> => {
      const c: ChildProcess = sb.spawn(sb.cli, 'curl', curlArgs(name, extra, file))
      let out = ''
      c.stdout?.on('data', (b: Buffer) => { out += b.toString() })
      return new Promise((resolve) => c.on('exit', (code) => { resolve({ code, out }) }))
    }

    once('before', 'api.anthropic.com')
    once('before', 'www.example.com')
    say('a 20 MB download of www.example.com (2 MB/s) and a blocked attempt at api.anthropic.com start through gwa')
    const download = background('www.example.com', ['--limit-rate', '2M', '--max-time', '60'], 'big20.bin')
    const attempt = background('api.anthropic.com', ['--max-time', '12'])
    await waitUntil(() => decisions(sb.log('a')).filter((d) => d.name === 'api.anthropic.com').length >= 2, 5000)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const queuedB = sb.queued('b')
    say(`failover: gwa's links cut at the switch (as a pulled cable); gwb's queue rules have sent ${queuedB} packets so far`)
    const t0 = Date.now()
    sb.links('a', false)
    if (!await waitUntil(() => sb.holder() === 'b', 15_000, 10)) throw new Error('gwb did not take the addresses')
    const failoverMs = Date.now() - t0
    say(`gwb holds the addresses after ${failoverMs} ms (3 missed adverts and the skew); its notify script committed gwa's entries, verdict marks included`)
    await new Promise((resolve) => setTimeout(resolve, 2000))
    once('after failover', 'api.anthropic.com')
    once('after failover', 'claude.ai')
    once('after failover', 'en.wikipedia.org')
    const att = await attempt
    rows.push({ when: 'across failover', name: 'api.anthropic.com', client: 'curl https (in flight)', saw: saw(att.code, att.out), port: Number(att.out.split(' ')[3] ?? 0), decided: '' })
    const queuedBAfter = sb.queued('b')
    const dl = await download
    const [, connects, size] = dl.out.split(' ')
    rows.push({ when: 'across failover', name: 'www.example.com', client: 'curl 20 MB download', saw: `${saw(dl.code, dl.out)}, ${size ?? 0} bytes over ${connects ?? '?'} connection(s)`, port: Number(dl.out.split(' ')[3] ?? 0), decided: '' })
    say('fail back: gwa\'s links restored; gwa (priority 150) preempts')
    await new Promise((resolve) => setTimeout(resolve, 5000)) // conntrackd PurgeTimeout on gwa: its stale entries go first
    const t1 = Date.now()
    sb.links('a', true)
    if (!await waitUntil(() => sb.holder() === 'a', 15_000, 10)) throw new Error('gwa did not take the addresses back')
    const failbackMs = Date.now() - t1
    await new Promise((resolve) => setTimeout(resolve, 1000))
    once('after fail back', 'api.anthropic.com')
    once('after fail back', 'www.example.com')
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (const g of GATEWAYS) offsets[g] = printNew(sb.log(g), offsets[g])

    const all = GATEWAYS.flatMap((g) => decisions(sb.log(g)))
    for (const r of rows) {
      const ds = all.filter((d) => d.port === r.port && d.name === r.name)
      r.decided = ds.length === 0 ? '-' : ds.map((d) => `${d.gateway}: ${d.action}`).join(', ')
    }
    summary(rows)
    say(`failover (links cut) ${failoverMs} ms, fail back ${failbackMs} ms; gwb's queue rules sent ${queuedBAfter - queuedB} packets while it was primary (the flows it decided above); the in-flight flows carry gwa's decision only`)
    return 0
  })
}

function saw (code: number | null, out: string): string {
  if (code === 0) return `HTTP ${out.split(' ')[0] ?? '?'}`
  if (code === 28) return 'timed out (dropped)'
  if (code === 35 || code === 56 || code === 7) return 'connection reset'
  return `curl exit ${code ?? 'signal'}`
}

/** Decision lines of one gateway's log, with the gateway each names. */
function decisions (file: string): Decision[] {
  if (!existsSync(file)) return []
  const out: Decision[] = []
  for (const l of readFileSync(file, 'utf8').split('\n')) {
    if (l === '') continue
    try {
      const d = JSON.parse(l) as Record<string, any>
      if (d['event']?.dataset !== 'aigate.decision') continue
      out.push({ name: d['destination']?.domain ?? '', action: d['event'].action, port: d['source'].port, gateway: d['observer']?.hostname ?? '?' })
    } catch { /* a partial line: the next read has it */ }
  }
  return out
}

const ACTION_COLOUR: Record<string, string> = { block: '31', reject: '31', monitor: '33', allow: '32' }

/** Print decision lines added since `offset` in short form, with the gateway that wrote them; returns the new offset. */
function printNew (file: string, offset: number): number {
  if (!existsSync(file)) return offset
  const buf = readFileSync(file)
  const end = buf.lastIndexOf(0x0a) + 1
  if (end <= offset) return offset
  for (const line of buf.subarray(offset, end).toString('utf8').split('\n')) {
    if (line === '') continue
    const d = JSON.parse(line) as Record<string, any>
    if (d['event']?.dataset !== 'aigate.decision') continue
    const action = String(d['event'].action)
    process.stdout.write(`  ${String(d['@timestamp']).slice(11, 23)}  ${String(d['observer']?.hostname ?? '?').padEnd(7)} ` +
      `${paint(ACTION_COLOUR[action] ?? '0', action.toUpperCase().padEnd(7))} ${String(d['destination']?.domain ?? '').padEnd(20)} ` +
      `${d['source'].ip}:${d['source'].port} -> ${d['destination'].ip}:${d['destination'].port}/${d['network'].transport}\n`)
  }
  return end
}

function summary (rows: Row[]): void {
  const head: Row = { when: 'when', name: 'name', client: 'client', saw: 'what the client saw', port: 0, decided: 'decided by' }
  const keys = ['when', 'name', 'client', 'saw', 'decided'] as const
  const w = Object.fromEntries(keys.map((k) => [k, Math.max(...[head, ...rows].map((r) => r[k].length))])) as Record<typeof keys[number], number>
  const line = (r: Row): string => `  ${keys.map((k) => r[k].padEnd(w[k])).join('  ')}`
  process.stdout.write('\n')
  say('summary')
  process.stdout.write(paint('1', line(head)) + '\n')
  for (const r of rows) process.stdout.write(line(r) + '\n')
  process.stdout.write('\n')
}
