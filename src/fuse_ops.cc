// The FUSE transport: libfuse low-level requests translated into UnionFs
// calls. This is the only file that knows FUSE request types; keeping it
// narrow lets the transport be replaced (FUSE passthrough, FUSE over
// io_uring in later libfuse) without touching union/.
#define FUSE_USE_VERSION 312
#include "src/fuse_ops.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "src/worker_pool.h"
#include "union/union_fs.h"

namespace overtier {
namespace {

struct State {
  UnionFs* fs;
  double timeout;
  bool writeback = false;
  fuse_session* se = nullptr;
  WorkerPool* slow = nullptr;  // for requests that may take long
};

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

Ctx CtxOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Ctx{c->uid, c->gid, c->pid};
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
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  // Small writes become large WRITEs; the kernel keeps size and mtime.
  if (!st->fs->read_only() && st->fs->options().writeback) {
    want(FUSE_CAP_WRITEBACK_CACHE);
    st->writeback = conn->want & FUSE_CAP_WRITEBACK_CACHE;
  }
  // Locks stay in the kernel (correct for a local file system).
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Entry e;
  Status s = Fs(req)->Lookup(CtxOf(req), N(req, parent), name, &e);
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

void DoSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
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
  r.values = *attr;
  struct stat out;
  Status s = Fs(req)->SetAttr(CtxOf(req), N(req, ino), r, OF(fi), &out);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_attr(req, &out, St(req)->timeout);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
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

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, Fs(req)->Unlink(CtxOf(req), N(req, parent), name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, Fs(req)->Rmdir(CtxOf(req), N(req, parent), name));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  ReplyErr(req,
           Fs(req)->Rename(CtxOf(req), N(req, parent), name, N(req, newparent), newname, flags));
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

void DoOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::unique_ptr<OpenFile> of;
  Status s = Fs(req)->Open(CtxOf(req), N(req, ino), RealOpenFlags(req, fi->flags), &of);
  if (!s.ok()) return ReplyErr(req, s);
  fi->fh = reinterpret_cast<uint64_t>(of.get());
  // Every change to the data goes through this mount: cached pages stay
  // valid across opens.
  fi->keep_cache = 1;
  if (fi->flags & O_DIRECT) fi->direct_io = 1;
  if (fuse_reply_open(req, fi) == 0) of.release();
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const int acc = fi->flags & O_ACCMODE;
  const bool write = acc != O_RDONLY || (fi->flags & O_TRUNC);
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
  Status s = Fs(req)->CreateFile(CtxOf(req), N(req, parent), name, mode,
                                 RealOpenFlags(req, fi->flags), &e, &of);
  if (!s.ok()) return ReplyErr(req, s);
  fi->fh = reinterpret_cast<uint64_t>(of.get());
  fi->keep_cache = 1;
  if (fi->flags & O_DIRECT) fi->direct_io = 1;
  fuse_entry_param p;
  FillEntry(req, e, &p);
  if (fuse_reply_create(req, &p, fi) == 0) {
    of.release();
  } else {
    Fs(req)->Forget(e.node, 1);
  }
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = Fs(req)->ReadFd(OF(fi));
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void OpWriteBuf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = OF(fi)->fd;
  out.buf[0].pos = off;
  ssize_t n = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
  fuse_reply_write(req, static_cast<size_t>(n));
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete OF(fi);
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  OpenFile* of = OF(fi);
  Defer(req, [req, of, datasync] { ReplyErr(req, Fs(req)->Fsync(of, datasync)); });
}

void OpFallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
                 fuse_file_info* fi) {
  ReplyErr(req, Fs(req)->Fallocate(OF(fi), mode, offset, length));
}

void OpLseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  off_t r = lseek(Fs(req)->ReadFd(OF(fi)), off, whence);
  if (r < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, r);
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                     off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  ssize_t n =
      copy_file_range(Fs(req)->ReadFd(OF(fi_in)), &off_in, OF(fi_out)->fd, &off_out, len, flags);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_write(req, static_cast<size_t>(n));
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::unique_ptr<OpenDir> od;
  Status s = Fs(req)->OpenDirectory(N(req, ino), &od);
  if (!s.ok()) return ReplyErr(req, s);
  fi->fh = reinterpret_cast<uint64_t>(od.get());
  if (fuse_reply_open(req, fi) == 0) od.release();
}

void DoReaddir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  auto* od = reinterpret_cast<OpenDir*>(fi->fh);
  UnionFs* fs = Fs(req);
  Status s = fs->LoadDirectory(od, off == 0);
  if (!s.ok()) return ReplyErr(req, s);
  std::unique_ptr<char[]> buf(new char[size]);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < od->entries.size(); ++i) {
    const DirEntry& d = od->entries[i];
    size_t left = size - used;
    size_t n;
    if (plus) {
      fuse_entry_param p;
      std::memset(&p, 0, sizeof(p));
      Entry e;
      bool looked_up = false;
      if (d.name != "." && d.name != "..") {
        if (fs->Lookup(CtxOf(req), od->node, d.name, &e).ok()) {
          FillEntry(req, e, &p);
          looked_up = true;
        } else {
          continue;  // vanished since the listing was made
        }
      } else {
        p.attr.st_ino = d.ino;
        p.attr.st_mode = d.type;
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
  delete reinterpret_cast<OpenDir*>(fi->fh);
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

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
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
  return o;
}();

// The request loop: a fixed set of workers, each reading from /dev/fuse
// and answering what it read. libfuse 3.14's own multi-threaded loop
// starts a thread whenever no worker is idle and stops it again when too
// many are, and on a small machine that bookkeeping and thread handoff
// cost several times the request itself (measured: 8 KiB writes 5x
// slower than with a single thread). A fixed pool keeps the concurrency
// (a slow copy-up does not stall other requests) without the churn.
int RunWorkers(fuse_session* se, int nthreads) {
  auto work = [se] {
    fuse_buf buf{};
    while (!fuse_session_exited(se)) {
      int res = fuse_session_receive_buf(se, &buf);
      if (res == -EINTR) continue;
      if (res <= 0) {
        if (res < 0) fuse_session_exit(se);
        break;
      }
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

}  // namespace

int ServeFuse(UnionFs* fs, const Invocation& inv, const std::function<void()>& after_daemonize) {
  State state{fs, inv.opts.timeout};
  const MountOptions& o = inv.opts;
  std::string mopts =
      "default_permissions,fsname=" + (o.fsname.empty() ? std::string("overtier") : o.fsname) +
      ",subtype=overtier";
  if (o.allow_other) mopts += ",allow_other";
  if (o.allow_root) mopts += ",allow_root";
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
    if (fuse_session_mount(se, inv.mountpoint.c_str()) != 0) {
      std::fprintf(stderr, "overtier: cannot mount on '%s'\n", inv.mountpoint.c_str());
    } else {
      // Daemonize only now: the caller (containers/storage) waits for our
      // exit and expects a ready mount when it sees status 0.
      fuse_daemonize(inv.foreground || inv.debug);
      if (after_daemonize) after_daemonize();
      // Threads only now: fuse_daemonize forks, and threads do not survive
      // a fork.
      WorkerPool slow(4);
      state.slow = &slow;
      rc = RunWorkers(se, inv.opts.threads);
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  return rc;
}

}  // namespace overtier
