#include "messaging/metrics_registry.hpp"

#include <cmath>
#include <cstdio>

#include "compute/assert.hpp"

namespace rml::messaging::metrics {

histogram::histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds_.size() + 1)) {
  for (std::size_t index = 1; index < upper_bounds_.size(); ++index) RML_ASSERT(upper_bounds_[index - 1] < upper_bounds_[index]);
}

void histogram::observe(double value) {
  std::size_t bucket = 0;
  while (bucket < upper_bounds_.size() && value > upper_bounds_[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> histogram::cumulative_counts() const {
  std::vector<std::uint64_t> counts(upper_bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t index = 0; index < counts.size(); ++index) {
    running += buckets_[index].load(std::memory_order_relaxed);
    counts[index] = running;
  }
  return counts;
}

const std::vector<double>& latency_bounds_seconds() {
  static const std::vector<double> bounds{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3,
                                          10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 10.0};
  return bounds;
}

const std::vector<double>& batch_rows_bounds() {
  static const std::vector<double> bounds{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  return bounds;
}

registry::family& registry::family_of(const std::string& name, const std::string& help, kind type) {
  auto [found, added] = families_.try_emplace(name, family{type, help, {}, {}, {}});
  RML_ASSERT(found->second.type == type);
  return found->second;
}

counter& registry::get_counter(const std::string& name, const std::string& help, const label_set& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& series = family_of(name, help, kind::counter).counters[render_labels(labels)];
  if (!series) series = std::make_unique<counter>();
  return *series;
}

gauge& registry::get_gauge(const std::string& name, const std::string& help, const label_set& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& series = family_of(name, help, kind::gauge).gauges[render_labels(labels)];
  if (!series) series = std::make_unique<gauge>();
  return *series;
}

histogram& registry::get_histogram(const std::string& name, const std::string& help, const label_set& labels,
                                   const std::vector<double>& upper_bounds) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& series = family_of(name, help, kind::histogram).histograms[render_labels(labels)];
  if (!series) series = std::make_unique<histogram>(upper_bounds);
  return *series;
}

namespace {
std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  char text[32];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

/// Adds `le="bound"` to an already rendered label set.
std::string with_le(const std::string& labels, const std::string& bound) {
  if (labels.empty()) return "{le=\"" + bound + "\"}";
  return labels.substr(0, labels.size() - 1) + ",le=\"" + bound + "\"}";
}
}  // namespace

std::string render_labels(const label_set& labels) {
  if (labels.empty()) return {};
  std::string text = "{";
  for (const auto& [name, value] : labels) {
    if (text.size() > 1) text += ',';
    text += name + "=\"";
    for (char c : value) {
      if (c == '\\' || c == '"') text += '\\', text += c;
      else if (c == '\n') text += "\\n";
      else text += c;
    }
    text += '"';
  }
  return text + "}";
}

std::string registry::render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string text;
  for (const auto& [name, family] : families_) {
    const char* type = family.type == kind::counter ? "counter" : family.type == kind::gauge ? "gauge" : "histogram";
    text += "# HELP " + name + " " + family.help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, series] : family.counters) text += name + labels + " " + number(series->value()) + "\n";
    for (const auto& [labels, series] : family.gauges) text += name + labels + " " + number(series->value()) + "\n";
    for (const auto& [labels, series] : family.histograms) {
      const auto counts = series->cumulative_counts();
      for (std::size_t index = 0; index < series->upper_bounds().size(); ++index) {
        text += name + "_bucket" + with_le(labels, number(series->upper_bounds()[index])) + " " + std::to_string(counts[index]) + "\n";
      }
      text += name + "_bucket" + with_le(labels, "+Inf") + " " + std::to_string(counts.back()) + "\n";
      text += name + "_sum" + labels + " " + number(series->sum()) + "\n";
      text += name + "_count" + labels + " " + std::to_string(counts.back()) + "\n";
    }
  }
  return text;
}

}  // namespace rml::messaging::metrics
