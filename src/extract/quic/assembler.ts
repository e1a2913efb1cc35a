import { Status } from '../../util/status.js'
import { parseHandshake, TlsHello } from '../tls.js'
import { MAX_CID_LEN } from './keys.js'

/**
 * Cap on CRYPTO-stream bytes one assembler buffers (offset + length of every
 * frame must stay under it). A post-quantum Chromium ClientHello is ~1.9 kB;
 * 16 KiB is the TLS record limit (RFC 8446 §5.1), the size sniffers settled on
 * for split hellos (caddy-l4 #346, see shared/FIELD-NOTES.md). Beyond it: Malformed.
 */
export const MAX_CRYPTO_BYTES = 16384

/**
 * Reassembles the client's Initial CRYPTO stream (RFC 9000 §19.6) from frames
 * that arrive in any order, duplicated or overlapping, over one or more
 * datagrams. The first copy of a byte wins, as in a TLS stack, and every
 * later copy is compared with it: one that differs sets {@link disagree}
 * (RFC 9000 §2.2 makes differing copies a protocol error, so an honest
 * client never sends them; a copy made to die before the server, with a low
 * TTL, is how a decoy name gets read here while the server reads another:
 * the same overlap trick the TCP flow table calls `disagree`).
 *
 * Memory is fixed at construction: {@link MAX_CRYPTO_BYTES} of data plus one
 * byte of "filled" flag per data byte. Keep one per flow (5-tuple or DCID)
 * until the hello is complete, then {@link CryptoAssembler.reset} and reuse.
 */
export class CryptoAssembler {
  /** Stream bytes [0, MAX_CRYPTO_BYTES); only filled positions are meaningful. */
  readonly buf: Buffer = Buffer.alloc(MAX_CRYPTO_BYTES)
  /** 1 where buf holds a received byte. */
  readonly #filled = new Uint8Array(MAX_CRYPTO_BYTES)
  /** Bytes [0, contiguous) are all present: the prefix TLS can read. */
  contiguous = 0
  /** One past the highest byte received (bounds the reset). */
  highWater = 0
  /** Distinct bytes buffered. */
  buffered = 0
  /** CRYPTO frames accepted (duplicates included). */
  frames = 0
  /** A frame reached past MAX_CRYPTO_BYTES (the flow is Malformed for good). */
  overflow = false
  /**
   * A byte arrived again with another value than the copy held (which is
   * kept). Sticky until {@link restart}: the hello read is only one of two
   * stories, so a classifier must not trust its name (evasion, `disagree`).
   * parse() still reads the first copies, so the name can be logged.
   */
  disagree = false
  /** The ClientHello as read from the prefix (valid when parse() returned Ok or NoName). */
  readonly hello = new TlsHello()
  /**
   * DCID of the first Initial this flow authenticated. RFC 9001 §5.2: Initial
   * keys come from the DCID of the client's *first* Initial; after the server
   * replies the client switches DCID but keeps those keys, so later Initials
   * (e.g. ACKs coalesced with Handshake packets) are opened with this one.
   */
  readonly dcid = Buffer.alloc(MAX_CID_LEN)
  dcidLen = 0
  /** Version of that Initial; 0 until the flow has authenticated one. */
  dcidVersion = 0

  /** Forget everything; the buffers are kept. */
  reset (): void {
    this.restart()
    this.dcidLen = this.dcidVersion = 0
  }

  /** Forget the stream but keep the flow's original DCID (its Initial keys): to read a later hello of the same flow. */
  restart (): void {
    this.#filled.fill(0, 0, this.highWater)
    this.contiguous = this.highWater = this.buffered = this.frames = 0
    this.overflow = this.disagree = false
    this.hello.reset()
  }

  /** Take another assembler's original DCID (see {@link dcid}). */
  adoptDcid (from: CryptoAssembler): void {
    from.dcid.copy(this.dcid, 0, 0, from.dcidLen)
    this.dcidLen = from.dcidLen
    this.dcidVersion = from.dcidVersion
  }

  /**
   * Add stream bytes src[from, to) at stream offset `offset`. Copies only the
   * bytes not yet present (first copy wins); bytes already present are
   * compared, and a difference sets {@link disagree}. Malformed when the
   * frame ends beyond MAX_CRYPTO_BYTES; Ok otherwise.
   */
  add (offset: number, src: Buffer, from: number, to: number): Status {
    const len = to - from
    if (len < 0 || offset < 0) return Status.Malformed
    if (offset > MAX_CRYPTO_BYTES - len) { // offset + len > cap, without overflow for huge offsets
      this.overflow = true
      return Status.Malformed
    }
    this.frames++
    const end = offset + len
    const filled = this.#filled
    // Below highWater, copy each run of missing bytes. Plain loops bounded by
    // the frame: TypedArray.indexOf has no end bound and scanned the whole
    // 16 KiB flag array per frame (60% of the time on a Chromium Initial).
    const scanEnd = end < this.highWater ? end : this.highWater
    let i = offset
    while (i < scanEnd) {
      if (filled[i] === 1) { // a run held already: compare, keep ours
        let stop = i + 1
        while (stop < scanEnd && filled[stop] === 1) stop++
        if (src.compare(this.buf, i, stop, from + i - offset, from + stop - offset) !== 0) this.disagree = true
        i = stop
        continue
      }
      let stop = i + 1
      while (stop < scanEnd && filled[stop] === 0) stop++
      src.copy(this.buf, i, from + i - offset, from + stop - offset)
      filled.fill(1, i, stop)
      this.buffered += stop - i
      i = stop
    }
    // At and past highWater nothing has arrived yet: one copy.
    if (end > this.highWater) {
      const s = offset > this.highWater ? offset : this.highWater
      src.copy(this.buf, s, from + s - offset, from + len)
      filled.fill(1, s, end)
      this.buffered += end - s
      this.highWater = end
    }
    if (offset <= this.contiguous && end > this.contiguous) {
      let c = end // [offset, end) is filled now; extend over frames that arrived earlier
      while (c < this.highWater && filled[c] === 1) c++
      this.contiguous = c
    }
    return Status.Ok
  }

  /**
   * Read the ClientHello from the contiguous prefix (parseHandshake, tls/hello.ts):
   * Ok (with SNI) or NoName when it is complete, NeedMore until then,
   * Malformed/Unsupported when the stream is not a valid ClientHello.
   */
  parse (): Status {
    if (this.overflow) return Status.Malformed
    const st = parseHandshake(this.buf, 0, this.contiguous, this.hello)
    // A hello that cannot fit under the cap will never complete.
    if (st === Status.NeedMore && this.hello.needed > MAX_CRYPTO_BYTES) return Status.Malformed
    return st
  }
}
