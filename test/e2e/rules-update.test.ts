import t from 'tap'
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox, waitUntil } from '../../src/demo/sandbox.js'
import { startServers, probe } from '../../src/demo/servers.js'
import { up, down } from '../../src/fw/index.js'
import { PACKAGE_ROOT } from '../../src/config/index.js'

/**
 * `aigate rules update` against a local HTTPS server (issue 13, item 3): the
 * daemon runs inline in a sandbox's gateway namespace; the lists are served
 * over TLS from the server namespace by a Node https server whose
 * self-signed certificate the update trusts through --ca. A good source
 * changes the running daemon's decisions without a restart (a name curl
 * reached before is dropped after); a hash that does not match, a download
 * cut short of its Content-Length, a list that fails lint (it overlaps
 * another list) and a server nobody answers for each exit 1 with one line
 * on stderr and leave the rules directory byte for byte as it was.
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
const root = process.getuid?.() === 0
const skip = !root ? 'needs root: network namespaces, iptables and NFQUEUE' : false

const LIST_SERVER = `
import { createServer } from 'node:https'
import { readFileSync } from 'node:fs'
const [cert, key, dir, host] = process.argv.slice(2)
createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
  if (req.url === '/truncated.txt') {
    // Promises 4000 bytes, sends 30, then closes the connection.
    res.writeHead(200, { 'content-length': '4000', 'content-type': 'text/plain' })
    res.write('newai.example\\nother.example\\n..')
    setTimeout(() => req.socket.destroy(), 100)
    return
  }
  try {
    const body = readFileSync(dir + '/' + req.url.slice(1).replace(/[^a-z0-9.-]/g, ''))
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(body)
  } catch {
    res.writeHead(404)
    res.end()
  }
}).listen(8443, host)
`

/** Every file of a directory, name and bytes: "unchanged byte for byte". */
function snapshot (dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const f of readdirSync(dir).sort()) out[f] = readFileSync(join(dir, f)).toString('base64')
  return out
}

t.test('rules update: a good source changes the running daemon\'s decisions; each failure leaves the rules', { skip }, async (t) => {
  const sb = new Sandbox(`agru${process.pid % 1000}`, 223)
  const tmp = mkdtempSync(join(tmpdir(), 'aigate-ru-'))
  const etc = join(tmp, 'etc')
  const rules = join(etc, 'rules')
  const lists = join(tmp, 'lists')
  const tls = join(tmp, 'tls')
  mkdirSync(rules, { recursive: true })
  mkdirSync(lists)
  mkdirSync(tls)
  writeFileSync(join(rules, 'base.txt'), '# vendor: base\n# title: Base\n# category: ai\n# source: the test\nclaude.ai\n')
  const policy = join(etc, 'policy.yaml')
  writeFileSync(policy, 'default: allow\ncategories:\n  ai: block\n')
  const control = join(tmp, 'control.sock')
  const fwOpts = { netns: sb.gw, queues: [0], hooks: ['forward' as const] }
  const procs: ChildProcess[] = []
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    try { down(fwOpts) } catch { /* the namespace goes anyway */ }
    sb.destroy()
    rmSync(tmp, { recursive: true, force: true })
  })
  sb.create()
  startServers(sb, tmp)
  t.ok(await waitUntil(() => probe(sb, sb.addrs.server, 443), 10000), 'servers up')

  // The list server: HTTPS on the server's address, a certificate for that address.
  const host = sb.addrs.server
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tls, 'key.pem'),
    '-out', join(tls, 'cert.pem'), '-days', '1', '-subj', '/CN=aigate-lists', '-addext', `subjectAltName=IP:${host}`], { stdio: 'ignore' })
  writeFileSync(join(tls, 'server.mjs'), LIST_SERVER)
  const good = 'newai.example\nchat.newai.example\n'
  writeFileSync(join(lists, 'good.txt'), good)
  // claude.ai is base's: two lists covering one name is a lint error.
  writeFileSync(join(lists, 'overlap.txt'), 'newai.example\nclaude.ai\n')
  procs.push(sb.spawn(sb.srv, process.execPath, [join(tls, 'server.mjs'), join(tls, 'cert.pem'), join(tls, 'key.pem'), lists, host]))
  t.ok(await waitUntil(() => probe(sb, host, 8443), 10000), 'list server up')
  const goodHash = createHash('sha256').update(good).digest('hex')

  up(fwOpts)
  let err = ''
  const daemon = sb.spawn(sb.gw, process.execPath, [BIN, 'run', '--queues', '0', '--rules', rules, '--policy', policy, '--log', join(tmp, 'log.ndjson'), '--control', control])
  procs.push(daemon)
  daemon.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  t.ok(await waitUntil(() => err.includes('running on queue') || daemon.exitCode !== null, 15000), `daemon started: ${err.trim()}`)
  t.match(err, `vendor lists from ${rules}, `, 'the start line names the rules directory')

  const curl = (name: string): number | null => spawnSync('ip', ['netns', 'exec', sb.cli, 'curl', '-sk', '-o', '/dev/null', '--max-time', '2',
    '--resolve', `${name}:443:${sb.addrs.server}`, `https://${name}/`]).status
  const version = (): string | undefined => {
    const r = spawnSync(process.execPath, [BIN, 'status', '--json', '--control', control], { encoding: 'utf8' })
    try { return (JSON.parse(r.stdout) as { rules?: { version?: string } }).rules?.version } catch { return undefined }
  }
  t.equal(curl('newai.example'), 0, 'before: newai.example passes')
  t.equal(curl('claude.ai'), 28, 'before: claude.ai (base) is dropped')
  const v0 = version()

  const sources = join(tmp, 'sources.yaml')
  const update = (src: string, ...more: string[]): { status: number | null, stdout: string, stderr: string } => {
    writeFileSync(sources, src)
    const r = spawnSync('ip', ['netns', 'exec', sb.gw, process.execPath, BIN, 'rules', 'update', '--sources', sources, '--rules', rules, '--policy', policy,
      '--control', control, '--ca', join(tls, 'cert.pem'), '--timeout', '5', ...more], { encoding: 'utf8', timeout: 60_000 })
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  }
  const url = (f: string, port = 8443): string => `https://${host}:${port}/${f}`
  const before = snapshot(rules)
  const etcBefore = readdirSync(etc).sort()
  const fails: Array<[string, string, RegExp]> = [
    ['a hash that does not match', `- vendor: newai\n  url: ${url('good.txt')}\n  format: plain\n  sha256: ${'0'.repeat(64)}\n`,
      new RegExp(`^aigate: newai \\(sources line 1\\): ${url('good.txt')}: sha256 mismatch: expected 0{64}, got ${goodHash} \\(${good.length} bytes\\)\\n$`)],
    ['a truncated download', `- vendor: newai\n  url: ${url('truncated.txt')}\n  format: plain\n  follow: latest\n`,
      /^aigate: newai \(sources line 1\): https:\/\/[\d.]+:8443\/truncated\.txt: truncated: the connection ended after 30 of 4000 bytes\n$/],
    ['a list that fails lint', `- vendor: newai\n  url: ${url('overlap.txt')}\n  format: plain\n  follow: latest\n`,
      /^aigate: the new rules do not lint, the old ones stay: new newai\.txt:5: "claude\.ai" is covered by two vendor lists: .* at new base\.txt:5 \(base\); [^\n]*\n$/],
    ['an unreachable server', `- vendor: newai\n  url: ${url('good.txt', 8444)}\n  format: plain\n  follow: latest\n`,
      /^aigate: newai \(sources line 1\): https:\/\/[\d.]+:8444\/good\.txt: connection refused\n$/],
    ['a 404', `- vendor: newai\n  url: ${url('missing.txt')}\n  format: plain\n  follow: latest\n`,
      /^aigate: newai \(sources line 1\): https:\/\/[\d.]+:8443\/missing\.txt: HTTP 404 Not Found\n$/],
  ]
  for (const [what, src, line] of fails) {
    const r = update(src)
    t.equal(r.status, 1, `${what}: exit 1`)
    t.match(r.stderr, line, `${what}: one clear line`)
    t.same(snapshot(rules), before, `${what}: the rules directory is unchanged, byte for byte`)
    t.same(readdirSync(etc).sort(), etcBefore, `${what}: nothing left beside it`)
  }
  // Without --ca the self-signed server is not trusted.
  const untrusted = spawnSync('ip', ['netns', 'exec', sb.gw, process.execPath, BIN, 'rules', 'update', '--sources', sources, '--rules', rules, '--policy', policy,
    '--control', control, '--timeout', '5'], { encoding: 'utf8', timeout: 60_000 })
  t.equal(untrusted.status, 1, 'an untrusted certificate: exit 1')
  t.match(untrusted.stderr, /^aigate: newai \(sources line 1\): .*(self-signed|SELF_SIGNED).*\n$/, 'an untrusted certificate: one line')
  t.equal(curl('newai.example'), 0, 'after the failures: newai.example still passes')

  const src = `- vendor: newai\n  url: ${url('good.txt')}\n  format: plain\n  sha256: ${goodHash}\n  title: New AI\n`
  const dry = update(src, '--dry-run')
  t.equal(dry.status, 0, `--dry-run: exit 0 ${dry.stderr}`)
  t.match(dry.stdout, 'newai: new list, 2 entries\n  + chat.newai.example\n  + newai.example\n', '--dry-run prints the diff')
  t.match(dry.stdout, /dry run: 1 list would change \(2 added, 0 removed\)/)
  t.same(snapshot(rules), before, '--dry-run changes nothing')
  t.same(readdirSync(etc).sort(), etcBefore, '--dry-run leaves nothing beside it')

  const ok = update(src)
  t.equal(ok.status, 0, `a good source: exit 0 ${ok.stderr}`)
  t.equal(ok.stderr, '')
  t.match(ok.stdout, `fetched newai: ${url('good.txt')}, ${good.length} bytes, sha256 verified\n`)
  t.match(ok.stdout, 'newai: new list, 2 entries\n  + chat.newai.example\n  + newai.example\n', 'the diff')
  t.match(ok.stdout, /the daemon reloaded the new rules/, 'the running daemon was asked to reload')
  t.same(snapshot(`${rules}.old`), before, 'the previous rules are kept as rules.old')
  t.match(readFileSync(join(rules, 'newai.txt'), 'utf8'), /^# vendor: newai\n# title: New AI\n# category: ai\n# source: https:.*good\.txt \(plain, sha256 [0-9a-f]{64}; .*\)\nchat\.newai\.example\nnewai\.example\n$/)
  t.equal(readdirSync(etc).filter((f) => f.startsWith('.')).length, 0, 'no temporary directory left')
  t.not(version(), v0, 'status: the rules version changed')
  t.equal(daemon.exitCode, null, 'the daemon was not restarted')
  t.equal(curl('newai.example'), 28, 'after: newai.example is dropped by the same daemon')
  t.equal(curl('www.example.com'), 0, 'after: other names pass')

  const again = update(src)
  t.equal(again.status, 0)
  t.match(again.stdout, /rules unchanged: 1 source, the same lists as in /, 'the same lists again: nothing to swap')

  // No daemon: the swap is done and said, not an error.
  daemon.kill('SIGTERM')
  await waitUntil(() => daemon.exitCode !== null || daemon.signalCode !== null, 10000)
  writeFileSync(join(lists, 'good.txt'), good + 'more.newai.example\n')
  const alone = update(`- vendor: newai\n  url: ${url('good.txt')}\n  format: plain\n  follow: latest\n`)
  t.equal(alone.status, 0, `no daemon running: exit 0 ${alone.stderr}`)
  t.match(alone.stdout, 'newai: 1 added, 0 removed\n  + more.newai.example\n')
  t.match(alone.stdout, `no daemon answers at ${control}: the new rules load when it starts`)
})
