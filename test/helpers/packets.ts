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
