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
//
// Debian 12's podman (containers/storage of podman 4.3) hands a mount
// program its lowers through id-mapped mounts (`.../mapped/0/l/...`, ids
// already the host's) and the mapping as well, for the upper: a lower on
// an id-mapped mount is shown as it is, and a copy-up stores its ids back
// as disk ids (IdMappedLowerTest).
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
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

// For a mapping of one id (`--uidmap 0:1000:1`) containers/storage passes
// squash_to_uid=/squash_to_gid= instead: every object shows that owner,
// new ones included; the disks keep theirs. squash_to_root shows 0:0.
TEST_F(IdMapTest, SquashShowsOneOwnerForEverything) {
  WriteFile(L(0, "f"), "data");
  Chown(L(0, "f"), 5, 6);
  MakeDirs(L(0, "d"), 0777);
  ASSERT_EQ(chmod(L(0, "d").c_str(), 0777), 0);
  MountConfig c;
  c.overtier_opts = "squash_to_uid=1000,squash_to_gid=1001";
  ASSERT_NO_FATAL_FAILURE(Mount(c));
  for (const char* p : {"", "f", "d"}) {
    struct stat st = Lstat(M(p));
    EXPECT_EQ(st.st_uid, 1000u) << p;
    EXPECT_EQ(st.st_gid, 1001u) << p;
  }
  EXPECT_EQ(RunAs(1000, 1001,
                  [&] {
                    int fd = open(M("d/new").c_str(), O_WRONLY | O_CREAT, 0644);
                    if (fd < 0) return errno;
                    close(fd);
                    return 0;
                  }),
            0);
  EXPECT_EQ(Lstat(M("d/new")).st_uid, 1000u);
  EXPECT_EQ(Lstat(U("d/new")).st_uid, 1000u) << "stored as the creator";
  EXPECT_EQ(Lstat(L(0, "f")).st_uid, 5u) << "the disk keeps its owner";

  c.overtier_opts = "squash_to_root";
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount(c));
  struct stat st = Lstat(M("f"));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

// Mounts `src` id-mapped at `dst` (made here), as containers/storage does:
// disk ids 0..65535 show as 100000..165535. Empty on success, else why.
std::string MountIdMapped(const std::string& src, const std::string& dst) {
  int ready[2], go[2];
  if (pipe(ready) != 0 || pipe(go) != 0) return std::string("pipe: ") + strerror(errno);
  pid_t child = fork();
  if (child == 0) {
    char c = 0;
    close(go[1]);
    close(ready[0]);
    if (unshare(CLONE_NEWUSER) != 0) _exit(1);
    if (write(ready[1], &c, 1) != 1) _exit(1);
    if (read(go[0], &c, 1) < 0) _exit(1);  // until the parent is done with us
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  char c;
  std::string err;
  if (read(ready[0], &c, 1) != 1) err = "the user namespace child did not start";
  const std::string proc = "/proc/" + std::to_string(child);
  if (err.empty()) {
    std::ofstream(proc + "/uid_map") << "0 100000 65536\n";
    std::ofstream(proc + "/gid_map") << "0 100000 65536\n";
  }
  int userns = err.empty() ? open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC) : -1;
  if (err.empty() && userns < 0) err = std::string("open userns: ") + strerror(errno);
  close(go[1]);
  close(ready[0]);
  waitpid(child, nullptr, 0);
  if (!err.empty()) return err;
  int tree = open_tree(AT_FDCWD, src.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) err = std::string("open_tree: ") + strerror(errno);
  if (err.empty()) {
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns);
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0)
      err = std::string("mount_setattr(MOUNT_ATTR_IDMAP): ") + strerror(errno);
  }
  if (err.empty() && (mkdir(dst.c_str(), 0755) != 0 ||
                      move_mount(tree, "", AT_FDCWD, dst.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0))
    err = std::string("move_mount: ") + strerror(errno);
  if (tree >= 0) close(tree);
  close(userns);
  return err;
}

class IdMappedLowerTest : public IdMapTest {
 protected:
  void TearDown() override {
    // The daemon goes first (it holds the mapped lower), then the mount.
    if (mounted()) Unmount();
    if (!mapped_.empty()) umount2(mapped_.c_str(), MNT_DETACH);
    UnionFsTest::TearDown();
  }
  // The harness's lower 0 through an id-mapped mount, as podman 4.3 passes
  // it, with the mapping for the upper.
  void MountLikePodman43() {
    mapped_ = base() + "/mapped";
    std::string err = MountIdMapped(L(0), mapped_);
    if (!err.empty()) GTEST_SKIP() << "no id-mapped mount here: " << err;
    MountConfig c;
    c.lowers = 1;
    c.overtier_lowerdir = mapped_;
    c.overtier_opts = kContainerMapping;
    Mount(c);
  }
  std::string mapped_;
};

TEST_F(IdMappedLowerTest, ShowsTheLowersIdsAsTheyComeAndCopiesThemUpAsDiskIds) {
  MakeDirs(L(0, "etc"));
  WriteFile(L(0, "etc/motd"), "from the image");
  WriteFile(L(0, "home"), "a user's file");
  Chown(L(0, "home"), 1000, 1000);
  ASSERT_TRUE(RunArgs({"setfacl", "-m", "u:1001:r", L(0, "home")}).rc == 0);
  ASSERT_NO_FATAL_FAILURE(MountLikePodman43());

  EXPECT_EQ(Lstat(M("")).st_uid, 100000u) << "the upper's root, 0 on disk";
  EXPECT_EQ(Lstat(M("etc")).st_uid, 100000u) << "not mapped a second time";
  EXPECT_EQ(Lstat(M("etc/motd")).st_gid, 100000u);
  EXPECT_EQ(Lstat(M("home")).st_uid, 101000u);
  Result acl = RunArgs({"getfacl", "-n", "-c", M("home")});
  EXPECT_NE(acl.out.find("user:101001:r--"), std::string::npos) << acl.out;

  // The container's root (host 100000) owns /etc: it creates there, which
  // copies /etc up, and the upper keeps the container's ids.
  EXPECT_EQ(RunAs(100000, 100000,
                  [&] {
                    int fd = open(M("etc/hostname").c_str(), O_WRONLY | O_CREAT, 0644);
                    if (fd < 0) return errno;
                    close(fd);
                    return 0;
                  }),
            0);
  EXPECT_EQ(Lstat(U("etc")).st_uid, 0u) << "copied up as a disk id";
  EXPECT_EQ(Lstat(U("etc/hostname")).st_uid, 0u);
  EXPECT_EQ(Lstat(M("etc")).st_uid, 100000u) << "and shown as before";

  ASSERT_EQ(chmod(M("home").c_str(), 0640), 0);  // a metadata copy-up
  struct stat st = Lstat(U("home"));
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
  EXPECT_EQ(Lstat(M("home")).st_uid, 101000u);
  Result disk_acl = RunArgs({"getfacl", "-n", "-c", U("home")});
  EXPECT_NE(disk_acl.out.find("user:1001:r--"), std::string::npos) << disk_acl.out;
  acl = RunArgs({"getfacl", "-n", "-c", M("home")});
  EXPECT_NE(acl.out.find("user:101001:r--"), std::string::npos) << acl.out;
  EXPECT_EQ(ReadFile(M("home")), "a user's file");
}

}  // namespace
}  // namespace overtier::it
