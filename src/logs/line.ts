/**
 * One line of the decision log read back for `aigate logs`: the fields a
 * person reads at a glance, from the JSON the daemon (or `aigate classify`)
 * wrote. Both shapes of the line are read: the name is `destination.domain`
 * (ECS-clean lines, issue 14 item 1) or, when that is absent, the root
 * `name` of older lines; a field may be nested (`{"event":{"action":..}}`,
 * what our encoder writes) or dotted (`{"event.action":..}`, what pino and
 * some shippers write), nested first.
 *
 * Everything here is data from a file: values are kept as they are (the
 * formatter escapes them for the terminal), a value of the wrong type reads
 * as absent, and a line that is not a decision or daemon line is a kind with
 * a reason, never an exception.
 */

export const ACTIONS = ['allow', 'monitor', 'block', 'reject'] as const
export type Action = typeof ACTIONS[number]

/** event.dataset of decision lines; `aigate.daemon` lines are the daemon's own events (pino). */
export const DECISION_DATASET = 'aigate.decision'
export const DAEMON_DATASET = 'aigate.daemon'

/** decision, daemon: shown; other: JSON of another dataset (skipped, counted); bad: unreadable (skipped, counted). */
export type EntryKind = 'decision' | 'daemon' | 'other' | 'bad'

/** The fields of one line, filled in place: one Entry is reused for every line. */
export class Entry {
  /** Milliseconds since the epoch, from `@timestamp`. */
  ms = 0
  /** `event.action`: for decisions one of ACTIONS; for daemon lines what happened (start, reload, ...). */
  action = ''
  /** `log.level` of a daemon line. */
  level: string | null = null
  vendor: string | null = null
  /** `destination.domain ?? name`. */
  name: string | null = null
  sourceIp: string | null = null
  sourcePort: number | null = null
  destIp: string | null = null
  destPort: number | null = null
  /** `aigate.seen`: sni, quic, dns, http, ech. */
  seen: string | null = null
  reason: string | null = null
  detail: string | null = null
  /** `aigate.count ?? event.count`: how many decisions an aggregated line stands for; 1 otherwise. */
  count = 1
  /** `message` (daemon lines). */
  message: string | null = null
  /** For `bad` lines the reason; for `other` lines their event.dataset or '(none)'. */
  note = ''
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

/** A log stamp is ISO 8601 with the date first; Date.parse alone accepts far more ("1", "May"). */
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d/

/**
 * Read one line (without its newline) into `out`; returns what the line is.
 * `decision` and `daemon` lines have `ms` and their fields set; `bad` and
 * `other` lines set `out.note`.
 */
export function readEntry (text: string, out: Entry): EntryKind {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    out.note = text.trim() === '' ? 'empty line' : 'not JSON'
    return 'bad'
  }
  if (!isObj(v)) { out.note = 'not a JSON object'; return 'bad' }
  const dataset = get(v, 'event', 'dataset')
  const daemon = dataset === DAEMON_DATASET
  if (!daemon && dataset !== DECISION_DATASET) {
    out.note = typeof dataset === 'string' ? dataset : '(none)'
    return 'other'
  }
  const stamp = v['@timestamp']
  if (typeof stamp !== 'string') { out.note = 'no @timestamp'; return 'bad' }
  const ms = STAMP.test(stamp) ? Date.parse(stamp) : Number.NaN
  if (Number.isNaN(ms)) { out.note = 'bad @timestamp'; return 'bad' }
  const action = get(v, 'event', 'action')
  out.ms = ms
  out.message = str(v.message)
  out.level = str(v['log.level']) ?? str(get(v, 'log', 'level'))
  if (daemon) {
    out.action = str(action) ?? ''
    return 'daemon'
  }
  if (typeof action !== 'string') { out.note = 'no event.action'; return 'bad' }
  if (!ACTION_SET.has(action)) { out.note = 'unknown event.action'; return 'bad' }
  out.action = action
  out.vendor = str(get(v, 'aigate', 'vendor'))
  out.reason = str(get(v, 'aigate', 'reason'))
  out.detail = str(get(v, 'aigate', 'detail'))
  out.seen = str(get(v, 'aigate', 'seen'))
  out.sourceIp = str(get(v, 'source', 'ip'))
  out.sourcePort = port(get(v, 'source', 'port'))
  out.destIp = str(get(v, 'destination', 'ip'))
  out.destPort = port(get(v, 'destination', 'port'))
  out.name = str(get(v, 'destination', 'domain')) ?? str(v.name)
  const c = get(v, 'aigate', 'count') ?? get(v, 'event', 'count')
  out.count = typeof c === 'number' && Number.isSafeInteger(c) && c >= 1 ? c : 1
  return 'decision'
}
