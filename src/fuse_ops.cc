// The FUSE transport: libfuse low-level requests translated into UnionFs
// calls. This is the only file that knows FUSE request types; keeping it
// narrow lets the transport be replaced (FUSE passthrough, FUSE over
// io_uring in later libfuse) without touching union/.
#define FUSE_USE_VERSION 312
#include "src/fuse_ops.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "migrate/crash_point.h"
#include "migrate/file_handle.h"
#include "migrate/worker_pool.h"
#include "overtier/control.h"
#include "overtier/printable.h"
#include "overtier/time_ns.h"
#include "src/fuse_passthrough.h"
#include "src/migration.h"
#include "src/open_handles.h"
#include "src/session_receive.h"
#include "union/union_fs.h"

namespace overtier {
namespace {

struct State {
  UnionFs* fs = nullptr;
  double timeout = 0;
  bool writeback = false;
  fuse_session* se = nullptr;
  WorkerPool* slow = nullptr;       // for requests that may take long
  MigrationService* mig = nullptr;  // the migration tier (store=), or none
  bool hard = false;                // -o hard (docs/RADOS.md)
  // Under hard: reads of image content, which may wait for the cold tier
  // as long as it does not answer. A pool of their own, so that waiting
  // readers never hold the threads copy-ups and syncs need.
  WorkerPool* hard_reads = nullptr;
  // Passthrough (src/fuse_passthrough.h): null when not asked for.
  PassthroughFiles* pt = nullptr;
  // What fi->fh holds (src/open_handles.h).
  OpenHandles<OpenFile> files;
  OpenHandles<OpenDir> dirs;
  std::atomic<bool> init_seen{false};     // the INIT request was read
  InitOffer offer;                        // ... and offered this
  std::atomic<bool> init_pending{false};  // the INIT reply is to be patched
  InitPatch patch;                        // ... with this
};

// The backing id the next OPEN/CREATE reply of this thread carries.
thread_local int32_t tl_reply_backing_id = 0;

// libfuse's I/O on /dev/fuse, through which the protocol fields libfuse
// does not know go (fuse_session_custom_io hands these the session's
// userdata, our State). The INIT request is read before any other, by one
// thread, and answered before any other request is read.
ssize_t IoRead(int fd, void* buf, size_t len, void* userdata) {
  ssize_t n = read(fd, buf, len);
  State* st = static_cast<State*>(userdata);
  if (n > 0 && !st->init_seen.exchange(true))
    st->offer = ParseInitRequest(buf, static_cast<size_t>(n));
  return n;
}

ssize_t IoWritev(int fd, struct iovec* iov, int count, void* userdata) {
  State* st = static_cast<State*>(userdata);
  if (tl_reply_backing_id > 0) {
    PatchOpenReply(iov, count, tl_reply_backing_id);
  } else if (st->init_pending.load(std::memory_order_relaxed) && st->init_pending.exchange(false)) {
    PatchInitReply(iov, count, st->patch);
  }
  return writev(fd, iov, count);
}

// Splice as libfuse does without custom I/O (it uses these when given).
ssize_t IoSpliceReceive(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                        unsigned int flags, void*) {
  return splice(fdin, offin, fdout, offout, len, flags);
}
ssize_t IoSpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                     unsigned int flags, void*) {
  return splice(fdin, offin, fdout, offout, len, flags);
}

const fuse_custom_io kPatchingIo = {IoWritev, IoRead, IoSpliceReceive, IoSpliceSend};

State* St(fuse_req_t req) { return static_cast<State*>(fuse_req_userdata(req)); }
UnionFs* Fs(fuse_req_t req) { return St(req)->fs; }

Node* N(fuse_req_t req, fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) return Fs(req)->root();
  return reinterpret_cast<Node*>(ino);
}
fuse_ino_t Ino(UnionFs* fs, Node* n) {
  return n == fs->root() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(n);
}
OpenFile* OF(fuse_file_info* fi) { return fi ? reinterpret_cast<OpenFile*>(fi->fh) : nullptr; }
MigrationService* Mig(fuse_req_t req) { return St(req)->mig; }

// The migration state of node's upper file, tracked or not, when the store
// may have a record for it, or always (null for a file without an upper
// part, and for mounts without a store). *fd: an O_PATH fd of the upper
// file, the caller's to close (-1 when null is returned).
std::shared_ptr<MigFile> AttachNode(fuse_req_t req, Node* node, int* fd, bool always = false) {
  *fd = -1;
  if (Mig(req) == nullptr || !node->is_reg() || (!always && !Mig(req)->may_have_records()))
    return nullptr;
  if (!Fs(req)->OpenUpperData(node, O_PATH, fd).ok()) return nullptr;
  std::shared_ptr<MigFile> m = Mig(req)->Attach(*fd);
  if (m) return m;
  close(*fd);
  *fd = -1;
  return nullptr;
}

// The same, if the file's writes and truncates go through the service
// (MigFile::tracked).
std::shared_ptr<MigFile> MigOfNode(fuse_req_t req, Node* node, int* fd) {
  std::shared_ptr<MigFile> m = AttachNode(req, node, fd);
  if (m && m->tracked()) return m;
  if (*fd >= 0) close(*fd);
  *fd = -1;
  return nullptr;
}

Ctx CtxOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Ctx{c->uid, c->gid, c->pid, static_cast<mode_t>(c->umask & 0777)};
}

void ReplyErr(fuse_req_t req, const Status& s) { fuse_reply_err(req, s.err()); }

void FillEntry(fuse_req_t req, const Entry& e, fuse_entry_param* p) {
  std::memset(p, 0, sizeof(*p));
  p->ino = Ino(Fs(req), e.node);
  p->attr = e.attr;
  p->attr_timeout = St(req)->timeout;
  p->entry_timeout = St(req)->timeout;
}

void ReplyEntry(fuse_req_t req, const Status& s, const Entry& e) {
  if (!s.ok()) return ReplyErr(req, s);
  fuse_entry_param p;
  FillEntry(req, e, &p);
  if (fuse_reply_entry(req, &p) != 0) Fs(req)->Forget(e.node, 1);
}

void OpInit(void* userdata, fuse_conn_info* conn) {
  State* st = static_cast<State*>(userdata);
  auto want = [&](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  // Zero-copy data between /dev/fuse and the real files. (Whether splice
  // pays for small WRITEs, where it costs two pipe calls per request, is
  // still to be measured: see docs/BENCHMARKS.md, 8 KiB overwrite.)
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  want(FUSE_CAP_SPLICE_READ);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_ASYNC_DIO);
  // READDIRPLUS for every chunk of a listing (not AUTO, where the kernel
  // picks): DoReaddir decides per chunk which entries carry attributes.
  want(FUSE_CAP_READDIRPLUS);
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  // Passthrough if the kernel offers it (the INIT reply is patched); else
  // small writes become large WRITEs and the kernel keeps size and mtime.
  const bool pt = st->pt != nullptr && st->offer.passthrough;
  // Set-user-ID and set-group-ID bits cleared by us, where the kernel
  // would otherwise ask GETXATTR(security.capability) before every
  // write(2) to decide whether to clear anything (it then marks inodes
  // without such bits S_NOSEC and skips the question).
  st->patch.passthrough = pt;
  st->patch.killpriv_v2 = st->offer.killpriv_v2;
  if (st->patch.passthrough || st->patch.killpriv_v2) st->init_pending = true;
  if (!pt && !st->fs->read_only() && UsesWritebackCache(st->fs->options())) {
    want(FUSE_CAP_WRITEBACK_CACHE);
    st->writeback = conn->want & FUSE_CAP_WRITEBACK_CACHE;
  }
  // POSIX ACLs enforced by the kernel (which reads system.posix_acl_access
  // through getxattr and caches it) unless noacl. With DONT_MASK the kernel
  // sends create/mkdir/mknod modes without the umask applied (POSIX_ACL
  // alone does not stop the FUSE client from masking): the union applies
  // it, or lets a default ACL be inherited instead (union/dir.cc).
  if (st->fs->options().acl) {
    want(FUSE_CAP_POSIX_ACL);
    if (conn->want & FUSE_CAP_POSIX_ACL) want(FUSE_CAP_DONT_MASK);
  }
  // Locks stay in the kernel (correct for a local file system).
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Entry e;
  Node* dir = N(req, parent);
  // Someone wants attributes of this directory's entries: the next chunk
  // of its listing brings them (DoReaddir).
  // (Read first: most lookups find it set, and a store would bounce the
  // cache line between threads looking up in the same directory.)
  if (!dir->advise_rdplus.load(std::memory_order_relaxed))
    dir->advise_rdplus.store(true, std::memory_order_relaxed);
  Status s = Fs(req)->Lookup(CtxOf(req), dir, name, &e);
  if (s.err() == ENOENT) {
    // Negative entry: every change goes through us, so it may be cached.
    fuse_entry_param p;
    std::memset(&p, 0, sizeof(p));
    p.entry_timeout = St(req)->timeout;
    fuse_reply_entry(req, &p);
    return;
  }
  ReplyEntry(req, s, e);
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req)->Forget(N(req, ino), nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Fs(req)->Forget(N(req, forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  struct stat st;
  Status s = Fs(req)->GetAttr(N(req, ino), OF(fi), &st);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_attr(req, &st, St(req)->timeout);
}

// Runs fn(req, ...) on the slow pool: the request loop goes on with other
// requests while a large file is copied up or synced.
template <typename Fn>
void Defer(fuse_req_t req, Fn fn) {
  St(req)->slow->Submit(std::move(fn));
}

Status SetattrCore(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                   fuse_file_info* fi, struct stat* out) {
  SetAttrRequest r;
  r.mode = to_set & FUSE_SET_ATTR_MODE;
  r.uid = to_set & FUSE_SET_ATTR_UID;
  r.gid = to_set & FUSE_SET_ATTR_GID;
  r.size = to_set & FUSE_SET_ATTR_SIZE;
  r.atime = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW);
  r.mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
  r.atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
  r.mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
  r.ctime = to_set & FUSE_SET_ATTR_CTIME;
  r.kill_suidgid = to_set & FUSE_SET_ATTR_KILL_SUID;  // FATTR_KILL_SUIDGID
  r.values = *attr;
  return Fs(req)->SetAttr(CtxOf(req), N(req, ino), r, OF(fi), out);
}

void DoSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  struct stat out;
  Status s = SetattrCore(req, ino, attr, to_set, fi, &out);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_attr(req, &out, St(req)->timeout);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  if ((to_set & FUSE_SET_ATTR_SIZE) && Mig(req) != nullptr && attr->st_size != 0 && fi == nullptr &&
      Fs(req)->WriteOpenCopiesData(N(req, ino))) {
    // A truncate of a file whose data is not in the upper layer yet: the
    // data copy-up first (lazy for an image file, which leaves a migration
    // record that must take the truncate too), off the request loop; then
    // the truncate as for any upper file.
    struct stat a = *attr;
    return Defer(req, [req, ino, a, to_set]() mutable {
      Status s = Fs(req)->CopyUpForWrite(N(req, ino));
      if (!s.ok()) return ReplyErr(req, s);
      OpSetattr(req, ino, &a, to_set, nullptr);
    });
  }
  if ((to_set & FUSE_SET_ATTR_SIZE) && Mig(req) != nullptr) {
    // A truncate of a file with a migration record: recorded with it (a
    // shrink drops the bytes past the new size from what a restore would
    // bring back; nothing is restored first).
    int fd = -1;
    std::shared_ptr<MigFile> m = AttachNode(req, N(req, ino), &fd, /*always=*/true);
    PlainChange plain(m);
    if (!plain.tracked()) {
      if (fd >= 0) close(fd);
      return DoSetattr(req, ino, attr, to_set, fi);
    }
    struct stat a = *attr;
    OpenFile* of = OF(fi);
    return Mig(req)->Submit([req, ino, a, to_set, of, m, fd]() mutable {
      UserChange c;
      c.truncate = true;
      c.new_size = static_cast<uint64_t>(a.st_size);
      struct stat out;
      fuse_file_info fake{};
      fake.fh = reinterpret_cast<uint64_t>(of);
      Status s = Mig(req)->UserModify(
          m, fd, c, [&] { return SetattrCore(req, ino, &a, to_set, of ? &fake : nullptr, &out); });
      close(fd);
      if (!s.ok()) return ReplyErr(req, s);
      fuse_reply_attr(req, &out, St(req)->timeout);
    });
  }
  constexpr int kTimes =
      FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;
  if ((to_set & kTimes) && !(to_set & FUSE_SET_ATTR_SIZE) && Mig(req) != nullptr) {
    // utimes/touch of a file with a migration record: the record's
    // preserved times follow.
    int fd = -1;
    std::shared_ptr<MigFile> m = MigOfNode(req, N(req, ino), &fd);
    if (m) {
      struct stat a = *attr;
      // A record holds times from 1677 to 2262 (overtier/time_ns.h): such a
      // file's times are clamped to that range, as a file system clamps a
      // time beyond its own, so that the file and its record agree.
      a.st_atim = NsToTimespec(ClampedNs(a.st_atim));
      a.st_mtim = NsToTimespec(ClampedNs(a.st_mtim));
      OpenFile* of = OF(fi);
      return Mig(req)->Submit([req, ino, a, to_set, of, m, fd]() mutable {
        struct stat out;
        fuse_file_info fake{};
        fake.fh = reinterpret_cast<uint64_t>(of);
        Status s = Mig(req)->UserTimes(
            m, fd, [&] { return SetattrCore(req, ino, &a, to_set, of ? &fake : nullptr, &out); });
        close(fd);
        if (!s.ok()) return ReplyErr(req, s);
        fuse_reply_attr(req, &out, St(req)->timeout);
      });
    }
  }
  if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0 && fi == nullptr &&
      Fs(req)->WriteOpenCopiesData(N(req, ino))) {
    struct stat a = *attr;
    return Defer(req,
                 [req, ino, a, to_set]() mutable { DoSetattr(req, ino, &a, to_set, nullptr); });
  }
  DoSetattr(req, ino, attr, to_set, fi);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  std::string target;
  Status s = Fs(req)->ReadLink(N(req, ino), &target);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_readlink(req, target.c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Entry e;
  ReplyEntry(req, Fs(req)->Mknod(CtxOf(req), N(req, parent), name, mode, rdev, &e), e);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Entry e;
  ReplyEntry(req, Fs(req)->Mkdir(CtxOf(req), N(req, parent), name, mode, &e), e);
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Entry e;
  ReplyEntry(req, Fs(req)->Symlink(CtxOf(req), N(req, parent), name, link, &e), e);
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Entry e;
  ReplyEntry(req, Fs(req)->Link(CtxOf(req), N(req, ino), N(req, newparent), newname, &e), e);
}

// The last link of a file with a migration record going away (unlink,
// or a rename over it): the record goes (its archive is garbage for gc)
// once nobody has the file open. Made before the operation, finished
// after it.
class LastLinkWatch {
 public:
  LastLinkWatch(fuse_req_t req, fuse_ino_t parent, const char* name) : req_(req) {
    // Only a store with records can have one for this file: no lookup (and
    // no file handle) otherwise, which is every removal on a mount whose
    // store has never archived anything.
    if (Mig(req) == nullptr || !Mig(req)->may_have_records()) return;
    Entry e;
    if (!Fs(req)->Lookup(CtxOf(req), N(req, parent), name, &e).ok()) return;
    node_ = e.node;
    if (S_ISREG(e.attr.st_mode) && e.attr.st_nlink == 1) m_ = MigOfNode(req, e.node, &fd_);
  }
  // Call with the operation's outcome, before answering it.
  void Finish(const Status& s) {
    if (node_ == nullptr) return;
    if (m_) {
      // Checked on the file itself (another link may have appeared).
      struct stat st;
      last_ = s.ok() && fstat(fd_, &st) == 0 && st.st_nlink == 0;
      close(fd_);
      if (last_) {
        // Read-only opens of the lower file made before the copy-up read
        // this file now (ReadFd follows it) but hold no migration state of
        // it: keep it (and so the record, whose archive has what a lazy
        // copy-up left released) until they close.
        std::lock_guard<std::mutex> g(node_->mu);
        if (node_->lower_opens > 0) node_->held_mig = m_;
      }
    }
    Fs(req_)->Forget(node_, 1);
    node_ = nullptr;
  }
  // After the answer (the request is gone by then).
  void Done(MigrationService* mig) {
    if (last_) mig->Unlinked(m_);
  }

 private:
  fuse_req_t req_;
  Node* node_ = nullptr;  // looked up: forgotten in Finish
  std::shared_ptr<MigFile> m_;
  int fd_ = -1;
  bool last_ = false;
};

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  LastLinkWatch watch(req, parent, name);
  Status s = Fs(req)->Unlink(CtxOf(req), N(req, parent), name);
  watch.Finish(s);
  MigrationService* mig = Mig(req);  // req is gone once answered
  ReplyErr(req, s);
  watch.Done(mig);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, Fs(req)->Rmdir(CtxOf(req), N(req, parent), name));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  // A rename over a file removes that file's name as an unlink does.
  std::optional<LastLinkWatch> watch;
  if (!(flags & RENAME_EXCHANGE)) watch.emplace(req, newparent, newname);
  Status s = Fs(req)->Rename(CtxOf(req), N(req, parent), name, N(req, newparent), newname, flags);
  if (watch) watch->Finish(s);
  MigrationService* mig = Mig(req);
  ReplyErr(req, s);
  if (watch) watch->Done(mig);
}

// With the writeback cache the kernel may read a file opened write-only
// (to fill partial pages) and handles O_APPEND itself.
int RealOpenFlags(fuse_req_t req, int flags) {
  // O_DIRECT stays a property of the FUSE file (fi->direct_io): the real
  // file is written from FUSE's buffers, which O_DIRECT could not align.
  flags &= ~O_DIRECT;
  if (St(req)->writeback) {
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags;
}

// Gives an upper regular file its migration state.
void AttachMig(fuse_req_t req, OpenFile* of) {
  if (Mig(req) == nullptr || !of->upper || !of->node->is_reg()) return;
  std::string raw;
  if (!Fs(req)->UpperHandle(of->node, &raw)) raw.clear();
  of->mig = Mig(req)->Attach(of->fd, raw);
}

// Before an open of a regular file is answered: whether it is a
// passthrough open (then its backing id goes into this thread's reply).
// Passthrough is for upper files (a read-only open of a lower file must
// follow a later copy-up, which the kernel would not), and for every file
// of a mount without an upper layer and without a store (whose image
// files are not files the kernel could read).
//
// With a store, only for upper files without a migration record: the tier
// must see every read and write of a file it archived (and it takes any
// other change of such a file's mtime for an agent's, which it puts
// back). A control command (archive, release, ...) is refused while a
// passthrough open of the file remains (PassthroughGate), and an open with
// O_NOATIME is never a passthrough open: the agents (the overtier command,
// the policy engine) open files that way, so that their own descriptor
// does not hold their command back.
void CountOpen(fuse_req_t req, OpenFile* of, fuse_file_info* fi) {
  PassthroughFiles* pt = St(req)->pt;
  if (pt == nullptr || !of->node->is_reg()) return;
  bool eligible = of->upper || (Fs(req)->read_only() && Mig(req) == nullptr);
  const std::atomic<bool>* veto = nullptr;
  if (Mig(req) != nullptr) {
    if (!of->upper || !of->mig || (fi->flags & O_NOATIME)) eligible = false;
    if (of->mig) veto = &of->mig->no_passthrough;
  }
  const int id = pt->Opened(of->node, of->fd, eligible, veto);
  of->io_counted = true;
  of->passthrough = id > 0;
  if (id > 0) {
    // The kernel opens the backing file with the caller's own flags
    // (O_DIRECT included) and caches nothing of its own.
    fi->direct_io = 0;
    fi->keep_cache = 0;
    tl_reply_backing_id = id;
  }
}

void UncountOpen(fuse_req_t req, OpenFile* of) {
  if (of->io_counted) St(req)->pt->Released(of->node, of->passthrough);
  of->io_counted = false;
}

void ReplyOpen(fuse_req_t req, std::unique_ptr<OpenFile> owned, fuse_file_info* fi) {
  OpenFile* of = owned.get();
  // Every change to the data goes through this mount: cached pages stay
  // valid across opens. Not for a file with non-resident data: the kernel
  // must not keep pages read while it was (see the read path).
  fi->keep_cache = !(of->mig && of->mig->slow.load(std::memory_order_acquire));
  if (fi->flags & O_DIRECT) fi->direct_io = 1;
  CountOpen(req, of, fi);
  of->direct_io = fi->direct_io;
  fi->fh = St(req)->files.Add(std::move(owned));
  const int rc = fuse_reply_open(req, fi);
  tl_reply_backing_id = 0;
  if (rc != 0) {
    UncountOpen(req, of);
    St(req)->files.Take(fi->fh);
  }
}

void DoOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::unique_ptr<OpenFile> of;
  Status s = Fs(req)->Open(CtxOf(req), N(req, ino), RealOpenFlags(req, fi->flags), &of);
  if (!s.ok()) return ReplyErr(req, s);
  AttachMig(req, of.get());
  ReplyOpen(req, std::move(of), fi);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const int acc = fi->flags & O_ACCMODE;
  const bool write = acc != O_RDONLY || (fi->flags & O_TRUNC);
  if ((fi->flags & O_TRUNC) && Mig(req) != nullptr) {
    // O_TRUNC of a file with a migration record: a truncate to 0, recorded
    // (nothing is restored). Of any other upper file: a plain change.
    int fd = -1;
    std::shared_ptr<MigFile> m = AttachNode(req, N(req, ino), &fd, /*always=*/true);
    PlainChange plain(m);
    if (!plain.tracked()) {
      if (fd >= 0) close(fd);
      return DoOpen(req, ino, fi);
    }
    fuse_file_info copy = *fi;
    return Mig(req)->Submit([req, ino, copy, m, fd]() mutable {
      std::unique_ptr<OpenFile> of;
      UserChange c;
      c.truncate = true;
      Status s = Mig(req)->UserModify(m, fd, c, [&] {
        return Fs(req)->Open(CtxOf(req), N(req, ino), RealOpenFlags(req, copy.flags), &of);
      });
      close(fd);
      if (!s.ok()) return ReplyErr(req, s);
      AttachMig(req, of.get());
      ReplyOpen(req, std::move(of), &copy);
    });
  }
  if (write && !(fi->flags & O_TRUNC) && Fs(req)->WriteOpenCopiesData(N(req, ino))) {
    fuse_file_info copy = *fi;
    return Defer(req, [req, ino, copy]() mutable { DoOpen(req, ino, &copy); });
  }
  DoOpen(req, ino, fi);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Entry e;
  std::unique_ptr<OpenFile> of;
  // An O_TMPFILE open, made a CREATE by the request loop (TmpfileAsCreate).
  const bool tmpfile = std::strcmp(name, kTmpfileName) == 0;
  Status s = tmpfile ? Fs(req)->CreateTmpFile(CtxOf(req), N(req, parent), mode,
                                              RealOpenFlags(req, fi->flags), &e, &of)
                     : Fs(req)->CreateFile(CtxOf(req), N(req, parent), name, mode,
                                           RealOpenFlags(req, fi->flags), &e, &of);
  if (!s.ok()) return ReplyErr(req, s);
  AttachMig(req, of.get());
  fi->keep_cache = 1;
  if (fi->flags & O_DIRECT) fi->direct_io = 1;
  fuse_entry_param p;
  FillEntry(req, e, &p);
  CountOpen(req, of.get(), fi);
  OpenFile* opened = of.get();
  fi->fh = St(req)->files.Add(std::move(of));
  const int rc = fuse_reply_create(req, &p, fi);
  tl_reply_backing_id = 0;
  if (rc != 0) {
    UncountOpen(req, opened);
    St(req)->files.Take(fi->fh);
    Fs(req)->Forget(e.node, 1);
  }
}

// A request parked until a range is resident: a read (SlowRead) or a
// RESTORE with WAIT (RestoreControl).
struct ParkedRequest : std::enable_shared_from_this<ParkedRequest> {
  fuse_req_t req;
  MigrationService* mig;
  std::mutex mu;
  std::shared_ptr<MigrationService::Wait> wait;  // once registered
  bool interrupted = false;
};

// libfuse calls it with the request's lock held: only hand the cancel over
// (the answer it causes clears this function under that same lock).
void InterruptParked(fuse_req_t, void* data) {
  auto* p = static_cast<ParkedRequest*>(data);
  std::shared_ptr<ParkedRequest> keep = p->shared_from_this();
  std::shared_ptr<MigrationService::Wait> w;
  {
    std::lock_guard<std::mutex> l(p->mu);
    p->interrupted = true;
    w = p->wait;
  }
  if (w) p->mig->Submit([keep, w] { keep->mig->CancelWait(w); });
}

// The migration state of the file `of` reads: its own (set at open), or,
// for a read-only open of a lower file that a copy-up has since moved to
// the upper layer, the upper file's, attached on first sight (a lazy
// copy-up leaves that file released: its reads must take the slow path).
// Call after Fs()->ReadFd(of), which follows the move.
const std::shared_ptr<MigFile>& ReadMig(fuse_req_t req, OpenFile* of) {
  static const std::shared_ptr<MigFile> kNone;
  if (of->mig || Mig(req) == nullptr) return of->mig;
  if (of->followed.load(std::memory_order_acquire)) return of->followed_mig;
  if (!of->upper.load(std::memory_order_acquire) || !of->node->is_reg()) return kNone;
  std::lock_guard<std::mutex> l(of->mu);
  if (!of->followed.load(std::memory_order_relaxed)) {
    of->followed_mig = Mig(req)->Attach(of->fd);
    of->followed.store(true, std::memory_order_release);
  }
  return of->followed_mig;
}

// A read of a range not known to be resident: start (or join) its restore
// and answer from the restorer's callback, without holding this thread.
void SlowRead(fuse_req_t req, const std::shared_ptr<MigFile>& mf, int fd, size_t size, off_t off) {
  auto p = std::make_shared<ParkedRequest>();
  p->req = req;
  p->mig = Mig(req);
  auto answer = [p, mf, fd, size, off](const Status& s) {
    // No interrupt callback may run (or be running) once we answer, or
    // once the read is parked again.
    fuse_req_interrupt_func(p->req, nullptr, nullptr);
    if (!s.ok()) {
      int err = s.err() == EINTR ? EINTR : EIO;
      if (err == EIO) std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
      fuse_reply_err(p->req, err);
      return;
    }
    // One hold of the gate from the look to the read: a release cannot
    // punch the range in between.
    std::shared_lock<IoGate> gate(mf->io_gate);
    if (mf->slow.load(std::memory_order_acquire) &&
        !p->mig->KnownResident(mf.get(), static_cast<uint64_t>(off), size)) {
      // Released again since the restore answered: wait again.
      gate.unlock();
      return p->mig->Submit(
          [req = p->req, mf, fd, size, off] { SlowRead(req, mf, fd, size, off); });
    }
    PausePoint("slow-read-answered");
    std::unique_ptr<char[]> buf(new char[size]);
    size_t got = 0;
    while (got < size) {
      ssize_t n = pread(fd, buf.get() + got, size - got, off + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return (void)fuse_reply_err(p->req, errno);
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    fuse_reply_buf(p->req, buf.get(), got);
  };
  fuse_req_interrupt_func(req, InterruptParked, p.get());
  auto w = Mig(req)->ReadRange(mf, fd, static_cast<uint64_t>(off), size, answer);
  bool cancel;
  {
    std::lock_guard<std::mutex> l(p->mu);
    p->wait = w;
    cancel = p->interrupted;
  }
  if (cancel) Mig(req)->Submit([p, w] { p->mig->CancelWait(w); });
}

// Answers a read with `size` bytes of fd at `off`, spliced by libfuse.
void ReplyFromFd(fuse_req_t req, int fd, size_t size, off_t off) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  OpenFile* of = OF(fi);
  const int fd = Fs(req)->ReadFd(of);
  const std::shared_ptr<MigFile>& mf = ReadMig(req, of);
  if (mf != nullptr) {
    // Held until the gate is let go: once answered, the caller may close
    // its last descriptor, and a RELEASE on another thread drop the open
    // and with it (the last hold on) the file's migration state. An unlock
    // into freed memory then counted a new MigFile's gate down to -1
    // readers, and its next release waited for ever.
    std::shared_ptr<MigFile> m = mf;
    // Resident now, and until read: a release waits for the gate.
    std::shared_lock<IoGate> gate(m->io_gate);
    if (m->slow.load(std::memory_order_acquire) &&
        !Mig(req)->KnownResident(m.get(), static_cast<uint64_t>(off), size)) {
      gate.unlock();
      return SlowRead(req, m, fd, size, off);
    }
    ReplyFromFd(req, fd, size, off);
    PausePoint("read-answered");
    return;
  }
  if (St(req)->hard && !of->upper.load(std::memory_order_acquire) &&
      Fs(req)->ServedLower(of->node)) {
    // Hard: a read of image content waits as long as the cold tier does
    // not answer. Not on a request-loop thread, or one such reader would
    // stall the whole mount (threads=1).
    return St(req)->hard_reads->Submit([req, fd, size, off] { ReplyFromFd(req, fd, size, off); });
  }
  ReplyFromFd(req, fd, size, off);
}

// With the writeback cache the kernel owns a file's mtime: it sends its own
// in a SETATTR when it pushes the data back, and that SETATTR may overtake
// the WRITEs it pushes (those are background requests). So a WRITE leaves
// the upper file's mtime as it was; otherwise a remount would show a later
// mtime than the mount did. (With threads>1 a SETATTR answered between the
// fstat and the futimens is undone; the kernel's next push sets it again.)
// Not in MigWrite: with a store there is no writeback cache.
class KeepMtime {
 public:
  KeepMtime(int fd, bool on) : fd_(fd), on_(on && fstat(fd, &st_) == 0) {}
  ~KeepMtime() {
    if (!on_) return;
    const timespec ts[2] = {{0, UTIME_OMIT}, st_.st_mtim};
    futimens(fd_, ts);
  }
  KeepMtime(const KeepMtime&) = delete;
  KeepMtime& operator=(const KeepMtime&) = delete;

 private:
  const int fd_;
  struct stat st_;
  const bool on_;
};

// A write to a file with a migration record: the data is copied out of the
// request (its buffer is reused once we return), written and recorded on
// the service's pool, without waiting for any restore.
// A WRITE of a direct-I/O open: the FUSE client calls no file_remove_privs
// on that path (it only flags the WRITE, which libfuse 3.14 does not pass
// on), so the set-user-ID and set-group-ID bits are cleared here.
void AfterDirectWrite(fuse_req_t req, OpenFile* of) {
  if (!of->direct_io) return;
  bool dropped = false;
  if (Fs(req)->DropSuidSgid(CtxOf(req), of->node, &dropped).ok() && dropped)
    fuse_lowlevel_notify_inval_inode(St(req)->se, Ino(Fs(req), of->node), -1, 0);
}

void MigWrite(fuse_req_t req, fuse_bufvec* in, off_t off, OpenFile* of) {
  auto data = std::make_shared<std::string>(fuse_buf_size(in), '\0');
  fuse_bufvec mem = FUSE_BUFVEC_INIT(data->size());
  mem.buf[0].mem = data->data();
  ssize_t n = fuse_buf_copy(&mem, in, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
  data->resize(static_cast<size_t>(n));
  std::shared_ptr<MigFile> m = of->mig;
  Mig(req)->Submit([req, data, off, of, m] {
    UserChange c;
    c.offset = static_cast<uint64_t>(off);
    c.length = data->size();
    Status s = Mig(req)->UserModify(m, of->fd, c, [&] {
      size_t done = 0;
      while (done < data->size()) {
        ssize_t w = pwrite(of->fd, data->data() + done, data->size() - done,
                           off + static_cast<off_t>(done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Status::FromErrno();
        done += static_cast<size_t>(w);
      }
      return Status::OK();
    });
    if (!s.ok()) return ReplyErr(req, s);
    AfterDirectWrite(req, of);
    fuse_reply_write(req, data->size());
  });
}

void OpWriteBuf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  OpenFile* of = OF(fi);
  PlainChange plain(of->mig);
  if (plain.tracked()) return MigWrite(req, in, off, of);
  const bool tier = of->mig != nullptr;
  if (tier) PausePoint("plain-write");
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = of->fd;
  out.buf[0].pos = off;
  ssize_t n;
  {
    KeepMtime keep(of->fd, St(req)->writeback);
    n = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  }
  if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
  AfterDirectWrite(req, of);
  fuse_reply_write(req, static_cast<size_t>(n));
  // Answered: the caller may close its descriptor now, and `of` go, before
  // `plain` ends (tests hold this instant).
  if (tier) PausePoint("plain-write-answered");
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  std::unique_ptr<OpenFile> of = St(req)->files.Take(fi->fh);
  if (of) UncountOpen(req, of.get());
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  OpenFile* of = OF(fi);
  Defer(req, [req, of, datasync] {
    Status s = Fs(req)->Fsync(of, datasync);
    // A restore job may hold this file's writes in a record it commits
    // later: the record must be as durable as the bytes now are.
    if (s.ok() && of->mig) s = Mig(req)->UserSynced(of->mig);
    ReplyErr(req, s);
  });
}

// What a fallocate changes of a file of `size` bytes, for its migration
// record. A punch or zeroing makes the range the user's (zeros): recorded
// like a write, so a restore never puts archive bytes over it. A plain
// allocation keeps the bytes there: only what it adds past the end is the
// user's, and what the archive still holds below the end stays to be
// restored (over the zeroed blocks the allocation leaves in a released
// range).
UserChange FallocateChange(int mode, off_t offset, off_t length, off_t size_before) {
  const uint64_t size = static_cast<uint64_t>(size_before);
  const bool zeroes = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
  UserChange c;
  c.offset = static_cast<uint64_t>(offset);
  uint64_t end = static_cast<uint64_t>(offset) + static_cast<uint64_t>(length);
  if (mode & FALLOC_FL_KEEP_SIZE) end = std::min(end, size);
  if (!zeroes) c.offset = std::max(c.offset, size);
  c.length = end > c.offset ? end - c.offset : 0;
  return c;
}

void OpFallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
                 fuse_file_info* fi) {
  OpenFile* of = OF(fi);
  PlainChange plain(of->mig);
  if (plain.tracked()) {
    // Moving bytes around would move them off the ranges the residency map
    // and the archive describe.
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
      return (void)fuse_reply_err(req, EOPNOTSUPP);
    std::shared_ptr<MigFile> m = of->mig;
    return Mig(req)->Submit([req, of, m, mode, offset, length] {
      struct stat st;
      if (fstat(of->fd, &st) != 0) return (void)fuse_reply_err(req, errno);
      const UserChange c = FallocateChange(mode, offset, length, st.st_size);
      ReplyErr(req, Mig(req)->UserModify(m, of->fd, c, [&] {
        return Fs(req)->Fallocate(of, mode, offset, length);
      }));
    });
  }
  ReplyErr(req, Fs(req)->Fallocate(of, mode, offset, length));
}

void OpLseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  OpenFile* of = OF(fi);
  const int fd = Fs(req)->ReadFd(of);
  const std::shared_ptr<MigFile>& mf = ReadMig(req, of);
  if ((whence == SEEK_DATA || whence == SEEK_HOLE) && mf &&
      mf->slow.load(std::memory_order_acquire)) {
    // Released bytes are punched holes in the upper file but data to the
    // user: the whole file is data.
    struct stat st;
    if (fstat(fd, &st) != 0) return (void)fuse_reply_err(req, errno);
    if (off >= st.st_size) return (void)fuse_reply_err(req, ENXIO);
    return (void)fuse_reply_lseek(req, whence == SEEK_DATA ? off : st.st_size);
  }
  off_t r = lseek(fd, off, whence);
  if (r < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, r);
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                     off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  // With a store: not offered (ENOSYS, which the kernel remembers for the
  // mount), so the kernel copies through READ and WRITE, whose paths the
  // migration tier guards. A copy path of its own (git show 4c70e02^,
  // OpCopyFileRange) lost bytes under fsx's archive/release churn. Seen
  // since: it copied without holding the source's io_gate when the source
  // looked resident (a release could punch the range under the copy), its
  // plain destination writes were not PlainChanges, and the restore it
  // waited for could answer from before a release (fixed since for reads,
  // 42e8e1e). Bringing it back needs the destination's modify_mu taken
  // before the source's gate (Release takes them in that order), and the
  // source restored before either is held.
  if (Mig(req) != nullptr) return (void)fuse_reply_err(req, ENOSYS);
  OpenFile* in = OF(fi_in);
  OpenFile* out = OF(fi_out);
  const int in_fd = Fs(req)->ReadFd(in);
  ssize_t n = copy_file_range(in_fd, &off_in, out->fd, &off_out, len, flags);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_write(req, static_cast<size_t>(n));
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::unique_ptr<OpenDir> od;
  Status s = Fs(req)->OpenDirectory(N(req, ino), &od);
  if (!s.ok()) return ReplyErr(req, s);
  fi->fh = St(req)->dirs.Add(std::move(od));
  if (fuse_reply_open(req, fi) != 0) St(req)->dirs.Take(fi->fh);
}

void DoReaddir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  auto* od = reinterpret_cast<OpenDir*>(fi->fh);
  UnionFs* fs = Fs(req);
  Status s = fs->LoadDirectory(od, off == 0);
  if (!s.ok()) return ReplyErr(req, s);
  std::unique_ptr<char[]> buf(new char[size]);
  size_t used = 0;
  // Which entries carry attributes (a lookup each here, an inode each in
  // the kernel). Like the kernel's READDIRPLUS_AUTO: the first chunk, and
  // the chunks after someone looked up an entry of this directory (they
  // are stat-ing what they list); unlike it, the whole listing once that
  // happened, and a listing of a directory whose entries were looked up
  // since its last listing (a second `ls -l`, find or walk). And every
  // entry of a directory whose lookups cost no system call
  // (lookups_in_process: an image directory): attributes then save the
  // LOOKUP round trip of each entry a walk stats. Entries without
  // attributes go as plain dirents (node id 0).
  const bool advised = od->node->advise_rdplus.exchange(false, std::memory_order_relaxed);
  if (off == 0) od->with_attrs = false;
  od->with_attrs = od->with_attrs || advised;
  const bool attrs = plus && (off == 0 || od->with_attrs || od->lookups_in_process);
  for (size_t i = static_cast<size_t>(off); i < od->entries.size(); ++i) {
    const DirEntry& d = od->entries[i];
    size_t left = size - used;
    size_t n;
    if (plus) {
      // Without attributes (node id 0): a plain dirent.
      fuse_entry_param p;
      std::memset(&p, 0, sizeof(p));
      p.attr.st_ino = d.ino;
      p.attr.st_mode = d.type;
      Entry e;
      bool looked_up = false;
      if (attrs && d.name != "." && d.name != "..") {
        Status ls = fs->Lookup(CtxOf(req), od->node, d.name, &e);
        if (ls.ok()) {
          FillEntry(req, e, &p);
          looked_up = true;
        } else if (ls.err() == ENOENT) {
          continue;  // vanished since the listing was made
        }
        // Another error: listed without attributes; the lookup of a stat
        // that follows reports it (a damaged image entry is EIO, not absent).
      }
      n = fuse_add_direntry_plus(req, buf.get() + used, left, d.name.c_str(), &p, i + 1);
      if (n > left) {
        if (looked_up) fs->Forget(e.node, 1);
        break;
      }
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof(st));
      st.st_ino = d.ino;
      st.st_mode = d.type;
      n = fuse_add_direntry(req, buf.get() + used, left, d.name.c_str(), &st, i + 1);
      if (n > left) break;
    }
    used += n;
  }
  fuse_reply_buf(req, buf.get(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  St(req)->dirs.Take(fi->fh);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  Defer(req, [req, ino, datasync] { ReplyErr(req, Fs(req)->FsyncDir(N(req, ino), datasync)); });
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv;
  Status s = Fs(req)->StatFs(&sv);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_statfs(req, &sv);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  ReplyErr(req, Fs(req)->SetXattr(CtxOf(req), N(req, ino), name, value, size, flags));
}

void ReplyXattrValue(fuse_req_t req, const std::string& v, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, v.size());
  if (v.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, v.data(), v.size());
}

// user.overtier.state: the migration state of an upper regular file
// (docs/FORMAT.md). Read-only: the union refuses to set or remove
// user.overtier.* (EPERM) and does not list it.
constexpr std::string_view kStateXattr = "user.overtier.state";

void GetStateXattr(fuse_req_t req, Node* node, size_t size) {
  if (!node->is_reg()) return (void)fuse_reply_err(req, ENODATA);
  int fd = -1;
  Status s = Fs(req)->OpenUpperData(node, O_PATH, &fd);
  if (!s.ok()) {
    // A file only in a lower layer has all its data: resident.
    return s.err() == EINVAL ? ReplyXattrValue(req, "resident", size) : ReplyErr(req, s);
  }
  std::string v;
  s = Mig(req)->StateString(fd, &v);
  close(fd);
  if (!s.ok()) return ReplyErr(req, s);
  ReplyXattrValue(req, v, size);
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (Mig(req) != nullptr && name == kStateXattr) return GetStateXattr(req, N(req, ino), size);
  std::string v;
  Status s = Fs(req)->GetXattr(CtxOf(req), N(req, ino), name, &v);
  if (!s.ok()) return ReplyErr(req, s);
  ReplyXattrValue(req, v, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string v;
  Status s = Fs(req)->ListXattr(CtxOf(req), N(req, ino), &v);
  if (!s.ok()) return ReplyErr(req, s);
  ReplyXattrValue(req, v, size);
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ReplyErr(req, Fs(req)->RemoveXattr(CtxOf(req), N(req, ino), name));
}

// ---- control ioctls (include/overtier/control.h)

bool ValidRequest(const overtier_ctl_request& r, uint32_t allowed_flags) {
  if (r.version != OVERTIER_CTL_VERSION || (r.flags & ~allowed_flags) != 0) return false;
  for (uint64_t x : r.reserved)
    if (x != 0) return false;
  return true;
}

// Drops the kernel's cached pages of ino: after a release they must not
// stand in for data the read path now has to check.
// (Takes the session, not the request: called after the reply, when the
// request is gone.)
void InvalidateData(fuse_session* se, fuse_ino_t ino) {
  fuse_lowlevel_notify_inval_inode(se, ino, 0, 0);
}

// Before a control command: no passthrough open of the file may remain,
// nor start from now on (its reads and writes would bypass the tier, and a
// release would leave it reading holes). The flag is set before the look,
// under the lock opens are counted with, so an open either shows here or
// sees the flag.
Status PassthroughGate(fuse_req_t req, OpenFile* of, const std::string& what) {
  PassthroughFiles* pt = St(req)->pt;
  if (pt == nullptr || !of->mig) return Status::OK();
  of->mig->no_passthrough.store(true);
  if (!pt->InUse(of->node)) return Status::OK();
  return Status::Errno(EBUSY, "'" + what +
                                  "' is open with FUSE passthrough (opened before the migration "
                                  "tier knew it; an agent must open it with O_NOATIME)");
}

// The answer to a control command: its errno, with the reason in the
// daemon's log; after a release, the kernel's cached attributes and pages
// of the file go.
void AnswerControl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, const overtier_ctl_request& r,
                   const Status& s) {
  if (!s.ok()) {
    // The caller gets only the errno: the reason goes to the daemon's log,
    // but for the routine refusals whose errno says it all (already
    // archived, no archive to release, changed meanwhile: an `archive -r`
    // over a tree meets thousands; a wait the caller interrupted), which
    // would flood syslog.
    const int e = s.err();
    if (e != ENOTTY && e != EALREADY && e != ENODATA && e != ESTALE && e != EINTR)
      std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
    return ReplyErr(req, s);
  }
  fuse_session* se = St(req)->se;
  const bool released = cmd == OVERTIER_IOC_RELEASE || cmd == OVERTIER_IOC_SET_NONRESIDENT ||
                        (cmd == OVERTIER_IOC_ARCHIVE && (r.flags & OVERTIER_CTL_RELEASE));
  // The cached attributes go before the caller hears back: a stat right
  // after the release must show the freed blocks. (Attributes only: that
  // takes no page lock, so it is safe while handling a request.)
  if (released) fuse_lowlevel_notify_inval_inode(se, ino, -1, 0);
  fuse_reply_ioctl(req, 0, nullptr, 0);
  if (released) InvalidateData(se, ino);
}

// RESTORE: answered at once, or with WAIT once the restore is done, from
// the restorer's callback (no thread waits for it). Ctrl-C ends a waiting
// caller's wait with EINTR; the restore goes on.
void RestoreControl(fuse_req_t req, fuse_ino_t ino, const std::shared_ptr<MigFile>& m, OpenFile* of,
                    const std::string& what, const overtier_ctl_request& r) {
  const bool wait = r.flags & OVERTIER_CTL_WAIT;
  auto p = std::make_shared<ParkedRequest>();
  p->req = req;
  p->mig = Mig(req);
  if (wait) fuse_req_interrupt_func(req, InterruptParked, p.get());
  auto w = Mig(req)->Restore(m, of->fd, what, r.offset, r.length, wait,
                             r.flags & OVERTIER_CTL_RANGE_ONLY, [p, ino, r, wait](const Status& s) {
                               // No interrupt callback may run once we answer.
                               if (wait) fuse_req_interrupt_func(p->req, nullptr, nullptr);
                               AnswerControl(p->req, ino, OVERTIER_IOC_RESTORE, r, s);
                             });
  if (!wait) return;
  bool cancel;
  {
    std::lock_guard<std::mutex> l(p->mu);
    p->wait = w;
    cancel = p->interrupted;
  }
  if (cancel) p->mig->Submit([p, w] { p->mig->CancelWait(w); });
}

void DoControl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, OpenFile* of,
               const overtier_ctl_request& r) {
  MigrationService* mig = Mig(req);
  const std::string what = UpperFileName(of->fd);
  std::shared_ptr<MigFile> m = of->mig;
  if (r.generation != 0) {
    FileHandle fh;
    Status s = GetFileHandle(of->fd, what, &fh);
    if (!s.ok()) return ReplyErr(req, s);
    if (fh.has_generation && fh.generation != r.generation)
      return (void)fuse_reply_err(req, ESTALE);
  }
  // A file without a record (the only kind FUSE passthrough opens) has
  // every byte resident: a restore has nothing to do, whoever holds it
  // open. Answered before the gate, which would refuse it for an open
  // descriptor (`restore -r` over a tree in use) and would take its later
  // opens off passthrough for nothing.
  if (cmd == OVERTIER_IOC_RESTORE && m && !m->tracked()) {
    return AnswerControl(req, ino, cmd, r,
                         Status::Errno(EALREADY, "nothing to restore: no migration record"));
  }
  Status s = PassthroughGate(req, of, what);
  if (!s.ok()) return AnswerControl(req, ino, cmd, r, s);
  switch (cmd) {
    case OVERTIER_IOC_ARCHIVE:
      s = mig->Archive(m, of->fd, what, r.flags & OVERTIER_CTL_RELEASE, r.offset);
      break;
    case OVERTIER_IOC_RELEASE:
      s = mig->Release(m, of->fd, what, r.offset);
      break;
    case OVERTIER_IOC_RESTORE:
      return RestoreControl(req, ino, m, of, what, r);
    case OVERTIER_IOC_ARCHIVE_BEGIN:
    case OVERTIER_IOC_ARCHIVE_ABORT:
    case OVERTIER_IOC_SET_NONRESIDENT:
    case OVERTIER_IOC_RESTORE_BEGIN:
    case OVERTIER_IOC_MOVE_BARRIER:
    case OVERTIER_IOC_RESTORE_DONE:
      s = mig->Primitive(m, of->fd, what, cmd, r, nullptr);
      break;
    default:
      s = Status::Errno(ENOTTY);
  }
  AnswerControl(req, ino, cmd, r, s);
}

// SET_ARCHIVED: an external agent's archive (overtier_ctl_archived).
void AgentSetArchived(fuse_req_t req, fuse_ino_t, OpenFile* of, const void* in_buf,
                      size_t in_bufsz) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  overtier_ctl_archived a;
  if (in_bufsz < sizeof(a)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&a, in_buf, sizeof(a));
  if (a.version != OVERTIER_CTL_VERSION) return (void)fuse_reply_err(req, EINVAL);
  for (uint64_t x : a.reserved)
    if (x != 0) return (void)fuse_reply_err(req, EINVAL);
  if (!of->upper || !of->mig || !of->node->is_reg()) return (void)fuse_reply_err(req, EINVAL);
  Mig(req)->SubmitControl([req, of, a] {
    overtier_ctl_request r{};
    r.version = OVERTIER_CTL_VERSION;
    const std::string what = UpperFileName(of->fd);
    Status s = PassthroughGate(req, of, what);
    if (s.ok()) s = Mig(req)->Primitive(of->mig, of->fd, what, OVERTIER_IOC_SET_ARCHIVED, r, &a);
    if (!s.ok()) {
      std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
      return ReplyErr(req, s);
    }
    fuse_reply_ioctl(req, 0, nullptr, 0);
  });
}

void OpIoctl(fuse_req_t req, fuse_ino_t ino, unsigned icmd, void*, fuse_file_info* fi,
             unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  const unsigned cmd = icmd;
  if (cmd == FS_IOC_GETFLAGS || cmd == FS_IOC_SETFLAGS || cmd == FS_IOC_FSGETXATTR ||
      cmd == FS_IOC_FSSETXATTR) {
    // chattr(1) and lsattr(1), by the kernel's fileattr calls: an int of
    // flags, or a struct fsxattr, in and out.
    const size_t size =
        cmd == FS_IOC_GETFLAGS || cmd == FS_IOC_SETFLAGS ? sizeof(int) : sizeof(struct fsxattr);
    const bool set = cmd == FS_IOC_SETFLAGS || cmd == FS_IOC_FSSETXATTR;
    if ((set && in_bufsz < size) || (!set && out_bufsz < size))
      return (void)fuse_reply_err(req, EINVAL);
    struct fsxattr arg {};
    if (set) std::memcpy(&arg, in_buf, size);
    int iflags = 0;
    if (cmd == FS_IOC_SETFLAGS) std::memcpy(&iflags, in_buf, sizeof(iflags));
    const uint32_t protect = cmd == FS_IOC_SETFLAGS
                                 ? static_cast<uint32_t>(iflags) & (FS_IMMUTABLE_FL | FS_APPEND_FL)
                                 : arg.fsx_xflags & (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND);
    if (!set || protect == 0 || !N(req, ino)->is_reg()) {
      Status s = Fs(req)->FileAttrIoctl(N(req, ino), cmd, &arg);
      if (!s.ok()) return ReplyErr(req, s);
      return (void)fuse_reply_ioctl(req, 0, set ? nullptr : &arg, set ? 0 : size);
    }
    // Immutable or append-only: the upper file system will refuse the
    // daemon's own writes to the file too, so its data must be there
    // first (a copy-up with data, off the request loop), and a file of the
    // migration tier must be resident (a restore could not write it).
    return Defer(req, [req, ino, cmd, arg]() mutable {
      Node* node = N(req, ino);
      Status s = Fs(req)->CopyUpForWrite(node);
      if (s.ok() && Mig(req) != nullptr) {
        int fd = -1;
        std::shared_ptr<MigFile> m = MigOfNode(req, node, &fd);
        if (m) {
          overtier_ctl_state st{};
          st.version = OVERTIER_CTL_VERSION;
          s = Mig(req)->GetState(fd, &st);
          if (s.ok() && st.state != OVERTIER_STATE_RESIDENT && st.state != OVERTIER_STATE_ARCHIVED)
            s = Status::Errno(EBUSY, "not resident: restore it before chattr +i/+a");
        }
        if (fd >= 0) close(fd);
      }
      if (s.ok()) s = Fs(req)->FileAttrIoctl(node, cmd, &arg);
      if (!s.ok()) return ReplyErr(req, s);
      fuse_reply_ioctl(req, 0, nullptr, 0);
    });
  }
  if ((flags & FUSE_IOCTL_DIR) || Mig(req) == nullptr) return (void)fuse_reply_err(req, ENOTTY);
  OpenFile* of = OF(fi);
  if (cmd == OVERTIER_IOC_GET_STATE) {
    overtier_ctl_state st;
    if (in_bufsz < sizeof(st) || out_bufsz < sizeof(st)) return (void)fuse_reply_err(req, EINVAL);
    std::memcpy(&st, in_buf, sizeof(st));
    if (st.version != OVERTIER_CTL_VERSION) return (void)fuse_reply_err(req, EINVAL);
    Status s;
    if (of->upper) {
      s = Mig(req)->GetState(of->fd, &st);
    } else {
      // Only in a lower layer: all its data is there.
      struct stat sb;
      std::memset(&st, 0, sizeof(st));
      st.version = OVERTIER_CTL_VERSION;
      st.state = OVERTIER_STATE_RESIDENT;
      st.mig_flags = OVERTIER_MIG_LOWER;
      if (fstat(of->fd, &sb) != 0) {
        s = Status::FromErrno();
      } else {
        st.size = static_cast<uint64_t>(sb.st_size);
        st.barrier = st.size;
        st.resident_bytes = st.size;
        st.nranges = st.size > 0;
      }
    }
    if (!s.ok()) return ReplyErr(req, s);
    fuse_reply_ioctl(req, 0, &st, sizeof(st));
    return;
  }
  uint32_t allowed;
  switch (cmd) {
    case OVERTIER_IOC_ARCHIVE:
      allowed = OVERTIER_CTL_RELEASE;
      break;
    case OVERTIER_IOC_RELEASE:
      allowed = 0;
      break;
    case OVERTIER_IOC_RESTORE:
      allowed = OVERTIER_CTL_WAIT | OVERTIER_CTL_RANGE_ONLY;
      break;
    case OVERTIER_IOC_SET_ARCHIVED:
      return AgentSetArchived(req, ino, of, in_buf, in_bufsz);
    case OVERTIER_IOC_ARCHIVE_BEGIN:
    case OVERTIER_IOC_ARCHIVE_ABORT:
    case OVERTIER_IOC_SET_NONRESIDENT:
    case OVERTIER_IOC_RESTORE_BEGIN:
    case OVERTIER_IOC_MOVE_BARRIER:
    case OVERTIER_IOC_RESTORE_DONE:
      allowed = 0;  // the DMFS primitives, for external agents
      break;
    default:
      return (void)fuse_reply_err(req, ENOTTY);
  }
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  overtier_ctl_request r;
  if (in_bufsz < sizeof(r)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&r, in_buf, sizeof(r));
  if (!ValidRequest(r, allowed)) return (void)fuse_reply_err(req, EINVAL);
  // The migration tier works on upper files (a file only in a lower layer
  // is never archived: copy it up first, e.g. by opening it for writing).
  // Such a file is resident, as GET_STATE says: a restore has nothing to do.
  if (cmd == OVERTIER_IOC_RESTORE && !of->upper && of->node->is_reg())
    return (void)fuse_reply_ioctl(req, 0, nullptr, 0);
  if (!of->upper || !of->mig || !of->node->is_reg()) return (void)fuse_reply_err(req, EINVAL);
  // Archives and waits take long: off the request loop.
  Mig(req)->SubmitControl([req, ino, cmd, of, r] { DoControl(req, ino, cmd, of, r); });
}

void OpAccess(fuse_req_t req, fuse_ino_t, int) {
  // default_permissions: the kernel has checked already.
  fuse_reply_err(req, 0);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o;
  std::memset(&o, 0, sizeof(o));
  o.init = OpInit;
  o.lookup = OpLookup;
  o.forget = OpForget;
  o.forget_multi = OpForgetMulti;
  o.getattr = OpGetattr;
  o.setattr = OpSetattr;
  o.readlink = OpReadlink;
  o.mknod = OpMknod;
  o.mkdir = OpMkdir;
  o.symlink = OpSymlink;
  o.link = OpLink;
  o.unlink = OpUnlink;
  o.rmdir = OpRmdir;
  o.rename = OpRename;
  o.open = OpOpen;
  o.create = OpCreate;
  o.read = OpRead;
  o.write_buf = OpWriteBuf;
  // No flush: there is nothing to do at close(2) that release does not do
  // (locks stay in the kernel), and without it the kernel stops sending
  // FLUSH, one round trip less per close.
  o.release = OpRelease;
  o.fsync = OpFsync;
  o.fallocate = OpFallocate;
  o.lseek = OpLseek;
  o.copy_file_range = OpCopyFileRange;
  o.opendir = OpOpendir;
  o.readdir = OpReaddir;
  o.readdirplus = OpReaddirplus;
  o.releasedir = OpReleasedir;
  o.fsyncdir = OpFsyncdir;
  o.statfs = OpStatfs;
  o.setxattr = OpSetxattr;
  o.getxattr = OpGetxattr;
  o.listxattr = OpListxattr;
  o.removexattr = OpRemovexattr;
  o.access = OpAccess;
  o.ioctl = OpIoctl;
  return o;
}();

// The request loop: a fixed set of workers, each reading from /dev/fuse
// and answering what it read. libfuse 3.14's own multi-threaded loop
// starts a thread whenever no worker is idle and stops it again when too
// many are, and on a small machine that bookkeeping and thread handoff
// cost several times the request itself (measured: 8 KiB writes 5x
// slower than with a single thread). A fixed pool keeps the concurrency
// (a slow copy-up does not stall other requests) without the churn.
int RunWorkers(fuse_session* se, int nthreads, unsigned spin_us) {
  SessionReceiver receiver(se, spin_us);
  auto work = [se, &receiver] {
    fuse_buf buf{};
    while (!fuse_session_exited(se)) {
      int res = receiver.Receive(&buf);
      if (res == -EINTR) continue;
      if (res <= 0) {
        if (res < 0) fuse_session_exit(se);
        break;
      }
      // Small requests arrive in memory (libfuse copies them out of the
      // splice pipe); a TMPFILE request is always small.
      if (!(buf.flags & FUSE_BUF_IS_FD)) TmpfileAsCreate(buf.mem, buf.size);
      fuse_session_process_buf(se, &buf);
    }
    free(buf.mem);
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < nthreads; ++i) pool.emplace_back(work);
  work();
  // An unmount wakes every reader (ENODEV). A signal (SIGTERM) ends only the
  // worker it interrupted: unmounting wakes the others the same way.
  if (!pool.empty()) fuse_session_unmount(se);
  for (auto& t : pool) t.join();
  return 0;
}

// Handles whose RELEASE never came (src/open_handles.h), once no request
// runs: closed while the passthrough files they are counted in still exist.
void CloseUnreleased(State* st) {
  std::vector<std::unique_ptr<OpenFile>> files = st->files.TakeAll();
  for (auto& of : files) {
    if (of->io_counted) st->pt->Released(of->node, of->passthrough);
  }
  const size_t dirs = st->dirs.TakeAll().size();
  if (!files.empty() || dirs > 0) {
    std::fprintf(stderr,
                 "overtier: the kernel did not release %zu open file(s) and %zu directory(ies) "
                 "before the mount went away: closed them\n",
                 files.size(), dirs);
  }
}

}  // namespace

int ServeFuse(UnionFs* fs, const Invocation& inv, const std::function<void()>& after_daemonize,
              MigrationService* mig) {
  State state;
  state.fs = fs;
  state.timeout = inv.opts.timeout;
  state.hard = inv.opts.hard;
  state.mig = mig;
  const MountOptions& o = inv.opts;
  std::string mopts =
      "default_permissions,fsname=" + (o.fsname.empty() ? std::string("overtier") : o.fsname) +
      ",subtype=overtier";
  if (AllowsOtherUsers(o, geteuid())) {
    mopts += ",allow_other";
  } else if (o.allow_root) {
    mopts += ",allow_root";
  }
  if (fs->read_only()) mopts += ",ro";
  if (geteuid() == 0) {
    mopts += o.suid ? ",suid" : ",nosuid";
    mopts += o.dev ? ",dev" : ",nodev";
  }
  if (!o.exec) mopts += ",noexec";
  if (o.noatime) mopts += ",noatime";
  std::vector<const char*> argv = {"overtier", "-o", mopts.c_str()};
  if (inv.debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  fuse_session* se = fuse_session_new(&args, &kOps, sizeof(kOps), &state);
  fuse_opt_free_args(&args);  // libfuse may have copied them
  state.se = se;
  fs->SetAttrChangedHook([&state](Node* n) {
    // Attributes only (negative offset): takes no lock the request that
    // triggered this may hold.
    fuse_lowlevel_notify_inval_inode(state.se, Ino(state.fs, n), -1, 0);
  });
  if (se == nullptr) {
    std::fprintf(stderr, "overtier: cannot start a FUSE session\n");
    return 2;
  }
  int rc = 2;
  if (fuse_set_signal_handlers(se) != 0) {
    std::fprintf(stderr, "overtier: cannot install signal handlers\n");
  } else {
    std::unique_ptr<PassthroughFiles> pt;
    if (fuse_session_mount(se, inv.mountpoint.c_str()) != 0) {
      std::fprintf(stderr, "overtier: cannot mount on '%s'\n", inv.mountpoint.c_str());
    } else {
      if (fuse_session_custom_io(se, &kPatchingIo, fuse_session_fd(se)) == 0 &&
          WantsPassthrough(inv.opts)) {
        pt = std::make_unique<PassthroughFiles>(fuse_session_fd(se));
        state.pt = pt.get();
      }
      // Daemonize only now: the caller (containers/storage) waits for our
      // exit and expects a ready mount when it sees status 0.
      fuse_daemonize(inv.foreground || inv.debug);
      if (after_daemonize) after_daemonize();
      if (mig != nullptr) mig->Start(inv.opts.upperdir);
      {
        // Threads only now: fuse_daemonize forks, and threads do not
        // survive a fork.
        WorkerPool slow(4);
        state.slow = &slow;
        std::unique_ptr<WorkerPool> hard_reads;
        if (state.hard) {
          hard_reads = std::make_unique<WorkerPool>(kHardReadThreads);
          state.hard_reads = hard_reads.get();
        }
        rc = RunWorkers(se, inv.opts.threads, inv.opts.spin_us);
        fuse_session_unmount(se);
        // Waits still parked are answered before the session goes.
        if (mig != nullptr) mig->Shutdown();
      }  // every deferred request has run
      CloseUnreleased(&state);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  return rc;
}

}  // namespace overtier
