/**
 * `npm run bench`: throughput of the classification engine, printed as
 * medians with min/max and as ratios against baselines measured in the same
 * run. `npm run bench -- --json` also prints every result as one JSON object
 * on the last line. Not a test: nothing here passes or fails on a number.
 *
 *   1. label trie lookups/s with 1k, 100k and 1M patterns, against a naive
 *      scan over all suffix patterns and a Set probed at each parent suffix;
 *      compile time and heap for each size; allocation in a steady lookup loop
 *   2. ClientHello and DNS parses/s on the real captured fixtures
 *   3. `aigate classify` packets/s on a large capture of real TLS and DNS
 *      packets with distinct flows, against ndpiReader and tshark on the same file
 *   4. QUIC random-DCID Initials (the flood of issue 11, class 5): ns per
 *      datagram through parseQuicInitial, with the addon's OpenSSL crypto
 *      and with node:crypto, against the crypto path it replaced (kept below
 *      as a reference function) and the TCP hello parse, in the same run.
 *      `npm run bench -- --quic` runs this section alone.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PerformanceObserver } from 'node:perf_hooks'
import { Matcher } from '../../src/match/trie.js'
import { parsePattern, isPatternError } from '../../src/match/pattern.js'
import { parseTls, TlsHello } from '../../src/extract/tls.js'
import { parseDns, DnsQuery } from '../../src/extract/dns.js'
import { parseQuicInitial, CryptoAssembler, QuicInfo, InitialKeys, QuicRefusal, QUIC_V1, INITIAL_SALT_V1, hkdfLabel, quicNativeCrypto } from '../../src/extract/quic.js'
import { Status } from '../../src/util/status.js'
import { opsPerSec, summarize, fmt, type Sample } from './stats.js'
import { runFlowBench } from './flows.js'
import { runAccuracy } from './accuracy.js'
import { runNameFlood } from './names.js'
import { rng } from '../helpers/rng.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const args = new Set(process.argv.slice(2))
const JSON_OUT = args.has('--json')
const QUICK = args.has('--quick')
const RUNS = QUICK ? 3 : 5
const results: Record<string, unknown> = {}
const say = (s: string): void => { process.stdout.write(s + '\n') }
const gc = (): void => { (globalThis as { gc?: () => void }).gc?.() }


const TLDS = ['com', 'net', 'org', 'ai', 'io', 'dev', 'cn', 'co.uk', 'cloud', 'app']

function makePatterns (n: number, r: () => number): string[] {
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const tld = TLDS[i % TLDS.length] as string
    const k = Math.floor(r() * 4)
    if (i % 50 === 0) out.push(`svc${i}.*.cloud${i % 7}.${tld}`) // one-label wildcards
    else if (i % 51 === 0) out.push(`*-svc${i}.api${i % 5}.${tld}`) // globs
    else out.push(k === 0 ? `site${i}.${tld}` : k === 1 ? `=api.site${i}.${tld}` : `v${k}.site${i}.${tld}`)
  }
  return out
}

function makeNames (n: number, patterns: number, r: () => number): string[] {
  const names: string[] = []
  for (let i = 0; i < n; i++) {
    const j = Math.floor(r() * patterns)
    const tld = TLDS[j % TLDS.length] as string
    // Half hit (a subdomain of a pattern's name), half miss (an unknown site).
    const text = i % 2 === 0 ? `www.v2.site${j}.${tld}` : `cdn.assets.other${j}.${tld}`
    // Wire names are flat strings made by Buffer#toString; a template literal
    // would give a rope (cons string) that is slower to index.
    names.push(Buffer.from(text, 'latin1').toString('latin1'))
  }
  return names
}

function benchTrie (): void {
  say('\n## Label trie: lookups/s (median of runs, [min..max]); baselines in the same run')
  say('patterns | trie | naive scan | Set per suffix | trie/naive | trie/Set | compile s | heap MB')
  const sizes = QUICK ? [1000, 100000] : [1000, 100000, 1000000]
  const trieRes: Record<string, unknown> = {}
  for (const n of sizes) {
    const r = rng(n)
    const texts = makePatterns(n, r)
    gc()
    const heap0 = process.memoryUsage().heapUsed
    const t0 = process.hrtime.bigint()
    const m = new Matcher()
    for (let i = 0; i < texts.length; i++) {
      const p = parsePattern(texts[i] as string)
      if (isPatternError(p)) throw new Error(p.error)
      m.add({ pattern: p, vendor: 'v', category: 'ai', exception: false, source: `bench:${i}` })
    }
    const compileS = Number(process.hrtime.bigint() - t0) / 1e9
    gc()
    const heapMb = (process.memoryUsage().heapUsed - heap0) / 1048576
    const names = makeNames(4096, n, r)
    const mask = names.length - 1
    let sink = 0
    const trie = opsPerSec(2_000_000, RUNS, (k) => {
      for (let i = 0; i < k; i++) if (m.lookup(names[i & mask] as string) !== null) sink++
    })
    // Naive: scan every pattern's subtree suffix (plain entries only, the easy case).
    const plain = texts.filter((x) => !x.includes('*')).map((x) => x.replace(/^=/, ''))
    const dotted = plain.map((x) => '.' + x)
    const naiveN = Math.max(20, Math.floor(2e7 / n))
    const naive = opsPerSec(naiveN, RUNS, (k) => {
      for (let i = 0; i < k; i++) {
        const name = names[i & mask] as string
        for (let j = 0; j < plain.length; j++) {
          if (name === plain[j] || name.endsWith(dotted[j] as string)) { sink++; break }
        }
      }
    })
    // Set probed with the name and each parent suffix (no wildcards possible).
    const set = new Set(plain)
    const setRate = opsPerSec(2_000_000, RUNS, (k) => {
      for (let i = 0; i < k; i++) {
        let name = names[i & mask] as string
        for (;;) {
          if (set.has(name)) { sink++; break }
          const dot = name.indexOf('.')
          if (dot < 0) break
          name = name.slice(dot + 1)
        }
      }
    })
    if (sink === -1) say('')
    say(`${n} | ${fmt(trie.median)} [${fmt(trie.min)}..${fmt(trie.max)}] | ${fmt(naive.median)} | ${fmt(setRate.median)} | ` +
      `${(trie.median / naive.median).toFixed(1)}x | ${(trie.median / setRate.median).toFixed(2)}x | ${compileS.toFixed(2)} | ${heapMb.toFixed(0)}`)
    trieRes[String(n)] = { trie, naive, set: setRate, ratioNaive: trie.median / naive.median, ratioSet: trie.median / setRate.median, compileSeconds: compileS, heapMB: heapMb, nodes: m.nodes }
    if (n === 100000) steadyAlloc(m, names, trieRes)
  }
  results.trie = trieRes
}

/** Count GCs and heap growth over a long steady lookup loop. */
function steadyAlloc (m: Matcher, names: string[], into: Record<string, unknown>): void {
  let gcs = 0
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length })
  obs.observe({ entryTypes: ['gc'] })
  gc()
  const before = process.memoryUsage().heapUsed
  const N = 5_000_000
  const mask = names.length - 1
  let sink = 0
  for (let i = 0; i < N; i++) if (m.lookup(names[i & mask] as string) !== null) sink++
  const after = process.memoryUsage().heapUsed
  obs.disconnect()
  const perLookup = (after - before) / N
  say(`steady loop, 100k patterns: ${N} lookups, heap growth ${((after - before) / 1024).toFixed(0)} KiB (${perLookup.toFixed(3)} B/lookup), GCs during loop: ${gcs}${sink < 0 ? '' : ''}`)
  into.steady = { lookups: N, heapGrowthBytes: after - before, bytesPerLookup: perLookup, gcs }
}

function benchParsers (): void {
  say('\n## Parsers on real captured payloads (test/fixtures): parses/s')
  const fx = join(ROOT, 'test', 'fixtures')
  const pick = (dir: string, re: RegExp): Buffer[] => {
    const d = join(fx, dir)
    if (!existsSync(d)) return []
    return execFileSync('ls', [d]).toString().split('\n').filter((f) => re.test(f)).map((f) => Buffer.from(execFileSync('cat', [join(d, f)])))
  }
  const hellos = pick('tls', /^[^-]+-.*\.bin$/).filter((b) => parseTls(b, 0, b.length, new TlsHello()) === Status.Ok)
  const queries = pick('dns', /udp.*\.bin$/).filter((b) => parseDns(b, 0, b.length, new DnsQuery()) === Status.Ok)
  const h = new TlsHello()
  const q = new DnsQuery()
  const res: Record<string, Sample | number> = { hellos: hellos.length, queries: queries.length }
  if (hellos.length > 0) {
    res.clientHello = opsPerSec(2_000_000, RUNS, (k) => {
      for (let i = 0; i < k; i++) { const b = hellos[i % hellos.length] as Buffer; parseTls(b, 0, b.length, h) }
    })
    say(`ClientHello (${hellos.length} real hellos, ${hellos.map((b) => b.length).join('/')} B): ${fmt((res.clientHello as Sample).median)}/s`)
  }
  if (queries.length > 0) {
    res.dns = opsPerSec(2_000_000, RUNS, (k) => {
      for (let i = 0; i < k; i++) { const b = queries[i % queries.length] as Buffer; parseDns(b, 0, b.length, q) }
    })
    say(`DNS query (${queries.length} real queries): ${fmt((res.dns as Sample).median)}/s`)
  }
  results.parsers = res
}

function timeCmd (cmd: string, argv: string[]): number | null {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 })
  if (r.status !== 0) {
    say(`  (${cmd} failed: ${String(r.stderr).split('\n')[0]})`)
    return null
  }
  return Number(process.hrtime.bigint() - t0) / 1e9
}

function which (cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function benchClassify (): void {
  const packets = QUICK ? 60000 : 300000
  const dir = join(ROOT, 'test', 'bench', 'data')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `mixed-${packets}.pcap`)
  if (!existsSync(file)) {
    execFileSync(process.execPath, [join(ROOT, 'test', 'bench', 'make-capture.mjs'), '--out', file, '--packets', String(packets)], { stdio: 'inherit' })
  }
  say(`\n## Whole-capture classification: ${file} (${packets} packets, ${(statSync(file).size / 1048576).toFixed(1)} MB), packets/s, wall clock incl. start-up`)
  const tools: Array<[string, string, string[]]> = [
    ['aigate classify', process.execPath, [join(ROOT, 'bin', 'aigate.js'), 'classify', '-q', file]],
  ]
  if (which('ndpiReader')) tools.push(['ndpiReader', 'ndpiReader', ['-i', file, '-q', '-v', '0']])
  if (which('tshark')) tools.push(['tshark', 'tshark', ['-r', file, '-T', 'fields', '-e', 'tls.handshake.extensions_server_name', '-e', 'dns.qry.name', '-e', 'http.host']])
  const runs = QUICK ? 1 : 3
  const times: Record<string, number[]> = {}
  // Interleave the tools (A B C A B C ...) so drift hits all alike.
  for (let r = 0; r < runs; r++) {
    for (const [label, cmd, argv] of tools) {
      if (label === 'tshark' && r > 0 && !QUICK && runs > 1) continue // tshark is slow: one run
      const s = timeCmd(cmd, argv)
      if (s !== null) (times[label] ??= []).push(packets / s)
    }
  }
  const res: Record<string, Sample> = {}
  for (const [label] of tools) if (times[label] !== undefined) res[label] = summarize(times[label] as number[])
  const base = res['aigate classify']
  for (const [label, s] of Object.entries(res)) {
    say(`${label}: ${fmt(s.median)} packets/s [${fmt(s.min)}..${fmt(s.max)}]` + (base !== undefined && label !== 'aigate classify' ? `; aigate/${label} = ${(base.median / s.median).toFixed(2)}x` : ''))
  }
  results.classify = { packets, file, ...res }
}

/**
 * The crypto a random-DCID Initial cost before the cheap refusals (commit
 * 5ac192e's quic.ts, kept as the baseline): all five HKDF steps (two
 * update() calls each), the header-protection cipher with setAutoPadding,
 * the mask, then an AES-128-GCM open whose failure throws with a stack
 * trace, and the reserved-bit check after it. `pnOff` is where the
 * Packet Number field starts (the header walk before it costs next to nothing).
 */
const REF_LABELS = {
  clientIn: hkdfLabel('client in', 32), key: hkdfLabel('quic key', 16), iv: hkdfLabel('quic iv', 12), hp: hkdfLabel('quic hp', 16),
}
const REF_ONE = Buffer.from([1])
const refHdr = Buffer.alloc(2048)
const refNonce = Buffer.alloc(12)
function referenceOpen (b: Buffer, dcidStart: number, dcidLen: number, pnOff: number, end: number): boolean {
  const x = (prk: Buffer, info: Buffer): Buffer => createHmac('sha256', prk).update(info).update(REF_ONE).digest()
  const initial = createHmac('sha256', INITIAL_SALT_V1).update(b.subarray(dcidStart, dcidStart + dcidLen)).digest()
  const client = x(initial, REF_LABELS.clientIn)
  const key = x(client, REF_LABELS.key).subarray(0, 16)
  const iv = x(client, REF_LABELS.iv).subarray(0, 12)
  const hp = createCipheriv('aes-128-ecb', x(client, REF_LABELS.hp).subarray(0, 16), null)
  hp.setAutoPadding(false)
  const mask = hp.update(b.subarray(pnOff + 4, pnOff + 20))
  const first = (b[0] as number) ^ ((mask[0] as number) & 0x0f)
  const pnLen = (first & 3) + 1
  b.copy(refHdr, 0, 0, pnOff + pnLen)
  refHdr[0] = first
  let pn = 0
  for (let i = 0; i < pnLen; i++) { const v = (b[pnOff + i] as number) ^ (mask[1 + i] as number); refHdr[pnOff + i] = v; pn = pn * 256 + v }
  iv.copy(refNonce)
  for (let i = 0, v = pn; i < pnLen; i++, v = Math.floor(v / 256)) refNonce[11 - i] = (refNonce[11 - i] as number) ^ (v & 0xff)
  try {
    const d = createDecipheriv('aes-128-gcm', key, refNonce)
    d.setAAD(refHdr.subarray(0, pnOff + pnLen))
    d.setAuthTag(b.subarray(end - 16, end))
    d.update(b.subarray(pnOff + pnLen, end - 16))
    d.final()
  } catch {
    return false
  }
  return (first & 0x0c) === 0
}

function benchQuicFlood (): void {
  say('\n## QUIC random-DCID Initials (1250 B, valid v1 header, random DCID and payload that does not authenticate): ns per datagram, one run')
  const r = rng(1250)
  const M = 2048
  const SIZE = 1250
  // Header: c3 | version 1 | DCID len 8 + 8 random | SCID len 0 | token len 0 | Length (2-byte varint) = rest.
  const HEAD = 1 + 4 + 1 + 8 + 1 + 1 + 2
  const make = (): Buffer => {
    const b = Buffer.alloc(SIZE)
    for (let i = 0; i < SIZE; i++) b[i] = Math.floor(r() * 256)
    b[0] = 0xc0 | ((b[0] as number) & 0x0f); b.writeUInt32BE(QUIC_V1, 1); b[5] = 8; b[14] = 0; b[15] = 0
    b.writeUInt16BE(0x4000 | (SIZE - HEAD), 16)
    return b
  }
  const naive = Array.from({ length: M }, make)
  // The same, but made by a sender that derives the header-protection key so
  // that the reserved bits come out 0 (they pass every check before the AEAD).
  const keys = new InitialKeys()
  const crafted = Array.from({ length: M }, () => {
    const b = make()
    keys.deriveHp(QUIC_V1, b, 6, 8)
    const mask = keys.hp?.update(b.subarray(HEAD + 4, HEAD + 20)) as Buffer
    b[0] = ((b[0] as number) & ~0x0c) | (((mask[0] as number) & 0x0c))
    return b
  })
  const asm = new CryptoAssembler()
  const q = new QuicInfo()
  const check = parseQuicInitial(naive[0] as Buffer, 0, SIZE, asm, q)
  if (check !== Status.Malformed || q.refused !== QuicRefusal.Unauthenticated) say(`  (unexpected outcome ${check}/${q.refused})`)
  const n = QUICK ? 5000 : 20000
  // Each run times every loop once, in turn (A B C D A B C D ...), so a slow
  // spell of the shared host hits all of them alike; medians over the runs.
  const loops: Array<(k: number) => void> = []
  let bad = 0
  const hasNative = quicNativeCrypto()
  const parseAll = (set: Buffer[], useNative: boolean) => (k: number): void => {
    quicNativeCrypto(useNative)
    for (let i = 0; i < k; i++) { const b = set[i % M] as Buffer; asm.reset(); if (parseQuicInitial(b, 0, SIZE, asm, q) !== Status.Malformed) bad++ }
    quicNativeCrypto(hasNative)
  }
  loops.push((k) => { for (let i = 0; i < k; i++) if (referenceOpen(naive[i % M] as Buffer, 6, 8, HEAD, SIZE)) bad++ })
  loops.push(parseAll(naive, true))
  loops.push(parseAll(naive, false))
  loops.push((k) => { for (let i = 0; i < k; i++) if (referenceOpen(crafted[i % M] as Buffer, 6, 8, HEAD, SIZE)) bad++ })
  loops.push(parseAll(crafted, true))
  loops.push(parseAll(crafted, false))
  const times: number[][] = loops.map(() => [])
  for (const f of loops) f(500) // warm up
  for (let run = 0; run < RUNS + 2; run++) {
    loops.forEach((f, j) => {
      const t0 = process.hrtime.bigint()
      f(n)
      ;(times[j] as number[]).push(Number(process.hrtime.bigint() - t0) / n)
    })
  }
  const [ref, now, nowNode, refCrafted, nowCrafted, nowNodeCrafted] = times.map((xs) => summarize(xs)) as [Sample, Sample, Sample, Sample, Sample, Sample]
  const nsPer = (fn: (k: number) => void): Sample => {
    const s = opsPerSec(n, RUNS, fn)
    return { median: 1e9 / s.median, min: 1e9 / s.max, max: 1e9 / s.min, runs: s.runs }
  }
  // Refused before any crypto: the same datagrams with an unknown version, or cut to 1199 bytes.
  const other = naive.map((b) => { const c = Buffer.from(b); c.writeUInt32BE(0x1a2a3a4a, 1); return c })
  const refused = nsPer((k) => {
    for (let i = 0; i < k; i++) { asm.reset(); parseQuicInitial(other[i % M] as Buffer, 0, SIZE, asm, q); parseQuicInitial(naive[i % M] as Buffer, 0, 1199, asm, q) }
  })
  const fx = join(ROOT, 'test', 'fixtures', 'tls')
  const helloFile = existsSync(fx) ? execFileSync('ls', [fx]).toString().split('\n').find((f) => f.startsWith('curl-7.88-api.openai.com')) : undefined
  let tcp: Sample | null = null
  if (helloFile !== undefined) {
    const hello = Buffer.from(execFileSync('cat', [join(fx, helloFile)]))
    const th = new TlsHello()
    tcp = nsPer((k) => { for (let i = 0; i < k * 20; i++) parseTls(hello, 0, hello.length, th) })
    tcp = { ...tcp, median: tcp.median / 20, min: tcp.min / 20, max: tcp.max / 20 }
  }
  const row = (label: string, s: Sample, base?: Sample): void => {
    say(`${label}: ${s.median.toFixed(0)} ns [${s.min.toFixed(0)}..${s.max.toFixed(0)}] = ${fmt(1e9 / s.median)}/s` +
      (base !== undefined ? `; ${(base.median / s.median).toFixed(1)}x cheaper than the reference` : '') +
      (tcp !== null ? `; ${(s.median / tcp.median).toFixed(0)}x a TCP hello parse` : ''))
  }
  const path = hasNative ? 'addon (OpenSSL EVP)' : 'no addon: node:crypto'
  row('reference (the crypto path before the refusals), random payload', ref)
  row(`parseQuicInitial, ${path}, random payload`, now, ref)
  row('parseQuicInitial, node:crypto, random payload', nowNode, ref)
  row('reference, reserved bits made 0 by the sender (needs the hp key)', refCrafted)
  row(`parseQuicInitial, ${path}, reserved bits made 0 by the sender`, nowCrafted, refCrafted)
  row('parseQuicInitial, node:crypto, reserved bits made 0 by the sender', nowNodeCrafted, refCrafted)
  row('parseQuicInitial, refused before crypto (unknown version; 1199 bytes), per datagram', { ...refused, median: refused.median / 2, min: refused.min / 2, max: refused.max / 2 }, ref)
  if (tcp !== null) say(`TCP hello parse (curl, one segment): ${tcp.median.toFixed(0)} ns`)
  if (bad > 0) say(`  (${bad} datagrams authenticated or got another status: the rows are wrong)`)
  results.quicFlood = {
    native: hasNative, reference: ref, now, ratio: ref.median / now.median, nodeCrypto: nowNode, ratioNodeCrypto: ref.median / nowNode.median,
    referenceCrafted: refCrafted, nowCrafted, ratioCrafted: refCrafted.median / nowCrafted.median,
    nodeCryptoCrafted: nowNodeCrafted, ratioNodeCryptoCrafted: refCrafted.median / nowNodeCrafted.median, refused, tcpHello: tcp,
  }
}

say(`aigate bench (${QUICK ? 'quick' : 'full'}): node ${process.version}, ${new Date().toISOString()}`)
if (args.has('--quic')) {
  benchQuicFlood()
  if (JSON_OUT) process.stdout.write(JSON.stringify(results) + '\n')
  process.exit(0)
}
benchTrie()
benchParsers()
benchQuicFlood()
benchClassify()
runFlowBench(say, results, QUICK)
runNameFlood(say, results, QUICK)
runAccuracy(say, results)
if (JSON_OUT) process.stdout.write(JSON.stringify(results) + '\n')
