#include "union/dir_prefetch.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

class DirPrefetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dir_prefetch_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (int i = 0; i < 300; ++i) std::ofstream(dir_ + "/f" + std::to_string(i)) << i;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // What Noted's caller hands over: a fresh descriptor of the directory.
  std::function<std::vector<int>()> Opener() {
    return [this] {
      opened_++;
      return std::vector<int>{open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    };
  }

  std::string dir_;
  int opened_ = 0;
};

TEST_F(DirPrefetcherTest, ARunOfLookupsWarmsTheDirectoryOnce) {
  DirPrefetcher p;
  const int key = 0;
  for (int i = 0; i < DirPrefetcher::kTrigger - 1; ++i) p.Noted(&key, Opener());
  p.Drain();
  EXPECT_EQ(opened_, 0) << "not before the run is long enough";
  EXPECT_EQ(p.runs(), 0u);
  p.Noted(&key, Opener());
  p.Drain();
  EXPECT_EQ(opened_, 1);
  EXPECT_EQ(p.runs(), 1u);
  // The entries were stat'ed, or the first kProbe found cached and the rest
  // skipped (this directory was just written: its inodes are in memory).
  EXPECT_GE(p.entries_warmed(), static_cast<uint64_t>(DirPrefetcher::kProbe));
  EXPECT_LE(p.entries_warmed(), 300u);
  // More lookups in the same directory within kRepeat: no second prefetch.
  for (int i = 0; i < 3 * DirPrefetcher::kTrigger; ++i) p.Noted(&key, Opener());
  p.Drain();
  EXPECT_EQ(opened_, 1);
  // Another directory has its own count.
  const int other = 0;
  for (int i = 0; i < DirPrefetcher::kTrigger; ++i) p.Noted(&other, Opener());
  p.Drain();
  EXPECT_EQ(opened_, 2);
}

// A walk of a large tree meets many directories a few lookups each: the
// counts stay bounded and a run in one directory still triggers.
TEST_F(DirPrefetcherTest, ManyDirectoriesKeepTheCountsBounded) {
  DirPrefetcher p;
  std::vector<char> keys(10 * DirPrefetcher::kMaxSeen);
  const auto start = std::chrono::steady_clock::now();
  for (char& k : keys)
    for (int i = 0; i < 3; ++i) p.Noted(&k, Opener());
  const auto spent = std::chrono::steady_clock::now() - start;
  EXPECT_LT(spent, std::chrono::seconds(1)) << "a sweep per lookup";
  EXPECT_EQ(opened_, 0);
  const int key = 0;
  for (int i = 0; i < DirPrefetcher::kTrigger; ++i) p.Noted(&key, Opener());
  p.Drain();
  EXPECT_EQ(opened_, 1);
}

TEST_F(DirPrefetcherTest, NothingToOpenIsNoRun) {
  DirPrefetcher p;
  const int key = 0;
  for (int i = 0; i < DirPrefetcher::kTrigger; ++i)
    p.Noted(&key, [] { return std::vector<int>{}; });
  p.Drain();
  EXPECT_EQ(p.runs(), 0u);
}

TEST_F(DirPrefetcherTest, ADescriptorThatIsNoDirectoryIsClosedAndSkipped) {
  DirPrefetcher p;
  const int key = 0;
  const std::string file = dir_ + "/f1";
  int given = -1;
  for (int i = 0; i < DirPrefetcher::kTrigger; ++i) {
    p.Noted(&key, [&] {
      given = open(file.c_str(), O_RDONLY | O_CLOEXEC);
      return std::vector<int>{given};
    });
  }
  p.Drain();
  EXPECT_EQ(p.runs(), 1u);
  EXPECT_EQ(p.entries_warmed(), 0u);
  ASSERT_GE(given, 0);
  EXPECT_EQ(fcntl(given, F_GETFD), -1) << "the prefetcher closes what it is given";
}

}  // namespace
}  // namespace overtier
