// report.html: one self-contained page (inline CSS and SVG, no scripts, no
// network) with the tables of report.md and three charts.
#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "frugal/oae.h"
#include "oae/report_format.h"

namespace frugal {

namespace {

using namespace oae;

const char* kColors[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"};

std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A chart area with logarithmic or linear axes mapped onto SVG pixels.
struct Axes {
  double x0, x1, y0, y1;  // data ranges
  bool log_x, log_y;
  static constexpr double kLeft = 70, kRight = 20, kTop = 20, kBottom = 45, kWidth = 640, kHeight = 340;
  double tx(double v) const { return (log_x ? std::log10(v) : v); }
  double ty(double v) const { return (log_y ? std::log10(v) : v); }
  double x(double v) const { return kLeft + (tx(v) - tx(x0)) / (tx(x1) - tx(x0)) * (kWidth - kLeft - kRight); }
  double y(double v) const { return kHeight - kBottom - (ty(v) - ty(y0)) / (ty(y1) - ty(y0)) * (kHeight - kTop - kBottom); }
};

// Nice bounds: powers of ten around a positive range.
std::pair<double, double> decades(double low, double high) {
  low = std::max(low, 1e-9);
  high = std::max(high, low * 10);
  return {std::pow(10, std::floor(std::log10(low))), std::pow(10, std::ceil(std::log10(high)))};
}

std::string axis_frame(const Axes& a, const std::string& x_label, const std::string& y_label,
                       const std::function<std::string(double)>& y_text) {
  std::string s = fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>)", Axes::kLeft,
                              Axes::kTop, Axes::kWidth - Axes::kLeft - Axes::kRight,
                              Axes::kHeight - Axes::kTop - Axes::kBottom);
  if (a.log_x) {
    for (double v = a.x0; v <= a.x1 * 1.0001; v *= 10) {
      s += fmt::format(R"(<line x1="{0:.1f}" x2="{0:.1f}" y1="{1}" y2="{2}" stroke="#eee"/><text x="{0:.1f}" y="{3}" text-anchor="middle">{4}</text>)",
                       a.x(v), Axes::kTop, Axes::kHeight - Axes::kBottom, Axes::kHeight - Axes::kBottom + 16,
                       v >= 1000 ? fmt::format("{:.0f}k", v / 1000) : fmt::format("{:g}", v));
    }
  }
  if (a.log_y) {
    for (double v = a.y0; v <= a.y1 * 1.0001; v *= 10) {
      s += fmt::format(R"(<line x1="{0}" x2="{1}" y1="{2:.1f}" y2="{2:.1f}" stroke="#eee"/><text x="{3}" y="{4:.1f}" text-anchor="end">{5}</text>)",
                       Axes::kLeft, Axes::kWidth - Axes::kRight, a.y(v), Axes::kLeft - 6, a.y(v) + 4, y_text(v));
    }
  }
  s += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)", (Axes::kLeft + Axes::kWidth) / 2,
                   Axes::kHeight - 8, escape(x_label));
  s += fmt::format(R"svg(<text transform="translate(14,{}) rotate(-90)" text-anchor="middle">{}</text>)svg",
                   Axes::kHeight / 2, escape(y_label));
  return s;
}

std::string svg_open(const std::string& title) {
  return fmt::format(R"(<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" aria-label="{}">)",
                     Axes::kWidth, Axes::kHeight, escape(title));
}

std::string legend(const OaeReport& r, double x, double y) {
  std::string s;
  for (size_t i = 0; i < r.methods.size(); ++i) {
    s += fmt::format(R"(<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>)", x,
                     y + 18 * i, kColors[i % 6], x + 18, y + 18 * i + 11, escape(r.methods[i].name));
  }
  return s;
}

std::string cost_chart(const OaeReport& r) {
  const double n_max = static_cast<double>(std::max<uint64_t>(10, r.options.query_counts.empty() ? 10000
                                                                   : r.options.query_counts.back()));
  double low = 1e300, high = 0;
  std::vector<double> ns;
  for (double n = 1; n <= n_max * 1.0001; n *= std::pow(10, 0.1)) ns.push_back(n);
  for (const auto& m : r.methods) {
    for (double n : ns) {
      const double v = cost_per_query(m.energy(), n);
      if (v > 0) low = std::min(low, v), high = std::max(high, v);
    }
  }
  if (high <= 0) low = 1e-3, high = 1;  // nothing measured: an empty chart, not a broken one
  const auto [y0, y1] = decades(low, high);
  const Axes a{1, std::pow(10, std::ceil(std::log10(n_max))), y0, y1, true, true};
  std::string s = svg_open("Energy per query against the number of queries");
  s += axis_frame(a, "queries served (N), setup amortised over them", "energy per query",
                  [](double v) { return joules(v); });
  for (size_t i = 0; i < r.methods.size(); ++i) {
    std::string points;
    for (double n : ns) points += fmt::format("{:.1f},{:.1f} ", a.x(n), a.y(std::max(cost_per_query(r.methods[i].energy(), n), y0)));
    s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2.5"/>)", points, kColors[i % 6]);
  }
  if (const MethodResult* cag = r.find("cag")) {
    for (const auto& other : r.methods) {
      if (other.name == "cag") continue;
      const auto n = break_even(cag->energy(), other.energy());
      if (!n || *n <= 1 || static_cast<double>(*n) > a.x1) continue;
      const double v = cost_per_query(cag->energy(), static_cast<double>(*n));
      s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="5" fill="none" stroke="#000" stroke-width="1.5"/><text x="{:.1f}" y="{:.1f}" font-size="11">break-even with {}: N = {}</text>)",
                       a.x(static_cast<double>(*n)), a.y(v), a.x(static_cast<double>(*n)) + 7, a.y(v) - 7,
                       escape(other.name), *n);
    }
  }
  s += legend(r, Axes::kWidth - 130, Axes::kTop + 10);
  s += "</svg><figcaption>Energy per query when the one-time setup (model load, index or cache build) is shared by "
       "N queries. Circles: where CAG becomes the cheaper choice.</figcaption></figure>";
  return s;
}

std::string latency_chart(const OaeReport& r) {
  double low = 1e300, high = 0;
  for (const auto& m : r.methods) {
    for (const auto& q : m.questions) {
      if (q.ttft_seconds > 0) low = std::min(low, q.ttft_seconds), high = std::max(high, q.ttft_seconds);
    }
  }
  if (high <= 0) low = 1e-3, high = 1;
  const auto [y0, y1] = decades(low, high);
  const Axes a{0, static_cast<double>(std::max<size_t>(r.methods.size(), 1)), y0, y1, false, true};
  std::string s = svg_open("Time to first token per question");
  s += axis_frame(a, "method", "time to first token", [](double v) { return milliseconds(v); });
  for (size_t i = 0; i < r.methods.size(); ++i) {
    const auto& m = r.methods[i];
    const double center = a.x(static_cast<double>(i) + 0.5);
    for (size_t k = 0; k < m.questions.size(); ++k) {
      const double jitter = (static_cast<double>((k * 37) % 21) - 10) * 2.2;
      s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}" fill-opacity="0.6"/>)", center + jitter,
                       a.y(std::max(m.questions[k].ttft_seconds, y0)), kColors[i % 6]);
    }
    const double median = m.percentile(&QuestionResult::ttft_seconds, 50);
    s += fmt::format(R"(<line x1="{0:.1f}" x2="{1:.1f}" y1="{2:.1f}" y2="{2:.1f}" stroke="#000" stroke-width="2"/><text x="{3:.1f}" y="{4}" text-anchor="middle">{5}</text><text x="{3:.1f}" y="{6:.1f}" text-anchor="middle" font-size="11">p50 {7}</text>)",
                     center - 30, center + 30, a.y(std::max(median, y0)), center,
                     Axes::kHeight - Axes::kBottom + 16, escape(m.name), a.y(std::max(median, y0)) - 6,
                     milliseconds(median));
  }
  s += "</svg><figcaption>Each dot is one question; bars are medians (log scale).</figcaption></figure>";
  return s;
}

std::string quality_chart(const OaeReport& r, double n) {
  double low = 1e300, high = 0;
  for (const auto& m : r.methods) {
    const double v = cost_per_query(m.energy(), n);
    if (v > 0) low = std::min(low, v), high = std::max(high, v);
  }
  if (high <= 0) low = 1e-3, high = 1;
  const auto [x0, x1] = decades(low, high);
  const Axes a{x0, x1, 0, 1, true, false};
  std::string s = svg_open("Quality against energy per query");
  s += axis_frame(a, fmt::format("energy per query at N = {:g} (log scale)", n), "F1", [](double) { return ""; });
  for (double v = 0; v <= 1.0001; v += 0.25) {
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.2f}</text>)", Axes::kLeft - 6, a.y(v) + 4, v);
  }
  for (double v = x0; v <= x1 * 1.0001; v *= 10) {
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", a.x(v),
                     Axes::kHeight - Axes::kBottom + 16, joules(v));
  }
  for (size_t i = 0; i < r.methods.size(); ++i) {
    const auto& m = r.methods[i];
    const double x = a.x(std::max(cost_per_query(m.energy(), n), x0)), y = a.y(m.mean(&QuestionResult::f1));
    s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="7" fill="{}"/><text x="{:.1f}" y="{:.1f}">{}</text>)", x,
                     y, kColors[i % 6], x + 10, y - 8, escape(m.name));
  }
  s += "</svg><figcaption>Up and to the left is better: more correct answers for less energy.</figcaption></figure>";
  return s;
}

// Thinking methods: exact match against the tokens thinking costs per
// query (thinking plus early-exit probes), linear axes from zero.
std::string thinking_chart(const OaeReport& r) {
  double high = 0;
  bool thinks = false;
  for (const auto& m : r.methods) {
    const double tokens = m.mean_tokens(&QuestionResult::thinking_tokens) + m.mean_tokens(&QuestionResult::probe_tokens);
    high = std::max(high, tokens);
    thinks = thinks || m.mean_tokens(&QuestionResult::thinking_tokens) > 0;
  }
  if (!thinks) return "";
  const double step = std::pow(10, std::floor(std::log10(std::max(high, 1.0))));
  const double x1 = std::ceil(high / step) * step;
  const Axes a{0, x1, 0, 1, false, false};
  std::string s = svg_open("Accuracy against thinking tokens");
  s += axis_frame(a, "thinking + probe tokens per query", "exact match", [](double) { return ""; });
  for (double v = 0; v <= 1.0001; v += 0.25) {
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.2f}</text>)", Axes::kLeft - 6, a.y(v) + 4, v);
  }
  for (double v = 0; v <= x1 * 1.0001; v += step) {
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{:g}</text>)", a.x(v),
                     Axes::kHeight - Axes::kBottom + 16, v);
  }
  for (size_t i = 0; i < r.methods.size(); ++i) {
    const auto& m = r.methods[i];
    const double tokens = m.mean_tokens(&QuestionResult::thinking_tokens) + m.mean_tokens(&QuestionResult::probe_tokens);
    const double x = a.x(tokens), y = a.y(m.mean(&QuestionResult::exact_match));
    s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="7" fill="{}"/><text x="{:.1f}" y="{:.1f}">{}</text>)", x,
                     y, kColors[i % 6], x + 10, y - 8, escape(m.name));
  }
  s += "</svg><figcaption>Up and to the left is better: more right answers for fewer thinking tokens (probes "
       "counted).</figcaption></figure>";
  return s;
}

std::string markdown_table_to_html(const std::string& markdown) {
  // The tables of report.md, as HTML: header row, separator, body rows.
  std::string html, line;
  std::istringstream in(markdown);
  bool in_table = false, header = false;
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) != 0) {
      if (in_table) html += "</table>\n";
      in_table = false;
      if (line.rfind("# ", 0) == 0) html += "<h1>" + escape(line.substr(2)) + "</h1>\n";
      else if (line.rfind("## ", 0) == 0) html += "<h2>" + escape(line.substr(3)) + "</h2>\n";
      else if (line.rfind("- ", 0) == 0) html += "<p class=\"item\">" + escape(line.substr(2)) + "</p>\n";
      else if (!line.empty()) html += "<p>" + escape(line) + "</p>\n";
      continue;
    }
    if (line.find_first_not_of("|-: ") == std::string::npos) continue;  // the header separator row
    if (!in_table) {
      html += "<table>\n";
      in_table = true;
      header = true;
    }
    html += "<tr>";
    size_t start = 1;
    while (start < line.size()) {
      const size_t end = line.find('|', start);
      if (end == std::string::npos) break;
      std::string cell = line.substr(start, end - start);
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      html += fmt::format("<{0}>{1}</{0}>", header ? "th" : "td", escape(cell));
      start = end + 1;
    }
    html += "</tr>\n";
    header = false;
  }
  if (in_table) html += "</table>\n";
  // **bold** markers of the summary lines
  std::string out;
  bool open = false;
  for (size_t i = 0; i < html.size(); ++i) {
    if (html.compare(i, 2, "**") == 0) {
      out += open ? "</b>" : "<b>";
      open = !open;
      ++i;
    } else {
      out += html[i];
    }
  }
  return out;
}

}  // namespace

std::string oae_report_html(const OaeReport& r) {
  const double chart_n = r.options.query_counts.size() > 2 ? static_cast<double>(r.options.query_counts[2]) : 100.0;
  std::string html = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>frugal OAE report</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; } svg { width: 100%; max-width: 720px; font-size: 12px; background: #fff; }
figcaption { color: #555; font-size: 13px; } .item { margin: 0.3em 0 0.3em 1em; }
.charts { display: grid; grid-template-columns: 1fr; }
</style></head><body>
)";
  html += markdown_table_to_html(oae_report_markdown(r));
  html += "<h2>Charts</h2>\n<div class=\"charts\">\n";
  html += cost_chart(r) + "\n" + latency_chart(r) + "\n" + quality_chart(r, chart_n) + "\n" + thinking_chart(r) +
          "\n</div>\n";
  html += "<p>Generated by frugal's <code>oae run</code>; the numbers behind every chart are in report.json.</p>\n";
  html += "</body></html>\n";
  return html;
}

}  // namespace frugal
