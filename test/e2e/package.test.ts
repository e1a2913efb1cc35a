import t from 'tap'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox, waitUntil } from '../../src/demo/sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'

/**
 * The Debian package, as an admin gets it: `npm run package` (or a fresh
 * build/aigate_*.deb), `apt-get install ./build/aigate_*.deb`, then only the
 * installed files: `aigate rules lint` with its defaults, `systemd-analyze
 * verify` of the installed unit, the installed daemon inline in namespaces as
 * user aigate with CAP_NET_ADMIN only (a blocked and an allowed name through
 * curl), an upgrade to a rebuilt package over an edited policy.yaml, and a
 * purge that leaves no file, user or firewall rule. Root only; the package is
 * purged at the end, also on failure.
 *
 * Installing is system-wide: /usr/bin/aigate and /etc/aigate exist while this
 * runs. The upgrade changes only comments in the shipped files and the admin's
 * edit is a comment, so a test beside this one that reads /etc/aigate decides
 * exactly as with the checkout's rules.
 */
const root = process.getuid?.() === 0
const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version
const which = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const installed = (): string => spawnSync('dpkg-query', ['-W', '-f=${Status}', 'aigate'], { encoding: 'utf8' }).stdout

// tap adds its own NODE_OPTIONS (a loader from this checkout) to every child:
// the installed aigate, and the maintainer scripts that run it, get a clean environment.
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const cleanEnv = ['env', '-i', `PATH=${PATH}`, 'LANG=C.UTF-8', 'DEBIAN_FRONTEND=noninteractive']
interface Run { status: number | null, out: string, err: string }
/** A command on the host (or in `ns`) with the clean environment. */
function sys (cmd: string, args: string[], opts: { ns?: string, timeoutMs?: number } = {}): Run {
  const argv = [...cleanEnv, cmd, ...args]
  const r = opts.ns === undefined
    ? spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 })
    : spawnSync('ip', ['netns', 'exec', opts.ns, ...argv], { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 })
  return { status: r.status, out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error === undefined ? '' : String(r.error)) }
}
const aptGet = (args: string[], ns?: string): Run => sys('apt-get', ['-y', '-q', '-o', 'Dpkg::Options::=--force-confold', ...args], ns === undefined ? {} : { ns })

/** Newest modification time of the files under `paths` (what the package is built from). */
function newest (paths: string[]): number {
  let max = 0
  const walk = (p: string): void => {
    if (!existsSync(p)) return
    const s = statSync(p)
    if (s.isDirectory()) { for (const e of readdirSync(p)) walk(join(p, e)) } else max = Math.max(max, s.mtimeMs)
  }
  for (const p of paths) walk(join(PACKAGE_ROOT, p))
  return max
}

const missing = ['dpkg-buildpackage', 'dh', 'help2man', 'apt-get', 'setpriv', 'systemd-analyze'].filter((c) => !which(c))
const already = root && /install ok installed|config-files/.test(installed())

if (!root) {
  t.test('the Debian package', { skip: 'needs root: apt-get install, network namespaces, iptables and NFQUEUE' }, async () => {})
} else if (missing.length > 0) {
  t.test('the Debian package', { skip: `${missing.join(', ')} not installed (apt-get install debhelper dpkg-dev help2man util-linux systemd; quickstart.sh installs them)` }, async () => {})
} else if (already) {
  t.test('the Debian package', { skip: 'aigate is installed on this machine as a package: this test installs and purges it, so it leaves that install alone' }, async () => {})
} else {
  const ARCH = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim()
  const DEB = join(PACKAGE_ROOT, 'build', `aigate_${VERSION}_${ARCH}.deb`)
  const STAGE = join(PACKAGE_ROOT, 'build', 'stage', `aigate-${VERSION}`)
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-pkg-'))
  const sb = new Sandbox(`agpk${process.pid % 10000}`, 222)
  const queue = '0'
  let daemon: ChildProcess | null = null
  let weInstalled = false
  /** aigate's rules in a namespace (or on the host): iptables chains and nft tables named aigate. */
  const aigateRules = (ns?: string): string[] => {
    const lines: string[] = []
    for (const [cmd, args] of [['iptables-save', []], ['ip6tables-save', []], ['nft', ['list', 'ruleset']]] as const) {
      if (!which(cmd)) continue
      const r = sys(cmd, [...args], ns === undefined ? {} : { ns })
      lines.push(...r.out.split('\n').filter((l) => /aigate/i.test(l)))
    }
    return lines
  }
  const hostRulesBefore = aigateRules()

  t.teardown(() => {
    if (daemon !== null && daemon.exitCode === null && daemon.pid !== undefined) daemon.kill('SIGKILL')
    // Leave the machine as it was: whatever state the test stopped in, the package goes.
    if (weInstalled && installed() !== '') aptGet(['purge', 'aigate'])
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  })

  t.test('npm run package builds the .deb (or a fresh one is reused)', async (t) => {
    const sources = ['src', 'bin', 'native/src', 'native/binding.gyp', 'rules', 'systemd', 'debian', 'scripts', 'package.json', 'package-lock.json', 'README.md']
    const fresh = existsSync(DEB) && existsSync(STAGE) && statSync(DEB).mtimeMs > newest(sources)
    if (!fresh) {
      const r = spawnSync('bash', [join(PACKAGE_ROOT, 'scripts', 'package.sh')], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, NODE_OPTIONS: '' } })
      t.equal(r.status, 0, `npm run package: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`)
    } else t.pass('build/ holds a package newer than every source file')
    t.ok(existsSync(DEB), DEB)
    const info = spawnSync('dpkg-deb', ['-f', DEB, 'Package', 'Version', 'Depends'], { encoding: 'utf8' }).stdout
    t.match(info, `Version: ${VERSION}`)
    t.match(info, /Depends: nodejs \(>= 20\), iptables/)
    t.match(info, /libmnl0/, 'the NFQUEUE addon\'s library, found by dh_shlibdeps')
    t.match(info, /libpcap0\.8/, 'the pcap binding\'s library')
    const files = spawnSync('dpkg-deb', ['-c', DEB], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout
    for (const f of ['./usr/lib/aigate/native/build/Release/aigate_nfq.node', './usr/lib/aigate/node_modules/pcap/build/Release/pcap_binding.node',
      './usr/lib/aigate/dist/src/cli/main.js', './usr/lib/aigate/package.json', './lib/systemd/system/aigate.service', './etc/aigate/policy.yaml',
      './etc/aigate/rules/openai.txt', './etc/logrotate.d/aigate', './lib/systemd/system/aigate-rules-update.timer',
      './usr/share/doc/aigate/examples/sources.yaml', './usr/share/man/man8/aigate.8.gz', './usr/share/bash-completion/completions/aigate']) {
      t.ok(files.includes(` ${f}`), f)
    }
    t.notOk(/\.\/usr\/lib\/aigate\/node_modules\/(typescript|tap|@types)\//.test(files), 'no development dependencies')
    t.notOk(files.includes('./usr/lib/aigate/dist/test/'), 'no compiled tests')
  })

  t.test('apt-get install: the user, the conffiles, nothing started', async (t) => {
    const r = aptGet(['install', DEB])
    weInstalled = true
    t.equal(r.status, 0, `apt-get install: ${r.err.trim()}`)
    t.match(installed(), 'install ok installed')
    t.equal(sys('id', ['-un', 'aigate']).out.trim(), 'aigate', 'the system user exists')
    t.equal(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('aigate:'))?.split(':')[6], '/usr/sbin/nologin', 'no login shell')
    const conffiles = readFileSync('/var/lib/dpkg/info/aigate.conffiles', 'utf8').split('\n')
    t.ok(conffiles.includes('/etc/aigate/policy.yaml'), 'policy.yaml is a conffile')
    t.ok(conffiles.includes('/etc/aigate/rules/anthropic.txt'), 'the vendor lists are conffiles')
    t.equal(readFileSync('/usr/lib/aigate/bin/aigate.js', 'utf8').split('\n')[0], '#!/usr/bin/node', 'the Debian nodejs runs it')
    t.same(aigateRules(), hostRulesBefore, 'installing touched no firewall rule')
    t.notOk(existsSync('/etc/systemd/system/multi-user.target.wants/aigate.service'), 'aigate.service is not enabled')
    t.notOk(existsSync('/etc/systemd/system/timers.target.wants/aigate-rules-update.timer'), 'the rules update timer ships disabled')
    t.notOk(existsSync('/etc/aigate/sources.yaml'), 'no sources.yaml: rules update is the admin\'s choice (the example is in /usr/share/doc/aigate/examples)')
    const v = sys('aigate', ['--version'])
    t.equal(v.out.trim(), VERSION, '/usr/bin/aigate runs')
    const man = sys('man', ['-w', 'aigate'])
    t.equal(man.out.trim(), '/usr/share/man/man8/aigate.8.gz', 'man aigate finds aigate(8)')
    const comp = sys('bash', ['-c', 'source /usr/share/bash-completion/completions/aigate; COMP_WORDS=(aigate firewall up --backend ""); COMP_CWORD=4; _aigate; echo "${COMPREPLY[*]}"'])
    t.equal(comp.out.trim(), 'auto iptables nft', 'bash completion: choices of firewall up --backend')
  })

  t.test('the installed files: rules lint with its defaults, systemd-analyze verify', async (t) => {
    const lint = sys('aigate', ['rules', 'lint'])
    t.equal(lint.status, 0, `aigate rules lint: ${lint.err.trim()}`)
    t.match(lint.out, /policy \/etc\/aigate\/policy\.yaml/, 'the defaults follow the install: /etc/aigate')
    for (const unit of ['aigate.service', 'aigate-rules-update.service', 'aigate-rules-update.timer']) {
      const verify = sys('systemd-analyze', ['verify', `/lib/systemd/system/${unit}`])
      t.equal(verify.status, 0, `systemd-analyze verify ${unit}: ${verify.err.trim()}`)
      t.equal(verify.err.trim(), '', `${unit}: no warning`)
    }
  })

  t.test('inline in namespaces: firewall up, the installed daemon as user aigate with CAP_NET_ADMIN only', async (t) => {
    sb.create()
    startServers(sb, tmp)
    t.ok(await waitUntil(() => probe(sb, sb.addrs.server, 443), 10000), 'the server side is up')
    const up = sys('aigate', ['firewall', 'up', '--netns', sb.gw, '--queues', queue])
    t.equal(up.status, 0, `aigate firewall up: ${up.err.trim()}`)
    t.ok(aigateRules(sb.gw).length > 0, 'aigate\'s rules in the gateway namespace')
    const out: string[] = []
    let err = ''
    // The unit's ExecStart=, with the unit's user and capabilities, through setpriv.
    daemon = sb.spawn(sb.gw, cleanEnv[0] as string, [...cleanEnv.slice(1),
      'setpriv', '--reuid', 'aigate', '--regid', 'aigate', '--init-groups', '--inh-caps', '+net_admin', '--ambient-caps', '+net_admin', '--bounding-set', '-all,+net_admin',
      '/usr/bin/aigate', 'run', '--queues', queue, '--rules', '/etc/aigate/rules', '--policy', '/etc/aigate/policy.yaml', '--control', 'none'])
    daemon.stdout?.on('data', (d: Buffer) => { out.push(d.toString()) })
    daemon.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    const d = daemon
    t.ok(await waitUntil(() => err.includes('running on queue') || d.exitCode !== null, 15000) && d.exitCode === null, `the daemon runs: ${err.trim()}`)
    const status = readFileSync(`/proc/${String(d.pid)}/status`, 'utf8')
    const uid = sys('id', ['-u', 'aigate']).out.trim()
    t.match(status, new RegExp(`^Uid:\\t${uid}\\t${uid}\\t${uid}\\t${uid}$`, 'm'), 'it runs as aigate')
    t.match(status, /^CapEff:\t0000000000001000$/m, 'its only capability is CAP_NET_ADMIN')
    const curl = (name: string): string => sb.run(sb.cli, 'curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3',
      '--resolve', `${name}:443:${sb.addrs.server}`, `https://${name}/index.html`]).stdout
    t.equal(curl('www.example.com'), '200', 'an allowed name gets the page')
    t.equal(curl('claude.ai'), '000', 'a name the shipped policy blocks (anthropic: block) gets nothing')
    d.kill('SIGTERM')
    t.ok(await waitUntil(() => d.exitCode !== null || d.signalCode !== null, 10000), 'SIGTERM: it drains and exits')
    daemon = null
    // Decision lines on stdout, the journal's place under the unit (--log -).
    const text = out.join('')
    interface Line { name?: string, destination?: { domain?: string }, event?: { action?: string, dataset?: string } }
    const decisions = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line).filter((l) => l.event?.dataset === 'aigate.decision')
    const decided = (name: string): string[] => decisions.filter((l) => (l.destination?.domain ?? l.name) === name).map((l) => l.event?.action ?? '')
    t.same(decided('claude.ai'), ['block'], 'one decision line for claude.ai: block')
    t.same(decided('www.example.com'), ['allow'], 'one for www.example.com: allow')
  })

  t.test('upgrade to a rebuilt package: the admin\'s edit of policy.yaml survives', async (t) => {
    const next = `${VERSION}+pkgtest1`
    const work = join(tmp, `aigate-${next}`)
    cpSync(STAGE, work, { recursive: true, verbatimSymlinks: true })
    const changelog = join(work, 'debian', 'changelog')
    writeFileSync(changelog, `aigate (${next}) unstable; urgency=medium\n\n  * Rebuilt by test/e2e/package.test.ts to test an upgrade.\n\n -- aigate maintainers <maintainers@users.noreply.r-seed-0092bebc.example>  ${new Date().toUTCString().replace(/GMT$/, '+0000')}\n\n${readFileSync(changelog, 'utf8')}`)
    // The new version changes both conffiles (comments only): policy.yaml, which the admin edited too, and openai.txt, which the admin did not.
    appendFileSync(join(work, 'rules', 'policy.example.yaml'), '# shipped by the upgrade\n')
    appendFileSync(join(work, 'rules', 'vendors', 'openai.txt'), '# shipped by the upgrade\n')
    const build = spawnSync('dpkg-buildpackage', ['-us', '-uc', '-b'], { cwd: work, encoding: 'utf8', timeout: 180_000, env: { ...process.env, NODE_OPTIONS: '' } })
    t.equal(build.status, 0, `dpkg-buildpackage: ${build.stderr.trim().split('\n').slice(-5).join(' | ')}`)
    const deb = join(tmp, `aigate_${next}_${ARCH}.deb`)

    const edited = `${readFileSync('/etc/aigate/policy.yaml', 'utf8')}# edited by the admin\n`
    writeFileSync('/etc/aigate/policy.yaml', edited)
    const uid = sys('id', ['-u', 'aigate']).out.trim()
    const r = aptGet(['install', deb])
    t.equal(r.status, 0, `apt-get install (upgrade): ${r.err.trim()}`)
    t.match(installed(), 'install ok installed')
    t.equal(spawnSync('dpkg-query', ['-W', '-f=${Version}', 'aigate'], { encoding: 'utf8' }).stdout, next, 'the new version is installed')
    t.equal(readFileSync('/etc/aigate/policy.yaml', 'utf8'), edited, 'the admin\'s policy.yaml is kept (--force-confold)')
    t.match(readFileSync('/etc/aigate/policy.yaml.dpkg-dist', 'utf8'), /# shipped by the upgrade\n$/, 'the new shipped policy waits beside it as .dpkg-dist')
    t.match(readFileSync('/etc/aigate/rules/openai.txt', 'utf8'), /# shipped by the upgrade\n$/, 'a list the admin left alone is updated')
    t.equal(sys('id', ['-u', 'aigate']).out.trim(), uid, 'the same user')
    const lint = sys('aigate', ['rules', 'lint'])
    t.equal(lint.status, 0, `rules lint after the upgrade: ${lint.err.trim()}`)
  })

  t.test('apt-get purge: no file, no user, no firewall rule of aigate left', async (t) => {
    t.ok(aigateRules(sb.gw).length > 0, 'the rules are still up in the gateway namespace (the daemon stopped, the rules stay)')
    // Removed from inside the gateway namespace: the prerm's `firewall down` acts where the rules are.
    const r = aptGet(['purge', 'aigate'], sb.gw)
    t.equal(r.status, 0, `apt-get purge: ${r.err.trim()}`)
    t.equal(installed(), '', 'dpkg knows nothing of aigate')
    for (const p of ['/usr/lib/aigate', '/etc/aigate', '/usr/bin/aigate', '/lib/systemd/system/aigate.service', '/lib/systemd/system/aigate-rules-update.timer', '/etc/logrotate.d/aigate',
      '/usr/share/man/man8/aigate.8.gz', '/usr/share/bash-completion/completions/aigate', '/usr/share/doc/aigate', '/var/log/aigate']) {
      t.notOk(existsSync(p), `${p} is gone`)
    }
    t.not(sys('getent', ['passwd', 'aigate']).status, 0, 'no user aigate')
    t.not(sys('getent', ['group', 'aigate']).status, 0, 'no group aigate')
    t.same(aigateRules(sb.gw), [], 'no aigate rule in the namespace where they were up')
    t.same(aigateRules(), hostRulesBefore, 'the host\'s rules as before')
  })
}
