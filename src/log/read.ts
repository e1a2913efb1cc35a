import { ACTIONS, type Action } from '../policy/index.js'

/**
 * One line of the decision log read back, for `aigate logs` (what a person
 * reads) and `aigate report` (what it counts): the one reader of the lines
 * index.ts writes and of the daemon's own events (daemonLogger). Both shapes
 * of the line are read:
 *
 * - the name is `destination.domain` (ECS-clean lines, issue 14 item 1) or,
 *   when that is absent, the root `name` of older lines;
 * - a field may be nested (`{"event":{"action":..}}`, what our encoder
 *   writes) or dotted (`{"event.action":..}`, what pino and some shippers
 *   write); nested wins.
 *
 * A line may stand for several decisions: an aggregated line (issue 14 item
 * 2) carries its count in `aigate.count` (read first) or `event.count`; a
 * line without either counts once.
 *
 * Everything here is data from a file: values are kept as they are (the
 * readers escape them for the terminal or the page), an optional field of
 * the wrong type reads as absent, and a line that cannot be read is a kind
 * with a reason (BadLine), never an exception.
 */

export { ACTIONS, type Action }

/** event.dataset of decision lines (index.ts); `aigate.daemon` lines are the daemon's own events (pino, daemonLogger). */
export const DECISION_DATASET = 'aigate.decision'
export const DAEMON_DATASET = 'aigate.daemon'

/** Why a line was not read as a decision or daemon line. */
export type BadLine = 'empty line' | 'not JSON' | 'not an object' | 'no @timestamp' | 'bad @timestamp' | 'no event.action' | 'unknown event.action' | 'bad count'

/** A log stamp is ISO 8601 with the date and time first; Date.parse alone accepts far more ("1", "May"). */
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d/

/** decision, daemon: lines of ours; other: JSON of another dataset; bad: unreadable (LogLine.note says why). */
export type LineKind = 'decision' | 'daemon' | 'other' | 'bad'

/** The fields of one line, filled in place: one LogLine is reused for every line. */
export class LogLine {
  /** Milliseconds since the epoch, from `@timestamp`. */
  ms = 0
  /** `event.action`: for decisions one of ACTIONS; for daemon lines what happened (start, reload, ...) or ''. */
  action = ''
  /** `log.level`. */
  level: string | null = null
  /** `message`. */
  message: string | null = null
  /** `aigate.vendor`, null when the name matched no vendor list. */
  vendor: string | null = null
  /** `destination.domain ?? name`. */
  name: string | null = null
  sourceIp: string | null = null
  sourcePort: number | null = null
  destIp: string | null = null
  destPort: number | null = null
  /** `aigate.seen`: sni, quic, dns, http, ech. */
  seen: string | null = null
  /** `aigate.reason`: vendor, category, exception, default, unknown, midstream, quic-version, evasion, ... */
  reason: string | null = null
  /** `aigate.detail`, what an evasive flow did. */
  detail: string | null = null
  /** `aigate.count ?? event.count`: how many decisions the line stands for; 1 when neither is there. */
  count = 1
  /** For `bad` lines the reason (a BadLine); for `other` lines their event.dataset or '(none)'. */
  note = ''
  // The last `@timestamp` read and its time: lines of one burst share a
  // millisecond, so Date.parse runs once per distinct stamp.
  #stamp = ''
  #stampMs = Number.NaN

  /** Milliseconds of a `@timestamp`, NaN when it is not a log stamp. */
  msOf (stamp: string): number {
    if (stamp !== this.#stamp) {
      this.#stamp = stamp
      this.#stampMs = STAMP.test(stamp) ? Date.parse(stamp) : Number.NaN
    }
    return this.#stampMs
  }
}

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `o.a.b`, or `o["a.b"]` when the nested form is absent. */
function get (o: Obj, a: string, b: string): unknown {
  const inner = o[a]
  if (isObj(inner) && inner[b] !== undefined) return inner[b]
  return o[`${a}.${b}`]
}

const str = (v: unknown): string | null => typeof v === 'string' ? v : null
/** A port: an integer 0..65535 (a string or anything else reads as absent). */
const port = (v: unknown): number | null => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535 ? v : null

const ACTION_SET: ReadonlySet<string> = new Set(ACTIONS)

/** A count: a positive safe integer; absent (or null) is 1. Aggregated lines count many decisions; 0, fractions and strings are not counts. */
function countOf (o: Obj): number | undefined {
  const c = get(o, 'aigate', 'count') ?? get(o, 'event', 'count')
  if (c === undefined || c === null) return 1
  return typeof c === 'number' && Number.isSafeInteger(c) && c >= 1 ? c : undefined
}

function bad (out: LogLine, why: BadLine): 'bad' {
  out.note = why
  return 'bad'
}

/**
 * Read one line (without its newline) into `out`; returns what the line is.
 * `decision` lines have every field set; `daemon` lines `ms`, `action`,
 * `level` and `message`; `other` and `bad` lines set `out.note`.
 */
export function readLine (text: string, out: LogLine): LineKind {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return bad(out, text.trim() === '' ? 'empty line' : 'not JSON')
  }
  if (!isObj(v)) return bad(out, 'not an object')
  const dataset = get(v, 'event', 'dataset')
  const daemon = dataset === DAEMON_DATASET
  if (!daemon && dataset !== DECISION_DATASET) {
    out.note = typeof dataset === 'string' ? dataset : '(none)'
    return 'other'
  }
  const stamp = v['@timestamp']
  if (typeof stamp !== 'string') return bad(out, 'no @timestamp')
  const ms = out.msOf(stamp)
  if (Number.isNaN(ms)) return bad(out, 'bad @timestamp')
  const action = get(v, 'event', 'action')
  out.ms = ms
  out.message = str(v.message)
  // pino writes `log.level` dotted (daemonLogger's formatter), so the dotted form first.
  out.level = str(v['log.level']) ?? str(get(v, 'log', 'level'))
  if (daemon) {
    out.action = str(action) ?? ''
    return 'daemon'
  }
  if (typeof action !== 'string') return bad(out, 'no event.action')
  if (!ACTION_SET.has(action)) return bad(out, 'unknown event.action')
  const count = countOf(v)
  if (count === undefined) return bad(out, 'bad count')
  out.action = action
  out.count = count
  out.vendor = str(get(v, 'aigate', 'vendor'))
  out.reason = str(get(v, 'aigate', 'reason'))
  out.detail = str(get(v, 'aigate', 'detail'))
  out.seen = str(get(v, 'aigate', 'seen'))
  out.sourceIp = str(get(v, 'source', 'ip'))
  out.sourcePort = port(get(v, 'source', 'port'))
  out.destIp = str(get(v, 'destination', 'ip'))
  out.destPort = port(get(v, 'destination', 'port'))
  out.name = str(get(v, 'destination', 'domain')) ?? str(v.name)
  return 'decision'
}
