import t from 'tap'
import { parseSources, urlProblem } from '../../../src/update/sources.js'
import { ConfigError } from '../../../src/config/lists.js'

/** sources.yaml (issue 13, item 3): what is taken, and every refusal with its exact message at file:line. */

const H = 'ab'.repeat(32)
const C = '0123456789'.repeat(4)
const problems = (text: string): readonly string[] => {
  try {
    parseSources(text, 's.yaml')
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('each pin, the defaults, failsafe strings', async (t) => {
  const s = parseSources([
    `- vendor: openai\n  url: https://example.org/rules/openai.txt\n  format: aigate\n  sha256: ${H.toUpperCase()}`,
    `- vendor: anthropic\n  url: https://raw.example/v2fly/domain-list-community/${C}/data/anthropic\n  format: v2fly\n  commit: ${C}\n  title: Anthropic (v2fly)`,
    '- vendor: acme\n  url: file:///srv/mirror/acme.hosts\n  follow: latest\n  category: ai-tools',
  ].join('\n') + '\n', 's.yaml')
  t.same(s.map((x) => [x.vendor, x.url.href, x.format, x.pin, x.category, x.title, x.line]), [
    ['openai', 'https://example.org/rules/openai.txt', 'aigate', { kind: 'sha256', sha256: H }, 'ai', 'openai', 1],
    ['anthropic', `https://raw.example/v2fly/domain-list-community/${C}/data/anthropic`, 'v2fly', { kind: 'commit', commit: C }, 'ai', 'Anthropic (v2fly)', 5],
    ['acme', 'file:///srv/mirror/acme.hosts', 'auto', { kind: 'latest' }, 'ai-tools', 'acme', 10],
  ])
  // A hash of digits only would be a number in YAML's core schema; failsafe keeps the text.
  t.equal((parseSources(`- vendor: a\n  url: https://x.example/a\n  sha256: ${'1'.repeat(64)}\n`, 's.yaml')[0]?.pin as { sha256: string }).sha256, '1'.repeat(64))
  t.equal((parseSources(`- vendor: a\n  url: https://x.example/a\n  sha256: sha256:${H}\n`, 's.yaml')[0]?.pin as { sha256: string }).sha256, H, 'a sha256: prefix is read')
})

t.test('refusals, each at its line', async (t) => {
  const one = (text: string, expected: string, why: string): void => { t.same(problems(text), [expected], why) }
  one('', 's.yaml:1: no sources: the file must be a list of sources (- vendor: ..., url: ...)', 'empty')
  one('vendor: a\n', 's.yaml:1: the file must be a list of sources (- vendor: ..., url: ...)', 'a mapping, not a list')
  one('- https://x.example/a\n', 's.yaml:1: a source must be a mapping (vendor:, url:, format:, and sha256:, commit: or follow:)', 'a bare URL')
  one('- vendor: a\n  url: https://x.example/a\n', 's.yaml:1: not pinned: give sha256: <hash of the file>, commit: <the git commit the URL names>, or follow: latest', 'no pin')
  one(`- vendor: a\n  url: https://x.example/a\n  sha256: ${H}\n  follow: latest\n`, 's.yaml:4: give one of sha256, commit, follow, not sha256 and follow', 'two pins')
  one('- vendor: a\n  url: https://x.example/a\n  sha256: abc\n', 's.yaml:3: sha256: "abc" is not 64 hex digits', 'short hash')
  one(`- vendor: a\n  url: https://x.example/main/a\n  commit: ${C}\n`, `s.yaml:3: commit: the URL does not name ${C} as a path segment, so it does not pin it`, 'a commit the URL does not name')
  one('- vendor: a\n  url: https://x.example/a\n  commit: main\n', 's.yaml:3: commit: "main" is not a full git commit (40 hex digits)', 'a branch is not a commit')
  one('- vendor: a\n  url: https://x.example/a\n  follow: main\n', 's.yaml:3: follow: "main" must be latest', 'follow what')
  one('- vendor: a\n  url: http://x.example/a\n  follow: latest\n', 's.yaml:2: url: "http://x.example/a": only https:// (or file:// for a local mirror); http is not', 'plain http')
  one('- vendor: a\n  url: https://u:p@x.example/a\n  follow: latest\n', 's.yaml:2: url: "https://x.example/a": no credentials in the URL', 'credentials (not repeated in the message)')
  one('- vendor: A_b\n  url: https://x.example/a\n  follow: latest\n', 's.yaml:1: vendor: "A_b" is not an id (lower case letters, digits and -, not starting with -)', 'vendor id')
  one('- url: https://x.example/a\n  follow: latest\n', 's.yaml:1: missing "vendor:" (the list\'s file name, e.g. openai)', 'no vendor')
  one('- vendor: a\n  url: https://x.example/a\n  follow: latest\n  format: csv\n', 's.yaml:4: format: "csv" is not one of aigate, plain, hosts, adblock, v2fly, auto', 'format')
  one('- vendor: a\n  url: https://x.example/a\n  follow: latest\n  mirror: x\n', 's.yaml:4: unknown key "mirror" (known: vendor, url, format, sha256, commit, follow, category, title)', 'unknown key')
  one('- vendor: a\n  url: https://x.example/a\n  follow: latest\n  title: [x]\n', 's.yaml:4: title: must be a non-empty text', 'a list where a text belongs')
  one('- vendor: a\n  url: https://x.example/a\n  follow: latest\n  format: aigate\n  title: A\n', 's.yaml:5: category: and title: are for converted lists; an aigate list carries its own headers', 'headers on an aigate list')
  one('- vendor: a\n  url: https://x.example/a\n  follow: latest\n- vendor: a\n  url: https://x.example/b\n  follow: latest\n', 's.yaml:4: vendor "a" is listed twice (first at line 1): one source per list', 'one source per list')
  one('- vendor: a\n  vendor: b\n', 's.yaml:2: Map keys must be unique', 'YAML errors keep their line')
  t.match(problems('x: ' + '['.repeat(40) + ']'.repeat(40) + '\n')[0], /^s\.yaml:1: nesting deeper than 16 levels/)
  t.equal(problems('- vendor: a\n- vendor: b\n  url: ftp://x\n').length, 4, 'every problem of every source at once')
})

t.test('urlProblem: https and file:///path only', async (t) => {
  t.type(urlProblem('https://x.example/a'), URL)
  t.type(urlProblem('file:///srv/a'), URL)
  t.equal(urlProblem('file://host/srv/a'), 'url: "file://host/srv/a": a file:// URL names a local path (file:///path)')
  t.equal(urlProblem('not a url'), 'url: "not a url" is not a URL')
})
