import t from 'tap'
import { parsePolicy } from '../../../src/config/policy.js'
import { ConfigError } from '../../../src/config/lists.js'

/**
 * config/policy.ts: the policy file read into checked input for policy/;
 * every problem carries file:line.
 */
const known = { vendors: new Set(['anthropic', 'openai']), categories: new Set(['ai']) }

const problems = (yaml: string): string[] => {
  try {
    parsePolicy(yaml, 'p.yaml', known)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
}

t.test('errors carry file:line and name the problem', async (t) => {
  t.same(problems('default: alow\n'), ['p.yaml:1: default: "alow" is not an action (allow, monitor, block, reject)'])
  t.same(problems('default: allow\nvendors:\n  antropic: block\n'), ['p.yaml:3: unknown vendor "antropic" (known: anthropic, openai)'])
  t.same(problems('default: allow\ncolour: blue\n'), ['p.yaml:2: unknown key "colour" in the policy (allowed: default, unknown, evasion, vendors, categories, allow, networks)'])
  t.same(problems('default: allow\nnetworks:\n  - name: x\n    cidrs: [10.0.0.0/33]\n'), ['p.yaml:4: networks[0].cidrs: "10.0.0.0/33" is not a CIDR (10.0.0.0/8, fd00::/8)'])
  t.match(problems('vendors: {anthropic: block\n')[0], /^p\.yaml:\d+: /)
  t.same(problems('default: allow\nallow: ["bad name.com"]\n').length, 1)
  t.same(problems('- a\n- b\n'), ['p.yaml:1: the policy must be a mapping with "default", "vendors", "categories", "allow", "networks"'])
})

t.test('a policy file that starts with a UTF-8 byte order mark reads as without it', async (t) => {
  t.same(problems('\ufeffdefault: block\nvendors:\n  anthropic: allow\n'), [])
  t.equal(parsePolicy('\ufeffdefault: block\n', 'p.yaml', known).default, 'block')
  t.same(problems('\ufeffdefault: nope\n'), ['p.yaml:1: default: "nope" is not an action (allow, monitor, block, reject)'], 'lines count as in the editor')
})

t.test('a YAML error is reported at its own line', async (t) => {
  t.same(problems('default: allow\ndefault: block\n'), ['p.yaml:2: Map keys must be unique'])
  t.same(problems('vendors:\n  openai: allow\n  anthropic: block\n  openai: block\n'), ['p.yaml:4: Map keys must be unique'])
})
