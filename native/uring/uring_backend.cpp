// The io_uring socket back-end: the same semantics as the epoll back-end (see the comment at the top of
// native/epoll/epoll_backend.cpp, which is normative for both), on a real completion queue.
//
// Design:
// - One ring per back-end instance (SQ 256, CQ 4096, IORING_FEAT_NODROP required: a CQ overflow never
//   drops a completion; a submit that returns -EBUSY/-EAGAIN leaves the SQEs queued and the completion
//   thread submits them again after reaping). One completion thread waits in io_uring_wait_cqe, handles
//   every CQE under the back-end's lock and posts the packets to the cpspec::Port.
// - Submissions: any thread PREPARES SQEs under the back-end's one lock, but only the completion thread
//   calls io_uring_enter: a caller wakes it through an eventfd (one write per batch; the completion thread
//   keeps an IORING_OP_POLL_ADD armed on it, multishot where the kernel has it), and the completion thread
//   submits whatever is in the SQ at the end of each batch of CQEs. So every request belongs to the
//   completion thread's task: its task work runs there (callers such as Node's main thread are never
//   interrupted for it) and the exit of a caller thread cancels nothing (catalogue C11). Only a full SQ is
//   entered directly by the caller (rare; a request the kernel then cancels at that thread's exit is
//   resubmitted). The CQ side is touched only by the completion thread. All book-keeping (queues, in-flight
//   markers, sticky states) is under the same lock, so completions of one socket are posted in the order
//   they happened (queued under the lock and posted as it is released, sockets::Outbox; the eventfd write
//   that wakes the completion thread is made after the release too, so neither the woken worker nor the
//   woken completion thread blocks at once on the lock held by the thread that woke it).
// - Sockets are created BLOCKING (io_uring arms its own poll; an O_NONBLOCK socket would make io_uring
//   return -EAGAIN). No blocking system call is ever made on them: the only synchronous I/O is the probe's
//   recv(MSG_PEEK|MSG_DONTWAIT) and the first recv/send(MSG_DONTWAIT) attempt of an op (see below).
// - Per socket FIFO queues as in epoll (recv side: recv/probe/accept; send side), with at most ONE
//   request in the kernel per side (catalogue O2/O3): recv = first one non-blocking recv(2) on the thread
//   that runs the queue (on a busy connection the bytes are often there already), then, on EAGAIN only,
//   IORING_OP_RECV (a pool-backed receive always goes to the kernel, which picks its buffer); probe = IORING_OP_POLL_ADD
//   (POLLIN) then recv(MSG_PEEK|MSG_DONTWAIT) to classify ok/eof/reset (re-armed on EAGAIN); accept =
//   IORING_OP_ACCEPT; send = first one non-blocking send(2) on the thread that runs the queue (the issuing
//   thread, usually: what io_uring would try at submission, without a round trip through the completion
//   thread; it completes the op when the socket has room), then IORING_OP_SEND with MSG_NOSIGNAL for what
//   is left, resubmitting the remainder (send-all mode, exact count) or completing after the first call
//   that wrote anything (partial mode); connect =
//   IORING_OP_CONNECT (recv/send wait for it). Each SQE is one "call" for fault injection (counted at
//   submission; a request cancelled before it ran is uncounted again).
// - Cancellation (cancel(op), cancel(all), close, shutdown_all) is synchronous and always completes the
//   op with aborted, exactly as epoll does: an op still queued in user space is completed at once; an op
//   whose request is in the kernel is marked "aborting", an IORING_OP_ASYNC_CANCEL is submitted (by
//   user_data; for close by fd with IORING_ASYNC_CANCEL_FD|ALL when the kernel has it, >= 5.19), and the
//   calling thread waits (lock released) until the request's CQE was reaped. A CQE that raced to
//   completion is not lost: its result is salvaged into the socket, never posted - received bytes go to a
//   per-socket carry buffer that the next recv/probe sees first (so "unread data stays for the next recv"
//   holds), a received end of stream / connection error becomes the sticky state, an accepted connection
//   is kept for the next accept, bytes a send wrote are counted in the aborted packet (bytes = exactly the
//   prefix the peer gets). Then the canceller posts aborted. The cancelled op is therefore always "found"
//   if it was pending in our book-keeping when cancel was called, and completes exactly once.
// - close(fd) happens only after every in-flight request of the socket completed (buffers stay alive until
//   then; catalogue C4: closing an fd does not complete pending io_uring requests). If the cancels do not
//   finish within 2 s (a request running in io-wq), shutdown(SHUT_RDWR) is used to kick it, then we wait on.
// - Pool-backed receives (recv_pool.h, "sink" mode): each pool bound here gets a provided buffer ring
//   (IORING_REGISTER_PBUF_RING, its own group id) holding every free buffer of the pool; the receive is an
//   IORING_OP_RECV with IOSQE_BUFFER_SELECT, so the kernel picks the buffer when it attempts the receive and
//   fails it with -ENOBUFS (-> pool_exhausted) when the ring is empty. The buffer id comes back in the CQE
//   flags; released buffers go back to the ring from any thread (BufRing::give_back). A buffer selected by
//   a receive that ends without data (FIN, error, a cancel that raced) is recycled into the ring; bytes a
//   cancelled pooled receive took go to the carry buffer like any other. A pooled receive served from carry
//   needs a buffer from the ring at its attempt, as any pooled receive: it submits a buffer-select read of
//   one byte from /dev/zero (Req::carry), so the kernel hands it a free buffer of the ring (the bytes of
//   carry are then copied in) or fails it with -ENOBUFS exactly when the ring is empty. Buffers never
//   wait in user space, so a kernel receive finds every free buffer.
// - Session limits as in epoll (finish_accept refuses; close() ends the session).
// - CPSPEC_URING_SQ_ENTRIES / CPSPEC_URING_CQ_ENTRIES shrink the ring (tests of CQ overflow).
// - CPSPEC_DISABLE_URING=1 in the environment makes setup fail exactly as a seccomp denial of
//   io_uring_setup would: nullptr, why = "io_uring_setup: EPERM (CPSPEC_DISABLE_URING=1)".
// - Setup also fails (nullptr + why) without IORING_FEAT_NODROP or when an opcode used here is missing
//   (io_uring_get_probe_ring).
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "backend.h"
#include "sockets_common.h"
#include "spin.h"

namespace cpspec {
namespace {

using sockets::FaultState;
using sockets::Op;
using sockets::OpKind;

constexpr std::size_t kMaxRecvChunk = std::size_t{4} << 20;
constexpr std::size_t kSockRecvBuf = 64 * 1024;  // Sock::rbuf
constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;

// Sides of a socket, each with at most one request in the kernel.
constexpr int kConnect = 0, kRecvSide = 1, kSendSide = 2;
constexpr unsigned kAllSides = 7;
constexpr int kByFd = -1;  // Req::side of a cancel by fd

using sockets::SockKind;

struct Sock : sockets::SockBase {
  sockaddr_storage peer{};
  socklen_t peer_len = 0;
  bool closing = false;  // close()/shutdown_all() in progress: unknown to callers, submits nothing
  std::vector<std::uint8_t> carry;  // bytes a cancelled recv took from the kernel, for the next recv
  std::size_t carry_off = 0;
  std::deque<int> accepted;         // connections a cancelled accept took, for the next accept
  std::uint32_t kernel_cancels = 0;  // requests the kernel cancelled on its own (see on_cqe)
  std::uint64_t req[3] = {0, 0, 0};  // user_data of the side's request in the kernel, 0 = none
  // Where a plain recv of at most kSockRecvBuf bytes lands (one recv in the kernel per socket at most, so
  // one buffer serves them all; it lives until the socket is forgotten, i.e. after its last CQE). The
  // completion copies out exactly the bytes received: no allocation + zero-fill of the full length per
  // recv. Larger recvs use Op::data as before.
  std::unique_ptr<std::uint8_t[]> rbuf;
  bool rbuf_used = false;  // the side's request in the kernel (if any) reads into rbuf
  bool abort[3] = {false, false, false};  // the side's in-flight head op is being cancelled
  std::size_t carry_avail() const noexcept { return carry.size() - carry_off; }
  bool inflight(unsigned mask) const noexcept {
    for (int i = 0; i < 3; ++i)
      if ((mask & (1u << i)) && req[i] != 0) return true;
    return false;
  }
};

enum class ReqKind : std::uint8_t { op, cancel, wake };
struct BufRing;
struct Req {
  ReqKind kind = ReqKind::op;
  SocketId sock = 0;
  int side = 0;
  BufRing* ring = nullptr;  // a pool-backed receive: the buffer ring it selects from
  bool carry = false;       // with ring: the /dev/zero read that takes a buffer for bytes in carry
};

// io_uring buffer rings hold at most 32768 entries and name buffers with 16-bit ids.
constexpr std::uint32_t kMaxRingBuffers = 32768;

// A pool bound to this back-end's receives (recv_pool.h, sink mode): a provided buffer ring registered
// under its own group id, holding every free buffer of the pool. The application's releases come back
// through give_back() from any thread; the kernel takes buffers from the head as receives need them.
struct BufRing final : RecvPool::Sink {
  std::shared_ptr<RecvPool> pool;
  io_uring_buf_ring* br = nullptr;
  std::size_t mem_size = 0;
  unsigned entries = 0;
  std::uint16_t bgid = 0;
  bool registered = false;
  std::mutex mu;  // the ring's tail (user space adds)

  void add_locked(std::uint32_t bid) {
    io_uring_buf_ring_add(br, pool->buffers().data(bid), static_cast<unsigned>(pool->buffer_size()),
                          static_cast<unsigned short>(bid), io_uring_buf_ring_mask(entries), 0);
    io_uring_buf_ring_advance(br, 1);
  }
  void give_back(std::uint32_t bid) override {
    std::lock_guard<std::mutex> g(mu);
    add_locked(bid);
  }
  // A buffer the kernel selected that is not handed to the application (end of stream, error, cancel).
  void recycle(std::uint32_t bid) {
    std::lock_guard<std::mutex> g(mu);
    add_locked(bid);
  }
};

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : std::to_string(e);
}

thread_local bool t_is_reaper = false;  // this thread is a back-end's completion thread

bool kernel_at_least(int major, int minor) {
  utsname u{};
  if (uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

class UringBackend final : public sockets::BackendCore<UringBackend, Sock> {
 public:
  UringBackend() = default;

  bool start(std::string& why) {
    const char* dis = std::getenv("CPSPEC_DISABLE_URING");
    const bool disabled = dis != nullptr && std::strcmp(dis, "1") == 0;
    // CPSPEC_URING_SQ_ENTRIES / CPSPEC_URING_CQ_ENTRIES shrink the ring (tests: CP-POOL-008 with a CQ far
    // smaller than the burst of completions, so the kernel's overflow list is exercised).
    auto env_entries = [](const char* name, unsigned dflt) {
      const char* v = std::getenv(name);
      if (v == nullptr) return dflt;
      const long n = std::strtol(v, nullptr, 10);
      return n >= 1 && n <= 32768 ? static_cast<unsigned>(n) : dflt;
    };
    const unsigned sq = env_entries("CPSPEC_URING_SQ_ENTRIES", kSqEntries);
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = std::max(env_entries("CPSPEC_URING_CQ_ENTRIES", kCqEntries), sq);
    const int rc = disabled ? -EPERM : io_uring_queue_init_params(sq, &ring_, &p);
    if (rc < 0) {
      why = "io_uring_setup: " + errno_name(-rc) + (disabled ? " (CPSPEC_DISABLE_URING=1)" : "");
      return false;
    }
    ring_ok_ = true;
    if ((p.features & IORING_FEAT_NODROP) == 0) {
      why = "io_uring: no IORING_FEAT_NODROP (completions could be dropped on CQ overflow)";
      return false;
    }
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    if (probe == nullptr) {
      why = "io_uring: cannot probe the supported opcodes (kernel too old)";
      return false;
    }
    const std::pair<int, const char*> ops[] = {
        {IORING_OP_NOP, "NOP"},         {IORING_OP_RECV, "RECV"},         {IORING_OP_SEND, "SEND"},
        {IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_CONNECT, "CONNECT"},   {IORING_OP_POLL_ADD, "POLL_ADD"},
        {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}};
    for (const auto& [op, name] : ops) {
      if (!io_uring_opcode_supported(probe, op)) {
        why = std::string("io_uring: opcode IORING_OP_") + name + " not supported";
        io_uring_free_probe(probe);
        return false;
      }
    }
    // IORING_OP_READ (5.6) with buffer select takes a buffer of a pool's ring for bytes in carry (see the
    // top of this file); without it such a receive reports pool-exhausted.
    if (io_uring_opcode_supported(probe, IORING_OP_READ)) zero_fd_ = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    io_uring_free_probe(probe);
    // IORING_ASYNC_CANCEL_FD / _ALL (5.19). CPSPEC_URING_NO_CANCEL_FD=1 forces the per-request fallback
    // (for the tests); a kernel that rejects the flags with -EINVAL switches to it at run time as well.
    const char* nofd = std::getenv("CPSPEC_URING_NO_CANCEL_FD");
    cancel_fd_ = kernel_at_least(5, 19) && !(nofd != nullptr && std::strcmp(nofd, "1") == 0);
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) {
      why = std::string("eventfd: ") + std::strerror(errno);
      return false;
    }
    index_ = sockets::register_backend(this);
    try {
      thread_ = std::thread(&UringBackend::loop, this);
    } catch (const std::exception& e) {
      why = std::string("cannot start the io_uring completion thread: ") + e.what();
      return false;
    }
    return true;
  }

  ~UringBackend() override {
    sockets::unregister_backend(index_);
    shutdown_all();
    for (auto& [p, r] : rings_) {
      r->pool->detach_sink();  // no give_back after this
      if (r->registered) io_uring_unregister_buf_ring(&ring_, r->bgid);
      if (r->br != nullptr) ::munmap(r->br, r->mem_size);
    }
    rings_.clear();
    if (ring_ok_ && std::getenv("CPSPEC_URING_CQ_ENTRIES") != nullptr) {
      std::fprintf(stderr, "cpspec uring: completion queue of %u entries; reaps that found it overflowed: %llu\n",
                   ring_.cq.ring_entries, static_cast<unsigned long long>(cq_overflows_));
    }
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (efd_ >= 0) ::close(efd_);
    if (zero_fd_ >= 0) ::close(zero_fd_);
  }

  const char* name() const noexcept override { return "uring"; }
  std::uint64_t cq_overflows() const noexcept {
    std::lock_guard<std::mutex> g(mu_);
    return cq_overflows_;
  }

  Sync listen(const std::shared_ptr<Port>& port, std::uint64_t key, const std::string& host, std::uint16_t bind_port,
              int backlog, SocketId& out, std::uint16_t& bound_port) override {
    out = 0;
    bound_port = 0;
    if (!port) return sockets::sync_error(Status::invalid, EINVAL, "listen: no port");
    int fd = -1;
    if (Sync r = sockets::open_listener(host, bind_port, backlog, /*nonblocking=*/false, fd, bound_port); !r.ok()) return r;
    Locked g(*this);
    if (stopped_) {
      ::close(fd);
      return stopped_error();
    }
    out = add_socket(fd, SockKind::listener, port, key).id;
    return sockets::sync_ok();
  }

  Sync connect(const std::shared_ptr<Port>& port, std::uint64_t key, std::uint64_t token, const std::string& host,
               std::uint16_t remote_port, SocketId& out, OpId& op) override {
    out = 0;
    op = 0;
    if (!port) return sockets::sync_error(Status::invalid, EINVAL, "connect: no port");
    int fd = -1;
    sockaddr_storage ss;
    socklen_t len = 0;
    if (Sync r = sockets::open_stream_for(host, remote_port, /*nonblocking=*/false, fd, ss, len); !r.ok()) return r;
    Locked g(*this);
    if (stopped_) {
      ::close(fd);
      return stopped_error();
    }
    Sock& s = add_socket(fd, SockKind::stream, port, key);
    s.peer = ss;
    s.peer_len = len;
    s.connecting = true;
    auto o = new_op(OpKind::connect, token);
    op = o->id;
    s.connect_op = std::move(o);
    out = s.id;
    process(s);
    return sockets::sync_ok();
  }

  Sync shutdown(SocketId id, bool send_dir, bool recv_dir) override {
    Locked g(*this);
    Sock* s = find_live(id);
    if (s == nullptr) return stopped_ ? stopped_error() : sockets::sync_unknown_socket(id);
    if (!send_dir && !recv_dir) return sockets::sync_ok();
    const int how = send_dir && recv_dir ? SHUT_RDWR : send_dir ? SHUT_WR : SHUT_RD;
    if (::shutdown(s->fd, how) != 0) return sockets::sync_errno(errno, "shutdown");
    return sockets::sync_ok();  // armed requests see the shutdown through the socket's wake-up
  }

  Sync close(SocketId id, bool abortive) override {
    Locked g(*this);
    std::unique_lock<std::mutex>& lk = g.lk;
    Sock* s = find_live(id);
    if (s == nullptr) return stopped_ ? stopped_error() : sockets::sync_unknown_socket(id);
    if (abortive) {
      linger l{1, 0};
      ::setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    s->closing = true;
    if (s->session_of != 0) {  // a session ends when the application closes it
      if (Sock* l = find_any(s->session_of); l != nullptr && l->sessions.active > 0) --l->sessions.active;
      s->session_of = 0;
    }
    begin_abort(*s, kAllSides, cancel_fd_);
    wait_quiet(lk, {id}, kAllSides);
    if (Sock* c = find_any(id)) finish_close(*c);
    return sockets::sync_ok();
  }

  Sync cancel(SocketId id, OpId op, bool& found) override {
    found = false;
    Locked g(*this);
    std::unique_lock<std::mutex>& lk = g.lk;
    Sock* s = find_live(id);
    if (s == nullptr) return stopped_ ? stopped_error() : sockets::sync_unknown_socket(id);
    if (op == 0) {
      if (!s->connect_op && s->rq.empty() && s->sq.empty()) return sockets::sync_ok();
      found = true;
      // Loop: another thread may have submitted a new op while we waited (its buffer must not be freed
      // under the kernel); it is cancelled too.
      while (s->inflight(kAllSides)) {
        begin_abort(*s, kAllSides, cancel_fd_);
        wait_quiet(lk, {id}, kAllSides);
        s = find_live(id);
        if (s == nullptr) return sockets::sync_ok();  // closed meanwhile: close completed everything
      }
      abort_all(*s, ECANCELED);
      process(*s);
      return sockets::sync_ok();
    }
    int side = -1;
    if (s->connect_op && s->connect_op->id == op) side = kConnect;
    for (int sd : {kRecvSide, kSendSide}) {
      auto& q = sd == kRecvSide ? s->rq : s->sq;
      for (auto& o : q)
        if (o->id == op) side = sd;
    }
    if (side < 0) return sockets::sync_ok();
    found = true;
    const bool head = side == kConnect || (side == kRecvSide ? s->rq.front()->id == op : s->sq.front()->id == op);
    if (head && s->req[side] != 0) {
      begin_abort(*s, 1u << side, false);
      wait_quiet(lk, {id}, 1u << side);
      s = find_live(id);
      if (s == nullptr) return sockets::sync_ok();
    }
    if (side == kConnect) {
      if (s->connect_op && s->connect_op->id == op) {
        complete(*s, std::move(s->connect_op), Status::aborted, ECANCELED, 0);
        s->error = ECANCELED;  // the connection attempt is abandoned: the socket is unusable
        s->connecting = false;
        s->abort[kConnect] = false;
      }
    } else {
      auto& q = side == kRecvSide ? s->rq : s->sq;
      for (auto it = q.begin(); it != q.end(); ++it) {
        if ((*it)->id != op) continue;
        if (it == q.begin()) s->abort[side] = false;
        std::unique_ptr<Op> o = std::move(*it);
        q.erase(it);
        const auto bytes = o->kind == OpKind::send ? static_cast<std::uint32_t>(o->sent) : 0u;
        complete(*s, std::move(o), Status::aborted, ECANCELED, bytes);
        break;
      }
    }
    process(*s);
    return sockets::sync_ok();
  }

  void shutdown_all() override {
    {
      Locked g(*this);
      std::unique_lock<std::mutex>& lk = g.lk;
      if (!stopped_) {
        stopped_ = true;
        std::vector<SocketId> mine;
        for (auto& [id, s] : socks_) {
          if (s->closing) continue;  // a close() in progress finishes it
          s->closing = true;
          begin_abort(*s, kAllSides, cancel_fd_);
          mine.push_back(id);
        }
        wait_quiet(lk, mine, kAllSides);
        for (SocketId id : mine)
          if (Sock* s = find_any(id)) finish_close(*s);
        // Wait for close() calls still in progress on other threads.
        release(lk);
        lk.lock();
        cv_.wait(lk, [&] { return socks_.empty(); });
      }
      if (!exit_requested_) {
        exit_requested_ = true;  // the completion thread stops once its last request completed
        wake_reaper();
      }
    }
    std::lock_guard<std::mutex> jg(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  friend class sockets::BackendCore<UringBackend, Sock>;
  static Sync stopped_error() { return sockets::sync_error(Status::invalid, 0, "the io_uring back-end was shut down"); }
  Sock* live(SocketId id) { return find_live(id); }
  Sync bind_recv_pool(const std::shared_ptr<RecvPool>& pool) { return ring_for(pool); }

  Sock* find_any(SocketId id) {
    auto it = socks_.find(id);
    return it == socks_.end() ? nullptr : it->second.get();
  }
  Sock* find_live(SocketId id) {
    Sock* s = find_any(id);
    return s != nullptr && !s->closing ? s : nullptr;
  }

  Sock& add_socket(int fd, SockKind kind, const std::shared_ptr<Port>& port, std::uint64_t key) {
    auto s = std::make_unique<Sock>();
    s->id = ++sock_seq_;
    s->fd = fd;
    s->kind = kind;
    s->port = port;
    s->key = key;
    Sock& r = *s;
    socks_.emplace(r.id, std::move(s));
    return r;
  }

  // Under mu_, with nothing of s in the kernel: completes everything with aborted, closes, forgets.
  void finish_close(Sock& s) {
    abort_all(s, ECANCELED);
    for (int fd : s.accepted) ::close(fd);
    ::close(s.fd);
    socks_.erase(s.id);
    cv_.notify_all();
  }

  // Under mu_: the buffer ring of pool, registered on first use (binds the pool: recv_pool.h).
  Sync ring_for(const std::shared_ptr<RecvPool>& pool) {
    if (rings_.count(pool.get()) != 0) return sockets::sync_ok();
    if (!pool->bind(this)) return sockets::sync_error(Status::invalid, EINVAL, "recv: the pool serves receives of another back-end");
    if (pool->capacity() > kMaxRingBuffers)
      return sockets::sync_error(Status::invalid, EINVAL, "recv: an io_uring buffer ring holds at most 32768 buffers; the pool has " + std::to_string(pool->capacity()));
    if (pool->buffer_size() > 0xFFFFFFFFu) return sockets::sync_error(Status::invalid, EINVAL, "recv: pool buffers too large for io_uring");
    if (next_bgid_ == 0xFFFF) return sockets::sync_error(Status::invalid, ENOSPC, "recv: no io_uring buffer group id left");
    auto r = std::make_unique<BufRing>();
    r->pool = pool;
    r->entries = 1;
    while (r->entries < pool->capacity()) r->entries <<= 1;
    r->mem_size = r->entries * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, r->mem_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return sockets::sync_errno(errno, "recv: mmap of the buffer ring");
    r->br = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(r->br);
    r->bgid = next_bgid_++;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = r->entries;
    reg.bgid = r->bgid;
    const int rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) {
      ::munmap(mem, r->mem_size);
      return sockets::sync_error(Status::invalid, -rc, "recv: io_uring_register_buf_ring: " + errno_name(-rc));
    }
    r->registered = true;
    std::vector<std::uint32_t> taken;
    pool->attach_sink(r.get(), taken);
    {
      std::lock_guard<std::mutex> g(r->mu);
      for (std::uint32_t bid : taken) r->add_locked(bid);
    }
    rings_.emplace(pool.get(), std::move(r));
    return sockets::sync_ok();
  }

  // ---- submission (under mu_) ----------------------------------------------------------------------------
  // Requests in the kernel live in a slab: user_data = (sequence << 32) | (slot + 1), so finding one is an
  // index and a compare (no hash-map node per request). Never 0 (0 = "ignore this CQE").
  std::uint64_t new_req(ReqKind k, SocketId sock, int side, BufRing* ring = nullptr) {
    std::uint32_t i;
    if (!req_free_.empty()) {
      i = req_free_.back();
      req_free_.pop_back();
    } else {
      i = static_cast<std::uint32_t>(req_slots_.size());
      req_slots_.emplace_back();
    }
    const std::uint64_t u = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(++req_seq_)) << 32) | (std::uint64_t{i} + 1);
    req_slots_[i] = ReqSlot{u, Req{k, sock, side, ring}};
    ++reqs_live_;
    return u;
  }
  // The request of user_data u, removed from the slab; false if there is none.
  bool take_req(std::uint64_t u, Req& out) {
    const std::uint64_t i = (u & 0xFFFFFFFFu) - 1;
    if ((u & 0xFFFFFFFFu) == 0 || i >= req_slots_.size() || req_slots_[i].u != u) return false;
    out = req_slots_[i].r;
    req_slots_[i].u = 0;
    req_free_.push_back(static_cast<std::uint32_t>(i));
    --reqs_live_;
    return true;
  }

  // io_uring_enter. Normally made by the completion thread only (see submit_now); -EBUSY/-EAGAIN (CQ overflow
  // backlog, memory) leave the SQEs in the SQ, and the completion thread submits them after reaping.
  void enter() {
    const int r = io_uring_submit(&ring_);
    if (r < 0 && r != -EBUSY && r != -EAGAIN && r != -EINTR) std::fprintf(stderr, "cpspec uring: io_uring_submit: %s\n", std::strerror(-r));
  }

  // Makes the prepared SQEs reach the kernel. On the completion thread: it submits them at the end of its
  // batch. On any other thread: it wakes the completion thread (eventfd), which submits them, so every
  // request belongs to the completion thread's task (task work runs there; the exit of the issuing thread
  // cancels nothing: catalogue C11).
  void submit_now() {
    if (!t_is_reaper) wake_reaper();
  }

  // Under mu_. The eventfd write itself happens when mu_ is released (release()): the completion thread it
  // wakes then finds the lock free instead of blocking on it at once.
  void wake_reaper() {
    if (wake_pending_ || efd_ < 0) return;
    wake_pending_ = true;
    kick_ = true;
  }

  // ---- leaving the lock -----------------------------------------------------------------------------------
  // Completions are queued in outbox_ under mu_ and posted, in order, when mu_ is released (see Outbox in
  // sockets_common.h); the completion thread's wake-up is written then too.
  void release(std::unique_lock<std::mutex>& lk) {
    if (!lk.owns_lock()) return;
    const bool kick = kick_;
    kick_ = false;
    outbox_.release(lk, data_, kick ? &UringBackend::kick_reaper : nullptr, this);
  }
  static void kick_reaper(void* self) {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(static_cast<UringBackend*>(self)->efd_, &one, sizeof one);
  }


  // True when an SQE can be taken. A full SQ is submitted at once, whatever the thread (rare: the completion
  // thread drains the SQ after each wake-up).
  bool ensure_sqe() {
    if (io_uring_sq_space_left(&ring_) == 0) enter();
    return io_uring_sq_space_left(&ring_) > 0;
  }

  // The completion thread's wake-up: a POLL_ADD on the eventfd (no buffer, so nothing the kernel could write
  // to after teardown), re-armed after each wake-up until exit is requested.
  // A CQE of the multishot wake-up poll that keeps it armed (IORING_CQE_F_MORE): one per eventfd write
  // (writes are one per wake_pending_ episode). The counter is not read: the poll fires on each write's
  // wake-up, not on the level, so nothing spins, and the read + re-arm of a one-shot poll are saved.
  bool on_wake_more(std::uint64_t u, int res, unsigned flags) {
    if ((flags & IORING_CQE_F_MORE) == 0 || res < 0) return false;
    const std::uint64_t i = (u & 0xFFFFFFFFu) - 1;
    if ((u & 0xFFFFFFFFu) == 0 || i >= req_slots_.size() || req_slots_[i].u != u || req_slots_[i].r.kind != ReqKind::wake) return false;
    wake_pending_ = false;
    return true;
  }

  void arm_wake() {
    if (!ensure_sqe()) return;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (wake_multishot_) {
      io_uring_prep_poll_multishot(sqe, efd_, POLLIN);
    } else {
      io_uring_prep_poll_add(sqe, efd_, POLLIN);
    }
    io_uring_sqe_set_data64(sqe, new_req(ReqKind::wake, 0, 0));
    wake_armed_ = true;
  }

  // True when an SQE can be taken; otherwise s is retried by the completion thread after its next reap.
  bool sqe_or_retry(Sock& s) {
    if (ensure_sqe()) return true;
    retry_.insert(s.id);
    wake_reaper();
    return false;
  }

  io_uring_sqe* take_sqe(Sock& s, int side, BufRing* ring = nullptr) {
    if (!sqe_or_retry(s)) return nullptr;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    const std::uint64_t u = new_req(ReqKind::op, s.id, side, ring);
    s.req[side] = u;
    io_uring_sqe_set_data64(sqe, u);
    return sqe;
  }

  // Marks the in-flight requests of the sides in mask as aborting and asks the kernel to cancel them.
  void begin_abort(Sock& s, unsigned mask, bool by_fd) {
    bool any = false;
    for (int i = 0; i < 3; ++i) {
      if (!(mask & (1u << i)) || s.req[i] == 0) continue;
      any = true;
      if (s.abort[i]) continue;  // someone is already cancelling it
      s.abort[i] = true;
      if (by_fd) continue;
      if (!ensure_sqe()) continue;  // cannot happen in practice; the wait falls back to shutdown(2)
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      io_uring_prep_cancel64(sqe, s.req[i], 0);
      io_uring_sqe_set_data64(sqe, new_req(ReqKind::cancel, s.id, i));
    }
    if (by_fd && any && ensure_sqe()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      io_uring_prep_cancel_fd(sqe, s.fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, new_req(ReqKind::cancel, s.id, kByFd));
    }
    if (any) submit_now();
  }

  // Releases mu_ until none of the sockets has a request of the masked sides in the kernel.
  void wait_quiet(std::unique_lock<std::mutex>& lk, const std::vector<SocketId>& ids, unsigned mask) {
    // What is queued (the cancels' wake-up, completions) must go out before we sleep on cv_.
    release(lk);
    lk.lock();
    auto quiet = [&] {
      for (SocketId id : ids) {
        Sock* s = find_any(id);
        if (s != nullptr && s->inflight(mask)) return false;
      }
      return true;
    };
    if (cv_.wait_for(lk, std::chrono::seconds(2), quiet)) return;
    // A request the cancel could not stop (running in io-wq): wake it through the socket itself.
    for (SocketId id : ids)
      if (Sock* s = find_any(id); s != nullptr && s->inflight(mask)) ::shutdown(s->fd, SHUT_RDWR);
    cv_.wait(lk, quiet);
  }

  // ---- completion (under mu_) ----------------------------------------------------------------------------
  // Under mu_: every pending op of s completes with err (aborted for ECANCELED); a pending connect leaves
  // the socket unusable. Returns how many.
  std::size_t abort_all(Sock& s, int err) {
    if (s.connect_op) {
      s.connecting = false;
      if (s.error == 0) s.error = err;
    }
    const std::size_t n = abort_queues(s, err);
    s.abort[0] = s.abort[1] = s.abort[2] = false;
    return n;
  }

  void process(Sock& s) {
    if (s.closing) return;
    if (s.kind == SockKind::listener) {
      process_accepts(s);
      return;
    }
    if (s.connecting) {
      if (s.connect_op && s.req[kConnect] == 0 && !s.abort[kConnect]) {
        if (io_uring_sqe* sqe = take_sqe(s, kConnect)) {
          io_uring_prep_connect(sqe, s.fd, reinterpret_cast<sockaddr*>(&s.peer), s.peer_len);
          submit_now();
        }
      }
      return;
    }
    process_recvs(s);
    process_sends(s);
  }

  void finish_accept(Sock& s, int fd) {
    if (s.sessions.full()) {  // the documented refusal (backend.h); the accept stays pending
      ++s.sessions.refused;
      sockets::refuse_connection(fd, s.sessions.message);
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::unique_ptr<Op> o = std::move(s.rq.front());
    s.rq.pop_front();
    Sock& n = add_socket(fd, SockKind::stream, s.port, o->new_key);
    if (s.sessions.max != 0) {
      ++s.sessions.active;
      n.session_of = s.id;
    }
    complete(s, std::move(o), Status::ok, 0, 0, n.id);
  }

  void process_accepts(Sock& s) {
    while (!s.rq.empty() && s.req[kRecvSide] == 0 && !s.abort[kRecvSide]) {
      if (!s.accepted.empty()) {
        const int fd = s.accepted.front();
        s.accepted.pop_front();
        finish_accept(s, fd);
        continue;
      }
      if (io_uring_sqe* sqe = take_sqe(s, kRecvSide)) {
        io_uring_prep_accept(sqe, s.fd, nullptr, nullptr, SOCK_CLOEXEC);
        submit_now();
      }
      return;
    }
  }

  void process_recvs(Sock& s) {
    while (!s.rq.empty() && s.req[kRecvSide] == 0 && !s.abort[kRecvSide]) {
      Op& o = *s.rq.front();
      Status st = Status::ok;
      int err = 0;
      std::uint32_t bytes = 0;
      std::vector<std::uint8_t> buf;
      if (s.carry_avail() > 0 && o.pool) {  // bytes in carry, into a buffer the ring hands over now
        if (zero_fd_ < 0) {  // cannot take one from the ring (no /dev/zero): report exhausted, lose nothing
          o.pool->note_exhausted();
          std::unique_ptr<Op> op = std::move(s.rq.front());
          s.rq.pop_front();
          complete(s, std::move(op), Status::pool_exhausted, ENOBUFS, 0);
          continue;
        }
        BufRing* ring = rings_.at(o.pool.get()).get();
        if (io_uring_sqe* sqe = take_sqe(s, kRecvSide, ring)) {
          io_uring_prep_read(sqe, zero_fd_, nullptr, 1, 0);
          sqe->flags |= IOSQE_BUFFER_SELECT;
          sqe->buf_group = ring->bgid;
          req_slots_[(s.req[kRecvSide] & 0xFFFFFFFFu) - 1].r.carry = true;
          submit_now();
        }
        return;
      }
      if (s.carry_avail() > 0) {  // bytes a cancelled recv took: they come first
        if (o.kind == OpKind::recv) {
          const std::size_t n = std::min<std::size_t>(o.length, s.carry_avail());
          buf.assign(s.carry.begin() + static_cast<std::ptrdiff_t>(s.carry_off),
                     s.carry.begin() + static_cast<std::ptrdiff_t>(s.carry_off + n));
          s.carry_off += n;
          if (s.carry_avail() == 0) {
            s.carry.clear();
            s.carry_off = 0;
          }
          bytes = static_cast<std::uint32_t>(n);
        }
      } else if (s.error != 0) {
        err = s.error;
        st = sockets::status_from_errno(err);
      } else if (s.eof) {
        st = Status::eof;
      } else if (o.kind == OpKind::probe) {
        if (io_uring_sqe* sqe = take_sqe(s, kRecvSide)) {
          io_uring_prep_poll_add(sqe, s.fd, POLLIN);
          submit_now();
        }
        return;
      } else {
        if (!sqe_or_retry(s)) return;
        const int injected = s.faults.on_call(false);
        if (injected == 0 && o.pool) {  // the kernel picks the buffer from the pool's ring (recv_pool.h)
          BufRing* ring = rings_.at(o.pool.get()).get();
          const std::size_t want = s.faults.cap(std::min<std::size_t>(o.length, o.pool->buffer_size()));
          io_uring_sqe* sqe = take_sqe(s, kRecvSide, ring);
          io_uring_prep_recv(sqe, s.fd, nullptr, want, 0);
          sqe->flags |= IOSQE_BUFFER_SELECT;
          sqe->buf_group = ring->bgid;
          submit_now();
          return;
        }
        if (injected == 0) {
          const std::size_t want = s.faults.cap(std::min<std::size_t>(o.length, kMaxRecvChunk));
          std::uint8_t* into = nullptr;
          s.rbuf_used = want <= kSockRecvBuf;
          if (s.rbuf_used) {
            if (!s.rbuf) s.rbuf.reset(new std::uint8_t[kSockRecvBuf]);  // uninitialised on purpose
            into = s.rbuf.get();
          } else {
            o.data.resize(want);
            into = o.data.data();
          }
          // First one non-blocking recv(2) right here (as the send does; see try_send_inline): on a busy
          // connection the bytes are often there already, and the op completes with no round trip
          // through the kernel's queue and the completion thread. Only EAGAIN goes on to an
          // IORING_OP_RECV, and the two together are one "call" for fault injection.
          ssize_t n;
          do {
            n = ::recv(s.fd, into, want, MSG_DONTWAIT);
          } while (n < 0 && errno == EINTR);
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            io_uring_sqe* sqe = take_sqe(s, kRecvSide);
            io_uring_prep_recv(sqe, s.fd, into, want, 0);
            submit_now();
            return;
          }
          finish_recv(s, n < 0 ? -errno : n);
          continue;
        }
        err = injected;
        fail_sticky(s, err);
        st = sockets::status_from_errno(err);
      }
      std::unique_ptr<Op> op = std::move(s.rq.front());
      s.rq.pop_front();
      complete(s, std::move(op), st, err, bytes, 0, &buf);
    }
  }

  void process_sends(Sock& s) {
    while (!s.sq.empty() && s.req[kSendSide] == 0 && !s.abort[kSendSide]) {
      Op& o = *s.sq.front();
      Status st = Status::ok;
      int err = 0;
      if (s.error != 0) {
        err = s.error;
        st = sockets::status_from_errno(err);
      } else if (o.remaining() > 0) {
        // First a non-blocking send(2) right here, on the issuing thread, as io_uring itself would try at
        // submission: when the socket has room (the usual case) the op completes now and its packet is
        // posted as the lock is released, with no round trip through the completion thread. Only what
        // does not fit goes to the kernel as an IORING_OP_SEND. Each is one "call" for fault injection.
        const int inl = try_send_inline(s, o);
        if (inl > 0) continue;  // completed: the next op of the queue
        if (inl == 0) {
          if (!sqe_or_retry(s)) return;
          err = s.faults.on_call(true);
          if (err == 0) {
            io_uring_sqe* sqe = take_sqe(s, kSendSide);
            io_uring_prep_send(sqe, s.fd, o.data.data() + o.sent, s.faults.cap(o.remaining()), MSG_NOSIGNAL);
            submit_now();
            return;
          }
          fail_sticky(s, err);
        } else {
          err = -inl;  // the inline call failed (made sticky there)
        }
        st = sockets::status_from_errno(err);
      }
      std::unique_ptr<Op> op = std::move(s.sq.front());
      s.sq.pop_front();
      const auto bytes = static_cast<std::uint32_t>(op->sent);
      complete(s, std::move(op), st, err, bytes);
    }
  }

  // Under mu_, the head send op o of s with nothing of the send side in the kernel: one non-blocking send
  // call. Returns 1 when o completed (every byte, or the first bytes in partial mode), -errno when the call
  // failed (an injected fault or a connection error, made sticky; the caller completes o with it), 0 when
  // the rest must go to the kernel (EAGAIN, or bytes left in send-all mode).
  int try_send_inline(Sock& s, Op& o) {
    if (const int injected = s.faults.on_call(true); injected != 0) {
      fail_sticky(s, injected);
      return -injected;
    }
    ssize_t n;
    do {
      n = ::send(s.fd, o.data.data() + o.sent, s.faults.cap(o.remaining()), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      const int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        if (s.faults.send_calls > 0) --s.faults.send_calls;  // nothing was sent: not a call that happened
        return 0;
      }
      fail_sticky(s, e);
      return -e;
    }
    o.account_sent(static_cast<std::size_t>(n));
    if (o.remaining() > 0 && !(o.partial && n > 0)) return 0;
    std::unique_ptr<Op> op = std::move(s.sq.front());
    s.sq.pop_front();
    const auto bytes = static_cast<std::uint32_t>(op->sent);
    complete(s, std::move(op), Status::ok, 0, bytes);
    return 1;
  }

  // A CQE for a request whose op is being cancelled (or whose socket is closing): keep what it did.
  void salvage(Sock& s, int side, int res, unsigned flags, BufRing* ring) {
    if (ring != nullptr && (flags & IORING_CQE_F_BUFFER) != 0) {  // a pooled receive that raced its cancel
      const auto bid = static_cast<std::uint32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      if (res > 0 && !s.closing) {
        if (s.carry_off > 0 && s.carry_avail() == 0) {
          s.carry.clear();
          s.carry_off = 0;
        }
        const auto* b = reinterpret_cast<const std::uint8_t*>(ring->pool->buffers().data(bid));
        s.carry.insert(s.carry.end(), b, b + res);
      } else if (res == 0) {
        s.eof = true;
      }
      ring->recycle(bid);
      return;
    }
    if (ring != nullptr) {  // nothing selected: it found the ring empty, was cancelled, or failed
      if (res == -ECANCELED || res == -ENOBUFS) {
        if (s.faults.recv_calls > 0) --s.faults.recv_calls;
      } else if (res < 0) {
        fail_sticky(s, -res);
      }
      return;
    }
    if (side == kRecvSide) {
      if (s.kind == SockKind::listener) {
        if (res >= 0) {
          if (s.closing) ::close(res);
          else s.accepted.push_back(res);
        }
        return;
      }
      if (s.rq.empty() || s.rq.front()->kind != OpKind::recv) return;  // a probe consumed nothing
      Op& o = *s.rq.front();
      if (res > 0) {
        if (!s.closing) {
          if (s.carry_off > 0 && s.carry_avail() == 0) {
            s.carry.clear();
            s.carry_off = 0;
          }
          const std::uint8_t* got = s.rbuf_used ? s.rbuf.get() : o.data.data();
          s.carry.insert(s.carry.end(), got, got + res);
        }
      } else if (res == 0) {
        s.eof = true;
      } else if (res == -ECANCELED) {
        if (s.faults.recv_calls > 0) --s.faults.recv_calls;  // the call never happened
      } else {
        fail_sticky(s, -res);
      }
    } else if (side == kSendSide) {
      if (s.sq.empty()) return;
      if (res > 0) {
        s.sq.front()->account_sent(static_cast<std::size_t>(res));
      } else if (res == -ECANCELED) {
        if (s.faults.send_calls > 0) --s.faults.send_calls;
      } else if (res < 0) {
        fail_sticky(s, -res);
      }
    }
    // connect: the attempt is abandoned whatever the kernel did
  }

  void on_cqe(std::uint64_t u, int res, unsigned flags) {
    if (on_wake_more(u, res, flags)) return;
    Req r;
    if (!take_req(u, r)) return;
    if (r.kind == ReqKind::cancel && r.side == kByFd && res == -EINVAL) {
      // The kernel does not know IORING_ASYNC_CANCEL_FD/ALL after all: cancel request by request.
      cancel_fd_ = false;
      if (Sock* s = find_any(r.sock)) {
        for (int i = 0; i < 3; ++i) {
          if (s->req[i] == 0 || !s->abort[i] || !ensure_sqe()) continue;
          io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
          io_uring_prep_cancel64(sqe, s->req[i], 0);
          io_uring_sqe_set_data64(sqe, new_req(ReqKind::cancel, s->id, i));
        }
        submit_now();
      }
      return;
    }
    if (r.kind == ReqKind::wake) {  // a one-shot poll, or the last CQE of the multishot one
      if (res == -EINVAL && wake_multishot_) wake_multishot_ = false;  // no multishot poll here (< 5.13)
      std::uint64_t v;
      [[maybe_unused]] ssize_t rd = ::read(efd_, &v, sizeof v);
      wake_pending_ = false;
      wake_armed_ = false;
      if (!exit_requested_) arm_wake();
      return;
    }
    if (r.kind != ReqKind::op) return;
    Sock* sp = find_any(r.sock);
    if (sp == nullptr || sp->req[r.side] != u) {  // cannot happen: a socket is forgotten only when quiet
      if (r.side == kRecvSide && res >= 0 && sp != nullptr && sp->kind == SockKind::listener) ::close(res);
      if (r.ring != nullptr && (flags & IORING_CQE_F_BUFFER) != 0) r.ring->recycle(flags >> IORING_CQE_BUFFER_SHIFT);
      return;
    }
    Sock& s = *sp;
    s.req[r.side] = 0;
    if (last_port_ != s.port) last_port_ = s.port;
    if (r.carry) {  // a buffer taken for bytes in carry: they stay in carry whatever became of it
      if (s.abort[r.side] || s.closing || res == -ECANCELED) {
        if ((flags & IORING_CQE_F_BUFFER) != 0) r.ring->recycle(flags >> IORING_CQE_BUFFER_SHIFT);
        if (!s.abort[r.side] && !s.closing) process(s);  // cancelled by the kernel itself: again
        return;
      }
      on_carry_take(s, res, flags, *r.ring);
      process(s);
      return;
    }
    if (s.abort[r.side] || s.closing) {
      salvage(s, r.side, res, flags, r.ring);
      return;
    }
    if (res == -ECANCELED && r.side != kConnect && ++s.kernel_cancels <= 16) {
      // Cancelled by the kernel, not by us (the exit of the task that submitted it: only possible for a
      // request entered by a caller thread when the SQ was full). It did nothing: submit it again.
      if (r.ring != nullptr && (flags & IORING_CQE_F_BUFFER) != 0) r.ring->recycle(flags >> IORING_CQE_BUFFER_SHIFT);
      const bool was_recv = r.side == kRecvSide && !s.rq.empty() && s.rq.front()->kind == OpKind::recv;
      if (was_recv && s.kind == SockKind::stream && s.faults.recv_calls > 0) --s.faults.recv_calls;
      if (r.side == kSendSide && s.faults.send_calls > 0) --s.faults.send_calls;
      process(s);
      return;
    }
    switch (r.side) {
      case kConnect: on_connect(s, res); break;
      case kRecvSide:
        if (s.kind == SockKind::listener) on_accept(s, res);
        else if (!s.rq.empty() && s.rq.front()->kind == OpKind::probe) on_probe(s, res);
        else if (r.ring != nullptr) on_pooled_recv(s, res, flags, *r.ring);
        else on_recv(s, res);
        break;
      case kSendSide: on_send(s, res); break;
    }
    process(s);
  }

  void on_connect(Sock& s, int res) {
    const int e = res < 0 ? -res : 0;
    s.connecting = false;
    if (e != 0 && s.error == 0) s.error = e;
    if (s.connect_op) complete(s, std::move(s.connect_op), sockets::status_from_errno(e), e, 0);
  }

  void on_accept(Sock& s, int res) {
    if (s.rq.empty()) {
      if (res >= 0) s.accepted.push_back(res);
      return;
    }
    if (res >= 0) {
      finish_accept(s, res);
      return;
    }
    const int e = -res;
    if (e == EINTR || e == EAGAIN || e == ECONNABORTED || e == EPROTO) return;  // process() re-arms
    std::unique_ptr<Op> o = std::move(s.rq.front());
    s.rq.pop_front();
    complete(s, std::move(o), sockets::status_from_errno(e), e, 0);
  }

  void on_probe(Sock& s, int res) {
    Status st = Status::ok;
    int err = 0;
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
      err = -res;
      fail_sticky(s, err);
      st = sockets::status_from_errno(err);
    } else {
      char c;
      const ssize_t n = ::recv(s.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) {
        st = Status::ok;
      } else if (n == 0) {
        end_of_stream(s, st, err);
      } else {
        err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;  // spurious: process() re-arms
        fail_sticky(s, err);
        st = sockets::status_from_errno(err);
      }
    }
    std::unique_ptr<Op> op = std::move(s.rq.front());
    s.rq.pop_front();
    complete(s, std::move(op), st, err, 0);
  }

  // Under mu_: a receive (or probe) on s found the end of the stream. It reports the connection error
  // already seen on s, if any (the kernel says 0 after the first error), else eof, which becomes sticky.
  static void end_of_stream(Sock& s, Status& st, int& err) {
    if (s.error != 0) {
      err = s.error;
      st = sockets::status_from_errno(err);
    } else {
      s.eof = true;
      st = Status::eof;
    }
  }

  void on_recv(Sock& s, int res) {
    if (s.rq.empty()) return;
    if (res == -EINTR || res == -EAGAIN) {
      if (s.faults.recv_calls > 0) --s.faults.recv_calls;  // nothing happened; process() resubmits
      return;
    }
    finish_recv(s, res);
  }

  // Under mu_: completes the plain recv at the head of s.rq whose call (inline or the kernel's) returned res:
  // bytes (in s.rbuf or the op's own buffer, see process_recvs), 0 = end of stream, or -errno.
  void finish_recv(Sock& s, ssize_t res) {
    Status st = Status::ok;
    int err = 0;
    std::uint32_t bytes = 0;
    std::vector<std::uint8_t> buf;
    if (res > 0) {
      if (s.rbuf_used) {
        buf.assign(s.rbuf.get(), s.rbuf.get() + res);
      } else {
        buf = std::move(s.rq.front()->data);
        buf.resize(static_cast<std::size_t>(res));
      }
      bytes = static_cast<std::uint32_t>(res);
    } else if (res == 0) {
      end_of_stream(s, st, err);
    } else {
      err = static_cast<int>(-res);
      fail_sticky(s, err);
      st = sockets::status_from_errno(err);
    }
    std::unique_ptr<Op> op = std::move(s.rq.front());
    s.rq.pop_front();
    complete(s, std::move(op), st, err, bytes, 0, &buf);
  }


  void on_pooled_recv(Sock& s, int res, unsigned flags, BufRing& ring) {
    if (s.rq.empty()) return;
    Op& o = *s.rq.front();
    const bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
    const auto bid = static_cast<std::uint32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    Status st = Status::ok;
    int err = 0;
    std::uint32_t bytes = 0;
    std::uint32_t buffer = kNoPoolBuffer;
    std::vector<std::uint8_t> buf;
    if (res > 0 && has_buffer) {
      const auto* b = reinterpret_cast<const std::uint8_t*>(o.pool->buffers().data(bid));
      buf.assign(b, b + res);
      bytes = static_cast<std::uint32_t>(res);
      o.pool->delivered(bid);
      buffer = bid;
    } else {
      if (has_buffer) ring.recycle(bid);
      if (res == 0) {
        end_of_stream(s, st, err);
      } else if (res == -ENOBUFS) {  // the ring was empty when the kernel attempted the receive
        if (s.faults.recv_calls > 0) --s.faults.recv_calls;
        o.pool->note_exhausted();
        st = Status::pool_exhausted;
        err = ENOBUFS;
      } else {
        err = res < 0 ? -res : EIO;
        if (err == EINTR || err == EAGAIN) {
          if (s.faults.recv_calls > 0) --s.faults.recv_calls;
          return;  // process() resubmits
        }
        fail_sticky(s, err);
        st = sockets::status_from_errno(err);
      }
    }
    std::unique_ptr<Op> op = std::move(s.rq.front());
    s.rq.pop_front();
    complete(s, std::move(op), st, err, bytes, 0, &buf, buffer);
  }

  // The /dev/zero read that took a buffer of the ring for the pooled receive at the head of s.rq, to be
  // served from carry: the bytes go into that buffer; -ENOBUFS is pool_exhausted (the ring was empty at the
  // attempt), with the bytes left in carry.
  void on_carry_take(Sock& s, int res, unsigned flags, BufRing& ring) {
    const bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
    const auto bid = static_cast<std::uint32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    const bool head_pooled = !s.rq.empty() && s.rq.front()->kind == OpKind::recv && s.rq.front()->pool;
    if (has_buffer && res >= 0 && head_pooled && s.carry_avail() > 0) {
      Op& o = *s.rq.front();
      const std::size_t n = std::min({static_cast<std::size_t>(o.length), o.pool->buffer_size(), s.carry_avail()});
      const std::uint8_t* from = s.carry.data() + s.carry_off;
      std::memcpy(o.pool->buffers().data(bid), from, n);
      std::vector<std::uint8_t> buf(from, from + n);
      s.carry_off += n;
      if (s.carry_avail() == 0) {
        s.carry.clear();
        s.carry_off = 0;
      }
      o.pool->delivered(bid);
      std::unique_ptr<Op> op = std::move(s.rq.front());
      s.rq.pop_front();
      complete(s, std::move(op), Status::ok, 0, static_cast<std::uint32_t>(n), 0, &buf, bid);
      return;
    }
    if (has_buffer) ring.recycle(bid);
    if (!head_pooled || res >= 0 || res == -EINTR || res == -EAGAIN) return;  // process() decides again
    std::unique_ptr<Op> op = std::move(s.rq.front());
    s.rq.pop_front();
    if (res == -ENOBUFS) {
      op->pool->note_exhausted();
      complete(s, std::move(op), Status::pool_exhausted, ENOBUFS, 0);
    } else {  // the read of /dev/zero itself failed: nothing was taken from the socket or carry
      complete(s, std::move(op), sockets::status_from_errno(-res), -res, 0);
    }
  }

  void on_send(Sock& s, int res) {
    if (s.sq.empty()) return;
    Op& o = *s.sq.front();
    Status st = Status::ok;
    int err = 0;
    if (res >= 0) {
      o.account_sent(static_cast<std::size_t>(res));
      if (!(o.partial && res > 0) && o.remaining() > 0) return;  // process() sends the rest
    } else {
      err = -res;
      if (err == EINTR || err == EAGAIN) {
        if (s.faults.send_calls > 0) --s.faults.send_calls;
        return;
      }
      fail_sticky(s, err);
      st = sockets::status_from_errno(err);
    }
    std::unique_ptr<Op> op = std::move(s.sq.front());
    s.sq.pop_front();
    const auto bytes = static_cast<std::uint32_t>(op->sent);
    complete(s, std::move(op), st, err, bytes);
  }

  // Before the completion thread sleeps in io_uring_enter: a short spin (spin.h) that keeps entering the
  // kernel without waiting, so task work for our requests (a receive whose bytes just arrived) runs and its
  // completion is there without a sleep and a wake-up. Measured at 1 connection on one server CPU: echo
  // round trips 58-62 -> 45-47 us (p50), p99 87-120 -> 69-74 us.
  static constexpr unsigned kSpinBatch = 2;
  // Only while the ring is lightly loaded (the last reap found at most kSpinBatch completions) and nothing is
  // queued on the port its last completion went to: the workers are not behind. Otherwise a spinning
  // completion thread shares a busy worker's CPU and, being runnable rather than woken, loses the wake-up
  // preemption that gets its task work done promptly (measured: p99 at 64 connections 280 -> up to
  // 800-1000 us when it spun regardless).
  bool worth_spinning() {
    if (last_batch_ > kSpinBatch) return false;
    std::shared_ptr<Port> p;
    {
      std::lock_guard<std::mutex> g(mu_);
      p = last_port_;
    }
    return p && p->queued() == 0;
  }
  void spin_for_completions() {
    const SpinPolicy& sp = this_thread_spin_policy();
    if (sp.time.count() == 0) return;
    const auto end = std::chrono::steady_clock::now() + sp.time;
    do {
      io_uring_get_events(&ring_);
      if (io_uring_cq_ready(&ring_) > 0) return;
      spin_pause(sp);
    } while (std::chrono::steady_clock::now() < end);
  }

  void loop() {
    t_is_reaper = true;
    {
      Locked g(*this);
      arm_wake();
      enter();
    }
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_cq_ready(&ring_) == 0 && worth_spinning()) spin_for_completions();
      const int rc = io_uring_wait_cqe(&ring_, &cqe);
      Locked g(*this);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -ETIME && rc != -EBUSY) {
        std::fprintf(stderr, "cpspec uring: io_uring_wait_cqe: %s; completion thread stops\n", std::strerror(-rc));
        return;
      }
      if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0) ++cq_overflows_;
      unsigned head = 0;
      unsigned n = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        on_cqe(cqe->user_data, cqe->res, cqe->flags);
        ++n;
      }
      io_uring_cq_advance(&ring_, n);
      last_batch_ = n;
      if (!retry_.empty()) {
        std::unordered_set<SocketId> r;
        r.swap(retry_);
        for (SocketId id : r)
          if (Sock* s = find_any(id)) process(*s);
      }
      if (exit_requested_ && wake_armed_ && !wake_cancelled_) {  // the last request of ours: stop the wake-up
        wake_cancelled_ = true;
        for (const ReqSlot& slot : req_slots_) {
          if (slot.u == 0 || slot.r.kind != ReqKind::wake || !ensure_sqe()) continue;
          io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
          io_uring_prep_cancel64(sqe, slot.u, 0);
          io_uring_sqe_set_data64(sqe, 0);  // unknown user_data: ignored
          break;
        }
      }
      if (io_uring_sq_ready(&ring_) > 0) enter();
      cv_.notify_all();
      if (exit_requested_ && reqs_live_ == 0) return;
    }
  }

  bool kick_ = false;              // the eventfd must be written when mu_ is released
  std::mutex join_mu_;
  std::condition_variable cv_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool cancel_fd_ = false;
  int efd_ = -1;                // wakes the completion thread (see submit_now)
  unsigned last_batch_ = 0;     // CQEs the completion thread's last reap found (worth_spinning)
  std::shared_ptr<Port> last_port_;  // under mu_: the port of the socket of the last CQE reaped
  int zero_fd_ = -1;            // /dev/zero: buffer-select reads take a ring buffer for carry (Req::carry)
  bool wake_pending_ = false;   // efd_ written, the completion thread has not seen it yet
  bool wake_armed_ = false;     // its POLL_ADD is in the kernel
  bool wake_multishot_ = true;  // that poll is multishot (on_wake_more); false after the kernel refused it
  bool wake_cancelled_ = false;
  bool exit_requested_ = false;
  std::thread thread_;
  std::uint64_t req_seq_ = 0;
  SocketId sock_seq_ = 0;
  std::unordered_map<SocketId, std::unique_ptr<Sock>> socks_;
  struct ReqSlot {
    std::uint64_t u = 0;  // its user_data; 0 = a free slot
    Req r;
  };
  std::vector<ReqSlot> req_slots_;          // requests in the kernel (new_req/take_req)
  std::vector<std::uint32_t> req_free_;     // free slots
  std::size_t reqs_live_ = 0;
  std::unordered_set<SocketId> retry_;           // sockets that found the SQ full
  std::unordered_map<const RecvPool*, std::unique_ptr<BufRing>> rings_;  // pools bound to receives here
  std::uint16_t next_bgid_ = 1;
  std::uint64_t cq_overflows_ = 0;  // reaps that saw IORING_SQ_CQ_OVERFLOW (completions parked by the kernel)
};

}  // namespace

std::uint64_t uring_cq_overflows(const Backend& b) noexcept {
  const auto* u = dynamic_cast<const UringBackend*>(&b);
  return u != nullptr ? u->cq_overflows() : 0;
}

std::unique_ptr<Backend> make_uring_backend(std::string& why) {
  auto b = std::make_unique<UringBackend>();
  if (!b->start(why)) return nullptr;
  return b;
}

}  // namespace cpspec
