import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildReport, renderHtml, renderText } from '../../../src/report/index.js'
import { esc } from '../../../src/report/html.js'
import { fixtureLog, report } from './log.js'

/**
 * Names, vendors, addresses and reasons in a log are data, and a log line can
 * say anything: a hostile one must not become markup in the HTML page or
 * control sequences on the terminal. And the page stands alone: no script,
 * no request for anything.
 */

const log = fixtureLog()
t.teardown(log.cleanup)

const HOSTILE = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(2)>',
  "' onmouseover='alert(3)",
  '</style><link rel=stylesheet href=//evil.example/x.css>',
  '<svg onload=alert(4)>',
  'a&amp;b',
  '\u202egnp.exe',
  '\u001b[2J\u001b]0;owned\u0007',
]

function hostileLines (): string {
  const base = JSON.parse(log.lines[0] as string)
  return HOSTILE.map((h, i) => {
    const o = structuredClone(base)
    o.name = h
    o.aigate.vendor = h
    o.aigate.reason = i % 2 === 0 ? 'evasion' : h
    o.aigate.detail = h
    o.aigate.seen = h
    o.event.action = 'block'
    o.source.ip = h
    return JSON.stringify(o)
  }).join('\n') + '\n' + JSON.stringify({ event: { dataset: HOSTILE[0] } }) + '\n'
}

t.test('esc: entities for markup characters, \\u for invisible ones', async (t) => {
  t.equal(esc('<script>&"\''), '&lt;script&gt;&amp;&quot;&#39;')
  t.equal(esc('a\u202eb\u0000c\u2066'), 'a\\u202eb\\u0000c\\u2066')
  t.equal(esc('api.openai.com'), 'api.openai.com')
})

t.test('a hostile log: the HTML has none of it as markup, all of it as text', async (t) => {
  const file = join(log.dir, 'hostile.log')
  writeFileSync(file, log.text + hostileLines())
  const r = await buildReport([file], { since: null, until: null, top: 20 })
  t.equal(r.vendors.length, 5 + HOSTILE.length, 'the hostile vendors are counted like any other')
  const html = renderHtml(r, { generator: 'aigate <test>' })
  // The only elements are the ones the renderer writes.
  const tags = new Set([...html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)/g)].map((m) => (m[1] as string).toLowerCase()))
  t.same([...tags].sort(), ['b', 'body', 'code', 'div', 'footer', 'g', 'h1', 'h2', 'h3', 'head', 'html', 'i', 'line', 'main', 'meta', 'p', 'rect', 'section', 'span', 'style', 'svg', 'table', 'tbody', 'td', 'text', 'th', 'thead', 'title', 'tr', 'tspan'].sort(), 'no script, img, link, or any element from the log')
  // Every tag is well formed (name, then name="value" attributes): a quote from the log cannot close a value.
  const opened = (html.match(/<[a-zA-Z]/g) ?? []).length
  const wellFormed = [...html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)((?:\s+[a-zA-Z][a-zA-Z0-9-]*="[^"<>]*")*)\s*\/?>/g)]
  t.equal(wellFormed.length, opened, 'every tag well formed')
  const attrs = new Set(wellFormed.flatMap((m) => [...(m[2] as string).matchAll(/\s+([a-zA-Z][a-zA-Z0-9-]*)="[^"]*"/g)].map((a) => a[1] as string)))
  t.same([...attrs].filter((a) => /^on|^href$|^src$|^xlink/i.test(a)), [], `no handler, link or source among the attributes (${[...attrs].join(' ')})`)
  t.notMatch(html, /\u202e|\u001b|\u0007/, 'no bidi override or control character')
  t.equal((html.match(/<\/style>/g) ?? []).length, 1, 'the style element is closed once, by the renderer')
  t.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the name shown as text')
  t.ok(html.includes('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;'), 'quotes escaped too (attributes)')
  t.ok(html.includes('a&amp;amp;b'), 'an ampersand escaped once more')
  t.ok(html.includes('\\u202egnp.exe'), 'the override shown as \\u202e')
  t.ok(html.includes('aigate &lt;test&gt;'), 'the generator escaped')
  t.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/, 'the browser is told: nothing to fetch, nothing to run')
  t.notMatch(html, /https?:|url\(|@import/i, 'no URL anywhere')

  const text = renderText(r)
  t.notMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\uffff]/, 'terminal text: printable ASCII and newlines only')
  t.ok(text.includes('\\u001b[2J\\u001b]0;owned\\u0007'), 'escape sequences shown, not sent')
  const rows = text.split('\n')
  const header = rows.find((l) => l.startsWith('vendor ') && l.includes('top names')) as string
  const col = header.indexOf('decisions')
  t.ok(rows.filter((l) => l.includes('<script>')).length > 0, 'the hostile vendor has its row')
  for (const l of rows.slice(rows.indexOf(header) + 1, rows.indexOf(header) + 1 + r.vendors.length)) {
    t.match(l.slice(0, col + 'decisions'.length + 1), /\d $/, `the decisions column ends where its header does: ${l.slice(0, 30)}`)
  }
})

t.test('the page from the CLI is one file, and an empty log still makes a page', async (t) => {
  const empty = join(log.dir, 'empty.log')
  writeFileSync(empty, '')
  const out = join(log.dir, 'empty.html')
  const r = report(['--html', out, empty])
  t.equal(r.status, 0)
  t.match(r.stderr, /wrote .*empty\.html/)
  const html = readFileSync(out, 'utf8')
  t.match(html, /^<!DOCTYPE html>/)
  t.match(html, /No decision named an AI vendor/)
  t.match(r.stdout, /0 decision lines/)
})
