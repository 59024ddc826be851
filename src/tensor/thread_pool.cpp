#include "tensor/thread_pool.h"

#include <algorithm>
#include <string>
#include <system_error>

#include "frugal/error.h"

namespace frugal {

ThreadPool::ThreadPool(size_t threads) {
  threads = std::max<size_t>(threads, 1);
  try {
    for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (const std::system_error& e) {
    stop_workers();  // joinable threads must not be destroyed
    throw Error(std::string("cannot start ") + std::to_string(threads) + " threads: " + e.what() +
                "; use fewer threads (-t)");
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
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
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_loop(size_t index) {
  size_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_chunk(index);
    {
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) work_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t, size_t)>& body) {
  if (count == 0) return;
  if (workers_.empty() || count == 1) {
    body(0, count);
    return;
  }
  std::lock_guard turn(caller_mutex_);
  {
    std::lock_guard lock(mutex_);
    body_ = &body;
    count_ = count;
    pending_ = workers_.size();
    error_ = nullptr;
    ++generation_;
  }
  work_ready_.notify_all();
  run_chunk(0);
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, [&] { return pending_ == 0; });
    error = error_;
    body_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace frugal
