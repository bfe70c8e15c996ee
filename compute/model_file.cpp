#include "compute/model_file.hpp"

#include <xxhash.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace rml {
namespace {
static_assert(std::endian::native == std::endian::little,
              "the model file is little-endian and written with memcpy");

constexpr char model_magic[8] = {'R', 'M', 'L', 'M', 'O', 'D', 'E', 'L'};
constexpr std::size_t header_bytes = 24;
constexpr std::size_t checksum_bytes = 8;
constexpr std::uint64_t payload_bytes_max = std::uint64_t(1) << 36;  // 64 GiB
constexpr std::uint32_t string_bytes_max = 1 << 20;
constexpr std::uint32_t entries_max = 1 << 16;

class writer {
 public:
  template <class T>
  void put(const T& value) {
    const auto* bytes = reinterpret_cast<const std::byte*>(&value);
    out_.insert(out_.end(), bytes, bytes + sizeof(T));
  }
  void put_string(const std::string& text) {
    RML_ASSERT(text.size() <= string_bytes_max);
    put(std::uint32_t(text.size()));
    const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
    out_.insert(out_.end(), bytes, bytes + text.size());
  }
  void put_floats(std::span<const float> values) {
    const auto* bytes = reinterpret_cast<const std::byte*>(values.data());
    out_.insert(out_.end(), bytes, bytes + values.size_bytes());
  }
  std::vector<std::byte>& bytes() { return out_; }

 private:
  std::vector<std::byte> out_;
};

/// Reads the payload; any overrun means the payload contradicts itself (the checksum
/// already matched), which is reported as corrupted.
class reader {
 public:
  explicit reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  template <class T>
  bool get(T& value) {
    if (bytes_.size() - offset_ < sizeof(T)) return false;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return true;
  }
  bool get_string(std::string& text) {
    std::uint32_t size = 0;
    if (!get(size) || size > string_bytes_max || bytes_.size() - offset_ < size) return false;
    text.assign(reinterpret_cast<const char*>(bytes_.data() + offset_), size);
    offset_ += size;
    return true;
  }
  bool get_floats(std::span<float> values) {
    if ((bytes_.size() - offset_) / sizeof(float) < values.size()) return false;
    std::memcpy(values.data(), bytes_.data() + offset_, values.size_bytes());
    offset_ += values.size_bytes();
    return true;
  }
  bool at_end() const { return offset_ == bytes_.size(); }

 private:
  std::span<const std::byte> bytes_;
  std::size_t offset_ = 0;
};

error corrupted(const std::string& source, const std::string& reason) {
  return error(errc::corrupted, source + ": corrupted model file: " + reason);
}
}  // namespace

std::vector<std::byte> encode_model(nn::sequential& model, const model_metadata& metadata) {
  writer payload;
  payload.put_string(model.spec());
  payload.put(std::uint32_t(metadata.size()));
  for (const auto& [key, value] : metadata) {
    payload.put_string(key);
    payload.put_string(value);
  }
  const std::vector<parameter*> parameters = model.parameters();
  payload.put(std::uint32_t(parameters.size()));
  for (const parameter* trainable : parameters) {
    payload.put_string(trainable->name);
    payload.put(std::uint32_t(trainable->value.rank()));
    for (std::int64_t dimension : trainable->value.shape().dims()) payload.put(dimension);
    payload.put_floats(trainable->value.values());
  }

  writer file;
  for (char letter : model_magic) file.put(letter);
  file.put(model_format_version);
  file.put(std::uint32_t(0));
  file.put(std::uint64_t(payload.bytes().size()));
  file.bytes().insert(file.bytes().end(), payload.bytes().begin(), payload.bytes().end());
  file.put(std::uint64_t(XXH64(file.bytes().data(), file.bytes().size(), 0)));
  return std::move(file.bytes());
}

result<model_bundle> decode_model(std::span<const std::byte> bytes, const std::string& source) {
  const std::size_t compared = std::min(bytes.size(), sizeof(model_magic));
  if (std::memcmp(bytes.data(), model_magic, compared) != 0) {
    return error(errc::foreign_format, source + ": not an rml model file (wrong magic)");
  }
  if (bytes.size() < header_bytes) {
    return error(errc::truncated, source + ": truncated model file: " + std::to_string(bytes.size()) +
                                      " bytes, shorter than the " + std::to_string(header_bytes) +
                                      "-byte header");
  }
  std::uint32_t version = 0;
  std::uint64_t payload_size = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&payload_size, bytes.data() + 16, 8);
  if (version == 0 || version > model_format_version) {
    return error(errc::unsupported_version,
                 source + ": model file format version " + std::to_string(version) +
                     ", this build reads version " + std::to_string(model_format_version));
  }
  if (payload_size > payload_bytes_max) {
    return corrupted(source, "payload size " + std::to_string(payload_size) + " is implausible");
  }
  const std::uint64_t expected = header_bytes + payload_size + checksum_bytes;
  if (bytes.size() < expected) {
    return error(errc::truncated, source + ": truncated model file: " + std::to_string(bytes.size()) +
                                      " bytes of " + std::to_string(expected));
  }
  if (bytes.size() > expected) {
    return corrupted(source, std::to_string(bytes.size() - expected) + " trailing bytes");
  }
  std::uint64_t stored_checksum = 0;
  std::memcpy(&stored_checksum, bytes.data() + header_bytes + payload_size, 8);
  if (XXH64(bytes.data(), header_bytes + payload_size, 0) != stored_checksum) {
    return corrupted(source, "checksum mismatch");
  }

  reader payload(bytes.subspan(header_bytes, payload_size));
  std::string spec;
  if (!payload.get_string(spec)) return corrupted(source, "architecture unreadable");
  auto model = nn::sequential::from_spec(spec);
  if (!model) return corrupted(source, "architecture: " + model.error().message());
  model_bundle bundle{std::move(model.value()), {}};
  std::uint32_t metadata_count = 0;
  if (!payload.get(metadata_count) || metadata_count > entries_max) {
    return corrupted(source, "metadata count unreadable");
  }
  for (std::uint32_t entry = 0; entry < metadata_count; ++entry) {
    std::string key, value;
    if (!payload.get_string(key) || !payload.get_string(value)) {
      return corrupted(source, "metadata entry " + std::to_string(entry) + " unreadable");
    }
    bundle.metadata[key] = value;
  }
  const std::vector<parameter*> parameters = bundle.model.parameters();
  std::uint32_t parameter_count = 0;
  if (!payload.get(parameter_count) || parameter_count != parameters.size()) {
    return corrupted(source, "holds " + std::to_string(parameter_count) + " parameters, its architecture has " +
                                 std::to_string(parameters.size()));
  }
  for (std::size_t index = 0; index < parameters.size(); ++index) {
    parameter& trainable = *parameters[index];
    std::string name;
    std::uint32_t rank = 0;
    if (!payload.get_string(name) || !payload.get(rank) || rank > std::uint32_t(tensor_rank_max)) {
      return corrupted(source, "parameter " + std::to_string(index) + " header unreadable");
    }
    std::vector<std::int64_t> dims(rank);
    for (std::int64_t& dimension : dims) {
      if (!payload.get(dimension)) return corrupted(source, "parameter " + std::to_string(index) + " shape unreadable");
    }
    const auto expected_dims = trainable.value.shape().dims();
    if (name != trainable.name || !std::equal(dims.begin(), dims.end(), expected_dims.begin(), expected_dims.end())) {
      return corrupted(source, "parameter " + std::to_string(index) + " '" + name +
                                   "' does not match the architecture's '" + trainable.name + "' " +
                                   trainable.value.shape().to_string());
    }
    if (!payload.get_floats(trainable.value.values())) {
      return corrupted(source, "parameter " + std::to_string(index) + " values unreadable");
    }
  }
  if (!payload.at_end()) return corrupted(source, "unread bytes after the last parameter");
  return bundle;
}

status save_model(const std::string& path, nn::sequential& model, const model_metadata& metadata) {
  const std::vector<std::byte> bytes = encode_model(model, metadata);
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) return error(errc::io_error, temporary + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.flush();
    if (!out) return error(errc::io_error, temporary + ": write failed");
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return error(errc::io_error, path + ": cannot rename " + temporary + " into place");
  }
  return {};
}

result<model_bundle> load_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return error(errc::io_error, path + ": cannot open");
  const std::streamsize size = in.tellg();
  if (size < 0 || std::uint64_t(size) > payload_bytes_max + header_bytes + checksum_bytes) {
    return error(errc::io_error, path + ": cannot determine a plausible size");
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  if (!in) return error(errc::io_error, path + ": read failed");
  return decode_model(bytes, path);
}

}  // namespace rml
