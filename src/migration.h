// The daemon's migration service: the migration tier (migrate/) wired to a
// mounted union whose upper files it archives, releases and restores.
//
// Store access. The engine (Archiver, Restorer) writes the store: container
// files and catalog rows. A writable Store holds write.lock, which
// `overtier image import` into the same store also needs, so the service
// opens the store for writing only while it has work (a "session": an
// archive, a release, a restore job, a write to a released file) and closes
// it again after kIdleClose without work, or at once, when idle, if
// another process waits to write the store (Store::WriterWanted). A mount
// with lazy copy-up of image files keeps it open from the start while
// idle (set_keep_open): a container's first writes are such copy-ups.
// Opening may wait for an import to finish: it always happens on the
// service's own threads, never on a FUSE request-loop thread.
//
// What the read path needs to know lives in memory: the migration records
// of the store, scanned once when the service is created (a read-only
// catalog is a snapshot as of its open, so it could not be re-read for
// our own later commits), then updated from the writable catalog after
// every operation of ours (which sees its own commits) and when a session
// closes (restores that ran in the background). Only files with a record
// that says "released" (or dirty or lost) take the slow read path; a file
// that was never archived costs one lookup at open and an atomic load per
// read.
//
// Per file, keyed by the upper file's handle (migrate/file_handle.h), a
// MigFile is shared by every open of the file: the state the read path
// checks (`slow`) and, while slow, the residency map as last known. The
// map may lag behind the restorer's (it only grows when a waiter is
// answered or a session closes): a read of a range the map does not know
// to be resident asks the restorer, which answers at once if it is.
#ifndef OVERTIER_SRC_MIGRATION_H_
#define OVERTIER_SRC_MIGRATION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "migrate/archiver.h"
#include "migrate/residency.h"
#include "migrate/restorer.h"
#include "migrate/worker_pool.h"
#include "overtier/control.h"
#include "overtier/status.h"
#include "src/io_gate.h"
#include "store/catalog_records.h"
#include "store/store.h"

namespace overtier {

class MigrationService;

// One upper file as the migration tier sees it (shared by its opens).
struct MigFile {
  std::string key;  // the handle: the catalog key
  // The file has a migration record (any state): writes and truncates go
  // through the service, which updates it.
  std::atomic<bool> has_record{false};
  // Archives of the file in progress: its writes go through the service
  // from before the copy starts (Archive), so none falls between the
  // archive's last look at the file and its record becoming known here.
  std::atomic<int> archiving{0};
  // Whether writes and truncates must go through the service. Sequentially
  // consistent, as PlainChange's count and Archive's wait (see there).
  bool tracked() const { return has_record.load() || archiving.load() > 0; }
  // Changes of the file's data made the plain way (PlainChange) that are
  // in flight. An archive, once it made the file tracked, waits for them
  // to end before it looks at the file.
  std::atomic<int> plain_changes{0};
  // Called once the file is tracked (PlainChange).
  void WaitForPlainChanges() {
    for (int n; (n = plain_changes.load()) != 0;) plain_changes.wait(n);
  }
  // Bumped by every change of the file's data through this mount, both
  // ways: how an archive tells that the file changed while it copied it
  // (ArchiveFence; size and timestamps cannot).
  std::atomic<uint64_t> changes{0};
  // Some bytes may be non-resident: reads check `map` first.
  std::atomic<bool> slow{false};
  std::mutex mu;     // map, path_fd
  ResidencyMap map;  // while slow: what is known to be resident
  // Held shared by a reader from its look at `map` until it has read the
  // bytes from the upper file, exclusively by a release while it publishes
  // the ranges it will punch: a reader that saw a range resident reads it
  // before the punch, one that comes later sees it missing.
  IoGate io_gate;
  // Bumped (under mu, modify_mu held) by a release as it publishes the
  // ranges it will punch. A wait answered OK says "resident" as the
  // restorer knew it when the wait began; if a release came in between,
  // the answer is not marked into `map` (the reader looks again).
  uint64_t release_epoch = 0;
  int path_fd = -1;  // O_PATH, once the service worked on the file (to stat it later)
  // Serializes a user modification with the start of a restore job, so a
  // job never loads a record older than a modification it did not see.
  std::mutex modify_mu;
  // The last link is gone. The record (and with it the archive) is dropped
  // when the last user of the file lets go: an unlinked file still open
  // must read as before.
  std::atomic<bool> unlinked{false};
  // No FUSE passthrough open of this file may start (src/fuse_ops.cc,
  // CountOpen): set once the file has a record, and by the transport before
  // any control command, which it refuses while one is open. Every change
  // of a file with a record must go through the service.
  std::atomic<bool> no_passthrough{false};
  MigrationService* owner = nullptr;  // told when the file is let go
  // The Attach that made this MigFile has published the file's record: a
  // second open that finds the MigFile waits for that, or it would write
  // the plain way and read punched bytes of a released file.
  std::atomic<bool> attached{false};
  ~MigFile();
};

// A change of a file's data made the plain way (by the FUSE request
// itself, not through MigrationService::UserModify): construct it before
// the change, keep it until the change is made, and make the change
// through UserModify instead if tracked(). Either the change finds the file
// tracked, or the archive that makes it tracked waits for the change to
// end before it looks at the file: both sides write their counter, then
// read the other's, sequentially consistent. A change made the plain way
// is thus never inside an archive's copy, and never recorded late.
//
// It holds the file: a request usually replies before its PlainChange
// ends, and the reply may let the caller close its last descriptor (a
// RELEASE on another thread dropping the open's MigFile) first.
class PlainChange {
 public:
  explicit PlainChange(std::shared_ptr<MigFile> file) : file_(std::move(file)) {
    if (file_ == nullptr) return;
    file_->plain_changes.fetch_add(1);
    if (file_->tracked()) {
      End();
      file_ = nullptr;
      tracked_ = true;
    }
  }
  ~PlainChange() {
    if (file_ == nullptr) return;
    file_->changes.fetch_add(1);
    End();
  }
  PlainChange(const PlainChange&) = delete;
  PlainChange& operator=(const PlainChange&) = delete;
  bool tracked() const { return tracked_; }

 private:
  void End() {
    if (file_->plain_changes.fetch_sub(1) == 1) file_->plain_changes.notify_all();
  }
  std::shared_ptr<MigFile> file_;
  bool tracked_ = false;
};

// How the daemon's messages name the upper file open as fd: its path as
// the kernel knows it now (an administrator reading the log wants a name),
// else "upper inode N". Control characters and bytes that are not UTF-8
// are escaped (overtier/printable.h): a user's file name must not split
// or forge a line of the log.
std::string UpperFileName(int fd);

class MigrationService {
 public:
  // Loads the migration records of the store at `store_path`: from
  // `opened` (that store, already open, e.g. read-only for the mount's
  // images: a second open of its catalog would cost the mount time), or
  // from a read-only open made for the scan and then closed.
  static Status Create(const std::string& store_path, std::unique_ptr<MigrationService>* out,
                       Store* opened = nullptr);
  // Ends every wait (ECANCELED), closes the session.
  ~MigrationService();
  MigrationService(const MigrationService&) = delete;
  MigrationService& operator=(const MigrationService&) = delete;

  // Hard semantics for restores (RestorerOptions::hard): before Start.
  void set_hard(bool hard) { hard_ = hard; }
  // Mount option restore=ondemand: a read of a released range restores
  // that range only (ReadRange), instead of the rest of the file following
  // in the background. Before Start.
  void set_reads_on_demand(bool on_demand) { reads_on_demand_ = on_demand; }
  bool reads_on_demand() const { return reads_on_demand_; }
  // Mount option restore_clone=off: restores always write a copy
  // (RestorerOptions::clone). Before Start.
  void set_restore_clone(bool clone) { restore_clone_ = clone; }
  // Keep the store open for writing from Start on, also while idle, until
  // another process wants to write it (Store::WriterWanted) or kKeepIdle
  // passed without work: for a mount with lazy copy-up, whose first writes
  // (a container's /etc/hosts) would otherwise wait for the open. Before
  // Start.
  void set_keep_open(bool keep) { keep_open_ = keep; }

  // Starts the threads; after the daemon forked (threads do not survive
  // fork). upper_dir: the mount's upper directory, where the restore jobs
  // a killed (or unmounted) daemon left are resumed (empty: none are).
  void Start(const std::string& upper_dir = "");
  // Stops the threads, answers waits still open (ECANCELED) and closes the
  // session. Idempotent; the destructor calls it.
  void Shutdown();

  // The MigFile of the upper regular file open as fd (any open mode, even
  // O_PATH); nullptr if the file system has no handles. Checks the
  // record's generation against the file's (a replaced file's record is
  // invalidated).
  // raw_handle, if not empty: the file's handle as name_to_handle_at(2)
  // gave it before (saves asking again at every open).
  std::shared_ptr<MigFile> Attach(int fd, std::string_view raw_handle = {});

  // Read path: whether [offset, offset + length) is known resident. Only
  // meaningful while file->slow.
  bool KnownResident(MigFile* file, uint64_t offset, uint64_t length);
  // Makes [offset, offset + length) of the upper file open as fd resident,
  // then calls cb (OK, or the failure: EIO, ECANCELED at shutdown, EINTR
  // after CancelWait) exactly once, from another thread. Returns a wait
  // handle for CancelWait.
  struct Wait;
  // range_only: do not restore the rest of the file in the background.
  // resume_job: the jobs row this restore takes over (Restorer::Request).
  // reads: cb's caller reads the range next (Restorer::Request).
  std::shared_ptr<Wait> WaitRange(const std::shared_ptr<MigFile>& file, int fd, uint64_t offset,
                                  uint64_t length, std::function<void(const Status&)> cb,
                                  bool range_only = false, uint64_t resume_job = 0,
                                  bool reads = false);
  // WaitRange for a reader (a read or a page fault): the rest of the file
  // follows in the background unless the mount said restore=ondemand.
  std::shared_ptr<Wait> ReadRange(const std::shared_ptr<MigFile>& file, int fd, uint64_t offset,
                                  uint64_t length, std::function<void(const Status&)> cb) {
    return WaitRange(file, fd, offset, length, std::move(cb), reads_on_demand_, 0, /*reads=*/true);
  }
  // Ends the wait with EINTR (the restore itself goes on).
  void CancelWait(const std::shared_ptr<Wait>& wait);

  // ---- control (blocking: call them off the request loop)
  Status GetState(int fd, overtier_ctl_state* out);
  // `what` names the file in messages.
  Status Archive(const std::shared_ptr<MigFile>& file, int fd, const std::string& what,
                 bool release, uint64_t keep);
  Status Release(const std::shared_ptr<MigFile>& file, int fd, const std::string& what,
                 uint64_t keep);
  // Restores [offset, offset + length) of the file (length 0: to its
  // end); range_only: not the rest of it in the background. done runs once:
  // at once without `wait`; with range_only, when the range is resident;
  // else when the file is and the restore job has committed; or with why
  // not. Never blocks the caller.
  // Returns the wait, for CancelWait (nullptr without `wait`).
  std::shared_ptr<Wait> Restore(const std::shared_ptr<MigFile>& file, int fd,
                                const std::string& what, uint64_t offset, uint64_t length,
                                bool wait, bool range_only,
                                std::function<void(const Status&)> done);
  // The value of user.overtier.state for the upper file open as fd.
  Status StateString(int fd, std::string* out);

  // ---- the DMFS primitives, for an external agent (blocking)
  // cmd: OVERTIER_IOC_ARCHIVE_BEGIN, SET_ARCHIVED (archived: its argument),
  // ARCHIVE_ABORT, SET_NONRESIDENT (keep = r.offset), RESTORE_BEGIN,
  // MOVE_BARRIER ([r.offset, +r.length) was written into the upper file by
  // the agent), RESTORE_DONE. Each applies the state machine's transition
  // (migrate/migration_state.h) to the file's record and commits it.
  // While an agent's restore is in progress, readers of non-resident
  // ranges wait for its MOVE_BARRIERs; what is still missing at
  // RESTORE_DONE (or after an agent gave up) is restored by the daemon.
  Status Primitive(const std::shared_ptr<MigFile>& file, int fd, const std::string& what,
                   unsigned cmd, const overtier_ctl_request& r,
                   const overtier_ctl_archived* archived);

  // ---- lazy copy-up (blocking)
  // The upper file open as fd (any mode; the lower's size, no data yet)
  // takes the image content `bfid` as its archive: released, restored on
  // demand (migrate/archiver.h, Adopt). `what` names it in messages.
  Status Adopt(int fd, const Bfid& bfid, const std::string& what);
  // The copy-up Adopt was part of is complete: the upper file gets its
  // archive mark (migrate/archive_mark.h) now, not in Adopt, as the
  // copy-up's own metacopy xattr would push the mark out of an ext4 inode
  // into a 4 KiB xattr block. Best effort.
  void MarkAdopted(int fd);
  // A lazy copy-up is starting: open the store for writing now, on a
  // service thread, while the union copies the file's metadata, so that
  // Adopt finds the session open (or opening). Returns at once.
  // wait: false to open only if no other process writes the store (and
  // not to ask it to let go).
  void OpenAhead(bool wait = true);

  // ---- user modifications of a tracked file (blocking)
  // The user synced the file (fsync, fdatasync): a restore job running for
  // it may hold the user's changes in a record it has not committed yet;
  // it commits now (Restorer::CommitUserChanges), so the record is as
  // durable as the bytes. Nothing to do (no system call) for a file
  // without a record, or while no store session is open.
  Status UserSynced(const std::shared_ptr<MigFile>& file);
  // Runs io (the user's write or truncate on the upper file) and records
  // the change in the file's migration record. io may do nothing: a change
  // made the plain way just before an archive began is recorded late.
  // fd: the upper file (any mode), for its size before the change.
  Status UserModify(const std::shared_ptr<MigFile>& file, int fd, const UserChange& change,
                    const std::function<Status()>& io);
  // Runs io (the user's utimes/touch on the upper file) and makes the
  // record's preserved times follow (an archived or released file's record
  // must hold the file's mtime: that is how a change behind our back is
  // told from ours).
  Status UserTimes(const std::shared_ptr<MigFile>& file, int fd, const std::function<Status()>& io);
  // The last link of the file is gone: its record goes (archive freed for
  // gc) once nobody has the file open any more.
  void Unlinked(const std::shared_ptr<MigFile>& file);

  // Runs fn on the service's pool (control operations).
  void Submit(std::function<void()> fn) { pool_->Submit(std::move(fn)); }
  // Control commands (archive, release, an agent's primitives) run on a
  // pool of their own: one may take minutes (an archive of a large file),
  // and the writes to archived files and the reads waiting for restores,
  // which go to Submit's, must not queue behind them.
  void SubmitControl(std::function<void()> fn) { control_pool_->Submit(std::move(fn)); }

  // Test and diagnostics: whether a writable session is open now.
  bool session_open();

  // Whether any upper file may have a record: false lets the callers of
  // the unlink and truncate paths skip taking a file handle.
  bool may_have_records() const {
    return record_count_.load(std::memory_order_acquire) > 0 ||
           archives_running_.load(std::memory_order_acquire) > 0;
  }

  // ~MigFile: the file's last user is gone (its map entry goes; an
  // unlinked file's record is deleted on the pool).
  void Closed(const std::string& key, bool unlinked);

 private:
  MigrationService(std::string store_path) : store_path_(std::move(store_path)) {}

  // A writable store with its agents, open while there is work.
  struct Session {
    std::unique_ptr<Store> store;
    std::unique_ptr<Archiver> archiver;
    std::unique_ptr<Restorer> restorer;
  };
  // Counts one user of the session for its lifetime.
  class Use;
  // Opens the session if needed (may wait for write.lock) and counts a
  // user; Release (Use's destructor) uncounts.
  Status Acquire(Session** out, bool wait = true);
  // Counts a user of the session only if one is open (true), without
  // opening one.
  bool AcquireIfOpen(Session** out);
  void Unuse();
  // Closes the session once idle for kIdleClose, or when another writer
  // wants the store; with keep_open_, only then, or after kKeepIdle.
  void Reaper();
  void Settle(std::unique_lock<std::mutex>* l);  // see migration.cc
  void SealAndRefresh(Session* s, const std::set<std::string>& keys);
  // Re-reads the record of `key` from the session's catalog (mu_ held by
  // none; session open) and updates the memory. What it publishes is what
  // it read, so two Refreshes of a file must not overlap: one that read
  // the record before a release committed and published after the
  // release's own Refresh would say "resident" of punched bytes. Callers
  // hold the file's modify_mu, or no user can act (a session's close, the
  // mount's start).
  void Refresh(Catalog* catalog, const std::string& key);
  // Sets the in-memory record of key (nullopt: none) and the live MigFile.
  void SetRecord(const std::string& key, const std::optional<MigrationRecord>& rec);
  // Attach: if the file carries an archive mark and has holes, but *rec
  // (memory's record) is absent or does not say "released" with that
  // archive, the catalog lost the row or is older than the release
  // (migrate/archive_mark.h): rebuilds and commits one into *rec, so that
  // no hole reads as zeros.
  void ReconcileMarked(int fd, FileHandle fh, std::optional<MigrationRecord>* rec);
  std::optional<MigrationRecord> RecordOf(const std::string& key);
  // The record as the catalog has it if a session is open (a background
  // restore commits there first), else as memory has it: what the state
  // a user asks for is read from.
  std::optional<MigrationRecord> CurrentRecord(const std::string& key);
  // Deletes the record of an unlinked file nobody holds any more.
  void DeleteUnlinked(const std::string& key);
  // Publishes rec's residency to file (size: the file's size now).
  static void Publish(MigFile* file, const std::optional<MigrationRecord>& rec, uint64_t size);

  // Resumes or drops the restore jobs found at Create (migrate/restorer.h,
  // "Jobs"); runs on the pool.
  void ResumeJobs(int upper_fd);

  static constexpr std::chrono::milliseconds kIdleClose{1000};
  static constexpr std::chrono::minutes kKeepIdle{5};

  const std::string store_path_;
  bool hard_ = false;
  bool reads_on_demand_ = false;
  bool restore_clone_ = true;
  bool keep_open_ = false;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<WorkerPool> control_pool_;

  std::mutex mu_;  // everything below
  std::condition_variable cv_;
  std::map<std::string, MigrationRecord> records_;
  std::vector<std::pair<uint64_t, JobRecord>> left_jobs_;  // restore jobs found at Create
  std::atomic<size_t> record_count_{0};                    // records_.size(), read without mu_
  std::atomic<int> archives_running_{0};                   // Archive calls in progress
  std::map<std::string, std::weak_ptr<MigFile>> files_;
  std::unique_ptr<Session> session_;
  int users_ = 0;                  // Acquire without Unuse, plus waits in flight
  bool settled_ = false;           // the idle session's container sealed (keep_open_)
  std::set<std::string> touched_;  // keys restored in this session
  // Readers waiting on a file an external agent is restoring (between its
  // RESTORE_BEGIN and RESTORE_DONE), by key.
  struct AgentWait {
    std::shared_ptr<MigFile> file;
    int fd;  // a dup, closed when handed on or answered
    uint64_t offset, length;
    std::shared_ptr<Wait> wait;
  };
  std::map<std::string, std::vector<AgentWait>> agent_restores_;
  // Answers the waits of key that the residency now covers; with `done`,
  // hands the others to the daemon's own restorer.
  void WakeAgentWaits(const std::string& key, bool done);
  std::chrono::steady_clock::time_point idle_since_;
  bool opening_ = false, closing_ = false;
  bool stop_ = false;
  std::thread reaper_;
};

}  // namespace overtier

#endif  // OVERTIER_SRC_MIGRATION_H_
