#include "actors/monitoring/drift.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "compute/assert.hpp"

namespace rml::actors::drift {

// ---- ADWIN ----

adwin::adwin(adwin_options options) : options_(options) {
  RML_ASSERT(options_.max_buckets >= 2 && options_.clock >= 1 && options_.delta > 0 && options_.delta < 1, "adwin options not checked");
}

bool adwin::update(double value) {
  insert(value);
  compress();
  if (++since_test_ < options_.clock || width_ < options_.grace) return false;
  since_test_ = 0;
  bool changed = false;
  // Drop the oldest bucket while some split still tells two different means apart.
  while (width_ > 2 * std::uint64_t(options_.min_side) && cut_found()) {
    drop_oldest();
    changed = true;
  }
  return changed;
}

void adwin::insert(double value) {
  if (rows_.empty()) rows_.emplace_back();
  if (width_ > 0) {
    const double mean_before = total_ / double(width_);
    squares_ += double(width_) / double(width_ + 1) * (value - mean_before) * (value - mean_before);
  }
  ++width_;
  total_ += value;
  rows_[0].push_back({value, 0.0});
}

void adwin::compress() {
  for (std::size_t row = 0; row < rows_.size(); ++row) {
    if (rows_[row].size() <= options_.max_buckets) break;  // rows above changed only if this one overflowed
    if (row + 1 == rows_.size()) rows_.emplace_back();
    auto& buckets = rows_[row];
    // The two oldest merge; the merged bucket is the newest of the next row (all older).
    const double size = double(std::uint64_t(1) << row);
    const bucket& older = buckets[0];
    const bucket& newer = buckets[1];
    const double gap = older.total / size - newer.total / size;
    bucket merged{older.total + newer.total, older.squares + newer.squares + size * size / (2 * size) * gap * gap};
    buckets.erase(buckets.begin(), buckets.begin() + 2);
    rows_[row + 1].push_back(merged);
  }
}

void adwin::drop_oldest() {
  std::size_t row = rows_.size();
  while (row > 0 && rows_[row - 1].empty()) --row;
  RML_ASSERT(row > 0, "adwin: dropping from an empty window");
  auto& buckets = rows_[row - 1];
  const bucket oldest = buckets.front();
  buckets.erase(buckets.begin());
  const double size = double(std::uint64_t(1) << (row - 1));
  width_ -= std::uint64_t(size);
  total_ -= oldest.total;
  if (width_ == 0) {
    total_ = squares_ = 0;
  } else {
    const double gap = oldest.total / size - total_ / double(width_);
    squares_ -= oldest.squares + size * double(width_) / (size + double(width_)) * gap * gap;
    squares_ = std::max(0.0, squares_);
  }
  while (!rows_.empty() && rows_.back().empty()) rows_.pop_back();
}

bool adwin::cut_found() const {
  const double n = double(width_);
  const double variance = squares_ / n;
  // δ' = δ / ln n: the union bound over the window's O(log n) tested splits (ADWIN2).
  const double log_term = std::log(2.0 * std::log(n) / options_.delta);
  double older_count = 0, older_total = 0;
  for (std::size_t row = rows_.size(); row-- > 0;) {
    const double size = double(std::uint64_t(1) << row);
    for (const bucket& each : rows_[row]) {
      older_count += size;
      older_total += each.total;
      const double newer_count = n - older_count;
      if (newer_count < options_.min_side) return false;
      if (older_count < options_.min_side) continue;
      // 1/m, with the authors' own correction in MOA's ADWIN (each side counted less the
      // smallest side allowed, plus one): wider bounds on short sides, fewer false cuts while
      // the mean slides (a model learning), the same cuts at a step.
      const double inverse_harmonic = 1.0 / (older_count - options_.min_side + 1) + 1.0 / (newer_count - options_.min_side + 1);
      const double bound = std::sqrt(2.0 * inverse_harmonic * variance * log_term) + 2.0 / 3.0 * inverse_harmonic * log_term;
      const double gap = older_total / older_count - (total_ - older_total) / newer_count;
      if (std::abs(gap) > bound) return true;
    }
  }
  return false;
}

// ---- Page-Hinkley ----

page_hinkley::page_hinkley(page_hinkley_options options) : options_(options) {}

void page_hinkley::reset() {
  count_ = 0;
  mean_ = rise_ = rise_min_ = fall_ = fall_max_ = 0;
}

bool page_hinkley::update(double value) {
  ++count_;
  mean_ += (value - mean_) / double(count_);
  const double deviation = value - mean_;
  rise_ = options_.alpha * rise_ + deviation - options_.delta;
  fall_ = options_.alpha * fall_ + deviation + options_.delta;
  rise_min_ = std::min(rise_min_, rise_);
  fall_max_ = std::max(fall_max_, fall_);
  if (count_ < options_.min_instances) return false;
  const bool up = rise_ - rise_min_ > options_.threshold;
  const bool down = fall_max_ - fall_ > options_.threshold;
  const bool change = options_.watch == page_hinkley_options::direction::up     ? up
                      : options_.watch == page_hinkley_options::direction::down ? down
                                                                                : up || down;
  if (change) {
    statistic_at_change_ = statistic();
    reset();
  }
  return change;
}

double page_hinkley::statistic() const {
  switch (options_.watch) {
    case page_hinkley_options::direction::up:
      return rise_ - rise_min_;
    case page_hinkley_options::direction::down:
      return fall_max_ - fall_;
    default:
      return std::max(rise_ - rise_min_, fall_max_ - fall_);
  }
}

// ---- DDM ----

ddm::ddm(ddm_options options) : options_(options) {}

void ddm::reset() {
  count_ = errors_ = 0;
  ps_min_ = p_min_ = s_min_ = 0;
  have_min_ = warning_ = false;
}

ddm_level ddm::update(bool error) {
  ++count_;
  errors_ += error ? 1 : 0;
  const double n = double(count_);
  const double p = double(errors_) / n;
  const double s = std::sqrt(p * (1 - p) / n);
  if (count_ <= options_.warm_start) return ddm_level::stable;
  if (!have_min_ || p + s <= ps_min_) {
    have_min_ = true;
    p_min_ = p;
    s_min_ = s;
    ps_min_ = p + s;
  }
  if (p + s > p_min_ + options_.drift_threshold * s_min_) {
    reset();
    return ddm_level::drift;
  }
  warning_ = p + s > p_min_ + options_.warning_threshold * s_min_;
  return warning_ ? ddm_level::warning : ddm_level::stable;
}

// ---- the three over one stream ----

concept_drift::concept_drift(concept_drift_options options)
    : adwin_(options.adwin), page_hinkley_(options.page_hinkley), ddm_(options.ddm) {}

concept_drift_alarms concept_drift::update(bool error) {
  ++seen_;
  concept_drift_alarms alarms;
  // A fall in the error rate (a better model) also moves ADWIN's window; only a rise alarms.
  const double mean_before = adwin_.mean();
  alarms.adwin = adwin_.update(error ? 1.0 : 0.0) && adwin_.mean() > mean_before;
  alarms.page_hinkley = page_hinkley_.update(error ? 1.0 : 0.0);
  alarms.ddm = ddm_.update(error) == ddm_level::drift;
  return alarms;
}

namespace {
rml::error invalid(std::string message) { return rml::error(errc::invalid_argument, std::move(message)); }
}  // namespace

rml::status check(const concept_drift_options& options) {
  if (!(options.adwin.delta > 0 && options.adwin.delta < 1))
    return invalid("adwin delta must be in (0, 1), got " + std::to_string(options.adwin.delta));
  if (options.adwin.clock < 1) return invalid("adwin clock must be ≥ 1, got 0");
  if (options.adwin.max_buckets < 2) return invalid("adwin max buckets must be ≥ 2, got " + std::to_string(options.adwin.max_buckets));
  if (!(options.page_hinkley.threshold > 0))
    return invalid("page-hinkley threshold must be > 0, got " + std::to_string(options.page_hinkley.threshold));
  if (!(options.page_hinkley.delta >= 0)) return invalid("page-hinkley delta must be ≥ 0, got " + std::to_string(options.page_hinkley.delta));
  if (!(options.page_hinkley.alpha > 0 && options.page_hinkley.alpha <= 1))
    return invalid("page-hinkley alpha must be in (0, 1], got " + std::to_string(options.page_hinkley.alpha));
  if (!(options.ddm.warning_threshold > 0 && options.ddm.drift_threshold > options.ddm.warning_threshold))
    return invalid("ddm thresholds must be 0 < warning < drift, got warning " + std::to_string(options.ddm.warning_threshold) + ", drift " +
                   std::to_string(options.ddm.drift_threshold));
  return {};
}

// ---- input drift ----

feature_reference build_reference(std::span<const float> rows, std::size_t features, std::size_t bins) {
  RML_ASSERT(features > 0 && bins >= 1 && rows.size() % features == 0, "build_reference: rows are not whole rows of features");
  feature_reference reference;
  const std::size_t count = rows.size() / features;
  reference.rows = count;
  reference.edges.resize(features);
  reference.shares.resize(features);
  if (count == 0) {
    reference.edges.clear();
    reference.shares.clear();
    return reference;
  }
  // Columns first, transposed in tiles: reading a feature down 1024 rows of 784 would touch a
  // cache line per value.
  std::vector<float> columns(count * features);
  constexpr std::size_t tile = 32;
  for (std::size_t row_start = 0; row_start < count; row_start += tile) {
    for (std::size_t feature_start = 0; feature_start < features; feature_start += tile) {
      for (std::size_t row = row_start; row < std::min(count, row_start + tile); ++row) {
        for (std::size_t feature = feature_start; feature < std::min(features, feature_start + tile); ++feature) {
          columns[feature * count + row] = rows[row * features + feature];
        }
      }
    }
  }
  // The edges come from the first `quantile_rows` of the sample (a uniform sample's part is
  // one too): selection costs per row, and the quantiles of 256 rows are within a few
  // hundredths of those of all of them. The shares count every row, as input_drift::add
  // bins them.
  constexpr std::size_t quantile_rows = 256;
  const std::size_t selected = std::min(count, quantile_rows);
  std::vector<float> part(selected);
  std::vector<float> padded;
  for (std::size_t feature = 0; feature < features; ++feature) {
    const auto column = std::span<const float>(columns).subspan(feature * count, count);
    std::copy(column.begin(), column.begin() + std::ptrdiff_t(selected), part.begin());
    auto& edges = reference.edges[feature];
    auto from = part.begin();
    for (std::size_t bin = 1; bin < bins; ++bin) {
      const auto at = part.begin() + std::ptrdiff_t(std::min(selected - 1, bin * selected / bins));
      if (at < from) {
        edges.push_back(*(from - 1));
        continue;
      }
      std::nth_element(from, at, part.end());  // each in what the previous left above it
      edges.push_back(*at);
      from = at + 1;
    }
    edges.push_back(*std::max_element(column.begin(), column.end()));
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    // Shares: bin(v) = count of edges below v, counted branch-free over padded edges.
    padded.assign((edges.size() + 7) / 8 * 8, std::numeric_limits<float>::infinity());
    std::copy(edges.begin(), edges.end(), padded.begin());
    auto& shares = reference.shares[feature];
    shares.assign(edges.size() + 1, 0.0);
    std::vector<std::uint32_t> counts(edges.size() + 1, 0);
    for (float value : column) {
      std::uint32_t bin = 0;
      for (float edge : padded) bin += edge < value ? 1u : 0u;
      if (value != value) bin = std::uint32_t(edges.size());
      ++counts[bin];
    }
    for (std::size_t bin = 0; bin < counts.size(); ++bin) shares[bin] = double(counts[bin]) / double(count);
  }
  return reference;
}

rml::status check(const input_drift_options& options) {
  if (options.blocks < 1) return invalid("input drift blocks must be ≥ 1, got 0");
  if (options.window_rows < options.blocks)
    return invalid("input drift window must hold at least one row per block, got " + std::to_string(options.window_rows) + " rows in " +
                   std::to_string(options.blocks) + " blocks");
  if (!(options.psi_drifted > 0)) return invalid("input drift psi threshold must be > 0, got " + std::to_string(options.psi_drifted));
  if (!(options.drifted_share_alarm > 0 && options.drifted_share_alarm <= 1))
    return invalid("input drift share of drifted features must be in (0, 1], got " + std::to_string(options.drifted_share_alarm));
  if (!(options.ks_alpha > 0 && options.ks_alpha < 1)) return invalid("input drift ks alpha must be in (0, 1), got " + std::to_string(options.ks_alpha));
  return {};
}

input_drift::input_drift(feature_reference reference, input_drift_options options)
    : reference_(std::move(reference)), options_(options), block_rows_(std::max<std::uint32_t>(1, options.window_rows / std::max<std::uint32_t>(1, options.blocks))) {
  RML_ASSERT(check(options_).ok(), "input drift options not checked");
  offset_.resize(reference_.features());
  for (std::size_t feature = 0; feature < reference_.features(); ++feature) {
    offset_[feature] = bins_total_;
    bins_total_ += reference_.edges[feature].size() + 1;
  }
  for (const auto& edges : reference_.edges) edge_stride_ = std::max(edge_stride_, (edges.size() + 7) / 8 * 8);
  padded_edges_.assign(reference_.features() * edge_stride_, std::numeric_limits<float>::infinity());
  for (std::size_t feature = 0; feature < reference_.features(); ++feature) {
    std::copy(reference_.edges[feature].begin(), reference_.edges[feature].end(), padded_edges_.begin() + feature * edge_stride_);
  }
  counts_.assign(options_.blocks, std::vector<std::uint32_t>(bins_total_, 0));
  block_filled_.assign(options_.blocks, 0);
}

bool input_drift::add(std::span<const float> row) {
  if (row.size() != reference_.features() || reference_.empty()) return false;
  if (block_filled_[current_] == block_rows_) {
    // The oldest block leaves the window.
    current_ = (current_ + 1) % options_.blocks;
    std::fill(counts_[current_].begin(), counts_[current_].end(), 0);
    block_filled_[current_] = 0;
  }
  auto& counts = counts_[current_];
  // Edges are few (at most bins): counting those below a value over a padded row of them is
  // branch-free and vectorizes, where a binary search mispredicts (6× slower, bench/drift_bench.cpp).
  for (std::size_t feature = 0; feature < row.size(); ++feature) {
    const float value = row[feature];
    const float* edges = padded_edges_.data() + feature * edge_stride_;
    std::uint32_t bin = 0;
    for (std::size_t index = 0; index < edge_stride_; ++index) bin += edges[index] < value ? 1u : 0u;
    // NaN lands above every edge: as unlike training as a value can be.
    if (value != value) bin = std::uint32_t(reference_.edges[feature].size());
    ++counts[offset_[feature] + bin];
  }
  ++block_filled_[current_];
  return true;
}

std::uint64_t input_drift::rows_in_window() const {
  std::uint64_t rows = 0;
  for (auto filled : block_filled_) rows += filled;
  return rows;
}

input_drift_statistics input_drift::statistics() const {
  input_drift_statistics result;
  const std::size_t features = reference_.features();
  result.rows = rows_in_window();
  result.psi.assign(features, 0.0);
  result.ks.assign(features, 0.0);
  if (result.rows == 0 || features == 0) return result;
  const double rows = double(result.rows);
  // A share of 0 on either side makes PSI infinite: both are floored at half a row's share.
  const double floor = 0.5 / std::max(rows, double(reference_.rows));
  const double critical = std::sqrt(-std::log(options_.ks_alpha / 2) / 2) * std::sqrt((rows + double(reference_.rows)) / (rows * double(reference_.rows)));
  std::vector<double> window_counts;
  for (std::size_t feature = 0; feature < features; ++feature) {
    const auto& shares = reference_.shares[feature];
    window_counts.assign(shares.size(), 0.0);
    for (const auto& block : counts_) {
      for (std::size_t bin = 0; bin < shares.size(); ++bin) window_counts[bin] += block[offset_[feature] + bin];
    }
    double psi = 0, cumulative_window = 0, cumulative_reference = 0, ks = 0;
    for (std::size_t bin = 0; bin < shares.size(); ++bin) {
      const double actual = std::max(window_counts[bin] / rows, floor);
      const double expected = std::max(shares[bin], floor);
      psi += (actual - expected) * std::log(actual / expected);
      cumulative_window += window_counts[bin] / rows;
      cumulative_reference += shares[bin];
      ks = std::max(ks, std::abs(cumulative_window - cumulative_reference));
    }
    result.psi[feature] = psi;
    result.ks[feature] = ks;
    result.psi_mean += psi;
    if (psi > result.psi_max) {
      result.psi_max = psi;
      result.psi_max_feature = feature;
    }
    result.ks_max = std::max(result.ks_max, ks);
    result.drifted_features += psi > options_.psi_drifted ? 1 : 0;
    result.ks_differing += ks > critical ? 1 : 0;
  }
  result.psi_mean /= double(features);
  result.alarm = result.rows >= options_.rows_min && double(result.drifted_features) >= options_.drifted_share_alarm * double(features);
  return result;
}

}  // namespace rml::actors::drift
