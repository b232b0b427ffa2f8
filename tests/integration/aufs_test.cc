// AUFS-style markers in lower layers (the OCI / containers/storage layer
// format): ".wh.NAME" hides NAME of the layers below, ".wh..wh..opq" makes
// its directory opaque, and no ".wh.*" entry is ever shown.
//
// OVERTIER-ONLY: the kernel overlayfs does not interpret these markers (it
// shows them as ordinary files; see KernelShowsAufsMarkersLiterally), so
// every other test here is skipped against the kernel.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "harness.h"

namespace overtier::it {
namespace {

class AufsTest : public UnionFsTest {
 protected:
  void SetUp() override {
    UnionFsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (IsKernel()) GTEST_SKIP() << "the kernel overlayfs does not honour AUFS whiteouts";
  }
};

using AufsKernelTest = UnionFsTest;

// Documents the reference behaviour the overtier tests depart from.
TEST_F(AufsKernelTest, KernelShowsAufsMarkersLiterally) {
  if (!IsKernel()) GTEST_SKIP() << "kernel-only: documents the kernel's behaviour";
  WriteFile(L(1, "f"), "lower");
  WriteFile(L(0, ".wh.f"), "");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/.wh..wh..opq"), "");
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/below"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("f")), "lower");
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{".wh.f", "d", "f"}));
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{".wh..wh..opq", "below"}));
}

TEST_F(AufsTest, WhiteoutFileHidesNameBelow) {
  WriteFile(L(1, "f"), "lower");
  WriteFile(L(1, "kept"), "kept");
  WriteFile(L(0, ".wh.f"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  EXPECT_EQ(Err(lstat(M("f").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(lstat(M(".wh.f").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"kept"});
}

TEST_F(AufsTest, WhiteoutFileHidesDirectoryBelow) {
  MakeDirs(L(1, "d/sub"));
  WriteFile(L(1, "d/sub/f"), "x");
  WriteFile(L(0, ".wh.d"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_FALSE(Exists(M("d")));
  EXPECT_FALSE(Exists(M("d/sub/f")));
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{});
}

// A whiteout applies to the layers below only: an entry of the same layer
// stays visible (OCI image spec, "Whiteouts": files present in the same
// layer as a whiteout can only be hidden by whiteouts in later layers).
// fuse-overlayfs 1.10 hides the entry anyway; overtier follows the spec.
TEST_F(AufsTest, WhiteoutDoesNotHideEntryOfItsOwnLayer) {
  WriteFile(L(1, "f"), "bottom");
  WriteFile(L(0, ".wh.f"), "");
  WriteFile(L(0, "f"), "same layer");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("f")), "same layer");
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"f"});
}

TEST_F(AufsTest, OpaqueMarkerHidesLayersBelow) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/below"), "x");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/.wh..wh..opq"), "");
  WriteFile(L(0, "d/mine"), "y");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_FALSE(Exists(M("d/below")));
  EXPECT_FALSE(Exists(M("d/.wh..wh..opq")));
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"mine"});
  EXPECT_EQ(ReadFile(M("d/mine")), "y");
}

TEST_F(AufsTest, AufsBookkeepingEntriesAreHidden) {
  MakeDirs(L(0, ".wh..wh.plnk"));
  WriteFile(L(0, ".wh..wh.plnk/123.456"), "");
  WriteFile(L(0, ".wh..wh.aufs"), "");
  WriteFile(L(0, "visible"), "v");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"visible"});
  EXPECT_FALSE(Exists(M(".wh..wh.plnk")));
  EXPECT_FALSE(Exists(M(".wh..wh.aufs")));
}

TEST_F(AufsTest, MarkersInDeeperLayersAndSeveralDirectories) {
  MakeDirs(L(1, "a/b"));
  WriteFile(L(1, "a/b/hidden"), "x");
  WriteFile(L(1, "a/b/shown"), "x");
  WriteFile(L(1, "a/b/.wh.nothing_below"), "");
  MakeDirs(L(0, "a/b"));
  WriteFile(L(0, "a/b/.wh.hidden"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ListDir(M("a/b")), std::vector<std::string>{"shown"});
}

TEST_F(AufsTest, CreateOverAufsWhiteout) {
  WriteFile(L(1, "f"), "lower");
  WriteFile(L(0, ".wh.f"), "");
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/old"), "x");
  WriteFile(L(0, ".wh.d"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644));
  ASSERT_TRUE(fd.valid()) << "O_EXCL create of an AUFS-whited-out name";
  ASSERT_EQ(write(fd.get(), "new", 3), 3);
  fd.reset();
  EXPECT_EQ(ReadFile(M("f")), "new");
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{}) << "the new directory must be opaque";
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("f")), "new");
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{"d", "f"}));
}

// A directory whose lower entries are all hidden by AUFS whiteouts is empty.
TEST_F(AufsTest, DirectoryEmptiedByAufsWhiteoutsCanBeRemoved) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/a"), "x");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/.wh.a"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  ASSERT_EQ(rmdir(M("d").c_str()), 0);
  EXPECT_FALSE(Exists(M("d")));
}

TEST_F(AufsTest, RenamedDirectoryKeepsAufsHiddenEntriesHidden) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/hidden"), "x");
  WriteFile(L(1, "d/shown"), "y");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/.wh.hidden"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("d").c_str(), M("e").c_str()), 0);
  EXPECT_EQ(ListDir(M("e")), std::vector<std::string>{"shown"});
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("e")), std::vector<std::string>{"shown"});
}

TEST_F(AufsTest, CopyUpFromOpaqueLowerDirectory) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/below"), "x");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/.wh..wh..opq"), "");
  WriteFile(L(0, "d/mine"), "y");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/mine"), "changed");
  WriteFile(M("d/new"), "n");
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{"mine", "new"}));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{"mine", "new"}));
  EXPECT_EQ(ReadFile(M("d/mine")), "changed");
}

// An upper and work directory inside a kernel overlayfs (container storage
// inside a container): that upper refuses whiteout devices, so the union
// writes its whiteouts as ".wh.NAME" files there, as fuse-overlayfs does,
// reads them back after a remount, and keeps ".wh." names for itself.
class AufsUpperTest : public AufsTest {
 protected:
  void TearDown() override {
    if (mounted()) Unmount();
    if (!outer_.empty()) umount2(outer_.c_str(), MNT_DETACH);
    UnionFsTest::TearDown();
  }
  void MountOnAnOverlayfs() {
    outer_ = base() + "/outer";
    for (const char* d : {"-lower", "-upper", "-work", ""}) MakeDirs(outer_ + d);
    const std::string o =
        "lowerdir=" + outer_ + "-lower,upperdir=" + outer_ + "-upper,workdir=" + outer_ + "-work";
    ASSERT_EQ(mount("overlay", outer_.c_str(), "overlay", 0, o.c_str()), 0) << strerror(errno);
    MakeDirs(outer_ + "/upper");
    MakeDirs(outer_ + "/work");
    MountConfig c;
    c.overtier_upperdir = outer_ + "/upper";
    c.overtier_workdir = outer_ + "/work";
    Mount(c);
  }
  std::string OU(const std::string& rel) const { return outer_ + "/upper/" + rel; }
  std::string outer_;
};

TEST_F(AufsUpperTest, WhiteoutsAreFilesBesideTheName) {
  WriteFile(L(1, "f"), "lower");
  MakeDirs(L(1, "d/sub"));
  WriteFile(L(1, "d/sub/x"), "x");
  WriteFile(L(1, "d/y"), "y");
  ASSERT_NO_FATAL_FAILURE(MountOnAnOverlayfs());

  ASSERT_EQ(unlink(M("f").c_str()), 0);
  EXPECT_FALSE(Exists(M("f")));
  EXPECT_TRUE(Exists(OU(".wh.f"))) << "the whiteout, as fuse-overlayfs writes it";
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"d"});
  ASSERT_EQ(rename(M("d").c_str(), M("e").c_str()), 0) << strerror(errno);
  EXPECT_TRUE(Exists(OU(".wh.d")));
  EXPECT_EQ(ListDir(M("e")), (std::vector<std::string>{"sub", "y"}));
  ASSERT_EQ(unlink(M("e/y").c_str()), 0);

  // A name whited out comes back as a new object, its whiteout gone.
  WriteFile(M("f"), "new");
  EXPECT_FALSE(Exists(OU(".wh.f")));
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  EXPECT_FALSE(Exists(OU(".wh.d")));
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{}) << "a new directory there is opaque";

  // ".wh." names are the union's here.
  EXPECT_EQ(open(M(".wh.g").c_str(), O_WRONLY | O_CREAT, 0644), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(rename(M("f").c_str(), M(".wh.g").c_str()), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_FALSE(Exists(M(".wh.f")));

  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{"d", "e", "f"}));
  EXPECT_EQ(ListDir(M("e")), std::vector<std::string>{"sub"});
  EXPECT_EQ(ReadFile(M("f")), "new");
  EXPECT_EQ(ReadFile(M("e/sub/x")), "x");
  ASSERT_EQ(rmdir(M("e/sub").c_str()), -1);
  ASSERT_EQ(unlink(M("e/sub/x").c_str()), 0);
  ASSERT_EQ(rmdir(M("e/sub").c_str()), 0);
  ASSERT_EQ(rmdir(M("e").c_str()), 0) << "holding only whiteouts: empty";
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{"d", "f"}));
}

// ".wh." takes 4 of a name's 255 bytes: a lower name longer than 251
// bytes cannot be whited out there, and stays (ENAMETOOLONG).
TEST_F(AufsUpperTest, ANameTooLongForItsWhiteoutStays) {
  const std::string longest(251, 'w'), too_long(252, 'x');
  WriteFile(L(1, longest), "251");
  WriteFile(L(1, too_long), "252");
  ASSERT_NO_FATAL_FAILURE(MountOnAnOverlayfs());
  EXPECT_EQ(unlink(M(longest).c_str()), 0) << strerror(errno);
  EXPECT_FALSE(Exists(M(longest)));
  EXPECT_EQ(unlink(M(too_long).c_str()), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(ReadFile(M(too_long)), "252") << "still there, as it was";
}

}  // namespace
}  // namespace overtier::it
