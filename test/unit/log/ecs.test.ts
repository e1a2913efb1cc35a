import t from 'tap'
import { createHash } from 'node:crypto'
import { isIPv4 } from 'node:net'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { Classifier } from '../../../src/classify/index.js'
import { loadRuleset } from '../../../src/config/index.js'
import { CommunityId, DecisionLog, LogClock, MemoryLines } from '../../../src/log/index.js'
import { classifyFile } from '../../../src/source/classify-file.js'
import { FIXTURES } from '../../helpers/fixtures.js'
import { eth, pcapOf, tcp4 } from '../../helpers/packets.js'

/**
 * Issue 14, item 1: the decision lines of the project's own captures are
 * ECS-clean. Every field path is in the published ECS field list (elastic/ecs
 * v8.11.0 generated/csv/fields.csv, copied in test/fixtures/ecs/, see
 * test/fixtures/SOURCES.md) or under `aigate.`; the name is
 * destination.domain; network.community_id is Community ID v1, checked
 * against the spec's published vectors (corelight/community-id-spec
 * baseline/, copied in test/fixtures/community-id/) and against a separate,
 * straightforward computation from the line's own fields (tshark 4.0 has no
 * Community ID field to ask).
 */
const ECS = new Set(readFileSync(join(FIXTURES, 'ecs', 'fields-8.11.0.csv'), 'utf8').split('\n').slice(1).map((l) => l.split(',')[0]).filter((f) => f !== undefined && f !== ''))

/** Leaf paths of a parsed line (an array is one field, as in ECS). */
function paths (o: Record<string, unknown>, prefix = ''): string[] {
  const all: string[] = []
  for (const [k, v] of Object.entries(o)) {
    const p = prefix + k
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) all.push(...paths(v as Record<string, unknown>, p + '.'))
    else all.push(p)
  }
  return all
}

/** An address as bytes, from its text (IPv6 with `::` expanded). */
function addrBytes (s: string): Buffer {
  if (isIPv4(s)) return Buffer.from(s.split('.').map(Number))
  const [l, r] = s.includes('::') ? s.split('::') as [string, string] : [s, '']
  const left = l === '' ? [] : l.split(':')
  const right = r === '' ? [] : r.split(':')
  const groups = [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right]
  const b = Buffer.alloc(16)
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2))
  return b
}

/** Community ID v1 as the spec's README writes it, from text fields: a separate implementation. */
function referenceId (saddr: string, daddr: string, proto: number, sport: number | null, dport: number | null, seed = 0): string {
  let a = addrBytes(saddr); let b = addrBytes(daddr); let sp = sport; let dp = dport
  const c = Buffer.compare(a, b)
  if (c > 0 || (c === 0 && sp !== null && dp !== null && sp > dp)) { [a, b] = [b, a]; [sp, dp] = [dp, sp] }
  const seedBytes = Buffer.alloc(2); seedBytes.writeUInt16BE(seed)
  const parts = [seedBytes, a, b, Buffer.from([proto, 0])]
  if (sp !== null && dp !== null) { const p = Buffer.alloc(4); p.writeUInt16BE(sp, 0); p.writeUInt16BE(dp, 2); parts.push(p) }
  return '1:' + createHash('sha1').update(Buffer.concat(parts)).digest('base64')
}

interface Vector { proto: number, saddr: string, daddr: string, sport: number | null, dport: number | null, communityid: string }
/** The spec's vectors for the protocols with ports we log (TCP, UDP; SCTP alike) and one without ports; ICMP's type/code mapping we never need. */
function vectors (file: string): Vector[] {
  return (JSON.parse(readFileSync(join(FIXTURES, 'community-id', file), 'utf8')) as Vector[]).filter((v) => [6, 17, 132, 46].includes(v.proto))
}

t.test('Community ID: the spec\'s published vectors, default seed and seed 1', async (t) => {
  for (const [file, seed] of [['baseline_deflt.json', 0], ['baseline_seed1.json', 1]] as const) {
    const vs = vectors(file)
    t.ok(vs.some((v) => v.proto === 6 && v.saddr.includes(':')) && vs.some((v) => v.proto === 17) && vs.some((v) => v.proto === 6 && !v.saddr.includes(':')), `${file}: IPv4 and IPv6 TCP, UDP`)
    const c = new CommunityId(seed)
    for (const v of vs) {
      const a = addrBytes(v.saddr); const b = addrBytes(v.daddr)
      const got = c.from(Buffer.concat([a, b]), 0, a.length, a.length, v.proto, v.sport ?? 0, v.dport ?? 0)
      t.equal(got, v.communityid, `${file}: ${v.proto} ${v.saddr}:${v.sport} -> ${v.daddr}:${v.dport}`)
      t.equal(referenceId(v.saddr, v.daddr, v.proto, v.sport, v.dport, seed), v.communityid, 'the test\'s reference computation agrees')
    }
  }
  // The README's first table (default seed): both directions, one ID.
  const c = new CommunityId()
  const four = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])
  t.equal(c.from(four, 0, 4, 4, 6, 1122, 3344), '1:wCb3OG7yAFWelaUydu0D+125CLM=')
  t.equal(c.from(four, 4, 0, 4, 6, 3344, 1122), '1:wCb3OG7yAFWelaUydu0D+125CLM=')
  t.equal(c.from(four, 0, 4, 4, 17, 1122, 3344), '1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=')
})

/** The lines `aigate classify` writes for a capture file. */
async function linesOf (file: string): Promise<Array<Record<string, any>>> {
  const mem = new MemoryLines()
  const log = new DecisionLog(mem, new LogClock(), { name: basename(file) })
  await classifyFile(file, new Classifier(loadRuleset()), log)
  mem.flush()
  return mem.parsed() as Array<Record<string, any>>
}

/** A flow that shows two names (a decoy allowed hello, then a blocked one) and keeps sending hellos: evasion, once. */
function evasivePcap (): string {
  const hello = (n: string): Buffer => readFileSync(join(FIXTURES, 'tls', `curl-7.88-${n}.bin`))
  const tu = { src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 443 }
  const frames = [eth(tcp4(tu, 999, Buffer.alloc(0), 0x02))]
  let seq = 1000
  for (const n of ['www.example.com', 'api.anthropic.com', 'claude.ai', 'api.openai.com', 'en.wikipedia.org']) {
    const b = hello(n)
    frames.push(eth(tcp4(tu, seq, b, 0x18, 64, 1)))
    seq += b.length
  }
  const f = join(mkdtempSync(join(tmpdir(), 'aigate-ecs-')), 'evasive.pcap')
  writeFileSync(f, pcapOf(frames))
  return f
}

t.test('every decision line of the fixture captures is ECS-clean, names destination.domain, and carries the flow\'s Community ID', async (t) => {
  const dir = join(FIXTURES, 'pcap')
  const files = [...readdirSync(dir).filter((f) => /\.pcap(ng)?$/.test(f)).map((f) => join(dir, f)), evasivePcap()]
  const kinds = new Set<string>()
  let total = 0
  for (const file of files) {
    const ls = await linesOf(file)
    t.ok(ls.length > 0, `${basename(file)}: ${ls.length} lines`)
    for (const l of ls) {
      total++
      const where = `${basename(file)} ${String(l.message)}`
      const odd = paths(l).filter((p) => !ECS.has(p) && !p.startsWith('aigate.'))
      t.same(odd, [], `${where}: every field is ECS or aigate.*`)
      t.equal(l.name, undefined, `${where}: no root name`)
      t.equal(l.host, undefined, `${where}: no host.* on a decision line`)
      t.same(l.observer, { type: 'firewall', vendor: 'aigate', product: 'aigate', version: l.observer.version, name: basename(file) }, `${where}: the observer is the capture file`)
      // The name: destination.domain, the protocol's own field, related.hosts.
      const own = l.tls?.client?.server_name ?? l.dns?.question?.name ?? l.url?.domain
      if (own !== undefined) t.equal(l.destination.domain, own, `${where}: destination.domain is the name read`)
      if (l.destination.domain !== undefined) {
        t.not(l.destination.domain, '', `${where}: never an empty domain`)
        t.ok(l.related.hosts.includes(l.destination.domain), `${where}: related.hosts has it`)
      } else {
        t.equal(l.aigate.reason === 'unknown' || l.aigate.reason === 'evasion' || l.aigate.reason === 'midstream' || l.aigate.reason === 'quic-version', true, `${where}: only a special decision reads no name`)
      }
      // Community ID from the line's own fields.
      const proto = Number(l.network.iana_number)
      t.equal(l.network.community_id, referenceId(l.source.ip, l.destination.ip, proto, l.source.port, l.destination.port), `${where}: community_id`)
      kinds.add(`${l.network.type} ${l.network.transport}`)
      // Every fixture capture has an Ethernet or Linux cooked (Ethernet address) link: the sender's MAC is on every line.
      t.match(l.source.mac, /^([0-9A-F]{2}-){5}[0-9A-F]{2}$/, `${where}: source.mac, ECS form`)
    }
    if (basename(file) === 'evasive.pcap') {
      t.same(ls.map((l) => [l.destination.domain, l.aigate.reason, l.related.hosts]), [
        ['www.example.com', 'default', ['www.example.com']],
        ['api.anthropic.com', 'evasion', ['www.example.com', 'api.anthropic.com']],
      ], 'the evasion line names both hellos; the hellos after it add no line (one flow, one line)')
    }
  }
  t.same([...kinds].sort(), ['ipv4 tcp', 'ipv4 udp', 'ipv6 tcp', 'ipv6 udp'], `IPv4/IPv6 TCP/UDP flows among the ${total} lines`)
})

t.test('the ECS list is the published one: fields we rely on are in it, made-up ones are not', async (t) => {
  for (const f of ['destination.domain', 'network.community_id', 'observer.hostname', 'observer.name', 'observer.type', 'observer.vendor', 'observer.product', 'observer.version', 'related.hosts', 'source.mac']) t.ok(ECS.has(f), f)
  for (const f of ['name', 'host.name.x', 'aigate.seen']) t.notOk(ECS.has(f), f)
  t.ok(ECS.size > 1500, `${ECS.size} fields`)
})
