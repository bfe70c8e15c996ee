#pragma once
// Metrics in Prometheus' data model (one registry per node: messaging/telemetry.hpp): counters, gauges and histograms, each a
// family of series told apart by labels, rendered in the Prometheus text format (0.0.4) by
// the HTTP endpoint's /metrics. Actors look their series up once and then update them with
// atomics from any thread: the hot path takes no lock.
//
// Histograms have fixed bucket bounds per family so that series from different replicas
// (and processes) add up bucket by bucket: Prometheus' histogram_quantile over sum by (le)
// is exact about them, unlike summaries.
//
// Written here rather than taken from prometheus-cpp: Debian 12 does not package it, and
// what rml needs (three metric kinds, labels, text rendering) is small.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rml::messaging::metrics {

using label_set = std::vector<std::pair<std::string, std::string>>;

class counter {
 public:
  void add(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class histogram {
 public:
  /// `upper_bounds` ascending; the +Inf bucket is implicit.
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double value);
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }
  /// Cumulative counts per bound, then the +Inf count (= count()).
  std::vector<std::uint64_t> cumulative_counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // one per bound, then +Inf
  std::atomic<double> sum_{0.0};
  std::atomic<std::uint64_t> count_{0};
};

/// Latency bounds in seconds: 25 µs … 10 s, about three per decade.
const std::vector<double>& latency_bounds_seconds();
/// Batch size bounds in rows: powers of two up to 4096.
const std::vector<double>& batch_rows_bounds();

class registry {
 public:
  /// Finds or creates the series; the reference stays valid for the registry's lifetime.
  /// A name already registered with another kind is a bug (asserted).
  counter& get_counter(const std::string& name, const std::string& help, const label_set& labels = {});
  gauge& get_gauge(const std::string& name, const std::string& help, const label_set& labels = {});
  histogram& get_histogram(const std::string& name, const std::string& help, const label_set& labels = {},
                           const std::vector<double>& upper_bounds = latency_bounds_seconds());

  /// Every family in the Prometheus text exposition format, names sorted.
  std::string render() const;

 private:
  enum class kind { counter, gauge, histogram };
  struct family {
    kind type;
    std::string help;
    std::map<std::string, std::unique_ptr<counter>> counters;  // keyed by rendered labels
    std::map<std::string, std::unique_ptr<gauge>> gauges;
    std::map<std::string, std::unique_ptr<histogram>> histograms;
  };
  family& family_of(const std::string& name, const std::string& help, kind type);
  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

/// `{a="x",b="y"}` with values escaped as the text format asks; empty for no labels.
std::string render_labels(const label_set& labels);

}  // namespace rml::messaging::metrics
