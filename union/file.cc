// Open files (overlayfs' file.c): which real file an open reaches, and the
// calls that act on an open file.
//
// Opening for writing (or with O_TRUNC) copies the file up first; a
// read-only open of a file not copied up reads the lower file, and keeps
// reading it even if another open copies the file up later (as overlayfs).
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

Status UnionFs::Open(const Ctx& ctx, Node* node, int flags, std::unique_ptr<OpenFile>* out) {
  if (node->is_dir()) return Status::Errno(EISDIR);
  const int acc = flags & O_ACCMODE;
  const bool write = acc != O_RDONLY || (flags & O_TRUNC);
  if (write) {
    if (read_only_) return Status::Errno(EROFS);
    // O_TRUNC throws the data away: a metadata-only copy is enough.
    OVT_RETURN_IF_ERROR(CopyUp(node, !(flags & O_TRUNC)));
  }
  FdPtr fd;
  bool upper;
  uint32_t data_gen;
  {
    std::lock_guard<std::mutex> g(node->mu);
    data_gen = node->data_gen.load();
    upper = node->upper.valid() && !(node->metacopy && !write);
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, upper ? &node->upper : &node->lower, &fd));
  }
  nodes_.MaybeEvict();  // FdLocked may have reopened an evicted descriptor
  // The object is resolved already: O_NOFOLLOW would refuse the magic link.
  // Reading a lower file must not change it, not even its atime.
  // O_APPEND stays with the kernel, which sends every WRITE with its offset
  // (on an O_APPEND fd, pwrite would append the mmap write-back of a page).
  int rflags = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_APPEND);
  if (!upper) rflags |= O_NOATIME;
  int rfd = open(ProcPath(fd->get()).c_str(), rflags | O_CLOEXEC);
  // An append-only file (chattr +a) opens for writing only with O_APPEND;
  // writes into it can only append anyway.
  if (rfd < 0 && errno == EPERM && (flags & O_APPEND) && upper)
    rfd = open(ProcPath(fd->get()).c_str(), rflags | O_APPEND | O_CLOEXEC);
  if (rfd < 0) return Status::FromErrno();
  if (!upper) {
    Status s = CheckLowerData(rfd, node->key);
    if (!s.ok()) {
      close(rfd);
      return s;
    }
  }
  if (write && (flags & O_TRUNC)) {
    std::lock_guard<std::mutex> g(node->mu);
    if (node->metacopy) {
      // Truncated: nothing is left to read from the lower file.
      fremovexattr(rfd, xn_.metacopy().c_str());
      node->metacopy = false;
      node->data_gen.fetch_add(1, std::memory_order_release);
    }
  }
  if (write && (flags & O_TRUNC)) {
    // The truncate of open(2) clears set-user-ID and set-group-ID as any
    // truncate by the caller does; the upper file system saw root do it.
    bool dropped;
    Status s = DropSuidSgid(ctx, node, &dropped);
    if (!s.ok()) {
      close(rfd);
      return s;
    }
    if (dropped) NotifyAttrChanged(node);
  }
  auto of = std::make_unique<OpenFile>();
  of->node = node;
  of->fd = rfd;
  of->upper = upper;
  of->writable = acc != O_RDONLY;
  of->data_gen = data_gen;
  if (!upper) {
    std::lock_guard<std::mutex> g(node->mu);
    ++node->lower_opens;
    of->counts_lower_open = true;
  }
  *out = std::move(of);
  return Status::OK();
}

Status UnionFs::CopyUpForWrite(Node* node) {
  if (read_only_) return Status::Errno(EROFS);
  return CopyUp(node, true);
}

bool UnionFs::WriteOpenCopiesData(Node* node) {
  std::lock_guard<std::mutex> g(node->mu);
  return node->is_reg() && (!node->upper.valid() || node->metacopy);
}

int UnionFs::ReadFd(OpenFile* of) {
  Node* node = of->node;
  if (of->upper || node->data_gen.load(std::memory_order_acquire) == of->data_gen) return of->fd;
  std::lock_guard<std::mutex> g(of->mu);
  uint32_t gen = node->data_gen.load(std::memory_order_acquire);
  if (of->upper || gen == of->data_gen) return of->fd;
  FdPtr ufd;
  if (!nodes_.Fd(node, &Node::upper, &ufd).ok()) return of->fd;
  int nfd = open(ProcPath(ufd->get()).c_str(), O_RDONLY | O_CLOEXEC);
  if (nfd < 0) return of->fd;  // keep reading what we have
  // The old fd may be in use by a concurrent read: close it at release.
  of->retired.push_back(of->fd.exchange(nfd));
  of->upper = true;
  of->data_gen = gen;
  return nfd;
}

Status UnionFs::CreateFile(const Ctx& ctx, Node* parent, std::string_view name, mode_t mode,
                           int flags, Entry* entry, std::unique_ptr<OpenFile>* out) {
  int rfd = -1;
  const int rflags =
      (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND)) | O_CREAT | O_EXCL;
  Status s = CreateObject(
      ctx, parent, name, S_IFREG,
      [&](int dfd, const char* n, mode_t umask) {
        rfd = openat(dfd, n, rflags | O_CLOEXEC, mode & 07777 & ~umask);
        if (rfd < 0) return Status::FromErrno();
        return Status::OK();
      },
      entry);
  if (!s.ok()) {
    if (rfd >= 0) close(rfd);
    return s;
  }
  auto of = std::make_unique<OpenFile>();
  of->node = entry->node;
  of->fd = rfd;
  of->upper = true;
  of->writable = (flags & O_ACCMODE) != O_RDONLY;
  *out = std::move(of);
  return Status::OK();
}

Status UnionFs::Fsync(OpenFile* of, bool datasync) {
  if (!sync_) return Status::OK();  // volatile: like overlayfs, fsync is a no-op
  if ((datasync ? fdatasync(of->fd) : fsync(of->fd)) != 0) return Status::FromErrno();
  return Status::OK();
}

Status UnionFs::Fallocate(OpenFile* of, int mode, off_t offset, off_t length) {
  if (!of->upper || !of->writable) return Status::Errno(EBADF);
  if (fallocate(of->fd, mode, offset, length) != 0) return Status::FromErrno();
  return Status::OK();
}

Status UnionFs::OpenUpperData(Node* node, int flags, int* fd) {
  if (!node->is_reg()) return Status::InvalidArgument("not a regular file");
  FdPtr ufd;
  {
    std::lock_guard<std::mutex> g(node->mu);
    if (!node->upper.valid() || node->metacopy)
      return Status::InvalidArgument("not in the upper layer");
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &ufd));
  }
  *fd = open(ProcPath(ufd->get()).c_str(), flags | O_CLOEXEC);
  if (*fd < 0) return Status::FromErrno("opening the upper file");
  return Status::OK();
}

}  // namespace overtier
