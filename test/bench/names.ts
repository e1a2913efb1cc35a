/**
 * Memory under a flood of unique names: 1,000,000 random names through the
 * decision path (cache miss, trie, policy, cache insert). The cache holds at
 * most its configured entries, so RSS stays at the start-up size plus the
 * cache budget, whatever the number of names.
 */
import { Classifier } from '../../src/classify/index.js'
import { loadRuleset } from '../../src/config/index.js'
import type { Name } from '../../src/name/index.js'
import { fmt } from './stats.js'

export function runNameFlood (say: (s: string) => void, results: Record<string, unknown>, quick: boolean): void {
  const cacheSize = 65536
  const c = new Classifier(loadRuleset(), cacheSize)
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const rss0 = process.memoryUsage().rss
  const N = quick ? 200000 : 1000000
  const t0 = process.hrtime.bigint()
  let seed = 12345
  let rssMid = 0
  let rssHalf = 0
  let heapMid = 0
  for (let i = 0; i < N; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    const name = `h${seed.toString(36)}${i.toString(36)}.example${i & 7}.com` as Name
    c.decide(name, 0)
    if (i === N / 10) { gc?.(); rssMid = process.memoryUsage().rss; heapMid = process.memoryUsage().heapUsed }
    if (i === N / 2) { gc?.(); rssHalf = process.memoryUsage().rss }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  gc?.()
  const rss1 = process.memoryUsage().rss
  const heap1 = process.memoryUsage().heapUsed
  say(`\n## Memory: ${N} unique random names through the decision path (cache max ${cacheSize})`)
  say(`${fmt(N / secs)} names/s; cache ${c.cache.size}/${c.cache.max}; RSS ${(rss0 / 1048576).toFixed(0)} MB before, ` +
    `${(rssMid / 1048576).toFixed(0)} MB after 10%, ${(rssHalf / 1048576).toFixed(0)} MB after 50%, ${(rss1 / 1048576).toFixed(0)} MB after all; ` +
    `JS heap in use ${(heapMid / 1048576).toFixed(0)} MB after 10%, ${(heap1 / 1048576).toFixed(0)} MB after all`)
  results.nameFlood = { names: N, cacheSize: c.cache.size, cacheMax: c.cache.max, rssBeforeMB: rss0 / 1048576, rssAt10pctMB: rssMid / 1048576, rssAt50pctMB: rssHalf / 1048576, rssAfterMB: rss1 / 1048576, heapAt10pctMB: heapMid / 1048576, heapAfterMB: heap1 / 1048576 }
}
