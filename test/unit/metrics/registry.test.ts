import t from 'tap'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { metricsRegistry, parseListen, serveMetrics, type MetricsSource } from '../../../src/metrics/registry.js'

/**
 * The Prometheus text the daemon serves (metrics/registry.ts), read from a
 * fake source as the main thread's Health would give it: exact sample lines
 * with their labels, per queue; the bypass counter only when the firewall's
 * counters are readable; the version as aigate_build_info. parseListen for
 * --metrics, and the HTTP server: GET /metrics, 404 elsewhere.
 */
function source (over: Partial<MetricsSource> = {}): MetricsSource {
  const counters = (packets: number): Record<string, number> => ({
    packets, batches: packets / 2, enobufs: 1, verdictErrors: 0, undecodable: 2, cacheHits: 5, cacheMisses: 6,
    logLines: 7, logLost: 0, implausible: 3, overloadDropped: 4, bound: 1, tcpFlows: 9, quicFlows: 1,
    flowsEvicted: 1, flowsExpired: 2, flowsShed: 0, flowsLost: 0,
  })
  return {
    version: '9.8.7-test',
    reports: new Map([
      [0, { lastVerdict: 1_700_000_000_000, counters: counters(100), decisions: [{ action: 'block', vendor: 'anthropic', seen: 'sni', n: 5 }, { action: 'allow', vendor: 'none', seen: 'dns', n: 40 }] }],
      [3, { lastVerdict: 0, counters: { ...counters(20), bound: 0, overloadDropped: -1 }, decisions: [{ action: 'block', vendor: 'anthropic', seen: 'quic', n: 2 }] }],
    ]),
    rules: { loadedAt: 1_700_000_500_000, entries: 1234 },
    reloadFailures: 2,
    bypassed: () => 17,
    overBudget: () => 8,
    ...over,
  }
}

const samples = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).sort()

t.test('the text served for a source: exact sample lines', async (t) => {
  const text = await metricsRegistry(source()).metrics()
  t.same(samples(text, 'aigate_decisions_total'), [
    'aigate_decisions_total{action="allow",vendor="none",seen="dns",queue="0"} 40',
    'aigate_decisions_total{action="block",vendor="anthropic",seen="quic",queue="3"} 2',
    'aigate_decisions_total{action="block",vendor="anthropic",seen="sni",queue="0"} 5',
  ])
  t.match(text, '# TYPE aigate_decisions_total counter')
  t.same(samples(text, 'aigate_queue_packets_total'), ['aigate_queue_packets_total{queue="0"} 100', 'aigate_queue_packets_total{queue="3"} 20'])
  t.same(samples(text, 'aigate_queue_batches_total'), ['aigate_queue_batches_total{queue="0"} 50', 'aigate_queue_batches_total{queue="3"} 10'])
  t.same(samples(text, 'aigate_queue_enobufs_total'), ['aigate_queue_enobufs_total{queue="0"} 1', 'aigate_queue_enobufs_total{queue="3"} 1'])
  t.same(samples(text, 'aigate_verdict_errors_total'), ['aigate_verdict_errors_total{queue="0"} 0', 'aigate_verdict_errors_total{queue="3"} 0'])
  t.same(samples(text, 'aigate_cache_hits_total'), ['aigate_cache_hits_total{queue="0"} 5', 'aigate_cache_hits_total{queue="3"} 5'])
  t.same(samples(text, 'aigate_queue_bound'), ['aigate_queue_bound{queue="0"} 1', 'aigate_queue_bound{queue="3"} 0'])
  t.same(samples(text, 'aigate_last_verdict_timestamp_seconds'), ['aigate_last_verdict_timestamp_seconds{queue="0"} 1700000000'], 'no timestamp before the first verdict')
  t.same(samples(text, 'aigate_overload_total'), ['aigate_overload_total{kind="queue-full"} 4', 'aigate_overload_total{kind="source-budget"} 8'], 'an unreadable kernel count (-1) adds nothing')
  t.same(samples(text, 'aigate_queue_bypassed_packets_total'), ['aigate_queue_bypassed_packets_total 17'])
  t.same(samples(text, 'aigate_flow_evictions_total'), [
    'aigate_flow_evictions_total{queue="0",reason="evicted"} 1', 'aigate_flow_evictions_total{queue="0",reason="expired"} 2',
    'aigate_flow_evictions_total{queue="0",reason="lost"} 0', 'aigate_flow_evictions_total{queue="0",reason="shed"} 0',
    'aigate_flow_evictions_total{queue="3",reason="evicted"} 1', 'aigate_flow_evictions_total{queue="3",reason="expired"} 2',
    'aigate_flow_evictions_total{queue="3",reason="lost"} 0', 'aigate_flow_evictions_total{queue="3",reason="shed"} 0',
  ])
  t.same(samples(text, 'aigate_rules_loaded_timestamp_seconds'), ['aigate_rules_loaded_timestamp_seconds 1700000500'])
  t.same(samples(text, 'aigate_rules_entries'), ['aigate_rules_entries 1234'])
  t.same(samples(text, 'aigate_reload_failures_total'), ['aigate_reload_failures_total 2'])
  t.same(samples(text, 'aigate_build_info'), ['aigate_build_info{version="9.8.7-test"} 1'])
  t.match(text, /^process_cpu_user_seconds_total \d/m, 'the default process metrics')
  t.match(text, /^nodejs_heap_size_used_bytes \d/m)
})

t.test('counters follow the reports, and are not added up over scrapes', async (t) => {
  const src = source()
  const reg = metricsRegistry(src)
  await reg.metrics()
  await reg.metrics()
  const text = await reg.metrics()
  t.same(samples(text, 'aigate_queue_packets_total'), ['aigate_queue_packets_total{queue="0"} 100', 'aigate_queue_packets_total{queue="3"} 20'], 'the third scrape: the same totals')
  t.same(samples(text, 'aigate_decisions_total').length, 3)
  const r0 = src.reports.get(0) as unknown as { counters: Record<string, number>, decisions: Array<{ action: string, vendor: string, seen: string, n: number }> }
  r0.counters.packets = 150
  r0.decisions[0] = { action: 'block', vendor: 'anthropic', seen: 'sni', n: 9 }
  const next = await reg.metrics()
  t.match(samples(next, 'aigate_queue_packets_total'), ['aigate_queue_packets_total{queue="0"} 150'])
  t.ok(samples(next, 'aigate_decisions_total').includes('aigate_decisions_total{action="block",vendor="anthropic",seen="sni",queue="0"} 9'))
})

t.test('no bypass sample when the firewall\'s counters cannot be read; no source-budget either', async (t) => {
  const text = await metricsRegistry(source({ bypassed: () => null, overBudget: () => null })).metrics()
  t.same(samples(text, 'aigate_queue_bypassed_packets_total'), [], 'absent, not 0: an unknown is not a healthy zero')
  t.same(samples(text, 'aigate_overload_total'), ['aigate_overload_total{kind="queue-full"} 4'])
  const zero = await metricsRegistry(source({ bypassed: () => 0 })).metrics()
  t.same(samples(zero, 'aigate_queue_bypassed_packets_total'), ['aigate_queue_bypassed_packets_total 0'], 'a readable 0 is served')
})

t.test('parseListen', async (t) => {
  t.same(parseListen('127.0.0.1:9842'), { host: '127.0.0.1', port: 9842 })
  t.same(parseListen('[::1]:9842'), { host: '::1', port: 9842 })
  t.same(parseListen('0.0.0.0:1'), { host: '0.0.0.0', port: 1 })
  t.same(parseListen('9842'), { host: '127.0.0.1', port: 9842 }, 'a bare port: loopback')
  t.same(parseListen('localhost:65535'), { host: 'localhost', port: 65535 })
  for (const bad of [':80', '1.2.3.4:0', '1.2.3.4:70000', '1.2.3.4:', '1.2.3.4', '::1:9842', '[::1]', '[zz]:80', 'junk', '', 'a:b', '1.2.3.4:80x', ' 1.2.3.4:80', '0', '70000', '[::1]:-1']) {
    t.equal(parseListen(bad), null, `refused: ${JSON.stringify(bad)}`)
  }
})

function get (port: number, path: string, method = 'GET'): Promise<{ status: number, type: string, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('serveMetrics: GET /metrics, 404 elsewhere', async (t) => {
  const server = await serveMetrics(metricsRegistry(source()), '127.0.0.1', 0)
  t.teardown(() => { server.close() })
  const { port, address } = server.address() as AddressInfo
  t.equal(address, '127.0.0.1', 'listens where asked')
  const ok = await get(port, '/metrics')
  t.equal(ok.status, 200)
  t.match(ok.type, /^text\/plain; version=0\.0\.4/, 'the Prometheus text format\'s content type')
  t.ok(ok.body.includes('aigate_decisions_total{action="block",vendor="anthropic",seen="sni",queue="0"} 5\n'))
  t.ok(ok.body.includes('aigate_build_info{version="9.8.7-test"} 1\n'))
  t.equal((await get(port, '/metrics?x=1')).status, 200, 'a query string is ignored')
  for (const path of ['/', '/metric', '/metrics/', '/favicon.ico']) {
    const r = await get(port, path)
    t.equal(r.status, 404, `${path}: 404`)
    t.notMatch(r.body, /aigate_/, `${path}: no metrics`)
  }
  t.equal((await get(port, '/metrics', 'POST')).status, 404, 'POST: 404')
})

t.test('serveMetrics rejects when the address is taken', async (t) => {
  const a = await serveMetrics(metricsRegistry(source()), '127.0.0.1', 0)
  t.teardown(() => { a.close() })
  const { port } = a.address() as AddressInfo
  await t.rejects(serveMetrics(metricsRegistry(source()), '127.0.0.1', port), { code: 'EADDRINUSE' })
})
