// Node-API glue for nfq.c: one wrapped object per queue, no global state.
//
// JS side: src/queue/index.ts. It validates every argument before calling
// in; the checks here only keep a wrong call from corrupting memory.
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
#include <node_api.h>
#include <uv.h>

#include <poll.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "nfq.h"
#include "quic_crypto.h"

namespace {

constexpr uint32_t kMetaStride = 8;
static_assert(sizeof(struct nfq_pkt) == kMetaStride * sizeof(uint32_t), "meta record is 8 words");
static_assert(alignof(struct nfq_pkt) <= alignof(uint32_t), "meta record aligns like Uint32Array");

struct Addon {
  napi_ref queue_error = nullptr;  // the JS QueueError class
};

// Closed by close(), or by the finalizer: when JS drops it, and when its
// thread ends with it open (Node-API runs every finalizer at environment
// teardown, e.g. worker.terminate(); Close touches nothing else, so order
// does not matter and no cleanup hook is needed).
struct Queue {
  Addon* addon = nullptr;
  nfq_handle* nfq = nullptr;  // null once closed
  uint32_t queue_num = 0;

  void Close() {
    if (!nfq) return;
    nfq_close(nfq);
    nfq = nullptr;
  }
};

#define CALL(env, call)                                     \
  do {                                                      \
    if ((call) != napi_ok) return ThrowLastError(env);      \
  } while (0)

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

// Throws new QueueError(message, code, errno, syscall), errno negative as in Node's own errors.
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

void Finalize(napi_env, void* data, void*) {
  Queue* q = static_cast<Queue*>(data);
  q->Close();
  delete q;
}

Queue* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || !data) {
    ThrowType(env, "receiver is not an NFQUEUE handle");
    return nullptr;
  }
  return static_cast<Queue*>(data);
}

#define REQUIRE_OPEN(env, q, syscall)                                                   \
  do {                                                                                  \
    if (!(q)->nfq) return ThrowQueueError(env, (q)->addon, -EBADF, syscall, (q)->queue_num); \
  } while (0)

napi_value Read(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Queue* q = Unwrap(env, info, &argc, argv);
  if (!q) return nullptr;
  REQUIRE_OPEN(env, q, "recv");
  void *buf, *meta;
  size_t buflen, metalen;
  if (argc < 2 || !GetTyped(env, argv[0], napi_uint8_array, &buf, &buflen))
    return ThrowType(env, "buf must be a Uint8Array");
  if (!GetTyped(env, argv[1], napi_uint32_array, &meta, &metalen))
    return ThrowType(env, "meta must be a Uint32Array");
  if (reinterpret_cast<uintptr_t>(buf) % 4 != 0)  // netlink headers are read in place
    return ThrowRange(env, "buf must start at a 4-byte aligned offset");
  size_t maxpkts = metalen / kMetaStride;
  if (maxpkts == 0) return ThrowRange(env, "meta must hold at least one record (8 words)");
  if (maxpkts > 0x7fffffff) maxpkts = 0x7fffffff;
  int n = nfq_read_batch(q->nfq, static_cast<uint8_t*>(buf), buflen,
                         static_cast<struct nfq_pkt*>(meta), static_cast<unsigned>(maxpkts));
  if (n == -ENOSPC) {
    char msg[128];
    snprintf(msg, sizeof(msg), "buf must hold at least %zu bytes (copyRange + %u)",
             nfq_max_msg(q->nfq), NFQ_MSG_OVERHEAD);
    return ThrowRange(env, msg);
  }
  if (n < 0) return ThrowQueueError(env, q->addon, n, "recv", q->queue_num);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
  // Word 7 is three packed fields; give JS the documented u32 on any host.
  for (int i = 0; i < n; i++) {
    struct nfq_pkt* p = static_cast<struct nfq_pkt*>(meta) + i;
    uint32_t info = p->hw_protocol | uint32_t(p->hook) << 16 | uint32_t(p->flags) << 24;
    memcpy(&p->hw_protocol, &info, sizeof(info));
  }
#endif
  napi_value out;
  CALL(env, napi_create_uint32(env, static_cast<uint32_t>(n), &out));
  return out;
}

napi_value Pending(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Queue* q = Unwrap(env, info, &argc, nullptr);
  if (!q) return nullptr;
  napi_value out;
  CALL(env, napi_get_boolean(env, q->nfq && nfq_pending(q->nfq), &out));
  return out;
}

// wait(timeoutMs): block until the socket is readable or timeoutMs pass (poll(2)).
// true when a read() may find something (readable, an error to report, or
// messages already kept in the addon), false on timeout or a signal.
// For a thread whose only job is the queue: it blocks that thread's event loop.
napi_value Wait(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Queue* q = Unwrap(env, info, &argc, argv);
  if (!q) return nullptr;
  REQUIRE_OPEN(env, q, "poll");
  int32_t timeout = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &timeout) != napi_ok || timeout < 0)
    return ThrowType(env, "timeoutMs must be a non-negative integer");
  bool ready = nfq_pending(q->nfq);
  if (!ready) {
    struct pollfd p = {nfq_fd(q->nfq), POLLIN, 0};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno != EINTR) return ThrowQueueError(env, q->addon, -errno, "poll", q->queue_num);
    ready = r > 0;
  }
  napi_value out;
  CALL(env, napi_get_boolean(env, ready, &out));
  return out;
}

bool VerdictOk(uint32_t v) {
  switch (v & 0xff) {  // NF_VERDICT_MASK
    case 0:  // NF_DROP
    case 1:  // NF_ACCEPT
    case 3:  // NF_QUEUE (+ queue number, bypass flag)
    case 4:  // NF_REPEAT
      return true;
    default:
      return false;
  }
}

napi_value Verdict(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  Queue* q = Unwrap(env, info, &argc, argv);
  if (!q) return nullptr;
  REQUIRE_OPEN(env, q, "sendmsg");
  uint32_t n;
  void *ids, *verdicts, *marks;
  size_t ni, nv, nm;
  napi_valuetype t;
  if (argc < 4 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_number ||
      napi_get_value_uint32(env, argv[0], &n) != napi_ok)
    return ThrowType(env, "n must be a number");
  if (!GetTyped(env, argv[1], napi_uint32_array, &ids, &ni))
    return ThrowType(env, "ids must be a Uint32Array");
  if (!GetTyped(env, argv[2], napi_uint32_array, &verdicts, &nv))
    return ThrowType(env, "verdicts must be a Uint32Array");
  if (!GetTyped(env, argv[3], napi_uint32_array, &marks, &nm))
    return ThrowType(env, "marks must be a Uint32Array");
  if (n > ni || n > nv || n > nm) return ThrowRange(env, "n exceeds the length of ids, verdicts or marks");
  const uint32_t* v = static_cast<const uint32_t*>(verdicts);
  for (uint32_t i = 0; i < n; i++) {
    if (!VerdictOk(v[i])) {
      char msg[160];
      snprintf(msg, sizeof(msg),
               "verdicts[%u] is 0x%x: must be NF_DROP, NF_ACCEPT, NF_QUEUE or NF_REPEAT", i, v[i]);
      return ThrowRange(env, msg);
    }
  }
  int r = nfq_send_verdicts(q->nfq, n, static_cast<const uint32_t*>(ids), v,
                            static_cast<const uint32_t*>(marks));
  if (r < 0) return ThrowQueueError(env, q->addon, r, "sendmsg", q->queue_num);
  return nullptr;
}

napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Queue* q = Unwrap(env, info, &argc, nullptr);
  if (!q) return nullptr;
  struct nfq_stats st = {};
  if (q->nfq) nfq_get_stats(q->nfq, &st);
  napi_value out, v;
  CALL(env, napi_create_object(env, &out));
  const struct {
    const char* name;
    uint64_t value;
  } fields[] = {
      {"packets", st.packets},         {"batches", st.batches},
      {"enobufs", st.enobufs},         {"recvErrors", st.recv_errors},
      {"sendErrors", st.send_errors},  {"verdicts", st.verdicts},
      {"verdictErrors", st.verdict_errors},
  };
  for (const auto& f : fields) {
    CALL(env, napi_create_double(env, static_cast<double>(f.value), &v));
    CALL(env, napi_set_named_property(env, out, f.name, v));
  }
  return out;
}

napi_value CloseMethod(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Queue* q = Unwrap(env, info, &argc, nullptr);
  if (!q) return nullptr;
  q->Close();
  return nullptr;
}

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

  Queue* q = new (std::nothrow) Queue();
  if (!q) {
    nfq_close(h);
    return ThrowQueueError(env, addon, -ENOMEM, "malloc", num);
  }
  q->addon = addon;
  q->nfq = h;
  q->queue_num = num;
  if (napi_wrap(env, obj, q, Finalize, nullptr, nullptr) != napi_ok) {
    ThrowLastError(env);
    q->Close();
    delete q;
    return nullptr;
  }
  // From here the finalizer owns q.
  napi_value fd, max_msg;
  napi_property_descriptor props[] = {
      {"read", nullptr, Read, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pending", nullptr, Pending, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wait", nullptr, Wait, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"verdict", nullptr, Verdict, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, CloseMethod, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  CALL(env, napi_define_properties(env, obj, sizeof(props) / sizeof(props[0]), props));
  CALL(env, napi_create_int32(env, nfq_fd(h), &fd));
  CALL(env, napi_set_named_property(env, obj, "fd", fd));
  CALL(env, napi_create_uint32(env, static_cast<uint32_t>(nfq_max_msg(h)), &max_msg));
  CALL(env, napi_set_named_property(env, obj, "maxMessage", max_msg));
  return obj;
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
  return exports;
}
