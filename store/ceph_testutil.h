// A real single-node Ceph cluster for tests (scripts/ceph-test-cluster.sh),
// started once per test binary and stopped at its end, or by a watchdog
// process if the binary dies first (a crash, meson's timeout).
//
// Header-only and test-only: store/rados_volume_test.cc and the mount tests
// in tests/rados each get their own copy.
#ifndef OVERTIER_STORE_CEPH_TESTUTIL_H_
#define OVERTIER_STORE_CEPH_TESTUTIL_H_

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace overtier {
namespace test {

class TestCeph {
 public:
  // Starts the cluster. Returns "" when it runs; otherwise `*skip` says why
  // the tests should skip (not root, no ceph packages) or the result says
  // what failed.
  static std::string Start(std::string* skip) {
    if (geteuid() != 0) {
      *skip = "not root: the test cluster needs root (ceph daemons, /tmp)";
      return "";
    }
    for (const char* bin : {"ceph-mon", "ceph-osd", "ceph", "monmaptool", "ceph-authtool"}) {
      if (!OnPath(bin)) {
        *skip = std::string(bin) + " not found: apt-get install ceph-mon ceph-osd ceph-common";
        return "";
      }
    }
    // Short: admin socket paths must stay under 107 bytes.
    char tmpl[] = "/tmp/cXXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir() = tmpl;
    StartWatchdog();
    auto t0 = std::chrono::steady_clock::now();
    if (Run("start") != 0) return "scripts/ceph-test-cluster.sh start " + dir() + " failed";
    std::printf("cluster ready in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return "";
  }

  // Stops exactly the daemons Start started and removes the folder.
  static void Stop() {
    if (dir().empty()) return;
    Run("stop");
    // The watchdog sees EOF and runs stop again: harmless, nothing left.
    if (watchdog_fd() >= 0) close(watchdog_fd());
    watchdog_fd() = -1;
    if (watchdog_pid() > 0) waitpid(watchdog_pid(), nullptr, 0);
    watchdog_pid() = -1;
    std::error_code ec;
    std::filesystem::remove_all(dir(), ec);
    dir().clear();
  }

  // The cluster folder (DIR of the script); "" when not started.
  static std::string& dir() {
    static std::string d;
    return d;
  }
  static std::string conf() { return dir() + "/ceph.conf"; }

  // Runs `scripts/ceph-test-cluster.sh CMD DIR` (osd-stop, osd-start, ...);
  // its output goes to the test log. Returns its exit status.
  static int Run(const std::string& cmd) {
    std::string line = "timeout 180 bash '" + Script() + "' " + cmd + " '" + dir() + "' 2>&1";
    int rc = std::system(line.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  }

 private:
  static bool OnPath(const std::string& bin) {
    const char* path = std::getenv("PATH");
    std::string p = path != nullptr ? path : "/usr/bin:/bin";
    size_t at = 0;
    while (at <= p.size()) {
      size_t colon = p.find(':', at);
      std::string d = p.substr(at, colon == std::string::npos ? std::string::npos : colon - at);
      if (!d.empty() && access((d + "/" + bin).c_str(), X_OK) == 0) return true;
      if (colon == std::string::npos) break;
      at = colon + 1;
    }
    return false;
  }

  static std::string Script() {
    const char* root = std::getenv("OVERTIER_SOURCE_ROOT");
    return std::string(root != nullptr ? root : ".") + "/scripts/ceph-test-cluster.sh";
  }

  // A child that stops the cluster (and removes its folder) when this
  // process goes, however it goes: it waits for EOF on a pipe only we hold.
  static void StartWatchdog() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[1]);
      setsid();  // not killed with our process group
      char c;
      while (read(fds[0], &c, 1) != 0) {
      }
      std::string script = Script();
      // Stop, then remove the (mkdtemp) cluster folder.
      execlp("timeout", "timeout", "60", "bash", "-c", "bash \"$0\" stop \"$1\"; rm -rf -- \"$1\"",
             script.c_str(), dir().c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[0]);
    if (pid < 0) {
      close(fds[1]);
      return;
    }
    watchdog_fd() = fds[1];
    watchdog_pid() = pid;
  }

  static int& watchdog_fd() {
    static int fd = -1;
    return fd;
  }
  static pid_t& watchdog_pid() {
    static pid_t pid = -1;
    return pid;
  }
};

}  // namespace test
}  // namespace overtier

#endif  // OVERTIER_STORE_CEPH_TESTUTIL_H_
