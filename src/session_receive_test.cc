#include "src/session_receive.h"

#include <gtest/gtest.h>

namespace overtier {
namespace {

constexpr uint64_t kUs = 1000;

TEST(SpinWindowTest, DisabledNeverPolls) {
  SpinWindow w(0);
  for (int i = 0; i < 10; ++i) w.Record(5 * kUs, false);
  EXPECT_EQ(w.window_ns(), 0u);
}

TEST(SpinWindowTest, RequestsSoonAfterAnswersGrowTheWindowToItsMax) {
  SpinWindow w(100 * kUs);
  EXPECT_EQ(w.window_ns(), 0u);  // an idle mount starts without polling
  w.Record(30 * kUs, false);
  EXPECT_EQ(w.window_ns(), SpinWindow::kGrowStartNs);
  w.Record(30 * kUs, false);
  EXPECT_EQ(w.window_ns(), 2 * SpinWindow::kGrowStartNs);
  for (int i = 0; i < 10; ++i) w.Record(30 * kUs, false);
  EXPECT_EQ(w.window_ns(), 100 * kUs);
  w.Record(30 * kUs, true);  // a hit keeps it
  EXPECT_EQ(w.window_ns(), 100 * kUs);
}

TEST(SpinWindowTest, LongIdleGapsShrinkItToNothing) {
  SpinWindow w(100 * kUs);
  for (int i = 0; i < 10; ++i) w.Record(30 * kUs, false);
  ASSERT_EQ(w.window_ns(), 100 * kUs);
  w.Record(5'000 * kUs, false);
  EXPECT_EQ(w.window_ns(), 50 * kUs);
  for (int i = 0; i < 10; ++i) w.Record(5'000 * kUs, false);
  EXPECT_EQ(w.window_ns(), 0u);  // a compiler's sparse opens cost no CPU
}

TEST(SpinWindowTest, AMaxBelowTheGrowStartIsStillTheMax) {
  SpinWindow w(3 * kUs);
  w.Record(2 * kUs, false);
  EXPECT_EQ(w.window_ns(), 3 * kUs);
}

}  // namespace
}  // namespace overtier
