import { Status } from '../../util/status.js'
import type { CryptoAssembler } from './assembler.js'
import type { QuicInfo } from './info.js'
import { MAX_VARINT, readVarint, skipVarint, varintLen } from './varint.js'

/**
 * The frames of a decrypted client Initial (RFC 9000 §12.4, §19). Frame
 * types allowed in Initial packets (§12.4, Table 3):
 *
 *   PADDING (0x00), PING (0x01), ACK (0x02, 0x03), CRYPTO (0x06),
 *   CONNECTION_CLOSE (0x1c)
 */

const FRAME_PADDING = 0x00 // §19.1
const FRAME_PING = 0x01 // §19.2
const FRAME_ACK = 0x02 // §19.3
const FRAME_ACK_ECN = 0x03 // §19.3 with ECN Counts
const FRAME_CRYPTO = 0x06 // §19.6
const FRAME_CONNECTION_CLOSE = 0x1c // §19.19 (transport variant; 0x1d is not allowed in Initial)

/**
 * Walk the frames of a decrypted Initial payload p[0, end) (RFC 9000 §12.4:
 * only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE may appear) and feed
 * every CRYPTO frame to the assembler. Ok, or Malformed on any other frame
 * type, a length past the payload, or a CRYPTO frame past the cap.
 */
export function walkFrames (p: Buffer, end: number, asm: CryptoAssembler, out: QuicInfo): Status {
  if (end === 0) return Status.Malformed // RFC 9000 §12.4: a packet MUST contain at least one frame
  let i = 0
  while (i < end) {
    // Frame types are varints that must use the shortest encoding (RFC 9000
    // §12.4). All types allowed here fit in one byte, so a first byte >= 0x40
    // is a longer encoding or a forbidden type: the final else rejects it.
    const type = p[i] as number
    i++
    if (type === FRAME_PADDING) {
      while (i < end && p[i] === 0) i++
    } else if (type === FRAME_PING) {
      // no body
    } else if (type === FRAME_CRYPTO) {
      // CRYPTO Frame { Type (i) = 0x06, Offset (i), Length (i), Crypto Data (..) }  §19.6
      const offset = readVarint(p, i, end)
      if (offset < 0) return Status.Malformed
      i += varintLen(p, i)
      const len = readVarint(p, i, end)
      if (len < 0) return Status.Malformed
      i += varintLen(p, i)
      if (len > end - i) return Status.Malformed
      if (offset + len > MAX_VARINT) return Status.Malformed // §19.6: FRAME_ENCODING_ERROR
      if (asm.add(offset, p, i, i + len) !== Status.Ok) return Status.Malformed
      out.cryptoFrames++
      i += len
    } else if (type === FRAME_ACK || type === FRAME_ACK_ECN) {
      if ((i = skipAck(p, i, end, type === FRAME_ACK_ECN)) < 0) return Status.Malformed
      out.acks++
    } else if (type === FRAME_CONNECTION_CLOSE) {
      // CONNECTION_CLOSE { Type (i) = 0x1c, Error Code (i), Frame Type (i),
      //   Reason Phrase Length (i), Reason Phrase (..) }                    §19.19
      if ((i = skipVarint(p, i, end)) < 0) return Status.Malformed
      if ((i = skipVarint(p, i, end)) < 0) return Status.Malformed
      const reasonLen = readVarint(p, i, end)
      if (reasonLen < 0) return Status.Malformed
      i += varintLen(p, i)
      if (reasonLen > end - i) return Status.Malformed
      i += reasonLen
      out.closed = true
    } else {
      return Status.Malformed // §12.4: any other frame in an Initial is a PROTOCOL_VIOLATION
    }
  }
  return Status.Ok
}

/**
 * Check the body of an ACK frame at p[i, end) (after its type): the offset
 * after it, or -1 when a field runs past the payload, the range count
 * cannot fit, or a range reaches below packet number 0.
 *
 *   ACK Frame { Type (i), Largest Acknowledged (i), ACK Delay (i),
 *     ACK Range Count (i), First ACK Range (i), ACK Range (..) ...,
 *     [ECN Counts (..)] }                                                §19.3
 *   ACK Range { Gap (i), ACK Range Length (i) }
 *   ECN Counts { ECT0 Count (i), ECT1 Count (i), ECN-CE Count (i) }
 */
function skipAck (p: Buffer, i: number, end: number, ecn: boolean): number {
  const largestAcked = readVarint(p, i, end)
  if (largestAcked < 0) return -1
  i += varintLen(p, i)
  if ((i = skipVarint(p, i, end)) < 0) return -1 // ACK Delay
  const ranges = readVarint(p, i, end)
  if (ranges < 0) return -1
  i += varintLen(p, i)
  // Each range takes at least 2 bytes: an absurd count fails here, before any loop.
  if (ranges > (end - i) / 2) return -1
  const firstRange = readVarint(p, i, end)
  if (firstRange < 0) return -1
  i += varintLen(p, i)
  // The smallest acknowledged packet of each range in turn.
  let smallest = largestAcked - firstRange
  // §19.3.1: a range that reaches below packet number 0 is a FRAME_ENCODING_ERROR.
  if (smallest < 0) return -1
  for (let r = 0; r < ranges; r++) {
    const gap = readVarint(p, i, end)
    if (gap < 0) return -1
    i += varintLen(p, i)
    const largest = smallest - gap - 2 // §19.3.1: largest = previous smallest - gap - 2
    const length = readVarint(p, i, end)
    if (length < 0) return -1
    i += varintLen(p, i)
    smallest = largest - length
    if (largest < 0 || smallest < 0) return -1
  }
  if (ecn) {
    for (let k = 0; k < 3; k++) if ((i = skipVarint(p, i, end)) < 0) return -1
  }
  return i
}
