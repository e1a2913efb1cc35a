// QUIC client Initial crypto for src/extract/quic.ts, on OpenSSL's EVP API
// (HMAC-SHA256 through EVP_MAC, AES-128-ECB and AES-128-GCM through
// EVP_CIPHER). Nothing here is hand-rolled: HKDF is RFC 5869 written as its
// HMAC calls, exactly as quic.ts does it with node:crypto.
//
// Why native: a random-DCID Initial (the flood of issue 11, class 5) needs
// 3 HMACs and an AES key schedule before its header protection comes off,
// and 2 more HMACs and a GCM open when its reserved bits come out 0. Through
// node:crypto each of those is a JS object and a binding crossing (~3-5 µs
// each); here the whole packet is one crossing.
//
// The OpenSSL symbols are Node's own (the node binary exports its bundled
// libcrypto; the headers ship in node's include dir, include/node/openssl),
// so nothing is linked. A Node built with --shared-openssl (node_shared_openssl
// in binding.gyp) links the system libcrypto instead, which that node has
// loaded already; its headers then come from libssl-dev.
//
// JS side: src/extract/quic.ts (validation, the header walk, the DCID cache,
// frames); the checks here only keep a wrong call from touching memory out of
// bounds, and throw.
//
//   quicDerive(slot)                               derive all keys of the slot's (version, DCID)
//   quicOpen(slot, buf, pkt, pnOff, pktEnd, out)  -> plaintext length, or -1 (does not authenticate)
//   QUIC_SLOT_SIZE                                 bytes of a slot
//
// A slot is a JS-owned Uint8Array holding one DCID's keys (JS compares the
// DCID and version in it to find a cached one, and writes a new one with
// state 0; derivation happens here, lazily, as in quic.ts's InitialKeys):
//
//   0        state: 0 derive from version + DCID, 1 hp key ready, 2 hp + AEAD key/IV ready
//   1        DCID length (0..20)
//   4..8     version, little endian
//   8..28    DCID
//   28..32   packet number of the last packet opened, little endian
//   32..64   client_initial_secret (RFC 9001 §5.2)
//   64..80   hp key       80..96  AEAD key       96..108  AEAD IV
#include "quic_crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdint>
#include <cstring>
#include <new>

namespace {

constexpr size_t kSlotSize = 112;
constexpr size_t kState = 0, kDcidLen = 1, kVersion = 4, kDcid = 8, kPn = 28;
constexpr size_t kSecret = 32, kHp = 64, kKey = 80, kIv = 96;
constexpr size_t kMaxCid = 20;      // RFC 9000 §17.2
constexpr size_t kTagLen = 16;      // RFC 9001 §5.3, AEAD_AES_128_GCM
constexpr size_t kSampleOff = 4;    // RFC 9001 §5.4.2: sample at pn_offset + 4 ...
constexpr size_t kSampleLen = 16;   // ... 16 bytes
constexpr size_t kKeyLen = 16, kIvLen = 12, kSecretLen = 32;
static_assert(kIv + kIvLen <= kSlotSize, "slot layout");

// Salts and labels of the versions quic.ts reads (its paramsOf decides which).
struct Version {
  uint32_t version;
  uint8_t salt[20];
  const char* key;
  const char* iv;
  const char* hp;
};
const Version kVersions[] = {
    // RFC 9001 §5.2, QUIC v1.
    {0x00000001,
     {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
      0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a},
     "quic key", "quic iv", "quic hp"},
    // RFC 9369 §3.3.1-3.3.2, QUIC v2: another salt, "quicv2" labels ("client in" is kept).
    {0x6b3343cf,
     {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
      0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
     "quicv2 key", "quicv2 iv", "quicv2 hp"},
    // draft-ietf-quic-tls-29 §5.2: v1's labels, another salt.
    {0xff00001d,
     {0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97,
      0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99},
     "quic key", "quic iv", "quic hp"},
};

constexpr size_t kVersionCount = sizeof(kVersions) / sizeof(kVersions[0]);

const Version* VersionOf(uint32_t v) {
  for (const Version& p : kVersions)
    if (p.version == v) return &p;
  return nullptr;
}

// Per environment (main thread, each worker): fetched algorithms and
// contexts that are re-keyed for every use, never shared across threads.
struct QuicCrypto {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* hmac = nullptr;  // HMAC with SHA-256 set once
  // HMAC keyed with each version's salt once (HKDF-Extract's key never
  // changes): EVP_MAC_init without a key restarts it from the keyed state.
  EVP_MAC_CTX* salted[kVersionCount] = {};
  EVP_CIPHER* ecb = nullptr;
  EVP_CIPHER* gcm = nullptr;
  EVP_CIPHER_CTX* ecb_ctx = nullptr;  // AES-128-ECB, encrypt, no padding
  EVP_CIPHER_CTX* gcm_ctx = nullptr;  // AES-128-GCM, decrypt

  ~QuicCrypto() {
    for (EVP_MAC_CTX* m : salted) EVP_MAC_CTX_free(m);
    EVP_CIPHER_CTX_free(gcm_ctx);
    EVP_CIPHER_CTX_free(ecb_ctx);
    EVP_CIPHER_free(gcm);
    EVP_CIPHER_free(ecb);
    EVP_MAC_CTX_free(hmac);
    EVP_MAC_free(mac);
  }

  bool Setup() {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end(),
    };
    mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ecb = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
    gcm = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    if (!mac || !ecb || !gcm) return false;
    hmac = EVP_MAC_CTX_new(mac);
    ecb_ctx = EVP_CIPHER_CTX_new();
    gcm_ctx = EVP_CIPHER_CTX_new();
    // The cipher is set once; each use only passes a key (and IV), which
    // re-keys the context without a new provider context.
    if (!hmac || !ecb_ctx || !gcm_ctx || EVP_MAC_CTX_set_params(hmac, params) != 1 ||
        EVP_EncryptInit_ex2(ecb_ctx, ecb, nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ecb_ctx, 0) != 1 ||
        EVP_DecryptInit_ex2(gcm_ctx, gcm, nullptr, nullptr, nullptr) != 1)
      return false;
    for (size_t i = 0; i < kVersionCount; i++) {
      salted[i] = EVP_MAC_CTX_dup(hmac);
      if (!salted[i] || EVP_MAC_init(salted[i], kVersions[i].salt, sizeof(kVersions[i].salt), nullptr) != 1)
        return false;
    }
    return true;
  }

  // HKDF-Extract(salt, ikm) = HMAC-SHA256(salt, ikm) (RFC 5869 §2.2) into out[32].
  bool Extract(const Version* v, const uint8_t* ikm, size_t len, uint8_t* out) {
    EVP_MAC_CTX* m = salted[v - kVersions];
    size_t n = 0;
    return EVP_MAC_init(m, nullptr, 0, nullptr) == 1 && EVP_MAC_update(m, ikm, len) == 1 &&
           EVP_MAC_final(m, out, &n, kSecretLen) == 1 && n == kSecretLen;
  }

  // HMAC-SHA256(key, data) into out[32].
  bool Hmac(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t* out) {
    size_t n = 0;
    return EVP_MAC_init(hmac, key, key_len, nullptr) == 1 && EVP_MAC_update(hmac, data, len) == 1 &&
           EVP_MAC_final(hmac, out, &n, kSecretLen) == 1 && n == kSecretLen;
  }

  // HKDF-Expand-Label(secret, label, "", len) for len <= 32 (RFC 8446 §7.1,
  // RFC 5869 §2.3): one block, T(1) = HMAC(secret, HkdfLabel || 0x01).
  bool ExpandLabel(const uint8_t* secret, const char* label, size_t len, uint8_t* out) {
    uint8_t info[64];
    size_t label_len = strlen(label);
    size_t n = 0;
    info[n++] = 0;
    info[n++] = static_cast<uint8_t>(len);
    info[n++] = static_cast<uint8_t>(6 + label_len);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = 0;  // empty context
    info[n++] = 1;  // HKDF-Expand's counter
    uint8_t t[kSecretLen];
    if (!Hmac(secret, kSecretLen, info, n, t)) return false;
    memcpy(out, t, len);
    return true;
  }

  // RFC 9001 §5.2: initial_secret = HKDF-Extract(salt, DCID), client secret, hp key.
  bool DeriveHp(uint8_t* slot, const Version* v) {
    uint8_t initial[kSecretLen];
    return Extract(v, slot + kDcid, slot[kDcidLen], initial) &&
           ExpandLabel(initial, "client in", kSecretLen, slot + kSecret) &&
           ExpandLabel(slot + kSecret, v->hp, kKeyLen, slot + kHp);
  }

  bool DeriveAead(uint8_t* slot, const Version* v) {
    return ExpandLabel(slot + kSecret, v->key, kKeyLen, slot + kKey) &&
           ExpandLabel(slot + kSecret, v->iv, kIvLen, slot + kIv);
  }

  // RFC 9001 §5.4.3: mask = AES-ECB(hp_key, sample), an encryption on both sides.
  bool Mask(const uint8_t* hp, const uint8_t* sample, uint8_t* mask) {
    int n = 0;
    return EVP_EncryptInit_ex2(ecb_ctx, nullptr, hp, nullptr, nullptr) == 1 &&
           EVP_EncryptUpdate(ecb_ctx, mask, &n, sample, static_cast<int>(kSampleLen)) == 1 &&
           n == static_cast<int>(kSampleLen);
  }
};

uint32_t ReadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

napi_value Throw(napi_env env, bool range, const char* msg) {
  if (range)
    napi_throw_range_error(env, nullptr, msg);
  else
    napi_throw_error(env, nullptr, msg);
  return nullptr;
}

bool GetBytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, v, &type, len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return false;
  *data = static_cast<uint8_t*>(p);
  return true;
}

// The slot argument: a Uint8Array of kSlotSize bytes with a known version
// and a DCID length within bounds. Null after throwing.
uint8_t* GetSlot(napi_env env, napi_value v, const Version** version) {
  uint8_t* slot = nullptr;
  size_t len = 0;
  if (!GetBytes(env, v, &slot, &len) || len < kSlotSize) {
    Throw(env, false, "quic slot must be a Uint8Array of QUIC_SLOT_SIZE bytes");
    return nullptr;
  }
  *version = VersionOf(ReadLe32(slot + kVersion));
  if (*version == nullptr || slot[kDcidLen] > kMaxCid || slot[kState] > 2) {
    Throw(env, true, "quic slot has an unknown version, a DCID over 20 bytes or a bad state");
    return nullptr;
  }
  return slot;
}

// Derives what the slot lacks, up to `want` (1 hp, 2 hp + AEAD).
bool Derive(QuicCrypto* c, uint8_t* slot, const Version* v, uint8_t want) {
  if (slot[kState] == 0) {
    if (!c->DeriveHp(slot, v)) return false;
    slot[kState] = 1;
  }
  if (want == 2 && slot[kState] == 1) {
    if (!c->DeriveAead(slot, v)) return false;
    slot[kState] = 2;
  }
  return true;
}

napi_value QuicDerive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok || argc < 1)
    return Throw(env, false, "quicDerive(slot)");
  QuicCrypto* c = static_cast<QuicCrypto*>(data);
  const Version* v = nullptr;
  uint8_t* slot = GetSlot(env, argv[0], &v);
  if (!slot) return nullptr;
  if (!Derive(c, slot, v, 2)) return Throw(env, false, "quicDerive: OpenSSL HMAC failed");
  return nullptr;
}

// quicOpen(slot, buf, pkt, pnOff, pktEnd, out): removes header protection
// from the Initial packet buf[pkt, pktEnd) whose Packet Number field starts
// at pnOff (the caller checked that the 16-byte sample is inside), and opens
// it with AES-128-GCM. Returns the plaintext length (plaintext in out[0..),
// packet number in the slot), or -1 when the reserved bits are not 0 (RFC
// 9000 §17.2; before the AEAD keys are derived), the packet is too short for
// its packet number and tag, or the tag does not verify. Never writes into buf.
napi_value QuicOpen(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok || argc < 6)
    return Throw(env, false, "quicOpen(slot, buf, pkt, pnOff, pktEnd, out)");
  QuicCrypto* c = static_cast<QuicCrypto*>(data);
  const Version* v = nullptr;
  uint8_t* slot = GetSlot(env, argv[0], &v);
  if (!slot) return nullptr;
  uint8_t *b = nullptr, *out = nullptr;
  size_t b_len = 0, out_len = 0;
  int32_t pkt = 0, pn_off = 0, pkt_end = 0;
  if (!GetBytes(env, argv[1], &b, &b_len) || !GetBytes(env, argv[5], &out, &out_len) ||
      napi_get_value_int32(env, argv[2], &pkt) != napi_ok || napi_get_value_int32(env, argv[3], &pn_off) != napi_ok ||
      napi_get_value_int32(env, argv[4], &pkt_end) != napi_ok)
    return Throw(env, false, "quicOpen: buf and out must be Uint8Arrays, offsets integers");
  if (pkt < 0 || pn_off <= pkt || pkt_end < 0 || static_cast<size_t>(pkt_end) > b_len ||
      static_cast<size_t>(pn_off) + kSampleOff + kSampleLen > static_cast<size_t>(pkt_end))
    return Throw(env, true, "quicOpen: need 0 <= pkt < pnOff, pnOff + 20 <= pktEnd <= buf.length");

  napi_value result;
  if (!Derive(c, slot, v, 1)) return Throw(env, false, "quicOpen: OpenSSL HMAC failed");
  uint8_t mask[kSampleLen];
  if (!c->Mask(slot + kHp, b + pn_off + kSampleOff, mask)) return Throw(env, false, "quicOpen: OpenSSL AES-ECB failed");
  // RFC 9001 §5.4.1: a long header protects the 4 low bits of the first byte.
  uint8_t first = b[pkt] ^ (mask[0] & 0x0f);
  size_t pn_len = (first & 0x03) + 1;
  size_t ct = static_cast<size_t>(pn_off) + pn_len;
  // RFC 9000 §17.2: reserved bits (0x0c) are 0; random bytes stop here 3 times in 4.
  if ((first & 0x0c) != 0 || ct + kTagLen > static_cast<size_t>(pkt_end)) {
    napi_create_int32(env, -1, &result);
    return result;
  }
  size_t ct_len = static_cast<size_t>(pkt_end) - kTagLen - ct;
  if (out_len < ct_len) return Throw(env, true, "quicOpen: out is shorter than the payload");
  if (!Derive(c, slot, v, 2)) return Throw(env, false, "quicOpen: OpenSSL HMAC failed");

  // RFC 9001 §5.3: nonce = IV XOR packet number (left-padded); the AAD is the
  // unprotected header, fed in three pieces: first byte, the bytes up to the
  // packet number as on the wire, the packet number.
  uint8_t pn_bytes[4];
  uint32_t pn = 0;
  for (size_t i = 0; i < pn_len; i++) {
    pn_bytes[i] = b[pn_off + i] ^ mask[1 + i];
    pn = pn << 8 | pn_bytes[i];
  }
  uint8_t nonce[kIvLen];
  memcpy(nonce, slot + kIv, kIvLen);
  for (size_t i = 0; i < pn_len; i++) nonce[kIvLen - pn_len + i] ^= pn_bytes[i];

  EVP_CIPHER_CTX* g = c->gcm_ctx;
  int n = 0;
  bool ok = EVP_DecryptInit_ex2(g, nullptr, slot + kKey, nonce, nullptr) == 1 &&
            EVP_DecryptUpdate(g, nullptr, &n, &first, 1) == 1 &&
            EVP_DecryptUpdate(g, nullptr, &n, b + pkt + 1, pn_off - pkt - 1) == 1 &&
            EVP_DecryptUpdate(g, nullptr, &n, pn_bytes, static_cast<int>(pn_len)) == 1 &&
            EVP_DecryptUpdate(g, out, &n, b + ct, static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(g, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagLen),
                                const_cast<uint8_t*>(b + pkt_end - kTagLen)) == 1;
  if (!ok) return Throw(env, false, "quicOpen: OpenSSL AES-GCM failed");
  int tail = 0;
  // Fails (0) when the tag does not verify.
  if (EVP_DecryptFinal_ex(g, out + n, &tail) != 1) {
    napi_create_int32(env, -1, &result);
    return result;
  }
  slot[kPn] = static_cast<uint8_t>(pn);
  slot[kPn + 1] = static_cast<uint8_t>(pn >> 8);
  slot[kPn + 2] = static_cast<uint8_t>(pn >> 16);
  slot[kPn + 3] = static_cast<uint8_t>(pn >> 24);
  napi_create_int32(env, n + tail, &result);
  return result;
}

void Free(void* data) { delete static_cast<QuicCrypto*>(data); }

}  // namespace

napi_status QuicCryptoInit(napi_env env, napi_value exports) {
  QuicCrypto* c = new (std::nothrow) QuicCrypto();
  if (!c) return napi_generic_failure;
  if (!c->Setup()) {  // no such algorithm in this OpenSSL: JS keeps node:crypto
    delete c;
    return napi_ok;
  }
  napi_status s = napi_add_env_cleanup_hook(env, Free, c);
  if (s != napi_ok) {
    delete c;
    return s;
  }
  napi_value slot_size;
  if ((s = napi_create_uint32(env, kSlotSize, &slot_size)) != napi_ok) return s;
  napi_property_descriptor props[] = {
      {"quicDerive", nullptr, QuicDerive, nullptr, nullptr, nullptr, napi_default, c},
      {"quicOpen", nullptr, QuicOpen, nullptr, nullptr, nullptr, napi_default, c},
      {"QUIC_SLOT_SIZE", nullptr, nullptr, nullptr, nullptr, slot_size, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
