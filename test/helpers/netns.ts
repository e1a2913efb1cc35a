import { spawnSync } from 'node:child_process'
import { Netns as Builder } from '../../src/demo/netns.js'

/**
 * The namespace builder of src/demo/netns.ts (the demo's Sandbox is built on
 * it too), with the tests' naming: `new Netns('fw')` makes namespaces
 * `fw<pid>-<name>`, so two test processes (tap runs jobs in parallel) never
 * share one. Plus the reason a namespace test must skip.
 *
 *   const net = new Netns('fw')
 *   const cli = net.add('cli'); const srv = net.add('srv')
 *   net.veth({ ns: cli, dev: 'c0', addrs: ['10.9.0.1/24'] }, { ns: srv, dev: 's0', addrs: ['10.9.0.2/24'] })
 *   net.exec(cli, 'ping', ['-c1', '10.9.0.2'])
 *   t.teardown(() => net.cleanup())
 */
export class Netns extends Builder {
  constructor (prefix: string) {
    super(`${prefix}${process.pid}`)
  }
}

/** Poll `probe` until it is true; false after `ms` (src/demo/netns.ts waitUntil). */
export { waitUntil as waitFor } from '../../src/demo/netns.js'

/** Why the namespace tests cannot run here, or false when they can. */
export function netnsSkipReason (tools: string[] = []): string | false {
  if (process.getuid?.() !== 0) return 'needs root: creates network namespaces'
  const env = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` }
  for (const tool of ['ip', ...tools]) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore', env }).error !== undefined) return `needs ${tool}`
  }
  return false
}
