import t, { type Test } from 'tap'
import { type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Netns, netnsSkipReason, waitFor } from '../helpers/netns.js'

/**
 * `aigate capture` and its signals (issue 12, item 4): SIGINT and SIGTERM
 * stop it at once, also with no traffic (it used to wait for the next
 * matching packet: the pcap package's poll handle held the process), with
 * its summary; SIGUSR2 reopens --log (logrotate moved the file away) and no
 * line is lost or written twice across the move; SIGHUP neither kills it
 * silently nor stops it. Each test captures on `lo` of its own namespace.
 */

const skip = netnsSkipReason()
const BIN = fileURLToPath(new URL('../../bin/aigate.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'aigate-capsig-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

interface Capture { child: ChildProcess, stderr: () => string, exited: Promise<{ code: number | null, signal: string | null, at: number }> }

/** `aigate capture lo --log FILE` in `ns`, started: its stderr says so. */
async function capture (t: Test, net: Netns, ns: string, log: string): Promise<Capture> {
  const child = net.spawn(ns, process.execPath, [BIN, 'capture', 'lo', '--log', log])
  let err = ''
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<{ code: number | null, signal: string | null, at: number }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() }))
  })
  t.ok(await waitFor(() => err.includes('capturing on lo'), 20_000), 'capture started')
  return { child, stderr: () => err, exited }
}

/** Sends DNS queries for q0.example.org ... q<n-1>.example.org to 127.0.0.1:53, one every `gapMs`, then exits. */
function sender (n: number, gapMs: number): string {
  return `
    const s = require('node:dgram').createSocket('udp4')
    const query = (name) => Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])])
    let i = 0
    const next = () => {
      if (i === ${n}) { s.close(); return }
      s.send(query('q' + i++ + '.example.org'), 53, '127.0.0.1', () => setTimeout(next, ${gapMs}))
    }
    next()`
}

/** The names of the DNS decision lines of a log file, in order. */
function names (file: string): string[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { destination: { domain: string }, aigate: { seen: string } }).filter((d) => d.aigate.seen === 'dns').map((d) => d.destination.domain)
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`${sig} with no traffic: it exits at once, with its summary`, { skip }, async (t) => {
    const net = new Netns('capsig')
    t.teardown(() => net.cleanup())
    const ns = net.add('a')
    const cap = await capture(t, net, ns, join(dir, `idle-${sig}.ndjson`))
    // Nothing is sent: before the fix, the capture noticed a signal only when a packet arrived.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const sent = Date.now()
    cap.child.kill(sig)
    const done = await Promise.race([cap.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000))])
    t.not(done, null, 'it exited')
    if (done === null) return
    t.ok(done.at - sent < 1000, `within 1 s (${done.at - sent} ms)`)
    t.same([done.code, done.signal], [0, null], 'exit status 0')
    t.match(cap.stderr(), new RegExp(`\\naigate: ${sig}: 0 packets received, 0 dropped by the kernel, 0 decisions, 0 not IP, 0 malformed\\n$`), 'the summary is the last line')
  })
}

t.test('SIGHUP does not kill it silently: a note, and the capture goes on', { skip }, async (t) => {
  const net = new Netns('capsig')
  t.teardown(() => net.cleanup())
  const ns = net.add('h')
  const log = join(dir, 'hup.ndjson')
  const cap = await capture(t, net, ns, log)
  cap.child.kill('SIGHUP')
  t.ok(await waitFor(() => cap.stderr().includes('SIGHUP'), 5000), 'it says so')
  t.match(cap.stderr(), /\naigate: SIGHUP ignored: capture has no rules reload \(restart it\); SIGUSR2 reopens --log, SIGINT or SIGTERM stop\n$/)
  // Still capturing: a query is logged.
  await new Promise<void>((resolve) => net.spawn(ns, process.execPath, ['-e', sender(1, 0)]).on('exit', () => resolve()))
  t.ok(await waitFor(() => names(log).length === 1, 5000), 'still capturing after SIGHUP')
  t.equal(cap.child.exitCode, null, 'still running')
  cap.child.kill('SIGTERM')
  const done = await cap.exited
  t.same([done.code, done.signal], [0, null])
  t.match(cap.stderr(), /\naigate: SIGTERM: \d+ packets received, 0 dropped by the kernel, 1 decisions, /)
})

t.test('SIGUSR2 under traffic: the log moved away, the next lines go to the new file, none lost or doubled', { skip }, async (t) => {
  const net = new Netns('capsig')
  t.teardown(() => net.cleanup())
  const ns = net.add('r')
  const log = join(dir, 'rotate.ndjson')
  const old = `${log}.1`
  const cap = await capture(t, net, ns, log)
  const N = 400
  const traffic = new Promise<void>((resolve) => net.spawn(ns, process.execPath, ['-e', sender(N, 4)]).on('exit', () => resolve()))
  t.ok(await waitFor(() => names(log).length >= 50, 10_000), 'lines arrive')
  // logrotate: rename, then signal. Lines in between still go to the moved file (same inode).
  renameSync(log, old)
  await new Promise((resolve) => setTimeout(resolve, 100))
  cap.child.kill('SIGUSR2')
  t.ok(await waitFor(() => names(log).length >= 20, 10_000), 'the new file is created and written to')
  await traffic
  const want = Array.from({ length: N }, (_, i) => `q${i}.example.org`)
  t.ok(await waitFor(() => names(old).length + names(log).length >= N, 5000), 'every query logged')
  cap.child.kill('SIGINT')
  const done = await cap.exited
  t.same([done.code, done.signal], [0, null])
  const before = names(old)
  const after = names(log)
  t.ok(before.length >= 50 && after.length >= 20, `both files hold lines (${before.length} before, ${after.length} after)`)
  t.same([...before, ...after], want, 'the old file holds the first queries, the new one the rest: each once, in order')
  // On lo the kernel hands the socket each packet twice (out and in; libpcap drops the outgoing copy after counting it).
  t.match(cap.stderr(), new RegExp(`\\naigate: SIGINT: \\d+ packets received, 0 dropped by the kernel, ${N} decisions, `), 'the summary counts them all')
  t.notMatch(cap.stderr(), /cannot/, 'no error')
})
