// The drift detectors on streams given as files, for bench/drift_detectors_river.py, which
// writes the streams, runs River's detectors on the same bits and compares.
//
//   rml_drift_bench --streams FILE...    (each FILE: one byte per value, 0 or 1)
//   rml_drift_bench --input-cost         (ns per request row of input-drift monitoring)
//
// Prints one JSON object per stream: the indices where each detector fired and the time one
// update took (ns, the median of 5 passes). "page_hinkley" has River's defaults (λ 50, α 0.9999);
// "page_hinkley_monitoring" the monitoring component's (λ 100, α 1: drift.hpp says why).

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "actors/monitoring/drift.hpp"

using namespace rml::actors::drift;
using clock_type = std::chrono::steady_clock;

namespace {
std::vector<bool> read_bits(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<bool> bits(bytes.size());
  for (std::size_t index = 0; index < bytes.size(); ++index) bits[index] = bytes[index] != 0;
  return bits;
}

template <class Make>
std::pair<std::vector<std::size_t>, double> run(const std::vector<bool>& bits, Make make) {
  std::vector<std::size_t> fired;
  std::vector<double> times;
  for (int pass = 0; pass < 5; ++pass) {
    auto detector = make();
    std::vector<std::size_t> found;
    const auto start = clock_type::now();
    for (std::size_t index = 0; index < bits.size(); ++index) {
      if (detector(bits[index])) found.push_back(index);
    }
    times.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - start).count() / double(bits.size()));
    fired = std::move(found);
  }
  std::sort(times.begin(), times.end());
  return {fired, times[times.size() / 2]};
}

void print(const char* name, const std::pair<std::vector<std::size_t>, double>& result, bool last) {
  std::printf("\"%s\": {\"fired\": [", name);
  for (std::size_t index = 0; index < result.first.size(); ++index) std::printf("%s%zu", index ? ", " : "", result.first[index]);
  std::printf("], \"ns_per_update\": %.1f}%s", result.second, last ? "" : ", ");
}

/// Cost of input-drift monitoring per request row of Fashion-MNIST's shape (784 features,
/// 10 quantile bins), and of one statistics pass over the window.
void input_cost() {
  constexpr std::size_t features = 784;
  std::mt19937_64 generator(1);
  auto next = [&] { return float(double(generator() >> 11) * 0x1.0p-53); };
  std::vector<float> training(20'000 * features);
  for (auto& value : training) value = next() < 0.5f ? 0.0f : next();  // half the pixels dark, like the images
  const std::clock_t build_cpu_start = std::clock();
  const auto reference = build_reference(std::span<const float>(training).first(1024 * features), features, 10);
  // CPU time, not wall time: what the trainer's thread spends, whatever else runs.
  const double build_ms = double(std::clock() - build_cpu_start) * 1000.0 / CLOCKS_PER_SEC;
  input_drift drift(reference);
  std::vector<float> rows(4096 * features);
  for (auto& value : rows) value = next() < 0.5f ? 0.0f : next();
  std::vector<double> per_row, per_statistics;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = clock_type::now();
    for (std::size_t row = 0; row < 4096; ++row) drift.add(std::span(rows).subspan(row * features, features));
    per_row.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - start).count() / 4096.0);
    const auto statistics_start = clock_type::now();
    auto statistics = drift.statistics();
    per_statistics.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - statistics_start).count());
    if (statistics.rows == 0) std::printf("no rows\n");
  }
  std::sort(per_row.begin(), per_row.end());
  std::sort(per_statistics.begin(), per_statistics.end());
  std::printf("{\"input_drift_ns_per_row\": %.0f, \"statistics_us\": %.0f, \"features\": %zu, \"reference_build_ms\": %.1f}\n", per_row[2],
              per_statistics[2], features, build_ms);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rml's drift detectors on streams of error bits"};
  std::vector<std::string> streams;
  bool cost = false;
  app.add_option("--streams", streams, "files of one byte per value (0 or 1)")->check(CLI::ExistingFile);
  app.add_flag("--input-cost", cost, "measure input-drift monitoring per request row");
  CLI11_PARSE(app, argc, argv);
  if (cost) input_cost();
  for (const auto& path : streams) {
    const auto bits = read_bits(path);
    std::printf("{\"stream\": \"%s\", ", path.c_str());
    print("adwin", run(bits, [] { return [detector = adwin()](bool bit) mutable { return detector.update(bit ? 1.0 : 0.0); }; }), false);
    print("page_hinkley",
          run(bits,
              [] {
                return [detector = page_hinkley({.watch = page_hinkley_options::direction::up})](bool bit) mutable {
                  return detector.update(bit ? 1.0 : 0.0);
                };
              }),
          false);
    print("page_hinkley_monitoring",
          run(bits,
              [] {
                return [detector = page_hinkley(concept_drift_options{}.page_hinkley)](bool bit) mutable { return detector.update(bit ? 1.0 : 0.0); };
              }),
          false);
    print("ddm", run(bits, [] { return [detector = ddm()](bool bit) mutable { return detector.update(bit) == ddm_level::drift; }; }), true);
    std::printf("}\n");
  }
  return 0;
}
