import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Netns, netnsSkipReason, waitFor } from '../helpers/netns.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'

/**
 * `aigate run` with three workers, under strace: each rule file is opened
 * once at start and once per SIGHUP, by the main thread, however many workers
 * there are (they compile the texts the main thread checked). A bad file on
 * SIGHUP is read once, reported at file:line, and the old rules stay.
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
const skip = netnsSkipReason() || (spawnSync('strace', ['-V']).status === 0 ? false : 'needs strace')

t.test('the daemon reads each rule file once per start and per reload', { skip }, async (t) => {
  const net = new Netns('agrl')
  t.teardown(() => net.cleanup())
  const ns = net.add('gw')
  const dir = t.testdir({
    vendors: { 'acme.txt': '# vendor: acme\n# category: ai\nacme.example\n', 'other.txt': '# vendor: other\n# category: ai\nother.example\n' },
    'policy.yaml': 'default: allow\nvendors: {acme: block}\n',
  })
  const lists = [join(dir, 'vendors', 'acme.txt'), join(dir, 'vendors', 'other.txt')]
  const policy = join(dir, 'policy.yaml')
  const trace = join(dir, 'open.strace')
  const st = net.spawn(ns, 'strace', ['-f', '-qq', '-e', 'trace=open,openat', '-o', trace,
    process.execPath, BIN, 'run', '--queues', '0-2', '--rules', join(dir, 'vendors'), '--policy', policy, '--log', join(dir, 'log.ndjson')])
  let err = ''
  st.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  t.ok(await waitFor(() => err.includes('running on queues 0,1,2'), 15000), `started: ${err.trim()}`)
  // `ip netns exec` execs strace; node is strace's child.
  const node = Number(readFileSync(`/proc/${st.pid as number}/task/${st.pid as number}/children`, 'utf8').trim().split(' ')[0])
  const opens = (file: string): number => readFileSync(trace, 'utf8').split('\n').filter((l) => /\bopen(at)?\(/.test(l) && l.includes(`"${file}"`)).length
  /** After every worker answered its counters it has handled the messages sent before (one port, in order). */
  let statsSeen = 0
  const settled = async (): Promise<boolean> => {
    statsSeen += 3
    process.kill(node, 'SIGUSR1')
    return await waitFor(() => (err.match(/stats queue \d/g) ?? []).length >= statsSeen, 15000)
  }

  t.ok(await settled())
  for (const f of [...lists, policy]) t.equal(opens(f), 1, `start: ${f} opened once, for three workers`)

  process.kill(node, 'SIGHUP')
  t.ok(await waitFor(() => err.includes('SIGHUP: reloading 2 vendor lists'), 5000))
  t.ok(await settled())
  t.notMatch(err, /reload failed/)
  for (const f of [...lists, policy]) t.equal(opens(f), 2, `SIGHUP: ${f} opened once more`)

  writeFileSync(policy, 'default: allow\nvendors: {acme: blocked}\n')
  process.kill(node, 'SIGHUP')
  t.ok(await waitFor(() => err.includes('SIGHUP: rules not reloaded'), 5000))
  t.match(err, `SIGHUP: rules not reloaded, the old ones stay: ${policy}:2: vendors.acme: "blocked" is not an action`)
  t.ok(await settled())
  t.equal(opens(policy), 3, 'a bad policy: read once, by the main thread only')

  const exited = new Promise((resolve) => st.once('exit', resolve))
  process.kill(node, 'SIGTERM')
  await exited
})
