// Archiver: copies an upper file into the store (archive) and drops its
// data from the upper file system (release), DMFS style.
//
// Archive, for a file open for reading (O_NOATIME is best: the archive is
// not a user access):
//   1. the file's handle and fstat (size, mtime, ctime, the user's times);
//   2. BeginArchive on its migration record (migration_state.h): refused if
//      another archive of it runs in this Archiver (EBUSY), or the file is
//      already archived (EALREADY), or has non-resident data;
//   3. the content through ContentWriter (chunks, dedup, `copies` copies);
//   4. fstat again: if size, mtime or ctime moved, or the caller's change
//      count (ArchiveFence) did, the file changed while being read and the archive
//      is abandoned (ESTALE). The count is what a daemon serving the file's
//      writers must give: size and timestamps miss a write that lands
//      during the copy. Timestamps are coarse (a clock tick of a few ms),
//      and with multigrain timestamps (Linux 6.13+) a change only gets a
//      finer one if somebody queried the previous one: a write whose
//      timestamp update came before our first fstat, and whose data landed
//      during the copy, leaves size, mtime and ctime as our first fstat saw
//      them (seen in fsx runs: the archive held half of a 25 KiB write,
//      and the release that followed punched the rest);
//   5. ContentWriter::Flush (containers fsynced) and one synced catalog
//      batch: volume and chunk rows, the `files` row, the migration row
//      (archived, generation, size, the user's atime/mtime in ns). Data
//      durable, then catalog: a crash in between leaves unreferenced chunks
//      for gc and the file resident.
//   6. the user's atime, if our reading moved it, is put back.
// The in-progress flag is kept in memory, not committed: one process writes
// the store at a time (write.lock), so the in-memory set is enough to keep
// a single archiver per file, and a crash leaves nothing to clean up.
//
// Release, for a file open for writing, keeping the first `keep` bytes:
//   1. the migration record must say archived (or released), with at least
//      the store's `copies` copies whose containers are not lost (ENODATA),
//      for this generation, size and mtime in ns (ESTALE: the file changed
//      behind our back, e.g. written without going through the mount);
//   2. the new record (released, residency [0, keep) ∩ what was resident)
//      is committed, synced, FIRST;
//   3. only then are the bytes that stopped being resident punched out
//      (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: st_size stays the
//      archived size), and the file fsynced;
//   4. the user's atime and mtime are put back (punching moves mtime), so
//      `ls -l` and `find -mtime` see nothing.
// A crash between 2 and 3 leaves a file whose "non-resident" bytes still
// hold the archive's data, which a restore rewrites identically: no byte is
// ever only in a place the catalog does not point to.
//
// Thread-safe: calls for different files run in parallel; two calls for
// the same file do not (EBUSY).
#ifndef OVERTIER_MIGRATE_ARCHIVER_H_
#define OVERTIER_MIGRATE_ARCHIVER_H_

#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "migrate/file_handle.h"
#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/store.h"

namespace overtier {

// Nanoseconds since the epoch, wall clock.
int64_t NowNs();
// EOVERFLOW, naming `what`, if the file's atime or mtime lies outside what
// a migration record holds (1677-09-21 to 2262-04-11): such a file is not
// archived rather than have its times changed by a release and restore.
Status CheckRecordTimes(const struct stat& st, const std::string& what);

class ContentWriter;

// How the writers of a file keep out of an archive's way (both
// optional).
struct ArchiveFence {
  // Held from the check that the file did not change while it was
  // copied until the record is committed, so that a writer holding it
  // too either changes the file before the check (the archive is
  // abandoned) or finds the record after the commit (and marks it
  // dirty).
  std::mutex* commit_mu = nullptr;
  // Bumped by every change of the file's data those writers make (read
  // at the first fstat, compared at the check).
  const std::atomic<uint64_t>* changes = nullptr;
};

// Archives go through one ContentWriter for the Archiver's lifetime, so that
// many files pack into one container (rather than a container per file);
// Close() seals what is open. An Archiver destroyed without Close() leaves
// its container open, as a crash would: gc seals it.
class Archiver {
 public:
  explicit Archiver(Store* store);
  ~Archiver();
  Archiver(const Archiver&) = delete;
  Archiver& operator=(const Archiver&) = delete;

  // Archives the regular file open as fd; `what` names it in messages.
  // *out (optional): the committed migration record.
  Status Archive(int fd, const std::string& what, MigrationRecord* out = nullptr,
                 const ArchiveFence& fence = {});

  // Releases the archived file open (writable) as fd, keeping `keep` bytes
  // at its start resident. *out (optional): the record now committed.
  Status Release(int fd, const std::string& what, uint64_t keep, MigrationRecord* out = nullptr);

  // Lazy copy-up: the regular upper file open as fd (size = the content's,
  // no data yet) takes the store's content `bfid` (an image file's) as its
  // archive, released with nothing resident and restored on demand only
  // (migration_state.h, Adopt). Nothing is copied; one synced catalog
  // commit. EINVAL if the content is not of the file's size.
  Status Adopt(int fd, const Bfid& bfid, const std::string& what, MigrationRecord* out = nullptr);

  // How many copies of the archive `bfid` are readable as far as the
  // catalog knows: every extent in a container that is not lost.
  Status ValidCopies(const FileRecord& file, uint32_t* valid);

  // Seals the containers written so far (their volumes rows committed as
  // sealed). Call before closing the store; later archives start new ones.
  Status Close();

 private:
  // Marks the handle busy for the duration of an operation.
  class Busy;
  // After a failed write, flush or commit of an archive (write_mu_ held):
  // discards writer_ and the containers no commit named; returns s,
  // naming `what`.
  Status DropWriterLocked(const Status& s, const std::string& what);

  Store* store_;
  std::mutex write_mu_;  // serializes archives: one ContentWriter
  std::unique_ptr<ContentWriter> writer_;
  std::mutex mu_;
  std::set<std::string> busy_;  // handle keys with an operation running
};

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_ARCHIVER_H_
