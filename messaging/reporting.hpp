#pragma once
// How components report to monitoring (shared by every component, so it lives in
// messaging/ rather than in the monitor's folder): a metrics sample sent to the monitor registered under
// names::monitor, if one runs. Latencies are measured on the actor clock (real
// time in production, virtual time in simulation: deterministic either way).

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "messaging/atoms.hpp"
#include "messaging/latency_histogram.hpp"
#include "messaging/messages.hpp"

namespace rml::messaging {

inline void add_latency(std::map<std::string, double>& values, const std::string& name,
                        const latency_histogram& histogram) {
  values[name + "_p50_us"] = histogram.quantile(0.50);
  values[name + "_p90_us"] = histogram.quantile(0.90);
  values[name + "_p99_us"] = histogram.quantile(0.99);
  values[name + "_max_us"] = histogram.max();
}

inline void report_metrics(caf::actor_system& system, std::string component, std::int64_t timestamp_us,
                           std::map<std::string, double> values) {
  auto monitor = system.registry().get<caf::actor>(names::monitor);
  if (monitor) caf::anon_send(monitor, metrics_sample{std::move(component), timestamp_us, std::move(values)});
}

template <class Self>
std::int64_t clock_us(Self* self) {
  return std::chrono::duration_cast<std::chrono::microseconds>(self->clock().now().time_since_epoch()).count();
}

}  // namespace rml::messaging
