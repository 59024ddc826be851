// A fixed-size thread pool for the data-parallel loops of a forward pass.
// The calling thread takes part, so a pool of N threads starts N-1 workers.
//
// A decode step runs a few hundred short parallel loops, so waking workers
// through the kernel each time would cost more than the work: idle workers
// spin on an atomic counter for a while (about a millisecond) before they
// sleep on a condition variable.
//
// Chunks of a loop are claimed, not assigned: whoever runs takes the next
// one, so a thread the OS has not scheduled (more threads than CPUs, a busy
// machine) delays nobody: the others do its share. With more threads than
// the CPUs the process may use, spinning threads also yield the CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <sched.h>

namespace frugal {

class ThreadPool {
 public:
  // `pin`: bind thread i to CPU i (only when asked; the OS usually knows
  // better on a shared machine).
  explicit ThreadPool(size_t threads, bool pin = false);
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

  // Number of threads to use when the user gives none: the CPUs this
  // process may run on (its affinity mask, and a cgroup CPU quota as
  // containers set one, rounded up).
  static size_t default_thread_count();
  // The CPUs this process may use, as above.
  static size_t available_cpus();

 private:
  void worker_loop();
  void run_chunks(uint64_t generation);
  void pause_while_waiting(uint32_t spins) const;
  void stop_workers();

  std::vector<std::thread> workers_;
  bool pinned_caller_ = false;
  cpu_set_t caller_affinity_{};  // restored when the pool goes
  std::mutex caller_mutex_;  // one parallel_for at a time
  // The current job. Atomics, because a worker that wakes late may read them
  // while the next job is being set up; it then fails to claim (see claim_).
  std::atomic<const std::function<void(size_t, size_t)>*> body_{nullptr};
  std::atomic<size_t> count_{0};
  std::atomic<size_t> chunks_{0};        // the job's chunks (one per thread)
  bool oversubscribed_ = false;          // more threads than available CPUs
  std::atomic<uint64_t> generation_{0};  // bumped once per job
  // The job's tag (low 32 bits of its generation) and, below it, the next
  // chunk to claim; a claim is a compare-exchange, so it succeeds only for
  // the job it was read for.
  std::atomic<uint64_t> claim_{0};
  std::atomic<size_t> done_chunks_{0};   // chunks of the current job finished
  std::atomic<size_t> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace frugal
