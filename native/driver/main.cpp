// cpspec-driver: the standalone native driver. Speaks conformance/PROTOCOL.md (JSON-RPC 2.0, one object per
// line) on stdin/stdout over the portable port core (native/core), and logs to stderr only.
//
// Concurrency: the main thread reads requests and serves the quick methods inline; methods that can block
// (port.dequeue with a non-zero timeout, port.dequeueMany with a non-zero timeout, workers.run) each run on
// a thread of their own, so an infinite dequeue never holds up a later post or close. Responses are written
// whole, one line each, under a mutex, and flushed.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#if __has_include("buffer_pool.h")
// The buffer pools (native/pool), where the build has them (the Windows-only build does not yet).
#define CPSPEC_DRIVER_POOL 1
#include "buffer_pool.h"
#include "recv_pool.h"
#endif
#include "json.h"
#include "port.h"
#include "workers.h"

#if __has_include("framing.h")
// The framing codec (native/framing), where the build has it on its include path (every build here does,
// the Windows one included): framing.* methods (framing_rpc.cpp).
#define CPSPEC_DRIVER_FRAMING 1
#include "framing_rpc.h"
#endif

#if defined(__linux__) || defined(_WIN32)
// The socket back-ends: native/epoll and native/uring on Linux, native/iocp on Windows; elsewhere the
// driver declares no sockets.
#define CPSPEC_DRIVER_SOCKETS 1
#include "backend.h"
#include "sockets_common.h"
#endif
#if defined(_WIN32)
#include "iocp_backend.h"  // make_iocp_backend, iocp_backend_note (native/iocp)
#endif

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#endif

namespace {

using cpspec::json::Type;
using cpspec::json::Value;

constexpr const char* kName = "cpspec-native-driver";
constexpr const char* kVersion = "0.1.0";
constexpr std::int64_t kProtocol = 1;
constexpr std::int64_t kMaxTimeoutMs = 2147483647;  // 2^31 - 1
constexpr std::int64_t kTwo53 = std::int64_t{1} << 53;
constexpr auto kExitGrace = std::chrono::seconds(2);

#if defined(_WIN32)
constexpr const char* kBackend = "iocp";  // native/iocp/port_iocp.cpp: the kernel's completion port
#else
constexpr const char* kBackend = "portable";
#endif

const char* const kHelp =
    R"(usage: cpspec-driver [options]

The cpspec standalone native driver. Speaks the cpspec driver protocol version 1 (conformance/PROTOCOL.md):
JSON-RPC 2.0 requests on stdin, one per line; responses on stdout, one per line; logs on stderr. Requests
are served concurrently (a blocking dequeue never holds up a later request). On stdin EOF (or after the
`shutdown` method) every port is closed, in-flight requests get up to 2 s to finish, and the driver exits 0.

Options:
  --help                       print this help and exit
  --version                    print the driver and protocol version and exit
  --backend epoll|uring        (Linux) the socket back-end; default: uring when io_uring can run here,
                               else epoll (info() says which and why)
  --backend iocp               (Windows) the socket back-end, the only one there (the default)

Fault injection (to test a runner against a broken driver; may be repeated to combine faults):
  --fault=drop-every:N         port.post silently drops every Nth posted packet (answers {} but queues
                               nothing); N counts port.post requests on all ports, from 1
  --fault=duplicate-every:N    port.post queues every Nth posted packet twice
  --fault=no-concurrency-cap   port.create makes every port with concurrency 1024, whatever was asked
                               (the answer looks normal)
  --fault=hang-after:N         answer the first N requests normally; from request N+1 on, read and
                               discard input and write nothing more (responses still pending are dropped
                               too); stdin EOF is then ignored: the driver stays alive until killed (it
                               exits by itself after 10 minutes as a safety net)
  --fault=crash-after:N        answer the first N requests normally; when request N+1 arrives, abort()
                               (SIGABRT) before answering it
  --fault=garbage-after:N      write the first N responses normally; write a line that is not JSON in
                               place of response N+1; later responses are normal again
A "request" is any non-blank input line (malformed lines included). N is an integer >= 1 (>= 0 for
hang-after, crash-after and garbage-after).
)";

// ---------------------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------------------

struct Faults {
  std::uint64_t drop_every = 0;
  std::uint64_t duplicate_every = 0;
  bool no_concurrency_cap = false;
  std::int64_t hang_after = -1;
  std::int64_t crash_after = -1;
  std::int64_t garbage_after = -1;
};

Faults g_faults;

#ifdef CPSPEC_DRIVER_FRAMING
cpspec::driver::FramingRpc g_framing;  // served inline on the reader thread only
#endif

#ifdef CPSPEC_DRIVER_SOCKETS
std::string g_backend_name;              // "epoll" or "uring": chosen in main()
std::string g_backend_note;              // why (info().notes)
std::unique_ptr<cpspec::Backend> g_first_backend;  // the one made while choosing (used first)
#endif

bool parse_count(std::string_view s, std::int64_t min, std::int64_t& out) {
  if (s.empty() || s.size() > 15) return false;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < min) return false;
  out = v;
  return true;
}

bool parse_fault(std::string_view spec, Faults& f) {
  const auto colon = spec.find(':');
  const std::string_view name = spec.substr(0, colon);
  const std::string_view arg = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
  std::int64_t n = 0;
  if (name == "no-concurrency-cap" && colon == std::string_view::npos) {
    f.no_concurrency_cap = true;
    return true;
  }
  if (colon == std::string_view::npos) return false;
  if (name == "drop-every" && parse_count(arg, 1, n)) {
    f.drop_every = static_cast<std::uint64_t>(n);
  } else if (name == "duplicate-every" && parse_count(arg, 1, n)) {
    f.duplicate_every = static_cast<std::uint64_t>(n);
  } else if (name == "hang-after" && parse_count(arg, 0, n)) {
    f.hang_after = n;
  } else if (name == "crash-after" && parse_count(arg, 0, n)) {
    f.crash_after = n;
  } else if (name == "garbage-after" && parse_count(arg, 0, n)) {
    f.garbage_after = n;
  } else {
    return false;
  }
  return true;
}

void log(const std::string& msg) {
  std::string line = "cpspec-driver: " + msg + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

// ---------------------------------------------------------------------------------------------------------
// Output: one response per line, whole lines under a mutex, flushed.
// ---------------------------------------------------------------------------------------------------------

class Output {
 public:
  void send(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    if (hung_) return;
    ++responses_;
    if (g_faults.garbage_after >= 0 && responses_ == static_cast<std::uint64_t>(g_faults.garbage_after) + 1) {
      log("fault garbage-after:" + std::to_string(g_faults.garbage_after) + ": writing a non-JSON line");
      static const char kGarbage[] = "<<cpspec-driver fault injection: this line is not JSON>>\n";
      std::fwrite(kGarbage, 1, sizeof kGarbage - 1, stdout);
      std::fflush(stdout);
      return;
    }
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  void hang() {
    std::lock_guard<std::mutex> lock(mu_);
    hung_ = true;
  }

 private:
  std::mutex mu_;
  std::uint64_t responses_ = 0;
  bool hung_ = false;
};

// ---------------------------------------------------------------------------------------------------------
// Errors and parameter checking
// ---------------------------------------------------------------------------------------------------------

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kTargetError = -32000;

struct RpcError {
  int code;
  std::string message;
  const char* target_code = nullptr;  // for kTargetError: "invalid", "closed", ...
  int native_error = 0;
};

RpcError invalid_params(const std::string& msg) { return RpcError{kInvalidParams, "invalid params: " + msg}; }
RpcError target_error(const char* code, const std::string& msg) { return RpcError{kTargetError, msg, code, 0}; }
RpcError invalid_value(const std::string& msg) { return target_error("invalid", msg); }

std::string describe(const Value& v) {
  std::string s = cpspec::json::stringify(v);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// A member that must be present with the given JSON type (else -32602).
const Value& require(const Value& obj, const char* what, const char* name, Type type) {
  const Value* v = obj.find(name);
  if (!v) throw invalid_params(std::string(what) + ": missing '" + name + "'");
  if (v->type() != type) {
    throw invalid_params(std::string(what) + ": '" + name + "' must be a " + cpspec::json::type_name(type) +
                         ", got " + cpspec::json::type_name(v->type()));
  }
  return *v;
}

// An optional member: nullptr when absent; a present member of the wrong type is -32602.
const Value* optional(const Value& obj, const char* what, const char* name, Type type) {
  const Value* v = obj.find(name);
  if (!v) return nullptr;
  if (v->type() != type) {
    throw invalid_params(std::string(what) + ": '" + name + "' must be a " + cpspec::json::type_name(type) +
                         ", got " + cpspec::json::type_name(v->type()));
  }
  return v;
}

// A number that must be an integer in [lo, hi]; anything else is a bad value (-32000 invalid).
std::int64_t integer_in(const Value& v, const char* what, const char* name, std::int64_t lo, std::int64_t hi) {
  std::int64_t out = 0;
  if (!v.get_integer(out) || out < lo || out > hi) {
    throw invalid_value(std::string(what) + ": '" + name + "' must be an integer in " + std::to_string(lo) +
                        ".." + std::to_string(hi) + ", got " + describe(v));
  }
  return out;
}

std::int64_t int_param(const Value& obj, const char* what, const char* name, std::int64_t lo, std::int64_t hi) {
  return integer_in(require(obj, what, name, Type::number), what, name, lo, hi);
}

std::int64_t int_param_or(const Value& obj, const char* what, const char* name, std::int64_t lo, std::int64_t hi,
                          std::int64_t dflt) {
  const Value* v = optional(obj, what, name, Type::number);
  return v ? integer_in(*v, what, name, lo, hi) : dflt;
}

std::int64_t timeout_param(const Value& obj, const char* what, const char* name) {
  const Value& v = require(obj, what, name, Type::number);
  std::int64_t out = 0;
  if (!v.get_integer(out) || out < -1 || out > kMaxTimeoutMs) {
    throw invalid_value(std::string(what) + ": '" + name + "' must be an integer in -1.." +
                        std::to_string(kMaxTimeoutMs) + " ms (-1 = infinite), got " + describe(v));
  }
  return out;
}

#ifdef CPSPEC_DRIVER_SOCKETS
// Socket data travels as base64 (PROTOCOL.md): cpspec::json::base64_encode / base64_decode.
using cpspec::json::base64_decode;
using cpspec::json::base64_encode;
#endif  // CPSPEC_DRIVER_SOCKETS

Value packet_to_json(const cpspec::Packet& p) {
  Value v = Value::object({{"key", p.key},
                           {"bytes", p.bytes},
                           {"token", p.token},
                           {"status", cpspec::status_name(p.status)},
                           {"nativeError", p.native_error}});
  if (p.op != 0) v.set("op", p.op);
  if (p.socket != 0) v.set("socket", p.socket);
  if (p.buffer != cpspec::kNoPoolBuffer) v.set("buffer", p.buffer);
#ifdef CPSPEC_DRIVER_SOCKETS
  // The data of a recv completion: kept by the back-end that owns the op until taken, once.
  std::vector<std::uint8_t> data;
  if (p.op != 0 && cpspec::sockets::take_op_data(p.op, data)) v.set("data", base64_encode(data.data(), data.size()));
#endif
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------------------

// What a handler returns: a result value, or (for big results) the result already serialized.
struct Result {
  Value value;
  std::string raw;
};

class Driver {
 public:
  explicit Driver(Output& out) : out_(out) {}

  // Handles one input line. Returns false when the driver should stop reading (shutdown).
  bool handle_line(std::string_view line);

  // Closes every port and waits (bounded) for in-flight requests. Returns true when all finished (and were
  // joined), false when some are still running at the deadline.
  bool finish();

 private:
  using Handler = Result (Driver::*)(const Value& params);

  void respond(const Value& id, const Result& r);
  void respond_error(const Value& id, const RpcError& e);
  void run_async(Value id, bool notify, std::function<Result()> fn);
  void reap_locked();

  std::shared_ptr<cpspec::Port> lookup(const Value& params, const char* what);
  void close_all();

  Result m_hello(const Value& params);
  Result m_info(const Value& params);
  Result m_reset(const Value& params);
  Result m_port_create(const Value& params);
  Result m_port_post(const Value& params);
  Result m_port_close(const Value& params);

#ifdef CPSPEC_DRIVER_POOL
  // Buffer pools (pool.*). pool.acquire with a wait runs on a thread of its own (see handle_line).
  std::shared_ptr<cpspec::RecvPool> pool_lookup(const Value& params, const char* what);
  Result m_pool_create(const Value& params);
  Result m_pool_release(const Value& params);
  Result m_pool_stats(const Value& params);
  Result m_pool_destroy(const Value& params);
  void destroy_pools();
#endif

#ifdef CPSPEC_DRIVER_SOCKETS
  // Sockets (socket.*): served inline, they only submit. The back-end is made on first use (and again
  // after a reset, which shuts the old one down).
  std::shared_ptr<cpspec::Backend> sockets();
  void shutdown_sockets();
  Result m_socket_listen(const Value& params);
  Result m_socket_accept(const Value& params);
  Result m_socket_connect(const Value& params);
  Result m_socket_recv(const Value& params);
  Result m_socket_send(const Value& params);
  Result m_socket_shutdown(const Value& params);
  Result m_socket_close(const Value& params);
  Result m_socket_cancel(const Value& params);
  Result m_socket_set_buffers(const Value& params);
  Result m_socket_set_faults(const Value& params);
  Result m_socket_limit_sessions(const Value& params);
  Result m_socket_session_stats(const Value& params);

  std::mutex sockets_mu_;
  std::shared_ptr<cpspec::Backend> backend_;
#endif

  Output& out_;

#ifdef CPSPEC_DRIVER_POOL
  std::mutex pools_mu_;
  std::map<std::int64_t, std::shared_ptr<cpspec::RecvPool>> pools_;
  std::int64_t next_pool_ = 1;
#endif

  std::mutex ports_mu_;
  std::map<std::int64_t, std::shared_ptr<cpspec::Port>> ports_;
  std::int64_t next_port_ = 1;
  std::uint64_t posts_ = 0;  // port.post requests seen (fault injection), under ports_mu_

  struct Flight {
    std::thread thread;
    bool done = false;
  };
  std::mutex flights_mu_;
  std::condition_variable flights_cv_;
  std::list<Flight> flights_;
};

void Driver::respond(const Value& id, const Result& r) {
  std::string line = "{\"jsonrpc\":\"2.0\",\"id\":";
  cpspec::json::stringify_to(line, id);
  line += ",\"result\":";
  if (!r.raw.empty()) {
    line += r.raw;
  } else if (r.value.is_null()) {
    line += "{}";
  } else {
    cpspec::json::stringify_to(line, r.value);
  }
  line += '}';
  out_.send(line);
}

void Driver::respond_error(const Value& id, const RpcError& e) {
  Value err = Value::object({{"code", e.code}, {"message", e.message}});
  if (e.code == kTargetError) {
    err.set("data", Value::object({{"code", e.target_code ? e.target_code : "internal"},
                                   {"nativeError", e.native_error}}));
  }
  Value msg = Value::object({{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}});
  out_.send(cpspec::json::stringify(msg));
}

// Joins the threads that have finished. Called with flights_mu_ held.
void Driver::reap_locked() {
  for (auto it = flights_.begin(); it != flights_.end();) {
    if (it->done) {
      it->thread.join();  // the thread has only its exit left to do
      it = flights_.erase(it);
    } else {
      ++it;
    }
  }
}

void Driver::run_async(Value id, bool notify, std::function<Result()> fn) {
  std::lock_guard<std::mutex> lock(flights_mu_);
  reap_locked();
  flights_.emplace_back();
  Flight* flight = &flights_.back();
  try {
    flight->thread = std::thread([this, flight, id = std::move(id), notify, fn = std::move(fn)]() mutable {
      try {
        Result r = fn();
        // Leave the port before answering: once the client has the answer it may poll the port again,
        // and this thread must not still hold a concurrency slot then.
        cpspec::Port::detach_current_thread();
        if (notify) respond(id, r);
      } catch (const RpcError& e) {
        if (notify) respond_error(id, e);
      } catch (const std::exception& e) {
        if (notify) respond_error(id, target_error("internal", std::string("internal error: ") + e.what()));
      } catch (...) {
        if (notify) respond_error(id, target_error("internal", "internal error"));
      }
      fn = nullptr;  // release what the request held (ports) before leaving
      cpspec::Port::detach_current_thread();
      std::lock_guard<std::mutex> l(flights_mu_);
      flight->done = true;
      flights_cv_.notify_all();
    });
  } catch (const std::exception& e) {
    flights_.pop_back();
    throw target_error("internal", std::string("cannot start a thread: ") + e.what());
  }
}

bool Driver::finish() {
#ifdef CPSPEC_DRIVER_SOCKETS
  shutdown_sockets();
#endif
  close_all();
#ifdef CPSPEC_DRIVER_POOL
  destroy_pools();  // a pending bounded wait keeps its pool alive until it ends
#endif
  std::unique_lock<std::mutex> lock(flights_mu_);
  const auto deadline = std::chrono::steady_clock::now() + kExitGrace;
  for (;;) {
    reap_locked();
    if (flights_.empty()) return true;
    if (flights_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      reap_locked();
      if (!flights_.empty()) {
        log(std::to_string(flights_.size()) + " request(s) still running at exit");
        return false;
      }
      return true;
    }
  }
}

void Driver::close_all() {
  std::map<std::int64_t, std::shared_ptr<cpspec::Port>> ports;
  {
    std::lock_guard<std::mutex> lock(ports_mu_);
    ports.swap(ports_);
  }
  for (auto& [id, port] : ports) port->close();
}

std::shared_ptr<cpspec::Port> Driver::lookup(const Value& params, const char* what) {
  const Value& v = require(params, what, "port", Type::number);
  std::int64_t id = 0;
  if (!v.get_integer(id)) throw invalid_value(std::string(what) + ": 'port' must be an integer, got " + describe(v));
  std::lock_guard<std::mutex> lock(ports_mu_);
  auto it = ports_.find(id);
  if (it == ports_.end()) throw invalid_value(std::string(what) + ": unknown port " + std::to_string(id));
  return it->second;
}

Result Driver::m_hello(const Value& params) {
  const Value& pv = require(params, "cpspec.hello", "protocol", Type::number);
  optional(params, "cpspec.hello", "client", Type::string);
  std::int64_t protocol = 0;
  if (!pv.get_integer(protocol) || protocol != kProtocol) {
    throw target_error("unsupported", "protocol " + describe(pv) + " is not supported (this driver speaks " +
                                          std::to_string(kProtocol) + ")");
  }
  return {Value::object({{"protocol", kProtocol}, {"name", kName}, {"version", kVersion}}), {}};
}

Result Driver::m_info(const Value&) {
  unsigned hw = std::thread::hardware_concurrency();
  if (hw == 0) hw = 1;
  Value caps = Value::array();
  for (const char* c : {"port", "port.batch", "workers", "workers.blocking-region", "workers.real-threads"}) {
    caps.push_back(c);
  }
#ifdef CPSPEC_DRIVER_POOL
  caps.push_back("pool");
#endif
#ifdef CPSPEC_DRIVER_FRAMING
  caps.push_back("framing");
#endif
  Value notes = Value::array();
#ifdef _WIN32
  notes.push_back("kernel completion port");
#endif
#ifdef CPSPEC_DRIVER_SOCKETS
  for (const char* c : {"sockets", "sockets.zero-length-probe", "sockets.partial-send-mode", "fault-injection", "pool.sessions"}) {
    caps.push_back(c);
  }
  if (!g_backend_note.empty()) notes.push_back(g_backend_note);
  const std::string backend = g_backend_name;
#else
  const std::string backend = kBackend;
#endif
  return {Value::object({{"name", kName},
                         {"version", kVersion},
                         {"backend", backend},
                         {"capabilities", std::move(caps)},
                         {"notes", std::move(notes)},
                         {"hardwareThreads", hw}}),
          {}};
}

Result Driver::m_reset(const Value&) {
#ifdef CPSPEC_DRIVER_SOCKETS
  shutdown_sockets();  // pending socket operations complete with aborted (to the ports closed just below)
#endif
  close_all();
#ifdef CPSPEC_DRIVER_POOL
  destroy_pools();
#endif
#ifdef CPSPEC_DRIVER_FRAMING
  g_framing.reset();
#endif
  return {Value::object(), {}};
}

#ifdef CPSPEC_DRIVER_POOL

// ---------------------------------------------------------------------------------------------------------
// Buffer pools
// ---------------------------------------------------------------------------------------------------------

std::shared_ptr<cpspec::RecvPool> Driver::pool_lookup(const Value& params, const char* what) {
  const Value& v = require(params, what, "pool", Type::number);
  std::int64_t id = 0;
  const bool is_int = v.get_integer(id);
  std::lock_guard<std::mutex> lock(pools_mu_);
  auto it = is_int ? pools_.find(id) : pools_.end();
  if (it == pools_.end()) throw target_error("not-found", std::string(what) + ": unknown pool " + describe(v));
  return it->second;
}

Result Driver::m_pool_create(const Value& params) {
  const char* what = "pool.create";
  const auto size = int_param(params, what, "bufferSize", 1, std::int64_t{1} << 30);
  const auto count = int_param(params, what, "count", 1, std::int64_t{1} << 30);
  if (static_cast<std::uint64_t>(cpspec::pool::round_buffer_size(static_cast<std::size_t>(size))) *
          static_cast<std::uint64_t>(count) > cpspec::pool::kMaxSlabBytes) {
    throw invalid_value(std::string(what) + ": bufferSize x count exceeds 2^36 bytes");
  }
  std::shared_ptr<cpspec::RecvPool> pool;
  try {
    pool = std::make_shared<cpspec::RecvPool>(
        std::make_shared<cpspec::pool::BufferPool>(static_cast<std::size_t>(size), static_cast<std::uint32_t>(count)));
  } catch (const std::invalid_argument& e) {
    throw invalid_value(std::string(what) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    throw invalid_value(std::string(what) + ": cannot allocate " + std::to_string(size) + " x " + std::to_string(count) + " bytes");
  }
  std::lock_guard<std::mutex> lock(pools_mu_);
  const std::int64_t id = next_pool_++;
  pools_.emplace(id, std::move(pool));
  return {Value::object({{"pool", id}}), {}};
}

Result pool_acquire(const std::shared_ptr<cpspec::RecvPool>& pool, std::int64_t wait_ms) {
  cpspec::pool::BufferHandle h;
  const auto st = pool->buffers().acquire(h, static_cast<std::uint32_t>(wait_ms));
  if (st == cpspec::pool::AcquireStatus::ok) return {Value::object({{"kind", "buffer"}, {"id", h.index}}), {}};
  return {Value::object({{"kind", "exhausted"}}), {}};
}

Result Driver::m_pool_release(const Value& params) {
  const char* what = "pool.release";
  const Value& b = require(params, what, "buffer", Type::number);
  auto pool = pool_lookup(params, what);
  std::int64_t id = 0;
  cpspec::pool::ReleaseStatus st = cpspec::pool::ReleaseStatus::foreign;  // not an id of this pool at all
  if (b.get_integer(id) && id >= 0 && id < static_cast<std::int64_t>(cpspec::pool::kNoBuffer)) {
    st = pool->release(static_cast<std::uint32_t>(id));
  }
  return {Value::object({{"result", cpspec::pool::release_status_name(st)}}), {}};
}

Result Driver::m_pool_stats(const Value& params) {
  auto pool = pool_lookup(params, "pool.stats");
  const auto s = pool->stats();
  return {Value::object({{"total", s.total},
                         {"inUse", s.in_use},
                         {"available", s.available},
                         {"highWater", s.high_water},
                         {"failedAcquires", s.failed_acquires}}),
          {}};
}

void Driver::destroy_pools() {
  std::map<std::int64_t, std::shared_ptr<cpspec::RecvPool>> pools;
  std::lock_guard<std::mutex> lock(pools_mu_);
  pools.swap(pools_);
  next_pool_ = 1;
}

Result Driver::m_pool_destroy(const Value& params) {
  const char* what = "pool.destroy";
  auto pool = pool_lookup(params, what);
  std::lock_guard<std::mutex> lock(pools_mu_);
  for (auto it = pools_.begin(); it != pools_.end(); ++it) {
    if (it->second == pool) {
      pools_.erase(it);
      break;
    }
  }
  // The slab is freed with the last reference (a pending bounded wait keeps it until it ends).
  return {Value::object(), {}};
}

#endif  // CPSPEC_DRIVER_POOL

// ---------------------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------------------

#ifdef CPSPEC_DRIVER_SOCKETS

constexpr std::int64_t kMaxSafe = kTwo53 - 1;

std::unique_ptr<cpspec::Backend> make_backend(const std::string& name, std::string& why) {
#if defined(_WIN32)
  if (name == "iocp") return cpspec::make_iocp_backend(why);
#endif
  if (name == "uring") return cpspec::make_uring_backend(why);
  if (name == "epoll") return cpspec::make_epoll_backend(why);
  why = "unknown back-end '" + name + "'";
  return nullptr;
}

std::shared_ptr<cpspec::Backend> Driver::sockets() {
  std::lock_guard<std::mutex> lock(sockets_mu_);
  if (!backend_) {
    if (g_first_backend) {
      backend_ = std::move(g_first_backend);
    } else {
      std::string why;
      auto b = make_backend(g_backend_name, why);
      if (!b) throw target_error("unsupported", "cannot start the " + g_backend_name + " socket back-end: " + why);
      backend_ = std::move(b);
    }
  }
  return backend_;
}

void Driver::shutdown_sockets() {
  std::shared_ptr<cpspec::Backend> b;
  {
    std::lock_guard<std::mutex> lock(sockets_mu_);
    b.swap(backend_);
  }
  if (b) b->shutdown_all();
}

void check(const cpspec::Sync& r, const char* what) {
  if (!r.ok()) {
    RpcError e = target_error(cpspec::status_name(r.status), std::string(what) + ": " + r.message);
    e.native_error = r.native_error;
    throw e;
  }
}

cpspec::SocketId socket_param(const Value& params, const char* what) {
  return static_cast<cpspec::SocketId>(int_param(params, what, "socket", 1, kMaxSafe));
}

std::uint64_t u53_param(const Value& params, const char* what, const char* name) {
  return static_cast<std::uint64_t>(int_param(params, what, name, 0, kMaxSafe));
}

std::string string_param_or(const Value& params, const char* what, const char* name, const char* dflt) {
  const Value* v = optional(params, what, name, Type::string);
  return v ? v->as_string() : std::string(dflt);
}

bool bool_param_or(const Value& params, const char* what, const char* name, bool dflt) {
  const Value* v = optional(params, what, name, Type::boolean);
  return v ? v->as_bool() : dflt;
}

Result Driver::m_socket_listen(const Value& params) {
  const char* what = "socket.listen";
  auto port = lookup(params, what);
  const auto key = u53_param(params, what, "key");
  const std::string host = string_param_or(params, what, "host", "127.0.0.1");
  const auto bind_port = static_cast<std::uint16_t>(int_param_or(params, what, "bindPort", 0, 65535, 0));
  const int backlog = static_cast<int>(int_param_or(params, what, "backlog", 1, 65535, 128));
  cpspec::SocketId s = 0;
  std::uint16_t bound = 0;
  check(sockets()->listen(port, key, host, bind_port, backlog, s, bound), what);
  return {Value::object({{"socket", s},
                         {"address", Value::object({{"host", host == "localhost" ? std::string("127.0.0.1") : host},
                                                    {"port", static_cast<unsigned>(bound)}})}}),
          {}};
}

Result Driver::m_socket_accept(const Value& params) {
  const char* what = "socket.accept";
  const auto l = socket_param(params, what);
  const auto token = u53_param(params, what, "token");
  const auto new_key = u53_param(params, what, "newKey");
  cpspec::OpId op = 0;
  check(sockets()->accept(l, token, new_key, op), what);
  return {Value::object({{"op", op}}), {}};
}

Result Driver::m_socket_connect(const Value& params) {
  const char* what = "socket.connect";
  auto port = lookup(params, what);
  const auto key = u53_param(params, what, "key");
  const auto token = u53_param(params, what, "token");
  const std::string host = string_param_or(params, what, "host", "127.0.0.1");
  const auto remote = static_cast<std::uint16_t>(int_param(params, what, "remotePort", 1, 65535));
  cpspec::SocketId s = 0;
  cpspec::OpId op = 0;
  check(sockets()->connect(port, key, token, host, remote, s, op), what);
  return {Value::object({{"socket", s}, {"op", op}}), {}};
}

Result Driver::m_socket_recv(const Value& params) {
  const char* what = "socket.recv";
  const auto s = socket_param(params, what);
  const auto length = static_cast<std::uint32_t>(int_param(params, what, "length", 0, 2147483647));
  const auto token = u53_param(params, what, "token");
  cpspec::OpId op = 0;
  if (optional(params, what, "pool", Type::number) != nullptr) {
#ifdef CPSPEC_DRIVER_POOL
    check(sockets()->recv_pooled(s, length, pool_lookup(params, what), token, op), what);
    return {Value::object({{"op", op}}), {}};
#else
    throw target_error("unsupported", std::string(what) + ": this driver has no buffer pools");
#endif
  }
  check(sockets()->recv(s, length, token, op), what);
  return {Value::object({{"op", op}}), {}};
}

Result Driver::m_socket_send(const Value& params) {
  const char* what = "socket.send";
  const auto s = socket_param(params, what);
  const Value& dv = require(params, what, "data", Type::string);
  std::vector<std::uint8_t> data;
  if (!base64_decode(dv.as_string(), data)) throw invalid_params(std::string(what) + ": 'data' is not base64");
  const auto token = u53_param(params, what, "token");
  const bool partial = bool_param_or(params, what, "partial", false);
  cpspec::OpId op = 0;
  check(sockets()->send(s, data.data(), data.size(), token, partial, op), what);  // the back-end copies the bytes
  return {Value::object({{"op", op}}), {}};
}

Result Driver::m_socket_shutdown(const Value& params) {
  const char* what = "socket.shutdown";
  const auto s = socket_param(params, what);
  const std::string& how = require(params, what, "how", Type::string).as_string();
  if (how != "send" && how != "recv" && how != "both") {
    throw invalid_params(std::string(what) + ": 'how' must be \"send\", \"recv\" or \"both\", got " + describe(Value(how)));
  }
  check(sockets()->shutdown(s, how != "recv", how != "send"), what);
  return {Value::object(), {}};
}

Result Driver::m_socket_close(const Value& params) {
  const char* what = "socket.close";
  const auto s = socket_param(params, what);
  const bool abortive = bool_param_or(params, what, "abortive", false);
  check(sockets()->close(s, abortive), what);
  return {Value::object(), {}};
}

Result Driver::m_socket_cancel(const Value& params) {
  const char* what = "socket.cancel";
  const auto s = socket_param(params, what);
  const auto op = static_cast<cpspec::OpId>(int_param_or(params, what, "op", 1, kMaxSafe, 0));
  bool found = false;
  check(sockets()->cancel(s, op, found), what);
  return {Value::object({{"result", found ? "ok" : "not-found"}}), {}};
}

Result Driver::m_socket_set_buffers(const Value& params) {
  const char* what = "socket.setBuffers";
  const auto s = socket_param(params, what);
  const int snd = static_cast<int>(int_param_or(params, what, "send", 0, 1 << 30, 0));
  const int rcv = static_cast<int>(int_param_or(params, what, "recv", 0, 1 << 30, 0));
  check(sockets()->set_buffers(s, snd, rcv), what);
  return {Value::object(), {}};
}

Result Driver::m_socket_set_faults(const Value& params) {
  const char* what = "socket.setFaults";
  const auto s = socket_param(params, what);
  cpspec::SocketFaults f;
  f.max_bytes_per_call = static_cast<std::uint32_t>(int_param_or(params, what, "maxBytesPerCall", 0, 0xFFFFFFFF, 0));
  if (const Value* fn = optional(params, what, "failNth", Type::object)) {
    const char* fw = "socket.setFaults: failNth";
    const std::string& call = require(*fn, fw, "call", Type::string).as_string();
    if (call != "send" && call != "recv") {
      throw invalid_params(std::string(fw) + ": 'call' must be \"send\" or \"recv\", got " + describe(Value(call)));
    }
    f.fail_call = call == "send" ? cpspec::SocketFaults::Call::send : cpspec::SocketFaults::Call::recv;
    f.fail_nth = static_cast<std::uint32_t>(int_param(*fn, fw, "n", 1, 0xFFFFFFFF));
    f.fail_errno = static_cast<std::int32_t>(int_param(*fn, fw, "errno", 1, 4095));
  }
  check(sockets()->set_faults(s, f), what);
  return {Value::object(), {}};
}

Result Driver::m_socket_limit_sessions(const Value& params) {
  const char* what = "socket.limitSessions";
  const auto s = socket_param(params, what);
  const auto max = static_cast<std::uint32_t>(int_param(params, what, "max", 0, 0xFFFFFFFF));
  std::vector<std::uint8_t> message;
  if (const Value* mv = optional(params, what, "fullMessage", Type::string)) {
    if (!base64_decode(mv->as_string(), message)) throw invalid_params(std::string(what) + ": 'fullMessage' is not base64");
  }
  check(sockets()->set_session_limit(s, max, message), what);
  return {Value::object(), {}};
}

Result Driver::m_socket_session_stats(const Value& params) {
  const char* what = "socket.sessionStats";
  const auto s = socket_param(params, what);
  cpspec::SessionStats st;
  check(sockets()->session_stats(s, st), what);
  return {Value::object({{"max", st.max}, {"active", st.active}, {"refused", st.refused}}), {}};
}

#endif  // CPSPEC_DRIVER_SOCKETS

Result Driver::m_port_create(const Value& params) {
  const auto c = int_param(params, "port.create", "concurrency", 0, cpspec::kMaxConcurrency);
  const unsigned actual = g_faults.no_concurrency_cap ? cpspec::kMaxConcurrency : static_cast<unsigned>(c);
  auto port = cpspec::Port::create(actual);
  std::lock_guard<std::mutex> lock(ports_mu_);
  const std::int64_t id = next_port_++;
  ports_.emplace(id, std::move(port));
  return {Value::object({{"port", id}}), {}};
}

Result Driver::m_port_post(const Value& params) {
  const char* what = "port.post";
  auto port = lookup(params, what);
  cpspec::Packet p;
  p.key = static_cast<std::uint64_t>(int_param(params, what, "key", 0, kTwo53));
  p.bytes = static_cast<std::uint32_t>(int_param_or(params, what, "bytes", 0, 0xFFFFFFFF, 0));
  p.token = static_cast<std::uint64_t>(int_param_or(params, what, "token", 0, kTwo53, 0));
  if (const Value* s = optional(params, what, "status", Type::string)) {
    if (!cpspec::status_from_name(s->as_string(), p.status)) {
      throw invalid_value(std::string(what) + ": unknown status " + describe(*s));
    }
  }
  p.native_error = static_cast<std::int32_t>(
      int_param_or(params, what, "nativeError", INT32_MIN, INT32_MAX, 0));

  std::uint64_t n;
  {
    std::lock_guard<std::mutex> lock(ports_mu_);
    n = ++posts_;
  }
  bool ok;
  if (g_faults.drop_every != 0 && n % g_faults.drop_every == 0) {
    ok = !port->is_closed();  // dropped silently
  } else if (g_faults.duplicate_every != 0 && n % g_faults.duplicate_every == 0) {
    const cpspec::Packet two[2] = {p, p};
    ok = port->post_many(two, 2);
  } else {
    ok = port->post(p);
  }
  if (!ok) throw target_error("closed", std::string(what) + ": the port is closed");
  return {Value::object(), {}};
}

Result Driver::m_port_close(const Value& params) {
  auto port = lookup(params, "port.close");
  const auto packets = port->close();
  Value arr = Value::array();
  arr.items().reserve(packets.size());
  for (const auto& p : packets) arr.push_back(packet_to_json(p));
  return {Value::object({{"packets", std::move(arr)}}), {}};
}

Result dequeue_one(const std::shared_ptr<cpspec::Port>& port, std::int64_t timeout) {
  cpspec::Packet p;
  const auto kind = port->dequeue(p, timeout);
  switch (kind) {
    case cpspec::DequeueKind::packet:
      return {Value::object({{"kind", "packet"}, {"packet", packet_to_json(p)}}), {}};
    case cpspec::DequeueKind::timeout: return {Value::object({{"kind", "timeout"}}), {}};
    case cpspec::DequeueKind::closed: break;
  }
  return {Value::object({{"kind", "closed"}}), {}};
}

Result dequeue_many(const std::shared_ptr<cpspec::Port>& port, std::size_t max, std::int64_t timeout) {
  std::vector<cpspec::Packet> buf(max);
  std::size_t n = 0;
  const auto kind = port->dequeue_many(buf.data(), max, n, timeout);
  switch (kind) {
    case cpspec::DequeueKind::packet: {
      Value arr = Value::array();
      arr.items().reserve(n);
      for (std::size_t i = 0; i < n && i < max; ++i) arr.push_back(packet_to_json(buf[i]));
      return {Value::object({{"kind", "packets"}, {"packets", std::move(arr)}}), {}};
    }
    case cpspec::DequeueKind::timeout: return {Value::object({{"kind", "timeout"}}), {}};
    case cpspec::DequeueKind::closed: break;
  }
  return {Value::object({{"kind", "closed"}}), {}};
}

// workers.run: programs from JSON. Type errors are -32602; values that do not fit are -32000 invalid; the
// rest of the limits are checked by cpspec::validate.
std::vector<cpspec::Program> parse_programs(const Value& arr) {
  std::vector<cpspec::Program> programs;
  const auto& items = arr.items();
  if (items.size() > 100000) throw invalid_value("workers.run: too many programs");
  programs.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string what = "workers.run: programs[" + std::to_string(i) + "]";
    const Value& pv = items[i];
    if (!pv.is_object()) throw invalid_params(what + " must be an object");
    cpspec::Program prog;
    const Value& steps = require(pv, what.c_str(), "steps", Type::array);
    prog.repeat = int_param_or(pv, what.c_str(), "repeat", INT64_MIN / 2, INT64_MAX / 2, 1);
    if (steps.size() > 100000) throw invalid_value(what + ": too many steps");
    for (std::size_t k = 0; k < steps.size(); ++k) {
      const std::string swhat = what + ".steps[" + std::to_string(k) + "]";
      const char* sw = swhat.c_str();
      const Value& sv = steps.items()[k];
      if (!sv.is_object()) throw invalid_params(swhat + " must be an object");
      const std::string& op = require(sv, sw, "op", Type::string).as_string();
      cpspec::Step st;
      if (op == "dequeue") {
        st.op = cpspec::Step::Op::dequeue;
        st.timeout_ms = timeout_param(sv, sw, "timeoutMs");
        st.max = static_cast<std::uint32_t>(int_param_or(sv, sw, "max", 0, 0xFFFFFFFF, 1));
      } else if (op == "spin" || op == "sleep" || op == "block") {
        st.op = op == "spin" ? cpspec::Step::Op::spin
                : op == "sleep" ? cpspec::Step::Op::sleep
                                : cpspec::Step::Op::block;
        st.us = static_cast<std::uint64_t>(int_param(sv, sw, "us", 0, kTwo53));
      } else if (op == "post") {
        st.op = cpspec::Step::Op::post;
        st.key = static_cast<std::uint64_t>(int_param(sv, sw, "key", 0, kTwo53));
        st.count = static_cast<std::uint32_t>(int_param_or(sv, sw, "count", 0, 0xFFFFFFFF, 1));
        st.bytes = static_cast<std::uint32_t>(int_param_or(sv, sw, "bytes", 0, 0xFFFFFFFF, 0));
      } else {
        throw invalid_value(swhat + ": unknown op " + describe(Value(op)));
      }
      prog.steps.push_back(st);
    }
    programs.push_back(std::move(prog));
  }
  return programs;
}

// Serializes a trace directly (a trace can hold millions of events).
std::string trace_to_json(const cpspec::TraceResult& tr) {
  std::string s;
  s.reserve(64 + tr.events.size() * 24);
  s += "{\"threads\":";
  cpspec::json::write_number(s, tr.threads);
  auto column = [&](const char* name, auto get) {
    s += ",\"";
    s += name;
    s += "\":[";
    bool first = true;
    for (const auto& e : tr.events) {
      if (!first) s.push_back(',');
      first = false;
      cpspec::json::write_number(s, get(e));
    }
    s.push_back(']');
  };
  column("t", [](const cpspec::TraceEvent& e) { return static_cast<double>(e.t_ns); });
  column("thread", [](const cpspec::TraceEvent& e) {
    return e.thread == cpspec::kHarnessThread ? -1.0 : static_cast<double>(e.thread);
  });
  column("ev", [](const cpspec::TraceEvent& e) { return static_cast<double>(static_cast<unsigned>(e.ev)); });
  column("key", [](const cpspec::TraceEvent& e) { return static_cast<double>(e.key); });
  s += ",\"unfinished\":";
  cpspec::json::write_number(s, tr.unfinished);
  s += ",\"leftover\":";
  cpspec::json::write_number(s, static_cast<double>(tr.leftover));
  s.push_back('}');
  return s;
}

bool Driver::handle_line(std::string_view line) {
  cpspec::json::ParseError perr;
  auto parsed = cpspec::json::parse(line, &perr);
  if (!parsed) {
    respond_error(Value(), RpcError{kParseError, "parse error: " + perr.to_string()});
    return true;
  }
  const Value& req = *parsed;
  if (!req.is_object()) {
    respond_error(Value(), RpcError{kInvalidRequest, "invalid request: not an object"});
    return true;
  }
  const Value* idp = req.find("id");
  if (idp && !(idp->is_number() || idp->is_string() || idp->is_null())) {
    respond_error(Value(), RpcError{kInvalidRequest, "invalid request: 'id' must be a number or a string"});
    return true;
  }
  const Value id = idp ? *idp : Value();
  const bool notify = idp != nullptr;  // a request without an id is a notification: no response
  const Value* ver = req.find("jsonrpc");
  if (!ver || !ver->is_string() || ver->as_string() != "2.0") {
    if (notify) respond_error(id, RpcError{kInvalidRequest, "invalid request: 'jsonrpc' must be \"2.0\""});
    return true;
  }
  const Value* mp = req.find("method");
  if (!mp || !mp->is_string()) {
    if (notify) respond_error(id, RpcError{kInvalidRequest, "invalid request: 'method' must be a string"});
    return true;
  }
  const std::string& method = mp->as_string();
  static const Value kNoParams = Value::object();
  const Value* params = req.find("params");
  if (params && !params->is_object()) {
    if (notify) respond_error(id, invalid_params("'params' must be an object"));
    return true;
  }
  if (!params) params = &kNoParams;

  try {
    Handler h = nullptr;
    if (method == "cpspec.hello") {
      h = &Driver::m_hello;
    } else if (method == "info") {
      h = &Driver::m_info;
    } else if (method == "reset") {
      h = &Driver::m_reset;
    } else if (method == "port.create") {
      h = &Driver::m_port_create;
    } else if (method == "port.post") {
      h = &Driver::m_port_post;
    } else if (method == "port.close") {
      h = &Driver::m_port_close;
#ifdef CPSPEC_DRIVER_POOL
    } else if (method == "pool.create") {
      h = &Driver::m_pool_create;
    } else if (method == "pool.release") {
      h = &Driver::m_pool_release;
    } else if (method == "pool.stats") {
      h = &Driver::m_pool_stats;
    } else if (method == "pool.destroy") {
      h = &Driver::m_pool_destroy;
    } else if (method == "pool.acquire") {
      auto pool = pool_lookup(*params, "pool.acquire");
      if (pool->bound()) throw invalid_value("pool.acquire: the pool serves pool-backed receives: its buffers come only through them");
      const auto wait = int_param_or(*params, "pool.acquire", "waitMs", 0, kMaxTimeoutMs, 0);
      if (wait == 0) {
        Result r = pool_acquire(pool, 0);
        if (notify) respond(id, r);
      } else {
        run_async(id, notify, [pool, wait] { return pool_acquire(pool, wait); });
      }
      return true;
#endif
#ifdef CPSPEC_DRIVER_SOCKETS
    } else if (method == "socket.listen") {
      h = &Driver::m_socket_listen;
    } else if (method == "socket.accept") {
      h = &Driver::m_socket_accept;
    } else if (method == "socket.connect") {
      h = &Driver::m_socket_connect;
    } else if (method == "socket.recv") {
      h = &Driver::m_socket_recv;
    } else if (method == "socket.send") {
      h = &Driver::m_socket_send;
    } else if (method == "socket.shutdown") {
      h = &Driver::m_socket_shutdown;
    } else if (method == "socket.close") {
      h = &Driver::m_socket_close;
    } else if (method == "socket.cancel") {
      h = &Driver::m_socket_cancel;
    } else if (method == "socket.setBuffers") {
      h = &Driver::m_socket_set_buffers;
    } else if (method == "socket.setFaults") {
      h = &Driver::m_socket_set_faults;
    } else if (method == "socket.limitSessions") {
      h = &Driver::m_socket_limit_sessions;
    } else if (method == "socket.sessionStats") {
      h = &Driver::m_socket_session_stats;
#endif
#ifdef CPSPEC_DRIVER_FRAMING
    } else if (cpspec::driver::FramingRpc::is_method(method)) {
      Value v;
      try {
        v = g_framing.call(method, *params);
      } catch (const cpspec::driver::FramingRpcError& e) {
        throw e.params ? invalid_params(e.message) : invalid_value(e.message);
      }
      if (notify) respond(id, Result{std::move(v), {}});
      return true;
#endif
    } else if (method == "shutdown") {
      if (notify) respond(id, Result{Value::object(), {}});
      return false;
    } else if (method == "port.dequeue") {
      auto port = lookup(*params, "port.dequeue");
      const auto timeout = timeout_param(*params, "port.dequeue", "timeoutMs");
      if (timeout == 0) {
        // A poll cannot block: serve it inline, then drop the reader thread's association with the port
        // so it never holds a concurrency slot.
        Result r = dequeue_one(port, 0);
        cpspec::Port::detach_current_thread();
        if (notify) respond(id, r);
      } else {
        run_async(id, notify, [port, timeout] { return dequeue_one(port, timeout); });
      }
      return true;
    } else if (method == "port.dequeueMany") {
      auto port = lookup(*params, "port.dequeueMany");
      const auto max = static_cast<std::size_t>(int_param(*params, "port.dequeueMany", "max", 1, 4096));
      const auto timeout = timeout_param(*params, "port.dequeueMany", "timeoutMs");
      if (timeout == 0) {
        Result r = dequeue_many(port, max, 0);
        cpspec::Port::detach_current_thread();
        if (notify) respond(id, r);
      } else {
        run_async(id, notify, [port, max, timeout] { return dequeue_many(port, max, timeout); });
      }
      return true;
    } else if (method == "workers.run") {
      const char* what = "workers.run";
      auto port = lookup(*params, what);
      const Value& progs = require(*params, what, "programs", Type::array);
      auto programs = parse_programs(progs);
      cpspec::RunOptions opts;
      if (const Value* o = optional(*params, what, "options", Type::object)) {
        opts.close_after_ms = int_param_or(*o, "workers.run: options", "closeAfterMs", -1, kMaxTimeoutMs, -1);
        opts.deadline_ms = int_param_or(*o, "workers.run: options", "deadlineMs", 0, kMaxTimeoutMs, 30000);
      }
      const std::string problem = cpspec::validate(programs);
      if (!problem.empty()) throw invalid_value("workers.run: " + problem);
      run_async(id, notify, [port, programs = std::move(programs), opts] {
        const auto tr = cpspec::run_workers(port, programs, opts);
        return Result{Value(), trace_to_json(tr)};
      });
      return true;
    } else {
      if (notify) respond_error(id, RpcError{kMethodNotFound, "method not found: " + method});
      return true;
    }
    Result r = (this->*h)(*params);
    if (notify) respond(id, r);
  } catch (const RpcError& e) {
    if (notify) respond_error(id, e);
  } catch (const std::exception& e) {
    if (notify) respond_error(id, target_error("internal", std::string("internal error: ") + e.what()));
  } catch (...) {
    if (notify) respond_error(id, target_error("internal", "internal error"));
  }
  return true;
}

bool is_blank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

[[noreturn]] void hang_forever() {
  // Stays alive until killed; a safety net ends it after 10 minutes so a forgotten process cannot linger.
  std::this_thread::sleep_for(std::chrono::minutes(10));
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("%s %s (protocol %lld)\n", kName, kVersion, static_cast<long long>(kProtocol));
      return 0;
    }
    if (arg.substr(0, 8) == "--fault=" && parse_fault(arg.substr(8), g_faults)) continue;
#ifdef CPSPEC_DRIVER_SOCKETS
    if (arg == "--backend" || arg.substr(0, 10) == "--backend=") {
      std::string v;
      if (arg == "--backend") {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "cpspec-driver: --backend needs a value: epoll or uring\n");
          return 2;
        }
        v = argv[++i];
      } else {
        v = std::string(arg.substr(10));
      }
#if defined(_WIN32)
      if (v != "iocp") {
        std::fprintf(stderr, "cpspec-driver: unknown back-end '%s' (available: iocp)\n", v.c_str());
        return 2;
      }
#else
      if (v != "epoll" && v != "uring") {
        std::fprintf(stderr, "cpspec-driver: unknown back-end '%s' (available: epoll, uring)\n", v.c_str());
        return 2;
      }
#endif
      g_backend_name = v;
      continue;
    }
#endif
    std::fprintf(stderr, "cpspec-driver: unknown or malformed option '%s' (see --help)\n", argv[i]);
    return 2;
  }

#ifdef CPSPEC_DRIVER_SOCKETS
  {
    std::string why;
#if defined(_WIN32)
    // Windows: the one socket back-end is the kernel's own (native/iocp).
    if (g_backend_name.empty()) g_backend_name = "iocp";
    g_first_backend = make_backend(g_backend_name, why);
    if (!g_first_backend) {
      std::fprintf(stderr, "cpspec-driver: cannot start the %s socket back-end: %s\n", g_backend_name.c_str(), why.c_str());
      return 2;
    }
    g_backend_note = cpspec::iocp_backend_note();
#else
    if (g_backend_name.empty()) {
      g_first_backend = cpspec::make_uring_backend(why);
      if (g_first_backend) {
        g_backend_name = "uring";
        g_backend_note = "io_uring available: using uring (best back-end)";
      } else {
        g_backend_name = "epoll";
        g_backend_note = "io_uring unavailable: " + why + "; using epoll";
      }
    } else {
      g_first_backend = make_backend(g_backend_name, why);
      if (!g_first_backend) {
        std::fprintf(stderr, "cpspec-driver: cannot start the %s socket back-end: %s\n", g_backend_name.c_str(), why.c_str());
        return 2;
      }
      g_backend_note = "socket back-end " + g_backend_name + " (--backend)";
    }
#endif
  }
#endif

#if defined(SIGPIPE)
  std::signal(SIGPIPE, SIG_IGN);  // a runner that went away must not kill us mid-write
#endif

#ifdef _WIN32
  // Lines end with \n on the wire: no CRLF translation on stdin or stdout.
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
#endif

  auto output = std::make_unique<Output>();
  auto driver = std::make_unique<Driver>(*output);

  std::ios::sync_with_stdio(false);
  std::string line;
  std::uint64_t requests = 0;
  bool hung = false;
  while (std::getline(std::cin, line)) {
    if (is_blank(line)) continue;
    ++requests;
    if (hung) continue;
    if (g_faults.crash_after >= 0 && requests == static_cast<std::uint64_t>(g_faults.crash_after) + 1) {
      log("fault crash-after:" + std::to_string(g_faults.crash_after) + ": aborting");
      std::fflush(stdout);
#ifdef _WIN32
      std::_Exit(3);  // what abort() exits with on Windows, without a crash dialog or debugger
#else
      std::abort();
#endif
    }
    if (g_faults.hang_after >= 0 && requests == static_cast<std::uint64_t>(g_faults.hang_after) + 1) {
      log("fault hang-after:" + std::to_string(g_faults.hang_after) + ": no longer answering");
      output->hang();
      hung = true;
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!driver->handle_line(line)) break;
  }
  if (hung) hang_forever();

  const bool all_done = driver->finish();
#ifdef CPSPEC_DRIVER_SOCKETS
  if (all_done && g_first_backend) {
    g_first_backend->shutdown_all();  // never used: stop it before static destruction
    g_first_backend.reset();
  }
#endif
  std::fflush(stdout);
  std::fflush(stderr);
  if (!all_done) std::_Exit(0);  // threads still running: skip destructors they might race with
  return 0;
}

