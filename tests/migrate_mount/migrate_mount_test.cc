// The migration tier through a mounted union (-o ...,store=STORE): upper
// files archived and released with the control ioctls (control.h), read
// back transparently, written and truncated while released.
//
// Each test gets a fresh directory under /tmp with a store, a lower, an
// upper and a work directory, mounts the daemon in the foreground as a
// child, and always unmounts in teardown; a watchdog bounds every test.
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

std::string Env(const char* name, const std::string& def = "") {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : def;
}

std::string OvertierBin() {
  std::string bin = Env("OVERTIER_BIN");
  if (!bin.empty()) return bin;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string dir(self, n > 0 ? n : 0);
  dir.resize(dir.rfind('/'));
  return dir + "/../../tools/overtier";
}

template <typename Pred>
bool PollUntil(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int RunCmd(const std::vector<std::string>& args, std::string* out = nullptr, int timeout_s = 60) {
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

bool IsMountPoint(const std::string& path) {
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

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

int64_t Ns(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

// The control ioctls, as the CLI issues them.
int Ctl(const std::string& path, unsigned long cmd, uint32_t flags = 0, uint64_t offset = 0,
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

int GetState(const std::string& path, overtier_ctl_state* st) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  std::memset(st, 0, sizeof(*st));
  st->version = OVERTIER_CTL_VERSION;
  int rc = ioctl(fd, OVERTIER_IOC_GET_STATE, st);
  int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

std::string StateXattr(const std::string& path) {
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

TEST_F(MigrateMountTest, ArchiveReleaseKeepsStatAndReadsBackIdentical) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = RandomBytes(20 * kMiB, 1);
  struct stat before = MakeFile("big", data);
  EXPECT_EQ(StateXattr(M("big")), "resident");

  ASSERT_EQ(Ctl(M("big"), OVERTIER_IOC_ARCHIVE), 0) << Slurp(log_);
  EXPECT_EQ(StateXattr(M("big")), "archived size=" + std::to_string(data.size()));
  ASSERT_EQ(Ctl(M("big"), OVERTIER_IOC_RELEASE, 0, 4096), 0) << Slurp(log_);
  EXPECT_EQ(StateXattr(M("big")), "released barrier=4096 size=" + std::to_string(data.size()));

  struct stat after;
  ASSERT_EQ(stat(M("big").c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(Ns(after.st_mtim), Ns(before.st_mtim));
  EXPECT_EQ(Ns(after.st_atim), Ns(before.st_atim));
  EXPECT_LT(after.st_blocks, before.st_blocks / 100) << "st_blocks shows the resident part";
  struct stat upper;
  ASSERT_EQ(stat(B("upper/big").c_str(), &upper), 0);
  EXPECT_LE(upper.st_blocks, 64) << "the upper file is sparse";
  EXPECT_EQ(upper.st_size, before.st_size);

  overtier_ctl_state st;
  ASSERT_EQ(GetState(M("big"), &st), 0);
  EXPECT_EQ(st.barrier, 4096u);
  EXPECT_EQ(st.size, data.size());
  EXPECT_EQ(st.archive_size, data.size());
  EXPECT_EQ(st.mtime_ns, Ns(before.st_mtim));

  // Read back through the mount: restored transparently.
  EXPECT_TRUE(ReadFile(M("big")) == data) << "content differs after restore";
  ASSERT_EQ(stat(M("big").c_str(), &after), 0);
  EXPECT_EQ(Ns(after.st_mtim), Ns(before.st_mtim)) << "restore changed mtime";
  EXPECT_EQ(after.st_size, before.st_size);
  // The rest of the file follows in the background; then archived again.
  EXPECT_TRUE(PollUntil([&] { return StateXattr(M("big")).starts_with("archived"); },
                        std::chrono::seconds(20)))
      << StateXattr(M("big"));
  ASSERT_EQ(stat(M("big").c_str(), &after), 0);
  EXPECT_EQ(Ns(after.st_mtim), Ns(before.st_mtim));
  EXPECT_GE(after.st_blocks, before.st_blocks - 64);
  // The upper file itself holds the data again.
  EXPECT_TRUE(ReadFile(B("upper/big")) == data);
  Unmount();
}

TEST_F(MigrateMountTest, ReaderOfTheLastMiBGetsItsData) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = RandomBytes(20 * kMiB, 2);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  int fd = open(M("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf(kMiB, '\0');
  ASSERT_EQ(pread(fd, buf.data(), buf.size(), 19 * kMiB), static_cast<ssize_t>(kMiB));
  EXPECT_TRUE(buf == data.substr(19 * kMiB));
  close(fd);
  Unmount();
}

TEST_F(MigrateMountTest, ConcurrentReadersAllGetTheData) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = RandomBytes(20 * kMiB, 3);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  std::atomic<int> good{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 8; i++) {
    readers.emplace_back([&, i] {
      int fd = open(M("f").c_str(), O_RDONLY);
      if (fd < 0) return;
      // Each from its own place, wrapping around.
      std::string got(data.size(), '\0');
      uint64_t start = (i * 5 * kMiB / 2) % data.size();
      bool ok = true;
      for (uint64_t done = 0; done < data.size() && ok;) {
        uint64_t off = (start + done) % data.size();
        size_t n = std::min<uint64_t>(kMiB - off % kMiB, data.size() - done);
        ssize_t r = pread(fd, got.data() + off, n, off);
        ok = r == static_cast<ssize_t>(n);
        done += n;
      }
      close(fd);
      if (ok && got == data) good++;
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(good.load(), 8);
  Unmount();
}

TEST_F(MigrateMountTest, EioWhileContainersAreMissingThenSuccessAfterTheyAreBack) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = RandomBytes(4 * kMiB, 4);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  WaitStoreIdle();
  const std::string vols = store_ + "/volumes/default", away = B("away");
  std::filesystem::rename(vols, away);
  MakeDirs(vols);
  int fd = open(M("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_EQ(pread(fd, &c, 1, 2 * kMiB), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_TRUE(StateXattr(M("f")).starts_with("released")) << StateXattr(M("f"));
  WaitStoreIdle();
  std::filesystem::remove(vols);
  std::filesystem::rename(away, vols);
  std::string got(data.size(), '\0');
  EXPECT_EQ(pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(got == data);
  close(fd);
  Unmount();
}

TEST_F(MigrateMountTest, NonRootCallersGetEpermButMayQueryTheState) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeFile("f", RandomBytes(kMiB, 5));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setresgid(it::kNogroup, it::kNogroup, it::kNogroup) != 0 ||
        setresuid(it::kNobody, it::kNobody, it::kNobody) != 0)
      _exit(10);
    if (Ctl(M("f"), OVERTIER_IOC_ARCHIVE) != EPERM) _exit(11);
    if (Ctl(M("f"), OVERTIER_IOC_RELEASE) != EPERM) _exit(12);
    if (Ctl(M("f"), OVERTIER_IOC_RESTORE) != EPERM) _exit(13);
    overtier_ctl_state st;
    if (GetState(M("f"), &st) != 0 || st.state != OVERTIER_STATE_RESIDENT) _exit(14);
    if (StateXattr(M("f")) != "resident") _exit(15);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The attribute is read-only and not listed.
  EXPECT_EQ(setxattr(M("f").c_str(), "user.overtier.state", "x", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  char names[1024];
  ssize_t n = listxattr(M("f").c_str(), names, sizeof(names));
  ASSERT_GE(n, 0);
  EXPECT_EQ(std::string(names, n).find("overtier"), std::string::npos);
  Unmount();
}

TEST_F(MigrateMountTest, WriteInTheMiddleOfAReleasedFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string model = RandomBytes(8 * kMiB, 6);
  MakeFile("f", model);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  const std::string patch = RandomBytes(100 * 1024, 7);
  const uint64_t at = 5 * kMiB + 123;
  int fd = open(M("f").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, patch.data(), patch.size(), at), static_cast<ssize_t>(patch.size()));
  close(fd);
  model.replace(at, patch.size(), patch);
  EXPECT_TRUE(StateXattr(M("f")).starts_with("dirty")) << StateXattr(M("f"));
  EXPECT_TRUE(ReadFile(M("f")) == model);
  EXPECT_TRUE(PollUntil([&] { return StateXattr(M("f")) == "resident"; }, std::chrono::seconds(20)))
      << StateXattr(M("f"));
  Unmount();
}

TEST_F(MigrateMountTest, TruncateShrinksAReleasedFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string model = RandomBytes(8 * kMiB, 8);
  MakeFile("f", model);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  const uint64_t size = 3 * kMiB + 5;
  ASSERT_EQ(truncate(M("f").c_str(), size), 0);
  model.resize(size);
  struct stat st;
  ASSERT_EQ(stat(M("f").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
  EXPECT_TRUE(ReadFile(M("f")) == model);
  Unmount();
}

TEST_F(MigrateMountTest, ArchiveOfALowerOnlyFileIsRefused) {
  it::WriteFile(B("lower/low"), "lower data");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Ctl(M("low"), OVERTIER_IOC_ARCHIVE), EINVAL);
  EXPECT_EQ(StateXattr(M("low")), "resident");
  Unmount();
}

TEST_F(MigrateMountTest, ImageImportIntoTheStoreWorksWhileMounted) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeFile("f", RandomBytes(kMiB, 9));
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  // The daemon holds the store's write lock only while it works.
  WaitStoreIdle();
  MakeDirs(B("src"));
  it::WriteFile(B("src/x"), "imported");
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "image", "import", store_, "img", B("src")}, &out, 30), 0)
      << out;
  // And the mount can still restore (reopening the store for writing).
  EXPECT_EQ(ReadFile(M("f")).size(), kMiB);
  Unmount();
}

TEST_F(MigrateMountTest, UnlinkOfTheLastLinkDeletesTheRecord) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeFile("a", RandomBytes(kMiB, 10));
  MakeFile("b", RandomBytes(kMiB, 11));
  ASSERT_EQ(Ctl(M("a"), OVERTIER_IOC_ARCHIVE), 0);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("b"));
  ASSERT_EQ(link(M("b").c_str(), M("b2").c_str()), 0);
  ASSERT_EQ(unlink(M("a").c_str()), 0);
  ASSERT_EQ(unlink(M("b").c_str()), 0) << strerror(errno);  // b2 still links the file
  EXPECT_TRUE(StateXattr(M("b2")).starts_with("released"));
  WaitStoreIdle();
  Unmount();
  std::unique_ptr<Store> st;
  StoreOpenOptions so;
  so.read_only = true;
  Status s = Store::Open(store_, so, &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  int records = 0;
  ASSERT_TRUE(st->catalog()
                  ->ScanMigration("",
                                  [&](std::string_view, const MigrationRecord&) {
                                    records++;
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(records, 1) << "only b2's record is left";
}

}  // namespace
}  // namespace overtier
