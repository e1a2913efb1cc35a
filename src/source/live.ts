import { createRequire } from 'node:module'
import { LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_NULL, LINKTYPE_RAW } from '../decode/packet.js'
import type { Classifier } from '../classify/index.js'
import type { DecisionLog } from '../log/index.js'
import { CaptureError, DECODABLE_LINK_TYPES, linkTypeError } from './pcapfile.js'
import { FrameReader, type FrameStats } from './frames.js'

/**
 * `aigate capture IFACE`: the same path fed from a live interface (a mirror
 * or SPAN port where inline is not possible), through the `pcap` package.
 * Log-only: no verdicts. A BPF filter keeps the kernel from copying packets
 * that cannot carry a name.
 */
export const NAME_PORTS_FILTER =
  '(tcp and (dst port 443 or dst port 80 or dst port 853 or dst port 53)) or (udp and (dst port 443 or dst port 53))' +
  // IP fragments: a port test matches only a first fragment, and the rest is needed to rebuild it.
  ' or (ip and ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)'

/** A frame as the `pcap` package hands it over: its bytes and libpcap's 16-byte record header (caplen at byte 8, little-endian). */
export interface LivePacket { buf: Buffer, header: Buffer }

interface LiveSession {
  /** The package's name for the link type, or "Unknown linktype N". */
  link_type: string
  on (ev: 'packet', cb: (p: LivePacket) => void): void
  /** pcap_breakloop and no more 'packet' events; the handle itself stays open (see LiveHandle.close). */
  close (): void
  stats (): { ps_recv: number, ps_drop: number, ps_ifdrop: number }
  /** The native session: `dispatch` reads every frame waiting in the ring, each one a 'packet' event, and returns at once (non-blocking). */
  session: { dispatch (buf: Buffer, header: Buffer): number }
  buf: Buffer
  header: Buffer
}

/** The five link types the `pcap` package names (node_modules/pcap/pcap_session.cc); 802.11 radiotap we cannot decode. */
const NAMED_LINK_TYPES: Record<string, number> = {
  LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_IEEE802_11_RADIO: 127,
}

/**
 * The link type number of a live session from the `pcap` package's name for
 * it: one of its five names, or "Unknown linktype N" with libpcap's DLT_
 * number (the same as the LINKTYPE_ number for LINUX_SLL2, IPV4 and IPV6).
 * -1 when neither.
 */
export function liveLinkType (name: string): number {
  const named = NAMED_LINK_TYPES[name]
  if (named !== undefined) return named
  const m = /^Unknown linktype (\d+)$/.exec(name)
  return m === null ? -1 : Number(m[1])
}

/** What a live capture saw, reported when it stops: the kernel's counters and the frame reader's (as `aigate classify` reports them). */
export interface LiveStats extends FrameStats {
  /** Packets the kernel's filter passed to the capture. */
  received: number
  /** Packets the kernel dropped before we read them (buffer full, interface drops). */
  dropped: number
}

export interface LiveHandle {
  /**
   * Stop now: the frames already waiting in the kernel's ring are read and
   * logged first (none of what was captured is lost), then the counters are
   * taken and the session stops delivering packets.
   *
   * The process must then exit by itself: the `pcap` package reads libpcap
   * in non-blocking mode from a libuv poll handle that only a read returning
   * PCAP_ERROR_BREAK releases (pcap_session.cc FinalizeClose), and libpcap
   * (1.10) in non-blocking mode sees pcap_breakloop only while it reads a
   * packet: with no traffic the handle keeps the event loop alive until the
   * next matching packet arrives (what `capture` did before: it "waited for a
   * packet" after SIGINT). The kernel closes the socket when the process ends.
   */
  close (): LiveStats
}

/**
 * The session's packet callback: each frame through `frames` (time: the
 * wall clock), its decision lines written out at once.
 */
export function onLivePacket (frames: FrameReader, linkType: number, log: DecisionLog): (p: LivePacket) => void {
  return (p) => {
    const caplen = Math.min(p.header.readUInt32LE(8), p.buf.length)
    if (frames.read(linkType, p.buf, caplen, Date.now()) > 0) {
      log.srcMac = frames.srcMac
      log.write(frames.packet, frames.out)
      log.out.flush()
    }
  }
}

export function captureLive (iface: string, classifier: Classifier, log: DecisionLog, filter = NAME_PORTS_FILTER): LiveHandle {
  const pcap = createRequire(import.meta.url)('pcap') as { createSession (d: string, o: object): LiveSession }
  let session: LiveSession
  try {
    session = pcap.createSession(iface, { filter, snap_length: 4096, buffer_timeout: 10, promiscuous: true })
  } catch (err) {
    const msg = (err as Error).message
    const hint = /permission|Operation not permitted/i.test(msg) ? ' (needs CAP_NET_RAW)' : ''
    throw new CaptureError('ECAPTURE', `cannot capture on ${iface}: ${msg}${hint}`)
  }
  const linkType = liveLinkType(session.link_type)
  if (!DECODABLE_LINK_TYPES.has(linkType)) {
    session.close()
    throw linkTypeError(`cannot capture on ${iface}`, linkType)
  }
  // A mirror port sees fragments as sent: the reader puts them together as the host will.
  const frames = new FrameReader(classifier)
  session.on('packet', onLivePacket(frames, linkType, log))
  let closed: LiveStats | null = null
  return {
    close: () => {
      if (closed !== null) return closed
      session.session.dispatch(session.buf, session.header)
      const s = session.stats()
      session.close()
      closed = { ...frames.finish(), received: s.ps_recv, dropped: s.ps_drop + s.ps_ifdrop }
      return closed
    },
  }
}
