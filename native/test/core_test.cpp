// Tests of the port core and the worker harness, without Node (so they run under ASan and TSan).
// Usage: cpspec-core-test [--bench] [name-substring]
// Prints one line per test and `N passed, M failed` last; exits non-zero when a check fails.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "port.h"
#include "workers.h"
#include "check.h"

using namespace cpspec;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using cpspec::check::kSanitized;

namespace {





Packet pk(std::uint64_t key, std::uint32_t bytes = 0, std::uint64_t token = 0, Status st = Status::ok, std::int32_t err = 0) {
  Packet p;
  p.key = key;
  p.bytes = bytes;
  p.token = token;
  p.status = st;
  p.native_error = err;
  return p;
}

// Waits (up to 5 s) until pred() holds.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5000ms) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(200us);
  }
  return true;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// --- trace analysis -------------------------------------------------------------------------------------

// Max threads counted as running at once: a thread runs from its 'got' to its next 'wait'/'exit', except
// between 'block-enter' and 'block-leave'.
std::size_t max_running(const TraceResult& tr) {
  std::vector<char> running(tr.threads, 0), blocked(tr.threads, 0), held(tr.threads, 0);
  std::size_t now = 0, best = 0;
  for (const TraceEvent& e : tr.events) {
    if (e.thread == kHarnessThread) continue;
    char& r = running[e.thread];
    switch (e.ev) {
      case Ev::got:
        if (!r && !blocked[e.thread]) { r = 1; ++now; }
        break;
      case Ev::wait:
      case Ev::exit:
        if (r) { r = 0; --now; }
        blocked[e.thread] = 0;
        held[e.thread] = 0;
        break;
      case Ev::block_enter:
        blocked[e.thread] = 1;
        held[e.thread] = r;
        if (r) { r = 0; --now; }
        break;
      case Ev::block_leave:
        blocked[e.thread] = 0;
        if (held[e.thread]) { r = 1; ++now; }
        break;
      default:
        break;
    }
    best = std::max(best, now);
  }
  return best;
}

std::vector<std::uint64_t> keys_of(const TraceResult& tr, Ev ev, int thread = -1) {
  std::vector<std::uint64_t> k;
  for (const TraceEvent& e : tr.events) {
    if (e.ev == ev && (thread < 0 || e.thread == thread)) k.push_back(e.key);
  }
  return k;
}

const TraceEvent* find_event(const TraceResult& tr, int thread, Ev ev, int nth = 0) {
  for (const TraceEvent& e : tr.events) {
    if (e.thread == thread && e.ev == ev && nth-- == 0) return &e;
  }
  return nullptr;
}

bool sorted_by_time(const TraceResult& tr) {
  for (std::size_t i = 1; i < tr.events.size(); ++i) {
    if (tr.events[i].t_ns < tr.events[i - 1].t_ns) return false;
  }
  return true;
}

void dump(const TraceResult& tr) {
  static const char* names[] = {"start", "wait", "got", "timeout", "closed", "block-enter", "block-leave", "post", "exit", "port-closed"};
  for (const TraceEvent& e : tr.events) {
    std::fprintf(stderr, "    %10.3f ms  thread %5u  %-11s %llu\n", e.t_ns / 1e6, e.thread, names[static_cast<int>(e.ev)],
                 static_cast<unsigned long long>(e.key));
  }
}

Step deq(std::int64_t timeout, std::uint32_t max = 1) {
  Step s;
  s.op = Step::Op::dequeue;
  s.timeout_ms = timeout;
  s.max = max;
  return s;
}
Step timed(Step::Op op, std::uint64_t us) {
  Step s;
  s.op = op;
  s.us = us;
  return s;
}
Step post_step(std::uint64_t key, std::uint32_t count) {
  Step s;
  s.op = Step::Op::post;
  s.key = key;
  s.count = count;
  return s;
}

// --- tests ----------------------------------------------------------------------------------------------

void test_status_names() {
  for (int i = 0; i < kStatusCount; ++i) {
    Status s{};
    CHECK(status_from_name(status_name(static_cast<Status>(i)), s));
    CHECK_EQ(static_cast<int>(s), i);
  }
  Status s{};
  CHECK(std::strcmp(status_name(Status::pool_exhausted), "pool-exhausted") == 0);
  CHECK(!status_from_name("pool_exhausted", s));
  CHECK(!status_from_name("", s));
}

void test_post_dequeue_fields() {
  auto port = Port::create(1);
  CHECK_EQ(port->concurrency(), 1u);
  CHECK(port->post(pk(7, 42, 99)));
  CHECK(port->post(pk((1ull << 53) - 1, 0xffffffffu, (1ull << 53) - 1, Status::reset, 104)));
  CHECK_EQ(port->queued(), 2u);
  Packet p;
  CHECK(port->dequeue(p, 0) == DequeueKind::packet);
  CHECK_EQ(p.key, 7u);
  CHECK_EQ(p.bytes, 42u);
  CHECK_EQ(p.token, 99u);
  CHECK(p.status == Status::ok);
  CHECK(port->dequeue(p, 1000) == DequeueKind::packet);
  CHECK_EQ(p.key, (1ull << 53) - 1);
  CHECK_EQ(p.bytes, 0xffffffffu);
  CHECK(p.status == Status::reset);
  CHECK_EQ(p.native_error, 104);
  CHECK_EQ(port->running(), 1u);
  Port::detach_current_thread();
  CHECK_EQ(port->running(), 0u);
  auto hw = Port::create(0);
  CHECK_EQ(hw->concurrency(), std::max(1u, std::thread::hardware_concurrency()));
}

void test_timeouts() {
  auto port = Port::create(1);
  Packet p;
  auto t = Clock::now();
  CHECK(port->dequeue(p, 0) == DequeueKind::timeout);
  CHECK_MSG(ms_since(t) < 20, "poll took %.1f ms", ms_since(t));
  t = Clock::now();
  CHECK(port->dequeue(p, 50) == DequeueKind::timeout);
  double took = ms_since(t);
  CHECK_MSG(took >= 49.5 && took < 2000, "50 ms timeout took %.1f ms", took);
  CHECK_EQ(port->waiters(), 0u);
  std::size_t n = 7;
  Packet many[4];
  CHECK(port->dequeue_many(many, 4, n, 20) == DequeueKind::timeout);
  CHECK_EQ(n, 0u);
  Port::detach_current_thread();
}

void test_fifo_and_batches() {
  auto port = Port::create(1);
  const std::uint64_t N = 100000;
  for (std::uint64_t i = 0; i < N; ++i) port->post(pk(i, static_cast<std::uint32_t>(i), i * 3));
  bool ok = true;
  for (std::uint64_t i = 0; i < N; ++i) {
    Packet p;
    if (port->dequeue(p, 0) != DequeueKind::packet || p.key != i || p.token != i * 3) ok = false;
  }
  CHECK(ok);
  // 100 packets, batches of at most 64: 64, then 36, then timeout.
  for (std::uint64_t i = 0; i < 100; ++i) port->post(pk(i));
  std::vector<Packet> buf(64);
  std::size_t n = 0;
  CHECK(port->dequeue_many(buf.data(), 64, n, 0) == DequeueKind::packet);
  CHECK_EQ(n, 64u);
  CHECK_EQ(buf[63].key, 63u);
  CHECK(port->dequeue_many(buf.data(), 64, n, 0) == DequeueKind::packet);
  CHECK_EQ(n, 36u);
  CHECK_EQ(buf[0].key, 64u);
  CHECK_EQ(buf[35].key, 99u);
  CHECK(port->dequeue_many(buf.data(), 64, n, 0) == DequeueKind::timeout);
  // post_many keeps order, across ring wrap-around.
  std::vector<Packet> in;
  for (std::uint64_t r = 0; r < 50; ++r) {
    in.clear();
    for (std::uint64_t i = 0; i < 37; ++i) in.push_back(pk(r * 100 + i));
    CHECK(port->post_many(in.data(), in.size()));
    std::size_t got = 0;
    std::uint64_t expect = r * 100;
    while (got < 37) {
      CHECK(port->dequeue_many(buf.data(), 10, n, 0) == DequeueKind::packet);
      for (std::size_t i = 0; i < n; ++i) ok = ok && buf[i].key == expect++;
      got += n;
    }
  }
  CHECK(ok);
  Port::detach_current_thread();
}

void test_close() {
  auto port = Port::create(2);
  for (std::uint64_t k : {5, 6, 7}) port->post(pk(k, 1, k * 10));
  Packet p;
  CHECK(port->dequeue(p, 0) == DequeueKind::packet);
  CHECK_EQ(p.key, 5u);
  auto left = port->close();
  CHECK_EQ(left.size(), 2u);
  if (left.size() == 2) {
    CHECK_EQ(left[0].key, 6u);
    CHECK_EQ(left[0].token, 60u);
    CHECK_EQ(left[1].key, 7u);
  }
  CHECK(port->is_closed());
  CHECK(port->close().empty());
  CHECK(!port->post(pk(1)));
  CHECK(!port->post_many(left.data(), left.size()));
  auto t = Clock::now();
  CHECK(port->dequeue(p, -1) == DequeueKind::closed);
  CHECK(ms_since(t) < 100);
  Port::detach_current_thread();
}

void test_close_wakes_waiters() {
  auto port = Port::create(2);
  std::atomic<int> closed{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      Packet p;
      std::size_t n = 0;
      DequeueKind k = i == 3 ? port->dequeue_many(&p, 1, n, 60000) : port->dequeue(p, -1);
      if (k == DequeueKind::closed) closed.fetch_add(1);
    });
  }
  CHECK(eventually([&] { return port->waiters() == 4; }));
  auto left = port->close();
  for (auto& t : ts) t.join();
  CHECK_EQ(closed.load(), 4);
  CHECK(left.empty());
  CHECK_EQ(port->waiters(), 0u);
}

void test_lifo_release() {
  auto port = Port::create(4);
  std::vector<std::uint64_t> got(4, 999);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      Packet p;
      if (port->dequeue(p, 5000) == DequeueKind::packet) got[i] = p.key;
    });
    CHECK(eventually([&] { return port->waiters() == static_cast<std::size_t>(i + 1); }));
  }
  for (std::uint64_t k = 0; k < 4; ++k) {
    port->post(pk(k));
  }
  for (auto& t : ts) t.join();
  // The last waiter (3) gets the first packet (0), and so on.
  for (int i = 0; i < 4; ++i) CHECK_EQ(got[i], static_cast<std::uint64_t>(3 - i));

  // Same with one post_many of 4 packets.
  auto port2 = Port::create(4);
  std::vector<std::uint64_t> got2(4, 999);
  ts.clear();
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      Packet p;
      if (port2->dequeue(p, 5000) == DequeueKind::packet) got2[i] = p.key;
    });
    CHECK(eventually([&] { return port2->waiters() == static_cast<std::size_t>(i + 1); }));
  }
  Packet four[4] = {pk(10), pk(11), pk(12), pk(13)};
  port2->post_many(four, 4);
  for (auto& t : ts) t.join();
  for (int i = 0; i < 4; ++i) CHECK_EQ(got2[i], static_cast<std::uint64_t>(13 - i));
}

void test_concurrency_gate() {
  auto port = Port::create(1);
  port->post(pk(1));
  port->post(pk(2));
  port->post(pk(3));
  Packet a;
  CHECK(port->dequeue(a, 0) == DequeueKind::packet);  // main thread now runs (1 of 1)
  CHECK_EQ(port->running(), 1u);
  std::atomic<std::uint64_t> b_key{0};
  std::atomic<bool> b_done{false};
  std::thread b([&] {
    Packet p;
    if (port->dequeue(p, 10000) == DequeueKind::packet) b_key = p.key;
    b_done = true;
  });
  CHECK(eventually([&] { return port->waiters() == 1; }));
  std::this_thread::sleep_for(30ms);
  CHECK(!b_done.load());            // packets queued, but the slot is taken
  CHECK_EQ(port->queued(), 2u);
  // P5: the running thread dequeues again and gets the next packet at once, ahead of the waiter.
  CHECK(port->dequeue(a, 0) == DequeueKind::packet);
  CHECK_EQ(a.key, 2u);
  CHECK(!b_done.load());
  CHECK_EQ(port->running(), 1u);
  // Detaching frees the slot: B is released with packet 3.
  Port::detach_current_thread();
  b.join();
  CHECK_EQ(b_key.load(), 3u);
  CHECK_EQ(port->running(), 0u);  // B exited: its thread_local association released the slot
}

void test_thread_exit_releases_slot() {
  auto port = Port::create(1);
  port->post(pk(1));
  std::thread a([&] {
    Packet p;
    port->dequeue(p, 0);
  });
  a.join();
  CHECK_EQ(port->running(), 0u);  // the thread exited: its slot is free
  port->post(pk(2));
  Packet p;
  CHECK(port->dequeue(p, 0) == DequeueKind::packet);
  CHECK_EQ(p.key, 2u);
  Port::detach_current_thread();
}

void test_switch_ports() {
  auto a = Port::create(1);
  auto b = Port::create(1);
  a->post(pk(1));
  a->post(pk(2));
  Packet p;
  CHECK(a->dequeue(p, 0) == DequeueKind::packet);
  CHECK_EQ(a->running(), 1u);
  // A waiter on a is blocked by our slot.
  std::atomic<std::uint64_t> got{0};
  std::thread w([&] {
    Packet q;
    if (a->dequeue(q, 5000) == DequeueKind::packet) got = q.key;
  });
  CHECK(eventually([&] { return a->waiters() == 1; }));
  // Dequeuing on b leaves a first: the waiter on a is released.
  CHECK(b->dequeue(p, 0) == DequeueKind::timeout);
  w.join();
  CHECK_EQ(got.load(), 2u);
  CHECK_EQ(b->running(), 0u);
  Port::detach_current_thread();
}

void test_blocking_region() {
  auto port = Port::create(1);
  port->post(pk(1));
  port->post(pk(2));
  Packet p;
  CHECK(port->dequeue(p, 0) == DequeueKind::packet);
  std::atomic<std::uint64_t> got{0};
  std::thread b([&] {
    Packet q;
    if (port->dequeue(q, 5000) == DequeueKind::packet) got = q.key;
    // Stay associated (running) until told to go.
  });
  CHECK(eventually([&] { return port->waiters() == 1; }));
  port->enter_blocking();
  port->enter_blocking();  // nesting
  b.join();
  CHECK_EQ(got.load(), 2u);
  port->leave_blocking();
  CHECK_EQ(port->running(), 0u);  // b exited; we are still inside the outer region
  port->leave_blocking();
  CHECK_EQ(port->running(), 1u);  // counted again
  port->leave_blocking();         // unbalanced: ignored
  CHECK_EQ(port->running(), 1u);
  // A thread not associated with the port is unaffected.
  auto other = Port::create(1);
  other->enter_blocking();
  other->leave_blocking();
  CHECK_EQ(port->running(), 1u);
  Port::detach_current_thread();
  CHECK_EQ(port->running(), 0u);
}

void test_oversubscribed_after_leave() {
  // After leave_blocking the running count may exceed the concurrency; nobody is released until it drops.
  auto port = Port::create(1);
  port->post(pk(1));
  port->post(pk(2));
  Packet p;
  CHECK(port->dequeue(p, 0) == DequeueKind::packet);
  port->enter_blocking();
  std::atomic<int> phase{0};
  std::thread b([&] {
    Packet q;
    port->dequeue(q, 0);  // gets 2
    phase = 1;
    while (phase.load() != 2) std::this_thread::yield();
    Port::detach_current_thread();
  });
  CHECK(eventually([&] { return phase.load() == 1; }));
  port->leave_blocking();
  CHECK_EQ(port->running(), 2u);
  port->post(pk(3));
  std::atomic<bool> c_got{false};
  std::thread c([&] {
    Packet q;
    if (port->dequeue(q, 5000) == DequeueKind::packet) c_got = true;
  });
  CHECK(eventually([&] { return port->waiters() == 1; }));
  Port::detach_current_thread();  // running 1 = concurrency: still no release
  std::this_thread::sleep_for(20ms);
  CHECK(!c_got.load());
  phase = 2;  // b detaches: running 0, c released
  b.join();
  c.join();
  CHECK(c_got.load());
}

void test_timeout_races() {
  // Waiters with tiny timeouts racing posts: each posted packet is received exactly once.
  auto port = Port::create(4);
  const int kThreads = 4;
  const std::uint64_t N = kSanitized ? 20000 : 200000;
  std::vector<std::vector<std::uint64_t>> got(kThreads);
  std::atomic<bool> done{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([&, i] {
      Packet buf[8];
      while (true) {
        std::size_t n = 0;
        DequeueKind k = port->dequeue_many(buf, (i % 2) ? 8 : 1, n, 1);
        if (k == DequeueKind::packet) {
          for (std::size_t j = 0; j < n; ++j) got[i].push_back(buf[j].key);
        } else if (k == DequeueKind::closed || done.load()) {
          break;
        }
      }
    });
  }
  for (std::uint64_t i = 0; i < N; ++i) {
    port->post(pk(i));
    if ((i & 4095) == 0) std::this_thread::sleep_for(1ms);  // let the waiters time out now and then
  }
  CHECK(eventually([&] { return port->queued() == 0; }, 20000ms));
  done = true;
  for (auto& t : ts) t.join();
  std::vector<char> seen(N, 0);
  bool dup = false;
  std::size_t total = 0;
  for (auto& g : got) {
    for (auto k : g) {
      if (k >= N || seen[k]) dup = true; else seen[k] = 1;
      ++total;
    }
  }
  CHECK(!dup);
  CHECK_EQ(total, N);
  CHECK_EQ(port->running(), 0u);
  CHECK_EQ(port->waiters(), 0u);
}

void test_million_across_threads() {
  auto port = Port::create(2);
  const std::uint64_t per = kSanitized ? 100000 : 500000;
  const int kConsumers = 4;
  std::vector<std::vector<std::uint64_t>> got(kConsumers);
  std::vector<std::thread> ts;
  for (int c = 0; c < kConsumers; ++c) {
    ts.emplace_back([&, c] {
      std::vector<Packet> buf(64);
      got[c].reserve(per);
      for (;;) {
        std::size_t n = 0;
        DequeueKind k = port->dequeue_many(buf.data(), 64, n, 300);
        if (k != DequeueKind::packet) break;
        for (std::size_t i = 0; i < n; ++i) got[c].push_back(buf[i].key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int pr = 0; pr < 2; ++pr) {
    producers.emplace_back([&, pr] {
      for (std::uint64_t i = 0; i < per; ++i) port->post(pk(pr * per + i));
    });
  }
  for (auto& t : producers) t.join();
  for (auto& t : ts) t.join();
  std::vector<char> seen(2 * per, 0);
  std::size_t total = 0, bad = 0;
  for (auto& g : got) {
    for (auto k : g) {
      if (k >= 2 * per || seen[k]) ++bad; else seen[k] = 1;
      ++total;
    }
  }
  CHECK_EQ(bad, 0u);
  CHECK_EQ(total, 2 * per);
  // Per producer, each consumer sees keys in increasing order (FIFO).
  bool ordered = true;
  for (auto& g : got) {
    std::uint64_t last[2] = {0, 0};
    bool any[2] = {false, false};
    for (auto k : g) {
      int pr = k >= per;
      if (any[pr] && k <= last[pr]) ordered = false;
      last[pr] = k;
      any[pr] = true;
    }
  }
  CHECK(ordered);
}

void test_validate() {
  std::vector<Program> ok(1);
  ok[0].steps = {deq(0)};
  CHECK(validate(ok).empty());
  CHECK(!validate({}).empty());
  std::vector<Program> bad = ok;
  bad[0].steps.clear();
  CHECK(validate(bad).find("program 0") != std::string::npos);
  bad = ok;
  bad[0].steps = {deq(0, 0)};
  CHECK(validate(bad).find("max") != std::string::npos);
  bad[0].steps = {deq(0, 4097)};
  CHECK(!validate(bad).empty());
  bad[0].steps = {deq(-2)};
  CHECK(validate(bad).find("timeoutMs") != std::string::npos);
  bad[0].steps = {timed(Step::Op::spin, 10'000'001)};
  CHECK(validate(bad).find("step 0 (spin)") != std::string::npos);
  bad[0].steps = {timed(Step::Op::sleep, 10'000'000)};
  CHECK(validate(bad).empty());
  bad[0].steps = {post_step(0, 0)};
  CHECK(validate(bad).find("count") != std::string::npos);
  bad[0].steps = {post_step(0, 1'000'001)};
  CHECK(!validate(bad).empty());
  bad[0].steps = {post_step((1ull << 53) - 1, 1)};
  CHECK(validate(bad).empty());
  bad[0].repeat = 2;
  CHECK(validate(bad).find("2^53") != std::string::npos);
  bad[0].repeat = -1;
  CHECK(validate(bad).find("repeat -1 needs a dequeue") != std::string::npos);
  bad[0].repeat = -2;
  CHECK(validate(bad).find("repeat") != std::string::npos);
  bad[0].repeat = 100'000'001;
  bad[0].steps = {deq(0)};
  CHECK(!validate(bad).empty());
  std::vector<Program> many(257, ok[0]);
  CHECK(!validate(many).empty());
  many.resize(256);
  CHECK(validate(many).empty());
  std::vector<Program> steps(1);
  steps[0].steps.assign(65, deq(0));
  CHECK(!validate(steps).empty());
  bool threw = false;
  try {
    run_workers(Port::create(1), bad, RunOptions{});
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

void check_concurrency_limit(unsigned limit) {
  auto port = Port::create(limit);
  const int kThreads = 8;
  const std::uint32_t kPackets = 300;
  std::vector<Program> progs;
  Program producer;
  producer.steps = {timed(Step::Op::sleep, 2000), post_step(0, kPackets)};
  progs.push_back(producer);
  for (int i = 0; i < kThreads; ++i) {
    Program c;
    c.steps = {deq(500), timed(Step::Op::spin, 300)};
    c.repeat = -1;
    progs.push_back(c);
  }
  RunOptions o;
  o.deadline_ms = 60000;
  TraceResult tr = run_workers(port, progs, o);
  CHECK_EQ(tr.threads, static_cast<unsigned>(kThreads + 1));
  CHECK_EQ(tr.unfinished, 0u);
  CHECK_EQ(tr.leftover, 0u);
  CHECK(sorted_by_time(tr));
  std::size_t m = max_running(tr);
  CHECK_MSG(m <= limit, "%zu threads ran at once with concurrency %u", m, limit);
  CHECK_MSG(m == limit, "expected the limit %u to be reached, max %zu", limit, m);  // 300 packets, 8 threads
  auto got = keys_of(tr, Ev::got);
  std::sort(got.begin(), got.end());
  bool exact = got.size() == kPackets;
  for (std::size_t i = 0; exact && i < got.size(); ++i) exact = got[i] == i;
  CHECK(exact);
  CHECK_EQ(keys_of(tr, Ev::post).size(), static_cast<std::size_t>(kPackets));
  // Every worker has start first and exit last.
  for (unsigned t = 0; t < tr.threads; ++t) {
    const TraceEvent* s = find_event(tr, static_cast<int>(t), Ev::start);
    CHECK(s != nullptr);
    CHECK(find_event(tr, static_cast<int>(t), Ev::exit) != nullptr);
  }
}

void test_workers_concurrency_1() { check_concurrency_limit(1); }
void test_workers_concurrency_2() { check_concurrency_limit(2); }

void test_workers_close_after() {
  auto port = Port::create(2);
  std::vector<Program> progs(4);
  for (auto& p : progs) {
    p.steps = {deq(-1)};
    p.repeat = -1;
  }
  RunOptions o;
  o.close_after_ms = 50;
  o.deadline_ms = 10000;
  auto t = Clock::now();
  TraceResult tr = run_workers(port, progs, o);
  CHECK(ms_since(t) < 5000);
  CHECK_EQ(tr.unfinished, 0u);
  CHECK_EQ(keys_of(tr, Ev::closed).size(), 4u);
  const TraceEvent* pc = find_event(tr, kHarnessThread, Ev::port_closed);
  CHECK(pc != nullptr);
  if (pc) CHECK_MSG(pc->t_ns >= 50'000'000, "closed at %llu ns", static_cast<unsigned long long>(pc->t_ns));
  CHECK(port->is_closed());
}

void test_workers_deadline() {
  auto port = Port::create(1);
  std::vector<Program> progs(3);
  progs[0].steps = {deq(-1)};
  progs[0].repeat = -1;
  progs[1].steps = {timed(Step::Op::sleep, 10'000'000)};
  progs[2].steps = {timed(Step::Op::spin, 1000)};
  progs[2].repeat = 100'000'000;
  RunOptions o;
  o.deadline_ms = 100;
  auto t = Clock::now();
  TraceResult tr = run_workers(port, progs, o);
  double took = ms_since(t);
  CHECK_MSG(took >= 99 && took < 3000, "took %.1f ms", took);
  CHECK_EQ(tr.unfinished, 3u);
  CHECK(port->is_closed());
  CHECK(find_event(tr, kHarnessThread, Ev::port_closed) != nullptr);
  for (int i = 0; i < 3; ++i) CHECK(find_event(tr, i, Ev::exit) != nullptr);
}

void test_workers_leftover_and_post_keys() {
  auto port = Port::create(1);
  std::vector<Program> progs(1);
  progs[0].steps = {post_step(100, 3)};
  progs[0].repeat = 2;
  TraceResult tr = run_workers(port, progs, RunOptions{});
  auto keys = keys_of(tr, Ev::post);
  std::vector<std::uint64_t> want = {100, 101, 102, 103, 104, 105};
  CHECK(keys == want);
  CHECK_EQ(tr.leftover, 6u);
  CHECK_EQ(port->queued(), 6u);
  Packet p;
  CHECK(port->dequeue(p, 0) == DequeueKind::packet);
  CHECK_EQ(p.token, 100u);
  Port::detach_current_thread();
  // repeat 0: start and exit only.
  progs[0].repeat = 0;
  tr = run_workers(port, progs, RunOptions{});
  CHECK_EQ(tr.events.size(), 2u);
  // Posts to a closed port are dropped; the worker goes on (as the model does).
  port->close();
  progs[0].repeat = 5;
  tr = run_workers(port, progs, RunOptions{});
  CHECK_EQ(keys_of(tr, Ev::post).size(), 15u);
  CHECK_EQ(tr.leftover, 0u);
  CHECK(find_event(tr, 0, Ev::exit) != nullptr);
}

void test_workers_close_after_done() {
  // The harness closes the port at closeAfterMs even when the workers finished earlier...
  auto port = Port::create(1);
  port->post(pk(1));
  port->post(pk(2));
  std::vector<Program> progs(1);
  progs[0].steps = {deq(0)};
  RunOptions o;
  o.close_after_ms = 60;
  auto t = Clock::now();
  TraceResult tr = run_workers(port, progs, o);
  CHECK(ms_since(t) >= 59);
  CHECK(port->is_closed());
  const TraceEvent* pc = find_event(tr, kHarnessThread, Ev::port_closed);
  CHECK(pc != nullptr && pc->t_ns >= 60'000'000);
  CHECK_EQ(tr.leftover, 1u);  // packet 2, drained by the harness
  CHECK_EQ(tr.unfinished, 0u);
  // ...but not when that is past the deadline.
  auto port2 = Port::create(1);
  o.close_after_ms = 5000;
  o.deadline_ms = 50;
  tr = run_workers(port2, progs, o);
  CHECK(!port2->is_closed());
  CHECK(find_event(tr, kHarnessThread, Ev::port_closed) == nullptr);
  CHECK_EQ(tr.unfinished, 0u);
}

void test_workers_event_limit() {
  if (kSanitized) return;  // needs ~400 MB
  auto port = Port::create(1);
  port->close();  // posts are dropped: only the trace grows
  std::vector<Program> progs(1);
  progs[0].steps = {post_step(0, 1'000'000)};
  progs[0].repeat = 1000;
  auto t = Clock::now();
  TraceResult tr = run_workers(port, progs, RunOptions{});
  CHECK(ms_since(t) < 20000);
  CHECK_EQ(tr.unfinished, 1u);
  CHECK_MSG(tr.events.size() >= 8'000'000 && tr.events.size() < 8'100'000, "%zu events", tr.events.size());
}

void test_workers_batch_dequeue() {
  auto port = Port::create(1);
  for (std::uint64_t i = 0; i < 100; ++i) port->post(pk(i));
  std::vector<Program> progs(1);
  progs[0].steps = {deq(0, 64)};
  progs[0].repeat = -1;
  TraceResult tr = run_workers(port, progs, RunOptions{});
  auto got = keys_of(tr, Ev::got);
  CHECK_EQ(got.size(), 100u);
  bool fifo = true;
  for (std::size_t i = 0; i < got.size(); ++i) fifo = fifo && got[i] == i;
  CHECK(fifo);
  CHECK_EQ(keys_of(tr, Ev::wait).size(), 3u);  // 64, 36, timeout
  CHECK_EQ(keys_of(tr, Ev::timeout).size(), 1u);
}

// Runs A = [dequeue, <hold> 100 ms] and B = [sleep 20 ms, dequeue] on a concurrency-1 port holding two
// packets. Returns false if the run did not go as staged (A must get its packet before B starts waiting).
bool run_hold(Step::Op hold, TraceResult& tr) {
  auto port = Port::create(1);
  port->post(pk(1));
  port->post(pk(2));
  std::vector<Program> progs(2);
  progs[0].steps = {deq(2000), timed(hold, 100000)};
  progs[1].steps = {timed(Step::Op::sleep, 20000), deq(2000)};
  tr = run_workers(port, progs, RunOptions{});
  const TraceEvent* agot = find_event(tr, 0, Ev::got);
  const TraceEvent* bwait = find_event(tr, 1, Ev::wait);
  return agot && bwait && agot->key == 1 && agot->t_ns < bwait->t_ns;
}

void test_workers_blocking_region() {
  // Concurrency 1: A gets a packet and blocks 100 ms in a blocking region; B asks 20 ms in and gets the
  // other packet during A's region.
  TraceResult tr;
  bool staged = false;
  for (int attempt = 0; attempt < 3 && !staged; ++attempt) staged = run_hold(Step::Op::block, tr);
  CHECK_MSG(staged, "could not stage the run in 3 attempts");
  const TraceEvent* enter = find_event(tr, 0, Ev::block_enter);
  const TraceEvent* leave = find_event(tr, 0, Ev::block_leave);
  const TraceEvent* bgot = find_event(tr, 1, Ev::got);
  CHECK(enter && leave && bgot);
  if (enter && leave && bgot) {
    CHECK_MSG(bgot->t_ns > enter->t_ns && bgot->t_ns < leave->t_ns, "B got at %.3f ms, A's region %.3f..%.3f ms",
              bgot->t_ns / 1e6, enter->t_ns / 1e6, leave->t_ns / 1e6);
  }
  // The same with a plain sleep: B gets its packet only after A exits.
  staged = false;
  for (int attempt = 0; attempt < 3 && !staged; ++attempt) staged = run_hold(Step::Op::sleep, tr);
  CHECK_MSG(staged, "could not stage the run in 3 attempts");
  const TraceEvent* aexit = find_event(tr, 0, Ev::exit);
  bgot = find_event(tr, 1, Ev::got);
  CHECK(aexit && bgot);
  if (aexit && bgot) {
    CHECK_MSG(bgot->t_ns > aexit->t_ns, "B got at %.3f ms, A exited at %.3f ms", bgot->t_ns / 1e6, aexit->t_ns / 1e6);
    CHECK(bgot->t_ns >= 100'000'000);
  }
}

void test_workers_lifo() {
  // Four waiters start waiting 25 ms apart; a poster posts 4 packets at 150 ms: the last waiter gets the
  // first packet, and so on. The order is checked against the wait order the trace shows; a run where the
  // machine was too loaded to keep the waits >= 5 ms apart (or >= 5 ms before the posts) is retried.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto port = Port::create(4);
    std::vector<Program> progs(5);
    for (int i = 0; i < 4; ++i) progs[i].steps = {timed(Step::Op::sleep, 25000u * (i + 1)), deq(5000)};
    progs[4].steps = {timed(Step::Op::sleep, 150000), post_step(0, 4)};
    TraceResult tr = run_workers(port, progs, RunOptions{});
    std::vector<const TraceEvent*> waits;
    for (const TraceEvent& e : tr.events) {
      if (e.ev == Ev::wait) waits.push_back(&e);
    }
    const TraceEvent* first_post = find_event(tr, 4, Ev::post);
    CHECK(waits.size() == 4 && first_post != nullptr);
    if (waits.size() != 4 || first_post == nullptr) return;
    bool staged = first_post->t_ns >= waits[3]->t_ns + 5'000'000;
    for (int i = 1; i < 4; ++i) staged = staged && waits[i]->t_ns >= waits[i - 1]->t_ns + 5'000'000;
    if (!staged) continue;
    const int before = cpspec::check::failed_checks;
    for (int i = 0; i < 4; ++i) {
      auto k = keys_of(tr, Ev::got, waits[i]->thread);  // the i-th waiter must get packet 3 - i
      CHECK_EQ(k.size(), 1u);
      if (k.size() == 1) CHECK_EQ(k[0], static_cast<std::uint64_t>(3 - i));
    }
    if (cpspec::check::failed_checks != before) dump(tr);
    return;
  }
  CHECK_MSG(false, "the machine was too busy to stage 4 waiters 5 ms apart in 3 attempts");
}

// --- benchmarks (print only) ----------------------------------------------------------------------------

void bench() {
  {
    auto port = Port::create(1);
    std::vector<Packet> in(64), out(64);
    for (std::size_t i = 0; i < 64; ++i) in[i] = pk(i);
    const std::uint64_t rounds = 200000;
    auto t = Clock::now();
    for (std::uint64_t r = 0; r < rounds; ++r) {
      port->post_many(in.data(), 64);
      std::size_t n = 0;
      port->dequeue_many(out.data(), 64, n, 0);
    }
    double s = ms_since(t) / 1000;
    std::printf("bench single-thread post_many/dequeue_many(64): %.1f M packets/s\n", rounds * 64 / s / 1e6);
    t = Clock::now();
    for (std::uint64_t r = 0; r < rounds * 8; ++r) {
      Packet p;
      port->post(in[0]);
      port->dequeue(p, 0);
    }
    s = ms_since(t) / 1000;
    std::printf("bench single-thread post/dequeue: %.1f M packets/s\n", rounds * 8 / s / 1e6);
    Port::detach_current_thread();
  }
  for (int batch : {1, 64}) {
    auto port = Port::create(1);
    const std::uint64_t N = 4'000'000;
    std::atomic<std::uint64_t> received{0};
    std::thread consumer([&] {
      std::vector<Packet> out(64);
      std::uint64_t got = 0;
      while (got < N) {
        std::size_t n = 0;
        if (port->dequeue_many(out.data(), 64, n, 1000) != DequeueKind::packet) break;
        got += n;
      }
      received = got;
    });
    auto t = Clock::now();
    std::vector<Packet> in(64);
    for (std::size_t i = 0; i < 64; ++i) in[i] = pk(i);
    if (batch == 1) {
      for (std::uint64_t i = 0; i < N; ++i) port->post(in[0]);
    } else {
      for (std::uint64_t i = 0; i < N; i += 64) port->post_many(in.data(), 64);
    }
    consumer.join();
    double s = ms_since(t) / 1000;
    std::printf("bench producer(post%s)->consumer(dequeue_many 64): %.1f M packets/s (%llu received)\n",
                batch == 1 ? "" : "_many 64", received.load() / s / 1e6, static_cast<unsigned long long>(received.load()));
  }
  {
    auto port = Port::create(1);
    const std::uint64_t N = 2'000'000;
    std::atomic<std::uint64_t> received{0};
    std::thread consumer([&] {
      std::uint64_t got = 0;
      Packet p;
      while (got < N && port->dequeue(p, 1000) == DequeueKind::packet) ++got;
      received = got;
    });
    auto t = Clock::now();
    for (std::uint64_t i = 0; i < N; ++i) port->post(pk(i));
    consumer.join();
    double s = ms_since(t) / 1000;
    std::printf("bench producer(post)->consumer(dequeue): %.1f M packets/s\n", received.load() / s / 1e6);
  }
}

}  // namespace

// A port's idle source (port.h): a spinning waiter drives it, finds its completions, hands it back when it
// goes to sleep or when other waiters sleep, and never calls a detached or shared one.
struct FakeSource final : IdleSource {
  std::shared_ptr<Port> port;
  std::atomic<int> ready{0};  // completions waiting to be found by poll_ready
  std::atomic<bool> accept{true};
  std::atomic<int> begins{0}, polls{0}, ends_run{0}, ends_sleep{0};
  bool spin_begin() noexcept override {
    if (!accept.load()) return false;
    begins.fetch_add(1);
    return true;
  }
  bool poll_ready() noexcept override {
    polls.fetch_add(1);
    if (ready.load() == 0) return false;
    ready.fetch_sub(1);
    port->post(pk(42));
    return true;
  }
  void spin_end(bool going_to_sleep) noexcept override { (going_to_sleep ? ends_sleep : ends_run).fetch_add(1); }
};

void test_idle_source() {
  auto port = Port::create(4);
  FakeSource a;
  a.port = port;
  auto la = std::make_shared<IdleLink>(&a);
  port->attach_idle_source(la);
  Packet p;
  // Something ready: the waiter finds it itself and goes to run it.
  a.ready = 1;
  CHECK(port->dequeue(p, 2000) == DequeueKind::packet);
  CHECK_EQ(p.key, 42u);
  CHECK_EQ(a.begins.load(), 1);
  CHECK(a.polls.load() >= 1);
  CHECK_EQ(a.ends_run.load(), 1);
  CHECK_EQ(a.ends_sleep.load(), 0);
  // Nothing ready: it polls while it spins, then hands the source back and sleeps until the timeout.
  CHECK(port->dequeue(p, 30) == DequeueKind::timeout);
  CHECK_EQ(a.begins.load(), 2);
  CHECK_EQ(a.ends_sleep.load(), 1);
  // A source that declines is not polled.
  a.accept = false;
  const int polls_before = a.polls.load();
  CHECK(port->dequeue(p, 10) == DequeueKind::timeout);
  CHECK_EQ(a.polls.load(), polls_before);
  a.accept = true;
  // Another waiter asleep: the one that found packets still hands the source back.
  std::atomic<bool> t_got{false};
  const int sleeps_before = a.ends_sleep.load();
  std::thread t([&] {
    Packet q;
    t_got = port->dequeue(q, 5000) == DequeueKind::packet && q.key == 7;
  });
  // t hands the source back as it goes to sleep after its spin.
  for (auto until = Clock::now() + 5s; a.ends_sleep.load() == sleeps_before && Clock::now() < until;) std::this_thread::sleep_for(1ms);
  CHECK_EQ(a.ends_sleep.load(), sleeps_before + 1);
  for (auto until = Clock::now() + 5s; port->sleepers() == 0 && Clock::now() < until;) std::this_thread::sleep_for(1ms);
  CHECK_EQ(port->sleepers(), 1u);
  a.ready = 1;
  CHECK(port->dequeue(p, 2000) == DequeueKind::packet);
  CHECK_EQ(p.key, 42u);
  CHECK_EQ(a.ends_sleep.load(), sleeps_before + 2);  // and we did too, though we got a packet: t sleeps
  port->post(pk(7));
  t.join();
  CHECK(t_got.load());
  // Detached: never called again.
  la->detach();
  const int begins_before = a.begins.load();
  a.ready = 1;
  CHECK(port->dequeue(p, 10) == DequeueKind::timeout);
  CHECK_EQ(a.begins.load(), begins_before);
  // A new live source replaces a detached one; a second live source makes the port drive neither.
  FakeSource b, c;
  b.port = c.port = port;
  auto lb = std::make_shared<IdleLink>(&b);
  auto lc = std::make_shared<IdleLink>(&c);
  port->attach_idle_source(lb);
  CHECK(port->dequeue(p, 10) == DequeueKind::timeout);
  CHECK_EQ(b.begins.load(), 1);
  port->attach_idle_source(lb);  // the same one again: still driven
  port->attach_idle_source(lc);
  b.ready = c.ready = 1;
  CHECK(port->dequeue(p, 10) == DequeueKind::timeout);
  CHECK_EQ(b.begins.load(), 1);
  CHECK_EQ(c.begins.load(), 0);
  lb->detach();
  lc->detach();
  port->close();
}

int main(int argc, char** argv) {
  bool do_bench = false;
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--bench") == 0) do_bench = true; else filter = argv[i];
  }
  const std::vector<std::pair<const char*, void (*)()>> tests = {
      {"status_names", test_status_names},
      {"post_dequeue_fields", test_post_dequeue_fields},
      {"timeouts", test_timeouts},
      {"fifo_and_batches", test_fifo_and_batches},
      {"close", test_close},
      {"close_wakes_waiters", test_close_wakes_waiters},
      {"lifo_release", test_lifo_release},
      {"concurrency_gate", test_concurrency_gate},
      {"thread_exit_releases_slot", test_thread_exit_releases_slot},
      {"switch_ports", test_switch_ports},
      {"blocking_region", test_blocking_region},
      {"oversubscribed_after_leave", test_oversubscribed_after_leave},
      {"timeout_races", test_timeout_races},
      {"million_across_threads", test_million_across_threads},
      {"validate", test_validate},
      {"idle_source", test_idle_source},
      {"workers_concurrency_1", test_workers_concurrency_1},
      {"workers_concurrency_2", test_workers_concurrency_2},
      {"workers_close_after", test_workers_close_after},
      {"workers_deadline", test_workers_deadline},
      {"workers_leftover_and_post_keys", test_workers_leftover_and_post_keys},
      {"workers_close_after_done", test_workers_close_after_done},
      {"workers_event_limit", test_workers_event_limit},
      {"workers_batch_dequeue", test_workers_batch_dequeue},
      {"workers_blocking_region", test_workers_blocking_region},
      {"workers_lifo", test_workers_lifo},
  };
  int passed = 0, failed = 0;
  for (const auto& [name, fn] : tests) {
    if (!filter.empty() && std::string(name).find(filter) == std::string::npos) continue;
    cpspec::check::current = name;
    const int before = cpspec::check::failed_checks;
    auto t = Clock::now();
    fn();
    const bool ok = cpspec::check::failed_checks == before;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", name, ms_since(t));
    std::fflush(stdout);
    (ok ? passed : failed)++;
  }
  if (do_bench) bench();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
