#pragma once
// Drift detectors: what the monitoring component runs over the live streams.
//
// Concept drift, over a stream of values (the labelled stream's error bits: 1 = the model
// was wrong): ADWIN, Page-Hinkley and DDM. Data drift, over request inputs against the
// training reference a model snapshot carries: the population stability index and a
// two-sample Kolmogorov–Smirnov statistic per feature, over a sliding window of bounded
// memory. No actor, clock or allocation per value: each detector is a value the monitoring
// actor owns and feeds (and the simulator can replay).
//
// Written here rather than taken from a library: Debian 12 packages no C++ implementation of
// these (River, the reference one, is Python); bench/drift_detectors_river.py compares them
// with River's on the same streams.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compute/status.hpp"

namespace rml::actors::drift {

/// ADWIN (Bifet and Gavaldà, "Learning from Time-Changing Data with Adaptive Windowing",
/// SDM 2007; ADWIN2, its exponential histogram): keeps the longest window whose every split
/// into an older and a newer part has means within a Hoeffding-style bound; a change is the
/// window dropping its older part. The false-alarm rate per split test is at most `delta`.
struct adwin_options {
  /// Confidence: smaller raises fewer false alarms and detects later.
  double delta = 0.002;
  /// Splits are tested every `clock` values (the cost of a test is O(log width)).
  std::uint32_t clock = 32;
  /// Buckets of one size kept before two merge (memory and precision: O(max_buckets·log W)).
  std::uint32_t max_buckets = 5;
  /// Each side of a split holds at least this many values.
  std::uint32_t min_side = 5;
  /// No test before the window holds this many values.
  std::uint32_t grace = 10;
};

class adwin {
 public:
  explicit adwin(adwin_options options = {});
  /// Adds a value; true when the window dropped its older part (a change).
  bool update(double value);
  double mean() const { return width_ ? total_ / double(width_) : 0.0; }
  std::uint64_t width() const { return width_; }
  /// Variance of the values in the window.
  double variance() const { return width_ ? squares_ / double(width_) : 0.0; }
  const adwin_options& options() const { return options_; }

 private:
  struct bucket {
    double total = 0;
    double squares = 0;  // sum of squared deviations from the bucket's mean
  };
  /// rows_[r]: buckets of 2^r values each, oldest first; row r+1's are all older than row r's.
  std::vector<std::vector<bucket>> rows_;
  std::uint64_t width_ = 0;
  double total_ = 0, squares_ = 0;
  std::uint64_t since_test_ = 0;
  adwin_options options_;

  void insert(double value);
  void compress();
  void drop_oldest();
  bool cut_found() const;
};

/// Page-Hinkley (Page 1954, the CUSUM test on a fading mean): the cumulative deviation of
/// each value from the running mean, less `delta`, faded by `alpha`; a change when it rises
/// (or falls) more than `threshold` from its extreme. Resets after a change.
struct page_hinkley_options {
  std::uint32_t min_instances = 30;
  /// Tolerated change in the mean before deviations accumulate.
  double delta = 0.005;
  /// λ: the accumulated deviation that is a change.
  double threshold = 50.0;
  /// Fading factor of the accumulated deviations (1: none).
  double alpha = 0.9999;
  enum class direction { up, down, both } watch = direction::both;
};

class page_hinkley {
 public:
  explicit page_hinkley(page_hinkley_options options = {});
  bool update(double value);
  /// The test statistic now (what is compared with the threshold; the larger of the two
  /// when both directions are watched).
  double statistic() const;
  /// The statistic when it last passed the threshold (it resets then).
  double statistic_at_change() const { return statistic_at_change_; }
  const page_hinkley_options& options() const { return options_; }

 private:
  page_hinkley_options options_;
  std::uint64_t count_ = 0;
  double mean_ = 0;
  double rise_ = 0, rise_min_ = 0, fall_ = 0, fall_max_ = 0;
  double statistic_at_change_ = 0;
  void reset();
};

/// DDM (Gama, Medas, Castillo, Rodrigues, "Learning with Drift Detection", SBIA 2004): the
/// error rate p and its deviation s = sqrt(p(1−p)/n) over the stream of error bits; with
/// (p_min, s_min) where p + s was lowest, a warning when p + s > p_min + warning·s_min and a
/// change when p + s > p_min + drift·s_min. Resets after a change.
struct ddm_options {
  std::uint32_t warm_start = 30;
  double warning_threshold = 2.0;
  double drift_threshold = 3.0;
};

enum class ddm_level { stable, warning, drift };

class ddm {
 public:
  explicit ddm(ddm_options options = {});
  ddm_level update(bool error);
  double error_rate() const { return count_ ? double(errors_) / double(count_) : 0.0; }
  bool warning() const { return warning_; }
  const ddm_options& options() const { return options_; }

 private:
  ddm_options options_;
  std::uint64_t count_ = 0, errors_ = 0;
  double ps_min_ = 0, p_min_ = 0, s_min_ = 0;
  bool have_min_ = false, warning_ = false;
  void reset();
};

/// The three concept-drift detectors over one stream of error bits, as the monitoring
/// component runs them: each alarms on a rise in the error rate only (Page-Hinkley watches
/// upwards, DDM only sees rises, and ADWIN's change counts when its window's mean rose).
struct concept_drift_options {
  adwin_options adwin;
  /// Not River's defaults (λ 50, α 0.9999): a model's error falls as it learns, and a faded
  /// sum climbs back from the minimum that fall left, an alarm with no rise at all (20 in 20
  /// seeded learning curves at α 0.9999, none at α 1); λ 100 keeps false alarms on a
  /// stationary stream under 1 in 200 000 values (1.5 to 3 per 100 000 at 50) for a delay of
  /// about 290 values on a rise from 0.2 to 0.5 (about 115 at 50). bench/RESULTS.md.
  page_hinkley_options page_hinkley{.threshold = 100, .alpha = 1.0, .watch = page_hinkley_options::direction::up};
  ddm_options ddm;
};

struct concept_drift_alarms {
  bool adwin = false, page_hinkley = false, ddm = false;
  bool any() const { return adwin || page_hinkley || ddm; }
};

class concept_drift {
 public:
  explicit concept_drift(concept_drift_options options = {});
  concept_drift_alarms update(bool error);
  const adwin& window() const { return adwin_; }
  const page_hinkley& hinkley() const { return page_hinkley_; }
  const ddm& drift_detection() const { return ddm_; }
  std::uint64_t seen() const { return seen_; }

 private:
  adwin adwin_;
  page_hinkley page_hinkley_;
  ddm ddm_;
  std::uint64_t seen_ = 0;
};

/// Validates detector parameters a user gave (flags, topology options): the message names
/// the parameter and what is allowed.
rml::status check(const concept_drift_options& options);

/// What a model's training data looked like, per feature: bin edges (quantiles of the
/// training values, and their maximum, so that "above anything trained on" is a bin of its
/// own) and the share of training values in each bin. Value v falls in bin
/// count(edges < v): bins = edges + 1.
struct feature_reference {
  std::vector<std::vector<float>> edges;
  std::vector<std::vector<double>> shares;
  /// Rows the reference was built from (the KS critical value needs it).
  std::uint64_t rows = 0;
  std::size_t features() const { return edges.size(); }
  bool empty() const { return edges.empty(); }
};

/// Builds the reference from `rows` (row-major, `features` values each), at most `bins`
/// quantile bins per feature (fewer where values repeat: a pixel always 0 has two, "0" and
/// "above 0").
feature_reference build_reference(std::span<const float> rows, std::size_t features, std::size_t bins = 10);

/// Input drift against a reference over the last `window_rows` rows, kept as `blocks`
/// counts of window_rows/blocks rows each (memory: features × bins × blocks counters, never
/// the rows). Adding a row costs one binary search per feature.
struct input_drift_options {
  std::uint32_t window_rows = 2048;
  std::uint32_t blocks = 8;
  /// PSI of a feature above which it counts as drifted (0.2: "significant", the usual rule).
  double psi_drifted = 0.2;
  /// Share of features drifted that raises the input-drift alarm.
  double drifted_share_alarm = 0.05;
  /// Rows the window must hold before statistics are judged.
  std::uint32_t rows_min = 512;
  /// KS significance: a feature whose statistic exceeds c(alpha)·sqrt((n+m)/(n·m)) differs.
  double ks_alpha = 0.001;
};

struct input_drift_statistics {
  std::vector<double> psi;  // per feature
  std::vector<double> ks;   // per feature (binned: the largest gap between the CDFs at the edges)
  double psi_mean = 0, psi_max = 0, ks_max = 0;
  std::size_t psi_max_feature = 0;
  std::size_t drifted_features = 0;  // PSI above psi_drifted
  std::size_t ks_differing = 0;      // KS above its critical value
  std::uint64_t rows = 0;            // in the window
  bool alarm = false;
};

class input_drift {
 public:
  input_drift(feature_reference reference, input_drift_options options = {});
  /// Adds one request row; a row whose width is not the reference's is refused (false).
  bool add(std::span<const float> row);
  input_drift_statistics statistics() const;
  const feature_reference& reference() const { return reference_; }
  std::uint64_t rows_in_window() const;

 private:
  feature_reference reference_;
  input_drift_options options_;
  std::uint32_t block_rows_;
  /// counts_[block][offset_[feature] + bin]
  std::vector<std::vector<std::uint32_t>> counts_;
  std::vector<std::uint32_t> block_filled_;
  std::vector<std::size_t> offset_;
  /// Each feature's edges, padded with +inf to edge_stride_ (a multiple of 8).
  std::vector<float> padded_edges_;
  std::size_t edge_stride_ = 0;
  std::size_t bins_total_ = 0;
  std::uint32_t current_ = 0;
};

rml::status check(const input_drift_options& options);

}  // namespace rml::actors::drift
