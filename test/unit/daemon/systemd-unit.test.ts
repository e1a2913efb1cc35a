import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, copyFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../../src/config/index.js'

/**
 * systemd/aigate.service: the kernel rules outlive the daemon (so
 * `firewall up --fail-closed` keeps the gateway closed through a stop, a
 * crash and an automatic restart), no IP socket family is allowed, and the
 * hardening rating does not get worse.
 */
const UNIT = join(PACKAGE_ROOT, 'systemd', 'aigate.service')
const text = readFileSync(UNIT, 'utf8')
/** Directive lines of [Service], comments and continuations left out. */
const directives = (key: string): string[] => text.split('\n')
  .filter((l) => l.startsWith(`${key}=`))
  .map((l) => l.slice(key.length + 1))

t.test('no step of the unit removes the kernel rules', async (t) => {
  for (const key of ['ExecStop', 'ExecStopPost', 'ExecStartPost', 'ExecReload', 'ExecCondition']) {
    for (const cmd of directives(key)) t.notMatch(cmd, /firewall\s+down/, `${key}=${cmd}`)
  }
  t.same(directives('ExecStartPre').filter((c) => /firewall\s+up/.test(c)).length, 1, 'rules are set up (idempotently) before each start')
  t.notMatch(text, /^ExecStopPost=/m, 'nothing runs after a stop, a crash or before an automatic restart')
})

t.test('address families: netlink and local only', async (t) => {
  const fams = directives('RestrictAddressFamilies').join(' ').split(/\s+/).filter((f) => f !== '')
  t.same(fams.sort(), ['AF_NETLINK', 'AF_UNIX'])
})

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
t.test('systemd-analyze security --offline: exposure 1.5 or lower', { skip: analyze.status === 0 ? false : 'systemd-analyze not installed' }, async (t) => {
  // --offline reads the file as given; the name must still end in .service.
  const dir = mkdtempSync(join(tmpdir(), 'aigate-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const copy = join(dir, 'aigate.service')
  copyFileSync(UNIT, copy)
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', copy], { encoding: 'utf8' })
  const m = /Overall exposure level for aigate\.service: (\d+\.\d+)/.exec(r.stdout)
  t.ok(m, `rating printed: ${r.stderr.trim()}`)
  t.ok(Number(m?.[1]) <= 1.5, `exposure ${m?.[1] ?? '?'}`)
})

t.test('systemd-analyze verify: the unit and the metrics drop-in', { skip: analyze.status === 0 ? false : 'systemd-analyze not installed' }, async (t) => {
  // verify checks that ExecStart= exists: point it at this checkout's bin/aigate.js.
  const dir = mkdtempSync(join(tmpdir(), 'aigate-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const here = (s: string): string => s.replaceAll('/usr/lib/aigate/bin/aigate.js', join(PACKAGE_ROOT, 'bin', 'aigate.js'))
  writeFileSync(join(dir, 'aigate.service'), here(text))
  mkdirSync(join(dir, 'aigate.service.d'))
  writeFileSync(join(dir, 'aigate.service.d', 'metrics.conf'), here(readFileSync(join(PACKAGE_ROOT, 'systemd', 'metrics.conf'), 'utf8')))
  const r = spawnSync('systemd-analyze', ['verify', join(dir, 'aigate.service')], { encoding: 'utf8' })
  t.equal(r.status, 0, `verify: ${r.stderr.trim()}`)
  t.equal(r.stderr.trim(), '', 'no warning')
})

t.test('readiness, watchdog, no journal rate limit, signals that do one thing', async (t) => {
  t.same(directives('Type'), ['notify'], 'Type=notify: READY=1 once every queue is bound')
  t.same(directives('WatchdogSec'), ['30s'], 'a watchdog the verdict loops feed')
  t.same(directives('LogRateLimitIntervalSec'), ['0'], 'journald drops no decision line')
  t.same(directives('ExecReload'), ['/bin/kill -HUP $MAINPID'], 'reload = SIGHUP = rules and policy only')
  t.match(directives('ExecStart').join(' '), /--control \/run\/aigate\/control\.sock/, 'the control socket in the runtime directory')
  t.same(directives('RuntimeDirectory'), ['aigate'])
})

t.test('the metrics drop-in: loopback only, one IP family more', async (t) => {
  const dropin = readFileSync(join(PACKAGE_ROOT, 'systemd', 'metrics.conf'), 'utf8')
  const lines = (key: string): string[] => dropin.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1))
  t.same(lines('RestrictAddressFamilies'), ['AF_INET'], 'adds AF_INET and nothing else')
  t.same(lines('IPAddressDeny'), ['any'])
  t.same(lines('IPAddressAllow'), ['localhost'])
  t.match(lines('ExecStart').join(' '), /--metrics 127\.0\.0\.1:\d+/, 'listens on loopback')
})
