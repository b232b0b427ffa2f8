// Copy-up: every modification of a lower file first copies it to the upper
// layer with its data, mode, owner, times and xattrs; the lower layer is
// never touched (the fixture checks that for every test).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "harness.h"

namespace overtier::it {
namespace {

constexpr char kContent[] = "lower content\n";
constexpr time_t kAtime = 1000000000;
constexpr time_t kMtime = 1000000100;
constexpr uid_t kUid = 1234;
constexpr gid_t kGid = 2345;

class CopyUpTest : public UnionFsTest {
 protected:
  // A lower file with distinctive metadata: mode 0640, owner 1234:2345,
  // two user xattrs (one empty), atime/mtime in 2001.
  void MakeRichFile(const std::string& path) {
    WriteFile(path, kContent, 0640);
    Chown(path, kUid, kGid);
    SetXattr(path, "user.color", "blue");
    SetXattr(path, "user.empty", "");
    SetTimes(path, kAtime, kMtime);
  }

  struct Expected {
    mode_t mode = 0640;
    uid_t uid = kUid;
    gid_t gid = kGid;
    bool check_mtime = true;
    time_t mtime = kMtime;
    std::vector<std::string> user_xattrs = {"user.color", "user.empty"};
  };

  // path is checked both in the upper layer and through the mount.
  void ExpectCopiedUp(const std::string& rel, const Expected& e) {
    for (const std::string& p : {U(rel), M(rel)}) {
      SCOPED_TRACE(p);
      struct stat st = Lstat(p);
      EXPECT_TRUE(S_ISREG(st.st_mode));
      EXPECT_EQ(st.st_mode & 07777, e.mode);
      EXPECT_EQ(st.st_uid, e.uid);
      EXPECT_EQ(st.st_gid, e.gid);
      if (e.check_mtime) {
        EXPECT_EQ(st.st_mtim.tv_sec, e.mtime);
      }
      std::vector<std::string> user;
      for (const auto& n : ListXattrs(p)) {
        // Implementation bookkeeping in the upper layer is not the user's.
        if (n.starts_with("user.overlay.") || n.starts_with("user.overtier.") ||
            n.starts_with("user.fuseoverlayfs.")) {
          continue;
        }
        if (n.starts_with("user.")) user.push_back(n);
      }
      EXPECT_EQ(user, e.user_xattrs);
      if (std::find(user.begin(), user.end(), "user.color") != user.end()) {
        EXPECT_EQ(GetXattr(p, "user.color"), "blue");
      }
    }
  }

  // Nothing at all was created in the upper layer.
  void ExpectUpperEmpty() { EXPECT_EQ(ListDir(U()), std::vector<std::string>{}); }
};

TEST_F(CopyUpTest, WriteCopiesUpData) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("f").c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "L", 1, 0), 1);
  }
  EXPECT_EQ(ReadFile(U("f")), "Lower content\n");
  EXPECT_EQ(ReadFile(M("f")), "Lower content\n");
  Expected e;
  e.check_mtime = false;  // the write changed it
  ExpectCopiedUp("f", e);
}

TEST_F(CopyUpTest, OpenForWriteAloneCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_FALSE(Exists(U("f")));
  {
    Fd fd(open(M("f").c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    EXPECT_TRUE(Exists(U("f"))) << "copy-up happens at open for write";
  }
  EXPECT_EQ(Lstat(U("f")).st_atim.tv_sec, kAtime);  // before anything reads it
  ExpectCopiedUp("f", {});
  EXPECT_EQ(ReadFile(U("f")), kContent);
}

TEST_F(CopyUpTest, OpenReadWriteCopiesUp) {
  MakeRichFile(L(0, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("f").c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid());
    EXPECT_EQ(ReadFd(fd.get()), kContent);
  }
  ExpectCopiedUp("f", {});
  EXPECT_EQ(ReadFile(U("f")), kContent);
}

TEST_F(CopyUpTest, ReadOnlyAccessDoesNotCopyUp) {
  MakeRichFile(L(1, "f"));
  MakeDirs(L(1, "d"));
  MakeSymlink("f", L(1, "link"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("f")), kContent);
  Lstat(M("f"));
  Lstat(M("d"));
  EXPECT_EQ(GetXattr(M("f"), "user.color"), "blue");
  ListXattrs(M("f"));
  EXPECT_EQ(access(M("f").c_str(), R_OK | W_OK), 0);
  char buf[16];
  EXPECT_EQ(readlink(M("link").c_str(), buf, sizeof(buf)), 1);
  ListDir(M("d"));
  ExpectUpperEmpty();
}

TEST_F(CopyUpTest, TruncateCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(truncate(M("f").c_str(), 5), 0);
  Expected e;
  e.check_mtime = false;
  ExpectCopiedUp("f", e);
  EXPECT_EQ(ReadFile(U("f")), "lower");
  EXPECT_EQ(ReadFile(M("f")), "lower");
}

TEST_F(CopyUpTest, OpenWithTruncCopiesUpEmptyFile) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  { Fd fd(open(M("f").c_str(), O_WRONLY | O_TRUNC)); }
  Expected e;
  e.check_mtime = false;
  ExpectCopiedUp("f", e);
  EXPECT_EQ(Lstat(U("f")).st_size, 0);
  EXPECT_EQ(ReadFile(M("f")), "");
}

TEST_F(CopyUpTest, ChmodCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(chmod(M("f").c_str(), 0604), 0);
  Expected e;
  e.mode = 0604;
  ExpectCopiedUp("f", e);
  EXPECT_EQ(ReadFile(M("f")), kContent);
}

TEST_F(CopyUpTest, ChownCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(chown(M("f").c_str(), 4321, 5432), 0);
  Expected e;
  e.uid = 4321;
  e.gid = 5432;
  ExpectCopiedUp("f", e);
  EXPECT_EQ(ReadFile(M("f")), kContent);
}

TEST_F(CopyUpTest, UtimesCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct timespec ts[2] = {{1200000000, 0}, {1300000000, 500}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("f").c_str(), ts, 0), 0);
  Expected e;
  e.mtime = 1300000000;
  ExpectCopiedUp("f", e);
  EXPECT_EQ(Lstat(M("f")).st_mtim.tv_nsec, 500);
  EXPECT_EQ(Lstat(M("f")).st_atim.tv_sec, 1200000000);
  EXPECT_EQ(ReadFile(M("f")), kContent);
}

TEST_F(CopyUpTest, SetxattrCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(setxattr(M("f").c_str(), "user.added", "v", 1, 0), 0);
  Expected e;
  e.user_xattrs = {"user.added", "user.color", "user.empty"};
  ExpectCopiedUp("f", e);
  EXPECT_EQ(GetXattr(U("f"), "user.added"), "v");
  EXPECT_EQ(GetXattr(U("f"), "user.empty"), "");
  EXPECT_EQ(ReadFile(M("f")), kContent);
}

TEST_F(CopyUpTest, RemovexattrCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(removexattr(M("f").c_str(), "user.color"), 0);
  Expected e;
  e.user_xattrs = {"user.empty"};
  ExpectCopiedUp("f", e);
  EXPECT_EQ(GetXattr(L(1, "f"), "user.color"), "blue");
}

TEST_F(CopyUpTest, LinkCopiesUp) {
  MakeRichFile(L(1, "f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(link(M("f").c_str(), M("g").c_str()), 0);
  ExpectCopiedUp("f", {});
  EXPECT_EQ(Lstat(U("f")).st_ino, Lstat(U("g")).st_ino);
  EXPECT_EQ(Lstat(M("f")).st_ino, Lstat(M("g")).st_ino);
  EXPECT_EQ(Lstat(M("g")).st_nlink, 2u);
  EXPECT_EQ(ReadFile(M("g")), kContent);
}

// The parents of a copied-up file are created in the upper layer with the
// mode, owner and xattrs of the (top-most) lower directory.
TEST_F(CopyUpTest, CopyUpCreatesParentsWithLowerAttributes) {
  MakeDirs(L(1, "a/b"));
  MakeDirs(L(0, "a"));
  ASSERT_EQ(chmod(L(1, "a").c_str(), 0755), 0);
  ASSERT_EQ(chmod(L(0, "a").c_str(), 0751), 0);  // top-most lower wins
  Chown(L(0, "a"), 1111, 2222);
  SetXattr(L(0, "a"), "user.dir", "a0");
  ASSERT_EQ(chmod(L(1, "a/b").c_str(), 0705), 0);
  Chown(L(1, "a/b"), kUid, kGid);
  SetXattr(L(1, "a/b"), "user.dir", "b1");
  MakeRichFile(L(1, "a/b/f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Lstat(M("a")).st_mode & 07777, 0751u);
  ASSERT_EQ(chmod(M("a/b/f").c_str(), 0600), 0);
  struct stat a = Lstat(U("a"));
  EXPECT_TRUE(S_ISDIR(a.st_mode));
  EXPECT_EQ(a.st_mode & 07777, 0751u);
  EXPECT_EQ(a.st_uid, 1111u);
  EXPECT_EQ(a.st_gid, 2222u);
  EXPECT_EQ(GetXattr(U("a"), "user.dir"), "a0");
  struct stat b = Lstat(U("a/b"));
  EXPECT_EQ(b.st_mode & 07777, 0705u);
  EXPECT_EQ(b.st_uid, kUid);
  EXPECT_EQ(GetXattr(U("a/b"), "user.dir"), "b1");
  EXPECT_EQ(GetXattr(M("a/b"), "user.dir"), "b1");
  Expected e;
  e.mode = 0600;
  ExpectCopiedUp("a/b/f", e);
}

TEST_F(CopyUpTest, CopyUpOfUnreadableFileAsRoot) {
  WriteFile(L(1, "secret"), "s3cret", 0000);
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("secret").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), "!", 1), 1);
  }
  EXPECT_EQ(Lstat(U("secret")).st_mode & 07777, 0u);
  EXPECT_EQ(ReadFile(M("secret")), "s3cret!");
}

TEST_F(CopyUpTest, CopyUpOfEmptyFile) {
  WriteFile(L(1, "empty"), "", 0644);
  ASSERT_NO_FATAL_FAILURE(Mount());
  { Fd fd(open(M("empty").c_str(), O_RDWR)); }
  EXPECT_TRUE(S_ISREG(Lstat(U("empty")).st_mode));
  EXPECT_EQ(Lstat(M("empty")).st_size, 0);
}

// chmod of a large lower file copies up metadata only: the upper file holds
// no data until the first write (kernel: metacopy=on; overtier: always).
TEST_F(CopyUpTest, MetadataOnlyCopyUpOfBigFile) {
  std::string big(8 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  WriteFile(L(1, "big"), big, 0644);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(chmod(M("big").c_str(), 0600), 0);
  struct stat up = Lstat(U("big"));
  EXPECT_EQ(up.st_mode & 07777, 0600u);
  // st_blocks may count one block of xattrs (ext4 with small inodes).
  EXPECT_LT(up.st_blocks * 512, 64 * 1024) << "chmod copied the data";
  EXPECT_EQ(Lstat(M("big")).st_size, static_cast<off_t>(big.size()));
  if (IsKernel()) {
    // The kernel marks such a file with trusted.overlay.metacopy (empty).
    EXPECT_EQ(GetXattr(U("big"), "trusted.overlay.metacopy"), "");
  }
  EXPECT_TRUE(ReadFile(M("big")) == big) << "content through the mount differs";
  // Reading did not copy the data either.
  EXPECT_LT(Lstat(U("big")).st_blocks * 512, 64 * 1024);
  // The first write copies the data up.
  {
    Fd fd(open(M("big").c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "XYZ", 3, 4 << 20), 3);
  }
  big.replace(4 << 20, 3, "XYZ");
  EXPECT_TRUE(ReadFile(M("big")) == big);
  EXPECT_TRUE(ReadFile(U("big")) == big) << "upper file lacks the data after a write";
  if (IsKernel()) {
    EXPECT_EQ(GetXattr(U("big"), "trusted.overlay.metacopy"), std::nullopt);
  }
}

// The kernel copies sparse files up sparsely: it skips holes with
// SEEK_DATA/SEEK_HOLE, at the granularity of its 1 MiB copy chunks (here the
// upper file gets 1 MiB + 4 KiB allocated for a 64 MiB file with two 4-byte
// extents).
TEST_F(CopyUpTest, DataCopyUpKeepsHoles) {
  {
    Fd fd(open(L(1, "sparse").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "head", 4, 0), 4);
    ASSERT_EQ(pwrite(fd.get(), "tail", 4, 64 << 20), 4);
  }
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("sparse").c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "HEAD", 4, 0), 4);
    ASSERT_EQ(fsync(fd.get()), 0);
  }
  struct stat up = Lstat(U("sparse"));
  EXPECT_EQ(up.st_size, (64 << 20) + 4);
  EXPECT_LT(up.st_blocks * 512, 4 << 20) << "holes were filled by the copy-up";
  Fd fd(open(M("sparse").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  char buf[4];
  ASSERT_EQ(pread(fd.get(), buf, 4, 64 << 20), 4);
  EXPECT_EQ(std::string(buf, 4), "tail");
  ASSERT_EQ(pread(fd.get(), buf, 4, 0), 4);
  EXPECT_EQ(std::string(buf, 4), "HEAD");
}

// A descriptor opened read-only on a lower file before a copy-up (caused by
// another descriptor opened for write) sees the data written after the
// copy-up. KERNEL BEHAVIOUR: since Linux 4.19 overlayfs re-opens the real
// file when the inode was copied up after the open (ovl_real_fdget), so the
// old descriptor follows the copy-up; it does NOT keep reading the lower
// file. (For a FUSE file system the shared page cache of the inode gives the
// same result.) docs/DESIGN.md says the opposite; the kernel is the
// reference here.
// An old upper layer used as a lower one, holding a file an overtier mount
// had released: the archive mark, and holes where the data was. Its bytes
// are in that mount's store: a read and a copy-up are EIO, never the
// zeros of the holes (which a copy-up would make the user's). A marked
// file without holes (a stale mark) and a sparse file without a mark read
// as they are.
TEST_F(CopyUpTest, ALowerFileReleasedByAnotherMountIsEio) {
  if (IsKernel()) GTEST_SKIP() << "the kernel overlayfs knows nothing of the migration tier";
  const std::string mark(16, '\x5a');
  const std::string data(1 << 20, 'd');
  auto released = [&](const std::string& name) {
    WriteFile(L(1, name), data);
    Fd fd(open(L(1, name).c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 512 << 10), 0);
    ASSERT_EQ(fsetxattr(fd.get(), "user.overtier.archive", mark.data(), mark.size(), 0), 0);
  };
  ASSERT_NO_FATAL_FAILURE(released("gone"));
  ASSERT_NO_FATAL_FAILURE(released("gone2"));
  WriteFile(L(1, "stale"), data);
  ASSERT_EQ(setxattr(L(1, "stale").c_str(), "user.overtier.archive", mark.data(), mark.size(), 0),
            0);
  WriteFile(L(1, "sparse"), "");
  ASSERT_EQ(truncate(L(1, "sparse").c_str(), 1 << 20), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());

  EXPECT_EQ(Err(open(M("gone").c_str(), O_RDONLY)), Errno{EIO});
  EXPECT_EQ(Err(open(M("gone").c_str(), O_WRONLY | O_APPEND)), Errno{EIO});
  EXPECT_FALSE(Exists(U("gone"))) << "no copy-up of zeros";
  // A metadata-only copy, then its data: the copy of the data fails.
  ASSERT_EQ(chmod(M("gone2").c_str(), 0600), 0);
  EXPECT_EQ(Err(open(M("gone2").c_str(), O_RDONLY)), Errno{EIO});
  EXPECT_EQ(Err(open(M("gone2").c_str(), O_RDWR)), Errno{EIO});
  EXPECT_EQ(Lstat(M("gone2")).st_size, static_cast<off_t>(data.size())) << "stat still answers";

  EXPECT_TRUE(ReadFile(M("stale")) == data);
  EXPECT_TRUE(ReadFile(M("sparse")) == std::string(1 << 20, '\0'));
  ASSERT_EQ(truncate(M("sparse").c_str(), 4096), 0);
  EXPECT_EQ(Lstat(U("sparse")).st_size, 4096);
}

// A copy-up adds entries to upper directories the user never changed: the
// parent's (and, for a chain, every ancestor's) mtime stays as it was, as
// in the kernel overlayfs; so do the file's own times when a metadata-only
// copy gets its data (the kernel stamps the copy there: overtier keeps the
// user's times, docs/SEMANTICS.md), and when a hard link of a
// metadata-only copy (which gets its data first) is made.
TEST_F(CopyUpTest, CopyUpKeepsTheTimesOfTheParentAndTheFile) {
  MakeDirs(L(1, "a/b"));
  WriteFile(L(1, "a/b/f"), "data");
  WriteFile(L(1, "a/g"), "g data");
  ASSERT_NO_FATAL_FAILURE(Mount());
  const struct timespec t[2] = {{1000000000, 0}, {1300000000, 5}};
  for (const char* p : {"a", "a/b", "a/b/f", "a/g"}) {
    ASSERT_EQ(utimensat(AT_FDCWD, M(p).c_str(), t, 0), 0) << p;
  }
  auto mtime = [&](const char* p) { return Lstat(M(p)).st_mtim.tv_sec; };
  ASSERT_EQ(chmod(M("a/b/f").c_str(), 0600), 0);  // metadata only
  EXPECT_EQ(mtime("a"), 1300000000);
  EXPECT_EQ(mtime("a/b"), 1300000000);
  ASSERT_EQ(link(M("a/g").c_str(), M("a/g2").c_str()), 0);
  EXPECT_EQ(mtime("a/g"), 1300000000);
  EXPECT_NE(mtime("a"), 1300000000) << "a/g2 is the user's new entry";
  if (!IsKernel()) {
    Fd w(open(M("a/b/f").c_str(), O_WRONLY));  // the data comes up, unchanged
    ASSERT_TRUE(w.valid());
    w.reset();
    EXPECT_EQ(mtime("a/b/f"), 1300000000);
  }
  EXPECT_EQ(mtime("a/b"), 1300000000);
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(mtime("a/b"), 1300000000);
  EXPECT_EQ(mtime("a/b/f"), 1300000000);
  EXPECT_EQ(mtime("a/g"), 1300000000);
}

TEST_F(CopyUpTest, ReadOnlyFdOpenedBeforeCopyUpSeesNewData) {
  WriteFile(L(1, "f"), "LOWER DATA");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd ro(open(M("f").c_str(), O_RDONLY));
  ASSERT_TRUE(ro.valid());
  char buf[32];
  ASSERT_EQ(pread(ro.get(), buf, 5, 0), 5);  // read before the copy-up
  ino_t ino = Fstat(ro.get()).st_ino;
  {
    Fd wr(open(M("f").c_str(), O_WRONLY));
    ASSERT_TRUE(wr.valid());
    ASSERT_EQ(pwrite(wr.get(), "upper", 5, 0), 5);
  }
  ASSERT_TRUE(Exists(U("f")));
  EXPECT_EQ(ReadFd(ro.get()), "upper DATA");
  EXPECT_EQ(Fstat(ro.get()).st_ino, ino);
  EXPECT_EQ(Fstat(ro.get()).st_size, 10);
}

// Several processes opening the same lower file for write at once all end
// up writing into one upper copy.
TEST_F(CopyUpTest, ConcurrentCopyUpsOfOneFile) {
  WriteFile(L(1, "f"), std::string(64, '.'));
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string path = M("f");
  std::vector<pid_t> kids;
  for (int i = 0; i < 8; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(30);
      int fd = open(path.c_str(), O_RDWR);
      if (fd < 0) _exit(1);
      char c = static_cast<char>('0' + i);
      if (pwrite(fd, &c, 1, i * 8) != 1) _exit(2);
      _exit(close(fd) == 0 ? 0 : 3);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  std::string expected(64, '.');
  for (int i = 0; i < 8; ++i) expected[i * 8] = static_cast<char>('0' + i);
  EXPECT_EQ(ReadFile(M("f")), expected);
  EXPECT_EQ(ReadFile(U("f")), expected);
}

// Copy-up of a directory (by creating something in it) keeps its
// attributes, and the directory stays merged.
TEST_F(CopyUpTest, DirectoryCopyUpKeepsAttributesAndStaysMerged) {
  MakeDirs(L(1, "d"));
  ASSERT_EQ(chmod(L(1, "d").c_str(), 0750), 0);
  Chown(L(1, "d"), kUid, kGid);
  SetXattr(L(1, "d"), "user.d", "1");
  WriteFile(L(1, "d/old"), "o");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/new"), "n");
  struct stat st = Lstat(U("d"));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, kUid);
  EXPECT_EQ(st.st_gid, kGid);
  EXPECT_EQ(GetXattr(U("d"), "user.d"), "1");
  EXPECT_EQ(GetXattr(U("d"), "trusted.overlay.opaque"), std::nullopt);
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{"new", "old"}));
  EXPECT_FALSE(Exists(U("d/old")));
}

// An upper layer reused as a lower one (a LiveCD's saved session under the
// next one, an image made of a container's upper directory): its
// metadata-only copies get their data from the layers below, its renamed
// directories still merge with what they were renamed from, as the kernel
// overlayfs does with metacopy=on. Reading them as plain files would show
// holes (zeros) and lose the untouched entries of renamed directories.
TEST_F(CopyUpTest, AnUpperLayerReusedAsALowerOneKeepsItsMetadataOnlyCopies) {
  // Large enough that its data, copied, would not pass for a block of xattrs.
  std::string fdata(256 << 10, '\0');
  for (size_t i = 0; i < fdata.size(); ++i) fdata[i] = static_cast<char>('a' + (i * 31) % 26);
  WriteFile(L(1, "f"), fdata, 0644);
  ASSERT_EQ(mkdir(L(1, "d").c_str(), 0755), 0);
  WriteFile(L(1, "d/g"), "g, renamed in d", 0644);
  WriteFile(L(1, "d/h"), "h, untouched in d", 0644);
  WriteFile(L(1, "r"), "r, renamed", 0644);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(chmod(M("f").c_str(), 0600), 0);
  ASSERT_EQ(rename(M("d/g").c_str(), M("d/g2").c_str()), 0);
  ASSERT_EQ(rename(M("d").c_str(), M("d2").c_str()), 0);
  ASSERT_EQ(rename(M("r").c_str(), M("r2").c_str()), 0);
  const TreeSnapshot before = SnapshotTree(M());
  Unmount();
  ASSERT_EQ(GetXattr(U("f"), "trusted.overlay.metacopy"), "") << "not a metadata-only copy";
  ASSERT_LT(Lstat(U("f")).st_blocks * 512, 64 << 10) << "not a metadata-only copy";

  // The session's upper and work directories become the top lower layer
  // under a fresh upper.
  const std::string saved = base() + "/saved-upper";
  ASSERT_EQ(rename(U().c_str(), saved.c_str()), 0);
  ASSERT_EQ(rename(work().c_str(), (base() + "/saved-work").c_str()), 0);
  ASSERT_EQ(mkdir(U().c_str(), 0755), 0);
  ASSERT_EQ(mkdir(work().c_str(), 0755), 0);
  MountConfig cfg;
  cfg.overtier_lowerdir = saved + ":" + L(0) + ":" + L(1);
  ASSERT_NO_FATAL_FAILURE(Mount(cfg));
  EXPECT_EQ(DiffTrees(before, "the session", SnapshotTree(M()), "stacked"), "");
  EXPECT_TRUE(ReadFile(M("f")) == fdata) << "the data of the metadata-only copy differs";
  EXPECT_EQ(Lstat(M("f")).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(M("d2/g2")), "g, renamed in d");
  EXPECT_EQ(ReadFile(M("d2/h")), "h, untouched in d");
  EXPECT_EQ(ReadFile(M("r2")), "r, renamed");
  struct stat st;
  EXPECT_NE(lstat(M("d").c_str(), &st), 0) << "the session's whiteout of d does not hide it";

  // Writing copies the data up from the bottom layer, the metadata from
  // the metadata-only copy; renaming again keeps both reachable.
  {
    Fd fd(open(M("f").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    ASSERT_EQ(write(fd.get(), "+", 1), 1);
  }
  ASSERT_EQ(chmod(M("r2").c_str(), 0640), 0);
  ASSERT_EQ(rename(M("d2").c_str(), M("d3").c_str()), 0);
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "mounted" : "remounted");
    EXPECT_TRUE(ReadFile(M("f")) == fdata + "+");
    EXPECT_EQ(Lstat(M("f")).st_mode & 07777, 0600u);
    EXPECT_TRUE(ReadFile(U("f")) == fdata + "+") << "the upper copy lacks the data";
    EXPECT_EQ(ReadFile(M("r2")), "r, renamed");
    EXPECT_EQ(Lstat(M("r2")).st_mode & 07777, 0640u);
    EXPECT_EQ(ReadFile(M("d3/g2")), "g, renamed in d");
    EXPECT_EQ(ReadFile(M("d3/h")), "h, untouched in d");
    EXPECT_EQ(ListDir(M("d3")), (std::vector<std::string>{"g2", "h"}));
    if (pass == 0) {
      ASSERT_NO_FATAL_FAILURE(Remount());
    }
  }
}

}  // namespace
}  // namespace overtier::it
