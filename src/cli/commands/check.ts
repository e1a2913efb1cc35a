import type { Command } from 'commander'
import { loadRuleset } from '../../config/index.js'
import { Classifier } from '../../classify/index.js'
import { json } from '../../log/index.js'
import { parseName, NameOut, type Name } from '../../name/index.js'
import { parseCidr } from '../../policy/index.js'
import { cidrError } from '../../config/policy.js'
import { explain, explanationText } from '../../rules/explain.js'
import { asciiJson, printable, rulesOptions, UsageError } from '../shared.js'

/** `aigate check <name...>`: the decision for each name, as text or JSON lines. */
export function registerCheck (program: Command): void {
  rulesOptions(program.command('check')
    .description('print the decision for names (vendor, rule, action)')
    .argument('<name...>', 'names to check (IDN accepted)')
    .option('--json', 'one JSON line per name: name, action, vendor, category, rule, source')
    .option('--from <ip>', 'client address, for per-network exceptions')
    .option('--explain', 'say why: every entry that matches and which won, the network the address falls in, the policy steps in order and which applied'))
    .action((names: string[], opts: { rules: string, policy: string, json?: boolean, from?: string, explain?: boolean }) => {
      const ruleset = loadRuleset(opts.rules, opts.policy)
      const classifier = new Classifier(ruleset)
      let cls = 0
      let from: { text: string, v: 4 | 6, bytes: Uint8Array } | null = null
      if (opts.from !== undefined) {
        // As strict as the policy's own addresses: 10.020.0.1 is refused, not read as 10.20.0.1.
        const c = opts.from.includes('/') ? null : parseCidr(opts.from)
        const bad = cidrError(opts.from)
        if (c === null || bad !== null) throw new UsageError(`--from: "${printable(opts.from)}" is not an IP address${bad !== null && c !== null ? ` (${bad})` : ''}`)
        const bytes = c.v === 4
          ? new Uint8Array([c.range.base >>> 24, (c.range.base >>> 16) & 255, (c.range.base >>> 8) & 255, c.range.base & 255])
          : c.range.bytes
        from = { text: opts.from, v: c.v, bytes }
        cls = ruleset.policy.sourceClass(bytes, 0, c.v === 4 ? 4 : 6)
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
        if (opts.explain === true) {
          const x = explain(ruleset, out.name, from)
          if (opts.json === true) process.stdout.write(asciiJson(x) + '\n')
          else process.stdout.write(explanationText(x).map(printable).join('\n') + '\n')
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
