// The check macros shared by the native test programs (native/test/*_test.cpp). No framework: each
// program keeps its own list of tests and its main; a failed check prints where and counts, and the
// program prints `N passed, M failed` last and exits non-zero on any failure.
#pragma once

#include <cstdio>
#include <string>

namespace cpspec::check {

// Sanitizer builds run slower: tests scale their workloads and timing margins by this.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

inline int failed_checks = 0;
inline std::string current;  // the test being run, named in failure lines
}  // namespace cpspec::check

#define CPSPEC_CHECK_FAIL_PREFIX(expr_text) \
  std::fprintf(stderr, "  FAIL %s:%d [%s]: %s", __FILE__, __LINE__, cpspec::check::current.c_str(), expr_text)

#define CHECK(cond)                           \
  do {                                        \
    if (!(cond)) {                            \
      CPSPEC_CHECK_FAIL_PREFIX(#cond);        \
      std::fprintf(stderr, "\n");             \
      ++cpspec::check::failed_checks;         \
    }                                         \
  } while (0)

#define CHECK_EQ(a, b)                                                                           \
  do {                                                                                           \
    auto va_ = (a);                                                                              \
    auto vb_ = (b);                                                                              \
    if (!(va_ == vb_)) {                                                                         \
      CPSPEC_CHECK_FAIL_PREFIX(#a " == " #b);                                                    \
      std::fprintf(stderr, " (%lld vs %lld)\n", static_cast<long long>(va_), static_cast<long long>(vb_)); \
      ++cpspec::check::failed_checks;                                                            \
    }                                                                                            \
  } while (0)

#define CHECK_MSG(cond, ...)                  \
  do {                                        \
    if (!(cond)) {                            \
      CPSPEC_CHECK_FAIL_PREFIX(#cond);        \
      std::fprintf(stderr, ": ");             \
      std::fprintf(stderr, __VA_ARGS__);      \
      std::fprintf(stderr, "\n");             \
      ++cpspec::check::failed_checks;         \
    }                                         \
  } while (0)
