import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, classified, daemonLine, decision, Follower, logs, tmp } from './log.js'

/**
 * `aigate logs` as an analyst runs it: the built CLI, stdout a pipe (or a
 * terminal through script(1)), on a log made by `aigate classify` from the
 * fixture captures plus hand-made lines. What is checked against the raw
 * lines is computed here, independently, from JSON.parse.
 */

const { dir, cleanup } = tmp()
t.teardown(cleanup)

const made = classified()
const extra = [
  daemonLine('start', 'aigate started', '2026-11-25T20:00:00.000Z'),
  decision({ ts: '2026-11-25T21:30:00.000Z', action: 'block', vendor: 'anthropic', name: 'claude.ai', ip: 'fd00:99::5', port: 5555, reason: 'evasion', detail: 'second-hello' }),
  decision({ ts: '2026-11-25T21:31:00.000Z', action: 'allow', vendor: null, name: 'www.example.com', ip: '10.9.0.1', port: 1, seen: 'dns', reason: 'default', count: 17 }),
  'garbage, not a line of ours',
]
// A line whose bytes are not UTF-8 and one ending in CRLF: --json gives back what it read.
const odd = Buffer.concat([
  Buffer.from(decision({ ts: '2026-11-25T21:32:00.000Z', action: 'reject', vendor: 'openai', name: 'api.openai.com', ip: '10.9.0.2', port: 2 }).slice(0, -1) + ',"junk":"'),
  Buffer.from([0xff, 0xc3, 0x28]),
  Buffer.from('"}\n'),
  Buffer.from(decision({ ts: '2026-11-25T21:33:00.000Z', action: 'monitor', vendor: 'openai', name: 'chatgpt.com', ip: '10.9.0.3', port: 3 }) + '\r\n'),
])
const bytes = Buffer.concat([Buffer.from(made + extra.join('\n') + '\n'), odd])
const LOG = join(dir, 'decisions.log')
writeFileSync(LOG, bytes)

/** The raw lines of the log, as bytes, each with what JSON.parse reads in it. */
const raw: Array<{ bytes: Buffer, o: Record<string, any> | null }> = []
for (let s = 0; s < bytes.length;) {
  const nl = bytes.indexOf(0x0a, s)
  const b = bytes.subarray(s, nl)
  let o: Record<string, any> | null = null
  try { o = JSON.parse(b.toString('utf8')) } catch {}
  raw.push({ bytes: b, o })
  s = nl + 1
}
const decisions = raw.filter((r) => r.o?.event?.dataset === 'aigate.decision')

function expectJson (keep: (o: Record<string, any>) => boolean): Buffer {
  return Buffer.concat(decisions.filter((r) => keep(r.o as Record<string, any>)).flatMap((r) => [r.bytes, Buffer.from('\n')]))
}

t.test('one line per decision, the daemon\'s line too; the unreadable line counted on stderr', async (t) => {
  const r = logs([LOG])
  t.equal(r.status, 0)
  const lines = r.stdout.split('\n').filter((l) => l !== '')
  t.equal(lines.length, decisions.length + 1)
  t.notMatch(r.stdout, /\x1b/, 'no colour into a pipe')
  t.notMatch(r.stdout, /[^\x20-\x7e\n]/, 'printable ASCII')
  t.equal(r.stderr, 'aigate: logs: 1 line skipped: 1 not JSON (first: "garbage, not a line of ours")\n')
  t.match(r.stdout, /^2026-11-25 20:00:00\.000  daemon   \[info\] start: aigate started$/m)
  t.match(r.stdout, /^2026-11-25 21:30:00\.000  block    anthropic +claude\.ai +\[fd00:99::5\]:5555 +sni +evasion \(second-hello\)$/m)
  t.match(r.stdout, /  default x17$/m)
  // Every decision of the capture log is there with its name and source, in order.
  const names = decisions.map((d) => d.o?.destination?.domain ?? d.o?.name)
  const shown = lines.filter((l) => !/  daemon  /.test(l)).map((l) => l.split(/ +/)[4])
  t.same(shown, names)
})

t.test('--json: the selected lines, byte for byte', async (t) => {
  const all = logs(['--json', '--no-daemon', LOG])
  t.ok(all.raw.equals(expectJson(() => true)), 'every decision line, unchanged (non-UTF-8 bytes and CR kept)')
  const blocks = logs(['--json', '--action', 'block,reject', LOG])
  t.ok(blocks.raw.equals(expectJson((o) => ['block', 'reject'].includes(o.event.action))), '--action')
  t.ok(blocks.raw.length > 0)
  const openai = logs(['--json', '--vendor', 'openai', LOG])
  t.ok(openai.raw.equals(expectJson((o) => o.aigate.vendor === 'openai')), '--vendor')
  const v6 = logs(['--json', '--source', 'fd00::/8', LOG])
  t.ok(v6.raw.equals(expectJson((o) => o.source?.ip?.startsWith('fd00:'))), '--source IPv6')
  t.ok(v6.raw.length > 0)
  const v4 = logs(['--json', '--source', '10.220.0.0/16', '--source', '10.9.0.3', LOG])
  t.ok(v4.raw.equals(expectJson((o) => o.source?.ip?.startsWith('10.220.') || o.source?.ip === '10.9.0.3')), '--source IPv4, twice')
  const since = logs(['--json', '--since', '2026-11-25T21:30:00Z', LOG])
  t.ok(since.raw.equals(expectJson((o) => Date.parse(o['@timestamp']) >= Date.parse('2026-11-25T21:30:00Z'))), '--since ISO')
  const daemon = logs(['--json', LOG])
  t.match(daemon.stdout, /"dataset":"aigate.daemon"/, 'without --no-daemon the daemon line passes through too')
  t.equal(daemon.stderr, 'aigate: logs: 1 line skipped: 1 not JSON (first: "garbage, not a line of ours")\n', 'skipped lines are reported on stderr, not mixed into the JSON')
})

t.test('--since as an age', async (t) => {
  const { dir: d, cleanup: c } = tmp()
  t.teardown(c)
  const now = Date.now()
  const f = join(d, 'log')
  writeFileSync(f, [decision({ ts: new Date(now - 3_600_000).toISOString(), name: 'old.example' }), decision({ ts: new Date(now - 60_000).toISOString(), name: 'new.example' })].join('\n') + '\n')
  const r = logs(['--since', '10m', f])
  t.match(r.stdout, /new\.example/)
  t.notMatch(r.stdout, /old\.example/)
  t.equal(logs(['--since', '2h', f]).stdout.split('\n').length, 3)
})

t.test('colour: --color always, a terminal (script(1)), NO_COLOR', async (t) => {
  t.match(logs(['--color', 'always', '--action', 'block', LOG]).stdout, /\x1b\[1m\x1b\[31mblock/)
  t.notMatch(logs(['--color', 'never', LOG]).stdout, /\x1b/)
  const onTty = (env: Record<string, string>): string => {
    const r = spawnSync('script', ['-qec', `${process.execPath} ${BIN} logs --action block ${LOG}`, '/dev/null'], { env: { ...process.env, TZ: 'UTC', TERM: 'xterm', ...env }, encoding: 'utf8', timeout: 60_000 })
    return r.stdout
  }
  t.match(onTty({ NO_COLOR: '' }), /\x1b\[1m\x1b\[31mblock/, 'a terminal: colour')
  t.notMatch(onTty({ NO_COLOR: '1' }), /\x1b\[/, 'NO_COLOR set: none')
  t.notMatch(onTty({ NO_COLOR: '', TERM: 'dumb' }), /\x1b\[/, 'TERM=dumb: none')
})

t.test('usage errors exit 2 with one line; a missing file exits 1', async (t) => {
  const cases: Array<[string[], string]> = [
    [['--action', 'drop', LOG], 'aigate: --action: "drop" is not an action (allow, monitor, block, reject)\n'],
    [['--source', '10.1.0.0/8', LOG], 'aigate: --source: "10.1.0.0/8" has host bits set: the network is 10.0.0.0/8\n'],
    [['--source', '\u001b[31m', LOG], 'aigate: --source: "\\u001b[31m" is not a CIDR (10.0.0.0/8, fd00::/8)\n'],
    [['--since', 'last tuesday', LOG], 'aigate: --since: "last tuesday" is not a time: give an ISO 8601 time (2026-11-25T21:00Z) or an age (24h, 7d)\n'],
    [['-n', 'x', LOG], 'aigate: --lines must be an integer >= 0, got "x"\n'],
    [['-n', '3', '-'], 'aigate: --lines needs a FILE or the journal: stdin has no end to count back from\n'],
  ]
  for (const [args, err] of cases) {
    const r = logs(args)
    t.equal(r.status, 2, args.join(' '))
    t.equal(r.stderr, err)
  }
  const bad = logs(['--color', 'sometimes', LOG])
  t.equal(bad.status, 2)
  const missing = logs([join(dir, 'nope.log')])
  t.equal(missing.status, 1)
  t.equal(missing.stderr, `aigate: logs: ${join(dir, 'nope.log')}: no such file\n`)
  const isDir = logs([dir])
  t.equal(isDir.status, 1)
  t.match(isDir.stderr, /a directory, not a log file/)
})

t.test('- reads stdin; -n: the last lines shown', async (t) => {
  const r = logs(['--action', 'block', '-'], { input: bytes })
  t.equal(r.stdout, logs(['--action', 'block', LOG]).stdout)
  // Compared with runs of spaces as one: a column's width depends on the lines shown before.
  const words = (s: string): string[] => s.split('\n').filter((l) => l !== '').map((l) => l.replace(/ +/g, ' '))
  const last = logs(['-n', '2', '--action', 'monitor', LOG])
  const every = words(logs(['--action', 'monitor', LOG]).stdout)
  t.same(words(last.stdout), every.slice(-2), 'the last 2 monitor lines')
  t.same(words(logs(['-n', '1', LOG]).stdout), words(logs([LOG]).stdout).slice(-1), 'the last line: the CRLF one')
  t.equal(logs(['-n', '0', LOG]).stdout, '')
  t.equal(logs(['-n', 'all', '--no-daemon', LOG]).stdout.split('\n').length - 1, decisions.length)
})

t.test('the reader going away (| head) ends quietly, with or without -f', async (t) => {
  for (const args of [[LOG], ['--json', LOG], ['-f', '-n', 'all', LOG]]) {
    const script = `"$@" | head -n 1 >/dev/null; exit "\${PIPESTATUS[0]}"`
    const r = spawnSync('bash', ['-c', script, 'bash', process.execPath, BIN, 'logs', ...args], { encoding: 'utf8', timeout: 30_000 })
    t.equal(r.status, 0, `${args.join(' ')}: exit 0`)
    t.notMatch(r.stderr, /EPIPE|Error|at /, `${args.join(' ')}: no error or stack`)
  }
})

t.test('no FILE: journalctl -u aigate -o cat, spawned with an argument array', async (t) => {
  const { dir: d, cleanup: c } = tmp()
  t.teardown(c)
  // A stand-in journalctl first on PATH: records its arguments, prints what the journal would hold
  // (decision lines, a daemon line, and the daemon's stderr text), and with -f keeps running.
  const argsFile = join(d, 'args')
  const pidFile = join(d, 'pid')
  const body = [decision({ action: 'block', name: 'claude.ai' }), daemonLine('start', 'up'), 'aigate: rules reloaded \u001b[31m'].join('\n')
  writeFileSync(join(d, 'body'), body + '\n')
  writeFileSync(join(d, 'journalctl'), `#!/bin/sh
printf '%s\\n' "$@" > '${argsFile}'
echo $$ > '${pidFile}'
cat '${join(d, 'body')}'
for a in "$@"; do [ "$a" = -f ] && exec sleep 600; done
exit 0
`)
  chmodSync(join(d, 'journalctl'), 0o755)
  const env = { PATH: `${d}:${process.env.PATH ?? ''}` }
  const r = logs([], { env })
  t.equal(r.status, 0)
  t.same(readFileSync(argsFile, 'utf8').split('\n').slice(0, -1), ['-u', 'aigate', '-o', 'cat', '--no-pager'])
  t.match(r.stdout, /block    anthropic      claude\.ai/)
  t.match(r.stdout, /daemon   \[info\] start: up/)
  t.match(r.stdout, /daemon   aigate: rules reloaded \\u001b\[31m$/m, 'the daemon\'s stderr text shown dimmed, escaped, not counted as bad')
  t.equal(r.stderr, '')

  const since = logs(['--unit', 'aigate@x; rm -rf /', '-n', '5', '--since', '2026-11-25T21:00:00Z', '--action', 'block'], { env })
  t.equal(since.status, 0)
  t.same(readFileSync(argsFile, 'utf8').split('\n').slice(0, -1),
    ['-u', 'aigate@x; rm -rf /', '-o', 'cat', '--no-pager', '-n', '5', '--since', `@${Date.parse('2026-11-25T21:00:00Z') / 1000}`], 'the unit passed as one argument, no shell')
  t.notMatch(since.stdout, /daemon/, 'an action filter leaves the daemon\'s text out')

  const f = new Follower(['-f'], env)
  await f.until('the journal lines', () => f.lines.length === 3)
  t.same(readFileSync(argsFile, 'utf8').split('\n').slice(0, -1), ['-u', 'aigate', '-o', 'cat', '--no-pager', '-f'])
  t.equal(await f.stop(), 0, '^C: exit 0')
})

t.test('journalctl -f is ended with the command; a missing journalctl is one clear error', async (t) => {
  const { dir: d, cleanup: c } = tmp()
  t.teardown(c)
  const pidFile = join(d, 'pid')
  writeFileSync(join(d, 'journalctl'), `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 600\n`)
  chmodSync(join(d, 'journalctl'), 0o755)
  const f = new Follower(['-f'], { PATH: `${d}:${process.env.PATH ?? ''}` })
  await f.until('journalctl to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '')
  const pid = Number(readFileSync(pidFile, 'utf8'))
  t.equal(await f.stop(), 0, '^C: exit 0')
  await new Promise((resolve) => setTimeout(resolve, 200))
  let alive = true
  try { process.kill(pid, 0) } catch { alive = false }
  t.notOk(alive, 'journalctl was stopped')
  const none = logs([], { env: { PATH: d + '/nowhere' } })
  t.equal(none.status, 1)
  t.equal(none.stderr, 'aigate: logs: journalctl not found: give the decision log file (the --log FILE of aigate run)\n')
})
