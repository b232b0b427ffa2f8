// The image file system (see image_fuse.h): FUSE low-level requests
// answered from ImageViews, and the detached-mount plumbing.
#define FUSE_USE_VERSION 312
#include "src/image_fuse.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "image/view.h"
#include "migrate/worker_pool.h"
#include "overtier/printable.h"
#include "src/open_handles.h"
#include "store/content_reader.h"

namespace overtier {

namespace {

// An image never changes: the kernel may keep what it learnt for as long
// as it likes (a day, the largest value that means "forever" everywhere).
constexpr double kForever = 86400;

// Node ids: the image id in the top bits, the image's inode below, so that
// one file system serves several images with distinct, stable numbers (and
// st_ino of a hard link is the same under every name). The root of the
// file system is FUSE_ROOT_ID (1); image ids start at 1, so no node id of
// an image is 1. Bits 60..63 stay 0: the union xors a file-system number
// into the top bits (LayerSet::MixIno).
constexpr unsigned kInoBits = 36;
constexpr uint64_t kInoMask = (uint64_t{1} << kInoBits) - 1;
constexpr uint64_t kMaxImageId = (uint64_t{1} << 24) - 1;

// How long Stop waits for the session to end once the mount is closed.
constexpr auto kStopWait = std::chrono::seconds(5);

struct DirSnapshot {
  struct Ent {
    std::string name;
    fuse_ino_t nodeid;
    uint8_t type;  // d_type
  };
  fuse_ino_t self = 0;
  // Filled at the first READDIR, not at OPENDIR: the kernel caches
  // listings (cache_readdir), and the union opens every lower directory
  // it looks up, so most opens never read the listing.
  std::once_flag listed;
  Status list_status;
  std::vector<Ent> ents;
};

struct FileHandle {
  const ImageView* view;
  fuse_ino_t nodeid;
  ImageFile file;
};

}  // namespace

struct ImageFs::Impl {
  Store* store = nullptr;
  std::unique_ptr<ContentReader> reader;
  std::map<uint64_t, std::unique_ptr<ImageView>> views;  // by image id
  fuse_session* se = nullptr;
  int mount_fd = -1;
  dev_t dev = 0;
  std::map<uint64_t, int> roots;  // image id -> root fd
  std::thread bootstrap;
  int wake_fd = -1;
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;  // worker threads still in their loop
  std::mutex log_mu;
  std::set<fuse_ino_t> reported;  // files whose read failure was logged
  // The parent of every directory the kernel has been told about, for
  // ".." lookups: the kernel reconnects a directory opened by file handle
  // (the union's reopen of an evicted descriptor) by walking up to the
  // root. An image keeps no parent pointers; lookups and readdirplus
  // record them here. Grows with the directories seen (16 bytes each).
  std::mutex parents_mu;
  std::unordered_map<fuse_ino_t, fuse_ino_t> parents;
  void NoteParent(fuse_ino_t dir, fuse_ino_t parent) {
    std::lock_guard<std::mutex> l(parents_mu);
    parents[dir] = parent;
  }
  bool stopped = false;
  bool hard = false;
  // The kernel opens directories without asking (FUSE_CAP_NO_OPENDIR_SUPPORT:
  // no OPENDIR nor RELEASEDIR, listings cached as cache_readdir +
  // keep_cache would): readdir then comes without a handle, and pages
  // through a listing shared by node id (Listing).
  bool no_opendir = false;
  std::mutex listings_mu;
  std::list<std::pair<fuse_ino_t, std::shared_ptr<DirSnapshot>>> listings;  // recent first
  // Under hard: reads waiting for a cold tier that does not answer, off
  // the serving threads (there are few; a waiting reader on one would
  // stall every lookup of the union). Started with the serving threads.
  std::unique_ptr<WorkerPool> hard_reads;
  std::atomic<bool> stopping{false};  // Stop has begun: waits end
  // The union's in-process view of the layers (Tree()); null until Mount
  // has checked the handle layout it builds.
  std::unique_ptr<ServedTree> tree;
  int handle_type = 0;  // of this file system's file handles
  // What fi->fh holds (src/open_handles.h); those the kernel never
  // released are freed by Stop.
  OpenHandles<FileHandle> files;
  OpenHandles<DirSnapshot> dirs;

  static fuse_ino_t NodeId(const ImageView& v, uint64_t ino) {
    return (v.image_id() << kInoBits) | ino;
  }
  const ImageView* View(fuse_ino_t nodeid, uint64_t* ino) const {
    auto it = views.find(nodeid >> kInoBits);
    if (it == views.end()) return nullptr;
    *ino = nodeid & kInoMask;
    return it->second.get();
  }

  void Bootstrap();
  void Work();
};

namespace {

ImageFs::Impl* I(fuse_req_t req) { return static_cast<ImageFs::Impl*>(fuse_req_userdata(req)); }

// Errors people should hear about (damage, I/O) are logged; the ordinary
// answers of a lookup are not.
void ReplyStatus(fuse_req_t req, const Status& s) {
  if (!s.message().empty())
    std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
  fuse_reply_err(req, s.err());
}

void RootStat(const ImageFs::Impl* impl, struct stat* st) {
  *st = {};
  st->st_ino = FUSE_ROOT_ID;
  st->st_mode = S_IFDIR | 0555;
  st->st_nlink = 2 + impl->views.size();
  st->st_blksize = 4096;
}

bool NodeStat(const ImageView& v, uint64_t ino, const NodeRecord& n, struct stat* st) {
  if (ino > kInoMask) return false;
  // st_blocks without the holes of a sparse file (one catalog read for a
  // file of more than a chunk); *st is filled even on error.
  Status s = v.Stat(ino, n, st);
  if (!s.ok()) std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
  st->st_ino = ImageFs::Impl::NodeId(v, ino);
  return true;
}

void ReplyEntry(fuse_req_t req, const ImageView& v, uint64_t ino, const NodeRecord& n) {
  fuse_entry_param p;
  std::memset(&p, 0, sizeof(p));
  if (!NodeStat(v, ino, n, &p.attr)) {
    return ReplyStatus(req, Status::Errno(EOVERFLOW, v.Describe() + ": inode " +
                                                         std::to_string(ino) + " too large"));
  }
  p.ino = p.attr.st_ino;
  p.attr_timeout = kForever;
  p.entry_timeout = kForever;
  fuse_reply_entry(req, &p);
}

// The image directory named `name` in the root ("17"), or nullptr.
const ImageView* RootChild(const ImageFs::Impl* impl, const char* name) {
  char* end = nullptr;
  errno = 0;
  unsigned long long id = std::strtoull(name, &end, 10);
  if (errno != 0 || end == name || *end != '\0') return nullptr;
  auto it = impl->views.find(id);
  return it == impl->views.end() ? nullptr : it->second.get();
}

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto want = [&](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  // An image directory needs no open state: OPENDIR and RELEASEDIR were a
  // round trip each for every directory the union lists or opens.
  want(FUSE_CAP_NO_OPENDIR_SUPPORT);
  static_cast<ImageFs::Impl*>(userdata)->no_opendir =
      (conn->want & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_READDIRPLUS);
  // Every chunk of a listing with attributes, not only the first (AUTO):
  // the union looks up every entry of a lower directory it lists, and an
  // entry that came without them is a LOOKUP request each (33,654 of them
  // in a cold walk of bench/store's tree).
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  want(FUSE_CAP_POSIX_ACL);  // ACLs of the image apply, as on a disk
  // File handles (name_to_handle_at / open_by_handle_at): the union can
  // close the descriptors of image objects it has not used for a while and
  // reopen them by handle, instead of holding one per object ever seen
  // (EMFILE on large images). Node ids are stable, so "." answers any.
  want(FUSE_CAP_EXPORT_SUPPORT);
  // Cached pages stay valid whatever getattr says: nothing changes.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  want(FUSE_CAP_EXPLICIT_INVAL_DATA);
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
}

// ".." of directory `dir` (node `ino` of v): its parent as recorded, or the
// file system's root for an image's root directory.
void LookupParent(fuse_req_t req, ImageFs::Impl* impl, const ImageView& v, fuse_ino_t dir,
                  uint64_t ino) {
  if (ino == v.root()) {
    fuse_entry_param p;
    std::memset(&p, 0, sizeof(p));
    RootStat(impl, &p.attr);
    p.ino = FUSE_ROOT_ID;
    p.attr_timeout = kForever;
    p.entry_timeout = kForever;
    fuse_reply_entry(req, &p);
    return;
  }
  fuse_ino_t parent;
  {
    std::lock_guard<std::mutex> l(impl->parents_mu);
    auto it = impl->parents.find(dir);
    if (it == impl->parents.end()) return (void)fuse_reply_err(req, ESTALE);
    parent = it->second;
  }
  uint64_t pino;
  const ImageView* pv = impl->View(parent, &pino);
  NodeRecord n;
  if (pv == nullptr || !pv->GetNode(pino, &n).ok()) return (void)fuse_reply_err(req, ESTALE);
  ReplyEntry(req, *pv, pino, n);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ImageFs::Impl* impl = I(req);
  const ImageView* v;
  uint64_t ino = 0;
  NodeRecord n;
  Status s;
  if (parent == FUSE_ROOT_ID) {
    v = RootChild(impl, name);
    if (v == nullptr) {
      s = Status::Errno(ENOENT);
    } else {
      ino = v->root();
      s = v->GetNode(ino, &n);
      if (s.err() == ENOENT) s = Status::Corruption(v->Describe() + ": its root has no node");
    }
  } else {
    uint64_t pino;
    v = impl->View(parent, &pino);
    if (v == nullptr) return (void)fuse_reply_err(req, ESTALE);
    if (std::strcmp(name, ".") == 0) {
      // A file handle being opened: the node itself.
      ino = pino;
      s = v->GetNode(ino, &n);
      if (s.err() == ENOENT) return (void)fuse_reply_err(req, ESTALE);
    } else if (std::strcmp(name, "..") == 0) {
      return LookupParent(req, impl, *v, parent, pino);
    } else {
      s = v->Lookup(pino, name, &ino, &n);
      if (s.ok() && S_ISDIR(n.mode)) impl->NoteParent(ImageFs::Impl::NodeId(*v, ino), parent);
    }
  }
  if (s.err() == ENOENT && s.message().empty()) {
    fuse_entry_param p;  // negative entry: it will never appear
    std::memset(&p, 0, sizeof(p));
    p.entry_timeout = kForever;
    fuse_reply_entry(req, &p);
    return;
  }
  if (!s.ok()) return ReplyStatus(req, s);
  ReplyEntry(req, *v, ino, n);
}

void OpGetattr(fuse_req_t req, fuse_ino_t nodeid, fuse_file_info*) {
  ImageFs::Impl* impl = I(req);
  struct stat st;
  if (nodeid == FUSE_ROOT_ID) {
    RootStat(impl, &st);
    fuse_reply_attr(req, &st, kForever);
    return;
  }
  uint64_t ino;
  const ImageView* v = impl->View(nodeid, &ino);
  if (v == nullptr) return (void)fuse_reply_err(req, ESTALE);
  NodeRecord n;
  Status s = v->GetNode(ino, &n);
  if (s.err() == ENOENT) return (void)fuse_reply_err(req, ESTALE);
  if (!s.ok()) return ReplyStatus(req, s);
  NodeStat(*v, ino, n, &st);
  fuse_reply_attr(req, &st, kForever);
}

void OpReadlink(fuse_req_t req, fuse_ino_t nodeid) {
  uint64_t ino;
  const ImageView* v = I(req)->View(nodeid, &ino);
  if (v == nullptr) return (void)fuse_reply_err(req, EINVAL);
  std::string target;
  Status s = v->ReadLink(ino, &target);
  if (!s.ok()) return ReplyStatus(req, s);
  fuse_reply_readlink(req, target.c_str());
}

void OpOpen(fuse_req_t req, fuse_ino_t nodeid, fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
    return (void)fuse_reply_err(req, EROFS);
  uint64_t ino;
  const ImageView* v = I(req)->View(nodeid, &ino);
  if (v == nullptr) return (void)fuse_reply_err(req, nodeid == FUSE_ROOT_ID ? EISDIR : ESTALE);
  auto h = std::make_unique<FileHandle>();
  h->view = v;
  h->nodeid = nodeid;
  Status s = v->OpenFile(ino, &h->file);
  if (!s.ok()) return ReplyStatus(req, s);
  fi->keep_cache = 1;  // pages of an earlier open are still right
  fi->noflush = 1;     // nothing to do at close(2)
  fi->fh = I(req)->files.Add(std::move(h));
  if (fuse_reply_open(req, fi) != 0) I(req)->files.Take(fi->fh);
}

void ReportReadError(ImageFs::Impl* impl, const FileHandle& h, const Status& s) {
  {
    std::lock_guard<std::mutex> g(impl->log_mu);
    if (!impl->reported.insert(h.nodeid).second) return;
  }
  // ContentReader has logged the container and offset under "image 'NAME'
  // inode N"; this line adds the file's path (found by a walk of the tree,
  // which only a failure pays for).
  std::string path;
  if (!h.view->FindPath(h.file.ino, &path).ok()) path = "(path unknown)";
  std::fprintf(stderr, "overtier: %s: read of %s (inode %llu) failed: %s\n",
               h.view->Describe().c_str(), path.c_str(),
               static_cast<unsigned long long>(h.file.ino), MessageSafe(s.ToString()).c_str());
}

// A read under hard semantics (OpRead): when the cold tier does not
// answer, tries again after 0.25 s, doubling to 8 s, until it does, the
// request is interrupted (EINTR; a killed process interrupts its request
// too) or the file system stops (EIO). Damage is EIO at once.
void HardRead(fuse_req_t req, ImageFs::Impl* impl, FileHandle* h, size_t size, off_t off) {
  std::vector<char> buf(size);
  size_t got = 0;
  Status s = h->view->Read(h->file, static_cast<uint64_t>(off), size, buf.data(), &got);
  if (s.err() == ETIMEDOUT) ReportReadError(impl, *h, s);
  auto pause = std::chrono::milliseconds(250);
  while (s.err() == ETIMEDOUT) {
    for (auto slept = std::chrono::milliseconds(0); slept < pause;
         slept += std::chrono::milliseconds(50)) {
      if (fuse_req_interrupted(req)) return (void)fuse_reply_err(req, EINTR);
      if (impl->stopping.load()) return (void)fuse_reply_err(req, EIO);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pause = std::min(pause * 2, std::chrono::milliseconds(8000));
    s = h->view->Read(h->file, static_cast<uint64_t>(off), size, buf.data(), &got);
  }
  if (!s.ok()) {
    ReportReadError(impl, *h, s);
    return (void)fuse_reply_err(req, s.err());
  }
  fuse_reply_buf(req, buf.data(), got);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  auto* h = reinterpret_cast<FileHandle*>(fi->fh);
  ImageFs::Impl* impl = I(req);
  if (impl->hard_reads) {
    // Hard: a read may wait as long as the cold tier does not answer, so
    // never on a serving thread: there are few, and one waiting would
    // stall every lookup of the union.
    impl->hard_reads->Submit([req, h, size, off, impl] { HardRead(req, impl, h, size, off); });
    return;
  }
  thread_local std::vector<char> buf;
  if (buf.size() < size) buf.resize(size);
  size_t got = 0;
  Status s = h->view->Read(h->file, static_cast<uint64_t>(off), size, buf.data(), &got);
  if (!s.ok()) {
    ReportReadError(impl, *h, s);
    // Soft: a timeout is an I/O error to the reader, like an NFS soft mount.
    return (void)fuse_reply_err(req, s.err() == ETIMEDOUT ? EIO : s.err());
  }
  fuse_reply_buf(req, buf.data(), got);
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  I(req)->files.Take(fi->fh);
  fuse_reply_err(req, 0);
}

// A directory is listed once, at its handle's first readdir, into a
// snapshot that readdir pages through by position: the image never
// changes, so positions are stable across opens too, and the kernel may
// cache the listing. OPENDIR itself reads nothing: the kernel only opens
// what a lookup said is a directory.
void OpOpendir(fuse_req_t req, fuse_ino_t nodeid, fuse_file_info* fi) {
  ImageFs::Impl* impl = I(req);
  // Success, and no more OPENDIRs (nor RELEASEDIRs) from this kernel.
  if (impl->no_opendir) return (void)fuse_reply_err(req, ENOSYS);
  if (nodeid != FUSE_ROOT_ID) {
    uint64_t ino;
    if (impl->View(nodeid, &ino) == nullptr) return (void)fuse_reply_err(req, ESTALE);
  }
  auto snap = std::make_unique<DirSnapshot>();
  snap->self = nodeid;
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fi->fh = impl->dirs.Add(std::move(snap));
  if (fuse_reply_open(req, fi) != 0) impl->dirs.Take(fi->fh);
}

// Fills snap (once per handle).
const Status& ListDir(ImageFs::Impl* impl, DirSnapshot* snap) {
  std::call_once(snap->listed, [impl, snap] {
    if (snap->self == FUSE_ROOT_ID) {
      for (const auto& [id, v] : impl->views)
        snap->ents.push_back({std::to_string(id), ImageFs::Impl::NodeId(*v, v->root()), DT_DIR});
      return;
    }
    uint64_t ino;
    const ImageView* v = impl->View(snap->self, &ino);
    if (v == nullptr) {
      snap->list_status = Status::Errno(ESTALE);
      return;
    }
    Status s = v->ReadDir(ino, "", [&](std::string_view name, const DirentRecord& d) {
      snap->ents.push_back({std::string(name), ImageFs::Impl::NodeId(*v, d.child_inode), d.type});
      return true;
    });
    if (!s.ok()) snap->ents.clear();
    snap->list_status = s;
  });
  return snap->list_status;
}

// The listing of directory nodeid for a readdir without a handle (no
// OPENDIR: Impl::no_opendir), shared by every reader of the directory. The
// kernel caches what it reads, so a directory is normally read once, in
// order; the last kListings directories read are kept.
std::shared_ptr<DirSnapshot> Listing(ImageFs::Impl* impl, fuse_ino_t nodeid) {
  constexpr size_t kListings = 64;
  std::lock_guard<std::mutex> l(impl->listings_mu);
  auto& ls = impl->listings;
  for (auto it = ls.begin(); it != ls.end(); ++it) {
    if (it->first != nodeid) continue;
    ls.splice(ls.begin(), ls, it);
    return ls.front().second;
  }
  auto snap = std::make_shared<DirSnapshot>();
  snap->self = nodeid;
  ls.emplace_front(nodeid, snap);
  if (ls.size() > kListings) ls.pop_back();
  return snap;
}

void DoReaddir(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off, fuse_file_info* fi,
               bool plus) {
  ImageFs::Impl* impl = I(req);
  std::shared_ptr<DirSnapshot> shared;
  DirSnapshot* snap = reinterpret_cast<DirSnapshot*>(fi->fh);
  if (snap == nullptr) {
    shared = Listing(impl, nodeid);
    snap = shared.get();
  }
  if (const Status& ls = ListDir(impl, snap); !ls.ok()) return ReplyStatus(req, ls);
  std::vector<char> buf(size);
  size_t used = 0;
  const size_t total = snap->ents.size() + 2;  // "." and ".." first
  for (size_t i = static_cast<size_t>(off); i < total; ++i) {
    const char* name;
    fuse_entry_param p;
    std::memset(&p, 0, sizeof(p));
    if (i < 2) {
      name = i == 0 ? "." : "..";
      p.attr.st_ino = i == 0 ? snap->self : FUSE_ROOT_ID;
      p.attr.st_mode = S_IFDIR;
    } else {
      const DirSnapshot::Ent& e = snap->ents[i - 2];
      name = e.name.c_str();
      p.attr.st_ino = e.nodeid;
      p.attr.st_mode = DTTOIF(e.type);
      if (plus) {
        uint64_t ino = 0;
        const ImageView* v = impl->View(e.nodeid, &ino);
        NodeRecord n;
        Status s = v != nullptr ? v->GetNode(ino, &n) : Status::Errno(ESTALE);
        if (s.err() == ENOENT) {
          s = Status::Corruption("image file system: entry '" + e.name + "' names inode " +
                                 std::to_string(ino) + ", which has no node");
        }
        if (!s.ok()) {
          if (used > 0) break;  // what fits is answered; the error comes next time
          return ReplyStatus(req, s);
        }
        NodeStat(*v, ino, n, &p.attr);
        if (S_ISDIR(n.mode)) impl->NoteParent(e.nodeid, snap->self);
        p.ino = e.nodeid;
        p.attr_timeout = kForever;
        p.entry_timeout = kForever;
      }
    }
    size_t left = size - used;
    size_t n = plus ? fuse_add_direntry_plus(req, buf.data() + used, left, name, &p, i + 1)
                    : fuse_add_direntry(req, buf.data() + used, left, name, &p.attr, i + 1);
    if (n > left) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, nodeid, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, nodeid, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  I(req)->dirs.Take(fi->fh);
  fuse_reply_err(req, 0);
}

void ReplyXattr(fuse_req_t req, const std::string& v, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, v.size());
  if (v.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, v.data(), v.size());
}

void OpGetxattr(fuse_req_t req, fuse_ino_t nodeid, const char* name, size_t size) {
  if (nodeid == FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENODATA);
  uint64_t ino;
  const ImageView* v = I(req)->View(nodeid, &ino);
  if (v == nullptr) return (void)fuse_reply_err(req, ESTALE);
  std::string value;
  Status s = v->GetXattr(ino, name, &value);
  if (!s.ok()) return ReplyStatus(req, s);
  ReplyXattr(req, value, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t nodeid, size_t size) {
  std::string names;
  if (nodeid != FUSE_ROOT_ID) {
    uint64_t ino;
    const ImageView* v = I(req)->View(nodeid, &ino);
    if (v == nullptr) return (void)fuse_reply_err(req, ESTALE);
    Status s = v->ListXattr(ino, &names);
    if (!s.ok()) return ReplyStatus(req, s);
  }
  ReplyXattr(req, names, size);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv;
  std::memset(&sv, 0, sizeof(sv));
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  sv.f_namemax = kMaxDirentNameLen;
  fuse_reply_statfs(req, &sv);
}

void OpAccess(fuse_req_t req, fuse_ino_t, int mask) {
  // default_permissions: the kernel checked the mode bits already.
  fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

// Everything that would change the image. The mount is read-only, so the
// kernel refuses these before asking; the answers are for completeness.
void RoSetattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void RoMknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void RoMkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void RoUnlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoSymlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoRename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  fuse_reply_err(req, EROFS);
}
void RoLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoCreate(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void RoWrite(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void RoSetxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
  fuse_reply_err(req, EROFS);
}
void RoRemovexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoFallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o;
  std::memset(&o, 0, sizeof(o));
  o.init = OpInit;
  o.lookup = OpLookup;
  // No forget: node ids are computed, not allocated; nothing to free.
  o.getattr = OpGetattr;
  o.readlink = OpReadlink;
  o.open = OpOpen;
  o.read = OpRead;
  o.release = OpRelease;
  o.opendir = OpOpendir;
  o.readdir = OpReaddir;
  o.readdirplus = OpReaddirplus;
  o.releasedir = OpReleasedir;
  o.getxattr = OpGetxattr;
  o.listxattr = OpListxattr;
  o.statfs = OpStatfs;
  o.access = OpAccess;
  o.setattr = RoSetattr;
  o.mknod = RoMknod;
  o.mkdir = RoMkdir;
  o.unlink = RoUnlink;
  o.rmdir = RoUnlink;
  o.symlink = RoSymlink;
  o.rename = RoRename;
  o.link = RoLink;
  o.create = RoCreate;
  o.write = RoWrite;
  o.setxattr = RoSetxattr;
  o.removexattr = RoRemovexattr;
  o.fallocate = RoFallocate;
  return o;
}();

Status Fsconfig(int fs_fd, unsigned cmd, const char* key, const std::string& value) {
  const bool is_cmd = cmd == FSCONFIG_CMD_CREATE;
  if (fsconfig(fs_fd, cmd, is_cmd ? nullptr : key,
               cmd == FSCONFIG_SET_STRING ? value.c_str() : nullptr, 0) == 0) {
    return Status::OK();
  }
  Status s = Status::FromErrno(std::string("image file system: fsconfig ") + key);
  // The kernel explains refusals in the context's log.
  char msg[512];
  ssize_t n = read(fs_fd, msg, sizeof(msg) - 1);
  if (n > 0) {
    msg[n] = '\0';
    return Status::Errno(s.err(), s.message() + " (" + msg + ")");
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// Serving

// Before the fork: one thread, which a write to wake_fd ends (a thread
// blocked in read(/dev/fuse) could not be woken).
void ImageFs::Impl::Bootstrap() {
  fuse_buf buf{};
  pollfd fds[2] = {{fuse_session_fd(se), POLLIN, 0}, {wake_fd, POLLIN, 0}};
  while (true) {
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) break;
    if (!(fds[0].revents & POLLIN)) continue;
    int res = fuse_session_receive_buf(se, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) break;
    fuse_session_process_buf(se, &buf);
  }
  std::free(buf.mem);
}

// After the fork: each worker reads and answers until the connection ends
// (ENODEV once the file system is gone).
void ImageFs::Impl::Work() {
  fuse_buf buf{};
  while (!fuse_session_exited(se)) {
    int res = fuse_session_receive_buf(se, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) {
      fuse_session_exit(se);
      break;
    }
    fuse_session_process_buf(se, &buf);
  }
  std::free(buf.mem);
  std::lock_guard<std::mutex> g(mu);
  --running;
  cv.notify_all();
}

void ImageFs::set_hard(bool hard) { impl_->hard = hard; }

Status ImageFs::Create(Store* store, std::unique_ptr<ImageFs>* out) {
  auto fs = std::unique_ptr<ImageFs>(new ImageFs());
  fs->impl_ = std::make_unique<Impl>();
  fs->impl_->store = store;
  fs->impl_->reader = std::make_unique<ContentReader>(store);
  *out = std::move(fs);
  return Status::OK();
}

ImageFs::~ImageFs() { Stop(); }

Status ImageFs::AddImage(std::string_view name, std::vector<ImageLayer>* layers) {
  Impl* impl = impl_.get();
  if (impl->se != nullptr) return Status::InvalidArgument("image file system already mounted");
  std::vector<std::unique_ptr<ImageView>> chain;
  OVT_RETURN_IF_ERROR(ImageView::OpenChain(impl->store, impl->reader.get(), name, &chain));
  layers->clear();
  for (auto& v : chain) {
    if (v->image_id() > kMaxImageId) {
      return Status::Errno(EOVERFLOW, v->Describe() + ": image id " +
                                          std::to_string(v->image_id()) + " is too large to serve");
    }
    layers->push_back({v->image_id(), v->name()});
    impl->views.emplace(v->image_id(), std::move(v));  // a shared parent stays once
  }
  return Status::OK();
}

namespace {

// FUSE file handles (fuse_encode_fh): the node id, high word then low
// word, and the generation (0 here: an image never reuses an inode), as
// 32-bit words. ImageFs::Mount checks this layout against a real handle
// before the tree hands out any.
constexpr unsigned kHandleBytes = 12;

std::string FuseHandle(int type, fuse_ino_t nodeid) {
  struct {
    struct file_handle fh;
    unsigned char buf[kHandleBytes];
  } h;
  h.fh.handle_bytes = kHandleBytes;
  h.fh.handle_type = type;
  const uint32_t words[3] = {static_cast<uint32_t>(nodeid >> 32), static_cast<uint32_t>(nodeid), 0};
  std::memcpy(h.fh.f_handle, words, sizeof(words));
  return std::string(reinterpret_cast<const char*>(&h.fh), sizeof(h.fh) + kHandleBytes);
}

// The same questions the FUSE operations above answer, asked in the
// process by the union (union/layer.h: ServedTree). Inode numbers are node
// ids and stats are NodeStat's, exactly what fstat through the mount gives;
// directories found are recorded as the ".." lookups of open_by_handle_at
// need them, as OpLookup does.
class ImageTree : public ServedTree {
 public:
  explicit ImageTree(ImageFs::Impl* impl) : impl_(impl) {}

  Status Lookup(uint64_t dir, const std::string& name, struct stat* st) override {
    uint64_t pino;
    const ImageView* v = impl_->View(dir, &pino);
    if (v == nullptr) return Status::Errno(ESTALE);
    if (name == "." || name == "..") return Status::Errno(EINVAL);
    uint64_t ino;
    NodeRecord n;
    Status s = v->Lookup(pino, name, &ino, &n);
    if (!s.ok()) return Logged(s);
    OVT_RETURN_IF_ERROR(Fill(*v, ino, n, st));
    if (S_ISDIR(n.mode)) impl_->NoteParent(ImageFs::Impl::NodeId(*v, ino), dir);
    return Status::OK();
  }

  Status Stat(uint64_t ino, struct stat* st) override {
    const ImageView* v;
    uint64_t vino;
    NodeRecord n;
    OVT_RETURN_IF_ERROR(NodeOf(ino, &v, &vino, &n));
    return Fill(*v, vino, n, st);
  }

  Status ReadDir(uint64_t dir, const DirentFn& fn) override {
    uint64_t pino;
    const ImageView* v = impl_->View(dir, &pino);
    if (v == nullptr) return Status::Errno(ESTALE);
    Status out;
    std::string name;
    Status s = v->ReadDir(pino, "", [&](std::string_view n, const DirentRecord& d) {
      if (n == "." || n == "..") return true;
      name.assign(n);
      out = fn(name.c_str(), ImageFs::Impl::NodeId(*v, d.child_inode), d.type);
      return out.ok();
    });
    if (!s.ok()) return Logged(s);
    return out;
  }

  Status GetXattr(uint64_t ino, const std::string& name, std::string* value,
                  bool* present) override {
    *present = false;
    uint64_t vino;
    const ImageView* v = impl_->View(ino, &vino);
    if (v == nullptr) return Status::Errno(ESTALE);
    Status s = v->GetXattr(vino, name, value);
    if (s.err() == ENODATA) return Status::OK();
    if (!s.ok()) return Logged(s);
    *present = true;
    return Status::OK();
  }

  Status GetXattrs(uint64_t ino, const std::vector<std::string_view>& names,
                   std::vector<std::optional<std::string>>* values) override {
    values->assign(names.size(), std::nullopt);
    const ImageView* v;
    uint64_t vino;
    NodeRecord n;
    OVT_RETURN_IF_ERROR(NodeOf(ino, &v, &vino, &n));
    for (size_t i = 0; i < names.size(); ++i) {
      auto it = n.xattrs.find(std::string(names[i]));
      if (it != n.xattrs.end()) (*values)[i] = std::move(it->second);
    }
    return Status::OK();
  }

  Status ReadLink(uint64_t ino, std::string* target) override {
    uint64_t vino;
    const ImageView* v = impl_->View(ino, &vino);
    if (v == nullptr) return Status::Errno(ESTALE);
    Status s = v->ReadLink(vino, target);
    return s.ok() ? s : Logged(s);
  }

  std::string Handle(uint64_t ino) override { return FuseHandle(impl_->handle_type, ino); }

 private:
  // The node of `ino` and its image view: ESTALE when the inode or its
  // node is gone (an image removed under the mount), other errors logged.
  Status NodeOf(uint64_t ino, const ImageView** v, uint64_t* vino, NodeRecord* n) {
    *v = impl_->View(ino, vino);
    if (*v == nullptr) return Status::Errno(ESTALE);
    Status s = (*v)->GetNode(*vino, n);
    if (s.err() == ENOENT) return Status::Errno(ESTALE);
    if (!s.ok()) return Logged(s);
    return Status::OK();
  }

  Status Fill(const ImageView& v, uint64_t ino, const NodeRecord& n, struct stat* st) {
    if (!NodeStat(v, ino, n, st)) {
      return Logged(
          Status::Errno(EOVERFLOW, v.Describe() + ": inode " + std::to_string(ino) + " too large"));
    }
    st->st_dev = impl_->dev;
    return Status::OK();
  }
  // Damage is logged as the FUSE operations log it (ReplyStatus); an
  // ordinary miss (a bare errno) is not. The union passes the errno on.
  static Status Logged(const Status& s) {
    if (!s.message().empty())
      std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
    return Status::Errno(s.err());
  }

  ImageFs::Impl* impl_;
};

// Whether the handle of the directory fd (node id `nodeid`) has the layout
// FuseHandle makes; its type in *type.
bool HandleLayoutMatches(int fd, fuse_ino_t nodeid, int* type) {
  std::string real;
  if (!GetHandle(fd, "", &real).ok() || real.size() != sizeof(file_handle) + kHandleBytes)
    return false;
  *type = reinterpret_cast<const file_handle*>(real.data())->handle_type;
  return real == FuseHandle(*type, nodeid);
}

}  // namespace

Status ImageFs::Mount(bool debug) {
  Impl* impl = impl_.get();
  std::vector<const char*> argv = {"overtier-image"};
  if (debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  impl->se = fuse_session_new(&args, &kOps, sizeof(kOps), impl);
  fuse_opt_free_args(&args);
  if (impl->se == nullptr) return Status::Errno(EIO, "image file system: no FUSE session");

  int dev_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (dev_fd < 0) return Status::FromErrno("image file system: open /dev/fuse");
  // The session owns dev_fd from here (fuse_session_destroy closes it).
  if (fuse_session_mount(impl->se, ("/dev/fd/" + std::to_string(dev_fd)).c_str()) != 0) {
    close(dev_fd);
    return Status::Errno(EIO, "image file system: cannot attach the session to /dev/fuse");
  }
  int fs_fd = fsopen("fuse", FSOPEN_CLOEXEC);
  if (fs_fd < 0) {
    return Status::FromErrno("image file system: fsopen(\"fuse\") (image lowers need root)");
  }
  Status s = Fsconfig(fs_fd, FSCONFIG_SET_STRING, "source", "overtier-image");
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_STRING, "fd", std::to_string(dev_fd));
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_STRING, "rootmode", "40000");
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_STRING, "user_id", std::to_string(geteuid()));
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_STRING, "group_id", std::to_string(getegid()));
  // The union reads its layers as the calling user (fsuid): anyone.
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_FLAG, "allow_other", "");
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_FLAG, "default_permissions", "");
  // A read-only superblock, not only a read-only mount: the FUSE client
  // then never marks an inode's atime stale (fuse_invalidate_atime checks
  // IS_RDONLY), which after every readdir or readlink cost a GETATTR at the
  // union's next stat of that directory or link (one per directory per
  // walk of the tree).
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_SET_FLAG, "ro", "");
  if (s.ok()) s = Fsconfig(fs_fd, FSCONFIG_CMD_CREATE, "create", "");
  if (!s.ok()) {
    close(fs_fd);
    return s;
  }
  // Read-only; devices, setuid bits and exec stay as the image has them
  // (they are union content; nothing is executed through this mount).
  impl->mount_fd = fsmount(fs_fd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
  int err = errno;
  close(fs_fd);
  if (impl->mount_fd < 0) return Status::Errno(err, "image file system: fsmount");

  impl->wake_fd = eventfd(0, EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status::FromErrno("image file system: eventfd");
  impl->bootstrap = std::thread([impl] { impl->Bootstrap(); });

  struct stat st;
  if (fstat(impl->mount_fd, &st) != 0) return Status::FromErrno("image file system: stat");
  impl->dev = st.st_dev;
  for (const auto& [id, v] : impl->views) {
    int fd = openat(impl->mount_fd, std::to_string(id).c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("image file system: open the root of " + v->Describe());
    impl->roots[id] = fd;
  }
  // The tree makes file handles itself: only if they are what this kernel
  // makes (checked on every layer root: high node-id bits included).
  bool layout_ok = !impl->roots.empty();
  for (const auto& [id, fd] : impl->roots) {
    int type = 0;
    const fuse_ino_t nodeid = Impl::NodeId(*impl->views.at(id), impl->views.at(id)->root());
    if (!HandleLayoutMatches(fd, nodeid, &type) ||
        (impl->handle_type != 0 && type != impl->handle_type)) {
      layout_ok = false;
      break;
    }
    impl->handle_type = type;
  }
  if (layout_ok) {
    impl->tree = std::make_unique<ImageTree>(impl);
  } else {
    std::fprintf(stderr,
                 "overtier: image layers: this kernel's FUSE file handles are not the expected "
                 "layout; the union reaches image layers through their mount only\n");
  }
  return Status::OK();
}

int ImageFs::LayerRootFd(uint64_t image_id) const {
  auto it = impl_->roots.find(image_id);
  return it == impl_->roots.end() ? -1 : it->second;
}

ServedTree* ImageFs::Tree() const { return impl_->tree.get(); }

Status ImageFs::ContentOf(int fd, Bfid* bfid, bool* found) const {
  *found = false;
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat of a lower file");
  if (st.st_dev != impl_->dev || !S_ISREG(st.st_mode)) return Status::OK();
  uint64_t ino;
  const ImageView* v = impl_->View(st.st_ino, &ino);
  if (v == nullptr) return Status::OK();
  NodeRecord n;
  OVT_RETURN_IF_ERROR(v->GetNode(ino, &n));
  if (!n.has_content) return Status::OK();
  *bfid = n.content;
  *found = true;
  return Status::OK();
}

void ImageFs::PauseForFork() {
  Impl* impl = impl_.get();
  if (!impl->bootstrap.joinable()) return;
  uint64_t one = 1;
  if (write(impl->wake_fd, &one, sizeof(one)) != sizeof(one)) std::abort();
  impl->bootstrap.join();
}

void ImageFs::Start(int threads) {
  Impl* impl = impl_.get();
  if (impl->se == nullptr || impl->stopped) return;
  PauseForFork();
  std::lock_guard<std::mutex> g(impl->mu);
  if (impl->hard) impl->hard_reads = std::make_unique<WorkerPool>(kHardReadThreads);
  for (int i = 0; i < threads; ++i) {
    ++impl->running;
    impl->workers.emplace_back([impl] { impl->Work(); });
  }
}

void ImageFs::Stop() {
  Impl* impl = impl_.get();
  if (impl == nullptr || impl->stopped) return;
  impl->stopped = true;
  // Waiting hard reads answer EIO within 50 ms; then their pool goes.
  impl->stopping = true;
  impl->hard_reads.reset();
  PauseForFork();
  for (auto& [id, fd] : impl->roots) close(fd);
  impl->roots.clear();
  // The last reference to the mount gone, the kernel destroys the
  // superblock and aborts the connection: every worker's read ends.
  if (impl->mount_fd >= 0) close(impl->mount_fd);
  impl->mount_fd = -1;
  bool ended;
  {
    std::unique_lock<std::mutex> g(impl->mu);
    ended = impl->cv.wait_for(g, kStopWait, [impl] { return impl->running == 0; });
  }
  if (!ended && major(impl->dev) == 0) {
    // Something still holds a descriptor into the file system (a file left
    // open by a lazily unmounted union): abort the connection.
    std::string abort_path =
        "/sys/fs/fuse/connections/" + std::to_string(minor(impl->dev)) + "/abort";
    int fd = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (write(fd, "1", 1) != 1) {
        // Nothing more to try; the threads are detached below.
      }
      close(fd);
      std::unique_lock<std::mutex> g(impl->mu);
      ended = impl->cv.wait_for(g, kStopWait, [impl] { return impl->running == 0; });
    }
  }
  if (!ended) {
    std::fprintf(stderr,
                 "overtier: the image file system is still in use at exit; leaving its "
                 "threads to the process exit\n");
    for (auto& t : impl->workers) t.detach();
    impl->workers.clear();
    // The session and its open handles stay: detached threads still use them.
    for (auto& h : impl->files.TakeAll()) h.release();
    for (auto& h : impl->dirs.TakeAll()) h.release();
    return;
  }
  for (auto& t : impl->workers) t.join();
  impl->workers.clear();
  // What the kernel never released (a connection aborted above).
  impl->files.TakeAll();
  impl->dirs.TakeAll();
  if (impl->wake_fd >= 0) close(impl->wake_fd);
  impl->wake_fd = -1;
  if (impl->se != nullptr) fuse_session_destroy(impl->se);
  impl->se = nullptr;
}

}  // namespace overtier
