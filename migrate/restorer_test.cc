#include "migrate/restorer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "migrate/archive_mark.h"
#include "migrate/archiver.h"
#include "migrate/migrate_testutil.h"
#include "migrate/migration_state.h"
#include "migrate/reflink_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::Payload;

constexpr size_t kSize = 2 << 20;

// Holds the restorer's one worker after each step (a piece) until Go, or
// until Allow lets it take more steps.
struct StepGate {
  RestorerOptions Options() {
    RestorerOptions o;
    o.threads = 1;
    o.piece_bytes = 64 << 10;
    o.step_hook = [this] {
      std::unique_lock<std::mutex> l(mu);
      steps++;
      cv.notify_all();
      cv.wait(l, [this] { return go || steps < allowed; });
    };
    return o;
  }
  void WaitForSteps(int n) {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return steps >= n; });
  }
  void Go() {
    std::lock_guard<std::mutex> l(mu);
    go = true;
    cv.notify_all();
  }
  // Lets the worker go on until it has taken `n` steps in all.
  void Allow(int n) {
    std::lock_guard<std::mutex> l(mu);
    allowed = n;
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  int steps = 0;
  int allowed = 0;
};

class RestorerTest : public test::MigrateFixture {
 protected:
  // A released file of kSize bytes keeping `keep`; returns its fd.
  int Released(const std::string& name, uint64_t keep = 4096) {
    data_ = Payload(kSize, 11);
    // Some zero blocks, which the restore must not allocate.
    std::fill(data_.begin() + 300000, data_.begin() + 500000, '\0');
    int fd = MakeFile(name, data_);
    SetOldTimes(fd);
    Archiver a(store_.get());
    Status s = a.Archive(fd, name);
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = a.Release(fd, name, keep);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(fstat(fd, &released_st_), 0);
    return fd;
  }
  std::optional<MigrationRecord> Record(int fd) {
    MigrationRecord r;
    Status s = store_->catalog()->GetMigration(Handle(fd).key, &r);
    if (s.err() == ENOENT) return std::nullopt;
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }
  // The user writes "USER" at off of fd through r (as MigrationService
  // does for a tracked file); *in_job: a running job took the change.
  Status UserWrite(Restorer* r, int fd, uint64_t off, bool* in_job) {
    UserChange c;
    c.offset = off;
    c.length = 4;
    return r->UserModify(
        Handle(fd).key, c,
        [&]() -> Status {
          if (pwrite(fd, "USER", 4, static_cast<off_t>(off)) != 4) return Status::FromErrno("w");
          return Status::OK();
        },
        in_job);
  }
  // Whether the committed record of fd says [off, off + n) is resident.
  bool CommittedResident(int fd, uint64_t off, uint64_t n) {
    ResidencyMap m;
    auto rec = Record(fd);
    return rec && ResidencyMap::FromRecord(*rec, kSize, &m).ok() && m.IsResident(off, n);
  }
  std::string data_;
  struct stat released_st_;
};

TEST_F(RestorerTest, WholeFileRestoreMakesItArchivedAgain) {
  int fd = Released("f");
  RestorerOptions o;
  o.piece_bytes = 256 << 10;
  o.commit_bytes = 512 << 10;  // several intermediate commits
  Restorer r(store_.get(), o);
  Status s = r.RestoreAndWait(fd, "f", {0, 0});
  ASSERT_TRUE(s.ok()) << s.ToString();
  // The waiter is answered as soon as the data is there; the final sync,
  // times and commit follow, and WhenIdle answers after them.
  std::promise<Status> idle;
  r.WhenIdle(Handle(fd).key, [&](const Status& st) { idle.set_value(st); });
  s = idle.get_future().get();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(r.active_jobs(), 0u);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);  // before our own reads move atime
  EXPECT_TRUE(ReadAll(fd) == data_);
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_EQ(StateOf(rec), MigState::kArchived);
  EXPECT_EQ(rec->flags, kMigArchived);
  EXPECT_EQ(rec->barrier, kSize);
  EXPECT_GT(rec->restore_time_ns, 0);
  EXPECT_EQ(Ns(st.st_mtim), Ns(released_st_.st_mtim)) << "the user's mtime is kept";
  EXPECT_EQ(Ns(st.st_atim), Ns(released_st_.st_atim));
  EXPECT_LT(st.st_blocks * 512, static_cast<blkcnt_t>(kSize)) << "zero blocks stay holes";
  EXPECT_GT(st.st_blocks * 512, static_cast<blkcnt_t>(kSize / 2));
  // A new request is answered at once, and so is WhenIdle without a job.
  // (The request's job, which finds everything resident, ends on its own
  // thread right after answering: wait for that, or WhenIdle waits for it.
  // This failed 1 in 5 runs with 4 of them at once on 2 CPUs.)
  EXPECT_TRUE(r.RestoreAndWait(fd, "f", {0, 10}).ok());
  for (int i = 0; i < 200 && r.active_jobs() > 0; i++) usleep(10000);
  ASSERT_EQ(r.active_jobs(), 0u);
  bool answered = false;
  r.WhenIdle(Handle(fd).key, [&](const Status& st) { answered = st.ok(); });
  EXPECT_TRUE(answered);
}

// Restores are jobs in the catalog: a row while the job runs (with what
// the next mount needs to resume it), none once it is over; an unmount
// (the restorer destroyed) stopping a whole-file job keeps the row.
TEST_F(RestorerTest, JobsRowWhileRunningKeptByAShutdownGoneWhenDone) {
  int fd = Released("f");
  const std::string key = Handle(fd).key;
  auto jobs = [&] {
    std::vector<JobRecord> out;
    EXPECT_TRUE(store_->catalog()
                    ->ScanJobs(0,
                               [&](uint64_t, const JobRecord& j) {
                                 out.push_back(j);
                                 return true;
                               })
                    .ok());
    return out;
  };
  StepGate gate;
  auto r = std::make_unique<Restorer>(store_.get(), gate.Options());
  std::atomic<int> answered{-1};
  r->Request(fd, "f", {0, 0}, [&](const Status& s) { answered = s.err(); });
  gate.WaitForSteps(1);  // loaded, one piece restored
  std::vector<JobRecord> running = jobs();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].kind, JobKind::kRestore);
  EXPECT_EQ(running[0].state, JobState::kRunning);
  EXPECT_EQ(running[0].target, key);
  EXPECT_EQ(running[0].params, kRestoreJobWhole);
  EXPECT_EQ(running[0].total, kSize);
  // The worker goes on only once the destructor has stopped the pool.
  std::thread release([&] {
    usleep(200000);
    gate.Go();
  });
  r.reset();
  release.join();
  EXPECT_EQ(answered.load(), ECANCELED);
  std::vector<JobRecord> left = jobs();
  ASSERT_EQ(left.size(), 1u) << "an unmount keeps a whole-file job for the next mount";
  EXPECT_EQ(left[0].params, kRestoreJobWhole);
  EXPECT_LT(left[0].progress, kSize);
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->flags & kMigRestoreInProgress, 0u);

  // Resumed (the mount passes the row's id): the job takes the row over
  // and deletes it when done.
  uint64_t id = 0;
  ASSERT_TRUE(store_->catalog()
                  ->ScanJobs(0,
                             [&](uint64_t i, const JobRecord&) {
                               id = i;
                               return false;
                             })
                  .ok());
  {
    Restorer r(store_.get());
    auto done = std::make_shared<std::promise<Status>>();
    r.Request(
        fd, "f", {0, 0}, [done](const Status& s) { done->set_value(s); }, false, id);
    ASSERT_TRUE(done->get_future().get().ok());
    for (int i = 0; i < 500 && r.active_jobs() > 0; i++) usleep(10000);
  }
  EXPECT_TRUE(jobs().empty());
  EXPECT_TRUE(ReadAll(fd) == data_);

  // A ranges-only restore that completes leaves no row either.
  int fd2 = Released("g");
  {
    RestorerOptions ro;
    ro.whole_file = false;
    Restorer r(store_.get(), ro);
    ASSERT_TRUE(r.RestoreAndWait(fd2, "g", {0, 100000}).ok());
    for (int i = 0; i < 500 && r.active_jobs() > 0; i++) usleep(10000);
  }
  EXPECT_TRUE(jobs().empty());
}

TEST_F(RestorerTest, RangeOnlyRestoresJustTheRange) {
  int fd = Released("f");
  RestorerOptions o;
  o.whole_file = false;
  Restorer r(store_.get(), o);
  const uint64_t off = kSize - 100000;
  ASSERT_TRUE(r.RestoreAndWait(fd, "f", {off, 1000}).ok());
  std::string now = ReadAll(fd);
  EXPECT_TRUE(now.substr(off, 1000) == data_.substr(off, 1000));
  EXPECT_EQ(now[kSize / 2], '\0') << "the middle is still a hole";
  for (int i = 0; i < 100 && r.active_jobs() > 0; i++) usleep(10000);
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_EQ(StateOf(rec), MigState::kReleased);
  EXPECT_EQ(rec->flags & kMigRestoreInProgress, 0u);
  ResidencyMap m;
  ASSERT_TRUE(ResidencyMap::FromRecord(*rec, kSize, &m).ok());
  EXPECT_TRUE(m.IsResident(0, 4096));
  EXPECT_TRUE(m.IsResident(off, 1000));
  EXPECT_FALSE(m.IsResident(4096, 1));
  EXPECT_EQ(m.resident_bytes() % test::kTestChunk, 4096u) << "whole chunks were restored";
}

TEST_F(RestorerTest, AdoptedContentIsRestoredOnDemandOnly) {
  // The "image file": content already in the store (archived from a
  // source file), adopted by an empty upper file of the same size.
  data_ = Payload(kSize, 12);
  int src = MakeFile("image-file", data_);
  Archiver a(store_.get());
  MigrationRecord src_rec;
  ASSERT_TRUE(a.Archive(src, "image-file", &src_rec).ok());
  int fd = MakeFile("copy", "");
  ASSERT_EQ(ftruncate(fd, kSize), 0);
  MigrationRecord adopted;
  Status s = a.Adopt(fd, src_rec.bfid, "copy", &adopted);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(adopted.flags, kMigArchived | kMigReleased | kMigOnDemand);
  EXPECT_EQ(adopted.bfid, src_rec.bfid) << "shared, not copied";
  EXPECT_EQ(adopted.barrier, 0u);
  EXPECT_EQ(*Record(fd), adopted);
  // The mark comes later, once the copy-up is complete (MarkAdopted).
  EXPECT_FALSE(ReadArchiveMark(fd));

  // whole_file is on, yet only the range asked for comes back.
  Restorer r(store_.get(), RestorerOptions());
  const uint64_t off = kSize / 2;
  ASSERT_TRUE(r.RestoreAndWait(fd, "copy", {off, 1000}).ok());
  for (int i = 0; i < 100 && r.active_jobs() > 0; i++) usleep(10000);
  ASSERT_EQ(r.active_jobs(), 0u);
  std::string now = ReadAll(fd);
  EXPECT_TRUE(now.substr(off, 1000) == data_.substr(off, 1000));
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_EQ(StateOf(rec), MigState::kReleased);
  ResidencyMap m;
  ASSERT_TRUE(ResidencyMap::FromRecord(*rec, kSize, &m).ok());
  EXPECT_EQ(m.resident_bytes(), test::kTestChunk) << "one chunk, nothing else";
  EXPECT_FALSE(m.IsResident(0, 1));

  // Content of another size is refused, and nothing is recorded.
  int other = MakeFile("other", "abc");
  EXPECT_EQ(a.Adopt(other, src_rec.bfid, "other").err(), EINVAL);
  EXPECT_FALSE(Record(other));
  EXPECT_FALSE(ReadArchiveMark(other));
}

TEST_F(RestorerTest, TailReaderIsAnsweredBeforeTheWholeFile) {
  int fd = Released("f");
  RestorerOptions o;
  o.threads = 1;
  o.piece_bytes = 64 << 10;
  Restorer r(store_.get(), o);
  std::mutex mu;
  std::vector<std::string> order;
  std::promise<void> all_done;
  r.Request(fd, "f", {0, 0}, [&](const Status& s) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::lock_guard<std::mutex> l(mu);
    order.push_back("whole");
    all_done.set_value();
  });
  r.Request(fd, "f", {kSize - 1000, 1000}, [&](const Status& s) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::lock_guard<std::mutex> l(mu);
    order.push_back("tail");
  });
  all_done.get_future().wait();
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], "tail");
  EXPECT_TRUE(ReadAll(fd) == data_);
}

// Overwrites 4 bytes at the start of every extent of copy `copy` of the
// file's archive; returns what was there, to put back.
std::vector<std::string> Damage(Store* store, const std::string& store_path, const Bfid& bfid,
                                size_t copy, const std::vector<std::string>* restore = nullptr) {
  FileRecord file;
  EXPECT_TRUE(store->catalog()->GetFile(bfid, &file).ok());
  std::vector<std::string> old;
  size_t i = 0;
  for (const Extent& e : file.copies[copy].extents) {
    VolumeRecord v;
    EXPECT_TRUE(store->catalog()->GetVolume(e.vv_id, &v).ok());
    char name[32];
    snprintf(name, sizeof(name), "vv-%016llx.vv", static_cast<unsigned long long>(e.vv_id));
    std::string path = store_path + "/volumes/" + v.set + "/" + name;
    int cfd = open(path.c_str(), O_RDWR);
    EXPECT_GE(cfd, 0) << path;
    std::string was(4, '\0');
    EXPECT_EQ(pread(cfd, was.data(), 4, static_cast<off_t>(e.vv_offset)), 4);
    old.push_back(was);
    const char* put = restore != nullptr ? (*restore)[i++].data() : "XXXX";
    EXPECT_EQ(pwrite(cfd, put, 4, static_cast<off_t>(e.vv_offset)), 4);
    close(cfd);
  }
  return old;
}

TEST_F(RestorerTest, BothCopiesCorruptGiveEioSoftOrHardThenRetrySucceeds) {
  int fd = Released("f");
  Bfid bfid = Record(fd)->bfid;
  std::string sp = dir_.path() + "/store";
  auto old0 = Damage(store_.get(), sp, bfid, 0);
  auto old1 = Damage(store_.get(), sp, bfid, 1);
  // Under hard semantics too: only an archive that does not answer is
  // waited for; damage is EIO at once (docs/RADOS.md).
  for (bool hard : {false, true}) {
    RestorerOptions o;
    o.hard = hard;
    Restorer r(store_.get(), o);
    Status s = r.RestoreAndWait(fd, "f", {8192, 10});
    EXPECT_EQ(s.err(), EIO) << (hard ? "hard: " : "soft: ") << s.ToString();
    EXPECT_TRUE(HasSubstr(s.message(), "'f'")) << s.ToString();
  }
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_EQ(StateOf(rec), MigState::kReleased) << "a failed restore leaves the file released";
  EXPECT_EQ(rec->flags & kMigRestoreInProgress, 0u);
  Damage(store_.get(), sp, bfid, 0, &old0);  // repaired
  Damage(store_.get(), sp, bfid, 1, &old1);
  Restorer r(store_.get());
  Status s = r.RestoreAndWait(fd, "f", {0, 0});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ReadAll(fd) == data_);
}

// A released file whose catalog row is gone, or says "archived" (a
// catalog put back from before the release), while the file still
// carries its archive mark: the job cannot tell the released bytes from
// holes and answers EIO, never the zeros of the holes. (The daemon's
// first open rebuilds such a row, ReconcileMarked; this is the restorer's
// own stand when that rebuild could not be committed.)
TEST_F(RestorerTest, AMarkedFileWhoseRowSaysResidentIsEioNotZeros) {
  int fd = Released("f");
  const std::string key = Handle(fd).key;
  const MigrationRecord released = *Record(fd);
  MigrationRecord archived = released;
  archived.flags = kMigArchived;
  archived.residency = ResidencyKind::kBarrier;
  archived.barrier = kSize;
  archived.resident_ranges.clear();
  for (int variant = 0; variant < 2; variant++) {
    Catalog::Batch b(store_->catalog());
    if (variant == 0) {
      b.DeleteMigration(key);
    } else {
      b.PutMigration(key, archived);
    }
    ASSERT_TRUE(b.Commit().ok());
    Restorer r(store_.get());
    Status s = r.RestoreAndWait(fd, "f", {8192, 10});
    EXPECT_EQ(s.err(), EIO) << variant << ": " << s.ToString();
    EXPECT_TRUE(HasSubstr(s.message(), "carries archive")) << s.ToString();
  }
  // The row back: the restore runs, and takes the mark with it.
  Catalog::Batch b(store_->catalog());
  b.PutMigration(key, released);
  ASSERT_TRUE(b.Commit().ok());
  Restorer r(store_.get());
  Status s = r.RestoreAndWait(fd, "f", {0, 0});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ReadAll(fd) == data_);
  std::promise<Status> idle;
  r.WhenIdle(key, [&](const Status& st) { idle.set_value(st); });
  ASSERT_TRUE(idle.get_future().get().ok());
  EXPECT_FALSE(ReadArchiveMark(fd).has_value());
  EXPECT_TRUE(r.RestoreAndWait(fd, "f", {8192, 10}).ok()) << "a restored file reads";
}

// A mark on a file without a hole (a crash between a release's mark and
// its commit, archiver.cc's release-marked) is stale: nothing can be
// missing, the restore answers, and the mark goes.
TEST_F(RestorerTest, AStaleMarkOnAWholeFileGoes) {
  const std::string data = Payload(kSize, 12);
  int fd = MakeFile("w", data);
  Archiver a(store_.get());
  ASSERT_TRUE(a.Archive(fd, "w").ok());
  ASSERT_TRUE(SetArchiveMark(fd, Record(fd)->bfid, "w").ok());
  Restorer r(store_.get());
  Status s = r.RestoreAndWait(fd, "w", {8192, 10});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(ReadArchiveMark(fd).has_value());
  EXPECT_TRUE(ReadAll(fd) == data);
}

TEST_F(RestorerTest, CorruptCopyFallsBackToTheOther) {
  int fd = Released("f");
  Damage(store_.get(), dir_.path() + "/store", Record(fd)->bfid, 0);
  Restorer r(store_.get());
  Status s = r.RestoreAndWait(fd, "f", {0, 0});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ReadAll(fd) == data_);
  EXPECT_GT(r.reader().stats().fallbacks, 0u);
}

TEST_F(RestorerTest, CancelAnswersOnceWithEintrOrTheResult) {
  int fd = Released("f");
  RestorerOptions o;
  o.threads = 1;
  o.piece_bytes = 64 << 10;
  Restorer r(store_.get(), o);
  std::atomic<int> calls{0}, err{-1};
  uint64_t id = r.Request(fd, "f", {kSize - 10, 10}, [&](const Status& s) {
    calls++;
    err = s.err();
  });
  bool cancelled = r.Cancel(id);
  // Whichever came first, the callback ran exactly once, with EINTR iff the
  // cancel won; the restore itself goes on.
  ASSERT_TRUE(r.RestoreAndWait(fd, "f", {0, 0}).ok());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(err.load(), cancelled ? EINTR : 0);
  EXPECT_FALSE(r.Cancel(id));
  EXPECT_TRUE(ReadAll(fd) == data_);
}

TEST_F(RestorerTest, UserWriteDuringRestoreIsNeverOverwritten) {
  for (int round = 0; round < 3; round++) {
    int fd = Released("w" + std::to_string(round));
    RestorerOptions o;
    o.threads = 1;
    o.piece_bytes = 64 << 10;
    Restorer r(store_.get(), o);
    std::promise<Status> done;
    r.Request(fd, "w", {0, 0}, [&](const Status& s) { done.set_value(s); });
    usleep(round * 3000);
    // The user writes into the (probably) non-resident middle.
    const uint64_t off = kSize / 2 + 123;
    bool in_job = false;
    Status s = UserWrite(&r, fd, off, &in_job);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(done.get_future().get().ok());
    std::string want = data_;
    want.replace(off, 4, "USER");
    EXPECT_TRUE(ReadAll(fd) == want) << "round " << round << " in_job " << in_job;
    for (int i = 0; i < 100 && r.active_jobs() > 0; i++) usleep(10000);
    if (in_job) {
      // The file was modified while released: dirty, then fully restored,
      // so resident and its archive no longer referenced.
      auto rec = Record(fd);
      EXPECT_FALSE(rec) << "round " << round << ": " << StateString(rec, kSize);
    }
  }
}

// A user change made while a job runs is the job's to commit, every
// commit_bytes and at its end; the user's fsync commits it at once
// (CommitUserChanges), so a crash after the fsync cannot leave a record
// that calls the synced bytes non-resident.
TEST_F(RestorerTest, CommitUserChangesMakesTheRecordSayTheUsersBytesAreResident) {
  int fd = Released("f");
  const std::string key = Handle(fd).key;
  StepGate gate;
  Restorer r(store_.get(), gate.Options());
  std::promise<Status> done;
  r.Request(fd, "f", {0, 0}, [&](const Status& s) { done.set_value(s); });
  gate.WaitForSteps(1);               // loaded, one piece restored, held
  const uint64_t off = kSize - 1000;  // far from the held job's cursor
  bool in_job = false;
  Status s = UserWrite(&r, fd, off, &in_job);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(in_job);
  EXPECT_FALSE(CommittedResident(fd, off, 4)) << "committed before the sync";

  s = r.CommitUserChanges(key);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(CommittedResident(fd, off, 4)) << StateString(Record(fd), kSize);
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_TRUE(rec->flags & kMigRestoreInProgress) << "the job still runs";
  // Nothing new since: no commit.
  EXPECT_TRUE(r.CommitUserChanges(key).ok());
  EXPECT_TRUE(r.CommitUserChanges("no-such-file").ok());

  gate.Go();
  ASSERT_TRUE(done.get_future().get().ok());
  std::string want = data_;
  want.replace(off, 4, "USER");
  EXPECT_TRUE(ReadAll(fd) == want);
}

// Without an fsync (sync(2) does not reach the daemon), a job commits the
// user's changes it holds within user_commit_after, at its next step.
TEST_F(RestorerTest, UserChangesAreCommittedSoonWithoutAnFsync) {
  int fd = Released("f");
  StepGate gate;
  RestorerOptions o = gate.Options();
  o.user_commit_after = std::chrono::milliseconds(0);
  Restorer r(store_.get(), o);
  std::promise<Status> done;
  r.Request(fd, "f", {0, 0}, [&](const Status& s) { done.set_value(s); });
  gate.WaitForSteps(1);
  const uint64_t off = kSize - 1000;
  bool in_job = false;
  Status s = UserWrite(&r, fd, off, &in_job);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(in_job);
  EXPECT_FALSE(CommittedResident(fd, off, 4));
  gate.Allow(2);
  gate.WaitForSteps(2);  // one more piece, far from the user's bytes
  EXPECT_TRUE(CommittedResident(fd, off, 4)) << "not committed at the job's next step";
  auto rec = Record(fd);
  ASSERT_TRUE(rec);
  EXPECT_TRUE(rec->flags & kMigRestoreInProgress) << "the job still runs";
  gate.Go();
  ASSERT_TRUE(done.get_future().get().ok());
}

// Under hard semantics a job whose archive does not answer waits and
// retries; the user's changes it holds are committed all the same, not
// when the archive answers again (an outage of an hour left them
// uncommitted for the hour: SEMANTICS.md said so, this fixed it).
TEST_F(RestorerTest, AStalledHardJobStillCommitsTheUsersChanges) {
  int fd = Released("f");
  std::atomic<bool> down{true};
  std::atomic<int> timeouts{0};
  RestorerOptions o;
  o.threads = 1;
  o.piece_bytes = 64 << 10;
  o.hard = true;
  o.retry_first = std::chrono::milliseconds(5);
  o.retry_max = std::chrono::milliseconds(20);
  o.user_commit_after = std::chrono::milliseconds(0);
  o.read_hook = [&]() -> Status {
    if (!down) return Status::OK();
    timeouts++;
    return Status::Errno(ETIMEDOUT, "the archive does not answer (test)");
  };
  Restorer r(store_.get(), o);
  std::promise<Status> done;
  r.Request(fd, "f", {0, 0}, [&](const Status& s) { done.set_value(s); });
  for (int i = 0; i < 500 && timeouts == 0; i++) usleep(2000);
  ASSERT_GT(timeouts.load(), 0);
  const uint64_t off = kSize / 2;
  bool in_job = false;
  ASSERT_TRUE(UserWrite(&r, fd, off, &in_job).ok());
  ASSERT_TRUE(in_job);
  bool committed = false;
  for (int i = 0; i < 500 && !committed; i++) {
    usleep(2000);
    committed = CommittedResident(fd, off, 4);
  }
  EXPECT_TRUE(committed) << "the user's bytes wait for the archive";
  EXPECT_GT(timeouts.load(), 1) << "the job kept retrying";
  down = false;
  ASSERT_TRUE(done.get_future().get().ok());
  std::string want = data_;
  want.replace(off, 4, "USER");
  EXPECT_TRUE(ReadAll(fd) == want);
}

// A restore nobody reads (an explicit one, a resumed job) writes whole
// blocks with O_DIRECT: the page cache does not fill with the file (the
// copy into it was the restorer's main CPU cost); a restore a reader waits
// on writes through the page cache, where the reader finds its bytes.
TEST_F(RestorerTest, OnlyARestoreNobodyReadsBypassesThePageCache) {
  auto cached = [](int fd) {
    void* p = mmap(nullptr, kSize, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT_NE(p, MAP_FAILED);
    std::vector<unsigned char> v(kSize / 4096);
    EXPECT_EQ(mincore(p, kSize, v.data()), 0);
    munmap(p, kSize);
    size_t n = 0;
    for (unsigned char c : v) n += c & 1;
    return n * 4096;
  };
  for (bool reads : {false, true}) {
    const std::string name = reads ? "read" : "unread";
    int fd = Released(name, /*keep=*/0);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    Restorer r(store_.get());
    std::promise<Status> done;
    r.Request(
        fd, name, {0, 0}, [&](const Status& s) { done.set_value(s); }, false, 0, reads);
    ASSERT_TRUE(done.get_future().get().ok());
    for (int i = 0; i < 500 && r.active_jobs() > 0; i++) usleep(10000);
    const size_t in_cache = cached(fd);
    if (reads) {
      EXPECT_GT(in_cache, kSize / 2) << name;
    } else {
      EXPECT_LT(in_cache, kSize / 8) << name << ": written with O_DIRECT";
    }
    EXPECT_TRUE(ReadAll(fd) == data_) << name;
    close(fd);
  }
}

// A restore nobody reads shares the containers' blocks where the file
// system can (XFS with reflink, btrfs: the xfs suite runs this test there
// with OVERTIER_EXPECT_REFLINK=1, so that it cannot pass by not cloning),
// and writes elsewhere (ext4); with clone off it always writes. Either way
// the content is the archived one, holes stay holes, and the tail block
// (which the container shares with the next record) is written.
TEST_F(RestorerTest, AnUnreadRestoreSharesTheArchivesBlocksWhereItCan) {
  const bool can = test::CanClone(upper_);
  if (test::ExpectReflink()) {
    ASSERT_TRUE(can) << "TMPDIR is on a file system without reflink";
  }
  // Not a whole number of blocks: the last chunk's tail block is written.
  const size_t size = kSize + 1000;
  std::string data = Payload(size, 23);
  std::fill(data.begin() + 300000, data.begin() + 500000, '\0');
  for (bool clone : {true, false}) {
    const std::string name = clone ? "cloned" : "written";
    int fd = MakeFile(name, data);
    Archiver a(store_.get());
    ASSERT_TRUE(a.Archive(fd, name).ok());
    ASSERT_TRUE(a.Release(fd, name, /*keep=*/0).ok());
    RestorerOptions o;
    o.clone = clone;
    Restorer r(store_.get(), o);
    ASSERT_TRUE(r.RestoreAndWait(fd, name, {0, 0}).ok());
    for (int i = 0; i < 500 && r.active_jobs() > 0; i++) usleep(10000);
    EXPECT_TRUE(ReadAll(fd) == data) << name;
    const uint64_t shared = test::SharedBytes(fd);
    if (clone && can) {
      // All but the holes' chunks and the tail block.
      EXPECT_GE(shared, size - 300000) << name;
    } else {
      EXPECT_EQ(shared, 0u) << name;
    }
    // The zeros in the middle (whole chunks of them are holes in the
    // archive; the zero blocks of the others are skipped) take no space.
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, size - 150000) << name;
    auto rec = Record(fd);
    ASSERT_TRUE(rec.has_value());
    EXPECT_FALSE(rec->flags & kMigReleased) << name;
  }
}

// While a job goes through one container file its clones wait, so that
// they do not take turns with its reads ahead (Restorer::Job::deferred).
// Meanwhile a user write into their bytes is kept (the clones go only
// where the bytes are still missing), and a waiter for their bytes alone
// is answered at once, not after the rest of the file.
TEST_F(RestorerTest, ClonesPutOffKeepAUserWriteAndAnswerTheirWaiter) {
  if (!test::CanClone(upper_)) {
    ASSERT_FALSE(test::ExpectReflink()) << "TMPDIR is on a file system without reflink";
    GTEST_SKIP() << "the file system does not clone blocks";
  }
  int fd = Released("d", /*keep=*/0);
  // Before the restorer: it answers waiters still there when it goes.
  std::promise<Status> all, mid;
  std::future<Status> all_done = all.get_future(), mid_done = mid.get_future();
  StepGate gate;
  Restorer r(store_.get(), gate.Options());  // one piece (a 64 KiB chunk) per step
  // A failed assertion must not leave the worker held (~Restorer waits).
  struct GoOnExit {
    StepGate* gate;
    ~GoOnExit() { gate->Go(); }
  } go_on_exit{&gate};
  r.Request(fd, "d", {0, 0}, [&](const Status& s) { all.set_value(s); });
  // Piece 0 is cloned (the first clone tells whether the file system
  // can), the clones of pieces 1 to 3 are put off: the whole file is in
  // one container file.
  gate.Allow(4);
  gate.WaitForSteps(4);
  const uint64_t piece = 64 << 10;
  const uint64_t off = 2 * piece + 1000;
  bool in_job = false;
  Status s = UserWrite(&r, fd, off, &in_job);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(in_job);
  r.Request(
      fd, "d", {3 * piece + 10, 100}, [&](const Status& st) { mid.set_value(st); },
      /*range_only=*/true);
  gate.Allow(5);
  ASSERT_EQ(mid_done.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_TRUE(mid_done.get().ok());
  EXPECT_EQ(all_done.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout)
      << "the waiter was answered only with the whole file";
  std::string got(100, '\0');
  ASSERT_EQ(pread(fd, got.data(), got.size(), 3 * piece + 10), 100);
  EXPECT_TRUE(got == data_.substr(3 * piece + 10, 100));
  gate.Go();
  ASSERT_EQ(all_done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  s = all_done.get();
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (int i = 0; i < 500 && r.active_jobs() > 0; i++) usleep(10000);
  std::string want = data_;
  want.replace(off, 4, "USER");
  EXPECT_TRUE(ReadAll(fd) == want) << "a clone went over the user's write";
  EXPECT_GT(test::SharedBytes(fd), kSize / 2) << "the restore did not clone";
}

}  // namespace
}  // namespace overtier
