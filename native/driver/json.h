// A small JSON value type with a strict RFC 8259 parser and a serializer, for the standalone driver.
//
// - Numbers are stored as doubles: integers up to 2^53 are exact and are written without a fraction or
//   exponent; other doubles are written in the shortest form that reads back to the same double.
//   NaN and infinities cannot be represented (the parser rejects overflowing literals such as 1e400).
// - Strings are UTF-8. The parser rejects invalid UTF-8, raw control characters, unknown escapes and lone
//   surrogates; \uXXXX escapes (surrogate pairs included) are decoded to UTF-8.
// - Objects keep their members in insertion order; a duplicate name in the input replaces the earlier value
//   (as JSON.parse does).
// - Nesting is limited (kMaxDepth) so hostile input cannot exhaust the stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cpspec::json {

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;

enum class Type : std::uint8_t { null, boolean, number, string, array, object };

const char* type_name(Type t) noexcept;

class Value {
 public:
  Value() noexcept = default;
  Value(std::nullptr_t) noexcept {}
  Value(bool b) noexcept : type_(Type::boolean), bool_(b) {}
  Value(double d) noexcept : type_(Type::number), num_(d) {}
  Value(int v) noexcept : Value(static_cast<double>(v)) {}
  Value(unsigned v) noexcept : Value(static_cast<double>(v)) {}
  Value(long v) noexcept : Value(static_cast<double>(v)) {}
  Value(unsigned long v) noexcept : Value(static_cast<double>(v)) {}
  Value(long long v) noexcept : Value(static_cast<double>(v)) {}
  Value(unsigned long long v) noexcept : Value(static_cast<double>(v)) {}
  Value(std::string s) : type_(Type::string), str_(std::move(s)) {}
  Value(std::string_view s) : type_(Type::string), str_(s) {}
  Value(const char* s) : type_(Type::string), str_(s) {}
  Value(Array a);

  static Value array() { return Value(Array{}); }
  static Value object();
  // Builds an object from name/value pairs: Value::object({{"a", 1}, {"b", "x"}}).
  static Value object(std::initializer_list<Member> members);

  Value(const Value& other);
  Value(Value&& other) noexcept = default;
  Value& operator=(const Value& other);
  Value& operator=(Value&& other) noexcept = default;
  ~Value() = default;

  Type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == Type::null; }
  bool is_bool() const noexcept { return type_ == Type::boolean; }
  bool is_number() const noexcept { return type_ == Type::number; }
  bool is_string() const noexcept { return type_ == Type::string; }
  bool is_array() const noexcept { return type_ == Type::array; }
  bool is_object() const noexcept { return type_ == Type::object; }

  // Accessors: the caller checks the type first (wrong-type access returns a default value).
  bool as_bool() const noexcept { return type_ == Type::boolean && bool_; }
  double as_number() const noexcept { return type_ == Type::number ? num_ : 0.0; }
  const std::string& as_string() const noexcept;
  // True when the value is a number with no fractional part in [-2^63, 2^63); stores it in out.
  bool get_integer(std::int64_t& out) const noexcept;

  // Arrays.
  const Array& items() const noexcept;
  Array& items();
  void push_back(Value v);
  std::size_t size() const noexcept;  // array or object size, 0 otherwise

  // Objects (linear lookup; objects here are small).
  const std::vector<Member>& members() const noexcept;
  const Value* find(std::string_view name) const noexcept;  // nullptr if absent or not an object
  // Sets (replacing) a member; turns a null value into an object first.
  Value& set(std::string_view name, Value v);

  bool operator==(const Value& other) const noexcept;

 private:
  Type type_ = Type::null;
  bool bool_ = false;
  double num_ = 0.0;
  std::string str_;
  // Arrays and objects live behind a pointer so a Value stays small and the type can be recursive.
  std::unique_ptr<Array> arr_;
  std::unique_ptr<std::vector<Member>> obj_;
};

inline constexpr int kMaxDepth = 512;

struct ParseError {
  std::string message;
  std::size_t offset = 0;  // byte offset of the problem in the input
  std::string to_string() const;  // "message at offset N"
};

// Parses exactly one JSON text (surrounding whitespace allowed). On failure returns nullopt and fills err.
std::optional<Value> parse(std::string_view text, ParseError* err = nullptr);

struct WriteOptions {
  // Escape every non-ASCII character as \uXXXX (surrogate pairs above U+FFFF); otherwise UTF-8 is written
  // as is (only '"', '\\' and control characters are escaped).
  bool ascii_only = false;
};

// Serializes compactly (no whitespace). Non-finite numbers are written as null.
std::string stringify(const Value& v, const WriteOptions& opts = {});
void stringify_to(std::string& out, const Value& v, const WriteOptions& opts = {});
// Appends a JSON number / string literal.
void write_number(std::string& out, double d);
void write_string(std::string& out, std::string_view s, const WriteOptions& opts = {});

// Base64, standard alphabet: encode pads; decode accepts padded or unpadded input, false on anything else.
std::string base64_encode(const std::uint8_t* d, std::size_t n);
bool base64_decode(const std::string& s, std::vector<std::uint8_t>& out);

}  // namespace cpspec::json
