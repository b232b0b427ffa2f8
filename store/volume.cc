#include "store/volume.h"

namespace overtier {

namespace {

Status NoObjects() {
  return Status::Errno(ENOTSUP, "this volume backend keeps no objects beside its containers");
}

}  // namespace

Status VolumeSet::PutObject(std::string_view, std::string_view) { return NoObjects(); }
Status VolumeSet::GetObject(std::string_view, std::string*) { return NoObjects(); }
Status VolumeSet::RemoveObject(std::string_view) { return NoObjects(); }
Status VolumeSet::ListObjects(std::string_view, std::vector<std::string>*) { return NoObjects(); }

Status CheckVolumeObjectName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxVolumeObjectName && name[0] != '.';
  for (char c : name) {
    ok = ok &&
         ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    return Status::InvalidArgument("object name '" + std::string(name) + "' is not 1 to " +
                                   std::to_string(kMaxVolumeObjectName) +
                                   " of [a-z0-9._-] not starting with '.'");
  }
  return Status::OK();
}

Status CheckVolumeObjectPut(std::string_view name, size_t size) {
  OVT_RETURN_IF_ERROR(CheckVolumeObjectName(name));
  if (size > kMaxVolumePiece)
    return Status::InvalidArgument("object '" + std::string(name) + "' of " + std::to_string(size) +
                                   " bytes is over the limit");
  return Status::OK();
}

bool VolumeObjectFromStored(std::string_view stored, std::string_view tag, std::string_view prefix,
                            std::string_view* name) {
  if (stored.substr(0, tag.size()) != tag) return false;
  stored.remove_prefix(tag.size());
  if (stored.substr(0, prefix.size()) != prefix || !CheckVolumeObjectName(stored).ok())
    return false;
  *name = stored;
  return true;
}

}  // namespace overtier
