#include "messaging/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace rml::messaging::json {
namespace {
/// Hands SAX events to the document, counting the nesting on the way: RapidJSON has no depth
/// limit of its own.
class depth_limited_handler {
 public:
  explicit depth_limited_handler(rapidjson::Document& target) : target_(target) {}
  bool Null() { return target_.Null(); }
  bool Bool(bool value) { return target_.Bool(value); }
  bool Int(int value) { return target_.Int(value); }
  bool Uint(unsigned value) { return target_.Uint(value); }
  bool Int64(std::int64_t value) { return target_.Int64(value); }
  bool Uint64(std::uint64_t value) { return target_.Uint64(value); }
  bool Double(double value) { return target_.Double(value); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool copy) { return target_.RawNumber(text, length, copy); }
  bool String(const char* text, rapidjson::SizeType length, bool copy) { return target_.String(text, length, copy); }
  bool Key(const char* text, rapidjson::SizeType length, bool copy) { return target_.Key(text, length, copy); }
  bool StartObject() { return enter() && target_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) { return leave() && target_.EndObject(members); }
  bool StartArray() { return enter() && target_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) { return leave() && target_.EndArray(elements); }
  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ <= depth_max) return true;
    too_deep_ = true;
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }
  rapidjson::Document& target_;
  int depth_ = 0;
  bool too_deep_ = false;
};

constexpr unsigned parse_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

/// The length of the UTF-8 sequence at `text` (1 to 4), or 0 if none starts there.
std::size_t utf8_sequence(std::string_view text) {
  const auto byte = [&](std::size_t index) { return static_cast<unsigned char>(text[index]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length;
  std::uint32_t code;
  if ((lead & 0xe0) == 0xc0) length = 2, code = lead & 0x1f;
  else if ((lead & 0xf0) == 0xe0) length = 3, code = lead & 0x0f;
  else if ((lead & 0xf8) == 0xf0) length = 4, code = lead & 0x07;
  else return 0;
  if (text.size() < length) return 0;
  for (std::size_t index = 1; index < length; ++index) {
    if ((byte(index) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(index) & 0x3f);
  }
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
  static constexpr std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < smallest[length] || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return 0;
  return length;
}
}  // namespace

status parse(std::string_view text, rapidjson::Document& document, const std::string& what) {
  rapidjson::MemoryStream stream(text.data(), text.size());
  rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>> reader;
  depth_limited_handler handler(document);
  rapidjson::ParseResult outcome;
  auto generate = [&](rapidjson::Document&) {
    outcome = reader.Parse<parse_flags>(stream, handler);
    return !outcome.IsError();
  };
  document.Populate(generate);
  if (!outcome.IsError()) return {};
  const std::string at = " at byte " + std::to_string(outcome.Offset());
  if (handler.too_deep()) {
    return error(errc::parse_error, what + " nests arrays or objects deeper than " + std::to_string(depth_max) + " levels" + at);
  }
  if (outcome.Code() == rapidjson::kParseErrorStringInvalidEncoding) return error(errc::parse_error, what + " is not UTF-8" + at);
  return error(errc::parse_error, what + " is not valid JSON" + at + ": " + rapidjson::GetParseError_En(outcome.Code()));
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length = utf8_sequence(text);
    if (length == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD, the replacement character
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, length));
      text.remove_prefix(length);
    }
  }
  return out;
}

std::string object_with(const char* key, std::string_view value) {
  const std::string text = valid_utf8(value);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key(key);
  writer.String(text.data(), rapidjson::SizeType(text.size()));
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace rml::messaging::json
