// POSIX.1e ACLs as Linux keeps them: the values of the system.posix_acl_access
// and system.posix_acl_default xattrs (linux/posix_acl_xattr.h), which is
// how an image stores ACLs (image/image_format.h: xattrs of any namespace).
//
// Image import turns the text form tar archives carry (SCHILY.acl.access /
// SCHILY.acl.default, image/tar_source.h) into these values, so that an
// image has one form of ACL whatever the archiver wrote.
//
// The value: a header (u32 version 2) then entries {u16 tag, u16 perm,
// u32 id}, all little-endian, sorted by tag then id; the id of user::,
// group::, mask:: and other:: is 0xffffffff (ACL_UNDEFINED_ID).
#ifndef OVERTIER_IMAGE_POSIX_ACL_H_
#define OVERTIER_IMAGE_POSIX_ACL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"

namespace overtier {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

// Entry tags (ACL_USER_OBJ... of linux/posix_acl.h); their numeric order is
// the order the kernel requires.
inline constexpr uint16_t kAclUserObj = 0x01;   // user::
inline constexpr uint16_t kAclUser = 0x02;      // user:ID:
inline constexpr uint16_t kAclGroupObj = 0x04;  // group::
inline constexpr uint16_t kAclGroup = 0x08;     // group:ID:
inline constexpr uint16_t kAclMask = 0x10;      // mask::
inline constexpr uint16_t kAclOther = 0x20;     // other::
inline constexpr uint32_t kAclUndefinedId = 0xffffffff;

struct PosixAclEntry {
  uint16_t tag = 0;
  uint16_t perm = 0;              // r 4, w 2, x 1
  uint32_t id = kAclUndefinedId;  // user:ID / group:ID only
};

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
