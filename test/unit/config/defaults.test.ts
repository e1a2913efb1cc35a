import t from 'tap'
import { join } from 'node:path'
import { DEFAULT_POLICY, DEFAULT_RULES_DIR, ETC_DIR, defaultPaths, etcRoot } from '../../../src/config/index.js'

/** Which rules the commands load when none are named (issue 13, item 2). */

t.test('AIGATE_ETC stands for /etc/aigate; unset or empty it is /etc/aigate', async (t) => {
  t.equal(etcRoot({}), ETC_DIR)
  t.equal(etcRoot({ AIGATE_ETC: '' }), ETC_DIR)
  t.equal(etcRoot({ AIGATE_ETC: '/tmp/x' }), '/tmp/x')
})

t.test('a root with policy.yaml is an install: its rules and policy win', async (t) => {
  const root = t.testdir({ 'policy.yaml': 'default: allow\n', rules: {} })
  t.same(defaultPaths(root), { rulesDir: join(root, 'rules'), policyFile: join(root, 'policy.yaml'), sourcesFile: join(root, 'sources.yaml'), installed: true })
})

t.test('a root without policy.yaml (a checkout): the shipped files, even when it has rules/', async (t) => {
  const root = t.testdir({ rules: { 'a.txt': '' } })
  t.same(defaultPaths(root), { rulesDir: DEFAULT_RULES_DIR, policyFile: DEFAULT_POLICY, sourcesFile: join(root, 'sources.yaml'), installed: false })
  t.equal(defaultPaths(join(root, 'missing')).installed, false)
})
