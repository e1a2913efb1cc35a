import t, { type Test } from 'tap'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import {
  parseQuicInitial, CryptoAssembler, QuicInfo, InitialKeys, keyDerivations, quicNativeCrypto,
  QUIC_V1, QUIC_V2, QUIC_DRAFT29,
} from '../../../src/extract/quic.js'
import { loadQuicCrypto, QUIC_SLOT_SIZE } from '../../../src/native/index.js'
import { Status, statusName } from '../../../src/util/status.js'
import { FIXTURES } from '../../helpers/fixtures.js'
import { sealInitial, sealAmbiguous, cryptoFrame, varint } from '../../fixtures/quic/seal.js'
import { rng } from '../../helpers/rng.js'

/**
 * The addon's Initial crypto (native/src/quic_crypto.cc, OpenSSL EVP) against
 * the published vectors, and against the node:crypto path result by result:
 * every datagram below is parsed twice, once on each path, from the same
 * assembler and key-cache state, and everything parseQuicInitial reports
 * (status, QuicInfo, the assembler's stream and DCID, key derivations) must
 * be the same. test/unit/extract/quic-node-crypto.test.ts runs the whole QUIC suites
 * on node:crypto as well.
 */

const ADDON = fileURLToPath(new URL('../../../native/build/Release/aigate_nfq.node', import.meta.url))
const addon = loadQuicCrypto()
if (!existsSync(ADDON)) {
  t.comment('native/build/Release/aigate_nfq.node is not built (npm run build:native): node:crypto path only')
  t.notOk(addon, 'no addon, no native path')
  t.notOk(quicNativeCrypto(), 'parseQuicInitial uses node:crypto')
  process.exit(0)
}

const DIR = join(FIXTURES, 'quic')
const bin = (f: string): Buffer => readFileSync(join(DIR, f))
const RFC_DCID = Buffer.from('8394c8f03e515708', 'hex')
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

t.test('the built addon has the QUIC crypto and parseQuicInitial uses it', async (t) => {
  t.ok(addon, 'loadQuicCrypto() found quicOpen and quicDerive')
  t.equal(addon?.QUIC_SLOT_SIZE, QUIC_SLOT_SIZE)
  t.ok(quicNativeCrypto(), 'native path on by default')
  t.notOk(quicNativeCrypto(false), 'can be switched off')
  t.ok(quicNativeCrypto(true), 'and on again')
})

/** A slot for (version, DCID) with all keys derived by the addon. */
function nativeKeys (version: number, dcid: Buffer): { secret: string, hp: string, key: string, iv: string } {
  const s = Buffer.alloc(QUIC_SLOT_SIZE)
  s[1] = dcid.length
  s.writeUInt32LE(version >>> 0, 4)
  dcid.copy(s, 8)
  addon?.quicDerive(s)
  return { secret: hex(s.subarray(32, 64)), hp: hex(s.subarray(64, 80)), key: hex(s.subarray(80, 96)), iv: hex(s.subarray(96, 108)) }
}

t.test('native keys: RFC 9001 A.1, RFC 9369 A.1, draft-29 A.1, and node:crypto for random DCIDs', async (t) => {
  // RFC 9001 A.1 (https://www.rfc-editor.org/rfc/rfc9001#appendix-A.1)
  t.same(nativeKeys(QUIC_V1, RFC_DCID), {
    secret: 'c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea',
    hp: '9f50449e04a0e810283a1e9933adedd2', key: '1f369613dd76d5467730efcbe3b1a22d', iv: 'fa044b2f42a3fd3b46fb255c',
  }, 'v1')
  // RFC 9369 A.1 (https://www.rfc-editor.org/rfc/rfc9369#appendix-A.1)
  t.same(nativeKeys(QUIC_V2, RFC_DCID), {
    secret: '14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b',
    hp: '45b95e15235d6f45a6b19cbcb0294ba9', key: '8b1a0bc121284290a29e0971b5cd045d', iv: '91f73e2351d8fa91660e909f',
  }, 'v2')
  // draft-ietf-quic-tls-29 A.1
  t.same(nativeKeys(QUIC_DRAFT29, RFC_DCID), {
    secret: '0088119288f1d866733ceeed15ff9d50902cf82952eee27e9d4d4918ea371d87',
    hp: '9ddd12c994c0698b89374a9c077a3077', key: '175257a31eb09dea9366d8bb79ad80ba', iv: '6b26114b9cba2b63a9e8dd4f',
  }, 'draft-29')
  const r = rng(9001)
  const k = new InitialKeys()
  for (const version of [QUIC_V1, QUIC_V2, QUIC_DRAFT29]) {
    for (let len = 0; len <= 20; len++) {
      const dcid = Buffer.from(Array.from({ length: len }, () => Math.floor(r() * 256)))
      k.derive(version, dcid, 0, len)
      const n = nativeKeys(version, dcid)
      t.equal(n.key + n.iv, hex(k.key) + hex(k.iv), `version ${version.toString(16)}, ${len}-byte DCID: key and iv`)
    }
  }
})

t.test('native calls that do not fit the contract throw, never touch memory out of bounds', async (t) => {
  const a = addon
  if (!a) return
  const s = Buffer.alloc(QUIC_SLOT_SIZE)
  s.writeUInt32LE(QUIC_V1, 4)
  s[1] = 8
  const b = Buffer.alloc(1200)
  const out = Buffer.alloc(2000)
  t.throws(() => a.quicOpen(Buffer.alloc(10), b, 0, 20, 1200, out), /QUIC_SLOT_SIZE/)
  const bad = Buffer.from(s)
  bad.writeUInt32LE(0x1a2a3a4a, 4)
  t.throws(() => a.quicOpen(bad, b, 0, 20, 1200, out), RangeError, 'unknown version')
  bad.writeUInt32LE(QUIC_V1, 4)
  bad[1] = 21
  t.throws(() => a.quicDerive(bad), RangeError, 'DCID over 20 bytes')
  t.throws(() => a.quicOpen(s, b, 0, 1181, 1200, out), RangeError, 'sample past the packet')
  t.throws(() => a.quicOpen(s, b, 0, 20, 1201, out), RangeError, 'packet past the buffer')
  t.throws(() => a.quicOpen(s, b, 20, 20, 1200, out), RangeError, 'pnOff at the packet start')
  t.throws(() => a.quicOpen(s, b, 0, 20, 1200, new Uint16Array(4) as unknown as Uint8Array), /Uint8Array/)
  // Out too small for a payload is refused only once a payload would be written.
  let threw = 0
  for (let i = 0; i < 64; i++) {
    b[0] = i
    try { a.quicOpen(s, b, 0, 20, 1200, Buffer.alloc(8)) } catch (err) { threw++; t.match(String(err), /shorter/) }
  }
  t.ok(threw > 0, 'reserved bits 0 with a short out: RangeError')
})

t.test('worker threads: each loads the addon with its own OpenSSL contexts, and ends cleanly', async (t) => {
  // Plain JS in the workers (no TypeScript loader there): the addon directly.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const a = require(workerData.addon)
    const b = Buffer.from(workerData.packet)
    const s = Buffer.alloc(a.QUIC_SLOT_SIZE)
    const out = Buffer.alloc(2048)
    let n = -2
    for (let i = 0; i < 300; i++) {
      s.fill(0); s[1] = 8; s.writeUInt32LE(1, 4); b.copy(s, 8, 6, 14)
      n = a.quicOpen(s, b, 0, 18, b.length, out)
    }
    parentPort.postMessage({ n, pn: s.readUInt32LE(28), head: out.subarray(0, 8).toString('hex') })`
  const packet = bin('rfc9001-a2-client-initial.bin')
  const runs = await Promise.all(Array.from({ length: 4 }, () => new Promise<unknown>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { addon: ADDON, packet } })
    let got: unknown = null
    w.on('message', (m) => { got = m })
    w.on('error', reject)
    w.on('exit', (code) => { code === 0 ? resolve(got) : reject(new Error(`worker exit ${code}`)) })
  })))
  // RFC 9001 A.2: packet number 2, payload 1162 bytes starting with the CRYPTO frame 060040f1 010000ed.
  for (const r of runs) t.same(r, { n: 1162, pn: 2, head: '060040f1010000ed' })
})

// --- differential: node:crypto and the addon on the same inputs ---------------

const asmJs = new CryptoAssembler()
const asmNat = new CryptoAssembler()
const qJs = new QuicInfo()
const qNat = new QuicInfo()
let compared = 0
let opened = 0
let flowKeys = 0

function snapshot (st: Status, q: QuicInfo, asm: CryptoAssembler, derived: number): string {
  const h = asm.hello
  return JSON.stringify({
    status: statusName(st), q: { ...q }, derived,
    asm: {
      contiguous: asm.contiguous, highWater: asm.highWater, buffered: asm.buffered, frames: asm.frames, overflow: asm.overflow,
      dcid: hex(asm.dcid.subarray(0, asm.dcidLen)), dcidVersion: asm.dcidVersion,
      stream: hex(asm.buf.subarray(0, asm.contiguous)),
      sni: h.hasSni ? h.buf.toString('latin1', h.sniStart, h.sniEnd) : null,
    },
  })
}

/**
 * Parse the datagrams in order on each path (each path with its own
 * assembler, both reset first), and compare after every datagram. Both key
 * caches see the same DCIDs in the same order, so derivation counts compare too.
 */
function same (t: Test, label: string, datagrams: Buffer[]): void {
  asmJs.reset()
  asmNat.reset()
  for (let i = 0; i < datagrams.length; i++) {
    const d = datagrams[i] as Buffer
    quicNativeCrypto(false)
    let k0 = keyDerivations()
    const a = snapshot(parseQuicInitial(d, 0, d.length, asmJs, qJs), qJs, asmJs, keyDerivations() - k0)
    quicNativeCrypto(true)
    k0 = keyDerivations()
    const b = snapshot(parseQuicInitial(d, 0, d.length, asmNat, qNat), qNat, asmNat, keyDerivations() - k0)
    compared++
    if (qNat.authenticated) opened++
    if (qNat.usedFlowKeys) flowKeys++
    if (a !== b) {
      t.equal(b, a, `${label}, datagram ${i}: addon and node:crypto differ`)
      return
    }
  }
  t.pass(label)
}

const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.bin')).sort()
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { connections: Record<string, { files: string[] }> }
const pad1200 = (b: Buffer): Buffer => b.length >= 1200 ? b : Buffer.concat([b, Buffer.alloc(1200 - b.length)])

t.test('same results: RFC samples and every Chromium fixture, alone and as connections', async (t) => {
  t.ok(fixtures.length >= 10, `${fixtures.length} fixture datagrams`)
  for (const f of fixtures) same(t, f, [bin(f)])
  for (const [name, c] of Object.entries(exp.connections)) {
    const files = c.files.map((f) => f.replace(/^quic\//, ''))
    same(t, `connection ${name}`, files.map(bin))
    same(t, `connection ${name}, reversed`, files.map(bin).reverse())
  }
  t.ok(opened > 10 && flowKeys > 0, `${opened} datagrams opened, ${flowKeys} with the flow's original DCID keys`)
})

// A ClientHello for example.com (RFC 9001 A.2's CRYPTO data, without the frame header).
const RFC_HELLO = Buffer.from(
  '010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c0000041301130201' +
  '0000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d00170018001000070005' +
  '04616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce1' +
  '5d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c0002400100' +
  '3900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806' +
  '048000ffff', 'hex')

t.test('same results: sealed Initials of every version, packet-number length, token, DCID length, split hellos', async (t) => {
  const r = rng(29)
  for (const version of [QUIC_V1, QUIC_V2, QUIC_DRAFT29]) {
    for (const pnLen of [1, 2, 3, 4] as const) {
      for (const dcidLen of [0, 4, 8, 20]) {
        const dcid = Buffer.from(Array.from({ length: dcidLen }, () => Math.floor(r() * 256)))
        const pn = Math.floor(r() * (2 ** (8 * pnLen)))
        const whole = sealInitial({ version, dcid, pn, pnLen, frames: Buffer.concat([cryptoFrame(0, RFC_HELLO), Buffer.alloc(900)]) })
        same(t, `v${version.toString(16)} pnLen ${pnLen} DCID ${dcidLen}`, [pad1200(whole)])
        const token = sealInitial({ version, dcid, pn, pnLen, token: Buffer.alloc(1 + Math.floor(r() * 60), 7), frames: Buffer.concat([cryptoFrame(0, RFC_HELLO), Buffer.alloc(900)]) })
        same(t, `v${version.toString(16)} pnLen ${pnLen} DCID ${dcidLen}, token`, [pad1200(token)])
        // Split over two datagrams, second first, then a later Initial under a new DCID (flow keys).
        const cut = 1 + Math.floor(r() * (RFC_HELLO.length - 1))
        const p1 = pad1200(sealInitial({ version, dcid, pn: 0, pnLen, frames: Buffer.concat([cryptoFrame(0, RFC_HELLO.subarray(0, cut)), Buffer.alloc(1000)]) }))
        const p2 = pad1200(sealInitial({ version, dcid, pn: 1, pnLen, frames: Buffer.concat([cryptoFrame(cut, RFC_HELLO.subarray(cut)), Buffer.alloc(1000)]) }))
        const later = pad1200(sealInitial({ version, dcid: Buffer.from('0102030405060708', 'hex'), pn: 2, pnLen, frames: Buffer.from([0x01]) }))
        // `later` has another DCID and opens with its own keys (the flow's keys are tried only after those fail).
        same(t, `v${version.toString(16)} pnLen ${pnLen} DCID ${dcidLen}, split`, [p2, p1, later])
        // Two coalesced Initials, and one behind a junk Initial.
        same(t, `v${version.toString(16)} coalesced`, [pad1200(Buffer.concat([p1.subarray(0, p1.length), p2]))])
      }
    }
  }
})

t.test('same results: another connection on the flow, disagreeing CRYPTO copies, a packet that opens under two keys', async (t) => {
  const flow = Buffer.from('0102030405060708', 'hex')
  const x = Buffer.from('a1a2a3a4a5a6a7a8', 'hex')
  const decoy = Buffer.from(RFC_HELLO)
  decoy.write('exbmple', RFC_HELLO.indexOf('example', 0, 'latin1'), 'latin1')
  const seal = (dcid: Buffer, hello: Buffer, version = QUIC_V1, pn = 0, token?: Buffer): Buffer =>
    pad1200(sealInitial({ version, dcid, pn, token, frames: Buffer.concat([cryptoFrame(0, hello), Buffer.alloc(1000)]) }))
  let other = 0
  let disagreed = 0
  let ambiguous = 0
  const count = (): void => { if (qNat.otherConnection) other++; if (qNat.disagree) disagreed++; if (qNat.ambiguous) ambiguous++ }
  for (const version of [QUIC_V1, QUIC_V2, QUIC_DRAFT29]) {
    // A decoy connection, then the real one under another DCID (and the real one's retransmission).
    same(t, `v${version.toString(16)}: decoy then another connection`, [seal(x, decoy.subarray(0, 120), version), seal(flow, RFC_HELLO, version), seal(flow, RFC_HELLO, version, 1)])
    count()
    // The same DCID: the decoy's bytes first, the real ones disagree.
    same(t, `v${version.toString(16)}: same DCID, disagreeing copies`, [seal(flow, decoy.subarray(0, 120), version), seal(flow, RFC_HELLO, version, 1)])
    count()
    // After a Retry: new DCID, own keys, a token.
    same(t, `v${version.toString(16)}: after a Retry`, [seal(flow, RFC_HELLO, version), seal(x, RFC_HELLO, version, 1, Buffer.alloc(30, 1))])
    count()
  }
  same(t, 'same DCID, another version', [seal(flow, RFC_HELLO.subarray(0, 100)), seal(flow, RFC_HELLO, QUIC_V2)])
  count()
  for (const f of fixtures.filter((f) => f.startsWith('chromium'))) {
    same(t, `${f} after a decoy of another DCID`, [seal(x, decoy.subarray(0, 120)), bin(f)])
    count()
  }
  const amb = pad1200(sealAmbiguous(x, flow, Buffer.concat([cryptoFrame(0, RFC_HELLO), Buffer.alloc(1000)])))
  same(t, 'a packet under two keys, in the other key\'s flow', [seal(flow, RFC_HELLO.subarray(0, 100)), amb])
  count()
  same(t, 'a packet under two keys, alone', [amb])
  t.ok(other >= 10 && disagreed === 3 && ambiguous === 1, `${other} other connections, ${disagreed} disagreements, ${ambiguous} ambiguous, on both paths`)
})

/** Valid-looking v1/v2/draft-29 header (DCID of `dcidLen`, no token, 2-byte Length) over random bytes. */
function randomInitial (r: () => number, version: number, size: number, dcidLen: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = Math.floor(r() * 256)
  const typeBits = version === QUIC_V2 ? 1 : 0
  b[0] = 0xc0 | (typeBits << 4) | ((b[0] as number) & 0x0f)
  b.writeUInt32BE(version >>> 0, 1)
  b[5] = dcidLen
  const p = 6 + dcidLen
  b[p] = 0 // SCID
  b[p + 1] = 0 // token
  b.writeUInt16BE(0x4000 | (size - p - 4), p + 2)
  return b
}

t.test('same results: random payloads behind valid headers (the flood), with the reserved bits made 0 by the sender', async (t) => {
  const r = rng(1250)
  const hpKeys = new InitialKeys()
  for (let i = 0; i < 600; i++) {
    const version = [QUIC_V1, QUIC_V2, QUIC_DRAFT29][i % 3] as number
    const size = 1200 + Math.floor(r() * 300)
    const dcidLen = Math.floor(r() * 21)
    const b = randomInitial(r, version, size, dcidLen)
    if (i % 2 === 1) { // reserved bits 0 after header protection: reaches the GCM open
      hpKeys.deriveHp(version, b, 6, dcidLen)
      const pnOff = 6 + dcidLen + 4
      const mask = hpKeys.hp?.update(b.subarray(pnOff + 4, pnOff + 20)) as Buffer
      b[0] = ((b[0] as number) & ~0x0c) | ((mask[0] as number) & 0x0c)
    }
    same(t, `random ${i}: v${version.toString(16)} ${size} B, DCID ${dcidLen}`, [b, b])
  }
})

t.test('same results: every real datagram mutated (bit flips, cuts, lying lengths, changed DCIDs) and random bytes', async (t) => {
  const r = rng(369)
  const bases = [...fixtures.map(bin), pad1200(sealInitial({ version: QUIC_DRAFT29, dcid: RFC_DCID, frames: Buffer.concat([cryptoFrame(0, RFC_HELLO), Buffer.alloc(900)]) }))]
  for (const base of bases) {
    for (let i = 0; i < 60; i++) {
      const m = Buffer.from(base)
      const kind = i % 6
      if (kind === 0) { // one bit anywhere
        const at = Math.floor(r() * m.length)
        m[at] = (m[at] as number) ^ (1 << Math.floor(r() * 8))
      } else if (kind === 1) { // a byte in the header
        m[Math.floor(r() * Math.min(m.length, 40))] = Math.floor(r() * 256)
      } else if (kind === 2) { // the tag or the sample
        const at = r() < 0.5 ? m.length - 1 - Math.floor(r() * 16) : 30 + Math.floor(r() * 20)
        m[at] = (m[at] as number) ^ 0xff
      } else if (kind === 3) { // a DCID length that shifts everything
        m[5] = Math.floor(r() * 24)
      } else if (kind === 4) { // first byte (protected bits and type)
        m[0] = Math.floor(r() * 256)
      }
      const cut = kind === 5 ? Math.floor(r() * m.length) : m.length
      same(t, `mutation ${i}`, [m.subarray(0, cut), base])
    }
  }
  for (let i = 0; i < 200; i++) {
    const b = Buffer.from(Array.from({ length: 1200 + Math.floor(r() * 200) }, () => Math.floor(r() * 256)))
    b[0] = (b[0] as number) | 0x80
    same(t, `random bytes ${i}`, [b])
  }
  // Headers that lie: Length past the end, token past the end, Length just over the sample.
  for (const version of [QUIC_V1, QUIC_V2, QUIC_DRAFT29]) {
    for (const length of [0, 19, 20, 21, 36, 37, 1100, 5000]) {
      const b = randomInitial(r, version, 1200, 8)
      b.writeUInt16BE(0x4000 | length, 16)
      same(t, `v${version.toString(16)} Length ${length}`, [b])
    }
    const tok = randomInitial(r, version, 1200, 8)
    varint(1190, 2).copy(tok, 15)
    same(t, `v${version.toString(16)} token past the end`, [tok])
  }
  t.ok(compared > 3000, `${compared} datagrams compared`)
})
