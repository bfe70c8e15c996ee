// The run's timeline as an SVG: five stacked panels over simulated seconds — answers per
// second (ok and errors), p99 latency, the model version answered, their accuracy — with fault windows shaded
// and events (crashes, restarts, leaders, partitions) marked. Plain SVG text: a viewer needs
// nothing else, and a report is a few kilobytes.
#include <algorithm>
#include <cstdio>
#include <string>

#include "sim/world.hpp"

namespace rml::sim {
namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

std::string timeline_svg(const run_report& report) {
  const double width = 960, left = 70, right = 20, panel = 120, gap = 30, top = 40;
  const std::size_t seconds = std::max<std::size_t>(1, report.timeline.size());
  const double plot = width - left - right;
  const double step = plot / double(seconds);
  struct series {
    const char* title;
    double (*value)(const run_report::second&);
    const char* colour;
  };
  const series panels[] = {
      {"answers ok per second", [](const run_report::second& s) { return double(s.ok); }, "#2a7"},
      {"errors per second", [](const run_report::second& s) { return double(s.errors); }, "#c33"},
      {"p99 latency (ms)", [](const run_report::second& s) { return s.p99_ms; }, "#36c"},
      {"model version answered", [](const run_report::second& s) { return double(s.version); }, "#a5c"},
      {"accuracy of the answers", [](const run_report::second& s) { return s.accuracy; }, "#c80"},
  };
  const double height = top + 5 * (panel + gap) + 40;
  std::string svg;
  char buffer[512];
  std::snprintf(buffer, sizeof buffer,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                width, height);
  svg += buffer;
  std::snprintf(buffer, sizeof buffer, "<text x=\"%.0f\" y=\"20\" font-size=\"14\">rml sim %s --seed %llu: %zu violations</text>\n", left,
                escape(report.scenario).c_str(), (unsigned long long)report.seed, report.violations.size());
  svg += buffer;
  for (std::size_t index = 0; index < 5; ++index) {
    const auto& each = panels[index];
    const double y0 = top + double(index) * (panel + gap);
    double high = 0;
    for (const auto& second : report.timeline) high = std::max(high, each.value(second));
    if (high <= 0) high = 1;
    // Fault windows, shaded.
    for (std::size_t second = 0; second < report.timeline.size(); ++second) {
      if (!report.timeline[second].faulted) continue;
      std::snprintf(buffer, sizeof buffer, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"#fdd\"/>\n", left + double(second) * step, y0,
                    step, panel);
      svg += buffer;
    }
    std::snprintf(buffer, sizeof buffer,
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#999\"/>\n"
                  "<text x=\"%.0f\" y=\"%.0f\">%s</text><text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%.4g</text>"
                  "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">0</text>\n",
                  left, y0, plot, panel, left + 4, y0 - 4, each.title, left - 4, y0 + 10, high, left - 4, y0 + panel);
    svg += buffer;
    std::string points;
    for (std::size_t second = 0; second < report.timeline.size(); ++second) {
      const double x = left + (double(second) + 0.5) * step;
      const double y = y0 + panel - each.value(report.timeline[second]) / high * panel;
      std::snprintf(buffer, sizeof buffer, "%.1f,%.1f ", x, y);
      points += buffer;
    }
    svg += "<polyline fill=\"none\" stroke=\"" + std::string(each.colour) + "\" stroke-width=\"1.5\" points=\"" + points + "\"/>\n";
  }
  // Events: a tick across every panel, its text in a tooltip and under the last panel.
  const double bottom = top + 5 * (panel + gap) - gap;
  for (const auto& [at, what] : report.events) {
    const double x = left + at / double(seconds) * plot;
    std::snprintf(buffer, sizeof buffer, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#555\" stroke-dasharray=\"2,3\"><title>", x, top, x, bottom);
    svg += buffer;
    std::snprintf(buffer, sizeof buffer, "%.3f s: ", at);
    svg += buffer + escape(what) + "</title></line>\n";
  }
  std::snprintf(buffer, sizeof buffer, "<text x=\"%.0f\" y=\"%.0f\">0 s</text><text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%zu s (simulated)</text>\n", left,
                bottom + 16, width - right, bottom + 16, seconds);
  svg += buffer;
  svg += "</svg>\n";
  return svg;
}

}  // namespace rml::sim
