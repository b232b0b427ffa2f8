#include "migrate/archiver.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>

#include "migrate/archive_mark.h"
#include "migrate/crash_point.h"
#include "migrate/migration_state.h"
#include "migrate/residency.h"
#include "overtier/time_ns.h"
#include "store/coding.h"
#include "store/content_writer.h"

namespace overtier {

Status CheckRecordTimes(const struct stat& st, const std::string& what) {
  int64_t ns;
  const char* which = !TimespecToNs(st.st_mtim, &ns)   ? "mtime"
                      : !TimespecToNs(st.st_atim, &ns) ? "atime"
                                                       : nullptr;
  if (which == nullptr) return Status::OK();
  return Status::Errno(EOVERFLOW, "'" + what + "': its " + which +
                                      " is outside the years 1677 to 2262 a migration record "
                                      "holds; not archived (touch the file to archive it)");
}

namespace {

// The record stored under `key`, or nullopt.
Status LoadRecord(Catalog* catalog, const std::string& key, const std::string& what,
                  std::optional<MigrationRecord>* out) {
  MigrationRecord r;
  Status s = catalog->GetMigration(key, &r);
  if (s.err() == ENOENT) {
    out->reset();
    return Status::OK();
  }
  if (!s.ok()) return Status::Errno(s.err(), "migration record of '" + what + "': " + s.message());
  *out = std::move(r);
  return Status::OK();
}

void Queue(Catalog::Batch* b, const std::string& key, const Transition& t) {
  if (t.record) {
    b->PutMigration(key, *t.record);
  } else {
    b->DeleteMigration(key);
  }
}

Status Context(const Status& s, const std::string& what) {
  if (s.ok()) return s;
  return Status::Errno(s.err(), "'" + what + "': " + s.message());
}

}  // namespace

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ClampedNs(ts);
}

class Archiver::Busy {
 public:
  Busy(Archiver* a, const std::string& key) : a_(a), key_(key) {
    std::lock_guard<std::mutex> l(a_->mu_);
    taken_ = a_->busy_.insert(key_).second;
  }
  ~Busy() {
    if (!taken_) return;
    std::lock_guard<std::mutex> l(a_->mu_);
    a_->busy_.erase(key_);
  }
  bool taken() const { return taken_; }

 private:
  Archiver* a_;
  std::string key_;
  bool taken_ = false;
};

Status Archiver::ValidCopies(const FileRecord& file, uint32_t* valid) {
  std::map<uint64_t, bool> usable;  // vv id -> not lost
  *valid = 0;
  for (const FileCopy& copy : file.copies) {
    bool ok = true;
    for (const Extent& e : copy.extents) {
      auto it = usable.find(e.vv_id);
      if (it == usable.end()) {
        VolumeRecord v;
        Status s = store_->catalog()->GetVolume(e.vv_id, &v);
        if (!s.ok() && s.err() != ENOENT) return s;
        it = usable.emplace(e.vv_id, s.ok() && v.state != VolumeState::kLost).first;
      }
      if (!it->second) {
        ok = false;
        break;
      }
    }
    if (ok) (*valid)++;
  }
  return Status::OK();
}

Status Archiver::Archive(int fd, const std::string& what, MigrationRecord* out,
                         const ArchiveFence& fence) {
  FileHandle fh;
  OVT_RETURN_IF_ERROR(GetFileHandle(fd, what, &fh));
  Busy busy(this, fh.key);
  if (!busy.taken())
    return Status::Errno(EBUSY, "'" + what + "': an archive or release is running");

  const uint64_t changes0 = fence.changes != nullptr ? fence.changes->load() : 0;
  struct stat st0;
  if (fstat(fd, &st0) != 0) return Status::FromErrno("fstat of '" + what + "'");
  if (!S_ISREG(st0.st_mode)) return Status::InvalidArgument("'" + what + "' is not a regular file");
  OVT_RETURN_IF_ERROR(CheckRecordTimes(st0, what));
  const uint64_t size = static_cast<uint64_t>(st0.st_size);

  Catalog* catalog = store_->catalog();
  std::optional<MigrationRecord> rec;
  OVT_RETURN_IF_ERROR(LoadRecord(catalog, fh.key, what, &rec));
  Transition begin;
  OVT_RETURN_IF_ERROR(Context(BeginArchive(rec, fh.generation, size, &begin), what));

  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (!writer_) writer_ = std::make_unique<ContentWriter>(store_);
  ContentWriter& writer = *writer_;
  FileRecord file;
  Status s = writer.WriteFd(fd, size, &file);
  if (!s.ok()) return DropWriterLocked(s, what);

  CrashPoint("archive-written");
  PausePoint("archive-copied");
  std::unique_lock<std::mutex> commit_lock;
  if (fence.commit_mu != nullptr) commit_lock = std::unique_lock<std::mutex>(*fence.commit_mu);
  struct stat st1;
  if (fstat(fd, &st1) != 0) return Status::FromErrno("fstat of '" + what + "'");
  if ((fence.changes != nullptr && fence.changes->load() != changes0) ||
      st1.st_size != st0.st_size || ClampedNs(st1.st_mtim) != ClampedNs(st0.st_mtim) ||
      ClampedNs(st1.st_ctim) != ClampedNs(st0.st_ctim)) {
    return Status::Errno(ESTALE, "'" + what + "' changed while being archived; archive abandoned");
  }

  ArchiveInfo info;
  OVT_RETURN_IF_ERROR(RandomId(&info.bfid));
  info.size = size;
  info.copies = static_cast<uint32_t>(file.copies.size());
  info.copies_needed = store_->config().copies;
  info.atime_ns = ClampedNs(st0.st_atim);
  info.mtime_ns = ClampedNs(st0.st_mtim);
  info.now_ns = NowNs();
  Transition done;
  OVT_RETURN_IF_ERROR(Context(FinishArchive(begin.record, info, &done), what));

  // Containers durable, then one synced batch naming them.
  Catalog::Batch batch(catalog);
  s = writer.Flush(&batch);
  if (!s.ok()) return DropWriterLocked(s, what);
  batch.PutFile(info.bfid, file);
  // The file is resident: a mark from an archive it had before (a crash
  // between a mark and its commit) goes (archive_mark.h).
  ClearArchiveMark(fd);
  Queue(&batch, fh.key, done);
  s = batch.Commit();
  if (!s.ok()) return DropWriterLocked(s, what);
  CrashPoint("archive-committed");

  // Reading may have moved atime (without O_NOATIME): put the user's back.
  if (ClampedNs(st1.st_atim) != ClampedNs(st0.st_atim)) {
    struct timespec times[2] = {st0.st_atim, {0, UTIME_OMIT}};
    if (futimens(fd, times) != 0) return Status::FromErrno("futimens of '" + what + "'");
  }
  if (out != nullptr) *out = *done.record;
  return Status::OK();
}

Status Archiver::Adopt(int fd, const Bfid& bfid, const std::string& what, MigrationRecord* out) {
  FileHandle fh;
  OVT_RETURN_IF_ERROR(GetFileHandle(fd, what, &fh));
  Busy busy(this, fh.key);
  if (!busy.taken())
    return Status::Errno(EBUSY, "'" + what + "': an archive or release is running");
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat of '" + what + "'");
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("'" + what + "' is not a regular file");

  Catalog* catalog = store_->catalog();
  FileRecord file;
  Status s = catalog->GetFile(bfid, &file);
  if (!s.ok()) return Status::Errno(s.err(), "lazy copy-up of '" + what + "': " + s.message());
  if (file.size != static_cast<uint64_t>(st.st_size)) {
    return Status::Errno(EINVAL, "lazy copy-up of '" + what + "': content holds " +
                                     std::to_string(file.size) + " bytes, the file " +
                                     std::to_string(st.st_size));
  }
  std::optional<MigrationRecord> rec;
  OVT_RETURN_IF_ERROR(LoadRecord(catalog, fh.key, what, &rec));
  AdoptInfo info;
  info.bfid = bfid;
  info.size = file.size;
  info.generation = fh.generation;
  info.atime_ns = ClampedNs(st.st_atim);
  info.mtime_ns = ClampedNs(st.st_mtim);
  info.now_ns = NowNs();
  Transition t;
  OVT_RETURN_IF_ERROR(Context(overtier::Adopt(rec, info, &t), what));
  // The archive mark comes after the copy-up's metacopy xattr is gone
  // (MigrationService::MarkAdopted).
  Catalog::Batch batch(catalog);
  Queue(&batch, fh.key, t);
  s = batch.Commit();
  if (!s.ok()) return Status::Errno(s.err(), "lazy copy-up of '" + what + "': " + s.message());
  CrashPoint("adopt-committed");
  if (out != nullptr) *out = *t.record;
  return Status::OK();
}

// A container whose write failed (a full volume set, an I/O error) is
// unusable from then on (its volume writer keeps the error), and the
// writer with it: the next archive gets a new one. The containers this
// writer started that no commit named go at once (DiscardUncommitted): on
// a full disk they are what fills it, and gc cannot run there.
Status Archiver::DropWriterLocked(const Status& s, const std::string& what) {
  Status d = writer_->DiscardUncommitted();
  if (!d.ok()) {
    std::fprintf(stderr, "overtier: archive: containers of a failed archive left to gc: %s\n",
                 d.ToString().c_str());
  }
  writer_.reset();
  return Status::Errno(s.err(), "archiving '" + what + "': " + s.message());
}

Archiver::Archiver(Store* store) : store_(store) {}
Archiver::~Archiver() = default;

Status Archiver::Close() {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (!writer_) return Status::OK();
  Catalog::Batch batch(store_->catalog());
  Status s = writer_->Finish(&batch);
  if (s.ok()) s = batch.Commit();
  writer_.reset();
  return s;
}

Status Archiver::Release(int fd, const std::string& what, uint64_t keep, MigrationRecord* out) {
  FileHandle fh;
  OVT_RETURN_IF_ERROR(GetFileHandle(fd, what, &fh));
  Busy busy(this, fh.key);
  if (!busy.taken())
    return Status::Errno(EBUSY, "'" + what + "': an archive or release is running");

  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat of '" + what + "'");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  Catalog* catalog = store_->catalog();
  std::optional<MigrationRecord> rec;
  OVT_RETURN_IF_ERROR(LoadRecord(catalog, fh.key, what, &rec));
  ReleaseCheck check;
  check.generation = fh.generation;
  check.file_size = size;
  check.copies_needed = store_->config().copies;
  check.keep = keep;
  if (rec && !rec->bfid.IsZero()) {
    FileRecord file;
    Status s = catalog->GetFile(rec->bfid, &file);
    if (s.ok()) {
      OVT_RETURN_IF_ERROR(ValidCopies(file, &check.valid_copies));
    } else if (s.err() != ENOENT) {
      return Status::Errno(s.err(), "archive of '" + what + "': " + s.message());
    }
  }
  Transition t;
  OVT_RETURN_IF_ERROR(Context(overtier::Release(rec, check, &t), what));
  if (ClampedNs(st.st_mtim) != rec->mtime_ns) {
    return Status::Errno(ESTALE, "'" + what + "' was modified since it was archived (mtime " +
                                     std::to_string(ClampedNs(st.st_mtim)) + ", archived " +
                                     std::to_string(rec->mtime_ns) + ")");
  }
  if (t.record == rec) {  // nothing more to release
    if (out != nullptr) *out = *rec;
    return Status::OK();
  }

  // What was resident and no longer is: the bytes to punch.
  ResidencyMap before, after;
  if (rec->flags & kMigReleased) {
    OVT_RETURN_IF_ERROR(Context(ResidencyMap::FromRecord(*rec, size, &before), what));
  } else {
    before = ResidencyMap::FullyResident(size);
  }
  OVT_RETURN_IF_ERROR(Context(ResidencyMap::FromRecord(*t.record, size, &after), what));
  std::vector<ByteRange> punch;
  for (const ByteRange& r : before.ranges()) {
    for (const ByteRange& m : after.Missing(r.offset, r.length)) punch.push_back(m);
  }

  // The file's own note of its archive, before any byte can be punched
  // (migrate/archive_mark.h): what keeps a lost catalog row from turning
  // the punched bytes into zeros.
  if (!punch.empty()) OVT_RETURN_IF_ERROR(SetArchiveMark(fd, t.record->bfid, what));
  CrashPoint("release-marked");
  // The catalog first: from here on the archive is the source of those bytes.
  t.record->atime_ns = ClampedNs(st.st_atim);
  Catalog::Batch batch(catalog);
  Queue(&batch, fh.key, t);
  Status s = batch.Commit();
  if (!s.ok()) {
    // Nothing punched: a mark this release set would only make a later
    // open take the file's own holes (a sparse file's) for the archive's.
    if (!punch.empty() && !(rec->flags & kMigReleased)) ClearArchiveMark(fd);
    return Status::Errno(s.err(), "releasing '" + what + "': " + s.message());
  }
  CrashPoint("release-committed");

  for (const ByteRange& r : punch) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(r.offset),
                  static_cast<off_t>(r.length)) != 0) {
      return Status::FromErrno("punching [" + std::to_string(r.offset) + ", " +
                               std::to_string(r.offset + r.length) + ") of '" + what + "'");
    }
  }
  CrashPoint("release-punched");
  if (fsync(fd) != 0) return Status::FromErrno("fsync of '" + what + "'");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (futimens(fd, times) != 0) return Status::FromErrno("futimens of '" + what + "'");
  if (out != nullptr) *out = *t.record;
  return Status::OK();
}

}  // namespace overtier
