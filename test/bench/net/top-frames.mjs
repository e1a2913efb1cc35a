#!/usr/bin/env node
// Top self-time frames of node .cpuprofile files (from `npm run bench:net -- --cpu-prof DIR`):
//   node test/bench/net/top-frames.mjs DIR [N]
// One table per profile (each worker thread writes its own); idle time is left out.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const [dir, n = '15'] = process.argv.slice(2)
if (dir === undefined) { console.error('usage: top-frames.mjs DIR [N]'); process.exit(2) }
for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile')).sort()) {
  const p = JSON.parse(readFileSync(join(dir, f), 'utf8'))
  const byId = new Map(p.nodes.map((node) => [node.id, node]))
  const self = new Map()
  let busy = 0
  p.samples.forEach((id, i) => {
    const cf = byId.get(id).callFrame
    if (cf.functionName === '(idle)' || cf.functionName === '(program)') return
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + p.timeDeltas[i])
    busy += p.timeDeltas[i]
  })
  if (busy < 50000) continue // threads that did next to nothing (< 50 ms busy)
  console.log(`${f}: ${(busy / 1e6).toFixed(2)} s busy`)
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`  ${(v / busy * 100).toFixed(1).padStart(5)}%  ${k}`)
}
