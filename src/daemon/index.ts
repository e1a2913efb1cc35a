import { Worker } from 'node:worker_threads'
import { loadRules } from '../config/index.js'
import { newWriteLock, daemonLogger, FdLines, DAEMON_DATASET } from '../log/index.js'
import { AigateError } from '../util/errors.js'
import type { WorkerConfig, FromWorker, ReloadMessage } from './worker.js'
import { Health, rulesVersion, type RulesInfo } from './health.js'
import { metricsRegistry, serveMetrics } from '../metrics/registry.js'
import { serveControl, ControlInUse, type Verb } from '../control/index.js'
import { status as firewallStatus } from '../fw/index.js'
import { sdNotify } from './notify.js'

/**
 * `aigate run`: one worker thread per NFQUEUE (see worker.ts). The main
 * thread owns the signals: SIGTERM/SIGINT stop every worker (each answers
 * what it holds and closes its queue) and exit 0. The rule files are read
 * here, once at start and once per SIGHUP, and checked; the workers get the
 * texts that passed and compile those (never the files again, which may have
 * changed since), so what runs is what was checked. A bad file is reported
 * at file:line: at start nothing runs, on SIGHUP the old rules stay. Each
 * signal does one thing: SIGHUP reloads rules and policy, SIGUSR2 reopens
 * the --log file here and in every worker (logrotate), SIGUSR1 prints
 * counters on stderr. The control socket (control/) takes `status`,
 * `reload` and `reopen-logs`; --metrics serves Prometheus text (metrics/).
 * Both read the workers' reports (report.ts, health.ts), never wait on a
 * worker. Under systemd (Type=notify) READY=1 goes once every queue is
 * bound, and WATCHDOG=1 only while every worker keeps reporting.
 */
export interface RunOptions {
  queues: number[]
  rulesDir: string
  policyFile: string
  cacheSize: number
  log: string
  failOpen: boolean
  /** Serve Prometheus metrics here (loopback by default in the unit); null: none. */
  metrics: { host: string, port: number } | null
  /** The control socket's path; null: none. */
  control: string | null
  /** The running version, for status and aigate_build_info. */
  version: string
}

/** `aigate run` could not start: a queue would not bind, a worker failed before it was ready. */
export class StartupError extends AigateError {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'StartupError'
    this.code = code
  }
}

const say = (s: string): void => { process.stderr.write(`aigate: ${s}\n`) }

export async function runDaemon (opts: RunOptions): Promise<void> {
  // Fail before any queue is bound when the rules or policy are wrong.
  const { ruleset: rules, texts } = loadRules(opts.rulesDir, opts.policyFile)
  const workerUrl = new URL('./worker.js', import.meta.url)
  const workers = new Map<number, Worker>()
  const waitFor = (type: FromWorker['type']): Promise<FromWorker[]> => Promise.all([...workers.values()].map((w) =>
    new Promise<FromWorker>((resolve) => {
      // Both listeners go when either fires: a SIGUSR1 or a reload must not
      // leave one behind each time (MaxListenersExceededWarning after 10).
      const done = (m: FromWorker): void => { w.off('message', onMsg); w.off('exit', onExit); resolve(m) }
      const onMsg = (m: FromWorker): void => { if (m.type === type || m.type === 'error') done(m) }
      const onExit = (): void => { done({ type: 'stopped', queue: -1 }) }
      w.on('message', onMsg)
      w.once('exit', onExit)
    })))

  const logLock = newWriteLock()
  const eventSink = new FdLines(opts.log, logLock)
  const events = daemonLogger(eventSink)
  const event = (action: string, fields: Record<string, unknown>, message: string, level: 'info' | 'warn' = 'info'): void => {
    events[level]({ event: { kind: 'event', dataset: DAEMON_DATASET, action }, ...fields }, message)
  }
  for (const q of opts.queues) {
    const cfg: WorkerConfig = { queue: q, rules: texts, cacheSize: opts.cacheSize, log: opts.log, failOpen: opts.failOpen, logLock }
    workers.set(q, new Worker(workerUrl, { workerData: cfg, name: `aigate-queue-${q}` }))
  }
  const started = await waitFor('ready')
  const failed = started.filter((m): m is Extract<FromWorker, { type: 'error' }> => m.type === 'error')
  if (failed.length > 0) {
    await Promise.all([...workers.values()].map((w) => w.terminate()))
    const f = failed[0] as Extract<FromWorker, { type: 'error' }>
    throw new StartupError(f.code, f.message)
  }
  const running = `running on queue${opts.queues.length > 1 ? 's' : ''} ${opts.queues.join(',')}: ${rules.lists.length} vendor lists from ${opts.rulesDir}, ` +
    `${rules.matcher.size} entries, policy ${opts.policyFile}`
  say(`${running}, log ${opts.log === '-' ? 'stdout' : opts.log}`)
  event('start', { aigate: { queues: opts.queues, lists: rules.lists.length, entries: rules.matcher.size, rules: opts.rulesDir, policy: opts.policyFile, pid: process.pid } }, running)

  const info = (texts: Parameters<typeof rulesVersion>[0], lists: number, entries: number): RulesInfo =>
    ({ version: rulesVersion(texts), loadedAt: Date.now(), lists, entries, policy: opts.policyFile })
  const health = new Health(opts.queues, info(texts, rules.lists.length, rules.matcher.size), opts.version)
  const readFirewall = (): void => {
    try {
      const st = firewallStatus()
      health.firewall(st.installed ? { queuedPackets: st.queuedPackets, overBudgetPackets: st.overBudgetPackets } : null)
    } catch {
      health.firewall(null) // not readable here (no tool, no permission): bypass is unknown
    }
  }

  let stopping = false
  const closers: Array<() => void> = []
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    sdNotify('STOPPING=1')
    for (const c of closers) c()
    for (const w of workers.values()) w.postMessage({ type: 'stop' })
    await waitFor('stopped')
    say(`${signal}: stopped`)
    event('stop', { aigate: { signal } }, `${signal}: stopped`)
    process.exit(0)
  }

  /** Re-read rules and policy and hand them to the workers; throws (old rules stay) when they are refused. */
  const reload = (why: string): RulesInfo => {
    try {
      const { ruleset: next, texts } = loadRules(opts.rulesDir, opts.policyFile)
      const reloadMsg: ReloadMessage = { type: 'reload', rules: texts }
      for (const w of workers.values()) w.postMessage(reloadMsg)
      health.rules = info(texts, next.lists.length, next.matcher.size)
      const msg = `${why}: reloading ${next.lists.length} vendor lists, ${next.matcher.size} entries`
      say(msg)
      event('reload', { aigate: { lists: next.lists.length, entries: next.matcher.size, policy: opts.policyFile, rules_version: health.rules.version } }, msg)
      return health.rules
    } catch (err) {
      health.reloadFailures++
      const msg = `${why}: rules not reloaded, the old ones stay: ${(err as Error).message.replace(/\n/g, '; ')}`
      say(msg)
      event('reload', { aigate: { policy: opts.policyFile }, error: { message: (err as Error).message } }, msg, 'warn')
      throw err
    }
  }
  /** Reopen the --log file here and in every worker (logrotate moved it). */
  const reopenLogs = (why: string): void => {
    const reopened = eventSink.reopen()
    if (reopened !== null) say(`${why}: cannot reopen the decision log (${reopened.code}): ${reopened.message}; lines go on to the old file`)
    for (const w of workers.values()) w.postMessage({ type: 'reopen' })
  }

  process.on('SIGTERM', () => { void stop('SIGTERM') })
  process.on('SIGINT', () => { void stop('SIGINT') })
  process.on('SIGHUP', () => {
    sdNotify('RELOADING=1')
    try { reload('SIGHUP') } catch { /* reported; the old rules stay */ }
    sdNotify('READY=1')
  })
  process.on('SIGUSR2', () => { reopenLogs('SIGUSR2') })
  process.on('SIGUSR1', () => {
    void (async () => {
      for (const w of workers.values()) w.postMessage({ type: 'stats' })
      for (const m of await waitFor('stats')) {
        if (m.type !== 'stats') continue
        say(`stats queue ${m.queue}: ${JSON.stringify(m.stats)}`)
        event('stats', { aigate: { queue: m.queue, stats: m.stats } }, `counters of queue ${m.queue}`)
      }
    })()
  })
  for (const [q, w] of workers) {
    w.on('error', (err) => { say(`queue ${q}: worker failed: ${err.message}`); process.exitCode = 1; void stop('error') })
    w.on('message', (m: FromWorker) => {
      if (m.type === 'report') health.report(m)
      if (m.type === 'reloaded' && !m.ok) {
        health.reloadFailures++
        say(`queue ${q}: reload failed, old rules stay: ${m.message ?? ''}`)
        event('reload', { aigate: { queue: q }, error: { message: m.message ?? '' } }, `queue ${q}: reload failed, old rules stay`, 'warn')
      }
      if (m.type === 'reopened' && !m.ok) say(`queue ${q}: cannot reopen the decision log (${m.code ?? ''}): ${m.message ?? ''}; lines go on to the old file`)
      if (m.type === 'logerror') say(`queue ${q}: cannot write the decision log (${m.code}): ${m.message}; verdicts go on, lost lines are counted (SIGUSR1)`)
    })
  }

  try {
    if (opts.metrics !== null || opts.control !== null) {
      readFirewall()
      const t = setInterval(readFirewall, FIREWALL_READ_MS)
      t.unref()
      closers.push(() => { clearInterval(t) })
    }
    if (opts.metrics !== null) {
      const registry = metricsRegistry(health)
      const server = await serveMetrics(registry, opts.metrics.host, opts.metrics.port).catch((err: NodeJS.ErrnoException) => {
        throw new StartupError(err.code ?? 'EINVAL', `--metrics ${opts.metrics?.host ?? ''}:${opts.metrics?.port ?? ''}: cannot listen (${err.code ?? err.message})`)
      })
      closers.push(() => { server.close() })
      say(`metrics at http://${opts.metrics.host.includes(':') ? `[${opts.metrics.host}]` : opts.metrics.host}:${opts.metrics.port}/metrics`)
    }
    if (opts.control !== null) {
      const path = opts.control
      const handle = (verb: Verb): unknown => {
        if (verb === 'status') return health.status()
        if (verb === 'reload') return reload('reload')
        reopenLogs('reopen-logs')
        return { reopened: true }
      }
      try {
        const server = await serveControl(path, handle)
        closers.push(() => { server.close() })
      } catch (err) {
        if (!(err instanceof ControlInUse)) throw new StartupError((err as NodeJS.ErrnoException).code ?? 'EINVAL', `--control ${path}: cannot listen (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
        say(`--control: ${err.message}; this one has no control socket (give it its own with --control PATH)`)
      }
    }
  } catch (err) {
    // Workers run already: stop them, or the process would live on without a report.
    for (const c of closers) c()
    await Promise.all([...workers.values()].map((w) => w.terminate()))
    throw err
  }
  const watchdog = watchdogInterval()
  if (watchdog > 0) {
    // Fed only while every worker reports: a stuck serving loop stops the feed and systemd restarts us.
    const t = setInterval(() => { if (health.allReporting(Date.now(), watchdog * 2)) sdNotify('WATCHDOG=1') }, watchdog)
    t.unref()
    closers.push(() => { clearInterval(t) })
  }
  sdNotify(`READY=1\nSTATUS=${running}`)
}

/** How often the firewall's counters are read for bypass and overload (status, metrics). */
const FIREWALL_READ_MS = 5000

/** Half the watchdog period systemd asked for (WATCHDOG_USEC, for this pid), in ms; 0 without one. */
function watchdogInterval (): number {
  const usec = Number(process.env.WATCHDOG_USEC)
  const pid = process.env.WATCHDOG_PID
  if (!Number.isFinite(usec) || usec <= 0 || (pid !== undefined && Number(pid) !== process.pid)) return 0
  return Math.max(100, Math.floor(usec / 2000))
}

/** Parse `0`, `0,1`, `0-3` into queue numbers. */
export function parseQueues (text: string): number[] | null {
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim())
    if (m === null) return null
    const a = Number(m[1])
    const b = m[2] === undefined ? a : Number(m[2])
    if (a > 65535 || b > 65535 || b < a || b - a > 63) return null
    for (let q = a; q <= b; q++) out.add(q)
  }
  return [...out].sort((x, y) => x - y)
}
