// The daemon as containers/storage runs it: no -f, so overtier mounts,
// forks into the background and exits 0 once the mount is ready; the
// background daemon serves until `fusermount3 -u`, then exits. The other
// suites run the daemon in the foreground, which does not exercise the
// fork (threads started before it would be lost, for instance).
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Mounted(const std::string& mnt) {
  return Slurp("/proc/self/mountinfo").find(" " + mnt + " ") != std::string::npos;
}

// Runs fn in a child as nobody:nogroup, with no supplementary groups;
// returns what fn returns (an errno, 0 for success), 125 if the switch
// failed.
int AsNobody(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(125);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// 0 if path opens with flags (and closes), else errno.
int OpenErrno(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

// Processes whose command line mentions the test directory.
int DaemonsFor(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = Slurp(e.path() / "cmdline");
    if (cmd.find("overtier") != std::string::npos && cmd.find(dir) != std::string::npos) ++n;
  }
  return n;
}

// Runs args; with `log`, its stdout and stderr go to that file.
int RunCmd(const std::vector<std::string>& args, const std::string& log = "") {
  pid_t pid = fork();
  if (pid == 0) {
    if (!log.empty()) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Watchdog: a hung request must neither hang the suite nor leave a mount
// behind. umount2 and _exit are async-signal-safe.
char g_watch_mnt[4096];
void OnAlarm(int) {
  static const char kMsg[] = "daemon_test: timed out, detaching the mount\n";
  if (write(2, kMsg, sizeof(kMsg) - 1) < 0) {
  }
  umount2(g_watch_mnt, MNT_DETACH);
  _exit(3);
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = getenv("OVERTIER_BIN");
    const char* target = getenv("OVERTIER_TEST_TARGET");
    if (bin == nullptr || (target != nullptr && std::string(target) != "overtier"))
      GTEST_SKIP() << "overtier-only (OVERTIER_BIN not set)";
    bin_ = bin;
    std::string tmpl = (fs::temp_directory_path() / "overtier-daemon.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    for (const char* d : {"lower", "upper", "work", "mnt"}) fs::create_directory(dir_ + "/" + d);
    mnt_ = dir_ + "/mnt";
    snprintf(g_watch_mnt, sizeof(g_watch_mnt), "%s", mnt_.c_str());
    signal(SIGALRM, OnAlarm);
    alarm(120);
  }
  void TearDown() override {
    if (dir_.empty()) return;
    if (Mounted(mnt_) && RunCmd({"/bin/fusermount3", "-u", mnt_}) != 0)
      RunCmd({"/bin/umount", "-l", mnt_});
    WaitNoDaemon();
    // Whatever a test mounted under its directory (an outer overlayfs),
    // deepest first, before the directory goes.
    std::vector<std::string> under;
    std::istringstream info(Slurp("/proc/self/mountinfo"));
    for (std::string line; std::getline(info, line);) {
      std::istringstream f(line);
      std::string id, parent, devno, root, point;
      if ((f >> id >> parent >> devno >> root >> point) && point.starts_with(dir_ + "/"))
        under.push_back(point);
    }
    std::sort(under.rbegin(), under.rend());
    for (const auto& m : under) umount2(m.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
    alarm(0);
  }
  void WaitNoDaemon() {
    for (int i = 0; i < 200 && DaemonsFor(dir_) > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int Mount(const std::string& extra = "") {
    return RunCmd({bin_, "-o",
                   "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + dir_ +
                       "/work" + extra,
                   mnt_});
  }

  std::string bin_, dir_, mnt_;
};

TEST_F(DaemonTest, ExitsZeroWithTheMountReadyAndServesInTheBackground) {
  std::string data(8 << 20, 'l');
  std::ofstream(dir_ + "/lower/big", std::ios::binary) << data;
  ASSERT_EQ(Mount(), 0);
  ASSERT_TRUE(Mounted(mnt_)) << "mount not ready when the command returned";
  EXPECT_EQ(DaemonsFor(dir_), 1);

  // Open for write copies the 8 MiB up (a slow request, served off the
  // request loop), then write and fsync (also off the loop).
  int fd = open((mnt_ + "/big").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "UP", 2, 0), 2);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(fdatasync(fd), 0);
  close(fd);
  int dfd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  EXPECT_EQ(fsync(dfd), 0);
  close(dfd);
  ASSERT_EQ(truncate((mnt_ + "/big").c_str(), 4 << 20), 0);
  std::string got = Slurp(mnt_ + "/big");
  ASSERT_EQ(got.size(), 4u << 20);
  EXPECT_EQ(got.substr(0, 4), "UPll");
  EXPECT_EQ(Slurp(dir_ + "/lower/big"), data) << "the lower layer changed";

  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();
  EXPECT_EQ(DaemonsFor(dir_), 0) << "the daemon did not exit after unmount";
  EXPECT_FALSE(Mounted(mnt_));
}

// The kernel keeps an inode for every file it has seen, far more than the
// 20000 fds this machine allows a process (shared/PERF-NOTES.md): the daemon
// must keep its cached layer fds within budget however many files exist.
TEST_F(DaemonTest, MoreFilesThanTheFdLimit) {
  constexpr int kLower = 6000, kNew = 25000;
  fs::create_directory(dir_ + "/lower/d");
  for (int i = 0; i < kLower; ++i) std::ofstream(dir_ + "/lower/d/l" + std::to_string(i)) << i;
  ASSERT_EQ(Mount(), 0);
  const std::string d = mnt_ + "/d/";
  const std::string top = mnt_ + "/";
  for (int i = 0; i < kNew; ++i) {
    const std::string& where = i % 2 ? d : top;  // a merged and an upper-only directory
    int fd = open((where + "n" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << "create #" << i << ": " << strerror(errno);
    ASSERT_EQ(write(fd, "x", 1), 1);
    close(fd);
  }
  struct stat st;
  for (int i = 0; i < kLower; ++i)
    ASSERT_EQ(stat((d + "l" + std::to_string(i)).c_str(), &st), 0) << i << ": " << strerror(errno);
  for (int i = 0; i < kNew; i += 7)
    ASSERT_EQ(Slurp((i % 2 ? d : top) + "n" + std::to_string(i)), "x") << i;
  for (int i = 0; i < kLower; i += 11)
    ASSERT_EQ(Slurp(d + "l" + std::to_string(i)), std::to_string(i));
  // Copy-ups of files whose cached fds were evicted long ago.
  for (int i = 0; i < 50; ++i) {
    std::ofstream(d + "l" + std::to_string(i), std::ios::app) << "+";
    ASSERT_EQ(Slurp(d + "l" + std::to_string(i)), std::to_string(i) + "+");
  }
}

TEST_F(DaemonTest, BadInputExitsTwoWithNothingMounted) {
  int rc =
      RunCmd({bin_, "-o",
              "lowerdir=" + dir_ + "/missing,upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/work",
              mnt_});
  EXPECT_EQ(rc, 2);
  EXPECT_FALSE(Mounted(mnt_));
  EXPECT_EQ(DaemonsFor(dir_), 0);
  ASSERT_EQ(Mount(), 0);
  EXPECT_EQ(Mount(), 2) << "a second mount on a mounted mount point must be refused";
}

// A mistyped command is named as one, not taken for a mount point that
// lacks options; a mount point without options still hears what it lacks.
TEST_F(DaemonTest, AMistypedCommandIsNamedAsOne) {
  const std::string log = dir_ + "/cmd.log";
  EXPECT_EQ(RunCmd({bin_, "statsu", mnt_ + "/f"}, log), 2);
  EXPECT_NE(Slurp(log).find("unknown command 'statsu'"), std::string::npos) << Slurp(log);
  EXPECT_EQ(RunCmd({bin_, mnt_}, log), 2);
  EXPECT_NE(Slurp(log).find("missing lowerdir="), std::string::npos) << Slurp(log);
  EXPECT_EQ(RunCmd({bin_, "mount"}, log), 2);
  EXPECT_NE(Slurp(log).find("missing mount point"), std::string::npos) << Slurp(log);
}

// containers/storage passes no allow_other, yet a container's processes
// that are not root use its root file system (`podman run --user 1000`):
// a daemon running as root lets other users in, as fuse-overlayfs and the
// kernel overlayfs do, and the kernel checks their access against the
// modes (default_permissions). noallow_other keeps the mount to root.
TEST_F(DaemonTest, OtherUsersUseARootMountWithTheirOwnPermissions) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  std::ofstream(dir_ + "/lower/public") << "for everyone";
  std::ofstream(dir_ + "/lower/secret") << "for root";
  ASSERT_EQ(chmod((dir_ + "/lower/secret").c_str(), 0600), 0);
  ASSERT_EQ(mkdir((dir_ + "/lower/shared").c_str(), 0777), 0);
  ASSERT_EQ(chmod((dir_ + "/lower/shared").c_str(), 0777), 0);

  ASSERT_EQ(Mount(), 0);
  EXPECT_NE(Slurp("/proc/self/mountinfo").find("allow_other"), std::string::npos);
  EXPECT_EQ(AsNobody([&] { return OpenErrno(mnt_ + "/public", O_RDONLY); }), 0);
  EXPECT_EQ(AsNobody([&] { return OpenErrno(mnt_ + "/secret", O_RDONLY); }), EACCES);
  EXPECT_EQ(AsNobody([&] { return OpenErrno(mnt_ + "/public", O_WRONLY); }), EACCES);
  EXPECT_EQ(AsNobody([&] { return OpenErrno(mnt_ + "/shared/mine", O_WRONLY | O_CREAT); }), 0);
  struct stat st {};
  ASSERT_EQ(lstat((dir_ + "/upper/shared/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u) << "the new file belongs to its creator";

  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();
  ASSERT_EQ(Mount(",noallow_other"), 0);
  EXPECT_EQ(AsNobody([&] { return OpenErrno(mnt_ + "/public", O_RDONLY); }), EACCES);
  EXPECT_EQ(OpenErrno(mnt_ + "/public", O_RDONLY), 0) << "root still uses it";
}

// The migration tier keys its records by the upper file's handle: an upper
// without file handles (an overlayfs without nfs_export=on, where podman's
// storage sits inside a container) is refused with store=, at once and
// saying why, instead of failing every archive. Without store= it mounts
// (whiteouts there are ".wh." files: aufs_test).
TEST_F(DaemonTest, AStoreNeedsAnUpperWithFileHandles) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  const std::string outer = dir_ + "/outer";
  for (const char* d : {"/outer-l", "/outer-u", "/outer-w", "/outer"})
    fs::create_directory(dir_ + d);
  ASSERT_EQ(mount("overlay", outer.c_str(), "overlay", 0,
                  ("lowerdir=" + dir_ + "/outer-l,upperdir=" + dir_ + "/outer-u,workdir=" + dir_ +
                   "/outer-w")
                      .c_str()),
            0)
      << strerror(errno);
  fs::create_directory(outer + "/u");
  fs::create_directory(outer + "/w");
  const std::string store = dir_ + "/store", log = dir_ + "/mount.log";
  ASSERT_EQ(RunCmd({bin_, "store", "init", store}, log), 0) << Slurp(log);
  const std::string layers =
      "lowerdir=" + dir_ + "/lower,upperdir=" + outer + "/u,workdir=" + outer + "/w";
  EXPECT_EQ(RunCmd({bin_, "-o", layers + ",store=" + store, mnt_}, log), 2);
  EXPECT_NE(Slurp(log).find("without file handles"), std::string::npos) << Slurp(log);
  EXPECT_FALSE(Mounted(mnt_));
  EXPECT_EQ(RunCmd({bin_, "-o", layers, mnt_}, log), 0) << Slurp(log);
  EXPECT_TRUE(Mounted(mnt_));
  EXPECT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();
}

// One mount at a time per upper (and work) directory, as the kernel
// overlayfs with index=on: a second one, elsewhere, is refused (exit 2,
// nothing mounted, after waiting a few seconds for a daemon that may be
// ending), whatever its workdir; once the first is unmounted it mounts.
TEST_F(DaemonTest, ASecondMountOfOneUpperIsRefused) {
  ASSERT_EQ(Mount(), 0);
  const std::string mnt2 = dir_ + "/mnt2", work2 = dir_ + "/work2";
  fs::create_directory(mnt2);
  fs::create_directory(work2);
  for (const std::string& work : {dir_ + "/work", work2}) {
    const std::string log = dir_ + "/second.log";
    EXPECT_EQ(
        RunCmd({bin_, "-o",
                "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + work, mnt2},
               log),
        2)
        << work;
    const std::string out = Slurp(log);
    EXPECT_NE(out.find("upperdir '" + dir_ + "/upper' is in use by another overtier mount"),
              std::string::npos)
        << out;
    EXPECT_FALSE(Mounted(mnt2));
  }
  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  EXPECT_EQ(
      RunCmd({bin_, "-o",
              "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + work2, mnt2}),
      0)
      << "the first daemon let go as it ended";
  EXPECT_TRUE(Mounted(mnt2));
  EXPECT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt2}), 0);
}

// A volatile mount (no syncs) leaves the kernel overlayfs' mark,
// work/work/incompat/volatile/dirty, and a workdir with such a mark is
// refused (exit 2, nothing mounted, nothing lost) by overtier as by the
// kernel, whichever of them made it: after a crash of the machine the
// upper may have lost writes. Removing the mark, as containers/storage
// does before each mount, lets both mount again.
TEST_F(DaemonTest, AVolatileMountMarksItsWorkdirLikeTheKernel) {
  if (geteuid() != 0) GTEST_SKIP() << "the kernel overlayfs needs root";
  const std::string mark = dir_ + "/work/work/incompat/volatile";
  const std::string kernel_opts =
      "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/work";
  const auto kernel_mount = [&](const std::string& extra) {
    if (mount("overlay", mnt_.c_str(), "overlay", 0, (kernel_opts + extra).c_str()) != 0)
      return errno;
    EXPECT_EQ(umount2(mnt_.c_str(), 0), 0);
    return 0;
  };
  const auto refused = [&](const char* who) {
    const std::string log = dir_ + "/refused.log";
    EXPECT_EQ(RunCmd({bin_, "-o", kernel_opts, mnt_}, log), 2) << who;
    const std::string out = Slurp(log);
    EXPECT_NE(out.find("overlay with incompat feature 'volatile' cannot be mounted"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("remove '" + mark + "'"), std::string::npos) << out;
    EXPECT_FALSE(Mounted(mnt_));
    struct stat st;
    EXPECT_EQ(lstat(mark.c_str(), &st), 0) << "the mark stays: " << who;
  };

  ASSERT_EQ(Mount(",volatile"), 0);
  std::ofstream(mnt_ + "/written") << "data";
  struct stat st;
  EXPECT_EQ(lstat((mark + "/dirty").c_str(), &st), 0);
  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();
  refused("overtier's mark");
  EXPECT_EQ(kernel_mount(""), EINVAL) << "the kernel reads overtier's mark as its own";
  EXPECT_EQ(Slurp(dir_ + "/upper/written"), "data");

  ASSERT_EQ(RunCmd({"/bin/rm", "-r", mark}), 0);
  ASSERT_EQ(Mount(), 0) << "without the mark";
  EXPECT_EQ(Slurp(mnt_ + "/written"), "data");
  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();

  ASSERT_EQ(kernel_mount(",volatile"), 0);
  refused("the kernel's mark");
  ASSERT_EQ(RunCmd({"/bin/rm", "-r", mark}), 0);
  EXPECT_EQ(kernel_mount(""), 0);
}

// Nobody reads a background daemon's stderr (fuse_daemonize points it at
// /dev/null), yet that is where it says why a restore failed. With
// log=FILE it says so in FILE (without, in syslog: src/daemon_log.h).
TEST_F(DaemonTest, ABackgroundDaemonSaysWhyInItsLogFile) {
  const std::string store = dir_ + "/store", log = dir_ + "/daemon.log";
  ASSERT_EQ(RunCmd({bin_, "store", "init", store}), 0);
  const std::string opts = "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ +
                           "/upper,workdir=" + dir_ + "/work,store=" + store;
  EXPECT_EQ(RunCmd({bin_, "-o", opts + ",log=" + dir_ + "/no/such/dir/x.log", mnt_}), 2);
  EXPECT_FALSE(Mounted(mnt_)) << "a log file that cannot be written fails the mount";
  ASSERT_EQ(RunCmd({bin_, "-o", opts + ",log=" + log, mnt_}), 0);
  ASSERT_TRUE(Mounted(mnt_));
  std::string data(1 << 20, 'd');
  std::ofstream(mnt_ + "/f", std::ios::binary) << data;
  ASSERT_EQ(RunCmd({bin_, "archive", "--release", mnt_ + "/f"}), 0);
  // The daemon closes the store once idle; then take its containers away.
  std::this_thread::sleep_for(std::chrono::milliseconds(1800));
  fs::rename(store + "/volumes/default", dir_ + "/away");
  fs::create_directory(store + "/volumes/default");
  int fd = open((mnt_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_EQ(pread(fd, &c, 1, 0), -1);
  EXPECT_EQ(errno, EIO);
  close(fd);
  const std::string said = Slurp(log);
  EXPECT_NE(said.find("restore of"), std::string::npos) << said;
  EXPECT_NE(said.find("failed"), std::string::npos) << said;
  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();
  EXPECT_EQ(DaemonsFor(dir_), 0);
}

// Without log=, a background daemon's messages go to syslog: facility
// daemon, priority warning, tagged "overtier[PID]", one message a line.
// Checked by standing in for the syslog daemon at /dev/log (only where no
// syslog daemon owns it: this machine and CI have none).
TEST_F(DaemonTest, ABackgroundDaemonWithoutALogFileSpeaksToSyslog) {
  struct stat st;
  if (lstat("/dev/log", &st) == 0) GTEST_SKIP() << "/dev/log exists: a syslog daemon owns it";
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, "/dev/log");
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  struct Cleanup {
    int fd;
    ~Cleanup() {
      close(fd);
      unlink("/dev/log");
    }
  } cleanup{sock};

  const std::string store = dir_ + "/store";
  ASSERT_EQ(RunCmd({bin_, "store", "init", store}), 0);
  ASSERT_EQ(RunCmd({bin_, "-o",
                    "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + dir_ +
                        "/work,store=" + store,
                    mnt_}),
            0);
  ASSERT_TRUE(Mounted(mnt_));
  std::ofstream(mnt_ + "/f", std::ios::binary) << std::string(1 << 20, 'd');
  // A file held open by FUSE passthrough cannot be archived: the daemon
  // says why in its log (the command only gets EBUSY).
  int held = open((mnt_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  EXPECT_EQ(RunCmd({bin_, "archive", mnt_ + "/f"}), 1);
  close(held);

  std::string got;
  for (int i = 0; i < 50 && got.find("passthrough") == std::string::npos; i++) {
    pollfd p{sock, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[2048];
    ssize_t n = recv(sock, buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<size_t>(n)).append("\n");
  }
  ASSERT_EQ(RunCmd({"/bin/fusermount3", "-u", mnt_}), 0);
  WaitNoDaemon();
  // <28>: facility daemon (3) * 8 + warning (4).
  EXPECT_NE(got.find("<28>"), std::string::npos) << got;
  EXPECT_NE(got.find("overtier["), std::string::npos) << got;
  EXPECT_NE(got.find("is open with FUSE passthrough"), std::string::npos) << got;
  EXPECT_EQ(got.find("overtier: overtier:"), std::string::npos) << "the prefix once: " << got;
}

}  // namespace
