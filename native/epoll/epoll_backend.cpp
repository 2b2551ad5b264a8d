// The epoll socket back-end: IOCP-style (proactor) TCP operations emulated over readiness (reactor).
//
// Semantics (shared with the io_uring back-end; see backend.h and SocketApi in reference/src/target.ts):
// - One epoll thread per back-end instance and an eventfd that wakes it (only to stop it: see below).
//   While a thread waiting on the port spins, it runs the epoll set itself (IdleSource in port.h: epoll_wait
//   with timeout 0, events handled exactly as the epoll thread handles them) and the epoll thread rests, so
//   a busy server does its recvs, its sends and its application work on one thread. A waiter that goes to
//   sleep hands the set back to the epoll thread; sockets on more than one port turn this off.
//   Sockets are non-blocking, registered once, EDGE-triggered (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|EPOLLET),
//   so no epoll_ctl is ever needed to re-arm. Edge triggering is safe because every attempt runs until
//   EAGAIN (or a short recv that provably emptied the queue: Sock::short_read_drains) or until the queue is
//   empty, and a new submission is attempted at once by the submitting thread (so readiness that arrived
//   before the op was queued is never waited for) -- unless that side's last call found EAGAIN and no
//   epoll event for it came since (Sock::rd_ready/wr_ready): then the attempt would find EAGAIN again and
//   the event that must come runs it. Level triggering would spin on EPOLLOUT for every idle connected socket.
// - Completions are queued under the lock and posted to the port, in that order, as the lock is released
//   (sockets::Outbox): a worker woken by a post never blocks at once on the lock of the thread that woke it.
// - All socket system calls (non-blocking, so short) and all completions run under the back-end's one
//   lock, on the submitting thread (first attempt) or on the thread running the epoll set (after readiness). A completion
//   is queued under that lock (posted when it is released, in queue order), so completions of one socket
//   are posted in the order they happened, and close/cancel cannot race with an op half-way through a system call.
// - TCP_NODELAY on connected sockets, SO_REUSEADDR on listeners, MSG_NOSIGNAL on every send (a send to a
//   reset peer is an error completion, never SIGPIPE).
// - Per socket, FIFO queues: recv side (recv, probe, accept) and send side. Several sends are transmitted
//   in issue order; several recvs are filled in issue order.
// - recv (length > 0) completes as soon as any data is there (ok, n bytes; the data is kept for
//   take_data). Graceful peer close: eof, 0 bytes, after all data; eof is sticky (each later recv completes
//   eof/0 at once). A connection error (ECONNRESET, ECONNABORTED, ETIMEDOUT, ENETRESET) completes the op
//   with its status (reset, 0 bytes) and is sticky: every later recv or send completes at once with the
//   same status and errno (never a 0-byte success, although the kernel reports 0 after the first error).
// - probe (length 0): recv(MSG_PEEK) of 1 byte: ok/0 if data is readable (consumes nothing), eof/0 if the
//   peer closed with nothing left, reset on RST; pends otherwise; always completes through a packet. A
//   probe is not counted as a recv call for fault injection.
// - send (partial = false) loops until every byte is accepted by the kernel, counting bytes accepted before
//   EAGAIN and never more than requested: ok with the full count, or an error status with bytes = exactly
//   the prefix written. partial = true: completes after the first send call that wrote anything (possibly
//   a short count). A zero-byte send completes ok/0 through a packet.
// - close(s, abortive): abortive sets SO_LINGER {1, 0} (RST). epoll reports nothing for a closed fd, so
//   close itself completes every pending op on s exactly once with aborted (ECANCELED): recv/probe/accept/
//   connect with 0 bytes, a send with the bytes already written. Nothing pending: no packet. Any later
//   call on s fails synchronously with Status::invalid ("unknown socket").
// - cancel(s, op) (op 0 = all): a pending op completes once with aborted, found = true. Unread data stays
//   in the kernel for the next recv (a recv takes bytes only in the same locked step that completes it).
//   A cancelled send reports the bytes already written; the stream is then unusable for further sends
//   unless the caller resends the rest (bytes = the prefix the peer will get). A cancelled connect leaves
//   the socket unusable: its later ops complete with aborted.
// - accept: completion key = the listener's key, Packet::socket = the new socket (associated with the same
//   port under new_key), ok. connect: the socket id is returned synchronously; the op completes ok when
//   connected, refused (ECONNREFUSED) asynchronously, never as a synchronous failure. recv/send issued
//   before the connect completes wait for it (and fail with its status if it fails).
// - Fault injection: max_bytes_per_call caps each send()/recv() call; the nth (1-based, counted from
//   set_faults) send or recv call fails with fail_errno instead of being made, and the op completes with
//   the mapped status and that errno (a sticky errno then poisons the socket as a real one would).
// - Pool-backed receive (recv_pooled; contract in native/core/recv_pool.h, "direct" mode): attempted when
//   it reaches the head of the receive queue (its issue) and on each readiness after that. An attempt first
//   peeks: nothing to read -> wait (at issue, an empty pool completes pool_exhausted at once, as io_uring's
//   buffer selection at issue does); data, FIN or an error -> take a buffer (none: pool_exhausted/ENOBUFS,
//   nothing read) and recv into it. An end of stream or error already reported needs no buffer.
// - Session limit (set_session_limit): accept4 happens only while an accept is pending; a connection over
//   the limit gets the message, SHUT_WR and close (sockets::refuse_connection) and the accept stays
//   pending. close() of an accepted socket ends its session.
// - Every accepted op completes exactly once (Op::complete_once under the lock). shutdown_all() completes
//   everything pending with aborted, closes every socket and joins the thread; so does the destructor.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "backend.h"
#include "sockets_common.h"

namespace cpspec {
namespace {

using sockets::FaultState;
using sockets::Op;
using sockets::OpKind;

// A recv allocates at most this much per call (it completes with whatever is available anyway).
constexpr std::size_t kMaxRecvChunk = std::size_t{4} << 20;

using sockets::SockKind;

struct Sock : sockets::SockBase {
  int connect_error = 0;           // connect() failed at once with this connection error
  // Whether an attempt on that side may find something: cleared when a call finds EAGAIN, set again by
  // the next epoll event of the side (edge-triggered: any change after the EAGAIN brings one) and by
  // shutdown(). An attempt while it is clear is skipped (it would find EAGAIN again: a wasted system call),
  // unless fault injection is due to fail that very call.
  bool rd_ready = true;
  bool wr_ready = true;
  // A recv that returns fewer bytes than it asked for emptied the receive queue, so rd_ready is cleared
  // without the extra call that would find EAGAIN (every later arrival raises a new edge). Not true at an
  // end of stream (the data before a FIN comes back alone, the FIN stays for the next call), before an
  // urgent mark, or after an error: so the first event that reports one of those (EPOLLRDHUP, EPOLLPRI,
  // EPOLLERR, EPOLLHUP) or a local shutdown() turns this off for the socket's life. That event is always
  // handled after any short read that could have missed its cause (it is raised after the cause, and events
  // are handled under the same lock as recvs).
  bool short_read_drains = true;
};

class EpollBackend final : public sockets::BackendCore<EpollBackend, Sock>, private IdleSource {
 public:
  EpollBackend() = default;

  bool start(std::string& why) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      why = std::string("epoll_create1: ") + std::strerror(errno);
      return false;
    }
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) {
      why = std::string("eventfd: ") + std::strerror(errno);
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // socket ids start at 1
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
      why = std::string("epoll_ctl(eventfd): ") + std::strerror(errno);
      return false;
    }
    index_ = sockets::register_backend(this);
    try {
      thread_ = std::thread(&EpollBackend::loop, this);
    } catch (const std::exception& e) {
      why = std::string("cannot start the epoll thread: ") + e.what();
      return false;
    }
    return true;
  }

  ~EpollBackend() override {
    sockets::unregister_backend(index_);  // first: no take_data may start on a dying object
    idle_link_->detach();                 // no port waiter drives us from here on
    shutdown_all();
    if (wake_ >= 0) ::close(wake_);
    if (ep_ >= 0) ::close(ep_);
  }

  const char* name() const noexcept override { return "epoll"; }

  Sync listen(const std::shared_ptr<Port>& port, std::uint64_t key, const std::string& host, std::uint16_t bind_port,
              int backlog, SocketId& out, std::uint16_t& bound_port) override {
    out = 0;
    bound_port = 0;
    if (!port) return sockets::sync_error(Status::invalid, EINVAL, "listen: no port");
    int fd = -1;
    if (Sync r = sockets::open_listener(host, bind_port, backlog, /*nonblocking=*/true, fd, bound_port); !r.ok()) return r;
    Locked g(*this);
    if (stopped_) {
      ::close(fd);
      return stopped_error();
    }
    Sync r = add_socket(fd, SockKind::listener, port, key, out);
    if (!r.ok()) ::close(fd);
    return r;
  }

  Sync connect(const std::shared_ptr<Port>& port, std::uint64_t key, std::uint64_t token, const std::string& host,
               std::uint16_t remote_port, SocketId& out, OpId& op) override {
    out = 0;
    op = 0;
    if (!port) return sockets::sync_error(Status::invalid, EINVAL, "connect: no port");
    int fd = -1;
    sockaddr_storage ss;
    socklen_t len = 0;
    if (Sync r = sockets::open_stream_for(host, remote_port, /*nonblocking=*/true, fd, ss, len); !r.ok()) return r;
    Locked g(*this);
    if (stopped_) {
      ::close(fd);
      return stopped_error();
    }
    Sync r = add_socket(fd, SockKind::stream, port, key, out);
    if (!r.ok()) {
      ::close(fd);
      return r;
    }
    Sock& s = *socks_.at(out);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
    int e = rc == 0 ? 0 : errno;
    if (rc != 0 && e != EINPROGRESS && e != EINTR) {
      if (sockets::status_from_errno(e) == Status::invalid) {  // a bad argument: nothing queued
        drop_socket(s);
        out = 0;
        return sockets::sync_errno(e, "connect");
      }
      s.connect_error = e;  // refused and friends complete through the port, never synchronously
    }
    s.connecting = true;
    auto o = new_op(OpKind::connect, token);
    op = o->id;
    s.connect_op = std::move(o);
    process(s);
    return sockets::sync_ok();
  }

  Sync shutdown(SocketId id, bool send_dir, bool recv_dir) override {
    Locked g(*this);
    Sock* s = find(id);
    if (s == nullptr) return stopped_ ? stopped_error() : sockets::sync_unknown_socket(id);
    if (!send_dir && !recv_dir) return sockets::sync_ok();
    const int how = send_dir && recv_dir ? SHUT_RDWR : send_dir ? SHUT_WR : SHUT_RD;
    if (::shutdown(s->fd, how) != 0) return sockets::sync_errno(errno, "shutdown");
    s->rd_ready = s->wr_ready = true;
    s->short_read_drains = false;
    process(*s);  // a local SHUT_RD makes pending receives see end of stream
    return sockets::sync_ok();
  }

  Sync close(SocketId id, bool abortive) override {
    Locked g(*this);
    Sock* s = find(id);
    if (s == nullptr) return stopped_ ? stopped_error() : sockets::sync_unknown_socket(id);
    if (abortive) {
      linger l{1, 0};
      ::setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    abort_all(*s, ECANCELED);
    end_session(*s);
    drop_socket(*s);
    return sockets::sync_ok();
  }

  Sync cancel(SocketId id, OpId op, bool& found) override {
    found = false;
    Locked g(*this);
    Sock* s = find(id);
    if (s == nullptr) return stopped_ ? stopped_error() : sockets::sync_unknown_socket(id);
    if (op == 0) {
      found = abort_all(*s, ECANCELED) > 0;
    } else {
      if (s->connect_op && s->connect_op->id == op) {
        found = true;
        complete(*s, std::move(s->connect_op), Status::aborted, ECANCELED, 0);
        s->error = ECANCELED;  // the connection attempt is abandoned: the socket is unusable
        s->connecting = false;
      }
      for (auto* q : {&s->rq, &s->sq}) {
        for (auto it = q->begin(); !found && it != q->end(); ++it) {
          if ((*it)->id != op) continue;
          std::unique_ptr<Op> o = std::move(*it);
          q->erase(it);
          const std::uint32_t bytes = o->kind == OpKind::send ? static_cast<std::uint32_t>(o->sent) : 0;
          complete(*s, std::move(o), Status::aborted, ECANCELED, bytes);
          found = true;
          break;
        }
      }
    }
    if (found) process(*s);  // the next queued op may now run
    return sockets::sync_ok();
  }

  void shutdown_all() override {
    {
      Locked g(*this);
      if (!stopped_) {
        stopped_ = true;
        while (!socks_.empty()) {
          Sock& s = *socks_.begin()->second;
          abort_all(s, ECANCELED);
          drop_socket(s);
        }
      }
      if (wake_ >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(wake_, &one, sizeof one);
      }
    }
    {
      std::lock_guard<std::mutex> pg(park_mu_);
      park_stop_ = true;
    }
    park_cv_.notify_all();
    std::lock_guard<std::mutex> jg(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  friend class sockets::BackendCore<EpollBackend, Sock>;
  static Sync stopped_error() { return sockets::sync_error(Status::invalid, 0, "the epoll back-end was shut down"); }
  Sock* live(SocketId id) { return find(id); }
  Sync bind_recv_pool(const std::shared_ptr<RecvPool>& pool) {
    if (!pool->bind(this)) return sockets::sync_error(Status::invalid, EINVAL, "recv: the pool serves receives of another back-end");
    return sockets::sync_ok();
  }

  Sock* find(SocketId id) {
    auto it = socks_.find(id);
    return it == socks_.end() ? nullptr : it->second.get();
  }

  // Under mu_. Takes ownership of fd only on success.
  Sync add_socket(int fd, SockKind kind, const std::shared_ptr<Port>& port, std::uint64_t key, SocketId& out) {
    const SocketId id = ++sock_seq_;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = id;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) return sockets::sync_errno(errno, "epoll_ctl(ADD)");
    auto s = std::make_unique<Sock>();
    s->id = id;
    s->fd = fd;
    s->kind = kind;
    s->port = port;
    s->key = key;
    socks_.emplace(id, std::move(s));
    out = id;
    if (one_port_ == nullptr) one_port_ = port.get();
    if (one_port_ != port.get()) multi_port_.store(true, std::memory_order_relaxed);
    port->attach_idle_source(idle_link_);
    return sockets::sync_ok();
  }

  // Under mu_: the application closed s; if it was a session of a limited listener, capacity returns.
  void end_session(Sock& s) {
    if (s.session_of == 0) return;
    if (Sock* l = find(s.session_of); l != nullptr && l->sessions.active > 0) --l->sessions.active;
    s.session_of = 0;
  }

  // Under mu_: deregisters, closes the fd and forgets the socket (its queues must be empty).
  void drop_socket(Sock& s) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
    ::close(s.fd);
    socks_.erase(s.id);
  }

  // Under mu_: every pending op of s completes with aborted (err). Returns how many.
  std::size_t abort_all(Sock& s, int err) { return abort_queues(s, err); }

  // Under mu_: runs whatever can run on s now (never blocks).
  void process(Sock& s) {
    if (s.kind == SockKind::listener) {
      process_accepts(s);
      return;
    }
    if (s.connecting && !process_connect(s)) return;
    process_recvs(s);
    process_sends(s);
  }

  // Returns true when the socket is connected (or failed for good) and its queues may run.
  bool process_connect(Sock& s) {
    int err = s.connect_error;
    if (err == 0) {
      socklen_t l = sizeof err;
      if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
    }
    if (err == 0) {
      sockaddr_storage peer{};
      socklen_t pl = sizeof peer;
      if (::getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) {
        if (errno == ENOTCONN) return false;  // still in progress: EPOLLOUT/EPOLLERR will come
        err = errno;
      }
    }
    s.connecting = false;
    if (err != 0 && s.error == 0) s.error = err;  // queued recv/send fail with the connect's status
    if (s.connect_op) complete(s, std::move(s.connect_op), sockets::status_from_errno(err), err, 0);
    return true;
  }

  void process_accepts(Sock& s) {
    while (!s.rq.empty() && s.rd_ready) {
      int fd = ::accept4(s.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) {
          s.rd_ready = false;
          return;
        }
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;  // that connection is gone; try the next
        std::unique_ptr<Op> o = std::move(s.rq.front());
        s.rq.pop_front();
        complete(s, std::move(o), sockets::status_from_errno(e), e, 0);
        continue;
      }
      if (s.sessions.full()) {  // the documented refusal (backend.h); the accept stays pending
        ++s.sessions.refused;
        sockets::refuse_connection(fd, s.sessions.message);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::unique_ptr<Op> o = std::move(s.rq.front());
      s.rq.pop_front();
      SocketId nid = 0;
      Sync r = add_socket(fd, SockKind::stream, s.port, o->new_key, nid);
      if (!r.ok()) {
        ::close(fd);
        complete(s, std::move(o), r.status, r.native_error, 0);
        continue;
      }
      if (s.sessions.max != 0) {
        ++s.sessions.active;
        socks_.at(nid)->session_of = s.id;
      }
      complete(s, std::move(o), Status::ok, 0, 0, nid);
    }
  }

  void process_recvs(Sock& s) {
    while (!s.rq.empty()) {
      Op& o = *s.rq.front();
      Status st = Status::ok;
      int err = 0;
      std::uint32_t bytes = 0;
      std::vector<std::uint8_t> buf;
      if (o.pool && s.error == 0 && !s.eof) {
        // A pool-backed receive: its first attempt is its issue (as on io_uring, where a queued receive is
        // issued when it reaches the head of the queue); later ones follow readiness.
        const bool first = !o.issued;
        o.issued = true;
        if (!process_pooled(s, first)) return;
        continue;
      }
      if (s.error != 0) {
        err = s.error;
        st = sockets::status_from_errno(err);
      } else if (s.eof) {
        st = Status::eof;
      } else if (o.kind == OpKind::probe) {
        if (!s.rd_ready) return;
        char c;
        ssize_t n = ::recv(s.fd, &c, 1, MSG_PEEK);
        if (n > 0) {
          st = Status::ok;
        } else if (n == 0) {
          s.eof = true;
          st = Status::eof;
        } else {
          err = errno;
          if (err == EAGAIN || err == EWOULDBLOCK) {
            s.rd_ready = false;
            return;
          }
          if (err == EINTR) continue;
          fail_sticky(s, err);
          st = sockets::status_from_errno(err);
        }
      } else {
        if (!s.rd_ready && !s.faults.fails_next(false)) return;
        const int injected = s.faults.on_call(false);
        const std::size_t want = s.faults.cap(std::min<std::size_t>(o.length, kMaxRecvChunk));
        ssize_t n;
        if (injected != 0) {
          n = -1;
          err = injected;
        } else {
          if (want <= scratch_.size()) {  // the usual case: no allocation unless bytes came
            n = ::recv(s.fd, scratch_.data(), want, 0);
            err = n < 0 ? errno : 0;
            if (n > 0) buf.assign(scratch_.data(), scratch_.data() + n);
          } else {
            buf.resize(want);
            n = ::recv(s.fd, buf.data(), buf.size(), 0);
            err = n < 0 ? errno : 0;
          }
        }
        if (n > 0) {
          buf.resize(static_cast<std::size_t>(n));
          bytes = static_cast<std::uint32_t>(n);
          // A TCP recv returns fewer bytes than asked only when it emptied the receive queue, and every
          // arrival after that raises a new edge: the next recv waits for it instead of finding EAGAIN.
          if (injected == 0 && s.short_read_drains && static_cast<std::size_t>(n) < want) s.rd_ready = false;
        } else if (n == 0) {
          s.eof = true;
          st = Status::eof;
          buf.clear();
        } else {
          if (injected == 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
            --s.faults.recv_calls;  // nothing was there: not a call that "happened" for fault counting
            s.rd_ready = false;
            return;
          }
          if (err == EINTR) continue;
          fail_sticky(s, err);
          st = sockets::status_from_errno(err);
          buf.clear();
        }
      }
      std::unique_ptr<Op> op = std::move(s.rq.front());
      s.rq.pop_front();
      complete(s, std::move(op), st, err, bytes, 0, &buf);
    }
  }

  // Under mu_: one attempt of the pool-backed receive at the head of s.rq (recv_pool.h). Returns false
  // when it must wait for readiness, true when it completed.
  bool process_pooled(Sock& s, bool at_submission) {
    Op& o = *s.rq.front();
    char c;
    const ssize_t peek = s.rd_ready ? ::recv(s.fd, &c, 1, MSG_PEEK) : -1;
    const int peek_err = !s.rd_ready ? EAGAIN : peek < 0 ? errno : 0;
    if (peek < 0 && (peek_err == EAGAIN || peek_err == EWOULDBLOCK)) s.rd_ready = false;
    if (peek < 0 && (peek_err == EAGAIN || peek_err == EWOULDBLOCK || peek_err == EINTR)) {
      // Nothing to read. io_uring picks its buffer at issue all the same: an empty pool fails there.
      if (!at_submission || o.pool->stats().available > 0) return false;
      o.pool->note_exhausted();
      std::unique_ptr<Op> op = std::move(s.rq.front());
      s.rq.pop_front();
      complete(s, std::move(op), Status::pool_exhausted, ENOBUFS, 0);
      return true;
    }
    // Data, end of stream or an error is there: this attempt needs a buffer.
    pool::BufferHandle h;
    if (!o.pool->try_acquire(h)) {
      std::unique_ptr<Op> op = std::move(s.rq.front());
      s.rq.pop_front();
      complete(s, std::move(op), Status::pool_exhausted, ENOBUFS, 0);
      return true;
    }
    Status st = Status::ok;
    int err = 0;
    const int injected = s.faults.on_call(false);
    ssize_t n;
    if (injected != 0) {
      n = -1;
      err = injected;
    } else {
      const std::size_t want = s.faults.cap(std::min<std::size_t>(o.length, o.pool->buffer_size()));
      do {
        n = ::recv(s.fd, h.data, want, 0);
      } while (n < 0 && errno == EINTR);
      err = n < 0 ? errno : 0;
    }
    std::vector<std::uint8_t> copy;
    std::uint32_t buffer = kNoPoolBuffer;
    if (n > 0) {
      const auto* b = reinterpret_cast<const std::uint8_t*>(h.data);
      copy.assign(b, b + n);
      buffer = h.index;
    } else {
      o.pool->release(h.index);  // nothing landed in it
      if (n == 0) {
        s.eof = true;
        st = Status::eof;
      } else if (injected == 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
        --s.faults.recv_calls;  // cannot happen after a successful peek under the lock; wait anyway
        s.rd_ready = false;
        return false;
      } else {
        fail_sticky(s, err);
        st = sockets::status_from_errno(err);
      }
    }
    std::unique_ptr<Op> op = std::move(s.rq.front());
    s.rq.pop_front();
    complete(s, std::move(op), st, err, n > 0 ? static_cast<std::uint32_t>(n) : 0, 0, &copy, buffer);
    return true;
  }

  void process_sends(Sock& s) {
    while (!s.sq.empty()) {
      Op& o = *s.sq.front();
      Status st = Status::ok;
      int err = 0;
      bool done = false;
      if (s.error != 0) {
        err = s.error;
        st = sockets::status_from_errno(err);
        done = true;
      }
      bool wrote_now = false;
      while (!done && o.remaining() > 0) {
        if (!s.wr_ready && !s.faults.fails_next(true)) {
          if (o.partial && wrote_now) break;
          return;  // EPOLLOUT will come
        }
        const int injected = s.faults.on_call(true);
        ssize_t n;
        if (injected != 0) {
          n = -1;
          err = injected;
        } else {
          n = ::send(s.fd, o.data.data() + o.sent, s.faults.cap(o.remaining()), MSG_NOSIGNAL);
          err = n < 0 ? errno : 0;
        }
        if (n >= 0) {
          o.account_sent(static_cast<std::size_t>(n));
          if (n > 0) wrote_now = true;
          if (o.partial && wrote_now) break;
          continue;
        }
        if (injected == 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
          --s.faults.send_calls;  // as for recv: EAGAIN is not a counted call
          s.wr_ready = false;
          if (o.partial && wrote_now) break;
          return;  // wait for EPOLLOUT
        }
        if (err == EINTR) continue;
        fail_sticky(s, err);
        st = sockets::status_from_errno(err);
        done = true;
      }
      std::unique_ptr<Op> op = std::move(s.sq.front());
      s.sq.pop_front();
      const auto bytes = static_cast<std::uint32_t>(op->sent);
      complete(s, std::move(op), st, st == Status::ok ? 0 : err, bytes);
    }
  }

  // Under mu_: the epoll events evs[0..n) (id 0 = the stop eventfd, left for the epoll thread).
  void handle_events(const epoll_event* evs, int n) {
    for (int i = 0; i < n; ++i) {
      const std::uint64_t id = evs[i].data.u64;
      if (id == 0) continue;
      if (Sock* s = find(id)) {  // a socket closed meanwhile is simply gone
        const std::uint32_t ev = evs[i].events;
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR)) s->rd_ready = true;
        if (ev & (EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR)) s->short_read_drains = false;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->wr_ready = true;
        process(*s);
      }
    }
  }

  // ---- driven by port waiters (IdleSource; see port.h) ----------------------------------------------------
  // A port waiter that spins polls the epoll set itself (epoll_wait with timeout 0), so on a busy server the
  // recv that ends one wait and the send that follows run on the same thread, with no hand-off to or from
  // the epoll thread. Meanwhile the epoll thread rests (parked), because a thread blocked in epoll_wait would
  // be woken by every event the spinner is about to take; it parks while a waiter drives the set or did
  // within the last kParkMs, and a waiter that stops driving to go to sleep hands the set back at once.
  static constexpr int kParkMs = 1;
  bool spin_begin() noexcept override {
    // Sockets on several ports: a waiter of one port must not hold back the others' completions (their
    // waiters may all be asleep), so only the epoll thread runs the set.
    if (multi_port_.load(std::memory_order_relaxed)) return false;
    std::lock_guard<std::mutex> g(park_mu_);
    if (park_stop_) return false;
    ++spinners_;
    last_spin_ = std::chrono::steady_clock::now();
    return true;
  }
  bool poll_ready() noexcept override {
    epoll_event evs[64];
    const int n = ::epoll_wait(ep_, evs, 64, 0);
    if (n <= 0) return false;
    bool any = false;
    for (int i = 0; i < n && !any; ++i) any = evs[i].data.u64 != 0;
    if (!any) return false;  // only the (level-triggered) stop eventfd: the epoll thread's
    Locked g(*this);
    if (stopped_) return false;
    handle_events(evs, n);
    return true;
  }
  void spin_end(bool going_to_sleep) noexcept override {
    bool wake = false;
    {
      std::lock_guard<std::mutex> g(park_mu_);
      --spinners_;
      if (spinners_ == 0) {
        last_spin_ = std::chrono::steady_clock::now();
        if (going_to_sleep) {
          last_spin_ = {};  // nobody drives the set now: the epoll thread must not wait for kParkMs
          wake = parked_;
        }
      }
    }
    if (wake) park_cv_.notify_one();
  }
  // The epoll thread: rests while port waiters drive the set (see above).
  void park_while_driven() {
    std::unique_lock<std::mutex> g(park_mu_);
    for (;;) {
      if (park_stop_) return;
      const auto now = std::chrono::steady_clock::now();
      const auto until = spinners_ > 0 ? now + std::chrono::milliseconds(kParkMs) : last_spin_ + std::chrono::milliseconds(kParkMs);
      if (spinners_ == 0 && until <= now) return;
      parked_ = true;
      park_cv_.wait_until(g, until);
      parked_ = false;
    }
  }

  void loop() {
    epoll_event evs[64];
    for (;;) {
      park_while_driven();
      int n = ::epoll_wait(ep_, evs, 64, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // the epoll fd is broken: nothing more can be reported
      }
      Locked g(*this);
      if (stopped_) return;
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.u64 == 0) {
          std::uint64_t v;
          [[maybe_unused]] ssize_t r = ::read(wake_, &v, sizeof v);
        }
      }
      handle_events(evs, n);
    }
  }

  const Port* one_port_ = nullptr;           // under mu_: the port of the first socket
  std::atomic<bool> multi_port_{false};      // sockets were associated with more than one port
  std::shared_ptr<IdleLink> idle_link_ = std::make_shared<IdleLink>(static_cast<IdleSource*>(this));
  std::mutex park_mu_;  // spinners_, last_spin_, parked_, park_stop_
  std::condition_variable park_cv_;
  int spinners_ = 0;                               // port waiters driving the set now
  std::chrono::steady_clock::time_point last_spin_{};  // when one last started or stopped driving it
  bool parked_ = false;
  bool park_stop_ = false;
  std::mutex join_mu_;
  int ep_ = -1;
  int wake_ = -1;
  std::thread thread_;
  SocketId sock_seq_ = 0;
  std::unordered_map<SocketId, std::unique_ptr<Sock>> socks_;
  std::vector<std::uint8_t> scratch_ = std::vector<std::uint8_t>(64 * 1024);  // recvs land here (under mu_)
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend(std::string& why) {
  auto b = std::make_unique<EpollBackend>();
  if (!b->start(why)) return nullptr;
  return b;
}

}  // namespace cpspec
