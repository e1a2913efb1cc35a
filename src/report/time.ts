/**
 * Times on the command line (`--since`, `--until`): an ISO 8601 date or time
 * (`2026-11-25`, `2026-11-25T21:00Z`, `2026-11-25T21:00:00+01:00`; without a
 * zone, local time, as Date.parse reads it) or an age: a number and a unit,
 * s m h d w (`90m`, `24h`, `7d`), meaning that long before now.
 */

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const AGE = /^(\d+(?:\.\d+)?)([smhdw])$/
const ISO = /^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?$/i

/** Milliseconds since the epoch, or a message saying what is wrong. */
export function parseWhen (text: string, now: number): number | string {
  const t = text.trim()
  const age = AGE.exec(t)
  if (age !== null) return now - Number(age[1]) * (UNIT_MS[age[2] as string] as number)
  if (t === 'now') return now
  if (ISO.test(t)) {
    const ms = Date.parse(t.replace(' ', 'T'))
    if (!Number.isNaN(ms)) return ms
  }
  return `"${text}" is not a time: give an ISO 8601 time (2026-11-25T21:00Z) or an age (24h, 7d)`
}
