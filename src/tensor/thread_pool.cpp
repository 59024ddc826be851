#include "tensor/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <chrono>
#include <string>
#include <system_error>

#include "frugal/error.h"

namespace frugal {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// How long an idle worker spins before sleeping.
constexpr auto kSpinTime = std::chrono::microseconds(1000);

void pin_to_cpu(std::thread::native_handle_type thread, size_t cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % CPU_SETSIZE, &set);
  pthread_setaffinity_np(thread, sizeof(set), &set);  // best effort
}

}  // namespace

ThreadPool::ThreadPool(size_t threads, bool pin) {
  threads = std::max<size_t>(threads, 1);
  oversubscribed_ = threads > available_cpus();
  try {
    for (size_t i = 1; i < threads; ++i) {
      workers_.emplace_back([this] { worker_loop(); });
      if (pin) pin_to_cpu(workers_.back().native_handle(), i);
    }
    if (pin) {
      pinned_caller_ = pthread_getaffinity_np(pthread_self(), sizeof(caller_affinity_), &caller_affinity_) == 0;
      pin_to_cpu(pthread_self(), 0);
    }
  } catch (const std::system_error& e) {
    stop_workers();  // joinable threads must not be destroyed
    throw Error(std::string("cannot start ") + std::to_string(threads) + " threads: " + e.what() +
                "; use fewer threads (-t)");
  }
}

ThreadPool::~ThreadPool() {
  stop_workers();
  if (pinned_caller_) pthread_setaffinity_np(pthread_self(), sizeof(caller_affinity_), &caller_affinity_);
}

void ThreadPool::stop_workers() {
  stopping_.store(true);
  {
    std::lock_guard lock(sleep_mutex_);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

namespace {

// CPUs a cgroup quota allows ("max" or none: no limit), v2 then v1.
size_t cgroup_cpu_limit() {
  auto ceil_ratio = [](double quota, double period) -> size_t {
    if (quota <= 0 || period <= 0) return 0;
    return static_cast<size_t>(std::ceil(quota / period));
  };
  if (std::ifstream v2("/sys/fs/cgroup/cpu.max"); v2) {
    std::string quota;
    double period = 0;
    if (v2 >> quota >> period && quota != "max") return ceil_ratio(std::strtod(quota.c_str(), nullptr), period);
    return 0;
  }
  std::ifstream quota_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), period_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double quota = 0, period = 0;
  if (quota_file >> quota && period_file >> period) return ceil_ratio(quota, period);
  return 0;
}

}  // namespace

size_t ThreadPool::available_cpus() {
  size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  if (const size_t quota = cgroup_cpu_limit(); quota > 0) cpus = std::min(cpus, quota);
  return cpus;
}

size_t ThreadPool::default_thread_count() { return available_cpus(); }

namespace {

constexpr uint64_t kNoJob = 0xffffffffull << 32;  // a tag no generation has while a job is set up

// Tags never equal kNoJob: generations are taken modulo 2^32 - 1.
uint64_t job_tag(uint64_t generation) { return (generation % 0xffffffffull) << 32; }

}  // namespace

// Claims chunks of job `generation` until none is left. Chunk i is the i-th
// of `chunks_` equal contiguous parts, whoever runs it.
void ThreadPool::run_chunks(uint64_t generation) {
  const uint64_t tag = job_tag(generation);
  for (;;) {
    uint64_t claim = claim_.load(std::memory_order_acquire);
    if ((claim & kNoJob) != tag) return;  // that job is over
    const size_t chunk = static_cast<size_t>(claim & 0xffffffffull);
    const size_t chunks = chunks_.load(std::memory_order_relaxed);
    if (chunk >= chunks) return;
    if (!claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel)) continue;
    // Claimed: the job cannot end before this chunk is done, so what was
    // read of it is its own.
    const size_t count = count_.load(std::memory_order_relaxed);
    const size_t per = (count + chunks - 1) / chunks;
    const size_t begin = std::min(count, chunk * per);
    const size_t end = std::min(count, begin + per);
    if (begin < end) {
      try {
        (*body_.load(std::memory_order_relaxed))(begin, end);
      } catch (...) {
        std::lock_guard lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    done_chunks_.fetch_add(1, std::memory_order_acq_rel);
  }
}

// A wait step: a pause instruction, or (with more threads than CPUs, or
// after a long wait) giving the CPU to a thread that has work.
void ThreadPool::pause_while_waiting(uint32_t spins) const {
  if (oversubscribed_ || spins >= 4096) {
    std::this_thread::yield();
  } else {
    cpu_relax();
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    // Spin first: the next job usually comes within microseconds.
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    uint32_t spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_relaxed)) {
      // Yielding here would cost a decode step about a tenth of its speed on
      // an idle machine; on a busy one the sleep below frees the core.
      if (oversubscribed_) {
        std::this_thread::yield();
      } else {
        cpu_relax();
      }
      if (++spins % 1024 == 0 && std::chrono::steady_clock::now() > spin_until) {
        // Then sleep. Announcing the sleep before re-checking under the lock
        // pairs with the caller bumping the generation before it looks at
        // sleepers_, so no wake-up is lost.
        sleepers_.fetch_add(1);
        std::unique_lock lock(sleep_mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
        sleepers_.fetch_sub(1);
        break;
      }
    }
    if (stopping_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunks(seen);
  }
}

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t, size_t)>& body) {
  if (count == 0) return;
  if (workers_.empty() || count == 1) {
    body(0, count);
    return;
  }
  std::lock_guard turn(caller_mutex_);
  // No claim succeeds while the job is set up; then its tag opens it.
  claim_.store(kNoJob, std::memory_order_release);
  body_.store(&body, std::memory_order_relaxed);
  count_.store(count, std::memory_order_relaxed);
  const size_t chunks = std::min(count, size());
  chunks_.store(chunks, std::memory_order_relaxed);
  error_ = nullptr;
  done_chunks_.store(0, std::memory_order_relaxed);
  const uint64_t generation = generation_.load(std::memory_order_relaxed) + 1;
  claim_.store(job_tag(generation), std::memory_order_release);
  // Sequentially consistent: pairs with a worker announcing its sleep
  // (sleepers_) before it checks the generation, so no wake-up is lost.
  generation_.store(generation, std::memory_order_seq_cst);
  if (sleepers_.load() > 0) {
    { std::lock_guard lock(sleep_mutex_); }
    wake_.notify_all();
  }
  run_chunks(generation);
  // The chunks others claimed: spin briefly, then yield (on a busy machine
  // the thread running one may be waiting for this very core).
  for (uint32_t spins = 0; done_chunks_.load(std::memory_order_acquire) != chunks; ++spins) {
    pause_while_waiting(spins);
  }
  claim_.store(kNoJob, std::memory_order_release);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace frugal
