#include "store/vv_writer.h"

#include <string>
#include <utility>

namespace overtier {

VvWriter::VvWriter(std::unique_ptr<VolumeWriter> volume, uint64_t vv_id,
                   const VvWriterOptions& options)
    : volume_(std::move(volume)), vv_id_(vv_id), options_(options) {}

VvWriter::~VvWriter() = default;

Status VvWriter::Create(VolumeSet* set, const Id128& store_id, uint64_t vv_id,
                        const VvWriterOptions& options, std::unique_ptr<VvWriter>* out) {
  if (options.seal_size < kVvMinSealSize)
    return Status::InvalidArgument("vv seal size " + std::to_string(options.seal_size) +
                                   " is below the minimum " + std::to_string(kVvMinSealSize));
  if (set->name().empty() || set->name().size() > kVvMaxSetName)
    return Status::InvalidArgument("volume set name '" + set->name() +
                                   "' does not fit a container header");
  std::unique_ptr<VolumeWriter> volume;
  OVT_RETURN_IF_ERROR(set->Create(vv_id, &volume));
  ContainerHeader h;
  h.store_id = store_id;
  h.vv_id = vv_id;
  h.set_name = set->name();
  char buf[kVvContainerHeaderSize];
  EncodeContainerHeader(h, buf);
  OVT_RETURN_IF_ERROR(volume->Append(std::string_view(buf, sizeof(buf))));
  // Synced at once, so that a container that exists has a header except
  // after a crash inside Create itself.
  OVT_RETURN_IF_ERROR(volume->Sync());
  std::unique_ptr<VvWriter> w(new VvWriter(std::move(volume), vv_id, options));
  w->end_ = kVvContainerHeaderSize;
  *out = std::move(w);
  return Status::OK();
}

bool VvWriter::Fits(uint64_t length) const {
  if (sealed_) return false;
  uint64_t payload = NextPayloadOffset(end_);
  return payload <= options_.seal_size && length <= options_.seal_size - payload;
}

uint64_t VvWriter::Room() const {
  uint64_t payload = NextPayloadOffset(end_);
  return sealed_ || payload >= options_.seal_size ? 0 : options_.seal_size - payload;
}

Status VvWriter::Append(RecordKind kind, const Id128& key, uint64_t logical_offset,
                        std::string_view payload, RecordLocation* loc) {
  return Append(kind, key, logical_offset, payload, PayloadHash(payload), loc);
}

Status VvWriter::Append(RecordKind kind, const Id128& key, uint64_t logical_offset,
                        std::string_view payload, const Hash128& payload_hash,
                        RecordLocation* loc) {
  if (sealed_) return Status::Errno(EBADF, VvName(vv_id_) + " is sealed");
  if (!Fits(payload.size()))
    return Status::Errno(EFBIG, "record of " + std::to_string(payload.size()) +
                                    " bytes does not fit in " + VvName(vv_id_) + " (room for " +
                                    std::to_string(Room()) + ")");
  RecordHeader h;
  h.kind = kind;
  h.key = key;
  h.logical_offset = logical_offset;
  h.length = payload.size();
  h.payload_hash = payload_hash;

  // Zero padding up to the header, which ends where the payload starts on a
  // 4096-byte boundary: one append, then the payload.
  uint64_t header_offset = NextHeaderOffset(end_);
  uint64_t payload_offset = header_offset + kVvRecordHeaderSize;
  std::string prefix(payload_offset - end_, '\0');
  EncodeRecordHeader(h, vv_id_, prefix.data() + (header_offset - end_));
  OVT_RETURN_IF_ERROR(volume_->Append(prefix));
  if (!payload.empty()) OVT_RETURN_IF_ERROR(volume_->Append(payload));

  RecordInfo info;
  info.location = RecordLocation{vv_id_, payload_offset, payload.size()};
  info.kind = kind;
  info.key = key;
  info.logical_offset = logical_offset;
  records_.push_back(info);
  end_ = payload_offset + payload.size();
  *loc = info.location;
  return Status::OK();
}

Status VvWriter::Sync() { return volume_->Sync(); }

Status VvWriter::Seal() {
  if (sealed_) return Status::Errno(EBADF, VvName(vv_id_) + " is already sealed");
  OVT_RETURN_IF_ERROR(AppendVvSeal(volume_.get(), vv_id_, records_, end_));
  sealed_ = true;
  return Status::OK();
}

Status AppendVvSeal(VolumeWriter* w, uint64_t vv_id, const std::vector<RecordInfo>& records,
                    uint64_t data_end) {
  // The footer goes where the next record header would, which a scan of a
  // container whose trailer got lost then recognizes.
  uint64_t start = w->Size();
  uint64_t footer_offset = NextHeaderOffset(start);
  uint64_t footer_length = FooterLength(records.size());
  std::string buf(footer_offset - start + footer_length + kVvTrailerSize, '\0');
  char* footer = buf.data() + (footer_offset - start);
  EncodeFooter(records.data(), records.size(), data_end, vv_id, footer);
  EncodeTrailer(Trailer{footer_offset, footer_length, records.size()}, vv_id,
                footer + footer_length);
  OVT_RETURN_IF_ERROR(w->Append(buf));
  return w->Seal();
}

}  // namespace overtier
