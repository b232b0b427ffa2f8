// Restorer: brings the non-resident bytes of released upper files back from
// the archive, for readers waiting on ranges (RangeWaiters) and in the
// background.
//
// One restore job per file however many readers wait on it. A pool of
// worker threads runs the jobs a piece (piece_bytes, whole chunks) at a
// time, round-robin between files, so a huge background restore does not
// starve a small file's reader. Within a job, the ranges readers wait for
// come first, the waiters taking turns a piece each (a reader of the last
// megabyte is not queued behind someone's whole-file restore); then, if
// whole_file, the rest of the file from where the restore last was ("range
// first, then the rest") — except for a record marked kMigOnDemand (a lazy
// copy-up of an image file), whose rest stays in the image.
//
// A piece: read through ContentReader (io_uring, every chunk verified, the
// other copy on a mismatch) without any lock; then, holding the file's io
// lock, the bytes of the piece still non-resident (a user write may have
// landed meanwhile) are pwritten into the upper file, skipping 4 KiB blocks
// of zeros (non-resident bytes already read as zero: residency.h), and
// marked resident; waiters whose range is now complete are answered at
// once. When nobody waits on the piece and the containers lie on the upper
// file's file system, its verified chunks are not written but cloned
// (FICLONERANGE: the upper file shares the containers' blocks), so that a
// restore costs the reading of the archive only. While a job goes through
// the file in order (the rest of the file, or a long range waited for),
// the next two pieces are read (ContentReader::Prefetch, into its chunk
// cache) on threads of their own while this one is written: reading and
// writing overlap. A clone waits for the direct reads in flight on its
// source container, so the clones are put off while the job reads the same
// container file, and done together once its reads have gone on to the
// next file, a waiter needs their bytes, or nothing else is left (their
// bytes stay non-resident until then; a user write meanwhile is kept).
// Every commit_bytes (a cloned byte counts for an eighth), and at the
// end: fdatasync (fsync once blocks were cloned), the user's atime/mtime
// put back (futimens), then the migration record committed with the
// residency as of before the sync — the catalog never claims a byte that
// is not durable.
//
// Failure (container missing, every copy corrupt, write error): every
// waiter of the file gets EIO with the reason, the record keeps what was
// durably restored and loses the in-progress flag, the file stays released;
// the next Request starts over.
//
// Jobs: a job that restores anything has a row in the catalog's jobs
// family (kind restore, target the file's handle, params kRestoreJobWhole
// or kRestoreJobRanges, progress = resident bytes), written with the
// record's in-progress flag, updated at each commit, deleted with the last
// commit. A daemon killed meanwhile leaves it: the next mount resumes a
// whole-file job in the background (src/migration.h) and drops a
// ranges-only one (the readers it served are gone; what it restored is
// durable and kept). An unmount stopping a whole-file job keeps its row
// too: the restore goes on at the next mount. ("Whole" as of the job's
// last commit.)
//
// Records: while a job runs, it owns the file's migration record; user
// writes and truncates of the file must go through UserModify, which
// serializes them with the restore's writes and applies them to the job's
// record (committed with the job's next commit, or at once when the user
// syncs the file: CommitUserChanges).
#ifndef OVERTIER_MIGRATE_RESTORER_H_
#define OVERTIER_MIGRATE_RESTORER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "migrate/range_waiters.h"
#include "migrate/worker_pool.h"
#include "overtier/status.h"
#include "store/content_reader.h"
#include "store/store.h"

namespace overtier {

// The params of a restore jobs row: whether the rest of the file was asked
// for.
inline constexpr std::string_view kRestoreJobWhole = "whole";
inline constexpr std::string_view kRestoreJobRanges = "ranges";

struct RestorerOptions {
  int threads = 2;
  // After the ranges asked for, restore the rest of the file (else only
  // what readers wait for).
  bool whole_file = true;
  uint64_t piece_bytes = uint64_t{4} << 20;    // per read/write step
  uint64_t commit_bytes = uint64_t{32} << 20;  // fdatasync + catalog commit interval
  // Share the archive's blocks instead of copying them (FICLONERANGE)
  // where the containers and the upper file are on one file system that
  // can (XFS with reflink, btrfs), for restores nobody reads meanwhile.
  bool clone = true;
  // A job holding user changes commits them this long after the first at
  // the latest, fsync or not: sync(2) does not reach the daemon (libfuse
  // 3.14 has no SYNCFS), so this bounds what it leaves uncommitted, as a
  // file system's journal commit interval does.
  std::chrono::milliseconds user_commit_after{5000};
  // Hard semantics (mount option "hard", like an NFS hard mount): when the
  // archive cannot be reached (ContentReader says ETIMEDOUT: a RADOS
  // cluster down or slow), the job waits and tries again, backing off from
  // retry_first to retry_max, instead of failing its waiters with EIO.
  // Waiters still leave with Ctrl-C (EINTR); a new request retries at once.
  bool hard = false;
  std::chrono::milliseconds retry_first{500};
  std::chrono::milliseconds retry_max{15000};
  // Tests: called by a worker after each step of a job (a piece restored),
  // outside every lock.
  std::function<void()> step_hook;
  // Tests: called before a piece is read from the archive; a status that
  // is not OK is taken as the read's (ETIMEDOUT: the archive does not
  // answer, which a local volume set never says).
  std::function<Status()> read_hook;
};

// A user modification, for UserModify.
struct UserChange {
  bool truncate = false;  // else a write
  uint64_t offset = 0;    // write: the bytes written
  uint64_t length = 0;
  uint64_t new_size = 0;  // truncate: the new size
};

class Restorer {
 public:
  Restorer(Store* store, const RestorerOptions& options = {});
  // Stops the workers after their current piece; jobs still running end as
  // failed (ECANCELED to their waiters), with what was durably restored
  // committed.
  ~Restorer();
  Restorer(const Restorer&) = delete;
  Restorer& operator=(const Restorer&) = delete;

  // Asks for [range.offset, range.offset + range.length) of the upper file
  // open as fd (O_RDWR; the restorer keeps a dup while it works) to be
  // resident; cb runs once: OK when it is (maybe at once, in this thread),
  // else the error. Returns the waiter id for Cancel (0 if already answered).
  // range_only: this request does not want the rest of the file restored
  // in the background (the job restores the rest, with whole_file, as soon
  // as any request of it did not say range_only).
  // resume_job: the jobs row of a job a killed daemon left (the mount
  // resumes it): the new job takes over that row.
  // reads: the caller reads the range once answered (RangeWaiters::Add):
  // its pieces are written through the page cache, where it will find them.
  uint64_t Request(int fd, const std::string& what, ByteRange range, WaitCallback cb,
                   bool range_only = false, uint64_t resume_job = 0, bool reads = false);
  // Ends a wait with EINTR (the restore itself goes on). False if the wait
  // was already answered.
  bool Cancel(uint64_t waiter_id);
  // Whether a job for the file `key` is queued or running. A release must
  // not run beside one: the job reads the record, then commits it with its
  // restore flag, and a release committed in between would be overwritten
  // (and the bytes it punched taken for resident). Jobs start in Request
  // only, so a caller that serializes its Requests and releases of a file
  // (MigrationService: the file's modify_mu) gets an answer that holds.
  bool HasJob(const std::string& key);
  // Runs cb once no job of `key` is queued or running (at once, in this
  // thread, if none is): OK if the job ended well, else why it failed. A
  // waiter answered "resident" may still have the job's last commit ahead
  // (restore --wait waits for it, so that a release or a status that
  // follows finds the file restored).
  void WhenIdle(const std::string& key, WaitCallback cb);
  // Request and wait for the answer.
  Status RestoreAndWait(int fd, const std::string& what, ByteRange range);

  // Runs `io` (the user's pwrite or ftruncate on the upper file `key`) with
  // no restore write of that file in between, then records `change` in the
  // running job (residency, size, the user's new mtime). Without a running
  // job, only runs io: the caller updates the record (migration_state.h).
  // *in_job says which.
  Status UserModify(const std::string& key, const UserChange& change,
                    const std::function<Status()>& io, bool* in_job);

  // The user synced the upper file `key` (fsync): if a running job holds
  // user changes it has not committed, commits its record now (as its
  // periodic commit does). Without it, a crash before the job's next
  // commit would leave a record that calls the user's synced bytes
  // non-resident, and the next restore would write the archive over them.
  Status CommitUserChanges(const std::string& key);

  // The file is gone (its last link, and its last user): a job still
  // running for it stops owning a record, so its later commits write none
  // and the caller's deletion of the record stands. Waits for a commit in
  // progress; call before deleting the record.
  void Unlinked(const std::string& key);

  // Jobs (files) being restored now.
  size_t active_jobs() const;
  const ContentReader& reader() const { return reader_; }

 private:
  struct Job;
  void Worker();
  // One step of a job; false when the job is over.
  bool Step(Job* job);
  Status Load(Job* job);
  static JobRecord JobRow(const Job& job, const ResidencyMap& map, bool rest);
  // Picks the next piece to restore; false if the job has nothing to do
  // now. *flush: the clones the job put off must be done first (a waiter
  // waits only for their bytes, or nothing else is left).
  bool NextPiece(Job* job, ByteRange* piece, bool* flush);
  Status RestorePiece(Job* job, ByteRange piece);
  Status WriteRestored(Job* job, const char* p, uint64_t off, uint64_t n, bool direct);
  // Clones the non-zero blocks of r (restored bytes in buf, from `piece`)
  // that `sources` places in container files; appends what is left to
  // write to *rest, and what it put off (job->deferred) to *deferred.
  void CloneRestored(Job* job, const char* buf, ByteRange piece, ByteRange r,
                     const std::vector<LocalSource>& sources, std::vector<ByteRange>* rest,
                     std::vector<ByteRange>* deferred);
  // Does the clones the job put off (job->io_mu held), those of their
  // bytes the user has not changed meanwhile, and tells the waiters.
  Status FlushClones(Job* job);
  void Repair(Job* job, const std::vector<Extent>& damaged);
  // fdatasync, times, commit of the residency as of before the sync.
  // finish: the job ends (its jobs row goes, unless keep_row).
  Status Sync(Job* job, bool finish, bool keep_row = false);
  Status SyncLocked(Job* job, bool finish, bool keep_row);  // job->io_mu held
  void FailJob(Job* job, const Status& error);
  // Hard semantics: the archive did not answer; run the job again later.
  void WaitForArchive(Job* job, const Status& why);
  // Takes the WhenIdle callbacks of `key` (under mu_), for the caller to
  // run once it has let go of mu_.
  std::vector<WaitCallback> TakeIdleWaiters(const std::string& key);

  Store* store_;
  RestorerOptions options_;
  ContentReader reader_;
  RangeWaiters waiters_;
  uint64_t chunk_size_;
  // Threads that read ahead (ContentReader::Prefetch) for the jobs going
  // through files in order. Kept for the restorer's life: a thread and an
  // io_uring of its own per 4 MiB piece cost their setup 256 times a GiB.
  // Destroyed before reader_, after running every read queued, so that a
  // job that outlives the restorer finds its reads ahead answered.
  WorkerPool ahead_pool_;

  mutable std::mutex mu_;  // jobs_, queue_, each job's map and record
  std::mutex repair_mu_;   // one RepairCopies at a time (read-modify-write of files rows)
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::multimap<std::string, WaitCallback> idle_waiters_;  // WhenIdle
  std::vector<std::thread> threads_;
};

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_RESTORER_H_
