import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'

/**
 * The one builder of throwaway network namespaces, for the demo
 * (sandbox.ts builds its client -> gateway -> server on it) and the tests
 * (test/helpers/netns.ts, test/e2e): named namespaces, veth pairs with
 * addresses, commands run inside a namespace, long-running processes, and
 * one `cleanup()` that removes everything it made (also after a partial
 * set-up; safe to call twice). Every command is an argument array, never a
 * shell string.
 *
 *   const net = new Netns(`fw${process.pid}`)         // namespaces are named <prefix>-<name>
 *   const cli = net.add('cli'); const srv = net.add('srv')
 *   net.veth({ ns: cli, dev: 'c0', addrs: ['10.9.0.1/24'] }, { ns: srv, dev: 's0', addrs: ['10.9.0.2/24'] })
 *   net.exec(cli, 'ping', ['-c1', '10.9.0.2'])
 *   net.cleanup()
 *
 * The prefix is the caller's to make unique: namespaces are global to the
 * host, and tests run in parallel.
 */

export interface VethEnd {
  /** Full namespace name (as returned by `add`). */
  ns: string
  /** Interface name, at most 15 characters. */
  dev: string
  /** Addresses in CIDR form, IPv4 and/or IPv6 (IPv6 ones are added with `nodad`, usable at once). */
  addrs?: string[]
}

export interface RunOptions { timeoutMs?: number, input?: string }

export interface RunResult { status: number | null, stdout: string, stderr: string }

/** Poll `probe` until it is true; false after `ms`. */
export async function waitUntil (probe: () => boolean, ms: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (probe()) return true
    await new Promise((resolve) => setTimeout(resolve, stepMs))
  }
  return probe()
}

export class Netns {
  /** Prefix of every namespace this builder makes. */
  readonly prefix: string
  readonly #namespaces: string[] = []
  readonly #children: ChildProcess[] = []

  constructor (prefix: string) {
    this.prefix = prefix
  }

  /** Create namespace `<prefix>-<name>` with loopback up; returns its full name. */
  add (name: string): string {
    const ns = `${this.prefix}-${name}`
    host('ip', ['netns', 'add', ns])
    this.#namespaces.push(ns)
    this.exec(ns, 'ip', ['link', 'set', 'lo', 'up'])
    return ns
  }

  /** Names of the namespaces made so far. */
  get namespaces (): readonly string[] {
    return this.#namespaces
  }

  /**
   * A veth pair between two namespaces (or two ends in one), addresses
   * assigned, links up. With `offloads: false` (the default) GRO, GSO and
   * TSO are turned off so segments stay wire-sized (without ethtool, sizes
   * may differ; nothing fails).
   */
  veth (a: VethEnd, b: VethEnd, opts: { offloads?: boolean } = {}): void {
    for (const end of [a, b]) {
      if (end.dev.length > 15) throw new RangeError(`interface name "${end.dev}" is longer than 15 characters`)
    }
    host('ip', ['link', 'add', a.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns])
    for (const end of [a, b]) {
      for (const addr of end.addrs ?? []) {
        this.exec(end.ns, 'ip', addr.includes(':') ? ['-6', 'addr', 'add', addr, 'dev', end.dev, 'nodad'] : ['addr', 'add', addr, 'dev', end.dev])
      }
      this.exec(end.ns, 'ip', ['link', 'set', end.dev, 'up'])
      if (opts.offloads !== true) this.run(end.ns, 'ethtool', ['-K', end.dev, 'gro', 'off', 'gso', 'off', 'tso', 'off'])
    }
  }

  /** Turn on IPv4 and IPv6 forwarding in a namespace (a router). */
  forwarding (ns: string): void {
    this.exec(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'])
    this.exec(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1'])
  }

  /** Run a command in a namespace; stdout, or an Error with the command and its stderr. */
  exec (ns: string, cmd: string, args: string[], opts: RunOptions = {}): string {
    const r = this.run(ns, cmd, args, opts)
    if (r.status !== 0) {
      throw new Error(`ip netns exec ${ns} ${cmd} ${args.join(' ')}: exit ${String(r.status)}: ${r.stderr.trim().split('\n')[0] ?? ''}`)
    }
    return r.stdout
  }

  /** Run a command in a namespace; never throws on a non-zero exit. */
  run (ns: string, cmd: string, args: string[], opts: RunOptions = {}): RunResult {
    const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], {
      encoding: 'utf8',
      input: opts.input ?? '',
      timeout: opts.timeoutMs ?? 30_000,
      env: withSbin(),
    })
    return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error === undefined ? '' : String(r.error)) }
  }

  /**
   * Start a long-running process in a namespace; `cleanup()` ends it (by its
   * pid). Its stdout and stderr are pipes kept flowing, so a chatty process
   * never blocks: attach 'data' listeners at once to read them.
   */
  spawn (ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    // `ip netns exec` execs the command: the child's pid is the command's.
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: withSbin(), ...opts })
    child.stdout?.resume()
    child.stderr?.resume()
    this.#children.push(child)
    return child
  }

  /**
   * End the processes started here (with `signal`), then any process still
   * inside a namespace (SIGKILL), then delete the namespaces (their veths go
   * with them).
   */
  cleanup (signal: NodeJS.Signals = 'SIGKILL'): void {
    for (const c of this.#children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        try { process.kill(c.pid, signal) } catch { /* already gone */ }
      }
    }
    for (const ns of this.#namespaces.splice(0).reverse()) {
      try {
        const pids = host('ip', ['netns', 'pids', ns]).split('\n').filter((x) => x !== '')
        for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch { /* gone */ } }
      } catch { /* namespace already gone */ }
      try { host('ip', ['netns', 'del', ns]) } catch { /* already gone */ }
    }
  }
}

function withSbin (): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` }
}

function host (cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: withSbin() })
}
