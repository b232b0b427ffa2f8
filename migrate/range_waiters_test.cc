#include "migrate/range_waiters.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

TEST(RangeWaitersTest, AnsweredProgressivelyAsRangesBecomeResident) {
  RangeWaiters w;
  std::vector<std::string> log;
  auto cb = [&log](std::string name) {
    return [&log, name](const Status& s) { log.push_back(name + ":" + std::to_string(s.err())); };
  };
  w.Add("f", {900, 100}, cb("tail"));
  w.Add("f", {0, 1000}, cb("all"));
  w.Add("g", {0, 10}, cb("other-file"));
  EXPECT_EQ(w.size(), 3u);
  std::vector<ByteRange> want = {{900, 100}, {0, 1000}};
  EXPECT_EQ(w.Ranges("f"), want);

  ResidencyMap m = ResidencyMap::WithBarrier(1000, 100);
  EXPECT_EQ(w.Notify("f", m), 0u);
  m.MarkResident(900, 100);
  EXPECT_EQ(w.Notify("f", m), 1u);  // the tail reader does not wait for the rest
  EXPECT_EQ(log, std::vector<std::string>{"tail:0"});
  m.MarkResident(0, 1000);
  EXPECT_EQ(w.Notify("f", m), 1u);
  EXPECT_EQ(log.back(), "all:0");
  EXPECT_EQ(w.size(), 1u);
  // Another file's map answers nothing here.
  EXPECT_EQ(w.Notify("f", m), 0u);
}

TEST(RangeWaitersTest, PastTheEndIsResidentAfterATruncate) {
  RangeWaiters w;
  int calls = 0;
  w.Add("f", {500, 100}, [&calls](const Status& s) { calls += s.ok(); });
  ResidencyMap m = ResidencyMap::WithBarrier(1000, 0);
  EXPECT_EQ(w.Notify("f", m), 0u);
  m.Truncate(400);  // the bytes waited for no longer exist
  EXPECT_EQ(w.Notify("f", m), 1u);
  EXPECT_EQ(calls, 1);
}

TEST(RangeWaitersTest, FailAndCancelAnswerOnce) {
  RangeWaiters w;
  std::vector<int> errs;
  auto cb = [&errs](const Status& s) { errs.push_back(s.err()); };
  uint64_t a = w.Add("f", {0, 10}, cb);
  w.Add("f", {10, 10}, cb);
  w.Add("g", {0, 10}, cb);
  EXPECT_TRUE(w.Cancel(a));
  EXPECT_FALSE(w.Cancel(a));
  EXPECT_EQ(errs, std::vector<int>{EINTR});
  EXPECT_EQ(w.Fail("f", Status::Errno(EIO, "both copies corrupt")), 1u);
  EXPECT_EQ(errs, (std::vector<int>{EINTR, EIO}));
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.Fail("f", Status::Errno(EIO)), 0u);
}

TEST(RangeWaitersTest, CallbackMayReenter) {
  RangeWaiters w;
  bool inner = false;
  w.Add("f", {0, 1}, [&](const Status&) {
    // Called without the registry's lock: registering from here works.
    w.Add("f", {5, 1}, [&inner](const Status&) { inner = true; });
  });
  ResidencyMap m = ResidencyMap::FullyResident(10);
  EXPECT_EQ(w.Notify("f", m), 1u);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.Notify("f", m), 1u);
  EXPECT_TRUE(inner);
}

TEST(RangeWaitersTest, HasReaderSeesOnlyReadingWaitersOfTheRange) {
  RangeWaiters w;
  auto none = [](const Status&) {};
  const uint64_t restore = w.Add("f", {0, UINT64_MAX}, none, /*reads=*/false);
  EXPECT_FALSE(w.HasReader("f", {0, 4096})) << "a restore that only waits reads nothing";
  const uint64_t reader = w.Add("f", {8192, 100}, none);
  EXPECT_TRUE(w.HasReader("f", {8000, 200}));
  EXPECT_TRUE(w.HasReader("f", {8291, 1}));
  EXPECT_FALSE(w.HasReader("f", {8292, 1000}));
  EXPECT_FALSE(w.HasReader("f", {0, 8192}));
  EXPECT_FALSE(w.HasReader("g", {8000, 200}));
  EXPECT_TRUE(w.HasReader("f", {0, UINT64_MAX}));
  EXPECT_TRUE(w.Cancel(reader));
  EXPECT_FALSE(w.HasReader("f", {0, UINT64_MAX}));
  EXPECT_TRUE(w.Cancel(restore));
}

}  // namespace
}  // namespace overtier
