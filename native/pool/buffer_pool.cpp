// cpspec::pool — see buffer_pool.h for the design.
#include "buffer_pool.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <stdexcept>

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
}

BufferPool::~BufferPool() { ::operator delete(slab_, std::align_val_t{kSlabAlign}); }

// The slot word a buffer gets when it goes on top of `head`: a link to the current top and a depth one
// more than the top's. Read racily (the top may be popped meanwhile, its slot then says in-use), but the
// push's CAS on the head only succeeds if the head, hence the top and its slot, did not change.
std::uint64_t BufferPool::link_to(std::uint64_t head) const noexcept {
  const std::uint32_t top = top_of(head);
  const std::uint32_t depth = top == kNoBuffer ? 0 : depth_of(slots_[top].load(std::memory_order_acquire));
  return link(top, depth + 1);
}

// Treiber pop. The top's slot is read before the CAS; if another thread popped that buffer meanwhile
// (and perhaps pushed it back with a different link), the head's generation has moved on and the CAS
// fails. Only pops bump the generation: pushes alone can never bring a former top back to the top (that
// takes a pop), so a push cannot complete an A -> B -> A cycle. While a buffer is on the list its slot
// does not change (a release needs the in-use bit), so when the CAS succeeds the depth read with the
// link is exact: `free_after` is the length of the list the instant after this pop.
bool BufferPool::pop(std::uint32_t& index, std::uint32_t& free_after, std::memory_order load_order) noexcept {
  // load_order is acquire on the fast path, seq_cst for a registered waiter (then every read of the head,
  // the CAS's failure reload included, takes part in the Dekker handshake with give_back()).
  const std::memory_order cas_order =
      load_order == std::memory_order_seq_cst ? std::memory_order_seq_cst : std::memory_order_acquire;
  std::uint64_t old = head_.load(load_order);
  for (;;) {
    const std::uint32_t top = top_of(old);
    if (top == kNoBuffer) return false;
    const std::uint64_t slot = slots_[top].load(std::memory_order_acquire);
    if (head_.compare_exchange_weak(old, pack(next_of(slot), gen_of(old) + 1), cas_order, load_order)) {
      index = top;
      free_after = depth_of(slot) - 1;
      return true;
    }
  }
}

// After a successful pop: mark the buffer in use (its slot word becomes kInUseWord) and raise the
// high-water mark with the exact in-use count at the pop.
void BufferPool::take(std::uint32_t index, std::uint32_t free_after, BufferHandle& out) noexcept {
  slots_[index].store(kInUseWord, std::memory_order_release);
  const std::uint32_t in_use = count_ - free_after;
  std::uint32_t hw = high_water_.load(std::memory_order_relaxed);
  while (in_use > hw && !high_water_.compare_exchange_weak(hw, in_use, std::memory_order_relaxed)) {
  }
  out.index = index;
  out.data = slab_ + static_cast<std::size_t>(index) * stride_;
}

AcquireStatus BufferPool::try_acquire(BufferHandle& out) noexcept {
  std::uint32_t index, free_after;
  if (!pop(index, free_after, std::memory_order_acquire)) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    out = BufferHandle{};
    return AcquireStatus::exhausted;
  }
  take(index, free_after, out);
  return AcquireStatus::ok;
}

bool BufferPool::try_take(BufferHandle& out) noexcept {
  std::uint32_t index, free_after;
  if (!pop(index, free_after, std::memory_order_acquire)) {
    out = BufferHandle{};
    return false;
  }
  take(index, free_after, out);
  return true;
}

AcquireStatus BufferPool::acquire(BufferHandle& out, std::uint32_t wait_ms) {
  std::uint32_t index, free_after;
  if (pop(index, free_after, std::memory_order_acquire)) {
    take(index, free_after, out);
    return AcquireStatus::ok;
  }
  if (wait_ms == 0) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    out = BufferHandle{};
    return AcquireStatus::exhausted;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  bool got = false;
  {
    std::unique_lock<std::mutex> lk(wait_mu_);
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
      // seq_cst: pairs with push()/give_back() (Dekker): either we see the pushed buffer, or the releaser
      // sees waiters_ > 0 and notifies under wait_mu_ (which we hold until we sleep).
      if (pop(index, free_after, std::memory_order_seq_cst)) {
        got = true;
        break;
      }
      if (wait_cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
        got = pop(index, free_after, std::memory_order_seq_cst);
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
  take(index, free_after, out);
  return AcquireStatus::ok;
}

// Release: one CAS on the buffer's slot (in-use -> linked to the current top; it fails, and the release is
// a double release, when the in-use bit is already clear), then the push CAS on the head. If the head
// moved meanwhile the slot is re-linked before the next try; nobody can pop the buffer before the push
// succeeds, and a second release of it sees the bit clear. The push is seq_cst so that a waiter that
// registered (waiters_++) and then found the list empty cannot miss it while we miss the registration.
ReleaseStatus BufferPool::give_back(std::uint32_t index) noexcept {
  std::uint64_t old = head_.load(std::memory_order_acquire);
  std::uint64_t cur = slots_[index].load(std::memory_order_relaxed);
  do {
    if ((cur & kInUseBit) == 0) return ReleaseStatus::double_release;
  } while (!slots_[index].compare_exchange_weak(cur, link_to(old), std::memory_order_acq_rel, std::memory_order_relaxed));
  while (!head_.compare_exchange_weak(old, pack(index, gen_of(old)), std::memory_order_seq_cst, std::memory_order_acquire)) {
    slots_[index].store(link_to(old), std::memory_order_relaxed);
  }
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    // Taking the mutex orders this notify after the waiter's empty check (it holds the mutex until it
    // sleeps), so the wake-up cannot be lost.
    { std::lock_guard<std::mutex> g(wait_mu_); }
    wait_cv_.notify_one();
  }
  return ReleaseStatus::ok;
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

// The free-list length is the depth of the top. Head, top's slot, head again: if the head did not change
// (a pop would have changed its generation, and pushes alone cannot restore it), the slot read belongs to
// that head and the snapshot is exact. Under heavy churn it gives up after a few tries with the last
// reading, which is still within 0..count.
std::uint32_t BufferPool::in_use_now() const noexcept {
  std::uint32_t free_n = 0;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t top = top_of(h);
    free_n = top == kNoBuffer ? 0 : depth_of(slots_[top].load(std::memory_order_acquire));
    if (head_.load(std::memory_order_acquire) == h) break;
  }
  return count_ - std::min(free_n, count_);
}

PoolStats BufferPool::stats() const noexcept {
  PoolStats s;
  s.total = count_;
  s.in_use = in_use_now();
  s.available = s.total - s.in_use;
  s.high_water = high_water_.load(std::memory_order_relaxed);
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
  std::uint32_t in_use = 0;
  for (std::uint32_t i = 0; i < count_; ++i) {
    const bool busy = (slots_[i].load(std::memory_order_relaxed) & kInUseBit) != 0;
    if (busy) ++in_use;
    if (!busy && !listed[i]) return "buffer " + num(i) + " is free but not on the free list (leaked)";
  }
  if (in_use + seen != count_) return "in use " + num(in_use) + " + free " + num(seen) + " != total " + num(count_);
  if (in_use_now() != in_use) return "stats say " + num(in_use_now()) + " in use, the slots say " + num(in_use);
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
