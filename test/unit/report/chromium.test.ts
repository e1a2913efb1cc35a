import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { COLOURS } from '../../../src/report/html.js'
import { decodePng } from './png.js'
import { fixtureLog, report } from './log.js'

/**
 * The HTML report of a log made from the fixture captures renders in
 * headless Chromium (issue 14, "What must hold"): a screenshot is taken and
 * must be a real page, not a blank one: many colours, the chart colours
 * present over whole bars, text (dark pixels) on it.
 *
 * Chromium runs as the tests do (root in CI): --no-sandbox, its own profile
 * directory, no GPU. The page makes no request (its CSP says default-src
 * 'none'), so no network is needed. The screenshot is kept when
 * AIGATE_REPORT_SCREENSHOT names a directory; else it goes with the
 * temporary directory.
 */

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

const WIDTH = 1200
const HEIGHT = 1600

t.test('the HTML report of the fixture log, screenshot by headless Chromium', { skip: has('chromium') ? false : 'needs chromium (Debian package chromium)' }, async (t) => {
  const log = fixtureLog()
  t.teardown(log.cleanup)
  const keep = process.env.AIGATE_REPORT_SCREENSHOT
  const dir = keep !== undefined && keep !== '' ? keep : log.dir
  mkdirSync(dir, { recursive: true })
  const html = join(dir, 'report.html')
  const png = join(dir, 'report.png')
  const r = report(['--html', html, log.path])
  t.equal(r.status, 0, `aigate report exit 0 ${r.stderr}`)

  const c = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run',
    `--user-data-dir=${join(log.dir, 'chromium-profile')}`, `--screenshot=${png}`, `--window-size=${WIDTH},${HEIGHT}`,
    pathToFileURL(html).href], { encoding: 'utf8', timeout: 90_000 })
  t.equal(c.status, 0, `chromium exit 0 ${c.status === 0 ? '' : c.stderr.slice(-500)}`)
  t.ok(existsSync(png), `screenshot written: ${png}`)
  if (!existsSync(png)) return
  t.ok(statSync(png).size > 30_000, `${statSync(png).size} bytes (a blank page is a few kB)`)

  const img = decodePng(readFileSync(png))
  t.same([img.width, img.height], [WIDTH, HEIGHT], 'the window size')
  const counts = new Map<number, number>()
  let dark = 0
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const p = img.pixel(x, y)
      counts.set(p, (counts.get(p) ?? 0) + 1)
      if (((p >> 16) & 0xff) + ((p >> 8) & 0xff) + (p & 0xff) < 3 * 80) dark++
    }
  }
  t.ok(counts.size > 200, `${counts.size} distinct colours (text is antialiased; a blank page has one)`)
  const background = Math.max(...counts.values())
  t.ok(background < 0.8 * WIDTH * HEIGHT, `no colour covers most of the page (the most common: ${(100 * background / (WIDTH * HEIGHT)).toFixed(0)}%)`)
  t.ok(dark > 5_000, `${dark} dark pixels: text was drawn`)
  const hex = (s: string): number => parseInt(s.slice(1), 16)
  // Bars are solid rectangles: thousands of pixels of exactly their colour.
  for (const [what, colour] of [['passed (blue) bars', COLOURS.passed], ['blocked (red) bars', COLOURS.blocked], ['evasion (purple) bars', COLOURS.evasion], ['other (grey) columns', COLOURS.other]] as const) {
    t.ok((counts.get(hex(colour)) ?? 0) > 500, `${what}: ${counts.get(hex(colour)) ?? 0} pixels of ${colour}`)
  }
  t.comment(`screenshot: ${png}`)
})
