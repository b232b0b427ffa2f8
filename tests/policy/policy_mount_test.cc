// The policy engine as users run it (docs/POLICY.md): `overtier policy
// check|run --rules FILE DIR` (OVERTIER_BIN) on a union mounted with a
// store, and the daemon's periodic mode (-o policy=FILE,policy_interval=S).
// The upper and work directories live on a 64 MiB tmpfs of their own, so
// that the upper file system's usage, which the watermarks act on, is
// known and nobody else's files change it.
//
// PolicyErrors needs no mount: bad rules files and bad usage.
// PolicyTest needs root (FUSE and tmpfs mounts, allow_other, running
// commands as nobody). Each test gets a fresh directory under /tmp, the
// daemon runs in the foreground as the test's child, a watchdog kills it
// (and detaches the mounts) if a test hangs, and TearDown always unmounts.
//
//   OVERTIER_BIN            the overtier binary (set by meson)
//   OVERTIER_TEST_TIMEOUT   per-test limit in seconds (default 120)
//   OVERTIER_TEST_KEEP=1    keep the temp directory
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../integration/daemon_fixture.h"
#include "../integration/harness.h"

namespace overtier::it {
namespace {

using nlohmann::json;

constexpr char kNoRelease[] = "user.overtier.norelease";

// errno of fn() run in a child as `uid` (0 on success).
template <typename Fn>
int AsUser(uid_t uid, Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 ||
        setresuid(uid, uid, uid) != 0)
      _exit(126);
    _exit(fn() == 0 ? 0 : errno);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

// ---------------------------------------------------------------------------
// Without a mount

class PolicyErrors : public it::TempDirTest {
 protected:
  PolicyErrors() : TempDirTest("policy") {}
};

TEST_F(PolicyErrors, BadRulesFileNamesTheLine) {
  const std::string rules = dir_ + "/rules";
  WriteFile(dir_ + "/f", "data");
  struct Case {
    std::string text, message;
  };
  const std::vector<Case> cases = {
      {"archive size>1M\n# ok\nfrob path=x\n", rules + ":3: unknown action 'frob'"},
      {"release size>1Q\n", rules + ":1: 'size>1Q': '1Q' is not a size"},
      {"archive atime>3 years\n", rules + ":1: 'years' is not a condition"},
      {"release\nwatermark high=40 low=60\n", rules + ":2: watermark low= must be below high="},
      {"pin owner=no-such-user-xyz\n", rules + ":1: 'owner=no-such-user-xyz': no user"},
  };
  for (const Case& c : cases) {
    WriteFile(rules, c.text);
    for (const char* sub : {"check", "run"}) {
      Result r = Cli({"policy", sub, "--rules", rules, dir_});
      EXPECT_EQ(r.rc, 2) << c.text << Describe(r);
      EXPECT_TRUE(Contains(r.err, "overtier policy: " + c.message)) << c.text;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
  }
  Result r = Cli({"policy", "check", "--rules", dir_ + "/missing", dir_});
  EXPECT_EQ(r.rc, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.err, dir_ + "/missing: No such file or directory")) << r.err;
}

TEST_F(PolicyErrors, BadUsageAndNotAMount) {
  const std::string rules = dir_ + "/rules";
  WriteFile(rules, "archive\n");
  WriteFile(dir_ + "/f", "data");
  for (const auto& words : std::vector<std::vector<std::string>>{
           {"policy"},
           {"policy", "frob"},
           {"policy", "check", dir_},                                 // no --rules
           {"policy", "run", "--rules", rules},                       // no DIR
           {"policy", "check", "--dry-run", "--rules", rules, dir_},  // run only
       }) {
    Result r = Cli(words);
    EXPECT_EQ(r.rc, 2) << Describe(r);
    EXPECT_FALSE(r.err.empty());
  }
  // A directory that is not on an overtier mount: each file says so.
  Result r = Cli({"policy", "check", "--rules", rules, dir_});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, dir_ + "/f is not on an overtier mount")) << r.err;
  r = Cli({"policy", "check", "--rules", rules, dir_ + "/nosuch"});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, dir_ + "/nosuch: No such file or directory")) << r.err;
}

// ---------------------------------------------------------------------------
// On a mount

class PolicyTest : public it::MountFixture {
 protected:
  static constexpr uint64_t kTmpfsBytes = 64 << 20;

  PolicyTest()
      : MountFixture("policy-mnt", "needs root (FUSE and tmpfs mounts)", {"lower", "tmpfs"}) {
    unmount_retry_ = std::chrono::seconds(10);
  }

  void Prepare() override {
    tmpfs_ = base_ + "/tmpfs";
    ASSERT_EQ(mount("tmpfs", tmpfs_.c_str(), "tmpfs", 0, "size=64m,mode=0755"), 0)
        << std::strerror(errno);
    tmpfs_mounted_ = true;
    MakeDirs(tmpfs_ + "/upper");
    MakeDirs(tmpfs_ + "/work");
    ASSERT_NO_FATAL_FAILURE(InitStore({"--volume-set", "a=" + B("vol-a"), "--volume-set",
                                       "b=" + B("vol-b"), "--vv-size", "16M"}));
  }

  void TearDown() override {
    if (base_.empty()) return;
    Unmount(/*expect_clean=*/false);
    if (tmpfs_mounted_ && umount2(tmpfs_.c_str(), 0) != 0) umount2(tmpfs_.c_str(), MNT_DETACH);
    MountFixture::TearDown();
  }

  void OnTimeout() override {
    MountFixture::OnTimeout();
    umount2(tmpfs_.c_str(), MNT_DETACH);
  }

  std::string Rules(const std::string& text) {
    const std::string path = base_ + "/rules" + std::to_string(++rules_n_);
    WriteFile(path, text);
    return path;
  }

  std::string MountOptions(const std::string& extra) const {
    std::string o = "lowerdir=" + base_ + "/lower,upperdir=" + tmpfs_ + "/upper,workdir=" + tmpfs_ +
                    "/work,allow_other,store=" + store_;
    return extra.empty() ? o : o + "," + extra;
  }

  // Starts the daemon; true if the mount came up. When it does not,
  // *exit_status gets the daemon's exit status.
  bool StartDaemon(const std::string& extra, int* exit_status,
                   const std::vector<std::string>& env = {}) {
    int status = 0;
    if (daemon_.Start({OvertierBin(), "-f", "-o", MountOptions(extra), mnt_}, env, &status))
      return true;
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }

  void Mount(const std::string& extra = "", const std::vector<std::string>& env = {}) {
    int status = 0;
    ASSERT_TRUE(StartDaemon(extra, &status, env))
        << "no mount (status " << status << ")\n--- daemon log ---\n"
        << Slurp(log_);
  }

  bool IsMountPoint() const { return it::IsMountPoint(mnt_); }

  // `overtier status --json PATH` -> its object.
  json StatusOf(const std::string& path) {
    Result r = Cli({"status", "--json", path});
    EXPECT_EQ(r.rc, 0) << Describe(r);
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    return j.is_array() && j.size() == 1 ? j[0] : json::object();
  }
  std::string StateOf(const std::string& rel) {
    json s = StatusOf(M(rel));
    return s.contains("state") ? s["state"].get<std::string>() : "?";
  }

  // The policy command's JSON output (rc checked by the caller).
  json PolicyJson(const std::vector<std::string>& words, Result* raw = nullptr) {
    std::vector<std::string> w = {"policy"};
    w.insert(w.end(), words.begin(), words.end());
    w.push_back("--json");
    Result r = Cli(w);
    if (raw != nullptr) *raw = r;
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << Describe(r);
    return j.is_object() ? j : json::object();
  }

  // path -> op of the JSON actions.
  static std::map<std::string, std::string> Ops(const json& j) {
    std::map<std::string, std::string> m;
    if (j.contains("actions"))
      for (const json& a : j["actions"]) m[a["path"]] = a["op"];
    return m;
  }

  // Mounts with a periodic policy that archives files of 100 KiB or more,
  // writes one ("a", Payload seed `seed`), and waits until the daemon's run
  // holds at its first file; the run goes on once *hold is removed.
  void MountWithARunHeld(int seed, std::string* hold) {
    const std::string rules = Rules("archive size>=100K\n");
    const std::string pause = B("pause");
    MakeDirs(pause);
    *hold = pause + "/policy-file.hold";
    WriteFile(*hold, "");
    ASSERT_NO_FATAL_FAILURE(
        Mount("policy=" + rules + ",policy_interval=1",
              {"OVERTIER_PAUSE_AT=policy-file", "OVERTIER_PAUSE_DIR=" + pause}));
    WriteFile(M("a"), Payload(300000, seed));
    ASSERT_TRUE(PollUntil([&] { return std::filesystem::exists(pause + "/policy-file.reached"); },
                          std::chrono::seconds(20)))
        << Slurp(log_);
  }

  std::string tmpfs_;
  bool tmpfs_mounted_ = false;
  int rules_n_ = 0;
};

TEST_F(PolicyTest, CheckAndDryRunChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeDirs(M("cold"));
  WriteFile(M("cold/big.dat"), Payload(1 << 20, 1));
  WriteFile(M("hot.bin"), Payload(600 << 10, 2));
  WriteFile(M("small.txt"), "tiny");
  const std::string rules = Rules("archive size>=512K\nrelease path=cold/*\n");

  Result r = Cli({"policy", "check", "--rules", rules, mnt_});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "would archive " + M("hot.bin") + " (600.0 KiB; rule line 1)"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "would archive+release " + M("cold/big.dat"))) << r.out;
  EXPECT_TRUE(Contains(r.out, "policy check: 3 files, would archive 2, would release 1 (1.0 MiB)"))
      << r.out;
  EXPECT_FALSE(Contains(r.out, "small.txt"));

  json j = PolicyJson({"run", "--dry-run", "--rules", rules, mnt_}, &r);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["files"], 3u);
  EXPECT_EQ(Ops(j), (std::map<std::string, std::string>{{M("cold/big.dat"), "archive+release"},
                                                        {M("hot.bin"), "archive"}}));
  for (const json& a : j["actions"]) EXPECT_EQ(a["result"], "planned");
  EXPECT_TRUE(j["usage_after"].is_null());

  for (const char* f : {"cold/big.dat", "hot.bin", "small.txt"})
    EXPECT_EQ(StateOf(f), "resident") << f;
}

// A user's file named with an escape sequence: on the administrator's
// terminal `policy check` shows it quoted (tools/shown_name.h), into a pipe
// as it is.
TEST_F(PolicyTest, CheckQuotesNamesOnATerminal) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string name = "x\x1b[2Jy";
  WriteFile(M(name), Payload(600 << 10, 2));
  const std::string rules = Rules("archive size>=512K\n");
  Result r = CliOnTerminal({"policy", "check", "--rules", rules, mnt_});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "would archive '" + M("x") + "'$'\\033''[2Jy' (600.0 KiB;")) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  r = Cli({"policy", "check", "--rules", rules, mnt_});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "would archive " + M(name) + " (600.0 KiB;")) << r.out;
}

TEST_F(PolicyTest, RunArchivesAndReleasesWhatRulesSelect) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeDirs(M("cold/deep"));
  MakeDirs(M("hot"));
  const std::string a = Payload(2 << 20, 3), b = Payload(1 << 20, 4), c = Payload(1 << 20, 5);
  WriteFile(M("cold/a.dat"), a);
  WriteFile(M("cold/deep/b.dat"), b);
  WriteFile(M("hot/c.dat"), c);
  WriteFile(M("small.txt"), "tiny");
  ASSERT_EQ(symlink("cold", M("link").c_str()), 0);  // never followed
  const std::string rules = Rules(
      "# big files go to the store, cold ones leave the disk\n"
      "archive size>=1M\n"
      "release keep=64K path=cold/*\n");

  Result r = Cli({"policy", "run", "--rules", rules, mnt_});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archive " + M("hot/c.dat"))) << r.out;
  EXPECT_TRUE(Contains(r.out, "archive+release " + M("cold/a.dat"))) << r.out;
  // archive+release counts in both.
  EXPECT_TRUE(Contains(r.out, "policy run: 4 files, archived 3, released 2")) << r.out;

  for (const char* f : {"cold/a.dat", "cold/deep/b.dat"}) {
    json s = StatusOf(M(f));
    EXPECT_EQ(s["state"], "released") << f << s.dump();
    EXPECT_EQ(s["resident_bytes"], 64u << 10) << f;
  }
  EXPECT_EQ(StateOf("hot/c.dat"), "archived");
  EXPECT_EQ(StateOf("small.txt"), "resident");
  // Transparent: the contents are all there.
  EXPECT_TRUE(ReadFile(M("cold/a.dat")) == a);
  EXPECT_TRUE(ReadFile(M("cold/deep/b.dat")) == b);

  // The reads brought the files back (once their restores end, they are
  // archived and resident); the next run releases them again, archiving
  // nothing.
  ASSERT_TRUE(PollUntil(
      [&] {
        return StateOf("cold/a.dat") == "archived" && StateOf("cold/deep/b.dat") == "archived";
      },
      std::chrono::seconds(30)));
  json j = PolicyJson({"run", "--rules", rules, mnt_}, &r);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(j["archived"], 0u);
  EXPECT_EQ(Ops(j), (std::map<std::string, std::string>{{M("cold/a.dat"), "release"},
                                                        {M("cold/deep/b.dat"), "release"}}));
  for (const json& a : j["actions"]) EXPECT_EQ(a["result"], "done") << a.dump();
  // And then there is nothing left to do.
  j = PolicyJson({"run", "--rules", rules, mnt_}, &r);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(j["actions"].empty()) << j.dump();

  // Walking a subdirectory: globs are relative to it ("deep/*" does not
  // match from the mount point), and keep=0 frees the 64 KiB left.
  const std::string sub = Rules("release path=deep/*\n");
  j = PolicyJson({"check", "--rules", sub, M("cold")}, &r);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(j["files"], 2u);
  EXPECT_EQ(Ops(j), (std::map<std::string, std::string>{{M("cold/deep/b.dat"), "release"}}));
  EXPECT_EQ(j["actions"][0]["freeing"], 64u << 10);
  j = PolicyJson({"check", "--rules", sub, mnt_}, &r);
  EXPECT_TRUE(j["actions"].empty()) << j.dump();
}

TEST_F(PolicyTest, AgeAndOwnerRules) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("old"), Payload(100000, 6));
  WriteFile(M("new"), Payload(100000, 7));
  WriteFile(M("theirs"), Payload(100000, 8));
  const time_t now = time(nullptr);
  it::SetTimes(M("old"), now - 40 * 86400, now - 40 * 86400);
  ASSERT_EQ(chown(M("theirs").c_str(), kNobody, kNobody), 0);

  json j = PolicyJson({"run", "--rules", Rules("archive atime>30d\nrelease owner=nobody\n"), mnt_});
  EXPECT_EQ(Ops(j), (std::map<std::string, std::string>{{M("old"), "archive"},
                                                        {M("theirs"), "archive+release"}}));
  EXPECT_EQ(StateOf("old"), "archived");
  EXPECT_EQ(StateOf("new"), "resident");
  EXPECT_EQ(StateOf("theirs"), "released");

  // mtime, and a numeric uid with !=.
  j = PolicyJson({"check", "--rules", Rules("release mtime<1d owner!=65534\n"), mnt_});
  EXPECT_EQ(Ops(j), (std::map<std::string, std::string>{{M("new"), "archive+release"}}));
}

TEST_F(PolicyTest, PinsAreHonoured) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const char* f : {"p1.dat", "p2.dat", "p3.dat"}) WriteFile(M(f), Payload(200000, 9));
  ASSERT_EQ(setxattr(M("p2.dat").c_str(), kNoRelease, "1", 1, 0), 0) << std::strerror(errno);
  const std::string rules = Rules("release path=*.dat\npin path=p1.dat\n");
  Result r = Cli({"policy", "run", "--rules", rules, mnt_});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "released 1 (")) << r.out;
  EXPECT_TRUE(Contains(r.out, "2 pinned")) << r.out;
  EXPECT_EQ(StateOf("p1.dat"), "resident");
  EXPECT_EQ(StateOf("p2.dat"), "resident");
  EXPECT_EQ(StateOf("p3.dat"), "released");

  // An archived file pinned later is not released either.
  ASSERT_EQ(Cli({"archive", M("p1.dat"), M("p2.dat")}).rc, 0);
  json j = PolicyJson({"run", "--rules", rules, mnt_});
  EXPECT_TRUE(j["actions"].empty()) << j.dump();
  EXPECT_EQ(j["pinned"], 1u);
  EXPECT_EQ(j["norelease"], 1u);
  EXPECT_EQ(StateOf("p2.dat"), "archived");
  // Unpinned: released by the next run.
  ASSERT_EQ(removexattr(M("p2.dat").c_str(), kNoRelease), 0) << std::strerror(errno);
  j = PolicyJson({"run", "--rules", rules, mnt_});
  EXPECT_EQ(Ops(j), (std::map<std::string, std::string>{{M("p2.dat"), "release"}}));
  EXPECT_EQ(StateOf("p2.dat"), "released");

  // chattr +i pins as well (its upper file could not be punched): not
  // even tried, counted with the norelease ones.
  WriteFile(M("p4.dat"), Payload(200000, 10));
  {
    it::Fd fd(open(M("p4.dat").c_str(), O_RDONLY | O_NONBLOCK));
    int flag = FS_IMMUTABLE_FL;
    ASSERT_EQ(ioctl(fd.get(), FS_IOC_SETFLAGS, &flag), 0) << std::strerror(errno);
  }
  j = PolicyJson({"run", "--rules", rules, mnt_});
  EXPECT_TRUE(j["actions"].empty()) << j.dump();
  EXPECT_EQ(j["norelease"], 1u) << j.dump();
  EXPECT_EQ(StateOf("p4.dat"), "resident");
  {
    it::Fd fd(open(M("p4.dat").c_str(), O_RDONLY | O_NONBLOCK));
    int none = 0;
    ASSERT_EQ(ioctl(fd.get(), FS_IOC_SETFLAGS, &none), 0) << std::strerror(errno);
  }
}

TEST_F(PolicyTest, NoReleaseXattrIsRootOnly) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("f"), "data");
  ASSERT_EQ(chown(M("f").c_str(), kNobody, kNobody), 0);  // nobody may write it
  // Users cannot set it, nor forge any other user.overtier.* name.
  EXPECT_EQ(AsUser(kNobody, [&] { return setxattr(M("f").c_str(), kNoRelease, "1", 1, 0); }),
            EPERM);
  EXPECT_EQ(
      AsUser(kNobody, [&] { return setxattr(M("f").c_str(), "user.overtier.state", "x", 1, 0); }),
      EPERM);
  EXPECT_EQ(AsUser(kNobody, [&] { return setxattr(M("f").c_str(), "user.mine", "1", 1, 0); }), 0);
  // Root can set it; everybody reads and lists it.
  ASSERT_EQ(setxattr(M("f").c_str(), kNoRelease, "yes", 3, 0), 0) << std::strerror(errno);
  char buf[64];
  EXPECT_EQ(getxattr(M("f").c_str(), kNoRelease, buf, sizeof buf), 3);
  EXPECT_EQ(AsUser(kNobody,
                   [&] {
                     char b[64];
                     ssize_t n = getxattr(M("f").c_str(), kNoRelease, b, sizeof b);
                     if (n != 3 || std::memcmp(b, "yes", 3) != 0) return errno = EBADMSG, -1;
                     n = listxattr(M("f").c_str(), b, sizeof b);
                     if (n < 0) return -1;
                     std::string names(b, n);
                     return names.find(kNoRelease) == std::string::npos ? errno = ENOENT, -1 : 0;
                   }),
            0);
  // Users cannot remove it; root can.
  EXPECT_EQ(AsUser(kNobody, [&] { return removexattr(M("f").c_str(), kNoRelease); }), EPERM);
  EXPECT_EQ(getxattr(M("f").c_str(), kNoRelease, buf, sizeof buf), 3);
  ASSERT_EQ(removexattr(M("f").c_str(), kNoRelease), 0) << std::strerror(errno);
  EXPECT_EQ(getxattr(M("f").c_str(), kNoRelease, buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  // Every other user.overtier.* name stays out of reach, root included.
  EXPECT_EQ(setxattr(M("f").c_str(), "user.overtier.nlink", "1", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(setxattr(M("f").c_str(), "user.overtier.noreleasex", "1", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  // It is stored on the upper file as is.
  EXPECT_EQ(setxattr(M("f").c_str(), kNoRelease, "", 0, 0), 0);
  EXPECT_EQ(getxattr((tmpfs_ + "/upper/f").c_str(), kNoRelease, buf, sizeof buf), 0);
}

TEST_F(PolicyTest, WatermarksReleaseLeastRecentlyUsedFirst) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  constexpr size_t kFile = 8 << 20;
  const time_t now = time(nullptr);
  for (int i = 1; i <= 6; ++i) {  // f1 the least recently used
    const std::string f = M("f" + std::to_string(i) + ".bin");
    WriteFile(f, Payload(kFile, 10 + i));
    it::SetTimes(f, now - (10 - i) * 86400, now - 20 * 86400);
  }
  WriteFile(M("notes.txt"), Payload(kFile, 99));  // no release rule selects it
  it::SetTimes(M("notes.txt"), now - 100 * 86400, now - 100 * 86400);
  struct statvfs sv;
  ASSERT_EQ(statvfs(mnt_.c_str(), &sv), 0);
  const double used = static_cast<double>(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
  const double avail = static_cast<double>(sv.f_bavail) * sv.f_frsize;
  const double pct = 100 * used / (used + avail);
  ASSERT_GT(pct, 50) << "7 x 8 MiB on a 64 MiB tmpfs";
  ASSERT_LT(pct, 95);

  // Below the high watermark: nothing.
  json j = PolicyJson(
      {"check", "--rules", Rules("watermark high=95 low=10\nrelease path=*.bin\n"), mnt_});
  EXPECT_TRUE(j["actions"].empty()) << j.dump();
  EXPECT_EQ(j["watermarks"]["over_high"], false);

  // Above it: the oldest files until the usage is expected below `low`.
  const double low = 40;
  const double need = used - (used + avail) * low / 100;
  const size_t expect = static_cast<size_t>(std::ceil(need / kFile));
  ASSERT_GE(expect, 1u);
  ASSERT_LE(expect, 5u);
  const std::string rules = Rules("watermark high=50% low=40%\nrelease path=*.bin\n");
  j = PolicyJson({"check", "--rules", rules, mnt_});
  ASSERT_EQ(j["actions"].size(), expect) << j.dump();
  for (size_t i = 0; i < expect; ++i) {
    EXPECT_EQ(j["actions"][i]["path"], M("f" + std::to_string(i + 1) + ".bin")) << j.dump();
    EXPECT_EQ(j["actions"][i]["watermark"], true);
  }
  Result r;
  j = PolicyJson({"run", "--rules", rules, mnt_}, &r);
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(j["released"], expect);
  for (size_t i = 1; i <= 6; ++i)
    EXPECT_EQ(StateOf("f" + std::to_string(i) + ".bin"), i <= expect ? "released" : "resident")
        << i;
  EXPECT_EQ(StateOf("notes.txt"), "resident");
  ASSERT_TRUE(j["usage_after"].is_object()) << j.dump();
  EXPECT_LT(j["usage_after"]["percent"].get<double>(), low) << j.dump();
  ASSERT_EQ(statvfs(mnt_.c_str(), &sv), 0);
  EXPECT_LT(100.0 * (sv.f_blocks - sv.f_bfree) / (sv.f_blocks - sv.f_bfree + sv.f_bavail), low);
  // Under the high watermark now: a second run does nothing.
  j = PolicyJson({"run", "--rules", rules, mnt_});
  EXPECT_TRUE(j["actions"].empty()) << j.dump();
}

TEST_F(PolicyTest, PeriodicModeInTheDaemon) {
  const std::string rules = Rules("archive size>=100K\nrelease path=cold/*\n");
  ASSERT_NO_FATAL_FAILURE(Mount("policy=" + rules + ",policy_interval=1"));
  MakeDirs(M("cold"));
  const std::string data = Payload(300000, 20);
  WriteFile(M("cold/x"), data);
  WriteFile(M("warm"), Payload(300000, 21));
  WriteFile(M("tiny"), "t");
  EXPECT_TRUE(
      PollUntil([&] { return StateOf("cold/x") == "released" && StateOf("warm") == "archived"; },
                std::chrono::seconds(20)))
      << StatusOf(M("cold/x")).dump() << "\n"
      << Slurp(log_);
  EXPECT_EQ(StateOf("tiny"), "resident");
  EXPECT_TRUE(ReadFile(M("cold/x")) == data);
  EXPECT_TRUE(PollUntil([&] { return Contains(Slurp(log_), "overtier: policy: 3 files"); },
                        std::chrono::seconds(10)))
      << Slurp(log_);
  Unmount();
  EXPECT_FALSE(IsMountPoint());
}

// A periodic run holds files of the mount open; an unmount at that moment
// still succeeds (the run walks its own detached clone of the mount), and
// the daemon ends the run and exits once it notices.
TEST_F(PolicyTest, AnUnmountDuringAPeriodicRunSucceeds) {
  std::string hold;
  ASSERT_NO_FATAL_FAILURE(MountWithARunHeld(24, &hold));
  Result r = RunArgs({"fusermount3", "-u", mnt_});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_FALSE(IsMountPoint());
  std::filesystem::remove(hold);
  EXPECT_TRUE(PollUntil([&] { return daemon_.Exited(); }, std::chrono::seconds(20)))
      << "the daemon did not exit after the unmount\n"
      << Slurp(log_);
  Unmount();  // reaps it: a failure unless it exited 0
}

// A periodic run keeps only its own mount alive: another file system of
// the machine, unmounted while the run lasts, is gone at once. (Runs used a
// private copy of the whole mount namespace, which kept every mount of the
// machine alive until the run ended: a container's kernel overlay unmounted
// then stayed "in use", and mounting its upper directory again failed with
// EBUSY.)
TEST_F(PolicyTest, APeriodicRunPinsNoOtherMount) {
  const std::string other = B("other");
  MakeDirs(other);
  ASSERT_EQ(mount("tmpfs", other.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  struct Detach {  // whatever happens below: nothing left mounted
    std::string path;
    ~Detach() { umount2(path.c_str(), MNT_DETACH); }
  } detach{other};
  std::string hold;
  ASSERT_NO_FATAL_FAILURE(MountWithARunHeld(25, &hold));
  ASSERT_EQ(umount2(other.c_str(), 0), 0) << strerror(errno);
  // Every thread of the daemon, the run's included, sees it gone.
  const std::string tasks = "/proc/" + std::to_string(DaemonPid()) + "/task";
  size_t threads = 0;
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    ++threads;
    const std::string info = Slurp(t.path().string() + "/mountinfo");
    EXPECT_FALSE(Contains(info, " " + other + " ")) << t.path() << " still has " << other;
  }
  EXPECT_GT(threads, 1u);
  std::filesystem::remove(hold);
  // The run goes on and finishes its work.
  EXPECT_TRUE(PollUntil([&] { return StateOf("a") == "archived"; }, std::chrono::seconds(20)))
      << Slurp(log_);
}

// An edited rules file takes effect at the next run; a broken edit keeps
// the rules in force.
TEST_F(PolicyTest, PeriodicModeReadsTheRulesAgainWhenEdited) {
  const std::string rules = Rules("archive size>=100K\n");
  ASSERT_NO_FATAL_FAILURE(Mount("policy=" + rules + ",policy_interval=1"));
  WriteFile(M("a"), Payload(300000, 22));
  ASSERT_TRUE(PollUntil([&] { return StateOf("a") == "archived"; }, std::chrono::seconds(20)))
      << Slurp(log_);
  // Replaced the way editors do: a new file renamed over the old one.
  WriteFile(rules + ".new", "archive size>=100K\nrelease path=a\n");
  ASSERT_EQ(rename((rules + ".new").c_str(), rules.c_str()), 0);
  EXPECT_TRUE(PollUntil([&] { return StateOf("a") == "released"; }, std::chrono::seconds(20)))
      << Slurp(log_);
  EXPECT_TRUE(Contains(Slurp(log_), "overtier: policy: rules read again from " + rules))
      << Slurp(log_);
  // Rewritten in place with a mistake: the last good rules go on.
  WriteFile(rules, "archive size>=100K\nfrobnicate all\n");
  EXPECT_TRUE(PollUntil([&] { return Contains(Slurp(log_), ":2: unknown action"); },
                        std::chrono::seconds(20)))
      << Slurp(log_);
  EXPECT_TRUE(Contains(Slurp(log_), "keeping the rules read before")) << Slurp(log_);
  // Gone: the same.
  ASSERT_EQ(unlink(rules.c_str()), 0);
  EXPECT_TRUE(PollUntil(
      [&] {
        return Contains(Slurp(log_), "overtier: policy: " + rules +
                                         ": No such file or directory; keeping the rules read "
                                         "before");
      },
      std::chrono::seconds(20)))
      << Slurp(log_);
  const std::string data = Payload(300000, 23);
  WriteFile(M("b"), data);
  EXPECT_TRUE(PollUntil([&] { return StateOf("b") == "archived"; }, std::chrono::seconds(20)))
      << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("b")) == data);
  Unmount();
  EXPECT_FALSE(IsMountPoint());
}

TEST_F(PolicyTest, DaemonRefusesBadPolicyOptions) {
  const std::string bad = Rules("archive\nfrobnicate all\n");
  int status = 0;
  EXPECT_FALSE(StartDaemon("policy=" + bad, &status));
  EXPECT_EQ(status, 2);
  EXPECT_TRUE(Contains(Slurp(log_), "overtier: policy rules " + bad + ":2: unknown action"))
      << Slurp(log_);
  EXPECT_FALSE(StartDaemon("policy=" + base_ + "/missing", &status));
  EXPECT_EQ(status, 2);
  EXPECT_TRUE(Contains(Slurp(log_), base_ + "/missing: No such file or directory"));
  EXPECT_FALSE(StartDaemon("policy=" + Rules("archive\n") + ",policy_interval=0", &status));
  EXPECT_EQ(status, 2);
  EXPECT_TRUE(Contains(Slurp(log_), "policy_interval= takes a number of seconds")) << Slurp(log_);
  EXPECT_FALSE(IsMountPoint());
}

}  // namespace
}  // namespace overtier::it
