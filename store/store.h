// A store on disk: the catalog, the volume sets and store.conf.
//
//   STORE/
//     store.conf          what Init wrote: store id, volume sets, copies, sizes
//     catalog/            RocksDB (catalog.h)
//     volumes/<set>/      the containers of a local volume set (unless the
//                         set's path points elsewhere, e.g. another disk)
//     write.lock          flock: one writing process at a time (import,
//                         commit, rm, gc); others wait
//     mounts.lock         flock: every mount holds it shared; gc deletes
//                         containers only while it can take it exclusively
//
// Opening for writing takes write.lock (waiting for another writer, with a
// message on stderr when it has to wait). Opening read-only (mounts, fsck,
// ls) takes no write lock and sees the catalog as it was when opened: images
// are immutable, so a mount never needs a newer view.
#ifndef OVERTIER_STORE_STORE_H_
#define OVERTIER_STORE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/catalog.h"
#include "store/volume.h"
#include "store/vv_reader.h"

namespace overtier {

// The chunk size content is cut into (file offsets multiple of it): the
// unit of dedup, of checksum verification on read, and of lazy restore.
inline constexpr uint64_t kDefaultChunkSize = uint64_t{256} << 10;

struct VolumeSetConfig {
  std::string name;  // [A-Za-z0-9._-]{1,64}, not starting with '.'
  // Where this set's containers are: the absolute path of a folder, or a
  // RADOS spec "rados:POOL?conf=...&id=client.NAME..." (store/rados_volume.h;
  // canonical form once Init has written it).
  std::string path;
};

// A volume set of another store that this store reads and never writes:
// the containers of images pulled from that store's publication
// (store/publication.h).
struct RemoteSetConfig {
  std::string name;        // this store's name for it; unique among all sets
  StoreId owner;           // the store whose containers these are (not this one)
  std::string origin_set;  // the set's name in the owner's store (container headers carry it)
  std::string path;        // a folder or a RADOS spec, as for VolumeSetConfig
};

struct StoreConfig {
  uint32_t format_version = 1;
  StoreId id;
  std::vector<VolumeSetConfig> sets;  // at least one; names unique
  uint32_t copies = 1;                // 1..sets.size(): copies of each chunk, each in another set
  uint64_t vv_size = kVvDefaultSealSize;  // seal size of containers
  uint64_t chunk_size = kDefaultChunkSize;
  std::vector<RemoteSetConfig> remote_sets;  // in store.conf order; any number
};

// store.conf is text, one "key = value" per line, '#' comments:
//   format = 1
//   id = <32 hex digits>
//   copies = 2
//   vv_size = 268435456
//   chunk_size = 262144
//   volume_set = NAME PATH        (one line per set, in order; PATH may be
//                                 a RADOS spec "rados:POOL?...")
//   remote_set = NAME OWNER ORIGIN PATH   (a RemoteSetConfig: OWNER the
//                                 owner's store id, ORIGIN its set name)
// Parse refuses unknown keys, a newer format, duplicates and bad values,
// naming the line.
Status ParseStoreConfig(std::string_view text, StoreConfig* out);
std::string FormatStoreConfig(const StoreConfig& config);

struct StoreInitOptions {
  // Empty: one set "default" at STORE/volumes/default.
  std::vector<VolumeSetConfig> sets;
  uint32_t copies = 0;      // 0: min(2, number of sets)
  uint64_t vv_size = 0;     // 0: kVvDefaultSealSize
  uint64_t chunk_size = 0;  // 0: kDefaultChunkSize
};

struct StoreOpenOptions {
  bool read_only = false;
  // CatalogOptions::flush_on_close: for writers whose catalog a mount
  // opens next (import, commit, the daemon's migration sessions).
  bool flush_on_close = false;
  // CatalogOptions::judged and ::quiet_log: for the daemon's migration
  // sessions, whose store the mount opened (and judged) already.
  bool judged = false;
  bool quiet_log = false;
  // For writers: when another process holds write.lock, wait for it (and
  // say so through write.wanted), or fail at once with EBUSY.
  bool wait = true;
  // For the daemon's migration sessions: appends to local volume sets on
  // the catalog's disk leave CatalogRoom() of it free
  // (LocalVolumeOptions::keep_free), so that restores can always open and
  // commit the catalog. Imports and gc do not keep it.
  bool keep_catalog_room = false;
};

// The room kept for the catalog on a file system of `fs_bytes` bytes: 2 %,
// at least 1 MiB, at most 64 MiB.
uint64_t CatalogRoom(uint64_t fs_bytes);

// Opens the volume set at `path` (a folder or a RADOS spec) on its own,
// outside any store and without a read cache: for another store's
// publications (store/publication.h). `name` is for messages.
Status OpenVolumeLocation(const std::string& path, const std::string& name,
                          std::unique_ptr<VolumeSet>* out);

class Store {
 public:
  // Creates a store at `path` (absent, or an empty directory): the volume
  // set folders, the catalog, then store.conf last (written to a temporary
  // name, fsynced, renamed): a store without store.conf is not a store, so
  // a crash during Init leaves nothing Open would accept. EEXIST if a store
  // (or anything) is there.
  static Status Init(const std::string& path, const StoreInitOptions& options,
                     std::unique_ptr<Store>* out = nullptr);
  // Adds a volume set to the existing store at `path` (and sets copies,
  // unless 0): the location is readied as Init would (a folder made or
  // empty, a RADOS pool reachable and empty), then store.conf is replaced
  // atomically. Containers written from then on may go to the set; nothing
  // already stored moves. *result (if given): the new configuration.
  static Status AddVolumeSet(const std::string& path, VolumeSetConfig set, uint32_t copies,
                             StoreConfig* result = nullptr);
  // Opens an existing store. Clear errors for: no store.conf (not a store),
  // a bad store.conf, a catalog that will not open or belongs to another
  // store id, a missing volume set folder.
  static Status Open(const std::string& path, const StoreOpenOptions& options,
                     std::unique_ptr<Store>* out);
  ~Store();

  const std::string& path() const { return path_; }
  const StoreConfig& config() const { return config_; }
  bool read_only() const { return read_only_; }
  Catalog* catalog() const { return catalog_.get(); }

  // The volume sets, in store.conf order; nullptr for an unknown name.
  const std::vector<VolumeSet*>& volume_sets() const { return set_ptrs_; }
  VolumeSet* volume_set(std::string_view name) const;

  // A remote set by name (nullptr if none); it connects on first use.
  VolumeSet* remote_set(std::string_view name) const;
  // The remote set at `path` holding `owner`'s set `origin_set`, added to
  // store.conf (atomically) unless there already is one: *name is its
  // name. For a store opened for writing.
  Status AddRemoteSet(const StoreId& owner, const std::string& origin_set, const std::string& path,
                      std::string* name);

  // Opens container vv_id for reading, finding its set through the
  // catalog's volumes family (a remote volume through its remote set, by
  // its owner's id for it). Readers are cached and shared (a mount reads
  // the same containers over and over); the caller holds *out while it
  // reads (its files close once nobody holds it and the cache dropped it:
  // the container grew and was opened again, or other containers pushed it
  // out).
  //
  // A container shorter on disk than its catalog row (truncated: rows are
  // committed only once the bytes they name are durable) still opens, with
  // a line on stderr: its reader reads as unsealed up to the real end, so
  // the records before the cut read and verify and those past it are EIO
  // naming the container, the offset and the truncation. Such a reader is
  // reused, not reopened, for a few seconds at a time (then opened again in
  // case the container was repaired).
  Status OpenContainer(uint64_t vv_id, std::shared_ptr<const VvReader>* out);

  // For a store opened for writing: whether another process waits to open
  // it for writing (it holds write.wanted shared while it waits for
  // write.lock). A writer that keeps the store open while idle (a mount's
  // migration service) closes it when this says so.
  bool WriterWanted() const;

  // Holds mounts.lock shared until destroyed (a mount calls it once).
  Status PinForMount();
  // Tries mounts.lock exclusively without waiting: true when no mount uses
  // the store (gc may then delete containers); the lock is held until the
  // Store is destroyed.
  bool TryExclusiveOfMounts();

 private:
  Store() = default;
  Status OpenRemoteContainer(uint64_t vv_id, const VolumeRecord& vr,
                             std::unique_ptr<VvReader>* out);
  std::string path_;
  StoreConfig config_;
  bool read_only_ = false;
  std::unique_ptr<Catalog> catalog_;
  std::vector<std::unique_ptr<VolumeSet>> sets_;
  std::vector<VolumeSet*> set_ptrs_;
  std::vector<std::unique_ptr<VolumeSet>> remote_sets_;  // config_.remote_sets order
  int write_lock_fd_ = -1;
  int wanted_fd_ = -1;  // write.wanted, for WriterWanted
  int mounts_lock_fd_ = -1;
  struct ReaderCache;
  std::unique_ptr<ReaderCache> readers_;
};

}  // namespace overtier

#endif  // OVERTIER_STORE_STORE_H_
