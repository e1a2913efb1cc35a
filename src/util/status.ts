/**
 * Outcome codes shared by every parser. Parsers never throw on wire bytes:
 * they return one of these and write their findings into a caller-owned,
 * reused result object (an `{ok, value}` per packet would be an allocation).
 *
 * NeedMore is kept apart from Malformed (tls-parser's Incomplete vs Error):
 * a flow table can wait for more bytes on NeedMore, and must not on Malformed.
 */
export const Status = {
  /** Parsed; the result object holds the findings. */
  Ok: 0,
  /** Consistent so far, but the message continues past the bytes given. */
  NeedMore: 1,
  /** A length, count or field contradicts the bytes or the protocol. */
  Malformed: 2,
  /** Well-formed, but not something we read (another message type, version...). */
  Unsupported: 3,
  /** Well-formed and complete, but carries no name (e.g. ClientHello without SNI). */
  NoName: 4,
} as const
export type Status = (typeof Status)[keyof typeof Status]

const statusNames = ['ok', 'need-more', 'malformed', 'unsupported', 'no-name'] as const
export type StatusName = (typeof statusNames)[number]

/** Stable text for logs and metrics. */
export function statusName (s: Status): StatusName {
  return statusNames[s] as StatusName
}
