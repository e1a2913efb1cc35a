#pragma once
#include <node_api.h>

// Adds notify(path, state) to the addon's exports (notify.cc).
napi_status NotifyInit(napi_env env, napi_value exports);
