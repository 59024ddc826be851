// Prometheus metrics of the server, rendered in the text exposition format.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace frugal::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void observe(double value);
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative)
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  void request(const std::string& endpoint, int status);
  void tokens(size_t prompt, size_t completion);
  void latency(double ttft_seconds, double total_seconds);
  void set_kv_bytes(uint64_t bytes);
  // The batching scheduler's state: sequences waiting and running, forward
  // passes (steps) and tokens fed through them so far.
  void set_scheduler(size_t waiting, size_t running, uint64_t steps, uint64_t batched_tokens);
  void add_joules(double joules, bool measured);
  // An answer over knowledge cache `name` (counted per cache, so a front
  // that routes caches to instances can be checked), and a cache loaded.
  void knowledge_request(const std::string& name);
  void knowledge_loaded(const std::string& name, double seconds);
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  Histogram ttft_{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  Histogram total_{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  uint64_t kv_bytes_ = 0;
  size_t waiting_ = 0, running_ = 0;
  uint64_t steps_ = 0, batched_tokens_ = 0;
  double joules_ = 0;
  std::map<std::string, uint64_t> knowledge_requests_;
  std::map<std::string, double> knowledge_load_seconds_;
  bool joules_measured_ = false;
};

}  // namespace frugal::server
