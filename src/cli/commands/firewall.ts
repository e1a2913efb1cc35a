import { Option, type Command } from 'commander'
import { parseQueues } from '../../daemon/index.js'
import { up as fwUp, down as fwDown, status as fwStatus, print as fwPrint } from '../../fw/index.js'
import type { FirewallOptions } from '../../fw/options.js'
import { intOption, UsageError } from '../shared.js'

/** `aigate firewall up|down|status`: the kernel rules that send flow-opening packets to the queue. */

/** Where the rules are: every firewall command. */
const fwWhere = (cmd: Command): Command => cmd
  .option('--no-ipv6', 'leave ip6tables alone')
  .addOption(new Option('--backend <name>', 'iptables, nft or auto (nft when the kernel has its queue expression)').choices(['auto', 'iptables', 'nft']).default('auto'))
  .option('--netns <name>', 'apply in this network namespace')

/** What the rules are: up installs them, status compares with them; down removes whatever is there. */
const fwOptions = (cmd: Command): Command => fwWhere(cmd
  .addOption(new Option('--queues <list>', 'NFQUEUE numbers (consecutive: 0-3)').default('0'))
  .addOption(new Option('--hooks <list>', 'forward (routed traffic) and/or output (this host)').default('forward'))
  .option('--fail-closed', 'drop, instead of pass, packets when no daemon is bound to the queue')
  .addOption(new Option('--source-budget <pps>', 'packets per second one client address may send to the queue (burst: twice that; IPv6 per /64); over it they are dropped; 0: no budget').default(2000).argParser(intOption('--source-budget', 0)))
  .addOption(new Option('--queue-packets <n>', 'ignored: flows are queued until decided').hideHelp().argParser(intOption('--queue-packets', 1))))

interface FwFlags { queues: string, hooks: string, failClosed?: boolean, sourceBudget: number, queuePackets?: number, ipv6: boolean, backend: string, netns?: string }

function fwOpts (o: FwFlags): FirewallOptions {
  if (o.queuePackets !== undefined) process.stderr.write('aigate firewall: --queue-packets is ignored: every flow is queued until it is decided\n')
  const queues = parseQueues(o.queues)
  if (queues === null) throw new UsageError(`--queues: "${o.queues}" is not a queue list`)
  return {
    queues,
    hooks: o.hooks.split(',').map((h) => h.trim()) as Array<'forward' | 'output'>,
    failClosed: o.failClosed === true,
    sourceBudget: o.sourceBudget,
    ipv6: o.ipv6,
    backend: o.backend as 'auto' | 'iptables' | 'nft',
    ...(o.netns !== undefined ? { netns: o.netns } : {}),
  }
}

export function registerFirewall (program: Command): void {
  const fw = program.command('firewall').description('install, remove or show the kernel rules that send flow-opening packets to aigate (root)')
  fwOptions(fw.command('up').description('install the rules (idempotent)'))
    .option('--print', 'install nothing: write to stdout the exact input up feeds to iptables-restore -w --noflush (one per family, each after a comment line naming its tool; what up feeds on a host without aigate\'s rules) or to nft -f; no root needed with --backend iptables|nft')
    .action((o: FwFlags & { print?: boolean }) => {
      if (o.print === true) {
        process.stdout.write(fwPrint(fwOpts(o)).text)
        return
      }
      const backend = fwUp(fwOpts(o))
      process.stdout.write(`aigate firewall: rules installed (${backend})\n`)
    })
  fwWhere(fw.command('down').description('remove the rules, on every hook and queue (idempotent; the host is left as before `up`)')).action((o: { ipv6: boolean, backend: string, netns?: string }) => {
    fwDown({ ipv6: o.ipv6, backend: o.backend as 'auto' | 'iptables' | 'nft', ...(o.netns !== undefined ? { netns: o.netns } : {}) })
    process.stdout.write('aigate firewall: rules removed\n')
  })
  fwOptions(fw.command('status').description('show whether the rules are installed, and their packet counters')).option('--json', 'one JSON object')
    .action((o: { json?: boolean } & FwFlags) => {
      const s = fwStatus(fwOpts(o))
      if (o.json === true) { process.stdout.write(JSON.stringify(s) + '\n'); return }
      process.stdout.write(`installed: ${s.installed ? 'yes' : 'no'} (${s.backend}), hooks: ${s.hooks.join(',') || '-'}, packets sent to userspace: ${s.queuedPackets}, dropped over a source's budget: ${s.overBudgetPackets}\n`)
      for (const r of s.rules) process.stdout.write(`  ${String(r.packets).padStart(10)} pkts  ${r.family} ${r.table}/${r.chain} ${r.name}\n`)
      if (!s.installed) process.exitCode = 3
    })
}
