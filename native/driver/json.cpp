#include "json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace cpspec::json {

namespace {
const std::string kEmptyString;
const Array kEmptyArray;
const std::vector<Member> kEmptyMembers;
}  // namespace

const char* type_name(Type t) noexcept {
  switch (t) {
    case Type::null: return "null";
    case Type::boolean: return "boolean";
    case Type::number: return "number";
    case Type::string: return "string";
    case Type::array: return "array";
    case Type::object: return "object";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------------
// Value
// ---------------------------------------------------------------------------------------------------------

Value::Value(Array a) : type_(Type::array), arr_(std::make_unique<Array>(std::move(a))) {}

Value Value::object() {
  Value v;
  v.type_ = Type::object;
  v.obj_ = std::make_unique<std::vector<Member>>();
  return v;
}

Value Value::object(std::initializer_list<Member> members) {
  Value v = object();
  for (const auto& m : members) v.set(m.first, m.second);
  return v;
}

Value::Value(const Value& other)
    : type_(other.type_), bool_(other.bool_), num_(other.num_), str_(other.str_) {
  if (other.arr_) arr_ = std::make_unique<Array>(*other.arr_);
  if (other.obj_) obj_ = std::make_unique<std::vector<Member>>(*other.obj_);
}

Value& Value::operator=(const Value& other) {
  if (this != &other) {
    Value copy(other);
    *this = std::move(copy);
  }
  return *this;
}

const std::string& Value::as_string() const noexcept { return type_ == Type::string ? str_ : kEmptyString; }

bool Value::get_integer(std::int64_t& out) const noexcept {
  if (type_ != Type::number || !std::isfinite(num_) || std::trunc(num_) != num_) return false;
  // 2^63 is exactly representable; anything >= it does not fit.
  if (num_ < -9223372036854775808.0 || num_ >= 9223372036854775808.0) return false;
  out = static_cast<std::int64_t>(num_);
  return true;
}

const Array& Value::items() const noexcept { return arr_ ? *arr_ : kEmptyArray; }

Array& Value::items() {
  if (type_ != Type::array) *this = Value(Array{});
  return *arr_;
}

void Value::push_back(Value v) { items().push_back(std::move(v)); }

std::size_t Value::size() const noexcept {
  if (arr_) return arr_->size();
  if (obj_) return obj_->size();
  return 0;
}

const std::vector<Member>& Value::members() const noexcept { return obj_ ? *obj_ : kEmptyMembers; }

const Value* Value::find(std::string_view name) const noexcept {
  if (!obj_) return nullptr;
  for (const auto& m : *obj_) {
    if (m.first == name) return &m.second;
  }
  return nullptr;
}

Value& Value::set(std::string_view name, Value v) {
  if (type_ != Type::object) *this = object();
  for (auto& m : *obj_) {
    if (m.first == name) {
      m.second = std::move(v);
      return m.second;
    }
  }
  obj_->emplace_back(std::string(name), std::move(v));
  return obj_->back().second;
}

bool Value::operator==(const Value& other) const noexcept {
  if (type_ != other.type_) return false;
  switch (type_) {
    case Type::null: return true;
    case Type::boolean: return bool_ == other.bool_;
    case Type::number: return num_ == other.num_;
    case Type::string: return str_ == other.str_;
    case Type::array: return items() == other.items();
    case Type::object: {
      // Order-insensitive comparison of members.
      const auto& a = members();
      const auto& b = other.members();
      if (a.size() != b.size()) return false;
      for (const auto& m : a) {
        const Value* o = other.find(m.first);
        if (!o || !(*o == m.second)) return false;
      }
      return true;
    }
  }
  return false;
}

std::string ParseError::to_string() const { return message + " at offset " + std::to_string(offset); }

// ---------------------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------------------

namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one UTF-8 sequence at s[i..]; returns its length (1..4) and the code point, or 0 if invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t decode_utf8(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len;
  std::uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  bool parse_document(Value& out) {
    skip_ws();
    if (!parse_value(out, 0)) return false;
    skip_ws();
    if (pos_ != s_.size()) return fail("unexpected data after the JSON value");
    return true;
  }

  ParseError error;

 private:
  std::string_view s_;
  std::size_t pos_ = 0;

  bool fail(const char* msg) { return fail_at(msg, pos_); }
  bool fail_at(const char* msg, std::size_t at) {
    error.message = msg;
    error.offset = at;
    return false;
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }

  void skip_ws() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  bool expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return fail("invalid literal");
    pos_ += lit.size();
    return true;
  }

  bool parse_value(Value& out, int depth) {
    if (at_end()) return fail("unexpected end of input, expected a value");
    switch (peek()) {
      case '{': return parse_object(out, depth + 1);
      case '[': return parse_array(out, depth + 1);
      case '"': {
        std::string str;
        if (!parse_string(str)) return false;
        out = Value(std::move(str));
        return true;
      }
      case 't':
        if (!expect_literal("true")) return false;
        out = Value(true);
        return true;
      case 'f':
        if (!expect_literal("false")) return false;
        out = Value(false);
        return true;
      case 'n':
        if (!expect_literal("null")) return false;
        out = Value();
        return true;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number(out);
        return fail("unexpected character, expected a value");
    }
  }

  bool parse_object(Value& out, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    ++pos_;  // '{'
    out = Value::object();
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (at_end()) return fail("unexpected end of input in an object");
      if (peek() != '"') return fail("expected a string (member name)");
      std::string name;
      if (!parse_string(name)) return false;
      skip_ws();
      if (at_end() || peek() != ':') return fail("expected ':' after a member name");
      ++pos_;
      skip_ws();
      Value v;
      if (!parse_value(v, depth)) return false;
      out.set(name, std::move(v));
      skip_ws();
      if (at_end()) return fail("unexpected end of input in an object");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}' in an object");
    }
  }

  bool parse_array(Value& out, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    ++pos_;  // '['
    Array items;
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      out = Value(std::move(items));
      return true;
    }
    for (;;) {
      skip_ws();
      Value v;
      if (!parse_value(v, depth)) return false;
      items.push_back(std::move(v));
      skip_ws();
      if (at_end()) return fail("unexpected end of input in an array");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        out = Value(std::move(items));
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool parse_number(Value& out) {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (at_end()) return fail("unexpected end of input in a number");
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && is_digit(peek())) return fail("leading zeros are not allowed in a number");
    } else if (is_digit(peek())) {
      while (!at_end() && is_digit(peek())) ++pos_;
    } else {
      return fail("expected a digit");
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (at_end() || !is_digit(peek())) return fail("expected a digit after the decimal point");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) return fail("expected a digit in the exponent");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    double d = 0;
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    const auto res = std::from_chars(first, last, d, std::chars_format::general);
    if (res.ec == std::errc::result_out_of_range && res.ptr == last) {
      // from_chars leaves d unmodified when out of range: tell overflow (an error, JSON has no infinity)
      // from underflow (harmless: the nearest double, possibly zero) with strtod, which is locale-free
      // for this grammar since the literal has no locale-specific characters except '.'.
      const std::string copy(first, last);
      char* endp = nullptr;
      d = std::strtod(copy.c_str(), &endp);
      if (!std::isfinite(d)) return fail_at("number out of range", start);
    } else if (res.ec != std::errc() || res.ptr != last) {
      return fail_at("invalid number", start);
    }
    if (!std::isfinite(d)) return fail_at("number out of range", start);
    out = Value(d);
    return true;
  }

  bool parse_hex4(std::uint32_t& out) {
    if (pos_ + 4 > s_.size()) return fail("unexpected end of input in a \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_ + k];
      std::uint32_t v;
      if (c >= '0' && c <= '9') {
        v = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return fail_at("invalid hex digit in a \\u escape", pos_ + k);
      }
      out = (out << 4) | v;
    }
    pos_ += 4;
    return true;
  }

  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      if (at_end()) return fail("unterminated string");
      const char c = peek();
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        const std::size_t esc_start = pos_;
        ++pos_;
        if (at_end()) return fail("unterminated string");
        const char e = peek();
        ++pos_;
        switch (e) {
          case '"': out.push_back('"'); break;
          case '\\': out.push_back('\\'); break;
          case '/': out.push_back('/'); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case 'u': {
            std::uint32_t cp;
            if (!parse_hex4(cp)) return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at("lone low surrogate in a \\u escape", esc_start);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') {
                return fail_at("high surrogate not followed by a low surrogate escape", esc_start);
              }
              pos_ += 2;
              std::uint32_t lo;
              if (!parse_hex4(lo)) return false;
              if (lo < 0xDC00 || lo > 0xDFFF) {
                return fail_at("high surrogate not followed by a low surrogate escape", esc_start);
              }
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default:
            return fail_at("invalid escape in a string", esc_start);
        }
        continue;
      }
      const auto uc = static_cast<unsigned char>(c);
      if (uc < 0x20) return fail("control character in a string (must be escaped)");
      if (uc < 0x80) {
        out.push_back(c);
        ++pos_;
        continue;
      }
      std::uint32_t cp;
      const std::size_t len = decode_utf8(s_, pos_, cp);
      if (len == 0) return fail("invalid UTF-8 in a string");
      out.append(s_.data() + pos_, len);
      pos_ += len;
    }
  }
};

}  // namespace

std::optional<Value> parse(std::string_view text, ParseError* err) {
  Parser p(text);
  Value v;
  if (!p.parse_document(v)) {
    if (err) *err = p.error;
    return std::nullopt;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Serializer
// ---------------------------------------------------------------------------------------------------------

void write_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  constexpr double kTwo53 = 9007199254740992.0;
  char buf[64];
  if (std::trunc(d) == d && std::fabs(d) <= kTwo53) {
    if (d == 0) {
      out.push_back('0');  // -0 is written as 0
      return;
    }
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(d));
    out.append(buf, r.ptr);
    return;
  }
  // Shortest representation that round-trips.
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, r.ptr);
}

namespace {
const char kHex[] = "0123456789abcdef";

void write_u_escape(std::string& out, std::uint32_t unit) {
  out += "\\u";
  out.push_back(kHex[(unit >> 12) & 0xF]);
  out.push_back(kHex[(unit >> 8) & 0xF]);
  out.push_back(kHex[(unit >> 4) & 0xF]);
  out.push_back(kHex[unit & 0xF]);
}
}  // namespace

void write_string(std::string& out, std::string_view s, const WriteOptions& opts) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            write_u_escape(out, c);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    std::uint32_t cp;
    const std::size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      // Not valid UTF-8 (only possible for strings built in C++): write U+FFFD so the output stays valid.
      if (opts.ascii_only) {
        write_u_escape(out, 0xFFFD);
      } else {
        out += "\xEF\xBF\xBD";
      }
      ++i;
      continue;
    }
    if (!opts.ascii_only) {
      out.append(s.data() + i, len);
    } else if (cp < 0x10000) {
      write_u_escape(out, cp);
    } else {
      const std::uint32_t v = cp - 0x10000;
      write_u_escape(out, 0xD800 + (v >> 10));
      write_u_escape(out, 0xDC00 + (v & 0x3FF));
    }
    i += len;
  }
  out.push_back('"');
}

namespace {
void write_value(std::string& out, const Value& v, const WriteOptions& opts, int depth) {
  if (depth > kMaxDepth * 2) {
    out += "null";  // pathological depth built in C++; never produced by the parser
    return;
  }
  switch (v.type()) {
    case Type::null: out += "null"; break;
    case Type::boolean: out += v.as_bool() ? "true" : "false"; break;
    case Type::number: write_number(out, v.as_number()); break;
    case Type::string: write_string(out, v.as_string(), opts); break;
    case Type::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.items()) {
        if (!first) out.push_back(',');
        first = false;
        write_value(out, item, opts, depth + 1);
      }
      out.push_back(']');
      break;
    }
    case Type::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& m : v.members()) {
        if (!first) out.push_back(',');
        first = false;
        write_string(out, m.first, opts);
        out.push_back(':');
        write_value(out, m.second, opts, depth + 1);
      }
      out.push_back('}');
      break;
    }
  }
}
}  // namespace

void stringify_to(std::string& out, const Value& v, const WriteOptions& opts) { write_value(out, v, opts, 0); }

std::string stringify(const Value& v, const WriteOptions& opts) {
  std::string out;
  stringify_to(out, v, opts);
  return out;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(const std::uint8_t* d, std::size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{d[i]} << 16) | (std::uint32_t{d[i + 1]} << 8) | d[i + 2];
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  if (i < n) {
    std::uint32_t v = std::uint32_t{d[i]} << 16;
    if (i + 1 < n) v |= std::uint32_t{d[i + 1]} << 8;
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Standard base64 with padding (unpadded input is accepted too); false on anything else.
bool base64_decode(const std::string& s, std::vector<std::uint8_t>& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::size_t n = s.size();
  if (n % 4 == 0 && n >= 1 && s[n - 1] == '=') --n;
  if (n % 4 == 3 && n >= 1 && s[n - 1] == '=') --n;
  if (n % 4 == 1) return false;
  out.clear();
  out.reserve(n / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int v = val(s[i]);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

}  // namespace cpspec::json
