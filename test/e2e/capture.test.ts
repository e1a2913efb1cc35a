import t from 'tap'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox, waitUntil } from '../../src/demo/sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'

/**
 * `aigate capture IFACE`: passive mode on the gateway's client-side
 * interface (as on a mirror port), real clients, the same decision lines as
 * inline, and no effect on traffic (blocked names still pass: log only).
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')

if (process.getuid?.() !== 0) {
  t.test('capture end to end', { skip: 'needs root: network namespaces and packet capture' }, async () => {})
} else {
  const sb = new Sandbox(`agcap${process.pid % 1000}`, 215)
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-cap-'))
  let cap: ChildProcess | null = null
  t.teardown(() => {
    if (cap?.pid !== undefined && cap.exitCode === null) cap.kill('SIGKILL')
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  })

  t.test('decision lines from a live interface, log only', async (t) => {
    sb.create()
    startServers(sb, tmp)
    t.ok(await waitUntil(() => probe(sb, sb.addrs.server, 443) && probe(sb, sb.addrs.server, 53), 10000), 'servers up')
    const log = join(tmp, 'capture.ndjson')
    const iface = `${sb.prefix.slice(0, 9)}-gc`
    cap = sb.spawn(sb.gw, process.execPath, [BIN, 'capture', iface, '--log', log])
    let err = ''
    cap.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    t.ok(await waitUntil(() => err.includes('capturing on'), 10000), `capture started: ${err.trim()}`)
    await new Promise((r) => setTimeout(r, 500))
    const curl = (name: string): string => spawnSync('ip', ['netns', 'exec', sb.cli, 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3',
      '--resolve', `${name}:443:${sb.addrs.server}`, `https://${name}/index.html`], { encoding: 'utf8' }).stdout
    t.equal(curl('claude.ai'), '200', 'passive: a blocked name still gets through')
    t.equal(curl('www.example.com'), '200')
    const dig = spawnSync('ip', ['netns', 'exec', sb.cli, 'dig', `@${sb.addrs.server}`, 'chatgpt.com', '+short', '+time=2', '+tries=1'], { encoding: 'utf8' })
    t.equal(dig.stdout.trim(), sb.addrs.server)
    // A query the client's kernel fragments (link MTU 576, a 900-byte EDNS
    // option of an unassigned code): the capture puts the fragments together
    // as the server does.
    sb.exec(sb.cli, 'ip', ['link', 'set', `${sb.prefix.slice(0, 9)}-c`, 'mtu', '576'])
    const frag = spawnSync('ip', ['netns', 'exec', sb.cli, 'dig', `@${sb.addrs.server}`, 'claude.ai', `+ednsopt=65001:${'00'.repeat(900)}`, '+short', '+time=2', '+tries=1'], { encoding: 'utf8' })
    t.equal(frag.stdout.trim(), sb.addrs.server, 'the fragmented query is answered')
    await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8').split('\n').length >= 5, 5000)
    cap.kill('SIGINT')
    await waitUntil(() => err.includes('packets received'), 5000)
    const ds = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>)
    const find = (name: string, seen: string) => ds.find((d) => d.destination?.domain === name && d.aigate.seen === seen)
    t.equal(find('claude.ai', 'sni')?.event.action, 'block', 'the decision is logged as block (what inline would do)')
    t.equal(find('www.example.com', 'sni')?.event.action, 'allow')
    t.equal(find('chatgpt.com', 'dns')?.event.action, 'monitor')
    t.equal(find('claude.ai', 'dns')?.event.action, 'block', 'the fragmented query is read')
    t.equal(find('claude.ai', 'sni')?.source.ip, sb.addrs.client)
    t.match(err, /\d+ packets received, 0 dropped by the kernel/)
  })
}
