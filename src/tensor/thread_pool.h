// A small fixed-size thread pool for data-parallel loops. The calling thread
// takes part in the work, so a pool of N threads starts N-1 workers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace frugal {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size() + 1; }

  // Splits [0, count) into one contiguous chunk per thread and runs
  // body(begin, end) for each; returns when all are done. Exceptions thrown
  // by the body are rethrown here (the first one wins). Calls from several
  // threads are safe: they take turns, each using the whole pool. The body
  // must not call parallel_for on the same pool.
  void parallel_for(size_t count, const std::function<void(size_t, size_t)>& body);

  // Number of threads to use when the user gives none: the hardware's.
  static size_t default_thread_count();

 private:
  void worker_loop(size_t index);
  void stop_workers();
  void run_chunk(size_t index);

  std::vector<std::thread> workers_;
  std::mutex caller_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t count_ = 0;
  size_t generation_ = 0;
  size_t pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace frugal
