#include "image/import.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "image/image_format.h"
#include "image/oci.h"
#include "image/posix_acl.h"
#include "image/spool.h"
#include "image/tar_source.h"
#include "overtier/printable.h"
#include "overtier/tier_xattrs.h"
#include "overtier/time_ns.h"

namespace overtier {

namespace {

// Content rows are committed every so many bytes or files: bounds what a
// kill loses and the memory the writer keeps for new chunk rows.
constexpr uint64_t kContentBatchBytes = uint64_t{128} << 20;
constexpr size_t kContentBatchFiles = 8192;
// Rows per catalog batch when writing the tree.
constexpr size_t kTreeBatchOps = 20000;

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What an image says of a time outside the range a node record holds.
constexpr const char* kClampedTimes =
    ": a time outside the years 1677 to 2262 an image holds, clamped to the nearest";

void Warn(const ImportOptions& o, const std::string& msg) {
  if (o.warn) {
    o.warn(msg);
  } else {
    std::fprintf(stderr, "overtier: warning: %s\n", MessageSafe(msg).c_str());
  }
}

std::string JoinPath(const std::vector<std::string>& path, size_t n) {
  if (n == 0) return "/";
  std::string s;
  for (size_t i = 0; i < n; i++) s += "/" + path[i];
  return s;
}

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symlink";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFIFO:
      return "a fifo";
    case S_IFSOCK:
      return "a socket";
  }
  return "of an unknown type";
}

}  // namespace

const char* SourceKindName(SourceKind k) {
  switch (k) {
    case SourceKind::kDirectory:
      return "directory";
    case SourceKind::kTar:
      return "tar";
    case SourceKind::kOciLayout:
      return "OCI image layout";
    case SourceKind::kDockerSave:
      return "docker save archive";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

Status NormalizeTarPath(std::string_view path, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (out->empty()) {
        return Status::Errno(
            EPERM, "entry '" + std::string(path) + "': '..' leads outside the image root; refused");
      }
      out->pop_back();
      continue;
    }
    if (c.find('\0') != std::string_view::npos) {
      return Status::InvalidArgument("entry '" + std::string(path) + "': NUL byte in the name");
    }
    if (c.size() > kMaxDirentNameLen) {
      return Status::Errno(ENAMETOOLONG, "entry '" + std::string(path) + "': component of " +
                                             std::to_string(c.size()) + " bytes (at most 255)");
    }
    out->emplace_back(c);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// ImageBuilder
// ---------------------------------------------------------------------------

ImageBuilder::ImageBuilder(Store* store, ContentWriter* writer, ImportCounters* counters)
    : store_(store), writer_(writer), counters_(counters) {}

ImageBuilder::~ImageBuilder() = default;

uint64_t ImageBuilder::NewNode(const NodeRecord& rec) {
  uint64_t ino = next_ino_++;
  nodes_[ino].rec = rec;
  counters_->entries++;
  return ino;
}

Status ImageBuilder::Begin() {
  OVT_RETURN_IF_ERROR(store_->catalog()->AllocateIds(IdSpace::kImage, 1, &image_id_));
  NodeRecord root;
  root.mode = S_IFDIR | 0755;
  root.atime_ns = root.mtime_ns = root.ctime_ns = NowNs();
  uint64_t ino = NewNode(root);
  (void)ino;  // kImageRootInode
  return Status::OK();
}

const NodeRecord* ImageBuilder::node(uint64_t ino) const {
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? nullptr : &it->second.rec;
}

NodeRecord* ImageBuilder::mutable_node(uint64_t ino) {
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? nullptr : &it->second.rec;
}

Status ImageBuilder::SetRoot(const NodeRecord& attrs) {
  if (!S_ISDIR(attrs.mode)) {
    return Status::InvalidArgument("the root of an image must be a directory, not " +
                                   std::string(TypeName(attrs.mode)));
  }
  Node& root = nodes_[kImageRootInode];
  root.rec = attrs;
  if (root.opaque_marker) root.rec.xattrs[std::string(kOpaqueXattr)] = std::string(kOpaqueValue);
  return Status::OK();
}

Status ImageBuilder::Walk(const std::vector<std::string>& path, size_t n, bool create,
                          int64_t time_ns, std::string_view what, uint64_t* ino) {
  uint64_t cur = kImageRootInode;
  for (size_t i = 0; i < n; i++) {
    Node& d = nodes_[cur];
    auto it = d.children.find(path[i]);
    if (it == d.children.end()) {
      if (!create) {
        *ino = 0;
        return Status::OK();
      }
      NodeRecord dir;
      dir.mode = S_IFDIR | 0755;
      dir.atime_ns = dir.mtime_ns = dir.ctime_ns = time_ns;
      uint64_t child = NewNode(dir);
      nodes_[cur].children[path[i]] = child;  // nodes_ may have rehashed
      nodes_[child].names = 1;
      cur = child;
      continue;
    }
    if (create && IsWhiteout(nodes_[it->second].rec)) {
      // `.wh.d` then `d/x` in one layer: d was deleted below and made anew
      // here, so it is a new directory that must not merge with the lower.
      std::string name = path[i];
      OVT_RETURN_IF_ERROR(Unlink(cur, name));
      NodeRecord dir;
      dir.mode = S_IFDIR | 0755;
      dir.atime_ns = dir.mtime_ns = dir.ctime_ns = time_ns;
      dir.xattrs[std::string(kOpaqueXattr)] = std::string(kOpaqueValue);
      uint64_t child = NewNode(dir);
      nodes_[child].names = 1;
      nodes_[child].opaque_marker = true;
      nodes_[cur].children[name] = child;
      cur = child;
      continue;
    }
    cur = it->second;
    const NodeRecord& r = nodes_[cur].rec;
    if (!S_ISDIR(r.mode)) {
      return Status::Errno(ENOTDIR, std::string(what) + ": '" + JoinPath(path, i + 1) + "' is " +
                                        TypeName(r.mode) +
                                        ", not a directory: nothing can be written through it");
    }
  }
  *ino = cur;
  return Status::OK();
}

uint64_t ImageBuilder::Lookup(const std::vector<std::string>& path) const {
  uint64_t cur = kImageRootInode;
  for (const std::string& c : path) {
    auto n = nodes_.find(cur);
    if (n == nodes_.end()) return 0;
    auto it = n->second.children.find(c);
    if (it == n->second.children.end()) return 0;
    cur = it->second;
  }
  return cur;
}

void ImageBuilder::Drop(uint64_t ino) {
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  // Children first (a replaced directory takes its subtree along).
  std::map<std::string, uint64_t> children = std::move(it->second.children);
  for (const auto& [name, child] : children) {
    Node& c = nodes_[child];
    if (--c.names == 0) Drop(child);
  }
  nodes_.erase(ino);
  counters_->entries--;
}

Status ImageBuilder::Unlink(uint64_t dir, const std::string& name) {
  Node& d = nodes_[dir];
  auto it = d.children.find(name);
  if (it == d.children.end()) return Status::OK();
  uint64_t ino = it->second;
  d.children.erase(it);
  Node& n = nodes_[ino];
  if (--n.names == 0 || S_ISDIR(n.rec.mode)) Drop(ino);
  return Status::OK();
}

Status ImageBuilder::AddContent(const FileRecord& rec, Bfid* bfid) {
  // A fresh random bfid per content: never shared between nodes (chunks are
  // what dedup shares), so gc can drop a files row with its only node.
  OVT_RETURN_IF_ERROR(RandomId(bfid));
  pending_files_.emplace_back(*bfid, rec);
  pending_bytes_ += rec.size;
  counters_->files++;
  counters_->bytes += rec.size;
  return Status::OK();
}

Status ImageBuilder::CommitContent(bool final) {
  (void) final;
  Catalog::Batch b(store_->catalog());
  // Containers durable before the catalog names what is in them.
  OVT_RETURN_IF_ERROR(writer_->Flush(&b));
  for (const auto& [bfid, rec] : pending_files_) b.PutFile(bfid, rec);
  pending_files_.clear();
  pending_bytes_ = 0;
  counters_->bytes_stored = writer_->stats().bytes_stored;
  if (b.size() == 0) return Status::OK();
  return b.Commit();
}

Status ImageBuilder::MaybeCommitContent() {
  counters_->bytes_stored = writer_->stats().bytes_stored;
  if (pending_bytes_ < kContentBatchBytes && pending_files_.size() < kContentBatchFiles) {
    return Status::OK();
  }
  return CommitContent(false);
}

Status ImageBuilder::Put(const std::vector<std::string>& path, const NodeRecord& attrs,
                         const FileRecord* content, std::string_view what, uint64_t* ino) {
  if (path.empty()) return Status::InvalidArgument(std::string(what) + ": empty path");
  uint64_t parent = 0;
  OVT_RETURN_IF_ERROR(Walk(path, path.size() - 1, true, attrs.mtime_ns, what, &parent));
  const std::string& name = path.back();
  OVT_RETURN_IF_ERROR(CheckDirentName(name));
  NodeRecord rec = attrs;
  bool make_opaque = false;
  {
    Node& d = nodes_[parent];
    auto it = d.children.find(name);
    if (it != d.children.end()) {
      Node& old = nodes_[it->second];
      if (S_ISDIR(old.rec.mode) && S_ISDIR(rec.mode)) {
        // tar -x over an existing directory: keep its children, take the
        // new attributes (and an opaque marker seen for it stays).
        old.rec = rec;
        if (old.opaque_marker) {
          old.rec.xattrs[std::string(kOpaqueXattr)] = std::string(kOpaqueValue);
        }
        *ino = it->second;
        return Status::OK();
      }
      // A directory replacing a whiteout of the same layer: the lower
      // directory stays deleted, so the new one must not merge with it.
      make_opaque = IsWhiteout(old.rec) && S_ISDIR(rec.mode);
      OVT_RETURN_IF_ERROR(Unlink(parent, name));
    }
  }
  if (content != nullptr) {
    Bfid bfid;
    OVT_RETURN_IF_ERROR(AddContent(*content, &bfid));
    rec.has_content = true;
    rec.content = bfid;
  } else {
    rec.has_content = false;
    rec.content = Bfid();
  }
  uint64_t child = NewNode(rec);
  Node& c = nodes_[child];
  c.names = 1;
  if (make_opaque) {
    c.opaque_marker = true;
    c.rec.xattrs[std::string(kOpaqueXattr)] = std::string(kOpaqueValue);
  }
  nodes_[parent].children[name] = child;
  *ino = child;
  return Status::OK();
}

Status ImageBuilder::Link(const std::vector<std::string>& path, uint64_t ino,
                          std::string_view what) {
  if (path.empty()) return Status::InvalidArgument(std::string(what) + ": a hard link as root");
  auto t = nodes_.find(ino);
  if (t == nodes_.end()) return Status::InvalidArgument(std::string(what) + ": no link target");
  if (S_ISDIR(t->second.rec.mode)) {
    return Status::Errno(EPERM, std::string(what) + ": hard link to a directory");
  }
  int64_t time_ns = t->second.rec.mtime_ns;
  uint64_t parent = 0;
  OVT_RETURN_IF_ERROR(Walk(path, path.size() - 1, true, time_ns, what, &parent));
  const std::string& name = path.back();
  OVT_RETURN_IF_ERROR(CheckDirentName(name));
  auto it = nodes_[parent].children.find(name);
  if (it != nodes_[parent].children.end()) {
    if (it->second == ino) return Status::OK();
    OVT_RETURN_IF_ERROR(Unlink(parent, name));
    if (nodes_.find(ino) == nodes_.end()) {
      return Status::InvalidArgument(std::string(what) +
                                     ": the hard link target was removed by this entry");
    }
  }
  nodes_[parent].children[name] = ino;
  nodes_[ino].names++;
  return Status::OK();
}

Status ImageBuilder::MarkOpaque(const std::vector<std::string>& path, int64_t time_ns,
                                std::string_view what) {
  uint64_t dir = 0;
  OVT_RETURN_IF_ERROR(Walk(path, path.size(), true, time_ns, what, &dir));
  Node& d = nodes_[dir];
  d.opaque_marker = true;
  d.rec.xattrs[std::string(kOpaqueXattr)] = std::string(kOpaqueValue);
  return Status::OK();
}

Status ImageBuilder::Whiteout(const std::vector<std::string>& path, const NodeRecord& attrs,
                              std::string_view what) {
  if (path.empty()) return Status::InvalidArgument(std::string(what) + ": whiteout of the root");
  uint64_t parent = 0;
  OVT_RETURN_IF_ERROR(Walk(path, path.size() - 1, true, attrs.mtime_ns, what, &parent));
  const std::string& name = path.back();
  OVT_RETURN_IF_ERROR(CheckDirentName(name));
  auto it = nodes_[parent].children.find(name);
  if (it != nodes_[parent].children.end()) {
    Node& old = nodes_[it->second];
    if (!IsWhiteout(old.rec)) {
      // OCI: a whiteout hides lower layers only, never an entry of its own
      // layer. A non-directory entry hides the lower one already; a
      // directory must stop merging with it.
      if (S_ISDIR(old.rec.mode)) {
        old.opaque_marker = true;
        old.rec.xattrs[std::string(kOpaqueXattr)] = std::string(kOpaqueValue);
      }
      return Status::OK();
    }
  }
  NodeRecord rec = attrs;
  rec.mode = S_IFCHR | (attrs.mode & 07777);
  rec.rdev = makedev(0, 0);
  rec.size = 0;
  rec.symlink_target.clear();
  uint64_t ino = 0;
  return Put(path, rec, nullptr, what, &ino);
}

Status ImageBuilder::WriteTree() {
  OVT_RETURN_IF_ERROR(CommitContent(true));
  std::vector<uint64_t> inos;
  inos.reserve(nodes_.size());
  for (const auto& [ino, n] : nodes_) inos.push_back(ino);
  std::sort(inos.begin(), inos.end());
  Catalog::Batch b(store_->catalog());
  for (uint64_t ino : inos) {
    Node& n = nodes_[ino];
    NodeRecord& r = n.rec;
    uint32_t subdirs = 0;
    for (const auto& [name, child] : n.children) {
      const NodeRecord& c = nodes_[child].rec;
      if (S_ISDIR(c.mode)) subdirs++;
      b.PutDirent(image_id_, ino, name, DirentRecord{child, DirentTypeOf(c.mode)});
    }
    if (S_ISDIR(r.mode)) {
      r.nlink = 2 + subdirs;
      r.size = kImageDirSize;
    } else {
      r.nlink = n.names;
      if (S_ISLNK(r.mode)) {
        r.size = r.symlink_target.size();
      } else if (!S_ISREG(r.mode)) {
        r.size = 0;
      }
    }
    if (!S_ISREG(r.mode)) r.has_content = false;
    if (!S_ISCHR(r.mode) && !S_ISBLK(r.mode)) r.rdev = 0;
    b.PutNode(image_id_, ino, r);
    if (b.size() >= kTreeBatchOps) OVT_RETURN_IF_ERROR(b.Commit());
  }
  if (b.size() > 0) OVT_RETURN_IF_ERROR(b.Commit());
  return Status::OK();
}

Status FinishLayer(ImageBuilder* b, uint64_t parent_id, ImageRecord* rec) {
  OVT_RETURN_IF_ERROR(b->WriteTree());
  *rec = ImageRecord();
  rec->image_id = b->image_id();
  rec->root_inode = kImageRootInode;
  rec->parent_image_id = parent_id;
  rec->created_ns = NowNs();
  return Status::OK();
}

Status CheckNewNames(Store* store, const std::vector<std::string>& names, bool replace) {
  for (const std::string& n : names) {
    Status s = CheckImageName(n);
    if (!s.ok()) return Status::InvalidArgument("image name '" + n + "': " + s.message());
    ImageRecord r;
    s = store->catalog()->GetImage(n, &r);
    if (s.err() == ENOENT) continue;
    OVT_RETURN_IF_ERROR(s);
    if (!replace) return Status::Errno(EEXIST, "image '" + n + "' exists already (use --replace)");
    // Parent links are image ids and the images family is keyed by name:
    // an image replaced under a child that still stacks on it would leave
    // the child's chain pointing at an id nothing names (mounts refuse it,
    // gc could not follow it). Images replaced together (the layers of
    // one OCI import) may be each other's parents.
    std::string child;
    OVT_RETURN_IF_ERROR(
        store->catalog()->ScanImages("", [&](std::string_view cname, const ImageRecord& c) {
          if (c.parent_image_id != r.image_id) return true;
          if (std::find(names.begin(), names.end(), cname) != names.end()) return true;
          child = std::string(cname);
          return false;
        }));
    if (!child.empty()) {
      return Status::Errno(EBUSY, "image '" + n + "' is the parent of image '" + child +
                                      "': remove or replace '" + child + "' first");
    }
  }
  return Status::OK();
}

Status ResolveParent(Store* store, std::string_view name, uint64_t* id) {
  ImageRecord r;
  Status s = store->catalog()->GetImage(name, &r);
  if (s.err() == ENOENT) {
    return Status::NotFound("parent image '" + std::string(name) + "' does not exist");
  }
  OVT_RETURN_IF_ERROR(s);
  *id = r.image_id;
  return Status::OK();
}

Status PublishImages(Store* store, ContentWriter* finish,
                     const std::vector<std::pair<std::string, ImageRecord>>& images, bool replace) {
  std::vector<std::string> names;
  for (const auto& [n, r] : images) names.push_back(n);
  OVT_RETURN_IF_ERROR(CheckNewNames(store, names, replace));
  Catalog::Batch b(store->catalog());
  if (finish != nullptr) OVT_RETURN_IF_ERROR(finish->Finish(&b));
  for (const auto& [n, r] : images) b.PutImage(n, r);
  return b.Commit(Durability::kSync);
}

// ---------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------

namespace {

// Reads all xattrs of fd. An O_PATH descriptor (symlinks, devices, fifos:
// opening them for real would follow or block) has no f*xattr calls, so
// those go through /proc/self/fd/N, which names the very inode of fd.
Status ReadXattrs(int fd, bool opath, const std::string& what,
                  std::map<std::string, std::string>* out) {
  out->clear();
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  auto list = [&](char* buf, size_t n) -> ssize_t {
    return opath ? listxattr(proc.c_str(), buf, n) : flistxattr(fd, buf, n);
  };
  auto get = [&](const char* name, void* buf, size_t n) -> ssize_t {
    return opath ? getxattr(proc.c_str(), name, buf, n) : fgetxattr(fd, name, buf, n);
  };
  std::string names;
  for (;;) {
    ssize_t n = list(nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP || errno == ENODATA) return Status::OK();
      return Status::FromErrno("listxattr '" + what + "'");
    }
    if (n == 0) return Status::OK();
    names.resize(n);
    n = list(names.data(), names.size());
    if (n < 0 && errno == ERANGE) continue;  // grew meanwhile
    if (n < 0) return Status::FromErrno("listxattr '" + what + "'");
    names.resize(n);
    break;
  }
  std::string value;
  for (size_t i = 0; i < names.size();) {
    const char* name = names.c_str() + i;
    size_t len = std::strlen(name);
    i += len + 1;
    if (len == 0) continue;
    for (;;) {
      ssize_t n = get(name, nullptr, 0);
      if (n < 0 && errno == ENODATA) break;  // removed meanwhile
      if (n < 0) return Status::FromErrno("getxattr '" + what + "' " + name);
      value.resize(n);
      n = get(name, value.data(), value.size());
      if (n < 0 && errno == ERANGE) continue;
      if (n < 0) return Status::FromErrno("getxattr '" + what + "' " + name);
      value.resize(n);
      (*out)[name] = value;
      break;
    }
  }
  return Status::OK();
}

struct DirWalker {
  ImageBuilder* b;
  ContentWriter* w;
  const DirectoryImportOptions& dopt;
  const ImportOptions& options;
  ImportCounters* counters;
  std::string root;
  // Hard links: the node of a (dev, ino) seen with nlink > 1.
  std::map<std::pair<dev_t, ino_t>, uint64_t> links;
  // commit: the metadata-only copies met (UpperData).
  std::vector<std::string> metacopies;

  Status MetacopyRefusal() const {
    if (metacopies.empty()) return Status::OK();
    constexpr size_t kNamed = 20;
    std::string names;
    for (size_t i = 0; i < metacopies.size() && i < kNamed; ++i) {
      names += (i ? ", '" : "'") + metacopies[i] + "'";
    }
    if (metacopies.size() > kNamed) {
      names += " and " + std::to_string(metacopies.size() - kNamed) + " more";
    }
    return Status::Errno(EOPNOTSUPP,
                         std::to_string(metacopies.size()) +
                             " metadata-only copies (trusted.overlay.metacopy, left by a chmod, "
                             "chown, touch or xattr change of a lower file) keep their data in a "
                             "lower layer, which commit does not read; open each for writing "
                             "through the mounted union (e.g. ': >> FILE') to copy its data up, "
                             "then commit again: " +
                             names);
  }

  std::string Display(const std::vector<std::string>& path) const {
    return root + JoinPath(path, path.size());
  }

  void Attrs(const struct stat& st, const std::string& what, NodeRecord* r) {
    *r = NodeRecord();
    r->mode = st.st_mode;
    r->uid = st.st_uid;
    r->gid = st.st_gid;
    r->size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
    r->rdev = (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? st.st_rdev : 0;
    bool clamped = false;
    r->atime_ns = ClampedNs(st.st_atim, &clamped);
    r->mtime_ns = ClampedNs(st.st_mtim, &clamped);
    r->ctime_ns = ClampedNs(st.st_ctim, &clamped);
    if (clamped) Warn(options, "'" + what + "'" + kClampedTimes);
  }

  Status Xattrs(int fd, bool opath, const std::string& what, NodeRecord* r) {
    OVT_RETURN_IF_ERROR(ReadXattrs(fd, opath, what, &r->xattrs));
    for (auto it = r->xattrs.begin(); it != r->xattrs.end();) {
      bool drop = dopt.drop_overtier_xattrs && (it->first.starts_with(kOvertierTrustedPrefix) ||
                                                it->first.starts_with(kOvertierUserPrefix));
      if (drop) {
        it = r->xattrs.erase(it);
      } else {
        ++it;
      }
    }
    return Status::OK();
  }

  // commit: whether the upper file holds its data. A metadata-only copy
  // does not (its data is in a lower layer); a released file holds only
  // part of it (the rest is in its archive), which upper_content reads.
  // Stored as they are, both would read as zeros in the image.
  Status UpperData(int fd, const NodeRecord& r, const std::string& what, FileRecord* content,
                   bool* taken) {
    if (r.xattrs.count(std::string(kMetacopyXattr)) != 0) {
      // Noted, and the walk goes on: the commit fails at its end naming
      // every such file (MetacopyRefusal), so one pass fixes them all.
      metacopies.push_back(what);
      *taken = true;
      return Status::OK();
    }
    if (dopt.upper_content) {
      return dopt.upper_content(fd, r.size, what, w, content, taken);
    }
    if (fgetxattr(fd, kArchiveMarkXattr, nullptr, 0) >= 0) {
      return Status::Errno(EOPNOTSUPP, "'" + what +
                                           "' carries an archive mark: some of its bytes may be "
                                           "only in the store's archive");
    }
    return Status::OK();
  }

  // import: a file an overtier mount released (an upper directory given
  // to import instead of commit) has holes where its data was; stored as
  // it is, they would be zeros in the image.
  static Status NotReleased(int fd, const NodeRecord& r, const std::string& what) {
    if (r.xattrs.count(std::string(kArchiveMarkXattr)) == 0 || r.size == 0) {
      return Status::OK();
    }
    const off_t hole = lseek(fd, 0, SEEK_HOLE);
    if (hole < 0 || static_cast<uint64_t>(hole) >= r.size) return Status::OK();  // stale mark
    return Status::Errno(EIO, "'" + what +
                                  "' was released by an overtier mount (it carries an archive "
                                  "mark and has holes): its data is in that mount's store; "
                                  "restore it there first, or commit the upper directory with "
                                  "'overtier image commit --from', which reads it from the store");
  }

  static Status Same(int fd, const struct stat& st, const std::string& what) {
    struct stat now;
    if (fstat(fd, &now) != 0) return Status::FromErrno("fstat '" + what + "'");
    if (now.st_dev != st.st_dev || now.st_ino != st.st_ino ||
        (now.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
      return Status::Errno(EAGAIN, "'" + what + "' was replaced while being imported");
    }
    return Status::OK();
  }

  void Progress() {
    if (options.progress) options.progress(*counters);
  }

  Status Entry(int dirfd, const std::string& name, std::vector<std::string>* path) {
    path->push_back(name);
    Status s = EntryIn(dirfd, name, path);
    path->pop_back();
    return s;
  }

  Status EntryIn(int dirfd, const std::string& name, std::vector<std::string>* path) {
    const std::string what = Display(*path);
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno("stat '" + what + "'");
    }
    if (S_ISSOCK(st.st_mode)) {
      Warn(options, "skipping socket '" + what + "' (sockets cannot be stored in an image)");
      return Status::OK();
    }
    // Hard links by (dev, ino). Not for whiteouts: overlayfs links its
    // whiteouts to one shared inode, which is no hard link of the image.
    const bool linked = !S_ISDIR(st.st_mode) && st.st_nlink > 1 &&
                        !(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
    if (linked) {
      auto it = links.find({st.st_dev, st.st_ino});
      if (it != links.end()) return b->Link(*path, it->second, what);
    }
    NodeRecord r;
    uint64_t ino = 0;
    if (S_ISREG(st.st_mode)) {
      // Non-blocking: a FIFO put in the file's place since the lstat must
      // not block the import in open(2) (Same refuses it next).
      constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
      int fd = openat(dirfd, name.c_str(), kFlags | O_NOATIME);
      if (fd < 0 && errno == EPERM) fd = openat(dirfd, name.c_str(), kFlags);
      if (fd < 0) return Status::FromErrno("open '" + what + "'");
      Status s = Same(fd, st, what);
      const int fl = s.ok() ? fcntl(fd, F_GETFL) : 0;
      if (s.ok() && (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0))
        s = Status::FromErrno("'" + what + "'");
      struct stat now = st;
      if (s.ok() && fstat(fd, &now) != 0) s = Status::FromErrno("fstat '" + what + "'");
      Attrs(st, what, &r);
      r.size = static_cast<uint64_t>(now.st_size);
      if (s.ok()) s = Xattrs(fd, false, what, &r);
      FileRecord content;
      bool taken = false;
      if (s.ok() && dopt.drop_overtier_xattrs) s = UpperData(fd, r, what, &content, &taken);
      if (s.ok() && !dopt.drop_overtier_xattrs) s = NotReleased(fd, r, what);
      if (s.ok() && r.size > 0 && !taken) {
        s = w->WriteFd(fd, r.size, &content);
        if (!s.ok()) s = Status::Errno(s.err(), "'" + what + "': " + s.message());
      }
      close(fd);
      OVT_RETURN_IF_ERROR(s);
      OVT_RETURN_IF_ERROR(b->Put(*path, r, r.size > 0 ? &content : nullptr, what, &ino));
      OVT_RETURN_IF_ERROR(b->MaybeCommitContent());
    } else if (S_ISDIR(st.st_mode)) {
      int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Status::FromErrno("open directory '" + what + "'");
      Status s = Same(fd, st, what);
      Attrs(st, what, &r);
      if (s.ok()) s = Xattrs(fd, false, what, &r);
      if (s.ok()) s = b->Put(*path, r, nullptr, what, &ino);
      if (s.ok()) s = Dir(fd, path);
      close(fd);
      return s;
    } else {
      int fd = openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Status::FromErrno("open '" + what + "'");
      Status s = Same(fd, st, what);
      Attrs(st, what, &r);
      if (s.ok()) s = Xattrs(fd, true, what, &r);
      if (s.ok() && S_ISLNK(st.st_mode)) {
        char buf[8192];
        ssize_t n = readlinkat(fd, "", buf, sizeof(buf));
        if (n < 0) {
          s = Status::FromErrno("readlink '" + what + "'");
        } else if (n == 0 || static_cast<size_t>(n) >= 4096) {
          s = Status::InvalidArgument("symlink '" + what + "': target of " + std::to_string(n) +
                                      " bytes (1..4095 allowed)");
        } else {
          r.symlink_target.assign(buf, n);
        }
      }
      close(fd);
      OVT_RETURN_IF_ERROR(s);
      OVT_RETURN_IF_ERROR(b->Put(*path, r, nullptr, what, &ino));
    }
    if (linked) links[{st.st_dev, st.st_ino}] = ino;
    Progress();
    return Status::OK();
  }

  Status Dir(int dirfd, std::vector<std::string>* path) {
    std::vector<std::string> names;
    {
      int fd = dup(dirfd);
      if (fd < 0) return Status::FromErrno("dup");
      DIR* d = fdopendir(fd);
      if (d == nullptr) {
        close(fd);
        return Status::FromErrno("opendir '" + Display(*path) + "'");
      }
      rewinddir(d);
      errno = 0;
      while (struct dirent* de = readdir(d)) {
        if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
        names.emplace_back(de->d_name);
        errno = 0;
      }
      int err = errno;
      closedir(d);
      if (err != 0) return Status::Errno(err, "readdir '" + Display(*path) + "'");
    }
    // Name order: the same tree always gets the same inode numbers.
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) OVT_RETURN_IF_ERROR(Entry(dirfd, n, path));
    return Status::OK();
  }
};

}  // namespace

Status ImportDirectory(ImageBuilder* b, ContentWriter* w, const std::string& path,
                       const DirectoryImportOptions& dopt, const ImportOptions& options,
                       ImportCounters* counters) {
  DirWalker walker{b, w, dopt, options, counters, path, {}, {}};
  while (walker.root.size() > 1 && walker.root.back() == '/') walker.root.pop_back();
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open directory '" + path + "'");
  struct stat st;
  Status s;
  if (fstat(fd, &st) != 0) s = Status::FromErrno("fstat '" + path + "'");
  NodeRecord r;
  if (s.ok()) {
    walker.Attrs(st, path, &r);
    s = walker.Xattrs(fd, false, path, &r);
  }
  if (s.ok()) s = b->SetRoot(r);
  std::vector<std::string> components;
  if (s.ok()) s = walker.Dir(fd, &components);
  close(fd);
  if (s.ok()) s = walker.MetacopyRefusal();
  return s;
}

// ---------------------------------------------------------------------------
// Tar layers
// ---------------------------------------------------------------------------

namespace {

Status TarAttrs(const TarEntry& e, const std::string& what, NodeRecord* r) {
  *r = NodeRecord();
  r->mode = e.mode;
  if (e.uid < 0 || e.uid > UINT32_MAX || e.gid < 0 || e.gid > UINT32_MAX) {
    return Status::InvalidArgument(what + ": owner " + std::to_string(e.uid) + ":" +
                                   std::to_string(e.gid) + " out of range");
  }
  r->uid = static_cast<uint32_t>(e.uid);
  r->gid = static_cast<uint32_t>(e.gid);
  r->rdev = e.rdev;
  r->mtime_ns = e.mtime_ns;
  r->atime_ns = e.has_atime ? e.atime_ns : e.mtime_ns;
  r->ctime_ns = e.has_ctime ? e.ctime_ns : e.mtime_ns;
  for (const auto& [k, v] : e.xattrs) {
    if (k.size() > 255 || v.size() > 65536) {
      return Status::InvalidArgument(what + ": xattr '" + k.substr(0, 64) +
                                     "' too large (name <= 255, value <= 65536 bytes)");
    }
  }
  r->xattrs = e.xattrs;
  return Status::OK();
}

// The value of the system.posix_acl_* xattr for one SCHILY.acl ACL: named
// entries by their numeric id when the archive gives one, else by name in
// this host's databases (as `tar -x` does).
Status TarAclValue(const std::vector<TarAclEntry>& acl, std::string* value) {
  std::vector<PosixAclEntry> entries;
  for (const TarAclEntry& a : acl) {
    PosixAclEntry p;
    p.tag = a.tag;
    p.perm = a.perm;
    if (a.tag == kAclUser || a.tag == kAclGroup) {
      if (a.id >= 0) {
        if (a.id >= kAclUndefinedId) {
          return Status::InvalidArgument("id " + std::to_string(a.id) + " out of range");
        }
        p.id = static_cast<uint32_t>(a.id);
      } else {
        OVT_RETURN_IF_ERROR(ResolveAclName(a.tag, a.name, &p.id));
      }
    }
    entries.push_back(p);
  }
  return EncodePosixAcl(std::move(entries), value);
}

// SCHILY.acl.access / SCHILY.acl.default become the system.posix_acl_access
// / system.posix_acl_default xattrs (docs/FORMAT.md, tar import rules).
// An ACL that cannot be kept is skipped with a warning, as `tar -x` does.
void TarAcls(const TarEntry& e, const std::string& what, const ImportOptions& options,
             NodeRecord* r) {
  if (e.has_nfs4_acl) {
    Warn(options, what +
                      ": skipping its NFSv4 ACL (SCHILY.acl.ace): Linux keeps POSIX.1e "
                      "ACLs only");
  }
  const struct {
    const std::vector<TarAclEntry>& acl;
    std::string_view xattr;
    const char* key;
  } kinds[] = {{e.acl_access, kAclAccessXattr, "SCHILY.acl.access"},
               {e.acl_default, kAclDefaultXattr, "SCHILY.acl.default"}};
  for (const auto& k : kinds) {
    if (k.acl.empty()) continue;
    // The entry also carries the ACL as the xattr (GNU tar --acls --xattrs
    // writes both, from the same file): the xattr, numeric and exactly as
    // the kernel gave it, is kept, as owners are taken by number.
    if (r->xattrs.count(std::string(k.xattr)) > 0) continue;
    std::string why;
    if (S_ISLNK(e.mode)) {
      why = "a symlink has no ACLs";
    } else if (k.xattr == kAclDefaultXattr && !S_ISDIR(e.mode)) {
      why = "only a directory has a default ACL";
    } else {
      std::string value;
      Status s = TarAclValue(k.acl, &value);
      if (s.ok()) {
        r->xattrs[std::string(k.xattr)] = std::move(value);
        continue;
      }
      why = s.message();
    }
    Warn(options, what + ": skipping its " + k.key + " (" + why + ")");
  }
}

}  // namespace

Status ImportTarLayer(ImageBuilder* b, ContentWriter* w, TarReader* tar,
                      const ImportOptions& options, ImportCounters* counters) {
  uint64_t input_base = counters->input_bytes;
  TarEntry e;
  std::vector<std::string> path, target;
  for (;;) {
    bool eof = false;
    OVT_RETURN_IF_ERROR(tar->Next(&e, &eof));
    if (eof) break;
    const std::string what = "tar '" + tar->what() + "', entry '" + e.path + "'";
    Status s = NormalizeTarPath(e.path, &path);
    if (!s.ok()) return Status::Errno(s.err(), "tar '" + tar->what() + "': " + s.message());
    NodeRecord r;
    OVT_RETURN_IF_ERROR(TarAttrs(e, what, &r));
    if (e.times_clamped) Warn(options, what + kClampedTimes);
    if (e.hardlink.empty()) TarAcls(e, what, options, &r);
    const uint32_t type = e.mode & S_IFMT;
    uint64_t ino = 0;

    if (!path.empty() && path.back().starts_with(kOciWhiteoutPrefix)) {
      std::string base = path.back();
      path.pop_back();
      if (base == kOciOpaqueMarker) {
        OVT_RETURN_IF_ERROR(b->MarkOpaque(path, e.mtime_ns, what));
      } else if (base.starts_with(".wh..wh.")) {
        return Status::InvalidArgument(what + ": unsupported whiteout meta-entry");
      } else {
        std::string hidden = base.substr(kOciWhiteoutPrefix.size());
        if (hidden.empty() || hidden == "." || hidden == "..") {
          return Status::InvalidArgument(what + ": whiteout of an invalid name");
        }
        path.push_back(hidden);
        OVT_RETURN_IF_ERROR(b->Whiteout(path, r, what));
      }
    } else if (!e.hardlink.empty()) {
      s = NormalizeTarPath(e.hardlink, &target);
      if (!s.ok()) return Status::Errno(s.err(), what + ": hard link target: " + s.message());
      uint64_t t = b->Lookup(target);
      if (t == 0) {
        return Status::NotFound(what + ": hard link to '" + e.hardlink +
                                "', which is not in the archive before it");
      }
      if (path.empty()) return Status::InvalidArgument(what + ": hard link as the root");
      OVT_RETURN_IF_ERROR(b->Link(path, t, what));
    } else if (path.empty()) {
      if (type != S_IFDIR) {
        return Status::InvalidArgument(what + ": the root entry is " + TypeName(e.mode) +
                                       ", not a directory");
      }
      OVT_RETURN_IF_ERROR(b->SetRoot(r));
    } else if (type == S_IFREG) {
      if (e.size < 0) return Status::InvalidArgument(what + ": negative size");
      r.size = static_cast<uint64_t>(e.size);
      FileRecord content;
      if (r.size > 0) {
        w->BeginFile();
        s = tar->ReadData([&](uint64_t off, std::string_view d) -> Status {
          if (off > r.size || d.size() > r.size - off) {
            return Status::Corruption(what + ": data past the declared size");
          }
          return w->Write(off, d);
        });
        if (s.ok()) s = w->EndFile(r.size, &content);
        if (!s.ok())
          return Status::Errno(
              s.err(), s.message().starts_with("tar '") ? s.message() : what + ": " + s.message());
      }
      OVT_RETURN_IF_ERROR(b->Put(path, r, r.size > 0 ? &content : nullptr, what, &ino));
      OVT_RETURN_IF_ERROR(b->MaybeCommitContent());
    } else if (type == S_IFDIR || type == S_IFCHR || type == S_IFBLK || type == S_IFIFO) {
      OVT_RETURN_IF_ERROR(b->Put(path, r, nullptr, what, &ino));
    } else if (type == S_IFLNK) {
      if (e.symlink.empty() || e.symlink.size() >= 4096) {
        return Status::InvalidArgument(what + ": symlink target of " +
                                       std::to_string(e.symlink.size()) +
                                       " bytes (1..4095 allowed)");
      }
      r.symlink_target = e.symlink;
      OVT_RETURN_IF_ERROR(b->Put(path, r, nullptr, what, &ino));
    } else if (type == S_IFSOCK) {
      Warn(options, what + ": skipping a socket");
    } else {
      return Status::InvalidArgument(what + ": unsupported entry type (mode " +
                                     std::to_string(e.mode) + ")");
    }
    counters->input_bytes = input_base + tar->input_bytes();
    if (options.progress) options.progress(*counters);
  }
  counters->input_bytes = input_base + tar->input_bytes();
  return Status::OK();
}

// ---------------------------------------------------------------------------
// The whole import
// ---------------------------------------------------------------------------

Status DetectSource(const std::string& path, SourceKind* kind) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno("source '" + path + "'");
  if (S_ISDIR(st.st_mode)) {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open directory '" + path + "'");
    // An `oci-layout` file is what marks an OCI image layout (the spec's
    // own test). One whose index.json is missing or not a file is a broken
    // layout, not a tree to import as it stands: the image would hold the
    // layout's blobs as files, and the user find out at mount time.
    struct stat a, b;
    const bool marked = fstatat(fd, "oci-layout", &a, AT_SYMLINK_NOFOLLOW) == 0;
    const int index_err = fstatat(fd, "index.json", &b, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
    close(fd);
    if (!marked) {
      *kind = SourceKind::kDirectory;
      return Status::OK();
    }
    std::string broken;
    if (!S_ISREG(a.st_mode)) {
      broken = "its oci-layout is not a regular file";
    } else if (index_err == ENOENT) {
      broken = "it has no index.json";
    } else if (index_err != 0) {
      errno = index_err;
      return Status::FromErrno("'" + path + "/index.json'");
    } else if (!S_ISREG(b.st_mode)) {
      broken = "its index.json is not a regular file";
    }
    if (!broken.empty()) {
      return Status::Errno(EINVAL, "'" + path + "' is marked as an OCI image layout (oci-layout) " +
                                       "but " + broken + ": not imported");
    }
    *kind = SourceKind::kOciLayout;
    return Status::OK();
  }
  return ProbeArchive(path, kind);
}

Status ImportImage(Store* store, std::string_view name, const std::string& source,
                   const ImportOptions& options_in, ImportResult* result) {
  if (SpooledSource::Needed(source)) {  // a pipe, standard input
    std::unique_ptr<SpooledSource> spool;
    OVT_RETURN_IF_ERROR(SpooledSource::Spool(source, store->path(), &spool, [&](uint64_t n) {
      if (!options_in.progress) return;
      ImportCounters c;
      c.spooled_bytes = n;
      options_in.progress(c);
    }));
    return spool->Rename(ImportImage(store, name, spool->path(), options_in, result));
  }
  auto start = std::chrono::steady_clock::now();
  *result = ImportResult();
  ImportOptions options = options_in;
  SourceKind kind;
  OVT_RETURN_IF_ERROR(DetectSource(source, &kind));
  if (kind == SourceKind::kOciLayout || kind == SourceKind::kDockerSave) {
    OVT_RETURN_IF_ERROR(ImportOciImage(store, name, source, kind, options, result));
  } else {
    std::string n(name);
    OVT_RETURN_IF_ERROR(CheckNewNames(store, {n}, options.replace));
    uint64_t parent = 0;
    if (!options.parent.empty()) OVT_RETURN_IF_ERROR(ResolveParent(store, options.parent, &parent));
    ContentWriter w(store);
    DiscardUnlessKept discard(&w);
    ImageBuilder b(store, &w, &result->counters);
    OVT_RETURN_IF_ERROR(b.Begin());
    if (kind == SourceKind::kDirectory) {
      OVT_RETURN_IF_ERROR(
          ImportDirectory(&b, &w, source, DirectoryImportOptions(), options, &result->counters));
    } else {
      int fd = open(source.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Status::FromErrno("open '" + source + "'");
      std::unique_ptr<TarReader> tar;
      Status s = TarReader::OpenFd(fd, source, &tar);
      if (s.ok()) s = ImportTarLayer(&b, &w, tar.get(), options, &result->counters);
      tar.reset();
      close(fd);
      OVT_RETURN_IF_ERROR(s);
    }
    ImageRecord rec;
    OVT_RETURN_IF_ERROR(FinishLayer(&b, parent, &rec));
    OVT_RETURN_IF_ERROR(PublishImages(store, &w, {{n, rec}}, options.replace));
    discard.Keep();
    result->counters.bytes_stored = w.stats().bytes_stored;
    result->images.push_back(n);
    result->image_ids.push_back(rec.image_id);
  }
  result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Status::OK();
}

}  // namespace overtier
