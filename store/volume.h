// Volume backends: where the bytes of vv containers are kept.
//
// A volume set is one independent location (a folder on some disk, later a
// Ceph RADOS pool) holding containers named by their 64-bit vv id. Nothing
// above this interface knows file paths, and the interface only asks what an
// object store can give:
//
//   - a container is created once, written append-only, made durable by
//     Sync() and finished by Seal(); it is never renamed nor overwritten in
//     place (a crash leaves a prefix of what was appended, which the vv layer
//     recovers by scanning);
//   - it is read by byte ranges;
//   - a backend may store it as pieces of at most kMaxVolumePiece bytes
//     (RADOS caps objects at 128 MiB and one write at 90 MiB), invisibly:
//     offsets are always those of the whole container.
//
// The vv layer (vv_writer.h, vv_reader.h) gives the bytes their meaning.
#ifndef OVERTIER_STORE_VOLUME_H_
#define OVERTIER_STORE_VOLUME_H_

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"

namespace overtier {

constexpr uint64_t kMaxVolumePiece = uint64_t{64} << 20;

// Appends to one new container. Not thread-safe: one writer per container.
// After any failure the writer is broken and every later call returns that
// failure (a failed fsync, in particular, is never retried as if it worked).
class VolumeWriter {
 public:
  virtual ~VolumeWriter() = default;

  // Appends data at the end. It may sit in a buffer until Sync(); readers
  // opened meanwhile need not see it.
  virtual Status Append(std::string_view data) = 0;
  // Makes everything appended so far durable (data and the names of any
  // new pieces): after OK, a crash cannot lose it.
  virtual Status Sync() = 0;
  // Sync() and finish: no more appends. Destroying an unsealed writer leaves
  // the container as it is, like a crash after the last Sync().
  virtual Status Seal() = 0;
  // Bytes appended so far, buffered ones included.
  virtual uint64_t Size() const = 0;
};

// A piece of a container as a local file, for engines that read it
// themselves (io_uring, O_DIRECT). The fds belong to the reader: valid
// while the reader lives.
struct RawSegment {
  int fd = -1;                    // opened O_RDONLY without O_DIRECT
  int direct_fd = -1;             // the same file opened O_DIRECT; -1 if the filesystem refuses it
  uint64_t file_offset = 0;       // where the segment starts in that file
  uint64_t container_offset = 0;  // the same byte as a container offset
  uint64_t length = 0;
};

// Reads one container. ReadAt is thread-safe. The reader sees the container
// as it was when opened: Size() does not change; to see later appends to a
// container still being written, open a new reader.
class VolumeReader {
 public:
  virtual ~VolumeReader() = default;

  // Reads exactly n bytes at offset into buf. A range past Size() is an
  // error (ENODATA), not a short read.
  virtual Status ReadAt(uint64_t offset, size_t n, char* buf) const = 0;
  virtual uint64_t Size() const = 0;
  // True when the backend knows the container is sealed, i.e. will never
  // grow (RADOS readers read the seal; a read cache then remembers the
  // size). False when it does not know.
  virtual bool sealed() const { return false; }
  // Maps [offset, offset + n) onto local files, one segment per piece
  // crossed, in order. ENOTSUP for backends without local files (RADOS):
  // callers then use ReadAt. The range may extend past Size() (an O_DIRECT
  // read rounded up to the alignment); the segments then end at Size().
  virtual Status RawSegments(uint64_t offset, uint64_t n, std::vector<RawSegment>* out) const {
    (void)offset;
    (void)n;
    out->clear();
    return Status::Errno(ENOTSUP, "volume backend has no local files");
  }
};

// One volume set. Implementations are thread-safe. The writers and readers
// a set hands out must not outlive it.
class VolumeSet {
 public:
  virtual ~VolumeSet() = default;

  // The set's name, as recorded in each container header.
  virtual const std::string& name() const = 0;
  // Creates an empty container; EEXIST if vv_id already exists. Its name is
  // durable when this returns.
  virtual Status Create(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) = 0;
  // Opens a container for reading; NotFound (ENOENT) naming it if absent.
  virtual Status Open(uint64_t vv_id, std::unique_ptr<VolumeReader>* out) = 0;
  // Reopens a container that was never sealed, to append after its current
  // end (crash recovery seals such a container this way; nothing is
  // truncated or rewritten). NotFound if absent.
  virtual Status OpenForAppend(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) = 0;
  // Removes a container and all its pieces, durably. NotFound if absent.
  virtual Status Remove(uint64_t vv_id) = 0;
  // Ids of all containers, ascending.
  virtual Status List(std::vector<uint64_t>* ids) = 0;

  // Small named objects kept beside the containers, in a name space of
  // their own (published image manifests, store/publication.h). Names are
  // 1..kMaxVolumeObjectName of [a-z0-9._-], not starting with '.'; an
  // object holds at most kMaxVolumePiece bytes. Put replaces an object
  // atomically and durably: a reader sees the old bytes or the new ones.
  // Backends without objects return ENOTSUP.
  virtual Status PutObject(std::string_view name, std::string_view data);
  // ENOENT naming the object when there is none.
  virtual Status GetObject(std::string_view name, std::string* data);
  // ENOENT when there is none.
  virtual Status RemoveObject(std::string_view name);
  // The names starting with `prefix`, sorted.
  virtual Status ListObjects(std::string_view prefix, std::vector<std::string>* names);
};

constexpr size_t kMaxVolumeObjectName = 200;

// InvalidArgument unless `name` is a valid object name (above).
Status CheckVolumeObjectName(std::string_view name);
// For backends. PutObject's checks: the name, and at most kMaxVolumePiece
// bytes.
Status CheckVolumeObjectPut(std::string_view name, size_t size);
// A backend stores object NAME under `tag` + NAME ("obj-", "obj."): true,
// with *name, when `stored` is such a name and NAME starts with `prefix`.
bool VolumeObjectFromStored(std::string_view stored, std::string_view tag, std::string_view prefix,
                            std::string_view* name);

}  // namespace overtier

#endif  // OVERTIER_STORE_VOLUME_H_
