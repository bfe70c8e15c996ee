#include "messaging/dashboard.hpp"

#include <fstream>
#include <iterator>

namespace rml::messaging {

const char* const dashboard_script_missing =
    "Chart.js is not installed: the dashboard's charts need Debian's libjs-chart.js (apt-get install libjs-chart.js; scripts/setup.sh does)";

const std::optional<std::string>& dashboard_script() {
  // Read at first use and kept: the file does not change under a running server.
  static const std::optional<std::string> script = [] () -> std::optional<std::string> {
    for (const char* path : {"/usr/share/javascript/chart.js/chart.min.js", "/usr/share/javascript/chart.js/chart.js"}) {
      std::ifstream file(path, std::ios::binary);
      if (!file) continue;
      std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
      if (!text.empty()) return text;
    }
    return std::nullopt;
  }();
  return script;
}

}  // namespace rml::messaging
