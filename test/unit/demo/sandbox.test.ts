import t from 'tap'
import { spawnSync } from 'node:child_process'
import { Netns, waitUntil } from '../../../src/demo/netns.js'
import { Sandbox } from '../../../src/demo/sandbox.js'
import { netnsSkipReason } from '../../helpers/netns.js'

/**
 * The namespace builder the demo and the tests share (src/demo/netns.ts) and
 * the demo's client -> gateway -> server on it (src/demo/sandbox.ts).
 * Namespaces agdm<pid>-*, addresses 10.218.x.y: no other test uses them.
 */
const skip = netnsSkipReason(['bash'])
const listed = (): string => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''

t.test('an interface name over 15 characters is refused before anything is made', async (t) => {
  const net = new Netns('agdm-none')
  t.throws(() => net.veth({ ns: 'a', dev: 'x'.repeat(16) }, { ns: 'b', dev: 'y' }),
    { name: 'RangeError', message: `interface name "${'x'.repeat(16)}" is longer than 15 characters` })
  t.same(net.namespaces, [])
})

t.test('the sandbox\'s names and addresses come from its prefix and net', async (t) => {
  const sb = new Sandbox('agdm', 218)
  t.same([sb.cli, sb.gw, sb.srv], ['agdm-cli', 'agdm-gw', 'agdm-srv'])
  t.same(sb.addrs, {
    client: '10.218.1.2', gwClientSide: '10.218.1.1', gwServerSide: '10.218.2.1', server: '10.218.2.2',
    client6: 'fd00:218:1::2', server6: 'fd00:218:2::2',
  })
})

t.test('built: the client reaches the server through the gateway, IPv4 and IPv6; destroy removes it all', { skip }, async (t) => {
  const sb = new Sandbox(`agdm${process.pid}`, 218)
  t.teardown(() => sb.destroy())
  sb.create()
  t.same(sb.namespaces, [sb.cli, sb.gw, sb.srv])
  const server = sb.spawn(sb.srv, process.execPath, ['-e', "require('node:net').createServer((s) => s.end()).listen(7007, '::')"])
  t.ok(await waitUntil(() => sb.run(sb.srv, 'bash', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/7007']).status === 0, 10_000), 'the server listens')
  for (const to of [sb.addrs.server, sb.addrs.server6]) {
    t.equal(sb.run(sb.cli, 'bash', ['-c', `exec 3<>/dev/tcp/${to}/7007`], { timeoutMs: 5000 }).status, 0, `client -> ${to}`)
  }
  t.equal(sb.exec(sb.gw, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim(), '1', 'the gateway forwards')
  sb.destroy()
  t.ok(server.pid === undefined || await waitUntil(() => server.exitCode !== null || server.signalCode !== null, 5000), 'the server process is ended')
  for (const ns of [sb.cli, sb.gw, sb.srv]) t.notOk(listed().split('\n').some((l) => l.split(' ')[0] === ns), `${ns} is gone`)
  sb.destroy()
  t.pass('destroy twice is harmless')
})
