// Tests of the epoll socket back-end against the back-end directly (no Node), over real loopback sockets,
// so ASan and TSan cover it. The peer side is a plain blocking socket driven by the test.
// Usage: cpspec-epoll-test [name-substring]
// Prints one line per test and `N passed, M failed` last; exits non-zero when a check fails.
#include "backend_suite.h"

int main(int argc, char** argv) {
  suite::make = make_epoll_backend;
  suite::name = "epoll";
  return run_tests(argc, argv, kSharedTests);
}
