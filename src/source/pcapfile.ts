import { createRequire } from 'node:module'
import { openSync, closeSync, readSync, fstatSync } from 'node:fs'
import { AigateError } from '../util/errors.js'
import {
  LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW,
  LINKTYPE_IPV4, LINKTYPE_IPV6,
} from '../decode/packet.js'

/**
 * Capture files (pcap and pcapng) read through the `pcap` package (libpcap).
 * The package hands us one reused buffer per packet; we pass it on as
 * (buf, caplen, time) without copying. The link type is read from the
 * file's header here: the package names only five link types and gives
 * "Unknown linktype N" for the rest (LINUX_SLL2 of `tcpdump -i any`, IPV4, IPV6).
 */

interface PcapPacket { buf: Buffer, header: Buffer }
interface PcapSession {
  /** The libpcap binding; dispatch returns packets read, 0 at the end, -1 on error. */
  session: { dispatch (buf: Buffer, header: Buffer): number }
  buf: Buffer
  header: Buffer
  on (ev: 'packet', cb: (p: PcapPacket) => void): void
  on (ev: 'complete', cb: () => void): void
  close (): void
}
interface PcapModule { createOfflineSession (path: string, opts?: { filter?: string }): PcapSession }

const require = createRequire(import.meta.url)

/** Link types whose frames we can find the IP header in (see ipOffset in decode/packet.ts), with their tcpdump.org names. */
export const DECODABLE_LINK_TYPES: ReadonlyMap<number, string> = new Map([
  [LINKTYPE_NULL, 'NULL'], [LINKTYPE_ETHERNET, 'ETHERNET'], [LINKTYPE_RAW, 'RAW'], [LINKTYPE_LINUX_SLL, 'LINUX_SLL'],
  [LINKTYPE_LINUX_SLL2, 'LINUX_SLL2'], [LINKTYPE_IPV4, 'IPV4'], [LINKTYPE_IPV6, 'IPV6'],
])

/** The error for a link type we cannot decode; `what` names the file or interface. */
export function linkTypeError (what: string, linkType: number): CaptureError {
  const known = [...DECODABLE_LINK_TYPES].map(([n, name]) => `${name} (${n})`).join(', ')
  return new CaptureError('ELINKTYPE', `${what}: link type ${linkType < 0 ? 'unknown' : linkType} cannot be decoded; aigate reads ${known}`)
}

/** A capture file or interface that cannot be read; `code` is an errno name or ours (ELINKTYPE, EFBIG...). */
export class CaptureError extends AigateError {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'CaptureError'
    this.code = code
  }
}

const PCAP_MAGICS = new Set([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0x0a0d0d0a])
const PCAPNG_SHB = 0x0a0d0d0a
const PCAPNG_BYTE_ORDER = 0x1a2b3c4d
const PCAPNG_IDB = 1
/** Header bytes read to find the link type: a pcapng Interface Description Block may follow a long Section Header Block. */
const HEADER_READ = 65536
/** The link type proper of the pcap header's LinkType field; the bits above carry FCS information (draft-ietf-opsawg-pcap §4). */
const LINKTYPE_MASK = 0x03ffffff

/**
 * The link type in a capture file's header: the pcap file header's
 * LinkType (offset 20, in the byte order of the magic), or the LinkType of
 * the first Interface Description Block of a pcapng file
 * (draft-ietf-opsawg-pcapng §4.2; libpcap requires every interface of a
 * file to have the same one). -1 when the header is cut short.
 */
export function headerLinkType (head: Buffer): number {
  if (head.length < 24) return -1
  const magic = head.readUInt32BE(0)
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) return head.readUInt32BE(20) & LINKTYPE_MASK
  if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) return head.readUInt32LE(20) & LINKTYPE_MASK
  if (magic !== PCAPNG_SHB) return -1
  // The Section Header Block's byte-order magic says how to read every block.
  const le = head.readUInt32LE(8) === PCAPNG_BYTE_ORDER
  if (!le && head.readUInt32BE(8) !== PCAPNG_BYTE_ORDER) return -1
  const u32 = (o: number): number => le ? head.readUInt32LE(o) : head.readUInt32BE(o)
  for (let off = 0; off + 12 <= head.length;) {
    const type = u32(off)
    const len = u32(off + 4)
    if (type === PCAPNG_IDB) return le ? head.readUInt16LE(off + 8) : head.readUInt16BE(off + 8)
    if (len < 12 || len % 4 !== 0) return -1
    off += len
  }
  return -1
}

/** Check the file before libpcap sees it, so each failure gets its own clear message; returns the header's link type. */
function precheck (path: string): number {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    const what = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : code
    throw new CaptureError(code, `${path}: ${what}`)
  }
  try {
    if (fstatSync(fd).isDirectory()) throw new CaptureError('EISDIR', `${path}: is a directory`)
    const head = Buffer.alloc(HEADER_READ)
    let n: number
    try {
      n = readSync(fd, head, 0, HEADER_READ, 0)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
      throw new CaptureError(code, `${path}: cannot read: ${code === 'EISDIR' ? 'is a directory' : code}`)
    }
    if (n < 4) throw new CaptureError('ECORRUPT', `${path}: not a capture file (too short)`)
    if (!PCAP_MAGICS.has(head.readUInt32BE(0))) throw new CaptureError('ECORRUPT', `${path}: not a pcap or pcapng capture file`)
    return headerLinkType(head.subarray(0, n))
  } finally {
    closeSync(fd)
  }
}

export interface CapturedPacket {
  /** Reused buffer; valid only during the callback. */
  buf: Buffer
  caplen: number
  /** Packet time in milliseconds since the epoch. */
  timeMs: number
  linkType: number
}

/**
 * Read every packet of a capture file, calling `onPacket` synchronously for
 * each. Resolves with the packet count; rejects with CaptureError.
 */
export function readCapture (path: string, onPacket: (p: CapturedPacket) => void, filter?: string): Promise<number> {
  const linkType = precheck(path)
  const pcap = require('pcap') as PcapModule
  let session: PcapSession
  try {
    session = pcap.createOfflineSession(path, filter === undefined ? {} : { filter })
  } catch (err) {
    throw new CaptureError('ECORRUPT', `${path}: cannot read capture: ${(err as Error).message}`)
  }
  // libpcap opened the file, so its header is whole: a -1 here means no
  // interface block before the first packets, which libpcap refuses anyway.
  if (!DECODABLE_LINK_TYPES.has(linkType)) {
    session.close()
    throw linkTypeError(path, linkType)
  }
  const pkt: CapturedPacket = { buf: Buffer.alloc(0), caplen: 0, timeMs: 0, linkType }
  let count = 0
  let failure: unknown = null
  session.on('packet', (p) => {
    if (failure !== null) return
    count++
    const h = p.header
    pkt.buf = p.buf
    pkt.timeMs = h.readUInt32LE(0) * 1000 + Math.floor(h.readUInt32LE(4) / 1000)
    pkt.caplen = Math.min(h.readUInt32LE(8), p.buf.length)
    try {
      onPacket(pkt)
    } catch (err) {
      failure = err
    }
  })
  // Drive libpcap ourselves: the package's own offline loop stops silently on
  // an error (-1), and a truncated or corrupt file must not look complete.
  let r: number
  do {
    r = session.session.dispatch(session.buf, session.header)
  } while (r > 0 && failure === null)
  return new Promise((resolve, reject) => {
    session.on('complete', () => {
      session.close()
      if (failure !== null) reject(failure)
      else if (r < 0) reject(new CaptureError('ECORRUPT', `${path}: truncated or corrupt after packet ${count}`))
      else resolve(count)
    })
  })
}
