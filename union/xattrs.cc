// Extended attributes (overlayfs' xattrs.c). The union's own bookkeeping
// xattrs (trusted.overlay.*, trusted.overtier.*, user.overtier.*) are
// invisible through the mount and can be neither set nor removed there. A
// user's own "trusted.overlay.X" is stored escaped, as
// "trusted.overlay.overlay.X", as the kernel overlayfs does (XattrNames::
// Escaped): an overlay stacked on this mount keeps its marks here without
// this union ever taking them for its own.
// One exception: user.overtier.norelease, the policy engine's pin
// (docs/POLICY.md), is listed and readable by everyone and set or removed
// by uid 0 only (EPERM for others), so that users cannot unpin what an
// administrator pinned, nor pin their files against the space policy.
//
// POSIX ACLs (system.posix_acl_access/_default) pass through like any other
// name: the kernel reads them here to check permissions (FUSE_POSIX_ACL,
// unless noacl) and, since the daemon sets them on the upper file, the
// upper file system keeps the mode bits in step with them (setfacl changes
// the group bits to the mask, chmod the mask). Only their ids are mapped,
// on mounts with uidmapping=/gidmapping= (acl_xattr.h).
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "overtier/tier_xattrs.h"
#include "union/acl_xattr.h"
#include "union/caller.h"
#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

namespace {
// The object whose xattrs the union shows: upper if copied up (metadata
// copies carry the xattrs too), else the lower one.
RealRef* XattrSource(Node* node) {
  if (node->upper.valid()) return &node->upper;
  if (node->is_dir()) return node->lower_dirs.empty() ? nullptr : &node->lower_dirs[0];
  return node->lower_meta.valid() ? &node->lower_meta : &node->lower;
}
}  // namespace

namespace {
bool Privileged(const Ctx& ctx) { return ctx.uid == 0; }

bool IsTrusted(std::string_view name) { return name.starts_with("trusted."); }
bool IsNoRelease(std::string_view name) { return name == kNoReleaseXattr; }
}  // namespace

// The name on the real object for `shown`, the name through the mount;
// nullptr for a name of the union's own that users may not reach this way
// (`allowed`: user.overtier.norelease, for the calls that allow it).
const char* UnionFs::RealXattrName(const char* shown, bool allowed, std::string* buf) const {
  if (xn_.IsEscapable(shown)) {
    *buf = xn_.Escaped(shown);
    return buf->c_str();
  }
  if (xn_.IsInternal(shown) && !(IsNoRelease(shown) && allowed)) return nullptr;
  return shown;
}

Status UnionFs::GetXattr(const Ctx& ctx, Node* node, const char* shown, std::string* value) {
  std::string buf;
  const char* name = RealXattrName(shown, true, &buf);
  if (name == nullptr) return Status::Errno(ENODATA);
  if (IsTrusted(name) && !Privileged(ctx)) return Status::Errno(ENODATA);
  // The kernel asks for security.capability before writes (to know
  // whether to drop file capabilities): before every write(2) without
  // FUSE_HANDLE_KILLPRIV_V2, before a file's first one with it. Answer a
  // known absence from memory instead of a syscall (shared/PERF-NOTES.md).
  const bool caps = std::string_view(name) == "security.capability";
  FdPtr fd;
  int layer;
  {
    std::lock_guard<std::mutex> g(node->mu);
    if (caps && node->no_caps_xattr) return Status::Errno(ENODATA);
    RealRef* ref = XattrSource(node);
    if (ref == nullptr) return Status::Errno(ESTALE);
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, ref, &fd));
    layer = ref->layer;
  }
  bool present = false;
  OVT_RETURN_IF_ERROR(GetXattrFd(fd->get(), name, value, &present));
  if (!present) {
    if (caps) {
      std::lock_guard<std::mutex> g(node->mu);
      node->no_caps_xattr = true;
    }
    return Status::Errno(ENODATA);
  }
  // Through an id-mapped lower the kernel has mapped the entries already.
  if (IsPosixAclXattr(name) && !(opts_.uidmap.empty() && opts_.gidmap.empty()) &&
      !layers_->layer(layer).idmapped && !MapAclIds(value, opts_.uidmap, opts_.gidmap, true).ok())
    return Status::Errno(EIO, std::string("malformed ") + name);
  return Status::OK();
}

Status UnionFs::ListXattr(const Ctx& ctx, Node* node, std::string* names) {
  FdPtr fd;
  {
    std::lock_guard<std::mutex> g(node->mu);
    RealRef* ref = XattrSource(node);
    if (ref == nullptr) return Status::Errno(ESTALE);
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, ref, &fd));
  }
  ProcPath pp(fd->get());
  std::string raw;
  for (;;) {
    ssize_t len = listxattr(pp.c_str(), nullptr, 0);
    if (len < 0) {
      if (errno == ENOTSUP)
        len = 0;
      else
        return Status::FromErrno();
    }
    raw.resize(len);
    if (len == 0) break;
    len = listxattr(pp.c_str(), raw.data(), raw.size());
    if (len >= 0) {
      raw.resize(len);
      break;
    }
    if (errno != ERANGE) return Status::FromErrno();
  }
  names->clear();
  for (size_t pos = 0; pos < raw.size();) {
    std::string_view n(raw.c_str() + pos);
    pos += n.size() + 1;
    if (n.empty() || (xn_.IsInternal(n) && !IsNoRelease(n)) || (IsTrusted(n) && !Privileged(ctx)))
      continue;
    names->append(xn_.IsEscaped(n) ? xn_.Unescaped(n) : std::string(n));
    names->push_back('\0');
  }
  return Status::OK();
}

Status UnionFs::SetXattr(const Ctx& ctx, Node* node, const char* shown, const void* value,
                         size_t size, int flags) {
  std::string buf;
  const char* name = RealXattrName(shown, Privileged(ctx), &buf);
  if (name == nullptr) return Status::Errno(EPERM);
  if (IsTrusted(name) && !Privileged(ctx)) return Status::Errno(EPERM);
  if (read_only_) return Status::Errno(EROFS);
  // ACL entries name users and groups as seen through the mount; the
  // layers hold the disk ids.
  std::string mapped;
  if (IsPosixAclXattr(name) && !(opts_.uidmap.empty() && opts_.gidmap.empty())) {
    mapped.assign(static_cast<const char*>(value), size);
    OVT_RETURN_IF_ERROR(MapAclIds(&mapped, opts_.uidmap, opts_.gidmap, false));
    value = mapped.data();
  }
  OVT_RETURN_IF_ERROR(CopyUp(node, false));
  FdPtr fd;
  OVT_RETURN_IF_ERROR(nodes_.Fd(node, &Node::upper, &fd));
  // As root: the kernel has checked that the caller owns the file (ACLs)
  // or may set the name.
  const ProcPath path(fd->get());
  if (setxattr(path.c_str(), name, value, size, flags) != 0) return Status::FromErrno();
  // Setting an access ACL clears the set-group-ID bit when the caller is
  // neither in the file's group nor holds CAP_FSETID
  // (posix_acl_update_mode). The upper file system sees the daemon (root)
  // set it and keeps the bit; the kernel's FUSE_SETXATTR_ACL_KILL_SGID says
  // so, but libfuse does not pass it on: decided here, from the caller.
  struct stat st;
  if (std::string_view(name) == kAclAccessXattr && stat(path.c_str(), &st) == 0 &&
      (st.st_mode & S_ISGID) != 0 && !CallerInGroupOrCapable(ctx, opts_.gidmap, st.st_gid) &&
      chmod(path.c_str(), st.st_mode & 07777 & ~S_ISGID) != 0)
    return Status::FromErrno("clear the set-group-ID bit");
  if (std::string_view(name) == "security.capability") {
    std::lock_guard<std::mutex> g(node->mu);
    node->no_caps_xattr = false;
  }
  return Status::OK();
}

Status UnionFs::RemoveXattr(const Ctx& ctx, Node* node, const char* shown) {
  std::string buf;
  const char* name = RealXattrName(shown, Privileged(ctx), &buf);
  if (name == nullptr) return Status::Errno(EPERM);
  if (IsTrusted(name) && !Privileged(ctx)) return Status::Errno(EPERM);
  if (read_only_) return Status::Errno(EROFS);
  // Removing what is not there must not copy the file up.
  std::string v;
  OVT_RETURN_IF_ERROR(GetXattr(ctx, node, shown, &v));
  OVT_RETURN_IF_ERROR(CopyUp(node, false));
  FdPtr fd;
  OVT_RETURN_IF_ERROR(nodes_.Fd(node, &Node::upper, &fd));
  if (removexattr(ProcPath(fd->get()).c_str(), name) != 0) return Status::FromErrno();
  return Status::OK();
}

}  // namespace overtier
