#pragma once
// The model file: a versioned binary format holding a model's architecture (its spec
// string), its weights and free metadata, sealed with a checksum.
//
// Layout (all integers little-endian):
//   0   8 bytes  magic "RMLMODEL"
//   8   u32      format version (model_format_version)
//   12  u32      flags, 0
//   16  u64      payload size P
//   24  P bytes  payload: spec (u32 length + bytes); metadata (u32 count, then key and
//                value as length-prefixed strings); parameters (u32 count, then for each:
//                name, u32 rank, rank × i64 dims, numel × f32)
//   24+P u64     XXH64 (seed 0) of bytes [0, 24+P)
//
// Loading refuses, with an error saying which: a foreign file (wrong magic), a newer
// version, a truncated file, a checksum mismatch or trailing bytes (corrupted), and a
// payload whose parameters do not fit its architecture (corrupted).

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "compute/nn/sequential.hpp"

namespace rml {

inline constexpr std::uint32_t model_format_version = 1;
using model_metadata = std::map<std::string, std::string>;

struct model_bundle {
  nn::sequential model;
  model_metadata metadata;
};

/// The file's bytes for a model and its metadata.
std::vector<std::byte> encode_model(nn::sequential& model, const model_metadata& metadata);
/// Rebuilds a model from bytes; `source` names them in errors (a path, "snapshot 7").
result<model_bundle> decode_model(std::span<const std::byte> bytes, const std::string& source);

/// Writes atomically: a temporary file beside `path`, then a rename.
status save_model(const std::string& path, nn::sequential& model, const model_metadata& metadata);
result<model_bundle> load_model(const std::string& path);

}  // namespace rml
