// cpspec-bench-port: measures cpspec::Port against a naive baseline queue (std::mutex +
// std::condition_variable + std::deque, notify_one per posted packet) in the same run.
//
//   1. single thread, post + dequeue one packet at a time               (packets/s)
//   2. single thread, post_many + dequeue_many, batches of 64           (packets/s, target >= 10 M/s)
//   3. producer -> consumer on 2 threads: single posts, consumer        (packets/s, target >= 2 M/s)
//      dequeue_many 64
//   4. wake-up latency: a thread blocked on an empty queue, another     (median and p99, ns)
//      posts; time from just before the post to the waiter's return.
//      Ping-pong between two threads over two queues.
//
// Each measurement is repeated (--reps, default 7) and the best run is reported: the highest throughput,
// and for latency the run with the lowest median (its p99 is reported beside it). Ratios are always
// "> 1 = cpspec better": cpspec/baseline for throughput, baseline/cpspec for latency. Targets are reported
// (PASS/MISS), never asserted: the exit status is 0 unless a correctness check fails.
//
// usage: cpspec-bench-port [--json] [--reps N] [--quick] [--help]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_cli.h"
#include "port.h"

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "cpspec-bench-port: correctness check failed: %s\n", what.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------------------------------------
// The two queues behind one small interface (templates, so neither pays for virtual calls).
// ---------------------------------------------------------------------------------------------------------

// The naive baseline: one mutex, one condition variable, a deque; notify_one for every posted packet.
class BaselineQueue {
 public:
  static constexpr const char* kName = "baseline";

  void post(const cpspec::Packet& p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(p);
    }
    cv_.notify_one();
  }

  void post_many(const cpspec::Packet* p, std::size_t n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.insert(q_.end(), p, p + n);
    }
    for (std::size_t i = 0; i < n; ++i) cv_.notify_one();
  }

  // Blocks until a packet is queued.
  void dequeue(cpspec::Packet& out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !q_.empty(); });
    out = q_.front();
    q_.pop_front();
  }

  std::size_t dequeue_many(cpspec::Packet* out, std::size_t max) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !q_.empty(); });
    std::size_t n = 0;
    while (n < max && !q_.empty()) {
      out[n++] = q_.front();
      q_.pop_front();
    }
    return n;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<cpspec::Packet> q_;
};

class CpspecQueue {
 public:
  static constexpr const char* kName = "cpspec";

  // Concurrency 0 (= hardware threads): the gate never throttles the 1-2 threads used here.
  CpspecQueue() : port_(cpspec::Port::create(0)) {}
  ~CpspecQueue() { port_->close(); }

  void post(const cpspec::Packet& p) {
    if (!port_->post(p)) fail("post on an open port returned false");
  }
  void post_many(const cpspec::Packet* p, std::size_t n) {
    if (!port_->post_many(p, n)) fail("post_many on an open port returned false");
  }
  void dequeue(cpspec::Packet& out) {
    if (port_->dequeue(out, cpspec::kInfinite) != cpspec::DequeueKind::packet) fail("dequeue did not return a packet");
  }
  std::size_t dequeue_many(cpspec::Packet* out, std::size_t max) {
    std::size_t n = 0;
    if (port_->dequeue_many(out, max, n, cpspec::kInfinite) != cpspec::DequeueKind::packet || n == 0 || n > max) {
      fail("dequeue_many did not return 1..max packets");
    }
    return n;
  }

 private:
  std::shared_ptr<cpspec::Port> port_;
};

// ---------------------------------------------------------------------------------------------------------
// The measurements. Each returns one run's value.
// ---------------------------------------------------------------------------------------------------------

cpspec::Packet make_packet(std::uint64_t i) {
  cpspec::Packet p;
  p.key = i;
  p.token = i;
  p.bytes = static_cast<std::uint32_t>(i & 0xFFFF);
  return p;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// 1. One thread, one packet at a time. packets/s.
template <class Q>
double single_thread(std::size_t n) {
  Q q;
  cpspec::Packet out;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    q.post(make_packet(i));
    q.dequeue(out);
    if (out.key != i) fail(std::string(Q::kName) + " single: packet out of order");
  }
  return static_cast<double>(n) / seconds_since(t0);
}

// 2. One thread, batches of 64 each way. packets/s.
template <class Q>
double single_thread_batched(std::size_t n) {
  constexpr std::size_t kBatch = 64;
  Q q;
  cpspec::Packet in[kBatch];
  cpspec::Packet out[kBatch];
  for (std::size_t i = 0; i < kBatch; ++i) in[i] = make_packet(i);
  const std::size_t rounds = n / kBatch;
  std::uint64_t got = 0;
  const auto t0 = Clock::now();
  for (std::size_t r = 0; r < rounds; ++r) {
    in[0].key = r;  // changes per round so the copy is not hoisted
    q.post_many(in, kBatch);
    std::size_t have = 0;
    while (have < kBatch) have += q.dequeue_many(out + have, kBatch - have);
    if (out[0].key != r || out[kBatch - 1].key != kBatch - 1) fail(std::string(Q::kName) + " batched: wrong packets");
    got += have;
  }
  const double s = seconds_since(t0);
  if (got != rounds * kBatch) fail(std::string(Q::kName) + " batched: lost packets");
  return static_cast<double>(got) / s;
}

// A start line for two threads, so thread creation is not timed.
class StartLine {
 public:
  void arrive_and_wait() {
    if (ready_.fetch_add(1) + 1 == 2) {
      go_.store(true, std::memory_order_release);
    } else {
      while (!go_.load(std::memory_order_acquire)) std::this_thread::yield();
    }
  }

 private:
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false};
};

// 3. Producer posts single packets; consumer dequeue_many(64). packets/s (consumer side, start to last).
template <class Q>
double producer_consumer(std::size_t n) {
  constexpr std::size_t kBatch = 64;
  Q q;
  StartLine start;
  Clock::time_point t0;
  std::thread producer([&] {
    start.arrive_and_wait();
    for (std::size_t i = 0; i < n; ++i) q.post(make_packet(i));
  });
  start.arrive_and_wait();
  t0 = Clock::now();
  cpspec::Packet out[kBatch];
  std::size_t got = 0;
  std::uint64_t expect = 0;
  while (got < n) {
    const std::size_t k = q.dequeue_many(out, kBatch);
    for (std::size_t i = 0; i < k; ++i) {
      if (out[i].key != expect++) fail(std::string(Q::kName) + " producer/consumer: packet out of order");
    }
    got += k;
  }
  const double s = seconds_since(t0);
  producer.join();
  return static_cast<double>(n) / s;
}

struct Latency {
  double median_ns = 0;
  double p99_ns = 0;
};

// 4. Ping-pong: each side posts (token = post time) then blocks on its own queue; each wake is a sample.
template <class Q>
Latency wake_latency(std::size_t round_trips, std::size_t warmup) {
  Q ping;  // main -> echo
  Q pong;  // echo -> main
  const std::size_t total = round_trips + warmup;
  std::vector<std::uint64_t> echo_samples(total);
  std::vector<std::uint64_t> main_samples(total);
  StartLine start;
  std::thread echo([&] {
    start.arrive_and_wait();
    cpspec::Packet p;
    for (std::size_t i = 0; i < total; ++i) {
      ping.dequeue(p);
      echo_samples[i] = now_ns() - p.token;
      cpspec::Packet r = make_packet(i);
      r.token = now_ns();
      pong.post(r);
    }
  });
  start.arrive_and_wait();
  cpspec::Packet p;
  for (std::size_t i = 0; i < total; ++i) {
    cpspec::Packet s = make_packet(i);
    s.token = now_ns();
    ping.post(s);
    pong.dequeue(p);
    main_samples[i] = now_ns() - p.token;
    if (p.key != i) fail(std::string(Q::kName) + " latency: wrong packet");
  }
  echo.join();
  std::vector<std::uint64_t> all;
  all.reserve(2 * round_trips);
  all.insert(all.end(), echo_samples.begin() + static_cast<std::ptrdiff_t>(warmup), echo_samples.end());
  all.insert(all.end(), main_samples.begin() + static_cast<std::ptrdiff_t>(warmup), main_samples.end());
  std::sort(all.begin(), all.end());
  Latency l;
  l.median_ns = static_cast<double>(all[all.size() / 2]);
  l.p99_ns = static_cast<double>(all[std::min(all.size() - 1, all.size() * 99 / 100)]);
  return l;
}

// ---------------------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------------------

struct Row {
  std::string id;
  std::string metric;
  std::string unit;             // "packets/s" or "ns"
  bool higher_better = true;
  double cpspec = 0;
  double baseline = 0;
  double target = 0;            // 0: none
  double ratio() const { return higher_better ? cpspec / baseline : baseline / cpspec; }
  bool has_target() const { return target > 0; }
  bool pass() const { return higher_better ? cpspec >= target : cpspec <= target; }
};

std::string human(double v, std::string_view unit) {
  char buf[64];
  if (unit == "ns") {
    if (v >= 10000) {
      std::snprintf(buf, sizeof buf, "%.1f us", v / 1000);
    } else {
      std::snprintf(buf, sizeof buf, "%.0f ns", v);
    }
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M/s", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f k/s", v / 1e3);
  }
  return buf;
}

void print_table(const std::vector<Row>& rows, int reps, unsigned hw, double elapsed) {
  std::printf("cpspec port benchmark: cpspec::Port vs naive baseline (mutex + condvar + deque, notify_one per post)\n");
  std::printf("best of %d runs per measurement; %u hardware threads; ratio > 1 means cpspec is better\n\n", reps, hw);
  std::printf("%-52s %12s %12s %8s %12s  %s\n", "metric", "cpspec", "baseline", "ratio", "target", "result");
  for (const auto& r : rows) {
    std::string target = "-";
    std::string result = "-";
    if (r.has_target()) {
      target = std::string(r.higher_better ? ">= " : "<= ") + human(r.target, r.unit);
      result = r.pass() ? "PASS" : "MISS";
    }
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.2fx", r.ratio());
    std::printf("%-52s %12s %12s %8s %12s  %s\n", r.metric.c_str(), human(r.cpspec, r.unit).c_str(),
                human(r.baseline, r.unit).c_str(), ratio, target.c_str(), result.c_str());
  }
  std::printf("\n(whole run %.1f s)\n", elapsed);
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void print_json(const std::vector<Row>& rows, int reps, unsigned hw, double elapsed) {
  std::printf("{\"benchmark\":\"port\",\"aggregate\":\"best\",\"reps\":%d,\"hardwareThreads\":%u,\"seconds\":%.3f,\"rows\":[",
              reps, hw, elapsed);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::printf("%s{\"id\":\"%s\",\"metric\":\"%s\",\"unit\":\"%s\",\"higherIsBetter\":%s,\"cpspec\":%.17g,"
                "\"baseline\":%.17g,\"ratio\":%.17g,",
                i ? "," : "", json_escape(r.id).c_str(), json_escape(r.metric).c_str(), json_escape(r.unit).c_str(),
                r.higher_better ? "true" : "false", r.cpspec, r.baseline, r.ratio());
    if (r.has_target()) {
      std::printf("\"target\":%.17g,\"result\":\"%s\"}", r.target, r.pass() ? "PASS" : "MISS");
    } else {
      std::printf("\"target\":null,\"result\":null}");
    }
  }
  std::printf("]}\n");
}

template <class F>
double best_of(int reps, F f) {
  double best = 0;
  for (int i = 0; i < reps; ++i) best = std::max(best, f());
  return best;
}

template <class F>
Latency best_latency(int reps, F f) {
  Latency best;
  for (int i = 0; i < reps; ++i) {
    const Latency l = f();
    if (i == 0 || l.median_ns < best.median_ns) best = l;
  }
  return best;
}

const char* const kUsage =
    "usage: cpspec-bench-port [--json] [--reps N] [--quick]\n"
    "  --json     print the results as one JSON object instead of a table\n"
    "  --reps N   runs per measurement, best reported (default 7; 1..100)\n"
    "  --quick    small sizes and 1 run (a smoke test: numbers are not meaningful)\n";

}  // namespace

int main(int argc, char** argv) {
  cpspec::bench::Options opts;
  if (int rc = cpspec::bench::parse_options(argc, argv, "cpspec-bench-port", kUsage, 7, opts); rc >= 0) return rc;
  const bool json = opts.json;
  const bool quick = opts.quick;
  const int reps = opts.reps;
  cpspec::bench::start_watchdog("cpspec-bench-port", 60 + 20 * reps);

  const std::size_t n_single = quick ? 20000 : 2000000;
  const std::size_t n_batched = quick ? 64000 : 8000000;
  const std::size_t n_prodcons = quick ? 20000 : 2000000;
  const std::size_t n_latency = quick ? 500 : 20000;
  const std::size_t n_warmup = quick ? 50 : 1000;
  unsigned hw = std::thread::hardware_concurrency();
  if (hw == 0) hw = 1;

  const auto t0 = Clock::now();
  std::vector<Row> rows;
  auto progress = [&](const char* what) {
    if (!json) std::fprintf(stderr, "  measuring %s...\n", what);
  };

  progress("single-thread post+dequeue");
  {
    Row r{"single", "1. single thread: post + dequeue, one at a time", "packets/s"};
    r.cpspec = best_of(reps, [&] { return single_thread<CpspecQueue>(n_single); });
    r.baseline = best_of(reps, [&] { return single_thread<BaselineQueue>(n_single); });
    rows.push_back(r);
  }
  progress("single-thread batched");
  {
    Row r{"batched", "2. single thread: post_many/dequeue_many, batch 64", "packets/s"};
    r.target = 10e6;
    r.cpspec = best_of(reps, [&] { return single_thread_batched<CpspecQueue>(n_batched); });
    r.baseline = best_of(reps, [&] { return single_thread_batched<BaselineQueue>(n_batched); });
    rows.push_back(r);
  }
  progress("producer -> consumer");
  {
    Row r{"prodcons", "3. producer -> consumer, 2 threads (post / dqmany 64)", "packets/s"};
    r.target = 2e6;
    r.cpspec = best_of(reps, [&] { return producer_consumer<CpspecQueue>(n_prodcons); });
    r.baseline = best_of(reps, [&] { return producer_consumer<BaselineQueue>(n_prodcons); });
    rows.push_back(r);
  }
  progress("wake-up latency");
  {
    const Latency c = best_latency(reps, [&] { return wake_latency<CpspecQueue>(n_latency, n_warmup); });
    const Latency b = best_latency(reps, [&] { return wake_latency<BaselineQueue>(n_latency, n_warmup); });
    Row med{"latency-median", "4. wake-up latency, median (ping-pong, 2 threads)", "ns", false, c.median_ns, b.median_ns};
    Row p99{"latency-p99", "4. wake-up latency, p99 (same runs)", "ns", false, c.p99_ns, b.p99_ns};
    rows.push_back(med);
    rows.push_back(p99);
  }
  const double elapsed = seconds_since(t0);

  if (json) {
    print_json(rows, reps, hw, elapsed);
  } else {
    print_table(rows, reps, hw, elapsed);
  }
  std::fflush(stdout);
  std::_Exit(0);  // the watchdog thread is still sleeping
}
