#include "src/io_gate.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

using Clock = std::chrono::steady_clock;

// Readers that hold the gate in turns, always at least one of them inside
// (each takes it again as soon as it let go, while the other holds it),
// must not keep a writer out: it gets in once the readers inside leave.
TEST(IoGate, AWaitingWriterIsNotStarvedByOverlappingReaders) {
  IoGate gate;
  std::atomic<bool> stop{false};
  std::atomic<int> inside{0};
  std::vector<std::thread> readers;
  // Bounded, so that a starved writer ends the test as a failure, not a hang.
  const auto give_up = Clock::now() + std::chrono::seconds(3);
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop && Clock::now() < give_up) {
        std::shared_lock<IoGate> l(gate);
        inside++;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        inside--;
      }
    });
  }
  // The readers are in and overlapping.
  while (inside.load() == 0) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto start = Clock::now();
  {
    std::unique_lock<IoGate> w(gate);
    EXPECT_EQ(inside.load(), 0) << "a reader inside while the writer holds the gate";
  }
  const auto waited = Clock::now() - start;
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_LT(waited, std::chrono::milliseconds(500)) << "the writer waited behind new readers";
}

TEST(IoGate, ReadersShareWritersExclude) {
  IoGate gate;
  std::shared_lock<IoGate> a(gate);
  EXPECT_TRUE(gate.try_lock_shared());
  gate.unlock_shared();
  EXPECT_FALSE(gate.try_lock());
  a.unlock();
  std::unique_lock<IoGate> w(gate);
  EXPECT_FALSE(gate.try_lock_shared());
}

}  // namespace
}  // namespace overtier
