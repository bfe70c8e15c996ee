// `rml sim SCENARIO --seed N` and `rml sim SCENARIO --seeds A..B`: runs a scenario in the
// deterministic simulator (sim/world.hpp) and checks its invariants. One seed prints
// `seed=N` first, then what happened; a violation prints the invariant, the command that
// replays it and the trace around it. A sweep runs the seeds in worker processes, one per
// core (each run is single-threaded and deterministic; processes, not threads, so that no
// run shares anything with another), shows a progress bar, prints a summary table and re-runs
// a sample of seeds to check that their traces hash the same.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "apps/rml/commands.hpp"
#include "apps/rml/progress.hpp"
#include "apps/rml/run_options.hpp"
#include "sim/world.hpp"

namespace rml::app {
namespace {

struct sim_options {
  std::string scenario;
  std::uint64_t seed = 1;
  std::string seeds;
  unsigned jobs = 0;
  std::string trace_file;
  std::string report_file;
  std::string scratch;
  std::vector<std::string> plant;
  unsigned verify = 2;
  bool quiet = false;
};

/// The components' options as `rml run` builds them from the scenario's topology, on the
/// synthetic stream, with one compute thread each (a run is single-threaded).
result<topologies::pipeline_options> components_of(const sim::scenario& plan) {
  auto options = run_options_of(plan.topology);
  if (!options) return error(options.error().code(), plan.file + ": the topology's options: " + options.error().message());
  if (options->pipeline.empty()) options->pipeline = "standardize";
  auto train = sim::synthetic_stream(plan.data, 20261205);
  auto pipeline = make_pipeline(*options, train, train->classes);
  if (!pipeline) return error(pipeline.error().code(), plan.file + ": " + pipeline.error().message());
  pipeline->trainer.compute_threads = 1;
  pipeline->serving.lane.replica.compute_threads = 1;
  pipeline->source.events_per_second = plan.data.events_per_second;
  // The stream lasts the whole run.
  const double events = plan.data.events_per_second * double(plan.duration.count()) / 1000.0;
  pipeline->source.epochs = std::uint32_t(std::ceil(events / double(plan.data.rows))) + 1;
  return pipeline;
}

result<std::pair<std::uint64_t, std::uint64_t>> parse_seed_range(const std::string& text) {
  const auto dots = text.find("..");
  auto fail = [&] { return error(errc::invalid_argument, "--seeds '" + text + "': expected A..B (first and last seed, A <= B)"); };
  if (dots == std::string::npos) return fail();
  try {
    std::size_t used = 0;
    const auto first = std::stoull(text.substr(0, dots), &used);
    if (used != dots) return fail();
    const auto rest = text.substr(dots + 2);
    const auto last = std::stoull(rest, &used);
    if (used != rest.size() || last < first) return fail();
    return std::pair<std::uint64_t, std::uint64_t>{first, last};
  } catch (...) {
    return fail();
  }
}

result<sim::planted_bugs> planted(const std::vector<std::string>& names) {
  sim::planted_bugs bugs;
  for (const auto& name : names) {
    if (name == "drop-requests-of-lost-node") bugs.drop_requests_of_lost_node = true;
    else return error(errc::invalid_argument, "--plant-bug '" + name + "': unknown (known: drop-requests-of-lost-node)");
  }
  return bugs;
}

/// The trace's lines within a second of `at_ms`.
std::string trace_around(const std::string& trace, std::int64_t at_ms) {
  std::istringstream lines(trace);
  std::string line, out;
  while (std::getline(lines, line)) {
    double seconds = 0;
    if (std::sscanf(line.c_str(), "%lf", &seconds) != 1) continue;
    if (std::abs(seconds * 1000 - double(at_ms)) <= 1000) out += "    " + line + "\n";
  }
  return out;
}

void print_violations(const sim::run_report& report, const sim_options& options) {
  for (const auto& found : report.violations) {
    std::printf("VIOLATION %s at %.3f s: %s\n", found.invariant.c_str(), double(found.at_ms) / 1000, found.what.c_str());
  }
  if (report.violations.empty()) return;
  std::string plants;
  for (const auto& bug : options.plant) plants += " --plant-bug " + bug;
  std::printf("replay: rml sim %s --seed %llu%s --trace trace.txt\n", options.scenario.c_str(), (unsigned long long)report.seed, plants.c_str());
  std::printf("trace around the first violation:\n%s", trace_around(report.trace, report.violations.front().at_ms).c_str());
}

int run_one(const sim::scenario& plan, const sim_options& options, const topologies::pipeline_options& components, const sim::planted_bugs& bugs) {
  std::printf("seed=%llu\n", (unsigned long long)options.seed);
  std::fflush(stdout);
  sim::world_options world;
  world.seed = options.seed;
  world.components = components;
  world.bugs = bugs;
  world.scratch_directory = options.scratch;
  std::optional<progress_display> progress;
  if (!options.quiet) progress.emplace("rml sim " + plan.name, plan.duration.count(), "simulated ms");
  world.progress = [&](std::int64_t done, std::int64_t) {
    if (progress) progress->update(done, "");
  };
  auto report = sim::run_scenario(plan, world);
  if (!report) {
    std::fprintf(stderr, "rml sim: %s\n", report.error().message().c_str());
    return 1;
  }
  if (progress) progress->finish("");
  if (!options.trace_file.empty()) {
    std::ofstream out(options.trace_file);
    out << report->trace;
    if (!out) std::fprintf(stderr, "rml sim: --trace %s: cannot write\n", options.trace_file.c_str());
  }
  if (!options.report_file.empty()) {
    std::ofstream out(options.report_file);
    out << sim::timeline_svg(*report);
    if (!out) std::fprintf(stderr, "rml sim: --report %s: cannot write\n", options.report_file.c_str());
  }
  for (const auto& [at, what] : report->events) std::printf("%10.3f  %s\n", at, what.c_str());
  std::printf("scenario %s seed %llu: %.0f simulated s in %.2f wall s (%.0fx); %llu requests: %llu ok, %llu errors, %llu unanswered, "
              "%llu answered twice; model v%llu; %llu faults; trace %s\n",
              plan.name.c_str(), (unsigned long long)options.seed, report->simulated_seconds, report->wall_seconds,
              report->simulated_seconds / std::max(1e-9, report->wall_seconds), (unsigned long long)report->requests,
              (unsigned long long)report->answered_ok, (unsigned long long)report->answered_error, (unsigned long long)report->unanswered,
              (unsigned long long)report->answered_twice, (unsigned long long)report->highest_version, (unsigned long long)report->faults,
              report->trace_hash.c_str());
  print_violations(*report, options);
  if (report->violations.empty()) std::printf("invariants hold\n");
  return report->violations.empty() ? 0 : 3;
}

struct seed_result {
  std::uint64_t seed = 0;
  std::string hash;
  std::size_t violations = 0;
  std::string first_invariant;
  std::uint64_t requests = 0, ok = 0, errors = 0;
  double wall = 0, simulated = 0;
  bool failed = false;
};

int run_sweep(const sim::scenario& plan, const sim_options& options, const topologies::pipeline_options& components, const sim::planted_bugs& bugs) {
  auto range = parse_seed_range(options.seeds);
  if (!range) {
    std::fprintf(stderr, "rml sim: %s\n", range.error().message().c_str());
    return 2;
  }
  const auto [first, last] = *range;
  const std::uint64_t count = last - first + 1;
  unsigned jobs = options.jobs > 0 ? options.jobs : std::max(1u, std::thread::hardware_concurrency());
  jobs = unsigned(std::min<std::uint64_t>(jobs, count));
  auto run_seed = [&](std::uint64_t seed) {
    sim::world_options world;
    world.seed = seed;
    world.components = components;
    world.bugs = bugs;
    world.scratch_directory = options.scratch;
    seed_result out;
    out.seed = seed;
    auto report = sim::run_scenario(plan, world);
    if (!report) {
      out.failed = true;
      out.first_invariant = report.error().message();
      return out;
    }
    out.hash = report->trace_hash;
    out.violations = report->violations.size();
    if (!report->violations.empty()) out.first_invariant = report->violations.front().invariant;
    out.requests = report->requests;
    out.ok = report->answered_ok;
    out.errors = report->answered_error;
    out.wall = report->wall_seconds;
    out.simulated = report->simulated_seconds;
    return out;
  };
  // Workers: seed i goes to worker i mod jobs; each writes one line per seed to its pipe.
  std::vector<std::pair<pid_t, int>> workers;
  for (unsigned worker = 0; worker < jobs; ++worker) {
    int ends[2];
    if (::pipe(ends) != 0) {
      std::perror("rml sim: pipe");
      return 1;
    }
    const pid_t child = ::fork();
    if (child < 0) {
      std::perror("rml sim: fork");
      return 1;
    }
    if (child == 0) {
      ::close(ends[0]);
      for (std::uint64_t seed = first + worker; seed <= last; seed += jobs) {
        auto result = run_seed(seed);
        char line[512];
        const int length = std::snprintf(line, sizeof line, "%llu %s %zu %s %llu %llu %llu %.3f %.3f %d\n", (unsigned long long)result.seed,
                                         result.hash.empty() ? "-" : result.hash.c_str(), result.violations,
                                         result.first_invariant.empty() ? "-" : result.first_invariant.c_str(), (unsigned long long)result.requests,
                                         (unsigned long long)result.ok, (unsigned long long)result.errors, result.wall, result.simulated, int(result.failed));
        if (::write(ends[1], line, std::size_t(length)) < 0) ::_exit(1);
      }
      ::_exit(0);
    }
    ::close(ends[1]);
    workers.emplace_back(child, ends[0]);
  }
  std::map<std::uint64_t, seed_result> results;
  progress_display progress("rml sim " + plan.name + " seeds " + options.seeds, std::int64_t(count), "seeds");
  std::vector<std::string> buffers(workers.size());
  std::size_t open = workers.size();
  std::size_t violated = 0;
  while (open > 0) {
    for (std::size_t index = 0; index < workers.size(); ++index) {
      auto& [pid, fd] = workers[index];
      if (fd < 0) continue;
      fd_set readable;
      FD_ZERO(&readable);
      FD_SET(fd, &readable);
      timeval wait{0, 100'000};
      if (::select(fd + 1, &readable, nullptr, nullptr, &wait) <= 0) continue;
      char chunk[4096];
      const auto got = ::read(fd, chunk, sizeof chunk);
      if (got <= 0) {
        ::close(fd);
        fd = -1;
        --open;
        continue;
      }
      buffers[index].append(chunk, std::size_t(got));
      std::size_t end;
      while ((end = buffers[index].find('\n')) != std::string::npos) {
        std::istringstream line(buffers[index].substr(0, end));
        buffers[index].erase(0, end + 1);
        seed_result each;
        int failed = 0;
        line >> each.seed >> each.hash >> each.violations >> each.first_invariant >> each.requests >> each.ok >> each.errors >> each.wall >>
            each.simulated >> failed;
        each.failed = failed != 0;
        if (each.violations > 0 || each.failed) ++violated;
        results[each.seed] = each;
        progress.update(std::int64_t(results.size()), std::to_string(violated) + " with violations");
      }
    }
  }
  for (auto& [pid, fd] : workers) ::waitpid(pid, nullptr, 0);
  progress.finish(std::to_string(violated) + " with violations");
  // The summary: per invariant, how many seeds broke it and the first of them.
  std::map<std::string, std::pair<std::size_t, std::uint64_t>> by_invariant;
  double wall = 0, simulated = 0;
  std::uint64_t requests = 0, ok = 0;
  for (const auto& [seed, each] : results) {
    wall += each.wall;
    simulated += each.simulated;
    requests += each.requests;
    ok += each.ok;
    if (each.failed || each.violations > 0) {
      auto& entry = by_invariant[each.failed ? "(run failed)" : each.first_invariant];
      if (entry.first++ == 0) entry.second = seed;
    }
  }
  std::printf("scenario %s, seeds %s: %zu runs, %zu with violations; %.0f simulated s in %.1f wall s of runs (%.0fx); %llu requests, %.4f ok\n",
              plan.name.c_str(), options.seeds.c_str(), results.size(), violated, simulated, wall, simulated / std::max(1e-9, wall),
              (unsigned long long)requests, requests ? double(ok) / double(requests) : 0.0);
  if (results.size() != count) std::printf("  %llu seeds did not report (a worker died)\n", (unsigned long long)(count - results.size()));
  std::printf("  %-22s %8s  %s\n", "invariant", "seeds", "first seed (replay)");
  for (const auto& [name, entry] : by_invariant) {
    std::string plants;
    for (const auto& bug : options.plant) plants += " --plant-bug " + bug;
    std::printf("  %-22s %8zu  rml sim %s --seed %llu%s\n", name.c_str(), entry.first, options.scenario.c_str(), (unsigned long long)entry.second,
                plants.c_str());
  }
  if (by_invariant.empty()) std::printf("  %-22s %8d\n", "(none broken)", 0);
  // Determinism: a sample of the seeds again, here, must hash the same.
  std::size_t mismatched = 0;
  const std::uint64_t sample = std::min<std::uint64_t>(options.verify, results.size());
  for (std::uint64_t index = 0; index < sample; ++index) {
    const std::uint64_t seed = first + (index * count) / std::max<std::uint64_t>(1, sample);
    auto again = run_seed(seed);
    const auto& before = results[seed];
    const bool same = again.hash == before.hash;
    mismatched += !same;
    std::printf("  replayed seed %llu: trace %s %s %s\n", (unsigned long long)seed, again.hash.c_str(), same ? "==" : "!=", before.hash.c_str());
  }
  if (mismatched > 0) {
    std::printf("NOT DETERMINISTIC: %zu replayed seeds hashed differently\n", mismatched);
    return 4;
  }
  return violated == 0 && results.size() == count ? 0 : 3;
}

}  // namespace

void register_sim_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<sim_options>();
  auto* command = app.add_subcommand("sim", "Run a scenario in the deterministic simulator: real components, simulated network, etcd and faults");
  command->add_option("scenario", options->scenario, "The scenario file (sim/scenarios/*.yaml, docs/simulation.md)")->required();
  auto* seed = command->add_option("--seed", options->seed, "The run's seed: the same seed replays the same run")->capture_default_str();
  command->add_option("--seeds", options->seeds, "A..B: run every seed from A to B on all cores and summarise")->excludes(seed);
  command->add_option("--jobs", options->jobs, "Worker processes of a sweep (default: the cores)");
  command->add_option("--verify", options->verify, "Seeds a sweep runs again to compare trace hashes")->capture_default_str();
  command->add_option("--trace", options->trace_file, "Write the run's trace to this file");
  command->add_option("--report", options->report_file, "Write the run's timeline (SVG) to this file");
  command->add_option("--scratch", options->scratch, "Directory for the simulated nodes' disks (default: the system's temporary directory)");
  command->add_option("--plant-bug", options->plant, "For testing the simulator: plant a known bug (drop-requests-of-lost-node: the request ledger forgets what a lost node held)");
  command->add_flag("--quiet", options->quiet, "No progress bar");
  command->callback([options, &exit_code] {
    auto plan = sim::load_scenario(options->scenario);
    if (!plan) {
      std::fprintf(stderr, "rml sim: %s\n", plan.error().message().c_str());
      exit_code = 2;
      return;
    }
    auto bugs = planted(options->plant);
    if (!bugs) {
      std::fprintf(stderr, "rml sim: %s\n", bugs.error().message().c_str());
      exit_code = 2;
      return;
    }
    auto components = components_of(*plan);
    if (!components) {
      std::fprintf(stderr, "rml sim: %s\n", components.error().message().c_str());
      exit_code = 2;
      return;
    }
    exit_code = options->seeds.empty() ? run_one(*plan, *options, *components, *bugs) : run_sweep(*plan, *options, *components, *bugs);
  });
}

}  // namespace rml::app
