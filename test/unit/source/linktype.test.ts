import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { pathToFileURL } from 'node:url'
import { PACKAGE_ROOT, loadRuleset } from '../../../src/config/index.js'
import { Classifier } from '../../../src/classify/index.js'
import { DecisionLog, MemoryLines } from '../../../src/log/index.js'
import { classifyFile } from '../../../src/source/classify-file.js'
import { headerLinkType, readCapture, DECODABLE_LINK_TYPES } from '../../../src/source/pcapfile.js'
import { liveLinkType } from '../../../src/source/live.js'
import { FIXTURES } from '../../helpers/fixtures.js'

/**
 * Link types: `aigate classify` takes the link type from the capture file's
 * header (the `pcap` package names only five), so a `tcpdump -i any`
 * capture (LINUX_SLL2, 276) is decoded; a link type we cannot decode is an
 * error, not "0 decisions". The fixture pcap/any-sll2.pcap is a real
 * `tcpdump -i any` capture (test/fixtures/sll2-capture.sh, SOURCES.md).
 */
const SLL2 = join(FIXTURES, 'pcap', 'any-sll2.pcap')
const CLIENTS = join(FIXTURES, 'pcap', 'clients.pcap')
const dir = mkdtempSync(join(tmpdir(), 'aigate-linktype-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** The same packets as pcapng: a Section Header Block, one Interface Description Block, one Enhanced Packet Block each (little-endian). */
function toPcapng (pcap: Buffer): Buffer {
  const block = (type: number, body: Buffer): Buffer => {
    const pad = Buffer.alloc((4 - (body.length % 4)) % 4)
    const len = 12 + body.length + pad.length
    const b = Buffer.alloc(len)
    b.writeUInt32LE(type, 0); b.writeUInt32LE(len, 4)
    body.copy(b, 8)
    b.writeUInt32LE(len, len - 4)
    return b
  }
  const shb = Buffer.alloc(16)
  shb.writeUInt32LE(0x1a2b3c4d, 0); shb.writeUInt16LE(1, 4); shb.writeUInt16LE(0, 6); shb.writeBigInt64LE(-1n, 8)
  const idb = Buffer.alloc(8)
  idb.writeUInt16LE(pcap.readUInt32LE(20) & 0xffff, 0); idb.writeUInt32LE(pcap.readUInt32LE(16), 4)
  const out = [block(0x0a0d0d0a, shb), block(1, idb)]
  for (let off = 24; off + 16 <= pcap.length;) {
    const caplen = pcap.readUInt32LE(off + 8)
    const us = BigInt(pcap.readUInt32LE(off)) * 1000000n + BigInt(pcap.readUInt32LE(off + 4))
    const h = Buffer.alloc(20)
    h.writeUInt32LE(0, 0); h.writeUInt32LE(Number(us >> 32n), 4); h.writeUInt32LE(Number(us & 0xffffffffn), 8)
    h.writeUInt32LE(caplen, 12); h.writeUInt32LE(pcap.readUInt32LE(off + 12), 16)
    out.push(block(6, Buffer.concat([h, pcap.subarray(off + 16, off + 16 + caplen)])))
    off += 16 + caplen
  }
  return Buffer.concat(out)
}

const names = async (file: string): Promise<{ names: string[], notIp: number, decisions: number }> => {
  const mem = new MemoryLines()
  const s = await classifyFile(file, new Classifier(loadRuleset()), new DecisionLog(mem))
  return { names: [...new Set(mem.parsed().map((l) => (l as Record<string, any>).destination?.domain as string))].sort(), notIp: s.notIp, decisions: s.decisions }
}

t.test('the link type from the header: pcap in both byte orders, FCS bits, pcapng', async (t) => {
  const sll2 = readFileSync(SLL2)
  t.equal(sll2.readUInt32LE(20), 276, 'the fixture is LINUX_SLL2')
  t.equal(headerLinkType(sll2), 276)
  const be = Buffer.from(sll2.subarray(0, 24))
  be.writeUInt32BE(0xa1b2c3d4, 0); be.writeUInt32BE(276, 20)
  t.equal(headerLinkType(be), 276, 'big-endian pcap')
  const fcs = Buffer.from(sll2.subarray(0, 24))
  fcs.writeUInt32LE(0x14000000 | 1, 20) // F bit and an FCS length of 4
  t.equal(headerLinkType(fcs), 1, 'FCS bits are not part of the link type')
  t.equal(headerLinkType(toPcapng(sll2)), 276, 'pcapng: the Interface Description Block')
  t.equal(headerLinkType(readFileSync(join(FIXTURES, 'pcap', 'clients.pcapng'))), 1, 'editcap\'s pcapng (Ethernet)')
  t.equal(headerLinkType(sll2.subarray(0, 23)), -1, 'cut short')
})

t.test('tcpdump -i any (LINUX_SLL2): every name tshark reads is decided, pcap and pcapng', async (t) => {
  const tshark = readFileSync(join(FIXTURES, 'pcap', 'any-sll2.tshark-names.txt'), 'utf8').split('\n').filter((l) => l !== '')
  const r = await names(SLL2)
  t.equal(r.notIp, 0, 'no packet counted "not IP"')
  t.same(r.names, tshark)
  const ng = join(dir, 'any-sll2.pcapng')
  writeFileSync(ng, toPcapng(readFileSync(SLL2)))
  t.same(await names(ng), r, 'the same packets as pcapng')
})

t.test('a link type we cannot decode: CaptureError ELINKTYPE, and classify exits 1 saying so', async (t) => {
  const bad = readFileSync(CLIENTS)
  bad.writeUInt32LE(147, 20) // LINKTYPE_USER0
  const file = join(dir, 'user0.pcap')
  writeFileSync(file, bad)
  await t.rejects(async () => await readCapture(file, () => {}), { name: 'CaptureError', code: 'ELINKTYPE', message: `${file}: link type 147 cannot be decoded; aigate reads NULL (0), ETHERNET (1), RAW (101), LINUX_SLL (113), LINUX_SLL2 (276), IPV4 (228), IPV6 (229)` })
  const loader = process.execArgv.find((a) => a.includes('@tapjs/typescript')) ??
    `--import=${pathToFileURL(join(PACKAGE_ROOT, 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs')).href}`
  const main = pathToFileURL(join(PACKAGE_ROOT, 'src', 'cli', 'main.ts')).href
  const r = spawnSync(process.execPath, [loader, '--input-type=module', '-e', `import(${JSON.stringify(main)}).then((m) => m.main(process.argv.slice(1)))`, '--', 'classify', file], { encoding: 'utf8' })
  t.equal(r.status, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, /link type 147 cannot be decoded/)
  t.notMatch(r.stderr, /0 decisions/)
})

t.test('live capture: the link type number from the pcap package\'s name for it', async (t) => {
  t.equal(liveLinkType('LINKTYPE_ETHERNET'), 1)
  t.equal(liveLinkType('LINKTYPE_LINUX_SLL'), 113)
  t.equal(liveLinkType('Unknown linktype 276'), 276, 'LINUX_SLL2')
  t.equal(liveLinkType('Unknown linktype 228'), 228, 'IPV4')
  t.ok(DECODABLE_LINK_TYPES.has(liveLinkType('Unknown linktype 229')), 'IPV6 is decoded')
  t.notOk(DECODABLE_LINK_TYPES.has(liveLinkType('LINKTYPE_IEEE802_11_RADIO')), 'radiotap is refused')
  t.equal(liveLinkType('something else'), -1)
})
