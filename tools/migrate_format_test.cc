#include "tools/migrate_format.h"

#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <gtest/gtest.h>

namespace overtier::cli {
namespace {

class MigrateFormatTest : public ::testing::Test {
 protected:
  // Times are printed in local time: pin the zone.
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    if (tz != nullptr) saved_tz_ = tz;
    had_tz_ = tz != nullptr;
    setenv("TZ", "UTC", 1);
    tzset();
  }
  void TearDown() override {
    if (had_tz_)
      setenv("TZ", saved_tz_.c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }

  static overtier_ctl_state Released() {
    overtier_ctl_state s;
    std::memset(&s, 0, sizeof s);
    s.version = OVERTIER_CTL_VERSION;
    s.state = OVERTIER_STATE_RELEASED;
    s.mig_flags = OVERTIER_MIG_ARCHIVED | OVERTIER_MIG_RELEASED;
    s.nranges = 1;
    s.size = 1048576;
    s.archive_size = 1048576;
    s.barrier = 4096;
    s.resident_bytes = 4096;
    s.generation = 7;
    for (int i = 0; i < 16; ++i) s.bfid[i] = static_cast<uint8_t>(0xa0 + i);
    s.archive_time_ns = 1700000000123456789;  // 2023-11-14 22:13:20.123 UTC
    return s;
  }

 private:
  std::string saved_tz_;
  bool had_tz_ = false;
};

// ParseByteSize itself: migrate/byte_size_test.cc.
TEST_F(MigrateFormatTest, ParseByteRange) {
  uint64_t off = 1, len = 1;
  EXPECT_TRUE(ParseByteRange("0-4096", &off, &len));
  EXPECT_EQ(off, 0u);
  EXPECT_EQ(len, 4096u);
  EXPECT_TRUE(ParseByteRange("1M-3M", &off, &len));
  EXPECT_EQ(off, 1u << 20);
  EXPECT_EQ(len, 2u << 20);
  EXPECT_TRUE(ParseByteRange("4K-", &off, &len));  // to the end
  EXPECT_EQ(off, 4096u);
  EXPECT_EQ(len, 0u);
  EXPECT_TRUE(ParseByteRange("0-1", &off, &len));
  EXPECT_EQ(len, 1u);

  for (const char* bad : {"", "-", "-5", "5", "5-5", "6-5", "1M-4K", "a-b", "1-2-3", "1 - 2",
                          "0-99999999999999999999"}) {
    EXPECT_FALSE(ParseByteRange(bad, &off, &len)) << bad;
  }
}

TEST_F(MigrateFormatTest, StatesAndFlags) {
  EXPECT_EQ(StateName(OVERTIER_STATE_RESIDENT), "resident");
  EXPECT_EQ(StateName(OVERTIER_STATE_ARCHIVED), "archived");
  EXPECT_EQ(StateName(OVERTIER_STATE_RELEASED), "released");
  EXPECT_EQ(StateName(OVERTIER_STATE_DIRTY), "dirty");
  EXPECT_EQ(StateName(OVERTIER_STATE_LOST), "lost");
  EXPECT_EQ(StateName(9), "unknown(9)");

  // DESIGN.md, "Migration tier": the ls -l column.
  EXPECT_EQ(MigrationFlagChar(OVERTIER_STATE_RESIDENT), '-');
  EXPECT_EQ(MigrationFlagChar(OVERTIER_STATE_ARCHIVED), 'a');
  EXPECT_EQ(MigrationFlagChar(OVERTIER_STATE_RELEASED), 'A');
  EXPECT_EQ(MigrationFlagChar(OVERTIER_STATE_DIRTY), '-');
  EXPECT_EQ(MigrationFlagChar(OVERTIER_STATE_LOST), '!');
  EXPECT_EQ(MigrationFlagChar(9), '?');

  EXPECT_EQ(MigFlagNames(0), "none");
  EXPECT_EQ(MigFlagNames(OVERTIER_MIG_ARCHIVED | OVERTIER_MIG_RELEASED), "archived,released");
  EXPECT_EQ(
      MigFlagNames(OVERTIER_MIG_DIRTY | OVERTIER_MIG_RELEASED | OVERTIER_MIG_RESTORE_IN_PROGRESS),
      "released,dirty,restoring");
  EXPECT_EQ(MigFlagNames(OVERTIER_MIG_LOST | OVERTIER_MIG_ARCHIVE_IN_PROGRESS), "lost,archiving");
  EXPECT_EQ(MigFlagNames(OVERTIER_MIG_ARCHIVED | (1u << 9)), "archived,bit9");
  EXPECT_EQ(MigFlagNames(OVERTIER_MIG_LOWER), "lower");
  EXPECT_EQ(MigFlagNames(OVERTIER_MIG_PINNED | OVERTIER_MIG_ARCHIVED), "archived,pinned");
}

TEST_F(MigrateFormatTest, BfidAndTimes) {
  uint8_t zero[16] = {};
  EXPECT_EQ(BfidHex(zero), "");
  uint8_t b[16];
  for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(i * 17);
  EXPECT_EQ(BfidHex(b), "00112233445566778899aabbccddeeff");

  EXPECT_EQ(FormatTimeNs(0), "never");
  EXPECT_EQ(FormatTimeNs(1700000000123456789), "2023-11-14 22:13:20.123");
  EXPECT_EQ(FormatTimeNs(-1), "1969-12-31 23:59:59.999");
}

TEST_F(MigrateFormatTest, StatusText) {
  FileStatus f{"/mnt/data/big", Released(), 2};
  EXPECT_EQ(FormatStatusText(f),
            "/mnt/data/big: released (A)\n"
            "  flags      archived,released\n"
            "  size       1048576\n"
            "  resident   4096 bytes, barrier 4096\n"
            "  archive    1048576 bytes, 2 copies\n"
            "  bfid       a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\n"
            "  generation 7\n"
            "  archived   2023-11-14 22:13:20.123\n"
            "  restored   never\n");

  // Not a barrier; copies unknown (no --store).
  f.state.state = OVERTIER_STATE_DIRTY;
  f.state.mig_flags = OVERTIER_MIG_RELEASED | OVERTIER_MIG_DIRTY;
  f.state.barrier = UINT64_MAX;
  f.state.nranges = 3;
  f.state.resident_bytes = 12288;
  f.copies.reset();
  const std::string t = FormatStatusText(f);
  EXPECT_NE(t.find("dirty (-)\n"), std::string::npos) << t;
  EXPECT_NE(t.find("  resident   12288 bytes in 3 ranges\n"), std::string::npos) << t;
  EXPECT_NE(t.find("  archive    1048576 bytes\n"), std::string::npos) << t;

  // Never archived: no archive lines.
  overtier_ctl_state r;
  std::memset(&r, 0, sizeof r);
  r.size = r.barrier = r.resident_bytes = 10;
  r.nranges = 1;
  EXPECT_EQ(FormatStatusText({"f", r, std::nullopt}),
            "f: resident (-)\n"
            "  flags      none\n"
            "  size       10\n"
            "  resident   10 bytes, barrier 10\n"
            "  archived   never\n"
            "  restored   never\n");
}

TEST_F(MigrateFormatTest, StatusJson) {
  nlohmann::json j = StatusJson({"/mnt/x", Released(), 2});
  EXPECT_EQ(j["path"], "/mnt/x");
  EXPECT_EQ(j["state"], "released");
  EXPECT_EQ(j["flag"], "A");
  EXPECT_EQ(j["flags"], nlohmann::json({"archived", "released"}));
  EXPECT_EQ(j["size"], 1048576u);
  EXPECT_EQ(j["archive_size"], 1048576u);
  EXPECT_EQ(j["barrier"], 4096u);
  EXPECT_EQ(j["resident_bytes"], 4096u);
  EXPECT_EQ(j["ranges"], 1u);
  EXPECT_EQ(j["generation"], 7u);
  EXPECT_EQ(j["copies"], 2u);
  EXPECT_EQ(j["bfid"], "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  EXPECT_EQ(j["archive_time_ns"], 1700000000123456789);
  EXPECT_TRUE(j["restore_time_ns"].is_null());

  overtier_ctl_state s = Released();
  s.barrier = UINT64_MAX;
  std::memset(s.bfid, 0, sizeof s.bfid);
  j = StatusJson({"y", s, std::nullopt});
  EXPECT_TRUE(j["barrier"].is_null());
  EXPECT_TRUE(j["bfid"].is_null());
  EXPECT_TRUE(j["copies"].is_null());
}

TEST_F(MigrateFormatTest, ModeString) {
  EXPECT_EQ(ModeString(S_IFREG | 0644), "-rw-r--r--");
  EXPECT_EQ(ModeString(S_IFDIR | 0755), "drwxr-xr-x");
  EXPECT_EQ(ModeString(S_IFLNK | 0777), "lrwxrwxrwx");
  EXPECT_EQ(ModeString(S_IFCHR | 0600), "crw-------");
  EXPECT_EQ(ModeString(S_IFBLK | 0660), "brw-rw----");
  EXPECT_EQ(ModeString(S_IFIFO | 0644), "prw-r--r--");
  EXPECT_EQ(ModeString(S_IFSOCK | 0755), "srwxr-xr-x");
  EXPECT_EQ(ModeString(S_IFREG | S_ISUID | 0755), "-rwsr-xr-x");
  EXPECT_EQ(ModeString(S_IFREG | S_ISUID | 0644), "-rwSr--r--");
  EXPECT_EQ(ModeString(S_IFREG | S_ISGID | 0750), "-rwxr-s---");
  EXPECT_EQ(ModeString(S_IFDIR | S_ISVTX | 0777), "drwxrwxrwt");
  EXPECT_EQ(ModeString(S_IFDIR | S_ISVTX | 0770), "drwxrwx--T");
}

TEST_F(MigrateFormatTest, LsTime) {
  const time_t now = 1700000000;  // 2023-11-14 22:13:20
  EXPECT_EQ(LsTime(now - 3600, now), "Nov 14 21:13");
  EXPECT_EQ(LsTime(1600000000, now), "Sep 13  2020");        // older than six months
  EXPECT_EQ(LsTime(now + 86400 * 40, now), "Dec 24  2023");  // in the future
}

TEST_F(MigrateFormatTest, LsLinesAlignColumns) {
  const time_t now = 1700000000;
  std::vector<LsEntry> e(4);
  e[0].flag = 'A';
  e[0].st.st_mode = S_IFREG | 0644;
  e[0].st.st_nlink = 1;
  e[0].st.st_size = 1048576;
  e[0].st.st_mtim.tv_sec = now - 60;
  e[0].owner = "root";
  e[0].group = "root";
  e[0].name = "big";
  e[1].flag = 'a';
  e[1].st.st_mode = S_IFREG | 0600;
  e[1].st.st_nlink = 12;
  e[1].st.st_size = 5;
  e[1].st.st_mtim.tv_sec = now - 60;
  e[1].owner = "1234";
  e[1].group = "g";
  e[1].name = "small";
  e[2].flag = '-';
  e[2].st.st_mode = S_IFLNK | 0777;
  e[2].st.st_nlink = 1;
  e[2].st.st_size = 3;
  e[2].st.st_mtim.tv_sec = 1600000000;
  e[2].owner = "root";
  e[2].group = "root";
  e[2].name = "link";
  e[2].link_target = "big";
  e[3].flag = '!';
  e[3].st.st_mode = S_IFCHR | 0666;
  e[3].st.st_nlink = 1;
  e[3].st.st_rdev = makedev(1, 3);
  e[3].st.st_mtim.tv_sec = now - 60;
  e[3].owner = "root";
  e[3].group = "root";
  e[3].name = "null";
  EXPECT_EQ(FormatLsLines(e, now),
            "A -rw-r--r--  1 root root 1048576 Nov 14 22:12 big\n"
            "a -rw------- 12 1234 g          5 Nov 14 22:12 small\n"
            "- lrwxrwxrwx  1 root root       3 Sep 13  2020 link -> big\n"
            "! crw-rw-rw-  1 root root    1, 3 Nov 14 22:12 null\n");
  EXPECT_EQ(FormatLsLines({}, now), "");
}

TEST_F(MigrateFormatTest, ControlErrors) {
  EXPECT_EQ(ControlErrorMessage("/m/f", "archive", EPERM),
            "/m/f: permission denied (control operations need root)");
  EXPECT_EQ(ControlErrorMessage("/tmp/f", "status", ENOTTY),
            "/tmp/f is not on an overtier mount (or the mount has no store=)");
  EXPECT_EQ(ControlErrorMessage("/m/f", "release", ENODATA),
            "/m/f: release: no valid archive (never archived, or too few readable copies)");
  EXPECT_EQ(ControlErrorMessage("/m/f", "archive", EBUSY),
            "/m/f: archive: busy (another archive or restore of this file is running, or it is "
            "open with FUSE passthrough)");
  EXPECT_EQ(ControlErrorMessage("/m/low", "archive", EINVAL),
            "/m/low: archive: not a regular file of the upper layer (a file only in a lower layer "
            "is not archived until it is written through the mount)");
  EXPECT_EQ(ControlErrorMessage("/m/f", "archive", EOVERFLOW),
            "/m/f: archive: its atime or mtime is outside the years 1677 to 2262 a migration "
            "record holds (touch the file to archive it)");
  EXPECT_EQ(ControlErrorMessage("/m/f", "restore", ENOSPC),
            std::string("/m/f: restore: ") + std::strerror(ENOSPC));
}

}  // namespace
}  // namespace overtier::cli
