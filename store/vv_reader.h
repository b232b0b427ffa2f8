// VvReader: reads records back from one vv container, verifying every byte.
//
// Opening checks the container header (magic, version, checksum, store id,
// vv id, set). Reading a record checks its header checksum, that the header
// agrees with the location asked for, and the payload's XXH3-128. Any
// mismatch is Status::Corruption (EIO) whose message names the container,
// the offset and what failed; wrong data is never returned. Trying another
// copy is the caller's business (the catalog knows the copies).
//
// Listing records uses the footer index when the container is sealed; an
// unsealed container (its writer crashed) is scanned header by header from
// the start, and the scan stops at the first header that is truncated or
// fails its checksum, reporting where valid data ends.
//
// A sealed container cut short (truncated on disk) has lost its trailer, so
// it opens as unsealed: the records before the cut read and verify as
// usual (a record needs only its own header and payload), a location past
// the end is Corruption saying the container is truncated.
//
// All methods are const and thread-safe.
#ifndef OVERTIER_STORE_VV_READER_H_
#define OVERTIER_STORE_VV_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/volume.h"
#include "store/vv_format.h"

namespace overtier {

struct RecordList {
  std::vector<RecordInfo> records;  // in container order
  // The first byte past the last valid record (the container header's end if
  // there is none): where a crashed container's valid data ends.
  uint64_t valid_end = 0;
  bool from_footer = false;
  // Empty if the records were read from the footer or the scan reached the
  // end of the data cleanly; otherwise why the scan stopped, with the offset
  // (e.g. "record header at offset 8128: record header checksum mismatch ...").
  std::string stop_reason;
};

// How to read a record's payload with O_DIRECT (an io_uring engine): read
// `segments` (aligned: the payload starts on a 4096 boundary and pieces are
// multiples of 4096; the last segment may be shorter where the container
// ends), take the first header.length bytes, and pass them to
// VvReader::VerifyPayload() before use.
struct DirectRead {
  RecordHeader header;          // verified
  uint64_t payload_offset = 0;  // container offset of the payload
  uint64_t aligned_length = 0;  // header.length rounded up to 4096
  std::vector<RawSegment> segments;
};

class VvReader {
 public:
  // Opens container vv_id of set. NotFound if it does not exist.
  static Status Open(VolumeSet* set, const Id128& store_id, uint64_t vv_id,
                     std::unique_ptr<VvReader>* out);
  // The same over an already opened volume (set_name: the set it is in).
  static Status Open(std::unique_ptr<VolumeReader> volume, const std::string& set_name,
                     const Id128& store_id, uint64_t vv_id, std::unique_ptr<VvReader>* out);

  VvReader(const VvReader&) = delete;
  VvReader& operator=(const VvReader&) = delete;
  ~VvReader();

  const ContainerHeader& header() const { return header_; }
  uint64_t vv_id() const { return vv_id_; }
  uint64_t size() const { return volume_->Size(); }
  // True if a valid trailer ends the container.
  bool sealed() const { return sealed_; }
  // The volume underneath, for engines that read payloads themselves
  // (RawSegments, io_uring) and verify them against a digest they trust
  // (the catalog's), skipping the record header read.
  const VolumeReader* volume() const { return volume_.get(); }

  // Reads and verifies the record at loc (as Append returned it).
  Status ReadRecord(const RecordLocation& loc, RecordHeader* header, std::string* payload) const;
  // Only the verified header (the payload is not read nor checked).
  Status ReadRecordHeader(const RecordLocation& loc, RecordHeader* header) const;
  // Verified header plus where its payload lies in local files (ENOTSUP
  // from backends without local files: use ReadRecord then).
  Status PlanDirectRead(const RecordLocation& loc, DirectRead* plan) const;
  // Checks a payload read outside ReadRecord (e.g. by PlanDirectRead's
  // segments) against its verified header.
  Status VerifyPayload(const RecordLocation& loc, const RecordHeader& header,
                       std::string_view payload) const;

  // The records: from the footer if sealed, else by ScanRecords(). A
  // damaged footer or trailer is Corruption (ScanRecords may still work).
  Status ListRecords(RecordList* out) const;
  // Walks the record headers from the start, whether sealed or not. Payloads
  // are not read (ReadRecord verifies them). Fails only on I/O errors:
  // damage ends the walk and is described in out->stop_reason.
  Status ScanRecords(RecordList* out) const;

 private:
  VvReader(std::unique_ptr<VolumeReader> volume, std::string set_name, uint64_t vv_id);

  // Corruption "vv-... (set 's') at offset N: what".
  Status Damage(uint64_t offset, const std::string& what) const;
  // I/O through the volume (whose errors name the container).
  Status Read(uint64_t offset, size_t n, char* buf) const;
  // Checks that loc can be a record of this container and reads its
  // header; *buf receives the bytes read from the header on (the header and,
  // for small records, the payload too).
  Status ReadHeaderAt(const RecordLocation& loc, bool with_payload, RecordHeader* header,
                      std::string* buf) const;
  // Looks for a trailer at the end and sets sealed_ / trailer_status_.
  Status CheckTrailer();

  std::unique_ptr<VolumeReader> volume_;
  const std::string set_name_;
  const uint64_t vv_id_;
  ContainerHeader header_;
  bool sealed_ = false;
  Trailer trailer_;
  Status trailer_status_;  // Corruption if a trailer is there but damaged
};

}  // namespace overtier

#endif  // OVERTIER_STORE_VV_READER_H_
