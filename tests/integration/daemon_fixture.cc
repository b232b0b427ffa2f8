#include "daemon_fixture.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "harness.h"

namespace overtier::it {

bool Daemon::Start(const std::vector<std::string>& args, const std::vector<std::string>& env,
                   int* status, std::chrono::seconds timeout) {
  int st = 0;
  if (status != nullptr) *status = 0;
  pid_t pid;
  {
    // Under the lock: the watchdog never sees a pid that is not ours.
    std::lock_guard<std::mutex> g(mu_);
    pid = Spawn(args, log_, env);
    if (pid < 0) return false;
    pid_ = pid;
  }
  bool exited = false;
  bool up = PollUntil(
      [&] {
        if (IsMountPoint(mnt_)) return true;
        std::lock_guard<std::mutex> g(mu_);
        if (waitpid(pid, &st, WNOHANG) == pid) {
          pid_ = -1;
          return exited = true;
        }
        return false;
      },
      timeout);
  if (up && !exited) return true;
  std::lock_guard<std::mutex> g(mu_);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    pid_ = -1;
  }
  if (status != nullptr) *status = st;
  return false;
}

void Daemon::Stop(bool expect_clean, std::chrono::seconds retry) {
  pid_t pid = this->pid();
  if (IsMountPoint(mnt_)) {
    int rc = -1;
    PollUntil(
        [&] {
          rc = RunLogged({"fusermount3", "-u", "-q", mnt_}, log_);
          return rc == 0;
        },
        retry);
    if (rc != 0) {
      if (expect_clean) ADD_FAILURE() << "fusermount3 -u failed; detaching";
      umount2(mnt_.c_str(), MNT_DETACH);
    }
  }
  if (pid <= 0) return;
  int status = 0;
  bool reaped =
      PollUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(10));
  std::lock_guard<std::mutex> g(mu_);
  if (!reaped) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (expect_clean) ADD_FAILURE() << "the daemon did not exit after the unmount";
  } else if (expect_clean) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "daemon status " << status << "\n--- daemon log ---\n"
        << LogTail();
  }
  pid_ = -1;
}

std::string Daemon::LogTail() const {
  std::string log = Slurp(log_);
  if (log.size() > 8192) log = "...\n" + log.substr(log.size() - 8192);
  return log;
}

pid_t Daemon::pid() const {
  std::lock_guard<std::mutex> g(mu_);
  return pid_;
}

bool Daemon::Exited() const {
  pid_t pid = this->pid();
  siginfo_t info{};
  return pid > 0 && waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

void Daemon::Kill() {
  std::lock_guard<std::mutex> g(mu_);
  if (pid_ > 0) kill(pid_, SIGKILL);
  umount2(mnt_.c_str(), MNT_DETACH);
}

void Watchdog::Start(std::chrono::seconds limit, std::function<void()> on_fire,
                     std::chrono::seconds grace) {
  Stop();
  stop_ = false;
  thread_ = std::thread([this, limit, grace, on_fire = std::move(on_fire)] {
    {
      std::unique_lock<std::mutex> g(mu_);
      if (cv_.wait_for(g, limit, [this] { return stop_; })) return;
    }
    // Without mu_ held: a Stop() meanwhile just waits for on_fire to end.
    on_fire();
    std::unique_lock<std::mutex> g(mu_);
    if (cv_.wait_for(g, grace, [this] { return stop_; })) return;
    std::fprintf(stderr, "watchdog: test still stuck %d s later; aborting\n",
                 static_cast<int>(grace.count()));
    std::abort();
  });
}

void Watchdog::Stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::chrono::seconds Watchdog::LimitFromEnv(int def) {
  int limit = std::atoi(EnvOr("OVERTIER_TEST_TIMEOUT", std::to_string(def)).c_str());
  return std::chrono::seconds(std::max(1, limit));
}

void TempDirTest::SetUp() {
  std::string tmpl = it::TempTemplate("ovt-" + name_);
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  dir_ = tmpl;
}

void TempDirTest::TearDown() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

MountFixture::MountFixture(std::string name, std::string why_root, std::vector<std::string> dirs)
    : name_(std::move(name)), why_root_(std::move(why_root)), dirs_(std::move(dirs)) {}

void MountFixture::SetUp() {
  if (geteuid() != 0) GTEST_SKIP() << why_root_;
  std::string tmpl = it::TempTemplate("ovt-" + name_);
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  base_ = tmpl;
  chmod(base_.c_str(), 0755);  // tests run commands as nobody on the mount
  mnt_ = base_ + "/mnt";
  log_ = base_ + "/daemon.log";
  store_ = base_ + "/store";
  MakeDirs(mnt_);
  for (const auto& d : dirs_) MakeDirs(B(d));
  daemon_.set_mount_point(mnt_);
  daemon_.set_log(log_);
  auto limit = Watchdog::LimitFromEnv(120);
  watchdog_.Start(limit, [this, limit] {
    std::fprintf(stderr, "watchdog: test exceeded %d s; killing the daemon\n",
                 static_cast<int>(limit.count()));
    OnTimeout();
    std::_Exit(1);
  });
  Prepare();
}

void MountFixture::TearDown() {
  if (base_.empty()) return;
  Unmount(/*expect_clean=*/false);
  watchdog_.Stop();
  if (EnvOr("OVERTIER_TEST_KEEP") != "1") {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  } else {
    std::fprintf(stderr, "kept %s\n", base_.c_str());
  }
}

void MountFixture::OnTimeout() { daemon_.Kill(); }

void MountFixture::InitStore(const std::vector<std::string>& args, Result* r) {
  std::vector<std::string> cmd = {OvertierBin(), "store", "init", store_};
  cmd.insert(cmd.end(), args.begin(), args.end());
  Result res = RunArgs(cmd);
  if (r != nullptr) *r = res;
  ASSERT_EQ(res.rc, 0) << Describe(res);
}

void MountFixture::MountWith(const std::vector<std::string>& args,
                             const std::vector<std::string>& env) {
  int status = 0;
  if (!daemon_.Start(args, env, &status)) {
    FAIL() << "no mount (status " << status << ")\n--- daemon log ---\n" << Slurp(log_);
  }
}

void MountFixture::MountDaemon(const std::string& options, const std::vector<std::string>& env) {
  MountWith({OvertierBin(), "-f", "-o", options, mnt_}, env);
}

}  // namespace overtier::it
