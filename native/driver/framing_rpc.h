// framing.* methods of the standalone driver (conformance/PROTOCOL.md, "Framing"): the FramingApi of
// reference/src/target.ts over the C++ codec (native/framing). Bytes travel as base64, like socket data.
//
// The driver serves these inline on its reader thread (they never block); FramingRpc is not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "json.h"

namespace cpspec::framing {
class Decoder;
}

namespace cpspec::driver {

/** A framing.* request that cannot be served. */
struct FramingRpcError {
  /** true: wrong JSON types or missing members (JSON-RPC -32602); false: a bad value (-32000 'invalid'). */
  bool params;
  std::string message;
};

class FramingRpc {
 public:
  /** Live decoders one driver may hold (createDecoder beyond it is 'invalid'). */
  static constexpr std::size_t kMaxDecoders = 65536;

  FramingRpc();
  ~FramingRpc();
  FramingRpc(const FramingRpc&) = delete;
  FramingRpc& operator=(const FramingRpc&) = delete;

  /** Whether `method` is one of the framing.* methods served here. */
  static bool is_method(std::string_view method);

  /** Serves one method; throws FramingRpcError. */
  json::Value call(std::string_view method, const json::Value& params);

  /** Forgets every decoder (the driver's reset). */
  void reset();

 private:
  json::Value create_decoder(const json::Value& params);
  framing::Decoder& decoder(const json::Value& params, const char* what);

  std::map<std::int64_t, std::unique_ptr<framing::Decoder>> decoders_;
  std::int64_t next_ = 1;
};

}  // namespace cpspec::driver
