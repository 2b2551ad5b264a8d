// N-API bindings of the framing codec: InitFraming(env, exports) sets exports.framing to
//   { Decoder, encode, encodeBatch, decodeBatch, seqAfter, seqDiff, benchDecode, errorCodes }
// reference/src/framing/native.ts wraps them in the TypeScript codec's API (same frames, same errors).
//
// Errors: bad arguments throw (TypeError or Error) with code 'invalid'. Codec errors are plain objects
// { code, offset, ...details } in decoder results, and thrown Errors carrying the same properties from
// encode/encodeBatch/decodeBatch.
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "framing.h"
#include "framing_addon.h"

namespace {

namespace fr = cpspec::framing;

[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& msg, bool type_error = false) {
  Napi::Error e = type_error ? Napi::TypeError::New(env, msg) : Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, "invalid"));
  throw e;
}

double Int(Napi::Env env, const Napi::Value& v, const char* what, double lo, double hi) {
  if (!v.IsNumber()) ThrowInvalid(env, std::string(what) + " must be a number", true);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < lo || d > hi) {
    ThrowInvalid(env, std::string(what) + " must be an integer in " + std::to_string(static_cast<long long>(lo)) + ".." +
                          std::to_string(static_cast<long long>(hi)));
  }
  return d;
}

double OptInt(Napi::Env env, const Napi::Object& o, const char* key, double lo, double hi, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  return Int(env, v, key, lo, hi);
}

bool OptBool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && v.ToBoolean().Value();
}

Napi::Object OptObject(Napi::Env env, const Napi::Value& v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return Napi::Object::New(env);
  if (!v.IsObject() || v.IsArray()) ThrowInvalid(env, std::string(what) + " must be an object", true);
  return v.As<Napi::Object>();
}

struct Bytes {
  const std::uint8_t* data;
  std::size_t size;
};

Bytes ByteArg(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowInvalid(env, std::string(what) + " must be a Uint8Array", true);
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  return Bytes{a.Data(), a.ByteLength()};
}

// types: an array (or any iterable turned into an array by native.ts) of u16.
std::shared_ptr<const fr::TypeSet> TypesArg(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsArray()) ThrowInvalid(env, "types must be an array of integers in 0..65535", true);
  Napi::Array a = v.As<Napi::Array>();
  auto set = std::make_shared<fr::TypeSet>();
  for (std::uint32_t i = 0; i < a.Length(); ++i) set->add(static_cast<std::uint16_t>(Int(env, a.Get(i), "types[i]", 0, 65535)));
  return set;
}

Napi::Uint8Array CopyBytes(Napi::Env env, const std::uint8_t* p, std::size_t n) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, n);
  if (n > 0) std::memcpy(ab.Data(), p, n);
  return Napi::Uint8Array::New(env, n, ab, 0);
}

Napi::Object FrameValue(Napi::Env env, std::uint16_t type, std::uint32_t seq, std::uint32_t player, const std::uint8_t* p, std::size_t n) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", Napi::Number::New(env, type));
  o.Set("sequence", Napi::Number::New(env, seq));
  o.Set("playerId", Napi::Number::New(env, player));
  o.Set("payload", CopyBytes(env, p, n));
  return o;
}

void SetDetails(Napi::Env env, Napi::Object o, const fr::Error& e) {
  o.Set("code", Napi::String::New(env, fr::error_name(e.code)));
  o.Set("offset", Napi::Number::New(env, static_cast<double>(e.offset)));
  fr::visit_details(
      e, [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); },
      [&](const char* k, const char* v) { o.Set(k, Napi::String::New(env, v)); });
}

Napi::Value ErrorValue(Napi::Env env, const fr::Error& e) {
  if (!e) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  SetDetails(env, o, e);
  return o;
}

[[noreturn]] void ThrowCodec(Napi::Env env, const fr::Error& e) {
  Napi::Error err = Napi::Error::New(env, e.message());
  SetDetails(env, err.Value(), e);
  throw err;
}

// frames: [{type, sequence, playerId, payload}] -> owning frames, validated in the TS encoder's order (per
// frame: fields, then size against max_size, then (batches) not a batch itself).
std::vector<fr::Frame> FramesArg(Napi::Env env, const Napi::Value& v, std::uint32_t max_size, bool reject_batches) {
  if (!v.IsArray()) ThrowInvalid(env, "frames must be an array", true);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<fr::Frame> frames;
  frames.reserve(a.Length());
  std::uint64_t offset = 0;
  for (std::uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value fv = a.Get(i);
    auto range = [&](const char* field) {
      fr::Error e;
      e.code = fr::ErrorCode::field_out_of_range;
      e.offset = offset;
      e.has = fr::kField | fr::kIndex;
      e.field = field;
      e.index = i;
      ThrowCodec(env, e);
    };
    if (!fv.IsObject()) range("frame");
    Napi::Object f = fv.As<Napi::Object>();
    auto field = [&](const char* k, double hi) -> double {
      Napi::Value x = f.Get(k);
      if (!x.IsNumber()) range(k);
      const double d = x.As<Napi::Number>().DoubleValue();
      if (!std::isfinite(d) || d != std::trunc(d) || d < 0 || d > hi) range(k);
      return d;
    };
    fr::Frame fr_;
    fr_.type = static_cast<std::uint16_t>(field("type", 65535));
    fr_.sequence = static_cast<std::uint32_t>(field("sequence", 4294967295.0));
    fr_.player_id = static_cast<std::uint32_t>(field("playerId", 4294967295.0));
    Napi::Value pv = f.Get("payload");
    if (!pv.IsTypedArray() || pv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) range("payload");
    Napi::Uint8Array pa = pv.As<Napi::Uint8Array>();
    fr_.payload.assign(pa.Data(), pa.Data() + pa.ByteLength());
    fr::Error e = fr::check_frame(fr_, i, offset, max_size);
    if (e) ThrowCodec(env, e);
    if (reject_batches && fr_.type == fr::kBatchType) {
      e.code = fr::ErrorCode::batch_nested;
      e.offset = offset;
      e.has = fr::kType | fr::kIndex;
      e.type = fr_.type;
      e.index = i;
      ThrowCodec(env, e);
    }
    offset += fr::kHeaderSize + fr_.payload.size();
    frames.push_back(std::move(fr_));
  }
  return frames;
}

Napi::Array FrameArray(Napi::Env env, const std::vector<fr::Frame>& frames) {
  Napi::Array out = Napi::Array::New(env, frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const fr::Frame& f = frames[i];
    out.Set(static_cast<std::uint32_t>(i), FrameValue(env, f.type, f.sequence, f.player_id, f.payload.data(), f.payload.size()));
  }
  return out;
}

fr::DecoderOptions DecoderOptionsArg(Napi::Env env, const Napi::Value& v) {
  Napi::Object o = OptObject(env, v, "options");
  fr::DecoderOptions opt;
  opt.max_size = static_cast<std::uint32_t>(OptInt(env, o, "maxSize", 12, 65535, 65535));
  opt.types = TypesArg(env, o.Get("types"));
  if (!o.Get("playerId").IsUndefined()) opt.player_id = static_cast<std::uint32_t>(Int(env, o.Get("playerId"), "playerId", 0, 4294967295.0));
  opt.discard_too_large = OptBool(o, "discardTooLarge");
  return opt;
}

// ---------------------------------------------------------------------------------------------------------

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder",
                       {
                           InstanceMethod<&DecoderWrap::Feed>("feed"),
                           InstanceMethod<&DecoderWrap::End>("end"),
                           InstanceMethod<&DecoderWrap::SetMaxSize>("setMaxSize"),
                           InstanceAccessor<&DecoderWrap::Closed>("closed"),
                           InstanceAccessor<&DecoderWrap::Offset>("offset"),
                           InstanceAccessor<&DecoderWrap::Buffered>("buffered"),
                           InstanceAccessor<&DecoderWrap::MaxSize>("maxSize"),
                       });
  }

  explicit DecoderWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<DecoderWrap>(info), decoder_(DecoderOptionsArg(info.Env(), info[0])) {}

 private:
  // feed(chunk) -> { frames, error, discarded }
  Napi::Value Feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Bytes b = ByteArg(env, info[0], "chunk");
    Napi::Array frames = Napi::Array::New(env);
    std::uint32_t n = 0;
    fr::FeedResult r = decoder_.feed_with(b.data, b.size, [&](const fr::FrameView& v) {
      frames.Set(n++, FrameValue(env, v.type, v.sequence, v.player_id, v.data, v.size));
    });
    Napi::Object out = Napi::Object::New(env);
    out.Set("frames", frames);
    out.Set("error", ErrorValue(env, r.error));
    Napi::Array discarded = Napi::Array::New(env, r.discarded.size());
    for (std::size_t i = 0; i < r.discarded.size(); ++i) discarded.Set(static_cast<std::uint32_t>(i), ErrorValue(env, r.discarded[i]));
    out.Set("discarded", discarded);
    return out;
  }

  Napi::Value End(const Napi::CallbackInfo& info) { return ErrorValue(info.Env(), decoder_.end()); }

  Napi::Value SetMaxSize(const Napi::CallbackInfo& info) {
    decoder_.set_max_size(static_cast<std::uint32_t>(Int(info.Env(), info[0], "maxSize", 12, 65535)));
    return info.Env().Undefined();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), decoder_.closed()); }
  Napi::Value Offset(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(decoder_.offset())); }
  Napi::Value Buffered(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(decoder_.buffered())); }
  Napi::Value MaxSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), decoder_.max_size()); }

  fr::Decoder decoder_;
};

// encode(frames, maxSize?) -> Uint8Array
Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto max_size = static_cast<std::uint32_t>(info[1].IsUndefined() ? 65535 : Int(env, info[1], "maxSize", 12, 65535));
  std::vector<fr::Frame> frames = FramesArg(env, info[0], max_size, false);
  std::vector<std::uint8_t> out;
  fr::Error e = fr::encode(frames, out, max_size);
  if (e) ThrowCodec(env, e);
  return CopyBytes(env, out.data(), out.size());
}

// encodeBatch(frames, { compress?, level? }) -> Uint8Array (the batch payload)
Napi::Value EncodeBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = OptObject(env, info[1], "options");
  fr::BatchEncodeOptions opt;
  opt.compress = OptBool(o, "compress");
  opt.level = static_cast<int>(OptInt(env, o, "level", -1, 9, -1));
  if (info[0].IsArray() && info[0].As<Napi::Array>().Length() > 0xffff) {
    fr::Error e;
    e.code = fr::ErrorCode::batch_too_many;
    e.offset = 1;
    e.has = fr::kCount | fr::kMaxCount;
    e.count = info[0].As<Napi::Array>().Length();
    e.max_count = 0xffff;
    ThrowCodec(env, e);
  }
  std::vector<fr::Frame> frames = FramesArg(env, info[0], fr::kMaxFrameSize, true);
  std::vector<std::uint8_t> out;
  fr::Error e = fr::encode_batch(frames, opt, out);
  if (e) ThrowCodec(env, e);
  return CopyBytes(env, out.data(), out.size());
}

// decodeBatch(payload, { maxDecompressed?, maxCount?, types? }) -> { frames, inflated }; throws codec errors
// (with `inflated`: bytes zlib produced before the decoder gave up).
Napi::Value DecodeBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = ByteArg(env, info[0], "payload");
  Napi::Object o = OptObject(env, info[1], "options");
  fr::BatchDecodeOptions opt;
  opt.max_decompressed = static_cast<std::uint64_t>(OptInt(env, o, "maxDecompressed", 0, 4294967295.0, static_cast<double>(fr::kDefaultMaxDecompressed)));
  opt.max_count = static_cast<std::uint32_t>(OptInt(env, o, "maxCount", 0, 65535, 65535));
  opt.types = TypesArg(env, o.Get("types"));
  std::vector<fr::Frame> frames;
  std::uint64_t inflated = 0;
  fr::Error e = fr::decode_batch(b.data, b.size, opt, frames, &inflated);
  if (e) {
    Napi::Error err = Napi::Error::New(env, e.message());
    SetDetails(env, err.Value(), e);
    err.Value().Set("inflated", Napi::Number::New(env, static_cast<double>(inflated)));
    throw err;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("frames", FrameArray(env, frames));
  out.Set("inflated", Napi::Number::New(env, static_cast<double>(inflated)));
  return out;
}

Napi::Value SeqDiff(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto a = static_cast<std::uint32_t>(Int(env, info[0], "a", 0, 4294967295.0));
  const auto b = static_cast<std::uint32_t>(Int(env, info[1], "b", 0, 4294967295.0));
  return Napi::Number::New(env, fr::seq_diff(a, b));
}

Napi::Value SeqAfter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto a = static_cast<std::uint32_t>(Int(env, info[0], "a", 0, 4294967295.0));
  const auto b = static_cast<std::uint32_t>(Int(env, info[1], "b", 0, 4294967295.0));
  return Napi::Boolean::New(env, fr::seq_after(a, b));
}

// benchDecode(chunks: Uint8Array[], reps, options?: decoder options + { copy }) -> { frames, bytes, seconds, checksum }
// Decodes the whole chunk list `reps` times in C++ (a fresh decoder per rep, frames delivered as views), so
// the measurement is the codec, not N-API crossings.
Napi::Value BenchDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowInvalid(env, "chunks must be an array of Uint8Array", true);
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<Bytes> chunks;
  chunks.reserve(arr.Length());
  std::uint64_t total = 0;
  for (std::uint32_t i = 0; i < arr.Length(); ++i) {
    chunks.push_back(ByteArg(env, arr.Get(i), "chunks[i]"));
    total += chunks.back().size;
  }
  const auto reps = static_cast<std::uint64_t>(Int(env, info[1], "reps", 1, 1e9));
  fr::DecoderOptions opt = DecoderOptionsArg(env, info[2]);
  const bool copy = info[2].IsObject() && OptBool(info[2].As<Napi::Object>(), "copy");
  std::uint64_t frames = 0;
  std::uint64_t checksum = 0;
  std::vector<fr::Frame> kept;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t r = 0; r < reps; ++r) {
    fr::Decoder d(opt);
    for (const Bytes& c : chunks) {
      fr::FeedResult res = d.feed_with(c.data, c.size, [&](const fr::FrameView& v) {
        ++frames;
        if (copy) {  // owning frames, as a consumer that keeps them would
          kept.push_back(v.to_frame());
          checksum += kept.back().payload.size();
          if (kept.size() >= 64) kept.clear();
          return;
        }
        checksum += v.size + v.sequence + (v.size > 0 ? v.data[v.size - 1] : 0);
      });
      if (res.error) ThrowCodec(env, res.error);
    }
    fr::Error e = d.end();
    if (e) ThrowCodec(env, e);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object out = Napi::Object::New(env);
  out.Set("frames", Napi::Number::New(env, static_cast<double>(frames)));
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(total * reps)));
  out.Set("seconds", Napi::Number::New(env, seconds));
  out.Set("checksum", Napi::Number::New(env, static_cast<double>(checksum)));
  return out;
}

Napi::Array ErrorCodes(Napi::Env env) {
  std::vector<const char*> names;
  for (int c = static_cast<int>(fr::ErrorCode::size_too_small); c <= static_cast<int>(fr::ErrorCode::batch_trailing_bytes); ++c) {
    names.push_back(fr::error_name(static_cast<fr::ErrorCode>(c)));
  }
  Napi::Array a = Napi::Array::New(env, names.size());
  for (std::size_t i = 0; i < names.size(); ++i) a.Set(static_cast<std::uint32_t>(i), Napi::String::New(env, names[i]));
  return a;
}

}  // namespace

// writeAll(bytes, script) -> { done, offset, error, written, resumes }: runs fr::write_all against a writer
// that follows `script` (one entry per call: a byte count it accepts, or "again" for would-block), resuming
// after each would-block while script entries remain. `written` is what the writer received, in order.
Napi::Value WriteAllScripted(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError e = Napi::TypeError::New(env, "writeAll: bytes must be a Uint8Array");
    e.Value().Set("code", Napi::String::New(env, "invalid"));
    throw e;
  }
  if (!info[1].IsArray()) {
    Napi::TypeError e = Napi::TypeError::New(env, "writeAll: script must be an array of byte counts and \"again\"");
    e.Value().Set("code", Napi::String::New(env, "invalid"));
    throw e;
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  Napi::Array script = info[1].As<Napi::Array>();
  std::vector<std::ptrdiff_t> steps;
  for (std::uint32_t i = 0; i < script.Length(); ++i) {
    Napi::Value v = script.Get(i);
    if (v.IsString() && v.As<Napi::String>().Utf8Value() == "again") {
      steps.push_back(fr::kWouldBlock);
    } else if (v.IsNumber() && v.As<Napi::Number>().DoubleValue() >= 0 && v.As<Napi::Number>().DoubleValue() <= 1e9) {
      steps.push_back(static_cast<std::ptrdiff_t>(v.As<Napi::Number>().DoubleValue()));
    } else {
      Napi::TypeError e = Napi::TypeError::New(env, "writeAll: each script entry is a byte count >= 0 or \"again\"");
      e.Value().Set("code", Napi::String::New(env, "invalid"));
      throw e;
    }
  }
  const fr::ScriptedWrite r = fr::write_all_scripted(bytes.Data(), bytes.ByteLength(), steps);
  Napi::Object out = Napi::Object::New(env);
  out.Set("done", Napi::Boolean::New(env, r.status == fr::WriteStatus::done));
  out.Set("offset", Napi::Number::New(env, static_cast<double>(r.offset)));
  out.Set("error", r.status == fr::WriteStatus::error ? ErrorValue(env, r.error) : env.Null());
  out.Set("written", CopyBytes(env, r.written.data(), r.written.size()));
  out.Set("resumes", Napi::Number::New(env, r.resumes));
  return out;
}

void InitFraming(Napi::Env env, Napi::Object exports) {
  Napi::Object f = Napi::Object::New(env);
  f.Set("Decoder", DecoderWrap::Define(env));
  f.Set("encode", Napi::Function::New<Encode>(env, "encode"));
  f.Set("encodeBatch", Napi::Function::New<EncodeBatch>(env, "encodeBatch"));
  f.Set("decodeBatch", Napi::Function::New<DecodeBatch>(env, "decodeBatch"));
  f.Set("seqDiff", Napi::Function::New<SeqDiff>(env, "seqDiff"));
  f.Set("seqAfter", Napi::Function::New<SeqAfter>(env, "seqAfter"));
  f.Set("benchDecode", Napi::Function::New<BenchDecode>(env, "benchDecode"));
  f.Set("writeAll", Napi::Function::New<WriteAllScripted>(env, "writeAll"));
  f.Set("errorCodes", ErrorCodes(env));
  f.Set("maxFrameSize", Napi::Number::New(env, fr::kMaxFrameSize));
  f.Set("batchType", Napi::Number::New(env, fr::kBatchType));
  exports.Set("framing", f);
}
