// cpspec::pool — see buffer_pool.h for the design.
#include "buffer_pool.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#endif

namespace cpspec::pool {

namespace {

// The slab is page-aligned (which implies cache-line alignment) so large buffers also start on pages.
constexpr std::size_t kSlabAlign = 4096;

std::string num(std::uint64_t v) { return std::to_string(v); }

}  // namespace

const char* acquire_status_name(AcquireStatus s) noexcept {
  switch (s) {
    case AcquireStatus::ok: return "ok";
    case AcquireStatus::exhausted: return "exhausted";
    case AcquireStatus::too_large: return "too-large";
  }
  return "?";
}

const char* release_status_name(ReleaseStatus s) noexcept {
  switch (s) {
    case ReleaseStatus::ok: return "ok";
    case ReleaseStatus::double_release: return "double-release";
    case ReleaseStatus::foreign: return "foreign";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------------
// Magazines and the thread caches
// ---------------------------------------------------------------------------------------------------------

namespace detail {

inline constexpr std::uint32_t kMagSize = 32;  // buffers one magazine holds (a power of two)
inline constexpr std::uint32_t kBatch = 16;    // buffers one refill / flush moves
static_assert((kMagSize & (kMagSize - 1)) == 0 && kBatch <= kMagSize);

// One thread's cache of one pool: a LIFO of free buffers kept as a ring (the owner pops and pushes at
// `top`; a flush takes the oldest kBatch from `bot`). Everything is an atomic so that stealers (which read
// it only while holding `lock` with the owner outside its critical section) and stats() (which reads the
// counts racily) are data-race free; the owner's accesses are all relaxed, i.e. plain moves.
//
// The owner's critical section: busy = 1; (asymmetric) fence; if lock != 0 -> back off. A stealer: lock
// (xchg); membarrier (forces a full fence on every running thread of the process); wait for busy == 0. So
// either the stealer sees the owner's busy = 1 and waits, or the owner sees lock = 1 and backs off.
struct alignas(kCacheLine) Magazine {
  std::atomic<std::uint32_t> busy{0};  // owner inside its critical section (owner-written)
  std::atomic<std::uint32_t> lock{0};  // held by a stealer/drainer, an adopter or the exit flush
  std::atomic<std::uint32_t> top{0};   // ring positions, free-running; count = top - bot
  std::atomic<std::uint32_t> bot{0};
  std::atomic<std::uint32_t> idx[kMagSize];
  std::atomic<Magazine*> next{nullptr};  // the pool's list
  std::atomic<bool> live{false};         // has an owner thread (else an orphan, waiting for adoption)
  Magazine() {
    for (auto& i : idx) i.store(kNoBuffer, std::memory_order_relaxed);
  }
  std::uint32_t count() const noexcept {
    const std::uint32_t n = top.load(std::memory_order_relaxed) - bot.load(std::memory_order_relaxed);
    return n <= kMagSize ? n : 0;  // a torn racy read (stats only)
  }
};

void spin_lock(std::atomic<std::uint32_t>& l) noexcept {
  for (int spins = 0; l.exchange(1, std::memory_order_seq_cst) != 0; ++spins) {
    if (spins > 64) std::this_thread::yield();
  }
}

void wait_not_busy(const Magazine& m) noexcept {
  for (int spins = 0; m.busy.load(std::memory_order_seq_cst) != 0; ++spins) {
    if (spins > 64) std::this_thread::yield();
  }
}

// -DCPSPEC_POOL_NO_MEMBARRIER forces the portable fallback (owners pay a real fence) for testing.
bool membarrier_available() noexcept {
#if defined(CPSPEC_POOL_NO_MEMBARRIER)
  return false;
#elif defined(__linux__) && defined(SYS_membarrier)
  static const bool ok = [] {
    const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ok;
#elif defined(_WIN32)
  return true;  // FlushProcessWriteBuffers (Vista and later)
#else
  return false;
#endif
}

// A full memory barrier on every thread of this process that is running (the slow side of the
// asymmetric Dekker handshakes; ~0.1-1 us here). Only called with asym when membarrier_available().
void process_barrier(bool asym) noexcept {
#if defined(__linux__) && defined(SYS_membarrier)
  if (asym && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
#elif defined(_WIN32)
  if (asym) {
    FlushProcessWriteBuffers();
    return;
  }
#endif
  // Without it the owners' own seq_cst exchanges on `busy` pair with the drainer's seq_cst exchange on
  // `lock` and load of `busy`: a plain SC Dekker, nothing to add here.
  (void)asym;
}

// The live pools, by uid: a thread that exits flushes its magazines only into pools still alive.
std::mutex& live_mu() {
  static auto* mu = new std::mutex;  // never destroyed: threads may exit during static destruction
  return *mu;
}
std::unordered_set<std::uint64_t>& live_pools() {
  static auto* set = new std::unordered_set<std::uint64_t>;
  return *set;
}
std::atomic<std::uint64_t> g_next_uid{0};

struct CacheEntry {
  BufferPool* pool = nullptr;
  std::uint64_t uid = 0;
  Magazine* mag = nullptr;
};

// The fast path's cache, direct-mapped by uid (a SizeClassSet's pools do not evict each other):
// trivially destructible, so reading it costs no TLS guard. The pool pointer alone is not enough (a new
// pool may reuse a dead one's address); the uid is never reused.
inline constexpr std::size_t kFastEntries = 8;
thread_local CacheEntry tl_last[kFastEntries];
thread_local bool tl_exiting = false;

struct PoolAccess {
  static void retire(BufferPool& p, Magazine* m) noexcept { p.retire(m); }
};

// Every magazine this thread owns. At thread exit each one whose pool is still alive is flushed back into
// the pool's global list and orphaned (the next thread to attach to that pool adopts it).
struct ThreadCache {
  std::vector<CacheEntry> entries;
  ~ThreadCache() {
    tl_exiting = true;
    for (CacheEntry& e : tl_last) e = CacheEntry{};
    std::lock_guard<std::mutex> g(live_mu());
    for (const CacheEntry& e : entries) {
      if (live_pools().count(e.uid) != 0) PoolAccess::retire(*e.pool, e.mag);
    }
  }
  void prune() {
    std::lock_guard<std::mutex> g(live_mu());
    std::erase_if(entries, [](const CacheEntry& e) { return live_pools().count(e.uid) == 0; });
  }
};
thread_local ThreadCache tl_cache;

}  // namespace detail

using detail::kBatch;
using detail::kMagSize;
using detail::Magazine;

// ---------------------------------------------------------------------------------------------------------
// BufferPool
// ---------------------------------------------------------------------------------------------------------

BufferPool::BufferPool(std::size_t buffer_size, std::uint32_t count) {
  if (buffer_size == 0 || buffer_size > kMaxBufferSize) {
    throw std::invalid_argument("buffer size must be 1.." + num(kMaxBufferSize) + " bytes, got " + num(buffer_size));
  }
  if (count == 0 || count > kMaxBuffers) {
    throw std::invalid_argument("buffer count must be 1.." + num(kMaxBuffers) + ", got " + num(count));
  }
  stride_ = round_buffer_size(buffer_size);
  if (stride_ > kMaxSlabBytes / count) {
    throw std::invalid_argument("pool too large: " + num(count) + " x " + num(stride_) + " bytes exceeds " +
                                num(kMaxSlabBytes) + " bytes");
  }
  count_ = count;
  asym_ = detail::membarrier_available();
  const std::size_t bytes = stride_ * count_;
  slots_ = std::make_unique<std::atomic<std::uint64_t>[]>(count_);
  slab_ = static_cast<std::byte*>(::operator new(bytes, std::align_val_t{kSlabAlign}));
  // Zeroing touches every page now, so the first use of a buffer never page-faults on the I/O path.
  std::memset(slab_, 0, bytes);
  // Free list 0 -> 1 -> ... -> count-1; buffer i has count - i buffers from it to the bottom.
  for (std::uint32_t i = 0; i < count_; ++i) {
    slots_[i].store(link(i + 1 < count_ ? i + 1 : kNoBuffer, count_ - i), std::memory_order_relaxed);
  }
  head_.store(pack(0, 0), std::memory_order_release);
  uid_ = detail::g_next_uid.fetch_add(1) + 1;
  try {
    std::lock_guard<std::mutex> g(detail::live_mu());
    detail::live_pools().insert(uid_);
  } catch (...) {
    ::operator delete(slab_, std::align_val_t{kSlabAlign});
    throw;
  }
}

BufferPool::~BufferPool() {
  {
    // After this no exiting thread touches the pool (they flush under the same mutex, live pools only).
    std::lock_guard<std::mutex> g(detail::live_mu());
    detail::live_pools().erase(uid_);
  }
  for (Magazine* m = magazines_.load(std::memory_order_acquire); m != nullptr;) {
    Magazine* next = m->next.load(std::memory_order_relaxed);
    delete m;
    m = next;
  }
  ::operator delete(slab_, std::align_val_t{kSlabAlign});
}

// ---- the global list -------------------------------------------------------------------------------------

// Treiber pop of up to `max` buffers with one CAS (out[0] = the old top). The links are read before the
// CAS; it only succeeds if the head word did not change meanwhile, and it cannot return to an earlier
// value: pops bump the generation, and pushes alone never bring back a former top (that takes a pop). So
// on success no operation ran between the head load and the CAS and every link read was the list's. A
// link read from a buffer popped meanwhile (its slot no longer a link) only makes us retry. popped_ is
// raised before the CAS and lowered by what was not taken, so it never lags the truth.
std::uint32_t BufferPool::pop_batch(std::uint32_t* out, std::uint32_t max) noexcept {
  std::uint64_t old = head_.load(std::memory_order_seq_cst);
  if (top_of(old) == kNoBuffer) return 0;  // empty now: nothing to reserve
  popped_.fetch_add(max, std::memory_order_seq_cst);
  std::uint32_t n = 0;
  for (;;) {
    n = 0;
    std::uint32_t cur = top_of(old);
    bool stale = false;
    while (n < max && cur != kNoBuffer) {
      if (cur >= count_) {
        stale = true;
        break;
      }
      const std::uint64_t slot = slots_[cur].load(std::memory_order_acquire);
      if ((slot & kInUseBit) != 0 || depth_of(slot) > count_) {
        stale = true;
        break;
      }
      out[n++] = cur;
      cur = next_of(slot);
    }
    if (stale) {
      old = head_.load(std::memory_order_seq_cst);
      continue;
    }
    if (n == 0) break;
    if (head_.compare_exchange_weak(old, pack(cur, gen_of(old) + 1), std::memory_order_seq_cst, std::memory_order_seq_cst)) break;
  }
  if (n < max) popped_.fetch_sub(max - n, std::memory_order_seq_cst);
  return n;
}

// Pushes items[0..n) (items[n-1] ends on top) with one CAS. The buffers are nobody's meanwhile (their
// slots say cached or are being relinked: a release needs the in-use word), so relinking them on a retry
// is safe. seq_cst: a waiter that registered and then found the list empty cannot miss this push while
// we miss its registration.
void BufferPool::push_batch(const std::uint32_t* items, std::uint32_t n) noexcept {
  if (n == 0) return;
  std::uint64_t old = head_.load(std::memory_order_seq_cst);
  for (;;) {
    const std::uint32_t top = top_of(old);
    // Read racily: if the top was popped meanwhile its slot is no link any more (the CAS would fail).
    // Never write a depth from such a slot: a cached word's depth + 1 would set the in-use bit.
    std::uint32_t depth = 0;
    if (top != kNoBuffer) {
      const std::uint64_t slot = slots_[top].load(std::memory_order_acquire);
      depth = depth_of(slot);
      if ((slot & kInUseBit) != 0 || depth > count_ - n) {
        old = head_.load(std::memory_order_seq_cst);
        continue;
      }
    }
    std::uint32_t below = top;
    for (std::uint32_t k = 0; k < n; ++k) {
      slots_[items[k]].store(link(below, depth + k + 1), std::memory_order_relaxed);
      below = items[k];
    }
    if (head_.compare_exchange_weak(old, pack(items[n - 1], gen_of(old)), std::memory_order_seq_cst, std::memory_order_seq_cst)) break;
  }
  pushed_.fetch_add(n, std::memory_order_seq_cst);
}

// The list's length: head, top's slot, head again; if the head did not change, the slot read belongs to
// it. Under heavy churn it gives up after a few tries with the last reading, clamped to 0..count.
std::uint32_t BufferPool::global_free() const noexcept {
  std::uint32_t free_n = 0;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t top = top_of(h);
    free_n = top == kNoBuffer ? 0 : depth_of(slots_[top].load(std::memory_order_acquire));
    if (head_.load(std::memory_order_acquire) == h) break;
  }
  return std::min(free_n, count_);
}

// ---- magazines -------------------------------------------------------------------------------------------

inline Magazine* BufferPool::my_magazine() noexcept {
  const detail::CacheEntry& e = detail::tl_last[uid_ % detail::kFastEntries];
  if (e.pool == this && e.uid == uid_) [[likely]] return e.mag;
  return attach();
}

// First use of this pool by this thread (or the one-entry cache was evicted by another pool): find our
// magazine, else adopt an orphan, else create one. nullptr when the thread is exiting (or out of memory):
// the caller then works on the global list directly.
Magazine* BufferPool::attach() noexcept {
  if (detail::tl_exiting) return nullptr;
  try {
    detail::ThreadCache& cache = detail::tl_cache;
    for (const detail::CacheEntry& e : cache.entries) {
      if (e.pool == this && e.uid == uid_) {
        detail::tl_last[uid_ % detail::kFastEntries] = e;
        return e.mag;
      }
    }
    if (cache.entries.size() >= 8) cache.prune();  // forget dead pools
    Magazine* m = nullptr;
    {
      std::lock_guard<std::mutex> g(attach_mu_);
      for (Magazine* o = magazines_.load(std::memory_order_acquire); o != nullptr; o = o->next.load(std::memory_order_acquire)) {
        if (o->live.load(std::memory_order_relaxed)) continue;
        detail::spin_lock(o->lock);  // a drainer may be inside
        o->live.store(true, std::memory_order_relaxed);
        o->lock.store(0, std::memory_order_release);
        m = o;
        break;
      }
      if (m == nullptr) {
        m = new Magazine;
        m->live.store(true, std::memory_order_relaxed);
        m->next.store(magazines_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        magazines_.store(m, std::memory_order_seq_cst);
      }
    }
    const detail::CacheEntry e{this, uid_, m};
    try {
      cache.entries.push_back(e);
    } catch (...) {
      retire(m);
      return nullptr;
    }
    detail::tl_last[uid_ % detail::kFastEntries] = e;
    return m;
  } catch (...) {
    return nullptr;
  }
}

// Owner: enter the critical section, or false when a drainer holds the magazine (then busy is 0 again).
inline bool BufferPool::enter(Magazine* m) noexcept {
  if (asym_) {
    m->busy.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the drainer's membarrier supplies the fence
  } else {
    m->busy.exchange(1, std::memory_order_seq_cst);
  }
  if (m->lock.load(std::memory_order_seq_cst) == 0) [[likely]] return true;
  m->busy.store(0, std::memory_order_release);
  return false;
}

// Owner, inside: the magazine is empty; take up to kBatch from the global list, the list's top on ours.
bool BufferPool::refill(Magazine* m) noexcept {
  std::uint32_t got[kBatch];
  const std::uint32_t n = pop_batch(got, kBatch);
  if (n == 0) return false;
  const std::uint32_t top = m->top.load(std::memory_order_relaxed);
  m->bot.store(top, std::memory_order_relaxed);
  for (std::uint32_t k = 0; k < n; ++k) {
    slots_[got[k]].store(kCachedWord, std::memory_order_relaxed);
    m->idx[(top + n - 1 - k) & (kMagSize - 1)].store(got[k], std::memory_order_relaxed);
  }
  m->top.store(top + n, std::memory_order_relaxed);
  return true;
}

// Owner (inside) or lock holder: move the oldest n buffers of the magazine to the global list, the
// newest of them on top (so a single thread sees one LIFO: its magazine above the global list).
void BufferPool::flush(Magazine* m, std::uint32_t n) noexcept {
  std::uint32_t items[kMagSize];
  const std::uint32_t bot = m->bot.load(std::memory_order_relaxed);
  for (std::uint32_t k = 0; k < n; ++k) items[k] = m->idx[(bot + k) & (kMagSize - 1)].load(std::memory_order_relaxed);
  m->bot.store(bot + n, std::memory_order_relaxed);
  push_batch(items, n);
}

// Thread exit: give the magazine's buffers back to the global list and orphan it.
void BufferPool::retire(Magazine* m) noexcept {
  detail::spin_lock(m->lock);
  flush(m, m->top.load(std::memory_order_relaxed) - m->bot.load(std::memory_order_relaxed));
  m->live.store(false, std::memory_order_relaxed);
  m->lock.store(0, std::memory_order_release);
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    { std::lock_guard<std::mutex> g(wait_mu_); }
    wait_cv_.notify_all();
  }
}

// The slow path of an acquire that found its magazine and the global list empty (or its magazine held):
// with drain_mu_, lock every magazine of the pool, make every owner visible (one membarrier, only when
// some locked magazine has another live owner; new magazines appended meanwhile are locked in turn) and
// wait until none is inside its critical section. Now nothing can enter or leave a magazine, so the
// global list and the magazines are all the free buffers there are (a buffer in transit is not free yet:
// its release or refill has not finished). Take from the global list, else steal from a magazine (half
// its buffers, the oldest, into ours), else report empty: at the instant of that last global read,
// every place a free buffer can be was empty.
bool BufferPool::drain(Magazine* own, std::uint32_t& index) noexcept {
  std::lock_guard<std::mutex> dg(drain_mu_);
  Magazine* const first = magazines_.load(std::memory_order_seq_cst);
  Magazine* locked_from = nullptr;  // magazines from `first` up to this one are locked
  Magazine* newest = first;
  for (;;) {
    bool foreign = false;
    for (Magazine* m = newest; m != locked_from; m = m->next.load(std::memory_order_acquire)) {
      detail::spin_lock(m->lock);
      if (m != own && m->live.load(std::memory_order_relaxed)) foreign = true;
    }
    if (foreign) detail::process_barrier(asym_);
    locked_from = newest;
    newest = magazines_.load(std::memory_order_seq_cst);
    if (newest == locked_from) break;
  }
  for (Magazine* m = newest; m != nullptr; m = m->next.load(std::memory_order_acquire)) detail::wait_not_busy(*m);

  bool got = false;
  const std::uint64_t q = pushed_.load(std::memory_order_seq_cst);
  std::uint32_t n = pop_batch(&index, 1);
  if (n == 1) {
    got = true;
  } else {
    for (Magazine* v = newest; v != nullptr && !got; v = v->next.load(std::memory_order_acquire)) {
      const std::uint32_t vb = v->bot.load(std::memory_order_relaxed), vt = v->top.load(std::memory_order_relaxed);
      if (vt == vb) continue;
      if (v == own) {  // only after a failed enter(): our own buffers
        index = v->idx[(vt - 1) & (kMagSize - 1)].load(std::memory_order_relaxed);
        v->top.store(vt - 1, std::memory_order_relaxed);
        got = true;
        break;
      }
      const std::uint32_t take = (vt - vb + 1) / 2;  // >= 1: one for the caller, the rest into ours
      index = v->idx[vb & (kMagSize - 1)].load(std::memory_order_relaxed);
      if (own != nullptr && take > 1 && own->top.load(std::memory_order_relaxed) == own->bot.load(std::memory_order_relaxed)) {
        const std::uint32_t ot = own->top.load(std::memory_order_relaxed);
        own->bot.store(ot, std::memory_order_relaxed);
        for (std::uint32_t k = 1; k < take; ++k) {
          own->idx[(ot + take - 1 - k) & (kMagSize - 1)].store(v->idx[(vb + k) & (kMagSize - 1)].load(std::memory_order_relaxed),
                                                                std::memory_order_relaxed);
        }
        own->top.store(ot + take - 1, std::memory_order_relaxed);
        v->bot.store(vb + take, std::memory_order_relaxed);
      } else {
        v->bot.store(vb + 1, std::memory_order_relaxed);
      }
      got = true;
    }
  }
  if (got) {
    // Everything but the global list is frozen: the bound is exact but for other threads' direct pops.
    std::int64_t cached = 0;
    for (Magazine* m = newest; m != nullptr; m = m->next.load(std::memory_order_acquire)) cached += m->count();
    const std::uint64_t p = popped_.load(std::memory_order_seq_cst);
    raise_high_water(static_cast<std::int64_t>(p - q) - cached);
  }
  for (Magazine* m = newest; m != nullptr; m = m->next.load(std::memory_order_acquire)) m->lock.store(0, std::memory_order_release);
  return got;
}

// ---- acquire ---------------------------------------------------------------------------------------------

inline void BufferPool::raise_high_water(std::int64_t bound) noexcept {
  if (bound <= 0) return;
  const std::uint32_t v = bound > static_cast<std::int64_t>(count_) ? count_ : static_cast<std::uint32_t>(bound);
  std::uint32_t hw = high_water_.load(std::memory_order_relaxed);
  while (v > hw && !high_water_.compare_exchange_weak(hw, v, std::memory_order_relaxed)) {
  }
}

inline void BufferPool::hand_out(std::uint32_t index, BufferHandle& out) noexcept {
  slots_[index].store(kInUseWord, std::memory_order_release);
  out.index = index;
  out.data = slab_ + static_cast<std::size_t>(index) * stride_;
}

// Fast path: pop our magazine (refilled from the global list when empty). The high-water bound is
// computed inside the critical section: pushed_ read before it (it only grows and never leads the truth),
// popped_ read after the pop (it never lags the truth), our magazine's count exact (no stealer can be
// inside). See "Statistics" in buffer_pool.h.
bool BufferPool::take_any(BufferHandle& out) noexcept {
  Magazine* m = my_magazine();
  bool held = m == nullptr;
  if (m != nullptr) {
    const std::uint64_t q = pushed_.load(std::memory_order_seq_cst);
    if (enter(m)) [[likely]] {
      std::uint32_t top = m->top.load(std::memory_order_relaxed);
      if (top != m->bot.load(std::memory_order_relaxed) || (refill(m) && (top = m->top.load(std::memory_order_relaxed), true))) {
        const std::uint32_t index = m->idx[(top - 1) & (kMagSize - 1)].load(std::memory_order_relaxed);
        m->top.store(top - 1, std::memory_order_relaxed);
        const std::uint64_t p = popped_.load(std::memory_order_seq_cst);
        const std::uint32_t left = top - 1 - m->bot.load(std::memory_order_relaxed);
        m->busy.store(0, std::memory_order_release);
        hand_out(index, out);
        raise_high_water(static_cast<std::int64_t>(p - q) - left);
        return true;
      }
      m->busy.store(0, std::memory_order_release);
    } else {
      held = true;
    }
  }
  std::uint32_t index;
  if (held) {
    // No magazine, or a drainer holds ours: the global list directly.
    const std::uint64_t q = pushed_.load(std::memory_order_seq_cst);
    if (pop_batch(&index, 1) == 1) {
      const std::uint64_t p = popped_.load(std::memory_order_seq_cst);
      hand_out(index, out);
      raise_high_water(static_cast<std::int64_t>(p - q));
      return true;
    }
  }
  if (drain(m, index)) {
    hand_out(index, out);
    return true;
  }
  out = BufferHandle{};
  return false;
}

AcquireStatus BufferPool::try_acquire(BufferHandle& out) noexcept {
  if (take_any(out)) return AcquireStatus::ok;
  failed_.fetch_add(1, std::memory_order_relaxed);
  return AcquireStatus::exhausted;
}

bool BufferPool::try_take(BufferHandle& out) noexcept { return take_any(out); }

AcquireStatus BufferPool::acquire(BufferHandle& out, std::uint32_t wait_ms) {
  if (take_any(out)) return AcquireStatus::ok;
  if (wait_ms == 0) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    return AcquireStatus::exhausted;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  bool got = false;
  {
    std::unique_lock<std::mutex> lk(wait_mu_);
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
      // After registering: a releaser either sees waiters_ > 0 (and wakes us, under wait_mu_, which we
      // hold until we sleep) or its buffer is visible to this attempt (the drain's membarrier / seq_cst
      // pushes; see give_back()).
      if (take_any(out)) {
        got = true;
        break;
      }
      if (wait_cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
        got = take_any(out);
        break;
      }
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (!got) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    out = BufferHandle{};
    return AcquireStatus::exhausted;
  }
  return AcquireStatus::ok;
}

// ---- release ---------------------------------------------------------------------------------------------

// One CAS on the buffer's slot (in-use -> cached; of two racing releases exactly one sees the in-use
// word), then a push onto our magazine (a flush of the oldest kBatch first when it is full), or straight
// onto the global list when we have no magazine or a drainer holds it. Then, if an acquire is waiting,
// our magazine goes to the global list and the waiter is woken. The waiters_ check needs a StoreLoad
// fence after the push: a drainer's membarrier supplies it (asym_), else a seq_cst exchange on busy.
ReleaseStatus BufferPool::give_back(std::uint32_t index) noexcept {
  std::uint64_t expected = kInUseWord;
  if (!slots_[index].compare_exchange_strong(expected, kCachedWord, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    return ReleaseStatus::double_release;
  }
  Magazine* m = my_magazine();
  if (m != nullptr && enter(m)) [[likely]] {
    std::uint32_t top = m->top.load(std::memory_order_relaxed);
    if (top - m->bot.load(std::memory_order_relaxed) == kMagSize) flush(m, kBatch);
    m->idx[top & (kMagSize - 1)].store(index, std::memory_order_relaxed);
    m->top.store(top + 1, std::memory_order_relaxed);
    if (asym_) {
      m->busy.store(0, std::memory_order_release);
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the drainer's membarrier supplies the fence
    } else {
      m->busy.exchange(0, std::memory_order_seq_cst);  // SC with the waiter's registration and drain
    }
  } else {
    push_batch(&index, 1);  // seq_cst
  }
  if (waiters_.load(std::memory_order_seq_cst) != 0) [[unlikely]] wake(m);
  return ReleaseStatus::ok;
}

// An acquire is waiting: put our cached buffers where it looks first, and wake it. Taking the mutex orders
// the notify after the waiter's last attempt (it holds the mutex until it sleeps).
void BufferPool::wake(Magazine* m) noexcept {
  if (m != nullptr && enter(m)) {
    flush(m, m->top.load(std::memory_order_relaxed) - m->bot.load(std::memory_order_relaxed));
    m->busy.store(0, std::memory_order_release);
  }
  { std::lock_guard<std::mutex> g(wait_mu_); }
  wait_cv_.notify_all();
}

ReleaseStatus BufferPool::release(std::uint32_t index) noexcept {
  if (index >= count_) return ReleaseStatus::foreign;
  return give_back(index);
}

ReleaseStatus BufferPool::release(const BufferHandle& h) noexcept {
  if (h.index >= count_ || h.data != slab_ + static_cast<std::size_t>(h.index) * stride_) return ReleaseStatus::foreign;
  return give_back(h.index);
}

ReleaseStatus BufferPool::release_ptr(const void* p) noexcept {
  const std::uint32_t index = index_of(p);
  if (index == kNoBuffer) return ReleaseStatus::foreign;
  return give_back(index);
}

std::uint32_t BufferPool::index_of(const void* p) const noexcept {
  // Integer arithmetic: comparing unrelated pointers with < is unspecified.
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const auto base = reinterpret_cast<std::uintptr_t>(slab_);
  if (a < base) return kNoBuffer;
  const std::uintptr_t off = a - base;
  if (off >= static_cast<std::uintptr_t>(stride_) * count_ || off % stride_ != 0) return kNoBuffer;
  return static_cast<std::uint32_t>(off / stride_);
}

bool BufferPool::owns(const void* p) const noexcept { return index_of(p) != kNoBuffer; }

std::byte* BufferPool::data(std::uint32_t index) const noexcept {
  return index < count_ ? slab_ + static_cast<std::size_t>(index) * stride_ : nullptr;
}

bool BufferPool::in_use(std::uint32_t index) const noexcept {
  return index < count_ && (slots_[index].load(std::memory_order_acquire) & kInUseBit) != 0;
}

// ---- statistics ------------------------------------------------------------------------------------------

// total - (global list length) - (every magazine's count), each read racily and clamped: exact when
// quiescent, within 0..total always.
std::uint32_t BufferPool::in_use_now() const noexcept {
  std::uint64_t free_n = global_free();
  for (Magazine* m = magazines_.load(std::memory_order_acquire); m != nullptr; m = m->next.load(std::memory_order_acquire)) {
    free_n += m->count();
  }
  return count_ - static_cast<std::uint32_t>(std::min<std::uint64_t>(free_n, count_));
}

PoolStats BufferPool::stats() const noexcept {
  PoolStats s;
  s.total = count_;
  s.in_use = in_use_now();
  s.available = s.total - s.in_use;
  s.high_water = std::max<std::uint64_t>(high_water_.load(std::memory_order_relaxed), s.in_use);
  s.failed_acquires = failed_.load(std::memory_order_relaxed);
  return s;
}

std::string BufferPool::audit() const {
  std::vector<bool> listed(count_, false);
  const std::uint64_t h = head_.load(std::memory_order_acquire);
  std::uint32_t length = top_of(h) == kNoBuffer ? 0 : depth_of(slots_[top_of(h)].load(std::memory_order_relaxed));
  if (length > count_) return "the top's depth " + num(length) + " exceeds the capacity " + num(count_);
  std::uint32_t seen = 0;
  for (std::uint32_t i = top_of(h); i != kNoBuffer;) {
    if (i >= count_) return "free list holds index " + num(i) + " (capacity " + num(count_) + ")";
    if (listed[i]) return "free list holds buffer " + num(i) + " twice (a cycle)";
    const std::uint64_t slot = slots_[i].load(std::memory_order_relaxed);
    if (slot & kInUseBit) return "buffer " + num(i) + " is on the free list but in use";
    if (depth_of(slot) != length - seen) {
      return "buffer " + num(i) + " has depth " + num(depth_of(slot)) + ", expected " + num(length - seen);
    }
    listed[i] = true;
    ++seen;
    i = next_of(slot);
  }
  if (seen != length) return "free list has " + num(seen) + " buffers but its top says " + num(length);
  std::uint32_t cached = 0;
  for (Magazine* m = magazines_.load(std::memory_order_acquire); m != nullptr; m = m->next.load(std::memory_order_acquire)) {
    if (m->lock.load(std::memory_order_relaxed) != 0 || m->busy.load(std::memory_order_relaxed) != 0) return "a magazine is still locked";
    const std::uint32_t bot = m->bot.load(std::memory_order_relaxed), top = m->top.load(std::memory_order_relaxed);
    if (top - bot > kMagSize) return "a magazine holds " + num(top - bot) + " buffers (at most " + num(kMagSize) + ")";
    for (std::uint32_t k = bot; k != top; ++k) {
      const std::uint32_t i = m->idx[k & (kMagSize - 1)].load(std::memory_order_relaxed);
      if (i >= count_) return "a magazine holds index " + num(i) + " (capacity " + num(count_) + ")";
      if (listed[i]) return "buffer " + num(i) + " is free in two places";
      if (slots_[i].load(std::memory_order_relaxed) != kCachedWord) return "buffer " + num(i) + " is in a magazine but its slot says otherwise";
      listed[i] = true;
      ++cached;
    }
  }
  std::uint32_t in_use = 0;
  for (std::uint32_t i = 0; i < count_; ++i) {
    const bool busy = (slots_[i].load(std::memory_order_relaxed) & kInUseBit) != 0;
    if (busy) ++in_use;
    if (busy && listed[i]) return "buffer " + num(i) + " is free but in use";
    if (!busy && !listed[i]) return "buffer " + num(i) + " is free but not on the free list or in a magazine (leaked)";
  }
  if (in_use + seen + cached != count_) {
    return "in use " + num(in_use) + " + free " + num(seen) + " + cached " + num(cached) + " != total " + num(count_);
  }
  if (in_use_now() != in_use) return "stats say " + num(in_use_now()) + " in use, the slots say " + num(in_use);
  const std::uint64_t p = popped_.load(std::memory_order_relaxed), q = pushed_.load(std::memory_order_relaxed);
  if (p - q != count_ - seen) return "popped - pushed = " + num(p - q) + ", but " + num(count_ - seen) + " buffers are off the list";
  const std::uint32_t hw = high_water_.load(std::memory_order_relaxed);
  if (hw > count_ || hw < in_use) return "high water " + num(hw) + " outside in_use.." + num(count_);
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// SizeClassSet
// ---------------------------------------------------------------------------------------------------------

namespace {

std::vector<SizeClass> default_classes(std::uint32_t count) {
  std::vector<SizeClass> v;
  for (std::size_t s : kDefaultSizeClasses) v.push_back(SizeClass{s, count});
  return v;
}

}  // namespace

SizeClassSet::SizeClassSet(std::uint32_t count_per_class)
    : SizeClassSet(std::span<const SizeClass>(default_classes(count_per_class))) {}

SizeClassSet::SizeClassSet(std::span<const SizeClass> classes) {
  if (classes.empty() || classes.size() > 16) {
    throw std::invalid_argument("a size-class set needs 1..16 classes, got " + num(classes.size()));
  }
  for (const SizeClass& c : classes) {
    const std::size_t size = round_buffer_size(c.buffer_size);
    if (!sizes_.empty() && size <= sizes_.back()) {
      throw std::invalid_argument("size classes must be strictly increasing after rounding to 64 bytes; " +
                                  num(c.buffer_size) + " follows " + num(sizes_.back()));
    }
    pools_.push_back(std::make_unique<BufferPool>(c.buffer_size, c.count));
    sizes_.push_back(pools_.back()->buffer_size());
  }
}

int SizeClassSet::pick(std::size_t request) const noexcept {
  for (std::size_t i = 0; i < sizes_.size(); ++i) {
    if (request <= sizes_[i]) return static_cast<int>(i);
  }
  return -1;
}

AcquireStatus SizeClassSet::acquire(std::size_t request, ClassBuffer& out, std::uint32_t wait_ms) {
  out = ClassBuffer{};
  const int cls = pick(request);
  if (cls < 0) return AcquireStatus::too_large;
  const AcquireStatus st = pools_[cls]->acquire(out.buffer, wait_ms);
  if (st == AcquireStatus::ok) {
    out.cls = static_cast<std::uint32_t>(cls);
    out.size = sizes_[cls];
  }
  return st;
}

ReleaseStatus SizeClassSet::release(const ClassBuffer& b) noexcept {
  if (b.cls >= pools_.size()) return ReleaseStatus::foreign;
  return pools_[b.cls]->release(b.buffer);
}

ReleaseStatus SizeClassSet::release_ptr(const void* p) noexcept {
  for (auto& pool : pools_) {
    if (pool->owns(p)) return pool->release_ptr(p);
  }
  return ReleaseStatus::foreign;
}

}  // namespace cpspec::pool
