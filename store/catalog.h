// The store's catalog: a RocksDB database, one column family per kind of
// record (catalog_records.h), holding everything that says where data is.
//
//   STORE/catalog/   this database
//
// Opening is strict. Create() is the only way a catalog comes into being, and
// it refuses to write over anything; Open() refuses a missing catalog
// (NotFound), one written by a newer overtier (ENOTSUP, naming both format
// versions), one with missing or unexpected column families, and one RocksDB
// cannot read (EIO, with RocksDB's reason). A refused catalog is left exactly
// as it was: the checks run on a read-only open before anything may write.
//
// Writes go through Catalog::Batch, atomic across families, and synced to
// the WAL by default: the design orders "vv data durable -> catalog commit ->
// release the upper copy", and the middle step is only a step if it survives
// a power failure.
//
// Reads see a consistent state: a point read sees all of a committed batch
// or none of it, and a scan runs on one RocksDB snapshot.
//
// A Catalog is safe to use from many threads; a Batch belongs to one.
#ifndef OVERTIER_STORE_CATALOG_H_
#define OVERTIER_STORE_CATALOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/coding.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class Statistics;
class WriteBatch;
}  // namespace rocksdb

namespace overtier {

// Whether a commit waits for the WAL to reach the disk.
enum class Durability {
  kSync,  // fdatasync of the WAL before Commit returns (the default)
  // Written to the WAL but not synced: survives the process dying, not the
  // machine. For work that is redone anyway after a crash.
  kNoSync,
};

// Counters handed out by Catalog::AllocateIds.
enum class IdSpace : uint8_t { kImage = 0, kVolume = 1, kJob = 2 };

struct CatalogOptions {
  // Open without the write lock (fsck, listing while a daemon runs). Every
  // write then fails with EROFS.
  bool read_only = false;
  // Keep RocksDB statistics (small cost on every operation), for
  // Catalog::WalSyncs.
  bool statistics = false;
  // How often a read-only open that lost a race with a writer deleting
  // files is tried (catalog_guard.h). Tests set 1 to prove the guard.
  int open_attempts = 200;
  // A writer writes its memtables out when it closes, so the next open has
  // no WAL to replay (a mount right after an import, a remount after a
  // migration session). The flush runs on the catalog's own pool
  // (thread_pools_env.h), so a forked daemon can wait for it.
  bool flush_on_close = false;
  // Skip the read-only probe that judges a catalog before a writable open
  // (Catalog::Open): for a process that opened and judged this catalog
  // already (a mount's migration service, which opens it for writing again
  // after every idle second). The writable open is still judged, after
  // the fact; the probe only spares a refused catalog RocksDB's
  // housekeeping writes (a new MANIFEST, a new LOG).
  bool judged = false;
  // RocksDB's LOG at warning level: no dump of every option of every
  // family (some 1000 lines) at each open. For writers that open often,
  // whose INFO lines would push the warnings out of the few LOG files
  // kept.
  bool quiet_log = false;
};

class Catalog {
 public:
  // Column family names, as stored. "default" holds the meta entry and the id
  // counters.
  static constexpr std::string_view kDefault = "default";
  static constexpr std::string_view kImages = "images";
  static constexpr std::string_view kNodes = "nodes";
  static constexpr std::string_view kDirents = "dirents";
  static constexpr std::string_view kFiles = "files";
  static constexpr std::string_view kVolumes = "volumes";
  static constexpr std::string_view kChunks = "chunks";
  static constexpr std::string_view kMigration = "migration";
  static constexpr std::string_view kJobs = "jobs";
  // All of them, default first.
  static const std::vector<std::string>& ColumnFamilyNames();

  // Keys of the default family.
  static constexpr std::string_view kMetaKey = "meta";
  // The next id of each IdSpace, fixed64 each.
  static constexpr std::string_view kNextImageIdKey = "next-image-id";
  static constexpr std::string_view kNextVolumeIdKey = "next-volume-id";
  static constexpr std::string_view kNextJobIdKey = "next-job-id";

  // Creates a new, empty catalog at `path` (which must not exist, or be an
  // empty directory) and opens it. The database is built in a temporary
  // sibling directory and renamed into place, so a crash never leaves a
  // half-made catalog at `path`. EEXIST if something is there already.
  static Status Create(const std::string& path, const StoreId& store_id,
                       std::unique_ptr<Catalog>* out);

  // Opens an existing catalog. NotFound if `path` does not exist or holds no
  // database; never creates one.
  static Status Open(const std::string& path, const CatalogOptions& options,
                     std::unique_ptr<Catalog>* out);
  static Status Open(const std::string& path, std::unique_ptr<Catalog>* out) {
    return Open(path, CatalogOptions(), out);
  }

  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;
  // Closes the database. Committed batches are already in the WAL.
  ~Catalog();

  const std::string& path() const { return path_; }
  const StoreId& store_id() const { return store_id_; }
  bool read_only() const { return read_only_; }
  // Whether a commit of this Catalog failed. Such a batch may still be in
  // the WAL (appended, then the sync failed) and come back at the next
  // open, so whatever it named must not be deleted as uncommitted.
  bool write_failed() const { return write_failed_.load(std::memory_order_acquire); }

  // ---- point reads: ENOENT (with no message, cheaply) when absent;
  // Corruption naming the family and key when the stored value is bad.

  Status GetImage(std::string_view name, ImageRecord* out) const;
  // Images are keyed by name; this scans them (there are few).
  Status FindImageById(uint64_t image_id, std::string* name, ImageRecord* out) const;
  Status GetNode(uint64_t image, uint64_t ino, NodeRecord* out) const;
  Status GetDirent(uint64_t image, uint64_t parent, std::string_view name, DirentRecord* out) const;
  Status GetFile(const Bfid& bfid, FileRecord* out) const;
  Status GetVolume(uint64_t vv_id, VolumeRecord* out) const;
  Status GetChunk(const Digest128& digest, ChunkRecord* out) const;
  Status GetMigration(std::string_view handle, MigrationRecord* out) const;
  Status GetJob(uint64_t job_id, JobRecord* out) const;

  // ---- scans, in key order. The callback returns false to stop early.
  // A scan resumes strictly after `after` (its key part); the empty name,
  // the zero id or the zero bfid, which are never keys, start from the
  // beginning.

  using ImageFn = std::function<bool(std::string_view name, const ImageRecord&)>;
  using NodeFn = std::function<bool(uint64_t ino, const NodeRecord&)>;
  using DirentFn = std::function<bool(std::string_view name, const DirentRecord&)>;
  using FileFn = std::function<bool(const Bfid&, const FileRecord&)>;
  using VolumeFn = std::function<bool(uint64_t vv_id, const VolumeRecord&)>;
  using ChunkFn = std::function<bool(const Digest128&, const ChunkRecord&)>;
  using MigrationFn = std::function<bool(std::string_view handle, const MigrationRecord&)>;
  using JobFn = std::function<bool(uint64_t job_id, const JobRecord&)>;

  Status ScanImages(std::string_view after, const ImageFn& fn) const;
  // The nodes of one image, by inode number.
  Status ScanNodes(uint64_t image, uint64_t after_ino, const NodeFn& fn) const;
  // readdir: the entries of one directory in name (byte) order. A FUSE
  // readdir that stopped at name X continues with after = X, which works
  // even if X was removed meanwhile.
  Status ReadDir(uint64_t image, uint64_t parent, std::string_view after, const DirentFn& fn) const;
  Status ScanFiles(const Bfid& after, const FileFn& fn) const;
  Status ScanVolumes(uint64_t after_vv, const VolumeFn& fn) const;
  Status ScanChunks(const Digest128& after, const ChunkFn& fn) const;
  // The volumes in one state (a filtered scan: there is one volume per
  // 256 MiB of archive, few enough to read them all).
  Status ScanVolumesInState(VolumeState state, const VolumeFn& fn) const;
  Status ScanMigration(std::string_view after_handle, const MigrationFn& fn) const;
  Status ScanJobs(uint64_t after_job, const JobFn& fn) const;

  // ---- ids

  // Reserves `count` consecutive ids of a space, never handed out before
  // (ids start at 1) and never again, even after a crash: the counter is
  // committed (synced by default) before the ids are returned. Volume ids
  // name files on disk, so they must not be reused; job ids could use
  // kNoSync since a job only exists once its own synced commit follows.
  Status AllocateIds(IdSpace space, uint64_t count, uint64_t* first,
                     Durability durability = Durability::kSync);

  // The next id AllocateIds would hand out in `space` (as of the open, plus
  // this process' allocations): every id ever allocated is below it. For
  // scans over all ids (gc, fsck) that must not allocate.
  uint64_t NextId(IdSpace space) const;

  // Number of WAL syncs RocksDB has done (0 unless options.statistics).
  uint64_t WalSyncs() const;

  class Batch;

 private:
  Catalog() = default;

  static Status OpenDb(const std::string& path, bool read_only, const CatalogOptions& options,
                       std::unique_ptr<Catalog>* out);
  Status CheckContents();    // meta, families, counters
  void CompactSmallFiles();  // see catalog.cc
  void DropIdleLogs();       // see catalog.cc
  Status Get(int cf, std::string_view key, std::string* value) const;
  // Iterates one family over the keys that start with `prefix` and sort
  // after prefix + `after`; fn sets *more = false to stop.
  Status Scan(int cf, std::string_view prefix, std::string_view after,
              const std::function<Status(std::string_view key, std::string_view value, bool* more)>&
                  fn) const;
  Status Write(rocksdb::WriteBatch* batch, Durability durability);
  // "catalog 'PATH': " + what.
  std::string Context(std::string_view what) const;
  // "nodes (image 3, inode 42)": a key as people read it, for messages.
  static std::string DescribeKey(int cf, std::string_view key);
  template <typename R>
  Status DecodeAt(int cf, std::string_view key, std::string_view value, R* out) const;

  std::string path_;
  StoreId store_id_;
  bool read_only_ = false;
  bool flush_on_close_ = false;
  std::atomic<bool> write_failed_{false};
  // A writer's Env (catalog_guard.h); outlives db_ (closed in ~Catalog).
  std::unique_ptr<rocksdb::Env> env_;
  rocksdb::DB* db_ = nullptr;
  // Every family the database has, as opened, and their names; handles_ has
  // ours in ColumnFamilyNames() order once CheckContents has passed.
  std::vector<rocksdb::ColumnFamilyHandle*> opened_;
  std::vector<std::string> opened_names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::shared_ptr<rocksdb::Statistics> stats_;
  mutable std::mutex id_mu_;  // serializes AllocateIds and NextId
  uint64_t next_id_[3] = {0, 0, 0};
};

// An atomic group of writes across families. Puts check their records and
// keys; the first invalid one is remembered and Commit() returns it (as
// InvalidArgument) without writing anything, so a caller can queue a whole
// change and check once. After Commit the batch is empty and reusable.
//
//   Catalog::Batch b(catalog);
//   b.PutFile(bfid, file);
//   b.PutMigration(handle, record);
//   b.DeleteJob(job_id);
//   OVT_RETURN_IF_ERROR(b.Commit());
class Catalog::Batch {
 public:
  explicit Batch(Catalog* catalog);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void PutImage(std::string_view name, const ImageRecord& r);
  void DeleteImage(std::string_view name);
  void PutNode(uint64_t image, uint64_t ino, const NodeRecord& r);
  void DeleteNode(uint64_t image, uint64_t ino);
  void PutDirent(uint64_t image, uint64_t parent, std::string_view name, const DirentRecord& r);
  void DeleteDirent(uint64_t image, uint64_t parent, std::string_view name);
  // Every node and dirent of an image (two range deletions); the images
  // entry itself is deleted separately, by name.
  void DeleteImageTree(uint64_t image);
  void PutFile(const Bfid& bfid, const FileRecord& r);
  void DeleteFile(const Bfid& bfid);
  void PutVolume(uint64_t vv_id, const VolumeRecord& r);
  void DeleteVolume(uint64_t vv_id);
  void PutChunk(const Digest128& digest, const ChunkRecord& r);
  void DeleteChunk(const Digest128& digest);
  void PutMigration(std::string_view handle, const MigrationRecord& r);
  void DeleteMigration(std::string_view handle);
  void PutJob(uint64_t job_id, const JobRecord& r);
  void DeleteJob(uint64_t job_id);

  // Operations queued since the last Commit.
  size_t size() const { return ops_; }
  // Writes everything atomically. The batch is empty afterwards, whatever
  // the outcome.
  Status Commit(Durability durability = Durability::kSync);

 private:
  // Queues a put (value != nullptr) or a delete, unless an earlier operation
  // failed or this one's checks did.
  void Add(int cf, const std::string& key, const Status& check, const std::string* value);
  template <typename R>
  void Put(int cf, const std::string& key, Status check, const R& r);

  Catalog* catalog_;
  std::unique_ptr<rocksdb::WriteBatch> wb_;
  Status error_;
  size_t ops_ = 0;
};

}  // namespace overtier

#endif  // OVERTIER_STORE_CATALOG_H_
