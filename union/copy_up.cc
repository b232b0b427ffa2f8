// Copy-up: bringing a lower object into the upper layer before it changes
// (overlayfs' copy_up.c).
//
// The copy is assembled in work/work under a temporary name, complete with
// data, owner, mode, xattrs and times, and only then renamed into place, so
// a crash leaves either no upper object or a whole one (work/work is
// emptied at the next mount). Data is fsynced before the rename unless the
// mount is volatile.
//
// chmod, chown, utimes, setxattr and rename need no data: the copy is then
// "metadata only" (overlayfs' metacopy): a sparse upper file of the right
// size with the overlay metacopy xattr, whose data is still read from the
// lower file until something writes it.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "overtier/posix_acl_xattr.h"
#include "overtier/printable.h"
#include "union/acl_xattr.h"
#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

namespace {
std::string IndexName(uint64_t key) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(key));
  return buf;
}
}  // namespace

Status UnionFs::SetImpure(Node* dir) {
  std::lock_guard<std::mutex> g(dir->mu);
  if (dir->impure) return Status::OK();
  FdPtr fd;
  OVT_RETURN_IF_ERROR(nodes_.FdLocked(dir, &dir->upper, &fd));
  if (fsetxattr(fd->get(), xn_.impure().c_str(), "y", 1, 0) != 0)
    return Status::FromErrno("mark directory impure");
  dir->impure = true;
  return Status::OK();
}

Status UnionFs::CopyUp(Node* node, bool with_data) {
  if (!layers_->has_upper() || read_only_) return Status::Errno(EROFS);
  bool has_upper;
  {
    std::lock_guard<std::mutex> g(node->mu);
    has_upper = node->upper.valid();
    if (has_upper && !node->indexed && !(with_data && node->metacopy)) return Status::OK();
  }
  Node* parent;
  std::string name;
  if (!nodes_.GetAlias(node, &parent, &name)) {
    // A name already gone: the object itself is in the upper layer, which
    // is all that an operation on it needs.
    if (!has_upper) return Status::Errno(ESTALE, "copy-up of an unlinked file");
    std::lock_guard<std::mutex> g(node->mu);
    return with_data && node->metacopy ? CopyUpData(node) : Status::OK();
  }
  OVT_RETURN_IF_ERROR(CopyUp(parent, false));
  Status s;
  {
    std::lock_guard<std::mutex> g(node->mu);
    s = CopyUpLocked(node, parent, name, with_data);
  }
  nodes_.MaybeEvict();
  return s;
}

Status UnionFs::CopyUpLocked(Node* node, Node* parent, const std::string& name, bool with_data) {
  const bool lazy = with_data && LazyCandidate(node);
  if (lazy && lazy_copy_up_prepare_ && (!node->upper.valid() || node->metacopy))
    lazy_copy_up_prepare_();
  if (node->upper.valid()) {
    if (node->indexed) {
      bool linked;
      OVT_RETURN_IF_ERROR(LinkFromIndexLocked(node, parent, name, &linked));
    }
    if (with_data && node->metacopy) return CopyUpData(node);
    return Status::OK();
  }
  if (lazy) {
    // Metadata first, then the data step adopts the image's content.
    OVT_RETURN_IF_ERROR(CopyUpNew(node, parent, name, false));
    return node->metacopy ? CopyUpData(node) : Status::OK();
  }
  return CopyUpNew(node, parent, name, with_data);
}

bool UnionFs::LazyCandidate(const Node* node) const { return lazy_copy_up_ && ServedLower(node); }

bool UnionFs::ServedLower(const Node* node) const {
  return node->is_reg() && node->lower.valid() && layers_->layer(node->lower.layer).served;
}

namespace {
// How many lower names of an indexed hard-link group still show it. The
// count is ours, but the upper directory is only a directory: a value that
// is not a number of links (edited by hand, cut short) counts as none, as
// the kernel overlayfs falls back to the real count on a bad
// overlay.nlink, and is reported, instead of becoming a link count of 2^63.
Status ReadLowerLinks(int fd, const std::string& xname, long* n) {
  std::string v;
  bool present = false;
  OVT_RETURN_IF_ERROR(GetXattrFd(fd, xname, &v, &present));
  *n = 0;
  if (!present) return Status::OK();
  long parsed = -1;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
  // Never more than ext4's or XFS's own link limit, let alone INT_MAX.
  constexpr long kMaxLinks = 1L << 31;
  if (ec == std::errc() && end == v.data() + v.size() && parsed >= 0 && parsed < kMaxLinks) {
    *n = parsed;
    return Status::OK();
  }
  static std::atomic<int64_t> last{0};
  if (LogNow(&last)) {
    std::fprintf(stderr,
                 "overtier: an indexed hard-link group in the upper layer has a malformed %s "
                 "\"%s\": counted as no lower names\n",
                 xname.c_str(), MessageSafe(v.substr(0, 40)).c_str());
  }
  return Status::OK();
}

Status WriteLowerLinks(int fd, const std::string& xname, long n) {
  std::string v = std::to_string(n < 0 ? 0 : n);
  if (setxattr(ProcPath(fd).c_str(), xname.c_str(), v.data(), v.size(), 0) != 0)
    return Status::FromErrno("update hard-link count");
  return Status::OK();
}
}  // namespace

Status UnionFs::IndexedNlink(int fd, nlink_t* n) {
  long left = 0;
  OVT_RETURN_IF_ERROR(ReadLowerLinks(fd, xn_.nlink(), &left));
  // Upper links minus the index entry, plus the lower names still showing it.
  *n = (*n > 0 ? *n - 1 : 0) + static_cast<nlink_t>(left);
  return Status::OK();
}

Status UnionFs::LinkFromIndexLocked(Node* node, Node* parent, const std::string& name,
                                    bool* linked) {
  *linked = false;
  FdPtr pupper, ufd;
  OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &pupper));
  struct stat st;
  if (fstatat(pupper->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return Status::OK();
  OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &ufd));
  OVT_RETURN_IF_ERROR(SetImpure(parent));
  const DirTimes times(pupper->get());
  if (linkat(ufd->get(), "", pupper->get(), name.c_str(), AT_EMPTY_PATH) != 0)
    return Status::FromErrno("link hard link from index");
  times.Restore();
  NotifyAttrChanged(parent);
  long left = 0;
  OVT_RETURN_IF_ERROR(ReadLowerLinks(ufd->get(), xn_.nlink(), &left));
  OVT_RETURN_IF_ERROR(WriteLowerLinks(ufd->get(), xn_.nlink(), left - 1));
  *linked = true;
  return Status::OK();
}

Status UnionFs::CopyUpData(Node* node) {
  FdPtr ufd, lfd;
  OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &ufd));
  OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->lower, &lfd));
  int dst = open(ProcPath(ufd->get()).c_str(), O_WRONLY | O_CLOEXEC);
  if (dst < 0) return Status::FromErrno("open upper for copy-up");
  int src = open(ProcPath(lfd->get()).c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC);
  if (src < 0) {
    Status s = Status::FromErrno("open lower for copy-up");
    close(dst);
    return s;
  }
  struct stat st;
  Status s = CheckLowerData(src, node->key);
  if (s.ok() && fstat(dst, &st) != 0) s = Status::FromErrno();
  bool adopted = false;
  if (s.ok()) {
    struct stat lst;
    fstat(src, &lst);
    if (LazyCandidate(node) && st.st_size == lst.st_size && st.st_size > 0) {
      // Lazy copy-up: no data moves; the image's content becomes the
      // upper file's archive (committed before the mark goes below).
      std::string what = "inode " + std::to_string(node->key);
      s = lazy_copy_up_(dst, src, what, &adopted);
    }
    if (s.ok() && !adopted) s = CopyData(src, dst, std::min(st.st_size, lst.st_size), sync_);
    if (s.ok() && !adopted && st.st_size != std::min(st.st_size, lst.st_size) &&
        ftruncate(dst, st.st_size) != 0)
      s = Status::FromErrno();
  }
  // The data was the file's all along: writing it into the upper file
  // changed nothing the user did, so their times stay (open(2) for writing
  // does not change a file's mtime). The kernel overlayfs leaves the copy's
  // own mtime here (docs/SEMANTICS.md).
  if (s.ok() && !adopted) {
    const struct timespec ts[2] = {st.st_atim, st.st_mtim};
    if (futimens(dst, ts) != 0) s = Status::FromErrno("keep times after copy-up");
  }
  if (s.ok() && !adopted && sync_ && fsync(dst) != 0) s = Status::FromErrno("fsync copy-up");
  // Removing the mark is the commit point: until then the lower file is
  // still the source of the data, also after a crash.
  if (s.ok() && fremovexattr(dst, xn_.metacopy().c_str()) != 0 && errno != ENODATA)
    s = Status::FromErrno("clear metacopy");
  if (s.ok() && adopted && lazy_copy_up_committed_) lazy_copy_up_committed_(dst);
  if (s.ok()) {
    fremovexattr(dst, xn_.redirect().c_str());
    node->metacopy = false;
    node->data_gen.fetch_add(1, std::memory_order_release);
  }
  close(src);
  close(dst);
  return s;
}

Status UnionFs::CopyUpNew(Node* node, Node* parent, const std::string& name, bool with_data) {
  FdPtr pupper;
  OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &pupper));
  FdPtr src;
  // The metadata's source; a lower metadata-only copy keeps its data in
  // node->lower.
  RealRef* srcref = node->is_dir() ? (node->lower_dirs.empty() ? nullptr : &node->lower_dirs[0])
                    : node->lower_meta.valid() ? &node->lower_meta
                                               : &node->lower;
  if (srcref == nullptr) return Status::Errno(ESTALE);
  OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, srcref, &src));
  FdPtr data = src;
  if (srcref == &node->lower_meta) OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->lower, &data));
  struct stat st;
  if (fstat(src->get(), &st) != 0) return Status::FromErrno("stat copy-up source");

  const int work = layers_->work_fd();
  const int pfd = pupper->get();
  const bool reg = S_ISREG(st.st_mode);
  const bool linked = reg && st.st_nlink > 1;
  const std::string iname = IndexName(node->key);

  // Another name of this hard-linked file was copied up already: link to it.
  if (linked) {
    int ifd = openat(layers_->index_fd(), iname.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (ifd >= 0) {
      node->upper.layer = 0;
      node->indexed = true;
      node->has_origin = true;
      Status hs = GetHandle(ifd, "", &node->upper.handle);
      nodes_.SetFdLocked(node, &node->upper, ifd);
      OVT_RETURN_IF_ERROR(hs);
      std::string v;
      bool present = false;
      OVT_RETURN_IF_ERROR(GetXattrFd(ifd, xn_.metacopy(), &v, &present));
      node->metacopy = present;
      bool done;
      OVT_RETURN_IF_ERROR(LinkFromIndexLocked(node, parent, name, &done));
      if (with_data && node->metacopy) return CopyUpData(node);
      return Status::OK();
    }
  }

  const std::string tmp = TempName("cu.");
  int dfd = -1;  // fd of the new object (O_PATH for non-regular non-dirs)
  Status s;
  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(work, tmp.c_str(), st.st_mode & 07777) != 0) return Status::FromErrno("mkdir");
    dfd = openat(work, tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  } else if (reg) {
    dfd = openat(work, tmp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, st.st_mode & 07777);
    if (dfd >= 0) {
      if (with_data) {
        int rfd = open(ProcPath(data->get()).c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC);
        if (rfd < 0) {
          s = Status::FromErrno("open lower for copy-up");
        } else {
          s = CheckLowerData(rfd, node->key);
          if (s.ok()) s = CopyData(rfd, dfd, st.st_size, sync_);
          close(rfd);
        }
        if (s.ok() && sync_ && fsync(dfd) != 0) s = Status::FromErrno("fsync copy-up");
      } else {
        if (ftruncate(dfd, st.st_size) != 0) s = Status::FromErrno();
        if (s.ok() && fsetxattr(dfd, xn_.metacopy().c_str(), "", 0, 0) != 0)
          s = Status::FromErrno("set metacopy");
      }
    }
  } else if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX + 1];
    ssize_t n = readlinkat(src->get(), "", target, PATH_MAX);
    if (n < 0) return Status::FromErrno("readlink");
    target[n] = '\0';
    if (symlinkat(target, work, tmp.c_str()) != 0) return Status::FromErrno("symlink");
    dfd = openat(work, tmp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  } else {
    if (mknodat(work, tmp.c_str(), st.st_mode, st.st_rdev) != 0) return Status::FromErrno("mknod");
    dfd = openat(work, tmp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  }
  if (dfd < 0 && s.ok()) s = Status::FromErrno("open copy-up target");

  // Through the fd's magic link, the xattr calls reach the object itself,
  // symlinks included (they are not followed further).
  // Ids read through an id-mapped lower are the mount's: the upper keeps
  // disk ids (Layer::idmapped).
  const bool mount_ids = layers_->layer(srcref->layer).idmapped;
  std::function<Status(std::string_view, std::string*)> to_disk;
  if (mount_ids && !(opts_.uidmap.empty() && opts_.gidmap.empty())) {
    to_disk = [this](std::string_view n, std::string* v) {
      return IsPosixAclXattr(n) ? MapAclIds(v, opts_.uidmap, opts_.gidmap, false) : Status::OK();
    };
  }
  if (s.ok()) {
    s = CopyXattrs(
        src->get(), dfd, [this](std::string_view n) { return xn_.IsInternal(n); }, to_disk);
  }
  const uid_t uid = mount_ids ? MapIdToDisk(opts_.uidmap, st.st_uid) : st.st_uid;
  const gid_t gid = mount_ids ? MapIdToDisk(opts_.gidmap, st.st_gid) : st.st_gid;
  if (s.ok() && fchownat(dfd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    s = Status::FromErrno("chown copy-up");
  // chown clears set-user-ID bits: the mode goes on after it.
  if (s.ok() && !S_ISLNK(st.st_mode) &&
      fchmodat(AT_FDCWD, ProcPath(dfd).c_str(), st.st_mode & 07777, 0) != 0)
    s = Status::FromErrno("chmod copy-up");
  if (s.ok()) {
    uint64_t key = node->key;
    if (setxattr(ProcPath(dfd).c_str(), xn_.origin().c_str(), &key, sizeof(key), 0) != 0)
      s = Status::FromErrno("set origin");
  }
  if (s.ok()) {
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    if (utimensat(work, tmp.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
      s = Status::FromErrno("set times");
  }
  if (s.ok() && linked) s = WriteLowerLinks(dfd, xn_.nlink(), static_cast<long>(st.st_nlink) - 1);
  if (s.ok() && linked && linkat(work, tmp.c_str(), layers_->index_fd(), iname.c_str(), 0) != 0 &&
      errno != EEXIST)
    s = Status::FromErrno("index hard link");
  if (s.ok()) s = SetImpure(parent);
  const DirTimes times(pfd);
  if (s.ok() && renameat2(work, tmp.c_str(), pfd, name.c_str(), RENAME_NOREPLACE) != 0)
    s = Status::FromErrno("move copy-up into place");
  if (!s.ok()) {
    if (dfd >= 0) close(dfd);
    (void)RemoveTreeAt(work, tmp.c_str());
    return s;
  }
  times.Restore();
  NotifyAttrChanged(parent);  // its ctime moved, behind the kernel's back
  node->upper.layer = 0;
  if (layers_->layer(0).handles) {
    Status hs = GetHandle(dfd, "", &node->upper.handle);
    if (!hs.ok()) {
      close(dfd);
      return hs;
    }
  }
  if (reg) {
    // Cache an O_PATH fd like lookup does.
    int pfd2 = openat(pfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (pfd2 < 0) return Status::FromErrno();
    dfd = pfd2;
  }
  nodes_.SetFdLocked(node, &node->upper, dfd);
  node->metacopy = reg && !with_data;
  node->indexed = linked;
  node->has_origin = true;
  if (reg && with_data) node->data_gen.fetch_add(1, std::memory_order_release);
  return Status::OK();
}

}  // namespace overtier
