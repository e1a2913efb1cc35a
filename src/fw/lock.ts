import { spawnSync } from 'node:child_process'
import { closeSync, constants, lstatSync, mkdirSync, openSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { FirewallError, type ExecContext } from './exec.js'

/**
 * One `aigate firewall up|down|status` at a time per network namespace.
 *
 * `up` reads the tables (iptables-save), then writes what is missing
 * (iptables-restore). `-w` only serializes each write, so two `up`s that read
 * before either wrote both inserted a jump rule: a duplicate. The whole
 * read-then-write runs under an exclusive flock(2) on
 * `/run/aigate/firewall-net<inode>.lock`, keyed by the namespace's inode, so
 * `--netns X` and `ip netns exec X aigate firewall up` take the same lock.
 *
 * Node has no flock(); flock(1) (util-linux) takes it for us on a descriptor
 * we pass as its fd 3. A flock belongs to the open file description, which
 * our descriptor still holds when flock(1) has exited, so the lock is ours
 * until we close it, and the kernel drops it if we die: no stale lock files.
 */

/** Where the lock files live: root's own directory (not /run/lock, which any user can write to). */
export const LOCK_DIR = '/run/aigate'
/** How long to wait for another firewall command, in seconds. */
export const LOCK_WAIT_S = 60
/** flock(1)'s exit status when the wait ran out (its `-E`). */
const TIMED_OUT = 75

const PATH = [process.env['PATH'] ?? '', '/usr/local/bin', '/usr/bin', '/bin'].filter((p) => p !== '').join(':')

/** Lock files this process holds now: a locked call inside another one must not wait for itself. */
const held = new Set<string>()

/**
 * The lock file for a namespace: `firewall-net<inode>.lock` from the inode of
 * /run/netns/NAME (a named one) or /proc/self/ns/net (ours). A name that does
 * not exist is keyed by its name; the firewall command itself then reports it.
 */
export function lockPath (netns: string | null, dir = LOCK_DIR): string {
  try {
    const ino = statSync(netns === null ? '/proc/self/ns/net' : join('/run/netns', netns)).ino
    return join(dir, `firewall-net${ino}.lock`)
  } catch {
    return join(dir, `firewall-netns-${netns ?? 'self'}.lock`)
  }
}

function lockError (path: string, err: unknown): FirewallError {
  const code = (err as NodeJS.ErrnoException).code ?? String(err)
  const perm = code === 'EACCES' || code === 'EPERM'
  return new FirewallError(`${path}: cannot take the firewall lock: ${code}${perm ? ' (needs root)' : ''}`, perm ? 'EPERM' : 'EFAILED', `open ${path}`, '', null)
}

/** Make `dir` (mode 0755) and check that only root or we can write to it. */
function lockDir (dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o755, recursive: true })
  } catch (err) {
    throw lockError(dir, err)
  }
  const st = lstatSync(dir)
  const uid = process.geteuid?.() ?? 0
  if (!st.isDirectory() || (st.uid !== 0 && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new FirewallError(`${dir}: cannot take the firewall lock: not a directory owned by root and writable only by it`, 'EFAILED', `open ${dir}`, '', null)
  }
}

/**
 * Run `fn` holding the firewall lock of `ctx.netns`; waits up to LOCK_WAIT_S
 * for another holder. Throws FirewallError when the lock cannot be taken.
 */
export function withFirewallLock<T> (ctx: ExecContext, fn: () => T, dir = LOCK_DIR): T {
  lockDir(dir)
  const path = lockPath(ctx.netns, dir)
  if (held.has(path)) return fn()
  let fd: number
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
  } catch (err) {
    throw lockError(path, err)
  }
  try {
    const r = spawnSync('flock', ['-x', '-w', String(LOCK_WAIT_S), '-E', String(TIMED_OUT), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
      encoding: 'utf8',
      env: { ...process.env, PATH, LC_ALL: 'C' },
    })
    const command = `flock -x -w ${LOCK_WAIT_S} ${path}`
    if (r.error !== undefined) {
      const code = (r.error as NodeJS.ErrnoException).code
      throw new FirewallError(code === 'ENOENT' ? `${command} failed: flock not found (util-linux)` : `${command} failed: ${r.error.message}`, code === 'ENOENT' ? 'ENOENT' : 'EFAILED', command, '', null)
    }
    if (r.status === TIMED_OUT) {
      throw new FirewallError(`${command} failed: another aigate firewall command in this namespace held the lock for ${LOCK_WAIT_S} s`, 'EFAILED', command, r.stderr, r.status)
    }
    if (r.status !== 0) {
      const first = r.stderr.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? `signal ${String(r.signal)}`
      throw new FirewallError(`${command} failed (exit ${String(r.status)}): ${first}`, 'EFAILED', command, r.stderr, r.status)
    }
    held.add(path)
    try {
      return fn()
    } finally {
      held.delete(path)
    }
  } finally {
    // Closing our descriptor, the last one on the open file description, releases the lock.
    closeSync(fd)
  }
}
