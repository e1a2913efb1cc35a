import t from 'tap'
import { Health, rulesVersion, SILENT_MS, RECENT_MS, type RulesInfo } from '../../../src/daemon/health.js'
import { parseKernelQueues, type WorkerCounters, type WorkerReport } from '../../../src/daemon/report.js'

/**
 * The main thread's picture of the daemon (daemon/health.ts): what `aigate
 * status` answers and the watchdog is fed from. Driven with explicit times:
 * reports carry `at`, status() and firewall() take `now`.
 */
const RULES: RulesInfo = { version: 'abc', loadedAt: 0, lists: 2, entries: 10, policy: '/p.yaml' }

function counters (over: Partial<WorkerCounters> = {}): WorkerCounters {
  return {
    packets: 0, batches: 0, enobufs: 0, recvErrors: 0, sendErrors: 0, verdicts: 0, verdictErrors: 0,
    overloadDropped: 0, userDropped: 0, bound: 1, portId: 4242, decided: 0, undecodable: 0, classified: 0,
    implausible: 0, tooManySegments: 0, cacheHits: 0, cacheMisses: 0, tcpFlows: 0, quicFlows: 0,
    flowsEvicted: 0, flowsExpired: 0, flowsShed: 0, flowsLost: 0, logLines: 0, logLost: 0,
    ...over,
  }
}
const report = (queue: number, at: number, over: Partial<WorkerCounters> = {}, lastVerdict = 0): WorkerReport =>
  ({ type: 'report', queue, at, lastVerdict, counters: counters(over), decisions: [] })

/** A Health whose start is `t0` (its uptime and silence are counted from Date.now() at construction). */
function health (queues = [0, 1]): { h: Health, t0: number } {
  const h = new Health(queues, RULES, '1.2.3')
  return { h, t0: h.startedAt }
}

t.test('healthy with fresh reports of bound queues', async (t) => {
  const { h, t0 } = health()
  h.report(report(0, t0 + 1000, { packets: 10, decided: 4 }, t0 + 900))
  h.report(report(1, t0 + 1100, { packets: 5, decided: 1 }))
  const s = h.status(t0 + 2000)
  t.equal(s.state, 'healthy')
  t.same(s.reasons, [])
  t.same(s.queues.map((q) => [q.queue, q.bound, q.portId, q.reportAgeMs]), [[0, true, 4242, 1000], [1, true, 4242, 900]])
  t.equal(s.queues[0]?.lastVerdict, new Date(t0 + 900).toISOString())
  t.equal(s.queues[1]?.lastVerdict, null, 'no verdict yet: null')
  t.equal(s.totals.packets, 15)
  t.equal(s.totals.decided, 5)
  t.equal(s.totals.bypassedPackets, null, 'no firewall counters: bypass unknown')
  t.equal(s.recent.bypassedPackets, null)
  t.equal(s.uptimeSeconds, 2)
  t.equal(s.version, '1.2.3')
  t.equal(s.pid, process.pid)
  t.equal(s.rules.version, 'abc')
})

t.test('degraded when a queue never reported, or its report is older than SILENT_MS', async (t) => {
  const { h, t0 } = health()
  h.report(report(0, t0 + 1000))
  let s = h.status(t0 + 1500)
  t.equal(s.state, 'degraded', 'queue 1 has not reported')
  t.match(s.reasons, [/^queue 1: no report from its worker/])
  t.equal(s.queues[1]?.bound, false)
  h.report(report(1, t0 + 1600))
  t.equal(h.status(t0 + 1700).state, 'healthy')
  const late = t0 + 1000 + SILENT_MS
  s = h.status(late)
  t.equal(s.state, 'degraded', `queue 0's report is ${SILENT_MS} ms old`)
  t.same(s.reasons, [`queue 0: no report from its worker for ${SILENT_MS / 1000} s`])
  t.equal(s.queues[0]?.bound, false, 'a silent worker does not count as bound')
  t.equal(s.queues[1]?.bound, true)
  t.equal(h.status(late - 1).state, 'healthy', 'just under SILENT_MS: still healthy')
})

t.test('degraded when a report says the queue is not bound', async (t) => {
  const { h, t0 } = health([7])
  h.report(report(7, t0 + 1000, { bound: 0, portId: 0 }))
  const s = h.status(t0 + 1200)
  t.equal(s.state, 'degraded')
  t.same(s.reasons, ['queue 7: not bound in the kernel'])
  t.equal(s.queues[0]?.bound, false)
})

t.test('degraded while overload rose in the last minute, healthy after', async (t) => {
  const { h, t0 } = health([0])
  // Reports once a second, as the workers send them.
  let at = t0
  const tick = (overloadDropped: number): void => { at += 1000; h.report(report(0, at, { overloadDropped })) }
  for (let i = 0; i < 5; i++) tick(0)
  t.equal(h.status(at).state, 'healthy')
  tick(-1)
  t.equal(h.status(at).state, 'healthy', 'an unreadable kernel count (-1) is not overload')
  tick(30)
  const rose = at
  let s = h.status(at)
  t.equal(s.state, 'degraded')
  t.same(s.reasons, ['overload: 30 packets dropped in the last minute'])
  t.equal(s.recent.overloadDropped, 30)
  t.equal(s.totals.overloadDropped, 30)
  while (at < rose + RECENT_MS - 1000) tick(30)
  t.equal(h.status(at).state, 'degraded', 'still within the minute')
  while (at < rose + RECENT_MS + 1000) tick(30)
  s = h.status(at)
  t.equal(s.state, 'healthy', 'a minute later, with no new drops: healthy')
  t.equal(s.recent.overloadDropped, 0)
  t.equal(s.totals.overloadDropped, 30, 'the total stays')
  tick(31)
  t.same(h.status(at).reasons, ['overload: 1 packets dropped in the last minute'], 'one more drop: degraded again')
})

t.test('overload with no reports in between: status() alone drives the clock', async (t) => {
  const { h, t0 } = health([0])
  h.report(report(0, t0 + 1000))
  h.report(report(0, t0 + 2000, { overloadDropped: 5 }))
  t.equal(h.status(t0 + 2500).state, 'degraded')
  // The worker keeps reporting the same total; status is asked 61 s later.
  h.report(report(0, t0 + 2000 + RECENT_MS + 1000, { overloadDropped: 5 }))
  t.equal(h.status(t0 + 2000 + RECENT_MS + 1100).state, 'healthy')
})

t.test('source budget drops count as overload when the firewall is readable', async (t) => {
  const { h, t0 } = health([0])
  h.firewall({ queuedPackets: 100, overBudgetPackets: 50 }, t0)
  h.report(report(0, t0 + 1000))
  t.equal(h.status(t0 + 1000).state, 'healthy', 'the firewall\'s counts before we started are the baseline')
  h.firewall({ queuedPackets: 100, overBudgetPackets: 70 }, t0 + 2000)
  h.report(report(0, t0 + 2100))
  const s = h.status(t0 + 2200)
  t.equal(s.totals.overBudgetPackets, 20)
  t.equal(h.overload(), 20)
  t.same(s.reasons, ['overload: 20 packets dropped in the last minute'])
})

t.test('bypass: firewall queue-rule packets since the baseline − packets read − queue-full drops', async (t) => {
  const { h, t0 } = health([0, 1])
  t.equal(h.bypassed(), null, 'no firewall reading: null')
  h.firewall(null, t0)
  t.equal(h.bypassed(), null, 'not readable: null')
  // Before the daemon started the rules sent 5000 packets (fail-open): the baseline.
  h.firewall({ queuedPackets: 5000, overBudgetPackets: 0 }, t0 + 100)
  t.equal(h.bypassed(), 0)
  h.report(report(0, t0 + 1000, { packets: 300 }))
  h.report(report(1, t0 + 1000, { packets: 200, overloadDropped: 50 }))
  h.firewall({ queuedPackets: 5000 + 550, overBudgetPackets: 0 }, t0 + 1500)
  h.report(report(0, t0 + 2000, { packets: 300 }))
  h.report(report(1, t0 + 2000, { packets: 200, overloadDropped: 50 }))
  t.equal(h.bypassed(), 0, 'every packet sent was read or dropped for a full queue')
  t.equal(h.status(t0 + 2100).state, 'degraded', 'the queue-full drops are overload')
  h.firewall({ queuedPackets: 5000 + 700, overBudgetPackets: 0 }, t0 + 2500)
  h.report(report(0, t0 + 3000, { packets: 320 }))
  h.report(report(1, t0 + 3000, { packets: 210, overloadDropped: 50 }))
  t.equal(h.bypassed(), 700 - 320 - 210 - 50, '120 packets sent and never read')
  const s = h.status(t0 + 3100)
  t.equal(s.totals.bypassedPackets, 120)
  t.equal(s.recent.bypassedPackets, 120)
  t.match(s.reasons, ['overload: 50 packets dropped in the last minute', 'bypass: 120 queued packets never read in the last minute'])
  h.firewall(null, t0 + 3500)
  t.equal(h.bypassed(), null, 'the firewall became unreadable: unknown again')
})

t.test('bypass rises: degraded for a minute', async (t) => {
  const { h, t0 } = health([0])
  let at = t0
  let read = 0
  let sent = 1000
  h.firewall({ queuedPackets: sent, overBudgetPackets: 0 }, at)
  const tick = (readNow: number, sentNow: number): void => {
    at += 1000; read += readNow; sent += sentNow
    h.firewall({ queuedPackets: sent, overBudgetPackets: 0 }, at - 500)
    h.report(report(0, at, { packets: read }))
  }
  for (let i = 0; i < 5; i++) tick(10, 10)
  t.equal(h.status(at).state, 'healthy')
  tick(10, 25)
  const rose = at
  t.same(h.status(at).reasons, ['bypass: 15 queued packets never read in the last minute'])
  while (at < rose + RECENT_MS + 1000) tick(10, 10)
  t.equal(h.status(at).state, 'healthy', 'a minute later: healthy')
  t.equal(h.bypassed(), 15, 'the total stays')
})

t.test('a firewall reading newer than the reports is not bypass: it waits for the workers to report after it', async (t) => {
  const { h, t0 } = health([0])
  h.firewall({ queuedPackets: 0, overBudgetPackets: 0 }, t0)
  h.report(report(0, t0 + 1000, { packets: 1000 }))
  // Steady load, 1000 packets a second, every one read. The firewall is read
  // half a second after the last report: 500 more sent, read since.
  h.firewall({ queuedPackets: 1500, overBudgetPackets: 0 }, t0 + 1500)
  t.equal(h.bypassed(), 0, 'not yet counted against a report older than the reading')
  t.equal(h.status(t0 + 1600).state, 'healthy', 'a steady load does not flap to bypass')
  h.report(report(0, t0 + 2000, { packets: 2000 }))
  t.equal(h.bypassed(), 0, 'the report after the reading read them all')
  // A worker that stops reporting is not waited for past SILENT_MS: what its queue sends is bypass.
  h.firewall({ queuedPackets: 2600, overBudgetPackets: 0 }, t0 + 2500)
  t.equal(h.bypassed(), 0)
  const s = h.status(t0 + 2500 + SILENT_MS)
  t.equal(s.totals.bypassedPackets, 600)
  t.match(s.reasons, [/^queue 0: no report/, 'bypass: 600 queued packets never read in the last minute'])
})

t.test('allReporting: every queue reported within the window', async (t) => {
  const { h, t0 } = health([0, 1])
  t.equal(h.allReporting(t0, 1000), false, 'no report yet')
  h.report(report(0, t0 + 100))
  t.equal(h.allReporting(t0 + 200, 1000), false, 'queue 1 silent')
  h.report(report(1, t0 + 300))
  t.equal(h.allReporting(t0 + 1099, 1000), true)
  t.equal(h.allReporting(t0 + 1100, 1000), false, 'queue 0\'s report is 1000 ms old')
  h.report(report(0, t0 + 1100))
  t.equal(h.allReporting(t0 + 1200, 1000), true)
  h.report(report(5, t0 + 1200))
  t.equal(h.allReporting(t0 + 1250, 1000), true, 'a queue not served is not waited for')
})

t.test('rulesVersion: any text changes it, list order does not', async (t) => {
  const base = {
    lists: [{ file: '/r/a.txt', text: 'a.example\n' }, { file: '/r/b.txt', text: 'b.example\n' }],
    policy: { file: '/p.yaml', text: 'default: allow\n' },
  }
  const v = rulesVersion(base)
  t.match(v, /^[0-9a-f]{16}$/)
  t.equal(rulesVersion({ ...base, lists: [...base.lists].reverse() }), v, 'the same lists in another order: the same version')
  t.equal(rulesVersion(structuredClone(base)), v, 'the same texts: the same version')
  const changed = [
    { ...base, lists: [{ file: '/r/a.txt', text: 'a.example\nc.example\n' }, base.lists[1]!] },
    { ...base, lists: [base.lists[0]!, { file: '/r/b.txt', text: 'b.example' }] },
    { ...base, lists: [base.lists[0]!] },
    { ...base, lists: [...base.lists, { file: '/r/c.txt', text: '' }] },
    { ...base, lists: [{ file: '/r/z.txt', text: 'a.example\n' }, base.lists[1]!] },
    { ...base, policy: { file: '/p.yaml', text: 'default: block\n' } },
    { ...base, policy: { file: '/q.yaml', text: 'default: allow\n' } },
    // Moving text across the file boundary changes the version too.
    { ...base, lists: [{ file: '/r/a.txt', text: 'a.example\nb' }, { file: '/r/b.txt', text: '.example\n' }] },
  ]
  const seen = new Set([v])
  for (const c of changed) {
    const w = rulesVersion(c)
    t.not(w, v, `changed: ${JSON.stringify(c).slice(0, 80)}`)
    seen.add(w)
  }
  t.equal(seen.size, changed.length + 1, 'every change a different version')
})

t.test('parseKernelQueues: the kernel\'s /proc/net/netfilter/nfnetlink_queue', async (t) => {
  // queue, peer portid, queue total, copy mode, copy range, queue dropped, user dropped, id sequence, 1
  // (net/netfilter/nfnetlink_queue.c, seq_show: "%5u %6u %5u %1u %5u %5u %5u %8u %2d\n")
  const text = [
    '    0 3221225473     0 2 65531     0     0    20113  1',
    '    1   7788    12 2 65531  4096    17   998877  1',
    '  300 2147483649     0 2  4096     0     0        0  1',
    '',
  ].join('\n')
  t.same(parseKernelQueues(text, 0), { portId: 3221225473, overloadDropped: 0, userDropped: 0 })
  t.same(parseKernelQueues(text, 1), { portId: 7788, overloadDropped: 4096, userDropped: 17 })
  t.same(parseKernelQueues(text, 300), { portId: 2147483649, overloadDropped: 0, userDropped: 0 })
  t.equal(parseKernelQueues(text, 2), null, 'a queue no one has bound: no line')
  t.equal(parseKernelQueues(text, 30), null, 'not a prefix match')
  t.equal(parseKernelQueues('', 0), null, 'no queue bound at all (empty file)')
  t.equal(parseKernelQueues('    0   7788\n', 0), null, 'a short line is not read')
})
