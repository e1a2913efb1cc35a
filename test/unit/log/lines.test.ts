import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync, openSync, closeSync, createReadStream, renameSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { decodeIp, PacketView } from '../../../src/decode/packet.js'
import { Classifier, Outcome } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { Status } from '../../../src/util/status.js'
import { DecisionLog, FdLines, MemoryLines, LogClock, json, CommunityId } from '../../../src/log/index.js'
import { readVersion } from '../../../src/util/version.js'
import { payloads, expected } from '../../helpers/fixtures.js'
import { tcp4, udp4 } from '../../helpers/packets.js'

/**
 * Decision lines: every field a SOC analyst filters on, for each protocol,
 * built from real captured payloads; hostile bytes (ALPN from the wire,
 * odd rule paths) stay inside one parseable ASCII line; the writer keeps
 * lines whole across threads and survives a reader that goes away.
 */
const exp = expected()
const tls = new Map(payloads('tls'))
const dns = new Map(payloads('dns'))
const http = new Map(payloads('http'))

function decide (c: Classifier, pkt: Buffer, view = new PacketView(), out = new Outcome()): { view: PacketView, out: Outcome } {
  if (decodeIp(pkt, 0, pkt.length, view) !== Status.Ok) throw new Error('bad packet')
  c.classify(view, out, 1)
  return { view, out }
}

const tuple = { src: '10.9.0.1', dst: '10.9.0.2', sport: 40000, dport: 443 }
const isAscii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s)

t.test('a TLS decision line carries the ECS fields and pino\'s shape', async (t) => {
  const c = new Classifier(loadRuleset())
  const mem = new MemoryLines()
  const clock = new LogClock()
  clock.ms = Date.UTC(2026, 10, 26, 1, 2, 3, 456)
  const log = new DecisionLog(mem, clock, 'gw1')
  const { view, out } = decide(c, tcp4(tuple, 1000, tls.get('tls/curl-7.88-claude.ai.bin') as Buffer))
  log.write(view, out, { queue: 3, durationNs: 1234 })
  t.equal(mem.raw.length, 1)
  const l = mem.parsed()[0] as Record<string, any>
  t.same(Object.keys(l).slice(0, 5), ['log.level', '@timestamp', 'ecs.version', 'observer', 'event'])
  t.equal(l.name, undefined, 'no root name: destination.domain')
  t.equal(l.host, undefined, 'the gateway is the observer, not host.*')
  t.equal(Object.keys(l).at(-1), 'message')
  t.match(l, {
    'log.level': 'info',
    '@timestamp': '2026-11-26T01:02:03.456Z',
    observer: { type: 'firewall', vendor: 'aigate', product: 'aigate', version: readVersion(), hostname: 'gw1' },
    event: { kind: 'event', category: ['network'], type: ['connection', 'denied'], action: 'block', dataset: 'aigate.decision', duration: 1234 },
    aigate: { seen: 'sni', vendor: 'anthropic', reason: 'vendor', network: null, cache: 'miss', ech: false, queue: 3 },
    rule: { name: 'claude.ai', ruleset: 'anthropic', category: 'ai' },
    source: { ip: '10.9.0.1', port: 40000 },
    destination: { ip: '10.9.0.2', port: 443, domain: 'claude.ai' },
    network: { transport: 'tcp', iana_number: '6', type: 'ipv4', protocol: 'tls', community_id: new CommunityId().from(Buffer.from([10, 9, 0, 1, 10, 9, 0, 2]), 0, 4, 4, 6, 40000, 443) },
    tls: { client: { server_name: 'claude.ai' } },
    related: { hosts: ['claude.ai'] },
    message: 'block claude.ai (anthropic)',
  })
  t.same(l.aigate.alpn, exp['tls/curl-7.88-claude.ai.bin']?.alpn)
  t.match(l.rule.reference, /rules\/vendors\/anthropic\.txt:\d+$/)

  // The same name again: a cache hit, same decision fields.
  const again = decide(c, tcp4({ ...tuple, sport: 40001 }, 1000, tls.get('tls/curl-7.88-claude.ai.bin') as Buffer))
  log.write(again.view, again.out)
  const l2 = mem.parsed()[1] as Record<string, any>
  t.equal(l2.aigate.cache, 'hit')
  t.equal(l2.aigate.queue, undefined, 'no queue outside the daemon')
  t.equal(l2.event.duration, undefined)
  t.same(l2.rule, l.rule)
})

t.test('numbers are written exactly: durations, ports, DNS ids, addresses', async (t) => {
  const c = new Classifier(loadRuleset())
  const mem = new MemoryLines()
  const log = new DecisionLog(mem)
  const view = new PacketView()
  const out = new Outcome()
  const hello = tls.get('tls/curl-7.88-www.example.com.bin') as Buffer
  const durations = [0, 7, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 123456789, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 1e12 + 7, Number.MAX_SAFE_INTEGER]
  for (const [k, n] of durations.entries()) {
    const sport = [0, 1, 9, 10, 99, 100, 1000, 9999, 10000, 65535][k % 10] as number
    const pkt = tcp4({ src: `10.${k}.0.255`, dst: '0.0.0.0', sport, dport: 443 }, 1, hello)
    decide(c, pkt, view, out)
    log.write(view, out, { durationNs: n, queue: 65535 })
    const l = mem.parsed().at(-1) as Record<string, any>
    t.equal(l.event.duration, n, `duration ${n}`)
    t.equal(l.source.port, sport)
    t.equal(l.source.ip, `10.${k}.0.255`)
    t.equal(l.destination.ip, '0.0.0.0')
    t.equal(l.aigate.queue, 65535)
  }
})

t.test('DNS lines: one per question with its type; HTTP lines name url.domain; allow without a rule has no rule field', async (t) => {
  const c = new Classifier(loadRuleset())
  const mem = new MemoryLines()
  const log = new DecisionLog(mem)
  const file = 'dns/dig-9.18-udp-https.bin'
  const d = decide(c, udp4({ ...tuple, dport: 53 }, dns.get(file) as Buffer))
  log.write(d.view, d.out)
  const want = exp[file]
  const lines = mem.parsed()
  t.equal(lines.length, want?.names?.length)
  t.equal(lines[0]?.dns.question.name, want?.names?.[0])
  t.equal(lines[0]?.dns.question.type, 'HTTPS')
  t.equal(lines[0]?.dns.type, 'query')
  t.equal(lines[0]?.network.protocol, 'dns')
  t.equal(lines[0]?.network.transport, 'udp')

  const hfile = [...http.keys()][0] as string
  mem.clear()
  const h = decide(c, tcp4({ ...tuple, dport: 80 }, 1, http.get(hfile) as Buffer))
  log.write(h.view, h.out)
  const hl = mem.parsed()[0] as Record<string, any>
  t.equal(hl.url.domain, exp[hfile]?.host)
  t.equal(hl.network.protocol, 'http')

  mem.clear()
  const e = decide(c, tcp4(tuple, 1, tls.get('tls/curl-7.88-www.example.com.bin') as Buffer))
  log.write(e.view, e.out)
  const el = mem.parsed()[0] as Record<string, any>
  t.equal(el.event.action, 'allow')
  t.equal(el.rule, undefined)
  t.equal(el.aigate.vendor, null)
  t.equal(el.message, 'allow www.example.com')
})

t.test('hostile ALPN bytes from the wire stay inside one ASCII line', async (t) => {
  const hello = Buffer.from(tls.get('tls/curl-7.88-claude.ai.bin') as Buffer)
  const at = hello.indexOf('http/1.1')
  t.ok(at > 0)
  // Same length, so the hello stays well-formed: quote, newline, 0xff, backslash, control byte, U+2028's bytes.
  Buffer.from([0x22, 0x0a, 0xff, 0x5c, 0x01, 0xe2, 0x80, 0xa8]).copy(hello, at)
  const c = new Classifier(loadRuleset())
  const mem = new MemoryLines()
  const { view, out } = decide(c, tcp4(tuple, 1, hello))
  new DecisionLog(mem).write(view, out)
  t.equal(mem.raw.length, 1)
  const line = mem.raw[0] as string
  t.ok(isAscii(line), 'printable ASCII only')
  t.notOk(line.includes('\n'))
  t.same(JSON.parse(line).aigate.alpn, ['h2', '"\n\xff\\\x01\xe2\x80\xa8'])
})

t.test('a big ALPN list is cut at 16 entries (real 62-protocol hello)', async (t) => {
  const c = new Classifier(loadRuleset())
  const mem = new MemoryLines()
  const file = 'tls/openssl-3.0-bigalpn-api.openai.com.bin'
  const { view, out } = decide(c, tcp4(tuple, 1, tls.get(file) as Buffer))
  new DecisionLog(mem).write(view, out)
  const alpn = mem.parsed()[0]?.aigate.alpn as string[]
  t.equal(exp[file]?.alpn?.length, 62)
  t.same(alpn, exp[file]?.alpn?.slice(0, 16))
})

t.test('rule text from files is escaped (quotes, non-ASCII in the rules path)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const rules = join(dir, 'ru"les-ü')
  mkdirSync(rules)
  writeFileSync(join(rules, 'acme.txt'), '# vendor: acme\n# category: ai\n# source: test\nclaude.ai\n')
  writeFileSync(join(dir, 'policy.yaml'), 'default: allow\nvendors:\n  acme: block\n')
  const c = new Classifier(loadRuleset(rules, join(dir, 'policy.yaml')))
  const mem = new MemoryLines()
  const { view, out } = decide(c, tcp4(tuple, 1, tls.get('tls/curl-7.88-claude.ai.bin') as Buffer))
  new DecisionLog(mem).write(view, out)
  const line = mem.raw[0] as string
  t.ok(isAscii(line))
  t.equal(JSON.parse(line).rule.reference, join(rules, 'acme.txt') + ':4')
  t.equal(json('a"b\u00fc\u2028'), '"a\\"b\\u00fc\\u2028"')
})

t.test('FdLines: several threads on one file and one pipe, no line mixed or lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sinkUrl = pathToFileURL(join(import.meta.dirname, '..', '..', '..', 'dist', 'src', 'log', 'sink.js')).href
  const lock = new SharedArrayBuffer(4)
  const code = `
    const { workerData, parentPort } = require('node:worker_threads')
    import(workerData.sinkUrl).then(({ FdLines }) => {
      const s = new FdLines(workerData.dest, workerData.lock)
      for (let i = 0; i < workerData.n; i++) {
        // Lines of 40..3000 bytes so runs end at many different offsets.
        s.line(JSON.stringify({ w: workerData.id, i, pad: 'x'.repeat(40 + (i * 37) % 2960) }))
        if (i % 50 === 49) s.flush()
      }
      s.close()
      parentPort.postMessage({ written: s.written, lost: s.lost })
    })`
  const run = async (dest: string | number, n: number): Promise<void> => {
    const done = [0, 1, 2].map((id) => new Promise<{ written: number }>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { sinkUrl, dest, lock, id, n } })
      w.once('message', resolve); w.once('error', reject)
    }))
    for (const r of await Promise.all(done)) t.equal(r.written, n)
  }
  const check = (text: string, n: number, what: string): void => {
    const lines = text.split('\n')
    t.equal(lines.pop(), '', `${what}: ends with a newline`)
    t.equal(lines.length, 3 * n, `${what}: every line`)
    const next = [0, 0, 0]
    let bad = 0
    for (const l of lines) {
      try {
        const o = JSON.parse(l) as { w: number, i: number }
        if (o.i !== next[o.w]) bad++
        next[o.w] = o.i + 1
      } catch { bad++ }
    }
    t.equal(bad, 0, `${what}: whole lines, each writer's in order`)
  }
  const file = join(dir, 'decisions.log')
  await run(file, 3000)
  check(readFileSync(file, 'latin1'), 3000, 'file')

  // A pipe: a FIFO read by this thread while the writers run. The write end
  // is opened O_RDWR first (that never blocks on Linux), so the reader's open
  // finds a writer; closing it afterwards ends the reader's stream.
  const fifo = join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  const wfd = openSync(fifo, 'r+')
  const chunks: Buffer[] = []
  const reader = createReadStream(fifo)
  reader.on('data', (c) => chunks.push(c as Buffer))
  const ended = new Promise<void>((resolve) => reader.on('end', () => resolve()))
  await run(wfd, 2000)
  closeSync(wfd)
  await ended
  check(Buffer.concat(chunks).toString('latin1'), 2000, 'pipe')
})

t.test('FdLines.reopen: after logrotate moved the file, lines gathered before go to the old file, the next to a new one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'decisions.ndjson')
  const s = new FdLines(file)
  s.line('{"i":0}')
  s.flush()
  s.line('{"i":1}') // still in the buffer when the file is moved
  renameSync(file, `${file}.1`)
  t.equal(s.reopen(), null)
  s.line('{"i":2}')
  s.close()
  t.equal(readFileSync(`${file}.1`, 'latin1'), '{"i":0}\n{"i":1}\n', 'old file: the lines written and buffered before')
  t.equal(readFileSync(file, 'latin1'), '{"i":2}\n', 'new file: the lines after')
  t.equal(s.written, 3)

  // The directory cannot take the new file: the lines go on to the old one.
  const d2 = join(dir, 'gone')
  mkdirSync(d2)
  const s2 = new FdLines(join(d2, 'x.ndjson'))
  renameSync(d2, `${d2}.moved`)
  t.equal(s2.reopen()?.code, 'ENOENT')
  s2.line('{"i":3}')
  s2.close()
  t.equal(readFileSync(join(`${d2}.moved`, 'x.ndjson'), 'latin1'), '{"i":3}\n')

  // stdout and numbered descriptors are not reopened.
  const fd = openSync(join(dir, 'fd'), 'a')
  const s3 = new FdLines(fd)
  t.equal(s3.reopen(), null)
  t.equal(s3.fd, fd)
  closeSync(fd)
})

t.test('FdLines.reopen: threads sharing one lock reopen while the others write; every line once, whole, in one of the two files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sinkUrl = pathToFileURL(join(import.meta.dirname, '..', '..', '..', 'dist', 'src', 'log', 'sink.js')).href
  const lock = new SharedArrayBuffer(4)
  /** Set once the file has been moved; a writer waits for it at its reopen line. */
  const moved = new Int32Array(new SharedArrayBuffer(4))
  const file = join(dir, 'decisions.ndjson')
  const n = 3000
  const at = [700, 1517, 2333]
  const code = `
    const { workerData, parentPort } = require('node:worker_threads')
    import(workerData.sinkUrl).then(({ FdLines }) => {
      const s = new FdLines(workerData.file, workerData.lock)
      parentPort.postMessage('open')
      for (let i = 0; i < workerData.n; i++) {
        if (i === workerData.at) {
          Atomics.wait(workerData.moved, 0, 0, 10000)
          const e = s.reopen()
          if (e !== null) throw new Error(e.message)
        }
        s.line(JSON.stringify({ w: workerData.id, i, pad: 'x'.repeat(40 + (i * 37) % 2960) }))
        if (i % 50 === 49) s.flush()
      }
      s.close()
      parentPort.postMessage({ written: s.written, lost: s.lost })
    })`
  const opened: Array<Promise<unknown>> = []
  const done = at.map((a, id) => new Promise<{ written: number, lost: number }>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { sinkUrl, file, lock, moved, id, n, at: a } })
    opened.push(new Promise((resolve) => w.once('message', resolve)))
    w.on('message', (m) => { if (m !== 'open') resolve(m as { written: number, lost: number }) })
    w.once('error', reject)
  }))
  // Move the file while the writers run (logrotate's rename).
  await Promise.all(opened)
  renameSync(file, `${file}.1`)
  Atomics.store(moved, 0, 1)
  Atomics.notify(moved, 0)
  for (const r of await Promise.all(done)) t.same(r, { written: n, lost: 0 })
  const read = (f: string): Array<{ w: number, i: number }> => {
    const lines = readFileSync(f, 'latin1').split('\n')
    t.equal(lines.pop(), '', `${f}: ends with a newline`)
    return lines.map((l) => JSON.parse(l) as { w: number, i: number })
  }
  const old = read(`${file}.1`)
  const now = read(file)
  for (let id = 0; id < at.length; id++) {
    const a = at[id] as number
    t.same(old.filter((o) => o.w === id).map((o) => o.i), Array.from({ length: a }, (_, i) => i), `writer ${id}: lines 0..${a - 1} in the old file, in order`)
    t.same(now.filter((o) => o.w === id).map((o) => o.i), Array.from({ length: n - a }, (_, i) => a + i), `writer ${id}: the rest in the new file, in order`)
  }
})

t.test('FdLines: a reader that goes away is reported once, lines after it are counted lost, nothing throws', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aigate-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fifo = join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  const rfd = openSync(fifo, 'r+') // keeps open() of the writer from blocking
  const wfd = openSync(fifo, 'w')
  closeSync(rfd)
  const s = new FdLines(wfd)
  const errors: string[] = []
  s.onError = (e) => errors.push(e.code)
  for (let i = 0; i < 10; i++) s.line(`{"i":${i}}`)
  t.doesNotThrow(() => s.flush())
  for (let i = 0; i < 5; i++) s.line(`{"i":${i}}`)
  s.flush()
  t.same(errors, ['EPIPE'])
  t.equal(s.written, 0)
  t.equal(s.lost, 15)
  closeSync(wfd)
})
