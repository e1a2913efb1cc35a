import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Netns, netnsSkipReason, waitFor } from '../helpers/netns.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'
import { askControl } from '../../src/control/index.js'
import type { StatusReport } from '../../src/daemon/health.js'

/**
 * systemd's Type=notify and watchdog, without systemd: `aigate run` with
 * NOTIFY_SOCKET naming a unix datagram socket this test reads (Node cannot
 * receive unix datagrams: a small python3 receiver prints each one as a
 * line) and WATCHDOG_USEC=1 s. READY=1 comes once the queue is bound and the
 * control socket answers; WATCHDOG=1 keeps coming while the process runs,
 * stops while it is stopped (SIGSTOP), comes back on SIGCONT; SIGTERM sends
 * STOPPING=1. A second daemon given the same --control path finds it in
 * use, says so, and runs on without one. No firewall rules: `run` binds the
 * queue anyway.
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
const skip = netnsSkipReason(['python3'])

/** Binds a unix datagram socket at argv[1]; prints "ready", then each datagram on a line (newlines as |). */
const RECEIVER = [
  'import socket, sys',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print("ready", flush=True)',
  'while True:',
  '    d = s.recv(65536)',
  '    print(d.decode("utf-8", "replace").replace("\\n", "|"), flush=True)',
].join('\n')

interface Heard { at: number, msg: string }

t.test('READY after the queue and the control socket, WATCHDOG while running, STOPPING on SIGTERM', { skip }, async (t) => {
  const net = new Netns('agnt')
  const tmp = mkdtempSync(join(tmpdir(), 'agnt-'))
  const procs: ChildProcess[] = []
  t.teardown(() => {
    for (const p of procs) {
      if (p.exitCode !== null || p.signalCode !== null) continue
      try { process.kill(p.pid as number, 'SIGCONT') } catch { /* gone */ }
      p.kill('SIGKILL')
    }
    net.cleanup()
    rmSync(tmp, { recursive: true, force: true })
  })
  const ns = net.add('gw')
  const notifyPath = join(tmp, 'notify.sock')
  const control = join(tmp, 'control.sock')

  const heard: Heard[] = []
  const rx = spawn('python3', ['-u', '-c', RECEIVER, notifyPath], { stdio: ['ignore', 'pipe', 'inherit'] })
  procs.push(rx)
  let rxReady = false
  let pending = ''
  /** Set by the READY handler: what the daemon showed at the moment READY was heard. */
  let atReady: Promise<{ err: string, status: StatusReport | Error }> | null = null
  rx.stdout?.setEncoding('utf8')
  rx.stdout?.on('data', (c: string) => {
    pending += c
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      if (!rxReady && line === 'ready') { rxReady = true; continue }
      heard.push({ at: Date.now(), msg: line })
      if (line.startsWith('READY=1') && atReady === null) {
        // At once, before anything else runs: the control socket must answer already.
        atReady = askControl(control, 'status', 2000).then((s) => ({ err, status: s as StatusReport }), (e: Error) => ({ err, status: e }))
      }
    }
  })
  t.ok(await waitFor(() => rxReady, 5000), 'the datagram receiver is listening')

  let err = ''
  const daemon = net.spawn(ns, process.execPath, [BIN, 'run', '--queues', '0', '--log', join(tmp, 'log.ndjson'), '--control', control], {
    env: { ...process.env, NOTIFY_SOCKET: notifyPath, WATCHDOG_USEC: '1000000' },
  })
  procs.push(daemon)
  daemon.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => { resolve(code) }))
  const count = (prefix: string): number => heard.filter((h) => h.msg.startsWith(prefix)).length

  t.ok(await waitFor(() => count('READY=1') > 0, 15000), `READY=1 heard: ${err.trim()}`)
  const ready = heard.find((h) => h.msg.startsWith('READY=1')) as Heard
  t.match(ready.msg, /^READY=1\|STATUS=running on queue 0: /, 'READY with a STATUS line')
  t.equal(heard.indexOf(ready), 0, 'READY is the first message')
  const shown = await (atReady as unknown as Promise<{ err: string, status: StatusReport | Error }>)
  t.notOk(shown.status instanceof Error, `the control socket answered at READY: ${String(shown.status instanceof Error ? shown.status.message : '')}`)
  t.equal((shown.status as StatusReport).pid, daemon.pid, 'the answer is this daemon\'s')
  t.match(shown.err, /aigate: running on queue 0: /, 'the daemon said it was running before READY')

  // WATCHDOG_USEC=1 s: fed every 0.5 s while every worker reports.
  const w0 = count('WATCHDOG=1')
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const fed = count('WATCHDOG=1') - w0
  t.ok(fed >= 3, `WATCHDOG=1 kept arriving: ${fed} in 3 s`)
  t.ok(fed <= 8, `no faster than every 0.5 s: ${fed} in 3 s`)

  // Stopped, nothing feeds the watchdog (systemd would kill and restart it).
  process.kill(daemon.pid as number, 'SIGSTOP')
  await new Promise((resolve) => setTimeout(resolve, 500)) // a datagram already on its way
  const stoppedAt = count('WATCHDOG=1')
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(count('WATCHDOG=1'), stoppedAt, 'no WATCHDOG=1 while the process is stopped')
  process.kill(daemon.pid as number, 'SIGCONT')
  t.ok(await waitFor(() => count('WATCHDOG=1') > stoppedAt, 5000), 'WATCHDOG=1 again once it runs')

  // A second daemon on another queue, the same control socket: it is in use, and it runs on without one.
  let err2 = ''
  const second = net.spawn(ns, process.execPath, [BIN, 'run', '--queues', '1', '--log', join(tmp, 'log2.ndjson'), '--control', control])
  procs.push(second)
  second.stderr?.on('data', (d: Buffer) => { err2 += d.toString() })
  t.ok(await waitFor(() => err2.includes('running on queue 1'), 15000), `the second daemon runs: ${err2.trim()}`)
  t.ok(await waitFor(() => err2.includes('--control:'), 5000))
  t.match(err2, `aigate: --control: ${control} answers already: another aigate daemon owns it; this one has no control socket`)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(second.exitCode, null, 'the second daemon runs on')
  const st = await askControl(control, 'status') as StatusReport
  t.equal(st.pid, daemon.pid, 'the socket still answers for the first daemon')
  t.same(st.queues.map((q) => q.queue), [0])
  const secondExit = new Promise((resolve) => second.once('exit', resolve))
  second.kill('SIGTERM')
  await secondExit
  t.equal((await askControl(control, 'status') as StatusReport).pid, daemon.pid, 'the second daemon, stopping, left the first one\'s socket alone')

  const beforeStop = heard.length
  daemon.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: exit 0')
  t.ok(await waitFor(() => heard.slice(beforeStop).some((h) => h.msg === 'STOPPING=1'), 3000), 'STOPPING=1 on SIGTERM')
  t.equal(count('READY=1'), 1, 'READY once')
})
