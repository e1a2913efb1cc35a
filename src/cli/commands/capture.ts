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
    .addOption(new Option('--log <file>', 'decision log: a file (appended) or - for stdout').default('-')))
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
      process.stderr.write(`aigate: capturing on ${iface} (log only), filter: ${opts.filter}\n`)
      await new Promise<void>((resolve) => {
        const onSigint = (): void => { stop('SIGINT') }
        const onSigterm = (): void => { stop('SIGTERM') }
        let stopped = false
        const stop = (sig: string | null): void => {
          if (stopped) return
          stopped = true
          process.off('SIGINT', onSigint)
          process.off('SIGTERM', onSigterm)
          const s = handle.close()
          if (sig !== null) process.stderr.write(`aigate: ${sig}: ${s.received} packets received, ${s.dropped} dropped by the kernel, ${s.decisions} decisions, ${unreadText(s)}\n`)
          resolve()
        }
        readerGone = () => { stop(null) }
        process.once('SIGINT', onSigint)
        process.once('SIGTERM', onSigterm)
      })
    })
}
