// rename(2) and renameat2(2): files copy up and leave a whiteout at the
// source; directories (lower, merged) move with all their layers' contents
// and never give EXDEV.
//
// EXDEV: the kernel returns EXDEV for a lower/merged directory unless
// redirect_dir=on; the reference mount uses redirect_dir=on, and overtier
// always redirects, so both targets must succeed.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

namespace overtier::it {
namespace {

class RenameTest : public UnionFsTest {
 protected:
  // lower1: src/{a, sub/deep}; lower0: src/{b}; marks each file's origin.
  void MakeLowerTree(const std::string& rel) {
    MakeDirs(L(1, rel + "/sub"));
    MakeDirs(L(0, rel));
    WriteFile(L(1, rel + "/a"), "a from lower1");
    WriteFile(L(1, rel + "/sub/deep"), "deep from lower1");
    WriteFile(L(0, rel + "/b"), "b from lower0");
  }
  void ExpectLowerTreeAt(const std::string& rel) {
    EXPECT_EQ(ListDir(M(rel)), (std::vector<std::string>{"a", "b", "sub"})) << rel;
    EXPECT_EQ(ReadFile(M(rel + "/a")), "a from lower1");
    EXPECT_EQ(ReadFile(M(rel + "/b")), "b from lower0");
    EXPECT_EQ(ReadFile(M(rel + "/sub/deep")), "deep from lower1");
  }
};

TEST_F(RenameTest, LowerFileCopiesUpAndLeavesWhiteout) {
  WriteFile(L(1, "f"), "lower data", 0640);
  Chown(L(1, "f"), 1234, 2345);
  SetXattr(L(1, "f"), "user.x", "1");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ino_t ino = Lstat(M("f")).st_ino;
  ASSERT_EQ(rename(M("f").c_str(), M("g").c_str()), 0);
  EXPECT_FALSE(Exists(M("f")));
  EXPECT_EQ(ReadFile(M("g")), "lower data");
  struct stat st = Lstat(M("g"));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_EQ(GetXattr(M("g"), "user.x"), "1");
  EXPECT_TRUE(IsWhiteout(U("f")));
  EXPECT_TRUE(S_ISREG(Lstat(U("g")).st_mode));
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"g"});
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("g")), "lower data");
  EXPECT_FALSE(Exists(M("f")));
}

TEST_F(RenameTest, UpperFileLeavesNoWhiteout) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("a"), "a");
  ASSERT_EQ(rename(M("a").c_str(), M("b").c_str()), 0);
  EXPECT_FALSE(Exists(U("a")));
  EXPECT_EQ(ReadFile(U("b")), "a");
}

TEST_F(RenameTest, UpperFileOverLowerFile) {
  WriteFile(L(1, "b"), "old b");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("a"), "new a");
  ASSERT_EQ(rename(M("a").c_str(), M("b").c_str()), 0);
  EXPECT_EQ(ReadFile(M("b")), "new a");
  EXPECT_FALSE(Exists(M("a")));
  EXPECT_FALSE(Exists(U("a")));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("b")), "new a");
}

TEST_F(RenameTest, LowerFileOverLowerFile) {
  WriteFile(L(1, "a"), "lower a");
  WriteFile(L(0, "b"), "lower b");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("a").c_str(), M("b").c_str()), 0);
  EXPECT_EQ(ReadFile(M("b")), "lower a");
  EXPECT_FALSE(Exists(M("a")));
  EXPECT_TRUE(IsWhiteout(U("a")));
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"b"});
}

TEST_F(RenameTest, LowerFileIntoAnotherLowerDirectory) {
  MakeDirs(L(1, "d1"));
  MakeDirs(L(0, "d2/deeper"));
  WriteFile(L(1, "d1/f"), "moving");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("d1/f").c_str(), M("d2/deeper/g").c_str()), 0);
  EXPECT_EQ(ReadFile(M("d2/deeper/g")), "moving");
  EXPECT_EQ(ListDir(M("d1")), std::vector<std::string>{});
  EXPECT_TRUE(IsWhiteout(U("d1/f")));
}

// A lower file moved into another directory is a metadata-only copy whose
// redirect names where its data is. Found by differential_test: moved again
// after a remount, it got a redirect naming its previous place, where no
// lower file is (the next remount read EIO; so did the kernel).
TEST_F(RenameTest, LowerFileMovedTwiceAcrossRemountsKeepsItsData) {
  MakeDirs(L(1, "d1"));
  MakeDirs(L(1, "d2"));
  WriteFile(L(1, "d1/f"), "moving");
  WriteFile(L(0, "g"), "replaced");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("d1/f").c_str(), M("d2/f").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(Remount());
  ASSERT_EQ(rename(M("d2/f").c_str(), M("g").c_str()), 0);
  EXPECT_EQ(ReadFile(M("g")), "moving");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("g")), "moving");
  EXPECT_FALSE(Exists(M("d2/f")));
}

// A descriptor open on the replaced target keeps reading the old object.
TEST_F(RenameTest, OpenFdOfReplacedTargetKeepsOldData) {
  WriteFile(L(1, "target"), "old target");
  WriteFile(L(1, "src"), "source");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd old(open(M("target").c_str(), O_RDONLY));
  ASSERT_TRUE(old.valid());
  ASSERT_EQ(rename(M("src").c_str(), M("target").c_str()), 0);
  EXPECT_EQ(ReadFd(old.get()), "old target");
  EXPECT_EQ(ReadFile(M("target")), "source");
}

TEST_F(RenameTest, LowerDirectoryMovesWithoutExdev) {
  MakeLowerTree("src");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ino_t ino = Lstat(M("src")).st_ino;
  ASSERT_EQ(rename(M("src").c_str(), M("dst").c_str()), 0) << "rename of a lower directory";
  ExpectLowerTreeAt("dst");
  EXPECT_FALSE(Exists(M("src")));
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"dst"});
  EXPECT_TRUE(IsWhiteout(U("src")));
  EXPECT_TRUE(S_ISDIR(Lstat(U("dst")).st_mode));
  EXPECT_NE(GetXattr(U("dst"), "trusted.overlay.redirect"), std::nullopt)
      << "the moved directory must carry an overlayfs redirect";
  EXPECT_EQ(Lstat(M("dst")).st_ino, ino);
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectLowerTreeAt("dst");
  EXPECT_FALSE(Exists(M("src")));
}

TEST_F(RenameTest, MergedDirectoryMovesWithAllLayers) {
  MakeLowerTree("src");
  MakeDirs(U("src"));
  WriteFile(U("src/c"), "c from upper");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("src/a"), "a modified");       // a copied-up file inside
  ASSERT_EQ(unlink(M("src/b").c_str()), 0);  // a whiteout inside
  ASSERT_EQ(rename(M("src").c_str(), M("dst").c_str()), 0);
  EXPECT_EQ(ListDir(M("dst")), (std::vector<std::string>{"a", "c", "sub"}));
  EXPECT_EQ(ReadFile(M("dst/a")), "a modified");
  EXPECT_EQ(ReadFile(M("dst/c")), "c from upper");
  EXPECT_EQ(ReadFile(M("dst/sub/deep")), "deep from lower1");
  EXPECT_FALSE(Exists(M("dst/b")));
  EXPECT_FALSE(Exists(M("src")));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("dst")), (std::vector<std::string>{"a", "c", "sub"}));
  EXPECT_EQ(ReadFile(M("dst/a")), "a modified");
}

// Moving a lower directory to another parent: the redirect must be the
// absolute path of the lower directory (the only form the kernel accepts for
// a cross-directory move).
TEST_F(RenameTest, LowerDirectoryToAnotherParent) {
  MakeLowerTree("a/src");
  MakeDirs(L(1, "b/c"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("a/src").c_str(), M("b/c/dst").c_str()), 0);
  ExpectLowerTreeAt("b/c/dst");
  EXPECT_FALSE(Exists(M("a/src")));
  EXPECT_EQ(GetXattr(U("b/c/dst"), "trusted.overlay.redirect"), "/a/src");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectLowerTreeAt("b/c/dst");
  EXPECT_EQ(ListDir(M("a")), std::vector<std::string>{});
}

// A lower directory so deep that its absolute redirect (6,024 bytes) does
// not fit in an xattr of the upper file system (ext4 keeps about a block):
// EXDEV, so that mv(1) copies the tree, and nothing moved; never ENOSPC,
// which tells mv to give up. Where the redirect fits (XFS, tmpfs) overtier
// moves it; the kernel overlayfs answers EXDEV beyond its redirect_max
// (256 bytes by default) either way.
TEST_F(RenameTest, ADirectoryWhoseRedirectDoesNotFitIsExdev) {
  const std::string comp(250, 'd');
  constexpr int kDepth = 24;
  {
    Fd dir(open(L(1).c_str(), O_RDONLY | O_DIRECTORY));
    for (int i = 0; i < kDepth; ++i) {
      ASSERT_EQ(mkdirat(dir.get(), comp.c_str(), 0755), 0) << i;
      dir = Fd(openat(dir.get(), comp.c_str(), O_RDONLY | O_DIRECTORY));
      ASSERT_TRUE(dir.valid());
    }
    ASSERT_EQ(mkdirat(dir.get(), "src", 0755), 0);
    Fd f(openat(dir.get(), "src/f", O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(f.valid());
    ASSERT_EQ(write(f.get(), "deep", 4), 4);
  }
  std::string redirect;
  for (int i = 0; i < kDepth; ++i) redirect += "/" + comp;
  redirect += "/src";
  MakeDirs(U("probe"));
  const bool fits = setxattr(U("probe").c_str(), "trusted.overlay.redirect", redirect.data(),
                             redirect.size(), 0) == 0;
  const int probe_errno = errno;
  ASSERT_EQ(rmdir(U("probe").c_str()), 0);
  if (!fits) {
    ASSERT_TRUE(probe_errno == ENOSPC || probe_errno == E2BIG) << strerror(probe_errno);
  }

  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd root(open(M().c_str(), O_RDONLY | O_DIRECTORY));
  Fd dir(dup(root.get()));
  for (int i = 0; i < kDepth; ++i) {
    dir = Fd(openat(dir.get(), comp.c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(dir.valid()) << i << ": " << strerror(errno);
  }
  const Errno got = Err(renameat(dir.get(), "src", root.get(), "moved"));
  if (fits && !IsKernel()) {
    ASSERT_EQ(got, kOk);
    dir.reset();
    root.reset();
    ASSERT_NO_FATAL_FAILURE(Remount());
    EXPECT_EQ(ReadFile(M("moved/f")), "deep");
    return;
  }
  EXPECT_EQ(got, Errno{EXDEV});
  EXPECT_FALSE(Exists(M("moved")));
  Fd f(openat(dir.get(), "src/f", O_RDONLY));
  ASSERT_TRUE(f.valid());
  EXPECT_EQ(ReadFd(f.get()), "deep");
}

TEST_F(RenameTest, DirectoryRenamedTwiceAndBack) {
  MakeLowerTree("src");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("src").c_str(), M("tmp1").c_str()), 0);
  ASSERT_EQ(mkdir(M("other").c_str(), 0755), 0);
  ASSERT_EQ(rename(M("tmp1").c_str(), M("other/tmp2").c_str()), 0);
  ExpectLowerTreeAt("other/tmp2");
  ASSERT_EQ(rename(M("other/tmp2").c_str(), M("src").c_str()), 0);
  ExpectLowerTreeAt("src");
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{"other", "src"}));
  EXPECT_EQ(ListDir(M("other")), std::vector<std::string>{});
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectLowerTreeAt("src");
}

TEST_F(RenameTest, SubdirectoryOfMovedDirectoryMovesAgain) {
  MakeLowerTree("src");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("src").c_str(), M("dst").c_str()), 0);
  ASSERT_EQ(rename(M("dst/sub").c_str(), M("sub2").c_str()), 0);
  EXPECT_EQ(ReadFile(M("sub2/deep")), "deep from lower1");
  EXPECT_EQ(ListDir(M("dst")), (std::vector<std::string>{"a", "b"}));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("sub2/deep")), "deep from lower1");
  EXPECT_EQ(ListDir(M("dst")), (std::vector<std::string>{"a", "b"}));
}

TEST_F(RenameTest, NewDirectoryAtOldNameOfMovedDirectoryIsEmpty) {
  MakeLowerTree("src");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("src").c_str(), M("dst").c_str()), 0);
  ASSERT_EQ(mkdir(M("src").c_str(), 0755), 0);
  EXPECT_EQ(ListDir(M("src")), std::vector<std::string>{});
  EXPECT_EQ(GetXattr(U("src"), "trusted.overlay.opaque"), "y");
  ExpectLowerTreeAt("dst");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("src")), std::vector<std::string>{});
  ExpectLowerTreeAt("dst");
}

TEST_F(RenameTest, DirectoryOverEmptyLowerDirectory) {
  MakeLowerTree("src");
  MakeDirs(L(1, "empty"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("src").c_str(), M("empty").c_str()), 0);
  ExpectLowerTreeAt("empty");
  EXPECT_FALSE(Exists(M("src")));
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectLowerTreeAt("empty");
}

TEST_F(RenameTest, DirectoryOverMergedDirectoryWithOnlyWhiteouts) {
  MakeDirs(L(1, "target"));
  WriteFile(L(1, "target/gone"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("target/gone").c_str()), 0);
  ASSERT_EQ(mkdir(M("src").c_str(), 0755), 0);
  WriteFile(M("src/new"), "n");
  ASSERT_EQ(rename(M("src").c_str(), M("target").c_str()), 0);
  EXPECT_EQ(ListDir(M("target")), std::vector<std::string>{"new"});
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("target")), std::vector<std::string>{"new"});
}

TEST_F(RenameTest, DirectoryOverNonEmptyMergedDirectoryIsENOTEMPTY) {
  MakeDirs(L(1, "target"));
  WriteFile(L(1, "target/only_in_lower"), "x");
  MakeDirs(L(0, "src"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rename(M("src").c_str(), M("target").c_str())), Errno{ENOTEMPTY});
  EXPECT_TRUE(Exists(M("src")));
  EXPECT_TRUE(Exists(M("target/only_in_lower")));
}

TEST_F(RenameTest, FileOverDirectoryIsEISDIR) {
  WriteFile(L(1, "f"), "f");
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rename(M("f").c_str(), M("d").c_str())), Errno{EISDIR});
}

TEST_F(RenameTest, DirectoryOverFileIsENOTDIR) {
  WriteFile(L(1, "f"), "f");
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rename(M("d").c_str(), M("f").c_str())), Errno{ENOTDIR});
}

TEST_F(RenameTest, DirectoryIntoItsOwnSubdirectoryIsEINVAL) {
  MakeLowerTree("src");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rename(M("src").c_str(), M("src/sub/inside").c_str())), Errno{EINVAL});
  EXPECT_EQ(Err(rename(M("src").c_str(), M("src/inside").c_str())), Errno{EINVAL});
  ExpectLowerTreeAt("src");
}

TEST_F(RenameTest, MissingSourceIsENOENT) {
  WriteFile(L(1, "gone"), "x");
  MakeWhiteout(U("gone"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rename(M("missing").c_str(), M("x").c_str())), Errno{ENOENT});
  EXPECT_EQ(Err(rename(M("gone").c_str(), M("x").c_str())), Errno{ENOENT});
}

TEST_F(RenameTest, RenameToItselfAndBetweenHardLinksIsANoOp) {
  WriteFile(L(1, "a"), "a");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(rename(M("a").c_str(), M("a").c_str()), 0);
  EXPECT_EQ(ReadFile(M("a")), "a");
  ASSERT_EQ(link(M("a").c_str(), M("b").c_str()), 0);
  // POSIX: renaming one link of a file onto another link of it does nothing.
  EXPECT_EQ(rename(M("a").c_str(), M("b").c_str()), 0);
  EXPECT_TRUE(Exists(M("a")));
  EXPECT_TRUE(Exists(M("b")));
}

TEST_F(RenameTest, NoreplaceOntoExistingIsEEXIST) {
  WriteFile(L(1, "lower"), "l");
  WriteFile(U("upper"), "u");
  MakeDirs(L(1, "dir"));
  WriteFile(L(0, "src"), "s");
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* target : {"lower", "upper", "dir"}) {
    EXPECT_EQ(
        Err(renameat2(AT_FDCWD, M("src").c_str(), AT_FDCWD, M(target).c_str(), RENAME_NOREPLACE)),
        Errno{EEXIST})
        << target;
  }
  EXPECT_EQ(ReadFile(M("lower")), "l");
  EXPECT_EQ(ReadFile(M("src")), "s");
}

TEST_F(RenameTest, NoreplaceOntoWhitedOutNameSucceeds) {
  WriteFile(L(1, "target"), "old");
  WriteFile(L(1, "src"), "new");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("target").c_str()), 0);
  ASSERT_EQ(renameat2(AT_FDCWD, M("src").c_str(), AT_FDCWD, M("target").c_str(), RENAME_NOREPLACE),
            0);
  EXPECT_EQ(ReadFile(M("target")), "new");
  EXPECT_FALSE(Exists(M("src")));
}

TEST_F(RenameTest, ExchangeUpperAndLowerFiles) {
  WriteFile(L(1, "lower"), "from lower");
  WriteFile(U("upper"), "from upper");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(renameat2(AT_FDCWD, M("lower").c_str(), AT_FDCWD, M("upper").c_str(), RENAME_EXCHANGE),
            0);
  EXPECT_EQ(ReadFile(M("lower")), "from upper");
  EXPECT_EQ(ReadFile(M("upper")), "from lower");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("lower")), "from upper");
  EXPECT_EQ(ReadFile(M("upper")), "from lower");
}

TEST_F(RenameTest, ExchangeTwoLowerFiles) {
  WriteFile(L(1, "a"), "A");
  WriteFile(L(0, "b"), "B");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(renameat2(AT_FDCWD, M("a").c_str(), AT_FDCWD, M("b").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadFile(M("a")), "B");
  EXPECT_EQ(ReadFile(M("b")), "A");
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{"a", "b"}));
}

TEST_F(RenameTest, ExchangeLowerDirectoryWithUpperDirectory) {
  MakeLowerTree("lowerdir");
  MakeDirs(U("upperdir"));
  WriteFile(U("upperdir/u"), "upper file");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(
      renameat2(AT_FDCWD, M("lowerdir").c_str(), AT_FDCWD, M("upperdir").c_str(), RENAME_EXCHANGE),
      0);
  ExpectLowerTreeAt("upperdir");
  EXPECT_EQ(ListDir(M("lowerdir")), std::vector<std::string>{"u"});
  EXPECT_EQ(ReadFile(M("lowerdir/u")), "upper file");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectLowerTreeAt("upperdir");
  EXPECT_EQ(ListDir(M("lowerdir")), std::vector<std::string>{"u"});
}

TEST_F(RenameTest, ExchangeFileWithDirectory) {
  WriteFile(L(1, "f"), "file");
  MakeLowerTree("d");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(renameat2(AT_FDCWD, M("f").c_str(), AT_FDCWD, M("d").c_str(), RENAME_EXCHANGE), 0);
  ExpectLowerTreeAt("f");
  EXPECT_EQ(ReadFile(M("d")), "file");
}

TEST_F(RenameTest, ExchangeWithMissingNameIsENOENT) {
  WriteFile(L(1, "a"), "A");
  WriteFile(L(1, "gone"), "G");
  MakeWhiteout(U("gone"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(
      Err(renameat2(AT_FDCWD, M("a").c_str(), AT_FDCWD, M("missing").c_str(), RENAME_EXCHANGE)),
      Errno{ENOENT});
  EXPECT_EQ(Err(renameat2(AT_FDCWD, M("a").c_str(), AT_FDCWD, M("gone").c_str(), RENAME_EXCHANGE)),
            Errno{ENOENT});
  EXPECT_EQ(ReadFile(M("a")), "A");
}

}  // namespace
}  // namespace overtier::it
