import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { lockPath, LOCK_DIR } from '../../../src/fw/lock.js'
import { Netns, netnsSkipReason, waitFor } from '../../helpers/netns.js'

/**
 * `aigate firewall up|down|status` take one lock per network namespace
 * (src/fw/lock.ts). Without it, concurrent `up`s each read the tables before
 * another wrote and each inserted its jump rule: duplicates (issue 11,
 * "smaller holes"). Each test makes its own namespaces and deletes them.
 */

const skip = netnsSkipReason(['iptables', 'ip6tables', 'flock'])
const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))
const FW = new URL('../../../dist/src/fw/index.js', import.meta.url).href
const ENV = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` }

interface Exit { code: number | null, stdout: string, stderr: string }

function started (cmd: string, args: string[]): { child: ChildProcess, done: Promise<Exit> } {
  const child = spawn(cmd, args, { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const done = new Promise<Exit>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  return { child, done }
}

/** `-j AIGATE` rules per table and chain, as iptables-save (of `variant`) shows them, IPv4 and IPv6. */
function jumps (net: Netns, ns: string, variant = ''): string[] {
  const out: string[] = []
  for (const tool of ['iptables', 'ip6tables']) {
    let table = ''
    for (const line of net.exec(ns, `${tool}${variant}-save`, []).split('\n')) {
      if (line.startsWith('*')) table = line.slice(1)
      else if (/ -j AIGATE\b/.test(line)) out.push(`${tool} ${table} ${line}`)
    }
  }
  return out.sort()
}

/** Each jump rule once: no line twice. */
function duplicates (lines: string[]): string[] {
  return lines.filter((l, i) => lines.indexOf(l) !== i)
}

t.test('the lock is per network namespace, by inode: --netns X and `ip netns exec X` share it', { skip }, async (t) => {
  const net = new Netns('fwlk')
  t.teardown(() => net.cleanup())
  const a = net.add('a')
  const b = net.add('b')
  t.match(lockPath(a), new RegExp(`^${LOCK_DIR}/firewall-net\\d+\\.lock$`))
  t.not(lockPath(a), lockPath(b))
  t.not(lockPath(a), lockPath(null), 'the host has its own')
  const inside = net.exec(a, process.execPath, ['--input-type=module', '-e', `import('${new URL('../../../dist/src/fw/lock.js', import.meta.url).href}').then((m) => process.stdout.write(m.lockPath(null)))`])
  t.equal(inside, lockPath(a))
  t.equal(lockPath('aigate-no-such-ns'), `${LOCK_DIR}/firewall-netns-aigate-no-such-ns.lock`, 'a missing namespace: keyed by name, the command reports it')
})

t.test('firewall up waits while another command holds the namespace lock (was: ran at once)', { skip }, async (t) => {
  const net = new Netns('fwlk')
  t.teardown(() => net.cleanup())
  const ns = net.add('w')
  // First a command that makes /run/aigate, then hold the lock with flock(1), as another `aigate firewall` would.
  t.equal(spawnSync(process.execPath, [BIN, 'firewall', 'status', '--backend', 'iptables', '--netns', ns], { env: ENV }).status, 3)
  const path = lockPath(ns)
  const holder = started('flock', ['-x', path, 'sleep', '6'])
  t.teardown(() => { try { if (holder.child.pid !== undefined) process.kill(holder.child.pid) } catch { /* gone */ } })
  t.ok(await waitFor(() => spawnSync('flock', ['-n', path, 'true']).status === 1, 5000), 'the holder has the lock')
  const up = started(process.execPath, [BIN, 'firewall', 'up', '--backend', 'iptables', '--netns', ns])
  const early = await Promise.race([up.done, new Promise<null>((resolve) => setTimeout(() => resolve(null), 4000))])
  t.equal(early, null, 'up has not finished while the lock is held')
  t.same(jumps(net, ns), [], 'and has not written anything')
  const r = await up.done
  t.equal(r.code, 0, r.stderr)
  t.equal((await holder.done).code, 0)
  t.equal(duplicates(jumps(net, ns)).length, 0)
  t.ok(jumps(net, ns).length > 0, 'installed once the lock was free')
})

t.test('concurrent `firewall up` (iptables-nft): one jump rule per hook, every round', { skip }, async (t) => {
  const net = new Netns('fwlk')
  t.teardown(() => net.cleanup())
  // What one `up` installs, to compare with.
  const ref = net.add('ref')
  t.equal(spawnSync(process.execPath, [BIN, 'firewall', 'up', '--backend', 'iptables', '--hooks', 'forward,output', '--netns', ref], { env: ENV, encoding: 'utf8' }).status, 0)
  const want = jumps(net, ref)
  t.ok(want.length >= 4, `one up installs jumps: ${want.join(' | ')}`)
  t.same(duplicates(want), [])
  for (let round = 0; round < 3; round++) {
    const ns = net.add(`r${round}`)
    const ups = Array.from({ length: 4 }, () => started(process.execPath, [BIN, 'firewall', 'up', '--backend', 'iptables', '--hooks', 'forward,output', '--netns', ns]))
    const results = await Promise.all(ups.map((u) => u.done))
    for (const r of results) t.equal(r.code, 0, r.stderr)
    t.same(jumps(net, ns), want, `round ${round}: exactly the jumps of one up`)
    // And they all go again with one down, with status under the same lock meanwhile.
    const st = started(process.execPath, [BIN, 'firewall', 'status', '--backend', 'iptables', '--netns', ns])
    const down = spawnSync(process.execPath, [BIN, 'firewall', 'down', '--backend', 'iptables', '--netns', ns], { env: ENV, encoding: 'utf8' })
    t.equal(down.status, 0, down.stderr)
    t.ok([0, 3].includes((await st.done).code ?? -1), 'status ran whole, before or after down')
    t.same(jumps(net, ns), [])
  }
})

t.test('concurrent up through the library with iptables-legacy: one jump rule per hook', { skip: skip !== false ? skip : netnsSkipReason(['iptables-legacy', 'ip6tables-legacy']) }, async (t) => {
  const net = new Netns('fwlk')
  t.teardown(() => net.cleanup())
  const upIn = (ns: string): { done: Promise<Exit> } => started(process.execPath, ['--input-type=module', '-e',
    `import('${FW}').then((m) => m.up({ backend: 'iptables', iptables: 'legacy', netns: ${JSON.stringify(ns)} }))`])
  const ref = net.add('lref')
  const one = await upIn(ref).done
  t.equal(one.code, 0, one.stderr)
  const want = jumps(net, ref, '-legacy')
  t.ok(want.length >= 2, `one up installs jumps: ${want.join(' | ')}`)
  for (let round = 0; round < 3; round++) {
    const ns = net.add(`l${round}`)
    const results = await Promise.all(Array.from({ length: 4 }, () => upIn(ns).done))
    for (const r of results) t.equal(r.code, 0, r.stderr)
    t.same(jumps(net, ns, '-legacy'), want, `round ${round}: exactly the jumps of one up`)
  }
})
