#include <gtest/gtest.h>

#include <atomic>
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
  std::vector<int> cpus(2, -1);
  for (int round = 0; round < 3; ++round) {
    pool.parallel_for(2, [&](size_t begin, size_t) { cpus[begin] = sched_getcpu(); });
  }
  EXPECT_EQ(cpus[0], 0);
  EXPECT_EQ(cpus[1], 1);
}

}  // namespace
}  // namespace frugal
