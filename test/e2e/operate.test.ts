import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox, waitUntil } from '../../src/demo/sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { up, down } from '../../src/fw/index.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'

/**
 * Operating the daemon (issue 12): a real Prometheus (Debian's package) in
 * the gateway namespace scrapes `run --metrics` while real clients connect
 * through it, and Prometheus's own HTTP API must show the blocked attempts,
 * exactly; `aigate status` answers over the control socket: healthy while
 * it serves, degraded under a flood past the per-source budget, not running
 * (exit 3) once the daemon is killed. SIGUSR2 reopens the log (logrotate)
 * without touching the rules; only SIGHUP applies an edited policy.
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
const root = process.getuid?.() === 0
const prometheus = spawnSync('prometheus', ['--version']).status === 0
const skip = !root ? 'needs root: network namespaces, iptables and NFQUEUE' : !prometheus ? 'needs prometheus (Debian package)' : false

t.test('metrics, status, signals', { skip }, async (t) => {
  const sb = new Sandbox(`agop${process.pid % 1000}`, 219)
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-op-'))
  const policy = join(tmp, 'policy.yaml')
  writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: block\ncategories:\n  ai: monitor\n')
  const control = join(tmp, 'control.sock')
  const log = join(tmp, 'decisions.ndjson')
  const fwOpts = { netns: sb.gw, queues: [0], hooks: ['forward' as const], sourceBudget: 300 }
  const procs: ChildProcess[] = []
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    try { down(fwOpts) } catch { /* the namespace goes anyway */ }
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  })
  sb.create()
  startServers(sb, tmp)
  t.ok(await waitUntil(() => probe(sb, sb.addrs.server, 443), 10000), 'servers up')
  up(fwOpts)

  let err = ''
  const daemon = sb.spawn(sb.gw, process.execPath, [BIN, 'run', '--queues', '0', '--policy', policy, '--log', log, '--metrics', '127.0.0.1:9842', '--control', control])
  procs.push(daemon)
  daemon.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const status = (): { code: number | null, json: any } => {
    const r = spawnSync(process.execPath, [BIN, 'status', '--json', '--control', control], { encoding: 'utf8' })
    let json: any = null
    try { json = JSON.parse(r.stdout) } catch { /* reported below */ }
    return { code: r.status, json }
  }
  t.ok(await waitUntil(() => status().code === 0, 15000), `status answers healthy: ${err.trim()}`)

  const promDir = join(tmp, 'prom')
  writeFileSync(join(tmp, 'prometheus.yml'), 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: aigate\n    static_configs:\n      - targets: ["127.0.0.1:9842"]\n')
  const prom = sb.spawn(sb.gw, 'prometheus', [`--config.file=${join(tmp, 'prometheus.yml')}`, `--storage.tsdb.path=${promDir}`,
    '--web.listen-address=127.0.0.1:9090', '--log.level=warn'])
  procs.push(prom)
  /** Prometheus's HTTP API, from inside the gateway namespace: the sum of the query's values, or null while it has none. */
  const query = (q: string): number | null => {
    const r = spawnSync('ip', ['netns', 'exec', sb.gw, 'curl', '-s', '--max-time', '2', '--get', '--data-urlencode', `query=${q}`, 'http://127.0.0.1:9090/api/v1/query'], { encoding: 'utf8' })
    try {
      const body = JSON.parse(r.stdout) as { data: { result: Array<{ value: [number, string] }> } }
      if (body.data.result.length === 0) return null
      return body.data.result.reduce((n, x) => n + Number(x.value[1]), 0)
    } catch { return null }
  }
  const up1 = await waitUntil(() => query('up{job="aigate"}') === 1, 20000)
  t.ok(up1, 'Prometheus scrapes the daemon (up == 1)')
  const blocked = 'sum(aigate_decisions_total{action="block",vendor="anthropic"})'
  // Before any blocked attempt the series may not exist yet: count from 0.
  const before = query(blocked) ?? 0

  const curl = (name: string): number | null => spawnSync('ip', ['netns', 'exec', sb.cli, 'curl', '-sk', '-o', '/dev/null', '--max-time', '2',
    '--resolve', `${name}:443:${sb.addrs.server}`, `https://${name}/`]).status
  const attempts = 5
  for (let i = 0; i < attempts; i++) t.equal(curl('claude.ai'), 28, `blocked attempt ${i + 1}: dropped, the client times out`)
  t.equal(curl('www.example.com'), 0, 'an allowed name passes')
  const rose = await waitUntil(() => query(blocked) === before + attempts, 15000)
  t.ok(rose, `Prometheus shows aigate_decisions_total{action="block",vendor="anthropic"} up by exactly ${attempts} (now ${query(blocked) ?? 'none'}, before ${before})`)
  t.ok(await waitUntil(() => (query('sum(aigate_decisions_total{action="allow",vendor="none"})') ?? 0) >= 1, 10000), 'the allowed name is counted under vendor="none"')
  t.equal(query('aigate_queue_bound{queue="0"}'), 1, 'the queue is bound')
  t.ok((query('aigate_queue_packets_total{queue="0"}') ?? 0) > 0, 'packets read are counted')
  t.equal(query('aigate_rules_entries') !== null && (query('aigate_rules_entries') as number) > 100, true, 'rules entries')
  t.equal(query('count(aigate_build_info)'), 1, 'build info')
  t.ok((query('process_resident_memory_bytes') ?? 0) > 0, 'Node.js process metrics')
  // The daemon's text, directly: no name from the wire is a label.
  const text = spawnSync('ip', ['netns', 'exec', sb.gw, 'curl', '-s', 'http://127.0.0.1:9842/metrics'], { encoding: 'utf8' }).stdout
  t.notMatch(text, /claude\.ai|example\.com/, 'no name from the wire in the metrics')

  const s = status()
  t.equal(s.code, 0, 'status: exit 0 (healthy)')
  t.equal(s.json?.state, 'healthy')
  t.equal(s.json?.queues?.[0]?.bound, true, 'status: queue 0 bound')
  t.ok((s.json?.queues?.[0]?.counters?.packets ?? 0) > 0, 'status: the running daemon\'s counters')
  t.match(s.json?.rules?.version, /^[0-9a-f]{16}$/, 'status: the rules version')
  t.equal(s.json?.pid, Number(readFileSync(`/proc/${daemon.pid as number}/stat`, 'utf8').split(' ')[0]), 'status: the daemon\'s pid')

  // A flood past the per-source budget (300 pkt/s here): DNS queries as fast as one sender goes, for 6 s.
  const flood = spawn('ip', ['netns', 'exec', sb.cli, process.execPath, '-e', `
    const s = require('dgram').createSocket('udp4')
    const q = Buffer.from('123401000001000000000000076578616d706c6503636f6d0000010001', 'hex')
    const end = Date.now() + 6000
    const burst = () => { for (let i = 0; i < 200; i++) s.send(q, 53, process.argv[1]); if (Date.now() < end) setTimeout(burst, 2); else setTimeout(() => s.close(), 100) }
    burst()`, sb.addrs.server], { stdio: 'ignore' })
  procs.push(flood)
  const degraded = await waitUntil(() => status().code === 1, 12000)
  const during = status()
  t.ok(degraded, `a flood past the budget: status exits 1 (degraded): ${JSON.stringify(during.json?.reasons)}`)
  t.match(JSON.stringify(during.json?.reasons ?? []), /overload/, 'the reason says overload')
  await new Promise((resolve) => flood.once('exit', resolve))
  t.ok((query('sum(aigate_overload_total{kind="source-budget"})') ?? 0) > 0 || await waitUntil(() => (query('sum(aigate_overload_total{kind="source-budget"})') ?? 0) > 0, 10000),
    'aigate_overload_total{kind="source-budget"} counts the drops')

  // Logrotate under load: 1000 DNS queries for distinct names at 250/s (under the
  // budget); halfway the file is moved and SIGUSR2 sent. Every name is in exactly
  // one of the two files. The policy edited meanwhile is not applied until SIGHUP.
  writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: allow\n')
  const rotated = `${log}.1`
  const load = spawn('ip', ['netns', 'exec', sb.cli, process.execPath, '-e', `
    const s = require('dgram').createSocket('udp4')
    const q = (i) => {
      const name = Buffer.from('rot' + i)
      return Buffer.concat([Buffer.from('abcd01000001000000000000', 'hex'), Buffer.from([name.length]), name, Buffer.from('076578616d706c6503636f6d0000010001', 'hex')])
    }
    let i = 0
    const t = setInterval(() => { s.send(q(i++), 53, process.argv[1]); if (i === 1000) { clearInterval(t); setTimeout(() => s.close(), 200) } }, 4)`, sb.addrs.server], { stdio: 'ignore' })
  procs.push(load)
  await new Promise((r) => setTimeout(r, 2000))
  spawnSync('mv', [log, rotated])
  daemon.kill('SIGUSR2')
  await new Promise((resolve) => load.once('exit', resolve))
  await new Promise((r) => setTimeout(r, 500))
  const names = (f: string): string[] => readFileSync(f, 'utf8').split('\n').filter((l) => l.includes('"rot')).map((l) => (JSON.parse(l) as { destination: { domain: string } }).destination.domain)
  const a = names(rotated)
  const b = names(log)
  t.ok(a.length > 100 && b.length > 100, `lines on both sides of the rotation (${a.length} before, ${b.length} after)`)
  t.equal(new Set([...a, ...b]).size, 1000, 'all 1000 queries are in the two files')
  t.equal(a.length + b.length, 1000, 'none twice')
  t.equal(curl('claude.ai'), 28, 'after SIGUSR2 the old policy still applies (blocked)')
  t.ok(await waitUntil(() => { try { return readFileSync(log, 'utf8').includes('"claude.ai"') } catch { return false } }, 5000), 'the line goes to the new file')
  t.notMatch(err, /reloading/, 'SIGUSR2 reloaded nothing')
  daemon.kill('SIGHUP')
  t.ok(await waitUntil(() => err.includes('SIGHUP: reloading'), 5000), 'SIGHUP reloads')
  await new Promise((r) => setTimeout(r, 300))
  t.equal(curl('claude.ai'), 0, 'after SIGHUP the edited policy applies')

  // The control socket's verbs do the same.
  const ctl = spawnSync(process.execPath, [BIN, 'control', 'reload', '--control', control], { encoding: 'utf8' })
  t.equal(ctl.status, 0, `control reload: ${ctl.stderr}`)
  t.match(JSON.parse(ctl.stdout), { version: /^[0-9a-f]{16}$/ }, 'control reload answers the new rules version')

  daemon.kill('SIGKILL')
  await new Promise((resolve) => daemon.once('exit', resolve))
  const gone = status()
  t.equal(gone.code, 3, 'the daemon killed: status exits 3 (not running)')
  t.equal(gone.json?.state, 'not-running')
})
