// The buffer-pool part of the Node addon (native/addon/pool.cpp). The addon's init (addon.cpp) calls
// InitPool once per environment, after its own exports are set. See reference/src/pool.ts for the JS API.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "buffer_pool.h"
#include "recv_pool.h"

namespace cpspec::pool {

using cpspec::RecvPool;

/** Adds BufferPool, openBufferPool, pickSizeClass and sizeClasses to `exports`. */
void InitPool(Napi::Env env, Napi::Object exports);

/**
 * For other bindings (pool-backed receives): the native pool behind a JS BufferPool object or a pool id
 * (pool.id). Throws a JS error with code 'invalid' naming `what` when v is neither a live pool nor its id.
 */
std::shared_ptr<RecvPool> PoolFromValue(Napi::Env env, const Napi::Value& v, const std::string& what);

}  // namespace cpspec::pool
