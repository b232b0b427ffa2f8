// Mount-level integration test harness.
//
// Every test runs against one of two targets, chosen by the environment:
//
//   OVERTIER_TEST_TARGET=overtier (default)  the overtier FUSE daemon, the
//                                            binary named by OVERTIER_BIN
//   OVERTIER_TEST_TARGET=kernel              the kernel overlayfs, as the
//                                            reference implementation
//
// Each test gets fresh directories under /tmp (lower0, lower1, upper, work,
// mnt), fills the lower layers (and, for some tests, the upper layer) with
// plain syscalls BEFORE mounting, mounts, drives real syscalls through the
// mount and inspects the layers. TearDown always unmounts (fusermount3 -u,
// then umount -l as a fallback), waits for the daemon to exit, checks that
// no lower layer was modified and removes the directories. A watchdog thread
// bounds every test. The daemon and the watchdog are it::Daemon and
// it::Watchdog (daemon_fixture.h), shared with the store-backed mount tests.
//
// Kernel reference options: redirect_dir=on,metacopy=on,index=on (see
// kKernelOptions). All layers live on the same file system (/tmp), so the
// kernel uses the real inode numbers and one st_dev for the whole mount.
//
// Other environment variables:
//   OVERTIER_BIN               the overtier binary (set by meson)
//   OVERTIER_TEST_TIMEOUT      per-test watchdog limit in seconds (default 60)
//   OVERTIER_TEST_DEBUG=1      run the daemon with -d (log in the temp dir)
//   OVERTIER_TEST_KEEP=1       keep the temp dirs of every test
//   OVERTIER_TEST_EXTRA_OPTS   extra -o options for the overtier daemon
#ifndef OVERTIER_TESTS_INTEGRATION_HARNESS_H_
#define OVERTIER_TESTS_INTEGRATION_HARNESS_H_

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon_fixture.h"

namespace overtier::it {

enum class Target { kKernel, kOvertier };

// The target named by OVERTIER_TEST_TARGET (default kOvertier).
Target SelectedTarget();
const char* TargetName(Target t);

// Options for the kernel overlayfs reference mount.
//   redirect_dir=on  rename(2) of lower/merged directories works (no EXDEV),
//                    like overtier;
//   metacopy=on      chmod/chown/utimes/... of a lower file copy up metadata
//                    only (needs redirect_dir);
//   index=on         hard links of a lower file stay one inode after copy-up
//                    of one of their names, like overtier.
// uuid=on is implied by the kernel (it shows up in /proc/self/mountinfo).
inline constexpr char kKernelOptions[] = "redirect_dir=on,metacopy=on,index=on";

// Unprivileged identity for the EACCES tests (nobody/nogroup).
inline constexpr uid_t kNobody = 65534;
inline constexpr gid_t kNogroup = 65534;

// ---------------------------------------------------------------------------
// errno values as a printable type: EXPECT_EQ(Err(mkdir(...)), Errno{EEXIST})
// prints "EEXIST" instead of 17.

struct Errno {
  int value = 0;
  bool operator==(const Errno&) const = default;
};
void PrintTo(const Errno& e, std::ostream* os);
inline constexpr Errno kOk{0};

// kOk when rc >= 0, otherwise the current errno.
Errno Err(long rc);

// Owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------
// File helpers. They report problems with ADD_FAILURE (non-fatal) and return
// a neutral value, so they can be used in expressions; wrap a sequence of
// setup steps in ASSERT_NO_FATAL_FAILURE where a failure must stop the test.

// Creates or replaces a regular file with the given content and mode (the
// mode is applied with fchmod, so the umask does not matter).
void WriteFile(const std::string& path, std::string_view data, mode_t mode = 0644);
// Whole content of a regular file ("" and a failure if it cannot be read).
std::string ReadFile(const std::string& path);
// Content read through an open descriptor from offset 0 (pread).
std::string ReadFd(int fd);
// mkdir -p; mode applied with chmod to every directory created.
void MakeDirs(const std::string& path, mode_t mode = 0755);
void MakeSymlink(const std::string& target, const std::string& path);
// overlayfs whiteout: character device 0/0.
void MakeWhiteout(const std::string& path);
// Sets trusted.overlay.opaque=y on a layer directory.
void MakeOpaque(const std::string& dir);
void SetXattr(const std::string& path, const std::string& name, std::string_view value);
// lgetxattr; nullopt if absent (ENODATA), failure on other errors.
std::optional<std::string> GetXattr(const std::string& path, const std::string& name);
// llistxattr, sorted.
std::vector<std::string> ListXattrs(const std::string& path);
// Sets atime and mtime (seconds since the epoch) without following symlinks.
void SetTimes(const std::string& path, time_t atime, time_t mtime);
void Chown(const std::string& path, uid_t uid, gid_t gid);

// lstat; a zeroed struct and a failure if it fails.
struct stat Lstat(const std::string& path);
struct stat Fstat(int fd);
// True if lstat succeeds; failure on errors other than ENOENT/ENOTDIR.
bool Exists(const std::string& path);
// True if path is an overlayfs whiteout (char device 0/0).
bool IsWhiteout(const std::string& path);

// Names in a directory, sorted, without "." and "..".
std::vector<std::string> ListDir(const std::string& path);

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  int64_t off = 0;  // d_off: the position after this entry
  unsigned char type = 0;
};
// Every entry getdents64 returns from the current position of fd to the end,
// in order, "." and ".." included, using a buffer of buf_size bytes (small
// buffers exercise continuation).
std::vector<DirEntry> ReadDirRaw(int fd, size_t buf_size = 32768);

// Recursive removal with openat/unlinkat (works for paths beyond PATH_MAX).
void RemoveTree(const std::string& path);

// Bytes to a printable, bounded form for messages ("abc\n" -> "abc\\n").
std::string Printable(std::string_view data, size_t max = 64);

// FNV-1a, 64 bit, continuing from h (start: kFingerprintSeed): the content
// fingerprint of snapshots.
inline constexpr uint64_t kFingerprintSeed = 14695981039346656037ULL;
uint64_t Fingerprint(uint64_t h, const char* data, size_t n);

// ---------------------------------------------------------------------------
// Tree snapshots: a recursive walk (openat/fstatat/AT_SYMLINK_NOFOLLOW, never
// following symlinks) giving relative path -> description. Two snapshots of
// the same view compare equal; DiffTrees prints what differs.

struct SnapshotOptions {
  bool mtime = true;        // mtime of non-directories
  bool dir_mtime = false;   // mtime of directories
  bool dir_nlink = false;   // link count of directories
  bool dir_size = false;    // st_size of directories
  bool ino = false;         // raw inode numbers
  bool all_xattrs = false;  // every xattr (default: user.* only)
  // trusted.overlay.* as well: through a mount, the user's own (escaped)
  // overlay names, which the kernel overlayfs and overtier both show.
  bool overlay_xattrs = false;
};
using TreeSnapshot = std::map<std::string, std::string>;
TreeSnapshot SnapshotTree(const std::string& root, const SnapshotOptions& opts = {});
// "" when equal; otherwise one line per difference.
std::string DiffTrees(const TreeSnapshot& a, std::string_view a_name, const TreeSnapshot& b,
                      std::string_view b_name);

// ---------------------------------------------------------------------------
// The fixture.

struct MountConfig {
  std::optional<Target> target;  // default: SelectedTarget()
  bool upper = true;             // false: read-only union of the lowers
  // Without an upper layer: the kernel follows metadata-only copies in its
  // lower layers (metacopy=on), as over an earlier upper layer.
  bool follow_metacopy = false;
  int lowers = 2;  // how many of lower0.. lowerN-1, top-most first
  // More -o options for the overtier daemon ("noacl", "uidmapping=..."),
  // after the harness's own; the kernel target does not take them.
  std::string overtier_opts;
  // The kernel reference mount's options (with an upper layer).
  std::string kernel_opts = kKernelOptions;
  // The overtier daemon's lowerdir= instead of the plain lowers
  // ("image:a:image:b" with store= in overtier_opts); the kernel target
  // still mounts the plain lowers.
  std::string overtier_lowerdir;
  // The overtier daemon's upperdir= and workdir= instead of the harness's
  // (an upper inside another file system); U() still names the harness's.
  std::string overtier_upperdir, overtier_workdir;

  static MountConfig ReadOnly() {
    MountConfig c;
    c.upper = false;
    return c;
  }
  static MountConfig On(Target t) {
    MountConfig c;
    c.target = t;
    return c;
  }
};

class UnionFsTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  Target target() const { return target_; }
  bool IsKernel() const { return target_ == Target::kKernel; }

  // Paths. i = 0 is the top-most lower layer. rel "" gives the directory.
  std::string L(int i, std::string_view rel = "") const;
  std::string U(std::string_view rel = "") const;
  std::string M(std::string_view rel = "") const;
  const std::string& base() const { return base_; }
  const std::string& work() const { return work_; }
  const std::string& mnt() const { return mnt_; }

  // Mounts the union (wrap in ASSERT_NO_FATAL_FAILURE). The first mount of a
  // test takes the reference snapshot of the lower layers that TearDown
  // compares against.
  void Mount(const MountConfig& cfg = {});
  // Unmounts; for overtier waits for the daemon and checks it exited 0.
  void Unmount();
  // Unmount, then mount again with the same configuration.
  void Remount();
  bool mounted() const { return mounted_; }
  // The target of the current (or last) mount.
  Target mounted_target() const { return cfg_target_; }

  // Runs fn in a forked child and returns what it returned. fn must not use
  // gtest assertions (they would be lost in the child); it reports through
  // its return value. A child killed or stuck (alarm after 30 s) gives
  // INT_MIN and a failure.
  int RunInChild(const std::function<int()>& fn);
  // Same, after setgroups(0)/setgid(gid)/setuid(uid) in the child.
  int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn);
  // RunAs(kNobody, kNogroup) for an operation that reports an errno.
  Errno AsNobody(const std::function<Errno()>& fn);

 private:
  void MountKernel(const MountConfig& cfg);
  void MountOvertier(const MountConfig& cfg);
  bool IsMountPoint() const;
  void DetachAll();

  Target target_ = Target::kOvertier;
  std::string base_, work_, mnt_, upper_dir_;
  std::vector<std::string> lowers_;
  bool mounted_ = false;
  MountConfig cfg_;
  Target cfg_target_ = Target::kOvertier;
  Daemon daemon_;  // the overtier daemon (target kOvertier)
  std::vector<TreeSnapshot> lower_snapshots_;
  bool keep_ = false;

  Watchdog watchdog_;
  std::atomic<bool> wd_fired_{false};
};

}  // namespace overtier::it

#endif  // OVERTIER_TESTS_INTEGRATION_HARNESS_H_
