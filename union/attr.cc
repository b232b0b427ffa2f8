// Attributes: stat, chmod/chown/utimes/truncate, readlink, statfs
// (overlayfs' inode.c).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "union/caller.h"
#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

void UnionFs::FixupAttr(Node* node, int layer, struct stat* st) {
  st->st_ino = node->key;
  if (!layers_->layer(layer).idmapped) {
    st->st_uid = MapIdToMount(opts_.uidmap, st->st_uid);
    st->st_gid = MapIdToMount(opts_.gidmap, st->st_gid);
  }
  if (opts_.squash_uid >= 0) st->st_uid = static_cast<uid_t>(opts_.squash_uid);
  if (opts_.squash_gid >= 0) st->st_gid = static_cast<gid_t>(opts_.squash_gid);
}

namespace {

// A lower object a ServedTree answers for: its tree, else null.
ServedTree* TreeOf(const LayerSet& layers, const RealRef& ref) {
  return ref.tree_ino != 0 ? layers.layer(ref.layer).tree : nullptr;
}

// Where a stat of a real object comes from: its fd, or its layer's tree.
struct StatSource {
  FdPtr fd;
  ServedTree* tree = nullptr;
  uint64_t ino = 0;
  Status Stat(struct stat* st) const {
    if (tree != nullptr) return tree->Stat(ino, st);
    return fstat(fd->get(), st) == 0 ? Status::OK() : Status::FromErrno();
  }
};

}  // namespace

Status UnionFs::StatNode(Node* node, struct stat* out) {
  StatSource src, lsrc;
  bool merged_dir, metacopy, indexed;
  int layer = 0;  // of the object src stats
  {
    std::lock_guard<std::mutex> g(node->mu);
    auto source = [&](RealRef* ref, StatSource* to) -> Status {
      to->tree = TreeOf(*layers_, *ref);
      to->ino = ref->tree_ino;
      return to->tree != nullptr ? Status::OK() : nodes_.FdLocked(node, ref, &to->fd);
    };
    if (node->upper.valid()) {
      OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &src.fd));
      layer = node->upper.layer;
    } else if (node->is_dir()) {
      if (node->lower_dirs.empty()) return Status::Errno(ESTALE);
      OVT_RETURN_IF_ERROR(source(&node->lower_dirs[0], &src));
      layer = node->lower_dirs[0].layer;
    } else {
      RealRef* meta = node->lower_meta.valid() ? &node->lower_meta : &node->lower;
      OVT_RETURN_IF_ERROR(source(meta, &src));
      layer = meta->layer;
    }
    metacopy =
        (node->upper.valid() ? node->metacopy : node->lower_meta.valid()) && node->lower.valid();
    indexed = node->indexed && node->upper.valid();
    if (metacopy) OVT_RETURN_IF_ERROR(source(&node->lower, &lsrc));
    merged_dir = node->is_dir() &&
                 (node->upper.valid() ? !node->lower_dirs.empty() : node->lower_dirs.size() > 1);
  }
  // FdLocked may have reopened an evicted descriptor: keep within budget
  // (not under node->mu, which eviction try-locks).
  nodes_.MaybeEvict();
  OVT_RETURN_IF_ERROR(src.Stat(out));
  if (metacopy) {
    struct stat lst;
    if (lsrc.Stat(&lst).ok()) out->st_blocks = lst.st_blocks;
  }
  // Like overlayfs: a merged directory's link count is unknown, and 1 tells
  // find(1) not to use it to skip subdirectories.
  if (merged_dir) out->st_nlink = 1;
  if (indexed) OVT_RETURN_IF_ERROR(IndexedNlink(src.fd->get(), &out->st_nlink));
  FixupAttr(node, layer, out);
  return Status::OK();
}

Status UnionFs::GetAttr(Node* node, const OpenFile* of, struct stat* out) {
  if (of != nullptr && of->upper && of->fd >= 0) {
    // fstat of the open file: right even when the name is gone (nlink 0).
    if (fstat(of->fd, out) != 0) return Status::FromErrno();
    bool indexed;
    {
      std::lock_guard<std::mutex> g(node->mu);
      indexed = node->indexed;
    }
    if (indexed && out->st_nlink > 0) OVT_RETURN_IF_ERROR(IndexedNlink(of->fd, &out->st_nlink));
    FixupAttr(node, /*layer=*/0, out);
    return Status::OK();
  }
  return StatNode(node, out);
}

Status UnionFs::SetAttr(const Ctx& ctx, Node* node, const SetAttrRequest& req, OpenFile* of,
                        struct stat* out) {
  if (read_only_) return Status::Errno(EROFS);
  bool open_upper = of != nullptr && of->upper && of->fd >= 0;
  if (!(req.mode || req.uid || req.gid || req.size || req.atime || req.mtime || req.ctime)) {
    // Nothing to set: the kernel's file_remove_privs before a write by
    // this caller (the only request that arrives empty). With
    // FUSE_HANDLE_KILLPRIV_V2 the FUSE client strips the bits it would
    // clear and leaves the clearing to us: a passthrough write never
    // reaches the daemon, so this is where it happens.
    bool dropped;
    OVT_RETURN_IF_ERROR(DropSuidSgid(ctx, node, &dropped));
    return open_upper ? GetAttr(node, of, out) : StatNode(node, out);
  }
  if (!(req.mode || req.uid || req.gid || req.size || req.atime || req.mtime)) {
    // ctime alone: the kernel (writeback cache) reports a change it made;
    // the real file system keeps its own ctime, nothing to copy up.
    return open_upper ? GetAttr(node, of, out) : StatNode(node, out);
  }
  if (req.ctime &&
      !(req.mode || req.uid || req.gid || req.size || req.atime_now || req.mtime_now)) {
    // The writeback cache reports the times it holds (after an unlink, a
    // link, a rename of the file): most often the file's own. Setting them
    // to what they are is no reason for a copy-up, and an unlinked lower
    // file cannot be copied up at all; the kernel would keep the error for
    // the next close.
    struct stat cur;
    OVT_RETURN_IF_ERROR(GetAttr(node, of, &cur));
    auto same = [](const timespec& a, const timespec& b) {
      return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
    };
    if ((!req.atime || same(cur.st_atim, req.values.st_atim)) &&
        (!req.mtime || same(cur.st_mtim, req.values.st_mtim))) {
      // The kernel does not read this answer, and after an unlink it keeps
      // the link count it guessed (0, where a lower file opened read-only
      // still has its link): have it ask again.
      NotifyAttrChanged(node);
      *out = cur;
      return Status::OK();
    }
  }
  if (!open_upper) {
    // A size change needs the data; the rest is metadata (no data copy).
    bool with_data = req.size && !(req.values.st_size == 0);
    OVT_RETURN_IF_ERROR(CopyUp(node, with_data));
  }
  FdPtr fd;
  OVT_RETURN_IF_ERROR(nodes_.Fd(node, &Node::upper, &fd));
  ProcPath pp(fd->get());
  if (req.uid || req.gid) {
    uid_t uid = req.uid ? MapIdToDisk(opts_.uidmap, req.values.st_uid) : static_cast<uid_t>(-1);
    gid_t gid = req.gid ? MapIdToDisk(opts_.gidmap, req.values.st_gid) : static_cast<gid_t>(-1);
    if (fchownat(fd->get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return Status::FromErrno();
  }
  if (req.mode) {
    if (node->type == S_IFLNK) return Status::Errno(EOPNOTSUPP);
    if (fchmodat(AT_FDCWD, pp.c_str(), req.values.st_mode & 07777, 0) != 0)
      return Status::FromErrno();
  }
  if (req.size) {
    int tfd = open_upper && of->writable ? of->fd.load() : -1;
    int own = -1;
    if (tfd < 0) {
      own = open(pp.c_str(), O_WRONLY | O_CLOEXEC);
      if (own < 0) return Status::FromErrno();
      tfd = own;
    }
    int rc = ftruncate(tfd, req.values.st_size);
    int err = errno;
    if (rc == 0) {
      // A truncate to zero needed no data copy: the upper file now holds
      // all of it (nothing), so it is no longer a metadata-only copy.
      std::lock_guard<std::mutex> g(node->mu);
      if (node->metacopy) {
        fremovexattr(tfd, xn_.metacopy().c_str());
        node->metacopy = false;
        node->data_gen.fetch_add(1, std::memory_order_release);
      }
    }
    if (own >= 0) close(own);
    if (rc != 0) return Status::Errno(err);
    if (req.kill_suidgid) {
      bool dropped;
      OVT_RETURN_IF_ERROR(DropSuidSgid(ctx, node, &dropped));
    }
  }
  if (req.atime || req.mtime) {
    struct timespec ts[2];
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    if (req.atime) ts[0] = req.atime_now ? timespec{0, UTIME_NOW} : req.values.st_atim;
    if (req.mtime) ts[1] = req.mtime_now ? timespec{0, UTIME_NOW} : req.values.st_mtim;
    int rc;
    if (node->type == S_IFLNK) {
      // The symlink's own times, through its O_PATH descriptor (Linux
      // 5.8+). Not through a name: a hard-linked symlink may have lost the
      // name the node knew it by (an unlink of that one) and keep others.
      rc = utimensat(fd->get(), "", ts, AT_EMPTY_PATH);
      Node* parent;
      std::string name;
      if (rc != 0 && errno == EINVAL && nodes_.GetAlias(node, &parent, &name)) {
        FdPtr pfd;
        OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &pfd));
        rc = utimensat(pfd->get(), name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
      }
    } else if (open_upper) {
      rc = futimens(of->fd, ts);
    } else {
      rc = utimensat(AT_FDCWD, pp.c_str(), ts, 0);
    }
    if (rc != 0) return Status::FromErrno();
  }
  if (open_upper) return GetAttr(node, of, out);
  return StatNode(node, out);
}

bool UnionFs::UpperHandle(Node* node, std::string* raw) {
  std::lock_guard<std::mutex> g(node->mu);
  if (!node->upper.valid() || node->upper.handle.empty()) return false;
  *raw = node->upper.handle;
  return true;
}

Status UnionFs::DropSuidSgid(const Ctx& ctx, Node* node, bool* dropped) {
  *dropped = false;
  FdPtr fd;
  {
    std::lock_guard<std::mutex> g(node->mu);
    if (!node->upper.valid()) return Status::OK();  // not written to
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &fd));
  }
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return Status::FromErrno();
  if (!S_ISREG(st.st_mode) || (st.st_mode & (S_ISUID | S_ISGID)) == 0) return Status::OK();
  // Only now the caller's credentials: most files have neither bit.
  const CallerCreds c = ReadCallerCreds(ctx, opts_.gidmap);
  const mode_t drop = SuidSgidToDrop(st.st_mode, c.cap_fsetid, c.InGroup(st.st_gid));
  if (drop == 0) return Status::OK();
  if (fchmodat(AT_FDCWD, ProcPath(fd->get()).c_str(), st.st_mode & 07777 & ~drop, 0) != 0)
    return Status::FromErrno("clear the set-user-ID/set-group-ID bits");
  *dropped = true;
  return Status::OK();
}

Status UnionFs::ReadLink(Node* node, std::string* target) {
  if (node->type != S_IFLNK) return Status::Errno(EINVAL);
  FdPtr fd;
  ServedTree* tree;
  uint64_t ino;
  {
    std::lock_guard<std::mutex> g(node->mu);
    RealRef* ref = node->upper.valid() ? &node->upper : &node->lower;
    tree = TreeOf(*layers_, *ref);
    ino = ref->tree_ino;
    if (tree == nullptr) OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, ref, &fd));
  }
  if (tree != nullptr) return tree->ReadLink(ino, target);
  char buf[PATH_MAX + 1];
  ssize_t n = readlinkat(fd->get(), "", buf, sizeof(buf));
  if (n < 0) return Status::FromErrno();
  target->assign(buf, n);
  return Status::OK();
}

Status UnionFs::FileAttrIoctl(Node* node, unsigned cmd, void* arg) {
  const bool set = cmd == FS_IOC_SETFLAGS || cmd == FS_IOC_FSSETXATTR;
  if (!set && cmd != FS_IOC_GETFLAGS && cmd != FS_IOC_FSGETXATTR) return Status::Errno(ENOTTY);
  if (!node->is_reg() && !node->is_dir()) return Status::Errno(ENOTTY);
  if (set) {
    if (read_only_) return Status::Errno(EROFS);
    OVT_RETURN_IF_ERROR(CopyUp(node, false));
  }
  FdPtr fd;
  {
    std::lock_guard<std::mutex> g(node->mu);
    RealRef* ref = node->upper.valid()        ? &node->upper
                   : node->lower_meta.valid() ? &node->lower_meta
                   : !node->is_dir()          ? &node->lower
                   : node->lower_dirs.empty() ? nullptr
                                              : &node->lower_dirs[0];
    if (ref == nullptr) return Status::Errno(ESTALE);
    if (TreeOf(*layers_, *ref) != nullptr) {
      // An image keeps no inode flags.
      if (cmd == FS_IOC_GETFLAGS) *static_cast<int*>(arg) = 0;
      if (cmd == FS_IOC_FSGETXATTR) std::memset(arg, 0, sizeof(struct fsxattr));
      return Status::OK();
    }
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, ref, &fd));
  }
  // The flags calls need a real open (not O_PATH); reading stays traceless.
  const int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (set ? 0 : O_NOATIME) |
                    (node->is_dir() ? O_DIRECTORY : 0);
  int rfd = open(ProcPath(fd->get()).c_str(), flags);
  if (rfd < 0) return Status::FromErrno();
  int rc = ioctl(rfd, cmd, arg);
  Status s = rc == 0 ? Status::OK() : Status::FromErrno();
  close(rfd);
  return s;
}

Status UnionFs::StatFs(struct statvfs* out) {
  const Layer& l = layers_->layer(0);
  if (fstatvfs(l.root_fd, out) != 0) return Status::FromErrno();
  out->f_namemax = NAME_MAX;
  return Status::OK();
}

}  // namespace overtier
