import { Option, type Command } from 'commander'
import { ConfigError, loadLists, VENDOR_ID } from '../../config/lists.js'
import { loadPolicy } from '../../config/policy.js'
import { importList, LIST_FORMATS, type ListFormat } from '../../config/import.js'
import { MAX_IMPORT_BYTES, readTextFile, ReadError } from '../../config/read.js'
import { json } from '../../log/index.js'
import { printable, rulesOptions, UsageError } from '../shared.js'

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
}
