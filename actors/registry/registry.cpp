#include "actors/registry/registry.hpp"

#include <algorithm>
#include <caf/all.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "compute/model_file.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/reporting.hpp"
#include "messaging/trace.hpp"

namespace rml::actors {
namespace {
namespace fs = std::filesystem;

struct registry_state {
  registry_options options;
  /// Version → file, for every stored version.
  std::map<std::uint64_t, fs::path> stored;
  std::uint64_t current = 0;
  /// The current version's rolling accuracy, when it reported one (the relative gate).
  std::optional<double> current_accuracy;
  std::vector<caf::actor> subscribers;
  static inline const char* name = "rml.registry";
};

using registry_pointer = registry_actor::stateful_pointer<registry_state>;

fs::path version_path(const registry_state& state, std::uint64_t version) {
  return fs::path(state.options.directory) / ("v" + std::to_string(version) + ".snapshot");
}

caf::expected<messaging::model_snapshot> read_snapshot(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return messaging::make_error(errc::io_error, path.string() + ": cannot read");
  messaging::model_snapshot snapshot;
  caf::binary_deserializer source{nullptr, bytes};
  if (!source(snapshot)) return snapshot;
  // Snapshots written before they carried an input reference end after log_offset: read
  // as that layout, they load with none (no data-drift statistics for that version).
  snapshot = {};
  caf::binary_deserializer older{nullptr, bytes};
  if (older(snapshot.version, snapshot.parent_version, snapshot.model_file, snapshot.feature_pipeline, snapshot.feature_state, snapshot.metrics,
            snapshot.log_offset) ||
      older.remaining() != 0) {
    return messaging::make_error(errc::corrupted, path.string() + ": unreadable snapshot");
  }
  return snapshot;
}

/// Writes `bytes` to `path` durably: a temporary file written and fsync'ed, renamed over
/// `path`, then the directory fsync'ed so that the rename itself survives a power loss.
status write_durably(const fs::path& path, std::span<const char> bytes) {
  const std::string temporary = path.string() + ".tmp";
  const int file = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (file < 0) return error(errc::io_error, temporary + ": cannot create: " + std::strerror(errno));
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t wrote = ::write(file, bytes.data() + written, bytes.size() - written);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      const std::string reason = std::strerror(errno);
      ::close(file);
      return error(errc::io_error, temporary + ": write failed: " + reason);
    }
    written += std::size_t(wrote);
  }
  const bool synced = ::fsync(file) == 0;
  const std::string sync_failure = synced ? "" : std::strerror(errno);
  ::close(file);
  if (!synced) return error(errc::io_error, temporary + ": fsync failed: " + sync_failure);
  if (::rename(temporary.c_str(), path.c_str()) != 0) return error(errc::io_error, path.string() + ": rename failed: " + std::strerror(errno));
  const std::string directory = path.parent_path().empty() ? "." : path.parent_path().string();
  const int folder = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder < 0) return error(errc::io_error, directory + ": cannot open to sync: " + std::strerror(errno));
  const bool folder_synced = ::fsync(folder) == 0;
  ::close(folder);
  if (!folder_synced) return error(errc::io_error, directory + ": fsync failed");
  return {};
}

status write_snapshot(const fs::path& path, messaging::model_snapshot& snapshot) {
  std::vector<char> bytes;
  caf::binary_serializer sink{nullptr, bytes};
  auto failed = sink(snapshot);
  RML_ASSERT(!failed, "a snapshot always serialises");
  return write_durably(path, bytes);
}

/// The validation gate's numeric part: every weight and metric finite, the accuracy within
/// the gates. The error names the snapshot and what failed.
status check_numbers(const registry_state& state, const messaging::model_snapshot& snapshot, model_bundle& decoded,
                     const std::string& which) {
  if (auto bad = decoded.model.non_finite_weight()) return error(errc::non_finite, which + ": " + *bad + " is not finite");
  for (const auto& [name, value] : snapshot.metrics) {
    if (!std::isfinite(value)) return error(errc::non_finite, which + ": metric " + name + " is not finite");
  }
  const auto accuracy = snapshot.metrics.find("rolling_accuracy");
  if (state.options.min_rolling_accuracy > 0 &&
      (accuracy == snapshot.metrics.end() || accuracy->second < state.options.min_rolling_accuracy)) {
    return error(errc::invalid_argument, which + ": rolling accuracy below the gate of " + std::to_string(state.options.min_rolling_accuracy));
  }
  if (state.options.accuracy_drop_max > 0 && state.current_accuracy && accuracy != snapshot.metrics.end() &&
      accuracy->second < *state.current_accuracy - state.options.accuracy_drop_max) {
    char text[160];
    std::snprintf(text, sizeof(text), ": rolling accuracy %.4f is more than %.4f below the current version's %.4f", accuracy->second,
                  state.options.accuracy_drop_max, *state.current_accuracy);
    return error(errc::invalid_argument, which + text);
  }
  return {};
}

std::optional<double> accuracy_of(const messaging::model_snapshot& snapshot) {
  auto found = snapshot.metrics.find("rolling_accuracy");
  if (found == snapshot.metrics.end()) return std::nullopt;
  return found->second;
}

/// Tells every subscriber the current version; a rollback as such (serving refuses a lower
/// version otherwise).
void push_current(registry_pointer self, bool rollback = false) {
  auto& state = self->state;
  if (state.current == 0) return;
  auto snapshot = read_snapshot(state.stored.at(state.current));
  if (!snapshot) return;
  for (const caf::actor& subscriber : state.subscribers) {
    if (rollback) caf::anon_send(subscriber, messaging::rollback_atom::value, *snapshot);
    else caf::anon_send(subscriber, *snapshot);
  }
}

caf::result<std::uint64_t> publish(registry_pointer self, messaging::model_snapshot& snapshot) {
  auto& state = self->state;
  const std::uint64_t newest = state.stored.empty() ? 0 : state.stored.rbegin()->first;
  if (snapshot.version == 0) snapshot.version = newest + 1;
  const std::string which = "snapshot version " + std::to_string(snapshot.version);
  if (snapshot.version <= newest) {
    return messaging::make_error(errc::invalid_argument, which + ": versions only move forward, newest stored is " +
                                                             std::to_string(newest));
  }
  auto decoded = decode_model(std::as_bytes(std::span(snapshot.model_file)), which);
  if (!decoded) return messaging::to_caf_error(decoded.error());
  if (auto gate = check_numbers(state, snapshot, *decoded, which); !gate) return messaging::to_caf_error(gate.error());
  const fs::path path = version_path(state, snapshot.version);
  if (auto written = write_snapshot(path, snapshot); !written) return messaging::to_caf_error(written.error());
  state.stored[snapshot.version] = path;
  state.current = snapshot.version;
  state.current_accuracy = accuracy_of(snapshot);
  while (state.options.versions_kept_max > 0 && state.stored.size() > state.options.versions_kept_max) {
    std::error_code ignored;
    fs::remove(state.stored.begin()->second, ignored);
    state.stored.erase(state.stored.begin());
  }
  push_current(self);
  return snapshot.version;
}

registry_actor::behavior_type registry(registry_pointer self, registry_options options) {
  auto& state = self->state;
  state.options = std::move(options);
  // A subscriber that is gone (a restarted router, a lost node's proxy) stops being sent to.
  self->set_down_handler([self](caf::down_msg& down) {
    std::erase_if(self->state.subscribers, [&](const caf::actor& subscriber) { return subscriber.address() == down.source; });
  });
  std::error_code created;
  fs::create_directories(state.options.directory, created);
  for (const auto& entry : fs::directory_iterator(state.options.directory, created)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 10 && name.front() == 'v' && name.ends_with(".snapshot")) {
      const std::uint64_t version = std::strtoull(name.c_str() + 1, nullptr, 10);
      if (version > 0) state.stored[version] = entry.path();
    }
  }
  const fs::path current_file = fs::path(state.options.directory) / "current";
  std::ifstream current_in(current_file);
  if (!(current_in >> state.current) || state.stored.count(state.current) == 0) {
    state.current = state.stored.empty() ? 0 : state.stored.rbegin()->first;
  }
  if (state.current != 0) {
    if (auto current = read_snapshot(state.stored.at(state.current))) state.current_accuracy = accuracy_of(*current);
  }
  auto remember_current = [self] {
    const std::string line = std::to_string(self->state.current) + "\n";
    // Which version is current matters less than the versions themselves (a lost update
    // falls back to the newest): a failure here is not worth failing the publish for.
    [[maybe_unused]] auto written = write_durably(fs::path(self->state.options.directory) / "current", line);
  };
  return {
      [self, remember_current](messaging::model_snapshot& snapshot) -> caf::result<std::uint64_t> {
        auto published = publish(self, snapshot);
        remember_current();
        return published;
      },
      [self](messaging::latest_atom) -> caf::result<messaging::model_snapshot> {
        if (self->state.current == 0) return messaging::make_error(errc::not_ready, "no model version published yet");
        return read_snapshot(self->state.stored.at(self->state.current));
      },
      [self](messaging::version_atom, std::uint64_t version) -> caf::result<messaging::model_snapshot> {
        auto found = self->state.stored.find(version);
        if (found == self->state.stored.end()) {
          return messaging::make_error(errc::not_found, "model version " + std::to_string(version) + " is not stored");
        }
        return read_snapshot(found->second);
      },
      [self, remember_current](messaging::rollback_atom, std::uint64_t version) -> caf::result<std::uint64_t> {
        if (self->state.stored.count(version) == 0) {
          return messaging::make_error(errc::not_found, "cannot roll back to model version " + std::to_string(version) +
                                                            ": not stored");
        }
        self->state.current = version;
        if (auto snapshot = read_snapshot(self->state.stored.at(version))) self->state.current_accuracy = accuracy_of(*snapshot);
        remember_current();
        push_current(self, true);
        return version;
      },
      [self](messaging::model_refused& refused) {
        self->state.options.telemetry.metrics
            ->get_counter("rml_models_refused_total", "Published model versions a component could not load", {{"component", refused.component}})
            .add();
        const std::string detail = "version=" + std::to_string(refused.version) + " by=" + refused.component + " reason=" + refused.reason;
        self->state.options.telemetry.trace->record({messaging::clock_us(self), "registry", "model_refused", detail});
        // The operator's console: a version that serving cannot load is never silent.
        std::fprintf(stderr, "rml: %s could not load model version %llu: %s\n", refused.component.c_str(),
                     (unsigned long long)refused.version, refused.reason.c_str());
      },
      [self](messaging::subscribe_atom, caf::actor subscriber) {
        // Subscribing again (a node re-resolving its peers) is not a second subscription;
        // it still gets the current version, which it may have missed.
        auto& subscribers = self->state.subscribers;
        if (std::find(subscribers.begin(), subscribers.end(), subscriber) == subscribers.end()) {
          subscribers.push_back(subscriber);
          self->monitor(subscriber);
        }
        if (self->state.current == 0) return;
        if (auto snapshot = read_snapshot(self->state.stored.at(self->state.current))) caf::anon_send(subscriber, *snapshot);
      },
  };
}
}  // namespace

registry_actor spawn_registry(caf::actor_system& system, const registry_options& options) {
  RML_ASSERT(!options.directory.empty(), "the registry needs a directory");
  return system.spawn(registry, options);
}

}  // namespace rml::actors
