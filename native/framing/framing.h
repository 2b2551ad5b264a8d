// The packet framing codec (C++): the seeds' game packet (12-byte little-endian header: u16 size including
// the header, u16 type, u32 sequence, u32 player id; then the payload), a streaming decoder, an encoder, a
// resumable writer loop, aggregated (optionally zlib-compressed) batches with a bounded inflate, and u32
// sequence arithmetic. reference/src/framing/ is the TypeScript twin; reference/src/framing/FRAMING.md is
// the specification both follow (same frames, same errors, same offsets for every input).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cpspec::framing {

constexpr std::size_t kHeaderSize = 12;
constexpr std::uint32_t kMaxFrameSize = 0xffff;
constexpr std::uint16_t kBatchType = 0xffff;
constexpr std::size_t kBatchHeaderSize = 7;
constexpr std::uint8_t kBatchFlagCompressed = 0x01;
constexpr std::uint64_t kDefaultMaxDecompressed = 1u << 20;
constexpr std::size_t kInflateStepMin = 64;
constexpr std::size_t kInflateStepMax = 16384;

enum class ErrorCode : std::uint8_t {
  none = 0,
  // stream decoder
  size_too_small,
  size_too_large,
  unknown_type,
  wrong_player,
  truncated,
  closed,
  // encoder and writer
  field_out_of_range,
  payload_too_large,
  write_zero,
  write_invalid,
  // batches
  batch_truncated,
  batch_bad_flags,
  batch_too_many,
  batch_too_large,
  batch_corrupt,
  batch_size_mismatch,
  batch_count_mismatch,
  batch_frame_truncated,
  batch_nested,
  batch_trailing_bytes,
};

/** The wire name of a code ("size-too-small", ...), as in FRAMING.md and the TypeScript codec. */
const char* error_name(ErrorCode code);

/** Which optional details an error carries (bit set). */
enum Detail : std::uint16_t {
  kSize = 1 << 0,
  kMaxSize = 1 << 1,
  kType = 1 << 2,
  kDangling = 1 << 3,
  kPlayerId = 1 << 4,
  kExpected = 1 << 5,
  kFlags = 1 << 6,
  kCount = 1 << 7,
  kMaxCount = 1 << 8,
  kField = 1 << 9,
  kIndex = 1 << 10,
};

/** A typed error. `offset`'s base depends on the code (FRAMING.md, "Errors"). */
struct Error {
  ErrorCode code = ErrorCode::none;
  std::uint64_t offset = 0;
  std::uint16_t has = 0;  // Detail bits: which of the fields below are meaningful
  std::uint64_t size = 0;
  std::uint64_t max_size = 0;
  std::uint32_t type = 0;
  std::uint64_t dangling = 0;
  std::uint32_t player_id = 0;
  std::uint32_t expected = 0;
  std::uint32_t flags = 0;
  std::uint32_t count = 0;
  std::uint32_t max_count = 0;
  const char* field = nullptr;  // static string
  std::uint64_t index = 0;

  explicit operator bool() const { return code != ErrorCode::none; }
  std::string message() const;
};

/**
 * Calls num(name, value) for each numeric detail `e` carries and str(name, text) for `field`, in the order
 * and under the names the JS API uses (code and offset are not included). One list for every binding.
 */
template <class Num, class Str>
void visit_details(const Error& e, Num&& num, Str&& str) {
  if (e.has & kSize) num("size", static_cast<double>(e.size));
  if (e.has & kMaxSize) num("maxSize", static_cast<double>(e.max_size));
  if (e.has & kType) num("type", static_cast<double>(e.type));
  if (e.has & kDangling) num("dangling", static_cast<double>(e.dangling));
  if (e.has & kPlayerId) num("playerId", static_cast<double>(e.player_id));
  if (e.has & kExpected) num("expected", static_cast<double>(e.expected));
  if (e.has & kFlags) num("flags", static_cast<double>(e.flags));
  if (e.has & kCount) num("count", static_cast<double>(e.count));
  if (e.has & kMaxCount) num("maxCount", static_cast<double>(e.max_count));
  if ((e.has & kField) && e.field != nullptr) str("field", e.field);
  if (e.has & kIndex) num("index", static_cast<double>(e.index));
}

/** An owning frame. */
struct Frame {
  std::uint16_t type = 0;
  std::uint32_t sequence = 0;
  std::uint32_t player_id = 0;
  std::vector<std::uint8_t> payload;
  bool operator==(const Frame&) const = default;
};

/** A decoded frame whose payload is borrowed: valid only during the callback that receives it. */
struct FrameView {
  std::uint16_t type;
  std::uint32_t sequence;
  std::uint32_t player_id;
  const std::uint8_t* data;
  std::size_t size;
  Frame to_frame() const { return Frame{type, sequence, player_id, std::vector<std::uint8_t>(data, data + size)}; }
};

/** The allowed frame types: a 65536-bit set, shared (immutable) between decoders. */
class TypeSet {
 public:
  TypeSet() = default;
  explicit TypeSet(const std::vector<std::uint16_t>& types) {
    for (std::uint16_t t : types) add(t);
  }
  void add(std::uint16_t t) { bits_[t >> 6] |= std::uint64_t{1} << (t & 63); }
  bool has(std::uint16_t t) const { return (bits_[t >> 6] >> (t & 63)) & 1; }

 private:
  std::array<std::uint64_t, 1024> bits_{};
};

struct DecoderOptions {
  /** 12..65535 (the constructor clamps nothing: out of range throws std::invalid_argument). */
  std::uint32_t max_size = kMaxFrameSize;
  /** Absent: every type is allowed. */
  std::shared_ptr<const TypeSet> types;
  /** When set, every frame must carry this player id ('wrong-player'). */
  std::optional<std::uint32_t> player_id;
  /** Skip frames above max_size (reported in FeedResult::discarded) instead of closing. */
  bool discard_too_large = false;
};

struct FeedResult {
  /** Fatal error (the decoder is closed); every frame before it was delivered. */
  Error error;
  /** Non-fatal size-too-large errors (discard_too_large). */
  std::vector<Error> discarded;
};

/**
 * The streaming decoder. Not thread-safe (one per stream). Frames wholly inside a fed buffer are delivered
 * as views of it; a frame split across feeds is assembled once into an internal buffer (reused).
 */
class Decoder {
 public:
  explicit Decoder(DecoderOptions options = {});

  /** Calls on_frame(const FrameView&) for each completed frame, in order. */
  FeedResult feed(const std::uint8_t* data, std::size_t n, const std::function<void(const FrameView&)>& on_frame);

  /** Same, templated (inlinable callback: the benchmark path). */
  template <class F>
  FeedResult feed_with(const std::uint8_t* data, std::size_t n, F&& on_frame);

  /** Appends owning copies of the completed frames to `out`. */
  FeedResult feed(const std::uint8_t* data, std::size_t n, std::vector<Frame>& out);

  /** End of stream: none, or 'truncated' (dangling = bytes of the unfinished frame), or 'closed'. Closes. */
  Error end();

  /** 12..65535 (else returns false and changes nothing); applies to frames whose size field is unread. */
  bool set_max_size(std::uint32_t n);
  std::uint32_t max_size() const { return max_size_; }
  bool closed() const { return closed_; }
  /** Bytes consumed (after a fatal error: the offset of the offending header). */
  std::uint64_t offset() const { return pos_; }
  /** Bytes of an unfinished frame held in memory. */
  std::size_t buffered() const { return skipping_ ? 0 : have_; }

 private:
  // Validates the header bytes that just arrived (the frame's first `have_` bytes are in hdr_, `before`
  // of them were there earlier). Returns false on a fatal error (stored in `result`).
  bool header_progress(std::size_t before, FeedResult& result);
  void close_at(std::uint64_t at);
  Error fail(Error e);

  std::uint32_t max_size_;
  std::shared_ptr<const TypeSet> types_;
  bool check_player_;
  std::uint32_t player_;
  bool discard_;

  std::uint64_t pos_ = 0;    // stream offset of the next byte to consume
  std::uint64_t start_ = 0;  // stream offset of the unfinished frame's header
  std::size_t have_ = 0;     // bytes of the unfinished frame received; 0 between frames
  std::size_t size_ = 0;     // its size field (valid once have_ >= 2)
  bool skipping_ = false;
  std::uint8_t hdr_[kHeaderSize] = {};
  std::uint16_t type_ = 0;
  std::uint32_t sequence_ = 0;
  std::uint32_t player_id_ = 0;
  std::vector<std::uint8_t> buf_;  // payload of the unfinished frame (capacity reused)
  bool closed_ = false;
  std::uint64_t closed_at_ = 0;
};

// ---- encoding -------------------------------------------------------------------------------------------

/** Checks a frame (fields are typed, so only the size can be wrong). */
Error check_frame(const Frame& f, std::size_t index, std::uint64_t offset, std::uint32_t max_size);

/** Appends the encoding of `frames` to `out`; on error appends nothing. max_size 12..65535. */
Error encode(const std::vector<Frame>& frames, std::vector<std::uint8_t>& out, std::uint32_t max_size = kMaxFrameSize);

/** Writes one header at `out` (12 bytes). */
void write_header(std::uint8_t* out, std::uint16_t size, std::uint16_t type, std::uint32_t sequence, std::uint32_t player_id);

// ---- writing ---------------------------------------------------------------------------------------------

/** What a writer returns: bytes accepted (1..n), 0 (an error: no progress), or kWouldBlock. */
constexpr std::ptrdiff_t kWouldBlock = -1;
using Writer = std::function<std::ptrdiff_t(const std::uint8_t* data, std::size_t n)>;

enum class WriteStatus { done, again, error };

/**
 * Writes data[offset..n) through `w`, advancing `offset`. done: all written; again: the writer would block
 * (call again with the same offset when it is writable); error: `err` says write-zero or write-invalid.
 */
WriteStatus write_all(const Writer& w, const std::uint8_t* data, std::size_t n, std::size_t& offset, Error& err);

/** The result of write_all_scripted. */
struct ScriptedWrite {
  WriteStatus status = WriteStatus::again;
  std::size_t offset = 0;
  Error error;
  std::vector<std::uint8_t> written;  // what the scripted writer accepted, in order
  std::uint32_t resumes = 0;          // calls of write_all after the first (one per "again" resumed)
};

/**
 * write_all against a scripted writer, resumed after every kWouldBlock while script steps remain: each step
 * is a byte count the writer accepts (capped at what is offered; 0 = an error, no progress) or kWouldBlock.
 * An exhausted script blocks for good. The bindings' writeAll (addon and driver) both run this.
 */
ScriptedWrite write_all_scripted(const std::uint8_t* data, std::size_t n, const std::vector<std::ptrdiff_t>& script);

// ---- batches ---------------------------------------------------------------------------------------------

struct BatchEncodeOptions {
  bool compress = false;
  int level = -1;  // -1 (zlib default) or 0..9
};

struct BatchDecodeOptions {
  std::uint64_t max_decompressed = kDefaultMaxDecompressed;  // 0..2^32-1
  std::uint32_t max_count = 0xffff;                          // 0..65535
  std::shared_ptr<const TypeSet> types;
};

/** Builds a batch payload (send it as the payload of a frame of type kBatchType). */
Error encode_batch(const std::vector<Frame>& frames, const BatchEncodeOptions& options, std::vector<std::uint8_t>& out);

/** Decodes a batch payload; on error `out` is left empty. `inflated` (optional) receives the number of
 * bytes zlib produced, for tests of the decompression bound. */
Error decode_batch(const std::uint8_t* payload, std::size_t n, const BatchDecodeOptions& options, std::vector<Frame>& out,
                   std::uint64_t* inflated = nullptr);

// ---- sequence numbers ------------------------------------------------------------------------------------

constexpr std::uint32_t seq_next(std::uint32_t s) { return s + 1; }
/** The signed distance from b to a, modulo 2^32, as an int32. */
constexpr std::int32_t seq_diff(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b); }
constexpr bool seq_after(std::uint32_t a, std::uint32_t b) { return seq_diff(a, b) > 0; }
constexpr bool seq_before(std::uint32_t a, std::uint32_t b) { return seq_diff(b, a) > 0; }

// ---- inline decoder hot path -----------------------------------------------------------------------------

inline std::uint16_t load_u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
inline std::uint32_t load_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) | (static_cast<std::uint32_t>(p[2]) << 16) |
         (static_cast<std::uint32_t>(p[3]) << 24);
}

Error make_size_error(ErrorCode code, std::uint64_t offset, std::size_t size, std::uint32_t max_size);
Error make_type_error(ErrorCode code, std::uint64_t offset, std::uint16_t type);
Error make_player_error(std::uint64_t offset, std::uint32_t found, std::uint32_t expected);

template <class F>
FeedResult Decoder::feed_with(const std::uint8_t* data, std::size_t n, F&& on_frame) {
  FeedResult result;
  if (closed_) {
    result.error.code = ErrorCode::closed;
    result.error.offset = closed_at_;
    return result;
  }
  const std::uint64_t base = pos_;
  const TypeSet* types = types_.get();
  std::size_t p = 0;
  while (p < n) {
    if (have_ == 0 && n - p >= kHeaderSize) {
      // Fast path: a whole header is in this buffer.
      const std::uint8_t* h = data + p;
      const std::size_t size = load_u16(h);
      if (size < kHeaderSize) {
        result.error = fail(make_size_error(ErrorCode::size_too_small, base + p, size, max_size_));
        return result;
      }
      if (size > max_size_) {
        Error e = make_size_error(ErrorCode::size_too_large, base + p, size, max_size_);
        if (!discard_) {
          result.error = fail(e);
          return result;
        }
        result.discarded.push_back(e);
        if (n - p >= size) {
          p += size;
          continue;
        }
        start_ = base + p;
        size_ = size;
        have_ = n - p;
        skipping_ = true;
        p = n;
        break;
      }
      const std::uint16_t type = load_u16(h + 2);
      if (types != nullptr && !types->has(type)) {
        result.error = fail(make_type_error(ErrorCode::unknown_type, base + p, type));
        return result;
      }
      const std::uint32_t sequence = load_u32(h + 4);
      const std::uint32_t player = load_u32(h + 8);
      if (check_player_ && player != player_) {
        result.error = fail(make_player_error(base + p, player, player_));
        return result;
      }
      if (n - p >= size) {
        on_frame(FrameView{type, sequence, player, h + kHeaderSize, size - kHeaderSize});
        p += size;
        continue;
      }
      start_ = base + p;
      size_ = size;
      type_ = type;
      sequence_ = sequence;
      player_id_ = player;
      buf_.resize(size - kHeaderSize);
      std::memcpy(buf_.data(), h + kHeaderSize, n - p - kHeaderSize);
      have_ = n - p;
      p = n;
      break;
    }

    // Slow path: a frame split across buffers, or fewer than 12 bytes left here.
    if (skipping_) {
      const std::size_t take = std::min(size_ - have_, n - p);
      have_ += take;
      p += take;
      if (have_ == size_) {
        have_ = 0;
        skipping_ = false;
      }
      continue;
    }
    if (have_ < kHeaderSize) {
      if (have_ == 0) start_ = base + p;
      const std::size_t before = have_;
      const std::size_t take = std::min(kHeaderSize - before, n - p);
      std::memcpy(hdr_ + before, data + p, take);
      have_ = before + take;
      p += take;
      if (!header_progress(before, result)) return result;
      if (have_ == kHeaderSize && !skipping_ && size_ == kHeaderSize) {
        on_frame(FrameView{type_, sequence_, player_id_, buf_.data(), 0});
        have_ = 0;
      }
      continue;
    }
    const std::size_t take = std::min(size_ - have_, n - p);
    std::memcpy(buf_.data() + (have_ - kHeaderSize), data + p, take);
    have_ += take;
    p += take;
    if (have_ == size_) {
      have_ = 0;
      on_frame(FrameView{type_, sequence_, player_id_, buf_.data(), size_ - kHeaderSize});
    }
  }
  pos_ = base + n;
  return result;
}

}  // namespace cpspec::framing
