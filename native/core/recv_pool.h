// RecvPool: a buffer pool as the socket back-ends see it, for pool-backed receives (CP-POOL-005).
//
// The contract of a pool-backed receive, the same on every back-end (epoll, io_uring, IOCP) and the model:
// - The buffer is taken from the pool when the receive is ATTEMPTED, not reserved for it: when it is
//   submitted, and again each time the socket becomes readable (data, end of stream or an error) while
//   the receive is pending. A pending receive on an idle connection holds no buffer.
// - An attempt that finds no free buffer completes the receive with status pool-exhausted, 0 bytes, the
//   native error ENOBUFS (WSAENOBUFS on Windows) and no buffer. Nothing was read: every byte, and a
//   pending end of stream or reset, stays in the socket for the next receive. The socket is untouched.
//   pool-exhausted is not fatal: release buffers and submit the receive again.
// - io_uring: the pool is a provided buffer ring (IORING_REGISTER_PBUF_RING) and the receive a single-shot
//   IORING_OP_RECV with IOSQE_BUFFER_SELECT. The kernel picks a buffer at the moment it attempts the
//   receive (at issue, and when woken by the socket) and fails it with -ENOBUFS right there when the ring
//   is empty, even before data arrives: exactly the moments above. (A multishot receive would report
//   -ENOBUFS only when data arrives, and end the multishot; cpspec does not use multishot receives.) The
//   epoll back-end checks the pool at submission and at each readiness; the IOCP back-end at submission
//   and when its zero-length probe completes.
// - Binding: the first pool-backed receive binds the pool to its back-end. From then on the pool serves
//   receives only: acquireBuffer on it is refused (invalid, "bound to receives"), because on io_uring its
//   free buffers belong to the kernel's ring and user space cannot take one back; the rule holds on every
//   back-end so that behaviour is the same. Releases work as before and return the buffer to the ring or
//   the free list; double and foreign releases are rejected as before. A pool binds to one back-end; a
//   pooled receive through another one is invalid.
// - Statistics stay exact: in use = buffers delivered by receives (or acquired before binding) that the
//   application has not released yet; available = total - in use; failed acquires count pool-exhausted
//   receives too.
//
// Two modes for a back-end:
// - direct (epoll, IOCP): the back-end takes buffers with try_acquire() and the free list stays in the
//   BufferPool. Releases go straight to it.
// - sink (io_uring): attach_sink() moves every free buffer out of the BufferPool into the back-end's ring;
//   the back-end reports each buffer it hands to the application with delivered(), and releases are routed
//   to Sink::give_back(). detach_sink() (back-end shutting down) returns the buffers it still holds.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "buffer_pool.h"

namespace cpspec {

class RecvPool {
 public:
  // Where the free buffers of a sink-mode pool live (the io_uring back-end's provided buffer ring).
  class Sink {
   public:
    virtual ~Sink() = default;
    // A buffer the application released: free again, for the kernel to fill. Called under the
    // RecvPool's lock, from any thread; must not call back into the RecvPool.
    virtual void give_back(std::uint32_t index) = 0;
  };

  explicit RecvPool(std::shared_ptr<pool::BufferPool> pool);
  ~RecvPool();
  RecvPool(const RecvPool&) = delete;
  RecvPool& operator=(const RecvPool&) = delete;

  pool::BufferPool& buffers() const noexcept { return *pool_; }
  std::uint32_t capacity() const noexcept { return pool_->capacity(); }
  std::size_t buffer_size() const noexcept { return pool_->buffer_size(); }

  // --- the application's side (the addon's and the driver's pool registries) ----------------------------
  // Whether a pooled receive has bound the pool (acquire is then refused by the caller: invalid).
  bool bound() const noexcept { return owner_.load(std::memory_order_acquire) != nullptr; }
  pool::ReleaseStatus release(std::uint32_t index) noexcept;
  pool::PoolStats stats() const noexcept;

  // --- the back-end's side --------------------------------------------------------------------------------
  // Binds to `owner` (a back-end); true if bound to it now or already, false if another owner has it.
  bool bind(const void* owner) noexcept;
  // direct mode: takes a free buffer (counted as a failed acquire when there is none).
  bool try_acquire(pool::BufferHandle& out) noexcept;
  // sink mode: moves every free buffer into `sink` (their indices are appended to `taken`; the caller
  // puts them in its ring). Buffers the application holds stay its own.
  void attach_sink(Sink* sink, std::vector<std::uint32_t>& taken);
  // sink mode: the back-end hands buffer `index` (from its ring) to the application.
  void delivered(std::uint32_t index) noexcept;
  // sink mode: a receive found the ring empty.
  void note_exhausted() noexcept { failed_extra_.fetch_add(1, std::memory_order_relaxed); }
  // sink mode ends (the back-end shuts down, its ring is gone): the free buffers return to the
  // BufferPool; releases go there directly from now on. No Sink call is made after it returns.
  void detach_sink();

 private:
  enum : std::uint8_t { kPoolState = 0, kInSink = 1, kApp = 2 };
  std::shared_ptr<pool::BufferPool> pool_;
  std::atomic<const void*> owner_{nullptr};
  mutable std::mutex mu_;  // sink mode transitions (attach, release, delivered, detach)
  Sink* sink_ = nullptr;
  std::vector<std::uint8_t> state_;  // per buffer, sink mode only (guarded by mu_)
  std::uint64_t in_use_ = 0;         // sink mode: buffers the application holds
  std::uint64_t high_water_ = 0;     // sink mode: max of in_use_ (and the pool's mark before attach)
  std::atomic<std::uint64_t> failed_extra_{0};
};

}  // namespace cpspec
