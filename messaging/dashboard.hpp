#pragma once
// The live dashboard the HTTP endpoint serves at GET /dashboard: one page
// (messaging/dashboard.html, embedded at build time) that polls /metrics and /trace and draws
// them with Chart.js, which rml serves at /dashboard/chart.js from Debian's libjs-chart.js.

#include <optional>
#include <string>

namespace rml::messaging {

/// The page's HTML.
const std::string& dashboard_page();

/// Chart.js as Debian installs it (libjs-chart.js), read once; nothing when it is not
/// installed (the message for that is dashboard_script_missing).
const std::optional<std::string>& dashboard_script();
extern const char* const dashboard_script_missing;

}  // namespace rml::messaging
