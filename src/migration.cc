#include "src/migration.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cstdio>

#include <algorithm>
#include <cstring>

#include "migrate/archive_mark.h"
#include "migrate/crash_point.h"
#include "migrate/file_handle.h"
#include "migrate/migration_state.h"
#include "overtier/printable.h"
#include "overtier/tier_xattrs.h"
#include "overtier/time_ns.h"

namespace overtier {

namespace {

std::string ProcFd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Gives file an O_PATH descriptor of the upper file open as fd, once: the
// service stats the file through it later (SetRecord), when no request
// holds a descriptor.
void KeepPath(MigFile* file, int fd) {
  std::lock_guard<std::mutex> l(file->mu);
  if (file->path_fd < 0) file->path_fd = open(ProcFd(fd).c_str(), O_PATH | O_CLOEXEC);
}

// Another open of the file open as fd, with `flags`.
Status Reopen(int fd, int flags, const std::string& what, int* out) {
  *out = open(ProcFd(fd).c_str(), flags | O_CLOEXEC);
  if (*out < 0 && (flags & O_NOATIME) && errno == EPERM) {
    *out = open(ProcFd(fd).c_str(), (flags & ~O_NOATIME) | O_CLOEXEC);
  }
  if (*out < 0) return Status::FromErrno("reopening '" + what + "'");
  return Status::OK();
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }

 private:
  int fd_;
};

Status FileSize(int fd, uint64_t* size) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat of an upper file");
  *size = static_cast<uint64_t>(st.st_size);
  return Status::OK();
}

Status LoadRecord(Catalog* catalog, const std::string& key, std::optional<MigrationRecord>* out) {
  MigrationRecord r;
  Status s = catalog->GetMigration(key, &r);
  if (s.err() == ENOENT) {
    out->reset();
    return Status::OK();
  }
  OVT_RETURN_IF_ERROR(s);
  *out = std::move(r);
  return Status::OK();
}

// fd: the upper file (any mode, O_PATH too), or -1 when it is gone. A
// record that stops saying "released" takes the file's archive mark with
// it, before the commit: a mark left on a file whose record is gone would
// have a later open take the file's own holes for the archive's bytes
// (migrate/archive_mark.h).
Status Apply(Catalog* catalog, const std::string& key, const Transition& t, int fd) {
  if (fd >= 0 && !(t.record && (t.record->flags & kMigReleased))) ClearArchiveMark(fd);
  Catalog::Batch b(catalog);
  if (t.record) {
    b.PutMigration(key, *t.record);
  } else {
    b.DeleteMigration(key);
  }
  return b.Commit();
}

// An archived or released file's mtime is the record's: every change of
// the file or of its times through the mount updates or drops the record.
// A difference is an agent killed between moving the time (a punch, a
// restored piece) and putting it back: put it back now.
void RepairTimes(int fd, const MigrationRecord& rec) {
  if (!(rec.flags & kMigArchived) || (rec.flags & (kMigDirty | kMigLost))) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  if (ClampedNs(st.st_mtim) == rec.mtime_ns) return;
  struct timespec times[2] = {{0, UTIME_OMIT}, NsToTimespec(rec.mtime_ns)};
  if (utimensat(AT_FDCWD, ProcFd(fd).c_str(), times, 0) != 0) {
    std::fprintf(stderr, "overtier: cannot put back the mtime of an archived file: %s\n",
                 std::strerror(errno));
  }
}

// The file's times into the record of an archived file. A time outside
// what a record holds (1677 to 2262: a touch -d 2300 of an archived file)
// is clamped, in the file too, as a file system clamps a time beyond its
// range (the kernel's timestamp_truncate): the file and the record must
// agree, or RepairTimes would take the difference for an agent's.
void RecordTimes(int fd, const struct stat& st, MigrationRecord* rec) {
  bool clamped = false;
  rec->atime_ns = ClampedNs(st.st_atim, &clamped);
  rec->mtime_ns = ClampedNs(st.st_mtim, &clamped);
  if (!clamped) return;
  const struct timespec times[2] = {NsToTimespec(rec->atime_ns), NsToTimespec(rec->mtime_ns)};
  if (utimensat(AT_FDCWD, ProcFd(fd).c_str(), times, 0) != 0)  // fd may be O_PATH
    std::fprintf(stderr, "overtier: cannot clamp the times of an archived file: %s\n",
                 std::strerror(errno));
}

// A change that left every byte as it was (a fallocate with KEEP_SIZE past
// the end, a truncate to the same size) still moved the file's mtime, as
// it does on any file system: that is the user's time now, and a clean
// archived record must hold it, or RepairTimes would put the old one back
// as if an agent had moved it. (A dirty record's times are the file's.)
void KeepUserTimes(int fd, std::optional<MigrationRecord>* rec) {
  if (!*rec || !((*rec)->flags & kMigArchived) || ((*rec)->flags & (kMigDirty | kMigLost))) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || ClampedNs(st.st_mtim) == (*rec)->mtime_ns) return;
  RecordTimes(fd, st, &**rec);
}

}  // namespace

std::string UpperFileName(int fd) {
  char path[4096];
  const ssize_t n = readlink(ProcFd(fd).c_str(), path, sizeof(path));
  if (n > 0 && static_cast<size_t>(n) < sizeof(path))
    return MessageSafe(std::string_view(path, static_cast<size_t>(n)));
  struct stat st;
  return fstat(fd, &st) == 0 ? "upper inode " + std::to_string(st.st_ino)
                             : std::string("upper file");
}

MigFile::~MigFile() {
  if (path_fd >= 0) close(path_fd);
  if (owner != nullptr) owner->Closed(key, unlinked.load());
}

// A waiting reader.
struct MigrationService::Wait {
  std::mutex mu;
  std::function<void(const Status&)> cb;  // reset once called
  uint64_t id = 0;                        // the restorer's waiter id, once known
  Restorer* restorer = nullptr;
  bool cancel = false;  // cancelled before the id was known
};

class MigrationService::Use {
 public:
  explicit Use(MigrationService* m) : m_(m) {}
  Status Open(Session** s, bool wait = true) {
    Status st = m_->Acquire(s, wait);
    held_ = st.ok();
    return st;
  }
  // The session if one is open (false: none; nothing held).
  bool IfOpen(Session** s) {
    held_ = m_->AcquireIfOpen(s);
    return held_;
  }
  ~Use() {
    if (held_) m_->Unuse();
  }

 private:
  MigrationService* m_;
  bool held_ = false;
};

void MigrationService::Closed(const std::string& key, bool unlinked) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(key);
  if (it != files_.end() && it->second.expired()) files_.erase(it);
  // At shutdown the record stays (the pool is going away): the next mount
  // finds a record whose file is gone, which gc's scan keeps; fsck reports
  // nothing wrong with it. Rare, and only a leak.
  if (!unlinked || stop_ || !pool_) return;
  pool_->Submit([this, key] { DeleteUnlinked(key); });
}

void MigrationService::DeleteUnlinked(const std::string& key) {
  Use use(this);
  Session* s;
  Status st = use.Open(&s);
  if (st.ok()) {
    // A restore still running for the file must not write the record back.
    s->restorer->Unlinked(key);
    std::optional<MigrationRecord> rec;
    st = LoadRecord(s->store->catalog(), key, &rec);
    if (st.ok() && rec) {
      Transition t;
      overtier::Unlink(rec, &t);
      st = Apply(s->store->catalog(), key, t, /*fd=*/-1);  // unlinked
    }
  }
  if (!st.ok()) {
    std::fprintf(stderr, "overtier: dropping the record of an unlinked file: %s\n",
                 MessageSafe(st.ToString()).c_str());
    return;
  }
  SetRecord(key, std::nullopt);
}

Status MigrationService::Create(const std::string& store_path,
                                std::unique_ptr<MigrationService>* out, Store* opened) {
  std::unique_ptr<MigrationService> m(new MigrationService(store_path));
  std::unique_ptr<Store> own;
  Store* store = opened;
  if (store == nullptr) {
    StoreOpenOptions so;
    so.read_only = true;
    OVT_RETURN_IF_ERROR(Store::Open(store_path, so, &own));
    store = own.get();
  }
  // One scan at mount: from then on the memory is kept up to date by our
  // own commits (the only writer of these records while we are mounted).
  OVT_RETURN_IF_ERROR(
      store->catalog()->ScanMigration("", [&](std::string_view key, const MigrationRecord& r) {
        m->records_.emplace(std::string(key), r);
        m->record_count_.store(m->records_.size());
        return true;
      }));
  OVT_RETURN_IF_ERROR(store->catalog()->ScanJobs(0, [&](uint64_t id, const JobRecord& j) {
    if (j.kind == JobKind::kRestore) m->left_jobs_.emplace_back(id, j);
    return true;
  }));
  *out = std::move(m);
  return Status::OK();
}

MigrationService::~MigrationService() { Shutdown(); }

void MigrationService::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  control_pool_.reset();  // runs what was submitted (which may submit to pool_)
  pool_.reset();
  // Waits still open end with ECANCELED (the restorer's destructor).
  std::unique_ptr<Session> s;
  {
    std::lock_guard<std::mutex> l(mu_);
    s = std::move(session_);
  }
  if (s) {
    s->restorer.reset();
    Status closed = s->archiver->Close();
    if (!closed.ok()) {
      std::fprintf(stderr, "overtier: sealing archive containers: %s\n",
                   MessageSafe(closed.ToString()).c_str());
    }
  }
}

void MigrationService::Start(const std::string& upper_dir) {
  pool_ = std::make_unique<WorkerPool>(4);
  control_pool_ = std::make_unique<WorkerPool>(4);
  reaper_ = std::thread([this] { Reaper(); });
  // Not waiting: an import in progress would hold up the unmount of a
  // mount that never needed the store, and another mount keeping the store
  // need not hand it over for nothing.
  if (keep_open_) OpenAhead(/*wait=*/false);
  if (left_jobs_.empty() || upper_dir.empty()) return;
  int upper_fd = open(upper_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (upper_fd < 0) {
    std::fprintf(stderr, "overtier: cannot resume restores: open '%s': %s\n", upper_dir.c_str(),
                 std::strerror(errno));
    return;
  }
  Submit([this, upper_fd] {
    FdCloser closer(upper_fd);
    ResumeJobs(upper_fd);
  });
}

void MigrationService::ResumeJobs(int upper_fd) {
  std::vector<std::pair<uint64_t, JobRecord>> jobs;
  {
    std::lock_guard<std::mutex> l(mu_);
    jobs.swap(left_jobs_);
  }
  std::vector<uint64_t> drop;
  for (auto& [id, job] : jobs) {
    int fd = -1;
    Status s = job.params == kRestoreJobWhole
                   ? OpenFileHandle(upper_fd, job.target, O_RDONLY | O_NOATIME, &fd)
                   : Status::Errno(ECANCELED, "a restore of ranges");
    if (!s.ok()) {
      // Nothing to resume: the readers of a ranges-only restore are gone
      // (what it restored is durable), or the file is.
      drop.push_back(id);
      continue;
    }
    FdCloser closer(fd);
    std::shared_ptr<MigFile> file = Attach(fd);
    if (file == nullptr) {
      drop.push_back(id);
      continue;
    }
    struct stat st;
    const std::string what =
        fstat(fd, &st) == 0 ? "upper inode " + std::to_string(st.st_ino) : "upper file";
    std::fprintf(stderr,
                 "overtier: resuming the restore of %s left by the last mount (%llu of %llu "
                 "bytes were back)\n",
                 MessageSafe(what).c_str(), static_cast<unsigned long long>(job.progress),
                 static_cast<unsigned long long>(job.total));
    WaitRange(
        file, fd, 0, UINT64_MAX,
        [what](const Status& r) {
          if (!r.ok() && r.err() != ECANCELED)
            std::fprintf(stderr, "overtier: resumed restore of %s: %s\n", MessageSafe(what).c_str(),
                         MessageSafe(r.ToString()).c_str());
        },
        false, id);
  }
  if (drop.empty()) return;
  Use use(this);
  Session* session;
  Status s = use.Open(&session);
  if (s.ok()) {
    Catalog* catalog = session->store->catalog();
    Catalog::Batch b(catalog);
    std::vector<std::string> changed;
    for (uint64_t id : drop) {
      JobRecord j;
      if (!catalog->GetJob(id, &j).ok()) continue;
      b.DeleteJob(id);
      // The record's in-progress flag went with the job.
      MigrationRecord r;
      if (catalog->GetMigration(j.target, &r).ok() && (r.flags & kMigRestoreInProgress)) {
        r.flags &= ~kMigRestoreInProgress;
        b.PutMigration(j.target, r);
        changed.push_back(j.target);
      }
    }
    s = b.Commit();
    // What memory holds of those records (read at mount, before the drop)
    // must say so too: it answers the state once the session closes.
    if (s.ok()) {
      for (const std::string& key : changed) Refresh(catalog, key);
    }
  }
  if (!s.ok())
    std::fprintf(stderr, "overtier: dropping finished restore jobs: %s\n",
                 MessageSafe(s.ToString()).c_str());
}

bool MigrationService::session_open() {
  std::lock_guard<std::mutex> l(mu_);
  return session_ != nullptr;
}

Status MigrationService::Acquire(Session** out, bool wait) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [this] { return !opening_ && !closing_; });
  if (!session_) {
    opening_ = true;
    l.unlock();
    auto s = std::make_unique<Session>();
    // Waits while another process (an image import) writes the store.
    // Flushed at close: the next mount's read-only opens replay no WAL.
    StoreOpenOptions wo;
    wo.flush_on_close = true;
    // Judged by Create's open; opened again after every idle second.
    wo.judged = true;
    wo.quiet_log = true;
    wo.wait = wait;
    // Archives leave room on the catalog's disk, so restores can always
    // open and commit it.
    wo.keep_catalog_room = true;
    Status st = Store::Open(store_path_, wo, &s->store);
    if (st.ok()) {
      s->archiver = std::make_unique<Archiver>(s->store.get());
      RestorerOptions ro;
      ro.hard = hard_;
      ro.clone = restore_clone_;
      s->restorer = std::make_unique<Restorer>(s->store.get(), ro);
    }
    l.lock();
    opening_ = false;
    cv_.notify_all();
    if (!st.ok()) return Status::Errno(st.err(), "opening the store for writing: " + st.message());
    session_ = std::move(s);
  }
  users_++;
  *out = session_.get();
  return Status::OK();
}

bool MigrationService::AcquireIfOpen(Session** out) {
  std::lock_guard<std::mutex> l(mu_);
  if (!session_ || opening_ || closing_) return false;
  users_++;
  *out = session_.get();
  return true;
}

void MigrationService::Unuse() {
  std::lock_guard<std::mutex> l(mu_);
  if (--users_ == 0) {
    idle_since_ = std::chrono::steady_clock::now();
    settled_ = false;
  }
}

// What a session's close does before closing: seal the archive container
// (a container left open reads as one a crashed writer left behind: fsck
// notices it, gc seals it), and tell the read path what the restores of
// `keys` committed in the background.
void MigrationService::SealAndRefresh(Session* s, const std::set<std::string>& keys) {
  Status sealed = s->archiver->Close();
  if (!sealed.ok()) {
    std::fprintf(stderr, "overtier: sealing archive containers: %s\n",
                 MessageSafe(sealed.ToString()).c_str());
  }
  for (const std::string& k : keys) Refresh(s->store->catalog(), k);
}

// An idle session kept open (keep_open_): what a close would do, but for
// closing.
void MigrationService::Settle(std::unique_lock<std::mutex>* l) {
  settled_ = true;
  // As for a close, nobody may use the session meanwhile: a Refresh of
  // ours must not overwrite a newer one of a user's.
  closing_ = true;
  Session* s = session_.get();
  std::set<std::string> keys;
  keys.swap(touched_);
  l->unlock();
  SealAndRefresh(s, keys);
  l->lock();
  closing_ = false;
  cv_.notify_all();
}

void MigrationService::Reaper() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, std::chrono::milliseconds(200));
    if (stop_ || !session_ || users_ > 0 || opening_ || closing_) continue;
    const auto idle = std::chrono::steady_clock::now() - idle_since_;
    if (session_->restorer->active_jobs() > 0) continue;  // a background restore
    // Another process (an import, gc, another mount) waits for write.lock.
    const bool wanted = session_->store->WriterWanted();
    if (keep_open_ && !wanted && idle < kKeepIdle) {
      if (idle >= kIdleClose && !settled_) Settle(&l);
      continue;
    }
    if (!wanted && idle < kIdleClose) continue;
    closing_ = true;
    std::unique_ptr<Session> s = std::move(session_);
    std::set<std::string> keys;
    keys.swap(touched_);
    l.unlock();
    s->restorer.reset();
    SealAndRefresh(s.get(), keys);
    s.reset();  // write.lock released: an import may go on
    l.lock();
    closing_ = false;
    cv_.notify_all();
  }
}

std::optional<MigrationRecord> MigrationService::RecordOf(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::optional<MigrationRecord> MigrationService::CurrentRecord(const std::string& key) {
  {
    // An open session knows better (a restore running in the background).
    std::lock_guard<std::mutex> l(mu_);
    if (session_ && !closing_) {
      std::optional<MigrationRecord> fresh;
      if (LoadRecord(session_->store->catalog(), key, &fresh).ok()) return fresh;
    }
  }
  return RecordOf(key);
}

void MigrationService::Publish(MigFile* file, const std::optional<MigrationRecord>& rec,
                               uint64_t size) {
  std::lock_guard<std::mutex> l(file->mu);
  if (rec) file->no_passthrough.store(true);
  file->has_record.store(rec.has_value(), std::memory_order_release);
  ResidencyMap map = ResidencyMap::FullyResident(size);
  if (rec && (rec->flags & kMigReleased) && !ResidencyMap::FromRecord(*rec, size, &map).ok()) {
    map = ResidencyMap::WithBarrier(size, 0);  // a bad record: trust nothing
  }
  file->map = map;
  file->slow.store(!map.fully_resident(), std::memory_order_release);
}

void MigrationService::SetRecord(const std::string& key,
                                 const std::optional<MigrationRecord>& rec) {
  std::shared_ptr<MigFile> file;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (rec) {
      records_[key] = *rec;
    } else {
      records_.erase(key);
    }
    record_count_.store(records_.size(), std::memory_order_release);
    auto it = files_.find(key);
    if (it != files_.end()) file = it->second.lock();
  }
  if (!file) return;
  int fd;
  {
    std::lock_guard<std::mutex> l(file->mu);
    fd = file->path_fd;
  }
  uint64_t size = 0;
  if (fd < 0 || !FileSize(fd, &size).ok()) {
    // Unknown size: keep whatever it was, only the record's presence.
    std::lock_guard<std::mutex> l(file->mu);
    size = file->map.size();
  }
  Publish(file.get(), rec, size);
}

void MigrationService::Refresh(Catalog* catalog, const std::string& key) {
  std::optional<MigrationRecord> rec;
  if (!LoadRecord(catalog, key, &rec).ok()) return;  // keep what memory says
  PausePoint("record-loaded");
  SetRecord(key, rec);
}

std::shared_ptr<MigFile> MigrationService::Attach(int fd, std::string_view raw_handle) {
  // Every open of an upper file comes here: the key alone (known, or one
  // system call) unless the file has a record to check the generation
  // against.
  FileHandle fh;
  if (!(!raw_handle.empty() && FileHandleKeyFromRaw(raw_handle, &fh)) &&
      !GetFileHandleKey(fd, "upper file", &fh).ok())
    return nullptr;
  std::optional<MigrationRecord> rec;
  std::shared_ptr<MigFile> file;
  bool fresh = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    std::weak_ptr<MigFile>& w = files_[fh.key];
    file = w.lock();
    if (!file) {
      file = std::make_shared<MigFile>();
      file->key = fh.key;
      file->owner = this;
      w = file;
      fresh = true;
      auto it = records_.find(fh.key);
      if (it != records_.end()) rec = it->second;
    }
  }
  if (!fresh) {
    file->attached.wait(false);
    return file;
  }
  PausePoint("file-attaching");
  if (rec) {
    Transition t;
    bool invalidated = false;
    if (!AddInodeAndGeneration(fd, "upper file", &fh).ok()) fh.has_generation = false;
    if (fh.has_generation) CheckGeneration(rec, fh.generation, &t, &invalidated);
    if (invalidated) {
      // The file behind the handle was replaced behind our back: the record
      // describes another file. Forget it now, delete it in the background.
      rec.reset();
      {
        std::lock_guard<std::mutex> l(mu_);
        records_.erase(fh.key);
        record_count_.store(records_.size(), std::memory_order_release);
      }
      std::string key = fh.key;
      const uint64_t generation = fh.generation;
      Submit([this, key, generation] {
        Use use(this);
        Session* s;
        if (!use.Open(&s).ok()) return;
        // Only the stale record: the new file may have one of its own by
        // now (a lazy copy-up commits right after attaching).
        std::optional<MigrationRecord> now;
        if (!LoadRecord(s->store->catalog(), key, &now).ok() || !now ||
            now->generation == generation)
          return;
        Catalog::Batch b(s->store->catalog());
        b.DeleteMigration(key);
        (void)b.Commit();
      });
    }
  }
  ReconcileMarked(fd, fh, &rec);
  if (rec) RepairTimes(fd, *rec);
  if (rec) {
    uint64_t size = 0;
    (void)FileSize(fd, &size);
    KeepPath(file.get(), fd);
    Publish(file.get(), rec, size);
  }
  file->attached.store(true);
  file->attached.notify_all();
  return file;
}

namespace {

// A record that agrees with the file's archive mark: it says released
// (its holes are accounted for) and names the mark's archive.
bool AgreesWithMark(const std::optional<MigrationRecord>& r, const Bfid& mark) {
  return r && (r->flags & kMigReleased) && r->bfid == mark;
}

}  // namespace

void MigrationService::ReconcileMarked(int fd, FileHandle fh, std::optional<MigrationRecord>* rec) {
  // One getxattr per first open of a file (ENODATA but for released files).
  // (A file released before marks existed gets none here: memory's record
  // may be behind the catalog's, a restore having committed "archived" and
  // taken the mark off, and a mark set from it would outlive the record.)
  const std::optional<Bfid> mark = ReadArchiveMark(fd);
  if (!mark || AgreesWithMark(*rec, *mark)) return;
  // A mark, and no record or one that does not say "released" with it
  // (marks go before any commit that ends "released"): the catalog lost
  // the row, or is older than the release (a backup put back).
  // The file's data ranges decide; fd may be O_PATH (lseek and pread
  // refuse those): read them through a descriptor of our own.
  int rfd = -1;
  if (!Reopen(fd, O_RDONLY | O_NOATIME, "file", &rfd).ok()) return;
  FdCloser closer(rfd);
  struct stat st;
  if (fstat(rfd, &st) != 0) return;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::vector<ByteRange> data;
  Status ds = DataRanges(rfd, size, &data);
  if (ds.ok() && size > 0 && !(data.size() == 1 && data[0] == ByteRange{0, size}))
    ds = TrimZeroEdges(rfd, std::max<uint64_t>(st.st_blksize, 512), &data);
  if (!ds.ok()) {
    // Guessing either way could cost bytes (the user's taken for holes,
    // or holes read as zeros): leave the file as memory has it, say so.
    std::fprintf(stderr,
                 "overtier: inode %llu carries archive %s, its record disagrees, and its "
                 "data ranges cannot be read: %s\n",
                 static_cast<unsigned long long>(st.st_ino), mark->ToHex().c_str(),
                 MessageSafe(ds.ToString()).c_str());
    return;
  }
  if (size == 0 || (data.size() == 1 && data[0] == ByteRange{0, size})) {
    // No hole: nothing can be missing. The mark is one a crash left
    // between a release's mark and its commit (nothing punched yet), and
    // goes: left, it would have a later open take the user's holes (a
    // punch, a truncate up) for the archive's bytes. (No release of this
    // file runs now: a release works on an open file, so on a MigFile
    // that exists, and this is the first.)
    ClearArchiveMark(rfd);
    return;
  }
  if (!AddInodeAndGeneration(rfd, "upper file", &fh).ok()) fh.has_generation = false;
  const std::string what = "inode " + std::to_string(st.st_ino);
  const char* had = !*rec                            ? "no record of it"
                    : ((*rec)->flags & kMigReleased) ? "a record of another archive"
                                                     : "a record from before its release";
  auto rebuilt = [&](std::optional<uint64_t> archive_bytes) {
    return ReconciledRecord(*mark, archive_bytes, data, size, fh.has_generation ? fh.generation : 0,
                            ClampedNs(st.st_atim), ClampedNs(st.st_mtim));
  };
  std::optional<uint64_t> archive_size;
  Status s;
  {
    Use use(this);
    Session* session;
    s = use.Open(&session);
    if (s.ok()) {
      Catalog* catalog = session->store->catalog();
      std::optional<MigrationRecord> now;
      s = LoadRecord(catalog, fh.key, &now);
      if (s.ok() && AgreesWithMark(now, *mark)) {
        // The row is right after all (written since memory's scan).
        *rec = now;
        std::lock_guard<std::mutex> l(mu_);
        records_[fh.key] = *now;
        record_count_.store(records_.size(), std::memory_order_release);
        return;
      }
      if (s.ok()) {
        FileRecord file;
        Status f = catalog->GetFile(*mark, &file);
        if (f.ok()) archive_size = file.size;
        *rec = rebuilt(archive_size);
        Catalog::Batch b(catalog);
        b.PutMigration(fh.key, **rec);
        s = b.Commit();
      }
    }
  }
  if (!s.ok()) {
    // The store cannot be written now. This open gets the rebuilt record
    // (not memory's table, so the next first open tries again): a read of
    // a hole asks the restorer, which needs the store as well and fails.
    *rec = rebuilt(std::nullopt);
    std::fprintf(stderr,
                 "overtier: %s carries archive %s but the catalog has %s, and rebuilding "
                 "the record failed: %s; reads of its holes fail until a later open rebuilds it\n",
                 what.c_str(), mark->ToHex().c_str(), had, s.ToString().c_str());
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    records_[fh.key] = **rec;
    record_count_.store(records_.size(), std::memory_order_release);
  }
  std::fprintf(stderr,
               "overtier: %s carries archive %s but the catalog had %s (a catalog put back "
               "from a backup?): rebuilt the record; %s\n",
               what.c_str(), mark->ToHex().c_str(), had,
               archive_size ? "its holes come from the archive"
                            : "the archive is gone too (no files row): its holes read as EIO");
}

bool MigrationService::KnownResident(MigFile* file, uint64_t offset, uint64_t length) {
  std::lock_guard<std::mutex> l(file->mu);
  return file->map.IsResident(offset, length);
}

std::shared_ptr<MigrationService::Wait> MigrationService::WaitRange(
    const std::shared_ptr<MigFile>& file, int fd, uint64_t offset, uint64_t length,
    std::function<void(const Status&)> cb, bool range_only, uint64_t resume_job, bool reads) {
  auto w = std::make_shared<Wait>();
  w->cb = std::move(cb);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = agent_restores_.find(file->key);
    if (it != agent_restores_.end()) {
      // An external agent is restoring the file: wait for its barrier.
      int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (dfd >= 0) {
        it->second.push_back(AgentWait{file, dfd, offset, length, w});
        return w;
      }
    }
  }
  KeepPath(file.get(), fd);
  int rfd = -1;
  Status s = Reopen(fd, O_RDWR, "upper file", &rfd);
  if (!s.ok()) {
    auto c = std::move(w->cb);
    c(s);
    return w;
  }
  Submit([this, w, file, rfd, offset, length, range_only, resume_job, reads] {
    FdCloser closer(rfd);
    // Counted until the answer: the session stays open while we wait.
    auto use = std::make_shared<Use>(this);
    Session* session;
    Status s = use->Open(&session);
    auto answer = [w](const Status& st) {
      std::function<void(const Status&)> c;
      {
        std::lock_guard<std::mutex> l(w->mu);
        c = std::move(w->cb);
        w->cb = nullptr;
      }
      if (c) c(st);
    };
    if (!s.ok()) return answer(s);
    {
      std::lock_guard<std::mutex> l(mu_);
      touched_.insert(file->key);
    }
    const std::string what = UpperFileName(rfd);
    std::lock_guard<std::mutex> ml(file->modify_mu);
    uint64_t epoch;
    {
      std::lock_guard<std::mutex> l(file->mu);
      epoch = file->release_epoch;
    }
    uint64_t id = session->restorer->Request(
        rfd, what, {offset, length},
        [file, answer, use, offset, length, epoch](const Status& st) mutable {
          // "Resident" as the restorer knew it when the wait began (a job
          // that found the file not released answers at once): a release
          // since then may have punched the range.
          std::unique_lock<std::mutex> l(file->mu);
          if (st.ok() && file->release_epoch == epoch) file->map.MarkResident(offset, length);
          l.unlock();
          answer(st);
          use.reset();  // the session may close once idle
        },
        range_only, resume_job, reads);
    bool cancel;
    {
      std::lock_guard<std::mutex> l(w->mu);
      w->id = id;
      w->restorer = session->restorer.get();
      cancel = w->cancel && w->cb != nullptr;
    }
    if (cancel && id != 0) session->restorer->Cancel(id);
  });
  return w;
}

void MigrationService::CancelWait(const std::shared_ptr<Wait>& w) {
  uint64_t id = 0;
  Restorer* r = nullptr;
  {
    std::function<void(const Status&)> now;
    {
      std::lock_guard<std::mutex> l(w->mu);
      if (w->cb == nullptr) return;  // answered
      if (w->id == 0) {
        // Not registered yet (the store may be busy opening, behind an
        // import's write.lock): answer now; the restore goes on alone.
        w->cancel = true;
        now = std::move(w->cb);
        w->cb = nullptr;
      } else {
        id = w->id;
        r = w->restorer;
      }
    }
    if (now) return now(Status::Errno(EINTR, "wait interrupted"));
  }
  // The wait is unanswered, so its Use keeps the session (and r) alive...
  // unless it is answered right now: hold the session ourselves.
  Use use(this);
  Session* s;
  if (!use.Open(&s).ok() || s->restorer.get() != r) return;
  r->Cancel(id);
}

namespace {

// Whether a release of the upper file behind fd would be refused as
// pinned (Release checks again, and says which pin). In doubt, pinned: the
// policy engine plans by this, and must not plan a release of a file it
// could not look at. An upper file system without inode flags has none
// set.
bool PinnedFile(int fd) {
  int iflags = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &iflags) == 0) {
    if ((iflags & (FS_IMMUTABLE_FL | FS_APPEND_FL)) != 0) return true;
  } else if (errno != ENOTTY && errno != EINVAL && errno != EOPNOTSUPP) {
    return true;
  }
  return fgetxattr(fd, kNoReleaseXattr, nullptr, 0) >= 0 ||
         (errno != ENODATA && errno != EOPNOTSUPP);
}

}  // namespace

Status MigrationService::GetState(int fd, overtier_ctl_state* out) {
  FileHandle fh;
  OVT_RETURN_IF_ERROR(GetFileHandle(fd, "upper file", &fh));
  uint64_t size = 0;
  OVT_RETURN_IF_ERROR(FileSize(fd, &size));
  std::optional<MigrationRecord> rec = CurrentRecord(fh.key);
  std::memset(out, 0, sizeof(*out));
  out->version = OVERTIER_CTL_VERSION;
  out->state = static_cast<uint32_t>(StateOf(rec));
  out->size = size;
  ResidencyMap map = ResidencyMap::FullyResident(size);
  if (rec) {
    out->mig_flags = rec->flags;
    out->archive_size = rec->archive_size;
    out->generation = rec->generation;
    std::memcpy(out->bfid, rec->bfid.view().data(), sizeof(out->bfid));
    out->atime_ns = rec->atime_ns;
    out->mtime_ns = rec->mtime_ns;
    out->archive_time_ns = rec->archive_time_ns;
    out->restore_time_ns = rec->restore_time_ns;
    if (rec->flags & kMigReleased) OVT_RETURN_IF_ERROR(ResidencyMap::FromRecord(*rec, size, &map));
  }
  out->nranges = static_cast<uint32_t>(map.ranges().size());
  uint64_t barrier;
  out->barrier = map.barrier(&barrier) ? barrier : UINT64_MAX;
  out->resident_bytes = map.resident_bytes();
  if (PinnedFile(fd)) out->mig_flags |= OVERTIER_MIG_PINNED;
  return Status::OK();
}

Status MigrationService::StateString(int fd, std::string* out) {
  FileHandle fh;
  OVT_RETURN_IF_ERROR(GetFileHandle(fd, "upper file", &fh));
  uint64_t size = 0;
  OVT_RETURN_IF_ERROR(FileSize(fd, &size));
  std::optional<MigrationRecord> rec = CurrentRecord(fh.key);
  *out = overtier::StateString(rec, size);
  return Status::OK();
}

Status MigrationService::Archive(const std::shared_ptr<MigFile>& file, int fd,
                                 const std::string& what, bool release, uint64_t keep) {
  Use use(this);
  Session* s;
  OVT_RETURN_IF_ERROR(use.Open(&s));
  int rfd = -1;
  // O_NOATIME: the archive is not a user access.
  OVT_RETURN_IF_ERROR(Reopen(fd, O_RDONLY | O_NOATIME, what, &rfd));
  FdCloser closer(rfd);
  KeepPath(file.get(), fd);
  // Changes go through UserModify (modify_mu) from here on, once those
  // begun the plain way have ended (PlainChange); the archiver holds
  // modify_mu from its last look at the file to its commit, and the record
  // is known here before changes may go the plain way again.
  archives_running_.fetch_add(1);
  file->archiving.fetch_add(1);
  file->WaitForPlainChanges();
  ArchiveFence fence;
  fence.commit_mu = &file->modify_mu;
  fence.changes = &file->changes;
  Status st = s->archiver->Archive(rfd, what, nullptr, fence);
  {
    // Not overlapping a release's Refresh (see Refresh): another client's
    // release may come in as soon as the archive committed.
    std::lock_guard<std::mutex> ml(file->modify_mu);
    Refresh(s->store->catalog(), file->key);
  }
  file->archiving.fetch_sub(1);
  archives_running_.fetch_sub(1);
  OVT_RETURN_IF_ERROR(st);
  if (!release) return Status::OK();
  return Release(file, fd, what, keep);
}

Status MigrationService::Release(const std::shared_ptr<MigFile>& file, int fd,
                                 const std::string& what, uint64_t keep) {
  Use use(this);
  Session* s;
  OVT_RETURN_IF_ERROR(use.Open(&s));
  // An immutable or append-only file (chattr +i, +a: on the upper file
  // itself) cannot be punched, nor opened for writing: pinned like one
  // marked norelease, EACCES, rather than the open's EPERM, which to the
  // tools means "not root".
  {
    int rfd = -1;
    OVT_RETURN_IF_ERROR(Reopen(fd, O_RDONLY | O_NONBLOCK, what, &rfd));
    int iflags = 0;
    const bool fixed = ioctl(rfd, FS_IOC_GETFLAGS, &iflags) == 0 &&
                       (iflags & (FS_IMMUTABLE_FL | FS_APPEND_FL)) != 0;
    close(rfd);
    if (fixed) return Status::Errno(EACCES, "'" + what + "' is immutable or append-only");
  }
  int wfd = -1;
  OVT_RETURN_IF_ERROR(Reopen(fd, O_RDWR, what, &wfd));
  FdCloser closer(wfd);
  // A pinned file is never released (docs/POLICY.md): root set the mark
  // through the mount, on the upper file. EACCES, as EPERM means "not
  // root".
  if (fgetxattr(wfd, kNoReleaseXattr, nullptr, 0) >= 0) {
    return Status::Errno(EACCES, "'" + what + "' is pinned (" + kNoReleaseXattr + ")");
  }
  KeepPath(file.get(), fd);
  // From before the ranges are published until the record says what
  // happened: no user change, and no restore starts (WaitRange's Request).
  std::lock_guard<std::mutex> ml(file->modify_mu);
  if (s->restorer->HasJob(file->key)) {
    return Status::Errno(EBUSY, "'" + what + "': a restore is in progress");
  }
  uint64_t size = 0;
  OVT_RETURN_IF_ERROR(FileSize(wfd, &size));
  {
    // Readers that saw these ranges resident finish first (io_gate).
    std::unique_lock<IoGate> gate(file->io_gate);
    std::lock_guard<std::mutex> l(file->mu);
    file->release_epoch++;
    // Before anything is punched, readers must take the slow path for what
    // will be gone: assume the release succeeds (a read of a byte still
    // resident then costs a question to the restorer, which answers at
    // once), the Refresh below says what really happened.
    ResidencyMap pessimistic = file->map.size() == size && file->slow.load()
                                   ? file->map
                                   : ResidencyMap::FullyResident(size);
    pessimistic.KeepPrefix(keep);
    file->map = pessimistic;
    file->slow.store(!pessimistic.fully_resident(), std::memory_order_release);
  }
  PausePoint("release-published");
  Status st = s->archiver->Release(wfd, what, keep);
  Refresh(s->store->catalog(), file->key);
  return st;
}

std::shared_ptr<MigrationService::Wait> MigrationService::Restore(
    const std::shared_ptr<MigFile>& file, int fd, const std::string& what, uint64_t offset,
    uint64_t length, bool wait, bool range_only, std::function<void(const Status&)> done) {
  if (length == 0) length = UINT64_MAX - offset;
  if (!wait) {
    // Nobody to answer: the restore runs on its own; the session stays
    // open until its job ends.
    WaitRange(
        file, fd, offset, length, [](const Status&) {}, range_only);
    done(Status::OK());
    return nullptr;
  }
  // Answered from callbacks, never by blocking this thread: the caller is
  // one of the pool's threads, and WaitRange needs one of them to start
  // the restore (four restores waiting at once took all four, and nothing
  // else of the tier ran again).
  auto fail = [what, done](const Status& s) {
    done(Status::Errno(s.err(), "restoring '" + what + "': " + s.message()));
  };
  return WaitRange(
      file, fd, offset, length,
      [this, file, done, fail, range_only](const Status& s) {
        if (!s.ok()) return fail(s);
        // A range is answered as soon as it is back: the job may go on
        // with the rest of the file for someone else.
        if (range_only) return done(Status::OK());
        // The bytes are back; the job's last commit (the record without
        // its restore flag) may still be ahead. Answer after it, so that
        // what the caller does next (a release, a status) finds the file
        // restored and not "a restore is in progress". The session is
        // open (the wait being answered holds it).
        auto use = std::make_shared<Use>(this);
        Session* session;
        Status st = use->Open(&session);
        if (!st.ok()) return fail(st);
        session->restorer->WhenIdle(file->key, [use, done, fail](const Status& idle) {
          if (!idle.ok()) return fail(idle);
          done(Status::OK());
        });
      },
      range_only);
}

Status MigrationService::UserSynced(const std::shared_ptr<MigFile>& file) {
  // A restore job runs for a file with a record, in an open session (the
  // session stays open while a job runs).
  if (file == nullptr || !file->has_record.load()) return Status::OK();
  Use use(this);
  Session* s;
  if (!use.IfOpen(&s)) return Status::OK();
  return s->restorer->CommitUserChanges(file->key);
}

Status MigrationService::UserModify(const std::shared_ptr<MigFile>& file, int fd,
                                    const UserChange& change, const std::function<Status()>& io) {
  Use use(this);
  Session* s;
  OVT_RETURN_IF_ERROR(use.Open(&s));
  KeepPath(file.get(), fd);
  std::lock_guard<std::mutex> ml(file->modify_mu);
  uint64_t before = 0;
  OVT_RETURN_IF_ERROR(FileSize(fd, &before));
  bool in_job = false;
  Status io_status = s->restorer->UserModify(file->key, change, io, &in_job);
  // Counted even if it failed: it may have changed some bytes.
  file->changes.fetch_add(1);
  OVT_RETURN_IF_ERROR(io_status);
  {
    // The bytes written (or the new tail) are the user's: resident.
    std::lock_guard<std::mutex> l(file->mu);
    if (file->slow.load()) {
      if (change.truncate) {
        file->map.Truncate(change.new_size);
      } else {
        file->map.RecordWrite(change.offset, change.length);
      }
    }
  }
  if (in_job) {
    // The job commits it; memory learns at the session's end.
    std::lock_guard<std::mutex> l(mu_);
    touched_.insert(file->key);
    return Status::OK();
  }
  Catalog* catalog = s->store->catalog();
  std::optional<MigrationRecord> rec;
  OVT_RETURN_IF_ERROR(LoadRecord(catalog, file->key, &rec));
  Transition t;
  Status st = change.truncate ? RecordTruncate(rec, before, change.new_size, &t)
                              : RecordWrite(rec, before, change.offset, change.length, &t);
  if (st.ok() && t.record == rec) KeepUserTimes(fd, &t.record);
  if (st.ok() && t.record != rec) st = Apply(catalog, file->key, t, fd);
  Refresh(catalog, file->key);
  return st;
}

void MigrationService::WakeAgentWaits(const std::string& key, bool done) {
  std::vector<AgentWait> ready, rest;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = agent_restores_.find(key);
    if (it == agent_restores_.end()) return;
    for (AgentWait& a : it->second) {
      bool resident;
      {
        std::lock_guard<std::mutex> fl(a.file->mu);
        resident = a.file->map.IsResident(a.offset, a.length);
      }
      if (resident) {
        ready.push_back(std::move(a));
      } else if (done) {
        rest.push_back(std::move(a));
      }
    }
    if (done) {
      agent_restores_.erase(it);
    } else {
      auto& v = it->second;
      v.erase(std::remove_if(v.begin(), v.end(), [](const AgentWait& a) { return !a.wait; }),
              v.end());
    }
  }
  auto answer = [](const std::shared_ptr<Wait>& w, const Status& s) {
    std::function<void(const Status&)> c;
    {
      std::lock_guard<std::mutex> l(w->mu);
      c = std::move(w->cb);
      w->cb = nullptr;
    }
    if (c) c(s);
  };
  for (AgentWait& a : ready) {
    answer(a.wait, Status::OK());
    close(a.fd);
  }
  for (AgentWait& a : rest) {
    // The agent is done and this range is still missing: ours restores it.
    std::function<void(const Status&)> c;
    {
      std::lock_guard<std::mutex> l(a.wait->mu);
      c = std::move(a.wait->cb);
      a.wait->cb = nullptr;
    }
    if (c) ReadRange(a.file, a.fd, a.offset, a.length, std::move(c));
    close(a.fd);
  }
}

Status MigrationService::Primitive(const std::shared_ptr<MigFile>& file, int fd,
                                   const std::string& what, unsigned cmd,
                                   const overtier_ctl_request& r,
                                   const overtier_ctl_archived* archived) {
  if (cmd == OVERTIER_IOC_SET_NONRESIDENT) return Release(file, fd, what, r.offset);
  Use use(this);
  Session* s;
  OVT_RETURN_IF_ERROR(use.Open(&s));
  KeepPath(file.get(), fd);
  Catalog* catalog = s->store->catalog();
  Status st;
  {
    std::lock_guard<std::mutex> ml(file->modify_mu);
    FileHandle fh;
    OVT_RETURN_IF_ERROR(GetFileHandle(fd, what, &fh));
    uint64_t size = 0;
    OVT_RETURN_IF_ERROR(FileSize(fd, &size));
    std::optional<MigrationRecord> rec;
    OVT_RETURN_IF_ERROR(LoadRecord(catalog, fh.key, &rec));
    Transition t;
    switch (cmd) {
      case OVERTIER_IOC_ARCHIVE_BEGIN:
        st = BeginArchive(rec, fh.generation, size, &t);
        break;
      case OVERTIER_IOC_ARCHIVE_ABORT:
        st = AbortArchive(rec, &t);
        break;
      case OVERTIER_IOC_SET_ARCHIVED: {
        if (rec && fh.has_generation && archived->generation != fh.generation) {
          st = Status::Errno(ESTALE, "the file's generation is not the one archived");
          break;
        }
        if (archived->archive_size != size) {
          st = Status::Errno(ESTALE, "archive size " + std::to_string(archived->archive_size) +
                                         " is not the file's size " + std::to_string(size));
          break;
        }
        Bfid bfid;
        std::memcpy(bfid.bytes.data(), archived->bfid, bfid.bytes.size());
        FileRecord f;
        st = catalog->GetFile(bfid, &f);
        if (!st.ok()) {
          st = Status::Errno(EINVAL, "archive " + bfid.ToHex() + ": " + st.message());
          break;
        }
        if (f.size != size) {
          st =
              Status::Errno(EINVAL, "archive " + bfid.ToHex() + " holds " + std::to_string(f.size) +
                                        " bytes, the file " + std::to_string(size));
          break;
        }
        uint32_t valid = 0;
        st = s->archiver->ValidCopies(f, &valid);
        if (!st.ok()) break;
        ArchiveInfo info;
        info.bfid = bfid;
        info.size = size;
        info.copies = std::min(valid, archived->copies);
        info.copies_needed = s->store->config().copies;
        info.atime_ns = archived->atime_ns;
        info.mtime_ns = archived->mtime_ns;
        info.now_ns = NowNs();
        st = FinishArchive(rec, info, &t);
        break;
      }
      case OVERTIER_IOC_RESTORE_BEGIN:
        st = BeginRestore(rec, size, &t);
        break;
      case OVERTIER_IOC_MOVE_BARRIER:
        st = RestoreProgress(rec, size, r.offset, r.length, &t);
        break;
      case OVERTIER_IOC_RESTORE_DONE:
        st = FinishRestore(rec, size, NowNs(), &t);
        break;
      default:
        return Status::Errno(ENOTTY);
    }
    if (st.ok() && t.record != rec) st = Apply(catalog, fh.key, t, fd);
    if (st.ok() && cmd == OVERTIER_IOC_RESTORE_BEGIN) {
      std::lock_guard<std::mutex> l(mu_);
      agent_restores_[fh.key];  // readers now wait for the agent
    }
    Refresh(catalog, fh.key);
  }
  // The agent copies the file once we answer: a change begun the plain way
  // before the record made the file tracked lands first (PlainChange).
  if (st.ok() && cmd == OVERTIER_IOC_ARCHIVE_BEGIN) file->WaitForPlainChanges();
  if (cmd == OVERTIER_IOC_MOVE_BARRIER || cmd == OVERTIER_IOC_RESTORE_DONE) {
    WakeAgentWaits(file->key, /*done=*/cmd == OVERTIER_IOC_RESTORE_DONE);
  }
  if (!st.ok()) return Status::Errno(st.err(), "'" + what + "': " + st.message());
  return Status::OK();
}

void MigrationService::OpenAhead(bool wait) {
  std::lock_guard<std::mutex> l(mu_);
  if (session_ || opening_ || stop_ || !pool_) return;
  // A failure is for whoever needs the session to report: it opens again.
  pool_->Submit([this, wait] {
    Use use(this);
    Session* s;
    (void)use.Open(&s, wait);
  });
}

Status MigrationService::Adopt(int fd, const Bfid& bfid, const std::string& what) {
  std::shared_ptr<MigFile> file = Attach(fd);
  if (!file) {
    return Status::Errno(
        EOPNOTSUPP, "lazy copy-up of '" + what + "': the upper file system has no file handles");
  }
  Use use(this);
  Session* s;
  OVT_RETURN_IF_ERROR(use.Open(&s));
  KeepPath(file.get(), fd);
  std::lock_guard<std::mutex> ml(file->modify_mu);
  Status st = s->archiver->Adopt(fd, bfid, what);
  Refresh(s->store->catalog(), file->key);
  return st;
}

void MigrationService::MarkAdopted(int fd) {
  FileHandle fh;
  if (!GetFileHandleKey(fd, "upper file", &fh).ok()) return;
  std::optional<MigrationRecord> rec = RecordOf(fh.key);
  if (rec && (rec->flags & kMigReleased)) (void)SetArchiveMark(fd, rec->bfid, "upper file");
}

Status MigrationService::UserTimes(const std::shared_ptr<MigFile>& file, int fd,
                                   const std::function<Status()>& io) {
  Use use(this);
  Session* s;
  OVT_RETURN_IF_ERROR(use.Open(&s));
  std::lock_guard<std::mutex> ml(file->modify_mu);
  // Through the restorer: a restore job in progress must put back the new
  // times, not the ones it loaded (a zero-length change records nothing).
  bool in_job = false;
  OVT_RETURN_IF_ERROR(s->restorer->UserModify(file->key, UserChange{}, io, &in_job));
  if (in_job) {
    std::lock_guard<std::mutex> l(mu_);
    touched_.insert(file->key);
    return Status::OK();
  }
  Catalog* catalog = s->store->catalog();
  std::optional<MigrationRecord> rec;
  OVT_RETURN_IF_ERROR(LoadRecord(catalog, file->key, &rec));
  if (!rec || !(rec->flags & kMigArchived)) return Status::OK();
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat of an upper file");
  RecordTimes(fd, st, &*rec);
  Catalog::Batch b(catalog);
  b.PutMigration(file->key, *rec);
  OVT_RETURN_IF_ERROR(b.Commit());
  Refresh(catalog, file->key);
  return Status::OK();
}

void MigrationService::Unlinked(const std::shared_ptr<MigFile>& file) {
  file->unlinked.store(true);
}

}  // namespace overtier
