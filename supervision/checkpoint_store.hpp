#pragma once
// Stateful components recover through checkpoints: they save their state under their name
// and, when their supervisor restarts them, load it back and resume (replaying the event log
// from the offset the checkpoint records). The store must outlive every restart; the event
// log's per-consumer checkpoints are the durable one.

#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "compute/status.hpp"
#include "messaging/event_log.hpp"

namespace rml::supervision {

class checkpoint_store {
 public:
  virtual ~checkpoint_store() = default;
  /// Durable when it returns ok.
  virtual status save(std::string_view component, std::span<const char> bytes) = 0;
  /// The last saved checkpoint, or nothing if the component never saved one.
  virtual std::optional<std::vector<char>> load(std::string_view component) const = 0;
};

/// Checkpoints kept in the durable event log, beside the events they refer to.
class log_checkpoint_store final : public checkpoint_store {
 public:
  explicit log_checkpoint_store(std::shared_ptr<messaging::event_log> log) : log_(std::move(log)) {}
  status save(std::string_view component, std::span<const char> bytes) override {
    return log_->save_checkpoint(component, bytes);
  }
  std::optional<std::vector<char>> load(std::string_view component) const override {
    return log_->load_checkpoint(component);
  }

 private:
  std::shared_ptr<messaging::event_log> log_;
};

}  // namespace rml::supervision
