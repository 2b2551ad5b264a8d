// Tests of the buffer pools (native/pool), without Node, so they run under ASan+UBSan and TSan.
//
// usage: cpspec-pool-test [name-substring]   run the tests; prints `N passed, M failed` last and exits
//                                            non-zero when a check fails
//        cpspec-pool-test --serve            the line protocol below on stdin/stdout (used by the
//                                            model-vs-native property test, test/pool/ and fuzz/pool/)
//
// --serve: one command per line, one reply line per command.
//   new SIZE COUNT     -> ok STRIDE | error MESSAGE      (a fresh BufferPool; replaces the previous one)
//   acquire [WAIT_MS]  -> buffer ID | exhausted
//   release ID         -> ok | double-release | foreign  (ID as JS prints a number: anything that is not an
//                                                          integer in 0..capacity-1 is foreign)
//   releaseptr DELTA   -> ok | double-release | foreign  (release_ptr(slab start + DELTA bytes), DELTA signed)
//   stats              -> stats TOTAL IN_USE AVAILABLE HIGH_WATER FAILED
//   audit              -> ok | bad MESSAGE
//   pick N             -> CLASS_INDEX (-1: too large)     (the default size classes)
//   anything else      -> error MESSAGE
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "buffer_pool.h"
#include "check.h"

using namespace cpspec::pool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using cpspec::check::kSanitized;

namespace {

// The pool's own consistency check (free list vs slots vs counters), with its message on failure.
#define CHECK_AUDIT(pool)                                     \
  do {                                                        \
    const std::string a_ = (pool).audit();                    \
    CHECK_MSG(a_.empty(), "audit: %s", a_.c_str());           \
  } while (0)

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

bool conserved(const PoolStats& s) { return s.in_use + s.available == s.total && s.in_use <= s.total && s.high_water <= s.total; }

// ---------------------------------------------------------------------------------------------------------
// Single-threaded behaviour
// ---------------------------------------------------------------------------------------------------------

void test_capacity() {
  BufferPool pool(100, 10);
  CHECK_EQ(pool.buffer_size(), 128u);
  CHECK_EQ(pool.capacity(), 10u);
  std::set<std::uint32_t> ids;
  std::set<const std::byte*> ptrs;
  std::vector<BufferHandle> held;
  for (int i = 0; i < 10; ++i) {
    BufferHandle h;
    CHECK(pool.try_acquire(h) == AcquireStatus::ok);
    CHECK(h.valid());
    CHECK(pool.in_use(h.index));
    ids.insert(h.index);
    ptrs.insert(h.data);
    held.push_back(h);
  }
  CHECK_EQ(ids.size(), 10u);
  CHECK_EQ(ptrs.size(), 10u);
  CHECK_EQ(*ids.begin(), 0u);  // buffer 0 first, then 1, 2, ... (the TS model relies on this order)
  CHECK_EQ(held[3].index, 3u);
  BufferHandle h;
  CHECK(pool.try_acquire(h) == AcquireStatus::exhausted);
  CHECK(!h.valid());
  CHECK(pool.acquire(h, 0) == AcquireStatus::exhausted);
  CHECK(!pool.try_take(h));  // not counted: its caller goes on to a counted acquire
  PoolStats s = pool.stats();
  CHECK_EQ(s.total, 10u);
  CHECK_EQ(s.in_use, 10u);
  CHECK_EQ(s.available, 0u);
  CHECK_EQ(s.high_water, 10u);
  CHECK_EQ(s.failed_acquires, 2u);
  for (const auto& b : held) CHECK(pool.release(b) == ReleaseStatus::ok);
  s = pool.stats();
  CHECK_EQ(s.in_use, 0u);
  CHECK_EQ(s.available, 10u);
  CHECK_EQ(s.high_water, 10u);
  CHECK_AUDIT(pool);
  // LIFO: the last released is the next handed out.
  CHECK(pool.try_acquire(h) == AcquireStatus::ok);
  CHECK_EQ(h.index, held.back().index);
  CHECK(pool.release(h.index) == ReleaseStatus::ok);
  CHECK(pool.try_take(h));
  CHECK_EQ(pool.stats().in_use, 1u);
  CHECK(pool.release(h) == ReleaseStatus::ok);
  CHECK_EQ(pool.stats().failed_acquires, 2u);
  CHECK_AUDIT(pool);
}

void test_construction_limits() {
  auto throws = [](std::size_t size, std::uint32_t count) {
    try {
      BufferPool p(size, count);
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  CHECK(throws(0, 1));
  CHECK(throws(64, 0));
  CHECK(throws(kMaxBufferSize + 1, 1));
  CHECK(throws(64, kMaxBuffers + 1));
  CHECK(throws(kMaxBufferSize, 1024));  // slab too large
  CHECK(!throws(1, 1));
  BufferPool one(1, 1);
  CHECK_EQ(one.buffer_size(), 64u);
}

void test_exhaustion_is_immediate() {
  BufferPool pool(8192, 2);
  BufferHandle a, b, c;
  CHECK(pool.try_acquire(a) == AcquireStatus::ok);
  CHECK(pool.try_acquire(b) == AcquireStatus::ok);
  const auto t0 = Clock::now();
  for (int i = 0; i < 1000; ++i) CHECK(pool.try_acquire(c) == AcquireStatus::exhausted);
  for (int i = 0; i < 1000; ++i) CHECK(pool.acquire(c, 0) == AcquireStatus::exhausted);
  const double ms = ms_since(t0);
  CHECK_MSG(ms < 200, "2000 failed acquires took %.1f ms", ms);
  CHECK_EQ(pool.stats().failed_acquires, 2000u);
  CHECK(pool.release(a) == ReleaseStatus::ok);
  CHECK(pool.release(b) == ReleaseStatus::ok);
  CHECK_AUDIT(pool);
}

void test_bounded_wait_times_out() {
  BufferPool pool(64, 1);
  BufferHandle a, b;
  CHECK(pool.try_acquire(a) == AcquireStatus::ok);
  const auto t0 = Clock::now();
  CHECK(pool.acquire(b, 100) == AcquireStatus::exhausted);
  const double ms = ms_since(t0);
  CHECK_MSG(ms >= 99, "returned after %.1f ms", ms);
  CHECK_MSG(ms < 2000, "returned after %.1f ms", ms);
  CHECK(!b.valid());
  CHECK_EQ(pool.stats().failed_acquires, 1u);
  CHECK(pool.release(a) == ReleaseStatus::ok);
  CHECK_AUDIT(pool);
}

void test_bounded_wait_wakes_on_release() {
  BufferPool pool(512, 1);
  BufferHandle a;
  CHECK(pool.try_acquire(a) == AcquireStatus::ok);
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);
    CHECK(pool.release(a) == ReleaseStatus::ok);
  });
  const auto t0 = Clock::now();
  BufferHandle b;
  CHECK(pool.acquire(b, 10000) == AcquireStatus::ok);
  const double ms = ms_since(t0);
  releaser.join();
  CHECK_MSG(ms >= 40 && ms < 3000, "woke after %.1f ms", ms);
  CHECK_EQ(b.index, a.index);
  CHECK_EQ(pool.stats().failed_acquires, 0u);
  CHECK(pool.release(b) == ReleaseStatus::ok);
  CHECK_AUDIT(pool);
}

void test_many_waiters_all_served() {
  constexpr int kWaiters = 4;
  BufferPool pool(64, kWaiters);
  std::vector<BufferHandle> held(kWaiters);
  for (auto& h : held) CHECK(pool.try_acquire(h) == AcquireStatus::ok);
  std::atomic<int> got{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      BufferHandle h;
      if (pool.acquire(h, 10000) == AcquireStatus::ok) {
        got.fetch_add(1);
        std::this_thread::sleep_for(5ms);
        CHECK(pool.release(h) == ReleaseStatus::ok);
      }
    });
  }
  std::this_thread::sleep_for(30ms);
  for (auto& h : held) CHECK(pool.release(h) == ReleaseStatus::ok);
  for (auto& t : waiters) t.join();
  CHECK_EQ(got.load(), kWaiters);
  CHECK_EQ(pool.stats().in_use, 0u);
  CHECK_AUDIT(pool);
}

void test_foreign_release_rejected() {
  BufferPool pool(1000, 4);  // stride 1024
  BufferPool other(1000, 4);
  BufferHandle a, b;
  CHECK(pool.try_acquire(a) == AcquireStatus::ok);
  CHECK(other.try_acquire(b) == AcquireStatus::ok);
  const PoolStats before = pool.stats();
  CHECK(pool.release(4u) == ReleaseStatus::foreign);
  CHECK(pool.release(kNoBuffer) == ReleaseStatus::foreign);
  CHECK(pool.release(b) == ReleaseStatus::foreign);  // same index, other pool's memory
  BufferHandle forged{a.data + 64, a.index};
  CHECK(pool.release(forged) == ReleaseStatus::foreign);
  CHECK(pool.release_ptr(b.data) == ReleaseStatus::foreign);
  CHECK(pool.release_ptr(nullptr) == ReleaseStatus::foreign);
  CHECK(pool.release_ptr(a.data + 1) == ReleaseStatus::foreign);
  CHECK(pool.release_ptr(a.data + 1023) == ReleaseStatus::foreign);
  CHECK(pool.release_ptr(pool.data(3) + 1024) == ReleaseStatus::foreign);  // one past the slab
  int on_stack = 0;
  CHECK(pool.release_ptr(&on_stack) == ReleaseStatus::foreign);
  const PoolStats after = pool.stats();
  CHECK_EQ(after.in_use, before.in_use);
  CHECK_EQ(after.available, before.available);
  CHECK(pool.in_use(a.index));
  CHECK_AUDIT(pool);
  // The pool still works: the held buffer releases, and exactly 4 can be taken.
  CHECK(pool.release_ptr(a.data) == ReleaseStatus::ok);
  std::vector<BufferHandle> all(4);
  for (auto& h : all) CHECK(pool.try_acquire(h) == AcquireStatus::ok);
  BufferHandle extra;
  CHECK(pool.try_acquire(extra) == AcquireStatus::exhausted);
  for (auto& h : all) CHECK(pool.release(h) == ReleaseStatus::ok);
  CHECK(other.release(b) == ReleaseStatus::ok);
  CHECK_AUDIT(pool);
  CHECK_AUDIT(other);
}

void test_double_release_rejected() {
  BufferPool pool(64, 2);
  BufferHandle a;
  CHECK(pool.try_acquire(a) == AcquireStatus::ok);
  CHECK(pool.release(a) == ReleaseStatus::ok);
  CHECK(pool.release(a) == ReleaseStatus::double_release);
  CHECK(pool.release(a.index) == ReleaseStatus::double_release);
  CHECK(pool.release_ptr(a.data) == ReleaseStatus::double_release);
  CHECK(pool.release(1u) == ReleaseStatus::double_release);  // never acquired
  CHECK_AUDIT(pool);
  PoolStats s = pool.stats();
  CHECK_EQ(s.in_use, 0u);
  CHECK_EQ(s.available, 2u);
  // Had the double release been accepted, buffer a would be listed twice and handed to two owners.
  BufferHandle x, y, z;
  CHECK(pool.try_acquire(x) == AcquireStatus::ok);
  CHECK(pool.try_acquire(y) == AcquireStatus::ok);
  CHECK(x.index != y.index);
  CHECK(pool.try_acquire(z) == AcquireStatus::exhausted);
  CHECK(pool.release(x) == ReleaseStatus::ok);
  CHECK(pool.release(y) == ReleaseStatus::ok);
  CHECK_AUDIT(pool);
}

void test_alignment() {
  for (std::size_t size : {1, 63, 64, 65, 100, 511, 512, 4097, 8192, 32768}) {
    BufferPool pool(size, 7);
    CHECK_EQ(pool.buffer_size() % kCacheLine, 0u);
    CHECK(pool.buffer_size() >= size);
    CHECK(pool.buffer_size() < size + kCacheLine);
    std::vector<BufferHandle> held(7);
    for (auto& h : held) {
      CHECK(pool.try_acquire(h) == AcquireStatus::ok);
      CHECK_EQ(reinterpret_cast<std::uintptr_t>(h.data) % kCacheLine, 0u);
      CHECK(std::all_of(h.data, h.data + pool.buffer_size(), [](std::byte b) { return b == std::byte{0}; }));
      std::memset(h.data, 0xA5, pool.buffer_size());  // the whole rounded size is usable (ASan would object)
    }
    std::sort(held.begin(), held.end(), [](const BufferHandle& x, const BufferHandle& y) { return x.data < y.data; });
    for (std::size_t i = 1; i < held.size(); ++i) {
      CHECK(held[i].data >= held[i - 1].data + pool.buffer_size());  // no overlap
    }
    for (auto& h : held) CHECK(pool.release(h) == ReleaseStatus::ok);
    CHECK_AUDIT(pool);
  }
}

void test_size_classes() {
  SizeClassSet set(4);
  CHECK_EQ(set.size(), 5u);
  CHECK_EQ(set.pick(0), 0);
  CHECK_EQ(set.pick(1), 0);
  CHECK_EQ(set.pick(64), 0);
  CHECK_EQ(set.pick(65), 1);
  CHECK_EQ(set.pick(512), 1);
  CHECK_EQ(set.pick(513), 2);
  CHECK_EQ(set.pick(2048), 2);
  CHECK_EQ(set.pick(2049), 3);
  CHECK_EQ(set.pick(8192), 3);
  CHECK_EQ(set.pick(8193), 4);
  CHECK_EQ(set.pick(32768), 4);
  CHECK_EQ(set.pick(32769), -1);
  for (std::size_t i = 0; i < set.size(); ++i) CHECK_EQ(set.class_size(i), kDefaultSizeClasses[i]);

  ClassBuffer b;
  CHECK(set.acquire(32769, b) == AcquireStatus::too_large);
  CHECK(!b.valid());
  CHECK(set.acquire(1000, b) == AcquireStatus::ok);
  CHECK_EQ(b.cls, 2u);
  CHECK_EQ(b.size, 2048u);
  CHECK(set.pool(2).owns(b.buffer.data));
  CHECK(set.release_ptr(b.buffer.data) == ReleaseStatus::ok);
  CHECK(set.release(b) == ReleaseStatus::double_release);
  ClassBuffer forged = b;
  forged.cls = 1;
  CHECK(set.release(forged) == ReleaseStatus::foreign);
  forged.cls = 99;
  CHECK(set.release(forged) == ReleaseStatus::foreign);

  // An exhausted class does not borrow from a larger one.
  std::vector<ClassBuffer> held(4);
  for (auto& h : held) CHECK(set.acquire(64, h) == AcquireStatus::ok);
  ClassBuffer more;
  CHECK(set.acquire(10, more) == AcquireStatus::exhausted);
  CHECK_EQ(set.pool(0).stats().failed_acquires, 1u);
  CHECK_EQ(set.pool(1).stats().in_use, 0u);
  for (auto& h : held) CHECK(set.release(h) == ReleaseStatus::ok);
  for (std::size_t i = 0; i < set.size(); ++i) CHECK_AUDIT(set.pool(i));

  // Custom classes: rounded, strictly increasing.
  const SizeClass custom[] = {{100, 2}, {1000, 2}};
  SizeClassSet c(custom);
  CHECK_EQ(c.class_size(0), 128u);
  CHECK_EQ(c.class_size(1), 1024u);
  CHECK_EQ(c.pick(129), 1);
  bool threw = false;
  try {
    const SizeClass bad[] = {{100, 2}, {120, 2}};  // both round to 128
    SizeClassSet b2(bad);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

// ---------------------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------------------

unsigned stress_threads() { return std::max(2u, std::min(4u, std::thread::hardware_concurrency())); }

// Threads acquire and release at full speed from a small pool (so the same few indices cycle through the
// head constantly: the ABA pattern) and check exclusive ownership two ways: an owner table claimed with a
// CAS, and a thread-id pattern written over the whole buffer and verified just before release. (With the
// generation bump removed from pop, this test fails in every run on a 2-core machine.)
void test_aba_stress() {
  constexpr std::uint32_t kBuffers = 3;
  constexpr std::size_t kSize = 256;
  BufferPool pool(kSize, kBuffers);
  std::vector<std::atomic<int>> owner(kBuffers);
  for (auto& o : owner) o.store(-1);
  const unsigned n = stress_threads();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0}, exhausted{0}, violations{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      const auto tag = static_cast<unsigned char>(0x10 + t);
      std::mt19937 rng(1234 + t);
      std::uint64_t my_ops = 0, my_exhausted = 0, my_bad = 0;
      BufferHandle held[2];
      while (!stop.load(std::memory_order_relaxed)) {
        const int want = 1 + static_cast<int>(rng() % 2);
        int have = 0;
        for (int k = 0; k < want; ++k) {
          BufferHandle h;
          if (pool.try_acquire(h) != AcquireStatus::ok) {
            ++my_exhausted;
            continue;
          }
          int expected = -1;
          if (!owner[h.index].compare_exchange_strong(expected, static_cast<int>(t))) ++my_bad;
          if (!pool.in_use(h.index)) ++my_bad;
          std::memset(h.data, tag, kSize);
          held[have++] = h;
        }
        for (int k = 0; k < have; ++k) {
          const BufferHandle& h = held[k];
          for (std::size_t i = 0; i < kSize; ++i) {
            if (h.data[i] != std::byte{tag}) {
              ++my_bad;
              break;
            }
          }
          int expected = static_cast<int>(t);
          if (!owner[h.index].compare_exchange_strong(expected, -1)) ++my_bad;
          if (pool.release(h) != ReleaseStatus::ok) ++my_bad;
          ++my_ops;
        }
      }
      ops.fetch_add(my_ops);
      exhausted.fetch_add(my_exhausted);
      violations.fetch_add(my_bad);
    });
  }
  std::this_thread::sleep_for(1s);
  stop.store(true);
  for (auto& th : threads) th.join();
  std::printf("    %u threads, %llu acquire+release pairs, %llu exhausted\n", n,
              static_cast<unsigned long long>(ops.load()), static_cast<unsigned long long>(exhausted.load()));
  CHECK_EQ(violations.load(), 0u);
  CHECK(ops.load() > 1000);
  const PoolStats s = pool.stats();
  CHECK_EQ(s.in_use, 0u);
  CHECK_EQ(s.available, kBuffers);
  CHECK(s.high_water <= kBuffers);
  CHECK_AUDIT(pool);
}

// Full-speed pairs on a larger pool, large buffers, plus a monitor checking the stats snapshot bounds.
void test_stress_stats_conservation() {
  constexpr std::uint32_t kBuffers = 8;
  BufferPool pool(8192, kBuffers);
  std::vector<std::atomic<int>> owner(kBuffers);
  for (auto& o : owner) o.store(-1);
  const unsigned n = stress_threads();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0}, snapshots{0}, ops{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      std::vector<BufferHandle> held;
      std::mt19937 rng(99 + t);
      std::uint64_t my_ops = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const unsigned want = 1 + rng() % kBuffers;
        while (held.size() < want) {
          BufferHandle h;
          // Mostly immediate, sometimes a short bounded wait (exercises the waiter path under load).
          const std::uint32_t wait = (rng() % 8 == 0) ? 1 : 0;
          if (pool.acquire(h, wait) != AcquireStatus::ok) break;
          int expected = -1;
          if (!owner[h.index].compare_exchange_strong(expected, static_cast<int>(t))) bad.fetch_add(1);
          h.data[0] = std::byte{static_cast<unsigned char>(t)};
          h.data[8191] = std::byte{static_cast<unsigned char>(t)};
          held.push_back(h);
        }
        while (!held.empty()) {
          const BufferHandle h = held.back();
          held.pop_back();
          if (h.data[0] != std::byte{static_cast<unsigned char>(t)} || h.data[8191] != std::byte{static_cast<unsigned char>(t)}) {
            bad.fetch_add(1);
          }
          int expected = static_cast<int>(t);
          if (!owner[h.index].compare_exchange_strong(expected, -1)) bad.fetch_add(1);
          if (pool.release(h) != ReleaseStatus::ok) bad.fetch_add(1);
          ++my_ops;
        }
      }
      ops.fetch_add(my_ops);
    });
  }
  std::thread monitor([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const PoolStats s = pool.stats();
      if (!conserved(s)) bad.fetch_add(1);
      snapshots.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();
    }
  });
  std::this_thread::sleep_for(1s);
  stop.store(true);
  for (auto& th : threads) th.join();
  monitor.join();
  std::printf("    %u threads + monitor, %llu releases, %llu snapshots\n", n, static_cast<unsigned long long>(ops.load()),
              static_cast<unsigned long long>(snapshots.load()));
  CHECK_EQ(bad.load(), 0u);
  const PoolStats s = pool.stats();
  CHECK(conserved(s));
  CHECK_EQ(s.in_use, 0u);
  CHECK_EQ(s.high_water, kBuffers);
  CHECK_AUDIT(pool);
}

// Two threads release the same buffer at the same moment: exactly one wins.
void test_racing_double_release() {
  BufferPool pool(64, 1);
  const int rounds = kSanitized ? 300 : 2000;  // two thread creations per round: slow under the sanitizers
  int bad = 0;
  for (int r = 0; r < rounds; ++r) {
    BufferHandle h;
    if (pool.try_acquire(h) != AcquireStatus::ok) {
      ++bad;
      break;
    }
    std::atomic<int> go{0};
    ReleaseStatus a = ReleaseStatus::foreign, b = ReleaseStatus::foreign;
    std::thread t1([&] {
      go.fetch_add(1);
      while (go.load() < 2) std::this_thread::yield();
      a = pool.release(h);
    });
    std::thread t2([&] {
      go.fetch_add(1);
      while (go.load() < 2) std::this_thread::yield();
      b = pool.release(h.index);
    });
    t1.join();
    t2.join();
    const int oks = (a == ReleaseStatus::ok) + (b == ReleaseStatus::ok);
    const int dbl = (a == ReleaseStatus::double_release) + (b == ReleaseStatus::double_release);
    if (oks != 1 || dbl != 1) ++bad;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(pool.stats().in_use, 0u);
  CHECK_AUDIT(pool);
}

// Waiters and releasers in a loop on a 1-buffer pool: every bounded wait either gets the buffer or
// times out, no wake-up is lost (the holder always releases within the wait).
void test_wait_handoff_stress() {
  BufferPool pool(64, 1);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> got{0}, timed_out{0}, bad{0};
  const unsigned n = stress_threads();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        BufferHandle h;
        // The holder keeps the buffer ~0 ms; a 2 s wait can only time out if a wake-up was lost.
        if (pool.acquire(h, 2000) == AcquireStatus::ok) {
          got.fetch_add(1, std::memory_order_relaxed);
          if (pool.release(h) != ReleaseStatus::ok) bad.fetch_add(1);
        } else {
          timed_out.fetch_add(1);
        }
      }
    });
  }
  std::this_thread::sleep_for(500ms);
  stop.store(true);
  for (auto& th : threads) th.join();
  std::printf("    %u threads, %llu handoffs\n", n, static_cast<unsigned long long>(got.load()));
  CHECK_EQ(bad.load(), 0u);
  CHECK_EQ(timed_out.load(), 0u);
  CHECK(got.load() > 100);
  CHECK_AUDIT(pool);
}

// ---------------------------------------------------------------------------------------------------------
// --serve
// ---------------------------------------------------------------------------------------------------------

// Parses a number as JS prints it; true when it is an integer in 0..2^32-2 (else the id is foreign).
bool parse_id(const std::string& s, std::uint32_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;  // "-1", "1.5", "1e+21", "NaN", "Infinity"
  }
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno != 0 || v >= kNoBuffer) return false;
  out = static_cast<std::uint32_t>(v);
  return true;
}

int serve() {
  std::ios::sync_with_stdio(false);
  std::unique_ptr<BufferPool> pool;
  SizeClassSet classes(1);
  std::string line;
  std::string out;
  auto reply = [&](const std::string& s) {
    out += s;
    out += '\n';
  };
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "pick") {
      unsigned long long n = 0;
      in >> n;
      reply(std::to_string(classes.pick(n)));
    } else if (cmd == "new") {
      unsigned long long size = 0, count = 0;
      in >> size >> count;
      try {
        if (count > kMaxBuffers) throw std::invalid_argument("buffer count too large");
        pool = std::make_unique<BufferPool>(size, static_cast<std::uint32_t>(count));
        reply("ok " + std::to_string(pool->buffer_size()));
      } catch (const std::exception& e) {
        pool.reset();
        reply(std::string("error ") + e.what());
      }
    } else if (!pool) {
      reply("error no pool");
    } else if (cmd == "acquire") {
      unsigned long wait = 0;
      in >> wait;
      BufferHandle h;
      if (pool->acquire(h, static_cast<std::uint32_t>(wait)) == AcquireStatus::ok) {
        reply("buffer " + std::to_string(h.index));
      } else {
        reply("exhausted");
      }
    } else if (cmd == "release") {
      std::string id;
      in >> id;
      std::uint32_t index = kNoBuffer;
      reply(release_status_name(parse_id(id, index) ? pool->release(index) : ReleaseStatus::foreign));
    } else if (cmd == "releaseptr") {
      long long delta = 0;
      in >> delta;
      const auto p = reinterpret_cast<std::uintptr_t>(pool->data(0)) + static_cast<std::uintptr_t>(delta);
      reply(release_status_name(pool->release_ptr(reinterpret_cast<const void*>(p))));
    } else if (cmd == "stats") {
      const PoolStats s = pool->stats();
      reply("stats " + std::to_string(s.total) + " " + std::to_string(s.in_use) + " " + std::to_string(s.available) + " " +
            std::to_string(s.high_water) + " " + std::to_string(s.failed_acquires));
    } else if (cmd == "audit") {
      const std::string a = pool->audit();
      reply(a.empty() ? "ok" : "bad " + a);
    } else {
      reply("error unknown command '" + cmd + "'");
    }
    if (out.size() > 65536) {
      std::cout << out;
      out.clear();
    }
  }
  std::cout << out << std::flush;
  return 0;
}

struct Test {
  const char* name;
  std::function<void()> fn;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--serve") == 0) return serve();
  const char* filter = argc > 1 ? argv[1] : nullptr;
  const std::vector<Test> tests = {
      {"capacity", test_capacity},
      {"construction limits", test_construction_limits},
      {"exhaustion is immediate", test_exhaustion_is_immediate},
      {"bounded wait times out", test_bounded_wait_times_out},
      {"bounded wait wakes on release", test_bounded_wait_wakes_on_release},
      {"many waiters all served", test_many_waiters_all_served},
      {"foreign release rejected", test_foreign_release_rejected},
      {"double release rejected", test_double_release_rejected},
      {"alignment", test_alignment},
      {"size classes", test_size_classes},
      {"ABA stress: exclusive ownership", test_aba_stress},
      {"stress: stats conservation", test_stress_stats_conservation},
      {"racing double release", test_racing_double_release},
      {"bounded-wait handoff stress", test_wait_handoff_stress},
  };
  int passed = 0, failed = 0;
  for (const Test& t : tests) {
    if (filter && std::strstr(t.name, filter) == nullptr) continue;
    cpspec::check::current = t.name;
    const int before = cpspec::check::failed_checks;
    const auto t0 = Clock::now();
    t.fn();
    const bool ok = cpspec::check::failed_checks == before;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", t.name, ms_since(t0));
    std::fflush(stdout);
    (ok ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
