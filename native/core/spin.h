// How a thread that is about to block spins first: a port waiter before it sleeps on its condition
// variable (port.cpp), the io_uring completion thread before it sleeps in io_uring_enter. Spinning saves
// the sleep and wake-up system calls (and, in a virtual machine, the cost of waking an idle virtual CPU)
// when the awaited event comes within microseconds. How it spins depends on the CPUs the thread may run on,
// decided once per thread (this_thread_spin_policy, defined in port.cpp):
// - several: a busy loop (pause);
// - one (a pinned server, a cpuset of one CPU): the thread that will produce the event needs that same
//   CPU, so a busy loop only takes it from the producer (profiled: 48% of a pinned io_uring echo server's
//   CPU went to such a loop). Such a thread yields instead (sched_yield): the producer runs at once if it
//   is runnable, and the CPU stays busy only while there is nothing else to run.
#pragma once

#include <chrono>
#include <thread>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#define CPSPEC_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define CPSPEC_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPSPEC_CPU_RELAX() ((void)0)
#endif

namespace cpspec {

struct SpinPolicy {
  std::chrono::nanoseconds time{0};  // how long to spin before blocking (0: do not spin)
  bool yield = false;                // spin with sched_yield rather than a busy pause
};

const SpinPolicy& this_thread_spin_policy() noexcept;

// One step of a spin loop under policy p.
inline void spin_pause(const SpinPolicy& p) noexcept {
  if (p.yield) {
    std::this_thread::yield();
  } else {
    CPSPEC_CPU_RELAX();
  }
}

}  // namespace cpspec
