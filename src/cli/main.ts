import { Command, CommanderError, Option } from 'commander'
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { loadRuleset, DEFAULT_RULES_DIR, DEFAULT_POLICY } from '../config/index.js'
import { ConfigError, loadLists, VENDOR_ID } from '../config/lists.js'
import { loadPolicy } from '../config/policy.js'
import { importList, LIST_FORMATS, type ListFormat } from '../config/import.js'
import { MAX_IMPORT_BYTES, readTextFile, ReadError } from '../config/read.js'
import { Classifier } from '../classify/index.js'
import { DEFAULT_CACHE_SIZE } from '../cache/index.js'
import { DecisionLog, FdLines, json } from '../log/index.js'
import { parseName, NameOut, type Name } from '../name/index.js'
import { parseCidr } from '../policy/index.js'
import { CaptureError } from '../source/pcapfile.js'
import { classifyFile } from '../source/classify-file.js'
import { unreadText } from '../source/frames.js'
import { runDaemon, parseQueues, StartupError } from '../daemon/index.js'
import { runDemo } from '../demo/index.js'
import { captureLive, NAME_PORTS_FILTER } from '../source/live.js'
import { up as fwUp, down as fwDown, status as fwStatus } from '../fw/index.js'
import { FirewallError } from '../fw/exec.js'
import type { FirewallOptions } from '../fw/options.js'

/**
 * Command line: the only module that prints for people and calls process.exit.
 * Failures are one clear line on stderr and a non-zero status, never a stack.
 */

class UsageError extends Error {}

/** Stdout could not be written (a closed pipe ends a replay quietly). */
class OutputClosed extends Error {
  readonly code: string
  constructor (code: string) {
    super(`output closed (${code})`)
    this.code = code
  }
}

const uEscape = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')

/**
 * Text for a terminal: anything outside printable ASCII as \uXXXX, as the
 * log escapes strings, so an argument or a file's bytes cannot reorder the
 * line (U+202E), drive the terminal (C1 controls) or break it.
 */
function printable (s: string): string {
  return s.replace(/[^\x20-\x7e]/g, uEscape)
}

/** A JSON line in printable ASCII: JSON.stringify escapes only below 0x20. */
function asciiJson (v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, uEscape)
}

/** Write out the lines gathered so far; a closed stdout is not worth more than the error already at hand. */
function flushKeeping (sink: FdLines): void {
  try {
    sink.flush()
  } catch (err) {
    if (!(err instanceof OutputClosed)) throw err
  }
}

function intOption (name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new UsageError(max === Number.MAX_SAFE_INTEGER
        ? `${name} must be an integer >= ${min}, got "${v}"`
        : `${name} must be an integer from ${min} to ${max}, got "${v}"`)
    }
    return n
  }
}

/**
 * Upper bound of --cache-size (per queue for `run`). The cache preallocates
 * arrays of this length: at 2^24 a replay peaks at ~320 MB RSS (65 MB at the
 * default), 10^8 grew to 2.8 GB, and 10^12 failed with "Invalid array length".
 */
export const MAX_CACHE_SIZE = 16_777_216

function cacheSizeOption (what: string): Option {
  return new Option('--cache-size <n>', `${what}, 1 to ${MAX_CACHE_SIZE}`).default(DEFAULT_CACHE_SIZE).argParser(intOption('--cache-size', 1, MAX_CACHE_SIZE))
}

/** --vendor and --category of `rules import` become header lines and policy keys: ids only. */
function idOption (flag: string, v: string): void {
  if (!VENDOR_ID.test(v)) throw new UsageError(`${flag}: "${v}" is not an id (lower case letters, digits and -, not starting with -)`)
}

/** Free text that goes into a header line: no control characters, no line breaks. */
function headerText (flag: string, v: string): void {
  if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(v)) throw new UsageError(`${flag}: "${v}" has control characters or line breaks, which cannot go into a header line`)
}

/** The most `classify` copies from stdin or a pipe, 1 GiB (a file of any size is read in place). */
export const MAX_PIPED_CAPTURE = 1 << 30

/**
 * A capture on stdin (`-`) or in a pipe (`<(…)`, a FIFO) is first copied into
 * a private file: the format check and libpcap read by position, which a pipe
 * cannot do. The copy lives in a directory made by mkdtemp (mode 0700) under
 * $TMPDIR and is removed by `done`.
 */
async function seekableCapture (file: string): Promise<{ path: string, done: () => void }> {
  let piped = file === '-'
  if (!piped) {
    try {
      const st = statSync(file)
      piped = st.isFIFO()
    } catch {
      // Missing or unreadable: the capture reader says so, with its own words.
    }
  }
  if (!piped) return { path: file, done: () => {} }
  const dir = mkdtempSync(join(tmpdir(), 'aigate-classify-'))
  const done = (): void => { rmSync(dir, { recursive: true, force: true }) }
  const path = join(dir, 'capture')
  let bytes = 0
  const limit = new Transform({
    transform (chunk: Buffer, _enc, next) {
      bytes += chunk.length
      if (bytes > MAX_PIPED_CAPTURE) next(new CaptureError('EFBIG', `${file}: more than 1 GiB from a pipe; write the capture to a file and classify that`))
      else next(null, chunk)
    },
  })
  try {
    await pipeline(file === '-' ? process.stdin : createReadStream(file), limit, createWriteStream(path, { flags: 'wx', mode: 0o600 }))
  } catch (err) {
    done()
    if (err instanceof CaptureError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    throw new CaptureError(code, `${file}: cannot read: ${code}`)
  }
  return { path, done }
}

function rulesOptions (cmd: Command): Command {
  return cmd
    .addOption(new Option('--rules <dir>', 'directory of vendor lists (*.txt)').default(DEFAULT_RULES_DIR, 'the shipped rules/vendors'))
    .addOption(new Option('--policy <file>', 'policy file (YAML)').default(DEFAULT_POLICY, 'the shipped rules/policy.example.yaml'))
}

export function buildProgram (): Command {
  const program = new Command('aigate')
  program
    .description('Network-edge control for AI services.\nLearns the name a connection opens (TLS SNI, QUIC SNI, DNS, HTTP Host), matches it against\nAI-vendor lists and decides allow, monitor, block or reject.')
    .version(readVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Examples:
  aigate check api.anthropic.com chatgpt.com example.org
  aigate classify capture.pcap > decisions.ndjson
  aigate rules lint --rules /etc/aigate/rules --policy /etc/aigate/policy.yaml
  aigate rules import --format adblock --vendor myvendor list.txt

Actions: allow (pass), monitor (pass and log), block (drop), reject (TCP reset / ICMP unreachable).
Decision lines are JSON with Elastic Common Schema field names and a flat "name".

Exit status: 0 done; 1 an error (a file, the rules, the capture, the kernel) or, for
check, a name that is not a host name; 2 a usage error; 3 firewall status: not installed.`)

  rulesOptions(program.command('classify')
    .description('replay a capture file (pcap or pcapng) through the classifier; one JSON decision line per name seen, on stdout')
    .argument('<file>', 'capture file; - (stdin) or a pipe is first copied to a private temporary file (at most 1 GiB)')
    .addOption(cacheSizeOption('decision cache entries'))
    .option('-q, --quiet', 'no summary on stderr'))
    .action(async (file: string, opts: { rules: string, policy: string, cacheSize: number, quiet?: boolean }) => {
      const classifier = new Classifier(loadRuleset(opts.rules, opts.policy), opts.cacheSize)
      const sink = new FdLines(1)
      // The reader went away (`aigate classify x.pcap | head`): stop quietly.
      sink.onError = (e) => { throw new OutputClosed(e.code) }
      const log = new DecisionLog(sink)
      const t0 = process.hrtime.bigint()
      const input = await seekableCapture(file)
      try {
        const s = await classifyFile(input.path, classifier, log)
        sink.flush()
        const secs = Number(process.hrtime.bigint() - t0) / 1e9
        if (opts.quiet !== true) {
          // What was seen and left unread for a reason an analyst may want to chase.
          const fakes = classifier.flows.stats.implausible
          const extra = fakes > 0 ? `, ${fakes} fake segments ignored on allowed flows` : ''
          process.stderr.write(`aigate: ${file}: ${s.packets} packets, ${s.decisions} decisions, ` +
            `${classifier.cache.hits} cache hits, ${unreadText(s)}${extra}, ${secs.toFixed(3)} s\n`)
        }
      } catch (err) {
        if (!(err instanceof OutputClosed)) {
          // A capture cut off by a killed tcpdump is the usual case: the
          // decisions made before the bad record still go out, then the error.
          flushKeeping(sink)
          // Messages name the file as given, not the private copy.
          if (err instanceof CaptureError && input.path !== file) throw new CaptureError(err.code, err.message.replaceAll(input.path, file))
          throw err
        }
        if (err.code !== 'EPIPE') throw new CaptureError(err.code, `cannot write to stdout (${err.code})`)
      } finally {
        input.done()
      }
    })

  rulesOptions(program.command('check')
    .description('print the decision for names (vendor, rule, action)')
    .argument('<name...>', 'names to check (IDN accepted)')
    .option('--json', 'one JSON line per name: name, action, vendor, category, rule, source')
    .option('--from <ip>', 'client address, for per-network exceptions'))
    .action((names: string[], opts: { rules: string, policy: string, json?: boolean, from?: string }) => {
      const ruleset = loadRuleset(opts.rules, opts.policy)
      const classifier = new Classifier(ruleset)
      let cls = 0
      if (opts.from !== undefined) {
        const c = parseCidr(opts.from)
        if (c === null || (c.v === 4 ? c.range.mask !== 0xffffffff : c.range.bits !== 128)) throw new UsageError(`--from: "${opts.from}" is not an IP address`)
        cls = c.v === 4
          ? ruleset.policy.sourceClass(new Uint8Array([c.range.base >>> 24, (c.range.base >>> 16) & 255, (c.range.base >>> 8) & 255, c.range.base & 255]), 0, 4)
          : ruleset.policy.sourceClass(c.range.bytes, 0, 6)
      }
      const out = new NameOut()
      let bad = 0
      for (const raw of names) {
        if (!parseName(raw, out)) {
          bad++
          if (opts.json === true) process.stdout.write(asciiJson({ name: raw, error: out.error }) + '\n')
          else process.stdout.write(`${json(raw)}: invalid name (${out.error})\n`)
          continue
        }
        const d = classifier.decide(out.name as Name, cls)
        if (opts.json === true) {
          process.stdout.write(asciiJson({
            name: out.name, action: d.action, vendor: d.vendor, category: d.category, rule: d.rule, source: d.ruleSource, reason: d.reason, network: d.network,
          }) + '\n')
        } else {
          const rule = d.rule === null ? 'no rule' : `rule ${d.rule} (${d.ruleSource})`
          process.stdout.write(`${out.name}\t${d.action}\t${printable(d.vendor ?? '-')}\t${printable(rule)}\n`)
        }
      }
      if (bad > 0) process.exitCode = 1
    })

  rulesOptions(program.command('run')
    .description('the inline daemon: classify packets from NFQUEUE and return verdicts (needs CAP_NET_ADMIN; set the kernel rules up with `aigate firewall up`)')
    .addOption(new Option('--queues <list>', 'NFQUEUE numbers, one worker thread each: 0 | 0,1 | 0-3').default('0'))
    .addOption(cacheSizeOption('decision cache entries per queue'))
    .addOption(new Option('--log <file>', 'decision log: a file (appended; SIGHUP reopens it, for logrotate) or - for stdout').default('-'))
    .option('--fail-open', 'when the queue is full, accept packets instead of dropping them (the default drops: a flood must not wave blocked names through)')
    .addOption(new Option('--fail-closed', 'the default now (kept for old command lines)').hideHelp()))
    .action(async (opts: { rules: string, policy: string, queues: string, cacheSize: number, log: string, failOpen?: boolean }) => {
      const queues = parseQueues(opts.queues)
      if (queues === null) throw new UsageError(`--queues: "${opts.queues}" is not a queue list (0, 0,1 or 0-3; at most 64)`)
      await runDaemon({ queues, rulesDir: opts.rules, policyFile: opts.policy, cacheSize: opts.cacheSize, log: opts.log, failOpen: opts.failOpen === true })
    })

  const fw = program.command('firewall').description('install, remove or show the kernel rules that send flow-opening packets to aigate (root)')
  // Where the rules are: every firewall command.
  const fwWhere = (cmd: Command): Command => cmd
    .option('--no-ipv6', 'leave ip6tables alone')
    .addOption(new Option('--backend <name>', 'iptables, nft or auto (nft when the kernel has its queue expression)').choices(['auto', 'iptables', 'nft']).default('auto'))
    .option('--netns <name>', 'apply in this network namespace')
  // What the rules are: up installs them, status compares with them; down removes whatever is there.
  const fwOptions = (cmd: Command): Command => fwWhere(cmd
    .addOption(new Option('--queues <list>', 'NFQUEUE numbers (consecutive: 0-3)').default('0'))
    .addOption(new Option('--hooks <list>', 'forward (routed traffic) and/or output (this host)').default('forward'))
    .option('--fail-closed', 'drop, instead of pass, packets when no daemon is bound to the queue')
    .addOption(new Option('--source-budget <pps>', 'packets per second one client address may send to the queue (burst: twice that; IPv6 per /64); over it they are dropped; 0: no budget').default(2000).argParser(intOption('--source-budget', 0)))
    .addOption(new Option('--queue-packets <n>', 'ignored: flows are queued until decided').hideHelp().argParser(intOption('--queue-packets', 1))))
  const fwOpts = (o: { queues: string, hooks: string, failClosed?: boolean, sourceBudget: number, queuePackets?: number, ipv6: boolean, backend: string, netns?: string }): FirewallOptions => {
    if (o.queuePackets !== undefined) process.stderr.write('aigate firewall: --queue-packets is ignored: every flow is queued until it is decided\n')
    const queues = parseQueues(o.queues)
    if (queues === null) throw new UsageError(`--queues: "${o.queues}" is not a queue list`)
    return {
      queues,
      hooks: o.hooks.split(',').map((h) => h.trim()) as Array<'forward' | 'output'>,
      failClosed: o.failClosed === true,
      sourceBudget: o.sourceBudget,
      ipv6: o.ipv6,
      backend: o.backend as 'auto' | 'iptables' | 'nft',
      ...(o.netns !== undefined ? { netns: o.netns } : {}),
    }
  }
  fwOptions(fw.command('up').description('install the rules (idempotent)')).action((o) => {
    const backend = fwUp(fwOpts(o))
    process.stdout.write(`aigate firewall: rules installed (${backend})\n`)
  })
  fwWhere(fw.command('down').description('remove the rules, on every hook and queue (idempotent; the host is left as before `up`)')).action((o: { ipv6: boolean, backend: string, netns?: string }) => {
    fwDown({ ipv6: o.ipv6, backend: o.backend as 'auto' | 'iptables' | 'nft', ...(o.netns !== undefined ? { netns: o.netns } : {}) })
    process.stdout.write('aigate firewall: rules removed\n')
  })
  fwOptions(fw.command('status').description('show whether the rules are installed, and their packet counters')).option('--json', 'one JSON object')
    .action((o: { json?: boolean } & Parameters<typeof fwOpts>[0]) => {
      const s = fwStatus(fwOpts(o))
      if (o.json === true) { process.stdout.write(JSON.stringify(s) + '\n'); return }
      process.stdout.write(`installed: ${s.installed ? 'yes' : 'no'} (${s.backend}), hooks: ${s.hooks.join(',') || '-'}, packets sent to userspace: ${s.queuedPackets}, dropped over a source's budget: ${s.overBudgetPackets}\n`)
      for (const r of s.rules) process.stdout.write(`  ${String(r.packets).padStart(10)} pkts  ${r.family} ${r.table}/${r.chain} ${r.name}\n`)
      if (!s.installed) process.exitCode = 3
    })

  rulesOptions(program.command('capture')
    .description('passive mode: classify packets from a live interface (mirror/SPAN port) and log decisions, no verdicts (needs CAP_NET_RAW)')
    .argument('<iface>', 'interface to capture on')
    .addOption(new Option('--filter <bpf>', 'BPF filter: only ports that carry names').default(NAME_PORTS_FILTER))
    .addOption(cacheSizeOption('decision cache entries'))
    .addOption(new Option('--log <file>', 'decision log: a file (appended) or - for stdout').default('-')))
    .action(async (iface: string, opts: { rules: string, policy: string, filter: string, cacheSize: number, log: string }) => {
      const classifier = new Classifier(loadRuleset(opts.rules, opts.policy), opts.cacheSize)
      const sink = new FdLines(opts.log)
      sink.onError = (e) => { process.stderr.write(`aigate: cannot write the decision log (${e.code}): ${e.message}; capture goes on\n`) }
      const handle = captureLive(iface, classifier, new DecisionLog(sink), opts.filter)
      process.stderr.write(`aigate: capturing on ${iface} (log only), filter: ${opts.filter}\n`)
      await new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          const s = handle.close()
          process.stderr.write(`aigate: ${sig}: ${s.received} packets received, ${s.dropped} dropped by the kernel, ${s.decisions} decisions, ${unreadText(s)}\n`)
          resolve()
        }
        process.once('SIGINT', () => stop('SIGINT'))
        process.once('SIGTERM', () => stop('SIGTERM'))
      })
    })

  rulesOptions(program.command('demo')
    .description('(root) build a sandbox of network namespaces, run aigate inline with real clients and servers, show the decisions, remove everything')
    .addOption(new Option('--timeout <s>', 'seconds a client waits before it counts as blocked').default(3).argParser(intOption('--timeout', 1))))
    .action(async (opts: { rules: string, policy: string, timeout: number }) => {
      process.exitCode = await runDemo({ rulesDir: opts.rules, policyFile: opts.policy, timeoutSec: opts.timeout })
    })

  const rules = program.command('rules').description('validate and import rule lists')
  rulesOptions(rules.command('lint')
    .description('validate vendor lists (headers, syntax, order, duplicates) and the policy, with file:line errors'))
    .action((opts: { rules: string, policy: string }) => {
      // Both are checked, so one run shows every problem; without valid lists
      // the policy's vendor and category names cannot be checked against them.
      const problems: string[] = []
      const collect = <T>(f: () => T): T | null => {
        try {
          return f()
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err
          problems.push(...err.problems)
          return null
        }
      }
      const lists = collect(() => loadLists(opts.rules, true))
      collect(() => loadPolicy(opts.policy, lists === null ? undefined : { vendors: new Set(lists.map((l) => l.vendor)), categories: new Set(lists.map((l) => l.category)) }))
      if (lists === null || problems.length > 0) throw new ConfigError(problems)
      const entries = lists.reduce((n, l) => n + l.entries.length, 0)
      process.stdout.write(`ok: ${lists.length} vendor lists, ${entries} entries, policy ${opts.policy}\n`)
    })
  rules.command('import')
    .description('translate a list in another format into our list syntax (printed on stdout)')
    .argument('<file>', 'list to import')
    .addOption(new Option('--format <format>', 'input format').choices(LIST_FORMATS as string[]).makeOptionMandatory())
    .requiredOption('--vendor <id>', 'vendor id for the header (the file should be rules/vendors/<id>.txt)')
    .option('--category <name>', 'category for the header', 'ai')
    .option('--title <text>', 'title for the header')
    .option('--source <text>', 'where the list comes from (URL, retrieval date)')
    .option('--include-dir <dir>', 'v2fly: directory that include: names refer to')
    .option('--keep-ads', 'v2fly: keep entries tagged @ads')
    .action((file: string, opts: { format: ListFormat, vendor: string, category: string, title?: string, source?: string, includeDir?: string, keepAds?: boolean }) => {
      idOption('--vendor', opts.vendor)
      idOption('--category', opts.category)
      if (opts.title !== undefined) headerText('--title', opts.title)
      if (opts.source !== undefined) headerText('--source', opts.source)
      let text: string
      try {
        // A pipe is fine here (`<(curl …)`, as the admin names it); a device is not; either is capped.
        text = readTextFile(file, 'list to import', MAX_IMPORT_BYTES, { pipes: true })
      } catch (err) {
        if (err instanceof ReadError) throw new UsageError(err.message)
        throw err
      }
      const r = importList(text, opts.format, { file, includeDir: opts.includeDir, keepAds: opts.keepAds })
      const lines = [
        `# vendor: ${opts.vendor}`,
        `# title: ${opts.title ?? opts.vendor}`,
        `# category: ${opts.category}`,
        `# source: ${opts.source ?? printable(file)} (imported as ${opts.format})`,
        ...r.entries,
      ]
      process.stdout.write(lines.join('\n') + '\n')
      for (const s of r.skipped) process.stderr.write(printable(`${s.file}:${s.line}: skipped ${json(s.text)}: ${s.reason}`) + '\n')
      if (r.exceptions.length > 0) process.stderr.write(`allow-exceptions (add to the policy's allow:): ${r.exceptions.join(', ')}\n`)
    })
  return program
}

function readVersion (): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
    return pkg.version
  } catch {
    return '0.0.0'
  }
}

function fail (err: unknown): number {
  if (err instanceof ConfigError) {
    for (const p of err.problems) process.stderr.write(`aigate: ${printable(p)}\n`)
    return 1
  }
  if (err instanceof CaptureError || err instanceof UsageError || err instanceof StartupError || err instanceof FirewallError) {
    process.stderr.write(`aigate: ${printable(err.message)}\n`)
    return err instanceof UsageError ? 2 : 1
  }
  // Commander's own errors (unknown option, missing argument) are usage errors, as ours are; --help and --version exit 0.
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EPIPE') return 0
  process.stderr.write(`aigate: ${printable(err instanceof Error ? err.message : String(err))}\n`)
  if (process.env.AIGATE_DEBUG !== undefined && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`)
  return 1
}

export async function main (argv: string[]): Promise<void> {
  const program = buildProgram()
  // Every command, not only the root (commands made before this call do not
  // inherit it): a usage error throws here instead of calling process.exit(1).
  const override = (c: Command): void => {
    c.exitOverride()
    c.configureOutput({ writeErr: (s) => process.stderr.write(s) })
    c.commands.forEach(override)
  }
  override(program)
  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    process.exitCode = fail(err)
  }
}
