// FUSE passthrough (src/fuse_passthrough.h): upper files are read and
// written by the kernel without the daemon, and the opens the daemon must
// serve (a read-only open of a lower file, which follows a copy-up) mix
// with them without an EIO. The daemon runs with -d: its log names every
// request it got.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "daemon_fixture.h"
#include "test_util.h"

namespace overtier::it {
namespace {

bool Put(const std::string& path, const std::string& data, int flags = O_TRUNC) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | flags, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  ssize_t n;
  while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

size_t Count(const std::string& log, const std::string& what) {
  size_t n = 0;
  for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
  return n;
}

class PassthroughTest : public MountFixture {
 protected:
  PassthroughTest()
      : MountFixture("passthrough", "needs root (FUSE mounts, passthrough)",
                     {"lower", "upper", "work"}) {}

  void MountDebug(const std::string& extra) {
    MountWith(
        {OvertierBin(), "-d", "-o",
         "lowerdir=" + B("lower") + ",upperdir=" + B("upper") + ",workdir=" + B("work") + extra,
         mnt_});
  }

  // Requests of the daemon's log since the mount, by opcode name.
  size_t Requests(const std::string& opcode) {
    return Count(Slurp(log_), "opcode: " + opcode + " ");
  }

  // Whether this kernel and this process can use passthrough at all (the
  // daemon logs a line when the kernel refuses a backing file).
  bool Refused() { return Slurp(log_).find("FUSE passthrough unavailable") != std::string::npos; }
};

TEST_F(PassthroughTest, UpperFilesAreReadAndWrittenByTheKernel) {
  ASSERT_NO_FATAL_FAILURE(MountDebug(""));
  const std::string data = Payload(1 << 20, 3);
  ASSERT_TRUE(Put(M("new"), data));
  int fd = open(M("new").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadAll(fd), data);
  // A shared writable mapping works too.
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memcpy(p, "mapped", 6);
  ASSERT_EQ(msync(p, 4096, MS_SYNC), 0);
  munmap(p, 4096);
  close(fd);
  Unmount();
  if (Refused()) GTEST_SKIP() << "the kernel refused passthrough here";
  EXPECT_EQ(Requests("WRITE"), 0u);
  EXPECT_EQ(Requests("READ"), 0u);
  EXPECT_EQ(Slurp(B("upper/new")).substr(0, 6), "mapped");
  EXPECT_EQ(Slurp(B("upper/new")).substr(6), data.substr(6));
}

TEST_F(PassthroughTest, OffServesEveryWriteInTheDaemon) {
  ASSERT_NO_FATAL_FAILURE(MountDebug(",passthrough=0"));
  ASSERT_TRUE(Put(M("new"), "through the daemon"));
  EXPECT_EQ(Slurp(M("new")), "through the daemon");
  Unmount();
  EXPECT_GE(Requests("WRITE"), 1u);
}

// With a store: files the migration tier has no record of are passed
// through too (migrate_mount_test covers what a record changes).
TEST_F(PassthroughTest, StoreMountPassesFilesWithoutARecordThrough) {
  Result r = RunArgs({OvertierBin(), "store", "init", B("store"), "--copies", "1"});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  ASSERT_NO_FATAL_FAILURE(MountDebug(",store=" + B("store")));
  const std::string data = Payload(1 << 20, 5);
  ASSERT_TRUE(Put(M("new"), data));
  EXPECT_EQ(Slurp(M("new")), data);
  Unmount();
  if (Refused()) GTEST_SKIP() << "the kernel refused passthrough here";
  EXPECT_EQ(Requests("WRITE"), 0u);
  EXPECT_EQ(Requests("READ"), 0u);
}

// FUSE_HANDLE_KILLPRIV_V2: the daemon clears set-user-ID bits itself
// (tests/integration/privs_test.cc), so the kernel stops asking for
// security.capability before every write(2); before, each of these 200
// writes cost one GETXATTR round trip.
TEST_F(PassthroughTest, SmallWritesAskNothingOfTheDaemon) {
  for (const char* extra : {"", ",passthrough=0"}) {
    const size_t getxattrs = Requests("GETXATTR"), writes = Requests("WRITE");  // earlier mounts
    ASSERT_NO_FATAL_FAILURE(MountDebug(extra));
    int fd = open(M("w").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    for (int i = 0; i < 200; ++i) ASSERT_EQ(pwrite(fd, "0123456789abcdef", 16, i * 16), 16);
    close(fd);
    Unmount();
    EXPECT_LE(Requests("GETXATTR") - getxattrs, 2u) << "with '" << extra << "'";
    if (*extra == '\0' && !Refused()) {
      EXPECT_EQ(Requests("WRITE") - writes, 0u);
    }
    ASSERT_EQ(unlink(B("upper/w").c_str()), 0);
  }
}

// A read-only open of a lower file is the daemon's (it follows a copy-up
// as on the kernel overlayfs); an open for writing of the same file then
// must not be a passthrough open (the kernel would refuse the mix with
// EIO), and the first descriptor sees what the second wrote.
TEST_F(PassthroughTest, ALowerFileOpenForReadingMixesWithAWriter) {
  ASSERT_TRUE(Put(B("lower/f"), "lower"));
  ASSERT_NO_FATAL_FAILURE(MountDebug(""));
  int rfd = open(M("f").c_str(), O_RDONLY);
  ASSERT_GE(rfd, 0);
  EXPECT_EQ(ReadAll(rfd), "lower");
  int wfd = open(M("f").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(wfd, 0) << strerror(errno);
  ASSERT_EQ(write(wfd, " more", 5), 5) << strerror(errno);
  close(wfd);
  EXPECT_EQ(ReadAll(rfd), "lower more");
  close(rfd);
  // Once the reader is gone, new opens are the kernel's again.
  ASSERT_TRUE(Put(M("f"), "again", O_APPEND));
  EXPECT_EQ(Slurp(M("f")), "lower moreagain");
  Unmount();
  EXPECT_EQ(Slurp(B("upper/f")), "lower moreagain");
}

}  // namespace
}  // namespace overtier::it
