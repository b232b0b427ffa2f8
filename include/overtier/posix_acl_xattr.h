// The POSIX.1e ACL xattrs as Linux keeps them (linux/posix_acl_xattr.h):
// the names, the entry tags, and the value's layout. One definition for
// the two places that handle such values: image import, which turns tar
// ACLs into them (image/posix_acl.h, with the kernel's validity rules),
// and the union, which hands them to the kernel and maps their ids on
// id-mapped mounts (union/acl_xattr.h).
//
// The value: a header (u32 version 2) then entries {u16 tag, u16 perm,
// u32 id}, all little-endian whatever the host; the id counts for user:ID
// and group:ID only (0xffffffff, ACL_UNDEFINED_ID, elsewhere).
#ifndef OVERTIER_POSIX_ACL_XATTR_H_
#define OVERTIER_POSIX_ACL_XATTR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace overtier {

inline constexpr char kAclAccessXattr[] = "system.posix_acl_access";
inline constexpr char kAclDefaultXattr[] = "system.posix_acl_default";

inline bool IsPosixAclXattr(std::string_view name) {
  return name == kAclAccessXattr || name == kAclDefaultXattr;
}

// Entry tags (ACL_USER_OBJ... of linux/posix_acl.h); their numeric order is
// the order the kernel requires.
inline constexpr uint16_t kAclUserObj = 0x01;   // user::
inline constexpr uint16_t kAclUser = 0x02;      // user:ID:
inline constexpr uint16_t kAclGroupObj = 0x04;  // group::
inline constexpr uint16_t kAclGroup = 0x08;     // group:ID:
inline constexpr uint16_t kAclMask = 0x10;      // mask::
inline constexpr uint16_t kAclOther = 0x20;     // other::
inline constexpr uint32_t kAclUndefinedId = 0xffffffff;
inline constexpr uint32_t kAclXattrVersion = 2;  // POSIX_ACL_XATTR_VERSION

struct PosixAclEntry {
  uint16_t tag = 0;
  uint16_t perm = 0;              // r 4, w 2, x 1
  uint32_t id = kAclUndefinedId;  // user:ID / group:ID only
};

// The value of `entries`, in the order given (no checks: see
// image/posix_acl.h EncodePosixAcl for the kernel's rules).
inline std::string PosixAclXattrValue(const std::vector<PosixAclEntry>& entries) {
  std::string out;
  out.reserve(4 + 8 * entries.size());
  auto put = [&out](uint32_t v, int bytes) {
    for (int i = 0; i < bytes; i++) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(kAclXattrVersion, 4);
  for (const PosixAclEntry& e : entries) {
    put(e.tag, 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return out;
}

// The entries of a value; false if it is not of that layout (size, version).
inline bool ParsePosixAclXattr(std::string_view value, std::vector<PosixAclEntry>* out) {
  auto get = [&value](size_t at, int bytes) {
    uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(value[at + i]);
    return v;
  };
  if (value.size() < 4 || (value.size() - 4) % 8 != 0 || get(0, 4) != kAclXattrVersion)
    return false;
  out->clear();
  for (size_t at = 4; at < value.size(); at += 8) {
    out->push_back(PosixAclEntry{static_cast<uint16_t>(get(at, 2)),
                                 static_cast<uint16_t>(get(at + 2, 2)), get(at + 4, 4)});
  }
  return true;
}

}  // namespace overtier

#endif  // OVERTIER_POSIX_ACL_XATTR_H_
