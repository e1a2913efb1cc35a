import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FirewallOptions } from '../../../src/fw/options.js'
import { Netns, netnsSkipReason } from '../../helpers/netns.js'

/**
 * `aigate firewall up --print` (issue 12, item 6): the exact text `up` feeds
 * to iptables-restore (per family) or nft, without installing anything and
 * without root when the backend is given.
 *
 * "Exact" is checked against what `up` really hands the tools: fake
 * iptables-save / iptables-restore / nft first on the PATH record their
 * stdin while the backends' `up` runs (no root, nothing installed). Then, as
 * root in namespaces, the printed text fed to iptables-restore gives the same
 * iptables-save as `firewall up`.
 */

const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const BIN = join(ROOT, 'bin', 'aigate.js')
const ENV = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` }

// Fake firewall tools, first on the PATH: fw/exec.ts reads PATH once, when it
// is loaded, so it is set before the module is imported.
const tmp = mkdtempSync(join(tmpdir(), 'aigate-fwprint-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
const bin = join(tmp, 'bin')
const calls = join(tmp, 'calls')
mkdirSync(bin)
mkdirSync(calls)
writeFileSync(join(bin, 'fake'), `#!/bin/sh
# A fake iptables-save prints $FAKE_FW_DIR/save.<tool> (or nothing: no tables);
# restore and nft record their arguments and stdin as calls/<n>, or fail
# with $FAKE_FW_DIR/fail on stderr when there is one.
name=$(basename "$0")
case "$name" in
  *-save) [ -f "$FAKE_FW_DIR/save.$name" ] && cat "$FAKE_FW_DIR/save.$name"; exit 0 ;;
esac
if [ -f "$FAKE_FW_DIR/fail" ]; then cat >/dev/null; cat "$FAKE_FW_DIR/fail" >&2; exit 2; fi
n=$(ls "$FAKE_FW_DIR/calls" | wc -l)
n=$(printf '%04d' "$n")
printf '%s %s' "$name" "$*" > "$FAKE_FW_DIR/calls/$n.args"
cat > "$FAKE_FW_DIR/calls/$n.in"
`)
chmodSync(join(bin, 'fake'), 0o755)
for (const tool of ['iptables-save', 'ip6tables-save', 'iptables-restore', 'ip6tables-restore', 'nft']) symlinkSync('fake', join(bin, tool))
const realPath = process.env['PATH']
process.env['PATH'] = `${bin}:${realPath ?? ''}`
process.env['FAKE_FW_DIR'] = tmp
const fw = await import('../../../src/fw/index.js')
// Only fw/ sees the fakes: the namespace helpers below run the real tools.
process.env['PATH'] = realPath

/** The tool calls the fakes saw since the last take(): `tool args` and stdin, in order. */
function take (): Array<{ args: string, input: string }> {
  const names = readdirSync(calls).filter((f) => f.endsWith('.args')).sort()
  const out = names.map((f) => ({ args: readFileSync(join(calls, f), 'utf8'), input: readFileSync(join(calls, f.replace(/\.args$/, '.in')), 'utf8') }))
  for (const f of readdirSync(calls)) rmSync(join(calls, f))
  return out
}

const OPTION_SETS: Array<[string, FirewallOptions]> = [
  ['defaults', {}],
  ['four queues', { queues: [0, 1, 2, 3] }],
  ['both hooks, fail-closed', { hooks: ['forward', 'output'], failClosed: true }],
  ['no source budget, output only', { sourceBudget: 0, hooks: ['output'] }],
  ['budget 300, queue 7, IPv4 only', { sourceBudget: 300, queues: [7], ipv6: false }],
]

t.test('iptables: --print is the input up feeds to iptables-restore, per family', async (t) => {
  for (const [what, opts] of OPTION_SETS) {
    take()
    fw.iptablesBackend.up({ ...opts, backend: 'iptables' })
    const fed = take()
    const want = opts.ipv6 === false ? ['iptables-restore'] : ['iptables-restore', 'ip6tables-restore']
    t.same(fed.map((c) => c.args), want.map((tool) => `${tool} -w --noflush`), `${what}: one batch per family, in this order`)
    const printed = fw.print({ ...opts, backend: 'iptables' })
    t.equal(printed.backend, 'iptables')
    t.equal(printed.text, fed.map((c) => c.input).join(''), `${what}: the printed text is what up fed, byte for byte`)
    t.same(fw.iptablesUpInput(opts).map((f) => f.input), fed.map((c) => c.input), `${what}: and each family's input on its own`)
    for (const c of fed) t.match(c.input, /^# aigate firewall: ipv[46], input of ip6?tables-restore -w --noflush\n\*mangle\n:AIGATE - \[0:0\]\n/)
  }
  t.match(fw.print({ backend: 'iptables', queues: [0, 1, 2, 3] }).text, /-j NFQUEUE --queue-balance 0:3 --queue-bypass\n/)
  t.notMatch(fw.print({ backend: 'iptables', failClosed: true }).text, /--queue-bypass/)
  t.notMatch(fw.print({ backend: 'iptables', sourceBudget: 0 }).text, /hashlimit/)
  t.notMatch(fw.print({ backend: 'iptables', ipv6: false }).text, /ip6tables|icmp6/)
  t.match(fw.print({ backend: 'iptables', hooks: ['output'] }).text, /^-I OUTPUT 1 -j AIGATE$/m)
})

t.test('iptables: where the rules are installed, up feeds the same chains and differs only in the hook jumps', async (t) => {
  // iptables-save of a host where `up` ran: the jumps first in FORWARD, the chains as printed.
  for (const [family, tool] of [['ipv4', 'iptables'], ['ipv6', 'ip6tables']] as const) {
    const input = fw.iptablesUpInput({}).find((f) => f.family === family)?.input ?? ''
    const save = input.split('\n').filter((l) => !l.startsWith('#')).map((l) => l
      .replace(/^:AIGATE - \[0:0\]$/, ':FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:AIGATE - [0:0]')
      .replace(/^-I FORWARD 1 /, '-A FORWARD ')).join('\n')
    writeFileSync(join(tmp, `save.${tool}-save`), save)
  }
  take()
  fw.iptablesBackend.up({ backend: 'iptables' })
  const fed = take()
  const jumps = /^-[ID] (FORWARD|OUTPUT) /
  const printed = fw.iptablesUpInput({})
  t.equal(fed.length, 2)
  for (const [i, c] of fed.entries()) {
    t.notMatch(c.input, jumps, 'a jump already first in FORWARD is kept, not inserted again')
    t.equal(c.input, (printed[i]?.input ?? '').split('\n').filter((l) => !jumps.test(l)).join('\n'), 'the rest is the printed text')
  }
  rmSync(join(tmp, 'save.iptables-save'))
  rmSync(join(tmp, 'save.ip6tables-save'))
})

t.test('a line iptables-restore refuses is quoted from the input, the comment line counted as it counts it', async (t) => {
  writeFileSync(join(tmp, 'fail'), "iptables-restore v1.8.9 (nf_tables): Couldn't load match `bogus'\n\nError occurred at line: 3\n")
  t.teardown(() => rmSync(join(tmp, 'fail')))
  t.throws(() => fw.iptablesBackend.up({ backend: 'iptables' }), {
    name: 'FirewallError',
    message: "iptables-restore -w --noflush failed (exit 2): iptables-restore v1.8.9 (nf_tables): Couldn't load match `bogus' [batch line 3: :AIGATE - [0:0]]",
  })
})

t.test('nft: --print is the input up feeds to nft -f, which replaces the table whatever is there', async (t) => {
  for (const [what, opts] of OPTION_SETS) {
    take()
    fw.nftBackend.up({ ...opts, backend: 'nft' })
    const fed = take()
    t.same(fed.map((c) => c.args), ['nft -f -'], `${what}: one transaction`)
    const printed = fw.print({ ...opts, backend: 'nft' })
    t.equal(printed.backend, 'nft')
    t.equal(printed.text, fed[0]?.input, `${what}: the printed text is what up fed, byte for byte`)
    t.equal(printed.text, fw.nftUpInput(opts))
    t.ok(printed.text.endsWith(fw.nftRuleset(opts)), `${what}: ends with the ruleset nft -c checks`)
  }
  t.notMatch(fw.print({ backend: 'nft', ipv6: true }).text, /meta nfproto ipv4 jump/)
  t.match(fw.print({ backend: 'nft', ipv6: false }).text, /\t\tmeta nfproto ipv4 jump decide\n/)
})

/** `aigate args` as the built CLI, dropped to nobody with no capabilities when we are root. */
function unprivileged (args: string[]): { status: number | null, stdout: string, stderr: string, as: string } {
  const drop = process.getuid?.() === 0 && spawnSync('setpriv', ['--version'], { env: ENV }).error === undefined
  // Dropped: through `env -i`, without tap's NODE_OPTIONS hooks (tap puts them
  // back into any env we pass; they write coverage files where nobody may not).
  // The real PATH either way, not the fakes.
  const argv = drop
    ? ['env', '-i', `PATH=${ENV['PATH'] ?? ''}`, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, BIN, ...args]
    : [process.execPath, BIN, ...args]
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', env: ENV, cwd: '/', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, as: drop ? 'nobody, no capabilities' : 'this user' }
}

t.test('the CLI prints without root when the backend is given', async (t) => {
  const cases: Array<[string[], FirewallOptions]> = [
    [['--backend', 'iptables'], { backend: 'iptables' }],
    [['--backend', 'iptables', '--queues', '0-3', '--hooks', 'forward,output', '--fail-closed', '--source-budget', '0', '--no-ipv6'],
      { backend: 'iptables', queues: [0, 1, 2, 3], hooks: ['forward', 'output'], failClosed: true, sourceBudget: 0, ipv6: false }],
    [['--backend', 'nft', '--queues', '2'], { backend: 'nft', queues: [2] }],
  ]
  for (const [flags, opts] of cases) {
    const r = unprivileged(['firewall', 'up', '--print', ...flags])
    t.equal(r.stderr, '', `${flags.join(' ')} as ${r.as}: nothing on stderr`)
    t.equal(r.status, 0, 'exit 0')
    t.equal(r.stdout, fw.print(opts).text, 'stdout is the printed text, nothing else')
  }
})

t.test('--backend auto as nobody: asks for a backend instead of guessing', {
  skip: process.getuid?.() !== 0 ? 'needs root, to drop to nobody' : spawnSync('nft', ['--version'], { env: ENV }).error !== undefined ? 'needs nft' : false,
}, async (t) => {
  const r = unprivileged(['firewall', 'up', '--print'])
  t.equal(r.status, 1)
  t.equal(r.stdout, '', 'nothing printed: without root, nft -c cannot tell whether the kernel has the queue expression')
  t.match(r.stderr, /^aigate: cannot tell which backend up would use without root \(.*\); give --backend iptables or --backend nft\n$/)
})

/** iptables-save and ip6tables-save of a namespace, without comment lines and with counters zeroed. */
function snapshot (net: Netns, ns: string): string {
  return ['iptables', 'ip6tables'].map((tool) => net.exec(ns, `${tool}-save`, [])
    .split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]')).join('\n')).join('\n')
}

t.test('in namespaces: the printed text fed to iptables-restore --noflush gives what firewall up gives', { skip: netnsSkipReason(['iptables', 'ip6tables']) }, async (t) => {
  const net = new Netns('fwpr')
  t.teardown(() => net.cleanup())
  const sets: Array<[string, string[]]> = [
    ['defaults', []],
    ['four queues, both hooks, fail-closed, no budget', ['--queues', '0-3', '--hooks', 'forward,output', '--fail-closed', '--source-budget', '0']],
    ['budget 500, IPv4 only', ['--source-budget', '500', '--no-ipv6']],
  ]
  for (const [i, [what, flags]] of sets.entries()) {
    const viaUp = net.add(`u${i}`)
    const viaPrint = net.add(`p${i}`)
    const up = spawnSync(process.execPath, [BIN, 'firewall', 'up', '--backend', 'iptables', '--netns', viaUp, ...flags], { encoding: 'utf8', env: ENV })
    t.equal(up.status, 0, `${what}: firewall up ${up.stderr.trim()}`)
    const printed = unprivileged(['firewall', 'up', '--print', '--backend', 'iptables', ...flags])
    t.equal(printed.status, 0, `${what}: --print ${printed.stderr.trim()}`)
    // One input per family, each from its comment line on.
    const parts = printed.stdout.split(/(?=^# aigate firewall: ipv[46],)/m)
    t.equal(parts.length, flags.includes('--no-ipv6') ? 1 : 2, 'one input per family')
    for (const part of parts) {
      const tool = /^# aigate firewall: ipv6,/.test(part) ? 'ip6tables-restore' : 'iptables-restore'
      net.exec(viaPrint, tool, ['--noflush'], { input: part })
    }
    t.equal(snapshot(net, viaPrint), snapshot(net, viaUp), `${what}: the same iptables-save`)
    t.match(snapshot(net, viaPrint), /-A FORWARD -j AIGATE/, 'and the rules are there')
  }
})
