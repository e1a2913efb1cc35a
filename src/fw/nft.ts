import { AIGATE_MARK_MASK, MARK_ACCEPT, MARK_DROP, MARK_REJECT } from '../verdict/marks.js'
import { run, tryRun, type ExecContext, type FirewallError } from './exec.js'
import { resolveOptions, hex, queueTotals, type Firewall, type FirewallOptions, type FirewallStatus, type Hook, type Resolved, type RuleCounter } from './options.js'

/**
 * The nftables backend, for kernels with the native `queue` expression (most
 * real gateways). Everything lives in one table of our own, `inet aigate`,
 * replaced atomically by `up` and deleted by `down`: the host's tables are
 * never touched.
 *
 * One regular chain `decide` (same order as the iptables chains), jumped to
 * from base chains at priority mangle (-150) on the forward and/or output
 * hook. In nftables an `accept` or a queue verdict of NF_ACCEPT only ends
 * this table's base chain: the host's own tables still see the packet, so
 * the whole logic fits in one chain here. NF_REPEAT re-runs our base chain,
 * where the verdict mark is saved into the connection and acted upon.
 *
 * A flow is queued until it carries a verdict, not for its first N packets
 * (a window empty ACKs can burn). nft has no payload-length test, so unlike
 * the iptables rules (xt_bpf) SYNs and empty ACKs of undecided flows are
 * queued too and answered at once.
 */

export const NFT_TABLE = 'aigate'
const CHAIN = 'decide'

/** The ruleset `up` loads into a fresh `inet aigate` table (pure: no commands run). */
export function nftRuleset (options: FirewallOptions = {}): string {
  return rulesetFor(resolveOptions(options))
}

function rulesetFor (o: Resolved): string {
  const mask = hex(AIGATE_MARK_MASK)
  const keep = hex(~AIGATE_MARK_MASK >>> 0)
  const q0 = o.queues[0] as number
  const q1 = o.queues[o.queues.length - 1] as number
  // A range without `fanout` spreads by a hash of the flow, as --queue-balance.
  const queue = `queue num ${o.queues.length === 1 ? String(q0) : `${q0}-${q1}`}${o.failClosed ? '' : ' bypass'}`
  // Per source address (IPv6 per /64): packets over the budget are dropped
  // before the queue, one bucket for every queue rule (the budget chain).
  const rate = `limit rate over ${o.sourceBudget}/second burst ${2 * o.sourceBudget} packets`
  const queued = (name: string, match: string): string[] => [
    ...(o.sourceBudget === 0
      ? []
      : [
          rule(`${name}-over-budget`, `${match} meta nfproto ipv4 update @budget4 { ip saddr ${rate} } counter drop`),
          rule(`${name}-over-budget-v6`, `${match} meta nfproto ipv6 update @budget6 { ip6 saddr & ffff:ffff:ffff:ffff:: ${rate} } counter drop`),
        ]),
    rule(name, `${match} counter ${queue}`),
  ]
  const ct = (v: number): string => `ct mark & ${mask} == ${hex(v)}`
  const pkt = (v: number): string => `meta mark & ${mask} == ${hex(v)}`
  const save = (v: number): string => `ct mark set ct mark & ${keep} | ${hex(v)}`
  const rule = (name: string, body: string): string => `\t\t${body} comment "${name}"`
  const decide = [
    // 0. a SYN starts a connection undecided, also one that reuses a conntrack entry
    rule('syn-undecided', `tcp flags & (fin|syn|rst|ack) == syn counter ct mark set ct mark & ${keep}`),
    //    the SYN of a new connection that opens with a name: where its stream starts
    ...queued('queue-syn', `tcp dport { 80, 443, 853 } tcp flags & (fin|syn|rst|ack) == syn ct state new ${pkt(0)}`),
    //    every QUIC Initial (long header, >= 1200 bytes of payload), whatever the port pair's mark
    ...queued('queue-quic', `udp dport 443 ${pkt(0)} udp length >= 1208 @th,64,1 1`),
    // 1. a decided connection: later packets never reach userspace
    rule('decided-accept', `${ct(MARK_ACCEPT)} counter accept`),
    rule('decided-drop', `${ct(MARK_DROP)} counter drop`),
    rule('decided-reject-tcp', `meta l4proto tcp ${ct(MARK_REJECT)} counter reject with tcp reset`),
    rule('decided-reject', `${ct(MARK_REJECT)} counter reject with icmpx type port-unreachable`),
    // 2. the daemon's NF_REPEAT pass: a DNS query's verdict is for that query only (not saved,
    //    so one blocked name does not silence the socket's next queries) ...
    rule('verdict-dns-udp-drop', `udp dport 53 ${pkt(MARK_DROP)} counter drop`),
    rule('verdict-dns-udp-reject', `udp dport 53 ${pkt(MARK_REJECT)} counter reject with icmpx type port-unreachable`),
    //    ... any other: save the verdict into the connection, then act on it
    rule('verdict-accept', `${pkt(MARK_ACCEPT)} counter ${save(MARK_ACCEPT)} accept`),
    rule('verdict-drop', `${pkt(MARK_DROP)} counter ${save(MARK_DROP)} drop`),
    rule('verdict-reject-tcp', `meta l4proto tcp ${pkt(MARK_REJECT)} counter ${save(MARK_REJECT)} reject with tcp reset`),
    rule('verdict-reject', `${pkt(MARK_REJECT)} counter ${save(MARK_REJECT)} reject with icmpx type port-unreachable`),
    rule('verdict-other', `meta mark & ${mask} != ${hex(0)} counter accept`),
    // 3. only packets that can carry a name go to the queue
    //    (every segment of a flow without a verdict: no packet-count window to burn)
    rule('drop-invalid', 'tcp dport { 80, 443, 853 } ct state invalid counter drop'),
    ...queued('queue-tls-http', 'tcp dport { 80, 443, 853 }'),
    ...queued('queue-dns-tcp', 'tcp dport 53'),
    ...queued('queue-dns-udp', 'udp dport 53'),
  ]
  const sets = o.sourceBudget === 0
    ? []
    : [
        '\tset budget4 { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 1m; }',
        '\tset budget6 { type ipv6_addr; size 65536; flags dynamic,timeout; timeout 1m; }',
      ]
  const only = o.ipv6 ? '' : 'meta nfproto ipv4 '
  const base = o.hooks.map((h) => [
    `\tchain ${h} {`,
    `\t\ttype filter hook ${h} priority mangle; policy accept;`,
    `\t\t${only}jump ${CHAIN}`,
    '\t}',
  ].join('\n'))
  return [`table inet ${NFT_TABLE} {`, ...sets, `\tchain ${CHAIN} {`, ...decide, '\t}', ...base, '}', ''].join('\n')
}

/**
 * The text `up` feeds to `nft -f -`, and `up --print` writes: a comment line,
 * then add + delete + the table in one transaction, so the table is replaced
 * atomically whether it existed or not (the same text works on a clean host
 * and on one where aigate's table is installed).
 */
function upInput (o: Resolved): string {
  return `# aigate firewall: input of nft -f (replaces table inet ${NFT_TABLE} atomically)\n` +
    `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${rulesetFor(o)}`
}

/** {@link upInput} from options: pure, no command runs, no root needed. */
export function nftUpInput (options: FirewallOptions = {}): string {
  return upInput(resolveOptions(options))
}

/** Does the kernel take our ruleset (queue expression included)? Checked with `nft -c`: nothing is committed. */
export function nftWorks (opts: FirewallOptions = {}): boolean {
  return nftCheck(opts) === null
}

/** Why `nft -c` refused our ruleset (EPERM: not root, so nothing was learnt), or null when the kernel takes it. */
export function nftCheck (opts: FirewallOptions = {}): FirewallError | null {
  const o = resolveOptions(opts)
  const r = tryRun({ netns: o.netns }, 'nft', ['-c', '-f', '-'], rulesetFor(o))
  return r.ok ? null : r.error
}

/** Append " [line N: ...]" with the input line nft complains about (`/dev/stdin:14:62-66: Error: ...`). */
function explainInput (input: string): (stderr: string) => string {
  return (stderr) => {
    const m = /:(\d+):\d+(-\d+)?: Error/.exec(stderr)
    const line = m === null ? undefined : input.split('\n')[Number(m[1]) - 1]
    return line === undefined ? '' : `[line ${m?.[1] ?? ''}: ${line.trim()}]`
  }
}

/** `nft list table inet aigate`, or null when there is no such table. */
function listTable (ctx: ExecContext): string | null {
  const r = tryRun(ctx, 'nft', ['list', 'table', 'inet', NFT_TABLE])
  if (r.ok) return r.stdout
  if (r.error.code === 'EPERM' || r.error.code === 'ENOENT') throw r.error
  return null
}

export const nftBackend: Firewall = {
  name: 'nft',
  up (opts?: FirewallOptions): void {
    const o = resolveOptions(opts)
    const input = upInput(o)
    run({ netns: o.netns }, 'nft', ['-f', '-'], input, explainInput(input))
  },
  down (opts?: FirewallOptions): void {
    const o = resolveOptions(opts)
    const ctx = { netns: o.netns }
    if (listTable(ctx) === null) return
    run(ctx, 'nft', ['delete', 'table', 'inet', NFT_TABLE])
  },
  status (opts?: FirewallOptions): FirewallStatus {
    const o = resolveOptions(opts)
    const text = listTable({ netns: o.netns })
    const rules: RuleCounter[] = []
    const hooks: Hook[] = []
    let hasDecide = false
    let chain = ''
    for (const raw of (text ?? '').split('\n')) {
      const line = raw.trim()
      const c = /^chain (\S+) \{$/.exec(line)
      if (c !== null) { chain = c[1] as string; if (chain === CHAIN) hasDecide = true; continue }
      if (chain === CHAIN) {
        const counter = /counter packets (\d+) bytes (\d+)/.exec(line)
        const name = /comment "([^"]*)"$/.exec(line)
        if (counter !== null) {
          rules.push({
            family: 'inet',
            table: NFT_TABLE,
            chain: CHAIN,
            name: name === null ? '?' : (name[1] as string),
            rule: line,
            packets: Number(counter[1]),
            bytes: Number(counter[2]),
          })
        }
      } else if ((chain === 'forward' || chain === 'output') && new RegExp(`jump ${CHAIN}$`).test(line)) {
        hooks.push(chain)
      }
    }
    return {
      installed: text !== null && hasDecide && hooks.length > 0,
      backend: 'nft',
      hooks,
      rules,
      ...queueTotals(rules),
    }
  },
}
