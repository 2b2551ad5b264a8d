// N-API bindings of the socket back-ends (native/core/backend.h). JS API (types in native/js/target.ts):
//
//   createSocketBackend('epoll'|'uring') -> backend object; 'uring' where io_uring cannot run here (seccomp,
//                                  old kernel, CPSPEC_DISABLE_URING=1) throws code 'unsupported' with the why
//   backend.name                                                  'epoll' | 'uring'
//   backend.listen(port, key, host?, bindPort?, backlog?)         {socket, address: {host, port}}
//   backend.accept(listener, token, newKey)                       op
//   backend.connect(port, key, token, host, remotePort)           {socket, op}  (refused: a completion)
//   backend.recv(socket, length, token, pool?)                    op            (length 0 = probe; pool: a
//                                                                 BufferPool or its id: pool-backed receive,
//                                                                 the packet then has `buffer`)
//   backend.send(socket, Buffer|Uint8Array, token, partial?)      op
//   backend.shutdown(socket, 'send'|'recv'|'both')
//   backend.close(socket, abortive?)
//   backend.cancel(socket, op?)                                   'ok' | 'not-found'
//   backend.setBuffers(socket, send?, recv?)                      (<= 0 / undefined: unchanged)
//   backend.setFaults(socket, {maxBytesPerCall?, failNth?: {call: 'send'|'recv', n, errno}})
//   backend.setSessionLimit(listener, max, message?)              (max 0 = none; message: Uint8Array)
//   backend.sessionStats(listener)                                {max, active, refused}
//   backend.shutdownAll()                                         every pending op completes aborted
//
// `port` is a Port object (createPort/openPort) or a port id. Keys and tokens: integers 0..2^53-1.
// Synchronous failures throw an Error with `code` = the portable status name ('invalid', 'refused', ...)
// and `nativeError` = errno; nothing is queued for them. Completions arrive through the port; the packet
// conversion in addon.cpp calls AttachSocketFields to add op, socket and data.
//
// Each environment shuts down the back-ends it created at teardown (pending ops complete with aborted,
// the epoll threads are joined); a back-end whose JS object is collected is shut down as well.
#include "sockets.h"
#ifdef _WIN32
#include "iocp_backend.h"
#endif
#include "pool_addon.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"
#include "sockets_common.h"

namespace {

using namespace cpspec;

constexpr double kMaxSafe = 9007199254740991.0;

[[noreturn]] void Fail(Napi::Env env, const std::string& code, const std::string& msg, int native_error = 0, bool type_error = false) {
  Napi::Error e = type_error ? Napi::TypeError::New(env, msg) : Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  e.Value().Set("nativeError", Napi::Number::New(env, native_error));
  throw e;
}

void Check(Napi::Env env, const Sync& r, const char* what) {
  if (!r.ok()) Fail(env, status_name(r.status), std::string(what) + ": " + r.message, r.native_error);
}

std::string Show(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.As<Napi::Number>().DoubleValue());
    return buf;
  }
  if (v.IsString()) {
    std::string s(1, '\'');
    s.append(v.As<Napi::String>().Utf8Value());
    s.push_back('\'');
    return s;
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  return v.IsArray() ? "an array" : v.IsFunction() ? "a function" : "an object";
}

double Int(Napi::Env env, const Napi::Value& v, const std::string& what, double lo, double hi) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d) || d != std::trunc(d) || d < lo || d > hi) {
    char range[96];
    std::snprintf(range, sizeof range, "%.0f..%.0f", lo, hi);
    Fail(env, "invalid", what + " must be an integer in " + range + ", got " + Show(v), 0, !v.IsNumber());
  }
  return d;
}

double OptInt(Napi::Env env, const Napi::Value& v, const std::string& what, double lo, double hi, double dflt) {
  return v.IsUndefined() || v.IsNull() ? dflt : Int(env, v, what, lo, hi);
}

SocketId Sock(Napi::Env env, const Napi::Value& v) { return static_cast<SocketId>(Int(env, v, "socket", 1, kMaxSafe)); }
std::uint64_t U53(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return static_cast<std::uint64_t>(Int(env, v, what, 0, kMaxSafe));
}

std::string Str(Napi::Env env, const Napi::Value& v, const std::string& what, const std::string& dflt) {
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsString()) Fail(env, "invalid", what + " must be a string, got " + Show(v), 0, true);
  return v.As<Napi::String>().Utf8Value();
}

bool Bool(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBoolean()) Fail(env, "invalid", what + " must be a boolean, got " + Show(v), 0, true);
  return v.As<Napi::Boolean>().Value();
}

// Back-ends created in one environment, shut down at its teardown.
struct SocketsEnv {
  std::mutex mu;
  std::vector<std::weak_ptr<Backend>> backends;
};

void SocketsCleanup(void* arg) {
  auto* se = static_cast<SocketsEnv*>(arg);
  std::vector<std::weak_ptr<Backend>> all;
  {
    std::lock_guard<std::mutex> g(se->mu);
    all.swap(se->backends);
  }
  for (auto& w : all) {
    if (auto b = w.lock()) b->shutdown_all();
  }
  delete se;
}

struct Holder {
  std::shared_ptr<Backend> b;
};

Holder& H(const Napi::CallbackInfo& info) { return *static_cast<Holder*>(info.Data()); }

Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Port> port = PortFromValue(env, info[0], "port");
  const std::uint64_t key = U53(env, info[1], "key");
  const std::string host = Str(env, info[2], "host", "127.0.0.1");
  const auto bind_port = static_cast<std::uint16_t>(OptInt(env, info[3], "bindPort", 0, 65535, 0));
  const int backlog = static_cast<int>(OptInt(env, info[4], "backlog", 1, 65535, 128));
  SocketId s = 0;
  std::uint16_t bound = 0;
  Check(env, H(info).b->listen(port, key, host, bind_port, backlog, s, bound), "listen");
  Napi::Object addr = Napi::Object::New(env);
  addr.Set("host", Napi::String::New(env, host == "localhost" ? "127.0.0.1" : host));
  addr.Set("port", Napi::Number::New(env, bound));
  Napi::Object o = Napi::Object::New(env);
  o.Set("socket", Napi::Number::New(env, static_cast<double>(s)));
  o.Set("address", addr);
  return o;
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId l = Sock(env, info[0]);
  const std::uint64_t token = U53(env, info[1], "token");
  const std::uint64_t new_key = U53(env, info[2], "newKey");
  OpId op = 0;
  Check(env, H(info).b->accept(l, token, new_key, op), "accept");
  return Napi::Number::New(env, static_cast<double>(op));
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Port> port = PortFromValue(env, info[0], "port");
  const std::uint64_t key = U53(env, info[1], "key");
  const std::uint64_t token = U53(env, info[2], "token");
  const std::string host = Str(env, info[3], "host", "127.0.0.1");
  const auto remote = static_cast<std::uint16_t>(Int(env, info[4], "remotePort", 1, 65535));
  SocketId s = 0;
  OpId op = 0;
  Check(env, H(info).b->connect(port, key, token, host, remote, s, op), "connect");
  Napi::Object o = Napi::Object::New(env);
  o.Set("socket", Napi::Number::New(env, static_cast<double>(s)));
  o.Set("op", Napi::Number::New(env, static_cast<double>(op)));
  return o;
}

Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  const auto length = static_cast<std::uint32_t>(Int(env, info[1], "length", 0, 2147483647.0));
  const std::uint64_t token = U53(env, info[2], "token");
  OpId op = 0;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    std::shared_ptr<cpspec::RecvPool> pool = cpspec::pool::PoolFromValue(env, info[3], "pool");
    Check(env, H(info).b->recv_pooled(s, length, pool, token, op), "recv");
  } else {
    Check(env, H(info).b->recv(s, length, token, op), "recv");
  }
  return Napi::Number::New(env, static_cast<double>(op));
}

Napi::Value SetSessionLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  const auto max = static_cast<std::uint32_t>(Int(env, info[1], "max", 0, 4294967295.0));
  std::vector<std::uint8_t> message;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      Fail(env, "invalid", "message must be a Buffer or Uint8Array, got " + Show(info[2]), 0, true);
    Napi::Uint8Array m = info[2].As<Napi::Uint8Array>();
    message.assign(m.Data(), m.Data() + m.ByteLength());
  }
  Check(env, H(info).b->set_session_limit(s, max, message), "setSessionLimit");
  return env.Undefined();
}

Napi::Value SessionStatsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  cpspec::SessionStats st;
  Check(env, H(info).b->session_stats(s, st), "sessionStats");
  Napi::Object o = Napi::Object::New(env);
  o.Set("max", Napi::Number::New(env, st.max));
  o.Set("active", Napi::Number::New(env, st.active));
  o.Set("refused", Napi::Number::New(env, static_cast<double>(st.refused)));
  return o;
}

Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Fail(env, "invalid", "data must be a Buffer or Uint8Array, got " + Show(info[1]), 0, true);
  }
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  const std::uint64_t token = U53(env, info[2], "token");
  const bool partial = Bool(env, info[3], "partial");
  OpId op = 0;
  Check(env, H(info).b->send(s, data.Data(), data.ByteLength(), token, partial, op), "send");  // copies the bytes
  return Napi::Number::New(env, static_cast<double>(op));
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  const std::string how = Str(env, info[1], "how", "");
  if (how != "send" && how != "recv" && how != "both") Fail(env, "invalid", "how must be 'send', 'recv' or 'both', got " + Show(info[1]));
  Check(env, H(info).b->shutdown(s, how != "recv", how != "send"), "shutdown");
  return env.Undefined();
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  const bool abortive = Bool(env, info[1], "abortive");
  Check(env, H(info).b->close(s, abortive), "close");
  return env.Undefined();
}

Napi::Value Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  const OpId op = static_cast<OpId>(OptInt(env, info[1], "op", 1, kMaxSafe, 0));
  bool found = false;
  Check(env, H(info).b->cancel(s, op, found), "cancel");
  return Napi::String::New(env, found ? "ok" : "not-found");
}

Napi::Value SetBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  const int snd = static_cast<int>(OptInt(env, info[1], "send", 0, 1 << 30, 0));
  const int rcv = static_cast<int>(OptInt(env, info[2], "recv", 0, 1 << 30, 0));
  Check(env, H(info).b->set_buffers(s, snd, rcv), "setBuffers");
  return env.Undefined();
}

Napi::Value SetFaults(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SocketId s = Sock(env, info[0]);
  if (!info[1].IsObject() || info[1].IsArray()) Fail(env, "invalid", "faults must be an object, got " + Show(info[1]), 0, true);
  Napi::Object o = info[1].As<Napi::Object>();
  SocketFaults f;
  f.max_bytes_per_call = static_cast<std::uint32_t>(OptInt(env, o.Get("maxBytesPerCall"), "faults.maxBytesPerCall", 0, 4294967295.0, 0));
  Napi::Value fn = o.Get("failNth");
  if (!fn.IsUndefined() && !fn.IsNull()) {
    if (!fn.IsObject()) Fail(env, "invalid", "faults.failNth must be an object, got " + Show(fn), 0, true);
    Napi::Object n = fn.As<Napi::Object>();
    const std::string call = Str(env, n.Get("call"), "faults.failNth.call", "");
    if (call != "send" && call != "recv") Fail(env, "invalid", "faults.failNth.call must be 'send' or 'recv', got " + Show(n.Get("call")));
    f.fail_call = call == "send" ? SocketFaults::Call::send : SocketFaults::Call::recv;
    f.fail_nth = static_cast<std::uint32_t>(Int(env, n.Get("n"), "faults.failNth.n", 1, 4294967295.0));
    f.fail_errno = static_cast<std::int32_t>(Int(env, n.Get("errno"), "faults.failNth.errno", 1, 4095));
  }
  Check(env, H(info).b->set_faults(s, f), "setFaults");
  return env.Undefined();
}

Napi::Value ShutdownAll(const Napi::CallbackInfo& info) {
  H(info).b->shutdown_all();
  return info.Env().Undefined();
}

Napi::Value CreateSocketBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* se = static_cast<SocketsEnv*>(info.Data());
  const std::string name = Str(env, info[0], "name", "epoll");
  std::string why;
  std::unique_ptr<Backend> b;
#ifdef _WIN32
  if (name == "iocp") {
    b = make_iocp_backend(why);  // native/iocp: AcceptEx/ConnectEx/WSARecv/WSASend on the kernel port
  } else
#endif
  if (name == "epoll") {
    b = make_epoll_backend(why);
  } else if (name == "uring") {
    b = make_uring_backend(why);  // nullptr + why when io_uring cannot run: 'unsupported' below
  } else {
    Fail(env, "invalid", "createSocketBackend: unknown back-end " + Show(info[0]) + " (available: epoll, uring)");
  }
  if (!b) Fail(env, "unsupported", "createSocketBackend('" + name + "'): " + why);
  auto* h = new Holder{std::shared_ptr<Backend>(std::move(b))};
  {
    std::lock_guard<std::mutex> g(se->mu);
    std::erase_if(se->backends, [](const std::weak_ptr<Backend>& w) { return w.expired(); });
    se->backends.push_back(h->b);
  }
  Napi::Object o = Napi::Object::New(env);
  // The holder lives as long as the object; its methods keep the object alive while they run.
  o.AddFinalizer([](Napi::Env, Holder* hp) { delete hp; }, h);
  auto method = [&](const char* n, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    Napi::Function f = Napi::Function::New(env, fn, n, h);
    f.Set("owner", o);  // a detached method keeps its back-end (and the holder) alive
    o.Set(n, f);
  };
  o.Set("name", Napi::String::New(env, name));
  method("listen", Listen);
  method("accept", Accept);
  method("connect", Connect);
  method("recv", Recv);
  method("send", Send);
  method("shutdown", Shutdown);
  method("close", Close);
  method("cancel", Cancel);
  method("setBuffers", SetBuffers);
  method("setFaults", SetFaults);
  method("setSessionLimit", SetSessionLimit);
  method("sessionStats", SessionStatsOf);
  method("shutdownAll", ShutdownAll);
  return o;
}

}  // namespace

void AttachSocketFields(Napi::Env env, Napi::Object& packet, const cpspec::Packet& p) {
  if (p.op == 0 && p.socket == 0) return;
  if (p.op != 0) packet.Set("op", Napi::Number::New(env, static_cast<double>(p.op)));
  if (p.socket != 0) packet.Set("socket", Napi::Number::New(env, static_cast<double>(p.socket)));
  if (p.buffer != cpspec::kNoPoolBuffer) packet.Set("buffer", Napi::Number::New(env, p.buffer));
  std::vector<std::uint8_t> data;
  if (p.op != 0 && cpspec::sockets::take_op_data(p.op, data)) {
    packet.Set("data", Napi::Buffer<std::uint8_t>::Copy(env, data.data(), data.size()));
  }
}

void InitSockets(Napi::Env env, Napi::Object exports) {
  auto* se = new SocketsEnv();
  napi_add_env_cleanup_hook(env, SocketsCleanup, se);
  exports.Set("createSocketBackend", Napi::Function::New(env, CreateSocketBackend, "createSocketBackend", se));
}
