// The methods of one queue handle (see the list in addon.cc): thin checks
// of what JS passed, then one nfq call each. verdict() is where verdict
// values enter native code, and so the one place they are checked.
#include "addon.h"

#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

// After the system socket headers node_api.h and poll.h pulled in (see nfq_internal.h).
#include <linux/netfilter.h>

namespace aigate {
namespace {

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

// The verdicts nfq_send_verdicts may pass to the kernel (nfq.h): NF_STOLEN
// would leak the packet in the kernel, NF_STOP is deprecated; NF_QUEUE
// carries a queue number and flags in the upper bits.
bool VerdictOk(uint32_t v) {
  switch (v & NF_VERDICT_MASK) {
    case NF_DROP:
    case NF_ACCEPT:
    case NF_QUEUE:
    case NF_REPEAT:
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

}  // namespace

// A failed Node-API call inside WrapQueue: the finalizer owns the queue, so only throw.
#define WRAP_CALL(env, call)        \
  do {                              \
    if ((call) != napi_ok) {        \
      ThrowLastError(env);          \
      return false;                 \
    }                               \
  } while (0)

bool WrapQueue(napi_env env, napi_value obj, Addon* addon, nfq_handle* h, uint32_t queue_num) {
  Queue* q = new (std::nothrow) Queue();
  if (!q) {
    nfq_close(h);
    ThrowQueueError(env, addon, -ENOMEM, "malloc", queue_num);
    return false;
  }
  q->addon = addon;
  q->nfq = h;
  q->queue_num = queue_num;
  if (napi_wrap(env, obj, q, Finalize, nullptr, nullptr) != napi_ok) {
    ThrowLastError(env);
    q->Close();
    delete q;
    return false;
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
  WRAP_CALL(env, napi_define_properties(env, obj, sizeof(props) / sizeof(props[0]), props));
  WRAP_CALL(env, napi_create_int32(env, nfq_fd(h), &fd));
  WRAP_CALL(env, napi_set_named_property(env, obj, "fd", fd));
  WRAP_CALL(env, napi_create_uint32(env, static_cast<uint32_t>(nfq_max_msg(h)), &max_msg));
  WRAP_CALL(env, napi_set_named_property(env, obj, "maxMessage", max_msg));
  return true;
}

}  // namespace aigate
