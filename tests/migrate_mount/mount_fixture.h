// The fixture of the migration-tier mount tests (migrate_mount_test.cc,
// waiters_test.cc): it::MountFixture (a fresh directory under /tmp, the
// daemon mounted in the foreground as a child and always unmounted in
// teardown, a watchdog) with a store, a lower, an upper and a work
// directory. Plus the control ioctls as the CLI issues them.
//
// Header-only on purpose: each test file is its own executable and gets its
// own copy (everything is in an anonymous namespace).
#ifndef OVERTIER_TESTS_MIGRATE_MOUNT_MOUNT_FIXTURE_H_
#define OVERTIER_TESTS_MIGRATE_MOUNT_MOUNT_FIXTURE_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../integration/daemon_fixture.h"
#include "../integration/harness.h"
#include "overtier/control.h"
#include "store/catalog_testutil.h"
#include "store/store.h"

namespace overtier {
namespace {

using it::IsMountPoint;
using it::MakeDirs;
using it::OvertierBin;
using it::Payload;
using it::PollUntil;
using it::ReadFile;
using it::RunCmd;
using it::Slurp;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = uint64_t{1} << 20;

inline int64_t Ns(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

// The control ioctls, as the CLI issues them (on an O_NOATIME open, which
// the daemon never makes a passthrough open: control::OpenAt).
inline int Ctl(const std::string& path, unsigned long cmd, uint32_t flags = 0, uint64_t offset = 0,
               uint64_t length = 0) {
  int fd = open(path.c_str(), O_RDONLY | O_NOATIME | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno;
  overtier_ctl_request r{};
  r.version = OVERTIER_CTL_VERSION;
  r.flags = flags;
  r.offset = offset;
  r.length = length;
  int rc = ioctl(fd, cmd, &r);
  int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

inline int GetState(const std::string& path, overtier_ctl_state* st) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  std::memset(st, 0, sizeof(*st));
  st->version = OVERTIER_CTL_VERSION;
  int rc = ioctl(fd, OVERTIER_IOC_GET_STATE, st);
  int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

inline std::string StateXattr(const std::string& path) {
  char buf[512];
  ssize_t n = getxattr(path.c_str(), "user.overtier.state", buf, sizeof(buf));
  if (n < 0) return std::string("error ") + strerror(errno);
  return std::string(buf, n);
}

class MigrateMountTest : public it::MountFixture {
 protected:
  MigrateMountTest()
      : MountFixture("migrate-mount", "needs root (FUSE mounts, control ioctls)",
                     {"upper", "work", "lower"}) {}

  void Prepare() override { ASSERT_NO_FATAL_FAILURE(InitStore()); }

  // How many migration records the store holds (nothing mounted).
  int MigrationRecords() { return CountMigrationRecords(store_); }

  // Replaces the store SetUp made with one made by `store init` with
  // `args` (e.g. two --volume-set): before Mount.
  void ReinitStore(const std::vector<std::string>& args) {
    std::filesystem::remove_all(store_);
    InitStore(args);
  }

  // extra: more options, each starting with a comma; env: the daemon's
  // additional environment (NAME=VALUE).
  void Mount(const std::string& extra = "", const std::vector<std::string>& env = {}) {
    MountDaemon("lowerdir=" + B("lower") + ",upperdir=" + B("upper") + ",workdir=" + B("work") +
                    ",store=" + store_ + ",allow_other" + extra,
                env);
  }

  // Writes `data` to the mount as `name` (an upper file), with old times
  // (so a change of mtime would show), and returns its stat.
  struct stat MakeFile(const std::string& name, const std::string& data) {
    it::WriteFile(M(name), data);
    struct timespec ts[2] = {{1600000000, 123456789}, {1600000000, 987654321}};
    EXPECT_EQ(utimensat(AT_FDCWD, M(name).c_str(), ts, 0), 0);
    struct stat st;
    EXPECT_EQ(stat(M(name).c_str(), &st), 0);
    return st;
  }

  // Archives and releases `name` keeping `keep` bytes.
  void ArchiveRelease(const std::string& name, uint64_t keep = 0) {
    ASSERT_EQ(Ctl(M(name), OVERTIER_IOC_ARCHIVE, OVERTIER_CTL_RELEASE, keep), 0) << Slurp(log_);
    overtier_ctl_state st;
    ASSERT_EQ(GetState(M(name), &st), 0);
    ASSERT_EQ(st.state, OVERTIER_STATE_RELEASED) << StateXattr(M(name));
  }

  // The daemon closes its writable store when idle: wait for it (its
  // container files are then closed too).
  void WaitStoreIdle() { std::this_thread::sleep_for(std::chrono::milliseconds(1800)); }

  // Takes the store's containers away (once the daemon closed them), so
  // that restores fail; ShowContainers puts them back.
  void HideContainers() {
    WaitStoreIdle();
    std::filesystem::rename(store_ + "/volumes/default", B("away"));
    MakeDirs(store_ + "/volumes/default");
  }
  void ShowContainers() {
    std::filesystem::remove(store_ + "/volumes/default");
    std::filesystem::rename(B("away"), store_ + "/volumes/default");
  }

  // The errno of a 1-byte pread of path at off through a new descriptor
  // (0 if it read).
  static int ReadErrno(const std::string& path, off_t off) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    char c;
    const int e = pread(fd, &c, 1, off) < 0 ? errno : 0;
    close(fd);
    return e;
  }
};

}  // namespace
}  // namespace overtier

#endif  // OVERTIER_TESTS_MIGRATE_MOUNT_MOUNT_FIXTURE_H_
