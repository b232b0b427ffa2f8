// On-disk compatibility with the kernel overlayfs, in both directions:
//
//   *_TargetThenKernel  build a tree through the target over plain lowers,
//                       snapshot the view, unmount; mount the KERNEL overlayfs
//                       over the same lowers/upper/work and compare its view
//                       (names, types, modes, owners, sizes, contents, mtimes,
//                       symlink targets, device numbers, hard-link groups,
//                       user.* xattrs) with the snapshot;
//   *_KernelThenTarget  the reverse: build with the kernel, read with the
//                       target.
//
// Each test then makes more changes through the second mount and checks the
// first implementation reads those back too (a ping-pong).
//
// With OVERTIER_TEST_TARGET=kernel both sides are the kernel: the tests then
// validate themselves (a kernel -> kernel round trip must be lossless).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "harness.h"

namespace overtier::it {
namespace {

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>('a' + (x >> 24) % 26);
  }
  return s;
}

class CompatTest : public UnionFsTest {
 protected:
  using Step = void (CompatTest::*)();

  // The snapshot compared across implementations: everything a user sees
  // except inode numbers, atime/ctime, and the link count and size of
  // directories (the kernel reports st_nlink 1 for merged directories).
  static SnapshotOptions ViewOptions() {
    SnapshotOptions o;
    o.mtime = true;
    o.dir_mtime = true;
    o.overlay_xattrs = true;  // the user's escaped overlay names (Xattrs)
    return o;
  }

  // lowers() before the first mount; build() through a mount of `first`;
  // then a mount of `second` must show the same; more() through `second`;
  // then `first` must show what `second` showed.
  void RoundTrip(Target first, Target second, Step lowers, Step build, Step more) {
    (this->*lowers)();
    ASSERT_FALSE(HasFailure()) << "setting up the lower layers failed";
    ASSERT_NO_FATAL_FAILURE(Mount(MountConfig::On(first)));
    (this->*build)();
    ASSERT_FALSE(HasFailure()) << "building the tree through " << TargetName(first) << " failed";
    TreeSnapshot built = SnapshotTree(M(), ViewOptions());
    if (std::getenv("OVERTIER_TEST_DUMP") != nullptr) {
      for (const auto& [path, desc] : built)
        std::fprintf(stderr, "%s: %s\n", path.c_str(), desc.c_str());
    }
    Unmount();

    ASSERT_NO_FATAL_FAILURE(Mount(MountConfig::On(second)));
    TreeSnapshot read = SnapshotTree(M(), ViewOptions());
    std::string a = std::string("built by ") + TargetName(first);
    std::string b = std::string("read by ") + TargetName(second);
    std::string diff = DiffTrees(built, a, read, b);
    EXPECT_TRUE(diff.empty()) << "views differ:\n" << diff;
    (this->*more)();
    ASSERT_FALSE(HasFatalFailure());
    TreeSnapshot changed = SnapshotTree(M(), ViewOptions());
    Unmount();

    ASSERT_NO_FATAL_FAILURE(Mount(MountConfig::On(first)));
    TreeSnapshot reread = SnapshotTree(M(), ViewOptions());
    a = std::string("changed by ") + TargetName(second);
    b = std::string("read by ") + TargetName(first);
    diff = DiffTrees(changed, a, reread, b);
    EXPECT_TRUE(diff.empty()) << "views differ after the second round:\n" << diff;
  }

  void TargetThenKernel(Step lowers, Step build, Step more) {
    RoundTrip(target(), Target::kKernel, lowers, build, more);
  }
  void KernelThenTarget(Step lowers, Step build, Step more) {
    RoundTrip(Target::kKernel, target(), lowers, build, more);
  }

  // Small helpers for the steps (failures are recorded, the step goes on).
  void Do(int rc, const std::string& what) { EXPECT_EQ(rc, 0) << what << ": " << strerror(errno); }
  void RmRf(const std::string& rel) {
    if (S_ISDIR(Lstat(M(rel)).st_mode)) {
      for (const auto& n : ListDir(M(rel))) RmRf(rel + "/" + n);
      Do(rmdir(M(rel).c_str()), "rmdir " + rel);
    } else {
      Do(unlink(M(rel).c_str()), "unlink " + rel);
    }
  }
  void Append(const std::string& rel, const std::string& data) {
    Fd fd(open(M(rel).c_str(), O_WRONLY | O_APPEND));
    EXPECT_TRUE(fd.valid()) << rel;
    EXPECT_EQ(write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }
  void Xattr(const std::string& rel, const char* name, const std::string& value) {
    Do(setxattr(M(rel).c_str(), name, value.data(), value.size(), 0), "setxattr " + rel);
  }
  void Times(const std::string& rel, time_t t) {
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    Do(utimensat(AT_FDCWD, M(rel).c_str(), ts, AT_SYMLINK_NOFOLLOW), "utimensat " + rel);
  }
  void BindSocket(const std::string& rel) {
    Fd s(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::string path = M(rel);
    ASSERT_LT(path.size(), sizeof(addr.sun_path));
    std::strcpy(addr.sun_path, path.c_str());
    Do(bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), "bind " + rel);
  }
  // Fixed timestamps, so that the mtimes compared are not "now".
  void Stamp(const std::string& layer_path, time_t t = 1500000000) { SetTimes(layer_path, t, t); }

  // The steps are public: the tests take their addresses.
 public:
  // ------------------------------------------------------------ full tree

  void LowersFull() {
    std::string outside = base() + "/outside";
    MakeDirs(outside);
    MakeDirs(L(1, "etc/conf.d"));
    WriteFile(L(1, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    WriteFile(L(1, "etc/shadow"), "root:*:19000::::::\n", 0640);
    Chown(L(1, "etc/shadow"), 0, 42);
    WriteFile(L(1, "etc/hosts"), "127.0.0.1 localhost\n");
    WriteFile(L(1, "etc/conf.d/a.conf"), "a=1\n");
    WriteFile(L(1, "etc/conf.d/b.conf"), "b=1\n");
    MakeDirs(L(1, "usr/bin"));
    MakeDirs(L(1, "usr/lib"));
    MakeDirs(L(1, "usr/share/doc"));
    WriteFile(L(1, "usr/bin/tool"), "#!/bin/sh\necho tool\n", 0755);
    WriteFile(L(1, "usr/lib/lib.so"), Pattern(100 << 10, 1), 0755);
    WriteFile(L(1, "usr/share/doc/README"), "read me\n");
    MakeDirs(L(1, "var/log"));
    MakeDirs(L(1, "var/cache"));
    WriteFile(L(1, "var/log/old.log"), "old\n");
    WriteFile(L(1, "var/cache/big"), Pattern(2 << 20, 2));
    MakeDirs(L(1, "home/user"));
    ASSERT_EQ(chmod(L(1, "home/user").c_str(), 0700), 0);
    Chown(L(1, "home/user"), 1000, 1000);
    WriteFile(L(1, "home/user/.profile"), "export A=1\n", 0600);
    Chown(L(1, "home/user/.profile"), 1000, 1000);
    SetXattr(L(1, "home/user/.profile"), "user.tag", "home");
    SetXattr(L(1, "home/user/.profile"), "user.keep", "kept");
    MakeDirs(L(1, "links"));
    WriteFile(L(1, "links/hard1"), "hard linked\n");
    ASSERT_EQ(link(L(1, "links/hard1").c_str(), L(1, "links/hard2").c_str()), 0);
    MakeSymlink("../etc/passwd", L(1, "links/sym"));
    MakeSymlink("nowhere", L(1, "links/dangling"));
    MakeSymlink(outside, L(1, "links/abs"));
    MakeDirs(L(1, "dev"));
    ASSERT_EQ(mkfifo(L(1, "dev/fifo").c_str(), 0620), 0);
    ASSERT_EQ(mknod(L(1, "dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    MakeDirs(L(1, "opaque_me"));
    WriteFile(L(1, "opaque_me/old1"), "1");
    WriteFile(L(1, "opaque_me/old2"), "2");
    WriteFile(L(1, "to_delete_file"), "bye\n");
    MakeDirs(L(1, "to_delete_dir/b"));
    WriteFile(L(1, "to_delete_dir/a"), "a");
    WriteFile(L(1, "to_delete_dir/b/c"), "c");
    MakeDirs(L(1, "rename_me/sub"));
    WriteFile(L(1, "rename_me/x"), "x");
    WriteFile(L(1, "rename_me/sub/y"), "y");
    MakeDirs(L(1, "move_me"));
    WriteFile(L(1, "move_me/z"), "z");

    MakeDirs(L(0, "etc/conf.d"));
    WriteFile(L(0, "etc/hosts"), "10.0.0.1 host\n");
    WriteFile(L(0, "etc/conf.d/c.conf"), "c=1\n");
    MakeWhiteout(L(0, "etc/conf.d/b.conf"));
    MakeDirs(L(0, "usr/bin"));
    WriteFile(L(0, "usr/bin/tool2"), "tool2", 0755);
    MakeDirs(L(0, "var/log"));
    WriteFile(L(0, "var/log/syslog"), "log\n");
    MakeDirs(L(0, "rename_me"));
    WriteFile(L(0, "rename_me/from_lower0"), "l0");
    MakeDirs(L(0, "lower_opaque"));
    MakeOpaque(L(0, "lower_opaque"));
    WriteFile(L(0, "lower_opaque/top"), "t");
    MakeDirs(L(1, "lower_opaque"));
    WriteFile(L(1, "lower_opaque/hidden"), "h");

    // Deterministic directory mtimes in the lowers.
    for (int i = 0; i < 2; ++i) {
      for (const char* d : {"", "etc", "etc/conf.d", "usr", "usr/bin", "var", "var/log",
                            "rename_me", "lower_opaque"}) {
        if (Exists(L(i, d))) Stamp(L(i, d));
      }
    }
  }

  void BuildFull() {
    WriteFile(M("new_top"), "new file\n");
    Do(mkdir(M("new_dir").c_str(), 0750), "mkdir new_dir");
    Do(mkdir(M("new_dir/nested").c_str(), 0755), "mkdir nested");
    WriteFile(M("new_dir/nested/leaf"), "leaf", 0600);
    Do(chown(M("new_dir/nested/leaf").c_str(), 1000, 1000), "chown leaf");
    Do(symlink("new_top", M("new_link").c_str()), "symlink");
    Do(mkfifo(M("new_fifo").c_str(), 0600), "mkfifo");
    Do(link(M("new_top").c_str(), M("new_hardlink").c_str()), "link");
    Xattr("new_top", "user.fresh", "yes");

    Append("etc/passwd", "user:x:1000:1000::/home/user:/bin/sh\n");
    Do(chmod(M("usr/lib/lib.so").c_str(), 0644), "chmod lib.so");
    Do(chown(M("usr/share/doc/README").c_str(), 1000, 1000), "chown README");
    Times("etc/shadow", 1234567890);
    Xattr("var/cache/big", "user.cached", "1");
    Do(removexattr(M("home/user/.profile").c_str(), "user.tag"), "removexattr");

    Do(unlink(M("to_delete_file").c_str()), "unlink");
    RmRf("to_delete_dir");
    Do(unlink(M("etc/conf.d/a.conf").c_str()), "unlink a.conf");

    Do(rename(M("rename_me").c_str(), M("renamed").c_str()), "rename dir");
    Do(rename(M("move_me").c_str(), M("var/moved").c_str()), "move dir");
    Do(rename(M("etc/hosts").c_str(), M("etc/hosts.old").c_str()), "rename file");
    WriteFile(M("renamed/added"), "added");
    Do(unlink(M("renamed/x").c_str()), "unlink in renamed dir");

    RmRf("opaque_me");
    Do(mkdir(M("opaque_me").c_str(), 0700), "mkdir opaque_me");
    WriteFile(M("opaque_me/new"), "fresh");

    Do(chmod(M("home/user").c_str(), 0750), "chmod dir");
    Xattr("var", "user.dir", "1");
    Times("new_top", 1400000000);
    Times("new_dir/nested", 1400000000);
  }

  void MoreFull() {
    Do(rename(M("renamed").c_str(), M("renamed_again").c_str()), "rename again");
    Do(unlink(M("renamed_again/sub/y").c_str()), "unlink y");
    WriteFile(M("var/moved/z"), "z changed");
    Append("usr/lib/lib.so", "appended");
    WriteFile(M("to_delete_file"), "back\n");
    RmRf("opaque_me");
    Do(mkdir(M("etc/conf.d/new.d").c_str(), 0755), "mkdir new.d");
    Do(unlink(M("new_hardlink").c_str()), "unlink hardlink");
    Xattr("renamed_again", "user.moved", "twice");
    Do(chmod(M("dev/fifo").c_str(), 0600), "chmod fifo");
  }

  // ------------------------------------------------------------ scenarios

  void LowersWhiteouts() {
    WriteFile(L(1, "a"), "a");
    WriteFile(L(0, "b"), "b");
    MakeDirs(L(1, "d"));
    WriteFile(L(1, "d/x"), "x");
    WriteFile(L(1, "d/y"), "y");
    MakeDirs(L(0, "d"));
    WriteFile(L(0, "d/z"), "z");
    MakeDirs(L(1, "e"));
    MakeDirs(L(1, "f/g"));
    WriteFile(L(1, "f/g/h"), "h");
  }
  void BuildWhiteouts() {
    Do(unlink(M("a").c_str()), "unlink a");
    Do(unlink(M("b").c_str()), "unlink b");
    Do(unlink(M("d/x").c_str()), "unlink d/x");
    Do(unlink(M("d/z").c_str()), "unlink d/z");
    Do(rmdir(M("e").c_str()), "rmdir e");
    RmRf("f");
  }
  void MoreWhiteouts() {
    WriteFile(M("a"), "a again");
    Do(mkdir(M("e").c_str(), 0755), "mkdir e");
    WriteFile(M("d/x"), "x again");
    Do(unlink(M("d/y").c_str()), "unlink d/y");
  }

  void LowersOpaque() {
    MakeDirs(L(1, "d"));
    WriteFile(L(1, "d/1"), "1");
    WriteFile(L(1, "d/2"), "2");
    MakeDirs(L(0, "d"));
    WriteFile(L(0, "d/3"), "3");
    MakeDirs(L(1, "o"));
    WriteFile(L(1, "o/hidden"), "h");
    MakeDirs(L(0, "o"));
    MakeOpaque(L(0, "o"));
    WriteFile(L(0, "o/shown"), "s");
  }
  void BuildOpaque() {
    RmRf("d");
    Do(mkdir(M("d").c_str(), 0755), "mkdir d");
    WriteFile(M("d/new"), "new");
    WriteFile(M("o/added"), "a");
  }
  void MoreOpaque() {
    Do(mkdir(M("d/sub").c_str(), 0755), "mkdir d/sub");
    WriteFile(M("d/sub/x"), "x");
    Do(unlink(M("d/new").c_str()), "unlink d/new");
    RmRf("o");
  }

  void LowersRenamedDirs() {
    MakeDirs(L(1, "a/sub"));
    WriteFile(L(1, "a/f"), "f");
    WriteFile(L(1, "a/sub/g"), "g");
    MakeDirs(L(0, "a"));
    WriteFile(L(0, "a/from0"), "0");
    MakeDirs(L(1, "b/c"));
    WriteFile(L(1, "b/c/inner"), "i");
    MakeDirs(L(0, "p/q"));
  }
  void BuildRenamedDirs() {
    Do(rename(M("a").c_str(), M("a2").c_str()), "rename a");
    Do(rename(M("b/c").c_str(), M("p/q/c2").c_str()), "move b/c");
    Do(rename(M("a2/sub").c_str(), M("top_sub").c_str()), "move a2/sub");
    WriteFile(M("a2/new"), "n");
  }
  void MoreRenamedDirs() {
    Do(rename(M("a2").c_str(), M("p/a3").c_str()), "move a2");
    Do(mkdir(M("a").c_str(), 0755), "mkdir a");
    Do(rename(M("p/q/c2").c_str(), M("b/c").c_str()), "move back");
    Do(unlink(M("top_sub/g").c_str()), "unlink g");
  }

  void LowersXattrs() {
    WriteFile(L(1, "f"), "f");
    SetXattr(L(1, "f"), "user.a", "1");
    SetXattr(L(1, "f"), "user.bin", std::string("\0\x01\xff", 3));
    MakeDirs(L(1, "d"));
    SetXattr(L(1, "d"), "user.d", "dir");
    WriteFile(L(1, "d/x"), "x");
    MakeDirs(L(0, "d"));
    // A user's overlay name, escaped (Linux 6.7+; SEMANTICS.md).
    SetXattr(L(1, "f"), "trusted.overlay.overlay.low", "l");
  }
  void BuildXattrs() {
    Xattr("f", "user.b", "2");
    Do(removexattr(M("f").c_str(), "user.a"), "removexattr");
    Xattr("d", "user.e", "e");
    Xattr("d", "trusted.overlay.opaque", "y");  // the user's, escaped: d stays merged
    WriteFile(M("new"), "n");
    Xattr("new", "user.long", std::string(2000, 'L'));
    Xattr("new", "user.empty", "");
    Xattr("new", "trusted.overlay.nested", "n");
  }
  void MoreXattrs() {
    Xattr("f", "user.b", "22");
    Xattr("d", "user.d", "changed");
    Do(removexattr(M("new").c_str(), "user.long"), "removexattr");
    Do(removexattr(M("new").c_str(), "trusted.overlay.nested"), "removexattr escaped");
    Xattr("d", "trusted.overlay.redirect", "/nowhere");
  }

  void LowersNone() {}
  void BuildUpperHardLinks() {
    WriteFile(M("x"), "x data");
    Do(link(M("x").c_str(), M("y").c_str()), "link x y");
    Do(mkdir(M("d").c_str(), 0755), "mkdir");
    Do(link(M("y").c_str(), M("d/z").c_str()), "link y d/z");
    Do(unlink(M("x").c_str()), "unlink x");
  }
  void MoreUpperHardLinks() {
    Do(link(M("d/z").c_str(), M("w").c_str()), "link z w");
    Append("w", " more");
  }

  void LowersHardLinkGroup() {
    MakeDirs(L(1, "d"));
    MakeDirs(L(1, "e"));
    WriteFile(L(1, "d/h1"), "group data");
    ASSERT_EQ(link(L(1, "d/h1").c_str(), L(1, "d/h2").c_str()), 0);
    ASSERT_EQ(link(L(1, "d/h1").c_str(), L(1, "e/h3").c_str()), 0);
    Stamp(L(1, "d"));
    Stamp(L(1, "e"));
  }
  void BuildHardLinkGroup() { Append("d/h1", " written via h1"); }
  void MoreHardLinkGroup() {
    Do(chmod(M("e/h3").c_str(), 0600), "chmod h3");
    Do(unlink(M("d/h2").c_str()), "unlink h2");
  }

  void LowersMetacopy() {
    WriteFile(L(1, "big"), Pattern(1 << 20, 3));
    WriteFile(L(1, "m2"), Pattern(50000, 4));
    WriteFile(L(1, "m3"), Pattern(70000, 5));
    MakeDirs(L(1, "d"));
    WriteFile(L(1, "d/m4"), Pattern(30000, 6));
  }
  void BuildMetacopy() {
    Do(chmod(M("big").c_str(), 0600), "chmod big");
    Do(chown(M("m2").c_str(), 1000, 1000), "chown m2");
    Times("m3", 1300000000);
    Do(rename(M("m3").c_str(), M("m3renamed").c_str()), "rename m3");
    Do(chmod(M("d/m4").c_str(), 0640), "chmod d/m4");
    Do(rename(M("d/m4").c_str(), M("m4moved").c_str()), "move d/m4");
  }
  void MoreMetacopy() {
    Append("big", "tail");
    Append("m4moved", "tail");
    Do(chmod(M("m2").c_str(), 0444), "chmod m2");
  }

  void LowersSpecial() {
    ASSERT_EQ(mkfifo(L(1, "fifo").c_str(), 0644), 0);
    ASSERT_EQ(mknod(L(1, "chr").c_str(), S_IFCHR | 0600, makedev(4, 64)), 0);
  }
  void BuildSpecial() {
    Do(mkfifo(M("new_fifo").c_str(), 0640), "mkfifo");
    Do(mknod(M("new_chr").c_str(), S_IFCHR | 0660, makedev(1, 7)), "mknod chr");
    Do(mknod(M("new_blk").c_str(), S_IFBLK | 0660, makedev(8, 16)), "mknod blk");
    BindSocket("sock");
    Do(chmod(M("fifo").c_str(), 0600), "chmod fifo");
    Do(chown(M("chr").c_str(), 5, 5), "chown chr");
    Do(rename(M("fifo").c_str(), M("fifo_renamed").c_str()), "rename fifo");
  }
  void MoreSpecial() {
    Do(unlink(M("new_blk").c_str()), "unlink blk");
    Do(unlink(M("chr").c_str()), "unlink chr");
    Do(mknod(M("chr").c_str(), S_IFCHR | 0600, makedev(1, 5)), "mknod chr");
  }

  void LowersSymlinks() {
    WriteFile(L(1, "target"), "t");
    MakeSymlink("target", L(1, "s1"));
    MakeSymlink("nowhere", L(1, "dangling"));
    MakeSymlink(base() + "/outside/file", L(1, "abs"));
    MakeDirs(L(1, "d"));
    MakeSymlink("../target", L(1, "d/up"));
  }
  void BuildSymlinks() {
    Do(symlink("new target with spaces", M("new").c_str()), "symlink");
    Do(lchown(M("s1").c_str(), 1000, 1000), "lchown s1");
    Do(rename(M("dangling").c_str(), M("dangling2").c_str()), "rename dangling");
    Do(unlink(M("abs").c_str()), "unlink abs");
    Do(rename(M("d/up").c_str(), M("up").c_str()), "move up");
  }
  void MoreSymlinks() {
    Do(symlink("recreated", M("abs").c_str()), "symlink abs");
    Do(unlink(M("s1").c_str()), "unlink s1");
  }
};

TEST_F(CompatTest, FullTree_TargetThenKernel) {
  TargetThenKernel(&CompatTest::LowersFull, &CompatTest::BuildFull, &CompatTest::MoreFull);
}
TEST_F(CompatTest, FullTree_KernelThenTarget) {
  KernelThenTarget(&CompatTest::LowersFull, &CompatTest::BuildFull, &CompatTest::MoreFull);
}

#define COMPAT_SCENARIO(Name, Lowers)                                                         \
  TEST_F(CompatTest, Name##_TargetThenKernel) {                                               \
    TargetThenKernel(&CompatTest::Lowers, &CompatTest::Build##Name, &CompatTest::More##Name); \
  }                                                                                           \
  TEST_F(CompatTest, Name##_KernelThenTarget) {                                               \
    KernelThenTarget(&CompatTest::Lowers, &CompatTest::Build##Name, &CompatTest::More##Name); \
  }

COMPAT_SCENARIO(Whiteouts, LowersWhiteouts)
COMPAT_SCENARIO(Opaque, LowersOpaque)
COMPAT_SCENARIO(RenamedDirs, LowersRenamedDirs)
COMPAT_SCENARIO(Xattrs, LowersXattrs)
COMPAT_SCENARIO(UpperHardLinks, LowersNone)
// Copy-up of one name of a lower hard-link group: the kernel (index=on)
// records the group in workdir/index; a target reading a kernel-made upper
// must honour that index to show the other names with the new data.
// KNOWN GAP (overtier): overtier keeps its own index (WORK/overtier-index,
// docs/FORMAT.md) instead of the kernel's WORK/index keyed by encoded lower
// file handles; until it reads and writes the kernel's, a lower hard-link
// group copied up on one side splits on the other. Tracked in the issue.
TEST_F(CompatTest, HardLinkGroup_TargetThenKernel) {
  if (!IsKernel()) GTEST_SKIP() << "known gap: kernel index=on hard-link index format";
  TargetThenKernel(&CompatTest::LowersHardLinkGroup, &CompatTest::BuildHardLinkGroup,
                   &CompatTest::MoreHardLinkGroup);
}
TEST_F(CompatTest, HardLinkGroup_KernelThenTarget) {
  if (!IsKernel()) GTEST_SKIP() << "known gap: kernel index=on hard-link index format";
  KernelThenTarget(&CompatTest::LowersHardLinkGroup, &CompatTest::BuildHardLinkGroup,
                   &CompatTest::MoreHardLinkGroup);
}
// Metadata-only copy-ups (kernel: trusted.overlay.metacopy, and a redirect
// on a renamed metacopy file).
COMPAT_SCENARIO(Metacopy, LowersMetacopy)
COMPAT_SCENARIO(Special, LowersSpecial)
COMPAT_SCENARIO(Symlinks, LowersSymlinks)

}  // namespace
}  // namespace overtier::it
