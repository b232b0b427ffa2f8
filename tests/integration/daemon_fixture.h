// The overtier daemon as a test runs it: in the foreground, as the test's
// child, its output in a log; unmounted (fusermount3 -u, MNT_DETACH as the
// fallback) and reaped at the end. Plus a watchdog that bounds a test, and
// MountFixture, the base fixture of the programs that mount one daemon at a
// time in a fresh directory under /tmp (image_mount, migrate_cli,
// migrate_mount, policy).
//
// Environment:
//   OVERTIER_BIN            the overtier binary (set by meson)
//   OVERTIER_TEST_TIMEOUT   per-test limit in seconds (MountFixture: 120)
//   OVERTIER_TEST_KEEP=1    keep the temp directory
#ifndef OVERTIER_TESTS_INTEGRATION_DAEMON_FIXTURE_H_
#define OVERTIER_TESTS_INTEGRATION_DAEMON_FIXTURE_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace overtier::it {

// One daemon mounted on one mount point. Thread-safe: the watchdog may
// Kill() while the test thread starts or stops it.
class Daemon {
 public:
  Daemon() = default;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void set_mount_point(std::string mnt) { mnt_ = std::move(mnt); }
  void set_log(std::string log) { log_ = std::move(log); }
  const std::string& log() const { return log_; }

  // Spawns args (argv[0] absolute; `env` added to its environment) and
  // waits up to `timeout` for the mount point to appear. False when the
  // daemon exited first or did not mount in time (then killed); *status:
  // its wait status.
  bool Start(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
             int* status = nullptr, std::chrono::seconds timeout = std::chrono::seconds(20));

  // Unmounts (fusermount3 -u, retried for `retry`, then MNT_DETACH) and
  // reaps the daemon (SIGKILL after 10 s). With expect_clean, a failed
  // fusermount3, a daemon that had to be killed or one that did not exit 0
  // are test failures (with the log).
  void Stop(bool expect_clean, std::chrono::seconds retry = std::chrono::seconds(3));

  // The daemon's pid, -1 when none runs.
  pid_t pid() const;
  // Whether the daemon has exited (not reaped: Stop does that).
  bool Exited() const;
  // SIGKILL to the daemon (which aborts the FUSE connection) and a lazy
  // unmount: for a watchdog.
  void Kill();
  // The last 8 KiB of the log.
  std::string LogTail() const;

 private:
  std::string mnt_, log_;
  mutable std::mutex mu_;
  pid_t pid_ = -1;
};

// Calls on_fire on its own thread once `limit` passes without Stop(); if
// the test is still stuck `grace` after on_fire returns, aborts.
class Watchdog {
 public:
  Watchdog() = default;
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() { Stop(); }

  void Start(std::chrono::seconds limit, std::function<void()> on_fire,
             std::chrono::seconds grace = std::chrono::seconds(20));
  void Stop();

  // OVERTIER_TEST_TIMEOUT, or def seconds.
  static std::chrono::seconds LimitFromEnv(int def);

 private:
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// A fresh directory dir_ ($TMPDIR/ovt-NAME.XXXXXX, /tmp by default) for tests that need no
// mount and no root; removed in TearDown.
class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(std::string name) : name_(std::move(name)) {}
  void SetUp() override;
  void TearDown() override;

  std::string dir_;

 private:
  std::string name_;
};

// A fresh directory base_ (0755, so that tests can run commands as nobody)
// with the given subdirectories and a mount point base_/mnt; the daemon
// started by MountWith and always unmounted in TearDown; a watchdog that
// kills the daemon, detaches the mount and ends the program when a test
// exceeds OVERTIER_TEST_TIMEOUT (default 120 s).
class MountFixture : public ::testing::Test {
 protected:
  // name: the temp directory is $TMPDIR/ovt-NAME.XXXXXX; why_root: the skip
  // message without root; dirs: made under base_ ("mnt" always is).
  MountFixture(std::string name, std::string why_root, std::vector<std::string> dirs);

  void SetUp() override;
  void TearDown() override;

  // What a test program adds to SetUp (a store, more mounts): called at its
  // end, when the directories exist, not when the test is skipped.
  virtual void Prepare() {}

  // On the watchdog thread when a test runs too long; the program then
  // ends. Extend to detach more mounts.
  virtual void OnTimeout();

  std::string B(const std::string& rel) const { return base_ + "/" + rel; }
  std::string M(const std::string& rel = "") const { return rel.empty() ? mnt_ : mnt_ + "/" + rel; }

  // The daemon (args: the whole command line, argv[0] absolute) on mnt_,
  // log in base_/daemon.log; a fatal failure with the log when no mount.
  void MountWith(const std::vector<std::string>& args, const std::vector<std::string>& env = {});
  // `overtier -f -o OPTIONS mnt_`.
  void MountDaemon(const std::string& options, const std::vector<std::string>& env = {});
  // `overtier store init store_ ARGS...`; *r (if given) gets its output.
  void InitStore(const std::vector<std::string>& args = {}, Result* r = nullptr);
  // Unmounts and reaps the daemon (see Daemon::Stop).
  void Unmount(bool expect_clean = true) { daemon_.Stop(expect_clean, unmount_retry_); }
  pid_t DaemonPid() const { return daemon_.pid(); }

  std::string base_, mnt_, log_;
  std::string store_;  // base_/store, made by InitStore
  Daemon daemon_;
  // How long Unmount retries fusermount3 -u on a busy mount.
  std::chrono::seconds unmount_retry_{3};

 private:
  std::string name_, why_root_;
  std::vector<std::string> dirs_;
  Watchdog watchdog_;
};

}  // namespace overtier::it

#endif  // OVERTIER_TESTS_INTEGRATION_DAEMON_FIXTURE_H_
