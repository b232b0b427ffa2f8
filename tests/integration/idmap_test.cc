// uidmapping=/gidmapping= as fuse-overlayfs reads them, and as
// containers/storage writes them for a container with its own user
// namespace (`podman run --uidmap 0:100000:65536`): `:0:100000:65536`, that
// is ContainerID:HostID:Size. The layers keep the container's ids (an
// image's root owns its files as 0 on disk), and through the mount they are
// the host's ids that the container's processes run as. So a range
// DISK:MOUNT:COUNT shows disk ids DISK.. as MOUNT.., new objects and chown
// store MOUNT.. as DISK.., and a disk id outside every range shows as the
// overflow id 65534. The kernel overlayfs has no such option (it takes
// id-mapped layers instead), so these tests run on overtier only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "harness.h"
#include "test_util.h"

namespace overtier::it {
namespace {

// What containers/storage passes for --uidmap 0:100000:65536.
constexpr const char* kContainerMapping = "uidmapping=:0:100000:65536,gidmapping=:0:100000:65536";

class IdMapTest : public UnionFsTest {
 protected:
  void SetUp() override {
    UnionFsTest::SetUp();
    if (IsKernel()) GTEST_SKIP() << "uidmapping= is an overtier (fuse-overlayfs) option";
  }
  void MountMapped() {
    MountConfig c;
    c.overtier_opts = kContainerMapping;
    Mount(c);
  }
};

TEST_F(IdMapTest, TheImagesIdsShowAsTheContainersHostIds) {
  MakeDirs(L(0, "etc"));
  WriteFile(L(0, "etc/passwd"), "root:x:0:0::/:/bin/sh\n");
  WriteFile(L(0, "home"), "a user's file");
  Chown(L(0, "home"), 1000, 1001);
  WriteFile(L(0, "stray"), "owned by an id the container does not have");
  Chown(L(0, "stray"), 70000, 70000);
  ASSERT_NO_FATAL_FAILURE(MountMapped());

  struct stat st = Lstat(M(""));
  EXPECT_EQ(st.st_uid, 100000u) << "the root directory, 0 on disk";
  st = Lstat(M("etc/passwd"));
  EXPECT_EQ(st.st_uid, 100000u);
  EXPECT_EQ(st.st_gid, 100000u);
  st = Lstat(M("home"));
  EXPECT_EQ(st.st_uid, 101000u);
  EXPECT_EQ(st.st_gid, 101001u);
  st = Lstat(M("stray"));
  EXPECT_EQ(st.st_uid, 65534u) << "outside every range: the overflow id";
  EXPECT_EQ(st.st_gid, 65534u);
}

// The container's root is host uid 100000: it owns the image's files
// through the mount, and what it creates is stored as 0, as in the image.
TEST_F(IdMapTest, WhatTheContainerCreatesIsStoredWithItsOwnIds) {
  MakeDirs(L(0, "tmp"), 0777);
  ASSERT_EQ(chmod(L(0, "tmp").c_str(), 01777), 0);
  ASSERT_NO_FATAL_FAILURE(MountMapped());

  EXPECT_EQ(RunAs(100000, 100000,
                  [&] {
                    if (mkdir(M("made-by-root").c_str(), 0755) != 0) return errno;
                    int fd = open(M("made-by-root/f").c_str(), O_WRONLY | O_CREAT, 0644);
                    if (fd < 0) return errno;
                    close(fd);
                    return 0;
                  }),
            0)
      << "the container's root owns the root directory through the mount";
  EXPECT_EQ(RunAs(100005, 100006,
                  [&] {
                    int fd = open(M("tmp/user-file").c_str(), O_WRONLY | O_CREAT, 0644);
                    if (fd < 0) return errno;
                    close(fd);
                    return symlink("user-file", M("tmp/user-link").c_str()) == 0 ? 0 : errno;
                  }),
            0);

  struct stat st = Lstat(U("made-by-root"));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  st = Lstat(U("made-by-root/f"));
  EXPECT_EQ(st.st_uid, 0u);
  st = Lstat(U("tmp/user-file"));
  EXPECT_EQ(st.st_uid, 5u);
  EXPECT_EQ(st.st_gid, 6u);
  st = Lstat(U("tmp/user-link"));
  EXPECT_EQ(st.st_uid, 5u);
  st = Lstat(M("tmp/user-file"));
  EXPECT_EQ(st.st_uid, 100005u) << "and shown with the host's id again";
  EXPECT_EQ(st.st_gid, 100006u);

  // A user of the host outside the container's range may not pretend to be
  // one of the container's users: it creates nothing in the container's
  // root directory (owned by 100000, mode 0755).
  EXPECT_EQ(RunAs(1000, 1000,
                  [&] {
                    int fd = open(M("intruder").c_str(), O_WRONLY | O_CREAT, 0644);
                    if (fd >= 0) close(fd);
                    return fd < 0 ? errno : 0;
                  }),
            EACCES);
}

TEST_F(IdMapTest, ChownStoresTheDiskIds) {
  WriteFile(L(0, "f"), "data");
  ASSERT_NO_FATAL_FAILURE(MountMapped());
  ASSERT_EQ(lchown(M("f").c_str(), 100007, 100008), 0);
  struct stat st = Lstat(U("f"));
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 8u);
  st = Lstat(M("f"));
  EXPECT_EQ(st.st_uid, 100007u);
  EXPECT_EQ(st.st_gid, 100008u);
  EXPECT_EQ(ReadFile(M("f")), "data");

  // Remounted, the upper's ids read back the same way.
  ASSERT_NO_FATAL_FAILURE(Remount());
  st = Lstat(M("f"));
  EXPECT_EQ(st.st_uid, 100007u);
  EXPECT_EQ(st.st_gid, 100008u);
}

}  // namespace
}  // namespace overtier::it
