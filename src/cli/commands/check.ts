import type { Command } from 'commander'
import { loadRuleset } from '../../config/index.js'
import { Classifier } from '../../classify/index.js'
import { json } from '../../log/index.js'
import { parseName, NameOut, type Name } from '../../name/index.js'
import { parseCidr } from '../../policy/index.js'
import { asciiJson, printable, rulesOptions, UsageError } from '../shared.js'

/** `aigate check <name...>`: the decision for each name, as text or JSON lines. */
export function registerCheck (program: Command): void {
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
}
