// framing.* methods of the standalone driver: see framing_rpc.h and conformance/PROTOCOL.md ("Framing").
// Everything codec-related is the C++ codec's own (native/framing): this file only moves JSON and base64 in
// and out, checks argument types and ranges, and keeps the decoder handles.
//
// Errors: a wrong JSON type or a missing member is -32602; a value out of range, bytes that are not base64,
// an unknown decoder handle or a frame the encoder refuses is -32000 'invalid' (the runner maps both to
// TargetError 'invalid'). Codec errors while decoding are data ({code, offset, ...details}), not errors.
//
// Part of the driver wherever the codec is built (CMakeLists.txt; the mingw driver has no codec).
#include "framing_rpc.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "framing.h"

namespace cpspec::driver {

namespace {

namespace fr = cpspec::framing;
using cpspec::json::Type;
using cpspec::json::Value;

constexpr std::int64_t kU32Max = 0xFFFFFFFF;
constexpr std::int64_t kMaxSafe = (std::int64_t{1} << 53) - 1;

[[noreturn]] void bad_params(const std::string& what, const std::string& msg) { throw FramingRpcError{true, what + ": " + msg}; }
[[noreturn]] void bad_value(const std::string& what, const std::string& msg) { throw FramingRpcError{false, what + ": " + msg}; }

std::string describe(const Value& v) {
  std::string s = cpspec::json::stringify(v);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

const Value* member(const Value& obj, const std::string& what, const char* name, Type type, bool required) {
  const Value* v = obj.find(name);
  if (v == nullptr) {
    if (required) bad_params(what, std::string("missing '") + name + "'");
    return nullptr;
  }
  if (v->type() != type) {
    bad_params(what, std::string("'") + name + "' must be a " + cpspec::json::type_name(type) + ", got " + cpspec::json::type_name(v->type()));
  }
  return v;
}

std::int64_t integer_in(const Value& v, const std::string& what, const std::string& name, std::int64_t lo, std::int64_t hi) {
  std::int64_t out = 0;
  if (!v.get_integer(out) || out < lo || out > hi) {
    bad_value(what, "'" + name + "' must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + describe(v));
  }
  return out;
}

std::int64_t int_member(const Value& obj, const std::string& what, const char* name, std::int64_t lo, std::int64_t hi) {
  return integer_in(*member(obj, what, name, Type::number, true), what, name, lo, hi);
}

std::int64_t int_member_or(const Value& obj, const std::string& what, const char* name, std::int64_t lo, std::int64_t hi, std::int64_t dflt) {
  const Value* v = member(obj, what, name, Type::number, false);
  return v != nullptr ? integer_in(*v, what, name, lo, hi) : dflt;
}

// ---- base64: the driver's one codec (json.h); bytes travel padded, as every client writes them ----------
using cpspec::json::base64_decode;
using cpspec::json::base64_encode;

bool b64_decode(const std::string& s, std::vector<std::uint8_t>& out) { return s.size() % 4 == 0 && base64_decode(s, out); }
std::string b64_encode(const std::uint8_t* d, std::size_t n) { return base64_encode(d, n); }

std::vector<std::uint8_t> bytes_member(const Value& obj, const std::string& what, const char* name) {
  const Value* v = member(obj, what, name, Type::string, true);
  std::vector<std::uint8_t> out;
  if (!b64_decode(v->as_string(), out)) bad_params(what, std::string("'") + name + "' is not base64: " + describe(*v));
  return out;
}

// ---- values out -------------------------------------------------------------------------------------------

Value fault_json(const fr::Error& e) {
  if (!e) return Value();
  Value o = Value::object({{"code", fr::error_name(e.code)}, {"offset", static_cast<double>(e.offset)}});
  fr::visit_details(e, [&](const char* k, double v) { o.set(k, v); }, [&](const char* k, const char* v) { o.set(k, v); });
  return o;
}

Value frame_json(std::uint16_t type, std::uint32_t seq, std::uint32_t player, const std::uint8_t* p, std::size_t n) {
  return Value::object({{"type", static_cast<unsigned>(type)}, {"sequence", seq}, {"playerId", player}, {"payload", b64_encode(p, n)}});
}

Value bytes_result(const std::vector<std::uint8_t>& b) { return Value::object({{"data", b64_encode(b.data(), b.size())}}); }

// ---- values in --------------------------------------------------------------------------------------------

// A frame list; a field out of range is the encoder's field-out-of-range error (as from the addon), here
// reported as 'invalid' with the codec's message.
std::vector<fr::Frame> frames_member(const Value& params, const std::string& what) {
  const Value& arr = *member(params, what, "frames", Type::array, true);
  std::vector<fr::Frame> frames;
  frames.reserve(arr.size());
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const Value& fv = arr.items()[i];
    const std::string fw = what + ": frames[" + std::to_string(i) + "]";
    if (!fv.is_object()) bad_params(fw, "must be an object, got " + describe(fv));
    auto field = [&](const char* k, std::int64_t hi) -> std::int64_t {
      const Value& x = *member(fv, fw, k, Type::number, true);
      std::int64_t n = 0;
      if (!x.get_integer(n) || n < 0 || n > hi) {
        fr::Error e;
        e.code = fr::ErrorCode::field_out_of_range;
        e.offset = offset;
        e.has = fr::kField | fr::kIndex;
        e.field = k;
        e.index = i;
        bad_value(fw, e.message() + ": '" + k + "' must be an integer in 0.." + std::to_string(hi) + ", got " + describe(x));
      }
      return n;
    };
    fr::Frame f;
    f.type = static_cast<std::uint16_t>(field("type", 0xFFFF));
    f.sequence = static_cast<std::uint32_t>(field("sequence", kU32Max));
    f.player_id = static_cast<std::uint32_t>(field("playerId", kU32Max));
    f.payload = bytes_member(fv, fw, "payload");
    offset += fr::kHeaderSize + f.payload.size();
    frames.push_back(std::move(f));
  }
  return frames;
}

std::shared_ptr<const fr::TypeSet> types_member(const Value& params, const std::string& what) {
  const Value* v = member(params, what, "types", Type::array, false);
  if (v == nullptr) return nullptr;
  auto set = std::make_shared<fr::TypeSet>();
  for (std::size_t i = 0; i < v->size(); ++i) {
    set->add(static_cast<std::uint16_t>(integer_in(v->items()[i], what, "types[" + std::to_string(i) + "]", 0, 0xFFFF)));
  }
  return set;
}

void codec_failed(const std::string& what, const fr::Error& e) { bad_value(what, e.message()); }

}  // namespace

FramingRpc::FramingRpc() = default;
FramingRpc::~FramingRpc() = default;

bool FramingRpc::is_method(std::string_view m) {
  for (std::string_view k : {"framing.createDecoder", "framing.feed", "framing.setMaxSize", "framing.end", "framing.destroyDecoder",
                             "framing.encode", "framing.encodeBatch", "framing.decodeBatch", "framing.writeAll"}) {
    if (m == k) return true;
  }
  return false;
}

void FramingRpc::reset() {
  decoders_.clear();
  next_ = 1;
}

Value FramingRpc::create_decoder(const Value& params) {
  const std::string what = "framing.createDecoder";
  fr::DecoderOptions opt;
  opt.max_size = static_cast<std::uint32_t>(int_member_or(params, what, "maxSize", fr::kHeaderSize, fr::kMaxFrameSize, fr::kMaxFrameSize));
  opt.types = types_member(params, what);
  if (decoders_.size() >= kMaxDecoders) {
    bad_value(what, "too many decoders (" + std::to_string(kMaxDecoders) + " live): destroy some first");
  }
  const std::int64_t id = next_++;
  decoders_.emplace(id, std::make_unique<fr::Decoder>(std::move(opt)));
  return Value::object({{"decoder", id}});
}

fr::Decoder& FramingRpc::decoder(const Value& params, const char* what) {
  const Value& v = *member(params, what, "decoder", Type::number, true);
  std::int64_t id = 0;
  auto it = v.get_integer(id) ? decoders_.find(id) : decoders_.end();
  if (it == decoders_.end()) bad_value(what, "no decoder with handle " + describe(v));
  return *it->second;
}

Value FramingRpc::call(std::string_view method, const Value& params) {
  const std::string what(method);
  if (method == "framing.createDecoder") return create_decoder(params);

  if (method == "framing.feed") {
    fr::Decoder& d = decoder(params, what.c_str());
    const std::vector<std::uint8_t> chunk = bytes_member(params, what, "data");
    Value frames = Value::array();
    const fr::FeedResult r = d.feed_with(chunk.data(), chunk.size(), [&](const fr::FrameView& f) {
      frames.push_back(frame_json(f.type, f.sequence, f.player_id, f.data, f.size));
    });
    return Value::object({{"frames", std::move(frames)}, {"error", fault_json(r.error)}});
  }
  if (method == "framing.setMaxSize") {
    fr::Decoder& d = decoder(params, what.c_str());
    const auto n = int_member(params, what, "maxSize", fr::kHeaderSize, fr::kMaxFrameSize);
    d.set_max_size(static_cast<std::uint32_t>(n));
    return Value::object();
  }
  if (method == "framing.end") {
    fr::Decoder& d = decoder(params, what.c_str());
    return Value::object({{"error", fault_json(d.end())}});
  }
  if (method == "framing.destroyDecoder") {
    decoder(params, what.c_str());
    std::int64_t id = 0;
    params.find("decoder")->get_integer(id);
    decoders_.erase(id);
    return Value::object();
  }
  if (method == "framing.encode") {
    const std::vector<fr::Frame> frames = frames_member(params, what);
    std::vector<std::uint8_t> out;
    if (fr::Error e = fr::encode(frames, out)) codec_failed(what, e);
    return bytes_result(out);
  }
  if (method == "framing.encodeBatch") {
    fr::BatchEncodeOptions opt;
    if (const Value* c = member(params, what, "compress", Type::boolean, false)) opt.compress = c->as_bool();
    opt.level = static_cast<int>(int_member_or(params, what, "level", -1, 9, -1));
    const std::vector<fr::Frame> frames = frames_member(params, what);
    std::vector<std::uint8_t> out;
    if (fr::Error e = fr::encode_batch(frames, opt, out)) codec_failed(what, e);
    return bytes_result(out);
  }
  if (method == "framing.decodeBatch") {
    const std::vector<std::uint8_t> payload = bytes_member(params, what, "data");
    fr::BatchDecodeOptions opt;
    opt.max_decompressed = static_cast<std::uint64_t>(int_member_or(params, what, "maxDecompressed", 0, kU32Max, fr::kDefaultMaxDecompressed));
    opt.max_count = static_cast<std::uint32_t>(int_member_or(params, what, "maxCount", 0, 0xFFFF, 0xFFFF));
    std::vector<fr::Frame> frames;
    const fr::Error e = fr::decode_batch(payload.data(), payload.size(), opt, frames);
    Value arr = Value::array();
    for (const fr::Frame& f : frames) arr.push_back(frame_json(f.type, f.sequence, f.player_id, f.payload.data(), f.payload.size()));
    return Value::object({{"frames", std::move(arr)}, {"error", fault_json(e)}});
  }
  if (method == "framing.writeAll") {
    // fr::write_all_scripted, as the addon's writeAll runs it.
    const std::vector<std::uint8_t> bytes = bytes_member(params, what, "data");
    const Value& script = *member(params, what, "script", Type::array, true);
    std::vector<std::ptrdiff_t> steps;
    steps.reserve(script.size());
    for (std::size_t i = 0; i < script.size(); ++i) {
      const Value& v = script.items()[i];
      if (v.is_string() && v.as_string() == "again") {
        steps.push_back(fr::kWouldBlock);
      } else if (v.is_number()) {
        steps.push_back(static_cast<std::ptrdiff_t>(integer_in(v, what, "script[" + std::to_string(i) + "]", 0, kMaxSafe)));
      } else {
        bad_params(what, "script[" + std::to_string(i) + "] must be a byte count >= 0 or \"again\", got " + describe(v));
      }
    }
    const fr::ScriptedWrite r = fr::write_all_scripted(bytes.data(), bytes.size(), steps);
    return Value::object({{"done", r.status == fr::WriteStatus::done},
                          {"offset", static_cast<double>(r.offset)},
                          {"error", r.status == fr::WriteStatus::error ? fault_json(r.error) : Value()},
                          {"written", b64_encode(r.written.data(), r.written.size())},
                          {"resumes", r.resumes}});
  }
  bad_params(what, "not a framing method");
}

}  // namespace cpspec::driver
