import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requireAddon, loadQuicCrypto, notifySocket, QUIC_SLOT_SIZE } from '../../../src/native/index.js'

/**
 * src/native: the one place that finds the addon. The QUIC crypto part is
 * checked against the slot size this side uses; notifySocket delivers an
 * sd_notify datagram to a path or an abstract socket, and refuses what
 * systemd never gives (a relative path), without throwing.
 */

t.test('the addon is found, once', async (t) => {
  const a = requireAddon()
  t.equal(requireAddon(), a, 'loaded once per module instance')
  t.type(a.open, 'function', 'the queue part')
  const q = loadQuicCrypto()
  t.ok(q, 'the QUIC crypto part')
  t.equal(q?.QUIC_SLOT_SIZE, QUIC_SLOT_SIZE)
})

/** A unix datagram receiver (Node has none): python3 prints each datagram received, as JSON, one per line. */
function receiver (address: string): Promise<{ lines: () => string[], stop: () => void }> {
  const py = spawn('python3', ['-c', `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a = sys.argv[1]
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('ready', flush=True)
while True:
    print(json.dumps(s.recv(8192).decode()), flush=True)
`, address])
  let out = ''
  py.stdout.on('data', (d: Buffer) => { out += d.toString() })
  return new Promise((resolve, reject) => {
    py.once('error', reject)
    const check = setInterval(() => {
      if (!out.startsWith('ready')) return
      clearInterval(check)
      resolve({ lines: () => out.split('\n').slice(1).filter((l) => l !== '').map((l) => JSON.parse(l) as string), stop: () => { py.kill() } })
    }, 20)
  })
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

t.test('notifySocket: a path and an abstract address', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-notify-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'notify.sock')
  const r1 = await receiver(path)
  const r2 = await receiver(`@aigate-test-${process.pid}`)
  t.teardown(() => { r1.stop(); r2.stop() })
  t.equal(notifySocket(path, 'READY=1\nSTATUS=running'), true, 'sent to a path')
  t.equal(notifySocket(`@aigate-test-${process.pid}`, 'WATCHDOG=1'), true, 'sent to an abstract address')
  await wait(300)
  t.same(r1.lines(), ['READY=1\nSTATUS=running'], 'the path socket got the state, whole')
  t.same(r2.lines(), ['WATCHDOG=1'])
  t.equal(notifySocket('relative.sock', 'READY=1'), false, 'a relative path is refused')
  t.equal(notifySocket(join(dir, 'nobody.sock'), 'READY=1'), false, 'nobody listening: false, no throw')
  t.equal(notifySocket('/' + 'x'.repeat(200), 'READY=1'), false, 'longer than sun_path: false')
})
