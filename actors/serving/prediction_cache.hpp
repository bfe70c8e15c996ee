#pragma once
// The prediction cache of a serving lane: bounded, least recently used first out, keyed by
// (model version, hash of the request's features, rows, top_k) — a new version never sees an
// older one's entries. Not thread-safe: one lane owns it.

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace rml::actors {

/// Least-recently-used prediction cache: key → (probabilities, top classes) of a request.
class prediction_cache {
 public:
  struct entry {
    std::vector<float> probabilities;
    std::vector<std::int32_t> top_classes;
  };
  struct key {
    std::uint64_t version, hash;
    std::uint32_t rows, top_k;
    bool operator==(const key&) const = default;
  };

  explicit prediction_cache(std::size_t capacity) : capacity_(capacity) {}
  const entry* find(const key& wanted) {
    auto found = index_.find(wanted);
    if (found == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, found->second);
    return &found->second->second;
  }
  void insert(const key& added, entry value) {
    if (capacity_ == 0 || index_.count(added) != 0) return;
    order_.emplace_front(added, std::move(value));
    index_[added] = order_.begin();
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }
  std::size_t size() const { return order_.size(); }

 private:
  struct key_hash {
    std::size_t operator()(const key& k) const { return std::size_t(k.hash ^ (k.version * 0x9E3779B97F4A7C15ull) ^ k.rows ^ (std::uint64_t(k.top_k) << 32)); }
  };
  std::size_t capacity_;
  std::list<std::pair<key, entry>> order_;
  std::unordered_map<key, std::list<std::pair<key, entry>>::iterator, key_hash> index_;
};

}  // namespace rml::actors
