/**
 * The property "every split point, both orders": a stream reader given a
 * message cut into two segments must give the same result wherever the cut
 * falls and whichever segment arrives first. `everySplit` cuts `bytes` at
 * each offset 1..length-1 into a head [0, cut) and a tail [cut, length) and
 * calls `deliver` once per cut and order, with the pieces in delivery order
 * and each piece's offset in the message (add it to the sequence number).
 *
 *   everySplit(hello, ({ first, second }) => {
 *     feed(tcp4(tu, isn + first.offset, first.bytes))
 *     feed(tcp4(tu, isn + second.offset, second.bytes))
 *   })
 */

export interface Piece<T extends Uint8Array> {
  /** Offset of the piece in the message. */
  readonly offset: number
  readonly bytes: T
}

export interface Split<T extends Uint8Array> {
  readonly cut: number
  /** The tail is delivered first. */
  readonly reversed: boolean
  readonly head: T
  readonly tail: T
  readonly first: Piece<T>
  readonly second: Piece<T>
}

export const BOTH_ORDERS: readonly boolean[] = [false, true]
export const IN_ORDER: readonly boolean[] = [false]

export function everySplit<T extends Uint8Array> (bytes: T, deliver: (s: Split<T>) => void, orders: readonly boolean[] = BOTH_ORDERS): void {
  for (let cut = 1; cut < bytes.length; cut++) {
    const head = { offset: 0, bytes: bytes.subarray(0, cut) as T }
    const tail = { offset: cut, bytes: bytes.subarray(cut) as T }
    for (const reversed of orders) {
      deliver({ cut, reversed, head: head.bytes, tail: tail.bytes, first: reversed ? tail : head, second: reversed ? head : tail })
    }
  }
}

/**
 * A TLS tail that itself looks like a later record (type 20-24 but not a
 * handshake, version 3.x, x <= 4) is taken for ordinary traffic when it
 * comes first: a known, rare ambiguity of the reversed order, which the
 * callers count and skip.
 */
export function looksLikeLaterTlsRecord (b: Uint8Array): boolean {
  const c = b[0] as number
  return b.length >= 3 && c >= 20 && c <= 24 && c !== 22 && b[1] === 3 && (b[2] as number) <= 4
}
