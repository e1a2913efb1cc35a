// Node-API glue for nfq (nfq.h): one wrapped object per queue, no global
// state. This file: module init, init() and open(); the handle's methods are
// in queue.cc, what both share in addon.h.
//
// JS side: src/queue/ (addon.ts loads this). It validates every argument
// before calling in; the checks here only keep a wrong call from corrupting
// memory or reaching the kernel (verdict(), in queue.cc, refuses a verdict
// value nfq would pass on).
//
//   init(QueueError)                    once per environment (main thread, worker)
//   open(queueNum, options)             -> handle, or throws QueueError
//   handle.wait(timeoutMs) -> boolean   block in poll(2) until the fd is readable (serving thread only)
//   handle.read(buf, meta) -> count     meta: Uint32Array, META_STRIDE words per packet (below)
//   handle.pending() -> boolean         kept messages that no fd event will announce
//   handle.verdict(n, ids, verdicts, marks)
//   handle.stats() -> {packets, batches, enobufs, recvErrors, sendErrors, verdicts, verdictErrors}
//   handle.close()                      idempotent; also run by the finalizer and at env teardown
//
// Meta record (struct nfq_pkt, 8 x u32, little-endian hosts read word 7 as
// hwProtocol | hook << 16 | flags << 24):
//   0 id  1 mark  2 offset  3 len  4 origLen  5 indev  6 outdev  7 info
#include "addon.h"

#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <new>

#include "notify.h"
#include "quic_crypto.h"

namespace aigate {

napi_value ThrowLastError(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info* info = nullptr;
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, "ERR_AIGATE_NAPI",
                     info && info->error_message ? info->error_message : "Node-API call failed");
  }
  return nullptr;
}

napi_value ThrowQueueError(napi_env env, Addon* addon, int neg_errno, const char* syscall,
                           uint32_t queue_num) {
  char msg[256];
  const char* code = uv_err_name(neg_errno);
  snprintf(msg, sizeof(msg), "NFQUEUE %u: %s failed: %s (%s)", queue_num, syscall,
           uv_strerror(neg_errno), code);
  napi_value ctor = nullptr, args[4], err;
  if (!addon || !addon->queue_error ||
      napi_get_reference_value(env, addon->queue_error, &ctor) != napi_ok || !ctor) {
    napi_throw_error(env, code, msg);
    return nullptr;
  }
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &args[0]);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &args[1]);
  napi_create_int32(env, neg_errno, &args[2]);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &args[3]);
  if (napi_new_instance(env, ctor, 4, args, &err) == napi_ok) napi_throw(env, err);
  return nullptr;
}

napi_value ThrowType(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return nullptr;
}

napi_value ThrowRange(napi_env env, const char* msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return nullptr;
}

bool GetTyped(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* length) {
  bool is = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  if (napi_get_typedarray_info(env, v, &type, length, data, nullptr, nullptr) != napi_ok) return false;
  return type == want;
}

bool GetUint32Prop(napi_env env, napi_value obj, const char* name, uint32_t* out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

bool GetBoolProp(napi_env env, napi_value obj, const char* name, bool* out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) return false;
  return napi_get_value_bool(env, v, out) == napi_ok;
}

}  // namespace aigate

namespace {

using namespace aigate;

napi_value Open(napi_env env, napi_callback_info info) {
  Addon* addon = nullptr;
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, reinterpret_cast<void**>(&addon)));
  if (!addon->queue_error) return ThrowType(env, "init(QueueError) must be called first");

  uint32_t num;
  napi_valuetype t;
  if (argc < 2 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_number ||
      napi_get_value_uint32(env, argv[0], &num) != napi_ok || num > 0xffff)
    return ThrowType(env, "queueNum must be an integer from 0 to 65535");
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_object)
    return ThrowType(env, "options must be an object");

  struct nfq_config cfg = {};
  uint32_t rcvbuf;
  bool fail_open, gso, verdict_batch;
  cfg.queue_num = static_cast<uint16_t>(num);
  if (!GetUint32Prop(env, argv[1], "copyRange", &cfg.copy_range) ||
      !GetUint32Prop(env, argv[1], "maxLen", &cfg.max_len) ||
      !GetUint32Prop(env, argv[1], "rcvbuf", &rcvbuf) || rcvbuf > 0x7fffffff ||
      !GetBoolProp(env, argv[1], "failOpen", &fail_open) ||
      !GetBoolProp(env, argv[1], "gso", &gso) ||
      !GetBoolProp(env, argv[1], "verdictBatch", &verdict_batch))
    return ThrowType(env, "options must have copyRange, maxLen, rcvbuf (numbers), failOpen, gso, verdictBatch (booleans)");
  cfg.rcvbuf = static_cast<int>(rcvbuf);
  cfg.fail_open = fail_open;
  cfg.gso = gso;
  cfg.verdict_batch = verdict_batch;

  napi_value obj;
  CALL(env, napi_create_object(env, &obj));

  nfq_handle* h = nullptr;
  const char* step = "open";
  int r = nfq_open(&h, &cfg, &step);
  if (r < 0) return ThrowQueueError(env, addon, r, step ? step : "open", num);

  return WrapQueue(env, obj, addon, h, num) ? obj : nullptr;
}

napi_value Init(napi_env env, napi_callback_info info) {
  Addon* addon = nullptr;
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype t;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, reinterpret_cast<void**>(&addon)));
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function)
    return ThrowType(env, "QueueError must be a class");
  if (addon->queue_error) napi_delete_reference(env, addon->queue_error);
  CALL(env, napi_create_reference(env, argv[0], 1, &addon->queue_error));
  return nullptr;
}

void FreeAddon(napi_env env, void* data, void*) {
  Addon* addon = static_cast<Addon*>(data);
  if (addon->queue_error) napi_delete_reference(env, addon->queue_error);
  delete addon;
}

}  // namespace

// Context-aware: runs once per environment (main thread and each worker);
// all state hangs off this Addon or off a wrapped Queue.
NAPI_MODULE_INIT() {
  Addon* addon = new (std::nothrow) Addon();
  if (!addon || napi_set_instance_data(env, addon, FreeAddon, nullptr) != napi_ok) {
    delete addon;
    napi_throw_error(env, nullptr, "aigate_nfq: cannot allocate addon state");
    return nullptr;
  }
  napi_value stride, overhead, max_copy;
  napi_create_uint32(env, kMetaStride, &stride);
  napi_create_uint32(env, NFQ_MSG_OVERHEAD, &overhead);
  napi_create_uint32(env, NFQ_MAX_COPY_RANGE, &max_copy);
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, addon},
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, addon},
      {"META_STRIDE", nullptr, nullptr, nullptr, nullptr, stride, napi_enumerable, nullptr},
      {"MSG_OVERHEAD", nullptr, nullptr, nullptr, nullptr, overhead, napi_enumerable, nullptr},
      {"MAX_COPY_RANGE", nullptr, nullptr, nullptr, nullptr, max_copy, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok)
    return nullptr;
  if (QuicCryptoInit(env, exports) != napi_ok) return nullptr;  // quicOpen, quicDerive (quic_crypto.cc)
  if (NotifyInit(env, exports) != napi_ok) return nullptr;  // notify (notify.cc): sd_notify for Type=notify
  return exports;
}
