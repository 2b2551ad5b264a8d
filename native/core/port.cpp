// The completion port core (see port.h). One mutex protects the packet ring, the running count and the
// waiter stack. Every waiter lives on its own thread's stack and has its own wake-up (an atomic state it
// spins on briefly, then a condition variable it sleeps on), so the releaser chooses exactly which thread
// wakes: the top of the LIFO stack, handing it its packets directly.
#include "port.h"
#include "spin.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace cpspec {

// The spin policy (spin.h), decided once per thread from the CPUs it may run on: its affinity mask on Linux,
// the machine's hardware threads elsewhere.
const SpinPolicy& this_thread_spin_policy() noexcept {
  thread_local const SpinPolicy p = [] {
    unsigned cpus = std::thread::hardware_concurrency();
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = static_cast<unsigned>(CPU_COUNT(&set));
#endif
    SpinPolicy r;
    r.time = std::chrono::nanoseconds{20000};
    r.yield = cpus <= 1;
    return r;
  }();
  return p;
}

namespace {

enum : int { kWaiting = 0, kReleased = 1, kClosed = 2 };

struct Waiter {
  Waiter* up = nullptr;    // towards the top of the stack (newer)
  Waiter* down = nullptr;  // towards the bottom (older)
  Packet* out = nullptr;
  std::size_t max = 1;
  std::size_t n = 0;            // packets handed over (written before state is set)
  std::atomic<int> state{kWaiting};
  bool sleeping = false;        // under the port mutex: the waiter is (about to be) inside cv.wait
  std::condition_variable cv;
};

}  // namespace

struct Port::Impl {
  explicit Impl(unsigned c) : concurrency(c) {}

  mutable std::mutex mu;
  const unsigned concurrency;

  // FIFO ring of packets; capacity is 0 or a power of two. Emptied above kKeepCapacity, it is freed.
  static constexpr std::size_t kKeepCapacity = std::size_t{1} << 16;
  std::unique_ptr<Packet[]> ring;
  std::size_t cap = 0;
  std::size_t head = 0;
  std::size_t count = 0;
  std::atomic<std::size_t> count_hint{0};  // = count, readable without the lock (a hint only)

  std::size_t running = 0;
  Waiter* top = nullptr;
  std::size_t nwaiters = 0;
  std::atomic<std::size_t> nsleeping{0};  // waiters on the stack asleep on their cv (changed under mu)
  bool closed = false;
  std::atomic<bool> closed_flag{false};
  std::shared_ptr<IdleLink> idle;  // the source waiters drive while they spin (attach_idle_source)
  bool idle_shared = false;        // a second live source was attached: drive none

  // --- ring (mu held) ---
  void grow(std::size_t need) {
    std::size_t ncap = cap ? cap : 64;
    while (ncap < need) ncap *= 2;
    if (ncap == cap) return;
    std::unique_ptr<Packet[]> nring(new Packet[ncap]);
    copy_front(nring.get(), count);  // does not consume
    ring = std::move(nring);
    cap = ncap;
    head = 0;
  }
  // Copies the first k queued packets to dst without removing them.
  void copy_front(Packet* dst, std::size_t k) const {
    if (k == 1) {
      *dst = ring[head];
      return;
    }
    if (k == 0) return;
    std::size_t first = std::min(k, cap - head);
    std::memcpy(static_cast<void*>(dst), ring.get() + head, first * sizeof(Packet));
    if (first < k) std::memcpy(static_cast<void*>(dst + first), ring.get(), (k - first) * sizeof(Packet));
  }
  void pop_front(Packet* dst, std::size_t k) {
    copy_front(dst, k);
    head = (head + k) & (cap - 1);
    count -= k;
    count_hint.store(count, std::memory_order_relaxed);
    if (count == 0) {
      head = 0;
      if (cap > kKeepCapacity) {  // give back the memory of a burst
        ring.reset();
        cap = 0;
      }
    }
  }
  void push_back(const Packet* src, std::size_t k) {
    if (count + k > cap) grow(count + k);
    std::size_t tail = (head + count) & (cap - 1);
    if (k == 1) {
      ring[tail] = *src;
      count += 1;
      count_hint.store(count, std::memory_order_relaxed);
      return;
    }
    std::size_t first = std::min(k, cap - tail);
    std::memcpy(static_cast<void*>(ring.get() + tail), src, first * sizeof(Packet));
    if (first < k) std::memcpy(static_cast<void*>(ring.get()), src + first, (k - first) * sizeof(Packet));
    count += k;
    count_hint.store(count, std::memory_order_relaxed);
  }

  // --- waiter stack (mu held) ---
  void push_waiter(Waiter* w) {
    w->down = top;
    w->up = nullptr;
    if (top) top->up = w;
    top = w;
    ++nwaiters;
  }
  void remove_waiter(Waiter* w) {
    if (w->sleeping) nsleeping.fetch_sub(1, std::memory_order_relaxed);
    if (w->up) w->up->down = w->down; else top = w->down;
    if (w->down) w->down->up = w->up;
    w->up = w->down = nullptr;
    --nwaiters;
  }

  // Wakes w with `state`. After the store the waiter may return and destroy w at any moment, unless it is
  // sleeping: then it needs mu (which we hold) to leave cv.wait, so notifying it here is safe.
  static void wake(Waiter* w, int state) {
    bool sleeping = w->sleeping;
    w->state.store(state, std::memory_order_release);
    if (sleeping) w->cv.notify_one();
  }

  // Releases waiters (top first) while there are packets and free slots.
  void dispatch() {
    while (top != nullptr && count > 0 && running < concurrency) {
      Waiter* w = top;
      remove_waiter(w);
      std::size_t k = std::min(w->max, count);
      pop_front(w->out, k);
      w->n = k;
      ++running;
      wake(w, kReleased);
    }
  }
};

// The calling thread's association with a port (at most one). `counted`: the thread holds a running slot.
// `suspended`: it held one when it entered its outermost blocking region.
struct ThreadAssociation {
  Port* port = nullptr;
  std::weak_ptr<Port> weak;
  bool counted = false;
  bool suspended = false;
  unsigned depth = 0;

  ~ThreadAssociation() { leave(); }

  // Whether the thread is associated with p (guards against a dead port whose address was reused).
  bool is(const Port* p) const { return port == p && !weak.expired(); }

  void reset() {
    port = nullptr;
    weak.reset();
    counted = suspended = false;
    depth = 0;
  }

  // Ends the association, giving back the running slot if the thread holds one.
  void leave() {
    if (port == nullptr) return;
    if (counted) {
      if (std::shared_ptr<Port> p = weak.lock()) {
        Port::Impl& I = *p->impl_;
        std::lock_guard<std::mutex> g(I.mu);
        --I.running;
        I.dispatch();
      }
    }
    reset();
  }

  static ThreadAssociation& current() {
    static thread_local ThreadAssociation a;
    return a;
  }
};

Port::Port(unsigned concurrency) : impl_(std::make_unique<Impl>(concurrency)) {}
Port::~Port() = default;

std::shared_ptr<Port> Port::create(unsigned concurrency) {
  if (concurrency == 0) concurrency = std::max(1u, std::thread::hardware_concurrency());
  return std::shared_ptr<Port>(new Port(concurrency));
}

unsigned Port::concurrency() const noexcept { return impl_->concurrency; }

bool Port::post(const Packet& p) { return post_many(&p, 1); }

bool Port::post_many(const Packet* p, std::size_t n) {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> g(I.mu);
  if (I.closed) return false;
  if (n == 0) return true;
  I.push_back(p, n);
  if (I.top != nullptr) I.dispatch();
  return true;
}

DequeueKind Port::dequeue(Packet& out, std::int64_t timeout_ms) {
  std::size_t n = 0;
  return dequeue_many(&out, 1, n, timeout_ms);
}

DequeueKind Port::dequeue_many(Packet* out, std::size_t max, std::size_t& n, std::int64_t timeout_ms) {
  n = 0;
  if (max == 0) max = 1;
  Impl& I = *impl_;
  ThreadAssociation& a = ThreadAssociation::current();
  if (!a.is(this)) {
    a.leave();  // leaves the other port (or forgets a dead one) first, without holding our lock
    a.port = this;
    a.weak = weak_from_this();
  }
  const bool had_slot = a.counted;
  a.counted = a.suspended = false;
  a.depth = 0;

  std::unique_lock<std::mutex> lk(I.mu);
  if (had_slot) --I.running;
  if (I.closed) return DequeueKind::closed;
  if (I.count > 0) {
    if (I.running < I.concurrency) {
      std::size_t k = std::min(max, I.count);
      I.pop_front(out, k);
      n = k;
      ++I.running;
      a.counted = true;
      return DequeueKind::packet;
    }
  }
  // A slot we gave back cannot release anyone here: either nothing is queued, or the port is still full.
  if (timeout_ms == 0) return DequeueKind::timeout;

  Waiter w;
  w.out = out;
  w.max = max;
  I.push_waiter(&w);
  std::shared_ptr<IdleLink> idle = I.idle_shared ? nullptr : I.idle;
  lk.unlock();

  using clock = std::chrono::steady_clock;
  const bool infinite = timeout_ms < 0;
  const clock::time_point deadline = infinite ? clock::time_point::max() : clock::now() + std::chrono::milliseconds(timeout_ms);

  int st = kWaiting;
  if (const SpinPolicy& sp = this_thread_spin_policy(); sp.time.count() > 0) {
    const clock::time_point spin_end = clock::now() + sp.time;
    // While it spins, the waiter drives the port's idle source (if any): the completions it finds are
    // posted here and, this waiter being the top of the stack, mostly handed to it.
    const bool driving = idle && idle->spin_begin();
    for (unsigned i = 1;; ++i) {
      st = w.state.load(std::memory_order_acquire);
      if (st != kWaiting) break;
      if (driving && idle->poll_ready()) {
        st = w.state.load(std::memory_order_acquire);
        if (st != kWaiting) break;
      }
      spin_pause(sp);
      if ((sp.yield || driving || (i & 15) == 0) && clock::now() >= spin_end) break;
    }
    // Hand the source back to the back-end's thread when nobody will drive it: this waiter goes to sleep,
    // or it goes to run its packets while other waiters of the port sleep (their completions must not
    // wait until it comes back).
    if (driving) idle->spin_end(st == kWaiting || I.nsleeping.load(std::memory_order_relaxed) > 0);
  }
  if (st == kWaiting) {
    lk.lock();
    if (w.state.load(std::memory_order_acquire) == kWaiting) I.nsleeping.fetch_add(1, std::memory_order_relaxed);  // still on the stack
    w.sleeping = true;
    auto ready = [&] { return w.state.load(std::memory_order_acquire) != kWaiting; };
    if (infinite) {
      w.cv.wait(lk, ready);
    } else {
      w.cv.wait_until(lk, deadline, ready);
    }
    st = w.state.load(std::memory_order_acquire);
    if (st == kWaiting) {  // timed out; still on the stack, so nobody else will touch w
      I.remove_waiter(&w);
      return DequeueKind::timeout;
    }
    lk.unlock();
  }
  if (st == kClosed) return DequeueKind::closed;
  // Released with packets: the releaser counted us as running.
  n = w.n;
  a.counted = true;
  if (n < max && I.count_hint.load(std::memory_order_relaxed) > 0) {
    // More may have been posted since we were released: a batch dequeue takes them too (we hold a slot).
    lk.lock();
    std::size_t k = std::min(max - n, I.count);
    I.pop_front(out + n, k);
    n += k;
  }
  return DequeueKind::packet;
}

void Port::attach_idle_source(const std::shared_ptr<IdleLink>& link) {
  if (!link) return;
  Impl& I = *impl_;
  std::lock_guard<std::mutex> g(I.mu);
  if (I.idle == link) return;
  if (!I.idle || !I.idle->attached()) {  // none yet, or the previous back-end is gone
    I.idle = link;
    I.idle_shared = false;
    return;
  }
  I.idle_shared = true;
}

std::vector<Packet> Port::close() {
  Impl& I = *impl_;
  std::vector<Packet> left;
  std::lock_guard<std::mutex> g(I.mu);
  if (I.closed) return left;
  I.closed = true;
  I.closed_flag.store(true, std::memory_order_release);
  while (I.top != nullptr) {
    Waiter* w = I.top;
    I.remove_waiter(w);
    Impl::wake(w, kClosed);
  }
  left.resize(I.count);
  I.pop_front(left.data(), I.count);
  I.ring.reset();
  I.cap = 0;
  I.head = 0;
  return left;
}

bool Port::is_closed() const noexcept { return impl_->closed_flag.load(std::memory_order_acquire); }

void Port::enter_blocking() {
  ThreadAssociation& a = ThreadAssociation::current();
  if (!a.is(this)) return;
  if (a.depth++ > 0) return;
  if (!a.counted) return;
  Impl& I = *impl_;
  std::lock_guard<std::mutex> g(I.mu);
  --I.running;
  a.counted = false;
  a.suspended = true;
  I.dispatch();
}

void Port::leave_blocking() {
  ThreadAssociation& a = ThreadAssociation::current();
  if (!a.is(this) || a.depth == 0) return;
  if (--a.depth > 0) return;
  if (!a.suspended) return;
  Impl& I = *impl_;
  std::lock_guard<std::mutex> g(I.mu);
  ++I.running;  // may exceed the concurrency for a while; dispatch() then releases nobody
  a.suspended = false;
  a.counted = true;
}

void Port::detach_current_thread() { ThreadAssociation::current().leave(); }

std::size_t Port::running() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->running;
}

std::size_t Port::queued() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->count;
}

std::size_t Port::waiters() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->nwaiters;
}

std::size_t Port::sleepers() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->nsleeping.load(std::memory_order_relaxed);
}

}  // namespace cpspec
