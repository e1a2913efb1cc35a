import { createRequire } from 'node:module'
import { openSync, closeSync, readSync, fstatSync } from 'node:fs'
import {
  LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW,
  LINKTYPE_IPV4, LINKTYPE_IPV6,
} from '../decode/packet.js'

/**
 * Capture files (pcap and pcapng) read through the `pcap` package (libpcap).
 * The package hands us one reused buffer per packet; we pass it on as
 * (buf, caplen, time) without copying.
 */

interface PcapPacket { buf: Buffer, header: Buffer, link_type: string }
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

const LINK_TYPES: Record<string, number> = {
  LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6,
}

export class CaptureError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'CaptureError'
    this.code = code
  }
}

const PCAP_MAGICS = new Set([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0x0a0d0d0a])

/** Check the file before libpcap sees it, so each failure gets its own clear message. */
function precheck (path: string): void {
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
    const head = Buffer.alloc(4)
    let n: number
    try {
      n = readSync(fd, head, 0, 4, 0)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
      throw new CaptureError(code, `${path}: cannot read: ${code === 'EISDIR' ? 'is a directory' : code}`)
    }
    if (n < 4) throw new CaptureError('ECORRUPT', `${path}: not a capture file (too short)`)
    if (!PCAP_MAGICS.has(head.readUInt32BE(0))) throw new CaptureError('ECORRUPT', `${path}: not a pcap or pcapng capture file`)
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
  precheck(path)
  const pcap = require('pcap') as PcapModule
  let session: PcapSession
  try {
    session = pcap.createOfflineSession(path, filter === undefined ? {} : { filter })
  } catch (err) {
    throw new CaptureError('ECORRUPT', `${path}: cannot read capture: ${(err as Error).message}`)
  }
  const pkt: CapturedPacket = { buf: Buffer.alloc(0), caplen: 0, timeMs: 0, linkType: -1 }
  let count = 0
  let failure: unknown = null
  session.on('packet', (p) => {
    if (failure !== null) return
    count++
    const h = p.header
    pkt.buf = p.buf
    pkt.timeMs = h.readUInt32LE(0) * 1000 + Math.floor(h.readUInt32LE(4) / 1000)
    pkt.caplen = Math.min(h.readUInt32LE(8), p.buf.length)
    pkt.linkType = LINK_TYPES[p.link_type] ?? -1
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
