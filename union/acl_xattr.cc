// Id mapping of POSIX ACL xattr values (see acl_xattr.h).
#include "union/acl_xattr.h"

namespace overtier {

Status MapAclIds(std::string* value, const std::vector<IdMapping>& uidmap,
                 const std::vector<IdMapping>& gidmap, bool to_mount) {
  std::vector<PosixAclEntry> entries;
  if (!ParsePosixAclXattr(*value, &entries))
    return Status::Errno(EINVAL, "not a POSIX ACL xattr value");
  if (uidmap.empty() && gidmap.empty()) return Status::OK();
  for (PosixAclEntry& e : entries) {
    const std::vector<IdMapping>* map = e.tag == kAclUser    ? &uidmap
                                        : e.tag == kAclGroup ? &gidmap
                                                             : nullptr;
    if (map != nullptr) e.id = to_mount ? MapIdToMount(*map, e.id) : MapIdToDisk(*map, e.id);
  }
  *value = PosixAclXattrValue(entries);
  return Status::OK();
}

}  // namespace overtier
