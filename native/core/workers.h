// Worker programs on real OS threads, recording a trace (see WorkerProgram and Trace in
// reference/src/target.ts and `workers.run` in conformance/PROTOCOL.md: this is the same model).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "port.h"

namespace cpspec {

struct Step {
  enum class Op : std::uint8_t { dequeue, spin, sleep, block, post };
  Op op = Op::spin;
  std::int64_t timeout_ms = 0;  // dequeue
  std::uint32_t max = 1;        // dequeue: > 1 uses dequeue_many
  std::uint64_t us = 0;         // spin, sleep, block
  std::uint64_t key = 0;        // post: keys key + iteration*count + i
  std::uint32_t count = 1;      // post
  std::uint32_t bytes = 0;      // post
};

struct Program {
  std::vector<Step> steps;
  std::int64_t repeat = 1;  // -1: until a dequeue step sees timeout or closed
};

struct RunOptions {
  std::int64_t close_after_ms = -1;  // close the port this long after all workers started; -1 never
  std::int64_t deadline_ms = 30000;  // whole-run limit: then the port is closed and workers stop
};

// Event codes: TRACE_EVENTS in target.ts.
enum class Ev : std::uint8_t { start = 0, wait = 1, got = 2, timeout = 3, closed = 4, block_enter = 5,
                               block_leave = 6, post = 7, exit = 8, port_closed = 9 };
inline constexpr std::uint16_t kHarnessThread = 65535;

struct TraceEvent {
  std::uint64_t t_ns;  // since the run started (steady clock)
  std::uint16_t thread;
  Ev ev;
  std::uint64_t key;
};

struct TraceResult {
  unsigned threads = 0;
  std::vector<TraceEvent> events;  // sorted by t_ns; ties keep each thread's recording order
  unsigned unfinished = 0;         // workers still running at the deadline
  std::size_t leftover = 0;        // packets no worker dequeued: handed back by the harness's close, plus
                                   // those still queued at the end (left in the port)
};

// Checks a program set; returns an empty string when valid, else a message naming the offending
// program and step (limits: 1..256 programs, 1..64 steps, spin/sleep/block <= 10 s, dequeue max
// 1..4096, post count 1..1'000'000, repeat -1 or 0..100'000'000, repeat -1 needs a dequeue step).
std::string validate(const std::vector<Program>& programs);

// Runs one thread per program, all released at once, and returns the merged trace. Never hangs past
// options.deadline_ms (plus the time of the longest single step): at the deadline the port is closed.
TraceResult run_workers(const std::shared_ptr<Port>& port, const std::vector<Program>& programs,
                        const RunOptions& options);

}  // namespace cpspec
