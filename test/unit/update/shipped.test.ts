import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../../src/config/index.js'
import { parseSources } from '../../../src/update/sources.js'

/** What ships for `rules update`: the example sources.yaml and the timer, which must be valid as shipped. */

t.test('rules/sources.example.yaml parses and names every shipped list, as an aigate list', async (t) => {
  const file = join(PACKAGE_ROOT, 'rules', 'sources.example.yaml')
  const s = parseSources(readFileSync(file, 'utf8'), file)
  const shipped = readdirSync(join(PACKAGE_ROOT, 'rules', 'vendors')).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4)).sort()
  t.same(s.map((x) => x.vendor).sort(), shipped)
  for (const x of s) t.ok(x.format === 'aigate' && x.pin.kind === 'sha256' && x.url.protocol === 'https:', x.vendor)
})

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
t.test('systemd-analyze verify: the update service and its timer', { skip: analyze.status === 0 ? false : 'systemd-analyze not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-ru-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const f of ['aigate-rules-update.service', 'aigate-rules-update.timer']) {
    // verify checks that ExecStart= exists: point it at this checkout's bin/aigate.js.
    writeFileSync(join(dir, f), readFileSync(join(PACKAGE_ROOT, 'systemd', f), 'utf8').replaceAll('/usr/lib/aigate/bin/aigate.js', join(PACKAGE_ROOT, 'bin', 'aigate.js')))
  }
  const r = spawnSync('systemd-analyze', ['verify', join(dir, 'aigate-rules-update.service'), join(dir, 'aigate-rules-update.timer')], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr.split('\n').filter((l) => /aigate-rules-update/.test(l)).join('\n'), '', 'no complaint about our units')
  const timer = readFileSync(join(PACKAGE_ROOT, 'systemd', 'aigate-rules-update.timer'), 'utf8')
  t.match(timer, /^WantedBy=timers\.target$/m, 'enabled by the admin, into timers.target')
})
