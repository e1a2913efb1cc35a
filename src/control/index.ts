import { createConnection, createServer, type Server } from 'node:net'
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * The daemon's control socket: a unix stream socket (default
 * /run/aigate/control.sock, mode 0660, owned by the daemon's user) that takes
 * one request line, `{"verb":"status"}`, and answers one JSON line. Verbs:
 * `status`, `reload` (rules and policy, as SIGHUP), `reopen-logs` (as SIGUSR2).
 * Only local users with access to the socket's directory can ask; nothing
 * from the network reaches it.
 */

export const DEFAULT_CONTROL_SOCKET = '/run/aigate/control.sock'
export const VERBS = ['status', 'reload', 'reopen-logs'] as const
export type Verb = (typeof VERBS)[number]

/** A request line longer than this is refused (the longest real one is ~20 bytes). */
const MAX_REQUEST = 1024

export type Handler = (verb: Verb) => Promise<unknown> | unknown

/** A client that keeps writing after its answer is cut off after this. */
const CLOSE_AFTER_MS = 2000

/** The longest unix socket path (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107

function errno (code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code })
}

/** Is a server answering at this socket path (another daemon's)? */
function live (path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection(path)
    sock.once('connect', () => { sock.destroy(); resolve(true) })
    sock.once('error', () => { resolve(false) })
  })
}

/** Another daemon answers on the control socket's path: this one runs without a socket rather than take it over. */
export class ControlInUse extends Error {}

/**
 * Listen on `path`; resolves once listening. A stale socket file there (no
 * one answers) is replaced; a live one is left to its daemon (ControlInUse).
 * Closing the server removes the file.
 */
export async function serveControl (path: string, handle: Handler): Promise<Server> {
  // sun_path holds 107 bytes and a NUL: a longer path would be bound truncated, elsewhere.
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw errno('ENAMETOOLONG', `${path}: longer than a unix socket path may be (${MAX_SOCKET_PATH} bytes)`)
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 })
  if (await live(path)) throw new ControlInUse(`${path} answers already: another aigate daemon owns it`)
  // Only a stale socket is replaced: a mistyped --control naming a file is never removed.
  let isSocket: boolean | null = null
  try { isSocket = lstatSync(path).isSocket() } catch { /* nothing there */ }
  if (isSocket === false) throw errno('EEXIST', `${path} exists and is not a socket`)
  rmSync(path, { force: true })
  const server = createServer((sock) => {
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('error', () => { sock.destroy() })
    // One request per connection: once it is answered (or refused) nothing
    // more is read, so the rest of an over-long line never reaches the handler.
    const done = (reply: unknown): void => {
      sock.removeAllListeners('data')
      sock.end(JSON.stringify(reply) + '\n')
      // Read on, discarding, to the client's end: a paused socket never sees
      // it and server.close() would wait on it; closing at once could reset
      // a client still writing before it reads the answer. Bounded in time.
      sock.resume()
      sock.setTimeout(CLOSE_AFTER_MS, () => { sock.destroy() })
    }
    sock.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl < 0 ? buf.length > MAX_REQUEST : nl > MAX_REQUEST) { done({ ok: false, error: 'request too long' }); return }
      if (nl < 0) return
      const line = buf.slice(0, nl)
      sock.removeAllListeners('data')
      sock.pause()
      void answer(line, handle).then(done)
    })
  })
  server.once('close', () => { rmSync(path, { force: true }) })
  return await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      chmodSync(path, 0o660)
      resolve(server)
    })
  })
}

async function answer (line: string, handle: Handler): Promise<unknown> {
  let verb: unknown
  try {
    verb = (JSON.parse(line) as { verb?: unknown }).verb
  } catch {
    return { ok: false, error: 'not a JSON request line' }
  }
  if (typeof verb !== 'string' || !(VERBS as readonly string[]).includes(verb)) return { ok: false, error: `unknown verb; one of ${VERBS.join(', ')}` }
  try {
    return { ok: true, result: await handle(verb as Verb) }
  } catch (err) {
    return { ok: false, error: (err as Error).message }
  }
}

/** Why a control request failed: no daemon there (ENOENT, ECONNREFUSED), no access, or a bad answer. */
export class ControlError extends Error {
  constructor (readonly code: string, message: string) { super(message) }
}

/** Ask the daemon; resolves with its `result`, rejects with ControlError. */
export function askControl (path: string, verb: Verb, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path)
    let buf = ''
    const timer = setTimeout(() => { sock.destroy(); reject(new ControlError('ETIMEDOUT', `${path}: no answer in ${timeoutMs} ms`)) }, timeoutMs)
    sock.setEncoding('utf8')
    sock.on('connect', () => { sock.write(JSON.stringify({ verb }) + '\n') })
    sock.on('data', (c: string) => { buf += c })
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new ControlError(err.code ?? 'EIO', `${path}: ${err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'no daemon is listening' : err.message}`))
    })
    sock.on('end', () => {
      clearTimeout(timer)
      try {
        const reply = JSON.parse(buf) as { ok: boolean, result?: unknown, error?: string }
        if (reply.ok) resolve(reply.result)
        else reject(new ControlError('EREFUSED', reply.error ?? 'refused'))
      } catch {
        reject(new ControlError('EPROTO', `${path}: not an aigate answer`))
      }
    })
  })
}
