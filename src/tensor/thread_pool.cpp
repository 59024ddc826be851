#include "tensor/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
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
  try {
    for (size_t i = 1; i < threads; ++i) {
      workers_.emplace_back([this, i] { worker_loop(i); });
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

size_t ThreadPool::default_thread_count() {
  return std::max<size_t>(1, std::thread::hardware_concurrency());
}

void ThreadPool::run_chunk(size_t index) {
  const size_t threads = size();
  const size_t per = (count_ + threads - 1) / threads;
  const size_t begin = std::min(count_, index * per);
  const size_t end = std::min(count_, begin + per);
  if (begin >= end) return;
  try {
    (*body_)(begin, end);
  } catch (...) {
    std::lock_guard lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_loop(size_t index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin first: the next job usually comes within microseconds.
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    uint32_t spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_relaxed)) {
      // Yielding here would cost a decode step about a tenth of its speed on
      // an idle machine; on a busy one the sleep below frees the core.
      cpu_relax();
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
    run_chunk(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t, size_t)>& body) {
  if (count == 0) return;
  if (workers_.empty() || count == 1) {
    body(0, count);
    return;
  }
  std::lock_guard turn(caller_mutex_);
  body_ = &body;
  count_ = count;
  error_ = nullptr;
  pending_.store(workers_.size(), std::memory_order_relaxed);
  generation_.fetch_add(1);  // publishes body_ and count_
  if (sleepers_.load() > 0) {
    { std::lock_guard lock(sleep_mutex_); }
    wake_.notify_all();
  }
  run_chunk(0);
  // Spin briefly, then yield: on a busy machine a worker may be waiting for
  // this very core, and spinning on would only delay it.
  for (uint32_t spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  body_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace frugal
