import { Option, type Command } from 'commander'
import { runDaemon, parseQueues } from '../../daemon/index.js'
import { cacheSizeOption, rulesOptions, UsageError } from '../shared.js'

/** `aigate run`: the inline daemon on NFQUEUE. */
export function registerRun (program: Command): void {
  rulesOptions(program.command('run')
    .description('the inline daemon: classify packets from NFQUEUE and return verdicts (needs CAP_NET_ADMIN; set the kernel rules up with `aigate firewall up`)')
    .addOption(new Option('--queues <list>', 'NFQUEUE numbers, one worker thread each: 0 | 0,1 | 0-3').default('0'))
    .addOption(cacheSizeOption('decision cache entries per queue'))
    .addOption(new Option('--log <file>', 'decision log: a file (appended; SIGHUP reopens it, for logrotate) or - for stdout').default('-'))
    .option('--fail-open', 'when the queue is full, accept packets instead of dropping them (the default drops: a flood must not wave blocked names through)')
    .addOption(new Option('--fail-closed', 'the default now (kept for old command lines)').hideHelp()))
    .action(async (opts: { rules: string, policy: string, queues: string, cacheSize: number, log: string, failOpen?: boolean }) => {
      const queues = parseQueues(opts.queues)
      if (queues === null) throw new UsageError(`--queues: "${opts.queues}" is not a queue list (0, 0,1 or 0-3; at most 64)`)
      await runDaemon({ queues, rulesDir: opts.rules, policyFile: opts.policy, cacheSize: opts.cacheSize, log: opts.log, failOpen: opts.failOpen === true })
    })
}
