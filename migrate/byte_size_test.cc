#include "migrate/byte_size.h"

#include <gtest/gtest.h>

namespace overtier {
namespace {

TEST(ByteSize, Accepts) {
  uint64_t v = 0;
  EXPECT_TRUE(ParseByteSize("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(ParseByteSize("4096", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(ParseByteSize("64K", &v));
  EXPECT_EQ(v, 64u << 10);
  EXPECT_TRUE(ParseByteSize("3m", &v));
  EXPECT_EQ(v, 3u << 20);
  EXPECT_TRUE(ParseByteSize("1MiB", &v));
  EXPECT_EQ(v, 1u << 20);
  EXPECT_TRUE(ParseByteSize("2G", &v));
  EXPECT_EQ(v, 2ull << 30);
  EXPECT_TRUE(ParseByteSize("1T", &v));
  EXPECT_EQ(v, 1ull << 40);
  EXPECT_TRUE(ParseByteSize("4KiB", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(ParseByteSize("4KB", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(ParseByteSize("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_TRUE(ParseByteSize("16777215T", &v));  // the largest whole number of TiB
  EXPECT_EQ(v, 16777215ull << 40);
}

TEST(ByteSize, Refuses) {
  uint64_t v = 42;
  for (const char* bad :
       {"", "K", "-1", "+5", " 5", "5 ", "1.5M", "5X", "1Q", "5KK", "1KX", "5Kb", "0x10",
        "18446744073709551616", "16777216T", "17179869184G", "99999999999T"}) {
    EXPECT_FALSE(ParseByteSize(bad, &v)) << bad;
  }
  EXPECT_EQ(v, 42u);  // untouched on failure
}

}  // namespace
}  // namespace overtier
