// The command line and watchdog shared by the native benchmarks (native/bench/*_bench.cpp):
// --json, --reps N (1..100), --quick (a smoke test), --help; a watchdog thread ends a run that hangs.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>

namespace cpspec::bench {

struct Options {
  bool json = false;
  bool quick = false;
  int reps = 0;
};

// Parses argv; returns -1 to go on, or the exit code to return (after --help or a bad option).
inline int parse_options(int argc, char** argv, const char* name, const char* usage, int default_reps, Options& o) {
  o.reps = default_reps;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--json") {
      o.json = true;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--reps" && i + 1 < argc) {
      o.reps = std::atoi(argv[++i]);
      if (o.reps < 1 || o.reps > 100) {
        std::fputs(usage, stderr);
        return 2;
      }
    } else if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown option '%s'\n%s", name, argv[i], usage);
      return 2;
    }
  }
  if (o.quick) o.reps = 1;
  return -1;
}

// A broken implementation must not hang a benchmark forever: exit 3 after limit_s seconds.
inline void start_watchdog(const char* name, int limit_s) {
  std::thread([name, limit_s] {
    std::this_thread::sleep_for(std::chrono::seconds(limit_s));
    std::fprintf(stderr, "%s: still running after %d s, giving up\n", name, limit_s);
    std::_Exit(3);
  }).detach();
}

}  // namespace cpspec::bench
