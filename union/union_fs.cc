// UnionFs construction: opening the layers and building the root node
// (overlayfs' super.c).
#include "union/union_fs.h"

#include <fcntl.h>
#include <linux/securebits.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "union/fs_util.h"

namespace overtier {

OpenFile::~OpenFile() {
  if (fd >= 0) close(fd);
  for (int r : retired) close(r);
  if (!counts_lower_open) return;
  std::shared_ptr<MigFile> last;  // let go of outside the lock
  {
    std::lock_guard<std::mutex> g(node->mu);
    if (--node->lower_opens == 0) last = std::move(node->held_mig);
  }
}

UnionFs::UnionFs(const MountOptions& opts, std::unique_ptr<LayerSet> layers, long fd_budget)
    : opts_(opts),
      layers_(std::move(layers)),
      nodes_(layers_.get(), fd_budget),
      xn_(opts.userxattr),
      read_only_(opts.read_only || !layers_->has_upper()),
      sync_(!opts.is_volatile) {}

UnionFs::~UnionFs() = default;

Status UnionFs::Create(const MountOptions& opts, std::unique_ptr<UnionFs>* out) {
  // New objects must get exactly the mode the caller asked for.
  umask(0);
  // Keep capabilities when the fsuid changes (CredScope): the daemon creates
  // objects as the caller but must still reach the work directory.
  if (geteuid() == 0) prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0);
  // Use every fd we may; cached layer fds get half of them, the rest is for
  // files users open.
  struct rlimit rl;
  long budget = 4096;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY) budget = static_cast<long>(rl.rlim_cur) / 2;
    if (budget > 65536) budget = 65536;
  }
  std::unique_ptr<LayerSet> layers;
  OVT_RETURN_IF_ERROR(LayerSet::Open(opts, &layers));
  auto fs = std::unique_ptr<UnionFs>(new UnionFs(opts, std::move(layers), budget));

  // The root: the upper root merged with every lower root (until one is
  // opaque).
  const LayerSet& ls = *fs->layers_;
  auto ref_for = [&](int l, RealRef* ref) -> Status {
    int fd = openat(ls.layer(l).root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open layer root");
    ref->layer = l;
    ref->fd = std::make_shared<const class Fd>(fd);
    if (ls.layer(l).handles) OVT_RETURN_IF_ERROR(GetHandle(fd, "", &ref->handle));
    struct stat rst;
    if (ls.layer(l).tree != nullptr) {
      if (fstat(fd, &rst) != 0) return Status::FromErrno("stat layer root");
      ref->tree_ino = rst.st_ino;
    }
    return Status::OK();
  };
  struct stat st;
  int top = 0;
  if (fstat(ls.layer(top).root_fd, &st) != 0) return Status::FromErrno("stat layer root");
  auto root = std::make_unique<Node>(ls.MixIno(top, st.st_ino), S_IFDIR);
  if (ls.has_upper()) {
    OVT_RETURN_IF_ERROR(ref_for(0, &root->upper));
    std::string v;
    bool present = false;
    OVT_RETURN_IF_ERROR(GetXattrFd(root->upper.fd->get(), fs->xn_.impure(), &v, &present));
    root->impure = present;
    OVT_RETURN_IF_ERROR(GetXattrFd(root->upper.fd->get(), fs->xn_.opaque(), &v, &present));
    root->opaque = present && v == "y";
  }
  if (!root->opaque) {
    for (int l = ls.first_lower(); l < ls.size(); ++l) {
      RealRef ref;
      OVT_RETURN_IF_ERROR(ref_for(l, &ref));
      Status err;
      const DirMarks marks = ReadDirMarks(ref.fd->get(), fs->xn_, &err);
      OVT_RETURN_IF_ERROR(err);
      ref.xwhiteouts = marks.xwhiteouts;
      ref.impure = marks.impure;
      root->lower_dirs.push_back(std::move(ref));
      if (marks.opaque) break;
    }
  }
  root->lower_path.assign(1, '/');  // (not = "/": GCC 12 -Wrestrict false positive)
  fs->nodes_.SetRoot(std::move(root));
  *out = std::move(fs);
  return Status::OK();
}

CredScope::CredScope(const UnionFs& fs, const Ctx& ctx) {
  uid_t uid = MapIdToDisk(fs.opts_.uidmap, ctx.uid);
  gid_t gid = MapIdToDisk(fs.opts_.gidmap, ctx.gid);
  if (uid == 0 && gid == 0) return;
  // setfsuid/setfsgid act on the calling thread only (raw syscalls, not
  // broadcast by glibc), which is what a worker thread needs.
  setfsgid(gid);
  setfsuid(uid);
  active_ = true;
}

CredScope::~CredScope() {
  if (!active_) return;
  setfsuid(0);
  setfsgid(0);
}

}  // namespace overtier
