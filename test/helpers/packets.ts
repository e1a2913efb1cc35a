/**
 * Wrap payload bytes (real captured ones) in IPv4/IPv6 + TCP/UDP headers, to
 * feed segments through decode and the flow table as a capture would. The
 * headers are built here; the payloads are the fixtures'.
 */
export interface Tuple { src: string, dst: string, sport: number, dport: number }

function v4 (a: string): number[] { return a.split('.').map(Number) }

export function tcp4 (t: Tuple, seq: number, payload: Uint8Array, flags = 0x18, ttl = 64, ack = 0): Buffer {
  const b = Buffer.alloc(40 + payload.length)
  b[0] = 0x45; b.writeUInt16BE(b.length, 2); b[8] = ttl; b[9] = 6
  b.set(v4(t.src), 12); b.set(v4(t.dst), 16)
  b.writeUInt16BE(t.sport, 20); b.writeUInt16BE(t.dport, 22); b.writeUInt32BE(seq >>> 0, 24); b.writeUInt32BE(ack >>> 0, 28)
  b[32] = 0x50; b[33] = flags
  b.set(payload, 40)
  return b
}

export function udp4 (t: Tuple, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(28 + payload.length)
  b[0] = 0x45; b.writeUInt16BE(b.length, 2); b[8] = 64; b[9] = 17
  b.set(v4(t.src), 12); b.set(v4(t.dst), 16)
  b.writeUInt16BE(t.sport, 20); b.writeUInt16BE(t.dport, 22); b.writeUInt16BE(8 + payload.length, 24)
  b.set(payload, 28)
  return b
}

/** An Ethernet frame around an IP packet (ethertype from its version); short frames are padded to the 60-byte minimum with 0xee. */
export function eth (ip: Buffer): Buffer {
  const f = Buffer.alloc(Math.max(60, 14 + ip.length), 0xee)
  f.fill(0, 0, 12)
  f.writeUInt16BE(ip[0]! >> 4 === 6 ? 0x86dd : 0x0800, 12)
  ip.copy(f, 14)
  return f
}

/** A classic pcap file (LINKTYPE_ETHERNET, microsecond times) of the frames, one per millisecond. */
export function pcapOf (frames: Buffer[]): Buffer {
  const head = Buffer.alloc(24)
  head.writeUInt32LE(0xa1b2c3d4, 0); head.writeUInt16LE(2, 4); head.writeUInt16LE(4, 6)
  head.writeUInt32LE(65535, 16); head.writeUInt32LE(1, 20)
  const parts: Buffer[] = [head]
  frames.forEach((f, i) => {
    const r = Buffer.alloc(16)
    r.writeUInt32LE(1700000000, 0); r.writeUInt32LE(i * 1000, 4)
    r.writeUInt32LE(f.length, 8); r.writeUInt32LE(f.length, 12)
    parts.push(r, f)
  })
  return Buffer.concat(parts)
}

/** An IPv4 fragment of datagram `id`, TCP from 10.0.0.1 to 10.0.0.2, holding `data` at byte `off` of the TCP segment. */
export function frag4 (data: Buffer, off: number, more: boolean, id = 77): Buffer {
  const b = Buffer.alloc(20 + data.length)
  b[0] = 0x45; b.writeUInt16BE(b.length, 2); b.writeUInt16BE(id, 4)
  b.writeUInt16BE((more ? 0x2000 : 0) | (off / 8), 6)
  b[8] = 64; b[9] = 6
  b.set([10, 0, 0, 1], 12); b.set([10, 0, 0, 2], 16)
  data.copy(b, 20)
  return b
}
