#include "union/caller.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "union/union_fs.h"

namespace overtier {
namespace {

TEST(SuidSgidToDrop, CapFsetidKeepsEverything) {
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 06777, true, false), 0u);
}

TEST(SuidSgidToDrop, SetUserIdAlwaysGoes) {
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 04755, false, true), static_cast<mode_t>(S_ISUID));
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 04644, false, false), static_cast<mode_t>(S_ISUID));
}

TEST(SuidSgidToDrop, SetGroupIdGoesWithGroupExecuteOrOutsideTheGroup) {
  // Group-executable: a real set-group-ID program, cleared for anyone.
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 02775, false, true), static_cast<mode_t>(S_ISGID));
  // Not group-executable (the old mandatory-locking marker): kept for a
  // member of the group, cleared for others.
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 02764, false, true), 0u);
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 02764, false, false), static_cast<mode_t>(S_ISGID));
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 06777, false, true), static_cast<mode_t>(S_ISUID | S_ISGID));
}

TEST(SuidSgidToDrop, OnlyRegularFiles) {
  EXPECT_EQ(SuidSgidToDrop(S_IFDIR | 06777, false, false), 0u);
  EXPECT_EQ(SuidSgidToDrop(S_IFREG | 0777, false, false), 0u);
}

TEST(ReadCallerCreds, ReadsThisProcess) {
  Ctx ctx;
  ctx.pid = getpid();
  ctx.uid = getuid();
  ctx.gid = getgid();
  CallerCreds c = ReadCallerCreds(ctx, {});
  EXPECT_TRUE(c.InGroup(getgid()));
  // The suite runs as root with a full capability set.
  if (geteuid() == 0) {
    EXPECT_TRUE(c.cap_fsetid);
  }
}

TEST(ReadCallerCreds, WithoutAProcessUidZeroStandsForTheCapability) {
  Ctx ctx;
  ctx.pid = 0;
  ctx.uid = 0;
  EXPECT_TRUE(ReadCallerCreds(ctx, {}).cap_fsetid);
  ctx.uid = 1000;
  ctx.gid = 1000;
  CallerCreds c = ReadCallerCreds(ctx, {});
  EXPECT_FALSE(c.cap_fsetid);
  EXPECT_TRUE(c.InGroup(1000));
  EXPECT_FALSE(c.InGroup(0));
}

TEST(ReadCallerCreds, MapsGroupsToDiskIds) {
  Ctx ctx;
  ctx.pid = 0;
  ctx.uid = 1;
  ctx.gid = 5;
  std::vector<IdMapping> map = {{100000, 0, 65536}};  // disk 100000.. is 0..
  EXPECT_TRUE(ReadCallerCreds(ctx, map).InGroup(100005));
}

}  // namespace
}  // namespace overtier
