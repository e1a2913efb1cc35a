/**
 * Big-endian readers over Uint8Array. Callers check bounds first (every parser
 * validates `off + n <= end` before reading); these helpers only combine bytes.
 * They exist so that the byte order is written down once.
 */
export function u16 (b: Uint8Array, off: number): number {
  return ((b[off] as number) << 8) | (b[off + 1] as number)
}

export function u24 (b: Uint8Array, off: number): number {
  return ((b[off] as number) << 16) | ((b[off + 1] as number) << 8) | (b[off + 2] as number)
}

export function u32 (b: Uint8Array, off: number): number {
  return (((b[off] as number) << 24) | ((b[off + 1] as number) << 16) |
    ((b[off + 2] as number) << 8) | (b[off + 3] as number)) >>> 0
}
