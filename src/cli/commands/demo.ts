import { Option, type Command } from 'commander'
import { runDemo } from '../../demo/index.js'
import { runHaDemo } from '../../demo/ha.js'
import { intOption, rulesOptions } from '../shared.js'

/** `aigate demo`: a sandbox of namespaces with real clients and servers, aigate inline; `--ha`: two gateways across a failover. */
export function registerDemo (program: Command): void {
  rulesOptions(program.command('demo')
    .description('(root) build a sandbox of network namespaces, run aigate inline with real clients and servers, show the decisions, remove everything')
    .addOption(new Option('--timeout <s>', 'seconds a client waits before it counts as blocked').default(3).argParser(intOption('--timeout', 1)))
    .option('--ha', 'two aigate gateways (keepalived, conntrackd) and a forced failover with a download and a blocked attempt in flight; needs keepalived and conntrackd'))
    .action(async (opts: { rules: string, policy: string, timeout: number, ha?: boolean }) => {
      const o = { rulesDir: opts.rules, policyFile: opts.policy, timeoutSec: opts.timeout }
      process.exitCode = opts.ha === true ? await runHaDemo(o) : await runDemo(o)
    })
}
