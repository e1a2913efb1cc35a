import { Option, type Command } from 'commander'
import { ConfigError, VENDOR_ID } from '../../config/lists.js'
import { loadRules } from '../../config/index.js'
import type { Ruleset } from '../../rules/index.js'
import { detectFormat, importList, LIST_FORMATS, type ListFormat } from '../../config/import.js'
import { MAX_IMPORT_BYTES, readTextFile, ReadError } from '../../config/read.js'
import { json } from '../../log/index.js'
import { intOption, printable, rulesOptions, UsageError } from '../shared.js'
import { defaultPaths } from '../../config/index.js'
import { DEFAULT_CONTROL_SOCKET } from '../../control/index.js'
import { runUpdate } from '../../update/index.js'
import { readVersion } from '../../util/version.js'

/** `aigate rules lint|import`: validate the rule files; translate other list formats into ours. */

/** --vendor and --category of `rules import` become header lines and policy keys: ids only. */
function idOption (flag: string, v: string): void {
  if (!VENDOR_ID.test(v)) throw new UsageError(`${flag}: "${v}" is not an id (lower case letters, digits and -, not starting with -)`)
}

/** Free text that goes into a header line: no control characters, no line breaks. */
function headerText (flag: string, v: string): void {
  if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(v)) throw new UsageError(`${flag}: "${v}" has control characters or line breaks, which cannot go into a header line`)
}

export function registerRules (program: Command): void {
  const rules = program.command('rules').description('validate, import and update rule lists')
  rulesOptions(rules.command('lint')
    .description('validate vendor lists and the policy with the loader the daemon uses: every problem at file:line (exit 1); warnings (order, repeats, missing headers) do not fail'))
    .action((opts: { rules: string, policy: string }) => {
      // The same loader as check, classify, run and reload: what fails here never loads there.
      const warnings: string[] = []
      let ruleset: Ruleset
      try {
        ruleset = loadRules(opts.rules, opts.policy, warnings).ruleset
      } finally {
        for (const w of warnings) process.stderr.write(printable(`aigate: warning: ${w}`) + '\n')
      }
      const entries = ruleset.lists.reduce((n, l) => n + l.entries.length, 0)
      const w = warnings.length === 0 ? '' : `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`
      process.stdout.write(`ok: ${ruleset.lists.length} vendor lists, ${entries} entries, policy ${printable(opts.policy)}${w}\n`)
    })
  rulesOptions(rules.command('update')
    .description('fetch the lists sources.yaml names (https, pinned by sha256 or commit, or following the latest), verify, convert, lint the whole new rules directory, print the diff, swap it in atomically (the previous kept as <dir>.old) and ask the running daemon to reload; any failure leaves the old rules')
    .addOption(new Option('--sources <file>', 'the sources (YAML; see rules/sources.example.yaml)').default(defaultPaths().sourcesFile))
    .option('--dry-run', 'stop after the diff: fetch, verify, convert and lint, change nothing')
    .addOption(new Option('--control <path>', 'the daemon\'s control socket, asked to reload after the swap; "none" to not ask').default(DEFAULT_CONTROL_SOCKET))
    .option('--ca <file>', 'PEM certificates to trust besides the system\'s (a local mirror\'s own CA; NODE_EXTRA_CA_CERTS works too)')
    .addOption(new Option('--timeout <s>', 'seconds a fetch may take, redirects included').default(60).argParser(intOption('--timeout', 1, 3600))))
    .action(async (opts: { rules: string, policy: string, sources: string, dryRun?: boolean, control: string, ca?: string, timeout: number }) => {
      let ca: string | undefined
      if (opts.ca !== undefined) {
        try {
          ca = readTextFile(opts.ca, 'CA file', MAX_IMPORT_BYTES)
        } catch (err) {
          if (err instanceof ReadError) throw new UsageError(`--ca: ${err.message}`)
          throw err
        }
      }
      await runUpdate({
        sourcesFile: opts.sources,
        rulesDir: opts.rules,
        policyFile: opts.policy,
        dryRun: opts.dryRun === true,
        control: opts.control === 'none' ? null : opts.control,
        fetch: { timeoutMs: opts.timeout * 1000, maxBytes: MAX_IMPORT_BYTES, ca, userAgent: `aigate/${readVersion()}` },
        say: (line) => { process.stdout.write(printable(line) + '\n') },
      })
    })
  rules.command('import')
    .description('translate a list in another format into our list syntax (printed on stdout)')
    .argument('<file>', 'list to import')
    .addOption(new Option('--format <format>', 'input format (default: told from the content)').choices(LIST_FORMATS as string[]))
    .requiredOption('--vendor <id>', 'vendor id for the header (the file should be rules/vendors/<id>.txt)')
    .option('--category <name>', 'category for the header', 'ai')
    .option('--title <text>', 'title for the header')
    .option('--source <text>', 'where the list comes from (URL, retrieval date)')
    .option('--include-dir <dir>', 'v2fly: directory that include: names refer to')
    .option('--keep-ads', 'v2fly: keep entries tagged @ads')
    .option('--strict', 'exit 1 and print no list when any line is skipped')
    .action((file: string, opts: { format?: ListFormat, strict?: boolean, vendor: string, category: string, title?: string, source?: string, includeDir?: string, keepAds?: boolean }) => {
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
      let format = opts.format
      if (format === undefined) {
        const d = detectFormat(text)
        if ('error' in d) throw new UsageError(`${printable(file)}: ${d.error}`)
        format = d.format
      }
      const r = importList(text, format, { file, includeDir: opts.includeDir, keepAds: opts.keepAds })
      const skipped = r.skipped.map((s) => printable(`${s.file}:${s.line}: skipped ${json(s.text)}: ${s.reason}`))
      if (opts.strict === true && skipped.length > 0) {
        // Nothing on stdout: a list redirected into rules/ must not be a partial one.
        throw new ConfigError([...skipped, `${printable(file)}: ${skipped.length} line${skipped.length === 1 ? '' : 's'} skipped (--strict)`])
      }
      const lines = [
        `# vendor: ${opts.vendor}`,
        `# title: ${opts.title ?? opts.vendor}`,
        `# category: ${opts.category}`,
        `# source: ${opts.source ?? printable(file)} (imported as ${format}${opts.format === undefined ? ', told from the content' : ''})`,
        ...r.entries,
      ]
      process.stdout.write(lines.join('\n') + '\n')
      for (const s of skipped) process.stderr.write(s + '\n')
      if (r.exceptions.length > 0) process.stderr.write(`allow-exceptions (add to the policy's allow:): ${r.exceptions.join(', ')}\n`)
    })
}
