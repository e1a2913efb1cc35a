import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadRuleset, DEFAULT_RULES_DIR } from '../../../src/config/index.js'
import { explain } from '../../../src/rules/explain.js'
import { parseCidr } from '../../../src/policy/index.js'

/** `aigate check --explain NAME --from ADDR`: what matched, which network applied, which rule won and why. */
const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))
const aigate = (...args: string[]): { status: number | null, stdout: string, stderr: string } => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
const POLICY = `default: allow
vendors:
  anthropic: block
categories:
  ai: monitor
allow:
  - status.anthropic.com
networks:
  - name: research
    cidrs: [10.20.0.0/16, "fd00:20::/32"]
    vendors:
      openai: allow
    default: block
`

t.test('explain: a network vendor action beats the global ones; a network default does not beat a global vendor', async (t) => {
  const dir = t.testdir({ 'policy.yaml': POLICY })
  const r = aigate('check', '--explain', '--policy', join(dir, 'policy.yaml'), '--from', '10.20.3.4', 'api.openai.com', 'api.anthropic.com', 'status.anthropic.com')
  t.equal(r.status, 0, r.stderr)
  const out = r.stdout
  t.match(out, /^api\.openai\.com\n {2}from: 10\.20\.3\.4: network "research" \(networks\[0\], 10\.20\.0\.0\/16; the first network that holds the address\)\n/)
  t.match(out, /\* openai\.com {2}\(vendor openai, category ai; .*openai\.txt:\d+\) {2}the only entry that matches\n/)
  t.match(out, / {4}\* networks\[research\]\.vendors\.openai: allow\n {6}networks\[research\]\.categories\.ai: not set\n {6}vendors\.openai: not set\n {6}categories\.ai: monitor\n {6}networks\[research\]\.default: block\n {6}default: allow\n {2}decision: allow \(reason vendor, network research, rule openai\.com at /)
  t.match(out, /api\.anthropic\.com\n[^]*? {4}\* vendors\.anthropic: block\n[^]*?decision: block \(reason vendor, rule anthropic\.com/)
  t.match(out, /status\.anthropic\.com\n[^]*?\* status\.anthropic\.com {2}\(allow-exception; .*policy\.yaml\) {2}won: an allow-exception beats every list entry\n {6}anthropic\.com .* lost: the allow-exception "status\.anthropic\.com" beats every list entry\n {2}policy: an allow-exception is allowed before any other step\n {2}decision: allow \(reason exception/)
})

t.test('explain --json: one object per name', async (t) => {
  const dir = t.testdir({ 'policy.yaml': POLICY })
  const r = aigate('check', '--explain', '--json', '--policy', join(dir, 'policy.yaml'), '--from', 'fd00:20::9', 'www.bbc.com')
  t.equal(r.status, 0, r.stderr)
  const x = JSON.parse(r.stdout)
  t.same(x.network, { name: 'research', index: 0, cidr: 'fd00:20::/32' })
  t.same(x.matched, [])
  t.same(x.steps, [{ step: 'networks[research].default', action: 'block', used: true }, { step: 'default', action: 'allow', used: false }])
  t.equal(x.decision.action, 'block')
})

t.test('--from is parsed as strictly as the policy: 10.020.0.1 is refused', async (t) => {
  const r = aigate('check', '--from', '10.020.0.1', 'a.example')
  t.equal(r.status, 2)
  t.match(r.stderr, /--from: "10\.020\.0\.1" is not an IP address \(.*leading zero/)
  t.equal(aigate('check', '--from', '10.20.0.0/16', 'a.example').status, 2, 'a network is not an address')
})

t.test('the step explain marks is the one the daemon applies, for every name and address tried', async (t) => {
  const dir = t.testdir({ 'policy.yaml': POLICY })
  const rs = loadRuleset(DEFAULT_RULES_DIR, join(dir, 'policy.yaml'))
  const addr = (s: string): { text: string, v: 4 | 6, bytes: Uint8Array } => {
    const c = parseCidr(s)
    if (c === null) throw new Error(s)
    if (c.v === 6) return { text: s, v: 6, bytes: c.range.bytes }
    const b = c.range.base
    return { text: s, v: 4, bytes: new Uint8Array([b >>> 24, (b >>> 16) & 255, (b >>> 8) & 255, b & 255]) }
  }
  for (const from of [null, addr('10.20.3.4'), addr('192.0.2.1'), addr('fd00:20::1')]) {
    for (const name of ['api.openai.com', 'chatgpt.com', 'api.anthropic.com', 'status.anthropic.com', 'www.bbc.com', 'us-central1-aiplatform.googleapis.com', 'x.hf.space']) {
      const x = explain(rs, name, from)
      const used = x.steps.filter((s) => s.used)
      if (x.decision.reason === 'exception') {
        t.equal(used.length, 0, `${name}: an exception uses no step`)
        t.ok(x.matched[0]?.won === true && x.matched[0].exception, `${name}: the exception is listed first and won`)
      } else {
        t.equal(used.length, 1, `${name} from ${from?.text ?? '-'}: one step applies`)
        t.equal(used[0]?.action, x.decision.action, `${name} from ${from?.text ?? '-'}: ${used[0]?.step} gives ${x.decision.action}`)
      }
      const won = x.matched.filter((m) => m.won)
      t.equal(won.length, x.decision.rule === null ? 0 : 1, `${name}: at most one winner`)
      if (won.length === 1) t.equal(won[0]?.rule, x.decision.rule, `${name}: the winner is the decision's rule`)
    }
  }
})
