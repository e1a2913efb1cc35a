import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  parseQuicInitial, CryptoAssembler, QuicInfo, QUIC_V1, QUIC_V2, QUIC_DRAFT29, MAX_CRYPTO_BYTES, QuicRefusal, keyDerivations,
} from '../../src/extract/quic.js'
import { readName, NameOut } from '../../src/name/index.js'
import { Status, statusName } from '../../src/util/status.js'
import { FIXTURES } from '../helpers/fixtures.js'
import { sealInitial, sealAmbiguous, cryptoFrame, varint } from '../fixtures/quic/seal.js'
import { rng } from '../helpers/rng.js'

/**
 * Hostile input for the QUIC Initial reader. Real datagrams (RFC samples and
 * Chromium captures) truncated at every offset and with every byte mutated;
 * seeded random bytes behind a valid-looking long header; seeded random
 * frames behind a *valid* GCM tag (so the frame walker sees them); CRYPTO
 * frames past the cap and ACK frames with absurd range counts; random
 * fragment streams into the assembler checked against a model.
 *
 * Every call must return a Status (never throw), stay inside [start, end)
 * of a buffer whose surroundings are poisoned, never write into the input,
 * and never report a name other than the real one: the GCM tag covers the
 * header and the payload, so a mutated real packet must not open at all.
 */


const DIR = join(FIXTURES, 'quic')
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  datagrams: Record<string, { sni: string, role?: string }>
  connections: Record<string, { sni: string, files: string[] }>
}
const bin = (f: string): Buffer => readFileSync(join(DIR, f))
/** RFC 9000 §14.1: datagrams with an Initial are padded to 1200 bytes (zero bytes after the packet here). */
const pad1200 = (b: Buffer): Buffer => b.length >= 1200 ? b : Buffer.concat([b, Buffer.alloc(1200 - b.length)])
const STATUSES = new Set<number>(Object.values(Status))
const PAD = 64
const POISON = 0xc3 // looks like the start of a v1 long header
const nameOut = new NameOut()
const q = new QuicInfo()
let cases = 0

/** Put `bytes` at offset PAD of a buffer poisoned around it. */
function framed (bytes: Uint8Array): Buffer {
  const b = Buffer.alloc(bytes.length + 2 * PAD, POISON)
  b.set(bytes, PAD)
  return b
}

/**
 * One call under the invariants; returns the status. `want` is the only name
 * an Ok may carry.
 */
function check (t: Test, bytes: Uint8Array, asm: CryptoAssembler, want: string | null, label: string): Status {
  const b = framed(bytes)
  const copy = Buffer.from(b)
  const s = PAD
  const e = PAD + bytes.length
  cases++
  let st: Status
  try {
    st = parseQuicInitial(b, s, e, asm, q)
  } catch (err) {
    t.fail(`${label}: threw ${String(err)}`)
    return Status.Malformed
  }
  if (!STATUSES.has(st)) t.fail(`${label}: status ${st}`)
  if (!b.equals(copy)) t.fail(`${label}: input was modified`)
  if (q.dcidLen > 0 && (q.dcidStart < s || q.dcidStart + q.dcidLen > e)) t.fail(`${label}: dcid out of bounds`)
  // The typed outcome is consistent: an unknown version is Unsupported; what authenticated is not refused;
  // a Handshake packet counts only behind an authenticated Initial.
  if (q.unknownVersion && (st !== Status.Unsupported || q.refused !== QuicRefusal.Version)) t.fail(`${label}: unknownVersion with ${statusName(st)}`)
  if (q.authenticated !== (q.initials > 0) || (q.authenticated && q.refused !== QuicRefusal.None)) t.fail(`${label}: authenticated ${q.authenticated}, refused ${q.refused}`)
  if (q.handshake && !q.authenticated) t.fail(`${label}: handshake without an authenticated Initial`)
  if ((st === Status.Ok || st === Status.NeedMore || st === Status.NoName) && !q.authenticated) t.fail(`${label}: ${statusName(st)} without authentication`)
  if (st === Status.Ok) {
    const h = asm.hello
    if (h.buf !== asm.buf || h.sniStart < 0 || h.sniEnd > asm.contiguous || h.sniStart >= h.sniEnd) {
      t.fail(`${label}: sni [${h.sniStart},${h.sniEnd}) outside the stream prefix`)
    } else if (want !== null) {
      const ok = readName(h.buf, h.sniStart, h.sniEnd, nameOut)
      if (!ok || nameOut.name !== want) t.fail(`${label}: name ${ok ? nameOut.name : '(invalid)'}, want ${want}`)
    }
  }
  return st
}

/** Offset where the first (long-header) packet of a datagram ends, read from its header. */
function firstPacketEnd (b: Buffer): number {
  let p = 5
  p += 1 + (b[p] as number)
  p += 1 + (b[p] as number)
  const vlen = (x: number): [number, number] => {
    const n = 1 << ((b[x] as number) >> 6)
    let v = (b[x] as number) & 0x3f
    for (let i = 1; i < n; i++) v = v * 256 + (b[x + i] as number)
    return [v, x + n]
  }
  let [tok, q1] = vlen(p)
  p = q1 + tok
  ;[tok, q1] = vlen(p)
  return q1 + tok
}

interface Seed { file: string, bytes: Buffer, sni: string, others: Buffer[] }
/** Every real datagram, with the other hello datagrams of its connection (fed first, intact). */
const seeds: Seed[] = []
for (const [file, d] of Object.entries(exp.datagrams)) {
  const name = file.slice('quic/'.length)
  const conn = Object.values(exp.connections).find((c) => c.files.includes(name))
  const others = (conn?.files ?? [])
    .filter((f) => f !== name && exp.datagrams[`quic/${f}`]?.role === 'hello').map(bin)
  seeds.push({ file: name, bytes: bin(name), sni: d.sni, others })
}

/** An assembler that has seen the other hello datagrams of the connection. */
function primed (s: Seed, asm: CryptoAssembler): CryptoAssembler {
  asm.reset()
  for (const o of s.others) parseQuicInitial(o, 0, o.length, asm, q)
  return asm
}

t.test('real datagrams truncated at every offset', async (t) => {
  t.ok(seeds.length >= 10, `${seeds.length} real datagrams`)
  const asm = new CryptoAssembler()
  for (const s of seeds) {
    const end1 = firstPacketEnd(s.bytes)
    let wrong = 0
    for (let n = 0; n <= s.bytes.length; n++) {
      const st = check(t, s.bytes.subarray(0, n), primed(s, asm), s.sni, `${s.file}[0,${n})`)
      // Cut inside the first packet: its Length field now lies.
      if (n < end1 && st !== Status.Malformed) wrong++
    }
    t.equal(wrong, 0, `${s.file}: every cut inside the first packet is Malformed`)
    for (let n = 1; n < 64; n++) check(t, s.bytes.subarray(n), primed(s, asm), s.sni, `${s.file}[${n},)`)
  }
})

t.test('every byte of every real datagram mutated: nothing opens', async (t) => {
  const asm = new CryptoAssembler()
  for (const s of seeds) {
    const end1 = firstPacketEnd(s.bytes)
    const m = Buffer.from(s.bytes)
    let opened = 0
    for (let i = 0; i < m.length; i++) {
      const orig = m[i] as number
      for (const v of [orig ^ 0xff, orig ^ 0x01, orig ^ 0x40, (orig + 0x80) & 0xff]) {
        m[i] = v
        const st = check(t, m, primed(s, asm), s.sni, `${s.file}[${i}]=${v}`)
        // Header and payload are under the GCM tag: a change inside the first packet never authenticates.
        if (i < end1 && st !== Status.Malformed && st !== Status.Unsupported) opened++
      }
      m[i] = orig
    }
    t.equal(opened, 0, `${s.file}: ${m.length * 4} mutations, none inside the packet opened`)
  }
})

t.test('random bytes behind a valid-looking long header', async (t) => {
  const r = rng(0x9001)
  const asm = new CryptoAssembler()
  let opened = 0
  for (let k = 0; k < 6000; k++) {
    const version = [QUIC_V1, QUIC_V2, QUIC_DRAFT29, (r() * 2 ** 32) >>> 0][Math.floor(r() * 4)] as number
    const dcidLen = r() < 0.9 ? 8 : Math.floor(r() * 32)
    const scidLen = r() < 0.8 ? Math.floor(r() * 21) : Math.floor(r() * 256)
    const payload = Buffer.from(Array.from({ length: Math.floor(r() * 1300) }, () => Math.floor(r() * 256)))
    const lengthField = r() < 0.7 ? payload.length : Math.floor(r() * 4000)
    const head = Buffer.concat([
      Buffer.from([0xc0 | Math.floor(r() * 64)]),
      Buffer.from([version >>> 24, (version >>> 16) & 255, (version >>> 8) & 255, version & 255]),
      Buffer.from([dcidLen]), Buffer.from(Array.from({ length: Math.min(dcidLen, 20) }, () => Math.floor(r() * 256))),
      Buffer.from([scidLen]), Buffer.from(Array.from({ length: Math.min(scidLen, 20) }, () => Math.floor(r() * 256))),
      r() < 0.8 ? varint(0) : varint(Math.floor(r() * 2 ** 20)),
      varint(lengthField, [1, 2, 4, 8][Math.floor(r() * 4)] as 1 | 2 | 4 | 8),
    ])
    asm.reset()
    const st = check(t, Buffer.concat([head, payload]), asm, null, `random#${k}`)
    if (st === Status.Ok || st === Status.NeedMore || st === Status.NoName) opened++
  }
  t.equal(opened, 0, 'no random packet authenticates')
})

// RFC 9001 A.2's ClientHello (the CRYPTO data), for structured frames.
const HELLO = Buffer.from(
  '010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c0000041301130201' +
  '0000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d00170018001000070005' +
  '04616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce1' +
  '5d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c0002400100' +
  '3900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806' +
  '048000ffff', 'hex')
const DCID = Buffer.from('c0ffee00c0ffee00', 'hex')

/** A random frame: mostly well-formed pieces, sometimes absurd or forbidden ones. */
function randomFrame (r: () => number): Buffer {
  const big = (): number => [0, 1, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2 ** 53, 2 ** 61][Math.floor(r() * 10)] as number
  const small = (): number => Math.floor(r() * 300)
  switch (Math.floor(r() * 10)) {
    case 0: return Buffer.alloc(Math.floor(r() * 40)) // PADDING run
    case 1: return Buffer.from([0x01]) // PING
    case 2: { // ACK / ACK_ECN with random fields
      const parts = [Buffer.from([r() < 0.5 ? 0x02 : 0x03]), varint(r() < 0.5 ? small() : big()), varint(small())]
      const n = r() < 0.8 ? Math.floor(r() * 5) : big()
      parts.push(varint(n), varint(small()))
      for (let i = 0; i < Math.min(n, 6); i++) parts.push(varint(small()), varint(small()))
      if (r() < 0.5) parts.push(varint(small()), varint(small()), varint(small()))
      return Buffer.concat(parts)
    }
    case 3: case 4: case 5: { // CRYPTO with a real slice of the hello
      const s = Math.floor(r() * HELLO.length)
      const e = Math.min(HELLO.length, s + 1 + Math.floor(r() * 120))
      return cryptoFrame(s, HELLO.subarray(s, e))
    }
    case 6: { // CRYPTO with random offset/length, possibly past the cap or the payload
      const off = r() < 0.5 ? big() : MAX_CRYPTO_BYTES - Math.floor(r() * 4)
      const data = Buffer.alloc(Math.floor(r() * 8), 0x41)
      const len = r() < 0.7 ? data.length : big()
      return Buffer.concat([Buffer.from([0x06]), varint(off), varint(len), data])
    }
    case 7: return Buffer.concat([Buffer.from([0x1c]), varint(small()), varint(small()), varint(r() < 0.7 ? 3 : big()), Buffer.from('abc')])
    case 8: return Buffer.from([Math.floor(r() * 256)]) // any frame type, mostly forbidden
    default: return Buffer.from(Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * 256)))
  }
}

t.test('random frames behind a valid GCM tag', async (t) => {
  const r = rng(0x9369)
  const asm = new CryptoAssembler()
  const seen = new Map<string, number>()
  for (let k = 0; k < 4000; k++) {
    const frames: Buffer[] = []
    const n = 1 + Math.floor(r() * 12)
    for (let i = 0; i < n; i++) frames.push(randomFrame(r))
    let payload = Buffer.concat(frames)
    if (r() < 0.2) payload = payload.subarray(0, Math.floor(r() * payload.length)) // cut mid-frame
    if (payload.length < 4) payload = Buffer.concat([payload, Buffer.alloc(4 - payload.length)])
    const pkt = pad1200(sealInitial({ version: [QUIC_V1, QUIC_V2, QUIC_DRAFT29][k % 3] as number, dcid: DCID, pn: k, pnLen: 4, frames: payload }))
    asm.reset()
    // The sender's bytes decide the stream, so any name is "right" here: check bounds and status only.
    const st = check(t, pkt, asm, null, `frames#${k}`)
    seen.set(statusName(st), (seen.get(statusName(st)) ?? 0) + 1)
  }
  t.ok((seen.get('malformed') ?? 0) > 0 && (seen.get('need-more') ?? 0) > 0, `statuses: ${JSON.stringify(Object.fromEntries(seen))}`)
})

t.test('named hostile frames', async (t) => {
  const asm = new CryptoAssembler()
  const hello = cryptoFrame(0, HELLO)
  const run = (frames: Buffer): Status => {
    asm.reset()
    return check(t, pad1200(sealInitial({ dcid: DCID, frames: Buffer.concat([frames, Buffer.alloc(8)]) })), asm, 'example.com', frames.toString('hex').slice(0, 40))
  }
  // CRYPTO past the 16 KiB cap (MAX_CRYPTO_BYTES): never buffered.
  t.equal(run(cryptoFrame(MAX_CRYPTO_BYTES, Buffer.from('x'))), Status.Malformed, 'offset = cap')
  t.equal(run(cryptoFrame(MAX_CRYPTO_BYTES - 1, Buffer.from('xy'))), Status.Malformed, 'ends one past the cap')
  t.equal(run(Buffer.concat([Buffer.from([0x06]), varint(2 ** 61, 8), varint(1), Buffer.from('x')])), Status.Malformed, 'offset 2^61')
  t.equal(run(Buffer.concat([Buffer.from([0x06, 0]), varint(2 ** 61, 8)])), Status.Malformed, 'length 2^61')
  t.equal(run(Buffer.concat([hello, cryptoFrame(5000, Buffer.alloc(2000))])), Status.Ok, 'far but under the cap: buffered, hello still read')
  // A hello that declares more than the cap can ever hold.
  t.equal(run(cryptoFrame(0, Buffer.from([1, 0, 0x50, 0]))), Status.Malformed, 'hello length 20480 > cap')
  // ACK Range Count absurd: rejected before any loop (each range needs >= 2 bytes).
  for (const n of [2 ** 61, 2 ** 30, 1e6, 600]) {
    t.equal(run(Buffer.concat([Buffer.from([0x02]), varint(2 ** 30), varint(0), varint(n), varint(0), hello])), Status.Malformed, `ACK range count ${n}`)
  }
  // Many real ranges: walked, each step consumes two varints.
  const ranges: Buffer[] = [Buffer.from([0x02]), varint(2 ** 30), varint(0), varint(400), varint(0)]
  for (let i = 0; i < 400; i++) ranges.push(varint(0), varint(0))
  t.equal(run(Buffer.concat([...ranges, hello])), Status.Ok, '400 ACK ranges')
  // Largest Acknowledged smaller than the ranges below it.
  t.equal(run(Buffer.concat([Buffer.from([0x02, 0, 0, 0, 1]), hello])), Status.Malformed, 'first range below 0')
  // Varints cut at the end of the payload (no trailing padding here).
  // (the last: ACK_ECN with two of its three ECN counts)
  for (const tail of [[0x06], [0x06, 0x40], [0x02, 0x80, 0], [0x1c, 0xc0], [0x03, 5, 0, 0, 0, 1, 1]]) {
    asm.reset()
    const st = check(t, pad1200(sealInitial({ dcid: DCID, frames: Buffer.concat([hello, Buffer.from(tail)]) })), asm, null, `tail ${tail}`)
    t.equal(st, Status.Malformed, `varint cut: ${Buffer.from(tail).toString('hex')}`)
  }
  // Header fields out of range.
  const good = pad1200(sealInitial({ dcid: DCID, frames: Buffer.concat([hello, Buffer.alloc(20)]) }))
  const bad: Array<[string, Buffer, QuicRefusal]> = [
    ['DCID length 21', Buffer.concat([good.subarray(0, 5), Buffer.from([21]), good.subarray(6)]), QuicRefusal.Header],
    ['SCID length 255', Buffer.concat([good.subarray(0, 14), Buffer.from([255]), good.subarray(15)]), QuicRefusal.Header],
    ['token length 2^61', Buffer.concat([good.subarray(0, 15), varint(2 ** 61, 8), good.subarray(16)]), QuicRefusal.Header],
    ['Length 0', Buffer.concat([good.subarray(0, 16), varint(0, 2), good.subarray(18)]), QuicRefusal.Header],
    ['Length one past the datagram', Buffer.concat([good.subarray(0, 16), varint(1200 - 18 + 1, 2), good.subarray(18)]), QuicRefusal.Header],
    ['only the header', good.subarray(0, 22), QuicRefusal.Small],
    ['fixed bit 0, no token', Buffer.concat([Buffer.from([(good[0] as number) & ~0x40]), good.subarray(1)]), QuicRefusal.FixedBit],
    ['1199 bytes', good.subarray(0, 1199), QuicRefusal.Small],
  ]
  const before = keyDerivations()
  for (const [label, b, why] of bad) {
    asm.reset()
    t.equal(check(t, b, asm, null, label), Status.Malformed, label)
    t.equal(q.refused, why, `${label}: refused as ${why}`)
  }
  t.equal(keyDerivations(), before, 'all refused before any key derivation')
})

t.test('random-DCID Initials and Handshake-shaped datagrams: typed, never authenticated, never a handshake', async (t) => {
  const r = rng(0x1d)
  const rand = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)))
  const asm = new CryptoAssembler()
  const seen = new Map<string, number>()
  for (let k = 0; k < 3000; k++) {
    const version = [QUIC_V1, QUIC_V2, QUIC_DRAFT29][k % 3] as number
    const typeBits = Math.floor(r() * 4)
    const dcid = rand(r() < 0.8 ? 8 : Math.floor(r() * 21))
    const head = Buffer.concat([
      Buffer.from([0xc0 | (typeBits << 4) | Math.floor(r() * 16), version >>> 24, (version >>> 16) & 255, (version >>> 8) & 255, version & 255, dcid.length]),
      dcid, Buffer.from([0]), typeBits === 0 || (version === QUIC_V2 && typeBits === 1) ? Buffer.from([0]) : Buffer.alloc(0),
    ])
    const size = 1200 + Math.floor(r() * 100)
    const b = Buffer.concat([head, varint(size - head.length - 2, 2), rand(size - head.length - 2)])
    // Sometimes a flow that already authenticated an Initial (its keys are tried too).
    asm.reset()
    if (r() < 0.3) {
      const real = seeds[k % seeds.length] as Seed
      primed(real, asm)
    }
    const st = check(t, b, asm, null, `random-dcid#${k}`)
    if (q.authenticated || q.handshake) t.fail(`random-dcid#${k}: authenticated ${q.authenticated}, handshake ${q.handshake}`)
    const key = `${statusName(st)}/${q.refused}`
    seen.set(key, (seen.get(key) ?? 0) + 1)
  }
  t.ok((seen.get(`malformed/${QuicRefusal.Unauthenticated}`) ?? 0) > 0 && (seen.get(`unsupported/${QuicRefusal.None}`) ?? 0) > 0,
    `outcomes: ${JSON.stringify(Object.fromEntries(seen))}`)
})

t.test('assembler against a model: random fragments, overlaps, cap', async (t) => {
  const r = rng(0x16384)
  const a = new CryptoAssembler()
  const src = Buffer.from(Array.from({ length: MAX_CRYPTO_BYTES + 64 }, () => Math.floor(r() * 256)))
  let bad = 0
  for (let round = 0; round < 300; round++) {
    a.reset()
    const model = new Int16Array(MAX_CRYPTO_BYTES).fill(-1)
    let disagree = false
    for (let k = 0; k < 20; k++) {
      cases++
      const off = r() < 0.9 ? Math.floor(r() * 3000) : MAX_CRYPTO_BYTES - Math.floor(r() * 50)
      const len = Math.floor(r() * (r() < 0.5 ? 40 : 600))
      // Mostly the stream's own bytes (offset = position in src), sometimes shifted: copies that differ.
      const from = r() < 0.7 ? off % 64 : Math.floor(r() * 64)
      const st = a.add(off, src, from, from + len)
      const fits = off + len <= MAX_CRYPTO_BYTES
      if ((st === Status.Ok) !== fits) bad++
      if (fits) {
        for (let i = 0; i < len; i++) {
          if (model[off + i] === -1) model[off + i] = src[from + i] as number
          else if (model[off + i] !== src[from + i]) disagree = true
        }
      }
      if (a.disagree !== disagree) bad++
    }
    let prefix = 0
    while (prefix < MAX_CRYPTO_BYTES && model[prefix] !== -1) prefix++
    if (a.contiguous !== prefix) bad++
    for (let i = 0; i < MAX_CRYPTO_BYTES; i++) if (model[i] !== -1 && a.buf[i] !== model[i]) { bad++; break }
    const st = a.parse()
    if (!STATUSES.has(st)) bad++
  }
  t.equal(bad, 0, 'first copy wins, later copies compared, prefix and cap as the model says')
})

t.test('one packet, two keys: an Initial that opens under its own DCID and the flow\'s is ambiguous, never read', async (t) => {
  const flow = Buffer.from('0102030405060708', 'hex')
  const x = Buffer.from('a1a2a3a4a5a6a7a8', 'hex')
  const frames = Buffer.concat([cryptoFrame(0, HELLO), Buffer.alloc(1000)])
  const pkt = pad1200(sealAmbiguous(x, flow, frames))
  // Under its own DCID alone it is a real Initial naming example.com.
  const own = new CryptoAssembler()
  t.equal(parseQuicInitial(pkt, 0, pkt.length, own, q), Status.Ok, 'alone: read under its own keys')
  t.ok(own.hello.hasSni && readName(own.hello.buf, own.hello.sniStart, own.hello.sniEnd, nameOut) && nameOut.name === 'example.com', 'example.com')
  // In a flow whose DCID is the other one, it opens under those keys too.
  const asm = new CryptoAssembler()
  const first = pad1200(sealInitial({ dcid: flow, frames: Buffer.concat([cryptoFrame(0, HELLO.subarray(0, 100)), Buffer.alloc(1000)]) }))
  t.equal(parseQuicInitial(first, 0, first.length, asm, q), Status.NeedMore)
  const st = parseQuicInitial(pkt, 0, pkt.length, asm, q)
  t.equal(st, Status.Malformed, `in the flow: ${statusName(st)}`)
  t.ok(q.ambiguous && q.authenticated, 'ambiguous')
  t.notOk(q.otherConnection || q.usedFlowKeys, 'neither another connection nor the flow\'s')
  t.equal(q.initials, 0)
  t.equal(asm.buffered, 100, 'nothing read into the flow')
  t.equal(asm.parse(), Status.NeedMore)
  cases++
})

t.test('case count', async (t) => {
  t.ok(cases >= 20000, `${cases} hostile cases ran`)
})
