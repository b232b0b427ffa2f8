// The records of the store's catalog, one struct per column family, and their
// versioned encodings (byte by byte in docs/FORMAT.md, "Catalog").
//
// Every encoded value starts with a one-byte record version. A decoder knows
// exactly the versions listed here and refuses anything else, and anything
// short, long or inconsistent, with Status::Corruption: a catalog is the only
// map from names to archived data, so misreading it silently would lose data
// in ways no later check could notice. A record version that older code cannot
// read is only ever written together with a new catalog format version (the
// `meta` entry), so an older overtier refuses the whole catalog at open
// instead of failing on some record later.
//
// The same invariants are checked before a record is written (CheckRecord,
// used by Catalog::Batch, giving InvalidArgument) and after one is read
// (DecodeRecord, giving Corruption): what the catalog hands out always passes
// CheckRecord.
#ifndef OVERTIER_STORE_CATALOG_RECORDS_H_
#define OVERTIER_STORE_CATALOG_RECORDS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/coding.h"

namespace overtier {

// The catalog's format version, stored in the `meta` entry. Bump it whenever
// a change makes the catalog unreadable to the previous release.
inline constexpr uint32_t kCatalogFormatVersion = 1;

// The record version every encoder below writes.
inline constexpr uint8_t kRecordVersion = 1;

// Upper bounds that keep a damaged length from turning into a huge
// allocation, and keys within what the kernel can produce.
inline constexpr size_t kMaxImageNameLen = 1024;
inline constexpr size_t kMaxDirentNameLen = 255;  // NAME_MAX
inline constexpr size_t kMaxFileHandleLen = 128;  // MAX_HANDLE_SZ
inline constexpr size_t kMaxSetNameLen = 64;      // as in the vv container header

// ---------------------------------------------------------------------------
// meta (default family, key "meta")
// ---------------------------------------------------------------------------

struct CatalogMeta {
  uint32_t format_version = kCatalogFormatVersion;
  StoreId store_id;
  bool operator==(const CatalogMeta&) const = default;
};

// ---------------------------------------------------------------------------
// images: image name -> ImageRecord
// ---------------------------------------------------------------------------

struct ImageRecord {
  uint64_t image_id = 0;         // > 0; the first part of its nodes' and dirents' keys
  uint64_t root_inode = 0;       // > 0; the inode of the image's root directory
  uint64_t parent_image_id = 0;  // the image this one was committed on top of; 0: none
  int64_t created_ns = 0;        // wall clock, ns since the epoch
  bool operator==(const ImageRecord&) const = default;
};

// ---------------------------------------------------------------------------
// nodes: (image id, inode) -> NodeRecord
// ---------------------------------------------------------------------------

struct NodeRecord {
  uint32_t mode = 0;  // type and permission bits, as st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;  // device number of character/block devices
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  std::map<std::string, std::string> xattrs;  // name -> value, names non-empty
  std::string symlink_target;                 // non-empty iff a symlink
  // The archived content of a regular file (`files` family); absent for an
  // empty file, or one whose content is not in the store.
  bool has_content = false;
  Bfid content;
  bool operator==(const NodeRecord&) const = default;
};

// ---------------------------------------------------------------------------
// dirents: (image id, parent inode, name) -> DirentRecord
// ---------------------------------------------------------------------------

struct DirentRecord {
  uint64_t child_inode = 0;  // > 0
  uint8_t type = 0;          // d_type: DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK
  bool operator==(const DirentRecord&) const = default;
};

// ---------------------------------------------------------------------------
// files: bfid -> FileRecord
// ---------------------------------------------------------------------------

// A piece of file content stored in a vv container.
struct Extent {
  uint64_t file_offset = 0;  // where the piece starts in the file
  uint64_t vv_id = 0;        // > 0; the container holding it
  uint64_t vv_offset = 0;    // where its payload starts in the container
  uint64_t length = 0;       // > 0, bytes
  Digest128 digest;          // XXH3-128 of those bytes
  bool operator==(const Extent&) const = default;
};

// One complete copy of the content. Extents are sorted by file_offset and do
// not overlap; a gap between them is a hole (reads as zeros).
struct FileCopy {
  std::vector<Extent> extents;
  bool operator==(const FileCopy&) const = default;
};

struct FileRecord {
  uint64_t size = 0;  // bytes; no extent ends past it
  // Independent copies, normally in different volume sets (copies = 2 in
  // store.conf: a file may be released only once it has two).
  std::vector<FileCopy> copies;
  bool operator==(const FileRecord&) const = default;
};

// ---------------------------------------------------------------------------
// chunks: XXH3-128 digest -> ChunkRecord (the dedup index)
// ---------------------------------------------------------------------------

// Where one copy of a content chunk lives.
struct ChunkLocation {
  uint64_t vv_id = 0;      // > 0
  uint64_t vv_offset = 0;  // where the payload starts in the container
  bool operator==(const ChunkLocation&) const = default;
};

// A chunk stored once and shared by every extent with its digest (after a
// byte comparison confirmed the match). Copies are in different volume sets,
// so no two copies are in the same container (CheckRecord refuses that; it
// cannot see sets).
struct ChunkRecord {
  uint64_t length = 0;                // > 0
  std::vector<ChunkLocation> copies;  // >= 1
  bool operator==(const ChunkRecord&) const = default;
};

// ---------------------------------------------------------------------------
// volumes: vv id -> VolumeRecord
// ---------------------------------------------------------------------------

enum class VolumeState : uint8_t {
  kOpen = 1,        // being appended to
  kSealed = 2,      // footer written, read-only
  kCompacting = 3,  // its live records are being copied elsewhere
  kLost = 4,        // unreadable; its extents must come from other copies
  // Another store's container, read through a remote set of store.conf
  // (an image pulled from a publication, store/publication.h): never
  // written, compacted or removed by this store; its row goes when no
  // extent points into it any more.
  kRemote = 5,
};
const char* VolumeStateName(VolumeState s);

struct VolumeRecord {
  // The volume set (the folder volumes/<set>/ of the store): 1..64 of
  // [A-Za-z0-9._-], not starting with '.', as the vv containers require.
  std::string set;
  VolumeState state = VolumeState::kOpen;
  uint64_t size = 0;        // bytes in the container
  uint64_t live_bytes = 0;  // bytes still referenced by some file (for GC)
  // kRemote only (and then > 0): the container's id in its owner's store,
  // which is what its header and checksums carry; zero otherwise.
  uint64_t origin_vv_id = 0;
  bool operator==(const VolumeRecord&) const = default;
};

// ---------------------------------------------------------------------------
// migration: upper file handle -> MigrationRecord (the DMFS record)
// ---------------------------------------------------------------------------

// Flag bits. Which combinations are legal is the migration engine's business;
// the catalog only refuses bits it does not know.
inline constexpr uint32_t kMigArchived = 1u << 0;           // a valid archive exists
inline constexpr uint32_t kMigReleased = 1u << 1;           // some data only in the archive
inline constexpr uint32_t kMigDirty = 1u << 2;              // modified since archived
inline constexpr uint32_t kMigLost = 1u << 3;               // no readable archive copy
inline constexpr uint32_t kMigArchiveInProgress = 1u << 4;  // archive agent at work
inline constexpr uint32_t kMigRestoreInProgress = 1u << 5;  // restore agent at work
// The archive is shared content (an image file adopted by a lazy copy-up):
// reads restore only what they need, never the rest of the file.
inline constexpr uint32_t kMigOnDemand = 1u << 6;
inline constexpr uint32_t kMigKnownFlags = (1u << 7) - 1;

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;  // > 0
  bool operator==(const ByteRange&) const = default;
};

// Which bytes of the upper file hold the data (the rest is only in the
// archive). The common case is DMFS's byte barrier: [0, barrier) resident.
enum class ResidencyKind : uint8_t {
  kBarrier = 0,
  kRanges = 1,  // resident_ranges, sorted by offset, not overlapping
};

struct MigrationRecord {
  uint32_t flags = 0;         // kMig* bits
  uint64_t generation = 0;    // inode generation of the upper file when archived
  uint64_t archive_size = 0;  // file size the archive holds (what stat shows)
  ResidencyKind residency = ResidencyKind::kBarrier;
  uint64_t barrier = 0;                    // kBarrier only
  std::vector<ByteRange> resident_ranges;  // kRanges only
  Bfid bfid;                               // the archived content (`files` family)
  int64_t atime_ns = 0;                    // preserved user-visible times
  int64_t mtime_ns = 0;
  int64_t archive_time_ns = 0;  // when archived, when last restored
  int64_t restore_time_ns = 0;
  bool operator==(const MigrationRecord&) const = default;
};

// ---------------------------------------------------------------------------
// jobs: job id -> JobRecord
// ---------------------------------------------------------------------------

enum class JobKind : uint8_t {
  kArchive = 1,  // copy an upper file into vv containers
  kRelease = 2,  // drop resident data of an archived file
  kRestore = 3,  // bring archived data back
  kGc = 4,       // reclaim unreferenced archives / compact volumes
};
const char* JobKindName(JobKind k);

enum class JobState : uint8_t {
  kPending = 1,
  kRunning = 2,  // a crash leaves it here; the engine resumes it at start
  kFailed = 3,   // kept for inspection and retry; last_error says why
};
const char* JobStateName(JobState s);

struct JobRecord {
  JobKind kind = JobKind::kArchive;
  JobState state = JobState::kPending;
  uint32_t attempts = 0;
  uint64_t progress = 0;  // units of `total` done (bytes, files, ...)
  uint64_t total = 0;
  int64_t created_ns = 0;
  int64_t updated_ns = 0;
  // What the job works on and with what parameters (a file handle, a bfid,
  // a vv id, a range...), encoded by the engine that owns the kind.
  std::string target;
  std::string params;
  std::string last_error;
  bool operator==(const JobRecord&) const = default;
};

// ---------------------------------------------------------------------------
// Encoding, decoding, checking
// ---------------------------------------------------------------------------

// Encoders never fail; they expect a record that passes CheckRecord.
std::string EncodeRecord(const CatalogMeta& r);
std::string EncodeRecord(const ImageRecord& r);
std::string EncodeRecord(const NodeRecord& r);
std::string EncodeRecord(const DirentRecord& r);
std::string EncodeRecord(const FileRecord& r);
std::string EncodeRecord(const ChunkRecord& r);
std::string EncodeRecord(const VolumeRecord& r);
std::string EncodeRecord(const MigrationRecord& r);
std::string EncodeRecord(const JobRecord& r);

// Decoders give Corruption, with a message saying what is wrong (the catalog
// adds which family and key), for anything but a well-formed, consistent
// record; *out is then unspecified. For CatalogMeta, a format version newer
// than kCatalogFormatVersion gives ENOTSUP and sets out->format_version.
Status DecodeRecord(std::string_view in, CatalogMeta* out);
Status DecodeRecord(std::string_view in, ImageRecord* out);
Status DecodeRecord(std::string_view in, NodeRecord* out);
Status DecodeRecord(std::string_view in, DirentRecord* out);
Status DecodeRecord(std::string_view in, FileRecord* out);
Status DecodeRecord(std::string_view in, ChunkRecord* out);
Status DecodeRecord(std::string_view in, VolumeRecord* out);
Status DecodeRecord(std::string_view in, MigrationRecord* out);
Status DecodeRecord(std::string_view in, JobRecord* out);

// The invariants, as InvalidArgument.
Status CheckRecord(const CatalogMeta& r);
Status CheckRecord(const ImageRecord& r);
Status CheckRecord(const NodeRecord& r);
Status CheckRecord(const DirentRecord& r);
Status CheckRecord(const FileRecord& r);
Status CheckRecord(const ChunkRecord& r);
Status CheckRecord(const VolumeRecord& r);
Status CheckRecord(const MigrationRecord& r);
Status CheckRecord(const JobRecord& r);

// Key parts, as InvalidArgument.
Status CheckImageName(std::string_view name);     // 1..1024 bytes, no NUL
Status CheckDirentName(std::string_view name);    // 1..255 bytes, no '/' or NUL, not . or ..
Status CheckFileHandle(std::string_view handle);  // 1..128 bytes

}  // namespace overtier

#endif  // OVERTIER_STORE_CATALOG_RECORDS_H_
