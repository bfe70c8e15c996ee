#include "topologies/default_topology.hpp"

#include <algorithm>
#include <cmath>

#include <caf/all.hpp>

#include <filesystem>

#include "actors/compute/compute_actor.hpp"
#include "compute/device_choice.hpp"
#include "compute/nn/sequential.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "supervision/checkpoint_store.hpp"
#include "supervision/supervisor.hpp"

namespace rml::topologies {
namespace {

/// CAF 0.17's registry keeps the first actor put under a name (emplace) and does not drop
/// it when that actor exits: replace it explicitly, so peers find the restarted instance.
void register_name(caf::actor_system& system, caf::atom_value name, const caf::actor& instance) {
  system.registry().erase(name);
  system.registry().put(name, instance);
}

/// A child spec whose start function registers the new instance under `name`.
template <class Spawn>
supervision::child_spec named_child(caf::atom_value name, Spawn spawn) {
  supervision::child_spec child;
  child.id = caf::to_string(name);
  child.start = [name, spawn](caf::actor_system& system) {
    caf::actor instance = caf::actor_cast<caf::actor>(spawn(system));
    register_name(system, name, instance);
    return instance;
  };
  return child;
}

void subscribe_serving(caf::actor_system& system) {
  auto registry = system.registry().get<actors::registry_actor>(messaging::names::registry);
  auto serving = system.registry().get<caf::actor>(messaging::names::serving);
  if (registry && serving) caf::anon_send(registry, messaging::subscribe_atom::value, serving);
}
}  // namespace

const std::map<std::string, caf::atom_value>& component_names() {
  static const std::map<std::string, caf::atom_value> names{
      {"source", messaging::names::source},   {"ingest", messaging::names::ingest},     {"feature", messaging::names::feature},
      {"trainer", messaging::names::trainer}, {"registry", messaging::names::registry}, {"serving", messaging::names::serving},
      {"monitor", messaging::names::monitor},
  };
  return names;
}

std::string process_group(const std::string& kind) { return kind == "ingest" || kind == "feature" || kind == "trainer" ? "log" : kind; }

bool runs_locally(const pipeline_options& options, const std::string& kind) {
  return options.local_kinds.empty() || options.local_kinds.contains(kind);
}

status validate(const pipeline_options& options) {
  for (const auto& kind : options.local_kinds) {
    static const std::set<std::string> known{"source", "ingest", "feature", "trainer", "registry", "serving", "monitor"};
    if (!known.contains(kind)) return error(errc::invalid_argument, "pipeline: no component kind '" + kind + "'");
  }
  if (runs_locally(options, "feature") != runs_locally(options, "ingest")) {
    return error(errc::invalid_argument, "pipeline: feature reads the event log ingest writes: they run in one process, here " +
                                             std::string(runs_locally(options, "ingest") ? "ingest without feature" : "feature without ingest"));
  }
  if (options.data_dir.empty()) return error(errc::invalid_argument, "pipeline: data_dir must not be empty");
  if (!options.train || options.train->rows() == 0) return error(errc::invalid_argument, "pipeline: no training data");
  if (options.train->feature_count() != options.feature.feature_count) {
    return error(errc::shape_mismatch, "pipeline: the dataset has " + std::to_string(options.train->feature_count()) +
                                           " features, the feature pipeline takes " +
                                           std::to_string(options.feature.feature_count));
  }
  if (auto ok = actors::validate(options.feature); !ok) return error(ok.error().code(), "feature: " + ok.error().message());
  if (auto ok = actors::validate(options.trainer); !ok) return ok;
  if (auto ok = actors::validate(options.source); !ok) return ok;
  if (auto ok = actors::validate(options.serving); !ok) return ok;
  if (!(options.registry_accuracy_drop_max >= 0 && options.registry_accuracy_drop_max <= 1)) {
    return error(errc::invalid_argument, "registry: accuracy_drop_max must be in [0, 1] (0: no relative gate), got " +
                                             std::to_string(options.registry_accuracy_drop_max));
  }
  if (!(options.ingest.feature_magnitude_max >= 0) || !std::isfinite(options.ingest.feature_magnitude_max)) {
    return error(errc::invalid_argument, "ingest: feature_magnitude_max must be a finite number >= 0 (0: any finite value), got " +
                                             std::to_string(options.ingest.feature_magnitude_max));
  }
  auto model = options.trainer.architecture.find('(') == std::string::npos
                   ? nn::make_architecture(options.trainer.architecture)
                   : nn::sequential::from_spec(options.trainer.architecture);
  if (auto fits = model->check_batch({1, std::int64_t(options.feature.feature_count)}); !fits) {
    return error(errc::shape_mismatch, "model '" + options.trainer.architecture + "' and the data: " + fits.error().message());
  }
  if (model->output_shape()[0] < options.train->classes) {
    return error(errc::shape_mismatch, "model '" + options.trainer.architecture + "' scores " +
                                           std::to_string(model->output_shape()[0]) + " classes, the data has " +
                                           std::to_string(options.train->classes));
  }
  return {};
}

result<running_pipeline> start_pipeline(caf::actor_system& system, pipeline_options options) {
  if (auto valid = validate(options); !valid) return valid.error();
  namespace fs = std::filesystem;
  // The log (events, offsets, the trainer's checkpoints) opens where a component uses it.
  std::shared_ptr<messaging::event_log> log;
  std::shared_ptr<supervision::log_checkpoint_store> checkpoints;
  if (runs_locally(options, "ingest") || runs_locally(options, "feature") || runs_locally(options, "trainer")) {
    std::error_code created;
    fs::create_directories(fs::path(options.data_dir) / "log", created);
    if (created) return error(errc::io_error, options.data_dir + ": cannot create: " + created.message());
    auto opened = messaging::event_log::open((fs::path(options.data_dir) / "log").string());
    if (!opened) return opened.error();
    log = std::shared_ptr<messaging::event_log>(std::move(opened.value()));
    checkpoints = std::make_shared<supervision::log_checkpoint_store>(log);
  }

  supervision::supervisor_spec spec;
  spec.name = "pipeline";
  spec.strategy = supervision::restart_strategy::one_for_one;
  spec.intensity = options.restart_intensity;
  spec.period = options.restart_period;
  // Restart reports go to the monitor (and to whoever else asked for them).
  // Every component reports to the node's telemetry.
  options.trainer.telemetry = options.telemetry;
  options.serving.telemetry = options.telemetry;
  options.monitor.telemetry = options.telemetry;
  spec.report_to = system.spawn([extra = options.restart_reports, metrics = options.telemetry.metrics](caf::event_based_actor* self) -> caf::behavior {
    return {[self, extra, metrics](messaging::child_restarted& report) {
      metrics
          ->get_counter("rml_restarts_total", "Components restarted by their supervisor", {{"supervisor", report.supervisor}, {"child", report.child}})
          .add();
      if (auto monitor = self->system().registry().get<caf::actor>(messaging::names::monitor)) self->send(monitor, report);
      if (extra) self->send(extra, report);
    }};
  });
  actors::registry_options registry_options;
  registry_options.directory = (fs::path(options.data_dir) / "registry").string();
  registry_options.accuracy_drop_max = options.registry_accuracy_drop_max;
  registry_options.telemetry = options.telemetry;
  // Serving on a GPU that is there: one compute actor owns it, and every replica computes
  // through it (their rows batched together on the device). It starts before serving.
  const bool compute_actor =
      runs_locally(options, "serving") && options.serving.lane.replica.device == device_kind::cuda && cuda_devices() > 0;
  if (compute_actor) options.serving.lane.replica.shared_device = true;
  spec.children = {
      named_child(messaging::names::monitor, [options](caf::actor_system& sys) {
        return actors::spawn_monitor(sys, options.monitor);
      }),
      named_child(messaging::names::registry, [registry_options](caf::actor_system& sys) {
        auto registry = actors::spawn_registry(sys, registry_options);
        register_name(sys, messaging::names::registry, caf::actor_cast<caf::actor>(registry));
        subscribe_serving(sys);
        return registry;
      }),
      named_child(messaging::names::serving, [options](caf::actor_system& sys) {
        auto serving_options = options.serving;
        serving_options.lane.features = options.feature.feature_count;
        auto serving = actors::spawn_router(sys, serving_options);
        register_name(sys, messaging::names::serving, caf::actor_cast<caf::actor>(serving));
        subscribe_serving(sys);
        return serving;
      }),
      named_child(messaging::names::ingest, [log, options](caf::actor_system& sys) {
        return actors::spawn_ingest(sys, log, options.ingest);
      }),
      named_child(messaging::names::trainer, [checkpoints, options](caf::actor_system& sys) {
        return actors::spawn_trainer(sys, checkpoints, options.trainer);
      }),
      named_child(messaging::names::feature, [log, options](caf::actor_system& sys) {
        return actors::spawn_feature(sys, log, options.feature);
      }),
      named_child(messaging::names::source, [options](caf::actor_system& sys) {
        return actors::spawn_dataset_source(sys, options.train, options.source);
      }),
  };
  std::erase_if(spec.children, [&](const supervision::child_spec& child) { return !runs_locally(options, child.id); });
  if (compute_actor) {
    actors::compute_options compute;
    compute.device = device_kind::cuda;
    compute.cpu_threads = options.serving.lane.replica.compute_threads;
    compute.telemetry = options.telemetry;
    auto serving_child = std::find_if(spec.children.begin(), spec.children.end(),
                                      [](const auto& child) { return child.id == caf::to_string(messaging::names::serving); });
    spec.children.insert(serving_child, named_child(messaging::names::compute, [compute](caf::actor_system& sys) {
                           return actors::spawn_compute_actor(sys, compute);
                         }));
  }
  auto supervisor = supervision::spawn_supervisor(system, std::move(spec));
  return running_pipeline{supervisor, log};
}

}  // namespace rml::topologies
