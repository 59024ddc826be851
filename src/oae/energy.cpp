#include "frugal/energy.h"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

namespace frugal {

namespace {

namespace fs = std::filesystem;

bool read_number(const fs::path& path, uint64_t& value) {
  std::ifstream in(path);
  return static_cast<bool>(in >> value);
}

std::string read_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

RaplReader::RaplReader(const fs::path& root) {
  std::error_code error;
  if (!fs::is_directory(root, error)) return;
  std::vector<fs::path> zones;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("intel-rapl:", 0) == 0) zones.push_back(entry.path());
  }
  std::sort(zones.begin(), zones.end());
  for (const fs::path& zone : zones) {
    const std::string id = zone.filename().string();
    const bool subdomain = std::count(id.begin(), id.end(), ':') == 2;
    const std::string name = read_line(zone / "name");
    // Packages and their DRAM: core/uncore are inside the package figure, and
    // psys (the whole platform, on client machines) contains the package.
    if (subdomain ? name != "dram" : name.rfind("package", 0) != 0) continue;
    Domain domain{name.empty() ? id : name, zone / "energy_uj", 0};
    uint64_t value = 0;
    if (!read_number(domain.counter, value)) continue;  // not readable (root-only since 2020 kernels)
    if (!read_number(zone / "max_energy_range_uj", domain.range_uj)) domain.range_uj = 0;
    domains_.push_back(std::move(domain));
  }
}

std::vector<uint64_t> RaplReader::read() const {
  std::vector<uint64_t> values;
  for (const Domain& d : domains_) {
    uint64_t v = 0;
    values.push_back(read_number(d.counter, v) ? v : kUnreadable);
  }
  return values;
}

double RaplReader::joules_between(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after) const {
  double joules = 0;
  for (size_t i = 0; i < domains_.size() && i < before.size() && i < after.size(); ++i) {
    if (before[i] == kUnreadable || after[i] == kUnreadable) continue;  // not a wrap: a failed read
    uint64_t delta = after[i] - before[i];
    if (after[i] < before[i]) {
      // The counter wrapped: it ran up to range_uj, restarted at 0.
      delta = domains_[i].range_uj >= before[i] ? domains_[i].range_uj - before[i] + after[i] : after[i];
    }
    joules += static_cast<double>(delta) * 1e-6;
  }
  return joules;
}

EnergyMeter::EnergyMeter(const EnergyOptions& options) : options_(options), rapl_(options.powercap_root) {}

std::string EnergyMeter::description() const {
  if (measured()) {
    std::string names;
    for (const auto& d : rapl_.domains()) names += fmt::format("{}{}", names.empty() ? "" : ", ", d.name);
    return fmt::format("measured (RAPL: {})", names);
  }
  return fmt::format("estimated (CPU time x {} W per core)", options_.watts_per_core);
}

EnergyMeter::Mark EnergyMeter::mark() const {
  Mark m;
  if (measured()) m.counters = rapl_.read();
  m.cpu_seconds = process_cpu_seconds();
  return m;
}

double EnergyMeter::joules_since(const Mark& start) const {
  if (measured()) return rapl_.joules_between(start.counters, rapl_.read());
  return (process_cpu_seconds() - start.cpu_seconds) * options_.watts_per_core;
}

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  return static_cast<bool>(clear.flush());
}

}  // namespace frugal
