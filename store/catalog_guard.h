// Read-only opens of a catalog beside its writer.
//
// A mount opens the catalog read-only while an import may be writing it.
// RocksDB's read-only open reads CURRENT, then the MANIFEST it names, then
// every WAL and table file that MANIFEST lists; a writer flushing or
// compacting meanwhile deletes files the open is about to read, and the
// open fails with "No such file". Retrying is not enough: under load (a
// slow disk, a sanitizer build) a writer that flushes often can make every
// attempt lose the race.
//
// So the two coordinate through one lock file in the catalog directory,
// `OVERTIER-READERS.lock`: a read-only open holds a shared flock on it
// while RocksDB opens (only that long: with max_open_files = -1 the opened
// database holds every table file open, and has replayed the WALs into
// memory, so later deletions cannot hurt it), and the writer's file system
// takes the exclusive lock around every file deletion. A deletion waits at
// most for the opens in progress.
//
// Catalogs written by an overtier without this file: readers fall back to
// retrying (Catalog::OpenDb); the first writable open creates the file.
#ifndef OVERTIER_STORE_CATALOG_GUARD_H_
#define OVERTIER_STORE_CATALOG_GUARD_H_

#include <memory>
#include <string>

#include "overtier/status.h"

namespace rocksdb {
class Env;
}

namespace overtier {

inline constexpr char kReadersLockName[] = "OVERTIER-READERS.lock";

// The Env a writer of the catalog in `dir` opens it with: the default one,
// except that deleting a file waits for read-only opens in progress.
// Creates the lock file if missing.
Status NewCatalogWriterEnv(const std::string& dir, std::unique_ptr<rocksdb::Env>* out);

// Held for the duration of a read-only open. `guarded()` is false when the
// catalog has no lock file (written by an older overtier), or it cannot be
// locked: the caller then relies on retrying.
class CatalogReadGuard {
 public:
  explicit CatalogReadGuard(const std::string& dir);
  ~CatalogReadGuard();
  CatalogReadGuard(const CatalogReadGuard&) = delete;
  CatalogReadGuard& operator=(const CatalogReadGuard&) = delete;
  bool guarded() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace overtier

#endif  // OVERTIER_STORE_CATALOG_GUARD_H_
