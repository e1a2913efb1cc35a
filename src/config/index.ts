import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { loadLists, parseLists, type FileText, type VendorList } from './lists.js'
import { parsePolicy, readPolicy } from './policy.js'
import { Ruleset } from '../rules/index.js'

/** The package's own directory (two levels above dist/src/config or src/config). */
const here = dirname(fileURLToPath(import.meta.url))
export const PACKAGE_ROOT = here.includes(`${join('dist', 'src')}`) ? join(here, '..', '..', '..') : join(here, '..', '..')
export const DEFAULT_RULES_DIR = join(PACKAGE_ROOT, 'rules', 'vendors')
export const DEFAULT_POLICY = join(PACKAGE_ROOT, 'rules', 'policy.example.yaml')

export type { FileText }

/** The texts of the rule files as read once: every vendor list (sorted by name) and the policy. */
export interface RuleTexts {
  readonly lists: readonly FileText[]
  readonly policy: FileText
}

/** Rules read and checked: the compiled ruleset and exactly the texts it was compiled from. */
export interface LoadedRules {
  readonly ruleset: Ruleset
  readonly texts: RuleTexts
}

/**
 * Read the vendor lists and the policy once, validate and compile them.
 * Throws ConfigError with every problem at file:line. The daemon's main
 * thread calls this at start and on SIGHUP and posts `texts` to its workers,
 * which compile them with compileRules: what runs is what was checked.
 */
export function loadRules (rulesDir: string = DEFAULT_RULES_DIR, policyFile: string = DEFAULT_POLICY, strict = false): LoadedRules {
  const lists: FileText[] = []
  const vendorLists = loadLists(rulesDir, strict, lists)
  const policy: FileText = { file: policyFile, text: readPolicy(policyFile) }
  const ruleset = compile(vendorLists, policy)
  return { ruleset, texts: Object.freeze({ lists: Object.freeze(lists), policy: Object.freeze(policy) }) }
}

/** Compile rule texts already read (by loadRules); no file is opened. Throws ConfigError as loadRules does. */
export function compileRules (texts: RuleTexts, strict = false): Ruleset {
  return compile(parseLists(texts.lists, strict), texts.policy)
}

/** Read, validate and compile rules and policy; throws ConfigError with every problem. */
export function loadRuleset (rulesDir: string = DEFAULT_RULES_DIR, policyFile: string = DEFAULT_POLICY, strict = false): Ruleset {
  return loadRules(rulesDir, policyFile, strict).ruleset
}

function compile (lists: readonly VendorList[], policy: FileText): Ruleset {
  const input = parsePolicy(policy.text, policy.file, {
    vendors: new Set(lists.map((l) => l.vendor)),
    categories: new Set(lists.map((l) => l.category)),
  })
  return new Ruleset(lists, input)
}
