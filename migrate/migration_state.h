// The per-file state machine of the migration tier (DMFS semantics), as pure
// functions from a migration record to the next one.
//
// A file's state is derived from its `migration` record (catalog_records.h):
//
//   state     flags                                residency
//   resident  no record, or no kMigArchived,       everything
//             kMigReleased nor kMigLost            (the residency fields only
//                                                  count with kMigReleased)
//   archived  kMigArchived                         everything (dual state)
//   released  kMigArchived | kMigReleased          some bytes only in the archive
//   dirty     kMigDirty | kMigReleased             modified since archived; the
//                                                  archive is no longer a copy of
//                                                  the file, only the source of
//                                                  the still non-resident bytes
//   lost      kMigLost (| kMigReleased ...)        non-resident bytes have no
//                                                  readable copy: reads give EIO
//
// kMigArchiveInProgress and kMigRestoreInProgress mark an agent at work; they
// combine with the states above (archiving a resident file; restoring a
// released or dirty one).
//
// Rules, and the decisions taken where DMFS leaves a choice:
//  - One archiver at a time (EBUSY). Only a fully resident file can be
//    archived: the archive is made from the upper file. A released or dirty
//    file must be restored first (EBUSY), a lost one cannot be (EIO). An
//    archived or released file is already archived (EALREADY).
//  - A restore in progress therefore blocks archiving (the file is not
//    fully resident) and releasing (EBUSY: the restorer is writing the
//    bytes a release would punch).
//  - A write or truncate while an archive is in progress abandons the
//    archive (the flag is cleared): FinishArchive then refuses with ESTALE,
//    as DMFS's "set archived" fails after a modification.
//  - Release needs a valid archive (kMigArchived: not dirty, not lost) with
//    at least the required number of readable copies (ENODATA otherwise)
//    and a file of the archived size and generation (ESTALE).
//  - Modifying an archived file makes it resident: the archive is dropped
//    (Transition::freed). Modifying a released one makes it dirty; the
//    archive stays until no byte depends on it any more, then it is dropped
//    too. A truncate that shrinks drops the bytes past the new size from the
//    residency map, so nothing beyond it is ever restored.
//  - A record with no flags left is deleted: no record means resident.
//
// Refusals are Status errors with the errno above and a message naming the
// state; the record is then unchanged.
#ifndef OVERTIER_MIGRATE_MIGRATION_STATE_H_
#define OVERTIER_MIGRATE_MIGRATION_STATE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "migrate/residency.h"
#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/coding.h"

namespace overtier {

enum class MigState : uint8_t { kResident, kArchived, kReleased, kDirty, kLost };

// "resident", "archived", "released", "dirty", "lost".
const char* MigStateName(MigState s);
// The first column of `overtier ls -l`: '-', 'a', 'A', '-', '!'.
char MigStateFlag(MigState s);

// The state of a file with this record; std::nullopt: no record.
MigState StateOf(const std::optional<MigrationRecord>& record);

// The outcome of a transition: the record to write, or none (delete the
// row: the file is plainly resident), and an archive this file no longer
// references (zero if none), which garbage collection may now reclaim.
struct Transition {
  std::optional<MigrationRecord> record;
  Bfid freed;
};

// What an archive produced, for FinishArchive.
struct ArchiveInfo {
  Bfid bfid;                   // the `files` row holding the content
  uint64_t size = 0;           // bytes archived (the file's size)
  uint32_t copies = 0;         // complete copies written (FileRecord::copies.size())
  uint32_t copies_needed = 0;  // the store's `copies`
  int64_t atime_ns = 0;        // the user's times, as fstat showed them before
  int64_t mtime_ns = 0;
  int64_t now_ns = 0;  // archive time
};

// ---- archiving

// Marks an archive in progress of the file with inode generation
// `generation` and size `size`. `record`: the current record, if any.
Status BeginArchive(const std::optional<MigrationRecord>& record, uint64_t generation,
                    uint64_t size, Transition* out);
// The archive is durable: the file is archived (fully resident, dual state).
// ESTALE if no archive is in progress (never begun, or abandoned because
// the file changed meanwhile: the two look the same), EIO if fewer copies
// than needed were written.
Status FinishArchive(const std::optional<MigrationRecord>& record, const ArchiveInfo& info,
                     Transition* out);
// Gives up an archive in progress (failure, cancellation).
Status AbortArchive(const std::optional<MigrationRecord>& record, Transition* out);

// ---- lazy copy-up

// What a lazy copy-up adopts: content already in the store (an image file)
// that becomes the archive of a new, empty upper file of the same size.
struct AdoptInfo {
  Bfid bfid;                // the image file's `files` row
  uint64_t size = 0;        // its size, and the upper file's
  uint64_t generation = 0;  // of the upper file
  int64_t atime_ns = 0;     // the user's times of the upper file
  int64_t mtime_ns = 0;
  int64_t now_ns = 0;
};

// The upper file is released with nothing resident and the adopted content
// as its archive, restored on demand only (kMigOnDemand). Whatever record
// the upper file had is replaced (it can only be an earlier adoption of
// the same content that a crash interrupted before the copy-up finished).
Status Adopt(const std::optional<MigrationRecord>& record, const AdoptInfo& info, Transition* out);

// ---- releasing

struct ReleaseCheck {
  uint64_t generation = 0;     // of the upper file now
  uint64_t file_size = 0;      // st_size now
  uint32_t valid_copies = 0;   // readable copies of the archive
  uint32_t copies_needed = 0;  // the store's `copies`
  uint64_t keep = 0;           // bytes at the start to keep resident
};

// Makes everything past `keep` non-resident (what is already non-resident
// stays so). Keeping the whole file leaves it archived (out->record equals
// the input). The caller punches the bytes that were resident and no longer
// are, only after the new record is committed.
Status Release(const std::optional<MigrationRecord>& record, const ReleaseCheck& check,
               Transition* out);

// ---- user modifications (through the mount)

// A write of [offset, offset + length) to a file whose size was `size`.
Status RecordWrite(const std::optional<MigrationRecord>& record, uint64_t size, uint64_t offset,
                   uint64_t length, Transition* out);
// A truncate from `old_size` to `new_size`.
Status RecordTruncate(const std::optional<MigrationRecord>& record, uint64_t old_size,
                      uint64_t new_size, Transition* out);

// ---- restoring

// Marks a restore in progress. EALREADY if nothing is non-resident (file of
// `size` bytes), EBUSY if a restore or an archive is already in progress,
// EIO if the file is lost.
Status BeginRestore(const std::optional<MigrationRecord>& record, uint64_t size, Transition* out);
// [offset, offset + length) is back in the upper file, durably (DMFS's
// "move the barrier"). EINVAL unless a restore is in progress.
Status RestoreProgress(const std::optional<MigrationRecord>& record, uint64_t size, uint64_t offset,
                       uint64_t length, Transition* out);
// The restore ends (done, failed or stopped). If every byte is resident, a
// released file is archived again (dual state) and a dirty one resident
// (its archive freed); otherwise the file stays released or dirty and a
// later access restores the rest. EINVAL unless a restore is in progress.
Status FinishRestore(const std::optional<MigrationRecord>& record, uint64_t size, int64_t now_ns,
                     Transition* out);

// ---- damage, identity, lifetime

// No readable copy is left for the non-resident bytes. A fully resident
// file simply loses its archive (resident again, to be re-archived).
Status MarkLost(const std::optional<MigrationRecord>& record, uint64_t size, Transition* out);
// The upper file behind the record's key has inode generation `generation`:
// if it differs from the record's, the file was replaced behind our back and
// the record is invalidated (deleted, archive freed); *invalidated says so.
void CheckGeneration(const std::optional<MigrationRecord>& record, uint64_t generation,
                     Transition* out, bool* invalidated);
// The last link of the file is gone: the record goes, the archive is freed.
void Unlink(const std::optional<MigrationRecord>& record, Transition* out);

// ---- what users see

// The value of the xattr user.overtier.state, e.g. "resident",
// "archived size=1048576", "released barrier=4096 size=1048576",
// "dirty resident=[0,4096) [8192,12288) size=20000", with " archiving" /
// " restoring" appended while an agent works. `size`: the file's size.
std::string StateString(const std::optional<MigrationRecord>& record, uint64_t size);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_MIGRATION_STATE_H_
