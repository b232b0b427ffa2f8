// Set-user-ID, set-group-ID and file capabilities after a write, a
// truncate or a chown, as the kernel overlayfs clears them: a write or
// truncate by a caller without CAP_FSETID clears set-user-ID, and
// set-group-ID when the group may execute the file or the caller is not in
// its group; root keeps both; chown clears them; any write drops
// security.capability. The daemon writes the upper files as root, so none
// of this happens by itself (docs/SEMANTICS.md, "Set-user-ID bits").
//
// Each test runs with passthrough (the default) and with passthrough=0
// (the writeback cache), which reach the daemon by different requests.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "harness.h"
#include "test_util.h"

namespace overtier::it {
namespace {

constexpr uid_t kUser = 1000;
constexpr gid_t kGroup = 1000;
constexpr gid_t kOtherGroup = 2000;

mode_t Perms(const std::string& path) { return Lstat(path).st_mode & 07777; }

// A version-2 file capability (cap_net_raw=ep), as setcap writes it.
std::string CapNetRaw() {
  std::string v(20, '\0');
  const unsigned char head[] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00};
  std::memcpy(v.data(), head, sizeof(head));
  return v;
}

class PrivsTest : public UnionFsTest, public ::testing::WithParamInterface<const char*> {
 protected:
  void MountWithParam() {
    MountConfig c;
    c.overtier_opts = GetParam();
    ASSERT_NO_FATAL_FAILURE(Mount(c));
  }

  // Appends a byte to path as uid/gid (no other groups): 0, or the errno.
  int AppendAs(uid_t uid, gid_t gid, const std::string& path, int extra_flags = 0) {
    return RunAs(uid, gid, [&] {
      int fd = open(path.c_str(), O_WRONLY | O_APPEND | extra_flags);
      if (fd < 0) return errno;
      int rc = write(fd, "x", 1) == 1 ? 0 : errno;
      close(fd);
      return rc;
    });
  }

  // A file of mode `mode`, owned by root and group `gid`, in the top lower
  // layer (lower) or made through the mount (upper).
  void MakeFile(const std::string& rel, mode_t mode, gid_t gid, bool lower) {
    const std::string p = lower ? L(0, rel) : M(rel);
    WriteFile(p, "data", 0644);
    Chown(p, 0, gid);
    ASSERT_EQ(chmod(p.c_str(), mode), 0) << p;
  }
};

TEST_P(PrivsTest, AWriteByAnotherUserClearsSetUserIdAndSetGroupId) {
  MakeFile("low", 06777, 0, true);
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  MakeFile("up", 06777, 0, false);
  for (const char* f : {"low", "up"}) {
    ASSERT_EQ(AppendAs(kUser, kGroup, M(f)), 0) << f;
    EXPECT_EQ(Perms(M(f)), 0777u) << f;
    EXPECT_EQ(ReadFile(M(f)), "datax") << f;
  }
  Remount();
  EXPECT_EQ(Perms(M("low")), 0777u) << "on the upper file, not only in the kernel's cache";
}

TEST_P(PrivsTest, RootKeepsTheBitsOnWrite) {
  MakeFile("f", 06777, 0, true);
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  ASSERT_EQ(AppendAs(0, 0, M("f")), 0);
  EXPECT_EQ(Perms(M("f")), 06777u);
}

// Without group execute, set-group-ID stays for a member of the file's
// group and goes for anyone else (the kernel's in_group_or_capable).
TEST_P(PrivsTest, SetGroupIdWithoutGroupExecuteStaysForAGroupMember) {
  MakeFile("member", 02766, kGroup, true);
  MakeFile("outsider", 02766, kOtherGroup, true);
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  ASSERT_EQ(AppendAs(kUser, kGroup, M("member")), 0);
  EXPECT_EQ(Perms(M("member")), 02766u);
  ASSERT_EQ(AppendAs(kUser, kGroup, M("outsider")), 0);
  EXPECT_EQ(Perms(M("outsider")), 0766u);
}

TEST_P(PrivsTest, TruncateByAnotherUserClears) {
  MakeFile("t", 06777, 0, true);
  MakeFile("o", 06777, 0, true);
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  EXPECT_EQ(RunAs(kUser, kGroup, [&] { return truncate(M("t").c_str(), 2) == 0 ? 0 : errno; }), 0);
  EXPECT_EQ(Perms(M("t")), 0777u);
  EXPECT_EQ(Lstat(M("t")).st_size, 2);
  // open(2) with O_TRUNC: the truncate happens in the daemon's open.
  EXPECT_EQ(RunAs(kUser, kGroup,
                  [&] {
                    int fd = open(M("o").c_str(), O_WRONLY | O_TRUNC);
                    if (fd < 0) return errno;
                    close(fd);
                    return 0;
                  }),
            0);
  EXPECT_EQ(Perms(M("o")), 0777u);
  EXPECT_EQ(Lstat(M("o")).st_size, 0);
}

TEST_P(PrivsTest, ChownClearsBoth) {
  MakeFile("c", 06777, 0, true);
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  Chown(M("c"), kUser, kGroup);
  EXPECT_EQ(Perms(M("c")), 0777u);
}

TEST_P(PrivsTest, AnyWriteDropsTheFileCapability) {
  MakeFile("cap", 0777, 0, true);
  SetXattr(L(0, "cap"), "security.capability", CapNetRaw());
  MakeFile("rootcap", 0777, 0, true);
  SetXattr(L(0, "rootcap"), "security.capability", CapNetRaw());
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  ASSERT_EQ(GetXattr(M("cap"), "security.capability"), CapNetRaw());
  ASSERT_EQ(AppendAs(kUser, kGroup, M("cap")), 0);
  EXPECT_EQ(GetXattr(M("cap"), "security.capability"), std::nullopt);
  ASSERT_EQ(AppendAs(0, 0, M("rootcap")), 0);
  EXPECT_EQ(GetXattr(M("rootcap"), "security.capability"), std::nullopt) << "root too";
}

// O_DIRECT writes take the FUSE client's direct path, which does not ask
// the file system to clear anything before it writes.
TEST_P(PrivsTest, DirectWriteClears) {
  MakeFile("d", 06777, 0, true);
  ASSERT_NO_FATAL_FAILURE(MountWithParam());
  const std::string p = M("d");
  int rc = RunAs(kUser, kGroup, [&] {
    int fd = open(p.c_str(), O_WRONLY | O_DIRECT);
    if (fd < 0) return errno;
    void* buf = nullptr;
    if (posix_memalign(&buf, 4096, 4096) != 0) return ENOMEM;
    std::memset(buf, 'd', 4096);
    int r = pwrite(fd, buf, 4096, 0) == 4096 ? 0 : errno;
    free(buf);
    close(fd);
    return r;
  });
  if (rc == EINVAL) GTEST_SKIP() << "the upper file system takes no O_DIRECT";
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(Perms(p), 0777u);
}

INSTANTIATE_TEST_SUITE_P(Modes, PrivsTest, ::testing::Values("", "passthrough=0"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(*i.param ? "Writeback" : "Passthrough");
                         });

}  // namespace
}  // namespace overtier::it
