// The Node addon over the port core (see native/js/addon.ts for the JS-side API and its types).
//
// Blocking waits never run on the event loop or on the libuv thread pool: every async dequeue and every
// runWorkers call runs on a thread of our own pool (it grows when all its threads are busy; idle threads
// exit after 30 s) and is resolved on the loop through one thread-safe function per environment. Async
// dequeues detach their pool thread from the port when they return, so each behaves like a thread that
// dequeues once and exits; the *Sync methods keep the calling thread associated (for worker_threads).
//
// On environment teardown the ports this environment created are closed (pending waits end), and results
// that arrive later are dropped without touching the dead environment.
#include <napi.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "port.h"
#include "sockets.h"
#include "workers.h"

// The other bindings compiled into this addon (native/addon/*.cpp) add their exports from Init below.
#include "async.h"
#include "framing_addon.h"
#include "pool_addon.h"

namespace {

using namespace cpspec;

constexpr const char* kVersion = "0.1.0";
constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 - 1
constexpr double kMaxTimeout = 2147483647.0;

// ---------------------------------------------------------------------------------------------------------
// Errors and argument checks
// ---------------------------------------------------------------------------------------------------------

[[noreturn]] void Throw(Napi::Env env, const char* code, const std::string& msg, bool type_error = false) {
  Napi::Error e = type_error ? Napi::TypeError::New(env, msg) : Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  throw e;
}

std::string FormatNumber(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

std::string Describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: return FormatNumber(v.As<Napi::Number>().DoubleValue());
    case napi_string: {
      std::string s = v.As<Napi::String>().Utf8Value();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return "'" + s + "'";
    }
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    default: return v.IsArray() ? "an array" : "an object";
  }
}

// An integer in lo..hi (a JS number with no fraction).
double Integer(Napi::Env env, const Napi::Value& v, const std::string& what, double lo, double hi) {
  if (!v.IsNumber()) Throw(env, "invalid", what + " must be an integer in " + FormatNumber(lo) + ".." + FormatNumber(hi) + ", got " + Describe(v), true);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < lo || d > hi) {
    Throw(env, "invalid", what + " must be an integer in " + FormatNumber(lo) + ".." + FormatNumber(hi) + ", got " + Describe(v));
  }
  return d;
}

double OptionalInteger(Napi::Env env, const Napi::Value& v, const std::string& what, double lo, double hi, double dflt) {
  if (v.IsUndefined()) return dflt;
  return Integer(env, v, what, lo, hi);
}

std::int64_t Timeout(Napi::Env env, const Napi::Value& v, const std::string& what = "timeoutMs") {
  if (!v.IsNumber()) Throw(env, "invalid", what + " must be an integer in -1..2147483647 ms (-1 = infinite), got " + Describe(v), true);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < -1 || d > kMaxTimeout) {
    Throw(env, "invalid", what + " must be an integer in -1..2147483647 ms (-1 = infinite), got " + Describe(v));
  }
  return static_cast<std::int64_t>(d);
}

Napi::Object AsObject(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || v.IsArray() || v.IsFunction()) Throw(env, "invalid", what + " must be an object, got " + Describe(v), true);
  return v.As<Napi::Object>();
}

Napi::Array AsArray(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) Throw(env, "invalid", what + " must be an array, got " + Describe(v), true);
  return v.As<Napi::Array>();
}

Status StatusArg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined()) return Status::ok;
  Status st = Status::ok;
  if (!v.IsString() || !status_from_name(v.As<Napi::String>().Utf8Value(), st)) {
    Throw(env, "invalid",
          what + " must be one of ok, eof, aborted, reset, refused, pool-exhausted, timeout, closed, invalid; got " + Describe(v),
          !v.IsString());
  }
  return st;
}

Packet PacketArgs(Napi::Env env, const Napi::Value& key, const Napi::Value& bytes, const Napi::Value& token,
                  const Napi::Value& status, const Napi::Value& native_error, const std::string& prefix) {
  Packet p;
  p.key = static_cast<std::uint64_t>(Integer(env, key, prefix + "key", 0, kMaxSafe));
  p.bytes = static_cast<std::uint32_t>(OptionalInteger(env, bytes, prefix + "bytes", 0, 4294967295.0, 0));
  p.token = static_cast<std::uint64_t>(OptionalInteger(env, token, prefix + "token", 0, kMaxSafe, 0));
  p.status = StatusArg(env, status, prefix + "status");
  p.native_error = static_cast<std::int32_t>(OptionalInteger(env, native_error, prefix + "nativeError", -2147483648.0, 2147483647.0, 0));
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Results as JS values
// ---------------------------------------------------------------------------------------------------------

Napi::Object PacketValue(Napi::Env env, const Packet& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("key", Napi::Number::New(env, static_cast<double>(p.key)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(p.bytes)));
  o.Set("token", Napi::Number::New(env, static_cast<double>(p.token)));
  o.Set("status", Napi::String::New(env, status_name(p.status)));
  o.Set("nativeError", Napi::Number::New(env, static_cast<double>(p.native_error)));
  AttachSocketFields(env, o, p);  // op, socket, data (socket completions only)
  return o;
}

Napi::Array PacketArray(Napi::Env env, const Packet* p, std::size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (std::size_t i = 0; i < n; ++i) a.Set(static_cast<std::uint32_t>(i), PacketValue(env, p[i]));
  return a;
}

Napi::Object KindOnly(Napi::Env env, const char* kind) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", Napi::String::New(env, kind));
  return o;
}

// {kind:'packet', packet} | {kind:'packets', packets} | {kind:'timeout'} | {kind:'closed'}
Napi::Object DequeueValue(Napi::Env env, DequeueKind k, const Packet* p, std::size_t n, bool many) {
  if (k == DequeueKind::timeout) return KindOnly(env, "timeout");
  if (k == DequeueKind::closed) return KindOnly(env, "closed");
  Napi::Object o = KindOnly(env, many ? "packets" : "packet");
  if (many) {
    o.Set("packets", PacketArray(env, p, n));
  } else {
    o.Set("packet", PacketValue(env, p[0]));
  }
  return o;
}

Napi::Object TraceValue(Napi::Env env, const TraceResult& r) {
  const std::size_t n = r.events.size();
  Napi::Float64Array t = Napi::Float64Array::New(env, n);
  Napi::Uint16Array th = Napi::Uint16Array::New(env, n);
  Napi::Uint8Array ev = Napi::Uint8Array::New(env, n);
  Napi::Float64Array key = Napi::Float64Array::New(env, n);
  double* tp = t.Data();
  std::uint16_t* thp = th.Data();
  std::uint8_t* evp = ev.Data();
  double* kp = key.Data();
  for (std::size_t i = 0; i < n; ++i) {
    const TraceEvent& e = r.events[i];
    tp[i] = static_cast<double>(e.t_ns);
    thp[i] = e.thread;
    evp[i] = static_cast<std::uint8_t>(e.ev);
    kp[i] = static_cast<double>(e.key);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", Napi::Number::New(env, r.threads));
  o.Set("t", t);
  o.Set("thread", th);
  o.Set("ev", ev);
  o.Set("key", key);
  o.Set("unfinished", Napi::Number::New(env, r.unfinished));
  o.Set("leftover", Napi::Number::New(env, static_cast<double>(r.leftover)));
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Jobs, the per-environment hub and the thread pool
// ---------------------------------------------------------------------------------------------------------

using addon::Job;

}  // namespace

// One per environment. `alive` (under mu) says whether the thread-safe function may still be called.
struct cpspec::addon::Hub {
  std::mutex mu;
  bool alive = true;
  napi_threadsafe_function tsfn = nullptr;
  // Loop thread only:
  std::size_t pending = 0;
  std::vector<std::weak_ptr<Port>> owned;  // ports created in this environment (closed at teardown)
  std::size_t compact_at = 64;

  void Own(const std::shared_ptr<Port>& p) {
    if (owned.size() >= compact_at) {
      std::erase_if(owned, [](const std::weak_ptr<Port>& w) { return w.expired(); });
      compact_at = std::max<std::size_t>(64, owned.size() * 2);
    }
    owned.push_back(p);
  }

  // Called on a pool thread when a job is done: hands it to the loop, or drops it if the environment is
  // gone.
  static void Deliver(Job* job) {
    std::shared_ptr<Hub> hub = job->hub;
    bool sent = false;
    {
      std::lock_guard<std::mutex> g(hub->mu);
      if (hub->alive) sent = napi_call_threadsafe_function(hub->tsfn, job, napi_tsfn_nonblocking) == napi_ok;
    }
    if (!sent) {
      job->Drop();
      delete job;
    }
  }
};

namespace {

using addon::Hub;

class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = new Pool();  // never destroyed: detached threads may outlive static destruction
    return *pool;
  }

  // Takes the job (returns true) or leaves it with the caller when no thread can run it.
  bool Submit(std::unique_ptr<Job>& job) {
    std::unique_lock<std::mutex> lk(mu_);
    queue_.push_back(job.get());
    if (queue_.size() > idle_) {
      try {
        std::thread(&Pool::Loop, this).detach();
        ++threads_;
      } catch (...) {
        // No new thread, and every existing one may be blocked for good: refuse rather than queue.
        queue_.pop_back();
        return false;
      }
    }
    job.release();
    lk.unlock();
    cv_.notify_one();
    return true;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      while (queue_.empty()) {
        ++idle_;
        bool got = cv_.wait_for(lk, std::chrono::seconds(30), [&] { return !queue_.empty(); });
        --idle_;
        if (!got) {
          --threads_;
          return;
        }
      }
      Job* job = queue_.front();
      queue_.pop_front();
      lk.unlock();
      try {
        job->Execute();
      } catch (const std::exception& e) {
        job->error = e.what();
      } catch (...) {
        job->error = "unknown error";
      }
      Port::detach_current_thread();
      Hub::Deliver(job);
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  std::size_t idle_ = 0;
  std::size_t threads_ = 0;
};

// Runs on the loop thread for each delivered job (env == nullptr: the function is being torn down).
void CallJs(napi_env env, napi_value /*js_cb*/, void* /*context*/, void* data) {
  std::unique_ptr<Job> job(static_cast<Job*>(data));
  if (job == nullptr) return;
  if (env == nullptr) {  // torn down with results still queued
    job->Drop();
    return;
  }
  Hub& hub = *job->hub;
  if (hub.pending > 0 && --hub.pending == 0) napi_unref_threadsafe_function(env, hub.tsfn);
  Napi::Env e(env);
  Napi::HandleScope scope(e);
  try {
    if (!job->error.empty()) {
      Napi::Error err = Napi::Error::New(e, job->error);
      err.Value().Set("code", Napi::String::New(e, "internal"));
      napi_reject_deferred(env, job->deferred, err.Value());
    } else {
      napi_resolve_deferred(env, job->deferred, job->Result(e));
    }
  } catch (const Napi::Error& err) {
    napi_reject_deferred(env, job->deferred, err.Value());
  } catch (const std::exception& ex) {
    napi_reject_deferred(env, job->deferred, Napi::Error::New(e, ex.what()).Value());
  }
}

struct DequeueJob : Job {
  std::shared_ptr<Port> port;
  std::size_t max = 1;
  std::int64_t timeout = 0;
  bool many = false;
  DequeueKind kind = DequeueKind::timeout;
  std::vector<Packet> out;
  std::size_t n = 0;

  void Execute() override {
    out.resize(max);
    kind = port->dequeue_many(out.data(), max, n, timeout);
  }
  Napi::Value Result(Napi::Env env) override { return DequeueValue(env, kind, out.data(), n, many); }
  // Nobody will see these packets (the environment that asked died meanwhile): put them back rather than
  // lose them silently (at the tail; they are dropped if the port was closed meanwhile).
  void Drop() override {
    if (kind == DequeueKind::packet && n > 0) port->post_many(out.data(), n);
  }
};

struct RunJob : Job {
  std::shared_ptr<Port> port;
  std::vector<Program> programs;
  RunOptions options;
  TraceResult result;

  void Execute() override { result = run_workers(port, programs, options); }
  Napi::Value Result(Napi::Env env) override { return TraceValue(env, result); }
};

// ---------------------------------------------------------------------------------------------------------
// Ports shared between environments (worker_threads open a port by id)
// ---------------------------------------------------------------------------------------------------------

struct Registry {
  std::mutex mu;
  std::unordered_map<std::uint64_t, std::weak_ptr<Port>> ports;
  std::uint64_t next = 1;
  std::size_t compact_at = 64;

  static Registry& Get() {
    static Registry* r = new Registry();
    return *r;
  }
  std::uint64_t Add(const std::shared_ptr<Port>& p) {
    std::lock_guard<std::mutex> g(mu);
    if (ports.size() >= compact_at) {
      std::erase_if(ports, [](const auto& kv) { return kv.second.expired(); });
      compact_at = std::max<std::size_t>(64, ports.size() * 2);
    }
    std::uint64_t id = next++;
    ports.emplace(id, p);
    return id;
  }
  std::shared_ptr<Port> Find(std::uint64_t id) {
    std::lock_guard<std::mutex> g(mu);
    auto it = ports.find(id);
    return it == ports.end() ? nullptr : it->second.lock();
  }
};

// ---------------------------------------------------------------------------------------------------------
// The Port class
// ---------------------------------------------------------------------------------------------------------

struct AddonData {
  Napi::FunctionReference port_ctor;
  std::shared_ptr<Hub> hub;
};

struct NewPort {
  std::shared_ptr<Port> port;
  std::uint64_t id;
};

}  // namespace

Napi::Value cpspec::addon::StartJob(Napi::Env env, std::unique_ptr<Job> job) {
  AddonData* data = env.GetInstanceData<AddonData>();
  napi_value promise = nullptr;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) Throw(env, "internal", "cannot create a promise");
  job->hub = data->hub;
  Hub& hub = *data->hub;
  if (hub.pending++ == 0) napi_ref_threadsafe_function(env, hub.tsfn);
  napi_deferred deferred = job->deferred;
  if (!Pool::Get().Submit(job)) {
    if (--hub.pending == 0) napi_unref_threadsafe_function(env, hub.tsfn);
    Napi::Error err = Napi::Error::New(env, "cannot start a thread for this call");
    err.Value().Set("code", Napi::String::New(env, "internal"));
    napi_reject_deferred(env, deferred, err.Value());
  }
  return Napi::Value(env, promise);
}

namespace {

using addon::StartJob;


class PortWrap : public Napi::ObjectWrap<PortWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Port",
                       {
                           InstanceAccessor<&PortWrap::Id>("id"),
                           InstanceMethod<&PortWrap::Post>("post"),
                           InstanceMethod<&PortWrap::PostMany>("postMany"),
                           InstanceMethod<&PortWrap::Dequeue>("dequeue"),
                           InstanceMethod<&PortWrap::DequeueSync>("dequeueSync"),
                           InstanceMethod<&PortWrap::DequeueMany>("dequeueMany"),
                           InstanceMethod<&PortWrap::DequeueManySync>("dequeueManySync"),
                           InstanceMethod<&PortWrap::Close>("close"),
                           InstanceMethod<&PortWrap::EnterBlocking>("enterBlocking"),
                           InstanceMethod<&PortWrap::LeaveBlocking>("leaveBlocking"),
                           InstanceMethod<&PortWrap::Stats>("stats"),
                       });
  }

  explicit PortWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PortWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Throw(info.Env(), "invalid", "Port cannot be constructed directly: use createPort(concurrency) or openPort(id)", true);
    }
    NewPort* np = info[0].As<Napi::External<NewPort>>().Data();
    port_ = np->port;
    id_ = np->id;
  }

  static Napi::Object Make(Napi::Env env, std::shared_ptr<Port> port, std::uint64_t id) {
    NewPort np{std::move(port), id};
    AddonData* data = env.GetInstanceData<AddonData>();
    return data->port_ctor.New({Napi::External<NewPort>::New(env, &np)});
  }

  // Unwraps a Port argument.
  static std::shared_ptr<Port> From(Napi::Env env, const Napi::Value& v, const std::string& what) {
    AddonData* data = env.GetInstanceData<AddonData>();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->port_ctor.Value())) {
      Throw(env, "invalid", what + " must be a Port (from createPort or openPort), got " + Describe(v), true);
    }
    return Unwrap(v.As<Napi::Object>())->port_;
  }

 private:
  Napi::Value Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(id_)); }

  // post(key, bytes?, token?, status?, nativeError?)
  Napi::Value Post(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Packet p = PacketArgs(env, info[0], info[1], info[2], info[3], info[4], "");
    if (!port_->post(p)) Throw(env, "closed", "post: the port is closed");
    return env.Undefined();
  }

  // postMany([{key, bytes?, token?, status?, nativeError?}, ...]) -> number posted (all or none)
  Napi::Value PostMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = AsArray(env, info[0], "packets");
    const std::uint32_t n = a.Length();
    if (n > 1'000'000) Throw(env, "invalid", "postMany: at most 1000000 packets per call, got " + std::to_string(n));
    std::vector<Packet> ps;
    ps.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::string at = "packets[" + std::to_string(i) + "]";
      Napi::Object o = AsObject(env, a.Get(i), at);
      ps.push_back(PacketArgs(env, o.Get("key"), o.Get("bytes"), o.Get("token"), o.Get("status"), o.Get("nativeError"), at + "."));
    }
    if (!port_->post_many(ps.data(), ps.size())) Throw(env, "closed", "postMany: the port is closed");
    return Napi::Number::New(env, n);
  }

  Napi::Value Dequeue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto job = std::make_unique<DequeueJob>();
    job->timeout = Timeout(env, info[0]);
    job->port = port_;
    return StartJob(env, std::move(job));
  }

  Napi::Value DequeueMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto job = std::make_unique<DequeueJob>();
    job->max = static_cast<std::size_t>(Integer(env, info[0], "max", 1, 4096));
    job->timeout = Timeout(env, info[1]);
    job->many = true;
    job->port = port_;
    return StartJob(env, std::move(job));
  }

  // Blocks the calling thread (meant for worker_threads, which then count as port threads).
  Napi::Value DequeueSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::int64_t timeout = Timeout(env, info[0]);
    Packet p;
    DequeueKind k = port_->dequeue(p, timeout);
    return DequeueValue(env, k, &p, k == DequeueKind::packet ? 1 : 0, false);
  }

  Napi::Value DequeueManySync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto max = static_cast<std::size_t>(Integer(env, info[0], "max", 1, 4096));
    const std::int64_t timeout = Timeout(env, info[1]);
    std::vector<Packet> out(max);
    std::size_t n = 0;
    DequeueKind k = port_->dequeue_many(out.data(), max, n, timeout);
    return DequeueValue(env, k, out.data(), n, true);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    std::vector<Packet> left = port_->close();
    return PacketArray(info.Env(), left.data(), left.size());
  }

  Napi::Value EnterBlocking(const Napi::CallbackInfo& info) {
    port_->enter_blocking();
    return info.Env().Undefined();
  }

  Napi::Value LeaveBlocking(const Napi::CallbackInfo& info) {
    port_->leave_blocking();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("running", Napi::Number::New(env, static_cast<double>(port_->running())));
    o.Set("queued", Napi::Number::New(env, static_cast<double>(port_->queued())));
    o.Set("waiters", Napi::Number::New(env, static_cast<double>(port_->waiters())));
    o.Set("concurrency", Napi::Number::New(env, port_->concurrency()));
    o.Set("closed", Napi::Boolean::New(env, port_->is_closed()));
    return o;
  }

  std::shared_ptr<Port> port_;
  std::uint64_t id_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Module functions
// ---------------------------------------------------------------------------------------------------------

// createPort(concurrency) -> Port
Napi::Value CreatePort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto c = static_cast<unsigned>(Integer(env, info[0], "concurrency", 0, kMaxConcurrency));
  std::shared_ptr<Port> port = Port::create(c);
  const std::uint64_t id = Registry::Get().Add(port);
  env.GetInstanceData<AddonData>()->hub->Own(port);
  return PortWrap::Make(env, port, id);
}

// openPort(id) -> Port: the same port in another environment (a worker_thread).
Napi::Value OpenPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto id = static_cast<std::uint64_t>(Integer(env, info[0], "id", 1, kMaxSafe));
  std::shared_ptr<Port> port = Registry::Get().Find(id);
  if (!port) Throw(env, "invalid", "openPort: no live port with id " + std::to_string(id));
  return PortWrap::Make(env, port, id);
}

Step ParseStep(Napi::Env env, const Napi::Value& v, const std::string& at) {
  Napi::Object o = AsObject(env, v, at);
  Napi::Value opv = o.Get("op");
  const std::string op = opv.IsString() ? opv.As<Napi::String>().Utf8Value() : std::string();
  Step s;
  if (op == "dequeue") {
    s.op = Step::Op::dequeue;
    s.timeout_ms = Timeout(env, o.Get("timeoutMs"), at + ".timeoutMs");
    s.max = static_cast<std::uint32_t>(OptionalInteger(env, o.Get("max"), at + ".max", 1, 4096, 1));
  } else if (op == "spin" || op == "sleep" || op == "block") {
    s.op = op == "spin" ? Step::Op::spin : op == "sleep" ? Step::Op::sleep : Step::Op::block;
    s.us = static_cast<std::uint64_t>(Integer(env, o.Get("us"), at + ".us", 0, 10'000'000));
  } else if (op == "post") {
    s.op = Step::Op::post;
    s.key = static_cast<std::uint64_t>(Integer(env, o.Get("key"), at + ".key", 0, kMaxSafe));
    s.count = static_cast<std::uint32_t>(OptionalInteger(env, o.Get("count"), at + ".count", 1, 1'000'000, 1));
    s.bytes = static_cast<std::uint32_t>(OptionalInteger(env, o.Get("bytes"), at + ".bytes", 0, 4294967295.0, 0));
  } else {
    Throw(env, "invalid", at + ".op must be one of dequeue, spin, sleep, block, post; got " + Describe(opv));
  }
  return s;
}

// runWorkers(port, programs, options?) -> Promise<trace>
Napi::Value RunWorkers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto job = std::make_unique<RunJob>();
  job->port = PortWrap::From(env, info[0], "port");
  Napi::Array progs = AsArray(env, info[1], "programs");
  const std::uint32_t n = progs.Length();
  if (n < 1 || n > 256) Throw(env, "invalid", "programs: need 1..256 worker programs, got " + std::to_string(n));
  job->programs.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string at = "programs[" + std::to_string(i) + "]";
    Napi::Object p = AsObject(env, progs.Get(i), at);
    Napi::Array steps = AsArray(env, p.Get("steps"), at + ".steps");
    const std::uint32_t ns = steps.Length();
    if (ns < 1 || ns > 64) Throw(env, "invalid", at + ".steps: need 1..64 steps, got " + std::to_string(ns));
    Program& prog = job->programs[i];
    prog.repeat = static_cast<std::int64_t>(OptionalInteger(env, p.Get("repeat"), at + ".repeat", -1, 100'000'000, 1));
    prog.steps.reserve(ns);
    for (std::uint32_t j = 0; j < ns; ++j) prog.steps.push_back(ParseStep(env, steps.Get(j), at + ".steps[" + std::to_string(j) + "]"));
  }
  std::string bad = validate(job->programs);
  if (!bad.empty()) Throw(env, "invalid", bad);
  if (!info[2].IsUndefined() && !info[2].IsNull()) {
    Napi::Object o = AsObject(env, info[2], "options");
    job->options.close_after_ms = static_cast<std::int64_t>(OptionalInteger(env, o.Get("closeAfterMs"), "options.closeAfterMs", -1, kMaxTimeout, -1));
    job->options.deadline_ms = static_cast<std::int64_t>(OptionalInteger(env, o.Get("deadlineMs"), "options.deadlineMs", 1, kMaxTimeout, 30000));
  }
  return StartJob(env, std::move(job));
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("hardwareThreads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
  o.Set("version", Napi::String::New(env, kVersion));
  Napi::Array backends = Napi::Array::New(env, 1);
  backends.Set(0u, Napi::String::New(env, "epoll"));
  o.Set("backends", backends);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Environment setup and teardown
// ---------------------------------------------------------------------------------------------------------

// The thread-safe function is gone: nobody may call it any more.
void TsfnFinalize(napi_env /*env*/, void* data, void* /*hint*/) {
  auto* hub = static_cast<std::shared_ptr<Hub>*>(data);
  {
    std::lock_guard<std::mutex> g((*hub)->mu);
    (*hub)->alive = false;
  }
  delete hub;
}

// Environment teardown (process exit, worker_thread exit): stop delivering, close our ports so every
// pending wait ends; late results are dropped by Hub::Deliver.
void EnvCleanup(void* arg) {
  auto* hub = static_cast<std::shared_ptr<Hub>*>(arg);
  {
    std::lock_guard<std::mutex> g((*hub)->mu);
    (*hub)->alive = false;
  }
  for (const std::weak_ptr<Port>& w : (*hub)->owned) {
    if (std::shared_ptr<Port> p = w.lock()) p->close();
  }
  (*hub)->owned.clear();
  delete hub;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->hub = std::make_shared<Hub>();
  env.SetInstanceData<AddonData>(data);  // deleted by the default finalizer at teardown
  data->port_ctor = Napi::Persistent(PortWrap::Define(env));

  napi_value name = Napi::String::New(env, "cpspec-native");
  auto* fin = new std::shared_ptr<Hub>(data->hub);
  napi_status st = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, fin, TsfnFinalize, nullptr, CallJs,
                                                   &data->hub->tsfn);
  if (st != napi_ok) {
    delete fin;
    Throw(env, "internal", "cannot create the thread-safe function");
  }
  napi_unref_threadsafe_function(env, data->hub->tsfn);
  // Registered after the thread-safe function, so it runs before the function's own cleanup (hooks run
  // in reverse order).
  napi_add_env_cleanup_hook(env, EnvCleanup, new std::shared_ptr<Hub>(data->hub));

  exports.Set("Port", data->port_ctor.Value());
  exports.Set("createPort", Napi::Function::New<CreatePort>(env, "createPort"));
  exports.Set("openPort", Napi::Function::New<OpenPort>(env, "openPort"));
  exports.Set("runWorkers", Napi::Function::New<RunWorkers>(env, "runWorkers"));
  exports.Set("info", Napi::Function::New<Info>(env, "info"));
  exports.Set("version", Napi::String::New(env, kVersion));
  InitFraming(env, exports);
  cpspec::pool::InitPool(env, exports);
  InitSockets(env, exports);
  return exports;
}

}  // namespace

// Declared in sockets.h: lets the socket bindings take a Port object or a port id.
std::shared_ptr<cpspec::Port> PortFromValue(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsNumber()) {
    const auto id = static_cast<std::uint64_t>(Integer(env, v, what, 1, kMaxSafe));
    std::shared_ptr<Port> port = Registry::Get().Find(id);
    if (!port) Throw(env, "invalid", what + ": no live port with id " + std::to_string(id));
    return port;
  }
  return PortWrap::From(env, v, what);
}

NODE_API_MODULE(cpspec_native, Init)
