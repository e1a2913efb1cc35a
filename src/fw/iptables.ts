import { run, hasCommand, FirewallError, type ExecContext } from './exec.js'
import { CHAIN, TABLES, RULE_PREFIX, jumpArgs, rulesFor, type IpFamily, type Table } from './iptables-rules.js'
import { parseSave, optionValue, jumpsToUs, isCanonicalJump, isEmptyTable, type SavedTable } from './iptables-save.js'
import { resolveOptions, queueTotals, type Firewall, type FirewallOptions, type FirewallStatus, type Hook, type IptablesVariant, type Resolved, type RuleCounter } from './options.js'

export { CHAIN, TCP_PAYLOAD_BPF, QUIC_LONG_HEADER_BPF, QUIC_MIN_PACKET, iptablesRules, type IpFamily, type Rule } from './iptables-rules.js'
export { parseSave, type SavedRule, type SavedTable } from './iptables-save.js'

/**
 * The iptables backend: `iptables`/`ip6tables` (nft or legacy variant) driven
 * through `iptables-save` (read, iptables-save.ts) and
 * `iptables-restore -w --noflush` (one atomic batch per family), never a
 * shell string. The rules it installs, and why they are as they are, are in
 * iptables-rules.ts.
 *
 * `iptables-save` output after `up` then `down` equals the output before:
 * chains and jumps go, and a table left with nothing in it (only built-in
 * chains, policy ACCEPT, no rule: iptables-nft creates tables on first use)
 * is deleted again. iptables-legacy cannot delete a table once the kernel
 * instantiated it in a namespace; it stays, empty.
 */

const HOOK_CHAIN: Record<Hook, string> = { forward: 'FORWARD', output: 'OUTPUT' }

interface Tools { readonly cmd: string, readonly save: string, readonly restore: string }

function tools (variant: IptablesVariant, family: IpFamily): Tools {
  const base = family === 'ipv4' ? 'iptables' : 'ip6tables'
  const name = variant === 'default' ? base : `${base}-${variant}`
  return { cmd: name, save: `${name}-save`, restore: `${name}-restore` }
}

/** Append " [batch line N: ...]" when iptables-restore names the line of `input` it refused (comment lines count). */
function explainInput (input: string): (stderr: string) => string {
  return (stderr) => {
    const m = /line:? (\d+)/i.exec(stderr)
    const n = m === null ? NaN : Number(m[1])
    const text = input.split('\n')[n - 1]
    return text === undefined ? '' : `[batch line ${n}: ${text}]`
  }
}

function families (o: Resolved): IpFamily[] {
  return o.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4']
}

/** An argument in an iptables-restore line: quoted when it has spaces (the BPF bytecode). */
function restoreArg (a: string): string {
  return /\s/.test(a) ? `"${a}"` : a
}

/** The arguments `up` and `down` give iptables-restore. */
const RESTORE_ARGS = ['-w', '--noflush'] as const

/**
 * The text fed to `iptables-restore -w --noflush` (or ip6tables-restore): a
 * comment line naming the family and the tool (iptables-restore skips it),
 * then the batch. `up` feeds exactly this, and `up --print` writes exactly
 * this (restoreInput on an empty table state): one function, so the two
 * cannot drift.
 */
function restoreInput (t: Tools, family: IpFamily, batch: readonly string[]): string {
  return [`# aigate firewall: ${family}, input of ${t.restore} ${RESTORE_ARGS.join(' ')}`, ...batch].join('\n') + '\n'
}

function restore (ctx: ExecContext, t: Tools, input: string): void {
  run(ctx, t.restore, RESTORE_ARGS, input, explainInput(input))
}

function upFamily (ctx: ExecContext, o: Resolved, family: IpFamily): void {
  const t = tools(o.iptables, family)
  const saved = parseSave(run(ctx, t.save, []))
  try {
    restore(ctx, t, restoreInput(t, family, upBatch(o, family, saved, true)))
  } catch (err) {
    // A kernel without xt_bpf (CONFIG_NETFILTER_XT_MATCH_BPF): queue every
    // early packet of the flow instead of only those with payload.
    if (!(err instanceof FirewallError) || !/bpf/i.test(err.message)) throw err
    restore(ctx, t, restoreInput(t, family, upBatch(o, family, saved, false)))
  }
}

/**
 * What `up` feeds to iptables-restore on a host without aigate's rules, one
 * input per family (IPv4 first), each starting with its comment line (see
 * restoreInput): pure, no command runs, no root needed. On a host where
 * they are already installed, `up` feeds the same chains and rules and
 * differs only in the hook jumps: an old jump is deleted (`-D`) and a
 * jump already first in its hook chain is kept instead of inserted again.
 * On a kernel without xt_bpf `up` falls back to rules without the payload
 * match; this prints the rules with it.
 */
export function iptablesUpInput (options: FirewallOptions = {}): Array<{ family: IpFamily, input: string }> {
  const o = resolveOptions(options)
  return families(o).map((family) => ({ family, input: restoreInput(tools(o.iptables, family), family, upBatch(o, family, new Map(), true)) }))
}

function upBatch (o: Resolved, family: IpFamily, saved: Map<string, SavedTable>, payloadMatch: boolean): string[] {
  const rules = rulesFor(o, family, payloadMatch)
  const batch: string[] = []
  for (const table of TABLES) {
    const cur = saved.get(table)
    const jumps = cur === undefined ? [] : jumpsToUs(cur)
    // `:AIGATE - [0:0]` with --noflush creates the chain, or empties it if it exists:
    // the chain is rebuilt whole, atomically, so a second `up` gives the same rules.
    batch.push(`*${table}`, `:${CHAIN} - [0:0]`)
    for (const r of rules[table]) batch.push(`-A ${CHAIN} ${r.args.map(restoreArg).join(' ')}`)
    for (const hook of ['forward', 'output'] as const) {
      const hookChain = HOOK_CHAIN[hook]
      const want = o.hooks.includes(hook)
      const ours = jumps.filter((j) => j.chain === hookChain)
      const first = cur?.rules.find((r) => r.chain === hookChain)
      if (want && ours.length === 1 && first !== undefined && first === ours[0] && isCanonicalJump(first, table, hookChain)) continue
      for (const j of ours) batch.push(j.line.replace(/^-A /, '-D '))
      if (want) batch.push(jumpArgs(table, hookChain).join(' ').replace(/^-A (\S+)/, '-I $1 1'))
    }
    // Jumps from other chains than our hooks (left by hand, or by an older version) go too.
    for (const j of jumps) {
      if (j.chain !== 'FORWARD' && j.chain !== 'OUTPUT') batch.push(j.line.replace(/^-A /, '-D '))
    }
    batch.push('COMMIT')
  }
  return batch
}

function downFamily (ctx: ExecContext, o: Resolved, family: IpFamily): void {
  const t = tools(o.iptables, family)
  const saved = parseSave(run(ctx, t.save, []))
  const batch: string[] = []
  const touched: Table[] = []
  for (const table of TABLES) {
    const cur = saved.get(table)
    if (cur === undefined) continue
    const jumps = jumpsToUs(cur)
    const hasChain = cur.chains.has(CHAIN)
    if (jumps.length === 0 && !hasChain) continue
    batch.push(`*${table}`)
    for (const j of jumps) batch.push(j.line.replace(/^-A /, '-D '))
    if (hasChain) batch.push(`-F ${CHAIN}`, `-X ${CHAIN}`)
    batch.push('COMMIT')
    touched.push(table)
  }
  if (batch.length === 0) return
  restore(ctx, t, restoreInput(t, family, batch))
  // A table left with nothing in it goes, so iptables-save shows what it showed
  // before `up` created it (an empty table changes no packet's fate either way).
  // iptables has no command to delete a table; with iptables-nft the table is an
  // nf_tables table, which `nft` can delete. Legacy tables cannot be deleted.
  if (!/nf_tables/.test(run(ctx, t.cmd, ['-V'])) || !hasCommand(ctx, 'nft')) return
  const after = parseSave(run(ctx, t.save, []))
  for (const table of touched) {
    const cur = after.get(table)
    if (cur !== undefined && isEmptyTable(cur)) run(ctx, 'nft', ['delete', 'table', family === 'ipv4' ? 'ip' : 'ip6', table])
  }
}

function statusFamily (ctx: ExecContext, o: Resolved, family: IpFamily, rules: RuleCounter[], hooks: Set<Hook>): boolean {
  const t = tools(o.iptables, family)
  const saved = parseSave(run(ctx, t.save, ['-c']))
  let installed = true
  const wanted = rulesFor(o, family, true)
  for (const table of TABLES) {
    const cur = saved.get(table)
    if (cur === undefined || !cur.chains.has(CHAIN)) { installed = false; continue }
    const jumps = jumpsToUs(cur)
    if (jumps.length === 0) installed = false
    for (const j of jumps) {
      if (j.chain === 'FORWARD') hooks.add('forward')
      if (j.chain === 'OUTPUT') hooks.add('output')
    }
    // A hot rule has no comment: it is named by its text as `up` wrote it
    // (a rule someone inserted by hand does not shift the names).
    // iptables-save prints marks without leading zeros (0x1000000, where we write 0x01000000).
    const plain = (line: string): string => line.replace(/0x0*([0-9a-f])/gi, '0x$1')
    const hotByLine = new Map(wanted[table].filter((h) => h.hot).map((h) => [plain(`-A ${CHAIN} ${h.args.map(restoreArg).join(' ')}`), h.name]))
    for (const r of cur.rules.filter((x) => x.chain === CHAIN)) {
      const comment = optionValue(r.tokens, '--comment')
      const byPlace = hotByLine.get(plain(r.line)) ?? '?'
      rules.push({
        family,
        table,
        chain: CHAIN,
        name: comment !== null && comment.startsWith(RULE_PREFIX) ? comment.slice(RULE_PREFIX.length) : byPlace,
        rule: r.line.replace(/^-A \S+ /, ''),
        packets: r.packets,
        bytes: r.bytes,
      })
    }
  }
  return installed
}

export const iptablesBackend: Firewall = {
  name: 'iptables',
  up (opts?: FirewallOptions): void {
    const o = resolveOptions(opts)
    const ctx = { netns: o.netns }
    for (const f of families(o)) upFamily(ctx, o, f)
  },
  down (opts?: FirewallOptions): void {
    const o = resolveOptions(opts)
    const ctx = { netns: o.netns }
    for (const f of families(o)) downFamily(ctx, o, f)
  },
  status (opts?: FirewallOptions): FirewallStatus {
    const o = resolveOptions(opts)
    const ctx = { netns: o.netns }
    const rules: RuleCounter[] = []
    const hooks = new Set<Hook>()
    let installed = true
    for (const f of families(o)) installed = statusFamily(ctx, o, f, rules, hooks) && installed
    return {
      installed,
      backend: 'iptables',
      hooks: (['forward', 'output'] as const).filter((h) => hooks.has(h)),
      rules,
      ...queueTotals(rules),
    }
  },
}
