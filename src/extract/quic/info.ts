/**
 * Why parseQuicInitial stopped before reading a datagram, in `QuicInfo.refused`
 * (stable names: {@link quicRefusalName}). All but Unauthenticated are decided
 * from the header alone, before any key derivation.
 */
export const QuicRefusal = {
  /** Not refused: read (any status), or not a client Initial (Unsupported). */
  None: 0,
  /**
   * The first packet's version is not one read here (v1, v2, draft-29) nor 0
   * (version negotiation), in a datagram of at least 1200 bytes: Unsupported,
   * `unknownVersion` set. A server answers it with Version Negotiation (RFC 9000 §6).
   */
  Version: 1,
  /**
   * A client Initial, or an unknown version, in a datagram under 1200 bytes:
   * Malformed. Servers discard it (RFC 9000 §14.1, §5.2.2).
   */
  Small: 2,
  /**
   * The first Initial of a flow, without a token, has the fixed bit cleared:
   * Malformed. RFC 9287 §3 lets a client clear it in an Initial only with a
   * NEW_TOKEN token; otherwise RFC 9000 §17.2 requires 1.
   */
  FixedBit: 3,
  /** The first packet's header runs past the datagram (CID length over 20, token or Length past the end): Malformed. */
  Header: 4,
  /**
   * Keys were derived but no Initial authenticated: its reserved bits were not
   * 0 once header protection was removed (RFC 9000 §17.2, checked before the
   * AEAD), or its GCM tag failed, or it was too short for the header-protection
   * sample. Malformed.
   */
  Unauthenticated: 5,
} as const
export type QuicRefusal = (typeof QuicRefusal)[keyof typeof QuicRefusal]
const refusalNames = ['none', 'quic-version', 'small', 'fixed-bit', 'header', 'unauthenticated'] as const
/** Stable text for logs and counters. */
export function quicRefusalName (r: QuicRefusal): (typeof refusalNames)[number] {
  return refusalNames[r] as (typeof refusalNames)[number]
}

/**
 * What parseQuicInitial learnt about the datagram itself (the TLS findings
 * live in the assembler's `hello`). Caller-owned and reused.
 *
 * What a classifier can trust: only `authenticated` says the bytes are a QUIC
 * Initial of this DCID (or of the flow's original DCID). That proves the
 * sender derived the keys, which anyone can, from the DCID on the wire: it
 * rules out random and mutated bytes, not a crafted decoy from the client
 * itself. Fields read from an unauthenticated datagram (version, DCID, SCID,
 * shortDcid) are claims of the sender.
 */
export class QuicInfo {
  /** Version of the first long-header packet (0 for version negotiation), read before any check. */
  version = 0
  /**
   * The first packet's version is not one read here: Unsupported with
   * `refused === QuicRefusal.Version`, no crypto done. The classifier maps it
   * to `unknown` with reason `quic-version`. Not set for version negotiation
   * (0, sent by servers) nor in a datagram under 1200 bytes (Small).
   */
  unknownVersion = false
  /** Why the datagram was not read ({@link QuicRefusal}); None when it was, or when it is not a client Initial. */
  refused: QuicRefusal = QuicRefusal.None
  /**
   * The first Initial of a flow (the assembler has no authenticated DCID yet)
   * carries no token and a DCID under 8 bytes, which RFC 9000 §7.2 forbids
   * (quic-go drops it: a decoy the server never sees). The datagram is still
   * decrypted: with `authenticated` it is really a first Initial with a short
   * DCID (a later Initial, whose DCID the server chose and may be short, opens
   * with the original DCID's keys, so it cannot authenticate with its own);
   * the classifier calls that `evasion`. Without `authenticated` it proves nothing.
   */
  shortDcid = false
  /**
   * At least one Initial of this datagram opened with AES-128-GCM (tag
   * verified) under keys of its own DCID or the flow's original DCID. Only an
   * authenticated datagram may change a flow's state, e.g. end a watch; with
   * `otherConnection` or `ambiguous` it is another connection's, not this
   * flow's (`initials` is 0).
   */
  authenticated = false
  /** DCID of the first packet, as offsets into the datagram buffer: the key a flow table can use. */
  dcidStart = 0
  dcidLen = 0
  /** SCID of the first packet. */
  scidStart = 0
  scidLen = 0
  /** Long-header packets walked (coalesced packets included). */
  packets = 0
  /** Initial packets of this flow decrypted, authenticated and walked (another connection's are not counted). */
  initials = 0
  /** CRYPTO frames passed to the assembler. */
  cryptoFrames = 0
  /** ACK frames seen. */
  acks = 0
  /** Packet number of the last Initial decrypted. */
  pn = 0
  /** An Initial carried a non-empty token (NEW_TOKEN or Retry). */
  token = false
  /** An Initial carried CONNECTION_CLOSE (0x1c): the client gave up. */
  closed = false
  /** An Initial was opened with the assembler's original DCID (a later packet of the flow). */
  usedFlowKeys = false
  /**
   * The datagram is the Initial of ANOTHER connection: its Initial packets
   * carry a (version, DCID) other than the one the assembler already holds
   * (`asm.dcidVersion !== 0`), open under the keys of their own DCID, and do
   * not open under the flow's original keys. A server routes such a packet
   * by its DCID to a connection of its own (a new one, or the one a Retry
   * asked for), so it is not read into this flow: its CRYPTO bytes are not
   * added to `asm`, `initials` and `cryptoFrames` stay 0, `handshake` is not
   * set, and the status is Unsupported. `authenticated` is set (it is a real
   * Initial), and `dcidStart`/`dcidLen` (every packet of the datagram walked
   * has that DCID) and `version` name the connection. To read it, parse the
   * datagram again into an assembler of its own (reset, or a fresh one).
   * Honest clients do this after a Retry (with `token`) or after Version
   * Negotiation; it is also how a decoy connection hides a real one on the
   * same UDP socket.
   */
  otherConnection = false
  /**
   * An Initial with another (version, DCID) than the flow's opened under
   * BOTH its own DCID's keys and the flow's original keys: no client's key
   * derivation does that, only a crafted packet (AES-GCM does not commit to
   * its key, so one tag can be made valid under two). Not read; Malformed.
   * What a server reads from it depends on which connection it routes it
   * to, so a classifier calls it evasion.
   */
  ambiguous = false
  /**
   * The assembler's copy of `asm.disagree` after this datagram, whatever
   * the status: since its last restart, a CRYPTO byte arrived twice with
   * different values. The
   * status is still the hello read from the first copies; a classifier
   * calls the flow evasion (`disagree`) rather than trust that name.
   */
  disagree = false
  /**
   * A Handshake packet with the same version and DCID was coalesced after an
   * Initial of this datagram that authenticated (as Chromium sends its Initial
   * ACK with its first Handshake packet). Its own bytes are under Handshake
   * keys aigate does not have, so they are not checked; a datagram whose
   * *first* packet is Handshake-shaped (random bytes included) never sets it.
   */
  handshake = false

  reset (): void {
    this.version = this.dcidStart = this.dcidLen = this.scidStart = this.scidLen = 0
    this.packets = this.initials = this.cryptoFrames = this.acks = this.pn = 0
    this.refused = QuicRefusal.None
    this.unknownVersion = this.shortDcid = this.authenticated = false
    this.token = this.closed = this.usedFlowKeys = this.handshake = false
    this.otherConnection = this.ambiguous = this.disagree = false
  }
}
