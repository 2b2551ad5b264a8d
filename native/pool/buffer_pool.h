// cpspec::pool — fixed-size buffer pools for completion-port I/O (CP-POOL-001..004, 009).
//
// BufferPool: `count` buffers of one size, all in one slab allocated (and zeroed) by the constructor;
// nothing is allocated afterwards. Each buffer starts on a 64-byte cache line and its size is rounded up
// to a multiple of 64, so two buffers never share a line. Acquire never blocks forever: it returns
// `exhausted` at once, or after a bounded wait (acquire(out, wait_ms)). Releasing a buffer twice, or a
// buffer that is not this pool's, is rejected with a status and leaves the pool untouched.
//
// SizeClassSet: a few BufferPools of increasing size (the seeds' 64/512/2048/8192/32768 by default);
// acquire(request) takes from the smallest class whose buffers hold `request` bytes.
//
// Design: per-thread magazines in front of one global lock-free LIFO free list.
//
//   Global list: a Treiber stack of buffer indices. Its head is one 64-bit word: low 32 bits the top
//   index, high 32 bits a generation bumped by every pop, so a compare-and-swap can never succeed on a
//   head that went A -> B -> A meanwhile (the seeds' lock-free pool CASes bare pointers: that ABA bug hands
//   one buffer to two owners). It is popped and pushed kBatch (16) buffers at a time, one CAS each.
//   Slot words: each buffer has one 64-bit word in a side array, never inside the buffer (a user
//   scribbling over a buffer cannot corrupt anything): "in use", "cached" (free in some magazine), or on
//   the global list with its link and its depth there (so the top says how long the list is).
//
//   Magazines: each thread that uses a pool gets a magazine for it: a ring of up to 32 free buffers used as
//   a LIFO. An acquire pops the thread's magazine (refilled with 16 from the global list when empty); a
//   release pushes onto it (the oldest 16 go to the global list when it is full). In one thread the
//   magazine is exactly the top of one LIFO whose rest is the global list: buffer 0 first, then 1, 2, ...,
//   and the last released is the next handed out, as before.
//
//   Double release: a release first CASes the slot from "in use" to "cached"; of two racing releases
//   (any threads) exactly one sees "in use", the other gets double_release; a buffer that is free anywhere
//   never says "in use". That CAS is the only locked instruction of an acquire+release pair.
//
//   Stealing: a magazine is owner-only on the fast path, but it is not private. The owner brackets its
//   work with busy = 1 / busy = 0 (plain stores) and backs off (to the global list) if it finds the
//   magazine's lock taken; a drainer takes the lock (xchg), then membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
//   forces a full fence on every running thread of the process, then waits for busy == 0 (an asymmetric
//   Dekker handshake: the owner pays no fence, the rare drainer a ~0.1-1 us syscall; on Windows
//   FlushProcessWriteBuffers plays the membarrier's part). Where membarrier is unavailable (or with
//   -DCPSPEC_POOL_NO_MEMBARRIER) the owner enters and, on release, leaves with seq_cst exchanges on busy
//   instead: a plain SC Dekker, slower, same guarantees.
//
//   Exhausted means exhausted (CP-POOL-003): an acquire whose magazine and the global list are empty
//   drains: under drain_mu_ it locks every magazine of the pool (and any created meanwhile), makes their
//   owners visible with one membarrier (skipped when no other live owner exists), and waits until no owner
//   is inside. Then nothing can enter or leave a magazine, and the global list plus the magazines are all
//   the free buffers there are. It takes from the global list, else steals half of some magazine (the
//   oldest buffers; one to the caller, the rest into its own magazine), else reports exhausted: at the
//   instant of that last global read every free buffer would have had to be in one of those empty places.
//   A parked thread strands nothing: its magazine is drained like any other. A thread that exits flushes
//   its magazines into their pools (those still alive) and orphans them; the next thread to use the pool
//   adopts an orphan instead of allocating.
//
//   Bounded waits: a releaser that sees waiters_ > 0 flushes its magazine to the global list and wakes
//   the waiters (the same handshake orders its push against the waiter's registration), so acquire(out,
//   wait_ms) still wakes on any release, from any thread.
//
//   Thread-local state: a direct-mapped thread_local array (8 entries) of {pool, uid, magazine}; uid is
//   unique per pool instance in the process, so a new pool at a dead pool's address never finds the dead
//   pool's magazine. Magazines belong to their pool (freed by its destructor); a thread's list of its
//   magazines is only followed, at thread exit, under a process-wide mutex for pools still alive (the
//   destructor removes its pool from that set first). No dangling pointer is ever dereferenced and nothing
//   leaks under ASan.
//
// Chosen by measurement (cpspec-bench-pool, one thread, 8 KiB; 2-core Xeon VM, one locked instruction
// ~4.5 ns; malloc+memset+free ~63-71 ns, so the 5x target means <= ~12.7-14 ns per pair):
//   - previous design, the global stack alone, 3 locked instructions per pair (pop CAS, slot CAS, push
//     CAS): 23.1-23.8 ns, 2.74x malloc+memset+free (MISS), 1.15-1.24x the mutex+stack pool.
//   - this design, 1 locked instruction per pair (the release's slot CAS) on the fast path: 9.9-11.3 ns,
//     6.2-6.4x malloc+memset+free (PASS; 5.5x in a run with load average 7 from other jobs) and 2.4-2.7x
//     the mutex+stack pool; the bench's owner-only prototype (not stealable, so not contract-safe) is
//     ~6.7 ns. Two threads share no written line on the fast path: ~10 ns per thread per pair when the
//     machine is otherwise idle (the 2-thread rows swing widely with other load on 2 cores).
//   - the same magazines with the owner paying for its side of the handshake instead of relying on
//     membarrier (the -DCPSPEC_POOL_NO_MEMBARRIER fallback: xchg to enter, xchg to leave a release; 4
//     locked instructions per pair): 23.7 ns against 9.6 ns in the same run. A per-magazine lock taken
//     with xchg by the owner (3 locked instructions per pair, ~19 ns estimated) would miss 5x as well.
//   - a drainer's membarrier costs ~0.1-0.13 us here; a failed acquire with no other live owner needs none.
//
// Statistics: in_use = total - (global list length) - (the sum of the magazines' counts), each read
// racily and clamped, available = total - in_use: so in_use + available == total in every snapshot, and
// all counts are exact when the pool is quiescent. failed_acquires is one counter.
//   high_water is never below the true maximum in use at once. Each acquire raises it to an upper bound
//   of the in-use count at its own linearization point: popped_ - pushed_ - (its own magazine's count),
//   where popped_ is raised before every global pop (never lags the truth), pushed_ after every global
//   push (never leads it), so popped_ - pushed_ >= the buffers off the global list >= in use + the
//   buffers in magazines; pushed_ is read before the pop and popped_ inside the owner's critical section
//   (x86-TSO: no later store, hence no stealer, can pass that load; the drain path computes the same bound
//   with every magazine locked). Precisely: high_water >= the maximum over time of in_use; and it never
//   exceeds total, nor the maximum over time of in_use + the buffers cached in other threads' magazines
//   + those in flight between the global list and a magazine (a refill reserves 16 in popped_ before its
//   pop). It is exact whenever only one thread has buffers cached and calls do not overlap, e.g. any
//   single-threaded use (the TS model's); with several threads caching it may exceed the true peak by
//   what the others hold cached. stats() reports max(high_water, in_use).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace cpspec::pool {

namespace detail {
struct Magazine;    // one thread's cache of one pool (buffer_pool.cpp)
struct PoolAccess;  // the thread-exit hook (buffer_pool.cpp)
}  // namespace detail

inline constexpr std::size_t kCacheLine = 64;
/** Most buffers one pool may hold (buffer ids stay small JS integers). */
inline constexpr std::uint32_t kMaxBuffers = 1u << 30;
/** Largest buffer size (after rounding). */
inline constexpr std::size_t kMaxBufferSize = std::size_t{1} << 30;
/** Largest slab (buffer size x count) one pool may allocate. */
inline constexpr std::size_t kMaxSlabBytes = std::size_t{1} << 36;
/** The index of no buffer (never a valid id). */
inline constexpr std::uint32_t kNoBuffer = 0xFFFFFFFFu;
/** The seeds' size classes. */
inline constexpr std::array<std::size_t, 5> kDefaultSizeClasses{64, 512, 2048, 8192, 32768};

enum class AcquireStatus : std::uint8_t {
  ok,
  exhausted,  // no buffer was free (at once, or until the wait ran out)
  too_large,  // SizeClassSet only: the request exceeds the largest class
};

enum class ReleaseStatus : std::uint8_t {
  ok,
  double_release,  // the buffer is this pool's but is not in use (already released)
  foreign,         // not a buffer of this pool (index out of range, or a pointer that is not a buffer's start)
};

/** "ok", "exhausted", "too-large". */
const char* acquire_status_name(AcquireStatus s) noexcept;
/** "ok", "double-release", "foreign" (the JS names). */
const char* release_status_name(ReleaseStatus s) noexcept;

/** A buffer handed out by a pool: its index (the id) and its memory. Invalid when data == nullptr. */
struct BufferHandle {
  std::byte* data = nullptr;
  std::uint32_t index = kNoBuffer;
  bool valid() const noexcept { return data != nullptr; }
};

struct PoolStats {
  std::uint64_t total = 0;
  std::uint64_t in_use = 0;
  std::uint64_t available = 0;
  std::uint64_t high_water = 0;       // most buffers in use at once since construction (never less; see above)
  std::uint64_t failed_acquires = 0;  // acquires that returned exhausted (a timed-out wait counts once)
};

/** n rounded up to a multiple of kCacheLine (0 -> 64). */
constexpr std::size_t round_buffer_size(std::size_t n) noexcept {
  if (n == 0) return kCacheLine;
  return (n + kCacheLine - 1) / kCacheLine * kCacheLine;
}

class BufferPool {
 public:
  /**
   * buffer_size 1..kMaxBufferSize (rounded up to a multiple of 64), count 1..kMaxBuffers, and the slab
   * (rounded size x count) at most kMaxSlabBytes; otherwise std::invalid_argument. std::bad_alloc when the
   * slab cannot be allocated. The buffers start zeroed. Buffer 0 is the first handed out.
   */
  BufferPool(std::size_t buffer_size, std::uint32_t count);
  /**
   * Must not run while another thread uses the pool (waiters included). Outstanding buffers die with it.
   * Threads that still cache buffers of it need not be told (their cache entries die with it).
   */
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  /**
   * Takes a free buffer into `out`, or returns exhausted at once (out is reset). Lock-free on the fast
   * path; when the caller's magazine and the global list are empty it drains the other threads' magazines
   * (a mutex and a membarrier) before it reports exhausted. Any thread.
   */
  AcquireStatus try_acquire(BufferHandle& out) noexcept;
  /**
   * try_acquire that does not count an empty pool as a failed acquire: for callers that go on to
   * acquire(out, wait_ms) (which counts it) when this fails. True when it took a buffer.
   */
  bool try_take(BufferHandle& out) noexcept;
  /**
   * Like try_acquire, but when the pool is empty waits up to wait_ms milliseconds for a release
   * (0 = do not wait). Never waits longer than that (give or take the scheduler).
   */
  AcquireStatus acquire(BufferHandle& out, std::uint32_t wait_ms = 0);

  /**
   * Releases buffer `index` (an id), from any thread (into that thread's magazine). Lock-free (it takes a
   * mutex only when an acquire is waiting).
   */
  ReleaseStatus release(std::uint32_t index) noexcept;
  /** Releases a handle: foreign unless h.data is exactly the memory of buffer h.index of this pool. */
  ReleaseStatus release(const BufferHandle& h) noexcept;
  /** Releases by pointer: foreign unless p is the start of one of this pool's buffers. */
  ReleaseStatus release_ptr(const void* p) noexcept;

  /**
   * A snapshot of the counters: in_use + available == total always, all exact when the pool is quiescent
   * (see "Statistics" above for what high_water guarantees under concurrency). Any thread.
   */
  PoolStats stats() const noexcept;
  /** Bytes per buffer (the rounded size). */
  std::size_t buffer_size() const noexcept { return stride_; }
  std::uint32_t capacity() const noexcept { return count_; }
  /** Whether p is the start of one of this pool's buffers. */
  bool owns(const void* p) const noexcept;
  /** The index of the buffer starting at p, or kNoBuffer. */
  std::uint32_t index_of(const void* p) const noexcept;
  /** The memory of buffer `index`, or nullptr if out of range. */
  std::byte* data(std::uint32_t index) const noexcept;
  /** Whether buffer `index` is handed out (false if out of range). */
  bool in_use(std::uint32_t index) const noexcept;

  /**
   * Self-check of a quiescent pool (no concurrent calls): the free list has no cycle and no index out of
   * range, lists every free buffer exactly once and no buffer in use, and the counters agree. Returns ""
   * when consistent, else a description of the first problem.
   */
  std::string audit() const;

 private:
  friend struct detail::PoolAccess;

  // Slot word of a buffer (a side array, never inside the buffer): kInUseWord = handed out; kCachedWord =
  // free in some thread's magazine; anything else = on the global free list, with bits 0..31 the next
  // buffer and bits 32..62 its depth (buffers from it to the bottom, itself included; <= kMaxBuffers).
  static constexpr std::uint64_t kInUseBit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kInUseWord = kInUseBit;
  static constexpr std::uint64_t kCachedWord = ~kInUseBit;  // depth field 0x7FFFFFFF: never a real depth
  static constexpr std::uint64_t link(std::uint32_t next, std::uint32_t depth) noexcept {
    return (static_cast<std::uint64_t>(depth) << 32) | next;
  }
  static constexpr std::uint32_t next_of(std::uint64_t slot) noexcept { return static_cast<std::uint32_t>(slot); }
  static constexpr std::uint32_t depth_of(std::uint64_t slot) noexcept {
    return static_cast<std::uint32_t>(slot >> 32) & 0x7FFFFFFFu;
  }

  // Head word: bits 0..31 the top index, bits 32..63 a generation bumped by every pop.
  static constexpr std::uint64_t pack(std::uint32_t index, std::uint32_t gen) noexcept {
    return (static_cast<std::uint64_t>(gen) << 32) | index;
  }
  static constexpr std::uint32_t top_of(std::uint64_t head) noexcept { return static_cast<std::uint32_t>(head); }
  static constexpr std::uint32_t gen_of(std::uint64_t head) noexcept { return static_cast<std::uint32_t>(head >> 32); }

  // The global list (batch pop / batch push; each one CAS on head_).
  std::uint32_t pop_batch(std::uint32_t* out, std::uint32_t max) noexcept;
  void push_batch(const std::uint32_t* items, std::uint32_t n) noexcept;
  std::uint32_t global_free() const noexcept;
  // Magazines.
  detail::Magazine* my_magazine() noexcept;
  detail::Magazine* attach() noexcept;
  bool enter(detail::Magazine* m) noexcept;
  bool refill(detail::Magazine* m) noexcept;
  void flush(detail::Magazine* m, std::uint32_t n) noexcept;
  bool drain(detail::Magazine* own, std::uint32_t& index) noexcept;
  void retire(detail::Magazine* m) noexcept;
  void wake(detail::Magazine* m) noexcept;
  // Acquire / release.
  bool take_any(BufferHandle& out) noexcept;
  void hand_out(std::uint32_t index, BufferHandle& out) noexcept;
  void raise_high_water(std::int64_t in_use_bound) noexcept;
  ReleaseStatus give_back(std::uint32_t index) noexcept;
  std::uint32_t in_use_now() const noexcept;

  // Read-only after construction (read by every call: its own line).
  alignas(kCacheLine) std::uint64_t uid_ = 0;  // unique per pool instance in this process (thread caches key on it)
  std::byte* slab_ = nullptr;
  std::size_t stride_ = 0;
  std::uint32_t count_ = 0;
  bool asym_ = false;  // membarrier(PRIVATE_EXPEDITED) available: owners skip their StoreLoad fence
  std::unique_ptr<std::atomic<std::uint64_t>[]> slots_;  // one slot word per buffer
  // The global free list and its traffic counters, written by refills and flushes (every kBatch operations).
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{pack(kNoBuffer, 0)};
  std::atomic<std::uint64_t> popped_{0};  // buffers taken off the list, raised *before* the pop (>= the truth)
  std::atomic<std::uint64_t> pushed_{0};  // buffers put on the list, raised *after* the push (<= the truth)
  // Written rarely.
  alignas(kCacheLine) std::atomic<std::uint32_t> waiters_{0};  // acquires blocked in acquire(out, wait_ms > 0)
  std::atomic<std::uint32_t> high_water_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<detail::Magazine*> magazines_{nullptr};  // every magazine of this pool (append-only list)
  std::mutex attach_mu_;                               // adopting / creating magazines
  std::mutex drain_mu_;                                // one drainer at a time
  // Bounded waits only.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
};

/** One class of a SizeClassSet: buffers of buffer_size bytes (rounded up to 64), `count` of them. */
struct SizeClass {
  std::size_t buffer_size = 0;
  std::uint32_t count = 0;
};

/** A buffer from a SizeClassSet: the buffer, its class and the class's buffer size. */
struct ClassBuffer {
  BufferHandle buffer;
  std::uint32_t cls = kNoBuffer;
  std::size_t size = 0;
  bool valid() const noexcept { return buffer.valid(); }
};

class SizeClassSet {
 public:
  /** The default classes (64, 512, 2048, 8192, 32768), count_per_class buffers each. */
  explicit SizeClassSet(std::uint32_t count_per_class);
  /** 1..16 classes; sizes (after rounding) must be strictly increasing, else std::invalid_argument. */
  explicit SizeClassSet(std::span<const SizeClass> classes);

  /** The index of the smallest class whose buffers hold `request` bytes, or -1 if none does. */
  int pick(std::size_t request) const noexcept;
  /** From the class pick(request) (no fallback to a larger class): ok, exhausted or too_large. */
  AcquireStatus acquire(std::size_t request, ClassBuffer& out, std::uint32_t wait_ms = 0);
  ReleaseStatus release(const ClassBuffer& b) noexcept;
  /** Finds the owning class by address. */
  ReleaseStatus release_ptr(const void* p) noexcept;

  std::size_t size() const noexcept { return pools_.size(); }
  BufferPool& pool(std::size_t cls) noexcept { return *pools_[cls]; }
  const BufferPool& pool(std::size_t cls) const noexcept { return *pools_[cls]; }
  /** The (rounded) buffer size of class cls. */
  std::size_t class_size(std::size_t cls) const noexcept { return sizes_[cls]; }

 private:
  std::vector<std::size_t> sizes_;
  std::vector<std::unique_ptr<BufferPool>> pools_;
};

}  // namespace cpspec::pool
