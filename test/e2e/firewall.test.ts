import t from 'tap'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  up, down, status, detectBackend, iptablesBackend, iptablesRules, nftRuleset, resolveOptions, FirewallError, TCP_PAYLOAD_BPF, QUIC_LONG_HEADER_BPF,
  type FirewallOptions, type IptablesVariant,
} from '../../src/fw/index.js'
import { AIGATE_MARK_MASK, MARK_ACCEPT, MARK_DROP, MARK_REJECT } from '../../src/verdict/marks.js'
import { Sandbox } from '../../src/demo/sandbox.js'
import { Netns, netnsSkipReason, waitFor } from '../helpers/netns.js'

/**
 * `aigate firewall up|down|status` (src/fw), iptables backend, in network
 * namespaces: the exact rules, idempotence, a clean removal (iptables-save
 * equal to before), and real TCP traffic through a gateway with no daemon
 * bound: bypass lets it pass, fail-closed stops it, and a verdict mark (set
 * here by a test-only MARK rule where the daemon's NF_REPEAT would set it) is
 * saved into the connection and enforced without the queue.
 */

const skip = netnsSkipReason(['iptables', 'ip6tables'])
const hexMark = (v: number): string => `0x${v.toString(16)}/0x${AIGATE_MARK_MASK.toString(16)}`

// ---------------------------------------------------------------------------
// Pure parts: no root needed.

const MANGLE_NAMES = [
  'syn-undecided', 'queue-syn-over-budget', 'queue-syn', 'queue-quic-over-budget', 'queue-quic', 'decided-accept', 'queue-dns-udp-over-budget', 'queue-dns-udp',
  'decided', 'verdict-dns-udp', 'save', 'verdict', 'drop-invalid', 'queue-tls-http-over-budget', 'queue-tls-http', 'queue-dns-tcp-over-budget', 'queue-dns-tcp',
]

t.test('options are checked once, with exact messages', async (t) => {
  t.throws(() => resolveOptions({ queues: [] }), { name: 'RangeError', message: 'queues must name at least one queue' })
  t.throws(() => resolveOptions({ queues: [0, 2] }), { name: 'RangeError', message: 'queues must be consecutive and ascending, as --queue-balance takes a range (got 0,2)' })
  t.throws(() => resolveOptions({ queues: [70000] }), { name: 'RangeError', message: 'queue numbers must be integers from 0 to 65535 (got 70000)' })
  t.throws(() => resolveOptions({ hooks: ['input' as 'forward'] }), { name: 'RangeError', message: 'unknown hook "input" (forward or output)' })
  t.throws(() => resolveOptions({ sourceBudget: -1 }), { name: 'RangeError', message: 'sourceBudget must be an integer from 0 (off) to 1000000 (got -1)' })
  t.throws(() => resolveOptions({ queuePackets: 8 } as unknown as FirewallOptions), { name: 'TypeError', message: 'unknown firewall option "queuePackets"' })
  t.throws(() => resolveOptions({ netns: 'a b' }), { name: 'RangeError', message: 'netns must be a namespace name of letters, digits, "_", "." and "-" (got "a b")' })
  t.throws(() => resolveOptions({ queue: [0] } as unknown as FirewallOptions), { name: 'TypeError', message: 'unknown firewall option "queue"' })
  t.match(resolveOptions(), { queues: [0], hooks: ['forward'], failClosed: false, sourceBudget: 2000, ipv6: true, netns: null, backend: 'auto' })
})

t.test('rule generation: queue target, bypass, balance, IPv6 reject', async (t) => {
  const v4 = iptablesRules({}, 'ipv4')
  t.same(v4.mangle.map((r) => r.name), MANGLE_NAMES)
  t.same(iptablesRules({ sourceBudget: 0 }, 'ipv4').mangle.map((r) => r.name), MANGLE_NAMES.filter((n) => !n.endsWith('-over-budget')), 'sourceBudget 0: no budget rules')
  t.same(v4.filter.map((r) => r.name), ['verdict-drop', 'verdict-reject-tcp', 'verdict-reject'])
  t.same(v4.mangle.filter((r) => r.hot).map((r) => r.name), ['decided-accept'], 'only the rule every accepted packet matches is hot')
  for (const r of [...v4.mangle, ...v4.filter]) {
    t.equal(r.args.includes('comment'), !r.hot, `${r.name}: ${r.hot ? 'no comment (an xt match per packet)' : 'named by its comment'}`)
    const c = r.args.indexOf('--comment')
    if (!r.hot) t.same([r.args[c + 1], r.args[c + 2]], [`aigate:${r.name}`, '-j'], `${r.name}: the comment is the last match, so it runs only when the rest matched`)
  }
  const q = (o: FirewallOptions): string => (iptablesRules(o, 'ipv4').mangle.find((r) => r.name === 'queue-tls-http')?.args ?? []).join(' ')
  t.match(q({}), /-j NFQUEUE --queue-num 0 --queue-bypass$/)
  t.match(q({ failClosed: true }), /-j NFQUEUE --queue-num 0$/)
  t.match(q({ queues: [4, 5, 6, 7] }), /-j NFQUEUE --queue-balance 4:7 --queue-bypass$/)
  t.notMatch(q({}), /connbytes/, 'no packet-count window: a flow is queued until it has a verdict')
  const over = (o: FirewallOptions, f: 'ipv4' | 'ipv6' = 'ipv4'): string => (iptablesRules(o, f).mangle.find((r) => r.name === 'queue-tls-http-over-budget')?.args ?? []).join(' ')
  t.match(over({ sourceBudget: 300 }), /-m hashlimit --hashlimit-above 300\/sec --hashlimit-burst 600 --hashlimit-mode srcip --hashlimit-name aigate -m comment --comment aigate:queue-tls-http-over-budget -j DROP$/)
  t.match(over({}, 'ipv6'), /--hashlimit-srcmask 64 /, 'IPv6 clients are counted per /64')
  t.match(iptablesRules({}, 'ipv6').filter[2]?.args.join(' '), /--reject-with icmp6-port-unreachable$/)
  const nft = nftRuleset({ queues: [0, 1, 2, 3] })
  t.match(nft, /tcp dport \{ 80, 443, 853 \} counter queue num 0-3 bypass comment "queue-tls-http"/)
  t.match(nft, /udp dport 443 meta mark & 0x0f000000 == 0x00000000 udp length >= 1208 @th,64,1 1 counter queue/)
  t.match(nft, /tcp dport \{ 80, 443, 853 \} meta nfproto ipv4 update @budget4 \{ ip saddr limit rate over 2000\/second burst 4000 packets \} counter drop comment "queue-tls-http-over-budget"/)
  t.notMatch(nftRuleset({ sourceBudget: 0 }), /budget/)
  t.notMatch(nft, /ct original packets/)
  t.notMatch(nftRuleset({ failClosed: true }), /bypass/)
  t.match(nftRuleset({ hooks: ['forward', 'output'] }), /chain output \{\n\t\ttype filter hook output priority mangle/)
})

// ---------------------------------------------------------------------------
// In namespaces.

/** iptables-save and ip6tables-save, without comment lines and counters. */
function snapshot (net: Netns, ns: string, variant: IptablesVariant = 'default'): string {
  const suffix = variant === 'default' ? '' : `-${variant}`
  return ['iptables', 'ip6tables'].map((tool) => net.exec(ns, `${tool}${suffix}-save`, [])
    .split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]')).join('\n')).join('\n')
}

/** A snapshot without the tables that hold nothing (only built-in chains with policy ACCEPT). */
function withoutEmptyTables (snap: string): string {
  return snap.split(/(?=^\*)/m).filter((section) => {
    const lines = section.split('\n').filter((l) => l !== '' && l !== 'COMMIT' && !l.startsWith('*'))
    return !(section.startsWith('*') && lines.every((l) => /^:\S+ ACCEPT \[0:0\]$/.test(l)))
  }).join('').split('\n').filter((l) => l !== '').join('\n')
}

/** Rules of one chain as iptables-save prints them. */
function chainLines (save: string, table: string, chain: string): string[] {
  const out: string[] = []
  let cur = ''
  for (const l of save.split('\n')) {
    if (l.startsWith('*')) cur = l.slice(1)
    else if (cur === table && l.startsWith(`-A ${chain} `)) out.push(l)
  }
  return out
}

// What `up` with the default options installs for IPv4, as iptables-save prints it.
const BUDGET = '-m hashlimit --hashlimit-above 2000/sec --hashlimit-burst 4000 --hashlimit-mode srcip --hashlimit-name aigate'
const QUIC_V4 = `-p udp -m udp --dport 443 -m mark --mark 0x0/0xf000000 -m length --length 1228:65535 -m bpf --bytecode "${QUIC_LONG_HEADER_BPF.ipv4}"`
const SYN_V4 = '-p tcp -m multiport --dports 80,443,853 -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -m mark --mark 0x0/0xf000000'
const TLS_V4 = `-p tcp -m multiport --dports 80,443,853 -m bpf --bytecode "${TCP_PAYLOAD_BPF.ipv4}"`
const DNS_TCP_V4 = `-p tcp -m tcp --dport 53 -m bpf --bytecode "${TCP_PAYLOAD_BPF.ipv4}"`
const MANGLE_V4 = [
  '-A AIGATE -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment "aigate:syn-undecided" -j CONNMARK --set-xmark 0x0/0xf000000',
  `-A AIGATE ${SYN_V4} ${BUDGET} -m comment --comment "aigate:queue-syn-over-budget" -j DROP`,
  `-A AIGATE ${SYN_V4} -m comment --comment "aigate:queue-syn" -j NFQUEUE --queue-num 0 --queue-bypass`,
  `-A AIGATE ${QUIC_V4} ${BUDGET} -m comment --comment "aigate:queue-quic-over-budget" -j DROP`,
  `-A AIGATE ${QUIC_V4} -m comment --comment "aigate:queue-quic" -j NFQUEUE --queue-num 0 --queue-bypass`,
  '-A AIGATE -m connmark --mark 0x1000000/0xf000000 -j RETURN',
  `-A AIGATE -p udp -m udp --dport 53 -m mark --mark 0x0/0xf000000 ${BUDGET} -m comment --comment "aigate:queue-dns-udp-over-budget" -j DROP`,
  '-A AIGATE -p udp -m udp --dport 53 -m mark --mark 0x0/0xf000000 -m comment --comment "aigate:queue-dns-udp" -j NFQUEUE --queue-num 0 --queue-bypass',
  '-A AIGATE -m connmark ! --mark 0x0/0xf000000 -m comment --comment "aigate:decided" -j CONNMARK --restore-mark --nfmask 0xf000000 --ctmask 0xf000000',
  '-A AIGATE -p udp -m udp --dport 53 -m mark ! --mark 0x0/0xf000000 -m comment --comment "aigate:verdict-dns-udp" -j RETURN',
  '-A AIGATE -m mark ! --mark 0x0/0xf000000 -m comment --comment "aigate:save" -j CONNMARK --save-mark --nfmask 0xf000000 --ctmask 0xf000000',
  '-A AIGATE -m mark ! --mark 0x0/0xf000000 -m comment --comment "aigate:verdict" -j RETURN',
  '-A AIGATE -p tcp -m multiport --dports 80,443,853 -m conntrack --ctstate INVALID -m comment --comment "aigate:drop-invalid" -j DROP',
  `-A AIGATE ${TLS_V4} ${BUDGET} -m comment --comment "aigate:queue-tls-http-over-budget" -j DROP`,
  `-A AIGATE ${TLS_V4} -m comment --comment "aigate:queue-tls-http" -j NFQUEUE --queue-num 0 --queue-bypass`,
  `-A AIGATE ${DNS_TCP_V4} ${BUDGET} -m comment --comment "aigate:queue-dns-tcp-over-budget" -j DROP`,
  `-A AIGATE ${DNS_TCP_V4} -m comment --comment "aigate:queue-dns-tcp" -j NFQUEUE --queue-num 0 --queue-bypass`,
]
const FILTER_V4 = [
  '-A AIGATE -m mark --mark 0x2000000/0xf000000 -m comment --comment "aigate:verdict-drop" -j DROP',
  '-A AIGATE -p tcp -m mark --mark 0x3000000/0xf000000 -m comment --comment "aigate:verdict-reject-tcp" -j REJECT --reject-with tcp-reset',
  '-A AIGATE -m mark --mark 0x3000000/0xf000000 -m comment --comment "aigate:verdict-reject" -j REJECT --reject-with icmp-port-unreachable',
]

t.test('iptables backend: rules, idempotence, clean removal', { skip }, async (t) => {
  const net = new Netns('agfw')
  t.teardown(() => net.cleanup())
  // Both variants, in an empty namespace (no table at all before) and with
  // the host's own rules present.
  const cases: Array<{ variant: IptablesVariant, hostRules: boolean }> = [
    { variant: 'nft', hostRules: false },
    { variant: 'nft', hostRules: true },
    { variant: 'legacy', hostRules: true },
    { variant: 'legacy', hostRules: false },
  ]
  for (const c of cases) {
    await t.test(`iptables-${c.variant}, ${c.hostRules ? 'with host rules' : 'empty namespace'}`, async (t) => {
      const ns = net.add(`r${c.variant}${c.hostRules ? 'h' : ''}`)
      const ipt = (tool: string, args: string[]): string => net.exec(ns, `${tool}-${c.variant}`, args)
      if (c.hostRules) {
        for (const tool of ['iptables', 'ip6tables']) {
          ipt(tool, ['-A', 'FORWARD', '-p', 'tcp', '--dport', '25', '-j', 'DROP'])
          ipt(tool, ['-t', 'mangle', '-A', 'FORWARD', '-p', 'tcp', '--dport', '25', '-j', 'ACCEPT'])
          ipt(tool, ['-A', 'OUTPUT', '-p', 'udp', '--dport', '9', '-j', 'DROP'])
        }
      }
      const opts = { netns: ns, iptables: c.variant, backend: 'iptables' } as const
      const before = snapshot(net, ns, c.variant)
      t.equal(status(opts).installed, false, 'status: not installed before up')

      up(opts)
      const once = snapshot(net, ns, c.variant)
      const v4 = net.exec(ns, `iptables-${c.variant}-save`, [])
      t.same(chainLines(v4, 'mangle', 'AIGATE'), MANGLE_V4, 'mangle AIGATE: accepted flows return at once, blocked flows carry their verdict on each packet, verdict marks are saved, name-carrying packets are queued')
      t.same(chainLines(v4, 'filter', 'AIGATE'), FILTER_V4, 'filter AIGATE: packets with a drop or reject mark are dropped or rejected')
      const jumps = { mangle: '-A FORWARD -j AIGATE', filter: '-A FORWARD -m mark ! --mark 0x0/0xf000000 -j AIGATE' }
      for (const table of ['mangle', 'filter'] as const) {
        const fwd = chainLines(v4, table, 'FORWARD')
        t.equal(fwd[0], jumps[table], `${table} FORWARD: our jump is the first rule, with no comment${table === 'filter' ? ', only for packets with a verdict mark' : ''}`)
        t.equal(fwd.filter((l) => l.endsWith('-j AIGATE')).length, 1, `${table} FORWARD: exactly one jump`)
        t.equal(chainLines(v4, table, 'OUTPUT').filter((l) => l.endsWith('-j AIGATE')).length, 0, `${table} OUTPUT: no jump (hooks default to forward)`)
      }
      const v6 = net.exec(ns, `ip6tables-${c.variant}-save`, [])
      t.same(chainLines(v6, 'filter', 'AIGATE'), FILTER_V4.map((l) => l.replace('icmp-port-unreachable', 'icmp6-port-unreachable')), 'ip6tables: the same filter rules, ICMPv6 reject')
      t.same(chainLines(v6, 'mangle', 'AIGATE'), MANGLE_V4.map((l) => l.replace(TCP_PAYLOAD_BPF.ipv4, TCP_PAYLOAD_BPF.ipv6).replace(QUIC_LONG_HEADER_BPF.ipv4, QUIC_LONG_HEADER_BPF.ipv6).replace('--length 1228:', '--length 1248:').replace('--hashlimit-name aigate', '--hashlimit-name aigate --hashlimit-srcmask 64')), 'ip6tables: the same mangle rules, the IPv6 programs and sizes, clients per /64')

      const st = status(opts)
      t.match(st, { installed: true, backend: 'iptables', hooks: ['forward'], queuedPackets: 0 }, 'status: installed, forward hook')
      t.equal(st.rules.length, 2 * (MANGLE_NAMES.length + 3), 'status: every mangle rule and 3 filter rules per family')
      t.same(st.rules.filter((r) => r.family === 'ipv4' && r.table === 'mangle').map((r) => r.name), MANGLE_NAMES, 'status: the hot rule is named by its place')

      up(opts)
      t.equal(snapshot(net, ns, c.variant), once, 'up again: identical rules, no duplicates')

      down(opts)
      if (c.variant === 'legacy' && !c.hostRules) {
        // The legacy kernel instantiates a table in a namespace on first use
        // and never removes it: empty tables (built-in chains, policy ACCEPT,
        // no rule) stay. They change no packet's fate.
        t.equal(withoutEmptyTables(snapshot(net, ns, c.variant)), withoutEmptyTables(before), 'down: equal to before up, apart from empty tables legacy cannot delete')
        t.doesNotThrow(() => down(opts), 'down again: no error')
      } else {
        t.equal(snapshot(net, ns, c.variant), before, 'down: iptables-save and ip6tables-save equal to before up')
        t.doesNotThrow(() => down(opts), 'down again: no error')
        t.equal(snapshot(net, ns, c.variant), before, 'down again: still equal')
      }
      t.equal(status(opts).installed, false, 'status: not installed after down')
    })
  }
})

t.test('iptables backend: options change the rules, up converges', { skip }, async (t) => {
  const net = new Netns('agfo')
  t.teardown(() => net.cleanup())
  const ns = net.add('opt')
  const before = snapshot(net, ns)
  const base = { netns: ns, backend: 'iptables' } as const
  const mangle = (): string[] => chainLines(net.exec(ns, 'iptables-save', []), 'mangle', 'AIGATE')

  up({ ...base, failClosed: true })
  t.ok(mangle().filter((l) => l.includes('NFQUEUE')).every((l) => l.endsWith('-j NFQUEUE --queue-num 0')), 'failClosed: no --queue-bypass')
  up({ ...base, queues: [0, 1, 2, 3] })
  t.ok(mangle().filter((l) => l.includes('NFQUEUE')).every((l) => l.endsWith('-j NFQUEUE --queue-balance 0:3 --queue-bypass')), 'four queues: --queue-balance 0:3')
  up({ ...base, sourceBudget: 50, hooks: ['forward', 'output'] })
  const save = net.exec(ns, 'iptables-save', [])
  t.match(mangle().find((l) => l.includes('queue-tls-http-over-budget')), /--hashlimit-above 50\/sec --hashlimit-burst 100 /, 'sourceBudget: the hashlimit rate')
  for (const table of ['mangle', 'filter']) {
    t.match(chainLines(save, table, 'OUTPUT')[0], /-j AIGATE$/, `${table} OUTPUT: jump first`)
  }
  t.same(status(base).hooks, ['forward', 'output'], 'status reports both hooks')
  up({ ...base, ipv6: false })
  t.equal(chainLines(net.exec(ns, 'iptables-save', []), 'mangle', 'OUTPUT').length, 0, 'back to forward only: the OUTPUT jump went')
  // ipv6: false neither installs nor removes ip6tables rules; the earlier ones are still there.
  t.equal(chainLines(net.exec(ns, 'ip6tables-save', []), 'mangle', 'AIGATE').length, MANGLE_NAMES.length, 'ipv6: false leaves ip6tables alone')
  // Jumps as an older aigate wrote them (with a comment, filter unconditional) are replaced, not doubled.
  for (const table of ['mangle', 'filter']) net.exec(ns, 'iptables', ['-t', table, '-I', 'FORWARD', '1', '-m', 'comment', '--comment', 'aigate:jump:new-table', '-j', 'AIGATE'])
  up(base)
  const upgraded = net.exec(ns, 'iptables-save', [])
  t.same(chainLines(upgraded, 'mangle', 'FORWARD').filter((l) => l.endsWith('-j AIGATE')), ['-A FORWARD -j AIGATE'], 'mangle: the old jump went, one new one')
  t.same(chainLines(upgraded, 'filter', 'FORWARD').filter((l) => l.endsWith('-j AIGATE')), ['-A FORWARD -m mark ! --mark 0x0/0xf000000 -j AIGATE'], 'filter: the old jump went, one new one')
  down(base)
  t.equal(snapshot(net, ns), before, 'down after several ups: equal to before')
})

t.test('errors name the command and the first line of its stderr', { skip }, async (t) => {
  const err = t.throws(() => up({ netns: 'aigate-no-such-ns', backend: 'iptables' })) as FirewallError
  t.ok(err instanceof FirewallError, 'a FirewallError')
  t.equal(err.code, 'ENOENT')
  t.equal(err.message, 'ip netns exec aigate-no-such-ns iptables-save failed (exit 255): Cannot open network namespace "aigate-no-such-ns": No such file or directory')
  t.equal(err.message.includes('\n'), false, 'one line')
  t.throws(() => down({ netns: 'aigate-no-such-ns' }), { name: 'FirewallError', code: 'ENOENT' }, 'down in a missing namespace is an error, not a no-op')
})

t.test('backend detection on this kernel', { skip }, async (t) => {
  const net = new Netns('agfd')
  t.teardown(() => net.cleanup())
  const ns = net.add('det')
  const hasNft = net.run(ns, 'nft', ['--version']).status === 0
  if (!hasNft) {
    t.equal(detectBackend({ netns: ns }), 'iptables', 'no nft tool: iptables')
    return
  }
  // An independent probe of the nft queue expression.
  const probe = net.run(ns, 'nft', ['-c', '-f', '-'], { input: 'table inet aigate_probe {\n\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tudp dport 9 queue num 0 bypass\n\t}\n}\n' })
  const expected = probe.status === 0 ? 'nft' : 'iptables'
  t.equal(detectBackend({ netns: ns }), expected, `detectBackend: ${expected} (nft queue expression ${probe.status === 0 ? 'present' : `missing: ${probe.stderr.split('\n')[0] ?? ''}`})`)
  // The nft ruleset, queue statements aside, is accepted by this kernel: its
  // syntax and every other expression (ct mark, ct original packets, reject) are right.
  const ruleset = nftRuleset({ queues: [0, 1], hooks: ['forward', 'output'] }).replace(/queue num [0-9-]+( bypass)?/g, 'accept')
  const check = net.run(ns, 'nft', ['-c', '-f', '-'], { input: ruleset })
  t.equal(check.status, 0, `nft -c accepts the nft backend's ruleset with queue replaced by accept ${check.stderr}`)
  t.equal(net.exec(ns, 'nft', ['list', 'ruleset']).trim(), '', 'detection committed nothing')

  const nftOpts = { netns: ns, backend: 'nft' } as const
  if (expected === 'iptables') {
    // This kernel: the nft backend must fail cleanly, naming the refused line, and commit nothing.
    const err = t.throws(() => up(nftOpts)) as FirewallError
    t.ok(err instanceof FirewallError && err.code === 'EKERNEL', `nft backend without the queue expression: FirewallError EKERNEL (${err.message})`)
    t.match(err.message, /^ip netns exec \S+ nft -f - failed \(exit 1\): .*Could not process rule.* \[line \d+: .*queue num 0 bypass comment "queue-/, 'the message names the command, the error and the rule')
    t.equal(net.exec(ns, 'nft', ['list', 'ruleset']).trim(), '', 'nothing committed (one transaction)')
    t.equal(status(nftOpts).installed, false)
    t.doesNotThrow(() => down(nftOpts), 'nft down on a clean host: no error')
  } else {
    // A kernel with the queue expression: the whole nft cycle.
    const before = net.exec(ns, 'nft', ['list', 'ruleset'])
    up(nftOpts)
    const once = net.exec(ns, 'nft', ['list', 'table', 'inet', 'aigate'])
    t.match(status(nftOpts), { installed: true, backend: 'nft', hooks: ['forward'] })
    up(nftOpts)
    t.equal(net.exec(ns, 'nft', ['list', 'table', 'inet', 'aigate']), once, 'up again: identical')
    down(nftOpts)
    t.equal(net.exec(ns, 'nft', ['list', 'ruleset']), before, 'down: ruleset as before')
    t.doesNotThrow(() => down(nftOpts), 'down again: no error')
  }
})

// ---------------------------------------------------------------------------
// Traffic: client -> gateway -> server.

t.test('traffic through a gateway with no daemon bound', { skip: skip === false ? (commandMissing('curl') ?? false) : skip }, async (t) => {
  // The demo's client -> gateway -> server (src/demo/sandbox.ts): namespaces agft<pid>-cli|gw|srv, 10.77.x.y.
  const net = new Sandbox(`agft${process.pid}`, 77)
  t.teardown(() => net.cleanup())
  net.create()
  const { cli, gw, srv } = net

  // A plain HTTP server on port 443 (TCP to 443 is what the rules queue),
  // serving a file large enough that the client sends far more than 8 packets.
  const dir = mkdtempSync(join(tmpdir(), 'aigate-fw-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'big'), Buffer.alloc(400_000, 0x61))
  writeFileSync(join(dir, 'index.html'), 'ok\n')
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
  net.spawn(srv, python, ['-m', 'http.server', '443', '--bind', '::', '--directory', dir])
  t.ok(await waitFor(() => net.run(srv, 'ss', ['-Hltn', 'sport = :443']).stdout.includes('443'), 10_000), 'server listens on 443')

  const fw = { netns: gw, backend: 'iptables' } as const
  t.teardown(() => { try { down(fw) } catch { /* the namespace goes anyway */ } })
  /** curl from the client: exit status and time taken. */
  const curl = (url: string, maxSec: number): { code: number | null, ms: number, out: string } => {
    const t0 = Date.now()
    const r = net.run(cli, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--connect-timeout', String(maxSec), '--max-time', String(maxSec), url], { timeoutMs: (maxSec + 5) * 1000 })
    return { code: r.status, ms: Date.now() - t0, out: r.stdout + r.stderr.trim() }
  }
  const url4 = 'http://10.77.2.2:443/'
  const url6 = `http://[${net.addrs.server6}]:443/`
  const counter = (name: string, table = 'mangle', family = 'ipv4'): number =>
    status(fw).rules.filter((r) => r.family === family && r.table === table && r.name === name).reduce((n, r) => n + r.packets, 0)
  const connmarks = (): number[] => {
    const lines = net.run(gw, 'cat', ['/proc/net/nf_conntrack']).stdout.split('\n')
    return lines.filter((l) => l.includes('dport=443 ') && l.includes('dst=10.77.2.2 ')).map((l) => Number(/ mark=(\d+)/.exec(l)?.[1] ?? NaN))
  }
  /** A test-only rule in mangle AIGATE, after "decided" and before "save": it sets the verdict mark the daemon would set on its NF_REPEAT. */
  const fakeVerdict = (mark: number, match: string[]): void => {
    // Right after syn-undecided, before any queue rule, as if the packet came back with a verdict.
    net.exec(gw, 'iptables', ['-t', 'mangle', '-I', 'AIGATE', '2', '-p', 'tcp', '--dport', '443', ...match, '-j', 'MARK', '--set-xmark', hexMark(mark)])
  }

  await t.test('bypass (the default): the flow passes, only its client packets with payload meet the queue rule', async (t) => {
    up(fw)
    const r4 = curl(`${url4}big`, 5)
    t.equal(r4.out, '200', `IPv4 HTTP on 443 through the gateway, 400 kB: ${r4.out}`)
    t.equal(counter('queue-tls-http'), 1, 'the NFQUEUE rule took only the request: the client\'s one packet with payload (SYN and ACKs are not queued)')
    const r6 = curl(url6, 5)
    t.equal(r6.out, '200', `IPv6 too: ${r6.out}`)
    t.equal(counter('queue-tls-http', 'mangle', 'ipv6'), 1, 'IPv6: only the request was queued too')
  })

  await t.test('the host\'s own FORWARD rules still apply to packets the queue let through', async (t) => {
    // Why the queue sits in mangle: an NF_ACCEPT from the queue (bypass here,
    // the daemon's "not decided yet" later) ends only the mangle hook.
    up(fw)
    net.exec(gw, 'iptables', ['-A', 'FORWARD', '-p', 'tcp', '-d', '10.77.2.2', '--dport', '443', '-j', 'DROP'])
    const r = curl(url4, 2)
    t.not(r.out, '200', `a host rule after our jump still drops the flow (curl exit ${String(r.code)})`)
    t.equal(counter('queue-tls-http'), 0, 'its SYN carries no payload: it never met the queue')
    net.exec(gw, 'iptables', ['-D', 'FORWARD', '-p', 'tcp', '-d', '10.77.2.2', '--dport', '443', '-j', 'DROP'])
  })

  await t.test('fail-closed: with no daemon the flow cannot open', async (t) => {
    up({ ...fw, failClosed: true })
    const r = curl(url4, 2)
    t.not(r.out, '200', `no answer (curl exit ${String(r.code)}: ${r.out})`)
    t.ok(r.ms < 6000, `gave up within the timeout (${r.ms} ms)`)
  })

  await t.test('a drop mark is saved into the connection; later packets never reach the queue', async (t) => {
    up(fw) // rebuilds the chains: counters start at 0
    // Only the client's data packet (the request) carries the mark, as the
    // daemon marks the packet that completes a name.
    fakeVerdict(MARK_DROP, ['-m', 'length', '--length', '100:65535'])
    const r = curl(url4, 3)
    t.not(r.out, '200', `the request never arrives (curl exit ${String(r.code)})`)
    t.ok(connmarks().includes(MARK_DROP), `conntrack holds the flow with mark=${MARK_DROP} (0x02000000): ${connmarks().join(',')}`)
    t.equal(counter('queue-tls-http'), 0, 'nothing was queued: SYN and handshake ACK carry no payload, the request had its mark first')
    t.ok(counter('save') >= 1, 'the save rule copied the packet mark into the connection')
    t.ok(counter('decided') >= 1, `retransmissions matched "decided" in mangle (${counter('decided')}), got the connection's mark back and skipped the queue`)
    t.ok(counter('verdict-drop', 'filter') >= 2, `filter dropped the marked packet and its retransmissions (${counter('verdict-drop', 'filter')})`)
    t.equal(counter('decided-accept'), 0, 'no packet of the dropped flow matched decided-accept')
  })

  await t.test('a reject mark resets the connection at once', async (t) => {
    up(fw)
    fakeVerdict(MARK_REJECT, ['-m', 'length', '--length', '100:65535'])
    const r = curl(url4, 5)
    t.not(r.out, '200')
    t.match(r.out, /reset/i, `curl: ${r.out}`)
    t.ok(r.ms < 2000, `refused quickly (${r.ms} ms), no timeout`)
    t.ok(connmarks().includes(MARK_REJECT), `conntrack holds mark=${MARK_REJECT} (0x03000000)`)
    t.ok(counter('verdict-reject-tcp', 'filter') >= 1, 'filter rejected it with a TCP reset')
  })

  await t.test('a segment with a bad TCP checksum (a fake made to die at the server) is dropped before the queue', async (t) => {
    up(fw)
    // One PSH/ACK with payload to 443 from a raw socket, its TCP checksum right
    // or wrong: conntrack (nf_conntrack_checksum) marks the wrong one INVALID.
    const send = (bad: boolean): void => {
      const script = `
import socket, struct
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton('10.77.1.2'), socket.inet_aton('10.77.2.2')
data = b'\\x16\\x03\\x01\\x00\\x05hello'
tcp = struct.pack('!HHIIBBHHH', 40123, 443, 1000, 1, 0x50, 0x18, 65535, 0, 0) + data
c = csum(src + dst + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
if ${bad ? 'True' : 'False'}: c ^= 0x5555
tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + tcp, ('10.77.2.2', 0))`
      net.exec(cli, python, ['-c', script])
    }
    const before = counter('drop-invalid')
    send(true)
    await new Promise((r) => setTimeout(r, 200))
    t.equal(counter('drop-invalid') - before, 1, 'the bad checksum: dropped by drop-invalid')
    send(false)
    await new Promise((r) => setTimeout(r, 200))
    t.equal(counter('drop-invalid') - before, 1, 'the same segment with its right checksum is not')
  })

  await t.test('an accept mark on the first packet: the flow works fail-closed with no daemon, never queued', async (t) => {
    up({ ...fw, failClosed: true })
    fakeVerdict(MARK_ACCEPT, ['--syn'])
    const r = curl(url4, 5)
    t.equal(r.out, '200', 'decided on the SYN: passes although the queue has no reader')
    t.equal(counter('queue-tls-http'), 0, 'the NFQUEUE rule never saw a packet of the decided flow')
    t.ok(counter('decided-accept') >= 3, `its later packets matched "decided-accept" (${counter('decided-accept')}), the first rule`)
  })

  down(fw)
  t.equal(net.exec(gw, 'iptables-save', []).includes('AIGATE'), false, 'down: gone from the gateway')
})

function commandMissing (cmd: string): string | undefined {
  return netnsSkipReason([cmd]) === false ? undefined : `needs ${cmd}`
}
