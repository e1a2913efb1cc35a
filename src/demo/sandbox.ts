import { Netns, type RunOptions } from './netns.js'

export { waitUntil } from './netns.js'

/**
 * A throwaway network of namespaces (client -> gateway -> server) joined by
 * veth pairs, for the demo and the end-to-end tests: the namespace builder
 * (netns.ts) with this one topology. `destroy()` removes everything that was
 * made, also after a partial set-up, and is safe to call twice.
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

export class Sandbox extends Netns {
  readonly cli: string
  readonly gw: string
  readonly srv: string
  readonly addrs: SandboxAddrs
  readonly #net: number

  /** `net` picks the 10.<net>.x.y range (1..250) so parallel sandboxes do not collide. */
  constructor (prefix: string, net: number) {
    super(prefix)
    this.#net = net
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
    const net = this.#net
    for (const name of ['cli', 'gw', 'srv']) this.add(name)
    // Interface names are at most 15 characters.
    const dev = p.slice(0, 9)
    this.veth({ ns: this.cli, dev: `${dev}-c`, addrs: [`${a.client}/24`, `${a.client6}/64`] },
      { ns: this.gw, dev: `${dev}-gc`, addrs: [`${a.gwClientSide}/24`, `fd00:${net}:1::1/64`] })
    this.veth({ ns: this.gw, dev: `${dev}-gs`, addrs: [`${a.gwServerSide}/24`, `fd00:${net}:2::1/64`] },
      { ns: this.srv, dev: `${dev}-s`, addrs: [`${a.server}/24`, `${a.server6}/64`] })
    this.exec(this.cli, 'ip', ['route', 'add', 'default', 'via', a.gwClientSide])
    this.exec(this.srv, 'ip', ['route', 'add', 'default', 'via', a.gwServerSide])
    this.exec(this.cli, 'ip', ['-6', 'route', 'add', 'default', 'via', `fd00:${net}:1::1`])
    this.exec(this.srv, 'ip', ['-6', 'route', 'add', 'default', 'via', `fd00:${net}:2::1`])
    this.forwarding(this.gw)
  }

  /** As Netns.exec; a number is the timeout in milliseconds. */
  override exec (ns: string, cmd: string, args: string[], opts: RunOptions | number = {}): string {
    return super.exec(ns, cmd, args, typeof opts === 'number' ? { timeoutMs: opts } : opts)
  }

  /** End every process we started (SIGTERM, by pid), then whatever is left inside, then delete the namespaces. */
  destroy (): void {
    this.cleanup('SIGTERM')
  }
}
