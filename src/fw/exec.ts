import { execFileSync } from 'node:child_process'
import { AigateError } from '../util/errors.js'

/**
 * Running the firewall tools: always an argument array (never a shell
 * string), optionally inside a network namespace through `ip netns exec NS`,
 * and every failure turned into one FirewallError whose one-line message names
 * the command and the first line of its stderr.
 */

/** Stable codes: what went wrong, for callers that branch on it. */
export type FirewallErrorCode =
  /** The tool (iptables, nft, ip...) is not installed, or the namespace does not exist. */
  | 'ENOENT'
  /** Not root / no CAP_NET_ADMIN. */
  | 'EPERM'
  /** The kernel refused a match, target or expression (a module or config option is missing). */
  | 'EKERNEL'
  /** Any other non-zero exit. */
  | 'EFAILED'

/** A firewall command that failed: one problem (its `message`), exit status 1, as AigateError has them by default. */
export class FirewallError extends AigateError {
  override readonly name = 'FirewallError'
  readonly code: FirewallErrorCode
  /** The command line as it was run, for display. */
  readonly command: string
  /** The whole stderr of the command (the message keeps only its first line). */
  readonly stderr: string
  /** Exit status, or null when the command could not be started. */
  readonly status: number | null

  constructor (message: string, code: FirewallErrorCode, command: string, stderr: string, status: number | null) {
    super(message)
    this.code = code
    this.command = command
    this.stderr = stderr
    this.status = status
  }
}

/** Where the commands run: the host, or a named network namespace. */
export interface ExecContext {
  readonly netns: string | null
}

// iptables, ip6tables and nft live in /usr/sbin, which is not on every PATH
// (a non-login root shell, a service manager's minimal environment).
const PATH = [process.env['PATH'] ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((p) => p !== '').join(':')
const TIMEOUT_MS = 30_000

const PERM = /permission denied|operation not permitted|you must be root|must be run as root/i
const KERNEL = /missing kernel module|not supported|no chain\/target\/match by that name|couldn't load (match|target)|unknown option|no such file or directory.*rule|could not process rule/i

/** Text shown for a command: `ip netns exec gw iptables-restore -w --noflush`. */
export function shown (ctx: ExecContext, cmd: string, args: readonly string[]): string {
  const argv = ctx.netns === null ? [cmd, ...args] : ['ip', 'netns', 'exec', ctx.netns, cmd, ...args]
  return argv.join(' ')
}

/**
 * Run `cmd args` (stdin = `input`), return stdout. Throws FirewallError.
 * `explain` may add context to the message from the stderr (e.g. the batch
 * line iptables-restore refused).
 */
export function run (ctx: ExecContext, cmd: string, args: readonly string[], input?: string, explain?: (stderr: string) => string): string {
  const file = ctx.netns === null ? cmd : 'ip'
  const argv = ctx.netns === null ? [...args] : ['netns', 'exec', ctx.netns, cmd, ...args]
  try {
    return execFileSync(file, argv, {
      encoding: 'utf8',
      input: input ?? '',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: TIMEOUT_MS,
      env: { ...process.env, PATH, LC_ALL: 'C' },
      maxBuffer: 64 * 1024 * 1024,
    })
  } catch (err) {
    throw toFirewallError(ctx, cmd, args, err, explain)
  }
}

/** Like run(), but a failure is returned instead of thrown. */
export function tryRun (ctx: ExecContext, cmd: string, args: readonly string[], input?: string): { ok: true, stdout: string } | { ok: false, error: FirewallError } {
  try {
    return { ok: true, stdout: run(ctx, cmd, args, input) }
  } catch (err) {
    if (err instanceof FirewallError) return { ok: false, error: err }
    throw err
  }
}

/** Is `cmd` installed (where the commands run)? */
export function hasCommand (ctx: ExecContext, cmd: string): boolean {
  const r = tryRun(ctx, cmd, ['--version'])
  if (r.ok) return true
  // A missing namespace is an error, not a missing tool.
  if (/^Cannot open network namespace/m.test(r.error.stderr)) throw r.error
  return r.error.code !== 'ENOENT'
}

function toFirewallError (ctx: ExecContext, cmd: string, args: readonly string[], err: unknown, explain?: (stderr: string) => string): FirewallError {
  const command = shown(ctx, cmd, args)
  const e = err as NodeJS.ErrnoException & { status?: number | null, stderr?: string | Buffer, signal?: string | null }
  if (e.code === 'ENOENT') {
    const missing = ctx.netns === null ? cmd : 'ip'
    return new FirewallError(`${command} failed: ${missing} not found (not installed, or not on the PATH)`, 'ENOENT', command, '', null)
  }
  if (e.code === 'ETIMEDOUT' || (e.signal !== null && e.signal !== undefined && e.status === null)) {
    return new FirewallError(`${command} failed: no answer within ${TIMEOUT_MS / 1000} s (${e.signal ?? 'timeout'})`, 'EFAILED', command, '', null)
  }
  const stderr = typeof e.stderr === 'string' ? e.stderr : (e.stderr?.toString('utf8') ?? '')
  const first = firstLine(stderr) ?? (e.message.split('\n')[0] ?? 'unknown error')
  let code: FirewallErrorCode = 'EFAILED'
  // `ip netns exec` reports a missing program or namespace itself.
  if (/^exec of ".*" failed: No such file or directory/m.test(stderr) || /^Cannot open network namespace/m.test(stderr)) code = 'ENOENT'
  else if (PERM.test(stderr)) code = 'EPERM'
  else if (KERNEL.test(stderr)) code = 'EKERNEL'
  const extra = explain?.(stderr) ?? ''
  const status = typeof e.status === 'number' ? e.status : null
  return new FirewallError(`${command} failed${status === null ? '' : ` (exit ${status})`}: ${first}${extra === '' ? '' : ` ${extra}`}`, code, command, stderr, status)
}

/** The first non-empty line of `text`. */
function firstLine (text: string): string | null {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  return lines[0] ?? null
}
