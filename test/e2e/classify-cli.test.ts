import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync, mkdtempSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { PACKAGE_ROOT } from '../../src/config/index.js'
import { FIXTURES } from '../helpers/fixtures.js'
import { tsharkNames, ndjson as lines } from '../helpers/tshark.js'

/**
 * `aigate classify` (the built CLI, as an analyst runs it) on captures of
 * real clients reports exactly the names tshark reports for the same file.
 */
const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
const PCAP = join(FIXTURES, 'pcap', 'clients.pcap')
const PCAPNG = join(FIXTURES, 'pcap', 'clients.pcapng')

function aigate (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}



t.test('same names as tshark, pcap and pcapng', async (t) => {
  const hasTshark = spawnSync('sh', ['-c', 'command -v tshark']).status === 0
  t.ok(hasTshark, 'tshark is installed (quickstart.sh installs it)')
  for (const file of [PCAP, PCAPNG]) {
    const r = aigate('classify', file)
    t.equal(r.status, 0, `${file}: exit 0 (${r.stderr.trim()})`)
    const decisions = lines(r.stdout)
    const ours = [...new Set(decisions.map((d) => d.destination?.domain as string))].sort()
    if (hasTshark) t.same(ours, tsharkNames(file), `${file}: names equal tshark's`)
    t.ok(ours.includes('api.anthropic.com') && ours.includes('chatgpt.com') && ours.includes('en.wikipedia.org'))
  }
})

t.test('QUIC: Chromium v1/v2 and the RFC Initials give the names tshark gives, seen as quic', async (t) => {
  const dir = join(FIXTURES, 'quic', 'pcap')
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.pcap'))) {
    const file = join(dir, f)
    const ds = lines(aigate('classify', file).stdout)
    t.ok(ds.length >= 1, `${f}: decided`)
    t.same([...new Set(ds.map((d) => d.destination?.domain as string))].sort(), tsharkNames(file), `${f}: names equal tshark's`)
    for (const d of ds) {
      t.equal(d.aigate.seen, 'quic')
      t.equal(d.network.protocol, 'quic')
      t.equal(d.destination.port, 443)
    }
  }
})

t.test('decision lines: ECS fields, flat name, every action, the right vendor', async (t) => {
  const r = aigate('classify', PCAP)
  const ds = lines(r.stdout)
  t.ok(ds.length > 10)
  for (const d of ds) {
    t.type(d.destination.domain, 'string')
    t.match(d['@timestamp'], /^\d{4}-\d\d-\d\dT/)
    t.equal(d['log.level'], 'info')
    t.ok(['allow', 'monitor', 'block', 'reject'].includes(d.event.action))
    t.ok(['sni', 'dns', 'http'].includes(d.aigate.seen))
    t.match(d.source.ip, /^(10\.200\.0\.1|fd00:200::1)$/)
    t.type(d.source.port, 'number')
    t.ok(d.destination.port === 443 || d.destination.port === 53 || d.destination.port === 80)
    t.ok(['tcp', 'udp'].includes(d.network.transport))
  }
  const one = (name: string, seen: string) => ds.find((d) => d.destination?.domain === name && d.aigate.seen === seen)
  const claude = one('api.anthropic.com', 'sni')
  t.equal(claude?.event.action, 'block')
  t.equal(claude?.aigate.vendor, 'anthropic')
  t.equal(claude?.rule.name, 'anthropic.com')
  t.equal(claude?.tls.client.server_name, 'api.anthropic.com')
  t.equal(one('chatgpt.com', 'http')?.event.action, 'monitor')
  t.equal(one('chatgpt.com', 'http')?.url.domain, 'chatgpt.com')
  const wiki = one('en.wikipedia.org', 'sni')
  t.equal(wiki?.event.action, 'allow')
  t.equal(wiki?.aigate.vendor, null)
  t.ok(ds.some((d) => d.aigate.seen === 'dns' && d.dns.question.type === 'HTTPS'), 'DNS type names')
  t.ok(ds.some((d) => d.network.type === 'ipv6'), 'IPv6 flows')
})

t.test('a different policy changes the actions; rules and policy flags work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-policy-'))
  const policy = join(dir, 'p.yaml')
  writeFileSync(policy, 'default: block\nvendors: {openai: allow}\n')
  const ds = lines(aigate('classify', '--policy', policy, PCAP).stdout)
  t.equal(ds.find((d) => d.destination?.domain === 'en.wikipedia.org')?.event.action, 'block')
  t.equal(ds.find((d) => d.destination?.domain === 'api.openai.com')?.event.action, 'allow')
})

t.test('bad input: one clear line, non-zero, no stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-bad-'))
  const trunc = join(dir, 'truncated.pcap')
  const full = readFileSync(PCAP)
  writeFileSync(trunc, full.subarray(0, Math.floor(full.length / 2)))
  const junk = join(dir, 'junk.pcap')
  writeFileSync(junk, Buffer.from('this is not a capture file at all\n'))
  const cases: Array<[string[], RegExp]> = [
    [['classify', join(dir, 'missing.pcap')], /missing\.pcap: no such file$/],
    [['classify', junk], /not a pcap or pcapng capture file$/],
    [['classify', dir], /is a directory$/],
    [['classify', trunc], /truncated/],
    [['classify', '--rules', join(dir, 'nope'), PCAP], /cannot read rules directory: ENOENT$/],
    [['classify'], /missing required argument 'file'/],
    [['bogus'], /unknown command 'bogus'/],
  ]
  for (const [args, re] of cases) {
    const r = aigate(...args)
    t.not(r.status, 0, `${args.join(' ')}: non-zero`)
    t.match(r.stderr.trim(), re, `${args.join(' ')}: ${r.stderr.trim()}`)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('a reader that stops early (| head) ends the replay quietly', async (t) => {
  // clients.pcap's records 300 times: ~6,000 lines, far more than a pipe holds.
  const dir = mkdtempSync(join(tmpdir(), 'aigate-head-'))
  const full = readFileSync(PCAP)
  const big = join(dir, 'big.pcap')
  writeFileSync(big, Buffer.concat([full.subarray(0, 24), ...Array<Buffer>(300).fill(full.subarray(24))]))
  const child = spawn(process.execPath, [BIN, 'classify', big], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const first = await new Promise<string>((resolve) => {
    let got = ''
    child.stdout.on('data', (c: Buffer) => {
      got += c.toString()
      const nl = got.indexOf('\n')
      if (nl >= 0) { child.stdout.destroy(); resolve(got.slice(0, nl)) }
    })
  })
  t.equal(JSON.parse(first).destination.domain, 'api.openai.com')
  const timer = setTimeout(() => child.kill('SIGKILL'), 20000)
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  clearTimeout(timer)
  t.equal(signal, null, 'exits by itself')
  t.equal(code, 0)
  t.equal(stderr, '', 'nothing on stderr')
})

t.test('check: text and --json', async (t) => {
  const r = aigate('check', '--json', 'API.Anthropic.com.', 'gemini.com', 'bücher.example', 'bad name')
  t.equal(r.status, 1, 'an invalid name makes the exit status 1')
  const ds = lines(r.stdout)
  t.same(ds.map((d) => [d.name, d.action, d.vendor, d.rule]), [
    ['api.anthropic.com', 'block', 'anthropic', 'anthropic.com'],
    ['gemini.com', 'allow', null, null],
    ['xn--bcher-kva.example', 'allow', null, null],
    ['bad name', undefined, undefined, undefined],
  ])
  const help = aigate('--help')
  t.equal(help.status, 0)
  t.match(help.stdout, /classify/)
  t.match(help.stdout, /check/)
})

t.test('rules lint reports file:line problems', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-lint-'))
  writeFileSync(join(dir, 'acme.txt'), '# vendor: acme\n# title: Acme\n# category: ai\n# source: test\nb.example\na.example\nbad..name\n')
  const r = aigate('rules', 'lint', '--rules', dir)
  t.equal(r.status, 1)
  t.match(r.stderr, /acme\.txt:6: not sorted/)
  t.match(r.stderr, /acme\.txt:7: invalid name "bad\.\.name": empty-label/)
  t.equal(aigate('rules', 'lint').status, 0, 'the shipped rules lint clean')
})
