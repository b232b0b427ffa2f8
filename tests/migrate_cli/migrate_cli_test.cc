// The migration commands as users run them: the `overtier` binary
// (OVERTIER_BIN) on files of a union mounted with a store
// (-o lowerdir=L,upperdir=U,workdir=W,store=S, the store made by `overtier
// store init` with two volume sets, so archives have two copies): archive,
// release, restore, status and ls -l, their output and exit codes, and the
// files' contents and stat through it all.
//
// MigrateCliErrors needs no mount: paths that are not on an overtier mount
// and bad usage. MigrateCliTest needs root (FUSE mounts, allow_other, the
// EPERM check runs the CLI as nobody). Each test gets a fresh directory
// under /tmp, the daemon runs in the foreground as the test's child, a
// watchdog kills it (and detaches the mount) if a test hangs, and TearDown
// always unmounts.
//
//   OVERTIER_BIN            the overtier binary (set by meson)
//   OVERTIER_TEST_TIMEOUT   per-test limit in seconds (default 120)
//   OVERTIER_TEST_KEEP=1    keep the temp directory
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../integration/daemon_fixture.h"
#include "../integration/harness.h"
#include "migrate/control_client.h"
#include "overtier/control.h"

namespace overtier::it {
namespace {

using nlohmann::json;

// The lines of `ls -l` output that end with " NAME" (or " NAME -> ...").
std::string LsLine(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const std::string tail = " " + name;
    if (line.size() > tail.size() &&
        line.compare(line.size() - tail.size(), tail.size(), tail) == 0)
      return line;
    if (line.find(tail + " -> ") != std::string::npos) return line;
  }
  return "";
}

// ---------------------------------------------------------------------------
// Without a mount

class MigrateCliErrors : public it::TempDirTest {
 protected:
  MigrateCliErrors() : TempDirTest("migcli") {}
};

TEST_F(MigrateCliErrors, NotOnAnOvertierMount) {
  WriteFile(dir_ + "/a", "aaa");
  WriteFile(dir_ + "/b", "bbb");
  for (const char* cmd : {"archive", "release", "restore", "status"}) {
    Result r = Cli({cmd, dir_ + "/a", dir_ + "/b"});
    EXPECT_EQ(r.rc, 1) << cmd << ": " << Describe(r);
    // Each file named, the second one tried after the first failed.
    EXPECT_TRUE(Contains(r.err, "overtier: " + dir_ + "/a is not on an overtier mount")) << cmd;
    EXPECT_TRUE(Contains(r.err, "overtier: " + dir_ + "/b is not on an overtier mount")) << cmd;
  }
  Result r = Cli({"archive", "-r", dir_});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, dir_ + "/b is not on an overtier mount"));
  EXPECT_TRUE(Contains(r.out, "archived 0 files")) << r.out;

  // ls -l lists the files all the same, with '?' for the unknown state.
  r = Cli({"ls", "-l", dir_});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_EQ(LsLine(r.out, "a").substr(0, 12), "? -rw-r--r--") << r.out;
  EXPECT_TRUE(Contains(r.err, dir_ + "/a is not on an overtier mount"));

  // A missing file is reported, the next one still tried.
  r = Cli({"status", dir_ + "/nosuch", dir_ + "/a"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(Contains(r.err, dir_ + "/nosuch: No such file or directory")) << r.err;
  EXPECT_TRUE(Contains(r.err, dir_ + "/a is not on an overtier mount")) << r.err;

  // A directory without -r.
  r = Cli({"archive", dir_});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(Contains(r.err, dir_ + ": is a directory (use -r)")) << r.err;
}

TEST_F(MigrateCliErrors, NonRegularFilesAreSkippedNeverFollowed) {
  ASSERT_EQ(mkfifo((dir_ + "/fifo").c_str(), 0644), 0);
  ASSERT_EQ(symlink("/etc/passwd", (dir_ + "/link").c_str()), 0);
  // Named: a note each, nothing failed, and the fifo open did not hang
  // (RunArgs's alarm would kill it: rc 142).
  Result r = Cli({"archive", dir_ + "/fifo", dir_ + "/link"});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.err, dir_ + "/fifo: not a regular file, skipped"));
  EXPECT_TRUE(Contains(r.err, dir_ + "/link: not a regular file, skipped"));
  r = Cli({"status", "-r", dir_});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  r = Cli({"restore", "-r", dir_});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "2 non-regular entries skipped")) << r.out;

  r = Cli({"ls", "-l", dir_});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(LsLine(r.out, "link"), "- lrwxrwxrwx ")) << r.out;
  EXPECT_TRUE(Contains(LsLine(r.out, "link"), " link -> /etc/passwd")) << r.out;
  EXPECT_TRUE(Contains(LsLine(r.out, "fifo"), "- prw-r--r-- ")) << r.out;
}

TEST_F(MigrateCliErrors, BadUsage) {
  WriteFile(dir_ + "/a", "aaa");
  const std::string a = dir_ + "/a";
  const std::vector<std::vector<std::string>> bad = {
      {"archive"},
      {"release"},
      {"restore"},
      {"status"},
      {"archive", "--keep", "4K", a},  // --keep needs --release
      {"archive", "--release", "--keep", "12Q", a},
      {"release", "--keep", "-1", a},
      {"release", "--keep", "99999999999T", a},
      {"restore", "--range", "5-2", a},
      {"restore", "--range", "5", a},
      {"restore", "--range", "x-y", a},
      {"status", "--frobnicate", a},
      {"ls", "--frobnicate"},
  };
  for (const auto& words : bad) {
    Result r = Cli(words);
    std::string line;
    for (const auto& w : words) line += w + " ";
    EXPECT_EQ(r.rc, 2) << line << Describe(r);
    EXPECT_FALSE(r.err.empty()) << line;
  }
  Result r = Cli({"archive", "--help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_TRUE(Contains(r.out, "--release"));
}

// ---------------------------------------------------------------------------
// On a mount

class MigrateCliTest : public it::MountFixture {
 protected:
  MigrateCliTest()
      : MountFixture("migcli-mnt", "needs root (FUSE mounts with allow_other)",
                     {"lower", "upper", "work", "small"}) {}

  void Prepare() override {
    Result r;
    ASSERT_NO_FATAL_FAILURE(InitStore(
        {"--volume-set", "a=" + B("vol-a"), "--volume-set", "b=" + B("vol-b"), "--vv-size", "4M"},
        &r));
    ASSERT_TRUE(Contains(r.out, "copies      2")) << r.out;
  }

  void TearDown() override {
    Unmount(/*expect_clean=*/false);
    if (small_mounted_) umount2(B("small").c_str(), MNT_DETACH);
    MountFixture::TearDown();
  }

  // A tmpfs of `size` (mount's size= syntax) at B("small"), detached at
  // TearDown: a disk to fill up.
  void MountSmallDisk(const std::string& size) {
    ASSERT_EQ(mount("tmpfs", B("small").c_str(), "tmpfs", 0, ("size=" + size).c_str()), 0)
        << strerror(errno);
    small_mounted_ = true;
  }

  std::string U(const std::string& rel) const { return base_ + "/upper/" + rel; }

  void Mount(bool with_store = true) {
    std::string opts = "lowerdir=" + base_ + "/lower,upperdir=" + base_ +
                       "/upper,workdir=" + base_ + "/work,allow_other";
    if (with_store) opts += ",store=" + store_;
    MountDaemon(opts);
  }

  // `overtier status --json --store S PATHS...` -> its array.
  json StatusOf(const std::vector<std::string>& paths, bool recursive = false) {
    std::vector<std::string> words = {"status", "--json", "--store", store_};
    if (recursive) words.push_back("-r");
    words.insert(words.end(), paths.begin(), paths.end());
    Result r = Cli(words);
    EXPECT_EQ(r.rc, 0) << Describe(r);
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_array()) << r.out;
    return j.is_array() ? j : json::array();
  }
  json StatusOf(const std::string& path) {
    json a = StatusOf(std::vector<std::string>{path});
    return a.size() == 1 ? a[0] : json::object();
  }

  bool small_mounted_ = false;
};

TEST_F(MigrateCliTest, ArchiveReleaseRestoreOneFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(1 << 20, 1);
  WriteFile(M("big"), data);
  it::SetTimes(M("big"), 1500000000, 1600000000);
  struct stat before = it::Lstat(M("big"));

  Result r = Cli({"ls", "-l", mnt_});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(LsLine(r.out, "big").substr(0, 12), "- -rw-r--r--") << r.out;
  json s = StatusOf(M("big"));
  EXPECT_EQ(s["state"], "resident");
  EXPECT_EQ(s["flag"], "-");
  EXPECT_EQ(s["size"], 1u << 20);
  EXPECT_EQ(s["resident_bytes"], 1u << 20);
  EXPECT_TRUE(s["bfid"].is_null());

  r = Cli({"archive", M("big")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archived 1 file (1.0 MiB)")) << r.out;
  s = StatusOf(M("big"));
  EXPECT_EQ(s["state"], "archived") << s.dump();
  EXPECT_EQ(s["flag"], "a");
  EXPECT_EQ(s["flags"], json({"archived"}));
  EXPECT_EQ(s["archive_size"], 1u << 20);
  EXPECT_EQ(s["barrier"], 1u << 20);
  EXPECT_EQ(s["copies"], 2u);
  EXPECT_TRUE(s["bfid"].is_string());
  EXPECT_TRUE(s["archive_time_ns"].is_number());
  r = Cli({"ls", "-l", mnt_});
  EXPECT_EQ(LsLine(r.out, "big").substr(0, 12), "a -rw-r--r--") << r.out;
  // Archiving again: nothing to do, not an error.
  r = Cli({"archive", M("big")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "1 of them already archived")) << r.out;

  r = Cli({"release", "--keep", "4K", M("big")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "released 1 file")) << r.out;
  s = StatusOf(M("big"));
  EXPECT_EQ(s["state"], "released") << s.dump();
  EXPECT_EQ(s["flag"], "A");
  EXPECT_EQ(s["barrier"], 4096u);
  EXPECT_EQ(s["resident_bytes"], 4096u);
  r = Cli({"ls", "-l", mnt_});
  EXPECT_EQ(LsLine(r.out, "big").substr(0, 12), "A -rw-r--r--") << r.out;
  // Text form too.
  r = Cli({"status", M("big")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, M("big") + ": released (A)\n"));
  EXPECT_TRUE(Contains(r.out, "  resident   4096 bytes, barrier 4096\n"));

  // Users see the same file; the upper file really lost its blocks.
  struct stat after = it::Lstat(M("big"));
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_LT(after.st_blocks * 512, 256 * 1024) << "st_blocks " << after.st_blocks;
  EXPECT_LT(it::Lstat(U("big")).st_blocks * 512, 256 * 1024);

  r = Cli({"restore", "--wait", M("big")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "restored 1 file")) << r.out;
  s = StatusOf(M("big"));
  EXPECT_EQ(s["state"], "archived") << s.dump();
  EXPECT_EQ(s["resident_bytes"], 1u << 20);
  EXPECT_TRUE(s["restore_time_ns"].is_number());
  EXPECT_TRUE(ReadFile(M("big")) == data) << "content differs after restore";
  EXPECT_EQ(it::Lstat(M("big")).st_mtim.tv_sec, before.st_mtim.tv_sec);
}

// A release that frees nothing (the file within --keep, or empty) is no
// failure, but the summary says so: "released 1 file" alone read as if
// its space were free while `ls -l` still showed `a`.
TEST_F(MigrateCliTest, AReleaseThatFreesNothingSaysSo) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("small"), Payload(100000, 7));
  WriteFile(M("empty"), "");
  Result r = Cli({"archive", "--release", "--keep", "1M", M("small"), M("empty")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archived and released 2 files")) << r.out;
  EXPECT_TRUE(Contains(r.out, "2 of them kept whole (within --keep, or empty)")) << r.out;
  EXPECT_EQ(StatusOf(M("small"))["state"], "archived");
  r = Cli({"release", "--keep", "64K", M("small")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "released 1 file")) << r.out;
  EXPECT_FALSE(Contains(r.out, "kept whole")) << r.out;
  EXPECT_EQ(StatusOf(M("small"))["state"], "released");
  EXPECT_TRUE(ReadFile(M("small")) == Payload(100000, 7));
}

TEST_F(MigrateCliTest, RangeRestoreAndBackgroundRestore) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(2 << 20, 2);
  WriteFile(M("f"), data);
  Result r = Cli({"archive", "--release", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archived and released 1 file")) << r.out;
  json s = StatusOf(M("f"));
  EXPECT_EQ(s["state"], "released") << s.dump();
  EXPECT_EQ(s["resident_bytes"], 0u);

  // [1M, 1M + 64K): resident when --wait returns, and only that (--range
  // sets RANGE_ONLY: the rest of the file is not restored behind it).
  r = Cli({"restore", "--wait", "--range", "1M-1088K", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  s = StatusOf(M("f"));
  EXPECT_GE(s["resident_bytes"].get<uint64_t>(), 64u << 10) << s.dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  s = StatusOf(M("f"));
  EXPECT_LT(s["resident_bytes"].get<uint64_t>(), 1u << 20) << s.dump();
  EXPECT_EQ(s["state"], "released") << s.dump();
  {
    int fd = open(M("f").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::string part(64 << 10, '\0');
    ASSERT_EQ(pread(fd, part.data(), part.size(), 1 << 20), static_cast<ssize_t>(part.size()));
    close(fd);
    EXPECT_TRUE(part == data.substr(1 << 20, 64 << 10));
  }
  auto archived = [&] { return StatusOf(M("f"))["state"] == "archived"; };
  // Whatever the daemon restores in the background, a full restore ends it.
  r = Cli({"restore", "--wait", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  ASSERT_TRUE(archived()) << StatusOf(M("f")).dump();

  // In the background: returns at once, the file is whole again later.
  r = Cli({"release", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(StatusOf(M("f"))["resident_bytes"], 0u);
  r = Cli({"restore", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "restore started for 1 file")) << r.out;
  EXPECT_TRUE(PollUntil(archived, std::chrono::seconds(30))) << StatusOf(M("f")).dump();
  EXPECT_TRUE(ReadFile(M("f")) == data);
}

TEST_F(MigrateCliTest, RecursiveTreeAndLsLong) {
  MakeDirs(base_ + "/lower/ro");
  const std::string low = Payload(30000, 9);
  WriteFile(base_ + "/lower/ro/low", low);
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeDirs(M("t/sub/deeper"));
  const std::string a = Payload(100000, 3), b = Payload(5000, 4), c = Payload(300000, 5);
  WriteFile(M("t/a"), a);
  WriteFile(M("t/sub/b"), b);
  WriteFile(M("t/sub/deeper/c"), c);
  ASSERT_EQ(symlink("../..", M("t/sub/up").c_str()), 0);  // must not be followed
  ASSERT_EQ(mkfifo(M("t/fifo").c_str(), 0644), 0);
  WriteFile(M("outside"), "not under t");

  Result r = Cli({"archive", "--release", "-r", M("t")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archived and released 3 files")) << r.out;
  EXPECT_TRUE(Contains(r.out, "2 non-regular entries skipped")) << r.out;

  json all = StatusOf({M("t")}, /*recursive=*/true);
  ASSERT_EQ(all.size(), 3u) << all.dump();
  EXPECT_EQ(all[0]["path"], M("t/a"));  // sorted walk
  EXPECT_EQ(all[1]["path"], M("t/sub/b"));
  EXPECT_EQ(all[2]["path"], M("t/sub/deeper/c"));
  for (const json& f : all) {
    EXPECT_EQ(f["state"], "released") << f.dump();
    EXPECT_EQ(f["copies"], 2u);
  }
  EXPECT_EQ(StatusOf(M("outside"))["state"], "resident");  // the symlink was not followed

  r = Cli({"ls", "-l", "-r", M("t")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, M("t") + ":\n"));
  EXPECT_TRUE(Contains(r.out, M("t/sub/deeper") + ":\n"));
  EXPECT_EQ(LsLine(r.out, "a").substr(0, 2), "A ") << r.out;
  EXPECT_EQ(LsLine(r.out, "c").substr(0, 2), "A ") << r.out;
  EXPECT_TRUE(Contains(LsLine(r.out, "a"), " 100000 ")) << r.out;
  EXPECT_TRUE(Contains(LsLine(r.out, "up"), "- lrwxrwxrwx")) << r.out;
  EXPECT_TRUE(Contains(LsLine(r.out, "up"), " up -> ../..")) << r.out;
  EXPECT_TRUE(Contains(LsLine(r.out, "deeper"), "- drwxr-xr-x")) << r.out;

  // A file only in the lower layer: resident.
  r = Cli({"ls", "-l", M("ro/low")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(r.out.substr(0, 12), "- -rw-r--r--") << r.out;

  // Reads bring the data back (the read path), restore -r the rest.
  EXPECT_TRUE(ReadFile(M("t/sub/b")) == b);
  r = Cli({"restore", "--wait", "-r", M("t")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "restored 3 files")) << r.out;
  for (const json& f : StatusOf({M("t")}, true)) EXPECT_EQ(f["state"], "archived") << f.dump();
  EXPECT_TRUE(ReadFile(M("t/a")) == a);
  EXPECT_TRUE(ReadFile(M("t/sub/deeper/c")) == c);
  EXPECT_TRUE(ReadFile(M("ro/low")) == low);
}

// A tree of a mount holds files of its lower layers, which have nothing to
// archive or release (their bytes are in a read-only layer): a recursive
// archive or release counts them and succeeds; a lower file named on the
// command line is an error, as the user asked for that very file.
TEST_F(MigrateCliTest, FilesOnlyInALowerLayerAreCountedInAWalk) {
  MakeDirs(base_ + "/lower/t/sub");
  const std::string low = Payload(30000, 11);
  WriteFile(base_ + "/lower/t/low", low);
  WriteFile(base_ + "/lower/t/sub/low2", low);
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string up = Payload(20000, 12);
  WriteFile(M("t/up"), up);

  Result r = Cli({"archive", "--release", "-r", M("t")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archived and released 1 file")) << r.out;
  EXPECT_TRUE(Contains(r.out, "2 only in lower layers")) << r.out;
  EXPECT_FALSE(Contains(r.out, "failed")) << r.out;
  EXPECT_EQ(StatusOf(M("t/up"))["state"], "released");
  r = Cli({"release", "-r", M("t")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "2 only in lower layers")) << r.out;

  json low_status = StatusOf(M("t/low"));
  EXPECT_EQ(low_status["state"], "resident") << low_status.dump();
  EXPECT_EQ(low_status["flags"], json::array({"lower"})) << low_status.dump();

  r = Cli({"archive", M("t/low")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "only in a lower layer")) << r.err;
  EXPECT_TRUE(ReadFile(M("t/low")) == low);
  EXPECT_TRUE(ReadFile(M("t/up")) == up);
}

// File names are bytes: a name in Latin-1, one with a new line, one of 255
// bytes go through archive, release, status (text and JSON), ls -l and
// restore. `status --json` ended in std::terminate on the Latin-1 name
// (nlohmann::json refuses to write bytes that are not UTF-8); it now
// writes U+FFFD and the exact bytes in `path_hex`.
TEST_F(MigrateCliTest, OddFileNames) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeDirs(M("odd"));
  const std::vector<std::string> names = {"caf\xe9", "two\nlines", std::string(255, 'n'), "-dash",
                                          " space "};
  std::vector<std::string> data;
  for (size_t i = 0; i < names.size(); ++i) {
    data.push_back(Payload(70000 + i, 20 + static_cast<int>(i)));
    WriteFile(M("odd/" + names[i]), data.back());
  }
  Result r = Cli({"archive", "--release", "-r", M("odd")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "archived and released 5 files")) << r.out;

  r = Cli({"status", "--json", "-r", M("odd")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  json all = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(all.is_array()) << r.out;
  ASSERT_EQ(all.size(), names.size()) << r.out;
  size_t with_hex = 0;
  for (const json& f : all) {
    EXPECT_EQ(f["state"], "released") << f.dump();
    if (!f.contains("path_hex")) continue;
    ++with_hex;
    EXPECT_EQ(f["path"], M("odd/caf\xef\xbf\xbd"));
    std::string hex;
    for (unsigned char c : M("odd/caf\xe9")) {
      char b[3];
      snprintf(b, sizeof b, "%02x", c);
      hex += b;
    }
    EXPECT_EQ(f["path_hex"], hex);
  }
  EXPECT_EQ(with_hex, 1u);

  r = Cli({"status", M("odd/caf\xe9"), M("odd/two\nlines")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, M("odd/caf\xe9") + ": released (A)\n")) << r.out;
  r = Cli({"ls", "-l", M("odd")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(LsLine(r.out, std::string(255, 'n')).substr(0, 2), "A ") << r.out;
  EXPECT_EQ(LsLine(r.out, "caf\xe9").substr(0, 2), "A ") << r.out;

  r = Cli({"restore", "--wait", "-r", M("odd")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "restored 5 files")) << r.out;
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_TRUE(ReadFile(M("odd/" + names[i])) == data[i]) << i;
}

// A user names files with an escape sequence or a new line; the
// administrator lists them. On a terminal, ls -l and status quote such
// names as GNU ls does (shell-escape style), so nothing reaches the
// terminal as a control and no line is forged; into a pipe they stay as
// they are, for scripts. Messages on stderr escape them either way.
TEST_F(MigrateCliTest, NamesThatCouldDriveATerminalAreQuotedOnOne) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  MakeDirs(M("q"));
  const std::string esc = "esc\x1b]0;owned\x07\x1b[2J", nl = "a\nb";
  WriteFile(M("q/" + esc), Payload(5000, 1));
  WriteFile(M("q/" + nl), Payload(5000, 2));
  WriteFile(M("q/plain"), Payload(5000, 3));
  ASSERT_EQ(symlink(nl.c_str(), M("q/link").c_str()), 0);
  ASSERT_EQ(Cli({"archive", M("q/" + esc)}).rc, 0);
  auto controls = [](const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c < 0x20 && c != '\n') || c == 0x7f;
    return n;
  };

  Result r = CliOnTerminal({"ls", "-l", M("q")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(controls(r.out), 0u) << r.out;
  EXPECT_EQ(LsLine(r.out, "'esc'$'\\033'']0;owned'$'\\a\\033''[2J'").substr(0, 2), "a ") << r.out;
  EXPECT_TRUE(Contains(r.out, " 'a'$'\\n''b'\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "  plain\n")) << r.out;  // aligned with the quoted names
  EXPECT_TRUE(Contains(r.out, "  link -> 'a'$'\\n''b'\n")) << r.out;
  r = CliOnTerminal({"status", M("q/" + esc)});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(
      Contains(r.out, "'" + M("q/esc") + "'$'\\033'']0;owned'$'\\a\\033''[2J': archived (a)\n"))
      << r.out;

  // Into a pipe: the bytes themselves, as ls prints them.
  r = Cli({"ls", "-l", M("q")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, " " + esc + "\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, " " + nl + "\n")) << r.out;

  // Messages: escaped on a terminal and in a pipe alike.
  r = Cli({"status", M("q/gone" + esc)});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_EQ(controls(r.err), 0u) << r.err;
  EXPECT_TRUE(Contains(r.err, M("q/goneesc") + "\\033]0;owned\\a\\033[2J: No such file")) << r.err;
}

TEST_F(MigrateCliTest, RefusalsNameTheFileAndGoOn) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("never"), Payload(10000, 6));
  WriteFile(M("ok"), Payload(10000, 7));
  ASSERT_EQ(Cli({"archive", M("ok")}).rc, 0);
  // Releasing a file that was never archived fails; the next file is
  // released all the same.
  Result r = Cli({"release", M("never"), M("ok")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "overtier: " + M("never") + ": release: no valid archive")) << r.err;
  EXPECT_TRUE(Contains(r.out, "released 1 file")) << r.out;
  EXPECT_TRUE(Contains(r.out, "1 failed")) << r.out;
  EXPECT_EQ(StatusOf(M("ok"))["state"], "released");
  EXPECT_EQ(StatusOf(M("never"))["state"], "resident");
}

// A tree in use holds files open by FUSE passthrough (those without a
// record). An archive of one is refused (it would change behind the
// tier's back), but a restore has nothing to do there: `restore -r` of the
// tree restores the released files and reports no failure for the open one.
TEST_F(MigrateCliTest, ARestoreOfATreeInUseSkipsTheOpenResidentFiles) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mkdir(M("d").c_str(), 0755), 0);
  const std::string cold = Payload(200000, 12), hot = Payload(50000, 13);
  WriteFile(M("d/cold"), cold);
  WriteFile(M("d/hot"), hot);
  ASSERT_EQ(Cli({"archive", "--release", M("d/cold")}).rc, 0);
  ASSERT_EQ(StatusOf(M("d/cold"))["state"], "released");
  const int in_use = open(M("d/hot").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(in_use, 0);
  Result r = Cli({"restore", "--wait", "-r", M("d")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_FALSE(Contains(r.err, "busy")) << r.err;
  EXPECT_TRUE(Contains(r.out, "restored 2 files")) << r.out;
  EXPECT_EQ(StatusOf(M("d/cold"))["state"], "archived");
  // Without --wait alike.
  r = Cli({"restore", M("d/hot")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  // The archive of the open file is still held back.
  r = Cli({"archive", M("d/hot")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, M("d/hot") + ": archive: busy")) << r.err;
  // The open descriptor still writes the plain way, and reads it back.
  ASSERT_EQ(pwrite(in_use, "xyz", 3, 10), 3);
  close(in_use);
  std::string want = hot;
  want.replace(10, 3, "xyz");
  EXPECT_EQ(ReadFile(M("d/hot")), want);
  EXPECT_EQ(ReadFile(M("d/cold")), cold);
}

TEST_F(MigrateCliTest, TouchOfAnArchivedFileIsKeptThroughReleaseAndRestore) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(70000, 10);
  WriteFile(M("t"), data);
  ASSERT_EQ(Cli({"archive", M("t")}).rc, 0);
  struct timespec times[2] = {{1000000000, 5}, {1200000000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("t").c_str(), times, 0), 0);
  Result r = Cli({"release", M("t")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  struct stat st;
  ASSERT_EQ(stat(M("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  EXPECT_EQ(ReadFile(M("t")), data);  // restores
  // Once the restore has put the times back (the read is answered first).
  EXPECT_TRUE(
      PollUntil([&] { return StatusOf(M("t"))["state"] == "archived"; }, std::chrono::seconds(20)));
  ASSERT_EQ(stat(M("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
}

// A migration record keeps times as nanoseconds in an int64_t: 1677 to
// 2262. ext4 and XFS keep later ones (touch -d 2300). Such a file is not
// archived (a release and restore would change its time), with a message
// saying why; a time set later on an archived file is clamped, in the file
// too, as a file system clamps a time beyond its range, so that the file
// and its record agree through release and restore. (The times used to be
// multiplied past the int64_t range: a garbage mtime in the record.)
TEST_F(MigrateCliTest, TimesBeyondWhatARecordHoldsAreRefusedOrClamped) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  constexpr time_t k2300 = 10413792000;  // 2300-01-01
  const std::string data = Payload(70000, 12);
  WriteFile(M("late"), data);
  struct timespec late[2] = {{UTIME_OMIT, UTIME_OMIT}, {k2300, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("late").c_str(), late, 0), 0);
  Result r = Cli({"archive", M("late")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, M("late"))) << r.err;
  EXPECT_TRUE(Contains(r.err, "1677 to 2262")) << r.err;
  EXPECT_EQ(StatusOf(M("late"))["state"], "resident");
  struct stat st;
  ASSERT_EQ(stat(M("late").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, k2300);

  WriteFile(M("t"), data);
  ASSERT_EQ(Cli({"archive", M("t")}).rc, 0);
  ASSERT_EQ(utimensat(AT_FDCWD, M("t").c_str(), late, 0), 0);
  const int64_t max_sec = std::numeric_limits<int64_t>::max() / 1000000000;  // 2262-04-11
  ASSERT_EQ(stat(M("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, max_sec);
  r = Cli({"release", M("t")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(ReadFile(M("t")), data);
  EXPECT_TRUE(
      PollUntil([&] { return StatusOf(M("t"))["state"] == "archived"; }, std::chrono::seconds(20)));
  EXPECT_EQ(StatusOf(M("t"))["mtime_ns"], std::numeric_limits<int64_t>::max());
  ASSERT_EQ(stat(M("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, max_sec);
}

// The DMFS primitives an external agent drives a file with (ioctls of
// include/overtier/control.h, through the shared control client): archive
// in progress, archived, non-resident keeping N bytes, restore in
// progress, barrier moves, restore done. The agent keeps one descriptor of
// the file: an open while a reader waits in the kernel for a page of the
// file would wait for that reader. It opens it with O_NOATIME, as agents
// must: another open of a file without a record is a FUSE passthrough open,
// on which the daemon refuses control commands (EBUSY).
int AgentIoctl(int fd, unsigned long cmd, uint64_t offset = 0, uint64_t length = 0) {
  return control::Ioctl(fd, cmd, control::Request(0, offset, length));
}

TEST_F(MigrateCliTest, AnExternalAgentDrivesAFileWithTheDmfsPrimitives) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(300000, 11);
  WriteFile(M("f"), data);
  WriteFile(M("twin"), data);
  it::Fd agent(open(M("f").c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC));
  ASSERT_TRUE(agent.valid());
  const int afd = agent.get();
  // Begin and abort.
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_ARCHIVE_BEGIN), 0);
  EXPECT_TRUE(Contains(StatusOf(M("f")).dump(), "archiving")) << StatusOf(M("f")).dump();
  EXPECT_EQ(AgentIoctl(afd, OVERTIER_IOC_ARCHIVE_BEGIN), EBUSY);
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_ARCHIVE_ABORT), 0);
  EXPECT_EQ(StatusOf(M("f"))["state"], "resident");

  // The agent's archive: content already in the store (here: the daemon's
  // archive of an identical file), named by its bfid.
  ASSERT_EQ(Cli({"archive", M("twin")}).rc, 0);
  overtier_ctl_state twin{};
  {
    it::Fd fd(open(M("twin").c_str(), O_RDONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(control::GetState(fd.get(), &twin), 0);
  }
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_ARCHIVE_BEGIN), 0);
  overtier_ctl_archived a{};
  a.version = OVERTIER_CTL_VERSION;
  a.copies = 2;
  a.archive_size = data.size();
  std::memcpy(a.bfid, twin.bfid, sizeof(a.bfid));
  {
    // The generation as the ABI says: from ARCHIVE_BEGIN's state (not
    // FS_IOC_GETVERSION, which tmpfs does not answer).
    overtier_ctl_state begun{};
    ASSERT_EQ(control::GetState(afd, &begun), 0);
    a.generation = begun.generation;
    it::Fd ufd(open(U("f").c_str(), O_RDONLY));
    ASSERT_TRUE(ufd.valid());
    struct stat st;
    ASSERT_EQ(fstat(ufd.get(), &st), 0);
    a.atime_ns = st.st_atim.tv_sec * 1000000000LL + st.st_atim.tv_nsec;
    a.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  }
  overtier_ctl_archived bad = a;
  bad.archive_size = 1;
  EXPECT_EQ(ioctl(afd, OVERTIER_IOC_SET_ARCHIVED, &bad), -1);
  ASSERT_EQ(ioctl(afd, OVERTIER_IOC_SET_ARCHIVED, &a), 0) << strerror(errno);
  EXPECT_EQ(StatusOf(M("f"))["state"], "archived");

  // Non-resident keeping 4 KiB, then the agent restores it: readers of a
  // missing range wait for its barrier moves.
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_SET_NONRESIDENT, 4096), 0);
  EXPECT_EQ(StatusOf(M("f"))["state"], "released");
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_RESTORE_BEGIN), 0);
  std::atomic<bool> answered{false};
  std::string got(1000, '\0');
  std::thread reader([&] {
    it::Fd fd(open(M("f").c_str(), O_RDONLY));
    ssize_t n = fd.valid() ? pread(fd.get(), got.data(), got.size(), 200000) : -1;
    got.resize(n < 0 ? 0 : static_cast<size_t>(n));
    answered = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(answered) << "the reader waits for the agent";
  {
    it::Fd ufd(open(U("f").c_str(), O_WRONLY));
    ASSERT_TRUE(ufd.valid());
    ASSERT_EQ(pwrite(ufd.get(), data.data() + 4096, data.size() - 4096, 4096),
              static_cast<ssize_t>(data.size() - 4096));
  }
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_MOVE_BARRIER, 4096, data.size() - 4096), 0);
  reader.join();
  EXPECT_TRUE(got == data.substr(200000, 1000));
  ASSERT_EQ(AgentIoctl(afd, OVERTIER_IOC_RESTORE_DONE), 0);
  EXPECT_EQ(StatusOf(M("f"))["state"], "archived");
  EXPECT_EQ(ReadFile(M("f")), data);
  // Privileged, like every control operation but the query.
  pid_t pid = fork();
  if (pid == 0) {
    if (setresuid(65534, 65534, 65534) != 0) _exit(2);
    _exit(AgentIoctl(afd, OVERTIER_IOC_RESTORE_BEGIN) == EPERM ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(MigrateCliTest, PinnedFilesAreNeverReleased) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(50000, 9);
  WriteFile(M("pinned"), data);
  ASSERT_EQ(setxattr(M("pinned").c_str(), "user.overtier.norelease", "1", 1, 0), 0);
  // Archived, but the release is refused; the file stays whole.
  Result r = Cli({"archive", "--release", M("pinned")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, M("pinned") + ": archive: pinned (user.overtier.norelease")) << r.err;
  EXPECT_EQ(StatusOf(M("pinned"))["state"], "archived");
  r = Cli({"release", M("pinned")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_EQ(StatusOf(M("pinned"))["state"], "archived");
  EXPECT_EQ(ReadFile(M("pinned")), data);
  // status says so before anyone tries (the policy engine plans by it).
  auto pinned = [&](const std::string& path) {
    const json flags = StatusOf(path)["flags"];
    return flags.is_array() && std::find(flags.begin(), flags.end(), "pinned") != flags.end();
  };
  EXPECT_TRUE(pinned(M("pinned"))) << StatusOf(M("pinned")).dump();
  // Unpinned, it goes.
  ASSERT_EQ(removexattr(M("pinned").c_str(), "user.overtier.norelease"), 0);
  EXPECT_FALSE(pinned(M("pinned"))) << StatusOf(M("pinned")).dump();
  r = Cli({"release", M("pinned")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(StatusOf(M("pinned"))["state"], "released");
  EXPECT_EQ(ReadFile(M("pinned")), data);

  // An immutable or append-only file (chattr) is pinned as well: its
  // upper file could not be punched. Said so, not "need root".
  for (int flag : {FS_IMMUTABLE_FL, FS_APPEND_FL}) {
    WriteFile(M("fixed"), data);
    {
      Fd fd(open(M("fixed").c_str(), O_RDONLY | O_NONBLOCK));
      ASSERT_TRUE(fd.valid());
      ASSERT_EQ(ioctl(fd.get(), FS_IOC_SETFLAGS, &flag), 0) << strerror(errno);
    }
    EXPECT_TRUE(pinned(M("fixed"))) << StatusOf(M("fixed")).dump();
    r = Cli({"archive", "--release", M("fixed")});
    EXPECT_EQ(r.rc, 1) << Describe(r);
    EXPECT_TRUE(Contains(r.err, M("fixed") + ": archive: pinned (")) << r.err;
    EXPECT_EQ(StatusOf(M("fixed"))["state"], "archived");
    EXPECT_EQ(ReadFile(M("fixed")), data);
    int none = 0;
    Fd fd(open(M("fixed").c_str(), O_RDONLY | O_NONBLOCK));
    ASSERT_EQ(ioctl(fd.get(), FS_IOC_SETFLAGS, &none), 0) << strerror(errno);
    fd.reset();
    EXPECT_FALSE(pinned(M("fixed"))) << StatusOf(M("fixed")).dump();
    ASSERT_EQ(unlink(M("fixed").c_str()), 0);
  }
}

TEST_F(MigrateCliTest, NonRootGetsPermissionDenied) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(20000, 8);
  WriteFile(M("f"), data);
  const uid_t nobody = 65534;
  for (const char* cmd : {"archive", "release", "restore"}) {
    Result r = Cli({cmd, M("f")}, nobody);
    EXPECT_EQ(r.rc, 1) << cmd << ": " << Describe(r);
    EXPECT_TRUE(Contains(
        r.err, "overtier: " + M("f") + ": permission denied (control operations need root)"))
        << cmd << ": " << r.err;
  }
  // The query is not privileged.
  Result r = Cli({"status", M("f")}, nobody);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, M("f") + ": resident (-)")) << r.out;
  r = Cli({"ls", "-l", M("f")}, nobody);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(StatusOf(M("f"))["state"], "resident");
}

TEST_F(MigrateCliTest, MountWithoutStore) {
  ASSERT_NO_FATAL_FAILURE(Mount(/*with_store=*/false));
  WriteFile(M("f"), "data");
  Result r = Cli({"archive", M("f")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, M("f") + " is not on an overtier mount")) << r.err;
}

// A store whose disk fills up, catalog and containers alike: archives fail
// with ENOSPC once they reach the room kept for the catalog (the files stay
// resident and whole), while releases and restores, which only write the
// catalog, go on: released files stay readable. The daemon lives on
// (librocksdb's own info logger aborted it on its first failed append:
// store/info_log.h). Then the disk filled by something else: releases fail
// and take back their archive marks, released files read EIO (a restore
// cannot open the catalog on a full disk), and all is back once there is
// room.
TEST_F(MigrateCliTest, AFullStoreDiskFailsArchivesAndTheMountLives) {
  ASSERT_NO_FATAL_FAILURE(MountSmallDisk("3m"));
  const std::string store = B("small/store");
  Result r = Cli({"store", "init", store, "--vv-size", "4M"});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  MountDaemon("lowerdir=" + B("lower") + ",upperdir=" + B("upper") + ",workdir=" + B("work") +
              ",store=" + store);
  constexpr int kFiles = 200;
  auto name = [](int i) { return "f" + std::to_string(i); };
  for (int i = 0; i < kFiles; i++) WriteFile(M(name(i)), Payload(20 << 10, i));
  r = Cli({"archive", "-r", mnt_});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "No space left on device")) << r.err;
  EXPECT_TRUE(Contains(daemon_.LogTail(), "bytes for restores")) << daemon_.LogTail();
  // Again, once the session that failed has closed.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  r = Cli({"archive", "-r", mnt_});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_FALSE(daemon_.Exited()) << daemon_.LogTail();
  // Every file's state from one `status` run (one per file took a minute
  // under the sanitizers): 'A' released, 'a' archived, '-' neither.
  auto states = [&] {
    std::vector<std::string> args = {"status"};
    for (int i = 0; i < kFiles; i++) args.push_back(M(name(i)));
    const std::string out = Cli(args).out;
    std::vector<char> st(kFiles, '?');
    for (int i = 0; i < kFiles; i++) {
      const std::string head = M(name(i)) + ": ";
      const size_t at = out.find(head);
      if (at == std::string::npos || (at != 0 && out[at - 1] != '\n')) continue;
      const std::string line = out.substr(at, out.find('\n', at) - at);
      st[i] = Contains(line, "released (A)") ? 'A' : Contains(line, "archived (a)") ? 'a' : '-';
    }
    return st;
  };
  auto marked = [&](int i) {
    return getxattr(B("upper/" + name(i)).c_str(), "user.overtier.archive", nullptr, 0) >= 0;
  };
  std::vector<std::string> archived;
  const std::vector<char> before = states();
  for (int i = 0; i < kFiles; i++) {
    ASSERT_NE(before[i], '?') << name(i);
    if (before[i] == 'a') archived.push_back(M(name(i)));
  }
  ASSERT_GT(archived.size(), 10u);
  ASSERT_LT(archived.size(), static_cast<size_t>(kFiles));
  // The catalog has its room: every archived file releases, and reads back.
  std::vector<std::string> words = {"release"};
  words.insert(words.end(), archived.begin(), archived.end());
  r = Cli(words);
  EXPECT_EQ(r.rc, 0) << Describe(r);
  for (int i = 0; i < kFiles; i++) EXPECT_TRUE(ReadFile(M(name(i))) == Payload(20 << 10, i));

  // Now the disk fills with something else than archives: the releases'
  // commits find no room.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the session closes
  {
    std::ofstream filler(B("small/filler"), std::ios::binary);
    const std::string mib(1 << 20, 'z');
    for (int i = 0; i < 8 && filler.good(); i++) filler.write(mib.data(), mib.size());
  }
  r = Cli(words);
  EXPECT_EQ(r.rc, 1) << Describe(r);
  int released = 0;
  const std::vector<char> after = states();
  for (int i = 0; i < kFiles; i++) {
    ASSERT_NE(after[i], '?') << name(i);
    const bool is_released = after[i] == 'A';
    released += is_released;
    // A release that failed set the mark before its commit and took it back.
    EXPECT_EQ(marked(i), is_released) << name(i);
    if (!is_released) {
      EXPECT_TRUE(ReadFile(M(name(i))) == Payload(20 << 10, i)) << name(i);
      continue;
    }
    int fd = open(M(name(i)).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char c;
    errno = 0;
    EXPECT_EQ(pread(fd, &c, 1, 0), -1) << name(i);
    EXPECT_EQ(errno, EIO) << name(i);
    close(fd);
  }
  EXPECT_LT(released, static_cast<int>(archived.size()));
  ASSERT_EQ(unlink(B("small/filler").c_str()), 0);
  for (int i = 0; i < kFiles; i++) EXPECT_TRUE(ReadFile(M(name(i))) == Payload(20 << 10, i));
  Unmount();
}

// Volume sets on a full disk (the catalog elsewhere): an archive fails
// with ENOSPC and the file stays resident and whole; the failed archive
// removed the containers it wrote (gc finds nothing left to reclaim; it
// found them both before), and the next archive fits.
TEST_F(MigrateCliTest, AFullVolumeSetFailsAnArchiveAndLeavesNoContainer) {
  ASSERT_NO_FATAL_FAILURE(MountSmallDisk("3m"));
  const std::string store = B("store2");
  Result r = Cli({"store", "init", store, "--volume-set", "a=" + B("small/a"), "--volume-set",
                  "b=" + B("small/b"), "--vv-size", "4M"});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  MountDaemon("lowerdir=" + B("lower") + ",upperdir=" + B("upper") + ",workdir=" + B("work") +
              ",store=" + store);
  const std::string big = Payload(4 << 20, 1), little = Payload(100 << 10, 2);
  WriteFile(M("big"), big);
  WriteFile(M("little"), little);
  r = Cli({"archive", M("big")});
  EXPECT_EQ(r.rc, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, M("big") + ": archive: No space left on device")) << r.err;
  auto state = [&](const std::string& path) {
    json j = json::parse(Cli({"status", "--json", path}).out, nullptr, false);
    return j.is_array() && j.size() == 1 ? j[0].value("state", "") : std::string("?");
  };
  EXPECT_EQ(state(M("big")), "resident");
  EXPECT_TRUE(ReadFile(M("big")) == big);

  r = Cli({"gc", store});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "0 orphans removed")) << r.out;
  r = Cli({"archive", M("little")});
  EXPECT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(state(M("little")), "archived");
  Unmount();
  r = Cli({"fsck", store});
  EXPECT_EQ(r.rc, 0) << Describe(r);
}

// An upper file system too full for a restore: the read that needs it gets
// EIO, the file stays released, and once there is room a read restores it.
TEST_F(MigrateCliTest, AFullUpperFailsARestoreAndALaterReadSucceeds) {
  ASSERT_NO_FATAL_FAILURE(MountSmallDisk("6m"));
  MakeDirs(B("small/u"));
  MakeDirs(B("small/w"));
  MountDaemon("lowerdir=" + B("lower") + ",upperdir=" + B("small/u") + ",workdir=" + B("small/w") +
              ",store=" + store_);
  const std::string data = Payload(3 << 20, 3);
  WriteFile(M("f"), data);
  Result r = Cli({"archive", "--release", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  // Fill the upper file system beside the union.
  {
    it::Fd fill(open(B("small/u/.filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(fill.valid());
    const std::string block(64 << 10, 'z');
    while (write(fill.get(), block.data(), block.size()) > 0) {
    }
  }
  {
    it::Fd fd(open(M("f").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    char buf[4096];
    EXPECT_EQ(pread(fd.get(), buf, sizeof(buf), 2 << 20), -1);
    EXPECT_EQ(errno, EIO);
  }
  EXPECT_EQ(StatusOf(M("f"))["state"], "released");
  ASSERT_EQ(unlink(B("small/u/.filler").c_str()), 0);
  EXPECT_TRUE(ReadFile(M("f")) == data);
  Unmount();
}

}  // namespace
}  // namespace overtier::it
