#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <numeric>
#include <thread>

#include <sched.h>

#include "frugal/error.h"
#include "tensor/thread_pool.h"

namespace frugal {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (size_t count : {0u, 1u, 2u, 5u, 1000u}) {
    std::vector<std::atomic<int>> seen(count);
    pool.parallel_for(count, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) seen[i]++;
    });
    for (size_t i = 0; i < count; ++i) EXPECT_EQ(seen[i], 1) << i;
  }
}

TEST(ThreadPool, RethrowsTheBodysException) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(10, [](size_t begin, size_t) {
    if (begin > 0) throw Error("worker failed");
  }), Error);
  // Still usable afterwards.
  std::atomic<size_t> total{0};
  pool.parallel_for(10, [&](size_t begin, size_t end) { total += end - begin; });
  EXPECT_EQ(total, 10u);
}

TEST(ThreadPool, ConcurrentCallersTakeTurns) {
  ThreadPool pool(2);
  auto work = [&](uint64_t seed, uint64_t* result) {
    for (int round = 0; round < 200; ++round) {
      std::vector<uint64_t> values(257);
      pool.parallel_for(values.size(), [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) values[i] = seed * i;
      });
      *result += std::accumulate(values.begin(), values.end(), uint64_t{0});
    }
  };
  uint64_t a = 0, b = 0;
  std::thread first(work, 3, &a), second(work, 5, &b);
  first.join();
  second.join();
  const uint64_t per_round = 257 * 256 / 2;
  EXPECT_EQ(a, 200 * 3 * per_round);
  EXPECT_EQ(b, 200 * 5 * per_round);
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {

TEST(ThreadPool, PinnedThreadsRunOnTheirCpus) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs";
  ThreadPool pool(2, true);
  // Chunks go to whichever thread claims them; each thread stays on its CPU:
  // the caller on 0, the worker on 1.
  const auto caller = std::this_thread::get_id();
  std::mutex mutex;
  std::vector<std::pair<bool, int>> seen;  // (on the caller, CPU)
  for (int round = 0; round < 50; ++round) {
    pool.parallel_for(2, [&](size_t, size_t) {
      std::lock_guard lock(mutex);
      seen.emplace_back(std::this_thread::get_id() == caller, sched_getcpu());
    });
  }
  for (const auto& [on_caller, cpu] : seen) EXPECT_EQ(cpu, on_caller ? 0 : 1);
}

TEST(ThreadPool, TheDefaultFollowsTheCpusTheProcessMayUse) {
  // Run on one CPU only (as `taskset -c 0` would): the default is 1 thread.
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  int first = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE && first < 0; ++cpu) {
    if (CPU_ISSET(cpu, &saved)) first = cpu;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const size_t on_one = ThreadPool::default_thread_count();
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  EXPECT_EQ(on_one, 1u);
  EXPECT_EQ(ThreadPool::default_thread_count(), static_cast<size_t>(CPU_COUNT(&saved)));
}

TEST(ThreadPool, ManyMoreThreadsThanCpusStillCoverEveryIndexOnce) {
  // Oversubscribed, workers wake late and claim chunks of jobs that may be
  // over: each index of each job is still done exactly once.
  ThreadPool pool(4 * ThreadPool::available_cpus() + 1);
  std::vector<std::atomic<int>> seen(97);
  for (int round = 1; round <= 3000; ++round) {
    const size_t count = 1 + static_cast<size_t>(round) % seen.size();
    pool.parallel_for(count, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) seen[i]++;
    });
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(seen[i].exchange(0), 1) << "round " << round << " index " << i;
  }
}

}  // namespace
}  // namespace frugal
