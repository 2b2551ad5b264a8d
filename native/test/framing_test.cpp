// Tests of the framing codec (native/framing), without Node, so they run under ASan+UBSan.
// Usage: cpspec-framing-test [name-substring]
// Prints one line per test and `N passed, M failed` last; exits non-zero when a check fails.
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "framing.h"
#include "check.h"

using namespace cpspec::framing;
using Bytes = std::vector<std::uint8_t>;

namespace {




#define CHECK_CODE(err, c)                                                                                   \
  do {                                                                                                       \
    const char* got_ = error_name((err).code);                                                               \
    if (std::strcmp(got_, (c)) != 0) {                                                                       \
      std::fprintf(stderr, "  FAIL %s:%d [%s]: code %s, expected %s\n", __FILE__, __LINE__, cpspec::check::current.c_str(), \
                   got_, (c));                                                                               \
      ++cpspec::check::failed_checks;                                                                                     \
    }                                                                                                        \
  } while (0)

Frame F(std::uint16_t type, std::uint32_t seq, std::uint32_t player, std::size_t len, std::uint8_t fill = 0) {
  Frame f{type, seq, player, Bytes(len)};
  for (std::size_t i = 0; i < len; ++i) f.payload[i] = static_cast<std::uint8_t>(fill + i);
  return f;
}

Bytes Enc(const std::vector<Frame>& frames) {
  Bytes out;
  Error e = encode(frames, out);
  CHECK(!e);
  return out;
}

Bytes Header(std::uint16_t size, std::uint16_t type = 1, std::uint32_t seq = 0, std::uint32_t player = 0) {
  Bytes h(kHeaderSize);
  write_header(h.data(), size, type, seq, player);
  return h;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Outcome {
  std::vector<Frame> frames;
  std::vector<Error> discarded;
  Error error;  // first fatal error (from a feed or from end)
  std::size_t error_feed = 0;
};

// Feeds `bytes` in the given chunk sizes (the rest in one chunk), then calls end().
Outcome Run(Decoder& d, const Bytes& bytes, const std::vector<std::size_t>& chunks) {
  Outcome o;
  std::size_t at = 0;
  std::size_t k = 0;
  while (at < bytes.size()) {
    std::size_t n = k < chunks.size() ? std::min(chunks[k], bytes.size() - at) : bytes.size() - at;
    ++k;
    FeedResult r = d.feed(bytes.data() + at, n, o.frames);
    o.discarded.insert(o.discarded.end(), r.discarded.begin(), r.discarded.end());
    at += n;
    if (r.error) {
      o.error = r.error;
      o.error_feed = k;
      return o;
    }
  }
  o.error = d.end();
  return o;
}

Outcome RunAll(const Bytes& bytes, std::vector<std::size_t> chunks = {}, DecoderOptions opt = {}) {
  Decoder d(opt);
  return Run(d, bytes, chunks);
}

std::vector<std::size_t> Ones(std::size_t n) { return std::vector<std::size_t>(n, 1); }

bool SameError(const Error& a, const Error& b) {
  return a.code == b.code && a.offset == b.offset && a.has == b.has && a.size == b.size && a.max_size == b.max_size &&
         a.type == b.type && a.dangling == b.dangling && a.player_id == b.player_id && a.expected == b.expected;
}

struct Test {
  const char* name;
  void (*fn)();
};

// ---------------------------------------------------------------------------------------------------------

void test_header_layout() {
  Bytes b = Enc({Frame{0x0201, 0x06050403u, 0x0a090807u, Bytes{0xee}}});
  const Bytes want = {13, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0xee};
  CHECK(b == want);
}

void test_roundtrip_one_feed() {
  std::vector<Frame> frames = {F(1, 0, 7, 0), F(2, 1, 7, 5), F(65535, 0xffffffffu, 0xffffffffu, 300)};
  Outcome o = RunAll(Enc(frames));
  CHECK(!o.error);
  CHECK(o.frames == frames);
}

void test_byte_at_a_time() {
  std::vector<Frame> frames = {F(1, 0, 7, 0), F(2, 1, 7, 5), F(3, 2, 7, 40), F(4, 3, 7, 0)};
  Bytes b = Enc(frames);
  Outcome o = RunAll(b, Ones(b.size()));
  CHECK(!o.error);
  CHECK(o.frames == frames);
}

void test_header_only_frame() {
  Outcome o = RunAll(Header(12, 9, 1, 2));
  CHECK(!o.error);
  CHECK_EQ(o.frames.size(), 1u);
  if (!o.frames.empty()) {
    CHECK_EQ(o.frames[0].type, 9);
    CHECK(o.frames[0].payload.empty());
  }
}

void test_random_chunking() {
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 200; ++iter) {
    std::vector<Frame> frames;
    const int n = static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) frames.push_back(F(static_cast<std::uint16_t>(rng()), rng(), rng(), rng() % 200, static_cast<std::uint8_t>(rng())));
    Bytes b = Enc(frames);
    std::vector<std::size_t> chunks;
    for (std::size_t total = 0; total < b.size();) {
      std::size_t c = 1 + rng() % 50;
      chunks.push_back(c);
      total += c;
    }
    Outcome o = RunAll(b, chunks);
    CHECK(!o.error);
    CHECK(o.frames == frames);
  }
}

void test_views_point_into_the_input() {
  Bytes b = Enc({F(1, 0, 0, 10), F(2, 0, 0, 10)});
  Decoder d;
  std::vector<const std::uint8_t*> seen;
  d.feed(b.data(), b.size(), [&](const FrameView& v) { seen.push_back(v.data); });
  CHECK_EQ(seen.size(), 2u);
  if (seen.size() == 2) {
    CHECK(seen[0] == b.data() + 12);
    CHECK(seen[1] == b.data() + 22 + 12);
  }
}

void test_size_too_small() {
  for (std::uint16_t s = 0; s < 12; ++s) {
    Bytes good = Enc({F(1, 0, 0, 3)});
    Bytes b = Cat({good, Header(s), Bytes(20, 0)});
    Decoder d;
    std::vector<Frame> out;
    FeedResult r = d.feed(b.data(), b.size(), out);
    CHECK_CODE(r.error, "size-too-small");
    CHECK_EQ(r.error.offset, good.size());
    CHECK_EQ(r.error.size, s);
    CHECK_EQ(out.size(), 1u);  // the good frame before the error is kept
    CHECK(d.closed());
    FeedResult again = d.feed(b.data(), 1, out);
    CHECK_CODE(again.error, "closed");
    CHECK_EQ(again.error.offset, good.size());
    CHECK_CODE(d.end(), "closed");
  }
}

void test_size_checked_as_soon_as_two_bytes_arrive() {
  Bytes b = Header(5);
  Decoder d;
  std::vector<Frame> out;
  FeedResult r = d.feed(b.data(), 1, out);
  CHECK(!r.error);
  r = d.feed(b.data() + 1, 1, out);
  CHECK_CODE(r.error, "size-too-small");
  CHECK_EQ(r.error.offset, 0u);
}

void test_size_too_large_and_limit_changes() {
  DecoderOptions opt;
  opt.max_size = 100;
  Bytes b = Enc({F(1, 0, 0, 88), F(1, 1, 0, 89)});  // 100 bytes, then 101
  Outcome o = RunAll(b, {}, opt);
  CHECK_EQ(o.frames.size(), 1u);
  CHECK_CODE(o.error, "size-too-large");
  CHECK_EQ(o.error.offset, 100u);
  CHECK_EQ(o.error.size, 101u);
  CHECK_EQ(o.error.max_size, 100u);

  // Raising the limit between frames lets the second one through.
  Decoder d(opt);
  std::vector<Frame> out;
  FeedResult r = d.feed(b.data(), 100, out);
  CHECK(!r.error);
  CHECK(d.set_max_size(200));
  r = d.feed(b.data() + 100, b.size() - 100, out);
  CHECK(!r.error);
  CHECK_EQ(out.size(), 2u);

  // After one byte of the size field the new limit still applies; after two it does not.
  Decoder d2(opt);
  out.clear();
  d2.feed(b.data(), 101, out);  // first frame + 1 byte of the second
  d2.set_max_size(200);
  r = d2.feed(b.data() + 101, b.size() - 101, out);
  CHECK(!r.error);
  CHECK_EQ(out.size(), 2u);
  Decoder d3;
  out.clear();
  d3.feed(b.data(), 102, out);  // size field of the second frame read under 65535
  CHECK(d3.set_max_size(12));
  r = d3.feed(b.data() + 102, b.size() - 102, out);
  CHECK(!r.error);
  CHECK_EQ(out.size(), 2u);
  CHECK(!d3.set_max_size(11));
  CHECK(!d3.set_max_size(65536));
}

void test_discard_too_large_recovers() {
  DecoderOptions opt;
  opt.max_size = 50;
  opt.discard_too_large = true;
  std::vector<Frame> frames = {F(1, 0, 0, 10), F(2, 1, 0, 100), F(3, 2, 0, 5)};
  Bytes b = Enc(frames);
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{13}, b.size()}) {
    std::vector<std::size_t> chunks(b.size() / chunk + 1, chunk);
    Outcome o = RunAll(b, chunks, opt);
    CHECK(!o.error);
    CHECK_EQ(o.frames.size(), 2u);
    if (o.frames.size() == 2) {
      CHECK(o.frames[0] == frames[0]);
      CHECK(o.frames[1] == frames[2]);
    }
    CHECK_EQ(o.discarded.size(), 1u);
    if (!o.discarded.empty()) {
      CHECK_CODE(o.discarded[0], "size-too-large");
      CHECK_EQ(o.discarded[0].offset, 22u);
    }
  }
  // Truncated inside a skipped frame.
  Decoder d(opt);
  std::vector<Frame> out;
  d.feed(b.data(), 40, out);
  CHECK_EQ(d.buffered(), 0u);
  Error e = d.end();
  CHECK_CODE(e, "truncated");
  CHECK_EQ(e.offset, 22u);
  CHECK_EQ(e.dangling, 18u);
}

void test_unknown_type() {
  DecoderOptions opt;
  opt.types = std::make_shared<TypeSet>(std::vector<std::uint16_t>{1, 2});
  Bytes b = Enc({F(1, 0, 0, 1), F(2, 0, 0, 1), F(3, 0, 0, 1)});
  Outcome o = RunAll(b, {}, opt);
  CHECK_EQ(o.frames.size(), 2u);
  CHECK_CODE(o.error, "unknown-type");
  CHECK_EQ(o.error.offset, 26u);
  CHECK_EQ(o.error.type, 3u);
  // Detected once 4 bytes of the header are in, before the rest.
  Decoder d(opt);
  std::vector<Frame> out;
  FeedResult r = d.feed(b.data(), 30, out);
  CHECK_CODE(r.error, "unknown-type");
  // No registry: every type passes.
  CHECK(!RunAll(b).error);
}

void test_wrong_player() {
  DecoderOptions opt;
  opt.player_id = 7;
  Bytes b = Enc({F(1, 0, 7, 1), F(1, 1, 8, 1)});
  Outcome o = RunAll(b, Ones(b.size()), opt);
  CHECK_EQ(o.frames.size(), 1u);
  CHECK_CODE(o.error, "wrong-player");
  CHECK_EQ(o.error.offset, 13u);
  CHECK_EQ(o.error.player_id, 8u);
  CHECK_EQ(o.error.expected, 7u);
}

void test_truncated() {
  Bytes b = Enc({F(1, 0, 0, 4), F(2, 0, 0, 30)});
  for (std::size_t cut = 1; cut < b.size(); ++cut) {
    Bytes part(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut));
    Outcome o = RunAll(part);
    if (cut == 16) {
      CHECK(!o.error);
      continue;
    }
    CHECK_CODE(o.error, "truncated");
    const std::size_t start = cut < 16 ? 0 : 16;
    CHECK_EQ(o.error.offset, start);
    CHECK_EQ(o.error.dangling, cut - start);
    CHECK_EQ(o.frames.size(), cut < 16 ? 0u : 1u);
  }
  Decoder d;
  CHECK(!d.end());
  CHECK_CODE(d.end(), "closed");
}

void test_chunking_invariance_on_garbage() {
  // Any bytes, any chunking: the same frames and the same error as one feed.
  std::mt19937 rng(777);
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b(rng() % 120);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    if (!b.empty() && rng() % 2) b[0] = static_cast<std::uint8_t>(12 + rng() % 40), b.size() > 1 ? void(b[1] = 0) : void();
    DecoderOptions opt;
    opt.max_size = 12 + rng() % 60;
    opt.discard_too_large = rng() % 2;
    if (rng() % 3 == 0) opt.types = std::make_shared<TypeSet>(std::vector<std::uint16_t>{static_cast<std::uint16_t>(b.size() > 3 ? b[2] : 0)});
    Outcome whole = RunAll(b, {}, opt);
    std::vector<std::size_t> chunks;
    for (std::size_t i = 0; i < b.size(); ++i) chunks.push_back(1 + rng() % 7);
    Outcome split = RunAll(b, chunks, opt);
    CHECK(whole.frames == split.frames);
    CHECK(SameError(whole.error, split.error));
    CHECK_EQ(whole.discarded.size(), split.discarded.size());
  }
}

void test_encode_errors() {
  Bytes out;
  Error e = encode({F(1, 0, 0, 3), F(1, 0, 0, 65524)}, out);
  CHECK_CODE(e, "payload-too-large");
  CHECK_EQ(e.index, 1u);
  CHECK_EQ(e.offset, 15u);
  CHECK_EQ(e.size, 65536u);
  CHECK(out.empty());
  CHECK(!encode({F(1, 0, 0, 65523)}, out));
  CHECK_EQ(out.size(), 65535u);
  out.clear();
  e = encode({F(1, 0, 0, 10)}, out, 21);
  CHECK_CODE(e, "payload-too-large");
}

void test_write_all() {
  Bytes data = Enc({F(1, 0, 0, 100)});
  // A writer that takes 7 bytes at a time and would block every third call.
  Bytes sink;
  int calls = 0;
  Writer w = [&](const std::uint8_t* p, std::size_t n) -> std::ptrdiff_t {
    if (++calls % 3 == 0) return kWouldBlock;
    std::size_t k = std::min<std::size_t>(7, n);
    sink.insert(sink.end(), p, p + k);
    return static_cast<std::ptrdiff_t>(k);
  };
  std::size_t offset = 0;
  Error err;
  int blocks = 0;
  for (;;) {
    WriteStatus s = write_all(w, data.data(), data.size(), offset, err);
    if (s == WriteStatus::done) break;
    CHECK(s == WriteStatus::again);
    if (s != WriteStatus::again || ++blocks > 1000) break;
  }
  CHECK(sink == data);
  CHECK(blocks > 0);

  Writer zero = [](const std::uint8_t*, std::size_t) -> std::ptrdiff_t { return 0; };
  offset = 5;
  CHECK(write_all(zero, data.data(), data.size(), offset, err) == WriteStatus::error);
  CHECK_CODE(err, "write-zero");
  CHECK_EQ(err.offset, 5u);
  Writer liar = [](const std::uint8_t*, std::size_t n) -> std::ptrdiff_t { return static_cast<std::ptrdiff_t>(n + 1); };
  offset = 0;
  CHECK(write_all(liar, data.data(), data.size(), offset, err) == WriteStatus::error);
  CHECK_CODE(err, "write-invalid");
}

Bytes BatchPayload(std::uint8_t flags, std::uint16_t count, std::uint32_t original, const Bytes& body) {
  Bytes p(kBatchHeaderSize + body.size());
  p[0] = flags;
  p[1] = static_cast<std::uint8_t>(count);
  p[2] = static_cast<std::uint8_t>(count >> 8);
  for (int i = 0; i < 4; ++i) p[3 + i] = static_cast<std::uint8_t>(original >> (8 * i));
  if (!body.empty()) std::memcpy(p.data() + kBatchHeaderSize, body.data(), body.size());
  return p;
}

Bytes Deflate(const Bytes& raw, int level = 6) {
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  Bytes out(n);
  CHECK_EQ(compress2(out.data(), &n, raw.data(), static_cast<uLong>(raw.size()), level), Z_OK);
  out.resize(n);
  return out;
}

void test_batch_roundtrip() {
  std::vector<Frame> frames;
  for (int i = 0; i < 50; ++i) frames.push_back(F(static_cast<std::uint16_t>(i), static_cast<std::uint32_t>(i), 9, static_cast<std::size_t>(i * 3)));
  for (bool compress : {false, true}) {
    Bytes payload;
    CHECK(!encode_batch(frames, {compress, -1}, payload));
    CHECK_EQ(payload[0], compress ? 1 : 0);
    std::vector<Frame> out;
    Error e = decode_batch(payload.data(), payload.size(), {}, out);
    CHECK(!e);
    CHECK(out == frames);
  }
  Bytes empty;
  CHECK(!encode_batch({}, {}, empty));
  std::vector<Frame> out;
  CHECK(!decode_batch(empty.data(), empty.size(), {}, out));
  CHECK(out.empty());
  Bytes nested;
  CHECK_CODE(encode_batch({F(kBatchType, 0, 0, 1)}, {}, nested), "batch-nested");
  Bytes huge;
  CHECK_CODE(encode_batch({F(1, 0, 0, 65000), F(1, 0, 0, 1000)}, {}, huge), "payload-too-large");
  CHECK(!encode_batch({F(1, 0, 0, 65000), F(1, 0, 0, 1000)}, {true, 9}, huge));  // zeros compress
}

void test_batch_errors() {
  const Bytes body = Enc({F(1, 0, 0, 3), F(2, 0, 0, 0)});  // 15 + 12 = 27 bytes
  std::vector<Frame> out;
  auto dec = [&](const Bytes& p, BatchDecodeOptions o = {}) { return decode_batch(p.data(), p.size(), o, out); };

  CHECK_CODE(dec(Bytes{0, 1, 0}), "batch-truncated");
  CHECK_CODE(dec(BatchPayload(0x02, 2, 27, body)), "batch-bad-flags");
  BatchDecodeOptions few;
  few.max_count = 1;
  Error e = dec(BatchPayload(0, 2, 27, body), few);
  CHECK_CODE(e, "batch-too-many");
  CHECK_EQ(e.offset, 1u);
  BatchDecodeOptions small;
  small.max_decompressed = 26;
  e = dec(BatchPayload(0, 2, 27, body), small);
  CHECK_CODE(e, "batch-too-large");
  CHECK_EQ(e.size, 27u);
  CHECK_CODE(dec(BatchPayload(0, 2, 26, body)), "batch-size-mismatch");
  e = dec(BatchPayload(0, 3, 27, body));
  CHECK_CODE(e, "batch-count-mismatch");
  CHECK_EQ(e.offset, 27u);
  e = dec(BatchPayload(0, 1, 27, body));
  CHECK_CODE(e, "batch-trailing-bytes");
  CHECK_EQ(e.offset, 15u);
  Bytes shortBody(body.begin(), body.end() - 5);
  e = dec(BatchPayload(0, 2, 22, shortBody));
  CHECK_CODE(e, "batch-frame-truncated");
  CHECK_EQ(e.offset, 15u);
  Bytes badSize = body;
  badSize[0] = 5;
  CHECK_CODE(dec(BatchPayload(0, 2, 27, badSize)), "size-too-small");
  Bytes nested = body;
  nested[2] = 0xff;
  nested[3] = 0xff;
  CHECK_CODE(dec(BatchPayload(0, 2, 27, nested)), "batch-nested");
  BatchDecodeOptions typed;
  typed.types = std::make_shared<TypeSet>(std::vector<std::uint16_t>{1});
  e = dec(BatchPayload(0, 2, 27, body), typed);
  CHECK_CODE(e, "unknown-type");
  CHECK_EQ(e.offset, 15u);

  // Compressed: corrupt, truncated, trailing garbage, wrong declared size.
  Bytes z = Deflate(body);
  CHECK(!dec(BatchPayload(1, 2, 27, z)));
  Bytes bad = z;
  bad[bad.size() - 1] ^= 0xff;  // adler32 check
  CHECK_CODE(dec(BatchPayload(1, 2, 27, bad)), "batch-corrupt");
  Bytes cut(z.begin(), z.end() - 2);
  CHECK_CODE(dec(BatchPayload(1, 2, 27, cut)), "batch-corrupt");
  CHECK_CODE(dec(BatchPayload(1, 2, 27, Bytes{})), "batch-corrupt");
  Bytes junk = z;
  junk.push_back(0);
  e = dec(BatchPayload(1, 2, 27, junk));
  CHECK_CODE(e, "batch-corrupt");
  CHECK_EQ(e.offset, kBatchHeaderSize + z.size());
  CHECK_CODE(dec(BatchPayload(1, 2, 28, z)), "batch-size-mismatch");
  CHECK_CODE(dec(BatchPayload(1, 2, 26, z)), "batch-size-mismatch");
}

void test_compression_bomb_is_not_expanded() {
  // 64 MiB of zeros deflate to ~64 KiB: a bomb that fits in one frame.
  const Bytes zeros(64u << 20, 0);
  const Bytes bomb = Deflate(zeros, 9);
  CHECK(bomb.size() + kBatchHeaderSize + kHeaderSize <= kMaxFrameSize);
  std::vector<Frame> out;
  std::uint64_t inflated = 0;
  // Declared honestly: rejected before inflating anything.
  Error e = decode_batch(BatchPayload(1, 1, static_cast<std::uint32_t>(zeros.size()), bomb).data(),
                         bomb.size() + kBatchHeaderSize, {}, out, &inflated);
  CHECK_CODE(e, "batch-too-large");
  CHECK_EQ(inflated, 0u);
  // Declared small (a lie): inflation stops just past the declared size.
  for (std::uint32_t declared : {0u, 100u, 5000u, 1u << 20}) {
    Bytes p = BatchPayload(1, 1, declared, bomb);
    e = decode_batch(p.data(), p.size(), {}, out, &inflated);
    CHECK_CODE(e, "batch-size-mismatch");
    CHECK(inflated > declared);
    CHECK(inflated <= std::max<std::uint64_t>(declared, 1) + kInflateStepMax);
  }
}

void test_sequence_wraparound() {
  CHECK(seq_after(0, 0xffffffffu));
  CHECK(seq_before(0xffffffffu, 0));
  CHECK_EQ(seq_next(0xffffffffu), 0u);
  CHECK(!seq_after(5, 5));
  CHECK(seq_after(0x7fffffffu, 0));
  CHECK(!seq_after(0x80000000u, 0));
  CHECK(!seq_after(0, 0x80000000u));
  CHECK_EQ(seq_diff(2, 0xfffffffeu), 4);
  // A stream whose sequence numbers wrap decodes unchanged.
  std::vector<Frame> frames;
  std::uint32_t s = 0xfffffffdu;
  for (int i = 0; i < 6; ++i, s = seq_next(s)) frames.push_back(F(1, s, 0, 1));
  Outcome o = RunAll(Enc(frames), {5, 5, 5});
  CHECK(o.frames == frames);
  for (std::size_t i = 1; i < o.frames.size(); ++i) CHECK(seq_after(o.frames[i].sequence, o.frames[i - 1].sequence));
}

const Test kTests[] = {
    {"header_layout", test_header_layout},
    {"roundtrip_one_feed", test_roundtrip_one_feed},
    {"byte_at_a_time", test_byte_at_a_time},
    {"header_only_frame", test_header_only_frame},
    {"random_chunking", test_random_chunking},
    {"views_point_into_the_input", test_views_point_into_the_input},
    {"size_too_small", test_size_too_small},
    {"size_checked_as_soon_as_two_bytes_arrive", test_size_checked_as_soon_as_two_bytes_arrive},
    {"size_too_large_and_limit_changes", test_size_too_large_and_limit_changes},
    {"discard_too_large_recovers", test_discard_too_large_recovers},
    {"unknown_type", test_unknown_type},
    {"wrong_player", test_wrong_player},
    {"truncated", test_truncated},
    {"chunking_invariance_on_garbage", test_chunking_invariance_on_garbage},
    {"encode_errors", test_encode_errors},
    {"write_all", test_write_all},
    {"batch_roundtrip", test_batch_roundtrip},
    {"batch_errors", test_batch_errors},
    {"compression_bomb_is_not_expanded", test_compression_bomb_is_not_expanded},
    {"sequence_wraparound", test_sequence_wraparound},
};

}  // namespace

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0;
  int failed = 0;
  for (const Test& t : kTests) {
    if (filter != nullptr && std::strstr(t.name, filter) == nullptr) continue;
    cpspec::check::current = t.name;
    const int before = cpspec::check::failed_checks;
    t.fn();
    const bool ok = cpspec::check::failed_checks == before;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", t.name);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
