// The framing codec: see framing.h and reference/src/framing/FRAMING.md.
#include "framing.h"

#include <zlib.h>

#include <climits>
#include <stdexcept>

namespace cpspec::framing {

const char* error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::none: return "none";
    case ErrorCode::size_too_small: return "size-too-small";
    case ErrorCode::size_too_large: return "size-too-large";
    case ErrorCode::unknown_type: return "unknown-type";
    case ErrorCode::wrong_player: return "wrong-player";
    case ErrorCode::truncated: return "truncated";
    case ErrorCode::closed: return "closed";
    case ErrorCode::field_out_of_range: return "field-out-of-range";
    case ErrorCode::payload_too_large: return "payload-too-large";
    case ErrorCode::write_zero: return "write-zero";
    case ErrorCode::write_invalid: return "write-invalid";
    case ErrorCode::batch_truncated: return "batch-truncated";
    case ErrorCode::batch_bad_flags: return "batch-bad-flags";
    case ErrorCode::batch_too_many: return "batch-too-many";
    case ErrorCode::batch_too_large: return "batch-too-large";
    case ErrorCode::batch_corrupt: return "batch-corrupt";
    case ErrorCode::batch_size_mismatch: return "batch-size-mismatch";
    case ErrorCode::batch_count_mismatch: return "batch-count-mismatch";
    case ErrorCode::batch_frame_truncated: return "batch-frame-truncated";
    case ErrorCode::batch_nested: return "batch-nested";
    case ErrorCode::batch_trailing_bytes: return "batch-trailing-bytes";
  }
  return "unknown";
}

std::string Error::message() const {
  std::string m = error_name(code);
  m += " at offset " + std::to_string(offset);
  if (has & kSize) m += ", size " + std::to_string(size);
  if (has & kMaxSize) m += ", limit " + std::to_string(max_size);
  if (has & kType) m += ", type " + std::to_string(type);
  if (has & kDangling) m += ", " + std::to_string(dangling) + " bytes dangling";
  if (has & kPlayerId) m += ", player id " + std::to_string(player_id);
  if (has & kExpected) m += " (expected " + std::to_string(expected) + ")";
  if (has & kFlags) m += ", flags " + std::to_string(flags);
  if (has & kCount) m += ", count " + std::to_string(count);
  if (has & kMaxCount) m += ", count limit " + std::to_string(max_count);
  if ((has & kField) && field != nullptr) m += ", field " + std::string(field);
  if (has & kIndex) m += ", frame #" + std::to_string(index);
  return m;
}

namespace {

Error make(ErrorCode code, std::uint64_t offset) {
  Error e;
  e.code = code;
  e.offset = offset;
  return e;
}

}  // namespace

Error make_size_error(ErrorCode code, std::uint64_t offset, std::size_t size, std::uint32_t max_size) {
  Error e = make(code, offset);
  e.has = kSize;
  e.size = size;
  if (code == ErrorCode::size_too_large) {
    e.has |= kMaxSize;
    e.max_size = max_size;
  }
  return e;
}

Error make_type_error(ErrorCode code, std::uint64_t offset, std::uint16_t type) {
  Error e = make(code, offset);
  e.has = kType;
  e.type = type;
  return e;
}

Error make_player_error(std::uint64_t offset, std::uint32_t found, std::uint32_t expected) {
  Error e = make(ErrorCode::wrong_player, offset);
  e.has = kPlayerId | kExpected;
  e.player_id = found;
  e.expected = expected;
  return e;
}

// ---------------------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------------------

Decoder::Decoder(DecoderOptions options)
    : max_size_(options.max_size),
      types_(std::move(options.types)),
      check_player_(options.player_id.has_value()),
      player_(options.player_id.value_or(0)),
      discard_(options.discard_too_large) {
  if (max_size_ < kHeaderSize || max_size_ > kMaxFrameSize) throw std::invalid_argument("max_size must be in 12..65535");
}

bool Decoder::set_max_size(std::uint32_t n) {
  if (n < kHeaderSize || n > kMaxFrameSize) return false;
  max_size_ = n;
  return true;
}

void Decoder::close_at(std::uint64_t at) {
  closed_ = true;
  closed_at_ = at;
  pos_ = at;
  have_ = 0;
  skipping_ = false;
  buf_.clear();
  buf_.shrink_to_fit();
}

Error Decoder::fail(Error e) {
  close_at(e.offset);
  return e;
}

bool Decoder::header_progress(std::size_t before, FeedResult& result) {
  if (before < 2 && have_ >= 2) {
    size_ = load_u16(hdr_);
    if (size_ < kHeaderSize) {
      result.error = fail(make_size_error(ErrorCode::size_too_small, start_, size_, max_size_));
      return false;
    }
    if (size_ > max_size_) {
      Error e = make_size_error(ErrorCode::size_too_large, start_, size_, max_size_);
      if (!discard_) {
        result.error = fail(e);
        return false;
      }
      result.discarded.push_back(e);
      skipping_ = true;  // size_ > max_size_ >= 12 >= have_: bytes remain to skip
      return true;
    }
  }
  if (before < 4 && have_ >= 4) {
    type_ = load_u16(hdr_ + 2);
    if (types_ != nullptr && !types_->has(type_)) {
      result.error = fail(make_type_error(ErrorCode::unknown_type, start_, type_));
      return false;
    }
  }
  if (have_ == kHeaderSize) {
    sequence_ = load_u32(hdr_ + 4);
    const std::uint32_t player = load_u32(hdr_ + 8);
    if (check_player_ && player != player_) {
      result.error = fail(make_player_error(start_, player, player_));
      return false;
    }
    player_id_ = player;
    buf_.resize(size_ - kHeaderSize);
  }
  return true;
}

FeedResult Decoder::feed(const std::uint8_t* data, std::size_t n, const std::function<void(const FrameView&)>& on_frame) {
  return feed_with(data, n, on_frame);
}

FeedResult Decoder::feed(const std::uint8_t* data, std::size_t n, std::vector<Frame>& out) {
  return feed_with(data, n, [&out](const FrameView& v) { out.push_back(v.to_frame()); });
}

Error Decoder::end() {
  if (closed_) return make(ErrorCode::closed, closed_at_);
  if (have_ > 0) {
    Error e = make(ErrorCode::truncated, start_);
    e.has = kDangling;
    e.dangling = have_;
    close_at(start_);
    return e;
  }
  close_at(pos_);
  return Error{};
}

// ---------------------------------------------------------------------------------------------------------
// Encoding and writing
// ---------------------------------------------------------------------------------------------------------

void write_header(std::uint8_t* out, std::uint16_t size, std::uint16_t type, std::uint32_t sequence, std::uint32_t player_id) {
  out[0] = static_cast<std::uint8_t>(size);
  out[1] = static_cast<std::uint8_t>(size >> 8);
  out[2] = static_cast<std::uint8_t>(type);
  out[3] = static_cast<std::uint8_t>(type >> 8);
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<std::uint8_t>(sequence >> (8 * i));
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<std::uint8_t>(player_id >> (8 * i));
}

Error check_frame(const Frame& f, std::size_t index, std::uint64_t offset, std::uint32_t max_size) {
  const std::uint64_t size = kHeaderSize + static_cast<std::uint64_t>(f.payload.size());
  if (size > max_size) {
    Error e = make(ErrorCode::payload_too_large, offset);
    e.has = kSize | kMaxSize | kIndex;
    e.size = size;
    e.max_size = max_size;
    e.index = index;
    return e;
  }
  return Error{};
}

namespace {

std::uint64_t frames_size(const std::vector<Frame>& frames, std::uint32_t max_size, Error& err, bool reject_batches) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    err = check_frame(frames[i], i, total, max_size);
    if (err) return 0;
    if (reject_batches && frames[i].type == kBatchType) {
      err = make_type_error(ErrorCode::batch_nested, total, kBatchType);
      err.has |= kIndex;
      err.index = i;
      return 0;
    }
    total += kHeaderSize + frames[i].payload.size();
  }
  return total;
}

void append_frames(const std::vector<Frame>& frames, std::uint8_t* out) {
  for (const Frame& f : frames) {
    const std::size_t size = kHeaderSize + f.payload.size();
    write_header(out, static_cast<std::uint16_t>(size), f.type, f.sequence, f.player_id);
    if (!f.payload.empty()) std::memcpy(out + kHeaderSize, f.payload.data(), f.payload.size());
    out += size;
  }
}

}  // namespace

Error encode(const std::vector<Frame>& frames, std::vector<std::uint8_t>& out, std::uint32_t max_size) {
  if (max_size < kHeaderSize || max_size > kMaxFrameSize) {
    Error e = make(ErrorCode::field_out_of_range, 0);
    e.has = kField;
    e.field = "maxSize";
    return e;
  }
  Error err;
  const std::uint64_t total = frames_size(frames, max_size, err, false);
  if (err) return err;
  const std::size_t at = out.size();
  out.resize(at + total);
  append_frames(frames, out.data() + at);
  return Error{};
}

WriteStatus write_all(const Writer& w, const std::uint8_t* data, std::size_t n, std::size_t& offset, Error& err) {
  while (offset < n) {
    const std::ptrdiff_t r = w(data + offset, n - offset);
    if (r == kWouldBlock) return WriteStatus::again;
    if (r == 0) {
      err = make(ErrorCode::write_zero, offset);
      return WriteStatus::error;
    }
    if (r < 0 || static_cast<std::size_t>(r) > n - offset) {
      err = make(ErrorCode::write_invalid, offset);
      return WriteStatus::error;
    }
    offset += static_cast<std::size_t>(r);
  }
  return WriteStatus::done;
}

ScriptedWrite write_all_scripted(const std::uint8_t* data, std::size_t n, const std::vector<std::ptrdiff_t>& script) {
  ScriptedWrite r;
  std::size_t next = 0;
  Writer w = [&](const std::uint8_t* d, std::size_t len) -> std::ptrdiff_t {
    if (next >= script.size()) return kWouldBlock;  // script exhausted: the writer stays blocked
    std::ptrdiff_t k = script[next++];
    if (k == kWouldBlock || k == 0) return k;
    if (static_cast<std::size_t>(k) > len) k = static_cast<std::ptrdiff_t>(len);
    r.written.insert(r.written.end(), d, d + k);
    return k;
  };
  r.status = write_all(w, data, n, r.offset, r.error);
  while (r.status == WriteStatus::again && next < script.size()) {
    ++r.resumes;
    r.status = write_all(w, data, n, r.offset, r.error);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------------------

Error encode_batch(const std::vector<Frame>& frames, const BatchEncodeOptions& options, std::vector<std::uint8_t>& out) {
  if (options.level < -1 || options.level > 9) {
    Error e = make(ErrorCode::field_out_of_range, 0);
    e.has = kField;
    e.field = "level";
    return e;
  }
  if (frames.size() > 0xffff) {
    Error e = make(ErrorCode::batch_too_many, 1);
    e.has = kCount | kMaxCount;
    e.count = static_cast<std::uint32_t>(std::min<std::size_t>(frames.size(), UINT32_MAX));
    e.max_count = 0xffff;
    return e;
  }
  Error err;
  const std::uint64_t total = frames_size(frames, kMaxFrameSize, err, true);
  if (err) return err;

  std::vector<std::uint8_t> payload(kBatchHeaderSize);
  payload[0] = options.compress ? kBatchFlagCompressed : 0;
  payload[1] = static_cast<std::uint8_t>(frames.size());
  payload[2] = static_cast<std::uint8_t>(frames.size() >> 8);
  for (int i = 0; i < 4; ++i) payload[3 + i] = static_cast<std::uint8_t>(total >> (8 * i));
  if (options.compress) {
    std::vector<std::uint8_t> raw(total);
    append_frames(frames, raw.data());
    uLongf bound = compressBound(static_cast<uLong>(total));
    payload.resize(kBatchHeaderSize + bound);
    const int rc = compress2(payload.data() + kBatchHeaderSize, &bound, raw.data(), static_cast<uLong>(total), options.level);
    if (rc != Z_OK) throw std::runtime_error("zlib compress2 failed");
    payload.resize(kBatchHeaderSize + bound);
  } else {
    payload.resize(kBatchHeaderSize + total);
    append_frames(frames, payload.data() + kBatchHeaderSize);
  }
  if (kHeaderSize + payload.size() > kMaxFrameSize) {
    Error e = make(ErrorCode::payload_too_large, 0);
    e.has = kSize | kMaxSize;
    e.size = kHeaderSize + payload.size();
    e.max_size = kMaxFrameSize;
    return e;
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return Error{};
}

namespace {

Error size_mismatch(std::uint32_t declared) {
  Error e = make(ErrorCode::batch_size_mismatch, kBatchHeaderSize);
  e.has = kSize;
  e.size = declared;
  return e;
}

// Inflates `packed` in steps of `step` output bytes with Z_FINISH, exactly as Node's zlib.inflateSync with
// { chunkSize: step, maxOutputLength: cap } does, so that both codecs report the same error for every input:
// a zlib error in a step is 'batch-corrupt' (even if the step also outgrew the cap); more than `cap` bytes
// out is 'batch-size-mismatch' and stops at once (at most cap + step bytes are ever produced).
Error inflate_bounded(const std::uint8_t* packed, std::size_t n, std::uint32_t original, std::vector<std::uint8_t>& body,
                      std::uint64_t& produced) {
  const std::size_t step = std::min<std::size_t>(std::max<std::size_t>(std::size_t{original} + 1, kInflateStepMin), kInflateStepMax);
  const std::uint64_t cap = std::max<std::uint64_t>(original, 1);
  produced = 0;
  if (n > UINT_MAX) return make(ErrorCode::batch_corrupt, kBatchHeaderSize);
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw std::runtime_error("zlib inflateInit failed");
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  zs.next_in = const_cast<Bytef*>(packed);
  zs.avail_in = static_cast<uInt>(n);
  for (;;) {
    body.resize(produced + step);
    zs.next_out = body.data() + produced;
    zs.avail_out = static_cast<uInt>(step);
    const int rc = inflate(&zs, Z_FINISH);
    const bool ok = rc == Z_STREAM_END || ((rc == Z_OK || rc == Z_BUF_ERROR) && zs.avail_out == 0);
    if (!ok) return make(ErrorCode::batch_corrupt, kBatchHeaderSize);
    produced += step - zs.avail_out;
    if (produced > cap) return size_mismatch(original);
    if (zs.avail_out != 0) break;
  }
  body.resize(produced);
  if (zs.avail_in > 0) return make(ErrorCode::batch_corrupt, kBatchHeaderSize + zs.total_in);
  if (produced != original) return size_mismatch(original);
  return Error{};
}

}  // namespace

Error decode_batch(const std::uint8_t* payload, std::size_t n, const BatchDecodeOptions& options, std::vector<Frame>& out,
                   std::uint64_t* inflated) {
  out.clear();
  if (inflated != nullptr) *inflated = 0;
  if (n < kBatchHeaderSize) {
    Error e = make(ErrorCode::batch_truncated, 0);
    e.has = kSize;
    e.size = n;
    return e;
  }
  const std::uint8_t flags = payload[0];
  if ((flags & ~kBatchFlagCompressed) != 0) {
    Error e = make(ErrorCode::batch_bad_flags, 0);
    e.has = kFlags;
    e.flags = flags;
    return e;
  }
  const std::uint32_t count = load_u16(payload + 1);
  if (count > options.max_count) {
    Error e = make(ErrorCode::batch_too_many, 1);
    e.has = kCount | kMaxCount;
    e.count = count;
    e.max_count = options.max_count;
    return e;
  }
  const std::uint32_t original = load_u32(payload + 3);
  if (original > options.max_decompressed) {
    Error e = make(ErrorCode::batch_too_large, 3);
    e.has = kSize | kMaxSize;
    e.size = original;
    e.max_size = options.max_decompressed;
    return e;
  }

  const std::uint8_t* packed = payload + kBatchHeaderSize;
  const std::size_t packed_len = n - kBatchHeaderSize;
  std::vector<std::uint8_t> inflated_body;
  const std::uint8_t* body = packed;
  std::size_t body_len = packed_len;
  if ((flags & kBatchFlagCompressed) == 0) {
    if (packed_len != original) return size_mismatch(original);
  } else {
    std::uint64_t produced = 0;
    Error e = inflate_bounded(packed, packed_len, original, inflated_body, produced);
    if (inflated != nullptr) *inflated = produced;
    if (e) return e;
    body = inflated_body.data();
    body_len = inflated_body.size();
  }

  std::vector<Frame> frames;
  frames.reserve(count);
  std::size_t at = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::size_t rem = body_len - at;
    if (rem == 0) {
      Error e = make(ErrorCode::batch_count_mismatch, at);
      e.has = kCount;
      e.count = count;
      return e;
    }
    if (rem < kHeaderSize) return make(ErrorCode::batch_frame_truncated, at);
    const std::size_t size = load_u16(body + at);
    if (size < kHeaderSize) return make_size_error(ErrorCode::size_too_small, at, size, 0);
    if (size > rem) {
      Error e = make(ErrorCode::batch_frame_truncated, at);
      e.has = kSize;
      e.size = size;
      return e;
    }
    const std::uint16_t type = load_u16(body + at + 2);
    if (type == kBatchType) return make_type_error(ErrorCode::batch_nested, at, type);
    if (options.types != nullptr && !options.types->has(type)) return make_type_error(ErrorCode::unknown_type, at, type);
    const std::uint8_t* p = body + at + kHeaderSize;
    frames.push_back(Frame{type, load_u32(body + at + 4), load_u32(body + at + 8), std::vector<std::uint8_t>(p, p + (size - kHeaderSize))});
    at += size;
  }
  if (at < body_len) return make(ErrorCode::batch_trailing_bytes, at);
  out = std::move(frames);
  return Error{};
}

}  // namespace cpspec::framing
