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
// Design: one global lock-free LIFO free list (a Treiber stack of buffer indices). Its head is one 64-bit
// word: low 32 bits the top index, high 32 bits a generation bumped by every pop, so a compare-and-swap
// can never succeed on a head that went A -> B -> A meanwhile (the seeds' lock-free pool CASes bare
// pointers: that ABA bug hands one buffer to two owners). Each buffer has one 64-bit slot word in a side
// array, never inside the buffer (a user scribbling over a buffer cannot corrupt the list): either
// "in use" (bit 63), or free with its link and its depth on the list. Release flips in-use -> free with a
// CAS on that word, so of two racing releases exactly one wins and the other gets double_release; and
// because the top's depth is the list's length, the in-use count needs no counter of its own.
//
// Chosen by measurement (cpspec-bench-pool; 2-core Xeon VM, one locked instruction ~4.5 ns):
//   - an acquire+release pair costs 3 locked instructions (pop CAS, slot CAS, push CAS): ~24 ns on one
//     thread, ahead of the seeds' mutex+stack pool (~27 ns, 4 locked instructions). A first version with
//     a state byte and an in_use counter (5 locked instructions) took ~29 ns and lost to the mutex.
//   - per-thread caches (the bench's "sharded" prototype: owner-only magazines, one locked instruction
//     per pair) reach ~7 ns and keep a buffer on the core that last touched it. Not adopted: buffers
//     sitting in another thread's cache make an acquire report `exhausted` while buffers are idle
//     (CP-POOL-003: exhausted must mean exhausted; CP-POOL-005 turns it into pool-exhausted receive
//     completions), a thread that parks (an I/O worker blocked on the port) strands its cache
//     indefinitely, and exact in-use / high-water counts need a global counter again. Stealable caches
//     cost a second CAS per pair plus a per-thread registry. The contract was judged worth more.
//
// Statistics: in_use = total - (depth of the top), read as one consistent snapshot; available = total -
// in_use; the high-water mark is raised at every pop with the exact count at that instant (the depth read
// with the link that the successful CAS validated); failed acquires are one counter. All exact, also
// under concurrency; audit() cross-checks them against the slots in a quiescent pool.
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
  std::uint64_t high_water = 0;       // most buffers in use at once since construction
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
  /** Must not run while another thread uses the pool (waiters included). Outstanding buffers die with it. */
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  /** Takes a free buffer into `out`, or returns exhausted at once (out is reset). Lock-free. */
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

  /** Releases buffer `index` (an id). Lock-free (it takes a mutex only when an acquire is waiting). */
  ReleaseStatus release(std::uint32_t index) noexcept;
  /** Releases a handle: foreign unless h.data is exactly the memory of buffer h.index of this pool. */
  ReleaseStatus release(const BufferHandle& h) noexcept;
  /** Releases by pointer: foreign unless p is the start of one of this pool's buffers. */
  ReleaseStatus release_ptr(const void* p) noexcept;

  /** A snapshot of the counters (a consistent instant of the free list; in_use + available == total). */
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
  // Slot word of a buffer: bit 63 set = in use (the whole word is then kInUseWord). Clear = free, with
  // bits 0..31 the next buffer on the free list and bits 32..62 its depth (buffers from it to the bottom,
  // itself included), so the top's slot says how long the list is.
  static constexpr std::uint64_t kInUseBit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kInUseWord = kInUseBit;
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

  bool pop(std::uint32_t& index, std::uint32_t& free_after, std::memory_order load_order) noexcept;
  std::uint64_t link_to(std::uint64_t head) const noexcept;
  void take(std::uint32_t index, std::uint32_t free_after, BufferHandle& out) noexcept;
  ReleaseStatus give_back(std::uint32_t index) noexcept;
  std::uint32_t in_use_now() const noexcept;

  // Hot: written by every acquire and release.
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{pack(kNoBuffer, 0)};
  std::atomic<std::uint32_t> waiters_{0};  // acquires blocked in acquire(out, wait_ms > 0)
  // Written rarely.
  alignas(kCacheLine) std::atomic<std::uint32_t> high_water_{0};
  std::atomic<std::uint64_t> failed_{0};
  // Read-only after construction.
  alignas(kCacheLine) std::byte* slab_ = nullptr;
  std::size_t stride_ = 0;
  std::uint32_t count_ = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> slots_;  // one slot word per buffer
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
