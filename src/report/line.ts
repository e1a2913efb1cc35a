/**
 * One decision-log line read back: the few fields a report needs, taken from
 * the JSON the daemon (or `aigate classify`) wrote. Both shapes of the line
 * are read:
 *
 * - the name is `destination.domain` (ECS-clean lines, issue 14 item 1) and,
 *   when that is absent, the root `name` of older lines;
 * - a field may be nested (`{"event":{"action":..}}`, what our encoder
 *   writes) or dotted (`{"event.action":..}`, what pino and some shippers
 *   write); nested wins.
 *
 * A line may stand for several decisions: an aggregated line (issue 14 item
 * 2) carries its count in `aigate.count` (read first) or `event.count`; a
 * line without either counts once. Anything else about a line that cannot be
 * read is a reason (BadLine), never an exception.
 */

export const ACTIONS = ['allow', 'monitor', 'block', 'reject'] as const
export type Action = typeof ACTIONS[number]

/** event.dataset of decision lines; `aigate.daemon` lines are the daemon's own events. */
export const DECISION_DATASET = 'aigate.decision'
export const DAEMON_DATASET = 'aigate.daemon'

/** Why a line was not counted as a decision. */
export type BadLine = 'not JSON' | 'not an object' | 'no event.action' | 'unknown event.action' | 'no @timestamp' | 'bad @timestamp' | 'bad count'

export type LineKind = 'decision' | 'daemon' | 'other' | 'bad'

/** The fields of one decision, filled in place (one object reused for every line). */
export class DecisionFields {
  /** Milliseconds since the epoch, from `@timestamp`. */
  ms = 0
  action: Action = 'allow'
  /** `aigate.vendor`, null when the name matched no vendor list. */
  vendor: string | null = null
  /** `aigate.reason`: vendor, category, exception, default, unknown, midstream, quic-version, evasion, ... */
  reason: string | null = null
  /** `aigate.detail`, what an evasive flow did. */
  detail: string | null = null
  /** `destination.domain ?? name`. */
  name: string | null = null
  /** `source.ip`. */
  source: string | null = null
  /** `aigate.seen`: sni, quic, dns, http, ech. */
  seen: string | null = null
  /** How many decisions the line stands for (`aigate.count ?? event.count ?? 1`). */
  count = 1
  /** For `other` lines: their event.dataset (or '(none)'). For `bad` lines: the reason. */
  note = ''
}

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `o.a.b`, or `o["a.b"]` when the nested form is absent. */
function get (o: Obj, a: string, b: string, dotted: string): unknown {
  const inner = o[a]
  if (isObj(inner) && inner[b] !== undefined) return inner[b]
  return o[dotted]
}

const str = (v: unknown): string | null => typeof v === 'string' ? v : null

const ACTION_SET: ReadonlySet<string> = new Set(ACTIONS)

/** A count: a positive safe integer. Aggregated lines count many decisions; 0, fractions and strings are not counts. */
function countOf (o: Obj): number | undefined {
  const c = get(o, 'aigate', 'count', 'aigate.count') ?? get(o, 'event', 'count', 'event.count')
  if (c === undefined || c === null) return 1
  return typeof c === 'number' && Number.isSafeInteger(c) && c >= 1 ? c : undefined
}

/** Lines of one burst share a millisecond; Date.parse once per distinct stamp. */
let lastStamp = ''
let lastMs = Number.NaN

function msOf (stamp: string): number {
  if (stamp !== lastStamp) {
    lastStamp = stamp
    // Date.parse takes many shapes; a log stamp is ISO 8601 with a date first.
    lastMs = /^\d{4}-\d\d-\d\d/.test(stamp) ? Date.parse(stamp) : Number.NaN
  }
  return lastMs
}

/**
 * Read one line into `out`; returns what the line is. `decision` lines have
 * every field of `out` set; `other` and `bad` lines set `out.note`.
 */
export function readLine (text: string, out: DecisionFields): LineKind {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    out.note = 'not JSON'
    return 'bad'
  }
  if (!isObj(v)) { out.note = 'not an object'; return 'bad' }
  const dataset = get(v, 'event', 'dataset', 'event.dataset')
  if (dataset === DAEMON_DATASET) return 'daemon'
  if (dataset !== DECISION_DATASET) {
    out.note = typeof dataset === 'string' ? dataset : '(none)'
    return 'other'
  }
  const action = get(v, 'event', 'action', 'event.action')
  if (typeof action !== 'string') { out.note = 'no event.action'; return 'bad' }
  if (!ACTION_SET.has(action)) { out.note = 'unknown event.action'; return 'bad' }
  const stamp = v['@timestamp']
  if (typeof stamp !== 'string') { out.note = 'no @timestamp'; return 'bad' }
  const ms = msOf(stamp)
  if (Number.isNaN(ms)) { out.note = 'bad @timestamp'; return 'bad' }
  const count = countOf(v)
  if (count === undefined) { out.note = 'bad count'; return 'bad' }
  out.ms = ms
  out.action = action as Action
  out.count = count
  out.vendor = str(get(v, 'aigate', 'vendor', 'aigate.vendor'))
  out.reason = str(get(v, 'aigate', 'reason', 'aigate.reason'))
  out.detail = str(get(v, 'aigate', 'detail', 'aigate.detail'))
  out.seen = str(get(v, 'aigate', 'seen', 'aigate.seen'))
  out.source = str(get(v, 'source', 'ip', 'source.ip'))
  out.name = str(get(v, 'destination', 'domain', 'destination.domain')) ?? str(v.name)
  return 'decision'
}
