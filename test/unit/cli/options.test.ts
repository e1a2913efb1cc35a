import t from 'tap'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildProgram, main, MAX_CACHE_SIZE } from '../../../src/cli/main.js'

/**
 * The command line run in this process: what it writes through
 * process.stdout/stderr and the exit status it sets.
 */
async function aigate (...args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = process.stdout.write
  const err = process.stderr.write
  process.stdout.write = ((s: string | Uint8Array) => { stdout += String(s); return true }) as typeof process.stdout.write
  process.stderr.write = ((s: string | Uint8Array) => { stderr += String(s); return true }) as typeof process.stderr.write
  const before = process.exitCode
  process.exitCode = 0
  try {
    await main(args)
  } finally {
    process.stdout.write = out
    process.stderr.write = err
  }
  const status = Number(process.exitCode ?? 0)
  process.exitCode = before
  return { status, stdout, stderr }
}

t.test('--cache-size has an upper bound, said in --help; beyond it is a usage error', async (t) => {
  t.equal(MAX_CACHE_SIZE, 16777216)
  for (const cmd of [['classify', 'x.pcap'], ['capture', 'eth0'], ['run']]) {
    for (const v of ['16777217', '1e12', '0']) {
      const r = await aigate(cmd[0] as string, '--cache-size', v, ...cmd.slice(1))
      t.equal(r.status, 2, `${cmd[0]} --cache-size ${v}: exit 2`)
      t.equal(r.stderr, `aigate: --cache-size must be an integer from 1 to 16777216, got "${v}"\n`)
    }
    const help = buildProgram().commands.find((c) => c.name() === cmd[0])?.helpInformation()
    t.match(help, /--cache-size <n>\s+decision cache entries( per queue)?, 1 to 16777216\s+\(default:\s+65536\)/)
  }
})

t.test('check: arguments outside printable ASCII come back escaped, in text and JSON', async (t) => {
  const hostile = ['\u202eabc', 'a\u0085b', 'x\u007fy', 'tab\there']
  const text = await aigate('check', ...hostile, 'api.openai.com')
  t.equal(text.status, 1)
  t.same(text.stdout.split('\n').slice(0, 4), [
    '"\\u202eabc": invalid name (bad-idn)',
    '"a\\u0085b": invalid name (bad-idn)',
    '"x\\u007fy": invalid name (bad-char)',
    '"tab\\there": invalid name (bad-char)',
  ])
  t.match(text.stdout, /^api\.openai\.com\tmonitor\topenai\trule openai\.com \(.*openai\.txt:\d+\)\n$/m)
  const js = await aigate('check', '--json', ...hostile)
  t.notMatch(js.stdout, /[^\x20-\x7e\n]/, 'printable ASCII only')
  t.same(js.stdout.trim().split('\n').map((l) => JSON.parse(l).name), hostile, 'the JSON still reads back as the arguments')
  const from = await aigate('check', '--from', '\u202e1.2.3.4', 'a.example')
  t.equal(from.status, 2)
  t.equal(from.stderr, 'aigate: --from: "\\u202e1.2.3.4" is not an IP address\n', 'usage errors too')
})

t.test('rules import: --vendor and --category are ids, and no header text can start a new line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-cli-import-'))
  const list = join(dir, 'list.txt')
  writeFileSync(list, 'acme.example\n')
  const ok = await aigate('rules', 'import', '--format', 'plain', '--vendor', 'acme-2', '--category', 'ai', list)
  t.equal(ok.status, 0, ok.stderr)
  t.equal(ok.stdout, `# vendor: acme-2\n# title: acme-2\n# category: ai\n# source: ${list} (imported as plain)\nacme.example\n`)
  const cases: Array<[string[], string]> = [
    [['--vendor', 't\nevil.example'], '--vendor: "t\\u000aevil.example" is not an id (lower case letters, digits and -, not starting with -)'],
    [['--vendor', 'Acme'], '--vendor: "Acme" is not an id (lower case letters, digits and -, not starting with -)'],
    [['--vendor', 'acme', '--category', 'ai\nevil.example'], '--category: "ai\\u000aevil.example" is not an id (lower case letters, digits and -, not starting with -)'],
    [['--vendor', 'acme', '--title', 'Acme\revil.example'], '--title: "Acme\\u000devil.example" has control characters or line breaks, which cannot go into a header line'],
    [['--vendor', 'acme', '--source', 'x\u2028evil.example'], '--source: "x\\u2028evil.example" has control characters or line breaks, which cannot go into a header line'],
  ]
  for (const [args, message] of cases) {
    const r = await aigate('rules', 'import', '--format', 'plain', ...args, list)
    // (U+2028 in a test name would break tap's own lines)
    t.equal(r.status, 2, `${JSON.stringify(args).replace(/[^\x20-\x7e]/g, '?')}: exit 2`)
    t.equal(r.stdout, '', 'no list printed')
    t.equal(r.stderr, `aigate: ${message}\n`)
  }
  const odd = join(dir, 'new\nline.txt')
  writeFileSync(odd, 'acme.example\n')
  const r = await aigate('rules', 'import', '--format', 'plain', '--vendor', 'acme', odd)
  t.match(r.stdout, /^# source: .*new\\u000aline\.txt \(imported as plain\)$/m, 'a file name is escaped into the default source')
  t.equal(r.stdout.split('\n').filter((l) => !l.startsWith('#')).join('\n'), 'acme.example\n')
})

t.test('rules lint reports the problems of the lists and of the policy in one run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-cli-lint-'))
  mkdirSync(join(dir, 'rules'))
  writeFileSync(join(dir, 'rules', 'acme.txt'), '# vendor: acme\n# title: Acme\n# category: ai\n# source: test\nb.example\na.example\n')
  writeFileSync(join(dir, 'policy.yaml'), 'default: allow\nvendors: {acme: nope}\n')
  const r = await aigate('rules', 'lint', '--rules', join(dir, 'rules'), '--policy', join(dir, 'policy.yaml'))
  t.equal(r.status, 1)
  t.equal(r.stderr, `aigate: warning: ${join(dir, 'rules', 'acme.txt')}:6: not sorted: "a.example" after "b.example"\n` +
    `aigate: ${join(dir, 'policy.yaml')}:2: vendors.acme: "nope" is not an action (allow, monitor, block, reject)\n`)
  t.equal(r.stdout, '')
  writeFileSync(join(dir, 'rules', 'acme.txt'), '# vendor: acme\n# title: Acme\n# category: ai\n# source: test\na.example\nb.example\n')
  writeFileSync(join(dir, 'policy.yaml'), 'default: allow\nvendors: {acme: block}\n')
  const ok = await aigate('rules', 'lint', '--rules', join(dir, 'rules'), '--policy', join(dir, 'policy.yaml'))
  t.equal(ok.status, 0, ok.stderr)
  t.equal(ok.stdout, `ok: 1 vendor lists, 2 entries, policy ${join(dir, 'policy.yaml')}\n`)
})

t.test('usage errors of every kind exit 2, --help and --version exit 0; --help lists the exit statuses', async (t) => {
  for (const args of [['--bogus'], ['rules', 'import', 'x.txt'], ['classify'], ['check', '--bogus', 'a.com']]) {
    const r = await aigate(...args)
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`)
    t.match(r.stderr, /run with --help/)
  }
  t.equal((await aigate('--version')).status, 0)
  const help = await aigate('--help')
  t.equal(help.status, 0)
  t.match(help.stdout, /Exit status: 0 done; 1 an error .*\n.*2 a usage error; 3 firewall status: not installed/)
})

t.test('firewall down takes only where the rules are, not what they are', async (t) => {
  const down = buildProgram().commands.find((c) => c.name() === 'firewall')?.commands.find((c) => c.name() === 'down')
  const help = down?.helpInformation() ?? ''
  t.match(help, /--netns/)
  t.notMatch(help, /--queues|--fail-closed|--hooks|--queue-packets/)
  const r = await aigate('firewall', 'down', '--fail-closed')
  t.equal(r.status, 2, 'an option down would ignore is a usage error')
  t.match(r.stderr, /unknown option '--fail-closed'/)
})
