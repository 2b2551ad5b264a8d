// The completion port core: a FIFO packet queue, a concurrency gate and LIFO waiter release, with the
// semantics IOCP users rely on (see spec/ CP-PORT-*, CP-CONC-*, CP-ORDER-*). Portable C++20, no OS calls
// beyond what the standard library gives (and, on Linux, the thread's CPU affinity), so the same core
// serves the addon, the standalone driver and the benchmarks on Linux and Windows (the iocp back-end uses
// the kernel's port instead).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace cpspec {

// Portable completion statuses; the native error code travels beside them. Order and names match
// STATUSES in reference/src/target.ts.
enum class Status : std::uint8_t { ok, eof, aborted, reset, refused, pool_exhausted, timeout, closed, invalid };
inline constexpr int kStatusCount = 9;

// "ok", "eof", ..., "pool-exhausted", ... (the wire names).
const char* status_name(Status s) noexcept;
// Parses a wire name; returns false for an unknown name.
bool status_from_name(std::string_view name, Status& out) noexcept;

struct Packet {
  std::uint64_t key = 0;
  std::uint32_t bytes = 0;
  std::uint64_t token = 0;
  Status status = Status::ok;
  std::int32_t native_error = 0;
  // Socket completions (backend.h): the operation id, and for an accept the new socket; 0 otherwise.
  std::uint64_t op = 0;
  std::uint64_t socket = 0;
  // A pool-backed receive: the id of the pool buffer holding the data (kNoPoolBuffer = none).
  std::uint32_t buffer = 0xFFFFFFFFu;
};
inline constexpr std::uint32_t kNoPoolBuffer = 0xFFFFFFFFu;

enum class DequeueKind : std::uint8_t { packet, timeout, closed };

inline constexpr std::int64_t kInfinite = -1;
inline constexpr unsigned kMaxConcurrency = 1024;

// A source of completions that a thread waiting on a port may drive itself during its spin phase (see
// Port::dequeue_many): a readiness back-end's event loop (epoll). While a waiter drives it, the back-end's
// own thread may rest, so a busy server does its I/O and its work on one thread with no hand-off per
// completion. The methods are called with no port lock held, through an IdleLink (never after detach()).
class IdleSource {
 public:
  // A waiter starts driving the source (false: do not drive it now).
  virtual bool spin_begin() noexcept = 0;
  // Non-blocking: handles whatever is ready now, posting its completions; true if it handled anything.
  virtual bool poll_ready() noexcept = 0;
  // The waiter stops driving it: it got packets (to run them), or it is going to sleep (then the source
  // must not stay undriven: the back-end's own thread takes over).
  virtual void spin_end(bool going_to_sleep) noexcept = 0;

 protected:
  ~IdleSource() = default;
};

// The shared handle between a back-end (which owns its IdleSource and detaches it before it goes away)
// and the ports its sockets post to.
class IdleLink {
 public:
  explicit IdleLink(IdleSource* s) : src_(s) {}
  // After detach() returns, the source is never called again through this link.
  void detach() {
    std::lock_guard<std::mutex> g(mu_);
    src_ = nullptr;
    attached_.store(false, std::memory_order_release);
  }
  // Lock-free: a port asks under its own lock, and mu_ is held while the source posts to ports.
  bool attached() const noexcept { return attached_.load(std::memory_order_acquire); }
  bool spin_begin() {
    std::lock_guard<std::mutex> g(mu_);
    return src_ != nullptr && src_->spin_begin();
  }
  bool poll_ready() {
    std::lock_guard<std::mutex> g(mu_);
    return src_ != nullptr && src_->poll_ready();
  }
  void spin_end(bool going_to_sleep) {
    std::lock_guard<std::mutex> g(mu_);
    if (src_ != nullptr) src_->spin_end(going_to_sleep);
  }

 private:
  std::mutex mu_;  // held around every call of src_ (so detach() waits for a call in progress)
  IdleSource* src_;
  std::atomic<bool> attached_{true};
};

// A thread is associated with at most one port at a time: the port it last dequeued from. It counts as
// running on that port from a successful dequeue until it calls dequeue again (on any port), enters a
// blocking region, or exits. At most concurrency() threads count as running; a waiter is released only
// while running < concurrency(). Waiters are released LIFO: the most recent waiter gets the next packet.
// A running thread that dequeues again while packets are queued gets the next one without blocking (its
// own slot is released first).
class Port : public std::enable_shared_from_this<Port> {
 public:
  // concurrency 0 = std::thread::hardware_concurrency() (at least 1). Values above kMaxConcurrency are
  // the caller's error (the bindings reject them before calling).
  static std::shared_ptr<Port> create(unsigned concurrency);
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  unsigned concurrency() const noexcept;

  // Queues a packet (FIFO). Returns false, queuing nothing, when the port is closed.
  bool post(const Packet& p);
  // Posts n packets under one lock acquisition. Returns false (queuing nothing) when closed.
  bool post_many(const Packet* p, std::size_t n);

  // timeout_ms: kInfinite, 0 (poll) or a positive number of milliseconds.
  DequeueKind dequeue(Packet& out, std::int64_t timeout_ms);
  // Fills out[0..n) with 1..max packets (FIFO). n = 0 unless the result is DequeueKind::packet.
  DequeueKind dequeue_many(Packet* out, std::size_t max, std::size_t& n, std::int64_t timeout_ms);

  // Closes the port: every waiter wakes with DequeueKind::closed, later dequeues return closed at once,
  // later posts return false. Returns the packets still queued, in FIFO order (drained to the closer, not
  // lost silently). A second close returns an empty vector.
  std::vector<Packet> close();
  bool is_closed() const noexcept;

  // Blocking region for the calling thread: if it is running on this port, its slot is released (another
  // waiter may be released, as Windows does for a thread that blocks). leave_blocking() makes it count as
  // running again; the running count may then briefly exceed concurrency(), and no waiter is released
  // until it drops below. Calls nest; a thread not associated with this port is unaffected.
  void enter_blocking();
  void leave_blocking();

  // Ends the calling thread's association with whatever port it has (as if the thread exited). Threads
  // that exit are detached automatically.
  static void detach_current_thread();

  // Lets this port's waiters drive src while they spin (a back-end calls it for each socket it associates
  // with the port). A port fed by two different live sources drives neither (each back-end's own thread
  // serves it, so one source's events are never left waiting on the other's).
  void attach_idle_source(const std::shared_ptr<IdleLink>& link);

  // Snapshots, for statistics and tests.
  std::size_t running() const;
  std::size_t queued() const;
  std::size_t waiters() const;
  std::size_t sleepers() const;  // waiters past their spin, asleep

 private:
  explicit Port(unsigned concurrency);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend struct ThreadAssociation;
};

}  // namespace cpspec
