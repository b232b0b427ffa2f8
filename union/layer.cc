#include "union/layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "overtier/printable.h"
#include "union/acl_xattr.h"
#include "union/fs_util.h"

namespace overtier {

namespace {
std::atomic<long> g_live_fds{0};

constexpr const char kWorkTemp[] = "work";
constexpr const char kWorkIndex[] = "overtier-index";
constexpr const char kIncompat[] = "incompat";
constexpr const char kVolatile[] = "volatile";

Status OpenLayerRoot(const std::string& path, const char* what, Layer* l) {
  l->path = path;
  l->root_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (l->root_fd < 0) return Status::FromErrno(std::string(what) + " '" + path + "'");
  struct stat st;
  if (fstat(l->root_fd, &st) != 0) return Status::FromErrno(path);
  l->dev = st.st_dev;
  std::string h;
  Status s = GetHandle(l->root_fd, "", &h);
  l->handles = s.ok() && !h.empty();
  return Status::OK();
}

// A root the daemon opened (an image layer of its image file system). The
// layer keeps a duplicate, so the daemon's descriptor stays its own.
// File handles are used when the image file system offers them (it
// answers "." and ".." lookups, src/image_fuse.cc): the union then closes
// descriptors of image objects like those of any layer, instead of holding
// one per object (EMFILE on an image larger than the fd limit).
Status AdoptLayerRoot(const LowerDir& d, Layer* l) {
  l->path = d.Describe();
  l->root_fd = fcntl(d.root_fd, F_DUPFD_CLOEXEC, 0);
  if (l->root_fd < 0) return Status::FromErrno("lowerdir " + l->path);
  struct stat st;
  if (fstat(l->root_fd, &st) != 0) return Status::FromErrno("lowerdir " + l->path);
  if (!S_ISDIR(st.st_mode)) return Status::Errno(ENOTDIR, "lowerdir " + l->path);
  l->dev = st.st_dev;
  std::string h;
  Status hs = GetHandle(l->root_fd, "", &h);
  l->handles = hs.ok() && !h.empty();
  l->served = true;
  // The tree's objects are reopened by handle when an fd is needed.
  if (l->handles) l->tree = d.tree;
  return Status::OK();
}

// mkdirat that tolerates an existing directory.
Status EnsureDirAt(int dirfd, const char* name, int* fd) {
  if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
    return Status::FromErrno(std::string("create work directory ") + name);
  *fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*fd < 0) return Status::FromErrno(std::string("open work directory ") + name);
  return Status::OK();
}
// The kernel's overlayfs marks a feature that no later mount may ignore by
// an entry in work/incompat, and refuses such a workdir. The one it makes,
// work/incompat/volatile/dirty, says that a volatile mount (no syncs) used
// this upper: a crash of the machine may have lost its writes, so its
// content is not to be trusted. We refuse it too, before cleaning work/
// would erase the mark (and so would let a later kernel mount trust it).
// containers/storage removes work/incompat/volatile before each mount of a
// container whose upper it knows to be whole.
Status CheckIncompat(int work_fd, const std::string& workdir) {
  const int fd = openat(work_fd, kIncompat, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return Status::OK();
    return Status::FromErrno("workdir '" + workdir + "/work/" + kIncompat + "'");
  }
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    Status s = Status::FromErrno("workdir '" + workdir + "/work/" + kIncompat + "'");
    close(fd);
    return s;
  }
  std::string feature;
  errno = 0;
  for (struct dirent* e; feature.empty() && (e = readdir(d)) != nullptr;) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) feature = e->d_name;
  }
  const int err = errno;
  closedir(d);
  if (feature.empty() && err != 0)
    return Status::Errno(err, "workdir '" + workdir + "/work/" + kIncompat + "'");
  if (feature.empty()) return Status::OK();  // an empty one is cleaned like the rest
  std::string msg = "workdir '" + workdir + "': overlay with incompat feature '" +
                    MessageSafe(feature) + "' cannot be mounted";
  if (feature == kVolatile) {
    msg +=
        " (a volatile mount used this upper and work directory, and a crash may have lost "
        "its writes: use new ones, or remove '" +
        workdir + "/work/" + kIncompat + "/" + kVolatile +
        "' if the upper directory is known to be complete)";
  }
  return Status::InvalidArgument(msg);
}

// The kernel's mark of a volatile mount (above), for the next mount of
// either. Not synced (nor by the kernel): a journalling file system commits
// these directory operations no later than those of the upper's files.
Status MarkVolatile(int work_fd, const std::string& workdir) {
  const std::string what = "workdir '" + workdir + "/work/" + kIncompat + "/" + kVolatile + "'";
  int incompat = -1, vol = -1;
  Status s = EnsureDirAt(work_fd, kIncompat, &incompat);
  if (s.ok()) s = EnsureDirAt(incompat, kVolatile, &vol);
  if (s.ok()) {
    const int fd = openat(vol, "dirty", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0) s = Status::FromErrno();
    if (fd >= 0) close(fd);
  }
  for (int fd : {incompat, vol})
    if (fd >= 0) close(fd);
  if (!s.ok()) return Status::Errno(s.err(), "mark " + what + ": " + s.message());
  return Status::OK();
}

// One mount at a time per upper and work directory, as the kernel
// overlayfs (EBUSY with index=on, which the hard-link index here always
// is): a second daemon would empty work/work under the first one's
// copy-ups and share its index while neither sees the other's changes.
// The flock goes with the daemon's descriptor: a daemon killed lets go at
// once. A daemon still ending (its unmount just answered) is waited for a
// while. File systems without flock (ENOLCK) go unprotected.
Status LockDirectory(int fd, const char* what, const std::string& path) {
  using Clock = std::chrono::steady_clock;
  const auto give_up = Clock::now() + std::chrono::seconds(5);
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return Status::OK();
    if (Clock::now() >= give_up) {
      return Status::Errno(EBUSY, std::string(what) + " '" + path +
                                      "' is in use by another overtier mount (unmount it first)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::OK();
}
}  // namespace

bool OnIdmappedMount(int fd) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) != 0 ||
      (stx.stx_mask & STATX_MNT_ID) == 0) {
    return false;
  }
  // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...": the per-mount options
  // (the sixth field) carry "idmapped".
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    uint64_t id = 0;
    std::string parent, devno, root, mountpoint, options;
    if (!(fields >> id >> parent >> devno >> root >> mountpoint >> options)) continue;
    if (id != stx.stx_mnt_id) continue;
    std::istringstream opts(options);
    std::string opt;
    while (std::getline(opts, opt, ','))
      if (opt == "idmapped") return true;
    return false;
  }
  return false;
}

Fd::Fd(int fd) : fd_(fd) { g_live_fds.fetch_add(1, std::memory_order_relaxed); }
Fd::~Fd() {
  if (fd_ >= 0) close(fd_);
  g_live_fds.fetch_sub(1, std::memory_order_relaxed);
}
long Fd::live() { return g_live_fds.load(std::memory_order_relaxed); }

LayerSet::~LayerSet() {
  for (auto& l : layers_)
    if (l.root_fd >= 0) close(l.root_fd);
  for (int fd : {work_fd_, index_fd_, workdir_fd_})
    if (fd >= 0) close(fd);
}

Status LayerSet::Open(const MountOptions& opts, std::unique_ptr<LayerSet>* out) {
  auto ls = std::unique_ptr<LayerSet>(new LayerSet());
  if (!opts.upperdir.empty()) {
    Layer l;
    OVT_RETURN_IF_ERROR(OpenLayerRoot(opts.upperdir, "upperdir", &l));
    l.upper = true;
    ls->layers_.push_back(l);
    ls->has_upper_ = true;
  }
  for (const LowerDir& d : opts.lowerdirs) {
    Layer l;
    if (d.root_fd >= 0) {
      OVT_RETURN_IF_ERROR(AdoptLayerRoot(d, &l));
    } else if (d.is_image()) {
      // Only the daemon can serve an image (it owns the store).
      return Status::InvalidArgument("lowerdir " + d.Describe() +
                                     ": image layers need the overtier daemon");
    } else {
      OVT_RETURN_IF_ERROR(OpenLayerRoot(d.path, "lowerdir", &l));
      l.idmapped = OnIdmappedMount(l.root_fd);
    }
    ls->layers_.push_back(l);
  }
  // Distinct devices get distinct numbers, in layer order (upper first).
  std::vector<dev_t> devs;
  for (size_t i = 0; i < ls->layers_.size(); ++i) {
    Layer& l = ls->layers_[i];
    l.index = static_cast<int>(i);
    unsigned k = 0;
    while (k < devs.size() && devs[k] != l.dev) ++k;
    if (k == devs.size()) devs.push_back(l.dev);
    l.fsidx = k;
  }
  if (devs.size() > 1) {
    unsigned bits = 1;
    while ((1u << bits) < devs.size()) ++bits;
    ls->xino_shift_ = 64 - bits;
  }
  if (ls->has_upper_) {
    ls->workdir_fd_ = open(opts.workdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ls->workdir_fd_ < 0) return Status::FromErrno("workdir '" + opts.workdir + "'");
    OVT_RETURN_IF_ERROR(LockDirectory(ls->layers_[0].root_fd, "upperdir", opts.upperdir));
    struct stat ust, wst;
    const bool same = fstat(ls->layers_[0].root_fd, &ust) == 0 &&
                      fstat(ls->workdir_fd_, &wst) == 0 && ust.st_dev == wst.st_dev &&
                      ust.st_ino == wst.st_ino;
    if (!same) OVT_RETURN_IF_ERROR(LockDirectory(ls->workdir_fd_, "workdir", opts.workdir));
    OVT_RETURN_IF_ERROR(EnsureDirAt(ls->workdir_fd_, kWorkTemp, &ls->work_fd_));
    OVT_RETURN_IF_ERROR(CheckIncompat(ls->work_fd_, opts.workdir));
    // Whatever a crash left half-made in work/work was never visible: drop it.
    Status s = EmptyDirAt(ls->work_fd_);
    if (!s.ok())
      return Status::Errno(s.err(), "clean workdir '" + opts.workdir + "/work': " + s.message());
    if (opts.is_volatile) OVT_RETURN_IF_ERROR(MarkVolatile(ls->work_fd_, opts.workdir));
    // Objects are built in work/work and renamed into place: an ACL they
    // inherited from it would stay with them (a default ACL the work
    // directory got from workdir's). Like overlayfs, drop its ACLs.
    for (const char* acl : {kAclDefaultXattr, kAclAccessXattr}) {
      if (fremovexattr(ls->work_fd_, acl) != 0 && errno != ENODATA && errno != ENOTSUP)
        return Status::FromErrno("remove " + std::string(acl) + " from workdir '" + opts.workdir +
                                 "/work'");
    }
    OVT_RETURN_IF_ERROR(EnsureDirAt(ls->workdir_fd_, kWorkIndex, &ls->index_fd_));
    // Can the upper file system hold whiteout devices? An overlayfs (a
    // container's storage inside a container) refuses a 0/0 character
    // device with EPERM; so may an old kernel to a daemon without root.
    constexpr const char* kProbe = "whiteout-probe";
    if (mknodat(ls->work_fd_, kProbe, S_IFCHR | 0, makedev(0, 0)) == 0) {
      unlinkat(ls->work_fd_, kProbe, 0);
    } else if (errno == EPERM || errno == EOPNOTSUPP || errno == EINVAL) {
      ls->whiteout_files_ = true;
    } else {
      return Status::FromErrno("make a whiteout in workdir '" + opts.workdir + "/work'");
    }
  }
  *out = std::move(ls);
  return Status::OK();
}

uint64_t LayerSet::MixIno(int layer, ino_t ino) const {
  if (xino_shift_ == 0) return ino;
  return static_cast<uint64_t>(ino) ^ (static_cast<uint64_t>(layers_[layer].fsidx) << xino_shift_);
}

Status GetHandle(int dirfd, const char* name, std::string* handle) {
  struct {
    struct file_handle fh;
    unsigned char buf[MAX_HANDLE_SZ];
  } h;
  h.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  int flags = name[0] == '\0' ? AT_EMPTY_PATH : 0;
  if (name_to_handle_at(dirfd, name, &h.fh, &mount_id, flags) != 0) {
    handle->clear();
    if (errno == EOPNOTSUPP || errno == ENOSYS) return Status::OK();
    return Status::FromErrno("name_to_handle_at");
  }
  handle->assign(reinterpret_cast<const char*>(&h.fh), sizeof(h.fh) + h.fh.handle_bytes);
  return Status::OK();
}

Status OpenByHandle(const Layer& layer, const std::string& handle, int flags, int* fd) {
  if (handle.empty()) return Status::Errno(ESTALE);
  // Copy into an aligned buffer: the string's bytes are only char-aligned.
  struct {
    struct file_handle fh;
    unsigned char buf[MAX_HANDLE_SZ];
  } h;
  std::memcpy(&h, handle.data(), std::min(handle.size(), sizeof(h)));
  *fd = open_by_handle_at(layer.root_fd, &h.fh, flags | O_CLOEXEC);
  if (*fd < 0) return Status::FromErrno();
  return Status::OK();
}

}  // namespace overtier
