// Fuzz target: reading a vv container (store/vv_reader.h, vv_format.h).
//
// Containers are large files on disks that rot, get truncated, or are
// copied half-way; a damaged one must read as Corruption naming where,
// never crash the daemon, hang it, or hand out bytes that fail their
// checksum. The input is the whole container (seeds: real ones written by
// VvWriter, fuzz/vv_seed_main.cc), served from memory. Properties: a
// record listed by the footer or a header scan lies inside the container,
// in order; a record that reads back matches its payload hash.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/vv_container.h"
#include "store/volume.h"
#include "store/vv_format.h"
#include "store/vv_reader.h"

namespace {

using overtier::Status;

class MemoryVolume : public overtier::VolumeReader {
 public:
  explicit MemoryVolume(std::string bytes) : bytes_(std::move(bytes)) {}
  Status ReadAt(uint64_t offset, size_t n, char* buf) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset)
      return Status::Errno(EIO, "read past the end of the container");
    std::memcpy(buf, bytes_.data() + offset, n);
    return Status::OK();
  }
  uint64_t Size() const override { return bytes_.size(); }

 private:
  std::string bytes_;
};

void CheckList(const overtier::RecordList& list, uint64_t size) {
  uint64_t prev_end = 0;
  for (const overtier::RecordInfo& r : list.records) {
    FUZZ_CHECK(r.location.offset >= overtier::kVvFirstPayload, "records follow the header");
    FUZZ_CHECK(r.location.offset % overtier::kVvAlign == 0, "payloads are aligned");
    FUZZ_CHECK(r.location.offset >= prev_end, "records are in order");
    FUZZ_CHECK(r.location.length <= size && r.location.offset <= size - r.location.length,
               "a listed record lies inside the container");
    prev_end = r.location.offset + r.location.length;
  }
  FUZZ_CHECK(list.valid_end <= size, "valid data ends inside the container");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The decoders alone, on the first bytes, whatever the rest is.
  if (size >= overtier::kVvContainerHeaderSize) {
    overtier::ContainerHeader h;
    if (overtier::DecodeContainerHeader(reinterpret_cast<const char*>(data), &h).ok()) {
      char again[overtier::kVvContainerHeaderSize];
      overtier::EncodeContainerHeader(h, again);
      FUZZ_CHECK(std::memcmp(again, data, sizeof again) == 0,
                 "a container header that decodes is the one its fields encode to");
    }
  }
  if (size >= overtier::kVvTrailerSize) {
    overtier::Trailer t;
    (void)overtier::DecodeTrailer(
        reinterpret_cast<const char*>(data) + size - overtier::kVvTrailerSize,
        overtier::fuzz::kVvId, &t);
  }

  auto volume =
      std::make_unique<MemoryVolume>(std::string(reinterpret_cast<const char*>(data), size));
  std::unique_ptr<overtier::VvReader> reader;
  if (!overtier::VvReader::Open(std::move(volume), overtier::fuzz::kSetName,
                                overtier::fuzz::kStoreId, overtier::fuzz::kVvId, &reader)
           .ok())
    return 0;
  overtier::RecordList scanned, listed;
  FUZZ_CHECK(reader->ScanRecords(&scanned).ok(), "a scan fails only on I/O errors");
  CheckList(scanned, size);
  std::vector<overtier::RecordInfo> records = scanned.records;
  if (reader->ListRecords(&listed).ok()) {
    CheckList(listed, size);
    records.insert(records.end(), listed.records.begin(), listed.records.end());
  }
  for (size_t i = 0; i < std::min<size_t>(records.size(), 64); i++) {
    overtier::RecordHeader header;
    std::string payload;
    if (reader->ReadRecord(records[i].location, &header, &payload).ok()) {
      FUZZ_CHECK(payload.size() == header.length, "a record reads back whole");
      FUZZ_CHECK(overtier::PayloadHash(payload) == header.payload_hash,
                 "a record that reads back matches its hash");
    }
  }
  return 0;
}
