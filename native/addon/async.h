// Asynchronous work for every binding of the addon: jobs run on the addon's own thread pool (never the
// libuv pool, which blocking waits would starve), and their results come back to the loop thread through
// one thread-safe function per environment (addon.cpp), resolving a promise. If the environment is torn
// down first, Drop() undoes what it can (gives packets or buffers back) and nothing touches the dead env.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

namespace cpspec::addon {

struct Hub;  // per environment (addon.cpp)

struct Job {
  virtual ~Job() = default;
  virtual void Execute() = 0;                     // on a pool thread
  virtual Napi::Value Result(Napi::Env env) = 0;  // on the loop thread: resolves the promise
  virtual void Drop() {}                          // the environment is gone: undo what can be undone
  std::shared_ptr<Hub> hub;
  napi_deferred deferred = nullptr;
  std::string error;  // set when Execute failed: the promise rejects with code 'internal'
};

// Starts job on the addon's thread pool; returns its promise.
Napi::Value StartJob(Napi::Env env, std::unique_ptr<Job> job);

}  // namespace cpspec::addon
