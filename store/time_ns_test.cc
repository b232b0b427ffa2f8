// overtier/time_ns.h: the catalog's times (nanoseconds in an int64_t) and
// the times of file systems and tar headers, which reach further.
#include "overtier/time_ns.h"

#include <gtest/gtest.h>

#include <limits>

namespace overtier {
namespace {

TEST(TimeNs, InRangeConvertsBothWays) {
  for (int64_t ns : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{1700000000123456789},
                     int64_t{-1500000000999999999}, kMaxTimeNs, kMinTimeNs}) {
    const struct timespec ts = NsToTimespec(ns);
    EXPECT_GE(ts.tv_nsec, 0) << ns;
    EXPECT_LT(ts.tv_nsec, kNsPerSec) << ns;
    int64_t back = 0;
    ASSERT_TRUE(TimespecToNs(ts, &back)) << ns;
    EXPECT_EQ(back, ns);
    EXPECT_EQ(ClampedNs(ts), ns);
  }
  // Before the epoch the fraction stays positive: -1 ns is 1969-12-31
  // 23:59:59.999999999.
  EXPECT_EQ(NsToTimespec(-1).tv_sec, -1);
  EXPECT_EQ(NsToTimespec(-1).tv_nsec, 999999999);
}

TEST(TimeNs, OutOfRangeIsRefusedOrClamped) {
  int64_t out = 42;
  const int64_t max_sec = kMaxTimeNs / kNsPerSec;  // 2262-04-11
  EXPECT_FALSE(TimeToNs(max_sec + 1, 0, &out));
  EXPECT_FALSE(TimeToNs(max_sec, 999999999, &out));  // the multiplication fits, the sum not
  EXPECT_FALSE(TimeToNs(std::numeric_limits<int64_t>::max(), 0, &out));
  EXPECT_FALSE(TimeToNs(std::numeric_limits<int64_t>::min(), 0, &out));
  EXPECT_FALSE(TimeToNs(-max_sec - 2, 0, &out));
  EXPECT_EQ(out, 42);                                    // left alone
  EXPECT_EQ(ClampedTimeNs(10413792000, 0), kMaxTimeNs);  // 2300-01-01
  EXPECT_EQ(ClampedTimeNs(-10413792000, 0), kMinTimeNs);
  EXPECT_EQ(ClampedTimeNs(max_sec, 999999999), kMaxTimeNs);

  bool clamped = false;
  EXPECT_EQ(ClampedTimeNs(1, 5, &clamped), kNsPerSec + 5);
  EXPECT_FALSE(clamped);
  EXPECT_EQ(ClampedTimeNs(10413792000, 0, &clamped), kMaxTimeNs);
  EXPECT_TRUE(clamped);
  EXPECT_EQ(ClampedTimeNs(2, 0, &clamped), 2 * kNsPerSec);
  EXPECT_TRUE(clamped);  // never cleared: one flag for several times
}

}  // namespace
}  // namespace overtier
