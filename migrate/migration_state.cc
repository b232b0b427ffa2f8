#include "migrate/migration_state.h"

namespace overtier {

namespace {

using OptRecord = std::optional<MigrationRecord>;

bool Has(const MigrationRecord& r, uint32_t flag) { return (r.flags & flag) != 0; }

// The output for a record that keeps existing unless it has no flags left,
// in which case the row goes and its archive (if any) is freed.
void Emit(MigrationRecord r, Transition* out) {
  out->freed = Bfid();
  if (r.flags == 0) {
    out->freed = r.bfid;
    out->record.reset();
    return;
  }
  out->record = std::move(r);
}

// The file no longer needs its archive at all: resident, no record, unless
// an agent flag must survive.
void DropArchive(MigrationRecord r, uint64_t size, Transition* out) {
  Bfid old = r.bfid;
  r.flags &= kMigArchiveInProgress | kMigRestoreInProgress;
  r.bfid = Bfid();
  r.archive_size = 0;
  ResidencyMap::FullyResident(size).ToRecord(&r);
  Emit(std::move(r), out);
  out->freed = old;
}

// The residency of a file with record r and size `size`. Only a released
// (or dirty, or lost) file has non-resident bytes: without kMigReleased the
// record's residency fields are not consulted, so a stale barrier can never
// make a resident file look released.
Status MapOf(const MigrationRecord& r, uint64_t size, ResidencyMap* m) {
  if (!Has(r, kMigReleased)) {
    *m = ResidencyMap::FullyResident(size);
    return Status::OK();
  }
  return ResidencyMap::FromRecord(r, size, m);
}

Status Refuse(int err, const std::string& what) { return Status::Errno(err, what); }

std::string Describe(const OptRecord& record, uint64_t size) {
  return "file in state " + StateString(record, size);
}

// A user modification (write or truncate) applied to the residency map `m`
// (already updated by the caller), for a file whose record is `r`.
void AfterModification(MigrationRecord r, const ResidencyMap& m, Transition* out) {
  // Whatever archive was being made is of content that no longer exists.
  r.flags &= ~kMigArchiveInProgress;
  if (m.fully_resident()) {
    // Nothing depends on the archive any more (an archived file, or a
    // released one whose remaining bytes were all overwritten or cut off).
    if (Has(r, kMigArchived | kMigReleased | kMigDirty | kMigLost) || !r.bfid.IsZero()) {
      DropArchive(std::move(r), m.size(), out);
      return;
    }
    ResidencyMap::FullyResident(m.size()).ToRecord(&r);
    Emit(std::move(r), out);
    return;
  }
  // Some bytes still come from the archive: dirty, the archive kept as
  // their source only.
  r.flags &= ~kMigArchived;
  r.flags |= kMigDirty | kMigReleased;
  m.ToRecord(&r);
  Emit(std::move(r), out);
}

}  // namespace

const char* MigStateName(MigState s) {
  switch (s) {
    case MigState::kResident:
      return "resident";
    case MigState::kArchived:
      return "archived";
    case MigState::kReleased:
      return "released";
    case MigState::kDirty:
      return "dirty";
    case MigState::kLost:
      return "lost";
  }
  return "unknown";
}

char MigStateFlag(MigState s) {
  switch (s) {
    case MigState::kArchived:
      return 'a';
    case MigState::kReleased:
      return 'A';
    case MigState::kLost:
      return '!';
    case MigState::kResident:
    case MigState::kDirty:
      break;
  }
  return '-';
}

MigState StateOf(const OptRecord& record) {
  if (!record) return MigState::kResident;
  const MigrationRecord& r = *record;
  if (Has(r, kMigLost)) return MigState::kLost;
  if (Has(r, kMigDirty)) return MigState::kDirty;
  if (Has(r, kMigArchived)) return Has(r, kMigReleased) ? MigState::kReleased : MigState::kArchived;
  return MigState::kResident;
}

// ---------------------------------------------------------------------------
// archiving
// ---------------------------------------------------------------------------

Status BeginArchive(const OptRecord& record, uint64_t generation, uint64_t size, Transition* out) {
  MigrationRecord r;
  if (record) {
    r = *record;
    if (Has(r, kMigArchiveInProgress)) return Refuse(EBUSY, "an archive is already in progress");
    switch (StateOf(record)) {
      case MigState::kArchived:
      case MigState::kReleased:
        return Refuse(EALREADY, "already archived");
      case MigState::kLost:
        return Refuse(EIO, "file is lost: its non-resident data has no readable copy");
      case MigState::kDirty:
        return Refuse(EBUSY, "file has non-resident data; restore it before archiving");
      case MigState::kResident:
        break;
    }
    if (Has(r, kMigRestoreInProgress | kMigReleased)) {
      return Refuse(EBUSY, "file has non-resident data; restore it before archiving");
    }
  }
  r.flags |= kMigArchiveInProgress;
  r.generation = generation;
  ResidencyMap::FullyResident(size).ToRecord(&r);
  Emit(std::move(r), out);
  return Status::OK();
}

Status FinishArchive(const OptRecord& record, const ArchiveInfo& info, Transition* out) {
  if (!record || !Has(*record, kMigArchiveInProgress)) {
    return Refuse(ESTALE,
                  "no archive in progress (never begun, or abandoned because the file changed)");
  }
  if (info.bfid.IsZero()) return Refuse(EINVAL, "archive without a bfid");
  if (info.copies < info.copies_needed) {
    return Refuse(EIO, "archive has " + std::to_string(info.copies) + " copies, " +
                           std::to_string(info.copies_needed) + " needed");
  }
  MigrationRecord r = *record;
  r.flags = kMigArchived | (r.flags & kMigRestoreInProgress);
  r.bfid = info.bfid;
  r.archive_size = info.size;
  r.atime_ns = info.atime_ns;
  r.mtime_ns = info.mtime_ns;
  r.archive_time_ns = info.now_ns;
  ResidencyMap::FullyResident(info.size).ToRecord(&r);
  Emit(std::move(r), out);
  return Status::OK();
}

Status AbortArchive(const OptRecord& record, Transition* out) {
  if (!record || !Has(*record, kMigArchiveInProgress)) {
    return Refuse(EINVAL, "no archive in progress");
  }
  MigrationRecord r = *record;
  r.flags &= ~kMigArchiveInProgress;
  Emit(std::move(r), out);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// lazy copy-up
// ---------------------------------------------------------------------------

Status Adopt(const OptRecord& record, const AdoptInfo& info, Transition* out) {
  if (info.bfid.IsZero()) return Refuse(EINVAL, "adopting content without a bfid");
  if (info.size == 0) return Refuse(EINVAL, "adopting empty content");
  MigrationRecord r;
  r.flags = kMigArchived | kMigReleased | kMigOnDemand;
  r.generation = info.generation;
  r.archive_size = info.size;
  r.bfid = info.bfid;
  r.atime_ns = info.atime_ns;
  r.mtime_ns = info.mtime_ns;
  r.archive_time_ns = info.now_ns;
  ResidencyMap::WithBarrier(info.size, 0).ToRecord(&r);
  Emit(std::move(r), out);
  // A replaced record's archive is no longer referenced by this file.
  if (record && !(record->bfid == info.bfid)) out->freed = record->bfid;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// releasing
// ---------------------------------------------------------------------------

Status Release(const OptRecord& record, const ReleaseCheck& check, Transition* out) {
  MigState state = StateOf(record);
  if (state != MigState::kArchived && state != MigState::kReleased) {
    return Refuse(ENODATA,
                  "cannot release a " + Describe(record, check.file_size) + ": no valid archive");
  }
  const MigrationRecord& cur = *record;
  if (Has(cur, kMigRestoreInProgress)) return Refuse(EBUSY, "a restore is in progress");
  if (cur.generation != check.generation) {
    return Refuse(ESTALE, "file generation " + std::to_string(check.generation) +
                              " is not the archived one (" + std::to_string(cur.generation) + ")");
  }
  if (cur.archive_size != check.file_size) {
    return Refuse(ESTALE, "file size " + std::to_string(check.file_size) +
                              " is not the archived size " + std::to_string(cur.archive_size));
  }
  if (check.valid_copies < check.copies_needed) {
    return Refuse(ENODATA, "archive has " + std::to_string(check.valid_copies) +
                               " valid copies, release needs " +
                               std::to_string(check.copies_needed));
  }
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(cur, check.file_size, &m));
  ResidencyMap before = m;
  m.KeepPrefix(check.keep);
  MigrationRecord r = cur;
  if (!(m == before)) {
    r.flags |= kMigReleased;
    m.ToRecord(&r);
  }
  Emit(std::move(r), out);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// user modifications
// ---------------------------------------------------------------------------

Status RecordWrite(const OptRecord& record, uint64_t size, uint64_t offset, uint64_t length,
                   Transition* out) {
  if (!record || length == 0) {
    out->record = record;
    out->freed = Bfid();
    return Status::OK();
  }
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(*record, size, &m));
  m.RecordWrite(offset, length);
  AfterModification(*record, m, out);
  return Status::OK();
}

Status RecordTruncate(const OptRecord& record, uint64_t old_size, uint64_t new_size,
                      Transition* out) {
  if (!record || old_size == new_size) {
    // Same size: the content is what it was, the archive still holds it.
    out->record = record;
    out->freed = Bfid();
    return Status::OK();
  }
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(*record, old_size, &m));
  m.Truncate(new_size);
  AfterModification(*record, m, out);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// restoring
// ---------------------------------------------------------------------------

Status BeginRestore(const OptRecord& record, uint64_t size, Transition* out) {
  MigState state = StateOf(record);
  if (state == MigState::kLost) {
    return Refuse(EIO, "file is lost: its non-resident data has no readable copy");
  }
  if (state != MigState::kReleased && state != MigState::kDirty) {
    return Refuse(EALREADY, "nothing to restore: " + Describe(record, size));
  }
  const MigrationRecord& cur = *record;
  if (Has(cur, kMigRestoreInProgress)) return Refuse(EBUSY, "a restore is already in progress");
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(cur, size, &m));
  if (m.fully_resident()) return Refuse(EALREADY, "nothing to restore: every byte is resident");
  MigrationRecord r = cur;
  r.flags |= kMigRestoreInProgress;
  Emit(std::move(r), out);
  return Status::OK();
}

Status RestoreProgress(const OptRecord& record, uint64_t size, uint64_t offset, uint64_t length,
                       Transition* out) {
  if (!record || !Has(*record, kMigRestoreInProgress)) {
    return Refuse(EINVAL, "no restore in progress");
  }
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(*record, size, &m));
  m.MarkResident(offset, length);
  MigrationRecord r = *record;
  m.ToRecord(&r);
  Emit(std::move(r), out);
  return Status::OK();
}

Status FinishRestore(const OptRecord& record, uint64_t size, int64_t now_ns, Transition* out) {
  if (!record || !Has(*record, kMigRestoreInProgress)) {
    return Refuse(EINVAL, "no restore in progress");
  }
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(*record, size, &m));
  MigrationRecord r = *record;
  r.flags &= ~kMigRestoreInProgress;
  r.restore_time_ns = now_ns;
  if (m.fully_resident()) {
    if (Has(r, kMigDirty) || Has(r, kMigLost)) {
      DropArchive(std::move(r), size, out);
      return Status::OK();
    }
    r.flags &= ~kMigReleased;  // archived again: both copies
    ResidencyMap::FullyResident(size).ToRecord(&r);
  } else {
    m.ToRecord(&r);
  }
  Emit(std::move(r), out);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// damage, identity, lifetime
// ---------------------------------------------------------------------------

Status MarkLost(const OptRecord& record, uint64_t size, Transition* out) {
  if (!record) return Refuse(EINVAL, "no archive to lose");
  ResidencyMap m;
  OVT_RETURN_IF_ERROR(MapOf(*record, size, &m));
  if (m.fully_resident()) {
    // Every byte is on disk: only the archive is gone.
    DropArchive(*record, size, out);
    return Status::OK();
  }
  MigrationRecord r = *record;
  r.flags &= ~(kMigArchived | kMigArchiveInProgress);
  r.flags |= kMigLost | kMigReleased;
  Emit(std::move(r), out);
  return Status::OK();
}

void CheckGeneration(const OptRecord& record, uint64_t generation, Transition* out,
                     bool* invalidated) {
  *invalidated = record && record->generation != generation;
  if (*invalidated) {
    Unlink(record, out);
  } else {
    out->record = record;
    out->freed = Bfid();
  }
}

void Unlink(const OptRecord& record, Transition* out) {
  out->record.reset();
  out->freed = record ? record->bfid : Bfid();
}

// ---------------------------------------------------------------------------
// what users see
// ---------------------------------------------------------------------------

std::string StateString(const OptRecord& record, uint64_t size) {
  MigState state = StateOf(record);
  std::string s = MigStateName(state);
  switch (state) {
    case MigState::kResident:
      break;
    case MigState::kArchived:
      s += " size=" + std::to_string(size);
      break;
    case MigState::kReleased:
    case MigState::kDirty:
    case MigState::kLost: {
      ResidencyMap m;
      uint64_t b = 0;
      if (!MapOf(*record, size, &m).ok()) {
        s += " residency=damaged";
      } else if (m.barrier(&b)) {
        s += " barrier=" + std::to_string(b);
      } else {
        s += " resident=" + m.DescribeRanges();
      }
      s += " size=" + std::to_string(size);
      break;
    }
  }
  if (record && Has(*record, kMigArchiveInProgress)) s += " archiving";
  if (record && Has(*record, kMigRestoreInProgress)) s += " restoring";
  return s;
}

}  // namespace overtier
