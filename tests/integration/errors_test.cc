// Error semantics, which must be those of the kernel overlayfs: ENOENT,
// EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, ENAMETOOLONG (and paths close to
// PATH_MAX that work), EACCES/EPERM for an unprivileged user, no EXDEV for
// directory renames, and ctime updates.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <functional>
#include <thread>

#include "harness.h"

namespace overtier::it {
namespace {

using ErrorsTest = UnionFsTest;

// ---------------------------------------------------------------- ENOENT

TEST_F(ErrorsTest, MissingNamesAreENOENT) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "gone"), "x");
  MakeDirs(L(1, "gonedir"));
  WriteFile(L(1, "gonedir/f"), "x");
  MakeWhiteout(U("gone"));
  MakeWhiteout(U("gonedir"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  char buf[8];
  for (const char* p : {"missing", "d/missing", "gone", "gonedir", "gonedir/f", "missing/x"}) {
    SCOPED_TRACE(p);
    std::string path = M(p);
    EXPECT_EQ(Err(lstat(path.c_str(), &st)), Errno{ENOENT});
    EXPECT_EQ(Err(open(path.c_str(), O_RDONLY)), Errno{ENOENT});
    EXPECT_EQ(Err(unlink(path.c_str())), Errno{ENOENT});
    EXPECT_EQ(Err(rmdir(path.c_str())), Errno{ENOENT});
    EXPECT_EQ(Err(chmod(path.c_str(), 0600)), Errno{ENOENT});
    EXPECT_EQ(Err(readlink(path.c_str(), buf, sizeof(buf))), Errno{ENOENT});
    EXPECT_EQ(Err(getxattr(path.c_str(), "user.x", nullptr, 0)), Errno{ENOENT});
    EXPECT_EQ(Err(truncate(path.c_str(), 0)), Errno{ENOENT});
  }
  EXPECT_EQ(Err(open(M("gonedir/new").c_str(), O_WRONLY | O_CREAT, 0644)), Errno{ENOENT});
  EXPECT_EQ(Err(mkdir(M("missing/sub").c_str(), 0755)), Errno{ENOENT});
  EXPECT_EQ(ListDir(U()), (std::vector<std::string>{"gone", "gonedir"}));
}

// ---------------------------------------------------------------- EEXIST

TEST_F(ErrorsTest, ExistingNamesAreEEXIST) {
  WriteFile(L(1, "lower_file"), "l");
  MakeDirs(L(1, "lower_dir"));
  WriteFile(U("upper_file"), "u");
  MakeDirs(U("upper_dir"));
  MakeSymlink("nowhere", L(0, "lower_link"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* p : {"lower_file", "lower_dir", "upper_file", "upper_dir", "lower_link"}) {
    SCOPED_TRACE(p);
    std::string path = M(p);
    EXPECT_EQ(Err(mkdir(path.c_str(), 0755)), Errno{EEXIST});
    EXPECT_EQ(Err(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644)), Errno{EEXIST});
    EXPECT_EQ(Err(symlink("x", path.c_str())), Errno{EEXIST});
    EXPECT_EQ(Err(mknod(path.c_str(), S_IFIFO | 0644, 0)), Errno{EEXIST});
    EXPECT_EQ(Err(link(M("upper_file").c_str(), path.c_str())), Errno{EEXIST});
  }
  EXPECT_EQ(ReadFile(M("lower_file")), "l");
  EXPECT_FALSE(Exists(U("lower_file")));
}

// ------------------------------------------------------------- ENOTEMPTY

// A merged directory whose only content is in a lower layer is not empty.
TEST_F(ErrorsTest, RmdirOfDirWithOnlyLowerContentIsENOTEMPTY) {
  MakeDirs(L(1, "merged"));
  WriteFile(L(1, "merged/lower_only"), "x");
  MakeDirs(L(0, "merged"));
  MakeDirs(U("merged"));
  MakeDirs(L(1, "pure_lower/sub"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(rmdir(M("merged").c_str())), Errno{ENOTEMPTY});
  EXPECT_EQ(Err(rmdir(M("pure_lower").c_str())), Errno{ENOTEMPTY});
  EXPECT_TRUE(Exists(M("merged/lower_only")));
  EXPECT_TRUE(S_ISDIR(Lstat(U("merged")).st_mode));
}

// Whiteouts already in the upper layer hide every lower entry: the merged
// directory is empty and can be removed.
TEST_F(ErrorsTest, RmdirOfDirWhoseLowerEntriesAreAllWhitedOut) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/a"), "x");
  MakeDirs(L(1, "d/sub"));
  MakeDirs(L(0, "d"));
  WriteFile(L(0, "d/b"), "x");
  MakeDirs(U("d"));
  for (const char* w : {"d/a", "d/sub", "d/b"}) MakeWhiteout(U(w));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{});
  ASSERT_EQ(rmdir(M("d").c_str()), 0);
  EXPECT_FALSE(Exists(M("d")));
  EXPECT_TRUE(IsWhiteout(U("d")));
}

// ------------------------------------------------------ EISDIR / ENOTDIR

TEST_F(ErrorsTest, DirectoryWhereAFileIsNeededIsEISDIR) {
  MakeDirs(L(1, "lower_dir"));
  MakeDirs(U("upper_dir"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* p : {"lower_dir", "upper_dir", ""}) {
    SCOPED_TRACE(p);
    std::string path = M(p);
    EXPECT_EQ(Err(open(path.c_str(), O_WRONLY)), Errno{EISDIR});
    EXPECT_EQ(Err(open(path.c_str(), O_RDWR)), Errno{EISDIR});
    EXPECT_EQ(Err(open(path.c_str(), O_WRONLY | O_CREAT, 0644)), Errno{EISDIR});
    EXPECT_EQ(Err(truncate(path.c_str(), 0)), Errno{EISDIR});
  }
  EXPECT_EQ(Err(unlink(M("lower_dir").c_str())), Errno{EISDIR});
  EXPECT_EQ(Err(unlink(M("upper_dir").c_str())), Errno{EISDIR});
  Fd fd(open(M("lower_dir").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  char buf[4];
  EXPECT_EQ(Err(read(fd.get(), buf, sizeof(buf))), Errno{EISDIR});
}

TEST_F(ErrorsTest, FileWhereADirectoryIsNeededIsENOTDIR) {
  WriteFile(L(1, "lower_file"), "l");
  WriteFile(U("upper_file"), "u");
  MakeSymlink("lower_file", L(1, "link_to_file"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  for (const char* p : {"lower_file", "upper_file", "link_to_file"}) {
    SCOPED_TRACE(p);
    std::string path = M(p);
    EXPECT_EQ(Err(lstat((path + "/x").c_str(), &st)), Errno{ENOTDIR});
    EXPECT_EQ(Err(open((path + "/x").c_str(), O_WRONLY | O_CREAT, 0644)), Errno{ENOTDIR});
    EXPECT_EQ(Err(mkdir((path + "/sub").c_str(), 0755)), Errno{ENOTDIR});
    EXPECT_EQ(Err(rmdir(path.c_str())), Errno{ENOTDIR});
    EXPECT_EQ(Err(open(path.c_str(), O_RDONLY | O_DIRECTORY)), Errno{ENOTDIR});
  }
  EXPECT_EQ(Err(lstat(M("lower_file/").c_str(), &st)), Errno{ENOTDIR});
}

// ---------------------------------------------------------- ENAMETOOLONG

TEST_F(ErrorsTest, NameOf256BytesIsENAMETOOLONG) {
  std::string n255(255, 'n'), n256(256, 'n');
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/" + std::string(255, 'l')), "lower long name");
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  std::string p256 = M("d/" + n256);
  EXPECT_EQ(Err(open(p256.c_str(), O_WRONLY | O_CREAT, 0644)), Errno{ENAMETOOLONG});
  EXPECT_EQ(Err(mkdir(p256.c_str(), 0755)), Errno{ENAMETOOLONG});
  EXPECT_EQ(Err(lstat(p256.c_str(), &st)), Errno{ENAMETOOLONG});
  EXPECT_EQ(Err(symlink("x", p256.c_str())), Errno{ENAMETOOLONG});
  EXPECT_EQ(Err(mknod(p256.c_str(), S_IFIFO | 0644, 0)), Errno{ENAMETOOLONG});
  EXPECT_EQ(Err(unlink(p256.c_str())), Errno{ENAMETOOLONG});
  WriteFile(M("d/short"), "s");
  EXPECT_EQ(Err(rename(M("d/short").c_str(), p256.c_str())), Errno{ENAMETOOLONG});
  EXPECT_EQ(Err(link(M("d/short").c_str(), p256.c_str())), Errno{ENAMETOOLONG});
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{std::string(255, 'l'), "short"}));

  // 255 bytes work for every operation.
  std::string p255 = M("d/" + n255);
  WriteFile(p255, "max");
  EXPECT_EQ(ReadFile(p255), "max");
  EXPECT_EQ(ReadFile(U("d/" + n255)), "max");
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{std::string(255, 'l'), n255, "short"}));
  ASSERT_EQ(unlink(p255.c_str()), 0);
  ASSERT_EQ(mkdir(p255.c_str(), 0755), 0);
  ASSERT_EQ(rmdir(p255.c_str()), 0);
  ASSERT_EQ(rename(M("d/short").c_str(), p255.c_str()), 0);
  // A 255-byte lower name: copy-up, rename and whiteout.
  std::string lower_long = M("d/" + std::string(255, 'l'));
  ASSERT_EQ(chmod(lower_long.c_str(), 0600), 0);
  std::string other_long = M("d/" + std::string(255, 'o'));
  ASSERT_EQ(rename(lower_long.c_str(), other_long.c_str()), 0);
  EXPECT_TRUE(IsWhiteout(U("d/" + std::string(255, 'l'))));
  EXPECT_EQ(ReadFile(other_long), "lower long name");
  ASSERT_EQ(unlink(other_long.c_str()), 0);
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{n255});
}

// A chain of 16 directories whose path relative to the mount root is 4072
// bytes: the absolute paths (through the mount and in the layers) exceed
// PATH_MAX, which the file system must handle (dirfd-relative operations).
TEST_F(ErrorsTest, PathsCloseToPathMax) {
  constexpr int kDepth = 16;
  constexpr size_t kChain = 4072;
  auto comp = [&](int i) {
    size_t len = i < kDepth - 1 ? 254 : kChain - (kDepth - 1) * 255;
    return std::string(len, static_cast<char>('a' + i));
  };
  // The same chain in a lower layer, with a lower file at the bottom.
  {
    Fd dir(open(L(1).c_str(), O_RDONLY | O_DIRECTORY));
    for (int i = 0; i < kDepth; ++i) {
      ASSERT_EQ(mkdirat(dir.get(), comp(i).c_str(), 0755), 0) << i;
      dir = Fd(openat(dir.get(), comp(i).c_str(), O_RDONLY | O_DIRECTORY));
      ASSERT_TRUE(dir.valid());
    }
    Fd f(openat(dir.get(), "lower_leaf", O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(f.valid());
    ASSERT_EQ(write(f.get(), "deep lower", 10), 10);
  }
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd root(open(M().c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(root.valid());
  std::string rel;
  for (int i = 0; i < kDepth; ++i) rel += (i ? "/" : "") + comp(i);
  ASSERT_EQ(rel.size(), kChain);
  ASSERT_GT(M().size() + 1 + rel.size(), static_cast<size_t>(PATH_MAX));

  // The lower chain: one long relative path from the mount root.
  struct stat st;
  ASSERT_EQ(fstatat(root.get(), (rel + "/lower_leaf").c_str(), &st, 0), 0) << strerror(errno);
  EXPECT_EQ(st.st_size, 10);
  // Write to it: copy-up of the file and of all 16 parents.
  {
    Fd f(openat(root.get(), (rel + "/lower_leaf").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(f.valid()) << strerror(errno);
    ASSERT_EQ(write(f.get(), "!", 1), 1);
  }
  // New entries at the bottom, created with the full relative path.
  {
    Fd f(openat(root.get(), (rel + "/new_leaf").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(f.valid()) << strerror(errno);
    ASSERT_EQ(write(f.get(), "deep new", 8), 8);
  }
  ASSERT_EQ(mkdirat(root.get(), (rel + "/new_dir").c_str(), 0755), 0);
  ASSERT_EQ(symlinkat("lower_leaf", root.get(), (rel + "/new_link").c_str()), 0);

  // Walk down with dirfds and check what each level shows.
  Fd dir(dup(root.get()));
  for (int i = 0; i < kDepth; ++i) {
    dir = Fd(openat(dir.get(), comp(i).c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(dir.valid()) << "level " << i << ": " << strerror(errno);
  }
  std::vector<std::string> names;
  for (const auto& e : ReadDirRaw(dir.get())) {
    if (e.name != "." && e.name != "..") names.push_back(e.name);
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"lower_leaf", "new_dir", "new_leaf", "new_link"}));
  {
    Fd f(openat(dir.get(), "lower_leaf", O_RDONLY));
    ASSERT_TRUE(f.valid());
    EXPECT_EQ(ReadFd(f.get()), "deep lower!");
    Fd g(openat(dir.get(), "new_link", O_RDONLY));
    ASSERT_TRUE(g.valid());
    EXPECT_EQ(ReadFd(g.get()), "deep lower!");
  }
  ASSERT_EQ(renameat(dir.get(), "new_leaf", dir.get(), "renamed_leaf"), 0);
  ASSERT_EQ(unlinkat(dir.get(), "renamed_leaf", 0), 0);
  ASSERT_EQ(unlinkat(dir.get(), "new_link", 0), 0);
  ASSERT_EQ(unlinkat(dir.get(), "new_dir", AT_REMOVEDIR), 0);
  ASSERT_EQ(unlinkat(dir.get(), "lower_leaf", 0), 0);
  EXPECT_EQ(ReadDirRaw(dir.get()).size(), 0u) << "already at the end";
  ASSERT_EQ(lseek(dir.get(), 0, SEEK_SET), 0);
  EXPECT_EQ(ReadDirRaw(dir.get()).size(), 2u) << "only . and .. left";
  dir.reset();

  // Remove the chain bottom-up (each level leaves a whiteout of the lower
  // directory in its parent) and the mount is empty again.
  for (int i = kDepth - 1; i >= 0; --i) {
    std::string sub;
    for (int j = 0; j <= i; ++j) sub += (j ? "/" : "") + comp(j);
    ASSERT_EQ(unlinkat(root.get(), sub.c_str(), AT_REMOVEDIR), 0)
        << "level " << i << ": " << strerror(errno);
  }
  EXPECT_EQ(ListDir(M()), std::vector<std::string>{});
  // An absolute path beyond PATH_MAX is refused by the VFS, not the fs.
  EXPECT_EQ(Err(lstat((M() + "/" + rel + "/x").c_str(), &st)), Errno{ENAMETOOLONG});
}

// ---------------------------------------------------- unprivileged users

TEST_F(ErrorsTest, UnprivilegedWriteToRootFileIsEACCES) {
  WriteFile(L(1, "lower_file"), "root data", 0644);
  WriteFile(U("upper_file"), "root data", 0644);
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* p : {"lower_file", "upper_file"}) {
    SCOPED_TRACE(p);
    std::string path = M(p);
    EXPECT_EQ(AsNobody([&] { return Err(open(path.c_str(), O_RDONLY)); }), kOk)
        << "reading is allowed (the mount is reachable)";
    EXPECT_EQ(AsNobody([&] { return Err(open(path.c_str(), O_WRONLY)); }), Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(open(path.c_str(), O_RDWR | O_TRUNC)); }), Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(truncate(path.c_str(), 0)); }), Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(utimensat(AT_FDCWD, path.c_str(), nullptr, 0)); }),
              Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(chmod(path.c_str(), 0666)); }), Errno{EPERM});
    EXPECT_EQ(AsNobody([&] { return Err(chown(path.c_str(), kNobody, kNogroup)); }), Errno{EPERM});
    struct timespec ts[2] = {{1, 0}, {1, 0}};
    EXPECT_EQ(AsNobody([&] { return Err(utimensat(AT_FDCWD, path.c_str(), ts, 0)); }),
              Errno{EPERM});
  }
  EXPECT_EQ(ReadFile(M("lower_file")), "root data");
  EXPECT_FALSE(Exists(U("lower_file"))) << "a refused write must not copy up";
}

TEST_F(ErrorsTest, UnprivilegedCreateInRootDirIsEACCES) {
  MakeDirs(L(1, "lower_dir"));
  WriteFile(L(1, "lower_dir/f"), "x");
  MakeDirs(U("upper_dir"));
  WriteFile(U("upper_dir/f"), "x");
  MakeDirs(L(1, "tmp"));
  ASSERT_EQ(chmod(L(1, "tmp").c_str(), 01777), 0);
  WriteFile(L(1, "tmp/roots"), "x", 0666);
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* d : {"lower_dir", "upper_dir", ""}) {
    SCOPED_TRACE(d);
    std::string dir = M(d);
    std::string nf = dir + "/new", f = dir + "/f";
    EXPECT_EQ(AsNobody([&] { return Err(open(nf.c_str(), O_WRONLY | O_CREAT, 0644)); }),
              Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(mkdir(nf.c_str(), 0755)); }), Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(symlink("x", nf.c_str())); }), Errno{EACCES});
    EXPECT_EQ(AsNobody([&] { return Err(mkfifo(nf.c_str(), 0644)); }), Errno{EACCES});
    if (*d != '\0') {
      EXPECT_EQ(AsNobody([&] { return Err(unlink(f.c_str())); }), Errno{EACCES});
      EXPECT_EQ(AsNobody([&] { return Err(rename(f.c_str(), nf.c_str())); }), Errno{EACCES});
    }
  }
  // Positive control, and the sticky bit.
  std::string mine = M("tmp/mine"), roots = M("tmp/roots");
  EXPECT_EQ(AsNobody([&] { return Err(open(mine.c_str(), O_WRONLY | O_CREAT, 0644)); }), kOk);
  EXPECT_EQ(AsNobody([&] { return Err(unlink(roots.c_str())); }), Errno{EPERM});
  EXPECT_EQ(AsNobody([&] { return Err(rename(roots.c_str(), (roots + "2").c_str())); }),
            Errno{EPERM});
  EXPECT_EQ(AsNobody([&] { return Err(open(roots.c_str(), O_WRONLY)); }), kOk)
      << "0666 file in a sticky directory is writable";
  EXPECT_EQ(ListDir(M("lower_dir")), std::vector<std::string>{"f"});
  EXPECT_FALSE(Exists(U("lower_dir")));
}

TEST_F(ErrorsTest, UnprivilegedSearchWithoutExecuteIsEACCES) {
  MakeDirs(L(1, "private/sub"));
  WriteFile(L(1, "private/f"), "x");
  ASSERT_EQ(chmod(L(1, "private").c_str(), 0700), 0);
  MakeDirs(L(1, "listonly"));
  WriteFile(L(1, "listonly/f"), "x");
  ASSERT_EQ(chmod(L(1, "listonly").c_str(), 0744), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string f = M("private/f"), priv = M("private"), lf = M("listonly/f"), lo = M("listonly");
  EXPECT_EQ(AsNobody([&] {
              struct stat st;
              return Err(stat(f.c_str(), &st));
            }),
            Errno{EACCES});
  EXPECT_EQ(AsNobody([&] { return Err(open(priv.c_str(), O_RDONLY | O_DIRECTORY)); }),
            Errno{EACCES});
  EXPECT_EQ(AsNobody([&] { return Err(open(lo.c_str(), O_RDONLY | O_DIRECTORY)); }), kOk);
  EXPECT_EQ(AsNobody([&] { return Err(open(lf.c_str(), O_RDONLY)); }), Errno{EACCES});
}

// Group permissions use the caller's group; supplementary groups of root
// are dropped in the child.
TEST_F(ErrorsTest, GroupPermissions) {
  WriteFile(L(1, "group_file"), "g", 0660);
  Chown(L(1, "group_file"), 0, 2345);
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string path = M("group_file");
  EXPECT_EQ(Errno{RunAs(kNobody, 2345, [&] { return Err(open(path.c_str(), O_RDWR)).value; })},
            kOk);
  EXPECT_EQ(AsNobody([&] { return Err(open(path.c_str(), O_RDONLY)); }), Errno{EACCES});
}

// ------------------------------------------------------------------ EXDEV

// Every kind of directory can be renamed: lower (from either layer), merged
// across lowers, merged with the upper layer, opaque; never EXDEV.
TEST_F(ErrorsTest, DirectoryRenameIsNeverEXDEV) {
  MakeDirs(L(0, "in_lower0/x"));
  MakeDirs(L(1, "in_lower1/x"));
  MakeDirs(L(0, "across_lowers/a"));
  MakeDirs(L(1, "across_lowers/b"));
  MakeDirs(L(1, "with_upper/a"));
  MakeDirs(U("with_upper/b"));
  MakeDirs(L(1, "opaque/hidden"));
  MakeDirs(U("opaque/shown"));
  MakeOpaque(U("opaque"));
  MakeDirs(L(1, "parent/child/grandchild"));
  MakeDirs(L(0, "target_parent"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* d : {"in_lower0", "in_lower1", "across_lowers", "with_upper", "opaque"}) {
    std::string to = std::string(d) + "_renamed";
    EXPECT_EQ(Err(rename(M(d).c_str(), M(to).c_str())), kOk) << d;
    EXPECT_EQ(Err(rename(M(to).c_str(), M("target_parent/" + to).c_str())), kOk) << d;
  }
  EXPECT_EQ(Err(rename(M("parent/child").c_str(), M("target_parent/child").c_str())), kOk);
  EXPECT_EQ(ListDir(M("target_parent/across_lowers_renamed")),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ListDir(M("target_parent/with_upper_renamed")), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ListDir(M("target_parent/opaque_renamed")), std::vector<std::string>{"shown"});
  EXPECT_EQ(ListDir(M("target_parent/child")), std::vector<std::string>{"grandchild"});
  EXPECT_EQ(ListDir(M("parent")), std::vector<std::string>{});
}

// ------------------------------------------------------------------ ctime

class CtimeTest : public UnionFsTest {
 protected:
  // Runs op and checks that it moved the ctime of rel forward (and that the
  // ctime is not earlier than just before the operation).
  void ExpectCtimeBumped(const std::string& rel, const std::function<void()>& op,
                         const std::string& after_rel = "") {
    struct stat before = Lstat(M(rel));
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    op();
    struct stat after = Lstat(M(after_rel.empty() ? rel : after_rel));
    auto ns = [](const struct timespec& t) {
      return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
    };
    EXPECT_GT(ns(after.st_ctim), ns(before.st_ctim));
    // Coarse kernel clocks may lag the realtime clock by a tick.
    EXPECT_GE(ns(after.st_ctim), ns(now) - 20000000);
  }
};

TEST_F(CtimeTest, ChmodUpdatesCtime) {
  WriteFile(L(1, "lower"), "l");
  WriteFile(U("upper"), "u");
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* p : {"lower", "upper"}) {
    SCOPED_TRACE(p);
    ExpectCtimeBumped(p, [&] { ASSERT_EQ(chmod(M(p).c_str(), 0600), 0); });
  }
}

TEST_F(CtimeTest, ChownUpdatesCtime) {
  WriteFile(L(1, "lower"), "l");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectCtimeBumped("lower", [&] { ASSERT_EQ(chown(M("lower").c_str(), 1, 1), 0); });
}

TEST_F(CtimeTest, LinkUpdatesCtime) {
  WriteFile(L(1, "lower"), "l");
  WriteFile(U("upper"), "u");
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* p : {"lower", "upper"}) {
    SCOPED_TRACE(p);
    std::string to = std::string(p) + "_link";
    ExpectCtimeBumped(p, [&] { ASSERT_EQ(link(M(p).c_str(), M(to).c_str()), 0); });
  }
}

TEST_F(CtimeTest, RenameUpdatesCtime) {
  WriteFile(L(1, "lower"), "l");
  WriteFile(U("upper"), "u");
  MakeDirs(L(1, "lower_dir"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* p : {"lower", "upper", "lower_dir"}) {
    SCOPED_TRACE(p);
    std::string to = std::string(p) + "_renamed";
    ExpectCtimeBumped(
        p, [&] { ASSERT_EQ(rename(M(p).c_str(), M(to).c_str()), 0); }, to);
  }
}

TEST_F(CtimeTest, WriteTruncateAndSetxattrUpdateCtime) {
  WriteFile(L(1, "w"), "l");
  WriteFile(L(1, "t"), "l");
  WriteFile(L(1, "x"), "l");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectCtimeBumped("w", [&] { WriteFile(M("w"), "new"); });
  ExpectCtimeBumped("t", [&] { ASSERT_EQ(truncate(M("t").c_str(), 0), 0); });
  ExpectCtimeBumped("x", [&] { ASSERT_EQ(setxattr(M("x").c_str(), "user.a", "1", 1, 0), 0); });
}

TEST_F(CtimeTest, ReadingDoesNotChangeCtime) {
  WriteFile(L(1, "f"), "l");
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat before = Lstat(M("f"));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ReadFile(M("f"));
  GetXattr(M("f"), "user.none");
  struct stat after = Lstat(M("f"));
  EXPECT_EQ(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
  EXPECT_EQ(after.st_ctim.tv_nsec, before.st_ctim.tv_nsec);
}

TEST_F(CtimeTest, DirectoryMtimeAndCtimeOnCreateAndUnlink) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/old"), "x");
  SetTimes(L(1, "d"), 1000000000, 1000000000);
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Lstat(M("d")).st_mtim.tv_sec, 1000000000);
  ExpectCtimeBumped("d", [&] { WriteFile(M("d/new"), "n"); });
  EXPECT_GT(Lstat(M("d")).st_mtim.tv_sec, 1000000000);
  ExpectCtimeBumped("d", [&] { ASSERT_EQ(unlink(M("d/old").c_str()), 0); });
}

}  // namespace
}  // namespace overtier::it
