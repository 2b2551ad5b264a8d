// RecvPool: see recv_pool.h.
#include "recv_pool.h"

#include <algorithm>

namespace cpspec {

RecvPool::RecvPool(std::shared_ptr<pool::BufferPool> pool) : pool_(std::move(pool)) {}

RecvPool::~RecvPool() = default;

bool RecvPool::bind(const void* owner) noexcept {
  const void* expected = nullptr;
  if (owner_.compare_exchange_strong(expected, owner, std::memory_order_acq_rel)) return true;
  return expected == owner;
}

bool RecvPool::try_acquire(pool::BufferHandle& out) noexcept {
  return pool_->try_acquire(out) == pool::AcquireStatus::ok;
}

void RecvPool::attach_sink(Sink* sink, std::vector<std::uint32_t>& taken) {
  std::lock_guard<std::mutex> lock(mu_);
  const pool::PoolStats before = pool_->stats();
  state_.assign(pool_->capacity(), kApp);
  pool::BufferHandle h;
  while (pool_->try_take(h)) {
    state_[h.index] = kInSink;
    taken.push_back(h.index);
  }
  in_use_ = pool_->capacity() - taken.size();
  high_water_ = std::max<std::uint64_t>(before.high_water, in_use_);
  sink_ = sink;
}

void RecvPool::delivered(std::uint32_t index) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (sink_ == nullptr || index >= state_.size() || state_[index] != kInSink) return;
  state_[index] = kApp;
  ++in_use_;
  high_water_ = std::max(high_water_, in_use_);
}

void RecvPool::detach_sink() {
  std::lock_guard<std::mutex> lock(mu_);
  if (sink_ == nullptr) return;
  for (std::uint32_t i = 0; i < state_.size(); ++i) {
    if (state_[i] == kInSink) {
      state_[i] = kPoolState;
      pool_->release(i);
    }
  }
  sink_ = nullptr;  // the application's buffers are released to the BufferPool from now on
}

pool::ReleaseStatus RecvPool::release(std::uint32_t index) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sink_ != nullptr) {
      if (index >= state_.size()) return pool::ReleaseStatus::foreign;
      if (state_[index] != kApp) return pool::ReleaseStatus::double_release;
      state_[index] = kInSink;
      --in_use_;
      sink_->give_back(index);
      return pool::ReleaseStatus::ok;
    }
    if (index < state_.size()) state_[index] = kPoolState;
  }
  return pool_->release(index);
}

pool::PoolStats RecvPool::stats() const noexcept {
  pool::PoolStats s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sink_ != nullptr) {
      const pool::PoolStats base = pool_->stats();
      s.total = pool_->capacity();
      s.in_use = in_use_;
      s.available = s.total - s.in_use;
      s.high_water = high_water_;
      s.failed_acquires = base.failed_acquires + failed_extra_.load(std::memory_order_relaxed);
      return s;
    }
  }
  s = pool_->stats();
  s.failed_acquires += failed_extra_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace cpspec
