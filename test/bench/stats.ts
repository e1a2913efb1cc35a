/** Small helpers for benchmarks: repeat, median, min, max. */
export interface Sample { median: number, min: number, max: number, runs: number }

export function summarize (xs: number[]): Sample {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  return { median, min: s[0] as number, max: s[s.length - 1] as number, runs: s.length }
}

/** Operations per second of `fn(n)` (which performs n operations), over `runs` repetitions. */
export function opsPerSec (n: number, runs: number, fn: (n: number) => void): Sample {
  fn(Math.min(n, 1000)) // warm up
  const rates: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    fn(n)
    const ns = Number(process.hrtime.bigint() - t0)
    rates.push(n / (ns / 1e9))
  }
  return summarize(rates)
}

export function fmt (x: number): string {
  if (x >= 1e6) return (x / 1e6).toFixed(2) + 'M'
  if (x >= 1e3) return (x / 1e3).toFixed(1) + 'k'
  return x.toFixed(1)
}
