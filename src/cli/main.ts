import { Command, CommanderError } from 'commander'
import { AigateError } from '../util/errors.js'
import { readVersion } from '../util/version.js'
import { printable } from './shared.js'
import { registerClassify } from './commands/classify.js'
import { registerCheck } from './commands/check.js'
import { registerRun } from './commands/run.js'
import { registerFirewall } from './commands/firewall.js'
import { registerCapture } from './commands/capture.js'
import { registerDemo } from './commands/demo.js'
import { registerRules } from './commands/rules.js'
import { registerStatus } from './commands/status.js'
import { registerReport } from './commands/report.js'
import { registerLogs } from './commands/logs.js'

/**
 * Command line: the only module that prints for people and calls process.exit.
 * Failures are one clear line on stderr and a non-zero status, never a stack.
 * Each command lives in commands/<name>.ts; what several share is in shared.ts.
 */

export { MAX_CACHE_SIZE } from './shared.js'
export { MAX_PIPED_CAPTURE } from './commands/classify.js'

export function buildProgram (): Command {
  const program = new Command('aigate')
  program
    .description('Network-edge control for AI services.\nLearns the name a connection opens (TLS SNI, QUIC SNI, DNS, HTTP Host), matches it against\nAI-vendor lists and decides allow, monitor, block or reject.')
    .version(readVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Examples:
  aigate check api.anthropic.com chatgpt.com example.org
  aigate classify capture.pcap > decisions.ndjson
  aigate rules lint --rules /etc/aigate/rules --policy /etc/aigate/policy.yaml
  aigate rules import --format adblock --vendor myvendor list.txt

Actions: allow (pass), monitor (pass and log), block (drop), reject (TCP reset / ICMP unreachable).
Decision lines are JSON with Elastic Common Schema field names and a flat "name".

Exit status: 0 done; 1 an error (a file, the rules, the capture, the kernel) or, for
check, a name that is not a host name; 2 a usage error; 3 firewall status: not installed.
status: 0 healthy, 1 degraded, 3 the daemon is not running.`)
  // In this order in --help.
  registerClassify(program)
  registerCheck(program)
  registerRun(program)
  registerStatus(program)
  registerFirewall(program)
  registerCapture(program)
  registerDemo(program)
  registerRules(program)
  registerReport(program)
  registerLogs(program)
  return program
}

function fail (err: unknown): number {
  if (err instanceof AigateError) {
    for (const p of err.problems) process.stderr.write(`aigate: ${printable(p)}\n`)
    return err.exitCode
  }
  // Commander's own errors (unknown option, missing argument) are usage errors, as ours are; --help and --version exit 0.
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EPIPE') return 0
  process.stderr.write(`aigate: ${printable(err instanceof Error ? err.message : String(err))}\n`)
  if (process.env.AIGATE_DEBUG !== undefined && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`)
  return 1
}

let watching = false

/**
 * The reader went away (`aigate check x | head -1`): what is left to print has
 * nowhere to go, and that is not an error. Node ignores SIGPIPE, so a write to
 * the closed pipe fails with EPIPE, reported as an 'error' event on the stream
 * after write() has returned; unhandled, that event ends the process with a
 * stack trace. Here it only ends the output: later writes are dropped by the
 * destroyed stream, the command finishes (`demo` still removes its sandbox)
 * and exits with the status it would have had (0 when it did its job; `rules
 * lint 2>&1 | head -1` on bad rules still fails, so a pipefail script sees
 * it). Once per process: main() may run more than once in one (the tests).
 */
function watchOutput (): void {
  if (watching) return
  watching = true
  for (const [stream, what] of [[process.stdout, 'stdout'], [process.stderr, 'stderr']] as const) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') return
      if (what === 'stdout') process.stderr.write(`aigate: cannot write to stdout (${err.code ?? 'EIO'})\n`)
      process.exitCode = 1
    })
  }
}

export async function main (argv: string[]): Promise<void> {
  watchOutput()
  const program = buildProgram()
  // Every command, not only the root (commands made before this call do not
  // inherit it): a usage error throws here instead of calling process.exit(1).
  const override = (c: Command): void => {
    c.exitOverride()
    c.configureOutput({ writeErr: (s) => process.stderr.write(s) })
    c.commands.forEach(override)
  }
  override(program)
  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    process.exitCode = fail(err)
  }
}
