// Extended attributes through the union: user.* on upper and lower objects,
// copy-up on modification, and the overlay's own trusted.overlay.* names,
// which users can neither see nor use to change the union.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "harness.h"

namespace overtier::it {
namespace {

using XattrTest = UnionFsTest;

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::vector<std::string> OverlayNames(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (n.starts_with("trusted.overlay.") || n.starts_with("trusted.overtier.") ||
        n.starts_with("user.overtier.")) {
      out.push_back(n);
    }
  }
  return out;
}

TEST_F(XattrTest, SetGetListRemoveOnUpperFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("f"), "x");
  ASSERT_EQ(setxattr(M("f").c_str(), "user.a", "1", 1, 0), 0);
  ASSERT_EQ(setxattr(M("f").c_str(), "user.b", "two", 3, 0), 0);
  EXPECT_EQ(GetXattr(M("f"), "user.a"), "1");
  EXPECT_EQ(GetXattr(M("f"), "user.b"), "two");
  EXPECT_EQ(ListXattrs(M("f")), (std::vector<std::string>{"user.a", "user.b"}));
  EXPECT_EQ(GetXattr(U("f"), "user.b"), "two");
  ASSERT_EQ(setxattr(M("f").c_str(), "user.b", "2", 1, XATTR_REPLACE), 0);
  EXPECT_EQ(GetXattr(M("f"), "user.b"), "2");
  ASSERT_EQ(removexattr(M("f").c_str(), "user.a"), 0);
  EXPECT_EQ(ListXattrs(M("f")), std::vector<std::string>{"user.b"});
  EXPECT_EQ(Err(removexattr(M("f").c_str(), "user.a")), Errno{ENODATA});
  EXPECT_EQ(GetXattr(U("f"), "user.a"), std::nullopt);
}

TEST_F(XattrTest, ReadOnLowerFileDoesNotCopyUp) {
  WriteFile(L(1, "f"), "x");
  SetXattr(L(1, "f"), "user.a", "lower value");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(GetXattr(M("f"), "user.a"), "lower value");
  EXPECT_EQ(ListXattrs(M("f")), std::vector<std::string>{"user.a"});
  EXPECT_EQ(Err(getxattr(M("f").c_str(), "user.missing", nullptr, 0)), Errno{ENODATA});
  EXPECT_FALSE(Exists(U("f")));
}

TEST_F(XattrTest, SetOnLowerFileCopiesUp) {
  WriteFile(L(1, "f"), "content");
  SetXattr(L(1, "f"), "user.a", "1");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(setxattr(M("f").c_str(), "user.a", "changed", 7, 0), 0);
  EXPECT_EQ(GetXattr(M("f"), "user.a"), "changed");
  EXPECT_EQ(GetXattr(U("f"), "user.a"), "changed");
  EXPECT_EQ(ReadFile(M("f")), "content");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(GetXattr(M("f"), "user.a"), "changed");
}

TEST_F(XattrTest, RemoveOnLowerFileCopiesUp) {
  WriteFile(L(1, "f"), "content");
  SetXattr(L(1, "f"), "user.a", "1");
  SetXattr(L(1, "f"), "user.b", "2");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(removexattr(M("f").c_str(), "user.a"), 0);
  EXPECT_EQ(ListXattrs(M("f")), std::vector<std::string>{"user.b"});
  EXPECT_EQ(GetXattr(U("f"), "user.a"), std::nullopt);
  EXPECT_EQ(GetXattr(U("f"), "user.b"), "2");
}

TEST_F(XattrTest, XattrsOfMergedDirectory) {
  MakeDirs(L(1, "d"));
  SetXattr(L(1, "d"), "user.lower", "l");
  WriteFile(L(1, "d/f"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(GetXattr(M("d"), "user.lower"), "l");
  ASSERT_EQ(setxattr(M("d").c_str(), "user.added", "a", 1, 0), 0);
  EXPECT_EQ(ListXattrs(M("d")), (std::vector<std::string>{"user.added", "user.lower"}));
  EXPECT_EQ(GetXattr(U("d"), "user.lower"), "l");
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"f"}) << "the directory stays merged";
}

// The attributes of a merged directory are those of its upper-most layer:
// an xattr set only on the lower directory is not visible when an upper
// directory exists.
TEST_F(XattrTest, MergedDirectoryShowsUppermostXattrsOnly) {
  MakeDirs(L(1, "d"));
  MakeDirs(U("d"));
  SetXattr(L(1, "d"), "user.lower", "l");
  SetXattr(U("d"), "user.upper", "u");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ListXattrs(M("d")), std::vector<std::string>{"user.upper"});
  EXPECT_EQ(Err(getxattr(M("d").c_str(), "user.lower", nullptr, 0)), Errno{ENODATA});
}

TEST_F(XattrTest, CreateAndReplaceFlags) {
  WriteFile(L(1, "f"), "x");
  SetXattr(L(1, "f"), "user.present", "p");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(setxattr(M("f").c_str(), "user.present", "v", 1, XATTR_CREATE)), Errno{EEXIST});
  EXPECT_EQ(Err(setxattr(M("f").c_str(), "user.absent", "v", 1, XATTR_REPLACE)), Errno{ENODATA});
  EXPECT_EQ(GetXattr(M("f"), "user.present"), "p");
  EXPECT_EQ(setxattr(M("f").c_str(), "user.absent", "v", 1, XATTR_CREATE), 0);
  EXPECT_EQ(setxattr(M("f").c_str(), "user.present", "q", 1, XATTR_REPLACE), 0);
  EXPECT_EQ(GetXattr(M("f"), "user.present"), "q");
}

TEST_F(XattrTest, SizeQueriesAndERANGE) {
  WriteFile(L(1, "f"), "x");
  SetXattr(L(1, "f"), "user.long", std::string(100, 'v'));
  SetXattr(L(1, "f"), "user.other", "o");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(getxattr(M("f").c_str(), "user.long", nullptr, 0), 100);
  char small[10];
  EXPECT_EQ(Err(getxattr(M("f").c_str(), "user.long", small, sizeof(small))), Errno{ERANGE});
  ssize_t need = listxattr(M("f").c_str(), nullptr, 0);
  EXPECT_EQ(need, static_cast<ssize_t>(sizeof("user.long") + sizeof("user.other")));
  EXPECT_EQ(Err(listxattr(M("f").c_str(), small, 5)), Errno{ERANGE});
}

TEST_F(XattrTest, LargeValueSurvivesCopyUp) {
  std::string value(3000, '\0');
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>(i * 31);
  WriteFile(L(1, "f"), "x");
  SetXattr(L(1, "f"), "user.big", value);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(chmod(M("f").c_str(), 0600), 0);
  EXPECT_TRUE(GetXattr(M("f"), "user.big") == value);
  EXPECT_TRUE(GetXattr(U("f"), "user.big") == value);
}

// user.* xattrs are only allowed on regular files and directories (VFS).
TEST_F(XattrTest, UserXattrOnSymlinkOrFifoIsEPERM) {
  MakeSymlink("target", L(1, "link"));
  ASSERT_EQ(mkfifo(L(1, "fifo").c_str(), 0644), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(lsetxattr(M("link").c_str(), "user.a", "1", 1, 0)), Errno{EPERM});
  EXPECT_EQ(Err(lsetxattr(M("fifo").c_str(), "user.a", "1", 1, 0)), Errno{EPERM});
}

// Root may use other trusted.* names through the mount.
TEST_F(XattrTest, TrustedNonOverlayXattrAsRoot) {
  WriteFile(L(1, "f"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(setxattr(M("f").c_str(), "trusted.mine", "t", 1, 0), 0);
  EXPECT_EQ(GetXattr(M("f"), "trusted.mine"), "t");
  EXPECT_TRUE(Contains(ListXattrs(M("f")), "trusted.mine"));
  EXPECT_EQ(GetXattr(U("f"), "trusted.mine"), "t");
}

// The union's own bookkeeping (opaque, redirect, origin, impure, metacopy,
// overtier's private names) is never shown through the mount.
TEST_F(XattrTest, InternalXattrsAreInvisible) {
  MakeDirs(L(1, "opaque"));
  WriteFile(L(1, "opaque/f"), "x");
  MakeDirs(L(1, "moved"));
  WriteFile(L(1, "moved/f"), "x");
  WriteFile(L(1, "data"), "x");
  WriteFile(L(1, "meta"), std::string(100000, 'm'));
  MakeDirs(L(1, "merged"));
  WriteFile(L(1, "merged/f"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("opaque/f").c_str()), 0);
  ASSERT_EQ(rmdir(M("opaque").c_str()), 0);
  ASSERT_EQ(mkdir(M("opaque").c_str(), 0755), 0);                       // opaque
  ASSERT_EQ(rename(M("moved").c_str(), M("moved2").c_str()), 0);        // redirect
  WriteFile(M("data"), "changed");                                      // origin
  ASSERT_EQ(chmod(M("meta").c_str(), 0600), 0);                         // metacopy
  WriteFile(M("merged/g"), "y");                                        // copied-up merged dir
  ASSERT_EQ(rename(M("merged/f").c_str(), M("merged/f2").c_str()), 0);  // impure
  ASSERT_EQ(setxattr(M("data").c_str(), "user.visible", "v", 1, 0), 0);
  ASSERT_EQ(GetXattr(U("opaque"), "trusted.overlay.opaque"), "y");
  ASSERT_NE(GetXattr(U("moved2"), "trusted.overlay.redirect"), std::nullopt);
  for (const char* p : {"", "opaque", "moved2", "data", "meta", "merged", "merged/f2"}) {
    std::vector<std::string> names = ListXattrs(M(p));
    EXPECT_EQ(OverlayNames(names), std::vector<std::string>{}) << "'" << p << "'";
    for (const char* n :
         {"trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.overlay.origin",
          "trusted.overlay.impure", "trusted.overlay.metacopy", "trusted.overtier.origin"}) {
      EXPECT_EQ(Err(lgetxattr(M(p).c_str(), n, nullptr, 0)), Errno{ENODATA})
          << "'" << p << "' " << n;
    }
  }
  EXPECT_EQ(ListXattrs(M("data")), std::vector<std::string>{"user.visible"});
}

// A user's trusted.overlay.X is the user's, not the union's: stored on the
// upper object escaped, as trusted.overlay.overlay.X, shown back as
// trusted.overlay.X, copied up with the file, and never taken for a mark of
// the union (setting trusted.overlay.opaque does not make a directory
// opaque; the real marker cannot be removed, the name given refers to the
// escaped one). The kernel overlayfs does this since Linux 6.7, so that an
// overlay stacked on another keeps its own marks; both targets run this.
TEST_F(XattrTest, OverlayNamesThroughTheMountAreEscaped) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/lower_file"), "x");
  MakeDirs(L(1, "opaque"));
  MakeDirs(U("opaque"));
  MakeOpaque(U("opaque"));
  WriteFile(L(1, "opaque/hidden"), "x");
  WriteFile(L(1, "f"), "lower");
  // An escaped name already in a lower file is the user's too.
  ASSERT_EQ(setxattr(L(1, "f").c_str(), "trusted.overlay.overlay.mark", "L", 1, 0), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(GetXattr(M("f"), "trusted.overlay.mark"), "L");
  EXPECT_TRUE(Contains(ListXattrs(M("f")), "trusted.overlay.mark"));
  EXPECT_EQ(Err(setxattr(M("d").c_str(), "trusted.overlay.opaque", "y", 1, 0)), kOk);
  EXPECT_EQ(GetXattr(U("d"), "trusted.overlay.overlay.opaque"), "y");
  EXPECT_EQ(GetXattr(U("d"), "trusted.overlay.opaque"), std::nullopt);
  EXPECT_EQ(GetXattr(M("d"), "trusted.overlay.opaque"), "y") << "escaped name shown back";
  EXPECT_TRUE(Contains(ListXattrs(M("d")), "trusted.overlay.opaque"));
  // An escaped name is escaped again.
  EXPECT_EQ(Err(setxattr(M("d").c_str(), "trusted.overlay.overlay.x", "2", 1, 0)), kOk);
  EXPECT_EQ(GetXattr(U("d"), "trusted.overlay.overlay.overlay.x"), "2");
  EXPECT_EQ(GetXattr(M("d"), "trusted.overlay.overlay.x"), "2");
  // The real marker is out of reach: the name refers to the escaped one.
  EXPECT_EQ(Err(removexattr(M("opaque").c_str(), "trusted.overlay.opaque")), Errno{ENODATA});
  EXPECT_EQ(GetXattr(M("opaque"), "trusted.overlay.opaque"), std::nullopt);
  // A copy-up (of data, then of metadata) keeps the user's escaped names.
  WriteFile(M("f"), "changed");
  EXPECT_EQ(GetXattr(U("f"), "trusted.overlay.overlay.mark"), "L");
  EXPECT_EQ(Err(removexattr(M("f").c_str(), "trusted.overlay.mark")), kOk);
  EXPECT_EQ(GetXattr(U("f"), "trusted.overlay.overlay.mark"), std::nullopt);
  // The union is unchanged, now and after a remount.
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"lower_file"});
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"lower_file"});
  EXPECT_EQ(GetXattr(M("d"), "trusted.overlay.opaque"), "y");
  EXPECT_EQ(ListDir(M("opaque")), std::vector<std::string>{});
  EXPECT_EQ(GetXattr(U("opaque"), "trusted.overlay.opaque"), "y");
}

// What the escaping is for: a kernel overlayfs whose lower layer is this
// mount reads the marks set through it. Here a whiteout kept as an xattr
// (Linux 6.7+: a zero-size file with trusted.overlay.whiteout, in a
// directory whose trusted.overlay.opaque is "x") hides a file of the
// layer below.
TEST_F(XattrTest, AKernelOverlayStackedOnTheMountReadsItsMarks) {
  if (IsKernel()) GTEST_SKIP() << "overtier under a kernel overlayfs";
  MakeDirs(base() + "/below/d");
  WriteFile(base() + "/below/d/gone", "below");
  WriteFile(base() + "/below/d/kept", "below");
  const std::string stacked = base() + "/stacked";
  MakeDirs(stacked);
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeDirs(M("top/d"));
  ASSERT_EQ(setxattr(M("top/d").c_str(), "trusted.overlay.opaque", "x", 1, 0), 0);
  WriteFile(M("top/d/gone"), "");
  ASSERT_EQ(setxattr(M("top/d/gone").c_str(), "trusted.overlay.whiteout", "", 0, 0), 0);
  const std::string opts = "lowerdir=" + M("top") + ":" + base() + "/below";
  ASSERT_EQ(mount("overlay", stacked.c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
  // Unmounted however the test ends, before the fixture unmounts overtier.
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{stacked};
  EXPECT_EQ(ListDir(stacked + "/d"), std::vector<std::string>{"kept"});
  // Without the marks the file below shows: the check can fail.
  ASSERT_EQ(removexattr(M("top/d/gone").c_str(), "trusted.overlay.whiteout"), 0);
  ASSERT_EQ(umount2(stacked.c_str(), 0), 0);
  ASSERT_EQ(mount("overlay", stacked.c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
  EXPECT_EQ(ListDir(stacked + "/d"), (std::vector<std::string>{"gone", "kept"}));
  EXPECT_EQ(ReadFile(stacked + "/d/gone"), "");
}

// Without the userxattr option, user.overlay.* are ordinary user xattrs.
TEST_F(XattrTest, UserOverlayNamesAreOrdinaryWithoutUserxattr) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/f"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(setxattr(M("d").c_str(), "user.overlay.opaque", "y", 1, 0), 0);
  EXPECT_EQ(GetXattr(M("d"), "user.overlay.opaque"), "y");
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"f"});
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"f"});
}

TEST_F(XattrTest, UnprivilegedUserXattrAccess) {
  WriteFile(L(1, "root_file"), "x", 0644);
  SetXattr(L(1, "root_file"), "user.a", "1");
  SetXattr(L(1, "root_file"), "trusted.secret", "s");
  WriteFile(L(1, "own_file"), "x", 0644);
  Chown(L(1, "own_file"), kNobody, kNogroup);
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string root_file = M("root_file"), own_file = M("own_file");
  // Reading a user xattr needs read permission only.
  EXPECT_EQ(AsNobody([&] { return Err(getxattr(root_file.c_str(), "user.a", nullptr, 0)); }), kOk);
  // Writing needs write permission.
  EXPECT_EQ(AsNobody([&] { return Err(setxattr(root_file.c_str(), "user.b", "1", 1, 0)); }),
            Errno{EACCES});
  EXPECT_EQ(AsNobody([&] { return Err(removexattr(root_file.c_str(), "user.a")); }), Errno{EACCES});
  EXPECT_EQ(AsNobody([&] { return Err(setxattr(own_file.c_str(), "user.b", "1", 1, 0)); }), kOk);
  EXPECT_EQ(GetXattr(M("own_file"), "user.b"), "1");
  // trusted.* is out of reach of an unprivileged user.
  EXPECT_EQ(
      AsNobody([&] { return Err(getxattr(root_file.c_str(), "trusted.secret", nullptr, 0)); }),
      Errno{ENODATA});
  EXPECT_EQ(AsNobody([&] { return Err(setxattr(own_file.c_str(), "trusted.x", "1", 1, 0)); }),
            Errno{EPERM});
  EXPECT_FALSE(Exists(U("root_file"))) << "failed modifications must not copy up";
}

// What an unprivileged listxattr shows: the user.* names, never the
// overlay's own names.
TEST_F(XattrTest, UnprivilegedListxattr) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/f"), "x");
  SetXattr(L(1, "d"), "user.a", "1");
  SetXattr(L(1, "d"), "trusted.secret", "s");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/g"), "y");  // copy-up of d: origin/impure in the upper layer
  std::string d = M("d");
  int has_user = RunAs(kNobody, kNogroup, [&] {
    char buf[4096];
    ssize_t n = listxattr(d.c_str(), buf, sizeof(buf));
    if (n < 0) return -errno;
    int user = 0, overlay = 0, trusted = 0;
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(buf + i)) + 1) {
      std::string_view name(buf + i);
      if (name == "user.a") user++;
      if (name.starts_with("trusted.overlay.")) overlay++;
      if (name == "trusted.secret") trusted++;
    }
    return user + 10 * overlay + 100 * trusted;
  });
  EXPECT_EQ(has_user % 10, 1) << "user.a listed";
  EXPECT_EQ(has_user / 10 % 10, 0) << "trusted.overlay.* listed to an unprivileged user";
  EXPECT_EQ(has_user / 100, 0) << "trusted.secret listed to an unprivileged user";
}

}  // namespace
}  // namespace overtier::it
