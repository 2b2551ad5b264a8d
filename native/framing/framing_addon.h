// N-API bindings of the framing codec (native/addon/framing.cpp). The addon's module init calls
// InitFraming(env, exports), which adds `exports.framing` (see reference/src/framing/native.ts).
#pragma once

#include <napi.h>

void InitFraming(Napi::Env env, Napi::Object exports);
