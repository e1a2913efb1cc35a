import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { loadLists } from './lists.js'
import { loadPolicy } from './policy.js'
import { Ruleset } from '../classify/ruleset.js'

/** The package's own directory (two levels above dist/src/config or src/config). */
const here = dirname(fileURLToPath(import.meta.url))
export const PACKAGE_ROOT = here.includes(`${join('dist', 'src')}`) ? join(here, '..', '..', '..') : join(here, '..', '..')
export const DEFAULT_RULES_DIR = join(PACKAGE_ROOT, 'rules', 'vendors')
export const DEFAULT_POLICY = join(PACKAGE_ROOT, 'rules', 'policy.example.yaml')

/** Read, validate and compile rules and policy; throws ConfigError with every problem. */
export function loadRuleset (rulesDir: string = DEFAULT_RULES_DIR, policyFile: string = DEFAULT_POLICY, strict = false): Ruleset {
  const lists = loadLists(rulesDir, strict)
  const policy = loadPolicy(policyFile, {
    vendors: new Set(lists.map((l) => l.vendor)),
    categories: new Set(lists.map((l) => l.category)),
  })
  return new Ruleset(lists, policy)
}
