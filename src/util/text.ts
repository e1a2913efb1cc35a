/** Text from the wire or from files, made safe for a terminal or a JSON line. */

const uEscape = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')

/**
 * Text for a terminal: anything outside printable ASCII as \uXXXX, as the
 * log escapes strings, so an argument or a file's bytes cannot reorder the
 * line (U+202E), drive the terminal (C1 controls) or break it.
 */
export function printable (s: string): string {
  return s.replace(/[^\x20-\x7e]/g, uEscape)
}

/** A JSON line in printable ASCII: JSON.stringify escapes only below 0x20. */
export function asciiJson (v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, uEscape)
}
