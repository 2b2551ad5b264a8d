// The wire names of the portable statuses (STATUSES in reference/src/target.ts), shared by both port
// implementations (native/core/port.cpp and, on Windows, native/iocp/port_iocp.cpp).
#include <string_view>

#include "port.h"

namespace cpspec {

namespace {
constexpr const char* kStatusNames[kStatusCount] = {"ok",   "eof",     "aborted", "reset",  "refused",
                                                    "pool-exhausted", "timeout", "closed", "invalid"};
}  // namespace

const char* status_name(Status s) noexcept {
  auto i = static_cast<unsigned>(s);
  return i < static_cast<unsigned>(kStatusCount) ? kStatusNames[i] : "invalid";
}

bool status_from_name(std::string_view name, Status& out) noexcept {
  for (int i = 0; i < kStatusCount; ++i) {
    if (name == kStatusNames[i]) {
      out = static_cast<Status>(i);
      return true;
    }
  }
  return false;
}

}  // namespace cpspec
