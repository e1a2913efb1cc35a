import { Option, type Command } from 'commander'
import { askControl, ControlError, DEFAULT_CONTROL_SOCKET, VERBS, type Verb } from '../../control/index.js'
import type { StatusReport } from '../../daemon/health.js'
import { asciiJson, printable } from '../shared.js'

/** Exit statuses of `aigate status`, as an init script's status action (LSB: 3 = not running). */
export const STATUS_HEALTHY = 0
export const STATUS_DEGRADED = 1
export const STATUS_NOT_RUNNING = 3

function controlOption (): Option {
  return new Option('--control <path>', 'the daemon\'s control socket').default(DEFAULT_CONTROL_SOCKET)
}

function human (s: StatusReport): string {
  const lines = [
    `aigate ${s.version}, pid ${s.pid}: ${s.state}`,
    ...s.reasons.map((r) => `  ! ${r}`),
    `up ${s.uptimeSeconds} s since ${s.startedAt}`,
    `rules ${s.rules.version}, loaded ${s.rules.loadedAt}: ${s.rules.lists} vendor lists, ${s.rules.entries} entries, policy ${s.rules.policy}; ${s.rules.reloadFailures} refused reloads`,
  ]
  for (const q of s.queues) {
    lines.push(`queue ${q.queue}: ${q.bound ? `bound (netlink port ${q.portId})` : 'NOT bound'}, ${q.counters?.packets ?? 0} packets, ` +
      `${q.counters?.decided ?? 0} decided, last verdict ${q.lastVerdict ?? 'never'}`)
  }
  const t = s.totals
  lines.push(`overload: ${t.overloadDropped} dropped (queue full)${t.overBudgetPackets === null ? '' : `, ${t.overBudgetPackets} over the per-source budget`}; ` +
    `bypass: ${t.bypassedPackets === null ? 'unknown (firewall counters not readable)' : `${t.bypassedPackets} queued packets never read`}; ` +
    `in the last ${s.recent.seconds} s: ${s.recent.overloadDropped} overload, ${s.recent.bypassedPackets ?? 'unknown'} bypass`)
  if (t.logLost > 0) lines.push(`decision log: ${t.logLost} lines lost`)
  return lines.map(printable).join('\n') + '\n'
}

/** `aigate status` and `aigate control`: ask the running daemon over its control socket. */
export function registerStatus (program: Command): void {
  program.command('status')
    .description('ask the running daemon how it is: queues bound, rules version, counters, overload and bypass (exit 0 healthy, 1 degraded, 3 not running)')
    .option('--json', 'the whole report as one JSON object')
    .addOption(controlOption())
    .action(async (opts: { json?: boolean, control: string }) => {
      let s: StatusReport
      try {
        s = await askControl(opts.control, 'status') as StatusReport
      } catch (err) {
        if (!(err instanceof ControlError)) throw err
        if (opts.json === true) process.stdout.write(asciiJson({ state: 'not-running', reason: err.message }) + '\n')
        else process.stderr.write(`aigate: not running: ${printable(err.message)}\n`)
        process.exitCode = STATUS_NOT_RUNNING
        return
      }
      process.stdout.write(opts.json === true ? asciiJson(s) + '\n' : human(s))
      process.exitCode = s.state === 'healthy' ? STATUS_HEALTHY : STATUS_DEGRADED
    })
  program.command('control')
    .description(`send the running daemon a verb over its control socket: ${VERBS.filter((v) => v !== 'status').join(' | ')} (reload = SIGHUP, reopen-logs = SIGUSR2)`)
    .argument('<verb>', 'reload | reopen-logs')
    .addOption(controlOption())
    .action(async (verb: string, opts: { control: string }) => {
      if (verb !== 'reload' && verb !== 'reopen-logs') {
        process.stderr.write(`aigate: control: "${printable(verb)}" is not a verb (reload, reopen-logs)\n`)
        process.exitCode = 2
        return
      }
      try {
        const r = await askControl(opts.control, verb as Verb)
        process.stdout.write(asciiJson(r) + '\n')
      } catch (err) {
        if (!(err instanceof ControlError)) throw err
        process.stderr.write(`aigate: ${verb}: ${printable(err.message)}\n`)
        process.exitCode = err.code === 'EREFUSED' ? 1 : STATUS_NOT_RUNNING
      }
    })
}
