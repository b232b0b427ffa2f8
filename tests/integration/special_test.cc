// Special files through the union: FIFOs, sockets, device nodes, symlinks
// (including symlinks that point out of the layers, which the file system
// itself must never follow).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "harness.h"

namespace overtier::it {
namespace {

using SpecialTest = UnionFsTest;

TEST_F(SpecialTest, FifoMadeThroughMountCarriesData) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mkfifo(M("fifo").c_str(), 0640), 0);
  EXPECT_TRUE(S_ISFIFO(Lstat(M("fifo")).st_mode));
  EXPECT_EQ(Lstat(M("fifo")).st_mode & 07777, 0640u);
  EXPECT_TRUE(S_ISFIFO(Lstat(U("fifo")).st_mode));
  Fd rd(open(M("fifo").c_str(), O_RDONLY | O_NONBLOCK));
  ASSERT_TRUE(rd.valid());
  std::string path = M("fifo");
  EXPECT_EQ(RunInChild([&] {
              int fd = open(path.c_str(), O_WRONLY);
              if (fd < 0) return errno;
              return write(fd, "through the fifo", 16) == 16 ? 0 : errno;
            }),
            0);
  char buf[32];
  ssize_t n = read(rd.get(), buf, sizeof(buf));
  ASSERT_EQ(n, 16);
  EXPECT_EQ(std::string(buf, 16), "through the fifo");
}

// Opening a lower FIFO does not copy it up; chmod does.
TEST_F(SpecialTest, LowerFifo) {
  ASSERT_EQ(mkfifo(L(1, "fifo").c_str(), 0644), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  {
    Fd fd(open(M("fifo").c_str(), O_RDWR | O_NONBLOCK));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), "x", 1), 1);
    char c;
    EXPECT_EQ(read(fd.get(), &c, 1), 1);
  }
  EXPECT_FALSE(Exists(U("fifo")));
  ASSERT_EQ(chmod(M("fifo").c_str(), 0600), 0);
  EXPECT_TRUE(S_ISFIFO(Lstat(U("fifo")).st_mode));
  EXPECT_EQ(Lstat(M("fifo")).st_mode & 07777, 0600u);
}

TEST_F(SpecialTest, UnixSocketBoundInTheMount) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mkdir(M("run").c_str(), 0755), 0);
  std::string path = M("run/sock");
  ASSERT_LT(path.size(), sizeof(sockaddr_un::sun_path));
  Fd srv(socket(AF_UNIX, SOCK_STREAM, 0));
  ASSERT_TRUE(srv.valid());
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(bind(srv.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << strerror(errno);
  ASSERT_EQ(listen(srv.get(), 1), 0);
  EXPECT_TRUE(S_ISSOCK(Lstat(M("run/sock")).st_mode));
  EXPECT_TRUE(S_ISSOCK(Lstat(U("run/sock")).st_mode));
  EXPECT_EQ(RunInChild([&] {
              int c = socket(AF_UNIX, SOCK_STREAM, 0);
              if (connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
                return errno;
              }
              return write(c, "ping", 4) == 4 ? 0 : errno;
            }),
            0);
  Fd conn(accept(srv.get(), nullptr, nullptr));
  ASSERT_TRUE(conn.valid());
  char buf[8];
  ASSERT_EQ(read(conn.get(), buf, sizeof(buf)), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  ASSERT_EQ(unlink(M("run/sock").c_str()), 0);
}

TEST_F(SpecialTest, DeviceNodes) {
  ASSERT_EQ(mknod(L(1, "lower_zero").c_str(), S_IFCHR | 0666, makedev(1, 5)), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mknod(M("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(mknod(M("loop").c_str(), S_IFBLK | 0600, makedev(7, 200)), 0);
  struct stat c = Lstat(M("null"));
  EXPECT_TRUE(S_ISCHR(c.st_mode));
  EXPECT_EQ(c.st_rdev, makedev(1, 3));
  struct stat b = Lstat(M("loop"));
  EXPECT_TRUE(S_ISBLK(b.st_mode));
  EXPECT_EQ(b.st_rdev, makedev(7, 200));
  EXPECT_EQ(Lstat(U("null")).st_rdev, makedev(1, 3));
  EXPECT_EQ(Lstat(U("loop")).st_rdev, makedev(7, 200));
  // The nodes work (the mount allows devices).
  {
    Fd fd(open(M("null").c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    EXPECT_EQ(write(fd.get(), "gone", 4), 4);
    char buf[4];
    EXPECT_EQ(read(fd.get(), buf, 4), 0);
  }
  {
    Fd fd(open(M("lower_zero").c_str(), O_RDONLY));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    char buf[4] = {1, 1, 1, 1};
    EXPECT_EQ(read(fd.get(), buf, 4), 4);
    EXPECT_EQ(std::string(buf, 4), std::string(4, '\0'));
  }
  EXPECT_FALSE(Exists(U("lower_zero")));
  ASSERT_EQ(chown(M("lower_zero").c_str(), 1234, 1234), 0);
  EXPECT_EQ(Lstat(U("lower_zero")).st_rdev, makedev(1, 5));
  EXPECT_EQ(Lstat(U("lower_zero")).st_uid, 1234u);
}

// A character device 0/0 is the upper layer's whiteout: through the mount
// it is refused (EPERM, as the kernel overlayfs does), leaving nothing in
// the upper layer to hide the name or a lower file of that name.
TEST_F(SpecialTest, AWhiteoutDeviceCannotBeMade) {
  WriteFile(L(1, "lower"), "lower data");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(mknod(M("new").c_str(), S_IFCHR | 0644, makedev(0, 0))), Errno{EPERM});
  EXPECT_FALSE(Exists(M("new")));
  EXPECT_FALSE(Exists(U("new")));
  ASSERT_EQ(unlink(M("lower").c_str()), 0);
  EXPECT_EQ(Err(mknod(M("lower").c_str(), S_IFCHR | 0644, makedev(0, 0))), Errno{EPERM});
  EXPECT_FALSE(Exists(M("lower")));
  // Any other device, 0/1 included, is made.
  ASSERT_EQ(mknod(M("dev01").c_str(), S_IFCHR | 0600, makedev(0, 1)), 0);
  EXPECT_EQ(Lstat(M("dev01")).st_rdev, makedev(0, 1));
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{"dev01"});
}

TEST_F(SpecialTest, SymlinkMadeThroughMount) {
  WriteFile(L(1, "target"), "target data");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(symlink("target", M("link").c_str()), 0);
  struct stat st = Lstat(M("link"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 6);
  char buf[64];
  ssize_t n = readlink(M("link").c_str(), buf, sizeof(buf));
  ASSERT_EQ(n, 6);
  EXPECT_EQ(std::string(buf, 6), "target");
  EXPECT_EQ(ReadFile(M("link")), "target data");
  n = readlink(U("link").c_str(), buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "target");
}

TEST_F(SpecialTest, LowerSymlinks) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/file"), "file data");
  MakeSymlink("d/file", L(0, "rel"));
  MakeSymlink("../d/file", L(1, "up"));  // dangling, stored literally
  MakeSymlink("d", L(1, "dirlink"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(M("rel")), "file data");
  EXPECT_EQ(ReadFile(M("dirlink/file")), "file data");
  EXPECT_EQ(ListDir(M("dirlink")), std::vector<std::string>{"file"});
  char buf[64];
  ssize_t n = readlink(M("up").c_str(), buf, sizeof(buf));
  ASSERT_EQ(n, 9);
  EXPECT_EQ(std::string(buf, 9), "../d/file");
  EXPECT_EQ(ListDir(U()), std::vector<std::string>{});
}

// A lower symlink pointing at a file outside all layers: operations on the
// link itself (lchown, utimensat AT_SYMLINK_NOFOLLOW, rename, copy-up) must
// act on the link, never on the file it points at. Only the VFS follows it
// when a path is resolved.
TEST_F(SpecialTest, SymlinkOutOfTheLayersIsNotFollowedByTheFileSystem) {
  std::string outside = base() + "/outside";
  MakeDirs(outside);
  WriteFile(outside + "/victim", "victim data", 0644);
  SetTimes(outside + "/victim", 1000000000, 1000000000);
  MakeSymlink(outside + "/victim", L(1, "escape"));
  MakeSymlink(outside, L(1, "escape_dir"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(lchown(M("escape").c_str(), 4321, 4321), 0);
  struct timespec ts[2] = {{1500000000, 0}, {1500000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("escape").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  struct stat link_st = Lstat(M("escape"));
  EXPECT_TRUE(S_ISLNK(link_st.st_mode));
  EXPECT_EQ(link_st.st_uid, 4321u);
  EXPECT_EQ(link_st.st_mtim.tv_sec, 1500000000);
  struct stat up = Lstat(U("escape"));
  EXPECT_TRUE(S_ISLNK(up.st_mode)) << "the copy-up must copy the link, not its target";
  EXPECT_EQ(up.st_uid, 4321u);
  struct stat victim = Lstat(outside + "/victim");
  EXPECT_EQ(victim.st_uid, 0u);
  EXPECT_EQ(victim.st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(ReadFile(outside + "/victim"), "victim data");
  EXPECT_EQ(Err(open(M("escape").c_str(), O_RDONLY | O_NOFOLLOW)), Errno{ELOOP});
  EXPECT_EQ(ReadFile(M("escape")), "victim data") << "the VFS follows it for open()";
  ASSERT_EQ(rename(M("escape_dir").c_str(), M("moved").c_str()), 0);
  EXPECT_TRUE(S_ISLNK(Lstat(M("moved")).st_mode));
  EXPECT_TRUE(S_ISLNK(Lstat(U("moved")).st_mode));
  ASSERT_EQ(unlink(M("moved").c_str()), 0);
  ASSERT_EQ(unlink(M("escape").c_str()), 0);
  EXPECT_EQ(ListDir(outside), std::vector<std::string>{"victim"});
}

TEST_F(SpecialTest, DanglingSymlink) {
  MakeSymlink("nowhere", L(1, "dangling"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(S_ISLNK(Lstat(M("dangling")).st_mode));
  struct stat st;
  EXPECT_EQ(Err(stat(M("dangling").c_str(), &st)), Errno{ENOENT});
  EXPECT_EQ(Err(open(M("dangling").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644)), Errno{EEXIST});
  // O_CREAT through a dangling symlink creates its target.
  {
    Fd fd(open(M("dangling").c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    ASSERT_EQ(write(fd.get(), "now", 3), 3);
  }
  EXPECT_EQ(ReadFile(M("nowhere")), "now");
  EXPECT_EQ(ReadFile(U("nowhere")), "now");
  EXPECT_TRUE(S_ISLNK(Lstat(M("dangling")).st_mode));
}

TEST_F(SpecialTest, SymlinkLoopIsELOOP) {
  MakeSymlink("b", L(1, "a"));
  MakeSymlink("a", L(1, "b"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  struct stat st;
  EXPECT_EQ(Err(stat(M("a").c_str(), &st)), Errno{ELOOP});
  EXPECT_EQ(Err(open(M("a/x").c_str(), O_RDONLY)), Errno{ELOOP});
}

TEST_F(SpecialTest, LongestSymlinkTarget) {
  std::string target(PATH_MAX - 1, 'x');
  for (size_t i = 100; i < target.size(); i += 100) target[i] = '/';
  // The upper file system's own limit may be lower (XFS: 1024 bytes); the
  // union can only pass that on.
  const std::string probe = base() + "/probe-symlink";
  if (symlink(target.c_str(), probe.c_str()) != 0 && errno == ENAMETOOLONG)
    GTEST_SKIP() << "the file system under " << base() << " keeps shorter symlink targets";
  unlink(probe.c_str());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(symlink(target.c_str(), M("long").c_str()), 0) << strerror(errno);
  std::string buf(PATH_MAX, '\0');
  ssize_t n = readlink(M("long").c_str(), buf.data(), buf.size());
  ASSERT_EQ(n, PATH_MAX - 1);
  buf.resize(static_cast<size_t>(n));
  EXPECT_TRUE(buf == target);
  EXPECT_EQ(Err(symlink((target + "y").c_str(), M("too_long").c_str())), Errno{ENAMETOOLONG});
}

TEST_F(SpecialTest, HardLinkOfLowerSymlink) {
  MakeSymlink("somewhere", L(1, "s"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(linkat(AT_FDCWD, M("s").c_str(), AT_FDCWD, M("s2").c_str(), 0), 0);
  EXPECT_TRUE(S_ISLNK(Lstat(M("s2")).st_mode));
  EXPECT_EQ(Lstat(M("s2")).st_nlink, 2u);
  EXPECT_EQ(Lstat(M("s")).st_ino, Lstat(M("s2")).st_ino);
  char buf[32];
  ssize_t n = readlink(M("s2").c_str(), buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "somewhere");
}

}  // namespace
}  // namespace overtier::it
