import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FIXTURES } from '../../helpers/fixtures.js'

/**
 * What the `aigate logs` tests share: the built CLI run as a child process
 * (as an analyst runs it, stdout a pipe), decision lines made by the built
 * `aigate classify` from the fixture captures, and hand-made lines in the
 * shapes the log has had or may have (the ECS-clean `destination.domain`
 * line of issue 14, dotted fields, aggregated counts, evasion details, the
 * daemon's own lines).
 */

export const BIN = fileURLToPath(new URL('../../../bin/aigate.js', import.meta.url))

export function tmp (): { dir: string, cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-logs-'))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** The decision lines `aigate classify` writes for every fixture capture, as one text. */
export function classified (): string {
  const captures = readdirSync(join(FIXTURES, 'pcap')).filter((f) => f.endsWith('.pcap')).sort().map((f) => join(FIXTURES, 'pcap', f))
  return captures.map((f) => {
    const r = spawnSync(process.execPath, [BIN, 'classify', '-q', f], { encoding: 'utf8', timeout: 60_000 })
    if (r.status !== 0) throw new Error(`aigate classify ${f}: ${r.stderr}`)
    return r.stdout
  }).join('')
}

export interface Fields {
  ts?: string
  action?: string
  vendor?: string | null
  name?: string
  /** Put the name in the old root `name` instead of destination.domain. */
  oldName?: boolean
  ip?: string
  port?: number
  seen?: string
  reason?: string
  detail?: string
  count?: number
}

/** One ECS-clean decision line (issue 14 item 1 shape), nested fields, as our encoder writes them. */
export function decision (f: Fields = {}): string {
  const o: Record<string, unknown> = {
    'log.level': 'info',
    '@timestamp': f.ts ?? '2026-11-25T21:00:00.000Z',
    'ecs.version': '8.11.0',
    observer: { type: 'firewall', vendor: 'aigate', product: 'aigate', hostname: 'gw1' },
    event: { kind: 'event', category: ['network'], type: ['connection', 'denied'], action: f.action ?? 'block', dataset: 'aigate.decision' },
    aigate: { seen: f.seen ?? 'sni', vendor: f.vendor === undefined ? 'anthropic' : f.vendor, reason: f.reason ?? 'vendor', ...(f.detail === undefined ? {} : { detail: f.detail }), ...(f.count === undefined ? {} : { count: f.count }) },
    source: { ip: f.ip ?? '10.0.0.1', port: f.port ?? 40000 },
    destination: { ip: '10.9.9.9', port: 443, ...(f.oldName === true ? {} : { domain: f.name ?? 'claude.ai' }) },
    network: { transport: 'tcp', community_id: '1:abc=' },
    message: 'x',
  }
  if (f.oldName === true) o.name = f.name ?? 'claude.ai'
  return JSON.stringify(o)
}

export function daemonLine (action: string, message: string, ts = '2026-11-25T21:00:00.000Z'): string {
  return JSON.stringify({ 'log.level': 'info', '@timestamp': ts, event: { kind: 'event', dataset: 'aigate.daemon', action }, message })
}

export interface Run { status: number | null, stdout: string, stderr: string, raw: Buffer }

/** `aigate logs ARGS` to its end; stdout is a pipe (no colour unless asked). */
export function logs (args: string[], o: { input?: string | Buffer, env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(process.execPath, [BIN, 'logs', ...args], {
    input: o.input,
    env: { ...process.env, TZ: 'UTC', NO_COLOR: '', ...o.env },
    timeout: 60_000,
  })
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), raw: r.stdout }
}

/** A running `aigate logs -f ...`: what it has written so far, and a wait for a condition on it. */
export class Follower {
  stdout = ''
  stderr = ''
  readonly exited: Promise<number | null>
  readonly #child

  constructor (args: string[], env: NodeJS.ProcessEnv = {}) {
    this.#child = spawn(process.execPath, [BIN, 'logs', ...args], { env: { ...process.env, TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child.stdout.on('data', (b: Buffer) => { this.stdout += b.toString('utf8') })
    this.#child.stderr.on('data', (b: Buffer) => { this.stderr += b.toString('utf8') })
    this.exited = new Promise((resolve) => this.#child.on('close', (code) => resolve(code)))
  }

  get lines (): string[] { return this.stdout.split('\n').filter((l) => l !== '') }

  /** Resolves when `ok()` holds; rejects after `ms` with what was seen. */
  async until (what: string, ok: () => boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** SIGINT, as ^C: the follower ends, prints its summary, exits. */
  async stop (): Promise<number | null> {
    this.#child.kill('SIGINT')
    return await this.exited
  }
}
