// QUIC client Initial crypto (RFC 9001 §5) on OpenSSL's EVP API, for
// src/extract/quic.ts: key derivation, header-protection removal and the
// AES-128-GCM open of one Initial packet in a single call. See quic_crypto.cc.
#ifndef AIGATE_QUIC_CRYPTO_H
#define AIGATE_QUIC_CRYPTO_H

#include <node_api.h>

// Adds quicDerive, quicOpen and QUIC_SLOT_SIZE to `exports` for this
// environment (state freed by an env cleanup hook). When OpenSSL cannot give
// the algorithms it adds nothing and returns napi_ok: JS then keeps its
// node:crypto path.
napi_status QuicCryptoInit(napi_env env, napi_value exports);

#endif
