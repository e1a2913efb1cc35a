import { Option, type Command } from 'commander'
import { loadRuleset } from '../../config/index.js'
import { Classifier } from '../../classify/index.js'
import { DecisionLog, FdLines } from '../../log/index.js'
import { unreadText } from '../../source/frames.js'
import { captureLive, NAME_PORTS_FILTER } from '../../source/live.js'
import { cacheSizeOption, rulesOptions } from '../shared.js'

/** `aigate capture <iface>`: passive mode, decisions logged from a live interface, no verdicts. */
export function registerCapture (program: Command): void {
  rulesOptions(program.command('capture')
    .description('passive mode: classify packets from a live interface (mirror/SPAN port) and log decisions, no verdicts (needs CAP_NET_RAW)')
    .argument('<iface>', 'interface to capture on')
    .addOption(new Option('--filter <bpf>', 'BPF filter: only ports that carry names').default(NAME_PORTS_FILTER))
    .addOption(cacheSizeOption('decision cache entries'))
    .addOption(new Option('--log <file>', 'decision log: a file (appended; SIGUSR2 reopens it, for logrotate) or - for stdout').default('-')))
    .addHelpText('after', `
Signals: SIGINT and SIGTERM stop the capture at once (the packets already captured are logged
first) and print its counters on stderr; SIGUSR2 reopens the --log file (after logrotate moved
it away); SIGHUP is ignored, with a note on stderr (capture has no rules reload: restart it).`)
    .action(async (iface: string, opts: { rules: string, policy: string, filter: string, cacheSize: number, log: string }) => {
      const classifier = new Classifier(loadRuleset(opts.rules, opts.policy), opts.cacheSize)
      const sink = new FdLines(opts.log)
      let readerGone = (): void => {}
      sink.onError = (e) => {
        // The log is stdout and its reader went away (`aigate capture eth0 | head`):
        // nothing more can be logged, so the capture ends, quietly. Not from
        // inside the session's packet callback, which is where this is called.
        if (opts.log === '-' && e.code === 'EPIPE') { setImmediate(() => { readerGone() }); return }
        process.stderr.write(`aigate: cannot write the decision log (${e.code}): ${e.message}; capture goes on\n`)
      }
      const handle = captureLive(iface, classifier, new DecisionLog(sink), opts.filter)
      const stopped = new Promise<void>((resolve) => {
        const onSigint = (): void => { stop('SIGINT') }
        const onSigterm = (): void => { stop('SIGTERM') }
        const onSigusr2 = (): void => {
          // Lines gathered so far go to the old file, the next ones to the new (FdLines.reopen).
          const e = sink.reopen()
          if (e !== null) process.stderr.write(`aigate: SIGUSR2: cannot reopen ${opts.log} (${e.code}): ${e.message}; the log goes on to the old file\n`)
        }
        // A hangup is not a stop (a capture left running under nohup or tmux
        // goes on) and not a reload (the daemon's SIGHUP): said, not silent.
        const onSighup = (): void => { process.stderr.write('aigate: SIGHUP ignored: capture has no rules reload (restart it); SIGUSR2 reopens --log, SIGINT or SIGTERM stop\n') }
        let done = false
        const stop = (sig: string | null): void => {
          if (done) return
          done = true
          process.off('SIGINT', onSigint)
          process.off('SIGTERM', onSigterm)
          process.off('SIGUSR2', onSigusr2)
          process.off('SIGHUP', onSighup)
          const s = handle.close()
          sink.close()
          if (sig !== null) process.stderr.write(`aigate: ${sig}: ${s.received} packets received, ${s.dropped} dropped by the kernel, ${s.decisions} decisions, ${unreadText(s)}\n`)
          resolve()
        }
        readerGone = () => { stop(null) }
        process.on('SIGINT', onSigint)
        process.on('SIGTERM', onSigterm)
        process.on('SIGUSR2', onSigusr2)
        process.on('SIGHUP', onSighup)
      })
      process.stderr.write(`aigate: capturing on ${iface} (log only), filter: ${opts.filter}\n`)
      await stopped
      // Stopped: the log is closed and the summary written (both synchronous).
      // The pcap session would hold the event loop until its next packet
      // (LiveHandle.close), so the command ends the process itself, now.
      process.exit()
    })
}
