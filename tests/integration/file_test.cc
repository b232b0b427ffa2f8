// File I/O through the union: read/write, O_APPEND, truncate, fsync, mmap,
// fallocate, SEEK_DATA/SEEK_HOLE, copy_file_range, locks, statfs, and files
// that stay open after their last name is gone.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "harness.h"

namespace overtier::it {
namespace {

using FileTest = UnionFsTest;

std::string Pattern(size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

TEST_F(FileTest, ReadWriteAtOffsets) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(pwrite(fd.get(), "hello world", 11, 0), 11);
  ASSERT_EQ(pwrite(fd.get(), "W", 1, 6), 1);
  ASSERT_EQ(pwrite(fd.get(), "!", 1, 20), 1);  // leaves a gap of zeros
  EXPECT_EQ(Fstat(fd.get()).st_size, 21);
  std::string expected = "hello World";
  expected += std::string(9, '\0');
  expected += "!";
  EXPECT_EQ(ReadFd(fd.get()), expected);
  char buf[8];
  EXPECT_EQ(pread(fd.get(), buf, sizeof(buf), 21), 0) << "read at EOF";
  fd.reset();
  EXPECT_EQ(ReadFile(U("f")), expected);
}

// O_NOFOLLOW only matters for a final symlink; O_NOATIME (allowed to the
// owner and root) leaves the atime alone.
TEST_F(FileTest, OpenWithNoFollowAndNoAtime) {
  WriteFile(L(1, "lower"), "lower data");
  SetTimes(L(1, "lower"), 1000000000, 1000000000);
  MakeSymlink("lower", L(1, "link"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("upper"), "upper data");
  SetTimes(M("upper"), 1000000000, 1000000000);
  for (const char* p : {"lower", "upper"}) {
    SCOPED_TRACE(p);
    {
      Fd fd(open(M(p).c_str(), O_RDWR | O_NOFOLLOW | O_NOATIME));
      ASSERT_TRUE(fd.valid()) << strerror(errno);
      EXPECT_EQ(ReadFd(fd.get()).size(), 10u);
    }
    EXPECT_EQ(Lstat(M(p)).st_atim.tv_sec, 1000000000) << "O_NOATIME read moved the atime";
    Fd fd(open(M(p).c_str(), O_RDONLY | O_NOFOLLOW));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    EXPECT_EQ(ReadFd(fd.get()).size(), 10u);
  }
  EXPECT_EQ(Err(open(M("link").c_str(), O_RDONLY | O_NOFOLLOW)), Errno{ELOOP});
  Fd fd(open(M("link").c_str(), O_PATH | O_NOFOLLOW));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  EXPECT_TRUE(S_ISLNK(Fstat(fd.get()).st_mode));
}

// KERNEL BEHAVIOUR: reading a lower file never changes its atime (the kernel
// reads the lower file with O_NOATIME and cannot update a lower inode), even
// when relatime would; an upper file's atime follows relatime as usual.
TEST_F(FileTest, ReadingALowerFileLeavesItsAtime) {
  WriteFile(L(1, "f"), "lower data");
  SetTimes(L(1, "f"), 1000000000, 1000000000);  // atime <= mtime: relatime updates
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("f")), "lower data");
  EXPECT_EQ(Lstat(M("f")).st_atim.tv_sec, 1000000000);
  EXPECT_FALSE(Exists(U("f")));
}

// After the last descriptor is closed, the mtime shown through the mount is
// the one stored in the upper layer (so it does not change on a remount).
TEST_F(FileTest, MtimeShownIsTheStoredOne) {
  WriteFile(L(1, "lower"), "lower data");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("new"), "new data");
  {
    Fd fd(open(M("lower").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), " appended", 9), 9);
  }
  auto same = [](const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
  };
  std::vector<struct timespec> seen;
  for (const char* p : {"new", "lower"}) {
    struct stat m = Lstat(M(p)), u = Lstat(U(p));
    EXPECT_TRUE(same(m.st_mtim, u.st_mtim))
        << p << ": mount " << m.st_mtim.tv_sec << "." << m.st_mtim.tv_nsec << " upper "
        << u.st_mtim.tv_sec << "." << u.st_mtim.tv_nsec;
    seen.push_back(m.st_mtim);
  }
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_TRUE(same(Lstat(M("new")).st_mtim, seen[0]));
  EXPECT_TRUE(same(Lstat(M("lower")).st_mtim, seen[1]));
}

TEST_F(FileTest, LargeFileRoundTrip) {
  std::string lower = Pattern(3 << 20, 7);
  WriteFile(L(1, "big"), lower);
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(ReadFile(M("big")) == lower);
  std::string data = Pattern(16 << 20, 3);
  {
    Fd fd(open(M("big").c_str(), O_WRONLY | O_TRUNC));
    ASSERT_TRUE(fd.valid());
    size_t off = 0, step = 4093;
    while (off < data.size()) {
      size_t n = std::min(step, data.size() - off);
      ASSERT_EQ(write(fd.get(), data.data() + off, n), static_cast<ssize_t>(n));
      off += n;
      step = step * 3 % 200003 + 1;
    }
  }
  EXPECT_EQ(Lstat(M("big")).st_size, static_cast<off_t>(data.size()));
  EXPECT_TRUE(ReadFile(M("big")) == data);
  EXPECT_TRUE(ReadFile(U("big")) == data);
}

TEST_F(FileTest, AppendToLowerFile) {
  WriteFile(L(1, "log"), "line1\n");
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("log").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), "line2\n", 6), 6);
    ASSERT_EQ(pwrite(fd.get(), "line3\n", 6, 0), 6) << "pwrite ignores the offset with O_APPEND";
  }
  EXPECT_EQ(ReadFile(M("log")), "line1\nline2\nline3\n");
  EXPECT_EQ(ReadFile(U("log")), "line1\nline2\nline3\n");
}

TEST_F(FileTest, AppendFromTwoDescriptors) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("log"), "");
  Fd a(open(M("log").c_str(), O_WRONLY | O_APPEND));
  Fd b(open(M("log").c_str(), O_WRONLY | O_APPEND));
  ASSERT_TRUE(a.valid() && b.valid());
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(write(a.get(), "aa", 2), 2);
    ASSERT_EQ(write(b.get(), "bbb", 3), 3);
  }
  a.reset();
  b.reset();
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "aabbb";
  EXPECT_EQ(ReadFile(M("log")), expected);
}

TEST_F(FileTest, TruncateDownAndUp) {
  WriteFile(L(1, "f"), "0123456789");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(truncate(M("f").c_str(), 4), 0);
  EXPECT_EQ(ReadFile(M("f")), "0123");
  ASSERT_EQ(truncate(M("f").c_str(), 8), 0);
  EXPECT_EQ(ReadFile(M("f")), std::string("0123\0\0\0\0", 8));
  Fd fd(open(M("f").c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(ftruncate(fd.get(), 2), 0);
  EXPECT_EQ(Fstat(fd.get()).st_size, 2);
  ASSERT_EQ(ftruncate(fd.get(), 1 << 20), 0);
  EXPECT_EQ(Lstat(M("f")).st_size, 1 << 20);
  char c = 'x';
  ASSERT_EQ(pread(fd.get(), &c, 1, (1 << 20) - 1), 1);
  EXPECT_EQ(c, '\0');
  fd.reset();
  EXPECT_EQ(Lstat(U("f")).st_size, 1 << 20);
}

TEST_F(FileTest, FtruncateOfLowerFileOpenedForWrite) {
  WriteFile(L(1, "f"), "0123456789");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(ftruncate(fd.get(), 3), 0);
  EXPECT_EQ(ReadFd(fd.get()), "012");
  fd.reset();
  EXPECT_EQ(ReadFile(U("f")), "012");
}

TEST_F(FileTest, FsyncAndFdatasync) {
  WriteFile(L(1, "lower"), "l");
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd ro(open(M("lower").c_str(), O_RDONLY));
    ASSERT_TRUE(ro.valid());
    EXPECT_EQ(fsync(ro.get()), 0) << "fsync of a read-only lower file";
    EXPECT_EQ(fdatasync(ro.get()), 0);
  }
  Fd fd(open(M("new").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(write(fd.get(), "data", 4), 4);
  EXPECT_EQ(fsync(fd.get()), 0);
  EXPECT_EQ(fdatasync(fd.get()), 0);
  EXPECT_EQ(ReadFile(U("new")), "data");
  Fd rw(open(M("lower").c_str(), O_RDWR));
  ASSERT_TRUE(rw.valid());
  ASSERT_EQ(pwrite(rw.get(), "L", 1, 0), 1);
  EXPECT_EQ(fdatasync(rw.get()), 0);
  EXPECT_EQ(ReadFile(U("lower")), "L");
  Fd dir(open(M("").c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(dir.valid());
  EXPECT_EQ(fsync(dir.get()), 0) << "fsync of a directory";
  EXPECT_EQ(syncfs(dir.get()), 0);
}

TEST_F(FileTest, MmapSharedWriteOnUpperFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string data = Pattern(3 * 4096 + 100, 5);
  WriteFile(M("f"), data);
  {
    Fd fd(open(M("f").c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid());
    void* p = mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(p, MAP_FAILED) << strerror(errno);
    char* c = static_cast<char*>(p);
    EXPECT_EQ(std::memcmp(c, data.data(), data.size()), 0);
    std::memcpy(c + 4090, "MAPPED", 6);  // across a page boundary
    std::memcpy(c + data.size() - 3, "END", 3);
    ASSERT_EQ(msync(p, data.size(), MS_SYNC), 0);
    ASSERT_EQ(munmap(p, data.size()), 0);
    data.replace(4090, 6, "MAPPED");
    data.replace(data.size() - 3, 3, "END");
    EXPECT_TRUE(ReadFd(fd.get()) == data) << "read() after msync/munmap";
  }
  EXPECT_TRUE(ReadFile(M("f")) == data);
  EXPECT_TRUE(ReadFile(U("f")) == data);
}

// Opening a lower file O_RDWR copies it up, so a shared writable mapping
// writes to the upper copy.
TEST_F(FileTest, MmapSharedWriteOnLowerFile) {
  std::string data = Pattern(2 * 4096, 9);
  WriteFile(L(1, "f"), data);
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("f").c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid());
    EXPECT_TRUE(Exists(U("f")));
    void* p = mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(p, MAP_FAILED) << strerror(errno);
    char* c = static_cast<char*>(p);
    EXPECT_EQ(std::memcmp(c, data.data(), data.size()), 0);
    std::memcpy(c + 100, "through mmap", 12);
    ASSERT_EQ(msync(p, data.size(), MS_SYNC), 0);
    ASSERT_EQ(munmap(p, data.size()), 0);
  }
  data.replace(100, 12, "through mmap");
  EXPECT_TRUE(ReadFile(M("f")) == data);
  EXPECT_TRUE(ReadFile(U("f")) == data);
}

TEST_F(FileTest, MmapPrivateOfLowerFileDoesNotCopyUp) {
  std::string data = Pattern(4096, 2);
  WriteFile(L(1, "f"), data);
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  void* p = mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  std::memcpy(p, "private", 7);
  ASSERT_EQ(munmap(p, data.size()), 0);
  EXPECT_TRUE(ReadFd(fd.get()) == data);
  EXPECT_FALSE(Exists(U("f")));
  EXPECT_EQ(Err(reinterpret_cast<intptr_t>(
                mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0))),
            Errno{EACCES})
      << "shared writable mapping of a read-only descriptor";
}

TEST_F(FileTest, MmapAfterExtendingWithFtruncate) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(ftruncate(fd.get(), 8192), 0);
  void* p = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  std::memcpy(static_cast<char*>(p) + 8000, "tail", 4);
  ASSERT_EQ(msync(p, 8192, MS_SYNC), 0);
  ASSERT_EQ(munmap(p, 8192), 0);
  char buf[4];
  ASSERT_EQ(pread(fd.get(), buf, 4, 8000), 4);
  EXPECT_EQ(std::string(buf, 4), "tail");
}

TEST_F(FileTest, FallocateAndPunchHole) {
  std::string data = Pattern(256 << 10, 4);
  WriteFile(L(1, "f"), data);
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid());
  // Mode 0 beyond EOF extends the file.
  ASSERT_EQ(fallocate(fd.get(), 0, data.size(), 64 << 10), 0) << strerror(errno);
  EXPECT_EQ(Fstat(fd.get()).st_size, static_cast<off_t>(data.size() + (64 << 10)));
  // KEEP_SIZE allocates without changing the size.
  off_t size = Fstat(fd.get()).st_size;
  blkcnt_t before = Fstat(fd.get()).st_blocks;
  ASSERT_EQ(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, size, 1 << 20), 0);
  EXPECT_EQ(Fstat(fd.get()).st_size, size);
  EXPECT_GE(Fstat(fd.get()).st_blocks, before + (1 << 20) / 512);
  // PUNCH_HOLE zeroes the range and frees it.
  before = Fstat(fd.get()).st_blocks;
  ASSERT_EQ(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 << 10, 64 << 10), 0);
  EXPECT_EQ(Fstat(fd.get()).st_size, size);
  EXPECT_LE(Fstat(fd.get()).st_blocks, before - (64 << 10) / 512);
  data.replace(64 << 10, 64 << 10, std::string(64 << 10, '\0'));
  data += std::string(64 << 10, '\0');
  EXPECT_TRUE(ReadFd(fd.get()) == data);
  EXPECT_EQ(Err(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE, 0, 4096)), Errno{EOPNOTSUPP})
      << "PUNCH_HOLE requires KEEP_SIZE";
}

TEST_F(FileTest, SeekDataAndSeekHole) {
  // A sparse file in the lower layer (read without copy-up) and one made
  // through the mount: data at [0, 4) and [8 MiB, 8 MiB + 4).
  constexpr off_t kFar = 8 << 20;
  {
    Fd fd(open(L(1, "lower_sparse").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "data", 4, 0), 4);
    ASSERT_EQ(pwrite(fd.get(), "more", 4, kFar), 4);
  }
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("upper_sparse").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "data", 4, 0), 4);
    ASSERT_EQ(pwrite(fd.get(), "more", 4, kFar), 4);
    ASSERT_EQ(fsync(fd.get()), 0);
  }
  for (const char* name : {"lower_sparse", "upper_sparse"}) {
    SCOPED_TRACE(name);
    Fd fd(open(M(name).c_str(), O_RDONLY));
    ASSERT_TRUE(fd.valid());
    EXPECT_EQ(lseek(fd.get(), 0, SEEK_DATA), 0);
    off_t hole = lseek(fd.get(), 0, SEEK_HOLE);
    EXPECT_GE(hole, 4);
    EXPECT_LE(hole, 1 << 20) << "the 8 MiB hole is not reported";
    EXPECT_EQ(lseek(fd.get(), hole, SEEK_DATA), kFar);
    EXPECT_EQ(lseek(fd.get(), kFar, SEEK_HOLE), kFar + 4) << "EOF is a hole";
    EXPECT_EQ(Err(lseek(fd.get(), kFar + 4, SEEK_DATA)), Errno{ENXIO});
    EXPECT_EQ(Err(lseek(fd.get(), kFar + 100, SEEK_HOLE)), Errno{ENXIO});
  }
  EXPECT_FALSE(Exists(U("lower_sparse")));
}

TEST_F(FileTest, CopyFileRange) {
  std::string data = Pattern(300000, 8);
  WriteFile(L(1, "src"), data);
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd src(open(M("src").c_str(), O_RDONLY));
  Fd dst(open(M("dst").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(src.valid() && dst.valid());
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = copy_file_range(src.get(), nullptr, dst.get(), nullptr, data.size() - done, 0);
    ASSERT_GT(n, 0) << strerror(errno);
    done += static_cast<size_t>(n);
  }
  EXPECT_TRUE(ReadFd(dst.get()) == data);
  // With explicit offsets, into the middle of the destination.
  loff_t in_off = 1000, out_off = 5;
  ASSERT_EQ(copy_file_range(src.get(), &in_off, dst.get(), &out_off, 10, 0), 10);
  EXPECT_EQ(in_off, 1010);
  EXPECT_EQ(out_off, 15);
  data.replace(5, 10, data.substr(1000, 10));
  EXPECT_TRUE(ReadFd(dst.get()) == data);
  EXPECT_FALSE(Exists(U("src"))) << "reading the source must not copy it up";
  dst.reset();
  EXPECT_TRUE(ReadFile(U("dst")) == data);
}

TEST_F(FileTest, FlockBetweenProcesses) {
  WriteFile(L(1, "lower"), "l");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("upper"), "u");
  for (const char* name : {"lower", "upper"}) {
    SCOPED_TRACE(name);
    std::string path = M(name);
    Fd fd(open(path.c_str(), O_RDONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(flock(fd.get(), LOCK_EX), 0);
    auto try_lock = [&](int op) {
      return RunInChild([&] {
        int cfd = open(path.c_str(), O_RDONLY);
        if (cfd < 0) return -1;
        return flock(cfd, op | LOCK_NB) == 0 ? 0 : errno;
      });
    };
    EXPECT_EQ(try_lock(LOCK_EX), EWOULDBLOCK);
    EXPECT_EQ(try_lock(LOCK_SH), EWOULDBLOCK);
    ASSERT_EQ(flock(fd.get(), LOCK_SH), 0);  // downgrade
    EXPECT_EQ(try_lock(LOCK_SH), 0);
    EXPECT_EQ(try_lock(LOCK_EX), EWOULDBLOCK);
    ASSERT_EQ(flock(fd.get(), LOCK_UN), 0);
    EXPECT_EQ(try_lock(LOCK_EX), 0);
  }
  EXPECT_FALSE(Exists(U("lower")));
}

TEST_F(FileTest, PosixLocksBetweenProcesses) {
  WriteFile(L(1, "f"), std::string(1000, 'x'));
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string path = M("f");
  Fd fd(open(path.c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid());
  struct flock lk = {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = 0;
  lk.l_len = 100;
  ASSERT_EQ(fcntl(fd.get(), F_SETLK, &lk), 0);
  pid_t me = getpid();
  auto child = [&](short type, off_t start, off_t len, bool get) {
    return RunInChild([=] {
      int cfd = open(path.c_str(), O_RDWR);
      if (cfd < 0) return -1;
      struct flock l = {};
      l.l_type = type;
      l.l_whence = SEEK_SET;
      l.l_start = start;
      l.l_len = len;
      if (get) {
        if (fcntl(cfd, F_GETLK, &l) != 0) return -2;
        if (l.l_type == F_UNLCK) return 0;
        return l.l_pid == me && l.l_type == F_WRLCK && l.l_start == 0 && l.l_len == 100 ? 1 : -3;
      }
      return fcntl(cfd, F_SETLK, &l) == 0 ? 0 : errno;
    });
  };
  EXPECT_EQ(child(F_WRLCK, 50, 10, false), EAGAIN);
  EXPECT_EQ(child(F_RDLCK, 99, 1, false), EAGAIN);
  EXPECT_EQ(child(F_WRLCK, 100, 50, false), 0) << "adjacent range is free";
  EXPECT_EQ(child(F_WRLCK, 10, 10, true), 1) << "F_GETLK reports the holder";
  EXPECT_EQ(child(F_WRLCK, 200, 10, true), 0);
  lk.l_type = F_UNLCK;
  ASSERT_EQ(fcntl(fd.get(), F_SETLK, &lk), 0);
  EXPECT_EQ(child(F_WRLCK, 50, 10, false), 0);
}

TEST_F(FileTest, Statfs) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct statfs mfs, ufs;
  ASSERT_EQ(statfs(M("").c_str(), &mfs), 0);
  ASSERT_EQ(statfs(U().c_str(), &ufs), 0);
  if (IsKernel()) {
    EXPECT_EQ(static_cast<unsigned long>(mfs.f_type), 0x794c7630ul);  // OVERLAYFS_SUPER_MAGIC
  } else {
    EXPECT_EQ(static_cast<unsigned long>(mfs.f_type), 0x65735546ul);  // FUSE_SUPER_MAGIC
  }
  EXPECT_EQ(mfs.f_namelen, 255);
  // The space figures are those of the upper file system.
  EXPECT_EQ(static_cast<uint64_t>(mfs.f_blocks) * mfs.f_bsize,
            static_cast<uint64_t>(ufs.f_blocks) * ufs.f_bsize);
  double m_free = static_cast<double>(mfs.f_bavail) * mfs.f_bsize;
  double u_free = static_cast<double>(ufs.f_bavail) * ufs.f_bsize;
  EXPECT_NEAR(m_free, u_free, 256.0 * 1024 * 1024);
  EXPECT_EQ(mfs.f_files, ufs.f_files);
  struct statvfs vfs;
  ASSERT_EQ(statvfs(M("").c_str(), &vfs), 0);
  EXPECT_EQ(vfs.f_flag & ST_RDONLY, 0u);
}

TEST_F(FileTest, StatfsOfReadOnlyUnion) {
  WriteFile(L(1, "f"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount(MountConfig::ReadOnly()));
  struct statvfs vfs;
  ASSERT_EQ(statvfs(M("").c_str(), &vfs), 0);
  EXPECT_NE(vfs.f_flag & ST_RDONLY, 0u) << "a union without upper layer is a read-only mount";
  EXPECT_EQ(vfs.f_namemax, 255u);
}

// A file unlinked while open: fstat shows st_nlink 0, and the data can still
// be read and written through the descriptor.
// chattr(1) and lsattr(1): the flags of the real object (upper, else
// lower) read; set flags copy the object up and hold against every change
// as on any file system: an immutable file can be neither written,
// removed, renamed nor chmod'ed, an append-only one only appended to, an
// immutable directory gets no new entries. The kernel overlayfs gives the
// same answers (it keeps the flags in trusted.overlay.protattr, overtier
// on the upper object itself).
TEST_F(FileTest, ChattrAndLsattr) {
  WriteFile(L(1, "f"), "one");
  WriteFile(L(1, "g"), "two");
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  auto flags = [&](const std::string& p) {
    Fd fd(open(p.c_str(), O_RDONLY | O_NONBLOCK));
    int f = -1;
    EXPECT_TRUE(fd.valid()) << p;
    EXPECT_EQ(ioctl(fd.get(), FS_IOC_GETFLAGS, &f), 0) << p << ": " << strerror(errno);
    return f;
  };
  auto append = [&](const std::string& p) {
    Fd fd(open(p.c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid()) << p << ": " << strerror(errno);
    ASSERT_EQ(write(fd.get(), "+", 1), 1);
  };
  auto set = [&](const std::string& p, int f) {
    Fd fd(open(p.c_str(), O_RDONLY | O_NONBLOCK));
    return fd.valid() && ioctl(fd.get(), FS_IOC_SETFLAGS, &f) == 0 ? 0 : errno;
  };
  const int plain = flags(L(1, "f"));
  EXPECT_EQ(flags(M("f")), plain) << "the lower file's own flags";
  EXPECT_EQ(flags(M("d")), flags(L(1, "d")));

  ASSERT_EQ(set(M("f"), plain | FS_IMMUTABLE_FL), 0);
  EXPECT_EQ(flags(M("f")) & FS_IMMUTABLE_FL, FS_IMMUTABLE_FL);
  EXPECT_EQ(Err(open(M("f").c_str(), O_WRONLY | O_APPEND)), Errno{EPERM});
  EXPECT_EQ(Err(unlink(M("f").c_str())), Errno{EPERM});
  EXPECT_EQ(Err(rename(M("f").c_str(), M("f2").c_str())), Errno{EPERM});
  EXPECT_EQ(Err(chmod(M("f").c_str(), 0600)), Errno{EPERM});
  ASSERT_EQ(set(M("f"), plain), 0);
  ASSERT_NO_FATAL_FAILURE(append(M("f")));
  EXPECT_EQ(ReadFile(M("f")), "one+");

  ASSERT_EQ(set(M("g"), plain | FS_APPEND_FL), 0);
  EXPECT_EQ(Err(open(M("g").c_str(), O_WRONLY | O_TRUNC)), Errno{EPERM});
  ASSERT_NO_FATAL_FAILURE(append(M("g")));
  ASSERT_EQ(set(M("g"), plain), 0);
  EXPECT_EQ(ReadFile(M("g")), "two+");

  const int dflags = flags(M("d"));
  ASSERT_EQ(set(M("d"), dflags | FS_IMMUTABLE_FL), 0);
  EXPECT_EQ(Err(mkdir(M("d/new").c_str(), 0755)), Errno{EPERM});
  ASSERT_EQ(set(M("d"), dflags), 0);
  ASSERT_EQ(mkdir(M("d/new").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ReadFile(M("f")), "one+");
  EXPECT_EQ(flags(M("f")) & (FS_IMMUTABLE_FL | FS_APPEND_FL), 0);
}

TEST_F(FileTest, UnlinkedButOpenUpperFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("f"), "before");
  Fd fd(open(M("f").c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  EXPECT_FALSE(Exists(M("f")));
  EXPECT_FALSE(Exists(U("f")));
  EXPECT_EQ(Fstat(fd.get()).st_nlink, 0u);
  EXPECT_EQ(ReadFd(fd.get()), "before");
  ASSERT_EQ(pwrite(fd.get(), " and after", 10, 6), 10);
  EXPECT_EQ(ReadFd(fd.get()), "before and after");
  EXPECT_EQ(Fstat(fd.get()).st_size, 16);
  EXPECT_EQ(fchmod(fd.get(), 0600), 0);
  EXPECT_EQ(Fstat(fd.get()).st_mode & 07777, 0600u);
  EXPECT_EQ(ftruncate(fd.get(), 6), 0);
  EXPECT_EQ(ReadFd(fd.get()), "before");
  // A new file of the same name is a different object.
  WriteFile(M("f"), "new");
  EXPECT_EQ(ReadFd(fd.get()), "before");
  EXPECT_NE(Lstat(M("f")).st_ino, Fstat(fd.get()).st_ino);
}

TEST_F(FileTest, UnlinkedButOpenLowerFileOpenedForWrite) {
  WriteFile(L(1, "f"), "lower");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  EXPECT_TRUE(IsWhiteout(U("f")));
  EXPECT_EQ(Fstat(fd.get()).st_nlink, 0u);
  ASSERT_EQ(pwrite(fd.get(), "L", 1, 0), 1);
  EXPECT_EQ(ReadFd(fd.get()), "Lower");
}

// A lower file opened read-only and then unlinked. KERNEL BEHAVIOUR: the
// descriptor refers to the lower file, which keeps its link in the lower
// layer, so fstat still shows st_nlink 1 (not 0) and the data stays readable.
TEST_F(FileTest, UnlinkedButOpenLowerFileOpenedReadOnly) {
  WriteFile(L(1, "f"), "lower");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd(open(M("f").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  EXPECT_FALSE(Exists(M("f")));
  EXPECT_EQ(Fstat(fd.get()).st_nlink, 1u);
  EXPECT_EQ(ReadFd(fd.get()), "lower");
}

}  // namespace
}  // namespace overtier::it
