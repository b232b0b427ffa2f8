// Directory operations: create/mkdir/unlink/rmdir and what they leave in the
// upper layer (new entries, whiteouts, opaque directories).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <functional>

#include "harness.h"

namespace overtier::it {
namespace {

using DirTest = UnionFsTest;

TEST_F(DirTest, CreateNewFileGoesToUpper) {
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("top"), "t");
  WriteFile(M("d/nested"), "n");
  EXPECT_EQ(ReadFile(U("top")), "t");
  EXPECT_EQ(ReadFile(U("d/nested")), "n");
  EXPECT_EQ(ReadFile(M("d/nested")), "n");
  EXPECT_FALSE(Exists(L(0, "top")));
  EXPECT_FALSE(Exists(L(1, "d/nested")));
}

TEST_F(DirTest, MkdirNewNameGoesToUpper) {
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mkdir(M("newdir").c_str(), 0750), 0);
  ASSERT_EQ(mkdir(M("d/sub").c_str(), 0700), 0);
  EXPECT_TRUE(S_ISDIR(Lstat(U("newdir")).st_mode));
  EXPECT_EQ(Lstat(U("newdir")).st_mode & 07777, 0750u);
  EXPECT_EQ(Lstat(M("newdir")).st_mode & 07777, 0750u);
  EXPECT_TRUE(S_ISDIR(Lstat(U("d/sub")).st_mode));
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"sub"});
}

TEST_F(DirTest, NewEntriesHonourUmask) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string f = M("f"), d = M("d");
  int rc = RunInChild([&] {
    umask(027);
    int fd = open(f.c_str(), O_WRONLY | O_CREAT, 0666);
    if (fd < 0) return errno;
    close(fd);
    return mkdir(d.c_str(), 0777) == 0 ? 0 : errno;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(Lstat(M("f")).st_mode & 07777, 0640u);
  EXPECT_EQ(Lstat(M("d")).st_mode & 07777, 0750u);
  EXPECT_EQ(Lstat(U("f")).st_mode & 07777, 0640u);
}

// New entries in a set-group-ID directory (from a lower layer) get its
// group; new subdirectories inherit the bit.
TEST_F(DirTest, SetgidDirectoryGivesItsGroup) {
  MakeDirs(L(1, "shared"));
  Chown(L(1, "shared"), 0, 2345);
  ASSERT_EQ(chmod(L(1, "shared").c_str(), 02775), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("shared/f"), "x");
  ASSERT_EQ(mkdir(M("shared/sub").c_str(), 0755), 0);
  EXPECT_EQ(Lstat(M("shared/f")).st_gid, 2345u);
  EXPECT_EQ(Lstat(M("shared/sub")).st_gid, 2345u);
  EXPECT_TRUE(Lstat(M("shared/sub")).st_mode & S_ISGID);
  EXPECT_EQ(Lstat(U("shared")).st_mode & 07777, 02775u);
}

TEST_F(DirTest, EntriesCreatedByAUserAreOwnedByThem) {
  MakeDirs(L(1, "tmp"));
  ASSERT_EQ(chmod(L(1, "tmp").c_str(), 01777), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string f = M("tmp/mine"), d = M("tmp/mydir"), s = M("tmp/mylink");
  EXPECT_EQ(AsNobody([&] {
              int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
              if (fd < 0) return Errno{errno};
              close(fd);
              if (mkdir(d.c_str(), 0700) != 0) return Errno{errno};
              return Err(symlink("mine", s.c_str()));
            }),
            kOk);
  for (const char* p : {"tmp/mine", "tmp/mydir", "tmp/mylink"}) {
    EXPECT_EQ(Lstat(M(p)).st_uid, kNobody) << p;
    EXPECT_EQ(Lstat(M(p)).st_gid, kNogroup) << p;
    EXPECT_EQ(Lstat(U(p)).st_uid, kNobody) << p;
  }
}

// A directory's mtime shown through the mount is the stored one, also when
// the directory changed as a side effect (copy-up of a child directory into
// it, a whiteout created in it).
TEST_F(DirTest, DirectoryMtimeShownIsTheStoredOne) {
  MakeDirs(L(1, "d/sub"));
  WriteFile(L(1, "d/sub/f"), "x");
  WriteFile(L(1, "d/g"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Lstat(M(""));  // cache whatever can be cached
  Lstat(M("d"));
  WriteFile(M("d/sub/new"), "n");          // copies up d and d/sub into the root
  ASSERT_EQ(unlink(M("d/g").c_str()), 0);  // a whiteout in d
  for (const char* p : {"", "d", "d/sub"}) {
    struct stat m = Lstat(M(p)), u = Lstat(U(p));
    EXPECT_EQ(m.st_mtim.tv_sec, u.st_mtim.tv_sec) << "'" << p << "'";
    EXPECT_EQ(m.st_mtim.tv_nsec, u.st_mtim.tv_nsec) << "'" << p << "'";
  }
}

TEST_F(DirTest, UnlinkOfLowerFileLeavesWhiteout) {
  WriteFile(L(1, "f"), "lower");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  EXPECT_FALSE(Exists(M("f")));
  EXPECT_TRUE(IsWhiteout(U("f")));
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{});
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_FALSE(Exists(M("f")));
}

TEST_F(DirTest, UnlinkInMergedDirLeavesWhiteoutInUpperCopy) {
  MakeDirs(L(0, "d"));
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/deep"), "x");
  WriteFile(L(0, "d/keep"), "k");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("d/deep").c_str()), 0);
  EXPECT_TRUE(IsWhiteout(U("d/deep")));
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"keep"});
}

TEST_F(DirTest, UnlinkOfCopiedUpFileLeavesWhiteout) {
  WriteFile(L(1, "f"), "lower");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("f"), "modified");
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  EXPECT_FALSE(Exists(M("f")));
  EXPECT_TRUE(IsWhiteout(U("f")));
}

TEST_F(DirTest, UnlinkOfUpperOnlyFileLeavesNothing) {
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("new"), "n");
  WriteFile(M("d/new"), "n");
  ASSERT_EQ(unlink(M("new").c_str()), 0);
  ASSERT_EQ(unlink(M("d/new").c_str()), 0);
  EXPECT_FALSE(Exists(U("new")));
  EXPECT_FALSE(Exists(U("d/new")));
  EXPECT_FALSE(Exists(M("new")));
}

TEST_F(DirTest, RmdirOfEmptyLowerDirLeavesWhiteout) {
  MakeDirs(L(1, "empty"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rmdir(M("empty").c_str()), 0);
  EXPECT_FALSE(Exists(M("empty")));
  EXPECT_TRUE(IsWhiteout(U("empty")));
}

TEST_F(DirTest, RmdirOfUpperOnlyDirLeavesNothing) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  ASSERT_EQ(rmdir(M("d").c_str()), 0);
  EXPECT_FALSE(Exists(U("d")));
}

// A merged directory whose lower entries are all whited out is empty: rmdir
// succeeds and leaves a whiteout.
TEST_F(DirTest, RmdirOfMergedDirAfterWhitingOutAllLowerEntries) {
  MakeDirs(L(1, "d/sub"));
  WriteFile(L(1, "d/a"), "a");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/b"), "b");
  MakeDirs(U("d"));
  WriteFile(U("d/c"), "c");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rmdir(M("d").c_str())), Errno{ENOTEMPTY});
  for (const char* f : {"d/a", "d/b", "d/c"}) ASSERT_EQ(unlink(M(f).c_str()), 0) << f;
  ASSERT_EQ(rmdir(M("d/sub").c_str()), 0);
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  ASSERT_EQ(rmdir(M("d").c_str()), 0);
  EXPECT_FALSE(Exists(M("d")));
  EXPECT_TRUE(IsWhiteout(U("d")));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_FALSE(Exists(M("d")));
}

// A directory created where a lower directory was removed must not show the
// old lower content: the upper directory is opaque.
TEST_F(DirTest, MkdirOverWhiteoutMakesOpaqueDir) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/old"), "o");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/old0"), "o");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("d/old").c_str()), 0);
  ASSERT_EQ(unlink(M("d/old0").c_str()), 0);
  ASSERT_EQ(rmdir(M("d").c_str()), 0);
  ASSERT_EQ(mkdir(M("d").c_str(), 0700), 0);
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  EXPECT_FALSE(Exists(M("d/old")));
  EXPECT_EQ(GetXattr(U("d"), "trusted.overlay.opaque"), "y");
  EXPECT_EQ(Lstat(M("d")).st_mode & 07777, 0700u);
  WriteFile(M("d/new"), "n");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"new"});
}

TEST_F(DirTest, MkdirOverPreexistingWhiteoutMakesOpaqueDir) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/old"), "o");
  MakeWhiteout(U("d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_FALSE(Exists(M("d")));
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  EXPECT_TRUE(S_ISDIR(Lstat(U("d")).st_mode));
  EXPECT_EQ(GetXattr(U("d"), "trusted.overlay.opaque"), "y");
}

// The whiteout of a lower file, then a directory of the same name.
TEST_F(DirTest, MkdirOverWhiteoutOfLowerFile) {
  WriteFile(L(1, "x"), "file");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("x").c_str()), 0);
  ASSERT_EQ(mkdir(M("x").c_str(), 0755), 0);
  EXPECT_TRUE(S_ISDIR(Lstat(M("x")).st_mode));
  EXPECT_EQ(ListDir(M("x")), std::vector<std::string>{});
}

TEST_F(DirTest, CreateOverWhiteoutReplacesIt) {
  WriteFile(L(1, "f"), "lower", 0600);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  Fd fd(open(M("f").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644));
  ASSERT_TRUE(fd.valid()) << "O_EXCL create over a whiteout";
  ASSERT_EQ(write(fd.get(), "new", 3), 3);
  fd.reset();
  EXPECT_EQ(ReadFile(M("f")), "new");
  struct stat st = Lstat(U("f"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"f"});
}

TEST_F(DirTest, CreateOverPreexistingWhiteout) {
  WriteFile(L(1, "f"), "lower");
  MakeWhiteout(U("f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("f"), "upper");
  EXPECT_EQ(ReadFile(M("f")), "upper");
  EXPECT_EQ(ReadFile(U("f")), "upper");
}

TEST_F(DirTest, SymlinkAndMknodOverWhiteout) {
  WriteFile(L(1, "s"), "lower");
  WriteFile(L(1, "p"), "lower");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("s").c_str()), 0);
  ASSERT_EQ(unlink(M("p").c_str()), 0);
  ASSERT_EQ(symlink("target", M("s").c_str()), 0);
  ASSERT_EQ(mknod(M("p").c_str(), S_IFIFO | 0644, 0), 0);
  EXPECT_TRUE(S_ISLNK(Lstat(M("s")).st_mode));
  EXPECT_TRUE(S_ISFIFO(Lstat(M("p")).st_mode));
  EXPECT_TRUE(S_ISLNK(Lstat(U("s")).st_mode));
  EXPECT_TRUE(S_ISFIFO(Lstat(U("p")).st_mode));
}

// rm -rf of a tree spread over all layers: everything disappears and the
// upper layer keeps just one whiteout for the top directory.
TEST_F(DirTest, RecursiveRemoveOfMergedTree) {
  MakeDirs(L(1, "tree/a/b"));
  MakeDirs(L(0, "tree/a/c"));
  MakeDirs(U("tree/u"));
  WriteFile(L(1, "tree/a/b/f1"), "1");
  WriteFile(L(1, "tree/f2"), "2");
  WriteFile(L(0, "tree/a/c/f3"), "3");
  WriteFile(L(0, "tree/a/f4"), "4");
  WriteFile(U("tree/u/f5"), "5");
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::function<void(const std::string&)> rm_rf = [&](const std::string& rel) {
    for (const auto& n : ListDir(M(rel))) {
      std::string child = rel + "/" + n;
      if (S_ISDIR(Lstat(M(child)).st_mode)) {
        rm_rf(child);
      } else {
        ASSERT_EQ(unlink(M(child).c_str()), 0) << child;
      }
    }
    ASSERT_EQ(rmdir(M(rel).c_str()), 0) << rel;
  };
  rm_rf("tree");
  EXPECT_FALSE(Exists(M("tree")));
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{});
  EXPECT_EQ(ListDir(U()), std::vector<std::string>{"tree"});
  EXPECT_TRUE(IsWhiteout(U("tree")));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{});
}

// O_TMPFILE in a merged directory, then linkat(2) it into place.
// O_TMPFILE in a merged directory (kernel overlayfs since Linux 6.7;
// overtier answers FUSE_TMPFILE, which libfuse 3.14 does not know: see
// src/fuse_passthrough.h). The file is made in the upper directory without
// a name, and linkat gives it one.
TEST_F(DirTest, TmpfileLinkedIntoMergedDir) {
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  const mode_t old_umask = umask(022);
  Fd fd(open(M("d").c_str(), O_TMPFILE | O_RDWR, 0666));
  umask(old_umask);
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(write(fd.get(), "tmp", 3), 3);
  const struct stat before = Fstat(fd.get());
  EXPECT_EQ(before.st_nlink, 0u);
  EXPECT_TRUE(S_ISREG(before.st_mode));
  EXPECT_EQ(before.st_mode & 07777, 0644u);  // the umask applies
  EXPECT_EQ(before.st_size, 3);
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  EXPECT_EQ(ListDir(U("d")), std::vector<std::string>{});  // nothing named yet
  std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
  ASSERT_EQ(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, M("d/linked").c_str(), AT_SYMLINK_FOLLOW), 0);
  EXPECT_EQ(ReadFile(M("d/linked")), "tmp");
  EXPECT_EQ(Lstat(M("d/linked")).st_mode & 07777, 0644u);
  EXPECT_EQ(Lstat(M("d/linked")).st_ino, before.st_ino);
  EXPECT_EQ(Fstat(fd.get()).st_nlink, 1u);
  EXPECT_EQ(ReadFile(U("d/linked")), "tmp");
  // The descriptor and the name are one file.
  ASSERT_EQ(pwrite(fd.get(), "TMP!", 4, 0), 4);
  EXPECT_EQ(ReadFile(M("d/linked")), "TMP!");
  // A second name for it, through AT_EMPTY_PATH (root: CAP_DAC_READ_SEARCH).
  ASSERT_EQ(linkat(fd.get(), "", AT_FDCWD, M("d/again").c_str(), AT_EMPTY_PATH), 0);
  EXPECT_EQ(Lstat(M("d/again")).st_nlink, 2u);
  fd.reset();
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("d/linked")), "TMP!");
  EXPECT_EQ(Lstat(M("d/linked")).st_ino, Lstat(M("d/again")).st_ino);
}

// A temporary file never linked leaves nothing behind, in the merged view
// or in the layers; one opened with O_EXCL can never be linked.
TEST_F(DirTest, TmpfileNeverLinkedLeavesNothing) {
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("d").c_str(), O_TMPFILE | O_WRONLY, 0600));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    ASSERT_EQ(write(fd.get(), "gone", 4), 4);
    Fd excl(open(M("d").c_str(), O_TMPFILE | O_RDWR | O_EXCL, 0600));
    ASSERT_TRUE(excl.valid()) << strerror(errno);
    std::string proc = "/proc/self/fd/" + std::to_string(excl.get());
    EXPECT_EQ(Err(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, M("d/x").c_str(), AT_SYMLINK_FOLLOW)),
              Errno{ENOENT});
    EXPECT_EQ(Err(linkat(excl.get(), "", AT_FDCWD, M("d/x").c_str(), AT_EMPTY_PATH)),
              Errno{ENOENT});
  }
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  EXPECT_EQ(ListDir(U("d")), std::vector<std::string>{});
  // Not a directory, missing, or read-only in the open flags: as the kernel.
  WriteFile(M("f"), "x");
  EXPECT_EQ(Err(open(M("f").c_str(), O_TMPFILE | O_RDWR, 0600)), Errno{ENOTDIR});
  EXPECT_EQ(Err(open(M("nosuch").c_str(), O_TMPFILE | O_RDWR, 0600)), Errno{ENOENT});
  EXPECT_EQ(Err(open(M("d").c_str(), O_TMPFILE | O_RDONLY, 0600)), Errno{EINVAL});
}

// A user makes temporary files where they may write, owned by them, and
// nowhere else.
TEST_F(DirTest, TmpfileOfAUserIsTheirsAndNeedsWriteAccess) {
  MakeDirs(L(1, "pub"));
  MakeDirs(L(1, "priv"));
  ASSERT_EQ(chmod(L(1, "pub").c_str(), 01777), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string pub = M("pub"), priv = M("priv"), name = M("pub/named");
  EXPECT_EQ(AsNobody([&] {
              if (int fd = open(priv.c_str(), O_TMPFILE | O_RDWR, 0600); fd >= 0) {
                close(fd);
                return Errno{-1};  // should not have been allowed
              } else if (errno != EACCES) {
                return Errno{errno};
              }
              int fd = open(pub.c_str(), O_TMPFILE | O_RDWR, 0600);
              if (fd < 0) return Errno{errno};
              std::string proc = "/proc/self/fd/" + std::to_string(fd);
              Errno e =
                  Err(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW));
              close(fd);
              return e;
            }),
            kOk);
  EXPECT_EQ(Lstat(M("pub/named")).st_uid, kNobody);
  EXPECT_EQ(Lstat(M("pub/named")).st_gid, kNogroup);
  EXPECT_EQ(Lstat(U("pub/named")).st_uid, kNobody);
}

}  // namespace
}  // namespace overtier::it
