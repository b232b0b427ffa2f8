#include "image/posix_acl.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cerrno>
#include <tuple>

namespace overtier {

namespace {

constexpr size_t kXattrSizeMax = 65536;  // XATTR_SIZE_MAX

const char* TagName(uint16_t tag) {
  switch (tag) {
    case kAclUserObj:
      return "user::";
    case kAclUser:
      return "user:ID:";
    case kAclGroupObj:
      return "group::";
    case kAclGroup:
      return "group:ID:";
    case kAclMask:
      return "mask::";
    case kAclOther:
      return "other::";
  }
  return "unknown tag";
}

bool KnownTag(uint16_t tag) {
  return tag == kAclUserObj || tag == kAclUser || tag == kAclGroupObj || tag == kAclGroup ||
         tag == kAclMask || tag == kAclOther;
}

}  // namespace

Status EncodePosixAcl(std::vector<PosixAclEntry> entries, std::string* value) {
  value->clear();
  if (4 + 8 * entries.size() > kXattrSizeMax) {
    return Status::InvalidArgument("ACL of " + std::to_string(entries.size()) +
                                   " entries: larger than an xattr can be");
  }
  for (PosixAclEntry& e : entries) {
    if (e.tag != kAclUser && e.tag != kAclGroup) e.id = kAclUndefinedId;
  }
  std::sort(entries.begin(), entries.end(), [](const PosixAclEntry& a, const PosixAclEntry& b) {
    return std::tie(a.tag, a.id) < std::tie(b.tag, b.id);
  });
  int count[0x40] = {};
  for (size_t i = 0; i < entries.size(); i++) {
    const PosixAclEntry& e = entries[i];
    const bool named = e.tag == kAclUser || e.tag == kAclGroup;
    if (!KnownTag(e.tag)) {
      return Status::InvalidArgument("ACL entry with tag " + std::to_string(e.tag));
    }
    if ((e.perm & ~7) != 0) {
      return Status::InvalidArgument(std::string("ACL entry ") + TagName(e.tag) +
                                     " with permission bits beyond rwx");
    }
    if (named && e.id == kAclUndefinedId) {
      return Status::InvalidArgument(std::string("ACL entry ") + TagName(e.tag) + " with id " +
                                     std::to_string(kAclUndefinedId) + " (no id)");
    }
    if (i > 0 && entries[i - 1].tag == e.tag && (!named || entries[i - 1].id == e.id)) {
      return Status::InvalidArgument(std::string("ACL entry ") + TagName(e.tag) +
                                     (named ? " for id " + std::to_string(e.id) : "") + " twice");
    }
    count[e.tag]++;
  }
  for (uint16_t tag : {kAclUserObj, kAclGroupObj, kAclOther}) {
    if (count[tag] != 1) {
      return Status::InvalidArgument(std::string("ACL without a ") + TagName(tag) + " entry");
    }
  }
  if ((count[kAclUser] > 0 || count[kAclGroup] > 0) && count[kAclMask] == 0) {
    return Status::InvalidArgument("ACL with named entries but no mask:: entry");
  }
  *value = PosixAclXattrValue(entries);
  return Status::OK();
}

Status ResolveAclName(uint16_t tag, const std::string& name, uint32_t* id) {
  const bool user = tag == kAclUser;
  std::string buf(16384, '\0');
  for (;;) {
    int r;
    bool found;
    if (user) {
      struct passwd pw, *res = nullptr;
      r = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res);
      found = r == 0 && res != nullptr;
      if (found) *id = res->pw_uid;
    } else {
      struct group gr, *res = nullptr;
      r = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res);
      found = r == 0 && res != nullptr;
      if (found) *id = res->gr_gid;
    }
    if (r == ERANGE && buf.size() < (size_t{1} << 24)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (found) return Status::OK();
    return Status::NotFound(std::string(user ? "user" : "group") + " '" + name +
                            "' is not known on this host");
  }
}

}  // namespace overtier
