import t from 'tap'
import { DecisionCache, DEFAULT_CACHE_SIZE } from '../../../src/cache/index.js'
import { Policy } from '../../../src/policy/index.js'

/**
 * cache/index.ts: recent decisions by key, a fixed number of entries, hits
 * and misses counted. The classifier's use of it is tested through classify/
 * and rules/; this is the cache on its own.
 */
const policy = new Policy({ default: 'allow', vendors: new Map(), categories: new Map(), allow: [], networks: [], file: 'test' })
const allow = policy.decide(null, 0)

t.test('a size that is not a positive integer is refused, with the message', async (t) => {
  for (const bad of [0, -1, 1.5, NaN]) {
    t.throws(() => new DecisionCache(bad), { name: 'TypeError', message: 'cache size must be a positive integer' }, String(bad))
  }
  t.equal(new DecisionCache().max, DEFAULT_CACHE_SIZE)
})

t.test('bounded by max: the least recently used key goes; hits and misses are counted', async (t) => {
  const c = new DecisionCache(2)
  t.equal(c.get('a'), undefined)
  c.set('a', allow)
  c.set('b', allow)
  t.equal(c.get('a'), allow, 'a is now the most recent')
  c.set('c', allow)
  t.equal(c.size, 2)
  t.equal(c.get('b'), undefined, 'b was the least recently used')
  t.equal(c.get('c'), allow)
  t.same({ hits: c.hits, misses: c.misses }, { hits: 2, misses: 2 })
  c.clear()
  t.equal(c.size, 0)
})
