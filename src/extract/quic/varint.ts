/**
 * RFC 9000 §16 variable-length integers, without state: the value comes
 * back from {@link readVarint}, and its length from the first byte
 * ({@link varintLen}), so a reader needs no result slot shared between calls.
 *
 *   2MSB  length  usable bits
 *   00    1       6
 *   01    2       14
 *   10    4       30
 *   11    8       62
 */

/** RFC 9000 §16: largest value of a variable-length integer is 2^62-1. */
export const MAX_VARINT = 2 ** 62 - 1

/** Length in bytes (1, 2, 4 or 8) of the varint at b[p], from the two high bits of its first byte; b[p] must exist. */
export function varintLen (b: Uint8Array, p: number): number {
  return 1 << ((b[p] as number) >> 6)
}

/**
 * The varint at b[p], which takes {@link varintLen} bytes, or -1 when it
 * runs past `end`. Exact up to 2^53; larger values exceed every bound they
 * are compared with anyway.
 */
export function readVarint (b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1
  const first = b[p] as number
  const n = 1 << (first >> 6)
  if (p + n > end) return -1
  let v = first & 0x3f
  for (let i = 1; i < n; i++) v = v * 256 + (b[p + i] as number)
  return v
}

/** The offset after the varint at b[p], or -1 when it runs past `end`: for a field whose value is not used. */
export function skipVarint (b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1
  const n = 1 << ((b[p] as number) >> 6)
  return p + n > end ? -1 : p + n
}
