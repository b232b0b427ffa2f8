// Races between the migration tier's agents (archive, release, restore)
// and the users of a file, each pinned down with the daemon's pause points
// (migrate/crash_point.h): a daemon thread is held at a chosen instant
// while the test makes another act, then let go.
//
// Every test checks bytes: a race lost here is a user's data read back as
// zeros, or punched for good.
#include <stdlib.h>

#include <memory>

#include "mount_fixture.h"

namespace overtier {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class RaceTest : public MigrateMountTest {
 protected:
  // Mounts with the pause points `points` (comma-separated) armed.
  void MountPaused(const std::string& points, const std::string& extra = "") {
    MakeDirs(B("pause"));
    Mount(extra, {"OVERTIER_PAUSE_AT=" + points, "OVERTIER_PAUSE_DIR=" + B("pause")});
  }
  // From now on, the next thread to reach `point` waits there until Let.
  void Hold(const std::string& point) {
    std::filesystem::remove(B("pause/" + point + ".reached"));
    it::WriteFile(B("pause/" + point + ".hold"), "");
  }
  // Only the next thread to reach `point` waits there; the others pass.
  void HoldFirst(const std::string& point) {
    std::filesystem::remove(B("pause/" + point + ".reached"));
    it::WriteFile(B("pause/" + point + ".hold"), "first");
  }
  void Let(const std::string& point) { std::filesystem::remove(B("pause/" + point + ".hold")); }
  // Whether a thread waits at `point` (or did), within `timeout`.
  bool Reached(const std::string& point, milliseconds timeout) {
    return PollUntil([&] { return std::filesystem::exists(B("pause/" + point + ".reached")); },
                     timeout);
  }
  // A control command issued from a thread of its own, to see whether it
  // answers while the daemon is held somewhere.
  struct Background {
    std::atomic<bool> answered{false};
    std::atomic<int> rc{-1};
    std::thread thread;
    Background(const std::string& path, unsigned long cmd, uint32_t flags, uint64_t offset = 0,
               uint64_t length = 0)
        : thread([=, this] {
            rc = Ctl(path, cmd, flags, offset, length);
            answered = true;
          }) {}
    ~Background() {
      if (thread.joinable()) thread.join();
    }
    int Join() {
      thread.join();
      return rc;
    }
  };
  // Mounts with `point` armed, writes `name` (1 MiB from `seed`), archives
  // and releases it, then holds `point`; returns the file's bytes.
  std::string ReleasedWithHold(const std::string& point, const std::string& name, uint64_t seed) {
    MountPaused(point);
    const std::string data = Payload(kMiB, seed);
    MakeFile(name, data);
    ArchiveRelease(name, 0);
    Hold(point);
    return data;
  }
  // Holds a write of "NEW" at offset 100 of `name` (a file without a
  // record, on a mount with the plain-write point armed) before it lands,
  // issues the control command (cmd, flags) meanwhile, lets the write go
  // after 500 ms and returns the command's result. *early: whether the
  // command had answered before the write landed.
  int ControlDuringAHeldWrite(const std::string& name, unsigned long cmd, uint32_t flags,
                              bool* early) {
    int wfd = open(M(name).c_str(), O_WRONLY | O_CLOEXEC);
    EXPECT_GE(wfd, 0);
    Hold("plain-write");
    ssize_t n = -1;
    std::thread writer([&] { n = pwrite(wfd, "NEW", 3, 100); });
    EXPECT_TRUE(Reached("plain-write", seconds(10))) << Slurp(log_);
    Background control(M(name), cmd, flags);
    std::this_thread::sleep_for(milliseconds(500));
    *early = control.answered;
    Let("plain-write");
    writer.join();
    const int rc = control.Join();
    close(wfd);
    EXPECT_EQ(n, 3);
    return rc;
  }
  void TearDown() override {
    // Never leave a daemon thread held (the unmount would wait for it).
    std::error_code ec;
    std::filesystem::remove_all(B("pause"), ec);
    MigrateMountTest::TearDown();
  }
};

// An aligned buffer for O_DIRECT reads (every read reaches the daemon).
struct AlignedBuf {
  explicit AlignedBuf(size_t n) : size(n) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, n) == 0) data.reset(static_cast<char*>(p));
  }
  std::string str(size_t n) const { return std::string(data.get(), n); }
  struct Free {
    void operator()(char* p) const { free(p); }
  };
  std::unique_ptr<char, Free> data;
  size_t size;
};

// The file's bytes, read with O_DIRECT (every read reaches the daemon);
// what was read up to an error.
std::string ReadDirect(const std::string& path) {
  std::string out;
  AlignedBuf buf(64 * 1024);
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0 || buf.data == nullptr) return out;
  for (ssize_t n; (n = pread(fd, buf.data.get(), buf.size, static_cast<off_t>(out.size()))) > 0;)
    out.append(buf.data.get(), static_cast<size_t>(n));
  close(fd);
  return out;
}

// A read that takes the slow path because a release has begun (its ranges
// are published as gone before anything is punched) must not be told
// "resident" by a restore job that looked at the record before the
// release committed: it would then read the punched range as zeros.
TEST_F(RaceTest, AReadDuringAReleaseNeverSeesPunchedBytes) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("release-published,slow-read-answered"));
  const std::string data = Payload(256 * 1024, 31);
  MakeFile("f", data);
  ASSERT_EQ(Ctl(M("f"), OVERTIER_IOC_ARCHIVE), 0) << Slurp(log_);
  int rfd = open(M("f").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(rfd, 0);

  Hold("release-published");
  Hold("slow-read-answered");
  std::atomic<int> release_rc{-1};
  std::thread releaser([&] { release_rc = Ctl(M("f"), OVERTIER_IOC_RELEASE); });
  ASSERT_TRUE(Reached("release-published", seconds(10))) << Slurp(log_);

  AlignedBuf buf(64 * 1024);
  ssize_t n = -1;
  std::thread reader([&] { n = pread(rfd, buf.data.get(), buf.size, 0); });
  // The read waits for the release to end before it asks for a restore.
  EXPECT_FALSE(Reached("slow-read-answered", milliseconds(1000)))
      << "a read was answered while a release of its range was under way";
  Let("release-published");
  releaser.join();
  EXPECT_EQ(release_rc, 0) << Slurp(log_);
  ASSERT_TRUE(Reached("slow-read-answered", seconds(10))) << Slurp(log_);
  Let("slow-read-answered");
  reader.join();
  close(rfd);
  ASSERT_EQ(n, static_cast<ssize_t>(buf.size)) << strerror(errno);
  EXPECT_TRUE(buf.str(buf.size) == data.substr(0, buf.size)) << "the read saw punched bytes";
  EXPECT_TRUE(ReadFile(M("f")) == data);
  Unmount();
}

// An archive commits, then tells memory what it committed (Refresh). A
// release by another client (the periodic policy, while the CLI archives)
// can come in between: the archive's Refresh, having read the record
// before the release committed, must not publish it after the release's
// own Refresh, or reads take the punched bytes for resident and see
// zeros. (Found by fsx with the store churn and the periodic policy.)
TEST_F(RaceTest, AnArchivesRefreshDoesNotHideAReleaseThatFollowsIt) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("record-loaded"));
  const std::string data = Payload(kMiB, 38);
  MakeFile("f", data);
  HoldFirst("record-loaded");
  Background archive(M("f"), OVERTIER_IOC_ARCHIVE, 0);
  ASSERT_TRUE(Reached("record-loaded", seconds(10))) << Slurp(log_);
  Background release(M("f"), OVERTIER_IOC_RELEASE, 0);
  // Without the archive's Refresh under the file's modify_mu the release
  // ends here; with it, it waits for the archive's Refresh.
  PollUntil([&] { return release.answered.load(); }, milliseconds(1500));
  Let("record-loaded");
  EXPECT_EQ(archive.Join(), 0) << Slurp(log_);
  EXPECT_EQ(release.Join(), 0) << Slurp(log_);
  EXPECT_EQ(StateXattr(M("f")).rfind("released", 0), 0u) << StateXattr(M("f"));
  EXPECT_TRUE(ReadDirect(M("f")) == data) << "a read took released bytes for resident";
  Unmount();
}

// The first open of a file makes its MigFile and publishes the record; a
// second open at the same time finds the MigFile in the service's table
// and must wait for that, or it takes a released file for resident: its
// reads see the punched bytes, its writes go the plain way.
TEST_F(RaceTest, ASecondOpenWaitsForTheFirstToPublishTheRecord) {
  // More than one FUSE worker: with one, the two opens are served in turn.
  ASSERT_NO_FATAL_FAILURE(MountPaused("file-attaching", ",threads=4"));
  const std::string data = Payload(kMiB, 39);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f", 0));
  Hold("file-attaching");
  // The archive's opens let go of the file asynchronously (FUSE's release):
  // open until an open makes the MigFile anew and is held. (jthreads: a
  // failed ASSERT below must not leave a joinable thread, which would end
  // the process before TearDown unmounts.)
  int first_fd = -1;
  std::jthread first([&] {
    for (int i = 0; i < 200; i++) {
      const int fd = open(M("f").c_str(), O_RDONLY | O_CLOEXEC);
      if (std::filesystem::exists(B("pause/file-attaching.reached"))) {
        first_fd = fd;
        return;
      }
      if (fd >= 0) close(fd);
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  ASSERT_TRUE(Reached("file-attaching", seconds(10))) << Slurp(log_);
  AlignedBuf buf(64 * 1024);
  ssize_t n = -1;
  std::jthread second([&] {
    const int fd = open(M("f").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) return;
    n = pread(fd, buf.data.get(), buf.size, 0);
    close(fd);
  });
  std::this_thread::sleep_for(milliseconds(500));
  Let("file-attaching");
  first.join();
  second.join();
  EXPECT_GE(first_fd, 0);
  if (first_fd >= 0) close(first_fd);
  ASSERT_EQ(n, static_cast<ssize_t>(buf.size)) << strerror(errno);
  EXPECT_TRUE(buf.str(buf.size) == data.substr(0, buf.size))
      << "the second open took the released file for resident";
  Unmount();
}

// A restore job reads the record, then commits it with its restore flag.
// A release in between (here one that keeps less than the last did) would
// punch bytes the job then takes for resident, and its commit would
// overwrite the release's record: those bytes would read as zeros for
// good. The release is refused while the job runs.
TEST_F(RaceTest, AReleaseWaitsOutARestoreJob) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("restore-loaded"));
  const std::string data = Payload(kMiB, 32);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f", 512 * 1024));
  int rfd = open(M("f").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(rfd, 0);

  Hold("restore-loaded");
  AlignedBuf buf(64 * 1024);
  ssize_t n = -1;
  std::thread reader([&] { n = pread(rfd, buf.data.get(), buf.size, 768 * 1024); });
  ASSERT_TRUE(Reached("restore-loaded", seconds(10))) << Slurp(log_);
  EXPECT_EQ(Ctl(M("f"), OVERTIER_IOC_RELEASE, 0, /*keep=*/0), EBUSY) << Slurp(log_);
  Let("restore-loaded");
  reader.join();
  close(rfd);
  ASSERT_EQ(n, static_cast<ssize_t>(buf.size)) << strerror(errno);
  EXPECT_TRUE(buf.str(buf.size) == data.substr(768 * 1024, buf.size));
  ASSERT_EQ(Ctl(M("f"), OVERTIER_IOC_RESTORE, OVERTIER_CTL_WAIT), 0) << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("f")) == data) << "bytes lost to the release";
  Unmount();
  EXPECT_TRUE(ReadFile(B("upper/f")) == data);
}

// restore --wait answers once the restore job has committed the record
// (without its restore flag), not when the last byte is written: a
// release right after it must not be refused with "a restore is in
// progress", and the state must say resident.
TEST_F(RaceTest, RestoreWaitAnswersAfterTheJobsLastCommit) {
  const std::string data = ReleasedWithHold("restore-finishing", "f", 35);
  ASSERT_FALSE(HasFatalFailure());
  Background restore(M("f"), OVERTIER_IOC_RESTORE, OVERTIER_CTL_WAIT);
  ASSERT_TRUE(Reached("restore-finishing", seconds(10))) << Slurp(log_);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_FALSE(restore.answered) << "restore --wait answered before the job's last commit";
  Let("restore-finishing");
  EXPECT_EQ(restore.Join(), 0) << Slurp(log_);
  EXPECT_EQ(StateXattr(M("f")).rfind("archived", 0), 0u) << StateXattr(M("f"));
  EXPECT_EQ(Ctl(M("f"), OVERTIER_IOC_RELEASE), 0) << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("f")) == data);
  Unmount();
}

// A write to a file being restored is recorded in the restore job's record,
// which the job commits every commit_bytes and at its end. An fsync of that
// write must also make the record say the bytes are the user's: killed
// before the job's next commit, the daemon would otherwise leave a record
// that calls them non-resident, and the next restore (the resumed job, or
// a read) would write the archive's bytes over the user's synced ones.
TEST_F(RaceTest, AWriteSyncedDuringARestoreSurvivesAKill) {
  const std::string data = ReleasedWithHold("restore-finishing", "f", 40);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(Ctl(M("f"), OVERTIER_IOC_RESTORE), 0) << Slurp(log_);  // in the background
  ASSERT_TRUE(Reached("restore-finishing", seconds(10))) << Slurp(log_);
  // Every byte written back, the job's last commit not made: the user
  // writes and syncs.
  int fd = open(M("f").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "USER", 4, 100000), 4);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  ASSERT_EQ(kill(DaemonPid(), SIGKILL), 0);
  ASSERT_TRUE(PollUntil([&] { return daemon_.Exited(); }, seconds(10)));
  Unmount(/*expect_clean=*/false);
  Let("restore-finishing");

  ASSERT_NO_FATAL_FAILURE(Mount());
  std::string want = data;
  want.replace(100000, 4, "USER");
  ASSERT_EQ(Ctl(M("f"), OVERTIER_IOC_RESTORE, OVERTIER_CTL_WAIT), 0) << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("f")) == want) << "the synced write was restored over";
  Unmount();
  EXPECT_TRUE(ReadFile(B("upper/f")) == want);
}

// restore --range --wait answers once its range is back, whatever the job
// does next (here: its last commit, held).
TEST_F(RaceTest, ARangeRestoreWaitDoesNotWaitForTheJobsEnd) {
  const std::string data = ReleasedWithHold("restore-finishing", "f", 37);
  ASSERT_FALSE(HasFatalFailure());
  Background restore(M("f"), OVERTIER_IOC_RESTORE, OVERTIER_CTL_WAIT | OVERTIER_CTL_RANGE_ONLY, 0,
                     64 * 1024);
  EXPECT_TRUE(PollUntil([&] { return restore.answered.load(); }, seconds(10)))
      << "the range's wait waited for the job's end";
  Let("restore-finishing");
  EXPECT_EQ(restore.Join(), 0) << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("f")) == data);
  Unmount();
}

// A caller waiting in `restore --wait` can be killed (or Ctrl-C'd): its
// wait ends with EINTR at once, while the restore it waited for goes on.
TEST_F(RaceTest, AKilledRestoreWaitEndsItsWaitAndTheRestoreGoesOn) {
  const std::string data = ReleasedWithHold("restore-loaded", "f", 36);
  ASSERT_FALSE(HasFatalFailure());
  const pid_t cli = it::Spawn({it::OvertierBin(), "restore", "--wait", M("f")}, B("cli.log"));
  ASSERT_GT(cli, 0);
  ASSERT_TRUE(Reached("restore-loaded", seconds(10))) << Slurp(log_);
  ASSERT_EQ(kill(cli, SIGKILL), 0);
  int status = 0;
  const bool reaped = PollUntil([&] { return waitpid(cli, &status, WNOHANG) == cli; }, seconds(10));
  EXPECT_TRUE(reaped) << "the killed caller stays in its ioctl until the restore ends";
  Let("restore-loaded");
  if (!reaped) waitpid(cli, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(Ctl(M("f"), OVERTIER_IOC_RESTORE, OVERTIER_CTL_WAIT), 0) << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("f")) == data);
  EXPECT_EQ(Slurp(log_).find("wait interrupted"), std::string::npos) << Slurp(log_);
  Unmount();
}

// A write that found the file without a record goes the plain way. An
// archive that begins meanwhile waits for it to land before it copies the
// file, so the archive holds it (without the wait the archive could hold
// half of it, and the release that follows punch the rest).
TEST_F(RaceTest, AnArchiveWaitsForAWriteInFlight) {
  // Without passthrough, so the write goes through the daemon; with more
  // than one request-loop thread, so the archive's requests are served
  // while the write is held.
  ASSERT_NO_FATAL_FAILURE(MountPaused("plain-write", ",passthrough=0,threads=4"));
  const std::string data = Payload(256 * 1024, 33);
  MakeFile("w", data);
  bool early = true;
  EXPECT_EQ(ControlDuringAHeldWrite("w", OVERTIER_IOC_ARCHIVE, OVERTIER_CTL_RELEASE, &early), 0)
      << Slurp(log_);
  EXPECT_FALSE(early) << "the archive did not wait for the write in flight";
  std::string want = data;
  want.replace(100, 3, "NEW");
  EXPECT_EQ(StateXattr(M("w")).rfind("released", 0), 0u) << StateXattr(M("w"));
  EXPECT_TRUE(ReadFile(M("w")) == want) << "the write was lost";
  ASSERT_EQ(Ctl(M("w"), OVERTIER_IOC_RESTORE, OVERTIER_CTL_WAIT), 0) << Slurp(log_);
  Unmount();
  EXPECT_TRUE(ReadFile(B("upper/w")) == want);
}

// A plain write is answered before its bookkeeping ends; the caller may
// close its descriptor at once, and the RELEASE drop the open's last hold
// on the file's migration state meanwhile. The write must not touch it
// after that (ASan, in CI's sanitizer run, saw it count into freed memory).
TEST_F(RaceTest, AWriteAnsweredThenClosedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("plain-write-answered", ",passthrough=0,threads=4"));
  const std::string data = Payload(64 * 1024, 38);
  MakeFile("w", data);
  int wfd = open(M("w").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(wfd, 0);
  Hold("plain-write-answered");
  ASSERT_EQ(pwrite(wfd, "NEW", 3, 100), 3);
  ASSERT_TRUE(Reached("plain-write-answered", seconds(10))) << Slurp(log_);
  ASSERT_EQ(close(wfd), 0);  // RELEASE, served by another thread
  std::this_thread::sleep_for(milliseconds(300));
  Let("plain-write-answered");
  std::string want = data;
  want.replace(100, 3, "NEW");
  EXPECT_TRUE(ReadFile(M("w")) == want);
  EXPECT_EQ(Ctl(M("w"), OVERTIER_IOC_ARCHIVE, OVERTIER_CTL_RELEASE), 0) << Slurp(log_);
  EXPECT_TRUE(ReadFile(M("w")) == want);
  Unmount();
}

// The same for a read of a file of a mount with a store: answered while it
// holds the file's gate (IoGate), which it lets go only after. Under fsx
// with four request-loop threads, the unlock went into a freed MigFile,
// whose memory the file's next open took: that gate counted -1 readers,
// and the next release of the file waited for ever with every reader
// behind it (ASan, in CI's sanitizer run, sees the unlock in freed memory).
TEST_F(RaceTest, AReadAnsweredThenClosedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("read-answered", ",passthrough=0,threads=4"));
  for (int round = 0; round < 3; round++) {
    const std::string name = "r" + std::to_string(round);
    const std::string data = Payload(4096, 44 + round);
    MakeFile(name, data);
    int rfd = open(M(name).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(rfd, 0);
    // Not from the page cache: the read reaches the daemon.
    ASSERT_EQ(posix_fadvise(rfd, 0, 0, POSIX_FADV_DONTNEED), 0);
    HoldFirst("read-answered");
    char buf[4096];
    ASSERT_EQ(pread(rfd, buf, sizeof(buf), 0), static_cast<ssize_t>(sizeof(buf)));
    EXPECT_EQ(std::string(buf, sizeof(buf)), data);
    ASSERT_TRUE(Reached("read-answered", seconds(10))) << "round " << round << Slurp(log_);
    ASSERT_EQ(close(rfd), 0);  // RELEASE, served by another thread
    std::this_thread::sleep_for(milliseconds(300));
    // The file's next open, while the read still holds the gate.
    int again = open(M(name).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(again, 0);
    Let("read-answered");
    std::this_thread::sleep_for(milliseconds(100));
    // A release takes the gate exclusively: it must not wait for a reader
    // that is gone.
    EXPECT_EQ(Ctl(M(name), OVERTIER_IOC_ARCHIVE, OVERTIER_CTL_RELEASE), 0) << Slurp(log_);
    EXPECT_TRUE(ReadFile(M(name)) == data);
    ASSERT_EQ(close(again), 0);
  }
  Unmount();
}

// Control commands run apart from the writes to archived files: four
// archives held in the middle of their copy (as many as the tier has
// threads for them) do not hold up a write to another archived file.
TEST_F(RaceTest, ArchivesInProgressDoNotHoldUpWritesToArchivedFiles) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("archive-copied", ",passthrough=0"));
  MakeFile("t", Payload(64 * 1024, 39));
  ASSERT_EQ(Ctl(M("t"), OVERTIER_IOC_ARCHIVE), 0) << Slurp(log_);
  for (int i = 0; i < 4; i++) MakeFile("a" + std::to_string(i), Payload(64 * 1024, 40 + i));
  Hold("archive-copied");
  std::vector<std::unique_ptr<Background>> archives;
  for (int i = 0; i < 4; i++)
    archives.push_back(
        std::make_unique<Background>(M("a" + std::to_string(i)), OVERTIER_IOC_ARCHIVE, 0));
  ASSERT_TRUE(Reached("archive-copied", seconds(10))) << Slurp(log_);
  std::this_thread::sleep_for(milliseconds(500));  // the others reach it, or queue
  int wfd = open(M("t").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(wfd, 0);
  std::atomic<bool> written{false};
  std::thread writer([&] {
    EXPECT_EQ(pwrite(wfd, "NEW", 3, 10), 3);
    written = true;
  });
  EXPECT_TRUE(PollUntil([&] { return written.load(); }, seconds(5)))
      << "a write to an archived file waited for archives of other files";
  Let("archive-copied");
  writer.join();
  close(wfd);
  for (int i = 0; i < 4; i++) EXPECT_EQ(archives[i]->Join(), 0) << i << "\n" << Slurp(log_);
  std::string want = Payload(64 * 1024, 39);
  want.replace(10, 3, "NEW");
  EXPECT_TRUE(ReadFile(M("t")) == want);
  Unmount();
}

// The same for an external agent: ARCHIVE_BEGIN answers once a write that
// went the plain way before it has landed, since the agent starts copying
// at the answer.
TEST_F(RaceTest, AnAgentsArchiveBeginWaitsForAWriteInFlight) {
  ASSERT_NO_FATAL_FAILURE(MountPaused("plain-write", ",passthrough=0,threads=4"));
  MakeFile("w", Payload(64 * 1024, 34));
  bool early = true;
  EXPECT_EQ(ControlDuringAHeldWrite("w", OVERTIER_IOC_ARCHIVE_BEGIN, 0, &early), 0) << Slurp(log_);
  EXPECT_FALSE(early) << "ARCHIVE_BEGIN answered while a write was in flight";
  EXPECT_EQ(Ctl(M("w"), OVERTIER_IOC_ARCHIVE_ABORT), 0) << Slurp(log_);
  Unmount();
}

}  // namespace
}  // namespace overtier
