// Worker programs on real threads (see workers.h). Each worker records into its own vector; the vectors
// are merged by time at the end, so recording costs one clock read and one push_back.
#include "workers.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <thread>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#endif

namespace cpspec {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::uint64_t kMaxSafeInteger = (std::uint64_t{1} << 53) - 1;
constexpr std::uint64_t kMaxStepUs = 10'000'000;
constexpr std::int64_t kMaxRepeat = 100'000'000;
constexpr std::int64_t kMaxTimeoutMs = 2147483647;
// Trace size limit of one run (as the model's default maxTraceEvents): past it the run is cut short like
// at the deadline. Checked every kEventChunk events per thread, so a trace may exceed it slightly.
constexpr std::size_t kMaxEvents = 8'000'000;
constexpr std::size_t kEventChunk = 1024;

const char* op_name(Step::Op op) {
  switch (op) {
    case Step::Op::dequeue: return "dequeue";
    case Step::Op::spin: return "spin";
    case Step::Op::sleep: return "sleep";
    case Step::Op::block: return "block";
    case Step::Op::post: return "post";
  }
  return "unknown";
}

struct Shared {
  std::shared_ptr<Port> port;
  clock::time_point t0;
  std::atomic<bool> go{false};
  std::atomic<bool> abandon{false};  // set instead of go when the run could not start
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> events{0};  // recorded so far, counted in chunks
  bool limit_hit = false;              // under mu

  std::mutex mu;  // ready, done; also the sleepers' mutex
  std::condition_variable cv;        // harness: ready/done changed
  std::condition_variable stop_cv;   // sleepers: stop was set
  unsigned ready = 0;
  unsigned done = 0;
};

class Worker {
 public:
  Worker(Shared& sh, const Program& prog, std::uint16_t id, std::vector<TraceEvent>& out)
      : sh_(sh), prog_(prog), id_(id), ev_(out) {}

  void operator()() {
    {
      std::lock_guard<std::mutex> g(sh_.mu);
      ++sh_.ready;
    }
    sh_.cv.notify_all();
    sh_.go.wait(false, std::memory_order_acquire);
    if (!sh_.abandon.load(std::memory_order_acquire)) {
      try {
        run();
      } catch (...) {
        // Out of memory while recording: stop this worker, keep the others going.
      }
    }
    Port::detach_current_thread();
    {
      std::lock_guard<std::mutex> g(sh_.mu);
      ++sh_.done;
    }
    sh_.cv.notify_all();
  }

 private:
  void record(Ev e, std::uint64_t key = 0) { record_at(now(), e, key); }
  void record_at(std::uint64_t t, Ev e, std::uint64_t key) {
    ev_.push_back(TraceEvent{t, id_, e, key});
    if (++chunk_ == kEventChunk) count_chunk();
  }
  void count_chunk() {
    chunk_ = 0;
    if (sh_.events.fetch_add(kEventChunk, std::memory_order_relaxed) + kEventChunk >= kMaxEvents) {
      {
        std::lock_guard<std::mutex> g(sh_.mu);
        sh_.limit_hit = true;
      }
      sh_.cv.notify_all();
    }
  }
  std::uint64_t now() const {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - sh_.t0).count());
  }
  bool stopping() const { return sh_.stop.load(std::memory_order_relaxed); }

  void spin(std::uint64_t us) {
    const clock::time_point until = clock::now() + std::chrono::microseconds(us);
    while (clock::now() < until) {
      if (stopping()) return;
    }
  }
#ifdef _WIN32
  // The kernel's completion port releases the slot of a thread that waits (any kernel wait), so a plain
  // `sleep` step, which must keep its slot, busy-waits here. The `block` step keeps the kernel wait below:
  // that is the blocking the kernel is meant to see. SwitchToThread leaves the thread ready (not waiting,
  // so it keeps its slot) but lets ready threads have the core: sleepers do not starve the threads doing
  // the work under test on a small machine.
  void busy_sleep(std::uint64_t us) {
    const clock::time_point until = clock::now() + std::chrono::microseconds(us);
    for (unsigned i = 1; clock::now() < until; ++i) {
      if (stopping()) return;
      YieldProcessor();
      if ((i & 63) == 0) SwitchToThread();
    }
  }
#endif
  // A sleep that ends early when the run is stopped at its deadline.
  void sleep(std::uint64_t us) {
    const clock::time_point until = clock::now() + std::chrono::microseconds(us);
    std::unique_lock<std::mutex> lk(sh_.mu);
    sh_.stop_cv.wait_until(lk, until, [&] { return sh_.stop.load(std::memory_order_relaxed); });
  }

  void run() {
    Port& port = *sh_.port;
    ev_.reserve(256);
    record(Ev::start);
    std::vector<Packet> buf;
    for (const Step& s : prog_.steps) {
      if (s.op == Step::Op::dequeue && s.max > buf.size()) buf.resize(s.max);
    }
    if (buf.empty()) buf.resize(1);

    const bool forever = prog_.repeat < 0;
    for (std::int64_t it = 0; forever || it < prog_.repeat; ++it) {
      for (const Step& s : prog_.steps) {
        if (stopping()) {
          record(Ev::exit);
          return;
        }
        switch (s.op) {
          case Step::Op::dequeue: {
            record(Ev::wait);
            std::size_t n = 0;
            DequeueKind k;
            if (s.max > 1) {
              k = port.dequeue_many(buf.data(), s.max, n, s.timeout_ms);
            } else {
              k = port.dequeue(buf[0], s.timeout_ms);
              n = k == DequeueKind::packet ? 1 : 0;
            }
            const std::uint64_t t = now();
            if (k == DequeueKind::packet) {
              for (std::size_t i = 0; i < n; ++i) record_at(t, Ev::got, buf[i].key);
            } else {
              record_at(t, k == DequeueKind::timeout ? Ev::timeout : Ev::closed, 0);
              record(Ev::exit);
              return;
            }
            break;
          }
          case Step::Op::spin:
            spin(s.us);
            break;
          case Step::Op::sleep:
#ifdef _WIN32
            busy_sleep(s.us);
#else
            sleep(s.us);
#endif
            break;
          case Step::Op::block:
            record(Ev::block_enter);
            port.enter_blocking();
            sleep(s.us);
            port.leave_blocking();
            record(Ev::block_leave);
            break;
          case Step::Op::post: {
            const std::uint64_t base = s.key + static_cast<std::uint64_t>(it) * s.count;
            for (std::uint32_t i = 0; i < s.count; ++i) {
              if ((i & 1023) == 1023 && stopping()) break;
              Packet p;
              p.key = base + i;
              p.token = p.key;
              p.bytes = s.bytes;
              record(Ev::post, p.key);
              port.post(p);  // on a closed port the packet is dropped and the worker goes on (as the model)
            }
            break;
          }
        }
      }
    }
    record(Ev::exit);
  }

  Shared& sh_;
  const Program& prog_;
  const std::uint16_t id_;
  std::vector<TraceEvent>& ev_;
  std::size_t chunk_ = 0;
};

// Merges per-thread event lists (each sorted by time) into one list sorted by time; ties keep the order
// of the lists, and within a list the recording order.
std::vector<TraceEvent> merge(std::vector<std::vector<TraceEvent>>& lists) {
  std::size_t total = 0;
  for (const auto& l : lists) total += l.size();
  std::vector<TraceEvent> out;
  out.reserve(total);
  using Head = std::pair<std::uint64_t, std::size_t>;  // (time, list index)
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap;
  std::vector<std::size_t> pos(lists.size(), 0);
  for (std::size_t i = 0; i < lists.size(); ++i) {
    if (!lists[i].empty()) heap.emplace(lists[i][0].t_ns, i);
  }
  while (!heap.empty()) {
    std::size_t i = heap.top().second;
    heap.pop();
    const std::vector<TraceEvent>& l = lists[i];
    std::size_t& p = pos[i];
    // Take this list's events while they come before the next list's head (time, then list index).
    const bool last = heap.empty();
    const Head next = last ? Head{0, 0} : heap.top();
    do {
      out.push_back(l[p]);
      ++p;
    } while (p < l.size() && (last || Head{l[p].t_ns, i} < next));
    if (p < l.size()) {
      heap.emplace(l[p].t_ns, i);
    } else {
      std::vector<TraceEvent>().swap(lists[i]);
    }
  }
  return out;
}

}  // namespace

std::string validate(const std::vector<Program>& programs) {
  if (programs.empty() || programs.size() > 256) {
    return "need 1..256 worker programs, got " + std::to_string(programs.size());
  }
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const Program& p = programs[i];
    const std::string where = "program " + std::to_string(i);
    if (p.steps.empty() || p.steps.size() > 64) {
      return where + ": needs 1..64 steps, got " + std::to_string(p.steps.size());
    }
    if (p.repeat < -1 || p.repeat > kMaxRepeat) {
      return where + ": repeat must be -1 (until timeout/closed) or 0..100000000, got " + std::to_string(p.repeat);
    }
    bool has_dequeue = false;
    for (std::size_t j = 0; j < p.steps.size(); ++j) {
      const Step& s = p.steps[j];
      const std::string at = where + ", step " + std::to_string(j) + " (" + op_name(s.op) + ")";
      switch (s.op) {
        case Step::Op::dequeue:
          has_dequeue = true;
          if (s.timeout_ms < -1 || s.timeout_ms > kMaxTimeoutMs) {
            return at + ": timeoutMs must be an integer in -1..2147483647, got " + std::to_string(s.timeout_ms);
          }
          if (s.max < 1 || s.max > 4096) return at + ": max must be 1..4096, got " + std::to_string(s.max);
          break;
        case Step::Op::spin:
        case Step::Op::sleep:
        case Step::Op::block:
          if (s.us > kMaxStepUs) return at + ": us must be 0..10000000 (10 s), got " + std::to_string(s.us);
          break;
        case Step::Op::post: {
          if (s.count < 1 || s.count > 1'000'000) return at + ": count must be 1..1000000, got " + std::to_string(s.count);
          if (s.key > kMaxSafeInteger) return at + ": key must be 0..2^53-1, got " + std::to_string(s.key);
          const std::uint64_t iterations = p.repeat > 0 ? static_cast<std::uint64_t>(p.repeat) : 1;
          // Largest key: key + (iterations-1)*count + count-1 = key + iterations*count - 1.
          if (iterations * s.count - 1 > kMaxSafeInteger - s.key) {
            return at + ": keys would exceed 2^53-1 (key " + std::to_string(s.key) + ", count " + std::to_string(s.count) +
                   ", repeat " + std::to_string(p.repeat) + ")";
          }
          break;
        }
        default:
          return at + ": unknown op";
      }
    }
    if (p.repeat == -1 && !has_dequeue) return where + ": repeat -1 needs a dequeue step (it runs until one times out or sees closed)";
  }
  return {};
}

TraceResult run_workers(const std::shared_ptr<Port>& port, const std::vector<Program>& programs, const RunOptions& options) {
  if (!port) throw std::invalid_argument("run_workers: no port");
  std::string bad = validate(programs);
  if (!bad.empty()) throw std::invalid_argument(bad);

  const unsigned n = static_cast<unsigned>(programs.size());
  Shared sh;
  sh.port = port;
  std::vector<std::vector<TraceEvent>> lists(n + 1);  // the last list is the harness's
  std::vector<Worker> workers;
  workers.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers.emplace_back(sh, programs[i], static_cast<std::uint16_t>(i), lists[i]);

  std::vector<std::thread> threads;
  threads.reserve(n);
  auto join_all = [&] {
    for (std::thread& t : threads) {
      if (t.joinable()) t.join();
    }
  };
  try {
    for (unsigned i = 0; i < n; ++i) threads.emplace_back(std::ref(workers[i]));
  } catch (...) {
    sh.abandon.store(true, std::memory_order_release);
    sh.go.store(true, std::memory_order_release);
    sh.go.notify_all();
    join_all();
    throw;
  }

  {
    std::unique_lock<std::mutex> lk(sh.mu);
    sh.cv.wait(lk, [&] { return sh.ready == n; });
  }
  sh.t0 = clock::now();
  sh.go.store(true, std::memory_order_release);
  sh.go.notify_all();

  TraceResult result;
  result.threads = n;
  std::vector<TraceEvent>& harness = lists[n];
  std::size_t drained = 0;
  auto close_port = [&] {
    const auto t = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - sh.t0).count());
    harness.push_back(TraceEvent{t, kHarnessThread, Ev::port_closed, 0});
    drained += port->close().size();
  };

  // The harness closes the port at close_after_ms (even when the workers are done by then, as the model
  // does) unless that is past the deadline. At the deadline, or when the trace gets too long, workers
  // still running are counted as unfinished, told to stop and the port is closed so none stays blocked.
  const clock::time_point deadline = sh.t0 + std::chrono::milliseconds(std::max<std::int64_t>(0, options.deadline_ms));
  const clock::time_point close_at =
      options.close_after_ms >= 0 ? sh.t0 + std::chrono::milliseconds(options.close_after_ms) : clock::time_point::max();
  bool close_pending = options.close_after_ms >= 0 && close_at <= deadline;
  bool closed_by_harness = false;
  for (;;) {
    std::unique_lock<std::mutex> lk(sh.mu);
    sh.cv.wait_until(lk, close_pending ? close_at : deadline,
                     [&] { return (sh.done == n && !close_pending) || sh.limit_hit; });
    if (sh.done == n && !close_pending) break;
    const clock::time_point now = clock::now();
    if (close_pending && now >= close_at && !sh.limit_hit) {
      lk.unlock();
      close_port();
      closed_by_harness = true;
      close_pending = false;
      continue;
    }
    if (sh.limit_hit || now >= deadline) {
      result.unfinished = n - sh.done;
      sh.stop.store(true, std::memory_order_relaxed);
      lk.unlock();
      sh.stop_cv.notify_all();
      if (!closed_by_harness && result.unfinished > 0) close_port();
      break;
    }
  }
  join_all();

  result.leftover = drained + port->queued();
  result.events = merge(lists);
  return result;
}

}  // namespace cpspec
