// Directory operations: creating, linking, removing and renaming names
// (overlayfs' dir.c).
//
// New names go to the upper layer. A name that hides a lower entry is
// removed by leaving a whiteout; a name created over a whiteout is built in
// the work directory and swapped in atomically, a directory made there
// being opaque. A renamed directory that merges lower directories keeps
// them through an absolute redirect xattr, so rename(2) of a lower or
// merged directory never returns EXDEV.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "union/acl_xattr.h"
#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

namespace {
// Upper entry state of parent/name.
enum class UpperState { kNone, kWhiteout, kObject };

// `files`: whiteouts are ".wh.NAME" files (LayerSet::whiteout_files), so
// an absent name may still be whited out.
Status UpperStateAt(int pfd, const char* name, bool files, UpperState* state, struct stat* st) {
  if (fstatat(pfd, name, st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) return Status::FromErrno();
    *state = UpperState::kNone;
    if (files && fstatat(pfd, AufsWhiteoutName(name).c_str(), st, AT_SYMLINK_NOFOLLOW) == 0)
      *state = UpperState::kWhiteout;
    return Status::OK();
  }
  *state = IsWhiteoutStat(*st) ? UpperState::kWhiteout : UpperState::kObject;
  return Status::OK();
}

// A whiteout of `name` in dirfd: a 0/0 character device at the name, or
// with `files` an empty ".wh.NAME" beside it (an existing one is fine).
Status MakeWhiteoutAt(int dirfd, const char* name, bool files) {
  if (!files) {
    if (mknodat(dirfd, name, S_IFCHR | 0, makedev(0, 0)) != 0) return Status::FromErrno("whiteout");
    return Status::OK();
  }
  const std::string wh = AufsWhiteoutName(name);
  if (wh.size() > NAME_MAX) return Status::Errno(ENAMETOOLONG, "whiteout name");
  int fd = openat(dirfd, wh.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("whiteout");
  close(fd);
  return Status::OK();
}

// Drops a ".wh.NAME" whiteout once `name` exists again (files mode).
void DropWhiteoutFile(int dirfd, const std::string& name) {
  unlinkat(dirfd, AufsWhiteoutName(name).c_str(), 0);
}

// The upper directory pfd's default ACL, if it has one: new objects made
// in it inherit it and the umask does not apply (POSIX.1e; the upper file
// system does the inheriting). "" when it has none, or the file system
// has no ACLs.
std::string DefaultAcl(int pfd) {
  std::string v;
  bool present = false;
  if (!GetXattrFd(pfd, kAclDefaultXattr, &v, &present).ok() || !present) v.clear();
  return v;
}

// A directory work/name with the default ACL `acl`, opened into *fd: an
// object made in it inherits what it would inherit in the directory that
// ACL comes from (for names built in the work directory, whose own ACLs
// LayerSet removes).
Status MakeAclScratch(int work, const std::string& name, const std::string& acl, int* fd) {
  if (mkdirat(work, name.c_str(), 0700) != 0) return Status::FromErrno("mkdir in work");
  *fd = openat(work, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*fd < 0 || fsetxattr(*fd, kAclDefaultXattr, acl.data(), acl.size(), 0) != 0) {
    Status s = Status::FromErrno("default ACL in work");
    if (*fd >= 0) close(*fd);
    *fd = -1;
    (void)RemoveTreeAt(work, name.c_str());
    return s;
  }
  return Status::OK();
}

// Node::keeps_origin, read under the node's lock: a copy-up of the node
// may be setting what it reads meanwhile.
bool KeepsOrigin(Node* n) {
  std::lock_guard<std::mutex> g(n->mu);
  return n->keeps_origin();
}

}  // namespace

Status UnionFs::CreateObject(const Ctx& ctx, Node* parent, std::string_view name_sv, mode_t type,
                             const MakeFn& make, Entry* out) {
  if (read_only_) return Status::Errno(EROFS);
  if (name_sv.size() > NAME_MAX) return Status::Errno(ENAMETOOLONG);
  const bool files = layers_->whiteout_files();
  // Where whiteouts are ".wh.NAME" files, such a name would be one.
  if (files && IsAufsMarker(name_sv)) return Status::Errno(EINVAL, "name reserved for whiteouts");
  const std::string name(name_sv);
  {
    LookupResult r;
    OVT_RETURN_IF_ERROR(LookupReal(parent, name, &r));
    if (r.found) return Status::Errno(EEXIST);
  }
  OVT_RETURN_IF_ERROR(CopyUp(parent, false));
  FdPtr pupper;
  OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &pupper));
  const int pfd = pupper->get();
  UpperState state;
  struct stat st;
  OVT_RETURN_IF_ERROR(UpperStateAt(pfd, name.c_str(), files, &state, &st));
  if (state == UpperState::kObject) return Status::Errno(EEXIST);
  // With FUSE_POSIX_ACL the kernel leaves the umask to us (the daemon's own
  // is 0): it applies unless the parent has a default ACL to inherit
  // (which a copy-up of the parent brought along from its lower).
  const std::string default_acl = DefaultAcl(pfd);
  const mode_t umask = default_acl.empty() ? ctx.umask : 0;

  if (state == UpperState::kNone) {
    CredScope cred(*this, ctx);
    OVT_RETURN_IF_ERROR(make(pfd, name.c_str(), umask));
  } else {
    // Over a whiteout: build aside, then swap in, so the lower entry never
    // shows through. Aside is the work directory, or a directory in it
    // carrying the parent's default ACL for the new object to inherit.
    const int work = layers_->work_fd();
    const std::string tmp = TempName("new.");
    std::string scratch;
    int bfd = work;
    if (!default_acl.empty()) {
      scratch = TempName("acl.");
      OVT_RETURN_IF_ERROR(MakeAclScratch(work, scratch, default_acl, &bfd));
    }
    auto cleanup = [&] {
      if (scratch.empty()) return;
      close(bfd);
      (void)RemoveTreeAt(work, scratch.c_str());
    };
    Status s;
    {
      CredScope cred(*this, ctx);
      s = make(bfd, tmp.c_str(), umask);
    }
    if (!s.ok()) {
      cleanup();
      return s;
    }
    if (S_ISDIR(type)) {
      int dfd = openat(bfd, tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (dfd < 0 || fsetxattr(dfd, xn_.opaque().c_str(), "y", 1, 0) != 0)
        s = Status::FromErrno("mark new directory opaque");
      if (dfd >= 0) close(dfd);
      if (files) {
        // The name is free (its whiteout lies beside it): a plain rename.
        if (s.ok() && renameat(bfd, tmp.c_str(), pfd, name.c_str()) != 0)
          s = Status::FromErrno("replace whiteout");
      } else {
        if (s.ok() && renameat2(bfd, tmp.c_str(), pfd, name.c_str(), RENAME_EXCHANGE) != 0)
          s = Status::FromErrno("replace whiteout");
        if (s.ok()) unlinkat(bfd, tmp.c_str(), 0);  // the whiteout, now in work
      }
    } else if (renameat(bfd, tmp.c_str(), pfd, name.c_str()) != 0) {
      s = Status::FromErrno("replace whiteout");
    }
    if (!s.ok()) (void)RemoveTreeAt(bfd, tmp.c_str());
    cleanup();
    if (!s.ok()) return s;
    if (files) DropWhiteoutFile(pfd, name);
  }
  LookupResult r;
  OVT_RETURN_IF_ERROR(LookupReal(parent, name, &r));
  if (!r.found) return Status::Errno(ENOENT, "new entry vanished");
  std::unique_ptr<Node> fresh;
  OVT_RETURN_IF_ERROR(NodeFromResult(&r, &fresh));
  out->node = nodes_.Intern(std::move(fresh), parent, name);
  return StatNode(out->node, &out->attr);
}

Status UnionFs::CreateTmpFile(const Ctx& ctx, Node* parent, mode_t mode, int flags, Entry* entry,
                              std::unique_ptr<OpenFile>* out) {
  if (read_only_) return Status::Errno(EROFS);
  if (!parent->is_dir()) return Status::Errno(ENOTDIR);
  // The file is made in the parent's upper directory, as the kernel
  // overlayfs does (ovl_tmpfile): that is where a linkat gives it a name,
  // and the upper file system's own O_TMPFILE keeps it nameless (and
  // freed at the last close) until then, without a trace in the work
  // directory after a crash.
  OVT_RETURN_IF_ERROR(CopyUp(parent, false));
  FdPtr pupper;
  OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &pupper));
  const int pfd = pupper->get();
  const mode_t umask = DefaultAcl(pfd).empty() ? ctx.umask : 0;
  // O_EXCL keeps its O_TMPFILE meaning: never to be linked.
  const int rflags = (flags & ~(O_CREAT | O_NOCTTY | O_TRUNC | O_APPEND | O_DIRECTORY)) | O_TMPFILE;
  int rfd;
  {
    CredScope cred(*this, ctx);
    rfd = openat(pfd, ".", rflags | O_CLOEXEC, mode & 07777 & ~umask);
  }
  if (rfd < 0) return Status::FromErrno();
  auto of = std::make_unique<OpenFile>();
  of->fd = rfd;
  of->upper = true;
  of->writable = true;  // O_TMPFILE needs O_WRONLY or O_RDWR
  struct stat st;
  if (fstat(rfd, &st) != 0) return Status::FromErrno();
  // The node holds its own reference (O_PATH), like a looked-up upper file,
  // and its handle: after a linkat the lookup of the new name finds it.
  const int pathfd = open(ProcPath(rfd).c_str(), O_PATH | O_CLOEXEC);  // following the link
  if (pathfd < 0) return Status::FromErrno();
  auto fresh = std::make_unique<Node>(layers_->MixIno(0, st.st_ino), S_IFREG);
  fresh->upper.layer = 0;
  fresh->upper.fd = std::make_shared<const class Fd>(pathfd);
  if (layers_->layer(0).handles) OVT_RETURN_IF_ERROR(GetHandle(pathfd, "", &fresh->upper.handle));
  // No alias: like an unlinked file, the node has no name to copy up by.
  entry->node = nodes_.Insert(std::move(fresh), nullptr, std::string());
  of->node = entry->node;
  Status s = StatNode(entry->node, &entry->attr);
  if (!s.ok()) {
    nodes_.Forget(entry->node, 1);
    return s;
  }
  *out = std::move(of);
  return Status::OK();
}

Status UnionFs::Mknod(const Ctx& ctx, Node* parent, std::string_view name, mode_t mode, dev_t rdev,
                      Entry* out) {
  // A character device 0/0 is a whiteout in the upper layer: made through
  // the mount it would hide its own name (and a lower file of that name)
  // instead of appearing. EPERM, as the kernel overlayfs (ovl_mknod).
  if (S_ISCHR(mode) && rdev == 0) return Status::Errno(EPERM, "a whiteout cannot be made");
  return CreateObject(
      ctx, parent, name, mode & S_IFMT,
      [&](int dfd, const char* n, mode_t umask) {
        if (mknodat(dfd, n, mode & ~umask, rdev) != 0) return Status::FromErrno();
        return Status::OK();
      },
      out);
}

Status UnionFs::Mkdir(const Ctx& ctx, Node* parent, std::string_view name, mode_t mode,
                      Entry* out) {
  return CreateObject(
      ctx, parent, name, S_IFDIR,
      [&](int dfd, const char* n, mode_t umask) {
        if (mkdirat(dfd, n, mode & 07777 & ~umask) != 0) return Status::FromErrno();
        return Status::OK();
      },
      out);
}

Status UnionFs::Symlink(const Ctx& ctx, Node* parent, std::string_view name, const char* target,
                        Entry* out) {
  return CreateObject(
      ctx, parent, name, S_IFLNK,
      [&](int dfd, const char* n, mode_t) {  // symlinks are always 0777
        if (symlinkat(target, dfd, n) != 0) return Status::FromErrno();
        return Status::OK();
      },
      out);
}

Status UnionFs::Link(const Ctx& ctx, Node* node, Node* newparent, std::string_view newname,
                     Entry* out) {
  if (read_only_) return Status::Errno(EROFS);
  if (node->is_dir()) return Status::Errno(EPERM);
  // With the data: a metadata-only copy finds its lower data by its name
  // (or redirect), which a second name would not have after a remount.
  OVT_RETURN_IF_ERROR(CopyUp(node, node->is_reg()));
  FdPtr src;
  OVT_RETURN_IF_ERROR(nodes_.Fd(node, &Node::upper, &src));
  // Impure first: the lookup that ends CreateObject then reads the new
  // name's origin and finds this node, not a stranger with the upper
  // inode's own number.
  if (KeepsOrigin(node)) {
    OVT_RETURN_IF_ERROR(CopyUp(newparent, false));
    OVT_RETURN_IF_ERROR(SetImpure(newparent));
  }
  Entry tmp;
  Status s = CreateObject(
      ctx, newparent, newname, node->type,
      [&](int dfd, const char* n, mode_t) {
        if (linkat(src->get(), "", dfd, n, AT_EMPTY_PATH) != 0) return Status::FromErrno();
        return Status::OK();
      },
      &tmp);
  if (!s.ok()) return s;
  // The new name resolves to the same upper inode and so to the same node.
  out->node = tmp.node;
  out->attr = tmp.attr;
  return Status::OK();
}

namespace {
// Holds one lookup reference on a node for the duration of an operation.
class NodeRef {
 public:
  NodeRef(NodeTable* t, Node* n) : t_(t), n_(n) {}
  ~NodeRef() {
    if (n_) t_->Forget(n_, 1);
  }
  Node* get() const { return n_; }

 private:
  NodeTable* t_;
  Node* n_;
};
}  // namespace

Status UnionFs::IsEmptyDir(Node* dir, bool* empty) {
  OpenDir od;
  od.node = dir;
  OVT_RETURN_IF_ERROR(LoadDirectory(&od, true));
  for (const auto& e : od.entries) {
    if (e.name != "." && e.name != "..") {
      *empty = false;
      return Status::OK();
    }
  }
  *empty = true;
  return Status::OK();
}

Status UnionFs::RemoveObject(const Ctx&, Node* parent, std::string_view name_sv, bool dir) {
  if (read_only_) return Status::Errno(EROFS);
  const std::string name(name_sv);
  LookupResult r;
  OVT_RETURN_IF_ERROR(LookupReal(parent, name, &r));
  if (!r.found) return Status::Errno(ENOENT);
  if (dir && !S_ISDIR(r.type)) return Status::Errno(ENOTDIR);
  if (!dir && S_ISDIR(r.type)) return Status::Errno(EISDIR);
  const bool hardlinked = !dir && S_ISREG(r.type) && (r.indexed || r.lower_st.st_nlink > 1);
  std::unique_ptr<Node> victim;
  OVT_RETURN_IF_ERROR(NodeFromResult(&r, &victim));
  if (dir) {
    bool empty;
    OVT_RETURN_IF_ERROR(IsEmptyDir(victim.get(), &empty));
    if (!empty) return Status::Errno(ENOTEMPTY);
  }
  const uint64_t victim_key = victim->key;
  if (hardlinked) {
    // One name of a lower hard-link group goes: the others must count one
    // link less. Copying this name up first puts the group in the index,
    // where the count is kept; its upper name is then replaced by a whiteout.
    NodeRef n(&nodes_, nodes_.Intern(std::move(victim), parent, name));
    OVT_RETURN_IF_ERROR(CopyUp(n.get(), false));
  }
  bool lower_has;
  OVT_RETURN_IF_ERROR(LowerHasName(parent, name, &lower_has));
  OVT_RETURN_IF_ERROR(CopyUp(parent, false));
  FdPtr pupper;
  OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &pupper));
  const int pfd = pupper->get();
  const int work = layers_->work_fd();
  const bool files = layers_->whiteout_files();
  UpperState state;
  struct stat st;
  OVT_RETURN_IF_ERROR(UpperStateAt(pfd, name.c_str(), files, &state, &st));

  if (state == UpperState::kObject && lower_has && files) {
    // The whiteout first: while the object is there it hides the lower
    // one anyway, and once it is gone the whiteout does.
    OVT_RETURN_IF_ERROR(MakeWhiteoutAt(pfd, name.c_str(), true));
    if (unlinkat(pfd, name.c_str(), dir ? AT_REMOVEDIR : 0) != 0) {
      const int err = errno;  // before anything else may change it
      Status s = Status::Errno(err);
      if (dir && (err == ENOTEMPTY || err == EEXIST)) {
        // Holding only whiteouts: move it aside whole.
        const std::string tmp = TempName("rm.");
        s = renameat(pfd, name.c_str(), work, tmp.c_str()) == 0 ? RemoveTreeAt(work, tmp.c_str())
                                                                : Status::FromErrno();
      }
      if (!s.ok()) {
        DropWhiteoutFile(pfd, name);
        return s;
      }
    }
  } else if (state == UpperState::kObject) {
    if (!lower_has) {
      if (unlinkat(pfd, name.c_str(), dir ? AT_REMOVEDIR : 0) != 0) {
        if (!(dir && (errno == ENOTEMPTY || errno == EEXIST))) return Status::FromErrno();
        // An opaque directory holding only whiteouts: move it aside whole.
        const std::string tmp = TempName("rm.");
        if (renameat(pfd, name.c_str(), work, tmp.c_str()) != 0) return Status::FromErrno();
        OVT_RETURN_IF_ERROR(RemoveTreeAt(work, tmp.c_str()));
      }
    } else {
      const std::string tmp = TempName("wh.");
      OVT_RETURN_IF_ERROR(MakeWhiteoutAt(work, tmp.c_str(), false));
      if (dir) {
        // Swap the directory for the whiteout, then clear it out of sight.
        if (renameat2(work, tmp.c_str(), pfd, name.c_str(), RENAME_EXCHANGE) != 0) {
          Status s = Status::FromErrno("replace directory with whiteout");
          unlinkat(work, tmp.c_str(), 0);
          return s;
        }
        OVT_RETURN_IF_ERROR(RemoveTreeAt(work, tmp.c_str()));
      } else if (renameat(work, tmp.c_str(), pfd, name.c_str()) != 0) {
        Status s = Status::FromErrno("replace file with whiteout");
        unlinkat(work, tmp.c_str(), 0);
        return s;
      }
    }
  } else if (lower_has) {
    OVT_RETURN_IF_ERROR(MakeWhiteoutAt(pfd, name.c_str(), files));
  } else {
    return Status::Errno(ENOENT);
  }
  nodes_.Unalias(victim_key, parent, name);
  return Status::OK();
}

Status UnionFs::Unlink(const Ctx& ctx, Node* parent, std::string_view name) {
  return RemoveObject(ctx, parent, name, false);
}

Status UnionFs::Rmdir(const Ctx& ctx, Node* parent, std::string_view name) {
  return RemoveObject(ctx, parent, name, true);
}

Status UnionFs::Rename(const Ctx&, Node* parent, std::string_view name_sv, Node* newparent,
                       std::string_view newname_sv, unsigned flags) {
  if (read_only_) return Status::Errno(EROFS);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Errno(EINVAL);
  if (newname_sv.size() > NAME_MAX) return Status::Errno(ENAMETOOLONG);
  const bool files = layers_->whiteout_files();
  if (files && IsAufsMarker(newname_sv))
    return Status::Errno(EINVAL, "name reserved for whiteouts");
  const std::string name(name_sv), newname(newname_sv);
  const bool exchange = flags & RENAME_EXCHANGE;

  LookupResult sr, dr;
  OVT_RETURN_IF_ERROR(LookupReal(parent, name, &sr));
  if (!sr.found) return Status::Errno(ENOENT);
  OVT_RETURN_IF_ERROR(LookupReal(newparent, newname, &dr));
  if (exchange && !dr.found) return Status::Errno(ENOENT);
  if ((flags & RENAME_NOREPLACE) && dr.found) return Status::Errno(EEXIST);

  const bool dst_pure_upper =
      dr.found && S_ISDIR(dr.type) && dr.upper.valid() && dr.lower_dirs.empty();
  std::unique_ptr<Node> fs_src, fs_dst;
  OVT_RETURN_IF_ERROR(NodeFromResult(&sr, &fs_src));
  NodeRef src(&nodes_, nodes_.Intern(std::move(fs_src), parent, name));
  std::unique_ptr<NodeRef> dst;
  if (dr.found) {
    OVT_RETURN_IF_ERROR(NodeFromResult(&dr, &fs_dst));
    dst = std::make_unique<NodeRef>(&nodes_, nodes_.Intern(std::move(fs_dst), newparent, newname));
    if (dst->get() == src.get()) return Status::OK();  // two names of one file
    if (!exchange) {
      bool sdir = src.get()->is_dir(), ddir = dst->get()->is_dir();
      if (sdir && !ddir) return Status::Errno(ENOTDIR);
      if (!sdir && ddir) return Status::Errno(EISDIR);
      // A directory of the upper layer alone (no lower part: new, or
      // opaque, so no whiteouts in it) is the upper file system's to
      // judge, as the kernel overlayfs leaves it to vfs_rename: XFS says
      // EEXIST where ext4 says ENOTEMPTY. Any other must be empty in the
      // merged view.
      if (ddir && !dst_pure_upper) {
        bool empty;
        OVT_RETURN_IF_ERROR(IsEmptyDir(dst->get(), &empty));
        if (!empty) return Status::Errno(ENOTEMPTY);
      }
    }
  }

  // Bring what moves into the upper layer, remembering where its lower
  // part lives (redirect) when the name alone will not find it any more.
  auto prepare = [&](Node* n) -> Status {
    OVT_RETURN_IF_ERROR(CopyUp(n, false));
    std::lock_guard<std::mutex> g(n->mu);
    bool needs_redirect = n->is_dir() ? !n->lower_dirs.empty() : n->metacopy;
    if (!needs_redirect || n->lower_path.empty()) return Status::OK();
    FdPtr fd;
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(n, &n->upper, &fd));
    if (setxattr(ProcPath(fd->get()).c_str(), xn_.redirect().c_str(), n->lower_path.data(),
                 n->lower_path.size(), 0) == 0)
      return Status::OK();
    // A redirect longer than the upper file system keeps in an xattr (ext4:
    // about a block, so a lower path of some 4,000 bytes) cannot be
    // recorded: EXDEV, as the kernel overlayfs answers, makes mv(1) copy
    // the tree instead; ENOSPC would make it give up with "No space left".
    if (errno == ENOSPC || errno == E2BIG) return Status::Errno(EXDEV, "redirect too long");
    return Status::FromErrno("set redirect");
  };
  OVT_RETURN_IF_ERROR(prepare(src.get()));
  if (exchange) OVT_RETURN_IF_ERROR(prepare(dst->get()));
  if (!exchange && dst && S_ISREG(dr.type) && (dr.indexed || dr.lower_st.st_nlink > 1)) {
    // A name of a lower hard-link group is replaced: as for unlink
    // (RemoveObject), its copy-up puts the group in the index, where the
    // other names' link count then drops by one.
    OVT_RETURN_IF_ERROR(CopyUp(dst->get(), false));
  }
  OVT_RETURN_IF_ERROR(CopyUp(parent, false));
  OVT_RETURN_IF_ERROR(CopyUp(newparent, false));

  bool src_lower_has, dst_lower_has;
  OVT_RETURN_IF_ERROR(LowerHasName(parent, name, &src_lower_has));
  OVT_RETURN_IF_ERROR(LowerHasName(newparent, newname, &dst_lower_has));

  // A directory of the upper layer alone must not start merging with lower
  // directories that happen to have its new name.
  auto keep_apart = [&](Node* n, bool lower_at_new_name) -> Status {
    if (!n->is_dir() || !lower_at_new_name) return Status::OK();
    std::lock_guard<std::mutex> g(n->mu);
    if (!n->lower_dirs.empty() || n->opaque) return Status::OK();
    FdPtr fd;
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(n, &n->upper, &fd));
    if (fsetxattr(fd->get(), xn_.opaque().c_str(), "y", 1, 0) != 0)
      return Status::FromErrno("mark opaque");
    n->opaque = true;
    return Status::OK();
  };
  OVT_RETURN_IF_ERROR(keep_apart(src.get(), dst_lower_has));
  if (exchange) OVT_RETURN_IF_ERROR(keep_apart(dst->get(), src_lower_has));
  if (KeepsOrigin(src.get())) OVT_RETURN_IF_ERROR(SetImpure(newparent));
  if (exchange && KeepsOrigin(dst->get())) OVT_RETURN_IF_ERROR(SetImpure(parent));

  FdPtr sp, dp;
  OVT_RETURN_IF_ERROR(ParentUpperFd(parent, &sp));
  OVT_RETURN_IF_ERROR(ParentUpperFd(newparent, &dp));
  const int spfd = sp->get(), dpfd = dp->get();

  if (exchange) {
    if (renameat2(spfd, name.c_str(), dpfd, newname.c_str(), RENAME_EXCHANGE) != 0)
      return Status::FromErrno();
    nodes_.SetAlias(src.get(), newparent, newname);
    nodes_.SetAlias(dst->get(), parent, name);
    return Status::OK();
  }

  UpperState dstate;
  struct stat dst_st;
  OVT_RETURN_IF_ERROR(UpperStateAt(dpfd, newname.c_str(), files, &dstate, &dst_st));
  if (dstate == UpperState::kObject && S_ISDIR(dst_st.st_mode) && !dst_pure_upper) {
    // The target is empty in the merged view but may hold whiteouts.
    int tfd = openat(dpfd, newname.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0) return Status::FromErrno();
    Status s = EmptyDirAt(tfd);
    close(tfd);
    OVT_RETURN_IF_ERROR(s);
  }
  if (files) {
    // No RENAME_WHITEOUT on such an upper: the source's whiteout goes in
    // first (the object still hides the lower one), then the move, then
    // the target's whiteout file goes.
    if (src_lower_has) OVT_RETURN_IF_ERROR(MakeWhiteoutAt(spfd, name.c_str(), true));
    if (renameat(spfd, name.c_str(), dpfd, newname.c_str()) != 0) {
      Status s = Status::FromErrno();
      if (src_lower_has) DropWhiteoutFile(spfd, name);
      return s;
    }
    if (dstate == UpperState::kWhiteout) DropWhiteoutFile(dpfd, newname);
  } else if (dstate == UpperState::kWhiteout && src.get()->is_dir()) {
    // rename(2) cannot put a directory over a non-directory: swap with the
    // whiteout, which lands at the source, where it is needed or removed.
    if (renameat2(spfd, name.c_str(), dpfd, newname.c_str(), RENAME_EXCHANGE) != 0)
      return Status::FromErrno();
    if (!src_lower_has) unlinkat(spfd, name.c_str(), 0);
  } else {
    unsigned rflags = src_lower_has ? RENAME_WHITEOUT : 0;
    if (renameat2(spfd, name.c_str(), dpfd, newname.c_str(), rflags) != 0)
      return Status::FromErrno();
  }
  if (dst) nodes_.Unalias(dst->get()->key, newparent, newname);
  nodes_.SetAlias(src.get(), newparent, newname);
  return Status::OK();
}

}  // namespace overtier
