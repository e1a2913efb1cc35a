import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { ConfigError, parseLists, readLists, type FileText } from './lists.js'
import { parsePolicy, readPolicy } from './policy.js'
import type { PolicyInput } from '../policy/index.js'
import { Ruleset } from '../rules/index.js'

/** The package's own directory (two levels above dist/src/config or src/config). */
const here = dirname(fileURLToPath(import.meta.url))
export const PACKAGE_ROOT = here.includes(`${join('dist', 'src')}`) ? join(here, '..', '..', '..') : join(here, '..', '..')
/** The shipped rules: what a repository checkout (no /etc/aigate) uses, and what tests mean by "the shipped lists". */
export const DEFAULT_RULES_DIR = join(PACKAGE_ROOT, 'rules', 'vendors')
export const DEFAULT_POLICY = join(PACKAGE_ROOT, 'rules', 'policy.example.yaml')

/** Where an installed aigate keeps its configuration (the Debian package's conffiles). */
export const ETC_DIR = '/etc/aigate'

/**
 * The configuration root taken as /etc/aigate: AIGATE_ETC when set and not
 * empty (tests point it at a directory of their own, or at one that does not
 * exist, so nothing depends on whether this machine has aigate installed).
 */
export function etcRoot (env: NodeJS.ProcessEnv = process.env): string {
  const v = env['AIGATE_ETC']
  return v === undefined || v === '' ? ETC_DIR : v
}

/** The files the commands use when none are named. */
export interface DefaultPaths {
  readonly rulesDir: string
  readonly policyFile: string
  /** `aigate rules update`'s source list; under the root whether or not aigate is installed there. */
  readonly sourcesFile: string
  /** True when the root holds policy.yaml: an install, whose files win over the shipped ones. */
  readonly installed: boolean
}

/**
 * The defaults follow the install: when `<root>/policy.yaml` exists the rules
 * are `<root>/rules` and the policy `<root>/policy.yaml`; otherwise (a
 * repository checkout) the shipped rules/vendors and rules/policy.example.yaml.
 * The policy decides, not the rules directory: a package always installs both,
 * and a policy alone is what an admin who copied only it meant to use.
 */
export function defaultPaths (root: string = etcRoot()): DefaultPaths {
  const installed = existsSync(join(root, 'policy.yaml'))
  return {
    rulesDir: installed ? join(root, 'rules') : DEFAULT_RULES_DIR,
    policyFile: installed ? join(root, 'policy.yaml') : DEFAULT_POLICY,
    sourcesFile: join(root, 'sources.yaml'),
    installed,
  }
}

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
  /** What lint points out but loading does not need: order, repeats, missing title/source headers. */
  readonly warnings: readonly string[]
}

/**
 * Read the vendor lists and the policy once, validate and compile them.
 * Throws ConfigError with every problem at file:line. `rules lint`, `check`,
 * `classify`, `capture` and the daemon's main thread (at start and on SIGHUP)
 * all load through here, and the workers compile the same texts through
 * compileRules, which runs the same checks: what lint refuses is never loaded.
 * `warnings` receives what lint points out but loading does not need, also
 * when it throws.
 */
export function loadRules (rulesDir: string = DEFAULT_RULES_DIR, policyFile: string = DEFAULT_POLICY, warnings: string[] = []): LoadedRules {
  const problems: string[] = []
  const lists = readLists(rulesDir, problems)
  // A list that could not be read defines no vendor: the policy's names are then not checked against the rest.
  const known = problems.length === 0
  let policy: FileText | null = null
  try {
    policy = { file: policyFile, text: readPolicy(policyFile) }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems)
  }
  const texts: RuleTexts = Object.freeze({ lists: Object.freeze(lists), policy: Object.freeze(policy ?? { file: policyFile, text: '' }) })
  const ruleset = validate(texts, problems, warnings, policy !== null, known)
  return { ruleset, texts, warnings }
}

/** Compile rule texts already read (by loadRules); no file is opened. The same checks; throws ConfigError as loadRules does. */
export function compileRules (texts: RuleTexts): Ruleset {
  return validate(texts, [], [], true, true)
}

/** Read, validate and compile rules and policy; throws ConfigError with every problem. */
export function loadRuleset (rulesDir: string = DEFAULT_RULES_DIR, policyFile: string = DEFAULT_POLICY): Ruleset {
  return loadRules(rulesDir, policyFile).ruleset
}

/**
 * The one validator: every list, the names two lists share, the policy
 * against the vendors and categories the lists define. Every problem of all
 * of them is collected before it throws, so one run shows them all.
 */
function validate (texts: RuleTexts, problems: string[], warnings: string[], withPolicy: boolean, known: boolean): Ruleset {
  const lists = parseLists(texts.lists, problems, warnings)
  let input: PolicyInput | null = null
  if (withPolicy) {
    try {
      input = parsePolicy(texts.policy.text, texts.policy.file, known
        ? { vendors: new Set(lists.map((l) => l.vendor)), categories: new Set(lists.map((l) => l.category)) }
        : undefined)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(...err.problems)
    }
  }
  if (problems.length > 0 || input === null) throw new ConfigError(problems)
  return new Ruleset(lists, input)
}
