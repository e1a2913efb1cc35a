// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
//
//   notify(path, state) -> boolean
//
// `path` is the socket systemd gave (an absolute path, or "@name" for the
// abstract namespace); `state` is "READY=1", "WATCHDOG=1", ... Returns
// whether the datagram was sent. Node has no unix datagram socket, hence
// this. No state is kept: a socket per call (a handful per minute).

#include "notify.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

// Longest state string taken; systemd's own messages are far shorter.
constexpr size_t kMaxState = 4096;

bool SendNotify(const char* path, size_t path_len, const char* state, size_t state_len) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path_len == 0 || path_len >= sizeof sa.sun_path) return false;
  if (path[0] != '/' && path[0] != '@') return false;
  memcpy(sa.sun_path, path, path_len);
  if (path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path_len);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = sendto(fd, state, state_len, MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa), len);
  } while (n < 0 && errno == EINTR);
  close(fd);
  return n == static_cast<ssize_t>(state_len);
}

napi_value Notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result;
  bool ok = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc == 2) {
    char path[sizeof(((struct sockaddr_un*)nullptr)->sun_path) + 1];
    char state[kMaxState + 1];
    size_t path_len = 0, state_len = 0;
    if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) == napi_ok &&
        napi_get_value_string_utf8(env, argv[1], state, sizeof state, &state_len) == napi_ok &&
        path_len < sizeof path - 1 && state_len < kMaxState)
      ok = SendNotify(path, path_len, state, state_len);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

}  // namespace

napi_status NotifyInit(napi_env env, napi_value exports) {
  napi_property_descriptor prop = {"notify", nullptr, Notify, nullptr, nullptr, nullptr, napi_default, nullptr};
  return napi_define_properties(env, exports, 1, &prop);
}
