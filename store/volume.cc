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

}  // namespace overtier
