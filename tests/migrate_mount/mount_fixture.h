// The fixture of the migration-tier mount tests (migrate_mount_test.cc,
// waiters_test.cc): a fresh directory under /tmp with a store, a lower, an
// upper and a work directory; the daemon mounted in the foreground as a
// child and always unmounted in teardown; a watchdog bounds every test. Plus
// the control ioctls as the CLI issues them.
//
// Header-only on purpose: each test file is its own executable and gets its
// own copy (everything is in an anonymous namespace).
#ifndef OVERTIER_TESTS_MIGRATE_MOUNT_MOUNT_FIXTURE_H_
#define OVERTIER_TESTS_MIGRATE_MOUNT_MOUNT_FIXTURE_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../integration/harness.h"
#include "overtier/control.h"
#include "store/store.h"

namespace overtier {
namespace {

using it::MakeDirs;
using it::ReadFile;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = uint64_t{1} << 20;

inline std::string Env(const char* name, const std::string& def = "") {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : def;
}

inline std::string OvertierBin() {
  std::string bin = Env("OVERTIER_BIN");
  if (!bin.empty()) return bin;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string dir(self, n > 0 ? n : 0);
  dir.resize(dir.rfind('/'));
  return dir + "/../../tools/overtier";
}

template <typename Pred>
inline bool PollUntil(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

inline int RunCmd(const std::vector<std::string>& args, std::string* out = nullptr,
                  int timeout_s = 60) {
  std::string tmpl = "/tmp/ovt-mig-out.XXXXXX";
  int fd = mkstemp(tmpl.data());
  if (fd < 0) return -1;
  unlink(tmpl.c_str());
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    alarm(timeout_s);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (out != nullptr) {
    out->clear();
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
      out->append(buf, n);
      off += n;
    }
  }
  close(fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline bool IsMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, mp;
    f >> id >> parent >> dev >> root >> mp;
    if (mp == path) return true;
  }
  return false;
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

inline int64_t Ns(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

// The control ioctls, as the CLI issues them.
inline int Ctl(const std::string& path, unsigned long cmd, uint32_t flags = 0, uint64_t offset = 0,
               uint64_t length = 0) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
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

class MigrateMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (FUSE mounts, control ioctls)";
    std::string tmpl = "/tmp/ovt-migrate-mount.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    chmod(base_.c_str(), 0755);  // the EPERM test runs as nobody
    store_ = base_ + "/store";
    mnt_ = base_ + "/mnt";
    for (const char* d : {"/upper", "/work", "/mnt", "/lower"}) MakeDirs(base_ + d);
    std::string out;
    ASSERT_EQ(RunCmd({OvertierBin(), "store", "init", store_}, &out), 0) << out;
    StartWatchdog();
  }

  void TearDown() override {
    if (base_.empty()) return;
    Unmount(/*expect_clean=*/false);
    StopWatchdog();
    if (Env("OVERTIER_TEST_KEEP") != "1") {
      std::error_code ec;
      std::filesystem::remove_all(base_, ec);
    } else {
      std::fprintf(stderr, "kept %s\n", base_.c_str());
    }
  }

  // Replaces the store SetUp made with one made by `store init` with
  // `args` (e.g. two --volume-set): before Mount.
  void ReinitStore(const std::vector<std::string>& args) {
    std::filesystem::remove_all(store_);
    std::vector<std::string> cmd = {OvertierBin(), "store", "init", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    std::string out;
    ASSERT_EQ(RunCmd(cmd, &out), 0) << out;
  }

  // The daemon's pid (-1 when not mounted).
  pid_t DaemonPid() {
    std::lock_guard<std::mutex> g(mu_);
    return daemon_;
  }

  std::string B(const std::string& rel) const { return base_ + "/" + rel; }
  std::string M(const std::string& rel = "") const { return rel.empty() ? mnt_ : mnt_ + "/" + rel; }

  void Mount() {
    log_ = base_ + "/daemon.log";
    std::string opts = "lowerdir=" + B("lower") + ",upperdir=" + B("upper") +
                       ",workdir=" + B("work") + ",store=" + store_ + ",allow_other";
    std::vector<std::string> args = {OvertierBin(), "-f", "-o", opts, mnt_};
    pid_t parent = getpid();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(126);
      int in = open("/dev/null", O_RDONLY);
      int out = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(in, 0);
      dup2(out, 1);
      dup2(out, 2);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      daemon_ = pid;
    }
    int status = 0;
    bool exited = false;
    bool up = PollUntil(
        [&] {
          if (IsMountPoint(mnt_)) return true;
          if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
            return true;
          }
          return false;
        },
        std::chrono::seconds(20));
    if (exited || !up) {
      if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
      }
      std::lock_guard<std::mutex> g(mu_);
      daemon_ = -1;
      FAIL() << "no mount (status " << status << ")\n--- daemon log ---\n" << Slurp(log_);
    }
  }

  void Unmount(bool expect_clean = true) {
    pid_t pid;
    {
      std::lock_guard<std::mutex> g(mu_);
      pid = daemon_;
    }
    if (IsMountPoint(mnt_)) {
      int rc = -1;
      PollUntil(
          [&] {
            rc = RunCmd({"fusermount3", "-u", "-q", mnt_});
            return rc == 0;
          },
          std::chrono::seconds(3));
      if (rc != 0) {
        if (expect_clean) ADD_FAILURE() << "fusermount3 -u failed; detaching";
        umount2(mnt_.c_str(), MNT_DETACH);
      }
    }
    if (pid <= 0) return;
    int status = 0;
    bool reaped =
        PollUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(10));
    if (!reaped) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      if (expect_clean) ADD_FAILURE() << "the daemon did not exit after the unmount";
    } else if (expect_clean) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "daemon status " << status << "\n--- daemon log ---\n"
          << Slurp(log_);
    }
    std::lock_guard<std::mutex> g(mu_);
    daemon_ = -1;
  }

  void StartWatchdog() {
    int limit = std::atoi(Env("OVERTIER_TEST_TIMEOUT", "120").c_str());
    watchdog_ = std::thread([this, limit] {
      std::unique_lock<std::mutex> g(mu_);
      if (cv_.wait_for(g, std::chrono::seconds(limit), [this] { return stop_; })) return;
      std::fprintf(stderr, "watchdog: test exceeded %d s; killing the daemon\n", limit);
      if (daemon_ > 0) kill(daemon_, SIGKILL);
      umount2(mnt_.c_str(), MNT_DETACH);
      std::_Exit(1);
    });
  }
  void StopWatchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
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

  std::string base_, store_, mnt_, log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  pid_t daemon_ = -1;
  std::thread watchdog_;
};

}  // namespace
}  // namespace overtier

#endif  // OVERTIER_TESTS_MIGRATE_MOUNT_MOUNT_FIXTURE_H_
