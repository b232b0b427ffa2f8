// Lookup through the layers: shadowing, whiteouts, opaque directories, and
// the identity of objects (st_ino, st_dev) within a mount and across mounts.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <set>

#include "harness.h"

namespace overtier::it {
namespace {

using LookupTest = UnionFsTest;

TEST_F(LookupTest, UpperFileShadowsLowerFile) {
  WriteFile(L(0, "f"), "lower\n");
  WriteFile(U("f"), "upper\n");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("f")), "upper\n");
}

// A redirect xattr on an upper directory (or metadata-only file) names
// where its lower part lives. The upper layer may come from anywhere (a
// copied tree, another host): a redirect with ".." components must not
// walk out of the lower layers. Answers as the kernel overlayfs gives them
// (ovl_get_redirect_xattr: EINVAL for a malformed one, EACCES for a "." or
// ".." component, which lookup_one refuses).
TEST_F(LookupTest, RedirectsNeverLeaveTheLowerLayers) {
  const std::string outside = base() + "/outside";
  MakeDirs(outside + "/etc");
  WriteFile(outside + "/etc/secret", "not in any layer\n");
  MakeDirs(L(0, "a/b"));
  WriteFile(L(0, "a/b/f"), "lower data\n");
  const std::pair<const char*, int> cases[] = {
      {"/../outside/etc", EACCES},
      {"/a/../../outside/etc", EACCES},
      {"/./a/b", EACCES},
      {"..", EACCES},
      {"../outside", EINVAL},
      {"a/b", EINVAL},
      {"//a/b", EINVAL},
      {"/a/b/", EINVAL},
      {"/", EINVAL},
  };
  int i = 0;
  for (const auto& [redirect, err] : cases) {
    const std::string d = "d" + std::to_string(i++);
    MakeDirs(U(d));
    SetXattr(U(d), "trusted.overlay.redirect", redirect);
  }
  // A good one still works.
  MakeDirs(U("good"));
  SetXattr(U("good"), "trusted.overlay.redirect", "/a/b");
  ASSERT_NO_FATAL_FAILURE(Mount());
  i = 0;
  for (const auto& [redirect, err] : cases) {
    const std::string d = "d" + std::to_string(i++);
    struct stat st;
    EXPECT_EQ(Err(lstat(M(d).c_str(), &st)), Errno{err}) << "redirect " << redirect;
    EXPECT_EQ(Err(lstat(M(d + "/secret").c_str(), &st)), Errno{err}) << "redirect " << redirect;
  }
  EXPECT_EQ(ReadFile(M("good/f")), "lower data\n");
}

// A metadata-only copy (trusted.overlay.metacopy) whose data the lower
// layers no longer hold (a lower layer changed under the upper one): the
// upper file holds only a hole of the right size. The kernel fails the
// lookup with EIO ("metacopy with no lower data found"); reading the hole
// would hand out zeros for the user's data.
TEST_F(LookupTest, AMetacopyWithoutItsLowerDataIsEio) {
  WriteFile(U("gone"), "");
  ASSERT_EQ(truncate(U("gone").c_str(), 4096), 0);
  SetXattr(U("gone"), "trusted.overlay.metacopy", "");
  WriteFile(U("moved"), "");
  ASSERT_EQ(truncate(U("moved").c_str(), 4096), 0);
  SetXattr(U("moved"), "trusted.overlay.metacopy", "");
  SetXattr(U("moved"), "trusted.overlay.redirect", "/nowhere/f");
  MakeDirs(L(0, "dir"));
  WriteFile(U("dir"), "");
  SetXattr(U("dir"), "trusted.overlay.metacopy", "");
  // The upper directory "dir" is a file here; the lower name is a
  // directory: no data either.
  // A copy-up marks its parent impure (the kernel's ovl_do_copy_up): the
  // union reads the metacopy mark of files in such directories.
  SetXattr(U(""), "trusted.overlay.impure", "y");
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  EXPECT_EQ(Err(lstat(M("gone").c_str(), &st)), Errno{EIO});
  EXPECT_EQ(Err(lstat(M("moved").c_str(), &st)), Errno{EIO});
  const int fd = open(M("moved").c_str(), O_RDONLY);
  EXPECT_EQ(Err(fd), Errno{EIO});
  if (fd >= 0) close(fd);
  EXPECT_EQ(Err(lstat(M("dir").c_str(), &st)), Errno{EIO});
}

TEST_F(LookupTest, UpperLowerShadowsLowerOne) {
  WriteFile(L(0, "f"), "lower0\n");
  WriteFile(L(1, "f"), "lower1\n");
  WriteFile(L(1, "only1"), "only in lower1\n");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("f")), "lower0\n");
  EXPECT_EQ(ReadFile(M("only1")), "only in lower1\n");
}

TEST_F(LookupTest, MergedDirectoryFindsNamesInEveryLayer) {
  MakeDirs(L(1, "d/sub"));
  MakeDirs(L(0, "d"));
  MakeDirs(U("d"));
  WriteFile(L(1, "d/a"), "a1");
  WriteFile(L(1, "d/sub/deep"), "deep");
  WriteFile(L(0, "d/b"), "b0");
  WriteFile(U("d/c"), "cu");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("d/a")), "a1");
  EXPECT_EQ(ReadFile(M("d/b")), "b0");
  EXPECT_EQ(ReadFile(M("d/c")), "cu");
  EXPECT_EQ(ReadFile(M("d/sub/deep")), "deep");
  EXPECT_TRUE(S_ISDIR(Lstat(M("d")).st_mode));
}

TEST_F(LookupTest, WhiteoutInUpperHidesLowerEntry) {
  WriteFile(L(1, "gone"), "x");
  MakeDirs(L(0, "gonedir/sub"));
  MakeWhiteout(U("gone"));
  MakeWhiteout(U("gonedir"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  EXPECT_EQ(Err(lstat(M("gone").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(lstat(M("gonedir").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(lstat(M("gonedir/sub").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(open(M("gone").c_str(), O_RDONLY)), Errno{ENOENT});
}

TEST_F(LookupTest, WhiteoutInUpperLowerHidesOnlyLayersBelow) {
  WriteFile(L(1, "f"), "bottom");
  MakeWhiteout(L(0, "f"));
  WriteFile(L(1, "g"), "bottom g");
  MakeWhiteout(L(0, "g"));
  WriteFile(U("g"), "upper g");
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  EXPECT_EQ(Err(lstat(M("f").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(ReadFile(M("g")), "upper g");
}

// Whiteouts kept as xattrs (Linux 6.7+, what nested overlays and
// composefs put in lower layers): in a directory whose overlay opaque
// xattr is "x" (which does not make it opaque), an empty regular file with
// trusted.overlay.whiteout hides the name in the layers below, for lookup,
// readdir and emptiness alike. A file with content, or one in a directory
// not so marked, is an ordinary file.
TEST_F(LookupTest, XattrWhiteoutsInALowerLayer) {
  MakeDirs(L(1, "d/sub"));
  WriteFile(L(1, "d/gone"), "bottom");
  WriteFile(L(1, "d/kept"), "bottom");
  WriteFile(L(1, "d/full"), "bottom");
  WriteFile(L(1, "d/sub/inside"), "bottom");
  MakeDirs(L(0, "d"));
  SetXattr(L(0, "d"), "trusted.overlay.opaque", "x");
  for (const char* w : {"d/gone", "d/sub"}) {
    WriteFile(L(0, w), "");
    SetXattr(L(0, w), "trusted.overlay.whiteout", "");
  }
  WriteFile(L(0, "d/full"), "middle");  // not empty: a file
  SetXattr(L(0, "d/full"), "trusted.overlay.whiteout", "");
  WriteFile(L(0, "d/own"), "middle");
  // Only whiteouts over everything below: an empty directory.
  MakeDirs(L(1, "e"));
  WriteFile(L(1, "e/only"), "bottom");
  MakeDirs(L(0, "e"));
  SetXattr(L(0, "e"), "trusted.overlay.opaque", "x");
  WriteFile(L(0, "e/only"), "");
  SetXattr(L(0, "e/only"), "trusted.overlay.whiteout", "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  EXPECT_EQ(Err(lstat(M("d/gone").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(lstat(M("d/sub").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(lstat(M("d/sub/inside").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(ReadFile(M("d/full")), "middle");
  EXPECT_EQ(ReadFile(M("d/kept")), "bottom") << "\"x\" does not make d opaque";
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{"full", "kept", "own"}));
  EXPECT_EQ(ListDir(M("e")), std::vector<std::string>{});
  // KERNEL (6.18): ENOTEMPTY, though its readdir shows e empty (rm -r then
  // fails). overtier: empty is empty.
  EXPECT_EQ(Err(rmdir(M("e").c_str())), IsKernel() ? Errno{ENOTEMPTY} : kOk);
  EXPECT_EQ(Exists(M("e")), IsKernel());
  // A name hidden that way can be made again.
  WriteFile(M("d/gone"), "new");
  EXPECT_EQ(ReadFile(M("d/gone")), "new");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{"full", "gone", "kept", "own"}));
}

// The same file in a directory without the "x" mark is an ordinary one for
// overtier (the mark is what says a directory's empty files need a look at
// their xattrs). KERNEL (6.18): its readdir lists it, its lookup takes it
// for a whiteout (ENOENT): overtier stays with what readdir shows.
TEST_F(LookupTest, AnXattrWhiteoutOutsideAMarkedDirectoryIsAFile) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/f"), "bottom");
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/f"), "");
  SetXattr(L(0, "d/f"), "trusted.overlay.whiteout", "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"f"});
  struct stat st;
  EXPECT_EQ(Err(lstat(M("d/f").c_str(), &st)), IsKernel() ? Errno{ENOENT} : kOk);
  if (!IsKernel()) {
    EXPECT_EQ(ReadFile(M("d/f")), "");
  }
}

TEST_F(LookupTest, OpaqueUpperDirStopsFallThrough) {
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/lower_file"), "x");
  MakeDirs(U("d"));
  MakeOpaque(U("d"));
  WriteFile(U("d/upper_file"), "y");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_FALSE(Exists(M("d/lower_file")));
  EXPECT_EQ(ReadFile(M("d/upper_file")), "y");
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"upper_file"});
}

TEST_F(LookupTest, OpaqueDirInUpperLowerStopsFallThroughBelowIt) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/bottom"), "x");
  MakeDirs(L(0, "d"));
  MakeOpaque(L(0, "d"));
  WriteFile(L(0, "d/middle"), "y");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_FALSE(Exists(M("d/bottom")));
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"middle"});
}

TEST_F(LookupTest, UpperFileHidesLowerDirectory) {
  MakeDirs(L(0, "x"));
  WriteFile(L(0, "x/child"), "c");
  WriteFile(U("x"), "file");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(S_ISREG(Lstat(M("x")).st_mode));
  EXPECT_EQ(ReadFile(M("x")), "file");
  struct stat st;
  EXPECT_EQ(Err(lstat(M("x/child").c_str(), &st)), Errno{ENOTDIR});
}

TEST_F(LookupTest, UpperDirOverLowerFileIsNotMerged) {
  WriteFile(L(0, "x"), "lower file");
  MakeDirs(U("x"));
  WriteFile(U("x/in_upper"), "u");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(S_ISDIR(Lstat(M("x")).st_mode));
  EXPECT_EQ(ListDir(M("x")), std::vector<std::string>{"in_upper"});
}

TEST_F(LookupTest, LowerFileHidesDirectoryInLayerBelow) {
  MakeDirs(L(1, "x"));
  WriteFile(L(1, "x/child"), "c");
  WriteFile(L(0, "x"), "file in lower0");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(S_ISREG(Lstat(M("x")).st_mode));
  EXPECT_EQ(ReadFile(M("x")), "file in lower0");
}

TEST_F(LookupTest, ReadOnlyUnionWithoutUpperLayer) {
  WriteFile(L(0, "a"), "top");
  WriteFile(L(1, "a"), "bottom");
  WriteFile(L(1, "b"), "b");
  MakeWhiteout(L(0, "c"));
  WriteFile(L(1, "c"), "hidden");
  ASSERT_NO_FATAL_FAILURE(Mount(MountConfig::ReadOnly()));
  EXPECT_EQ(ReadFile(M("a")), "top");
  EXPECT_EQ(ReadFile(M("b")), "b");
  EXPECT_FALSE(Exists(M("c")));
  EXPECT_EQ(ListDir(M("")), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Err(open(M("a").c_str(), O_WRONLY)), Errno{EROFS});
  EXPECT_EQ(Err(open(M("new").c_str(), O_WRONLY | O_CREAT, 0644)), Errno{EROFS});
  EXPECT_EQ(Err(mkdir(M("newdir").c_str(), 0755)), Errno{EROFS});
  EXPECT_EQ(Err(unlink(M("b").c_str())), Errno{EROFS});
  EXPECT_EQ(Err(chmod(M("a").c_str(), 0600)), Errno{EROFS});
  EXPECT_EQ(Err(rename(M("a").c_str(), M("z").c_str())), Errno{EROFS});
}

// st_dev is one value for the whole mount, whatever layer an object lives in.
TEST_F(LookupTest, StDevIsTheSameForEveryObject) {
  WriteFile(L(1, "lower_file"), "l");
  WriteFile(L(1, "to_copy_up"), "c");
  MakeDirs(L(1, "merged"));
  MakeDirs(L(0, "lower_dir"));
  MakeDirs(U("merged"));
  WriteFile(U("upper_file"), "u");
  MakeDirs(U("upper_dir"));
  MakeSymlink("lower_file", L(0, "lower_link"));
  ASSERT_EQ(mkfifo(L(0, "lower_fifo").c_str(), 0644), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("to_copy_up"), "changed");
  WriteFile(M("merged/new"), "n");
  dev_t dev = Lstat(M("")).st_dev;
  for (const char* p : {"lower_file", "to_copy_up", "merged", "merged/new", "lower_dir",
                        "upper_file", "upper_dir", "lower_link", "lower_fifo"}) {
    EXPECT_EQ(Lstat(M(p)).st_dev, dev) << p;
  }
  Fd fd(open(M("lower_file").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(Fstat(fd.get()).st_dev, dev);
}

// Distinct objects have distinct inode numbers; hard links share theirs.
TEST_F(LookupTest, InodeNumbersAreUniqueWithinTheMount) {
  MakeDirs(L(1, "d"));
  MakeDirs(L(0, "d"));
  MakeDirs(U("d"));
  for (int i = 0; i < 10; ++i) {
    WriteFile(L(1, "d/l1_" + std::to_string(i)), "x");
    WriteFile(L(0, "d/l0_" + std::to_string(i)), "x");
    WriteFile(U("d/u_" + std::to_string(i)), "x");
  }
  MakeDirs(L(1, "e"));
  MakeDirs(L(0, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::set<ino_t> seen;
  for (const auto& name : ListDir(M("d"))) {
    EXPECT_TRUE(seen.insert(Lstat(M("d/" + name)).st_ino).second) << name;
  }
  for (const char* p : {"", "d", "e", "f"})
    EXPECT_TRUE(seen.insert(Lstat(M(p)).st_ino).second) << p;
}

TEST_F(LookupTest, CopyUpKeepsInodeNumber) {
  WriteFile(L(1, "data"), "lower data");
  WriteFile(L(0, "meta"), "lower meta");
  MakeDirs(L(1, "dir"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ino_t data_ino = Lstat(M("data")).st_ino;
  ino_t meta_ino = Lstat(M("meta")).st_ino;
  ino_t dir_ino = Lstat(M("dir")).st_ino;
  WriteFile(M("data"), "new data");              // data copy-up
  ASSERT_EQ(chmod(M("meta").c_str(), 0600), 0);  // metadata copy-up
  WriteFile(M("dir/child"), "c");                // copy-up of the directory
  ASSERT_TRUE(Exists(U("data")));
  ASSERT_TRUE(Exists(U("meta")));
  ASSERT_TRUE(Exists(U("dir")));
  EXPECT_EQ(Lstat(M("data")).st_ino, data_ino);
  EXPECT_EQ(Lstat(M("meta")).st_ino, meta_ino);
  EXPECT_EQ(Lstat(M("dir")).st_ino, dir_ino);
}

TEST_F(LookupTest, InodeNumbersStableAcrossRemount) {
  WriteFile(L(1, "lower_file"), "l");
  WriteFile(L(0, "copied_up"), "c");
  MakeDirs(L(1, "lower_dir/sub"));
  MakeDirs(L(1, "merged"));
  WriteFile(L(1, "merged/in_lower"), "x");
  MakeDirs(U("merged"));
  WriteFile(U("upper_file"), "u");
  MakeDirs(U("upper_dir"));
  MakeSymlink("lower_file", L(0, "lower_link"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("copied_up"), "changed");
  WriteFile(M("created"), "new");
  ASSERT_EQ(mkdir(M("created_dir").c_str(), 0755), 0);
  const std::vector<std::string> paths = {
      "",        "lower_file",      "copied_up",  "lower_dir", "lower_dir/sub",
      "merged",  "merged/in_lower", "upper_file", "upper_dir", "lower_link",
      "created", "created_dir"};
  std::vector<ino_t> before;
  for (const auto& p : paths) before.push_back(Lstat(M(p)).st_ino);
  ASSERT_NO_FATAL_FAILURE(Remount());
  for (size_t i = 0; i < paths.size(); ++i) {
    EXPECT_EQ(Lstat(M(paths[i])).st_ino, before[i]) << "'" << paths[i] << "'";
  }
}

TEST_F(LookupTest, FstatOfOpenFileMatchesStat) {
  WriteFile(L(1, "f"), "content");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  struct stat a = Fstat(fd.get());
  struct stat b = Lstat(M("f"));
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_dev, b.st_dev);
  EXPECT_EQ(a.st_size, 7);
  EXPECT_EQ(a.st_mode, b.st_mode);
}

TEST_F(LookupTest, StatReportsLowerAttributes) {
  WriteFile(L(1, "f"), "12345", 0640);
  Chown(L(1, "f"), 1234, 2345);
  SetTimes(L(1, "f"), 1000000000, 1000000100);
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st = Lstat(M("f"));
  EXPECT_EQ(st.st_mode, S_IFREG | 0640);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 2345u);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000100);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_FALSE(Exists(U("f"))) << "stat must not copy up";
}

// The kernel reports st_nlink 1 for a merged directory (it cannot count the
// subdirectories of all layers cheaply); a pure upper or pure lower
// directory reports its real link count.
TEST_F(LookupTest, DirectoryLinkCounts) {
  MakeDirs(L(1, "merged/a"));
  MakeDirs(U("merged/b"));
  MakeDirs(L(1, "pure_lower/a"));
  MakeDirs(L(1, "pure_lower/b"));
  MakeDirs(U("pure_upper/a"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Lstat(M("merged")).st_nlink, 1u);
  EXPECT_EQ(Lstat(M("pure_lower")).st_nlink, 4u);
  EXPECT_EQ(Lstat(M("pure_upper")).st_nlink, 3u);
}

}  // namespace
}  // namespace overtier::it
