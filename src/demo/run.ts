/**
 * The lifetime of a demo run (`aigate demo`, `aigate demo --ha`): the body
 * runs with the sandbox up, and the sandbox is removed once, whichever comes
 * first: the body's end, an error (its message on stderr, exit status 1) or
 * Ctrl-C / SIGTERM (exit status 130).
 */

const tty = process.stdout.isTTY === true
/** `s` in SGR colour `code` on a terminal, as is otherwise. */
export const paint = (code: string, s: string): string => tty ? `\x1b[${code}m${s}\x1b[0m` : s
/** One step of the demo's story on stdout. */
export function say (s: string): void { process.stdout.write(`${paint('1', '==')} ${s}\n`) }

/** How often the decision log is followed on screen. */
const TAIL_MS = 100

export interface DemoRun {
  /** The command, for messages: `aigate demo`. */
  command: string
  /** Removes the sandbox and the temporary files; called once. */
  cleanup: () => void
  /** What the last line says was removed: `namespaces, firewall rules, ...`. */
  removed: string
}

/**
 * Run `body` and then remove the sandbox. `tail(fn)` makes `fn` (print the
 * new lines of the decision log) run every TAIL_MS until the end.
 */
export async function runDemoBody (run: DemoRun, body: (tail: (fn: () => void) => void) => Promise<number>): Promise<number> {
  let cleaned = false
  const cleanup = (): void => {
    if (cleaned) return
    cleaned = true
    run.cleanup()
  }
  const onSignal = (): void => { process.stderr.write(`\n${run.command}: interrupted, cleaning up\n`); cleanup(); process.exit(130) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let tail: NodeJS.Timeout | null = null
  try {
    return await body((fn) => { tail = setInterval(fn, TAIL_MS) })
  } catch (err) {
    process.stderr.write(`${run.command}: ${(err as Error).message}\n`)
    return 1
  } finally {
    if (tail !== null) clearInterval(tail)
    cleanup()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    say(`sandbox removed (${run.removed})`)
  }
}
