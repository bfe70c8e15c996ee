#include "compute/random.hpp"

namespace rml {

std::vector<std::uint32_t> shuffled_indices(std::uint32_t count, std::uint64_t seed) {
  std::vector<std::uint32_t> order(count);
  for (std::uint32_t index = 0; index < count; ++index) order[index] = index;
  random_source random(seed);
  // Fisher-Yates from the back; bench/torch_peer.py reproduces it exactly.
  for (std::uint32_t index = count; index > 1; --index) {
    const std::uint32_t other = std::uint32_t(random.below(index));
    std::swap(order[index - 1], order[other]);
  }
  return order;
}

}  // namespace rml
