import { Option, type Command } from 'commander'
import { runDemo } from '../../demo/index.js'
import { intOption, rulesOptions } from '../shared.js'

/** `aigate demo`: a sandbox of namespaces with real clients and servers, aigate inline. */
export function registerDemo (program: Command): void {
  rulesOptions(program.command('demo')
    .description('(root) build a sandbox of network namespaces, run aigate inline with real clients and servers, show the decisions, remove everything')
    .addOption(new Option('--timeout <s>', 'seconds a client waits before it counts as blocked').default(3).argParser(intOption('--timeout', 1))))
    .action(async (opts: { rules: string, policy: string, timeout: number }) => {
      process.exitCode = await runDemo({ rulesDir: opts.rules, policyFile: opts.policy, timeoutSec: opts.timeout })
    })
}
