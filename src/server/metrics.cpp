#include "server/metrics.h"

#include <fmt/format.h>

namespace frugal::server {

void Histogram::observe(double value) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++counts_[i];
      break;
    }
  }
  ++count_;
  sum_ += value;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string out = fmt::format("# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{0}_bucket{{le=\"+Inf\"}} {1}\n{0}_sum {2}\n{0}_count {1}\n", name, count_, sum_);
  return out;
}

void Metrics::request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::tokens(size_t prompt, size_t completion) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
}

void Metrics::latency(double ttft_seconds, double total_seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(ttft_seconds);
  total_.observe(total_seconds);
}

void Metrics::set_kv_bytes(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  kv_bytes_ = bytes;
}

void Metrics::set_scheduler(size_t waiting, size_t running, uint64_t steps, uint64_t batched_tokens) {
  std::lock_guard lock(mutex_);
  waiting_ = waiting;
  running_ = running;
  steps_ = steps;
  batched_tokens_ = batched_tokens;
}

void Metrics::add_joules(double joules, bool measured) {
  std::lock_guard lock(mutex_);
  joules_ += joules;
  joules_measured_ = measured;
}

void Metrics::knowledge_request(const std::string& name) {
  std::lock_guard lock(mutex_);
  ++knowledge_requests_[name];
}

void Metrics::knowledge_loaded(const std::string& name, double seconds) {
  std::lock_guard lock(mutex_);
  knowledge_load_seconds_[name] = seconds;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out = "# HELP frugal_requests_total HTTP requests by endpoint and status code.\n"
                    "# TYPE frugal_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out += fmt::format("frugal_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, count);
  }
  out += fmt::format("# HELP frugal_prompt_tokens_total Prompt tokens processed.\n# TYPE frugal_prompt_tokens_total "
                     "counter\nfrugal_prompt_tokens_total {}\n", prompt_tokens_);
  out += fmt::format("# HELP frugal_completion_tokens_total Tokens generated.\n# TYPE frugal_completion_tokens_total "
                     "counter\nfrugal_completion_tokens_total {}\n", completion_tokens_);
  out += ttft_.render("frugal_time_to_first_token_seconds", "Time from a request's start to its first token.");
  out += total_.render("frugal_request_duration_seconds", "Time from a request's start to its last token.");
  out += fmt::format("# HELP frugal_kv_bytes Keys and values in the shared-prefix store (knowledge caches, answers "
                     "running, prefixes kept for reuse).\n# TYPE frugal_kv_bytes gauge\nfrugal_kv_bytes {}\n", kv_bytes_);
  out += fmt::format("# HELP frugal_requests_waiting Requests queued.\n# TYPE frugal_requests_waiting gauge\n"
                     "frugal_requests_waiting {}\n# HELP frugal_requests_running Requests generating.\n"
                     "# TYPE frugal_requests_running gauge\nfrugal_requests_running {}\n", waiting_, running_);
  out += fmt::format("# HELP frugal_batch_steps_total Forward passes of the batching scheduler.\n"
                     "# TYPE frugal_batch_steps_total counter\nfrugal_batch_steps_total {}\n"
                     "# HELP frugal_batched_tokens_total Tokens fed through those passes (all requests together).\n"
                     "# TYPE frugal_batched_tokens_total counter\nfrugal_batched_tokens_total {}\n",
                     steps_, batched_tokens_);
  out += "# HELP frugal_knowledge_requests_total Answers over each knowledge cache.\n"
         "# TYPE frugal_knowledge_requests_total counter\n";
  for (const auto& [name, count] : knowledge_requests_) {
    out += fmt::format("frugal_knowledge_requests_total{{knowledge=\"{}\"}} {}\n", name, count);
  }
  out += "# HELP frugal_knowledge_load_seconds Time this instance took to load each knowledge cache it holds.\n"
         "# TYPE frugal_knowledge_load_seconds gauge\n";
  for (const auto& [name, seconds] : knowledge_load_seconds_) {
    out += fmt::format("frugal_knowledge_load_seconds{{knowledge=\"{}\"}} {}\n", name, seconds);
  }
  if (joules_measured_) {
    out += fmt::format("# HELP frugal_energy_joules_total Energy of generation, from RAPL counters.\n"
                       "# TYPE frugal_energy_joules_total counter\nfrugal_energy_joules_total {}\n", joules_);
  }
  return out;
}

}  // namespace frugal::server
