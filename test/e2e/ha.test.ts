import t from 'tap'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HaSandbox, type Gw } from '../../src/demo/ha-sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { waitUntil } from '../../src/demo/netns.js'
import { DEFAULT_RULES_DIR } from '../../src/config/index.js'
import { MARK_DROP, AIGATE_MARK_MASK } from '../../src/verdict/marks.js'

/**
 * Two gateways as one (issue 17), in namespaces: keepalived moves the client
 * and upstream addresses, conntrackd carries the connection entries and their
 * CONNMARK verdicts, aigate runs on both (src/demo/ha-sandbox.ts).
 *
 * - a 20 MB download of an allowed name, paced by the client, runs through
 *   gwa, across a failover to gwb (gwa's links cut at the switch) and a fail
 *   back, and completes over its one TCP connection;
 * - a blocked name's connection that gwa decided stays blocked on gwb: its
 *   retransmitted hello meets the drop mark that came through conntrackd
 *   (seen in gwb's conntrackd external cache), and gwb's queue rules and
 *   daemon count no packet for it; the same the other way on fail back;
 * - new flows after each move are decided and logged by the new primary,
 *   whose lines name it (ha-gwa, ha-gwb).
 *
 * Not timed: the failover time and loss are measured by `npm run bench:ha`.
 */

const root = process.getuid?.() === 0
const tools = ['keepalived', 'conntrackd', 'conntrack', 'curl', 'iptables', 'dnsmasq', 'unshare']
const sbin = `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`
const missing = tools.find((x) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', x], { env: { ...process.env, PATH: sbin } }).status !== 0)
const skip = !root ? 'needs root: network namespaces, iptables and NFQUEUE' : missing !== undefined ? `needs ${missing} (Debian package)` : false

const DOWNLOAD_BYTES = 20 * 1048576
const RATE = '512K' // bytes per second: 40 s of transfer, time for a failover and a fail back inside it

interface Line { name: string, action: string, port: number, gateway: string }

/** Decision lines of one gateway's log, with the gateway each names. */
function decisions (file: string): Line[] {
  if (!existsSync(file)) return []
  const out: Line[] = []
  for (const l of readFileSync(file, 'utf8').split('\n')) {
    if (l === '') continue
    const d = JSON.parse(l) as Record<string, any>
    if (d['event']?.dataset !== 'aigate.decision') continue
    out.push({ name: d['destination']?.domain, action: d['event'].action, port: d['source'].port, gateway: d['observer']?.hostname })
  }
  return out
}

t.test('two gateways: a failover and a fail back keep downloads and blocks', { skip, timeout: 180_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-ha-'))
  const sb = new HaSandbox(`agha${process.pid % 10000}`, 231, tmp)
  t.teardown(() => { sb.destroy(); rmSync(tmp, { recursive: true, force: true }) })
  const policy = join(tmp, 'policy.yaml')
  writeFileSync(policy, 'default: allow\nvendors:\n  anthropic: block\ncategories:\n  ai: monitor\n')
  sb.create()
  startServers(sb, tmp)
  writeFileSync(join(tmp, 'big20.bin'), Buffer.alloc(DOWNLOAD_BYTES, 0x62))
  await sb.start({ rulesDir: DEFAULT_RULES_DIR, policyFile: policy, advertSec: 0.5 })
  t.equal(sb.holder(), 'a', 'gwa holds the addresses (priority 150 over 100)')
  t.ok(await waitUntil(() => probe(sb, sb.addrs.server, 443), 10_000), 'servers up')

  const curl = (name: string, args: string[]): ChildProcess => sb.spawn(sb.cli, 'curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code} %{num_connects} %{size_download}',
    ...args, '--resolve', `${name}:443:${sb.addrs.server}`, `https://${name}/${name === 'www.example.com' ? 'big20.bin' : ''}`])
  const finished = (c: ChildProcess): Promise<{ code: number | null, out: string }> => {
    let out = ''
    c.stdout?.on('data', (b: Buffer) => { out += b.toString() })
    return new Promise((resolve) => { c.on('exit', (code) => { resolve({ code, out }) }) })
  }
  const quick = (name: string): number | null => spawnSync('ip', ['netns', 'exec', sb.cli, 'curl', '-sk', '-o', '/dev/null', '--max-time', '2',
    '--resolve', `${name}:443:${sb.addrs.server}`, `https://${name}/`]).status
  /** The peer's conntrackd external cache has this flow with the drop mark. */
  const markArrived = (peer: Gw, port: number): boolean => sb.run(sb.gw[peer], 'conntrackd', ['-C', sb.path(peer, 'conntrackd.conf'), '-e']).stdout
    .split('\n').some((l) => l.includes(`sport=${port} `) && l.includes(`mark=${MARK_DROP & AIGATE_MARK_MASK}`))
  /** One gateway's queue-side counts: packets its queue rules sent, packets its daemon read. */
  const asked = async (g: Gw): Promise<{ queued: number, read: number }> => ({ queued: sb.queued(g), read: (await sb.status(g)).totals.packets })

  let downloading = true
  const download = finished(curl('www.example.com', ['--limit-rate', RATE, '--max-time', '90'])).finally(() => { downloading = false })
  t.ok(await waitUntil(() => decisions(sb.log('a')).some((d) => d.name === 'www.example.com'), 5000), 'gwa decided the download')

  /**
   * A blocked attempt decided by `from`, then a move to `to`: the attempt's
   * retransmitted hello reaches `to` (its drop rule counts it) while `to`'s
   * queue and daemon see nothing; then new flows are decided by `to`.
   */
  const attempts: Array<Promise<{ code: number | null, out: string }>> = []
  const move = async (from: Gw, to: Gw, name: string, doMove: () => void): Promise<void> => {
    const attempt = finished(curl(name, ['--max-time', '20']))
    attempts.push(attempt)
    t.ok(await waitUntil(() => decisions(sb.log(from)).some((d) => d.name === name && d.action === 'block'), 5000), `gw${from} decided ${name}: block`)
    const line = decisions(sb.log(from)).find((d) => d.name === name)
    if (line === undefined) return
    t.equal(line.gateway, `ha-gw${from}`, `gw${from}'s line names it`)
    t.ok(await waitUntil(() => markArrived(to, line.port), 3000), `the drop mark of port ${line.port} is in gw${to}'s conntrackd cache`)
    const before = await asked(to)
    const dropsBefore = sb.rulePackets(to, 'verdict-drop')
    const linesBefore = decisions(sb.log(to)).length
    const t0 = Date.now()
    doMove()
    t.ok(await waitUntil(() => sb.holder() === to, 10_000), `gw${to} holds the addresses`)
    t.comment(`addresses moved to gw${to} in ${Date.now() - t0} ms (keepalived, advert 0.5 s)`)
    // The hello is retransmitted with a doubling timeout (0.2 s, 0.4 s, ...): one lands on `to` within ~7 s.
    t.ok(await waitUntil(() => sb.rulePackets(to, 'verdict-drop') > dropsBefore, 15_000, 100), `gw${to} dropped the attempt's retransmitted hello by its mark`)
    const after = await asked(to)
    t.same(after, before, `gw${to} was not asked: its queue rules sent ${after.queued - before.queued} packets, its daemon read ${after.read - before.read}`)
    t.equal(decisions(sb.log(to)).length, linesBefore, `gw${to} logged nothing for it`)

    // New flows: the new primary's daemon decides and logs them.
    const fromLines = decisions(sb.log(from)).length
    t.equal(quick('www.wikipedia.org'), 0, 'a new allowed flow passes')
    t.equal(quick('claude.ai'), 28, 'a new blocked flow is dropped')
    const mine = decisions(sb.log(to)).slice(linesBefore)
    t.same(mine.map((d) => `${d.name} ${d.action} ${d.gateway}`).sort(), [`claude.ai block ha-gw${to}`, `www.wikipedia.org allow ha-gw${to}`],
      `gw${to} decided and logged both, naming itself`)
    t.equal(decisions(sb.log(from)).length, fromLines, `gw${from} decided nothing after the move`)
    t.ok((await asked(to)).queued > after.queued, `gw${to}'s queue saw the new flows`)
  }

  await t.test('failover a -> b: gwa\'s links cut', async () => { await move('a', 'b', 'api.anthropic.com', () => { sb.links('a', false) }) })
  // conntrackd -t on gwa's fault purges its stale entries after PurgeTimeout (5 s); the moves above took longer.
  await t.test('fail back b -> a: gwa\'s links back, it preempts', async () => { await move('b', 'a', 'api.anthropic.com', () => { sb.links('a', true) }) })

  t.ok(downloading, 'the download is still running after the fail back: it crossed both moves')
  for (const [i, a] of attempts.entries()) {
    const r = await a
    t.equal(r.code, 28, `blocked attempt ${i + 1} stayed blocked to its end (curl timed out: ${r.out})`)
  }
  const d = await download
  const [code, connects, size] = d.out.split(' ')
  t.same({ exit: d.code, code, connects, size: Number(size) }, { exit: 0, code: '200', connects: '1', size: DOWNLOAD_BYTES },
    'the download completed across both moves over its one TCP connection')
  t.equal(decisions(sb.log('a')).filter((x) => x.name === 'www.example.com').length, 1, 'the download was decided once, by gwa')
  t.equal(decisions(sb.log('b')).filter((x) => x.name === 'www.example.com').length, 0, 'gwb never decided it: its accept mark came through conntrackd')
  t.comment(`transitions gwa: ${sb.transitions('a').filter((x) => x.phase === 'done').map((x) => x.state).join(' ')}; gwb: ${sb.transitions('b').filter((x) => x.phase === 'done').map((x) => x.state).join(' ')}`)
})
