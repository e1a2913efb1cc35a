import t from 'tap'
import { adblockRule, detectFormat, importList } from '../../../src/config/import.js'

/** config/import.ts: adblock modifiers and AdGuard forms read or refused with a reason; the format told from the content. */

t.test('adblock: $important and $all are read; ||*.x^ is *.x', async (t) => {
  t.same(adblockRule('||openai.com^$important'), { entry: 'openai.com', exception: false })
  t.same(adblockRule('||openai.com^$all'), { entry: 'openai.com', exception: false })
  t.same(adblockRule('||*.openai.com^'), { entry: '*.openai.com', exception: false }, 'AdGuard: the subdomains, not the name itself')
  t.same(adblockRule('@@||help.openai.com^$important'), { entry: 'help.openai.com', exception: true })
  t.equal(adblockRule('! comment'), null)
  t.equal(adblockRule('[Adblock Plus 2.0]'), null)
  t.equal(adblockRule('# AdGuard DNS comment'), null)
})

t.test('adblock: each modifier that narrows a rule is refused with its reason', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['||openai.com^$third-party', /^modifier \$third-party: the rule depends on whether the request is first- or third-party/],
    ['||openai.com^$3p', /^modifier \$3p: .*first- or third-party/],
    ['||openai.com^$~third-party', /^modifier \$~third-party: .*first- or third-party/],
    ['||openai.com^$script', /^modifier \$script: the rule applies to some request types only/],
    ['||openai.com^$important,document', /^modifier \$document: /],
    ['||openai.com^$domain=example.com', /^modifier \$domain=example\.com: the rule applies on some pages only/],
    ['||openai.com^$denyallow=a.com', /^modifier \$denyallow=a\.com: the rule excepts/],
    ['||openai.com^$badfilter', /^modifier \$badfilter: the rule disables another rule/],
    ['||openai.com^$client=10.0.0.1', /^modifier \$client=10\.0\.0\.1: an AdGuard Home client or DNS answer rule/],
    ['||openai.com^$dnsrewrite=1.2.3.4', /^modifier \$dnsrewrite=1\.2\.3\.4: an AdGuard Home/],
    ['||openai.com^$redirect=noopjs', /^modifier \$redirect=noopjs: not a plain block/],
  ]
  for (const [rule, reason] of cases) {
    const r = adblockRule(rule)
    t.ok(r !== null && 'reason' in r && reason.test(r.reason), `${rule}: ${JSON.stringify(r)}`)
  }
})

t.test('adblock: forms with no name-level equivalent are refused with their reason', async (t) => {
  const cases: Array<[string, string]> = [
    ['||openai.com', 'no ^ after the name: the rule also matches names that only begin with it (example.com matches example.com.evil.example)'],
    ['||openai.com^|', 'the rule ends with |: it matches only URLs that end there'],
    ['||openai.com/v1^', 'the rule has a path: aigate sees names, never URLs'],
    ['openai.com', 'not anchored with ||: the rule matches inside URLs, not a name'],
    ['|https://openai.com^', 'not anchored with ||: the rule matches inside URLs, not a name'],
    ['/openai\\.com/', 'a regular expression: no exact equivalent for a name'],
    ['openai.com##.banner', 'a cosmetic (element hiding) rule: aigate sees names, not pages'],
    ['||ads*.openai.com^', 'a wildcard inside the name: no exact equivalent'],
  ]
  for (const [rule, reason] of cases) t.same(adblockRule(rule), { reason }, rule)
})

t.test('adblock: an entry that passes the syntax still gets the list check (public suffix) with file:line', async (t) => {
  const r = importList('||com^\n||*.co.uk^\n||github.io^\n||openai.com^\n', 'adblock', { file: 'ab.txt' })
  t.same(r.entries, ['openai.com'])
  t.same(r.skipped.map((s) => `${s.file}:${s.line}`), ['ab.txt:1', 'ab.txt:2', 'ab.txt:3'])
  t.match(r.skipped[0]?.reason, /"com" is a public suffix/)
})

t.test('hosts: a line with no address in front is skipped with the reason, not dropped silently', async (t) => {
  const r = importList('0.0.0.0 api.openai.com\nchatgpt.com\n', 'hosts', { file: 'h' })
  t.same(r.entries, ['=api.openai.com'])
  t.same(r.skipped.map((s) => [s.line, s.reason]), [[2, 'not an address followed by names']])
})

t.test('the format is told from the content', async (t) => {
  t.same(detectFormat('! Title: x\n||openai.com^\n'), { format: 'adblock' })
  t.same(detectFormat('# list\nfull:api.openai.com\nopenai.com\n'), { format: 'v2fly' })
  t.same(detectFormat('openai.com @cn\n'), { format: 'v2fly' })
  t.same(detectFormat('0.0.0.0 api.openai.com\n::1 localhost\n'), { format: 'hosts' })
  t.same(detectFormat('# names\nopenai.com\nclaude.ai\n'), { format: 'plain' })
  t.same(detectFormat('||openai.com^\n0.0.0.0 claude.ai\n'), { error: 'cannot tell the format from the content (adblock at line 1, hosts at line 2); give --format' })
})
