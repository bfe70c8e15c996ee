#pragma once
// A latency histogram with logarithmic buckets (4 per power of two, 1 µs … ~1 h): constant
// memory, mergeable across replicas, quantiles within ~19% of the true value. Components
// record into one and report its quantiles in their metrics samples.

#include <array>
#include <cmath>
#include <cstdint>

namespace rml::messaging {

class latency_histogram {
 public:
  static constexpr int buckets_per_doubling = 4;
  static constexpr int bucket_count = 32 * buckets_per_doubling;

  void record(double microseconds) {
    const double clamped = microseconds < 1.0 ? 1.0 : microseconds;
    int bucket = int(std::log2(clamped) * buckets_per_doubling);
    if (bucket >= bucket_count) bucket = bucket_count - 1;
    ++counts_[std::size_t(bucket)];
    ++total_;
    if (microseconds > max_) max_ = microseconds;
  }
  void merge(const latency_histogram& other) {
    for (int index = 0; index < bucket_count; ++index) counts_[std::size_t(index)] += other.counts_[std::size_t(index)];
    total_ += other.total_;
    if (other.max_ > max_) max_ = other.max_;
  }
  /// The value below which `fraction` of the recorded values fall (upper bucket bound).
  double quantile(double fraction) const {
    if (total_ == 0) return 0;
    const std::uint64_t rank = std::uint64_t(std::ceil(fraction * double(total_)));
    std::uint64_t seen = 0;
    for (int index = 0; index < bucket_count; ++index) {
      seen += counts_[std::size_t(index)];
      if (seen >= rank && seen > 0) return std::min(max_, std::exp2(double(index + 1) / buckets_per_doubling));
    }
    return max_;
  }
  std::uint64_t count() const { return total_; }
  double max() const { return max_; }

 private:
  std::array<std::uint64_t, bucket_count> counts_{};
  std::uint64_t total_ = 0;
  double max_ = 0;
};

}  // namespace rml::messaging
