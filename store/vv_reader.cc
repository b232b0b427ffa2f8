#include "store/vv_reader.h"

#include <algorithm>
#include <utility>

namespace overtier {

namespace {

// Records up to this size are read with their header in one request (one
// round trip to an object store, at most a block of padding wasted).
constexpr uint64_t kSmallRecord = 64 << 10;

}  // namespace

VvReader::VvReader(std::unique_ptr<VolumeReader> volume, std::string set_name, uint64_t vv_id)
    : volume_(std::move(volume)), set_name_(std::move(set_name)), vv_id_(vv_id) {}

VvReader::~VvReader() = default;

Status VvReader::Open(VolumeSet* set, const Id128& store_id, uint64_t vv_id,
                      std::unique_ptr<VvReader>* out) {
  std::unique_ptr<VolumeReader> volume;
  OVT_RETURN_IF_ERROR(set->Open(vv_id, &volume));
  return Open(std::move(volume), set->name(), store_id, vv_id, out);
}

Status VvReader::Open(std::unique_ptr<VolumeReader> volume, const std::string& set_name,
                      const Id128& store_id, uint64_t vv_id, std::unique_ptr<VvReader>* out) {
  std::unique_ptr<VvReader> r(new VvReader(std::move(volume), set_name, vv_id));
  uint64_t size = r->size();
  if (size == 0) return r->Damage(0, "empty container (0 bytes): no container header");
  if (size < kVvContainerHeaderSize)
    return r->Damage(0, "container header truncated (" + std::to_string(size) + " of " +
                            std::to_string(kVvContainerHeaderSize) + " bytes)");
  char buf[kVvContainerHeaderSize];
  OVT_RETURN_IF_ERROR(r->Read(0, sizeof(buf), buf));
  ContainerHeader h;
  Status s = DecodeContainerHeader(buf, &h);
  if (!s.ok()) return r->Damage(0, s.message());
  if (h.vv_id != vv_id) return r->Damage(0, "the container header names " + VvName(h.vv_id));
  if (h.store_id != store_id)
    return r->Damage(0, "the container belongs to store " + Id128Hex(h.store_id) +
                            ", not to this store " + Id128Hex(store_id));
  if (h.set_name != set_name)
    return r->Damage(0, "the container was written for volume set '" + h.set_name + "'");
  r->header_ = std::move(h);
  OVT_RETURN_IF_ERROR(r->CheckTrailer());
  *out = std::move(r);
  return Status::OK();
}

Status VvReader::CheckTrailer() {
  uint64_t size = this->size();
  if (size < kVvContainerHeaderSize + FooterLength(0) + kVvTrailerSize) return Status::OK();
  uint64_t at = size - kVvTrailerSize;
  char buf[kVvTrailerSize];
  OVT_RETURN_IF_ERROR(Read(at, sizeof(buf), buf));
  Status s = DecodeTrailer(buf, vv_id_, &trailer_);
  if (s.err() == ENOENT) return Status::OK();  // not sealed
  if (!s.ok()) {
    trailer_status_ = Damage(at, s.message());
  } else if (trailer_.footer_offset < kVvContainerHeaderSize || trailer_.footer_offset > at ||
             trailer_.footer_length != at - trailer_.footer_offset) {
    trailer_status_ =
        Damage(at, "the trailer points at a footer of " + std::to_string(trailer_.footer_length) +
                       " bytes at offset " + std::to_string(trailer_.footer_offset) +
                       ", which does not end where the trailer starts");
  } else {
    sealed_ = true;
  }
  return Status::OK();
}

Status VvReader::Damage(uint64_t offset, const std::string& what) const {
  return Status::Corruption(VvName(vv_id_) + " (volume set '" + set_name_ + "') at offset " +
                            std::to_string(offset) + ": " + what);
}

Status VvReader::Read(uint64_t offset, size_t n, char* buf) const {
  return volume_->ReadAt(offset, n, buf);
}

Status VvReader::ReadHeaderAt(const RecordLocation& loc, bool with_payload, RecordHeader* header,
                              std::string* buf) const {
  if (loc.vv_id != vv_id_)
    return Status::InvalidArgument("record location names " + VvName(loc.vv_id) + ", not " +
                                   VvName(vv_id_));
  if (loc.offset < kVvFirstPayload || loc.offset % kVvAlign != 0)
    return Damage(loc.offset, "not a possible record payload offset");
  // Records lie between the container header and the footer (or the end).
  uint64_t limit = sealed_ ? trailer_.footer_offset : size();
  if (loc.offset > limit || loc.length > limit - loc.offset)
    return Damage(loc.offset, "a record of " + std::to_string(loc.length) +
                                  " bytes here extends past the end of the data (" +
                                  std::to_string(limit) +
                                  "): the container is truncated, or was appended to after "
                                  "this reader was opened");
  const uint64_t header_offset = loc.offset - kVvRecordHeaderSize;
  uint64_t n = kVvRecordHeaderSize;
  if (with_payload && loc.length <= kSmallRecord) n += loc.length;
  buf->resize(n);
  OVT_RETURN_IF_ERROR(Read(header_offset, n, buf->data()));
  Status s = DecodeRecordHeader(buf->data(), vv_id_, header);
  if (!s.ok()) return Damage(header_offset, s.message());
  if (header->length != loc.length)
    return Damage(header_offset, "the record header says the payload is " +
                                     std::to_string(header->length) + " bytes, the location says " +
                                     std::to_string(loc.length));
  return Status::OK();
}

Status VvReader::ReadRecordHeader(const RecordLocation& loc, RecordHeader* header) const {
  std::string buf;
  return ReadHeaderAt(loc, false, header, &buf);
}

Status VvReader::ReadRecord(const RecordLocation& loc, RecordHeader* header,
                            std::string* payload) const {
  payload->clear();
  std::string buf;
  OVT_RETURN_IF_ERROR(ReadHeaderAt(loc, true, header, &buf));
  if (buf.size() > kVvRecordHeaderSize) {
    payload->assign(buf, kVvRecordHeaderSize, loc.length);
  } else if (loc.length > 0) {
    payload->resize(loc.length);
    OVT_RETURN_IF_ERROR(Read(loc.offset, loc.length, payload->data()));
  }
  Status s = VerifyPayload(loc, *header, *payload);
  if (!s.ok()) payload->clear();  // never hand out unverified bytes
  return s;
}

Status VvReader::VerifyPayload(const RecordLocation& loc, const RecordHeader& header,
                               std::string_view payload) const {
  if (payload.size() != header.length)
    return Damage(loc.offset, "payload is " + std::to_string(payload.size()) +
                                  " bytes, its record header says " +
                                  std::to_string(header.length));
  Hash128 h = PayloadHash(payload);
  if (h != header.payload_hash)
    return Damage(loc.offset, "payload checksum mismatch (" + std::to_string(header.length) +
                                  " bytes): stored XXH3-128 " + Hash128Hex(header.payload_hash) +
                                  ", computed " + Hash128Hex(h));
  return Status::OK();
}

Status VvReader::PlanDirectRead(const RecordLocation& loc, DirectRead* plan) const {
  std::string buf;
  OVT_RETURN_IF_ERROR(ReadHeaderAt(loc, false, &plan->header, &buf));
  plan->payload_offset = loc.offset;
  plan->aligned_length = AlignUp(loc.length, kVvAlign);
  return volume_->RawSegments(plan->payload_offset, plan->aligned_length, &plan->segments);
}

Status VvReader::ListRecords(RecordList* out) const {
  if (!trailer_status_.ok()) return trailer_status_;
  if (!sealed_) return ScanRecords(out);
  std::string buf(trailer_.footer_length, '\0');
  OVT_RETURN_IF_ERROR(Read(trailer_.footer_offset, buf.size(), buf.data()));
  uint64_t data_end = 0;
  Status s = DecodeFooter(buf.data(), buf.size(), vv_id_, &data_end, &out->records);
  if (!s.ok()) {
    out->records.clear();
    return Damage(trailer_.footer_offset, s.message());
  }
  if (data_end < kVvContainerHeaderSize || data_end > trailer_.footer_offset) {
    out->records.clear();
    return Damage(trailer_.footer_offset, "the footer says the data ends at " +
                                              std::to_string(data_end) +
                                              ", outside the container's data region");
  }
  out->valid_end = data_end;
  out->from_footer = true;
  out->stop_reason.clear();
  return Status::OK();
}

Status VvReader::ScanRecords(RecordList* out) const {
  out->records.clear();
  out->from_footer = false;
  out->stop_reason.clear();
  // A sealed container's records end where its footer starts.
  const uint64_t limit = sealed_ ? trailer_.footer_offset : size();
  uint64_t last_end = kVvContainerHeaderSize;  // end of the valid data so far
  char buf[kVvRecordHeaderSize];
  while (last_end < limit) {
    const uint64_t pos = NextHeaderOffset(last_end);
    if (pos >= limit) {
      // Reaching the footer of a sealed container is the clean end;
      // otherwise the container ends in the padding before a header.
      if (!sealed_ || pos > limit)
        out->stop_reason = "record header at offset " + std::to_string(pos) +
                           " truncated (the container ends at " + std::to_string(limit) + ")";
      break;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(limit - pos, kVvRecordHeaderSize));
    OVT_RETURN_IF_ERROR(Read(pos, n, buf));
    if (n >= 8 && IsFooterMagic(buf)) {
      out->stop_reason = "footer at offset " + std::to_string(pos) +
                         " without a valid trailer (sealing was interrupted)";
      break;
    }
    if (n < kVvRecordHeaderSize) {
      out->stop_reason = "record header at offset " + std::to_string(pos) + " truncated (" +
                         std::to_string(n) + " of " + std::to_string(kVvRecordHeaderSize) +
                         " bytes)";
      break;
    }
    RecordHeader h;
    Status s = DecodeRecordHeader(buf, vv_id_, &h);
    if (!s.ok()) {
      out->stop_reason = "record header at offset " + std::to_string(pos) + ": " + s.message();
      break;
    }
    const uint64_t payload = pos + kVvRecordHeaderSize;
    if (h.length > limit - payload) {
      out->stop_reason = "record at offset " + std::to_string(payload) + ": payload of " +
                         std::to_string(h.length) + " bytes truncated (the container ends at " +
                         std::to_string(limit) + ")";
      break;
    }
    RecordInfo info;
    info.location = RecordLocation{vv_id_, payload, h.length};
    info.kind = h.kind;
    info.key = h.key;
    info.logical_offset = h.logical_offset;
    out->records.push_back(info);
    last_end = payload + h.length;
  }
  out->valid_end = last_end;
  return Status::OK();
}

}  // namespace overtier
