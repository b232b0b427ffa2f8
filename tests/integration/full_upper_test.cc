// A full upper file system, with passthrough (the default), the kernel's
// writeback cache and neither: the error reaches the application (at write
// without the cache, at fsync and close with it, docs/SEMANTICS.md) and
// nothing written before is lost.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "daemon_fixture.h"
#include "harness.h"
#include "test_util.h"

namespace overtier::it {
namespace {

bool Put(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

class FullUpperTest : public MountFixture {
 protected:
  FullUpperTest()
      : MountFixture("full-upper", "needs root (tmpfs, FUSE mounts)", {"lower", "small"}) {}

  void Prepare() override {
    // Upper and work on a 1 MiB tmpfs of their own.
    ASSERT_EQ(mount("tmpfs", B("small").c_str(), "tmpfs", 0, "size=1m,mode=0755"), 0)
        << strerror(errno);
    small_mounted_ = true;
    MakeDirs(B("small/u"));
    MakeDirs(B("small/w"));
  }

  void TearDown() override {
    Unmount(/*expect_clean=*/false);
    if (small_mounted_) umount2(B("small").c_str(), MNT_DETACH);
    MountFixture::TearDown();
  }

  void MountWithOpts(const std::string& extra) {
    MountDaemon("lowerdir=" + B("lower") + ",upperdir=" + B("small/u") +
                ",workdir=" + B("small/w") + extra);
  }

  // Writes 64 KiB blocks to a new file until a write fails or 4 MiB went
  // in; returns the errno of the first failing write (0: none failed), and
  // in *sync_err the errno of fsync then close (0: succeeded).
  int FillUp(const std::string& name, int* sync_err) {
    int fd = open(M(name).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    EXPECT_GE(fd, 0) << strerror(errno);
    std::string block(64 * 1024, 'x');
    int write_err = 0;
    for (int i = 0; i < 64 && write_err == 0; ++i) {
      if (write(fd, block.data(), block.size()) < 0) write_err = errno;
    }
    *sync_err = 0;
    if (fsync(fd) != 0) *sync_err = errno;
    if (close(fd) != 0 && *sync_err == 0) *sync_err = errno;
    return write_err;
  }

  void FillAndCheck(const std::string& extra, bool at_write_only);

  bool small_mounted_ = false;
};

// Mounts with `extra` options, writes a small file, fills the upper file
// system through the mount and checks that ENOSPC came back (at write, or
// with at_write_only false at fsync/close as well) and that the small
// file is intact, through the mount and in the upper layer.
void FullUpperTest::FillAndCheck(const std::string& extra, bool at_write_only) {
  const std::string kept = "written before the disk filled up";
  MountWithOpts(extra);
  ASSERT_TRUE(Put(M("keep"), kept));
  int sync_err = 0;
  int write_err = FillUp("big", &sync_err);
  if (at_write_only) {
    EXPECT_EQ(write_err, ENOSPC) << strerror(write_err);
  } else {
    EXPECT_TRUE(write_err == ENOSPC || sync_err == ENOSPC)
        << "write: " << strerror(write_err) << ", fsync/close: " << strerror(sync_err);
  }
  EXPECT_EQ(Slurp(M("keep")), kept);
  Unmount();
  EXPECT_EQ(Slurp(B("small/u/keep")), kept);
}

TEST_F(FullUpperTest, PassthroughReportsENOSPCAtWrite) { FillAndCheck("", true); }

// The cache takes the writes; the refusal comes back at fsync (or at
// write, once the kernel has pushed back and seen the error).
TEST_F(FullUpperTest, WritebackCacheReportsENOSPCAtFsync) {
  FillAndCheck(",writeback=1", false);  // the cache instead of passthrough
}

TEST_F(FullUpperTest, WriteThroughReportsENOSPCAtWrite) {
  FillAndCheck(",passthrough=0,writeback=0", true);
}

// A copy-up that does not fit: the open for writing fails with ENOSPC,
// the half copy is gone from the work directory, nothing of the file is
// in the upper layer, and the lower content still shows.
TEST_F(FullUpperTest, ACopyUpThatDoesNotFitFailsCleanly) {
  const std::string data = Payload(2 << 20, 5);  // twice the upper's size
  WriteFile(B("lower/big"), data);
  MountWithOpts("");
  errno = 0;
  EXPECT_LT(open(M("big").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC), 0);
  EXPECT_EQ(errno, ENOSPC) << strerror(errno);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::recursive_directory_iterator(B("small/w")))
    if (!e.is_directory()) left.push_back(e.path().string());
  EXPECT_TRUE(left.empty()) << left.front();
  EXPECT_FALSE(std::filesystem::exists(B("small/u/big")));
  EXPECT_TRUE(Slurp(M("big")) == data);
  // Small changes still fit.
  EXPECT_TRUE(Put(M("small"), "still room for this"));
  Unmount();
}

}  // namespace
}  // namespace overtier::it
