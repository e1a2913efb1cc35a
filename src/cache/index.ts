import { LRUCache } from 'lru-cache'
import type { Decision } from '../policy/index.js'

/**
 * Recent decisions by name (and source class when the policy has network
 * exceptions). A fixed number of entries, whatever the traffic: memory is
 * bounded by construction (lru-cache preallocates its arrays to `max`).
 */
export const DEFAULT_CACHE_SIZE = 65536

export class DecisionCache {
  readonly #lru: LRUCache<string, Decision>
  hits = 0
  misses = 0

  constructor (max: number = DEFAULT_CACHE_SIZE) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError('cache size must be a positive integer')
    this.#lru = new LRUCache<string, Decision>({ max })
  }

  get max (): number { return this.#lru.max }
  get size (): number { return this.#lru.size }

  get (key: string): Decision | undefined {
    const d = this.#lru.get(key)
    if (d === undefined) this.misses++; else this.hits++
    return d
  }

  set (key: string, d: Decision): void { this.#lru.set(key, d) }

  clear (): void { this.#lru.clear() }
}
