// POSIX ACLs as the union sees them: the two system.posix_acl_* xattrs,
// which the kernel reads to check permissions (FUSE_POSIX_ACL) and which
// the layers' file systems store and keep consistent with the mode bits.
//
// The union hands them through to the layers as they are, with one
// exception: a mount that maps ids (uidmapping=/gidmapping=) maps the ids
// inside the value too, as it maps st_uid and chown, since an ACL entry
// for a user or a group names it by id.
#ifndef OVERTIER_UNION_ACL_XATTR_H_
#define OVERTIER_UNION_ACL_XATTR_H_

#include <string>
#include <string_view>
#include <vector>

#include "overtier/posix_acl_xattr.h"
#include "overtier/status.h"
#include "union/params.h"

namespace overtier {

// Maps the user and group ids of the ACL entries in *value (the kernel's
// xattr form, overtier/posix_acl_xattr.h) through
// uidmap/gidmap: to_mount maps disk ids to ids seen through the mount,
// else the reverse (MapIdToMount/MapIdToDisk). A value that is not of
// that form is EINVAL and stays untouched.
Status MapAclIds(std::string* value, const std::vector<IdMapping>& uidmap,
                 const std::vector<IdMapping>& gidmap, bool to_mount);

}  // namespace overtier

#endif  // OVERTIER_UNION_ACL_XATTR_H_
