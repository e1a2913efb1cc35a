import { AIGATE_MARK_MASK, MARK_ACCEPT, MARK_DROP, MARK_REJECT } from '../verdict/marks.js'
import { resolveOptions, hex, type FirewallOptions, type Resolved } from './options.js'

/**
 * The rules of the iptables backend (pure: no command runs here; iptables.ts
 * installs them). Two chains, both named AIGATE, each jumped to by one rule
 * at the top of FORWARD (and/or OUTPUT):
 *
 *   mangle AIGATE  (priority -150: before the host's filter rules)
 *     syn-undecided     TCP SYN                           -> CONNMARK 0: a connection that reuses a
 *                                                                     conntrack entry starts undecided
 *     queue-syn         TCP SYN to 80,443,853, ct NEW     -> NFQUEUE  the daemon learns where the stream
 *                                                                     starts (and reads Fast Open data)
 *     queue-quic        UDP 443, >= 1200 bytes of payload,
 *                       long header, no packet mark       -> NFQUEUE  every Initial, whatever the port pair's
 *                                                                     mark: QUIC decisions belong to a DCID
 *     decided-accept    connmark ACCEPT                   -> RETURN   decided flows never reach the queue
 *     queue-dns-udp     UDP 53, no packet mark            -> NFQUEUE  a fresh query: its connection never
 *                                                                     carries a verdict (verdict-dns-udp)
 *     decided           connmark in our mask set          -> CONNMARK --restore-mark: a blocked flow's
 *                                                                     verdict goes on each packet (filter acts on it)
 *     verdict-dns-udp   UDP 53, packet mark set           -> RETURN   a DNS query's verdict is for that query only:
 *                                                                     not saved, so one blocked name does not
 *                                                                     silence the socket's next queries
 *     save              packet mark in our mask set       -> CONNMARK --save-mark (mask only)
 *     verdict           packet mark in our mask set       -> RETURN   the daemon's NF_REPEAT pass ends here
 *     drop-invalid      TCP 80,443,853, ct INVALID        -> DROP     a fake with a bad checksum never reaches us
 *     queue-tls-http    TCP 80,443,853 with payload
 *                       (xt_bpf), flow not decided        -> NFQUEUE  every such segment until a verdict is
 *                                                                     saved: no packet-count window to burn
 *     queue-dns-tcp     TCP 53 with payload               -> NFQUEUE
 *                       everything else falls off the end (RETURN)
 *   Each queue-* rule follows a *-over-budget twin with the same matches plus
 *   a per-source hashlimit (--source-budget packets/s, burst twice that) ->
 *   DROP: one client's flood of new flows cannot fill the queue for all, and
 *   what it loses is counted in that rule.
 *   filter AIGATE, jumped to only by packets whose mark is in our mask set
 *     1 verdict-drop        mark DROP          -> DROP
 *     2 verdict-reject-tcp  mark REJECT, TCP   -> REJECT tcp-reset
 *     3 verdict-reject      mark REJECT        -> REJECT icmp(6)-port-unreachable
 *                           mark ACCEPT falls off the end: the host's other rules still apply
 *
 * The path of a packet of an accepted flow (nearly all packets a gateway
 * forwards once flows are decided) is kept short: the mangle jump, the
 * protocol/flag tests of the SYN and QUIC rules (syn-undecided, queue-syn,
 * queue-quic and their over-budget twins) that fail, one connmark match,
 * RETURN; in filter the jump's one native mark comparison, which fails.
 * That is why the jumps and the decided-accept rule carry no comment: with
 * iptables-nft a comment is an xt match (an indirect call per packet), and
 * with iptables-legacy too. Every other rule names itself in a comment
 * placed last, which runs only when the rest of the rule has matched.
 *
 * Why the queue is in mangle and not in filter: a queue verdict of NF_ACCEPT
 * (the daemon's answer while it still waits for a name, and what
 * --queue-bypass does with no daemon) accepts the packet for the rest of
 * that table's hook: an NFQUEUE rule at the top of filter FORWARD would wave
 * the first packets of every flow past the host's own FORWARD rules. In
 * mangle, NF_ACCEPT only ends mangle; filter still runs. NF_REPEAT re-runs
 * the mangle hook from its top, so the decided packet meets the save rule,
 * its mark is saved into the connection, and filter AIGATE enforces it
 * (REJECT exists only in filter).
 */

export const CHAIN = 'AIGATE'
export const TABLES = ['mangle', 'filter'] as const
export type Table = (typeof TABLES)[number]
/** Start of the comment that names a rule: `aigate:queue-syn`. */
export const RULE_PREFIX = 'aigate:'

export type IpFamily = 'ipv4' | 'ipv6'

/**
 * One rule of an AIGATE chain: its stable name and the iptables arguments
 * after `-A AIGATE`. The name is also the rule's comment, except on a rule
 * every accepted packet matches (`hot`), which carries none (see above).
 */
export interface Rule {
  readonly name: string
  readonly args: readonly string[]
  readonly hot: boolean
}

/**
 * "This TCP segment carries payload", as classic BPF for the xt_bpf match
 * (it runs on the packet from the IP header on): IP length minus IP header
 * minus TCP header, > 0. SYNs and pure ACKs, half of a short connection's
 * packets, then never go to userspace. IPv6 with an extension header before
 * TCP is always queued (the safe side). Each instruction is
 * `code jt jf k` (linux/filter.h), as `iptables -m bpf --bytecode` takes it.
 */
export const TCP_PAYLOAD_BPF: Record<IpFamily, string> = {
  ipv4: bpf([
    [0x28, 0, 0, 2], //      ldh [2]            A = IP total length
    [0x02, 0, 0, 0], //      st M[0]
    [0xb1, 0, 0, 0], //      ldxb 4*([0]&0xf)   X = IP header length
    [0x50, 0, 0, 12], //     ldb [x+12]         A = TCP data offset byte
    [0x74, 0, 0, 2], //      rsh #2
    [0x54, 0, 0, 0x3c], //   and #0x3c          A = TCP header length
    [0x0c, 0, 0, 0], //      add x              A = both headers
    [0x07, 0, 0, 0], //      tax
    [0x60, 0, 0, 0], //      ld M[0]
    [0x2d, 0, 1, 0], //      jgt x, match, no
    [0x06, 0, 0, 1], // match: ret #1
    [0x06, 0, 0, 0], // no:    ret #0
  ]),
  ipv6: bpf([
    [0x30, 0, 0, 6], //      ldb [6]            next header
    [0x15, 0, 6, 6], //      jeq #6 (TCP), tcp, match
    [0x30, 0, 0, 52], // tcp: ldb [52]          TCP data offset byte (40 + 12)
    [0x74, 0, 0, 2], //      rsh #2
    [0x54, 0, 0, 0x3c], //   and #0x3c          A = TCP header length
    [0x07, 0, 0, 0], //      tax
    [0x28, 0, 0, 4], //      ldh [4]            A = IPv6 payload length
    [0x2d, 0, 1, 0], //      jgt x, match, no
    [0x06, 0, 0, 1], // match: ret #1
    [0x06, 0, 0, 0], // no:    ret #0
  ]),
}

/** Smallest IP packet that can carry a client Initial: IP header + UDP header + 1200 (no IPv4 options, no IPv6 extension headers). */
export const QUIC_MIN_PACKET: Record<IpFamily, number> = { ipv4: 20 + 8 + 1200, ipv6: 40 + 8 + 1200 }

/**
 * "This UDP datagram starts with a QUIC long header" (first bit set), as
 * classic BPF from the IP header on. IPv6 with an extension header before
 * UDP is always queued (the safe side).
 */
export const QUIC_LONG_HEADER_BPF: Record<IpFamily, string> = {
  ipv4: bpf([
    [0xb1, 0, 0, 0], //      ldxb 4*([0]&0xf)   X = IP header length
    [0x50, 0, 0, 8], //      ldb [x+8]          A = first UDP payload byte
    [0x45, 0, 1, 0x80], //   jset #0x80, match, no
    [0x06, 0, 0, 1], // match: ret #1
    [0x06, 0, 0, 0], // no:    ret #0
  ]),
  ipv6: bpf([
    [0x30, 0, 0, 6], //      ldb [6]            next header
    [0x15, 0, 2, 17], //     jeq #17 (UDP), udp, match
    [0x30, 0, 0, 48], // udp: ldb [48]          first UDP payload byte (40 + 8)
    [0x45, 0, 1, 0x80], //   jset #0x80, match, no
    [0x06, 0, 0, 1], // match: ret #1
    [0x06, 0, 0, 0], // no:    ret #0
  ]),
}

function bpf (prog: Array<[number, number, number, number]>): string {
  return [String(prog.length), ...prog.map((i) => i.join(' '))].join(',')
}

/** The exact rules `up` puts into the two AIGATE chains (pure: no commands run). */
export function iptablesRules (options: FirewallOptions, family: IpFamily, payloadMatch = true): { mangle: Rule[], filter: Rule[] } {
  return rulesFor(resolveOptions(options), family, payloadMatch)
}

/** The matches of the jump from a hook chain to AIGATE: filter only sees packets that carry a verdict mark. */
function jumpMatch (table: Table): string[] {
  return table === 'filter' ? ['-m', 'mark', '!', '--mark', `${hex(0)}/${hex(AIGATE_MARK_MASK)}`] : []
}

/** The jump from `hookChain` (FORWARD, OUTPUT) to AIGATE, as `-A FORWARD ... -j AIGATE`. */
export function jumpArgs (table: Table, hookChain: string): string[] {
  return ['-A', hookChain, ...jumpMatch(table), '-j', CHAIN]
}

/** {@link iptablesRules} on options already resolved. */
export function rulesFor (o: Resolved, family: IpFamily, payloadMatch: boolean): { mangle: Rule[], filter: Rule[] } {
  const mask = hex(AIGATE_MARK_MASK)
  const m = (v: number): string => `${hex(v)}/${mask}`
  const none = `${hex(0)}/${mask}`
  const q0 = o.queues[0] as number
  const q1 = o.queues[o.queues.length - 1] as number
  const queue = [
    '-j', 'NFQUEUE',
    ...(o.queues.length === 1 ? ['--queue-num', String(q0)] : ['--queue-balance', `${q0}:${q1}`]),
    ...(o.failClosed ? [] : ['--queue-bypass']),
  ]
  const unreachable = family === 'ipv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'
  const payload = payloadMatch ? ['-m', 'bpf', '--bytecode', TCP_PAYLOAD_BPF[family]] : []
  const unmarked = ['-m', 'mark', '--mark', none]
  // RFC 9000 §14.1: a client Initial travels in a datagram of at least 1200
  // bytes of UDP payload, with a long header (first bit set). Nothing else of
  // QUIC can carry a name, so nothing else is queued (and a burst of small
  // datagrams cannot stand in for it).
  const quicInitial = [
    '-p', 'udp', '-m', 'udp', '--dport', '443', ...unmarked,
    '-m', 'length', '--length', `${QUIC_MIN_PACKET[family]}:65535`,
    ...(payloadMatch ? ['-m', 'bpf', '--bytecode', QUIC_LONG_HEADER_BPF[family]] : []),
  ]
  const tlsHttp = ['-p', 'tcp', '-m', 'multiport', '--dports', '80,443,853', ...payload]
  const dnsTcp = ['-p', 'tcp', '-m', 'tcp', '--dport', '53', ...payload]
  const dnsUdp = ['-p', 'udp', '-m', 'udp', '--dport', '53', ...unmarked]
  const rule = (name: string, match: string[], target: string[]): Rule =>
    ({ name, args: [...match, '-m', 'comment', '--comment', RULE_PREFIX + name, ...target], hot: false })
  const hot = (name: string, match: string[], target: string[]): Rule => ({ name, args: [...match, ...target], hot: true })
  // Per source address: packets over the budget are dropped before the queue
  // (one shared bucket for every queue rule, by name), so one client's flood
  // cannot fill the queue for all. IPv6 clients are counted per /64.
  const budget = o.sourceBudget === 0
    ? null
    : [
        '-m', 'hashlimit', '--hashlimit-above', `${o.sourceBudget}/sec`, '--hashlimit-burst', String(2 * o.sourceBudget),
        '--hashlimit-mode', 'srcip', '--hashlimit-name', 'aigate', ...(family === 'ipv6' ? ['--hashlimit-srcmask', '64'] : []),
      ]
  const queued = (name: string, match: string[]): Rule[] => [
    ...(budget === null ? [] : [rule(`${name}-over-budget`, [...match, ...budget], ['-j', 'DROP'])]),
    rule(name, match, queue),
  ]
  return {
    mangle: [
      // A SYN starts a connection undecided, also one that reuses a conntrack
      // entry (same ports after a reset): it never inherits the old verdict.
      rule('syn-undecided', ['-p', 'tcp', '-m', 'tcp', '--tcp-flags', 'FIN,SYN,RST,ACK', 'SYN'], ['-j', 'CONNMARK', '--set-xmark', `${hex(0)}/${mask}`]),
      // The SYN of a new connection to a port that opens with a name: the daemon
      // learns where the stream starts, so only a message right after it is the
      // opening (a decoy placed elsewhere in the stream is not read) and data
      // in the SYN (TCP Fast Open) is read. Not a SYN inside a live connection.
      ...queued('queue-syn', ['-p', 'tcp', '-m', 'multiport', '--dports', '80,443,853', '-m', 'tcp', '--tcp-flags', 'FIN,SYN,RST,ACK', 'SYN', '-m', 'conntrack', '--ctstate', 'NEW', ...unmarked]),
      // QUIC decisions belong to a connection (its DCID), not to the port pair:
      // every Initial is read, whatever the port pair's mark says.
      ...queued('queue-quic', quicInitial),
      hot('decided-accept', ['-m', 'connmark', '--mark', m(MARK_ACCEPT)], ['-j', 'RETURN']),
      // A DNS query never has a verdict on its connection (rule verdict-dns-udp),
      // so a fresh one (no packet mark) goes to the queue here.
      ...queued('queue-dns-udp', dnsUdp),
      rule('decided', ['-m', 'connmark', '!', '--mark', none], ['-j', 'CONNMARK', '--restore-mark', '--nfmask', mask, '--ctmask', mask]),
      rule('verdict-dns-udp', ['-p', 'udp', '-m', 'udp', '--dport', '53', '-m', 'mark', '!', '--mark', none], ['-j', 'RETURN']),
      rule('save', ['-m', 'mark', '!', '--mark', none], ['-j', 'CONNMARK', '--save-mark', '--nfmask', mask, '--ctmask', mask]),
      rule('verdict', ['-m', 'mark', '!', '--mark', none], ['-j', 'RETURN']),
      // A segment conntrack finds INVALID (a bad checksum, out of any window) on a
      // port that opens with a name: dropped, not read. Such a segment is how a
      // fake reaches us and not the server (zapret's badsum); a real client
      // retransmits.
      rule('drop-invalid', ['-p', 'tcp', '-m', 'multiport', '--dports', '80,443,853', '-m', 'conntrack', '--ctstate', 'INVALID'], ['-j', 'DROP']),
      // Every client segment with payload of a flow without a verdict, not "the
      // first N packets": empty ACKs and keepalive probes cannot push the hello
      // out of a window. The daemon decides every flow within a bounded number
      // of segments (flow DEFAULT_MAX_FLOW_SEGMENTS, MAX_WATCH_PACKETS).
      ...queued('queue-tls-http', tlsHttp),
      ...queued('queue-dns-tcp', dnsTcp),
    ],
    filter: [
      rule('verdict-drop', ['-m', 'mark', '--mark', m(MARK_DROP)], ['-j', 'DROP']),
      rule('verdict-reject-tcp', ['-p', 'tcp', '-m', 'mark', '--mark', m(MARK_REJECT)], ['-j', 'REJECT', '--reject-with', 'tcp-reset']),
      rule('verdict-reject', ['-m', 'mark', '--mark', m(MARK_REJECT)], ['-j', 'REJECT', '--reject-with', unreachable]),
    ],
  }
}
