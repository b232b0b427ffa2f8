#include "migrate/restorer.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <optional>

#include "migrate/archive_mark.h"
#include "migrate/archiver.h"
#include "migrate/crash_point.h"
#include "migrate/file_handle.h"
#include "migrate/migration_state.h"
#include "overtier/time_ns.h"
#include "store/repair.h"

namespace overtier {

namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kHugePage = uint64_t{2} << 20;  // x86-64, arm64 with 4 KiB pages
// Pieces read ahead of a job going through a file in order.
constexpr size_t kAheadPieces = 2;
// A restored byte that was cloned (or is a hole) counts as 1/kSharedWeight
// of one written towards the next commit (RestorePiece).
constexpr uint64_t kSharedWeight = 8;

bool AllZero(const char* p, size_t n) {
  static const char kZeros[kBlock] = {};
  while (n > 0) {
    const size_t k = std::min<size_t>(n, kBlock);
    if (std::memcmp(p, kZeros, k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

Status PwriteAll(int fd, const char* p, size_t n, uint64_t off, const std::string& what) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("restoring '" + what + "': write at offset " + std::to_string(off));
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::OK();
}

}  // namespace

struct Restorer::Job {
  std::string key, what;
  int fd = -1;
  bool loaded = false;
  bool queued = false;
  // The final commit is done: the job no longer owns the record.
  bool finished = false;
  std::optional<MigrationRecord> rec;  // as the job will commit it
  FileRecord file;
  ResidencyMap map;  // what the upper file holds now
  uint64_t cursor = 0;
  uint64_t turn = 0;  // round-robin among waiters
  bool rest = false;  // some request wants the rest of the file too
  uint64_t unsynced = 0;
  bool user_changed = false;  // UserModify recorded a change not committed yet
  std::chrono::steady_clock::time_point user_changed_at{};  // the first such change
  // Its row in the catalog's jobs family (0: none yet): written with the
  // in-progress flag, updated at each commit, deleted with the last one.
  uint64_t job_id = 0;
  int64_t created_ns = 0;
  // Hard semantics: not run again before this; the next wait after a
  // failure; whether the unreachable archive was logged.
  std::chrono::steady_clock::time_point not_before{};
  std::chrono::milliseconds backoff{0};
  bool said_unreachable = false;
  struct timespec atime {
  }, mtime{};
  std::mutex io_mu;  // restore writes vs user modifications
  // The upper file opened again with O_DIRECT (-1: not yet, or the file
  // system refused it: buffered writes only), and the piece buffer,
  // aligned for it and kept from piece to piece (RestorePiece).
  int direct_fd = -1;
  bool direct_tried = false;
  // Cloning (CloneRestored): refused once, by the file system or for the
  // pair of files, it is not tried again for this job; cloned (io_mu):
  // some blocks were, which each sync makes durable with fsync.
  bool clone_refused = false;
  bool cloned = false;
  // Clones put off. A clone waits until no direct read of its source
  // container is in flight (inode_dio_wait, holding the file's lock), so
  // clones made piece by piece took turns with the reads ahead of the next
  // pieces in the same container file, and a restore took the time of its
  // reads and of its clones. While the job goes through one container file
  // its clones wait here (io_mu), their bytes still missing in `map`, and
  // are done once the job's reads have moved on to another file, a waiter
  // needs their bytes, or nothing else is left (FlushClones). NextPiece
  // skips their bytes (`deferred_ranges`, under mu_).
  struct DeferredClone {
    struct file_clone_range fcr;
    std::shared_ptr<const void> keep;  // the container's reader: fcr.src_fd stays open
  };
  std::vector<DeferredClone> deferred;
  int deferred_fd = -1;  // the container file whose clones are put off
  std::vector<ByteRange> deferred_ranges;
  char* buf = nullptr;
  size_t buf_len = 0;
  // The last piece went on in order from the one before (the rest of the
  // file, a long range waited for): the pieces after it are read ahead
  // while this one is written (RestorePiece).
  bool sequential = false;
  // Those reads (ContentReader::Prefetch into its chunk cache, on the
  // restorer's ahead_pool_), oldest first, each with the offset of its
  // piece. Last member: destroyed (waited for) before the members they
  // read.
  struct Ahead {
    uint64_t offset = 0;
    std::future<Status> done;
  };
  std::deque<Ahead> aheads;
  void WaitAheads() {
    for (Ahead& a : aheads) a.done.wait();
    aheads.clear();
  }
  ~Job() {
    WaitAheads();
    if (fd >= 0) close(fd);
    if (direct_fd >= 0) close(direct_fd);
    free(buf);
  }
};

Restorer::Restorer(Store* store, const RestorerOptions& options)
    : store_(store),
      options_(options),
      reader_(store),
      chunk_size_(store->config().chunk_size),
      ahead_pool_(static_cast<int>(kAheadPieces) * std::max(1, options.threads)) {
  if (options_.piece_bytes < chunk_size_) options_.piece_bytes = chunk_size_;
  for (int i = 0; i < std::max(1, options_.threads); i++)
    threads_.emplace_back([this] { Worker(); });
}

Restorer::~Restorer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  std::vector<std::shared_ptr<Job>> left;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [k, j] : jobs_) left.push_back(j);
  }
  for (auto& j : left) FailJob(j.get(), Status::Errno(ECANCELED, "restorer shut down"));
}

size_t Restorer::active_jobs() const {
  std::lock_guard<std::mutex> l(mu_);
  return jobs_.size();
}

uint64_t Restorer::Request(int fd, const std::string& what, ByteRange range, WaitCallback cb,
                           bool range_only, uint64_t resume_job, bool reads) {
  FileHandle fh;
  Status s = GetFileHandle(fd, what, &fh);
  if (!s.ok()) {
    cb(s);
    return 0;
  }
  if (range.length == 0) range.length = UINT64_MAX - range.offset;  // to the end
  std::unique_lock<std::mutex> l(mu_);
  std::shared_ptr<Job>& job = jobs_[fh.key];
  if (job && job->loaded && job->map.IsResident(range.offset, range.length)) {
    l.unlock();
    cb(Status::OK());
    return 0;
  }
  if (!job) {
    job = std::make_shared<Job>();
    job->key = fh.key;
    job->what = what;
    job->fd = dup(fd);
    if (job->fd < 0) {
      s = Status::FromErrno("dup of '" + what + "'");
      jobs_.erase(fh.key);
      l.unlock();
      cb(s);
      return 0;
    }
  }
  if (!range_only) job->rest = true;
  uint64_t stale_row = 0;  // a row the running job does not take over
  if (resume_job != 0) {
    if (job->job_id == 0) {
      job->job_id = resume_job;
      job->created_ns = NowNs();
    } else if (job->job_id != resume_job) {
      stale_row = resume_job;
    }
  }
  // A job waiting out an unreachable archive (hard) tries again for a new
  // reader at once: the reader's access is the user's "retry now".
  job->not_before = {};
  uint64_t id = waiters_.Add(fh.key, range, std::move(cb), reads);
  if (!job->queued) {
    job->queued = true;
    queue_.push_back(job);
    cv_.notify_one();
  }
  l.unlock();
  if (stale_row != 0) {
    Catalog::Batch b(store_->catalog());
    b.DeleteJob(stale_row);
    Status ds = b.Commit(Durability::kNoSync);
    (void)ds;  // a row left is resumed (and found running) at the next mount
  }
  return id;
}

bool Restorer::Cancel(uint64_t waiter_id) { return waiters_.Cancel(waiter_id); }

bool Restorer::HasJob(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(key);
  return it != jobs_.end() && it->second != nullptr;
}

void Restorer::WhenIdle(const std::string& key, WaitCallback cb) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = jobs_.find(key);
    if (it != jobs_.end() && it->second != nullptr) {
      idle_waiters_.emplace(key, std::move(cb));
      return;
    }
  }
  cb(Status::OK());
}

std::vector<WaitCallback> Restorer::TakeIdleWaiters(const std::string& key) {
  std::vector<WaitCallback> out;
  auto [first, last] = idle_waiters_.equal_range(key);
  for (auto it = first; it != last; ++it) out.push_back(std::move(it->second));
  idle_waiters_.erase(first, last);
  return out;
}

Status Restorer::RestoreAndWait(int fd, const std::string& what, ByteRange range) {
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> f = done->get_future();
  Request(fd, what, range, [done](const Status& s) { done->set_value(s); });
  return f.get();
}

void Restorer::Worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      // The first job allowed to run now (hard: some wait out a backoff).
      const auto now = std::chrono::steady_clock::now();
      auto it = std::find_if(queue_.begin(), queue_.end(),
                             [now](const std::shared_ptr<Job>& j) { return j->not_before <= now; });
      if (it == queue_.end()) {
        auto next =
            std::min_element(queue_.begin(), queue_.end(),
                             [](const std::shared_ptr<Job>& a, const std::shared_ptr<Job>& b) {
                               return a->not_before < b->not_before;
                             });
        cv_.wait_until(l, (*next)->not_before);
        continue;
      }
      job = *it;
      queue_.erase(it);
    }
    bool more = Step(job.get());
    if (options_.step_hook) options_.step_hook();
    std::lock_guard<std::mutex> l(mu_);
    if (more) {
      queue_.push_back(job);  // round-robin with the other files
      cv_.notify_one();
    } else {
      job->queued = false;
    }
  }
}

JobRecord Restorer::JobRow(const Job& job, const ResidencyMap& map, bool rest) {
  JobRecord r;
  r.kind = JobKind::kRestore;
  r.state = JobState::kRunning;
  r.attempts = 1;
  r.total = map.size();
  r.progress = map.resident_bytes();
  r.created_ns = job.created_ns;
  r.updated_ns = NowNs();
  r.target = job.key;
  r.params = rest ? kRestoreJobWhole : kRestoreJobRanges;
  return r;
}

Status Restorer::Load(Job* job) {
  job->WaitAheads();  // they read job->file
  struct stat st;
  if (fstat(job->fd, &st) != 0) return Status::FromErrno("fstat of '" + job->what + "'");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  std::optional<MigrationRecord> rec;
  MigrationRecord r;
  Status s = store_->catalog()->GetMigration(job->key, &r);
  if (s.ok()) {
    rec = r;
  } else if (s.err() != ENOENT) {
    return s;
  }
  PausePoint("restore-loaded");
  // A restore flag found here is stale (a crash, or a job whose last
  // commit failed): this Restorer runs one job per file, and one process at
  // a time writes a store.
  if (rec) rec->flags &= ~kMigRestoreInProgress;
  if (!(rec && (rec->flags & kMigReleased))) {
    // The catalog says every byte is here. A file that still carries an
    // archive mark and has holes disagrees (archive_mark.h: the mark goes
    // before any commit that ends "released"): the row was lost or put
    // back from before the release, and the rebuild at the file's first
    // open could not be committed. Its holes are the archive's bytes, not
    // zeros. Without a hole nothing can be missing: the mark is one a
    // crash left between a release's mark and its commit, and goes.
    if (std::optional<Bfid> mark = ReadArchiveMark(job->fd)) {
      const off_t hole = size > 0 ? lseek(job->fd, 0, SEEK_HOLE) : 0;
      if (hole >= 0 && static_cast<uint64_t>(hole) >= size) {
        ClearArchiveMark(job->fd);
      } else {
        return Status::Errno(
            EIO, "'" + job->what + "' carries archive " + mark->ToHex() + " but the catalog has " +
                     (rec ? "a record that does not say released" : "no record of it") +
                     ": its released bytes cannot be told from holes (the "
                     "record is rebuilt at the file's next first open)");
      }
    }
  }
  ResidencyMap map = ResidencyMap::FullyResident(size);
  if (rec && (rec->flags & kMigReleased)) {
    OVT_RETURN_IF_ERROR(ResidencyMap::FromRecord(*rec, size, &map));
  }
  if (!map.fully_resident()) {
    Transition t;
    OVT_RETURN_IF_ERROR(BeginRestore(rec, size, &t));
    s = store_->catalog()->GetFile(rec->bfid, &job->file);
    if (!s.ok()) {
      return Status::Errno(s.err() == ENOENT ? EIO : s.err(),
                           "archive " + rec->bfid.ToHex() + " of '" + job->what +
                               "': " + (s.err() == ENOENT ? "no files row" : s.message()));
    }
    // The flag and the jobs row are for a crash only (the next mount
    // resumes the job, restorer.h): a lost one is harmless, so no sync.
    if (job->job_id == 0) {
      OVT_RETURN_IF_ERROR(
          store_->catalog()->AllocateIds(IdSpace::kJob, 1, &job->job_id, Durability::kNoSync));
      job->created_ns = NowNs();
    }
    Catalog::Batch b(store_->catalog());
    b.PutMigration(job->key, *t.record);
    bool rest;
    {
      std::lock_guard<std::mutex> l(mu_);
      rest = job->rest;
    }
    b.PutJob(job->job_id, JobRow(*job, map, rest));
    OVT_RETURN_IF_ERROR(b.Commit(Durability::kNoSync));
    rec = t.record;
  }
  std::lock_guard<std::mutex> l(mu_);
  job->finished = false;
  job->rec = rec;
  job->map = map;
  job->atime = st.st_atim;
  job->mtime = st.st_mtim;
  job->unsynced = 0;
  job->loaded = true;
  return Status::OK();
}

bool Restorer::NextPiece(Job* job, ByteRange* piece, bool* flush) {
  ByteRange m{};
  bool found = false;
  *flush = false;
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t last_end = job->cursor;
  std::vector<ByteRange> ranges = waiters_.Ranges(job->key);
  // The bytes of the clones put off are on their way: not picked again.
  // A waiter that waits for nothing else has them done now.
  ResidencyMap view;
  const ResidencyMap* map = &job->map;
  if (!job->deferred_ranges.empty()) {
    view = job->map;
    for (const ByteRange& r : job->deferred_ranges) view.MarkResident(r.offset, r.length);
    map = &view;
    for (const ByteRange& r : ranges) {
      if (!view.NextMissing(r.offset, r.length, &m) && job->map.NextMissing(r.offset, r.length, &m))
        *flush = true;
    }
    if (*flush) return false;
  }
  // Waiters take turns, a piece each, so a reader of a few bytes is not
  // queued behind a whole-file restore someone else asked for.
  for (size_t i = 0; i < ranges.size() && !found; i++) {
    const ByteRange& r = ranges[(job->turn + i) % ranges.size()];
    found = map->NextMissing(r.offset, r.length, &m);
  }
  job->turn++;
  // Shared content (a lazily copied-up image file) is only restored as
  // read: the rest stays in the image, where it costs nothing.
  const bool on_demand = job->rec && (job->rec->flags & kMigOnDemand) != 0;
  job->sequential = false;
  if (!found && options_.whole_file && job->rest && !on_demand) {
    found = map->NextMissing(job->cursor, UINT64_MAX - job->cursor, &m) ||
            map->NextMissing(0, UINT64_MAX, &m);
    job->sequential = found;
  }
  if (!found) {
    *flush = !job->deferred_ranges.empty();  // what is left is theirs
    return false;
  }
  // Whole chunks: the reader verifies chunk by chunk anyway.
  uint64_t start = m.offset / chunk_size_ * chunk_size_;
  uint64_t end =
      std::min({RangeEnd(m.offset, m.length), start + options_.piece_bytes, job->map.size()});
  end = std::min(job->map.size(), (end + chunk_size_ - 1) / chunk_size_ * chunk_size_);
  *piece = {start, end - start};
  job->cursor = end;
  // A waiter's range that goes on in order past this piece (`restore
  // --wait` of a whole file, a long read): the pieces after it are read
  // ahead too, as for the rest of the file.
  for (size_t i = 0; i < ranges.size() && !job->sequential && start == last_end; i++)
    job->sequential = ranges[i].offset <= end && RangeEnd(ranges[i].offset, ranges[i].length) > end;
  return true;
}

// Another copy served what a damaged one could not: write the damaged
// chunks again from it (store/repair.h), so the archive keeps its copies.
// A repair that fails changes nothing and does not fail the restore (the
// bytes are here); fsck still reports the damage then.
void Restorer::Repair(Job* job, const std::vector<Extent>& damaged) {
  std::lock_guard<std::mutex> l(repair_mu_);
  RepairReport rep;
  Status s = RepairCopies(store_, job->rec->bfid, damaged, job->what, &rep);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: %s: repairing its damaged archive copy failed: %s\n",
                 job->what.c_str(), s.ToString().c_str());
    return;
  }
  if (rep.rewritten > 0)
    std::fprintf(stderr,
                 "overtier: %s: %llu damaged chunk(s) of its archive written again from another "
                 "copy\n",
                 job->what.c_str(), static_cast<unsigned long long>(rep.rewritten));
  for (const std::string& why : rep.skipped)
    std::fprintf(stderr, "overtier: not repaired: %s\n", why.c_str());
}

// Writes [off, off + n) of the restored bytes (p) into the upper file.
// The whole 4 KiB blocks go with O_DIRECT when the file system allows it:
// straight from the piece buffer to the disk, instead of a copy into the
// page cache that the next commit's fdatasync then writes back (that copy
// was half the restorer's CPU time, and it stalled reading behind
// writeback). A partial block (a range's edge: the file's end, or a user's
// write inside the block) goes through the page cache, where that block's
// other bytes are. A direct write is only ever of blocks wholly missing,
// so no dirty page of the file covers it. Only while nobody waits on the
// file (direct): a waiting reader is answered from the page cache the
// buffered write fills, where a direct write would send it to the disk.
Status Restorer::WriteRestored(Job* job, const char* p, uint64_t off, uint64_t n, bool direct) {
  if (!direct) return PwriteAll(job->fd, p, n, off, job->what);
  if (!job->direct_tried) {
    job->direct_tried = true;
    const std::string self = "/proc/self/fd/" + std::to_string(job->fd);
    job->direct_fd = open(self.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  }
  const uint64_t end = off + n;
  const uint64_t a = std::min(end, (off + kBlock - 1) / kBlock * kBlock);
  const uint64_t b = std::max(a, end / kBlock * kBlock);
  if (job->direct_fd >= 0 && b > a && reinterpret_cast<uintptr_t>(p + (a - off)) % kBlock == 0) {
    Status s = PwriteAll(job->direct_fd, p + (a - off), b - a, a, job->what);
    if (s.ok()) {
      if (a > off) OVT_RETURN_IF_ERROR(PwriteAll(job->fd, p, a - off, off, job->what));
      if (end > b) OVT_RETURN_IF_ERROR(PwriteAll(job->fd, p + (b - off), end - b, b, job->what));
      return Status::OK();
    }
    if (s.err() != EINVAL) return s;
    // Refused after all (an alignment this device wants bigger): buffered
    // from now on. Nothing was written by the refused call.
    close(job->direct_fd);
    job->direct_fd = -1;
  }
  return PwriteAll(job->fd, p, n, off, job->what);
}

// Clones whole blocks only: FICLONERANGE wants both offsets and the length
// aligned to the file system's block (4 KiB here; a file system with larger
// blocks refuses with EINVAL, and the job writes from then on). The block
// holding a chunk's tail also holds the next record's header, so it is
// written, not shared. Runs of zero blocks are skipped, as writing does.
void Restorer::CloneRestored(Job* job, const char* buf, ByteRange piece, ByteRange r,
                             const std::vector<LocalSource>& sources, std::vector<ByteRange>* rest,
                             std::vector<ByteRange>* deferred) {
  uint64_t pos = r.offset;  // r is written up to here, or left in *rest
  const uint64_t end = r.offset + r.length;
  auto leave = [&](uint64_t upto) {
    if (upto > pos) rest->push_back(ByteRange{pos, upto - pos});
    pos = std::max(pos, upto);
  };
  for (const LocalSource& src : sources) {
    if (job->clone_refused || pos >= end) break;
    const uint64_t x = std::max(pos, src.offset);
    const uint64_t y = std::min(end, src.offset + src.length);
    if (x >= y) continue;
    const uint64_t a = (x + kBlock - 1) / kBlock * kBlock;
    const uint64_t b = y / kBlock * kBlock;
    if (a >= b || (src.fd_offset + (a - src.offset)) % kBlock != 0) continue;
    leave(a);
    for (uint64_t blk = a; blk < b && !job->clone_refused;) {
      if (AllZero(buf + (blk - piece.offset), kBlock)) {
        blk += kBlock;
        pos = blk;
        continue;
      }
      uint64_t run = blk + kBlock;
      while (run < b && !AllZero(buf + (run - piece.offset), kBlock)) run += kBlock;
      struct file_clone_range fcr {};
      fcr.src_fd = static_cast<int64_t>(src.fd);
      fcr.src_offset = src.fd_offset + (blk - src.offset);
      fcr.src_length = run - blk;
      fcr.dest_offset = blk;
      if (job->cloned && job->sequential && src.fd == job->deferred_fd) {
        // Put off (Job::deferred); the first clone of a job is not, as it
        // tells whether the file system clones at all.
        job->deferred.push_back(Job::DeferredClone{fcr, src.keep});
        deferred->push_back(ByteRange{blk, run - blk});
      } else if (ioctl(job->fd, FICLONERANGE, &fcr) != 0) {
        // EOPNOTSUPP (ext4), EXDEV (another file system), EINVAL (block
        // size) and anything else: writing works wherever this does not.
        job->clone_refused = true;
        break;
      } else {
        job->cloned = true;
      }
      blk = run;
      pos = run;
    }
  }
  leave(end);
}

Status Restorer::RestorePiece(Job* job, ByteRange piece) {
  if (job->buf_len < piece.length) {
    free(job->buf);
    job->buf = nullptr;
    job->buf_len = 0;
    void* m = nullptr;
    // A piece of 2 MiB or more in transparent huge pages: O_DIRECT writes
    // pin the buffer's pages for every write (get_user_pages), and pinning
    // 4 KiB pages one by one took a seventh of a restore's CPU.
    const size_t align = piece.length >= kHugePage ? kHugePage : kBlock;
    if (posix_memalign(&m, align, piece.length) != 0)
      return Status::Errno(ENOMEM, "restoring '" + job->what + "': no memory for a piece");
    if (align == kHugePage) (void)madvise(m, piece.length, MADV_HUGEPAGE);  // a hint only
    job->buf = static_cast<char*>(m);
    job->buf_len = piece.length;
  }
  char* const buf = job->buf;
  size_t got = 0;
  uint64_t archive_size = job->file.size;
  std::vector<LocalSource> sources;  // where the piece's chunks lie (for cloning)
  // The reads ahead up to this piece fill the reader's cache: wait for
  // them rather than read the same chunks twice. If the archive did not
  // answer this piece's, it will not answer this read either: no second
  // timeout. Reads ahead of pieces this job no longer goes through in
  // order (it went back to a waiter's range) are left to finish.
  while (!job->aheads.empty() && job->aheads.front().offset <= piece.offset) {
    Job::Ahead a = std::move(job->aheads.front());
    job->aheads.pop_front();
    Status ahead = a.done.get();
    if (a.offset == piece.offset && ahead.err() == ETIMEDOUT) return ahead;
  }
  if (!job->aheads.empty() && job->aheads.front().offset != piece.offset + piece.length)
    job->WaitAheads();
  if (options_.read_hook) OVT_RETURN_IF_ERROR(options_.read_hook());
  // Going through the file in order: the next kAheadPieces pieces are read
  // while this one is copied out of the cache and written (reading and
  // writing overlap, as a pipelined copy does; more than one, so that the
  // disk always has a read queued while a reader thread verifies what it
  // got). Their failures are met again, and handled, by the pieces' own
  // reads.
  if (job->sequential) {
    uint64_t off = job->aheads.empty() ? piece.offset + piece.length
                                       : job->aheads.back().offset + options_.piece_bytes;
    while (job->aheads.size() < kAheadPieces && off < archive_size) {
      const uint64_t n = std::min(options_.piece_bytes, archive_size - off);
      const FileRecord* file = &job->file;
      // Shared: a WorkerPool task is a std::function, which copies.
      auto read = std::make_shared<std::packaged_task<Status()>>(
          [this, file, off, n] { return reader_.Prefetch(*file, off, n); });
      job->aheads.push_back(Job::Ahead{off, read->get_future()});
      ahead_pool_.Submit([read] { (*read)(); });
      off += n;
    }
  }
  if (piece.offset < archive_size) {
    // Past the archive's end nothing is non-resident (it was written by the
    // user); the reader returns short there.
    std::vector<Extent> damaged;
    OVT_RETURN_IF_ERROR(reader_.Read(job->rec->bfid, job->file, piece.offset, piece.length, buf,
                                     &got, job->what, &damaged,
                                     options_.clone && !job->clone_refused ? &sources : nullptr));
    if (!damaged.empty()) Repair(job, damaged);
  }
  if (got < piece.length) std::memset(buf + got, 0, piece.length - got);  // past the archive's end
  std::lock_guard<std::mutex> io(job->io_mu);
  std::vector<ByteRange> missing;
  bool direct;
  {
    std::lock_guard<std::mutex> l(mu_);
    missing = job->map.Missing(piece.offset, piece.length);
    direct = !waiters_.HasReader(job->key, piece);
  }
  std::vector<ByteRange> to_write, deferred;
  if (direct && job->sequential && job->cloned && !sources.empty() &&
      sources.back().fd != job->deferred_fd) {
    // The job went on to another container file, where its reads ahead
    // are now: the clones put off from the last one wait for nothing.
    OVT_RETURN_IF_ERROR(FlushClones(job));
    job->deferred_fd = sources.back().fd;
  }
  for (const ByteRange& r : missing) {
    if (direct && !sources.empty() && !job->clone_refused) {
      CloneRestored(job, buf, piece, r, sources, &to_write, &deferred);
    } else {
      to_write.push_back(r);
    }
  }
  for (const ByteRange& r : to_write) {
    // Write the non-zero 4 KiB blocks (by file offset) of r.
    uint64_t pos = r.offset, end = r.offset + r.length;
    while (pos < end) {
      uint64_t blk_end = std::min(end, (pos / kBlock + 1) * kBlock);
      const char* p = buf + (pos - piece.offset);
      if (!AllZero(p, blk_end - pos)) {
        // Extend over the following non-zero blocks: one pwrite.
        uint64_t w_end = blk_end;
        while (w_end < end) {
          uint64_t next = std::min(end, w_end + kBlock);
          if (AllZero(buf + (w_end - piece.offset), next - w_end)) break;
          w_end = next;
        }
        OVT_RETURN_IF_ERROR(WriteRestored(job, p, pos, w_end - pos, direct));
        blk_end = w_end;
      }
      pos = blk_end;
    }
  }
  // Our writes moved the file's mtime to now: put the user's times back
  // before anyone is told the bytes are there, so that no reader (and no
  // stat after a read) sees the agent's time. Sync does it again, with
  // times a user's touch meanwhile may have changed.
  struct timespec times[2];
  {
    std::lock_guard<std::mutex> l(mu_);
    times[0] = job->atime;
    times[1] = job->mtime;
  }
  if (!missing.empty() && futimens(job->fd, times) != 0)
    return Status::FromErrno("futimens of '" + job->what + "'");
  // Start writing the piece back now, without waiting: the fdatasync of
  // the next commit then finds little left to write, instead of stalling
  // the job (and its read-ahead) on commit_bytes of dirty pages at once.
  if (!missing.empty())
    sync_file_range(job->fd, static_cast<off64_t>(piece.offset), static_cast<off64_t>(piece.length),
                    SYNC_FILE_RANGE_WRITE);
  CrashPoint("restore-written");
  // Bytes cloned or left as holes: no dirty pages for the next sync to
  // write, and cheap to restore again after a crash. They bring the next
  // commit nearer only by a fraction (the fsyncs, four milliseconds each
  // here, took a sixth of a cloning restore's time at every 32 MiB).
  uint64_t shared = 0;
  for (const ByteRange& r : missing) shared += r.length;
  for (const ByteRange& r : to_write) shared -= std::min(shared, r.length);
  ResidencyMap snapshot;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const ByteRange& r : missing) job->map.MarkResident(r.offset, r.length);
    for (const ByteRange& r : deferred) {
      job->map.MarkNonResident(r.offset, r.length);
      job->deferred_ranges.push_back(r);
    }
    job->unsynced += piece.length - shared + shared / kSharedWeight;
    snapshot = job->map;
  }
  waiters_.Notify(job->key, snapshot);
  return Status::OK();
}

Status Restorer::FlushClones(Job* job) {
  std::vector<Job::DeferredClone> todo;
  todo.swap(job->deferred);
  std::vector<ByteRange> cloned;
  for (const Job::DeferredClone& d : todo) {
    if (job->clone_refused) break;
    // What the user wrote meanwhile is resident: only the whole blocks
    // still missing are cloned; the rest is restored again by a later
    // piece (NextPiece finds it missing).
    std::vector<ByteRange> missing;
    {
      std::lock_guard<std::mutex> l(mu_);
      missing = job->map.Missing(d.fcr.dest_offset, d.fcr.src_length);
    }
    for (const ByteRange& m : missing) {
      const uint64_t a = (m.offset + kBlock - 1) / kBlock * kBlock;
      const uint64_t b = RangeEnd(m.offset, m.length) / kBlock * kBlock;
      if (a >= b) continue;
      struct file_clone_range fcr = d.fcr;
      fcr.src_offset += a - d.fcr.dest_offset;
      fcr.src_length = b - a;
      fcr.dest_offset = a;
      if (ioctl(job->fd, FICLONERANGE, &fcr) != 0) {
        job->clone_refused = true;  // as in CloneRestored: written from now on
        break;
      }
      cloned.push_back(ByteRange{a, b - a});
    }
  }
  struct timespec times[2];
  {
    std::lock_guard<std::mutex> l(mu_);
    job->deferred_ranges.clear();
    times[0] = job->atime;
    times[1] = job->mtime;
  }
  if (cloned.empty()) return Status::OK();
  CrashPoint("restore-clones-done");
  // A clone moves the file's mtime, as a write does (RestorePiece).
  if (futimens(job->fd, times) != 0) return Status::FromErrno("futimens of '" + job->what + "'");
  ResidencyMap snapshot;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const ByteRange& r : cloned) job->map.MarkResident(r.offset, r.length);
    snapshot = job->map;
  }
  waiters_.Notify(job->key, snapshot);
  return Status::OK();
}

Status Restorer::Sync(Job* job, bool finish, bool keep_row) {
  // No user modification between the snapshot and the commit: the record
  // committed is exactly the job's.
  std::lock_guard<std::mutex> io(job->io_mu);
  return SyncLocked(job, finish, keep_row);
}

Status Restorer::SyncLocked(Job* job, bool finish, bool keep_row) {
  ResidencyMap snapshot;
  struct timespec times[2];
  {
    std::lock_guard<std::mutex> l(mu_);
    snapshot = job->map;
    times[0] = job->atime;
    times[1] = job->mtime;
    job->unsynced = 0;
    job->user_changed = false;
  }
  // Blocks cloned into the file are extent changes, which fdatasync need
  // not make durable on every file system: fsync does. (job->cloned is
  // written under io_mu, which the caller holds.)
  if ((job->cloned ? fsync(job->fd) : fdatasync(job->fd)) != 0)
    return Status::FromErrno(std::string(job->cloned ? "fsync" : "fdatasync") + " of '" +
                             job->what + "'");
  if (futimens(job->fd, times) != 0) return Status::FromErrno("futimens of '" + job->what + "'");
  Transition t;
  std::optional<MigrationRecord> rec;
  bool rest;
  {
    std::lock_guard<std::mutex> l(mu_);
    rec = job->rec;
    rest = job->rest;
  }
  Catalog::Batch b(store_->catalog());
  if (job->job_id != 0) {
    if ((finish && !keep_row) || !rec) {
      b.DeleteJob(job->job_id);
    } else {
      b.PutJob(job->job_id, JobRow(*job, snapshot, rest));
    }
  }
  if (!rec) {
    ClearArchiveMark(job->fd);  // before the row goes (archive_mark.h)
    if (b.size() > 0) OVT_RETURN_IF_ERROR(b.Commit());
    if (finish) job->job_id = 0;
    return Status::OK();
  }
  // The durable residency (a superset of the record's, but for bytes a
  // truncate removed from both).
  if (rec->flags & kMigReleased) snapshot.ToRecord(&*rec);
  // The times just put back are the user's (a touch during the job moved
  // job->mtime): the record says the same, or a later release would take
  // the file for changed behind our back.
  rec->atime_ns = ClampedNs(times[0]);
  rec->mtime_ns = ClampedNs(times[1]);
  if (finish) {
    OVT_RETURN_IF_ERROR(FinishRestore(rec, snapshot.size(), NowNs(), &t));
    rec = t.record;
  }
  // A record no longer released (restored, or its archive dropped) takes
  // the file's archive mark with it, before the commit (archive_mark.h).
  if (!(rec && (rec->flags & kMigReleased))) {
    ClearArchiveMark(job->fd);
    CrashPoint("restore-unmarked");
  }
  if (rec) {
    b.PutMigration(job->key, *rec);
  } else {
    b.DeleteMigration(job->key);
  }
  OVT_RETURN_IF_ERROR(b.Commit());
  CrashPoint("restore-committed");
  std::lock_guard<std::mutex> l(mu_);
  job->rec = rec;
  job->finished = finish;
  if (finish) job->job_id = 0;
  return Status::OK();
}

void Restorer::FailJob(Job* job, const Status& error) {
  Status why = error;
  if (why.err() != ECANCELED) {
    // EIO: its text would only say "Input/output error" twice.
    why = Status::Errno(EIO, "restore of '" + job->what + "' failed: " +
                                 (error.err() == EIO ? error.message() : error.ToString()));
  }
  // Keep what is durably back; clear the in-progress flag.
  bool restoring;
  {
    std::lock_guard<std::mutex> l(mu_);
    restoring = job->loaded && job->rec && (job->rec->flags & kMigRestoreInProgress);
  }
  if (restoring) {
    // A whole-file job stopped by an unmount stays in the jobs family, for
    // the next mount to resume.
    bool keep_row;
    {
      std::lock_guard<std::mutex> l(mu_);
      keep_row = stop_ && error.err() == ECANCELED && job->rest;
    }
    // Best effort: if this fails too, the record keeps the flag, which the
    // next job's Load clears.
    Status s = Sync(job, /*finish=*/true, keep_row);
    (void)s;
  }
  std::shared_ptr<Job> keep;
  std::vector<WaitCallback> idle;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = jobs_.find(job->key);
    if (it != jobs_.end() && it->second.get() == job) {
      keep = it->second;  // the job must outlive this call
      jobs_.erase(it);
      idle = TakeIdleWaiters(job->key);
    }
  }
  waiters_.Fail(job->key, why);
  for (WaitCallback& cb : idle) cb(why);
}

bool Restorer::Step(Job* job) {
  if (!job->loaded) {
    Status s;
    {
      std::lock_guard<std::mutex> io(job->io_mu);  // vs UserModify loading it
      if (!job->loaded) s = Load(job);
    }
    if (!s.ok()) {
      FailJob(job, s);
      return false;
    }
    ResidencyMap snapshot;
    {
      std::lock_guard<std::mutex> l(mu_);
      snapshot = job->map;
    }
    waiters_.Notify(job->key, snapshot);
  }
  ByteRange piece;
  bool flush = false;
  if (NextPiece(job, &piece, &flush)) {
    Status s = RestorePiece(job, piece);
    bool user_due;
    {
      std::lock_guard<std::mutex> l(mu_);
      user_due = job->user_changed && std::chrono::steady_clock::now() - job->user_changed_at >=
                                          options_.user_commit_after;
    }
    if (options_.hard && s.err() == ETIMEDOUT) {
      WaitForArchive(job, s);
      // The user's changes do not wait for the archive: a job stalled for
      // an hour would otherwise leave them uncommitted all that time (a
      // kill then had the next restore write the archive over them).
      if (user_due) s = Sync(job, false);
      if (s.ok() || s.err() == ETIMEDOUT) return true;
      FailJob(job, s);
      return false;
    }
    if (s.ok() && job->said_unreachable) {
      std::fprintf(stderr, "overtier: restore of '%s': the archive answers again\n",
                   job->what.c_str());
      std::lock_guard<std::mutex> l(mu_);
      job->said_unreachable = false;
      job->backoff = std::chrono::milliseconds(0);
    }
    if (s.ok() && (job->unsynced >= options_.commit_bytes || user_due)) s = Sync(job, false);
    if (!s.ok()) {
      FailJob(job, s);
      return false;
    }
    return true;
  }
  if (flush) {
    Status s;
    {
      std::lock_guard<std::mutex> io(job->io_mu);
      s = FlushClones(job);
    }
    if (!s.ok()) {
      FailJob(job, s);
      return false;
    }
    return true;  // then looks again
  }
  // Nothing left to do: end the restore, unless a waiter came meanwhile.
  PausePoint("restore-finishing");
  Status s = Status::OK();
  {
    std::lock_guard<std::mutex> io(job->io_mu);
    bool restoring, changed;
    {
      std::lock_guard<std::mutex> l(mu_);
      restoring = job->rec && (job->rec->flags & kMigRestoreInProgress);
      changed = job->user_changed;
    }
    if (restoring) {
      s = SyncLocked(job, /*finish=*/true, /*keep_row=*/false);
    } else {
      // A job that found nothing to restore still took the user's changes
      // meanwhile into its record: committed, as no caller did.
      if (changed) s = SyncLocked(job, /*finish=*/false, /*keep_row=*/false);
      std::lock_guard<std::mutex> l(mu_);
      job->finished = true;  // later changes are their callers' to record
    }
  }
  if (!s.ok()) {
    FailJob(job, s);
    return false;
  }
  std::shared_ptr<Job> keep;
  std::vector<WaitCallback> idle;
  ResidencyMap last;
  {
    std::lock_guard<std::mutex> l(mu_);
    last = job->map;
    bool pending = false;
    for (const ByteRange& r : waiters_.Ranges(job->key)) {
      if (!job->map.IsResident(r.offset, r.length)) pending = true;
    }
    if (pending) {
      job->loaded = false;  // start a new restore (BeginRestore again)
      return true;
    }
    auto it = jobs_.find(job->key);
    if (it != jobs_.end() && it->second.get() == job) {
      keep = it->second;
      jobs_.erase(it);
      idle = TakeIdleWaiters(job->key);
    }
  }
  // Waiters on ranges past the end (file truncated) are answered here.
  waiters_.Notify(job->key, last);
  for (WaitCallback& cb : idle) cb(Status::OK());
  return false;
}

void Restorer::WaitForArchive(Job* job, const Status& why) {
  std::lock_guard<std::mutex> l(mu_);
  job->backoff = job->backoff.count() == 0 ? options_.retry_first
                                           : std::min(job->backoff * 2, options_.retry_max);
  job->not_before = std::chrono::steady_clock::now() + job->backoff;
  if (!job->said_unreachable) {
    job->said_unreachable = true;
    std::fprintf(stderr, "overtier: restore of '%s' waits for the archive (hard): %s\n",
                 job->what.c_str(), why.ToString().c_str());
  }
}

void Restorer::Unlinked(const std::string& key) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = jobs_.find(key);
    if (it != jobs_.end()) job = it->second;
  }
  if (!job) return;
  std::lock_guard<std::mutex> io_lock(job->io_mu);  // Sync holds it until it has committed
  std::lock_guard<std::mutex> l(mu_);
  job->rec.reset();
}

Status Restorer::CommitUserChanges(const std::string& key) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = jobs_.find(key);
    if (it != jobs_.end()) job = it->second;
  }
  if (!job) return Status::OK();
  std::lock_guard<std::mutex> io_lock(job->io_mu);
  {
    std::lock_guard<std::mutex> l(mu_);
    // A finished job committed them with its last commit; an unloaded one
    // holds none (UserModify loads it first).
    if (!job->loaded || job->finished || !job->user_changed) return Status::OK();
  }
  return SyncLocked(job.get(), /*finish=*/false, /*keep_row=*/false);
}

Status Restorer::UserModify(const std::string& key, const UserChange& change,
                            const std::function<Status()>& io, bool* in_job) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = jobs_.find(key);
    if (it != jobs_.end()) job = it->second;
  }
  *in_job = job != nullptr;
  if (!job) return io();
  std::lock_guard<std::mutex> io_lock(job->io_mu);
  if (job->finished || (!job->loaded && !Load(job.get()).ok())) {
    // The job is over (or will fail on its own): the caller records the
    // change.
    *in_job = false;
    return io();
  }
  OVT_RETURN_IF_ERROR(io());
  struct stat st;
  if (fstat(job->fd, &st) != 0) return Status::FromErrno("fstat of '" + job->what + "'");
  ResidencyMap snapshot;
  {
    std::lock_guard<std::mutex> l(mu_);
    Transition t;
    uint64_t size = job->map.size();
    Status s = change.truncate ? RecordTruncate(job->rec, size, change.new_size, &t)
                               : RecordWrite(job->rec, size, change.offset, change.length, &t);
    if (!s.ok()) return s;
    job->rec = t.record;
    if (change.truncate) {
      job->map.Truncate(change.new_size);
    } else {
      job->map.RecordWrite(change.offset, change.length);
    }
    job->mtime = st.st_mtim;  // the user's write: its time is the one to keep
    if (!job->user_changed) job->user_changed_at = std::chrono::steady_clock::now();
    job->user_changed = true;
    snapshot = job->map;
  }
  waiters_.Notify(key, snapshot);
  return Status::OK();
}

}  // namespace overtier
