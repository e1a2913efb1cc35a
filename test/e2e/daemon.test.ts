import { DEFAULT_MAX_FLOW_SEGMENTS } from '../../src/flow/index.js'
import t from 'tap'
import { spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox, waitUntil } from '../../src/demo/sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { up, down, status } from '../../src/fw/index.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'

/**
 * The real daemon on a real NFQUEUE in a gateway namespace, real clients in a
 * client namespace, real servers behind. Root only (CI runs as root).
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
/** curl's real ClientHello for www.example.com (an allowed name). */
const HELLO = join(PACKAGE_ROOT, 'test', 'fixtures', 'tls', 'curl-7.88-www.example.com.bin')
const root = process.getuid?.() === 0

if (!root) {
  t.test('daemon end to end', { skip: 'needs root: network namespaces, iptables and NFQUEUE' }, async () => {})
} else {
  const sb = new Sandbox(`age2e${process.pid % 1000}`, 214)
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-e2e-'))
  const policy = join(tmp, 'policy.yaml')
  // Every action in one policy: anthropic dropped, openai refused, the rest of AI monitored.
  writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: block\n  openai: reject\ncategories:\n  ai: monitor\n')
  const fwOpts = { netns: sb.gw, queues: [0], hooks: ['forward' as const] }
  let daemon: ChildProcess | null = null
  let daemonErr = ''
  let logFile = ''

  t.teardown(() => {
    if (daemon?.pid !== undefined && daemon.exitCode === null) daemon.kill('SIGKILL')
    try { down(fwOpts) } catch { /* namespace goes anyway */ }
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  })

  const start = async (name: string, args: string[] = []): Promise<void> => {
    logFile = join(tmp, `${name}.ndjson`)
    daemonErr = ''
    daemon = sb.spawn(sb.gw, process.execPath, [BIN, 'run', '--queues', '0', '--log', logFile, '--policy', policy, ...args])
    daemon.stderr?.on('data', (d: Buffer) => { daemonErr += d.toString() })
    const ok = await waitUntil(() => daemonErr.includes('running on queue') || daemon?.exitCode !== null, 15000)
    if (!ok || daemon.exitCode !== null) throw new Error(`daemon did not start: ${daemonErr}`)
  }
  const stop = async (signal: NodeJS.Signals): Promise<number | null> => {
    const d = daemon as ChildProcess | null
    if (d === null) return null
    const exited = new Promise<number | null>((resolve) => d.once('exit', (code) => resolve(code)))
    // The child is `ip netns exec node ...`, which execs node: same pid.
    d.kill(signal)
    const code = await exited
    daemon = null
    return code
  }
  const logLines = (): Array<Record<string, any>> => existsSync(logFile)
    ? readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>)
    : []
  const decisions = (): Array<Record<string, any>> => logLines().filter((l) => l.event.dataset === 'aigate.decision')
  /** The daemon's own events in the same log (start, reload, stop). */
  const daemonEvents = (): string[] => logLines().filter((l) => l.event.dataset === 'aigate.daemon').map((l) => `${l['log.level']} ${l.event.action}`)
  const curl = (name: string, path = 'index.html', family: 4 | 6 = 4): { code: number | null, out: string, ms: number } => {
    const addr = family === 4 ? sb.addrs.server : `[${sb.addrs.server6}]`
    const t0 = Date.now()
    const r = spawnSync('ip', ['netns', 'exec', sb.cli, 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', '3',
      '--resolve', `${name}:443:${addr}`, `https://${name}/${path}`], { encoding: 'utf8' })
    return { code: r.status, out: r.stdout, ms: Date.now() - t0 }
  }
  const dig = (name: string, tcp: boolean): string => {
    const r = spawnSync('ip', ['netns', 'exec', sb.cli, 'dig', `@${sb.addrs.server}`, name, 'A', '+short', '+time=1', '+tries=1', ...(tcp ? ['+tcp'] : [])], { encoding: 'utf8' })
    return r.stdout.split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)).join(',')
  }
  const save = (): string => ['iptables-save', 'ip6tables-save'].map((c) =>
    sb.exec(sb.gw, c, []).split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '')).join('\n')).join('\n')

  t.before(async () => {
    sb.create()
    startServers(sb, tmp)
    if (!await waitUntil(() => probe(sb, sb.addrs.server, 443) && probe(sb, sb.addrs.server, 53), 10000)) throw new Error('servers did not start')
  })

  t.test('firewall up, daemon inline: block drops, reject resets, monitor and allow get the real response', async (t) => {
    const before = save()
    up(fwOpts)
    await start('main')
    const allowed = curl('www.example.com')
    t.equal(allowed.code, 0, 'allowed name: curl succeeds')
    t.equal(allowed.out, '200 27', 'the server\'s real response')
    const monitored = curl('api.mistral.ai')
    t.equal(monitored.out, '200 27', 'monitored name passes')
    const blocked = curl('claude.ai')
    t.equal(blocked.code, 28, 'blocked (drop): the client times out')
    const rejected = curl('api.openai.com')
    t.ok(rejected.code === 35 || rejected.code === 56 || rejected.code === 7, `reject: connection reset (curl exit ${rejected.code})`)
    t.ok(rejected.ms < 2000, `reject fails fast (${rejected.ms} ms)`)
    t.equal(curl('claude.ai', 'index.html', 6).code, 28, 'IPv6 too')
    t.equal(dig('claude.ai', false), '', 'DNS over UDP for a blocked name: no answer')
    t.equal(dig('claude.ai', true), '', 'DNS over TCP for a blocked name: no answer')
    t.equal(dig('www.example.com', false), sb.addrs.server, 'DNS for an allowed name is answered')
    t.equal(dig('www.example.com', true), sb.addrs.server)
    // An allowed query is not saved on its connection: the next query on the
    // same TCP connection (dig +keepopen) or UDP 5-tuple (dig -b addr#port) is read too.
    const same = (tcp: boolean): string[] => {
      const r = spawnSync('ip', ['netns', 'exec', sb.cli, 'dig', `@${sb.addrs.server}`, '+short', '+time=1', '+tries=1',
        ...(tcp ? ['+tcp', '+keepopen'] : ['-b', `${sb.addrs.client}#5353`]), 'www.example.com', 'A', 'claude.ai', 'A', 'en.wikipedia.org', 'A'], { encoding: 'utf8' })
      return r.stdout.split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l))
    }
    t.same(same(true), [sb.addrs.server, sb.addrs.server], 'one TCP connection: allowed, blocked (no answer), allowed')
    t.same(same(false), [sb.addrs.server, sb.addrs.server], 'one UDP 5-tuple: allowed, blocked (no answer), allowed')
    // A hello cut into more segments than the daemon reads of an opening
    // (DEFAULT_MAX_FLOW_SEGMENTS): evasion at that segment; in 3 segments it passes.
    const pieces = (n: number): number => {
      const script = `
        const hello = require('fs').readFileSync(process.argv[1])
        const size = Math.ceil(hello.length / ${n})
        const s = require('net').connect(443, process.argv[2], async () => {
          s.setNoDelay(true)
          for (let i = 0; i < hello.length; i += size) { s.write(hello.subarray(i, i + size)); await new Promise((r) => setTimeout(r, 30)) }
        })
        let got = 0
        s.on('data', (d) => { got += d.length })
        s.on('error', () => {})
        setTimeout(() => { console.log(got); process.exit(0) }, 2500)`
      const r = spawnSync('ip', ['netns', 'exec', sb.cli, process.execPath, '-e', script, HELLO, sb.addrs.server], { encoding: 'utf8' })
      return Number(r.stdout.trim())
    }
    t.ok(pieces(3) > 0, 'an allowed hello in 3 segments: the server answers')
    t.equal(pieces(DEFAULT_MAX_FLOW_SEGMENTS + 8), 0, `the same hello in ${DEFAULT_MAX_FLOW_SEGMENTS + 8} segments: evasion, dropped`)
    await new Promise((r) => setTimeout(r, 300))
    const ds = decisions()
    const count = (name: string, seen: string): number => ds.filter((d) => d.destination?.domain === name && d.aigate.seen === seen).length
    t.equal(count('claude.ai', 'sni'), 2, 'one line per decision: two blocked connections (v4, v6), two lines, retransmissions not logged')
    t.equal(count('api.openai.com', 'sni'), 1)
    t.equal(count('www.example.com', 'sni'), 2, 'curl, and the 3-segment hello')
    t.equal(count('claude.ai', 'dns'), 4)
    t.equal(ds.filter((d) => d.aigate.reason === 'evasion').length, 1, 'one evasion line: the hello in too many segments')
    const line = ds.find((d) => d.destination?.domain === 'api.openai.com') as Record<string, any>
    t.equal(line.event.action, 'reject')
    t.equal(line.aigate.vendor, 'openai')
    t.equal(line.aigate.queue, 0)
    t.equal(line.source.ip, sb.addrs.client)
    t.equal(line.destination.port, 443)
    t.type(line.event.duration, 'number')
    // Decided flows stay in the kernel: a 2 MiB download over an allowed flow
    // sends only its first packets to the queue.
    const q0 = status(fwOpts).queuedPackets
    const big = curl('www.example.com', 'big.bin')
    t.equal(big.out, '200 2097152', 'bulk transfer over an allowed flow')
    const q1 = status(fwOpts).queuedPackets
    t.ok(q1 - q0 <= 10, `queued packets for the whole 2 MiB flow: ${q1 - q0} (the flow has hundreds)`)
    t.equal(await stop('SIGTERM'), 0, 'SIGTERM: exit 0')
    t.match(daemonErr, /SIGTERM: stopped/)
    down(fwOpts)
    t.equal(save(), before, 'firewall down restores the rules exactly')
  })

  t.test('SIGKILL with bypass: traffic passes; a restart resumes classification; SIGHUP reload', async (t) => {
    up(fwOpts)
    await start('kill')
    t.equal(curl('claude.ai').code, 28, 'blocked while running')
    daemon?.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, 300))
    daemon = null
    t.equal(curl('claude.ai').out, '200 27', 'no daemon, queue bypass: new connections pass')
    await start('restart')
    t.equal(curl('claude.ai').code, 28, 'restarted: blocked again')
    // Reload: the new policy allows anthropic; a bad policy is refused and the old one stays.
    writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: allow\n')
    ;(daemon as ChildProcess | null)?.kill('SIGHUP')
    await waitUntil(() => daemonErr.includes('SIGHUP: reloading'), 5000)
    await new Promise((r) => setTimeout(r, 300))
    t.equal(curl('claude.ai').out, '200 27', 'after SIGHUP the new policy applies')
    writeFileSync(policy, 'default: alow\n')
    ;(daemon as ChildProcess | null)?.kill('SIGHUP')
    await waitUntil(() => daemonErr.includes('rules not reloaded'), 5000)
    t.match(daemonErr, /policy\.yaml:1: default: "alow" is not an action/)
    t.equal(curl('api.anthropic.com').out, '200 27', 'the old (good) policy stays')
    writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: block\n  openai: reject\ncategories:\n  ai: monitor\n')
    t.equal(await stop('SIGINT'), 0)
    down(fwOpts)
    // The analyst's trail shows each start, each reload tried, and each stop.
    t.same(daemonEvents(), ['info start', 'info reload', 'warn reload', 'info stop'], 'daemon events in the decision log')
  })

  t.test('logrotate: the file moved away, SIGUSR2 (then SIGHUP reloads); the lines after it go to a new file, none lost or repeated, even when the policy is bad', async (t) => {
    up(fwOpts)
    await start('rotate')
    const first = logFile
    const pause = (ms: number): Promise<unknown> => new Promise((r) => setTimeout(r, ms))
    const hup = async (n: number): Promise<void> => {
      // SIGUSR2 reopens the log; SIGHUP only reloads (the reload's line goes to the new file).
      ;(daemon as ChildProcess | null)?.kill('SIGUSR2')
      await pause(100)
      ;(daemon as ChildProcess | null)?.kill('SIGHUP')
      t.ok(await waitUntil(() => (daemonErr.match(/SIGHUP: (reloading|rules not reloaded)/g) ?? []).length === n, 5000), `SIGHUP ${n} seen`)
      await pause(200)
    }
    const read = (f: string): { names: string[], events: string[] } => {
      const ls = readFileSync(f, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>)
      return {
        names: ls.filter((l) => l.event.dataset === 'aigate.decision').map((l) => `${(l.destination?.domain ?? '') as string} ${l.aigate.seen as string}`),
        events: ls.filter((l) => l.event.dataset === 'aigate.daemon').map((l) => l.event.action as string),
      }
    }
    t.equal(curl('claude.ai').code, 28)
    dig('chatgpt.com', false)
    await pause(200) // the workers write their lines within 50 ms
    renameSync(first, `${first}.1`)
    await hup(1)
    t.equal(curl('api.openai.com').code === 0, false, 'still rejected after the reload')
    dig('claude.ai', false)
    // Moved again, and this time the policy is bad: the rules stay, the file is reopened all the same.
    await pause(200)
    renameSync(first, `${first}.2`)
    writeFileSync(policy, 'default: alow\n')
    await hup(2)
    writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: block\n  openai: reject\ncategories:\n  ai: monitor\n')
    t.equal(curl('claude.ai').code, 28, 'the old rules stay')
    t.equal(await stop('SIGTERM'), 0)
    down(fwOpts)
    t.same(read(`${first}.1`), { names: ['claude.ai sni', 'chatgpt.com dns'], events: ['start'] }, 'first file: the lines before the first rotation')
    t.same(read(`${first}.2`), { names: ['api.openai.com sni', 'claude.ai dns'], events: ['reload'] }, 'second file: the lines between the rotations')
    t.same(read(first), { names: ['claude.ai sni'], events: ['reload', 'stop'] }, 'new file: the lines after')
  })

  const hasStrace = spawnSync('strace', ['-V']).status === 0
  t.test('socket families: the daemon opens only those systemd/aigate.service allows', { skip: hasStrace ? false : 'strace not installed' }, async (t) => {
    const unit = readFileSync(join(PACKAGE_ROOT, 'systemd', 'aigate.service'), 'utf8')
    const allowed = (/^RestrictAddressFamilies=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/).filter((f) => f !== '')
    up(fwOpts)
    const trace = join(tmp, 'sockets.strace')
    logFile = join(tmp, 'sockets.ndjson')
    const st = sb.spawn(sb.gw, 'strace', ['-f', '-qq', '-e', 'trace=socket,socketpair', '-o', trace, process.execPath, BIN, 'run', '--queues', '0', '--log', logFile, '--policy', policy])
    let err = ''
    st.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    t.ok(await waitUntil(() => err.includes('running on queue'), 15000), `started under strace: ${err.trim()}`)
    // `ip netns exec` execs strace; node is strace's child.
    const node = Number(readFileSync(`/proc/${st.pid as number}/task/${st.pid as number}/children`, 'utf8').trim().split(' ')[0])
    t.equal(curl('claude.ai').code, 28, 'blocked: the queue works')
    t.equal(dig('www.example.com', false), sb.addrs.server)
    process.kill(node, 'SIGHUP')
    t.ok(await waitUntil(() => err.includes('SIGHUP: reloading'), 5000))
    process.kill(node, 'SIGUSR1')
    t.ok(await waitUntil(() => err.includes('stats queue 0'), 5000))
    const exited = new Promise((resolve) => st.once('exit', resolve))
    process.kill(node, 'SIGTERM')
    await exited
    down(fwOpts)
    const families = new Set([...readFileSync(trace, 'utf8').matchAll(/\bsocket(?:pair)?\((AF_\w+)/g)].map((m) => m[1] as string))
    t.ok(families.has('AF_NETLINK'), 'the queue socket is seen')
    for (const f of families) t.ok(allowed.includes(f), `${f} is allowed by RestrictAddressFamilies=${allowed.join(' ')}`)
  })

  t.test('startup: a bound queue, no capability, only CAP_NET_ADMIN', async (t) => {
    await start('caps')
    const busy = spawnSync('ip', ['netns', 'exec', sb.gw, process.execPath, BIN, 'run', '--queues', '0', '--policy', policy], { encoding: 'utf8', timeout: 15000 })
    t.not(busy.status, 0)
    t.match(busy.stderr, /queue 0|EBUSY|already/i, `queue already bound: ${busy.stderr.trim()}`)
    await stop('SIGTERM')
    // Files the unprivileged daemon reads and writes, and an environment without
    // tap's NODE_OPTIONS hooks (they write coverage files as the test user).
    const open = join(tmp, 'open')
    execFileSync('mkdir', ['-m', '1777', open])
    const openPolicy = join(open, 'policy.yaml')
    writeFileSync(openPolicy, readFileSync(policy))
    // tap re-adds its variables to every spawn, so clear them with env -i.
    // AIGATE_ETC: the shipped defaults, even while another test has a package's /etc/aigate installed.
    const clean = ['-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, 'AIGATE_ETC=/nonexistent/aigate-etc']
    execFileSync('chmod', ['711', tmp])
    const nobody = spawnSync('ip', ['netns', 'exec', sb.gw, 'env', ...clean, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all',
      process.execPath, BIN, 'run', '--queues', '0', '--policy', openPolicy], { encoding: 'utf8', timeout: 15000 })
    t.not(nobody.status, 0, 'non-root without the capability fails')
    t.match(nobody.stderr, /CAP_NET_ADMIN/)
    t.notMatch(nobody.stderr, /\n\s+at /, 'no stack trace')
    const capable = sb.spawn(sb.gw, 'env', [...clean, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin',
      process.execPath, BIN, 'run', '--queues', '0', '--policy', openPolicy, '--log', join(open, 'caps.ndjson')])
    let err = ''
    capable.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    t.ok(await waitUntil(() => err.includes('running on queue'), 15000), `with only CAP_NET_ADMIN it runs: ${err.trim()}`)
    capable.kill('SIGTERM')
  })
}
