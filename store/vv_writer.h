// VvWriter: fills one vv container with records, then seals it.
//
// Durability contract (DESIGN.md, "The store"): a record returned by
// Append() is durable only once Sync() has returned OK. The catalog must not
// commit a location before that Sync(); a crash before it may lose the
// record, and the reader's recovery scan finds what survived.
//
// The seal size bounds the records (container header included); footer and
// trailer come on top (48 bytes per record + 104, after up to 4 KiB of
// padding). Append() refuses a record
// that does not fit: callers split large files into records of at most
// Room() bytes and continue in a new container (large files span
// containers).
#ifndef OVERTIER_STORE_VV_WRITER_H_
#define OVERTIER_STORE_VV_WRITER_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/volume.h"
#include "store/vv_format.h"

namespace overtier {

struct VvWriterOptions {
  // At least kVvMinSealSize.
  uint64_t seal_size = kVvDefaultSealSize;
};

// Not thread-safe: one writer per container, used by one thread at a time.
// After a failed I/O every later call returns the failure.
class VvWriter {
 public:
  // Creates container vv_id in set and writes its header, durably. EEXIST if
  // the id is taken.
  static Status Create(VolumeSet* set, const Id128& store_id, uint64_t vv_id,
                       const VvWriterOptions& options, std::unique_ptr<VvWriter>* out);

  VvWriter(const VvWriter&) = delete;
  VvWriter& operator=(const VvWriter&) = delete;
  ~VvWriter();

  // Appends a record whose payload is `payload` and fills *loc. The key is
  // the owner's bfid (kFileData, kTombstone) or the chunk's digest (kChunk,
  // by convention Hash128Key(PayloadHash(payload))); logical_offset is the
  // payload's offset in the owner file. EFBIG if it does not fit (see
  // Fits()); EBADF once sealed.
  Status Append(RecordKind kind, const Id128& key, uint64_t logical_offset,
                std::string_view payload, RecordLocation* loc);
  // The same with PayloadHash(payload) already known (a content writer
  // hashed the chunk for its digest): each byte is hashed once, not once
  // more per copy.
  Status Append(RecordKind kind, const Id128& key, uint64_t logical_offset,
                std::string_view payload, const Hash128& payload_hash, RecordLocation* loc);
  // Whether a record with a payload of `length` bytes still fits.
  bool Fits(uint64_t length) const;
  // The largest payload that still fits (0 if none does; a 0-byte record
  // may still fit, see Fits(0)).
  uint64_t Room() const;

  // Makes every record appended so far durable.
  Status Sync();
  // Writes the footer index and the trailer, syncs and finishes the
  // container. Nothing can be appended afterwards.
  Status Seal();

  uint64_t vv_id() const { return vv_id_; }
  // Bytes in the container so far.
  uint64_t size() const { return volume_->Size(); }
  uint64_t record_count() const { return records_.size(); }
  bool sealed() const { return sealed_; }

 private:
  VvWriter(std::unique_ptr<VolumeWriter> volume, uint64_t vv_id, const VvWriterOptions& options);

  std::unique_ptr<VolumeWriter> volume_;
  const uint64_t vv_id_;
  const VvWriterOptions options_;
  uint64_t end_ = 0;  // end of the last record's payload (container size before sealing)
  std::vector<RecordInfo> records_;
  bool sealed_ = false;
};

// Appends the footer (indexing `records`, whose data ends at data_end) where
// the next record header of w would go, then the trailer, and seals w. Used by
// VvWriter::Seal() and by crash recovery (vv_recovery.h), where the footer
// may follow bytes that are not records.
Status AppendVvSeal(VolumeWriter* w, uint64_t vv_id, const std::vector<RecordInfo>& records,
                    uint64_t data_end);

}  // namespace overtier

#endif  // OVERTIER_STORE_VV_WRITER_H_
