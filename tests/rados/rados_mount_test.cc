// RADOS volume sets through a mount, against a real single-node Ceph
// cluster (store/ceph_testutil.h): what issue 5 asks of the cold tier when
// it is a distributed store.
//
// Every test gets its own RADOS namespace (its name) in one shared pool, a
// fresh store and directories (mount_fixture.h), and a daemon that is always
// unmounted in teardown. The cluster is stopped at the end of the binary, or
// by the watchdog process if the binary dies.
#include <sys/mount.h>

#include <future>

#include "../migrate_mount/mount_fixture.h"
#include "store/ceph_testutil.h"

namespace overtier {
namespace {

constexpr const char* kPool = "ovtm";

class RadosMountTest : public MigrateMountTest {
 public:
  static void SetUpTestSuite() {
    start_error_ = test::TestCeph::Start(&skip_);
    if (!skip_.empty() || !start_error_.empty()) return;
    std::string out;
    if (RunCmd({"ceph", "--conf", test::TestCeph::conf(), "osd", "pool", "create", kPool, "8"},
               &out) != 0) {
      start_error_ = "ceph osd pool create: " + out;
    }
  }
  static void TearDownTestSuite() { test::TestCeph::Stop(); }

 protected:
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(start_error_.empty()) << start_error_;
    MigrateMountTest::SetUp();
  }

  void TearDown() override {
    MigrateMountTest::TearDown();
    // A test that failed with the OSD stopped must not leave it so.
    if (osd_stopped_) test::TestCeph::Run("osd-start");
  }

  // `NAME=rados:...` for this test's namespace; `timeout`: seconds before
  // an unanswered operation fails.
  static std::string Cold(int timeout = 10) {
    const std::string ns = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    return std::string("cold=rados:") + kPool + "?conf=" + test::TestCeph::conf() + "&ns=" + ns +
           "&timeout=" + std::to_string(timeout);
  }

  void StopOsd() {
    osd_stopped_ = true;
    ASSERT_EQ(test::TestCeph::Run("osd-stop"), 0);
  }
  void StartOsd() {
    ASSERT_EQ(test::TestCeph::Run("osd-start"), 0);
    osd_stopped_ = false;
  }

  // A small tree with a multi-chunk file, imported as image `name`.
  void ImportTree(const std::string& name) {
    MakeDirs(B("src/etc"));
    MakeDirs(B("src/data/empty"));
    it::WriteFile(B("src/etc/hostname"), "cold\n");
    it::WriteFile(B("src/data/big"), Payload(9 * kMiB + 123, 7));
    it::WriteFile(B("src/data/small"), Payload(5000, 8));
    ASSERT_EQ(symlink("../etc/hostname", B("src/data/link").c_str()), 0);
    std::string out;
    ASSERT_EQ(RunCmd({OvertierBin(), "image", "import", store_, name, B("src")}, &out, 120), 0)
        << out;
  }

  void MountImage(const std::string& name, const std::string& extra = "") {
    MountDaemon("lowerdir=image:" + name + ",store=" + store_ + ",upperdir=" + B("upper") +
                ",workdir=" + B("work") + extra);
  }

  // read(2) of the whole file: the errno of the first failure, 0 if it
  // read `want` exactly.
  static int ReadErr(const std::string& path, const std::string& want) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    std::string got;
    char buf[1 << 16];
    int err = 0;
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0) {
        err = errno;
        break;
      }
      if (n == 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    if (err != 0) return err;
    return got == want ? 0 : -1;
  }

  // Deletes every container file of the local set in B("hot") (its copy
  // of everything is then lost); returns how many.
  int RemoveLocalContainers() {
    int removed = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(B("hot"))) {
      if (e.is_regular_file() && e.path().filename().string().starts_with("vv-")) {
        std::filesystem::remove(e.path());
        removed++;
      }
    }
    return removed;
  }

  static std::string skip_, start_error_;
  bool osd_stopped_ = false;
};

std::string RadosMountTest::skip_, RadosMountTest::start_error_;

// A mount made by the daemon forking (no -f), not by the fixture: however
// the test ends, unmounted, and the daemon gone.
struct DaemonMountGuard {
  std::string mnt;
  ~DaemonMountGuard() {
    if (IsMountPoint(mnt)) {
      if (RunCmd({"fusermount3", "-u", mnt}) != 0) umount2(mnt.c_str(), MNT_DETACH);
    }
  }
};

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST_F(RadosMountTest, AnImageInRadosIsMountedAndReadWhole) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(ImportTree("img"));
  ASSERT_NO_FATAL_FAILURE(MountImage("img"));
  EXPECT_EQ(it::DiffTrees(it::SnapshotTree(B("src")), "source", it::SnapshotTree(M()), "mount"),
            "");
  // An append to an image file (a lazy copy-up: its content stays in
  // RADOS until read) and a new file.
  {
    std::ofstream f(M("data/big"), std::ios::app | std::ios::binary);
    f << "tail";
  }
  it::WriteFile(M("new"), "upper");
  EXPECT_TRUE(ReadFile(M("data/big")) == Payload(9 * kMiB + 123, 7) + "tail");
  EXPECT_EQ(ReadFile(M("new")), "upper");
  Unmount();
}

// The way containers/storage runs a mount_program: no -f, the program
// forks and exits once the mount is ready. librados threads do not survive
// that fork, so nothing may connect to the cluster before it (a
// connection made before it hung every read in the daemon).
TEST_F(RadosMountTest, DaemonModeReadsAnImageInRados) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(ImportTree("img"));
  const std::string opts =
      "lowerdir=image:img,store=" + store_ + ",upperdir=" + B("upper") + ",workdir=" + B("work");
  std::string out;
  ASSERT_EQ(RunCmd({OvertierBin(), "-o", opts, mnt_}, &out), 0) << out;
  const DaemonMountGuard guard{mnt_};
  ASSERT_TRUE(IsMountPoint(mnt_));
  // Bounded: a hang here is the bug this test is about.
  auto reader = std::async(std::launch::async,
                           [this] { return ReadErr(M("data/big"), Payload(9 * kMiB + 123, 7)); });
  if (reader.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    // Killing the daemon aborts the connection: the read ends (ENOTCONN).
    for (const auto& ent : std::filesystem::directory_iterator("/proc")) {
      std::string name = ent.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string cmd = it::Slurp(ent.path().string() + "/cmdline");
      if (cmd.find(OvertierBin()) != std::string::npos && cmd.find(mnt_) != std::string::npos)
        kill(std::stoi(name), SIGKILL);
    }
    reader.wait();
    FAIL() << "a read of RADOS content hangs in the forked daemon";
  }
  EXPECT_EQ(reader.get(), 0);
  // And the migration tier in the daemon (a lazy copy-up) as well.
  {
    std::ofstream f(M("data/small"), std::ios::app | std::ios::binary);
    f << "!";
  }
  EXPECT_TRUE(ReadFile(M("data/small")) == Payload(5000, 8) + "!");
  EXPECT_EQ(RunCmd({"fusermount3", "-u", mnt_}, &out), 0) << out;
  EXPECT_TRUE(PollUntil([&] { return !IsMountPoint(mnt_); }, std::chrono::seconds(15)));
}

TEST_F(RadosMountTest, ArchiveCopiesOneLocalOneInRadosRestoreFromRados) {
  ASSERT_NO_FATAL_FAILURE(
      ReinitStore({"--volume-set", "hot=" + B("hot"), "--volume-set", Cold(), "--copies", "2"}));
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(6 * kMiB + 77, 3);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  // The daemon lets go of its containers when idle; then the local copy
  // is lost entirely.
  WaitStoreIdle();
  const int removed = RemoveLocalContainers();
  ASSERT_GT(removed, 0) << "no container of the local copy found under " << B("hot");
  EXPECT_TRUE(ReadFile(M("f")) == data) << it::Slurp(log_);
  EXPECT_TRUE(PollUntil([&] { return StateXattr(M("f")).starts_with("archived"); },
                        std::chrono::seconds(30)))
      << StateXattr(M("f"));
  // The fallback to the RADOS copy is reported.
  EXPECT_TRUE(it::Slurp(log_).find("read from another copy") != std::string::npos)
      << it::Slurp(log_);
  Unmount();
}

// A store that started local grows a RADOS set (store add-set): archives
// made afterwards keep a copy in the cluster, which serves the restore
// when the local copy is gone.
TEST_F(RadosMountTest, AddARadosSetToALocalStore) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", "hot=" + B("hot"), "--copies", "1"}));
  std::string out;
  ASSERT_EQ(RunCmd({OvertierBin(), "store", "add-set", store_, Cold(), "--copies", "2"}, &out), 0)
      << out;
  EXPECT_TRUE(out.find("added volume set cold at rados:ovtm?") != std::string::npos) << out;
  EXPECT_TRUE(out.find("volume sets 2, copies 2") != std::string::npos) << out;
  // The same pool namespace again is refused, and changes nothing.
  EXPECT_EQ(RunCmd({OvertierBin(), "store", "add-set", store_, "again=" + Cold().substr(5)}, &out),
            2)
      << out;
  EXPECT_TRUE(out.find("is the pool (and namespace) of another set too") != std::string::npos)
      << out;
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(3 * kMiB + 5, 9);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  WaitStoreIdle();
  const int removed = RemoveLocalContainers();
  ASSERT_GT(removed, 0);
  EXPECT_TRUE(ReadFile(M("f")) == data) << it::Slurp(log_);
  Unmount();
}

// Issue 5's sharing: a store publishes an image in the pool (push), two
// other stores (standing in for two machines) pull it and mount it, each
// with its own upper; the publisher's store folder is gone by then, so the
// content can only come from RADOS.
TEST_F(RadosMountTest, PushPullTwoStoresMountThePublishedImage) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(ImportTree("img"));
  std::string out;
  ASSERT_EQ(RunCmd({OvertierBin(), "image", "push", store_, "img"}, &out), 0) << out;
  EXPECT_TRUE(out.find("published image img in volume set cold") != std::string::npos) << out;
  const std::string from = Cold().substr(5);  // the spec, without "cold="
  std::filesystem::remove_all(store_);

  const std::string b1 = B("b1"), b2 = B("b2");
  for (const std::string& b : {b1, b2}) {
    ASSERT_EQ(RunCmd({OvertierBin(), "store", "init", b}, &out), 0) << out;
    ASSERT_EQ(RunCmd({OvertierBin(), "image", "pull", b, "img", "--from", from}, &out), 0) << out;
    EXPECT_TRUE(out.find("pulled image img: 1 layer(s) added") != std::string::npos) << out;
    ASSERT_EQ(RunCmd({OvertierBin(), "fsck", b}, &out, 120), 0) << out;
  }
  // Not published: a clear error, nothing added.
  EXPECT_EQ(RunCmd({OvertierBin(), "image", "pull", b1, "other", "--from", from}, &out), 1);
  EXPECT_TRUE(out.find("not published") != std::string::npos) << out;

  MakeDirs(B("upper2"));
  MakeDirs(B("work2"));
  MakeDirs(B("mnt2"));
  MountDaemon("lowerdir=image:img,store=" + b1 + ",upperdir=" + B("upper") +
              ",workdir=" + B("work"));
  const std::string mnt2 = B("mnt2");
  ASSERT_EQ(RunCmd({OvertierBin(), "-o",
                    "lowerdir=image:img,store=" + b2 + ",upperdir=" + B("upper2") +
                        ",workdir=" + B("work2"),
                    mnt2},
                   &out),
            0)
      << out;
  const DaemonMountGuard guard{mnt2};
  const auto src = it::SnapshotTree(B("src"));
  EXPECT_EQ(it::DiffTrees(src, "source", it::SnapshotTree(M()), "store b1's mount"), "");
  EXPECT_EQ(it::DiffTrees(src, "source", it::SnapshotTree(mnt2), "store b2's mount"), "");

  // Each sees its own writes only.
  it::WriteFile(M("etc/hostname"), "b1\n");
  it::WriteFile(mnt2 + "/only2", "two");
  {
    std::ofstream f(mnt2 + "/data/big", std::ios::app | std::ios::binary);
    f << "tail";
  }
  EXPECT_EQ(ReadFile(M("etc/hostname")), "b1\n");
  EXPECT_EQ(ReadFile(mnt2 + "/etc/hostname"), "cold\n");
  EXPECT_EQ(access(M("only2").c_str(), F_OK), -1);
  EXPECT_EQ(ReadFile(mnt2 + "/only2"), "two");
  EXPECT_TRUE(ReadFile(M("data/big")) == Payload(9 * kMiB + 123, 7));
  EXPECT_TRUE(ReadFile(mnt2 + "/data/big") == Payload(9 * kMiB + 123, 7) + "tail");
  EXPECT_EQ(RunCmd({"fusermount3", "-u", mnt2}, &out), 0) << out;
  EXPECT_TRUE(PollUntil([&] { return !IsMountPoint(mnt2); }, std::chrono::seconds(15)));
  Unmount();
}

// Nothing in the upper layer is lost while the cold tier is unreachable,
// and a release that needs a copy there is refused: with one copy local
// and one in RADOS required, an archive during an OSD outage fails (after
// the set's timeout) and leaves the file resident and intact; once the OSD
// is back, archive and release work.
TEST_F(RadosMountTest, ArchiveDuringAnOutageFailsAndReleaseIsRefused) {
  ASSERT_NO_FATAL_FAILURE(
      ReinitStore({"--volume-set", "hot=" + B("hot"), "--volume-set", Cold(3), "--copies", "2"}));
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(3 * kMiB + 7, 21);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(StopOsd());
  auto t0 = Clock::now();
  const int archived = Ctl(M("f"), OVERTIER_IOC_ARCHIVE, OVERTIER_CTL_RELEASE);
  EXPECT_NE(archived, 0) << "an archive with a copy in an unreachable set succeeded";
  EXPECT_LT(SecondsSince(t0), 60.0);
  EXPECT_EQ(StateXattr(M("f")), "resident");
  EXPECT_EQ(Ctl(M("f"), OVERTIER_IOC_RELEASE), ENODATA) << "released without an archive";
  EXPECT_TRUE(ReadFile(M("f")) == data);
  EXPECT_TRUE(ReadFile(B("upper/f")) == data) << "the upper file holds every byte";
  ASSERT_NO_FATAL_FAILURE(StartOsd());
  EXPECT_TRUE(
      PollUntil([&] { return Ctl(M("f"), OVERTIER_IOC_ARCHIVE) == 0; }, std::chrono::seconds(60)))
      << it::Slurp(log_);
  EXPECT_EQ(Ctl(M("f"), OVERTIER_IOC_RELEASE), 0);
  EXPECT_TRUE(StateXattr(M("f")).starts_with("released")) << StateXattr(M("f"));
  EXPECT_TRUE(ReadFile(M("f")) == data);
  Unmount();
}

TEST_F(RadosMountTest, SoftOsdDownDuringARestoreGivesEioThenRecovers) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(3), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(4 * kMiB, 4);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(StopOsd());
  auto t0 = Clock::now();
  EXPECT_EQ(ReadErr(M("f"), data), EIO);
  const double waited = SecondsSince(t0);
  // After the set's timeout (3 s), not librados' endless default.
  EXPECT_GE(waited, 2.0);
  EXPECT_LT(waited, 40.0);
  EXPECT_TRUE(StateXattr(M("f")).starts_with("released")) << StateXattr(M("f"));
  ASSERT_NO_FATAL_FAILURE(StartOsd());
  // Access succeeds again without a remount (once the OSD's placement
  // groups are active: an access while they peer may still time out).
  EXPECT_TRUE(PollUntil([&] { return ReadErr(M("f"), data) == 0; }, std::chrono::seconds(60)))
      << it::Slurp(log_);
  Unmount();
}

TEST_F(RadosMountTest, HardOsdDownDuringARestoreWaitsAndResumes) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(2), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(MountDaemon("lowerdir=" + B("lower") + ",upperdir=" + B("upper") +
                                      ",workdir=" + B("work") + ",store=" + store_ + ",hard"));
  const std::string data = Payload(4 * kMiB, 5);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(StopOsd());
  const std::string path = M("f");
  auto reader = std::async(std::launch::async, [path, data] { return ReadErr(path, data); });
  // Several timeouts (2 s each) pass; the reader is still waiting.
  EXPECT_EQ(reader.wait_for(std::chrono::seconds(7)), std::future_status::timeout);
  EXPECT_TRUE(PollUntil(
      [&] { return it::Slurp(log_).find("waits for the archive (hard)") != std::string::npos; },
      std::chrono::seconds(10)))
      << it::Slurp(log_);
  ASSERT_NO_FATAL_FAILURE(StartOsd());
  ASSERT_EQ(reader.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(reader.get(), 0) << it::Slurp(log_);
  Unmount();
}

TEST_F(RadosMountTest, ImageReadsWithTheOsdDownSoftEio) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(2), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(ImportTree("img"));
  const std::string big = Payload(9 * kMiB + 123, 7);
  // Soft: EIO for a file whose content cannot be fetched, the tree itself
  // (catalog metadata) still listed; fine again once the OSD is back.
  ASSERT_NO_FATAL_FAILURE(MountImage("img"));
  ASSERT_NO_FATAL_FAILURE(StopOsd());
  EXPECT_EQ(ReadErr(M("data/big"), big), EIO);
  struct stat st;
  EXPECT_EQ(stat(M("data/small").c_str(), &st), 0);
  ASSERT_NO_FATAL_FAILURE(StartOsd());
  EXPECT_TRUE(PollUntil([&] { return ReadErr(M("data/big"), big) == 0; }, std::chrono::seconds(60)))
      << it::Slurp(log_);
  Unmount();
}

TEST_F(RadosMountTest, ImageReadsWithTheOsdDownHardWait) {
  ASSERT_NO_FATAL_FAILURE(ReinitStore({"--volume-set", Cold(2), "--copies", "1"}));
  ASSERT_NO_FATAL_FAILURE(ImportTree("img"));
  const std::string small = Payload(5000, 8);
  // Hard: the reader waits for the OSD, off the union's request loop: with
  // the default single loop thread the rest of the mount still answers
  // (and the ceph-osd start below, which looks at every mount, goes on).
  ASSERT_NO_FATAL_FAILURE(MountImage("img", ",hard"));
  ASSERT_NO_FATAL_FAILURE(StopOsd());
  const std::string path = M("data/small");
  auto reader = std::async(std::launch::async, [path, small] { return ReadErr(path, small); });
  EXPECT_EQ(reader.wait_for(std::chrono::seconds(6)), std::future_status::timeout);
  struct stat st;
  EXPECT_EQ(stat(M("data/big").c_str(), &st), 0) << "the mount still answers";
  // More waiting readers (other pages of another file: other requests)
  // than the union's pool for slow requests has threads: an fsync, which
  // runs there, is still answered (waiting readers have a pool of their
  // own).
  const std::string big = M("data/big");
  std::vector<std::future<int>> more;
  for (int i = 0; i < 6; i++) {
    more.push_back(std::async(std::launch::async, [big, i] {
      // O_CLOEXEC: the ceph-osd started meanwhile must not inherit it.
      it::Fd fd(open(big.c_str(), O_RDONLY | O_CLOEXEC));
      char buf[4096];
      return fd.valid() && pread(fd.get(), buf, sizeof buf, off_t{i} * (1 << 20)) == 4096 ? 0
                                                                                          : errno;
    }));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto synced = std::async(std::launch::async, [this] {
    it::Fd fd(open(M("new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    return fd.valid() && write(fd.get(), "x", 1) == 1 && fsync(fd.get()) == 0;
  });
  ASSERT_EQ(synced.wait_for(std::chrono::seconds(15)), std::future_status::ready)
      << "an fsync waits behind readers of the unreachable cold tier";
  EXPECT_TRUE(synced.get());
  ASSERT_NO_FATAL_FAILURE(StartOsd());
  ASSERT_EQ(reader.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(reader.get(), 0) << it::Slurp(log_);
  for (auto& f : more) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready);
    EXPECT_EQ(f.get(), 0);
  }
  Unmount();
}

}  // namespace
}  // namespace overtier
