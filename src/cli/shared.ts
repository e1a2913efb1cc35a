import { Option, type Command } from 'commander'
import { join } from 'node:path'
import { defaultPaths, etcRoot } from '../config/index.js'
import { DEFAULT_CACHE_SIZE } from '../cache/index.js'
import { AigateError } from '../util/errors.js'

/** What more than one command uses: the usage error, terminal-safe text, shared options. */

/** A wrong command line: exit status 2, as commander's own usage errors. */
export class UsageError extends AigateError {
  override get exitCode (): number { return 2 }
}

export { printable, asciiJson } from '../util/text.js'

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

/**
 * --rules and --policy. The defaults follow the install (config/index.ts
 * defaultPaths): /etc/aigate/rules and /etc/aigate/policy.yaml when
 * /etc/aigate/policy.yaml exists, else the shipped files. Resolved when the
 * program is built, so --help shows what this machine would use.
 */
export function rulesOptions (cmd: Command): Command {
  const d = defaultPaths()
  const how = d.installed ? '' : ` (no ${join(etcRoot(), 'policy.yaml')}: the shipped files)`
  return cmd
    .addOption(new Option('--rules <dir>', 'directory of vendor lists (*.txt)').default(d.rulesDir, `${d.rulesDir}${how}`))
    .addOption(new Option('--policy <file>', 'policy file (YAML)').default(d.policyFile, `${d.policyFile}${how}`))
}
