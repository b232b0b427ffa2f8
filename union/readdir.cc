// Merged directory listings (overlayfs' readdir.c).
//
// The listing is built once per open directory (and again on rewind): the
// upper directory first, then each lower directory until an opaque one;
// the first layer to show a name wins, whiteouts (char 0/0, or ".wh.NAME"
// in lower layers) hide it from the layers below and are never shown.
// Offsets are positions in this snapshot, so telldir/seekdir stay valid
// however the layers interleave.
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

namespace {

mode_t DtToMode(unsigned char t) {
  switch (t) {
    case DT_DIR:
      return S_IFDIR;
    case DT_REG:
      return S_IFREG;
    case DT_LNK:
      return S_IFLNK;
    case DT_CHR:
      return S_IFCHR;
    case DT_BLK:
      return S_IFBLK;
    case DT_FIFO:
      return S_IFIFO;
    case DT_SOCK:
      return S_IFSOCK;
    default:
      return 0;
  }
}

struct linux_dirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Calls fn(name, ino, d_type) for every entry of the directory dirfd, from
// a private fd so the cached one's position is never disturbed. A listing
// reads an upper directory as the user's own (its atime moves by the upper
// file system's rules, relatime mostly, as the kernel overlayfs touches
// it), a lower one without a trace (O_NOATIME).
template <typename Fn>
Status ForEachEntry(int dirfd, bool upper, Fn fn) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | (upper ? 0 : O_NOATIME));
  if (fd < 0) return Status::FromErrno("open directory");
  alignas(linux_dirent64) char buf[32768];
  Status s;
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n < 0) {
      s = Status::FromErrno("read directory");
      break;
    }
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<linux_dirent64*>(buf + pos);
      pos += d->d_reclen;
      if (d->d_name[0] == '.' &&
          (d->d_name[1] == '\0' || (d->d_name[1] == '.' && d->d_name[2] == '\0')))
        continue;
      s = fn(d->d_name, d->d_ino, d->d_type);
      if (!s.ok()) break;
    }
    if (!s.ok()) break;
  }
  close(fd);
  return s;
}

}  // namespace

Status UnionFs::OpenDirectory(Node* node, std::unique_ptr<OpenDir>* out) {
  if (!node->is_dir()) return Status::Errno(ENOTDIR);
  auto od = std::make_unique<OpenDir>();
  od->node = node;
  *out = std::move(od);
  return Status::OK();
}

Status UnionFs::LoadDirectory(OpenDir* od, bool reload) {
  if (od->loaded && !reload) return Status::OK();
  Node* node = od->node;
  FdPtr upper;
  std::vector<LowerSearch> lowers;
  bool impure;
  {
    std::lock_guard<std::mutex> g(node->mu);
    if (node->upper.valid()) OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &upper));
    OVT_RETURN_IF_ERROR(LowerSearchLocked(node, &lowers));
    impure = node->impure;
  }
  std::vector<DirEntry> entries;
  std::unordered_set<std::string> seen;
  entries.push_back({".", node->key, S_IFDIR});
  entries.push_back({"..", node->key, S_IFDIR});

  if (upper) {
    const int ufd = upper->get();
    const bool files = layers_->whiteout_files();
    OVT_RETURN_IF_ERROR(
        ForEachEntry(ufd, true, [&](const char* name, ino64_t ino, unsigned char t) {
          std::string_view n(name);
          if (files && IsAufsMarker(n)) {  // ".wh.NAME": a whiteout of NAME
            if (!lowers.empty() && !n.starts_with(".wh..wh."))
              seen.emplace(n.substr(kAufsPrefix.size()));
            return Status::OK();
          }
          mode_t type = DtToMode(t);
          if (type == S_IFCHR || type == 0) {
            struct stat st;
            if (fstatat(ufd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::OK();  // raced
            if (IsWhiteoutStat(st)) {
              if (!lowers.empty()) seen.emplace(name);
              return Status::OK();
            }
            type = st.st_mode & S_IFMT;
          }
          uint64_t key = layers_->MixIno(0, ino);
          if (impure && (type == S_IFREG || type == S_IFDIR)) {
            // Copied-up entries keep the inode number of their lower origin.
            int fd = openat(ufd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) {
              std::string v;
              bool present = false;
              if (GetXattrFd(fd, xn_.origin(), &v, &present).ok() && present &&
                  v.size() == sizeof(uint64_t))
                std::memcpy(&key, v.data(), sizeof(key));
              close(fd);
            }
          }
          if (!lowers.empty()) seen.emplace(name);
          entries.push_back({name, key, type});
          return Status::OK();
        }));
  }
  for (size_t i = 0; i < lowers.size(); ++i) {
    const LowerSearch& d = lowers[i];
    const int layer = d.layer;
    const bool last = i + 1 == lowers.size();
    std::vector<std::string> hidden;  // AUFS whiteouts of this layer
    auto each = [&](const char* name, uint64_t ino, unsigned char t) {
      std::string_view n(name);
      if (IsAufsMarker(n)) {
        if (!n.starts_with(".wh..wh.")) hidden.emplace_back(n.substr(kAufsPrefix.size()));
        return Status::OK();
      }
      if (seen.count(name)) return Status::OK();
      mode_t type = DtToMode(t);
      // Whiteouts: character devices 0/0, and in a directory marked for
      // them, empty files carrying the whiteout xattr.
      if (type == S_IFCHR || type == 0 || (d.xwhiteouts && type == S_IFREG)) {
        struct stat st;
        if (!LstatLower(d, name, &st).ok()) return Status::OK();  // raced
        if (IsWhiteoutStat(st) || LowerXattrWhiteout(d, name, -1, st)) {
          if (!last) seen.emplace(name);
          return Status::OK();
        }
        type = st.st_mode & S_IFMT;
      }
      if (!last) seen.emplace(name);
      entries.push_back({name, layers_->MixIno(layer, ino), type});
      return Status::OK();
    };
    if (d.tree != nullptr) {
      OVT_RETURN_IF_ERROR(d.tree->ReadDir(d.ino, each));
    } else {
      OVT_RETURN_IF_ERROR(ForEachEntry(d.fd->get(), false, each));
    }
    for (auto& h : hidden) seen.insert(std::move(h));
  }
  od->entries = std::move(entries);
  od->loaded = true;
  od->lookups_in_process =
      !upper && !lowers.empty() &&
      std::all_of(lowers.begin(), lowers.end(), [](const LowerSearch& d) { return d.tree; });
  return Status::OK();
}

Status UnionFs::FsyncDir(Node* node, bool datasync) {
  if (!sync_) return Status::OK();
  FdPtr fd;
  {
    std::lock_guard<std::mutex> g(node->mu);
    if (!node->upper.valid()) return Status::OK();
    OVT_RETURN_IF_ERROR(nodes_.FdLocked(node, &node->upper, &fd));
  }
  if ((datasync ? fdatasync(fd->get()) : fsync(fd->get())) != 0) return Status::FromErrno();
  return Status::OK();
}

}  // namespace overtier
