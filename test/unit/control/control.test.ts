import t, { type Test } from 'tap'
import { createConnection, createServer } from 'node:net'
import { spawnSync } from 'node:child_process'
import { existsSync, lstatSync, statSync, writeFileSync, readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { askControl, ControlError, ControlInUse, serveControl, type Verb } from '../../../src/control/index.js'

/**
 * The daemon's control socket (control/index.ts) on a temp path: one JSON
 * request line, one JSON answer line; bad requests answered with an error;
 * a stale socket file replaced, a live one left to its owner; mode 0660;
 * the file removed on close.
 */

/** A short temp directory: a unix socket path must fit in 108 bytes (tap's t.testdir() paths do not). */
function tmp (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'agc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** Send raw bytes, read the whole answer until the server closes. */
function raw (path: string, data: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path)
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('connect', () => { sock.write(data) })
    sock.on('data', (c: string) => { buf += c })
    sock.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE' || err.code === 'ECONNRESET') resolve(buf); else reject(err) })
    sock.on('close', () => { resolve(buf) })
  })
}
const close = (s: { close: (cb?: () => void) => unknown }): Promise<void> => new Promise((resolve) => { s.close(() => { resolve() }) })

t.test('round trip: each verb reaches the handler, its value comes back', async (t) => {
  const path = join(tmp(t), 'run', 'control.sock')
  const asked: Verb[] = []
  const server = await serveControl(path, (verb) => {
    asked.push(verb)
    return verb === 'status' ? { state: 'healthy', queues: [{ queue: 0, bound: true }] } : { done: verb }
  })
  t.teardown(() => close(server))
  t.same(await askControl(path, 'status'), { state: 'healthy', queues: [{ queue: 0, bound: true }] })
  t.same(await askControl(path, 'reload'), { done: 'reload' })
  t.same(await askControl(path, 'reopen-logs'), { done: 'reopen-logs' })
  t.same(asked, ['status', 'reload', 'reopen-logs'])
  t.equal(await raw(path, '{"verb":"status"}\n'), '{"ok":true,"result":{"state":"healthy","queues":[{"queue":0,"bound":true}]}}\n', 'one JSON line on the wire')
})

t.test('an async handler is awaited', async (t) => {
  const path = join(tmp(t), 'c.sock')
  const server = await serveControl(path, async () => await new Promise((resolve) => setTimeout(() => { resolve(42) }, 50)))
  t.teardown(() => close(server))
  t.equal(await askControl(path, 'status'), 42)
})

t.test('unknown verb, non-JSON line: an error reply, the handler not called', async (t) => {
  const path = join(tmp(t), 'c.sock')
  let calls = 0
  const server = await serveControl(path, () => { calls++; return 'x' })
  t.teardown(() => close(server))
  for (const line of ['{"verb":"shutdown"}', '{"verb":7}', '{}', '"status"', '{"verb":"STATUS"}']) {
    const reply = JSON.parse(await raw(path, line + '\n')) as { ok: boolean, error: string }
    t.equal(reply.ok, false, `${line}: refused`)
    t.match(reply.error, /unknown verb; one of status, reload, reopen-logs/)
  }
  for (const line of ['status', '{"verb":"status"', '\u0000\u0001', 'null']) {
    t.same(JSON.parse(await raw(path, line + '\n')), { ok: false, error: 'not a JSON request line' }, `${JSON.stringify(line)}: not JSON`)
  }
  t.equal(calls, 0, 'the handler never ran')
  await t.rejects(askControl(path, 'stop' as Verb), { code: 'EREFUSED', message: /unknown verb/ }, 'askControl rejects an error reply')
})

t.test('a handler that throws: ok false with its message; the server goes on', async (t) => {
  const path = join(tmp(t), 'c.sock')
  let fail = true
  const server = await serveControl(path, async (verb) => {
    if (fail) throw new Error(`${verb}: policy.yaml:3: bad`)
    return 'fine'
  })
  t.teardown(() => close(server))
  t.same(JSON.parse(await raw(path, '{"verb":"reload"}\n')), { ok: false, error: 'reload: policy.yaml:3: bad' })
  await t.rejects(askControl(path, 'reload'), new ControlError('EREFUSED', 'reload: policy.yaml:3: bad'))
  fail = false
  t.equal(await askControl(path, 'reload'), 'fine')
})

t.test('a stale socket file is replaced', async (t) => {
  const path = join(tmp(t), 'c.sock')
  // A socket file nobody listens on: a daemon that was killed -9 (a clean close would unlink it).
  const killed = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`])
  t.equal(killed.signal, 'SIGKILL')
  t.ok(lstatSync(path).isSocket(), 'the stale socket file is there')
  await t.rejects(askControl(path, 'status'), { code: 'ECONNREFUSED' }, 'nobody answers on it')
  const server = await serveControl(path, () => 'new')
  t.teardown(() => close(server))
  t.equal(await askControl(path, 'status'), 'new', 'the new server took the path')
})

t.test('a live socket is not taken over', async (t) => {
  const path = join(tmp(t), 'c.sock')
  const first = await serveControl(path, () => 'first')
  t.teardown(() => close(first))
  const err = await serveControl(path, () => 'second').then(() => null, (e: unknown) => e)
  t.ok(err instanceof ControlInUse, 'ControlInUse')
  t.match((err as Error).message, `${path} answers already`)
  t.equal(await askControl(path, 'status'), 'first', 'the first daemon still answers')
})

t.test('a path that is not a socket is refused, never removed', async (t) => {
  const path = join(tmp(t), 'c.sock')
  writeFileSync(path, 'precious\n')
  await t.rejects(serveControl(path, () => 'x'), { code: 'EEXIST' })
  t.equal(readFileSync(path, 'utf8'), 'precious\n', 'the file is untouched')
})

t.test('mode 0660, the directory made, the file removed on close', async (t) => {
  const dir = join(tmp(t), 'run', 'aigate')
  const path = join(dir, 'control.sock')
  const server = await serveControl(path, () => 1)
  t.ok(lstatSync(path).isSocket())
  t.equal(lstatSync(path).mode & 0o777, 0o660, 'socket mode 0660')
  t.equal(statSync(dir).mode & 0o027, 0, 'the directory it made is not open to others (0750 or tighter)')
  await close(server)
  t.equal(existsSync(path), false, 'removed on close')
  await t.rejects(askControl(path, 'status'), { code: 'ENOENT' })
})

t.test('askControl on a missing path rejects with ENOENT, saying no daemon is listening', async (t) => {
  const path = join(tmp(t), 'nothing-here.sock')
  const err = await askControl(path, 'status').then(() => null, (e: unknown) => e)
  t.ok(err instanceof ControlError)
  t.equal((err as ControlError).code, 'ENOENT')
  t.match((err as ControlError).message, `${path}: no daemon is listening`)
})

t.test('askControl: a server that never answers times out; one that answers garbage is EPROTO', async (t) => {
  const dir = tmp(t)
  const mute = createServer(() => { /* holds the connection, says nothing */ })
  const mutePath = join(dir, 'mute.sock')
  await new Promise<void>((resolve) => mute.listen(mutePath, resolve))
  t.teardown(() => { mute.close() })
  const t0 = Date.now()
  await t.rejects(askControl(mutePath, 'status', 200), { code: 'ETIMEDOUT' })
  t.ok(Date.now() - t0 < 2000)
  const junk = createServer((s) => { s.end('HTTP/1.0 200 OK\r\n\r\n') })
  const junkPath = join(dir, 'junk.sock')
  await new Promise<void>((resolve) => junk.listen(junkPath, resolve))
  t.teardown(() => { junk.close() })
  await t.rejects(askControl(junkPath, 'status'), { code: 'EPROTO' })
})

t.test('an over-long request line is refused without hanging', async (t) => {
  const path = join(tmp(t), 'c.sock')
  let calls = 0
  const server = await serveControl(path, () => { calls++; return 'x' })
  t.teardown(() => close(server))
  const timeout = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<T>((_resolve, reject) => setTimeout(() => { reject(new Error('hung')) }, 3000))])
  // No newline at all, more than the limit: answered and closed, not waited on.
  t.same(JSON.parse(await timeout(raw(path, 'x'.repeat(5000)))), { ok: false, error: 'request too long' })
  // A long stream in pieces: the same.
  const piecewise = await timeout(new Promise<string>((resolve) => {
    const sock = createConnection(path)
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('data', (c: string) => { buf += c })
    sock.on('error', () => { /* the server closed while we wrote */ })
    sock.on('close', () => { resolve(buf) })
    let n = 0
    const more = (): void => {
      if (sock.destroyed || !sock.writable) return
      if (n++ < 100) { sock.write('{"verb":"status",' + ' '.repeat(100)); setTimeout(more, 1) } else sock.end()
    }
    sock.on('connect', more)
  }))
  t.same(JSON.parse(piecewise), { ok: false, error: 'request too long' })
  // A huge valid-looking line with its newline: not the handler's business either.
  t.same(JSON.parse(await timeout(raw(path, `{"verb":"status","pad":"${'y'.repeat(100_000)}"}\n`))), { ok: false, error: 'request too long' })
  t.same(JSON.parse(await timeout(raw(path, `{"verb":"status","pad":"${'y'.repeat(2000)}"}\n`))), { ok: false, error: 'request too long' }, 'in one chunk with its newline')
  t.equal(calls, 0)
  t.equal(await askControl(path, 'status'), 'x', 'the server still answers')
})

t.test('a path too long for a unix socket is refused, not truncated', async (t) => {
  const dir = tmp(t)
  const path = join(dir, 'x'.repeat(120 - dir.length), 'control.sock')
  await t.rejects(serveControl(path, () => 'x'), { code: 'ENAMETOOLONG' })
  t.ok(await askControl(path, 'status').then(() => false, (e: unknown) => e instanceof ControlError), 'askControl: a ControlError')
})
