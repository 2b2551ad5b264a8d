// N-API bindings of the buffer pools (native/pool/buffer_pool.h); the JS-side types and semantics are in
// reference/src/pool.ts (the model implements the same API).
//
//   new BufferPool(bufferSize, count)       bufferSize 1..2^30 (rounded up to a multiple of 64),
//                                           count 1..2^30, at most 64 GiB in all; throws code 'invalid'
//   pool.id, pool.bufferSize, pool.capacity
//   pool.acquire()                          {kind:'buffer', id} | {kind:'exhausted'}; never blocks
//   pool.acquireSync(waitMs)                the same, blocking the calling thread up to waitMs (0..2^31-1)
//   pool.acquireWait(waitMs)                Promise of the same; the wait runs on the addon's thread pool,
//                                           never on the event loop nor the libuv pool
//   pool.release(id)                        'ok' | 'double-release' | 'foreign' (any number that is not an
//                                           integer id of this pool is foreign; a non-number throws 'invalid')
//   pool.stats()                            {total, inUse, available, highWater, failedAcquires}
//   pool.audit()                            '' or the first inconsistency (quiescent self-check)
//   openBufferPool(id)                      the same native pool in another environment (a worker_thread)
//   pickSizeClass(request), sizeClasses     the default size classes (64 .. 32768); -1 = too large
//
// A pool lives while a JS object or a pending acquireWait holds it. An acquireWait whose environment is
// torn down gives its buffer back.
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "buffer_pool.h"
#include "recv_pool.h"
#include "async.h"
#include "pool_addon.h"

namespace cpspec::pool {

namespace {

constexpr double kMaxWaitMs = 2147483647.0;

[[noreturn]] void Throw(Napi::Env env, const char* code, const std::string& msg, bool type_error = false) {
  Napi::Error e = type_error ? Napi::TypeError::New(env, msg) : Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  throw e;
}

std::string Show(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: {
      const double d = v.As<Napi::Number>().DoubleValue();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
    case napi_string: {
      const std::string s = v.As<Napi::String>().Utf8Value();
      std::string out(1, '\'');
      out.append(s, 0, 40);
      if (s.size() > 40) out += "...";
      out += '\'';
      return out;
    }
    case napi_bigint: return "a bigint";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    default: return "an object";
  }
}

// An integer lo..hi, else 'invalid' (a TypeError when it is not a number at all).
double IntArg(Napi::Env env, const Napi::Value& v, const char* what, double lo, double hi) {
  char range[96];
  std::snprintf(range, sizeof range, "%s must be an integer in %.0f..%.0f, got ", what, lo, hi);
  if (!v.IsNumber()) Throw(env, "invalid", range + Show(v), true);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < lo || d > hi) Throw(env, "invalid", range + Show(v));
  return d;
}

Napi::Object AcquireValue(Napi::Env env, AcquireStatus st, const BufferHandle& h) {
  Napi::Object o = Napi::Object::New(env);
  if (st == AcquireStatus::ok) {
    o.Set("kind", Napi::String::New(env, "buffer"));
    o.Set("id", Napi::Number::New(env, h.index));
  } else {
    o.Set("kind", Napi::String::New(env, "exhausted"));
  }
  return o;
}

// Pools by id, so that a worker_thread can open a pool made elsewhere.
class Registry {
 public:
  static Registry& Get() {
    static Registry* r = new Registry();  // never destroyed: threads may outlive static destruction
    return *r;
  }
  std::uint64_t Add(const std::shared_ptr<RecvPool>& p) {
    std::lock_guard<std::mutex> g(mu_);
    if (pools_.size() >= compact_at_) {
      std::erase_if(pools_, [](const auto& kv) { return kv.second.expired(); });
      compact_at_ = std::max<std::size_t>(64, pools_.size() * 2);
    }
    const std::uint64_t id = next_++;
    pools_.emplace(id, p);
    return id;
  }
  std::shared_ptr<RecvPool> Find(std::uint64_t id) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = pools_.find(id);
    return it == pools_.end() ? nullptr : it->second.lock();
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::uint64_t, std::weak_ptr<RecvPool>> pools_;
  std::uint64_t next_ = 1;
  std::size_t compact_at_ = 64;
};

// ---------------------------------------------------------------------------------------------------------
// acquireWait: a bounded wait on the addon's thread pool (async.h), its result delivered to the loop.
// ---------------------------------------------------------------------------------------------------------

struct WaitJob : cpspec::addon::Job {
  std::shared_ptr<RecvPool> pool;
  std::uint32_t wait_ms = 0;
  AcquireStatus status = AcquireStatus::exhausted;
  BufferHandle buffer;

  void Execute() override { status = pool->buffers().acquire(buffer, wait_ms); }
  Napi::Value Result(Napi::Env env) override { return AcquireValue(env, status, buffer); }
  // Nobody will see the result: give the buffer back.
  void Drop() override {
    if (status == AcquireStatus::ok) pool->release(buffer.index);
  }
};

// ---------------------------------------------------------------------------------------------------------
// The BufferPool class
// ---------------------------------------------------------------------------------------------------------

// Per environment: the constructor (openBufferPool makes instances through it). Freed by the cleanup hook.
struct PoolEnvData {
  Napi::FunctionReference ctor;
};

// Marks our BufferPool objects, so PoolFromValue never unwraps some other class's object.
constexpr napi_type_tag kPoolTag = {0x6370737065635f70ull, 0x6f6f6c5f77726170ull};

// openBufferPool passes this (as an External) to the constructor.
struct OpenToken {
  std::shared_ptr<RecvPool> pool;
  std::uint64_t id = 0;
};

class PoolWrap : public Napi::ObjectWrap<PoolWrap> {
 public:
  static Napi::Function Define(Napi::Env env, PoolEnvData* data) {
    return DefineClass(env, "BufferPool",
                       {
                           InstanceAccessor<&PoolWrap::Id>("id"),
                           InstanceAccessor<&PoolWrap::BufferSize>("bufferSize"),
                           InstanceAccessor<&PoolWrap::Capacity>("capacity"),
                           InstanceMethod<&PoolWrap::Acquire>("acquire"),
                           InstanceMethod<&PoolWrap::AcquireSync>("acquireSync"),
                           InstanceMethod<&PoolWrap::AcquireWait>("acquireWait"),
                           InstanceMethod<&PoolWrap::Release>("release"),
                           InstanceMethod<&PoolWrap::Stats>("stats"),
                           InstanceMethod<&PoolWrap::Audit>("audit"),
                       },
                       data);
  }

  explicit PoolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PoolWrap>(info) {
    Napi::Env env = info.Env();
    napi_type_tag_object(env, info.This(), &kPoolTag);
    if (info.Length() == 1 && info[0].IsExternal()) {
      const OpenToken* t = info[0].As<Napi::External<OpenToken>>().Data();
      pool_ = t->pool;
      id_ = t->id;
      return;
    }
    const auto size = static_cast<std::size_t>(IntArg(env, info[0], "bufferSize", 1, static_cast<double>(kMaxBufferSize)));
    const auto count = static_cast<std::uint32_t>(IntArg(env, info[1], "count", 1, kMaxBuffers));
    try {
      pool_ = std::make_shared<RecvPool>(std::make_shared<BufferPool>(size, count));
    } catch (const std::invalid_argument& e) {
      Throw(env, "invalid", e.what());
    } catch (const std::bad_alloc&) {
      Throw(env, "internal", "cannot allocate " + std::to_string(count) + " buffers of " +
                                 std::to_string(round_buffer_size(size)) + " bytes");
    }
    id_ = Registry::Get().Add(pool_);
  }

 private:
  Napi::Value Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(id_)); }
  Napi::Value BufferSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(pool_->buffer_size()));
  }
  Napi::Value Capacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pool_->capacity()); }

  // A pool that serves pool-backed receives hands out buffers only through them (recv_pool.h).
  void CheckUnbound(Napi::Env env) {
    if (pool_->bound())
      Throw(env, "invalid", "buffer pool " + std::to_string(id_) + " serves pool-backed receives: its buffers come only through them");
  }

  Napi::Value Acquire(const Napi::CallbackInfo& info) {
    CheckUnbound(info.Env());
    BufferHandle h;
    const AcquireStatus st = pool_->buffers().try_acquire(h);
    return AcquireValue(info.Env(), st, h);
  }

  Napi::Value AcquireSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto wait = static_cast<std::uint32_t>(IntArg(env, info[0], "waitMs", 0, kMaxWaitMs));
    CheckUnbound(env);
    BufferHandle h;
    const AcquireStatus st = pool_->buffers().acquire(h, wait);
    return AcquireValue(env, st, h);
  }

  Napi::Value AcquireWait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto wait = static_cast<std::uint32_t>(IntArg(env, info[0], "waitMs", 0, kMaxWaitMs));
    CheckUnbound(env);
    BufferHandle h;
    // A free buffer, or no wait asked for: answer now, without a thread.
    if (pool_->buffers().try_take(h) || wait == 0) {
      const AcquireStatus st = h.valid() ? AcquireStatus::ok : pool_->buffers().try_acquire(h);  // counts the failure
      Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
      d.Resolve(AcquireValue(env, st, h));
      return d.Promise();
    }
    auto job = std::make_unique<WaitJob>();
    job->pool = pool_;
    job->wait_ms = wait;
    return cpspec::addon::StartJob(env, std::move(job));
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) Throw(env, "invalid", "release: the buffer id must be a number, got " + Show(info[0]), true);
    const double d = info[0].As<Napi::Number>().DoubleValue();
    ReleaseStatus st = ReleaseStatus::foreign;
    if (std::isfinite(d) && d == std::trunc(d) && d >= 0 && d < static_cast<double>(pool_->capacity())) {
      st = pool_->release(static_cast<std::uint32_t>(d));
    }
    return Napi::String::New(env, release_status_name(st));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const PoolStats s = pool_->stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("total", Napi::Number::New(env, static_cast<double>(s.total)));
    o.Set("inUse", Napi::Number::New(env, static_cast<double>(s.in_use)));
    o.Set("available", Napi::Number::New(env, static_cast<double>(s.available)));
    o.Set("highWater", Napi::Number::New(env, static_cast<double>(s.high_water)));
    o.Set("failedAcquires", Napi::Number::New(env, static_cast<double>(s.failed_acquires)));
    return o;
  }

  Napi::Value Audit(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), pool_->buffers().audit()); }

 public:
  const std::shared_ptr<RecvPool>& pool() const { return pool_; }

 private:

  std::shared_ptr<RecvPool> pool_;
  std::uint64_t id_ = 0;
};

Napi::Value OpenBufferPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = static_cast<PoolEnvData*>(info.Data());
  const auto id = static_cast<std::uint64_t>(IntArg(env, info[0], "id", 1, 9007199254740991.0));
  OpenToken token{Registry::Get().Find(id), id};
  if (!token.pool) Throw(env, "invalid", "openBufferPool: no live pool with id " + std::to_string(id));
  return data->ctor.New({Napi::External<OpenToken>::New(env, &token)});
}

Napi::Value PickSizeClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double request = IntArg(env, info[0], "request", 0, 9007199254740991.0);
  for (std::size_t i = 0; i < kDefaultSizeClasses.size(); ++i) {
    if (request <= static_cast<double>(kDefaultSizeClasses[i])) return Napi::Number::New(env, static_cast<double>(i));
  }
  return Napi::Number::New(env, -1);
}

void EnvCleanup(void* arg) {
  auto* data = static_cast<PoolEnvData*>(arg);
  data->ctor.Reset();
  delete data;
}

}  // namespace

std::shared_ptr<RecvPool> PoolFromValue(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsNumber()) {
    const auto id = static_cast<std::uint64_t>(IntArg(env, v, what.c_str(), 1, 9007199254740991.0));
    std::shared_ptr<RecvPool> p = Registry::Get().Find(id);
    if (!p) Throw(env, "invalid", what + ": no live buffer pool with id " + std::to_string(id));
    return p;
  }
  bool tagged = false;
  if (v.IsObject()) napi_check_object_type_tag(env, v, &kPoolTag, &tagged);
  if (!tagged) Throw(env, "invalid", what + " must be a BufferPool or a pool id, got " + Show(v), true);
  return PoolWrap::Unwrap(v.As<Napi::Object>())->pool();
}

void InitPool(Napi::Env env, Napi::Object exports) {
  auto* data = new PoolEnvData();
  Napi::Function ctor = PoolWrap::Define(env, data);
  data->ctor = Napi::Persistent(ctor);
  napi_add_env_cleanup_hook(env, EnvCleanup, data);

  exports.Set("BufferPool", ctor);
  exports.Set("openBufferPool", Napi::Function::New(env, OpenBufferPool, "openBufferPool", data));
  exports.Set("pickSizeClass", Napi::Function::New(env, PickSizeClass, "pickSizeClass"));
  Napi::Array classes = Napi::Array::New(env, kDefaultSizeClasses.size());
  for (std::size_t i = 0; i < kDefaultSizeClasses.size(); ++i) {
    classes.Set(static_cast<std::uint32_t>(i), Napi::Number::New(env, static_cast<double>(kDefaultSizeClasses[i])));
  }
  exports.Set("sizeClasses", classes);
}

}  // namespace cpspec::pool
