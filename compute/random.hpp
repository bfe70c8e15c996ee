#pragma once
// A small, fully specified random generator (SplitMix64). The standard distributions are
// implementation-defined, so the same seed would give other weights under another standard
// library; this one gives the same sequence everywhere, and bench/ reproduces it in
// Python to feed PyTorch the same data order.

#include <cstdint>
#include <vector>

namespace rml {

class random_source {
 public:
  explicit random_source(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next_u64() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1), 24 random bits.
  float uniform01() { return float(next_u64() >> 40) * 0x1.0p-24f; }
  /// Uniform in [low, high).
  float uniform(float low, float high) { return low + (high - low) * uniform01(); }
  /// Uniform integer in [0, bound), bound ≥ 1 (multiply-shift; bias below 2^-32).
  std::uint64_t below(std::uint64_t bound) {
    return std::uint64_t((unsigned __int128)(next_u64() >> 32) * bound >> 32);
  }

 private:
  std::uint64_t state_;
};

/// The indices 0..count-1 in the Fisher-Yates order drawn from `seed`.
std::vector<std::uint32_t> shuffled_indices(std::uint32_t count, std::uint64_t seed);

}  // namespace rml
