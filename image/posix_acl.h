// POSIX.1e ACLs as Linux keeps them: the values of the system.posix_acl_access
// and system.posix_acl_default xattrs (linux/posix_acl_xattr.h), which is
// how an image stores ACLs (image/image_format.h: xattrs of any namespace).
//
// Image import turns the text form tar archives carry (SCHILY.acl.access /
// SCHILY.acl.default, image/tar_source.h) into these values, so that an
// image has one form of ACL whatever the archiver wrote.
//
// The value's layout, names and tags: overtier/posix_acl_xattr.h. Values
// made here are sorted by tag then id, as the kernel makes them.
#ifndef OVERTIER_IMAGE_POSIX_ACL_H_
#define OVERTIER_IMAGE_POSIX_ACL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/posix_acl_xattr.h"
#include "overtier/status.h"

namespace overtier {

// The xattr value of `entries` (any order). InvalidArgument, saying why,
// for an ACL the kernel would refuse (posix_acl_valid): user::, group::
// and other:: exactly once, mask:: at most once and present when a named
// entry is, no id twice for a tag, no id 0xffffffff, perms within rwx,
// the value within XATTR_SIZE_MAX.
Status EncodePosixAcl(std::vector<PosixAclEntry> entries, std::string* value);

// The id of the user (tag kAclUser) or group (kAclGroup) `name` in this
// host's user and group databases, as `tar -x` maps ACL names. NotFound
// naming it when there is none.
Status ResolveAclName(uint16_t tag, const std::string& name, uint32_t* id);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_POSIX_ACL_H_
