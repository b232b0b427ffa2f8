#include "src/open_handles.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

// Counts the live instances, so that a handle freed twice or never shows.
struct Counted {
  static std::atomic<int> live;
  int value;
  explicit Counted(int v) : value(v) { ++live; }
  ~Counted() { --live; }
};
std::atomic<int> Counted::live{0};

TEST(OpenHandles, TheValueGivenNamesTheHandleUntilItIsTaken) {
  OpenHandles<Counted> handles;
  const uint64_t a = handles.Add(std::make_unique<Counted>(1));
  const uint64_t b = handles.Add(std::make_unique<Counted>(2));
  EXPECT_NE(a, b);
  EXPECT_EQ(OpenHandles<Counted>::Get(a)->value, 1);
  EXPECT_EQ(handles.size(), 2u);
  EXPECT_EQ(Counted::live, 2);

  std::unique_ptr<Counted> got = handles.Take(a);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->value, 1);
  // A second release of the same value (or one never given) finds nothing.
  EXPECT_EQ(handles.Take(a), nullptr);
  EXPECT_EQ(handles.Take(0), nullptr);
  got.reset();
  EXPECT_EQ(Counted::live, 1);
  EXPECT_EQ(handles.size(), 1u);
  handles.Take(b);
  EXPECT_EQ(Counted::live, 0);
}

// What the kernel never released is handed back at the end, once.
TEST(OpenHandles, TakeAllHandsBackWhatWasNeverReleased) {
  OpenHandles<Counted> handles;
  for (int i = 0; i < 5; ++i) handles.Add(std::make_unique<Counted>(i));
  const uint64_t released = handles.Add(std::make_unique<Counted>(99));
  handles.Take(released);
  std::vector<std::unique_ptr<Counted>> left = handles.TakeAll();
  EXPECT_EQ(left.size(), 5u);
  EXPECT_EQ(handles.size(), 0u);
  EXPECT_TRUE(handles.TakeAll().empty());
  EXPECT_EQ(Counted::live, 5);
  left.clear();
  EXPECT_EQ(Counted::live, 0);
}

// Whatever a registry still holds when it goes is freed with it.
TEST(OpenHandles, DestroyingTheRegistryFreesItsHandles) {
  {
    OpenHandles<Counted> handles;
    handles.Add(std::make_unique<Counted>(1));
    EXPECT_EQ(Counted::live, 1);
  }
  EXPECT_EQ(Counted::live, 0);
}

// Opens and releases on many threads at once, as the request loop makes
// them: every handle is freed exactly once.
TEST(OpenHandles, ConcurrentOpensAndReleases) {
  OpenHandles<Counted> handles;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&handles, t] {
      std::vector<uint64_t> mine;
      for (int i = 0; i < 2000; ++i) {
        mine.push_back(handles.Add(std::make_unique<Counted>(t * 10000 + i)));
        if (i % 3 == 0) {
          ASSERT_NE(handles.Take(mine.back()), nullptr);
          mine.pop_back();
        }
      }
      for (size_t i = 0; i < mine.size(); i += 2) ASSERT_NE(handles.Take(mine[i]), nullptr);
    });
  }
  for (auto& th : threads) th.join();
  // Per thread: 2000 opened, 667 released at once, half the rest (667) later.
  EXPECT_EQ(handles.size(), 4u * 666);
  EXPECT_EQ(Counted::live, 4 * 666);
  handles.TakeAll();
  EXPECT_EQ(Counted::live, 0);
}

}  // namespace
}  // namespace overtier
