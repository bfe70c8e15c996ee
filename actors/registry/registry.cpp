#include "actors/registry/registry.hpp"

#include <caf/all.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include "compute/model_file.hpp"
#include "messaging/errors.hpp"

namespace rml::actors {
namespace {
namespace fs = std::filesystem;

struct registry_state {
  registry_options options;
  /// Version → file, for every stored version.
  std::map<std::uint64_t, fs::path> stored;
  std::uint64_t current = 0;
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
  if (auto failed = source(snapshot)) return messaging::make_error(errc::corrupted, path.string() + ": unreadable snapshot");
  return snapshot;
}

status write_snapshot(const fs::path& path, messaging::model_snapshot& snapshot) {
  std::vector<char> bytes;
  caf::binary_serializer sink{nullptr, bytes};
  auto failed = sink(snapshot);
  RML_ASSERT(!failed, "a snapshot always serialises");
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.flush();
    if (!out) return error(errc::io_error, temporary.string() + ": write failed");
  }
  std::error_code renamed;
  fs::rename(temporary, path, renamed);
  if (renamed) return error(errc::io_error, path.string() + ": " + renamed.message());
  return {};
}

void push_current(registry_pointer self) {
  auto& state = self->state;
  if (state.current == 0) return;
  auto snapshot = read_snapshot(state.stored.at(state.current));
  if (!snapshot) return;
  for (const caf::actor& subscriber : state.subscribers) caf::anon_send(subscriber, *snapshot);
}

caf::result<std::uint64_t> publish(registry_pointer self, messaging::model_snapshot& snapshot) {
  auto& state = self->state;
  const std::uint64_t newest = state.stored.empty() ? 0 : state.stored.rbegin()->first;
  const std::string which = "snapshot version " + std::to_string(snapshot.version);
  if (snapshot.version <= newest) {
    return messaging::make_error(errc::invalid_argument, which + ": versions only move forward, newest stored is " +
                                                             std::to_string(newest));
  }
  auto decoded = decode_model(std::as_bytes(std::span(snapshot.model_file)), which);
  if (!decoded) return messaging::to_caf_error(decoded.error());
  const auto accuracy = snapshot.metrics.find("rolling_accuracy");
  if (state.options.min_rolling_accuracy > 0 &&
      (accuracy == snapshot.metrics.end() || accuracy->second < state.options.min_rolling_accuracy)) {
    return messaging::make_error(errc::invalid_argument, which + ": rolling accuracy below the gate of " +
                                                             std::to_string(state.options.min_rolling_accuracy));
  }
  const fs::path path = version_path(state, snapshot.version);
  if (auto written = write_snapshot(path, snapshot); !written) return messaging::to_caf_error(written.error());
  state.stored[snapshot.version] = path;
  state.current = snapshot.version;
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
  auto remember_current = [self] {
    std::ofstream out(fs::path(self->state.options.directory) / "current", std::ios::trunc);
    out << self->state.current << "\n";
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
        remember_current();
        push_current(self);
        return version;
      },
      [self](messaging::subscribe_atom, caf::actor subscriber) {
        self->state.subscribers.push_back(subscriber);
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
