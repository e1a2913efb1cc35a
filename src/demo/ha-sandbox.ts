import { spawnSync, type ChildProcess } from 'node:child_process'
import { appendFileSync, chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { up as firewallUp, down as firewallDown, status as firewallStatus } from '../fw/index.js'
import { askControl } from '../control/index.js'
import { PACKAGE_ROOT } from '../config/index.js'
import type { StatusReport } from '../daemon/health.js'
import { Netns, waitUntil } from './netns.js'
import { conntrackdConf, keepalivedConf, notifyScript } from './ha-config.js'

/**
 * Two aigate gateways as one (issue 17), in network namespaces: the demo's
 * `--ha`, the HA end-to-end test and the failover benchmark build this.
 *
 *                      ┌── gwa (aigate, keepalived prio 150, conntrackd) ──┐
 *   client ── [sw: brc]┤      │ sync link 10.N.3.0/30 (conntrackd FTFW)    ├[sw: brs]── server
 *   10.N.1.10          └── gwb (aigate, keepalived prio 100, conntrackd) ──┘          10.N.2.10
 *                VIP 10.N.1.1 (client's default route)      VIP 10.N.2.1 (server's route back)
 *
 * The two bridges live in one switch namespace (sw), so a gateway's link can
 * be cut from the switch side (the gateway sees its carrier go, as with a
 * pulled cable). Each gateway runs keepalived (one sync group: both
 * addresses move together), conntrackd (entries and their CONNMARK verdicts
 * go to the peer; the notify script commits them on becoming primary), the
 * aigate firewall rules and `aigate run` with its own control socket and
 * log. The daemons run in their own UTS namespace named after the gateway
 * (ha-gwa, ha-gwb), so their lines name the gateway that decided.
 * `destroy()` removes everything, also after a partial set-up.
 */

export type Gw = 'a' | 'b'
export const GATEWAYS: readonly Gw[] = ['a', 'b']

export interface HaAddrs {
  client: string
  server: string
  vipClient: string
  vipServer: string
  gw: Record<Gw, { client: string, server: string, sync: string }>
}

export interface HaOptions {
  /** Seconds between VRRP adverts (0.1..255); a backup takes over after about 3 of them when the primary goes silent. */
  advertSec?: number
  /** Rules directory and policy file for both daemons (the same files on both: that is the design). */
  rulesDir: string
  policyFile: string
}

const BIN = join(PACKAGE_ROOT, 'bin', 'aigate.js')
const ANNOUNCE = join(PACKAGE_ROOT, 'systemd', 'ha', 'aigate-ha-announce.sh')
const NOTIFY = join(PACKAGE_ROOT, 'systemd', 'ha', 'aigate-ha-notify.sh')
/** How often the announcer looks for new drop verdicts: the longest a fresh block may be missing on the peer. */
export const ANNOUNCE_INTERVAL_SEC = 0.25
const SBIN_PATH = `${process.env['PATH'] ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`
const PRIORITY: Record<Gw, number> = { a: 150, b: 100 }
const ROUTER_ID = { client: 51, upstream: 52 }

export class HaSandbox extends Netns {
  readonly cli: string
  readonly sw: string
  readonly srv: string
  readonly gw: Record<Gw, string>
  readonly addrs: HaAddrs
  /** Working directory: configs, pid files, sockets, logs (the caller makes and removes it). */
  readonly tmp: string
  /** Interface names: the gateways' own ends and the switch's ends of their links. */
  readonly dev: Record<Gw, { client: string, server: string, sync: string, swClient: string, swServer: string }>
  readonly #keepalived = new Map<Gw, ChildProcess>()
  readonly #daemons = new Map<Gw, ChildProcess>()
  readonly #fwUp = new Set<Gw>()
  #opts: HaOptions | null = null

  /** `net` picks the 10.<net>.x.y range (1..250) so parallel sandboxes do not collide. */
  constructor (prefix: string, net: number, tmp: string) {
    super(prefix)
    this.tmp = tmp
    this.cli = `${prefix}-cli`
    this.sw = `${prefix}-sw`
    this.srv = `${prefix}-srv`
    this.gw = { a: `${prefix}-gwa`, b: `${prefix}-gwb` }
    this.addrs = {
      client: `10.${net}.1.10`,
      server: `10.${net}.2.10`,
      vipClient: `10.${net}.1.1`,
      vipServer: `10.${net}.2.1`,
      gw: {
        a: { client: `10.${net}.1.2`, server: `10.${net}.2.2`, sync: `10.${net}.3.1` },
        b: { client: `10.${net}.1.3`, server: `10.${net}.2.3`, sync: `10.${net}.3.2` },
      },
    }
    // Interface names are at most 15 characters; the prefix keeps parallel sandboxes apart.
    const d = prefix.slice(0, 9)
    this.dev = {
      a: { client: `${d}-ac`, server: `${d}-as`, sync: `${d}-ay`, swClient: `${d}-sac`, swServer: `${d}-sas` },
      b: { client: `${d}-bc`, server: `${d}-bs`, sync: `${d}-by`, swClient: `${d}-sbc`, swServer: `${d}-sbs` },
    }
  }

  /** Namespaces, bridges, links, addresses, routes; forwarding and conntrack settings on the gateways. */
  create (): void {
    const a = this.addrs
    const d = this.prefix.slice(0, 9)
    this.add('cli'); this.add('sw'); this.add('gwa'); this.add('gwb'); this.add('srv')
    for (const br of ['brc', 'brs']) {
      this.exec(this.sw, 'ip', ['link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0'])
      this.exec(this.sw, 'ip', ['link', 'set', br, 'up'])
    }
    const port = (dev: string, br: string): void => { this.exec(this.sw, 'ip', ['link', 'set', dev, 'master', br]) }
    this.veth({ ns: this.cli, dev: `${d}-c`, addrs: [`${a.client}/24`] }, { ns: this.sw, dev: `${d}-sc` })
    port(`${d}-sc`, 'brc')
    this.veth({ ns: this.srv, dev: `${d}-s`, addrs: [`${a.server}/24`] }, { ns: this.sw, dev: `${d}-ss` })
    port(`${d}-ss`, 'brs')
    for (const g of GATEWAYS) {
      const dv = this.dev[g]
      this.veth({ ns: this.gw[g], dev: dv.client, addrs: [`${a.gw[g].client}/24`] }, { ns: this.sw, dev: dv.swClient })
      port(dv.swClient, 'brc')
      this.veth({ ns: this.gw[g], dev: dv.server, addrs: [`${a.gw[g].server}/24`] }, { ns: this.sw, dev: dv.swServer })
      port(dv.swServer, 'brs')
      this.forwarding(this.gw[g])
      // A mid-stream TCP packet with no entry is INVALID, not picked up as a
      // new entry with no verdict mark: in the moment between the address
      // moving and conntrackd committing the peer's entries, a flow's packet
      // is dropped (and retransmitted) instead of reaching the queue or
      // shadowing the committed entry.
      this.exec(this.gw[g], 'sysctl', ['-q', '-w', 'net.netfilter.nf_conntrack_tcp_loose=0'])
    }
    this.veth({ ns: this.gw.a, dev: this.dev.a.sync, addrs: [`${a.gw.a.sync}/30`] }, { ns: this.gw.b, dev: this.dev.b.sync, addrs: [`${a.gw.b.sync}/30`] })
    this.exec(this.cli, 'ip', ['route', 'add', 'default', 'via', a.vipClient])
    this.exec(this.srv, 'ip', ['route', 'add', 'default', 'via', a.vipServer])
  }

  /**
   * conntrackd and keepalived on both gateways (a first, so it is primary),
   * then the aigate rules and daemons. Resolves when a holds both addresses
   * and both daemons are running.
   */
  async start (opts: HaOptions): Promise<void> {
    this.#opts = opts
    const conntrackd = which('conntrackd')
    for (const g of GATEWAYS) {
      const a = this.addrs
      const peer: Gw = g === 'a' ? 'b' : 'a'
      const conf = this.path(g, 'conntrackd.conf')
      writeFileSync(conf, conntrackdConf({
        syncDev: this.dev[g].sync, syncAddr: a.gw[g].sync, peerAddr: a.gw[peer].sync,
        socket: this.path(g, 'conntrackd.ctl'), lockFile: this.path(g, 'conntrackd.lock'), logFile: this.path(g, 'conntrackd.log'),
        ignore: [a.vipClient, a.vipServer, ...GATEWAYS.flatMap((x) => [a.gw[x].client, a.gw[x].server, a.gw[x].sync])],
      }))
      writeFileSync(this.path(g, 'notify.sh'), notifyScript(NOTIFY, conntrackd, conf, this.path(g, 'states')))
      chmodSync(this.path(g, 'notify.sh'), 0o755)
      writeFileSync(this.path(g, 'keepalived.conf'), keepalivedConf({
        name: `ha-gw${g}`, priority: PRIORITY[g], advertSec: opts.advertSec ?? 1, notify: this.path(g, 'notify.sh'),
        client: { dev: this.dev[g].client, vip: `${a.vipClient}/24`, routerId: ROUTER_ID.client },
        upstream: { dev: this.dev[g].server, vip: `${a.vipServer}/24`, routerId: ROUTER_ID.upstream },
      }))
      const ctd = this.spawn(this.gw[g], conntrackd, ['-C', conf])
      collect(ctd, this.path(g, 'conntrackd.out'))
      if (!await waitUntil(() => existsSync(this.path(g, 'conntrackd.ctl')) || ctd.exitCode !== null, 10_000) || ctd.exitCode !== null) {
        throw new Error(`conntrackd on gw${g} did not start: ${tail(this.path(g, 'conntrackd.out'))}`)
      }
      // Dropped flows' marks, announced so conntrackd sends them (the script says why).
      collect(this.spawn(this.gw[g], 'sh', [ANNOUNCE], { env: { ...process.env, PATH: SBIN_PATH, AIGATE_ANNOUNCE_INTERVAL: String(ANNOUNCE_INTERVAL_SEC) } }), this.path(g, 'announce.out'))
    }
    this.startKeepalived('a')
    if (!await waitUntil(() => this.holder() === 'a' && this.transitions('a').some((t) => t.state === 'primary' && t.phase === 'done'), 15_000)) {
      throw new Error(`gwa did not become primary: ${tail(this.path('a', 'keepalived.out'))}`)
    }
    this.startKeepalived('b')
    if (!await waitUntil(() => this.transitions('b').some((t) => t.state === 'backup' && t.phase === 'done'), 15_000)) {
      throw new Error(`gwb did not become backup: ${tail(this.path('b', 'keepalived.out'))}`)
    }
    for (const g of GATEWAYS) {
      firewallUp({ netns: this.gw[g], queues: [0], hooks: ['forward'], backend: 'iptables' })
      this.#fwUp.add(g)
      const daemon = this.spawn(this.gw[g], 'unshare', ['--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', `ha-gw${g}`,
        process.execPath, BIN, 'run', '--queues', '0', '--log', this.log(g), '--control', this.control(g), '--rules', opts.rulesDir, '--policy', opts.policyFile])
      let err = ''
      daemon.stderr?.on('data', (b: Buffer) => { err += b.toString() })
      collect(daemon, this.path(g, 'aigate.out'))
      this.#daemons.set(g, daemon)
      if (!await waitUntil(() => err.includes('running on queue') || daemon.exitCode !== null, 15_000) || daemon.exitCode !== null) {
        throw new Error(`aigate run on gw${g} did not start: ${err.trim()}`)
      }
    }
  }

  /** keepalived on one gateway, in the foreground, VRRP only, with its own pid files. */
  startKeepalived (g: Gw): void {
    const k = this.spawn(this.gw[g], which('keepalived'), ['--dont-fork', '--vrrp', '--log-console', '--log-detail', '--no-syslog',
      '-f', this.path(g, 'keepalived.conf'), '--pid', this.path(g, 'keepalived.pid'), '--vrrp_pid', this.path(g, 'vrrp.pid')])
    collect(k, this.path(g, 'keepalived.out'))
    this.#keepalived.set(g, k)
  }

  /** Stop keepalived on one gateway (SIGTERM: it gives the addresses up and tells the peer, priority 0). Resolves when it is gone. */
  async stopKeepalived (g: Gw): Promise<void> {
    const k = this.#keepalived.get(g)
    if (k === undefined || k.exitCode !== null || k.signalCode !== null || k.pid === undefined) return
    const gone = new Promise<void>((resolve) => k.once('exit', () => { resolve() }))
    process.kill(k.pid, 'SIGTERM')
    await gone
    this.#keepalived.delete(g)
  }

  /** Cut (false) or restore (true) both of a gateway's links at the switch: its carrier goes, as with a pulled cable. */
  links (g: Gw, upState: boolean): void {
    for (const dev of [this.dev[g].swClient, this.dev[g].swServer]) this.exec(this.sw, 'ip', ['link', 'set', dev, upState ? 'up' : 'down'])
  }

  /** The gateway that holds the client-facing virtual address now, or null. */
  holder (): Gw | null {
    for (const g of GATEWAYS) {
      const r = this.run(this.gw[g], 'ip', ['-o', '-4', 'addr', 'show', 'dev', this.dev[g].client])
      if (r.stdout.includes(` ${this.addrs.vipClient}/`)) return g
    }
    return null
  }

  /** The notify script's record of one gateway's state changes, oldest first. */
  transitions (g: Gw): Array<{ at: number, state: string, phase: string }> {
    const file = this.path(g, 'states')
    if (!existsSync(file)) return []
    return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => {
      const [at, state, phase] = l.split(' ')
      return { at: Number(at) * 1000, state: state ?? '', phase: phase ?? '' }
    })
  }

  /** `aigate status` of one gateway's daemon, over its control socket. */
  async status (g: Gw): Promise<StatusReport> {
    return await askControl(this.control(g), 'status') as StatusReport
  }

  /** Packets one gateway's queue rules sent to its daemon (the firewall's own counters). */
  queued (g: Gw): number {
    return firewallStatus({ netns: this.gw[g], queues: [0], hooks: ['forward'], backend: 'iptables' }).queuedPackets
  }

  /** Packet count of one named aigate rule on one gateway, both families. */
  rulePackets (g: Gw, name: string): number {
    return firewallStatus({ netns: this.gw[g], queues: [0], hooks: ['forward'], backend: 'iptables' }).rules
      .filter((r) => r.name === name).reduce((n, r) => n + r.packets, 0)
  }

  /** The kernel conntrack table of one gateway (conntrack -L), for diagnostics. */
  conntrack (g: Gw): string {
    return this.run(this.gw[g], 'conntrack', ['-L', '-o', 'id']).stdout
  }

  log (g: Gw): string { return this.path(g, 'decisions.ndjson') }
  control (g: Gw): string { return this.path(g, 'aigate.ctl') }
  path (g: Gw, file: string): string { return join(this.tmp, `gw${g}-${file}`) }

  /** Rules down, every process ended by pid (SIGTERM), namespaces deleted. Safe to call twice. */
  destroy (): void {
    for (const g of this.#fwUp) {
      try { firewallDown({ netns: this.gw[g], queues: [0], hooks: ['forward'], backend: 'iptables' }) } catch { /* the namespace goes anyway */ }
    }
    this.#fwUp.clear()
    this.cleanup('SIGTERM')
    this.#keepalived.clear()
    this.#daemons.clear()
  }

  get options (): HaOptions | null { return this.#opts }
}

/** Append a child's output to a file (its pipes must keep flowing). */
function collect (c: ChildProcess, file: string): void {
  // After destroy() the directory may be gone while the last output drains.
  const write = (b: Buffer): void => { try { appendFileSync(file, b) } catch { /* gone */ } }
  c.stdout?.on('data', write)
  c.stderr?.on('data', write)
}

function tail (file: string): string {
  if (!existsSync(file)) return '(no output)'
  return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ')
}

/** Absolute path of a tool (keepalived's notify scripts and `ip netns exec` get no sbin in PATH otherwise). */
export function which (tool: string): string {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } })
  const path = r.stdout.trim()
  if (r.status !== 0 || path === '') throw new Error(`"${tool}" is missing; ./quickstart.sh installs it`)
  return path
}
