import { Option, type Command } from 'commander'
import { runDaemon, parseQueues } from '../../daemon/index.js'
import { cacheSizeOption, rulesOptions, UsageError } from '../shared.js'
import { readVersion } from '../../util/version.js'
import { parseListen } from '../../metrics/registry.js'
import { DEFAULT_CONTROL_SOCKET } from '../../control/index.js'

/** `aigate run`: the inline daemon on NFQUEUE. */
export function registerRun (program: Command): void {
  rulesOptions(program.command('run')
    .description('the inline daemon: classify packets from NFQUEUE and return verdicts (needs CAP_NET_ADMIN; set the kernel rules up with `aigate firewall up`)')
    .addOption(new Option('--queues <list>', 'NFQUEUE numbers, one worker thread each: 0 | 0,1 | 0-3').default('0'))
    .addOption(cacheSizeOption('decision cache entries per queue'))
    .addOption(new Option('--log <file>', 'decision log: a file (appended; SIGUSR2 reopens it, for logrotate) or - for stdout').default('-'))
    .addOption(new Option('--metrics <[addr:]port>', 'serve Prometheus metrics at http://ADDR:PORT/metrics; a bare PORT listens on 127.0.0.1 (e.g. 9842, 127.0.0.1:9842, [::1]:9842)'))
    .addOption(new Option('--control <path>', 'control socket for `aigate status`, reload and reopen-logs; "none" for no socket').default(DEFAULT_CONTROL_SOCKET))
    .option('--fail-open', 'when the queue is full, accept packets instead of dropping them (the default drops: a flood must not wave blocked names through)')
    .addOption(new Option('--fail-closed', 'the default now (kept for old command lines)').hideHelp()))
    .action(async (opts: { rules: string, policy: string, queues: string, cacheSize: number, log: string, failOpen?: boolean, metrics?: string, control: string }) => {
      const queues = parseQueues(opts.queues)
      if (queues === null) throw new UsageError(`--queues: "${opts.queues}" is not a queue list (0, 0,1 or 0-3; at most 64)`)
      const metrics = opts.metrics === undefined ? null : parseListen(opts.metrics)
      if (metrics === null && opts.metrics !== undefined) throw new UsageError(`--metrics: "${opts.metrics}" is not [ADDR:]PORT (9842, 127.0.0.1:9842, [::1]:9842)`)
      await runDaemon({
        queues, rulesDir: opts.rules, policyFile: opts.policy, cacheSize: opts.cacheSize, log: opts.log, failOpen: opts.failOpen === true,
        metrics, control: opts.control === 'none' ? null : opts.control, version: readVersion(),
      })
    })
}
