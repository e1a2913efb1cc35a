// What the two files of the Node-API glue share: the per-environment Addon,
// the per-queue Queue, and the argument and error helpers.
//
//   addon.cc   module init, init(QueueError), open(): argument checks, nfq_open
//   queue.cc   the handle's methods: wait, read, pending, verdict, stats, close
#ifndef AIGATE_ADDON_H
#define AIGATE_ADDON_H

#include <node_api.h>

#include <cstddef>
#include <cstdint>

#include "nfq.h"

namespace aigate {

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

// Each Throw* throws a JS exception and returns nullptr, for `return Throw...(...)`.
napi_value ThrowLastError(napi_env env);
// new QueueError(message, code, errno, syscall), errno negative as in Node's own errors.
napi_value ThrowQueueError(napi_env env, Addon* addon, int neg_errno, const char* syscall,
                           uint32_t queue_num);
napi_value ThrowType(napi_env env, const char* msg);
napi_value ThrowRange(napi_env env, const char* msg);

bool GetTyped(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* length);
bool GetUint32Prop(napi_env env, napi_value obj, const char* name, uint32_t* out);
bool GetBoolProp(napi_env env, napi_value obj, const char* name, bool* out);

// queue.cc: wrap the open handle h into obj and give obj the handle's
// methods, fd and maxMessage. On failure h is closed and an exception is
// pending (returns false).
bool WrapQueue(napi_env env, napi_value obj, Addon* addon, nfq_handle* h, uint32_t queue_num);

}  // namespace aigate

#endif
