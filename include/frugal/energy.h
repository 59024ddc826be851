// Energy of a span of work: measured from Linux powercap RAPL counters when
// they can be read, otherwise estimated from the process's CPU time. Every
// figure says which it is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace frugal {

// RAPL energy counters under a powercap tree (/sys/class/powercap): every
// package domain (intel-rapl:N named package-*) and every DRAM subdomain
// (intel-rapl:N:M named "dram"). Core and uncore subdomains are inside the
// package figure, and psys (the whole platform) contains it: neither is
// added again.
class RaplReader {
 public:
  struct Domain {
    std::string name;               // "package-0", "dram"
    std::filesystem::path counter;  // .../energy_uj
    uint64_t range_uj = 0;          // max_energy_range_uj: where the counter wraps to 0
  };

  explicit RaplReader(const std::filesystem::path& root = "/sys/class/powercap");
  // Whether any domain's counter could be read.
  bool available() const { return !domains_.empty(); }
  const std::vector<Domain>& domains() const { return domains_; }
  static constexpr uint64_t kUnreadable = ~uint64_t{0};
  // Current counter of each domain, in domain order (kUnreadable where the
  // read failed).
  std::vector<uint64_t> read() const;
  // Joules between two readings, each counter's wrap-around undone. At most
  // one wrap per domain can be told apart: readings must be closer than the
  // counter's range takes to fill (about 5 minutes for 65 kJ at 200 W).
  // Domains with a failed read count 0.
  double joules_between(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after) const;

 private:
  std::vector<Domain> domains_;
};

struct EnergyOptions {
  std::filesystem::path powercap_root = "/sys/class/powercap";
  double watts_per_core = 10.0;  // estimate: W per fully busy core (docs/oae.md)
  bool force_estimate = false;   // ignore RAPL even when readable
};

// Marks spans of work and reports their energy.
class EnergyMeter {
 public:
  struct Mark {
    std::vector<uint64_t> counters;
    double cpu_seconds = 0;
  };

  explicit EnergyMeter(const EnergyOptions& options = {});
  bool measured() const { return !options_.force_estimate && rapl_.available(); }
  // "measured (RAPL: package-0, dram)" or "estimated (CPU time x 10 W per core)"
  std::string description() const;
  Mark mark() const;
  double joules_since(const Mark& start) const;

 private:
  EnergyOptions options_;
  RaplReader rapl_;
};

// User + system CPU time of this process so far.
double process_cpu_seconds();
// Peak resident set size of this process (VmHWM), bytes; reset_peak_rss()
// restarts it from the current size where the kernel allows (Linux >= 4.0).
uint64_t peak_rss_bytes();
bool reset_peak_rss();

}  // namespace frugal
