import { Option, type Command } from 'commander'
import { DEFAULT_RULES_DIR, DEFAULT_POLICY } from '../config/index.js'
import { DEFAULT_CACHE_SIZE } from '../cache/index.js'
import { AigateError } from '../util/errors.js'

/** What more than one command uses: the usage error, terminal-safe text, shared options. */

/** A wrong command line: exit status 2, as commander's own usage errors. */
export class UsageError extends AigateError {
  override get exitCode (): number { return 2 }
}

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

export function intOption (name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new UsageError(max === Number.MAX_SAFE_INTEGER
        ? `${name} must be an integer >= ${min}, got "${v}"`
        : `${name} must be an integer from ${min} to ${max}, got "${v}"`)
    }
    return n
  }
}

/**
 * Upper bound of --cache-size (per queue for `run`). The cache preallocates
 * arrays of this length: at 2^24 a replay peaks at ~320 MB RSS (65 MB at the
 * default), 10^8 grew to 2.8 GB, and 10^12 failed with "Invalid array length".
 */
export const MAX_CACHE_SIZE = 16_777_216

export function cacheSizeOption (what: string): Option {
  return new Option('--cache-size <n>', `${what}, 1 to ${MAX_CACHE_SIZE}`).default(DEFAULT_CACHE_SIZE).argParser(intOption('--cache-size', 1, MAX_CACHE_SIZE))
}

export function rulesOptions (cmd: Command): Command {
  return cmd
    .addOption(new Option('--rules <dir>', 'directory of vendor lists (*.txt)').default(DEFAULT_RULES_DIR, 'the shipped rules/vendors'))
    .addOption(new Option('--policy <file>', 'policy file (YAML)').default(DEFAULT_POLICY, 'the shipped rules/policy.example.yaml'))
}
