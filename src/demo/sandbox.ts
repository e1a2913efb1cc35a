import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'

/**
 * A throwaway network of namespaces (client -> gateway -> server) joined by
 * veth pairs, for the demo and the end-to-end tests. Every command runs from
 * an argument array, never a shell string. `destroy()` removes everything
 * that was made, also after a partial set-up, and is safe to call twice.
 *
 *   client (10.X.1.2, fd00:X:1::2) ── gateway (10.X.1.1 | 10.X.2.1) ── server (10.X.2.2, fd00:X:2::2)
 */
export interface SandboxAddrs {
  client: string
  gwClientSide: string
  gwServerSide: string
  server: string
  client6: string
  server6: string
}

export class Sandbox {
  readonly prefix: string
  readonly cli: string
  readonly gw: string
  readonly srv: string
  readonly addrs: SandboxAddrs
  readonly #children: ChildProcess[] = []
  #made: string[] = []

  /** `net` picks the 10.<net>.x.y range (1..250) so parallel sandboxes do not collide. */
  constructor (prefix: string, net: number) {
    this.prefix = prefix
    this.cli = `${prefix}-cli`
    this.gw = `${prefix}-gw`
    this.srv = `${prefix}-srv`
    this.addrs = {
      client: `10.${net}.1.2`,
      gwClientSide: `10.${net}.1.1`,
      gwServerSide: `10.${net}.2.1`,
      server: `10.${net}.2.2`,
      client6: `fd00:${net}:1::2`,
      server6: `fd00:${net}:2::2`,
    }
  }

  /** Build the namespaces, links, addresses, routes; forwarding on in the gateway. */
  create (): void {
    const { prefix: p, addrs: a } = this
    const net = a.client.split('.')[1] as string
    for (const ns of [this.cli, this.gw, this.srv]) {
      run('ip', ['netns', 'add', ns])
      this.#made.push(ns)
      this.exec(ns, 'ip', ['link', 'set', 'lo', 'up'])
    }
    // Interface names are at most 15 characters.
    const cg = `${p.slice(0, 9)}-c`; const gc = `${p.slice(0, 9)}-gc`
    const gs = `${p.slice(0, 9)}-gs`; const sg = `${p.slice(0, 9)}-s`
    run('ip', ['link', 'add', cg, 'netns', this.cli, 'type', 'veth', 'peer', 'name', gc, 'netns', this.gw])
    run('ip', ['link', 'add', gs, 'netns', this.gw, 'type', 'veth', 'peer', 'name', sg, 'netns', this.srv])
    const up = (ns: string, dev: string, v4: string, v6: string): void => {
      this.exec(ns, 'ip', ['addr', 'add', v4, 'dev', dev])
      this.exec(ns, 'ip', ['-6', 'addr', 'add', v6, 'dev', dev, 'nodad'])
      this.exec(ns, 'ip', ['link', 'set', dev, 'up'])
      // Wire-sized segments: no offloads that would merge or split them.
      try { this.exec(ns, 'ethtool', ['-K', dev, 'gro', 'off', 'gso', 'off', 'tso', 'off']) } catch { /* ethtool missing: sizes may differ, tests still hold */ }
    }
    up(this.cli, cg, `${a.client}/24`, `${a.client6}/64`)
    up(this.gw, gc, `${a.gwClientSide}/24`, `fd00:${net}:1::1/64`)
    up(this.gw, gs, `${a.gwServerSide}/24`, `fd00:${net}:2::1/64`)
    up(this.srv, sg, `${a.server}/24`, `${a.server6}/64`)
    this.exec(this.cli, 'ip', ['route', 'add', 'default', 'via', a.gwClientSide])
    this.exec(this.srv, 'ip', ['route', 'add', 'default', 'via', a.gwServerSide])
    this.exec(this.cli, 'ip', ['-6', 'route', 'add', 'default', 'via', `fd00:${net}:1::1`])
    this.exec(this.srv, 'ip', ['-6', 'route', 'add', 'default', 'via', `fd00:${net}:2::1`])
    this.exec(this.gw, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'])
    this.exec(this.gw, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1'])
  }

  /** Run a command in a namespace and return its stdout; throws on a non-zero exit. */
  exec (ns: string, cmd: string, args: string[], timeoutMs = 30000): string {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs)
  }

  /** Start a long-running process in a namespace; it is ended by destroy(). */
  spawn (ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    this.#children.push(child)
    return child
  }

  /** End every process we started (by pid), then delete the namespaces. */
  destroy (): void {
    for (const c of this.#children) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        try { process.kill(c.pid, 'SIGTERM') } catch { /* already gone */ }
      }
    }
    this.#children.length = 0
    for (const ns of this.#made.reverse()) {
      // Any process still inside (a child of ip netns exec) goes with its namespace's pids.
      try {
        const pids = run('ip', ['netns', 'pids', ns]).split('\n').filter((x) => x !== '')
        for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch { /* gone */ } }
      } catch { /* namespace already gone */ }
      try { run('ip', ['netns', 'del', ns]) } catch { /* already gone */ }
    }
    this.#made = []
  }
}

function run (cmd: string, args: string[], timeoutMs = 30000): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs })
}

/** Wait until `probe()` is true, polling; false after `ms`. */
export async function waitUntil (probe: () => boolean, ms: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (probe()) return true
    await new Promise((r) => setTimeout(r, stepMs))
  }
  return probe()
}
