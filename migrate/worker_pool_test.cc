#include "migrate/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

namespace overtier {
namespace {

TEST(WorkerPoolTest, RunsEveryTaskBeforeDestruction) {
  std::atomic<int> done{0};
  {
    WorkerPool pool(3);
    for (int i = 0; i < 1000; ++i) pool.Submit([&] { done.fetch_add(1); });
  }
  EXPECT_EQ(done.load(), 1000);
}

TEST(WorkerPoolTest, ASlowTaskDoesNotBlockTheOthers) {
  std::atomic<bool> release{false};
  std::atomic<int> fast{0};
  WorkerPool pool(2);
  pool.Submit([&] {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  for (int i = 0; i < 10; ++i) pool.Submit([&] { fast.fetch_add(1); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fast.load() < 10 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(fast.load(), 10);
  release = true;
}

}  // namespace
}  // namespace overtier
