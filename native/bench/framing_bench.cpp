// cpspec-bench-framing: decode throughput of the C++ framing codec (native/framing) on a pre-chunked stream,
// for 64 B, 1 KiB and 16 KiB payloads, random chunk sizes 1..8192 (seeded). bench/framing.ts uses the same
// measurement through the addon (framing.benchDecode) and falls back to this binary.
//
// Usage: cpspec-bench-framing [--json] [--quick] [--seconds S]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "framing.h"

using namespace cpspec::framing;

namespace {

struct Stream {
  std::vector<std::uint8_t> bytes;
  std::vector<std::pair<std::size_t, std::size_t>> chunks;  // offset, length
  std::size_t frames = 0;
};

Stream make_stream(std::size_t payload, std::size_t target_bytes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Stream s;
  std::vector<Frame> batch;
  std::size_t total = 0;
  std::uint32_t seq = 0;
  while (total < target_bytes) {
    Frame f{static_cast<std::uint16_t>(1 + rng() % 8), seq++, 42, std::vector<std::uint8_t>(payload)};
    for (auto& b : f.payload) b = static_cast<std::uint8_t>(rng());
    total += kHeaderSize + payload;
    batch.push_back(std::move(f));
  }
  s.frames = batch.size();
  if (encode(batch, s.bytes)) std::abort();
  for (std::size_t at = 0; at < s.bytes.size();) {
    std::size_t n = std::min<std::size_t>(1 + rng() % 8192, s.bytes.size() - at);
    s.chunks.emplace_back(at, n);
    at += n;
  }
  return s;
}

// Decodes the whole chunk list once; returns the frame count (and folds a checksum so nothing is elided).
// copy: every payload is copied into an owning Frame (what a consumer that keeps frames pays).
std::size_t decode_once(const Stream& s, std::uint64_t& checksum, bool copy) {
  Decoder d;
  std::size_t frames = 0;
  std::vector<Frame> kept;
  for (const auto& [at, n] : s.chunks) {
    FeedResult r = d.feed_with(s.bytes.data() + at, n, [&](const FrameView& v) {
      ++frames;
      if (copy) {
        kept.push_back(v.to_frame());
        checksum += kept.back().payload.size();
        if (kept.size() >= 64) kept.clear();
        return;
      }
      checksum += v.size + v.sequence + (v.size > 0 ? v.data[v.size - 1] : 0);
    });
    if (r.error) {
      std::fprintf(stderr, "decode error: %s\n", r.error.message().c_str());
      std::exit(2);
    }
  }
  if (d.end()) std::exit(2);
  return frames;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) json = true;
    else if (std::strcmp(argv[i], "--quick") == 0) seconds = 0.2;
    else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: cpspec-bench-framing [--json] [--quick] [--seconds S]\n");
      return 2;
    }
  }
  const std::size_t sizes[] = {64, 1024, 16384};
  if (!json) std::printf("%-10s %-6s %12s %14s %10s\n", "payload", "mode", "MB/s", "frames/s", "chunks");
  if (json) std::printf("[");
  bool first = true;
  for (std::size_t payload : sizes) {
    const Stream s = make_stream(payload, 16u << 20, 1234);
    for (bool copy : {false, true}) {
      const char* mode = copy ? "copy" : "views";
      std::uint64_t checksum = 0;
      decode_once(s, checksum, copy);  // warm up
      std::size_t reps = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double elapsed = 0;
      do {
        if (decode_once(s, checksum, copy) != s.frames) return 2;
        ++reps;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (elapsed < seconds);
      const double mbps = static_cast<double>(s.bytes.size()) * static_cast<double>(reps) / elapsed / 1e6;
      const double fps = static_cast<double>(s.frames) * static_cast<double>(reps) / elapsed;
      if (json) {
        std::printf("%s{\"payload\":%zu,\"mode\":\"%s\",\"mbps\":%.1f,\"framesPerSec\":%.0f,\"bytes\":%zu,\"reps\":%zu,\"checksum\":%llu}",
                    first ? "" : ",", payload, mode, mbps, fps, s.bytes.size(), reps, static_cast<unsigned long long>(checksum));
      } else {
        std::printf("%-10zu %-6s %12.1f %14.0f %10zu\n", payload, mode, mbps, fps, s.chunks.size());
      }
      first = false;
    }
  }
  if (json) std::printf("]\n");
  return 0;
}
