// Helpers shared by the socket back-ends (native/epoll, native/uring): the errno -> status table, operation
// ids and the process-wide back-end registry (so packet conversion can find the back-end that owns an op),
// the per-op state machine, send-all bookkeeping and fault-injection counters, and (POSIX) the address
// parser both use. No OS calls here beyond inet_pton.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend.h"

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <sys/socket.h>
#endif

namespace cpspec::sockets {

// ---------------------------------------------------------------------------------------------------------
// errno -> portable status. The errno always travels beside the status (Packet::native_error).
//
//   ECONNRESET, EPIPE, ECONNABORTED, ENOTCONN, ENETRESET, EHOSTUNREACH,
//   ENETUNREACH, ENETDOWN, EHOSTDOWN, EPROTO                              -> reset   (connection errors)
//   ECONNREFUSED                                                          -> refused
//   ECANCELED                                                             -> aborted
//   ETIMEDOUT                                                             -> timeout
//   ENOBUFS                                                               -> pool_exhausted
//   EBADF, ENOTSOCK, EINVAL, anything else                                -> invalid
// ---------------------------------------------------------------------------------------------------------
Status status_from_errno(int e) noexcept;
// Errors after which the stream is dead for good: later receives and sends fail at once with the same
// status (the kernel itself reports ECONNRESET only once, then 0 = "eof", which would hide the reset).
bool is_sticky_error(int e) noexcept;

// ---------------------------------------------------------------------------------------------------------
// Operation ids: the back-end's registry index in the high bits, a per-back-end sequence number below.
// Both stay below 2^53 so ids are exact JS numbers.
// ---------------------------------------------------------------------------------------------------------
inline constexpr int kOpIndexShift = 40;
inline constexpr std::uint64_t kOpSeqMask = (std::uint64_t{1} << kOpIndexShift) - 1;
inline constexpr std::uint32_t kMaxBackends = (1u << 13) - 1;
inline constexpr OpId make_op_id(std::uint32_t index, std::uint64_t seq) noexcept {
  return (static_cast<std::uint64_t>(index) << kOpIndexShift) | (seq & kOpSeqMask);
}
inline constexpr std::uint32_t op_backend_index(OpId op) noexcept {
  return static_cast<std::uint32_t>(op >> kOpIndexShift);
}

// The registry: a back-end registers itself when built (gets its index, 1..kMaxBackends; 0 = the table is
// full, ops then carry index 0 and take_op_data cannot find them) and unregisters at the start of its
// destructor. Lock order: registry lock, then the back-end's own lock (take_data); a back-end never calls
// the registry while holding its own lock.
std::uint32_t register_backend(Backend* b) noexcept;
void unregister_backend(std::uint32_t index) noexcept;
// Backend::take_data on whichever back-end owns op; false when none does (any more).
bool take_op_data(OpId op, std::vector<std::uint8_t>& out);

// ---------------------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------------------
enum class OpKind : std::uint8_t { accept, connect, recv, probe, send };
// pending -> done, exactly once, under the back-end's lock. complete_once() returns false (and changes
// nothing) when the op was already done: the caller must then post nothing.
enum class OpState : std::uint8_t { pending, done };

struct Op {
  OpId id = 0;
  OpKind kind = OpKind::recv;
  OpState state = OpState::pending;
  std::uint64_t token = 0;
  std::uint32_t length = 0;     // recv: buffer size
  std::uint64_t new_key = 0;    // accept: the new socket's key
  // send: a copy of the caller's bytes and how many the kernel took so far (never more than data.size()).
  std::vector<std::uint8_t> data;
  std::size_t sent = 0;
  bool partial = false;
  // recv: the pool of a pool-backed receive (recv_pool.h), else null.
  std::shared_ptr<RecvPool> pool;
  bool issued = false;  // a pool-backed receive was attempted once (its "issue": recv_pool.h)

  bool complete_once() noexcept {
    if (state != OpState::pending) return false;
    state = OpState::done;
    return true;
  }
  std::size_t remaining() const noexcept { return data.size() - sent; }
  // Records n bytes accepted by one send call; clamps so a confused kernel/injector never over-reports.
  void account_sent(std::size_t n) noexcept { sent += n > remaining() ? remaining() : n; }
};

// ---------------------------------------------------------------------------------------------------------
// Fault injection, per socket. Counters start at 0 when set_faults is called.
// ---------------------------------------------------------------------------------------------------------
struct FaultState {
  SocketFaults f;
  std::uint32_t send_calls = 0;
  std::uint32_t recv_calls = 0;

  void set(const SocketFaults& nf) noexcept {
    f = nf;
    send_calls = recv_calls = 0;
  }
  // How many bytes one system call may move (n capped by max_bytes_per_call).
  std::size_t cap(std::size_t n) const noexcept {
    return f.max_bytes_per_call != 0 && n > f.max_bytes_per_call ? f.max_bytes_per_call : n;
  }
  // Whether the next send/recv call (on_call) would be failed by injection.
  bool fails_next(bool send) const noexcept {
    const auto want = send ? SocketFaults::Call::send : SocketFaults::Call::recv;
    return f.fail_call == want && f.fail_nth != 0 && (send ? send_calls : recv_calls) + 1 == f.fail_nth;
  }
  // Counts one send/recv system call about to be made; returns the errno to fail it with, or 0.
  int on_call(bool send) noexcept {
    std::uint32_t& c = send ? send_calls : recv_calls;
    ++c;
    const auto want = send ? SocketFaults::Call::send : SocketFaults::Call::recv;
    return f.fail_call == want && f.fail_nth != 0 && c == f.fail_nth ? f.fail_errno : 0;
  }
};

// "127.0.0.1" / "::1" / "" or "localhost" (= 127.0.0.1) -> a socket address with the port; false for
// anything else (no name resolution). Every back-end (socklen_t is int on Windows).
bool parse_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss, socklen_t& len);

// ---------------------------------------------------------------------------------------------------------
// Session limits on listeners (Backend::set_session_limit, CP-POOL-007), kept by the back-end under its
// lock: on the listener the gate, on each socket accepted from a limited listener the listener's id.
// ---------------------------------------------------------------------------------------------------------
struct SessionGate {
  std::uint32_t max = 0;  // 0 = no limit
  std::uint32_t active = 0;
  std::uint64_t refused = 0;
  std::vector<std::uint8_t> message;
  bool full() const noexcept { return max != 0 && active >= max; }
  SessionStats stats() const noexcept { return SessionStats{max, active, refused}; }
};
inline constexpr std::uint32_t kMaxSessionMessage = 4096;
Sync check_session_limit(const std::vector<std::uint8_t>& message);

#if !defined(_WIN32)
// Refuses an accepted connection the documented way: writes `message` (best effort, without blocking),
// shuts the sending side down (the peer reads the message, then end of stream) and closes fd.
void refuse_connection(int fd, const std::vector<std::uint8_t>& message) noexcept;
#endif

// ---------------------------------------------------------------------------------------------------------
// Completions leave a back-end through an Outbox: queued under the back-end's lock in the order they happen,
// posted to their ports when the lock is released, still in that order (the outbox's own post lock is taken
// before the back-end's lock is let go, so whoever completes something next posts after us). Posting outside
// the back-end's lock means a worker woken by the post never blocks at once on the lock held by the thread
// that woke it (on a shared core, two extra context switches per packet).
// ---------------------------------------------------------------------------------------------------------
using DataMap = std::unordered_map<OpId, std::vector<std::uint8_t>>;

class Outbox {
 public:
  // Under the back-end's lock.
  void add(const std::shared_ptr<Port>& port, const Packet& p, bool has_data) { out_.push_back(Item{port, p, has_data}); }
  bool empty() const noexcept { return out_.empty(); }
  // lk = the back-end's lock, held (nothing happens otherwise). Unlocks it, calls after_unlock(arg) if
  // given, posts everything queued; the data of a packet its (closed) port refused is erased from `data`
  // (under lk again, only then). Returns with lk unlocked.
  void release(std::unique_lock<std::mutex>& lk, DataMap& data, void (*after_unlock)(void*) = nullptr,
               void* arg = nullptr);

 private:
  struct Item {
    std::shared_ptr<Port> port;
    Packet packet;
    bool has_data = false;  // `data` holds bytes for packet.op
  };
  std::vector<Item> out_;
  std::mutex post_mu_;  // taken under the back-end's lock; held while posting
};

// Sync helpers.
inline Sync sync_ok() { return Sync{}; }
Sync sync_error(Status s, int native_error, std::string message);
Sync sync_errno(int e, const std::string& what);  // status_from_errno(e), message "what: strerror"
inline Sync sync_unknown_socket(SocketId s) { return sync_error(Status::invalid, 0, "unknown socket " + std::to_string(s)); }

// Argument checks every back-end's submissions share (ok, or the invalid Sync to return).
Sync check_send_args(const std::uint8_t* data, std::size_t n);
Sync check_faults(const SocketFaults& f);

#if !defined(_WIN32)
Sync set_socket_buffers(int fd, int send_bytes, int recv_bytes);
#endif

// ---------------------------------------------------------------------------------------------------------
// The part of a socket back-end that epoll and io_uring share word for word: the socket state both keep
// (each back-end's Sock derives from SockBase), op ids, completion (through the Outbox), the data of
// completed receives, and the submission front-ends whose only back-end-specific steps are "find the live
// socket" and "run what can run on it". Derived (CRTP) provides, all called under mu_ except release:
//   SockT* live(SocketId)                    a socket the application may use, or nullptr
//   void process(SockT&)                     runs what can run on it now
//   static Sync stopped_error()              the error of a call after shutdown_all()
//   Sync bind_recv_pool(const shared_ptr<RecvPool>&)   binds a pool to pool-backed receives here
//   void release(std::unique_lock<std::mutex>&)       leaves mu_ (default: outbox_.release(lk, data_))
// and declares `friend class sockets::BackendCore<Derived, Sock>;` if those are private.
// ---------------------------------------------------------------------------------------------------------
enum class SockKind : std::uint8_t { listener, stream };

struct SockBase {
  SocketId id = 0;
  int fd = -1;
  SockKind kind = SockKind::stream;
  std::shared_ptr<Port> port;
  std::uint64_t key = 0;
  std::unique_ptr<Op> connect_op;  // pending connect
  bool connecting = false;         // connect in progress (whether or not connect_op is still there)
  bool eof = false;                // sticky end of stream
  int error = 0;                   // sticky connection error (errno)
  std::deque<std::unique_ptr<Op>> rq;  // recv, probe, accept
  std::deque<std::unique_ptr<Op>> sq;  // send
  FaultState faults;
  SessionGate sessions;            // listener: its session limit
  SocketId session_of = 0;         // accepted from a limited listener: that listener
};

template <class Derived, class SockT>
class BackendCore : public Backend {
 public:
  Sync accept(SocketId listener, std::uint64_t token, std::uint64_t new_key, OpId& op) override {
    op = 0;
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(listener, SockKind::listener, "accept: socket ", " is not a listener", s); !r.ok()) return r;
    auto o = new_op(OpKind::accept, token);
    o->new_key = new_key;
    op = o->id;
    s->rq.push_back(std::move(o));
    self().process(*s);
    return sync_ok();
  }

  Sync recv(SocketId id, std::uint32_t length, std::uint64_t token, OpId& op) override {
    op = 0;
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, SockKind::stream, "recv: socket ", " is a listener", s); !r.ok()) return r;
    auto o = new_op(length == 0 ? OpKind::probe : OpKind::recv, token);
    o->length = length;
    op = o->id;
    s->rq.push_back(std::move(o));
    self().process(*s);
    return sync_ok();
  }

  Sync recv_pooled(SocketId id, std::uint32_t length, const std::shared_ptr<RecvPool>& pool, std::uint64_t token,
                   OpId& op) override {
    op = 0;
    if (!pool) return sync_error(Status::invalid, EINVAL, "recv: no pool");
    if (length == 0) return sync_error(Status::invalid, EINVAL, "recv: a pool-backed receive needs a length > 0");
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, SockKind::stream, "recv: socket ", " is a listener", s); !r.ok()) return r;
    if (Sync r = self().bind_recv_pool(pool); !r.ok()) return r;
    auto o = new_op(OpKind::recv, token);
    o->length = length;
    o->pool = pool;
    op = o->id;
    s->rq.push_back(std::move(o));
    self().process(*s);
    return sync_ok();
  }

  Sync send(SocketId id, const std::uint8_t* data, std::size_t n, std::uint64_t token, bool partial, OpId& op) override {
    op = 0;
    if (Sync r = check_send_args(data, n); !r.ok()) return r;
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, SockKind::stream, "send: socket ", " is a listener", s); !r.ok()) return r;
    auto o = new_op(OpKind::send, token);
    o->data.assign(data, data + n);
    o->partial = partial;
    op = o->id;
    s->sq.push_back(std::move(o));
    self().process(*s);
    return sync_ok();
  }

  Sync set_session_limit(SocketId id, std::uint32_t max, const std::vector<std::uint8_t>& message) override {
    if (Sync r = check_session_limit(message); !r.ok()) return r;
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, SockKind::listener, "session limit: socket ", " is not a listener", s); !r.ok()) return r;
    s->sessions.max = max;
    s->sessions.message = message;
    return sync_ok();
  }

  Sync session_stats(SocketId id, SessionStats& out) override {
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, SockKind::listener, "session stats: socket ", " is not a listener", s); !r.ok()) return r;
    out = s->sessions.stats();
    return sync_ok();
  }

#if !defined(_WIN32)
  Sync set_buffers(SocketId id, int send_bytes, int recv_bytes) override {
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, s); !r.ok()) return r;
    return set_socket_buffers(s->fd, send_bytes, recv_bytes);
  }
#endif

  Sync set_faults(SocketId id, const SocketFaults& f) override {
    Locked g(*this);
    SockT* s = nullptr;
    if (Sync r = lookup(id, s); !r.ok()) return r;
    if (Sync r = check_faults(f); !r.ok()) return r;
    s->faults.set(f);
    return sync_ok();
  }

  bool take_data(OpId op, std::vector<std::uint8_t>& out) override {
    Locked g(*this);
    auto it = data_.find(op);
    if (it == data_.end()) return false;
    out = std::move(it->second);
    data_.erase(it);
    return true;
  }

 protected:
  // mu_ for a public call or a batch of the back-end's thread; its completions are posted, in order, when
  // it is released (Derived::release).
  struct Locked {
    BackendCore& b;
    std::unique_lock<std::mutex> lk;
    explicit Locked(BackendCore& be) : b(be), lk(be.mu_) {}
    ~Locked() { b.self().release(lk); }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
  };

  void release(std::unique_lock<std::mutex>& lk) { outbox_.release(lk, data_); }

  Derived& self() noexcept { return static_cast<Derived&>(*this); }

  // Under mu_: the live socket id (any kind), or the error to return.
  Sync lookup(SocketId id, SockT*& s) {
    s = self().live(id);
    if (s == nullptr) return stopped_ ? Derived::stopped_error() : sync_unknown_socket(id);
    return sync_ok();
  }
  // ... of kind `want`; otherwise invalid/EINVAL "<pre><id><post>".
  Sync lookup(SocketId id, SockKind want, const char* pre, const char* post, SockT*& s) {
    if (Sync r = lookup(id, s); !r.ok()) return r;
    if (s->kind != want) return sync_error(Status::invalid, EINVAL, pre + std::to_string(id) + post);
    return sync_ok();
  }

  std::unique_ptr<Op> new_op(OpKind k, std::uint64_t token) {
    auto o = std::make_unique<Op>();
    o->id = make_op_id(index_, ++op_seq_);
    o->kind = k;
    o->token = token;
    return o;
  }

  // Under mu_: the completion of o (removed from its queue by the caller), queued for posting when mu_ is
  // released. The op's state machine guarantees one packet at most.
  void complete(SockBase& s, std::unique_ptr<Op> o, Status st, int err, std::uint32_t bytes, SocketId new_socket = 0,
                std::vector<std::uint8_t>* data = nullptr, std::uint32_t buffer = kNoPoolBuffer) {
    if (!o || !o->complete_once()) return;
    Packet p;
    p.buffer = buffer;
    p.key = s.key;
    p.bytes = bytes;
    p.token = o->token;
    p.status = st;
    p.native_error = err;
    p.op = o->id;
    p.socket = new_socket;
    const bool has_data = data != nullptr && !data->empty();
    if (has_data) data_[o->id] = std::move(*data);
    outbox_.add(s.port, p, has_data);
  }

  // Under mu_: every queued op of s (connect, receive side, send side, in that order) completes with
  // status_from_errno(err) -- a send with the bytes already written. Returns how many.
  std::size_t abort_queues(SockBase& s, int err) {
    std::size_t n = 0;
    const Status st = status_from_errno(err);
    if (s.connect_op) {
      complete(s, std::move(s.connect_op), st, err, 0);
      ++n;
    }
    while (!s.rq.empty()) {
      std::unique_ptr<Op> o = std::move(s.rq.front());
      s.rq.pop_front();
      complete(s, std::move(o), st, err, 0);
      ++n;
    }
    while (!s.sq.empty()) {
      std::unique_ptr<Op> o = std::move(s.sq.front());
      s.sq.pop_front();
      const auto bytes = static_cast<std::uint32_t>(o->sent);
      complete(s, std::move(o), st, err, bytes);
      ++n;
    }
    return n;
  }

  static void fail_sticky(SockBase& s, int e) {
    if (is_sticky_error(e) && s.error == 0) s.error = e;
  }

  mutable std::mutex mu_;
  Outbox outbox_;
  DataMap data_;  // completed recvs' bytes until take_data
  std::uint32_t index_ = 0;  // in the registry (register_backend)
  bool stopped_ = false;     // shutdown_all() ran
  std::uint64_t op_seq_ = 0;
};

#if !defined(_WIN32)
// The system-call setup the POSIX back-ends share. nonblocking: epoll wants O_NONBLOCK sockets, io_uring
// blocking ones (it arms its own poll).
// A bound, listening socket on host:bind_port (SO_REUSEADDR); fd and the port actually bound.
Sync open_listener(const std::string& host, std::uint16_t bind_port, int backlog, bool nonblocking, int& fd,
                   std::uint16_t& bound_port);
// A TCP socket (TCP_NODELAY) for connecting to host:remote_port, and that address.
Sync open_stream_for(const std::string& host, std::uint16_t remote_port, bool nonblocking, int& fd,
                     sockaddr_storage& ss, socklen_t& len);
// SO_SNDBUF / SO_RCVBUF where > 0.
Sync set_socket_buffers(int fd, int send_bytes, int recv_bytes);
#endif

}  // namespace cpspec::sockets
