import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Classifier } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { DecisionLog, LogClock, MemoryLines } from '../../../src/log/index.js'
import { classifyFile } from '../../../src/source/classify-file.js'
import { expected, FIXTURES } from '../../helpers/fixtures.js'
import { eth, pcapOf, tcp4 } from '../../helpers/packets.js'

/**
 * Issue 14: "a hello cut into 10-byte segments logged 8 lines with an empty
 * name". Every captured hello, cut into 10-byte segments (with and without
 * the SYN, in order and reversed), replayed as `aigate classify` does: one
 * line, naming the hello's server name.
 */
const exp = expected()
const dir = mkdtempSync(join(tmpdir(), 'aigate-one-line-'))

t.test('a hello cut into 10-byte segments: one line, with its name', async (t) => {
  const hellos = readdirSync(join(FIXTURES, 'tls')).filter((f) => f.endsWith('.bin') && !/-seg\d+\.bin$/.test(f))
  for (const f of hellos) {
    const hello = readFileSync(join(FIXTURES, 'tls', f))
    const sni = exp[`tls/${f}`]?.sni
    for (const syn of [true, false]) {
      for (const reversed of [false, true]) {
        const tu = { src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 443 }
        const segs: Buffer[] = []
        for (let o = 0; o < hello.length; o += 10) segs.push(eth(tcp4(tu, 1000 + o, hello.subarray(o, o + 10), 0x18, 64, 1)))
        if (reversed) segs.reverse()
        const file = join(dir, 'cut.pcap')
        writeFileSync(file, pcapOf([...(syn ? [eth(tcp4(tu, 999, Buffer.alloc(0), 0x02))] : []), ...segs]))
        const mem = new MemoryLines()
        await classifyFile(file, new Classifier(loadRuleset()), new DecisionLog(mem, new LogClock(), { name: 'cut.pcap' }))
        mem.flush()
        const ls = mem.parsed() as Array<Record<string, any>>
        const what = `${f}, ${segs.length} segments${syn ? ', SYN' : ''}${reversed ? ', reversed' : ''}`
        if (reversed && !syn && ls.length === 0) { t.pass(`${what}: never starts (no SYN, its first piece comes last): no line`); continue }
        const l = ls.at(-1)
        if (reversed && !syn && ls.length === 2) {
          // Its tail read alone as a whole nameless hello (allowed, watched),
          // then the earlier pieces behind it are implausible: the decision
          // changes once, to evasion, and is logged once.
          t.same(ls.map((x) => `${x.aigate.reason as string}/${x.aigate.detail ?? '-'}`), ['unknown/-', 'evasion/implausible'], `${what}: unknown, then evasion once`)
          continue
        }
        t.ok(ls.length <= 1, `${what}: at most one line (${ls.length})`)
        if (l?.aigate.reason === 'evasion') t.same(l.aigate.detail, 'segments', `${what}: a reversed stream past the bound is evasion`)
        else t.equal(l?.destination?.domain, sni, `${what}: the line names ${String(sni)}`)
      }
    }
  }
})
