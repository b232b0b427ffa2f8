#include "image/view.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <utility>

#include "image/image_format.h"
#include "overtier/time_ns.h"

namespace overtier {

namespace {

std::string InodeWhat(const std::string& image, uint64_t ino) {
  return image + " inode " + std::to_string(ino);
}

}  // namespace

Status ImageView::Open(Store* store, ContentReader* reader, std::string_view name,
                       std::unique_ptr<ImageView>* out) {
  ImageRecord rec;
  Status s = store->catalog()->GetImage(name, &rec);
  if (s.err() == ENOENT) {
    return Status::NotFound("no image '" + std::string(name) + "' in store '" + store->path() +
                            "'");
  }
  if (!s.ok()) return Status::Errno(s.err(), "image '" + std::string(name) + "': " + s.message());
  auto v = std::unique_ptr<ImageView>(new ImageView());
  v->store_ = store;
  v->catalog_ = store->catalog();
  v->reader_ = reader;
  v->name_ = std::string(name);
  v->image_id_ = rec.image_id;
  v->parent_image_id_ = rec.parent_image_id;
  v->root_ = rec.root_inode;
  *out = std::move(v);
  return Status::OK();
}

Status ImageView::OpenById(Store* store, ContentReader* reader, uint64_t image_id,
                           std::string_view label, std::unique_ptr<ImageView>* out) {
  std::string name;
  ImageRecord rec;
  Status s = store->catalog()->FindImageById(image_id, &name, &rec);
  if (s.err() == ENOENT) {
    // Its images row was replaced while an image above still stacks on it.
    // Its own parent (if it had one) is recorded nowhere else, so a mount
    // would silently lose layers: refuse instead.
    return Status::Errno(ENOENT, std::string(label) + ": image id " + std::to_string(image_id) +
                                     " has no images row (replaced or removed while an image "
                                     "above still stacks on it)");
  }
  if (!s.ok()) return Status::Errno(s.err(), std::string(label) + ": " + s.message());
  auto v = std::unique_ptr<ImageView>(new ImageView());
  v->store_ = store;
  v->catalog_ = store->catalog();
  v->reader_ = reader;
  v->name_ = name;
  v->image_id_ = image_id;
  v->parent_image_id_ = rec.parent_image_id;
  v->root_ = rec.root_inode;
  *out = std::move(v);
  return Status::OK();
}

Status ImageView::OpenChain(Store* store, ContentReader* reader, std::string_view name,
                            std::vector<std::unique_ptr<ImageView>>* out) {
  std::vector<std::unique_ptr<ImageView>> chain;
  std::unique_ptr<ImageView> top;
  OVT_RETURN_IF_ERROR(Open(store, reader, name, &top));
  std::set<uint64_t> seen{top->image_id()};
  chain.push_back(std::move(top));
  while (chain.back()->parent_image_id() != 0) {
    const ImageView& below = *chain.back();
    uint64_t pid = below.parent_image_id();
    if (!seen.insert(pid).second) {
      return Status::Corruption("image '" + std::string(name) + "': its layer chain loops (" +
                                below.Describe() + " names image id " + std::to_string(pid) +
                                " as parent, which is already in the chain)");
    }
    if (chain.size() >= kMaxChainDepth) {
      return Status::Corruption("image '" + std::string(name) + "': more than " +
                                std::to_string(kMaxChainDepth) + " layers");
    }
    std::unique_ptr<ImageView> p;
    OVT_RETURN_IF_ERROR(OpenById(store, reader, pid,
                                 "image '" + std::string(name) + "', parent of " + below.Describe(),
                                 &p));
    chain.push_back(std::move(p));
  }
  *out = std::move(chain);
  return Status::OK();
}

std::string ImageView::Describe() const { return "image '" + name_ + "'"; }

Status ImageView::GetNode(uint64_t ino, NodeRecord* out) const {
  Status s = catalog_->GetNode(image_id_, ino, out);
  if (s.ok() || s.err() == ENOENT) return s;
  return Status::Errno(s.err(), Describe() + ": " + s.message());
}

Status ImageView::Lookup(uint64_t parent, std::string_view name, uint64_t* ino,
                         NodeRecord* out) const {
  if (name.size() > kMaxDirentNameLen) return Status::Errno(ENAMETOOLONG);
  if (!CheckDirentName(name).ok()) return Status::Errno(EINVAL);
  DirentRecord d;
  Status s = catalog_->GetDirent(image_id_, parent, name, &d);
  if (s.err() == ENOENT) {
    // Absent, or parent is not a directory: tell which (a lookup below a
    // regular file must be ENOTDIR).
    NodeRecord p;
    OVT_RETURN_IF_ERROR(GetNode(parent, &p));
    if (!S_ISDIR(p.mode)) return Status::Errno(ENOTDIR);
    return s;
  }
  if (!s.ok()) return Status::Errno(s.err(), Describe() + ": " + s.message());
  s = GetNode(d.child_inode, out);
  if (s.err() == ENOENT) {
    return Status::Corruption(Describe() + ": entry '" + std::string(name) + "' of inode " +
                              std::to_string(parent) + " names inode " +
                              std::to_string(d.child_inode) + ", which has no node");
  }
  OVT_RETURN_IF_ERROR(s);
  *ino = d.child_inode;
  return Status::OK();
}

Status ImageView::ReadDir(uint64_t ino, std::string_view after, const Catalog::DirentFn& fn) const {
  Status s = catalog_->ReadDir(image_id_, ino, after, fn);
  if (!s.ok()) return Status::Errno(s.err(), Describe() + ": " + s.message());
  return s;
}

Status ImageView::ReadLink(uint64_t ino, std::string* target) const {
  NodeRecord n;
  OVT_RETURN_IF_ERROR(GetNode(ino, &n));
  if (!S_ISLNK(n.mode)) return Status::Errno(EINVAL);
  *target = std::move(n.symlink_target);
  return Status::OK();
}

Status ImageView::GetXattr(uint64_t ino, std::string_view name, std::string* value) const {
  NodeRecord n;
  OVT_RETURN_IF_ERROR(GetNode(ino, &n));
  auto it = n.xattrs.find(std::string(name));
  if (it == n.xattrs.end()) return Status::Errno(ENODATA);
  *value = std::move(it->second);
  return Status::OK();
}

Status ImageView::ListXattr(uint64_t ino, std::string* names) const {
  NodeRecord n;
  OVT_RETURN_IF_ERROR(GetNode(ino, &n));
  names->clear();
  for (const auto& [k, v] : n.xattrs) {
    names->append(k);
    names->push_back('\0');
  }
  return Status::OK();
}

Status ImageView::OpenFile(uint64_t ino, ImageFile* out) const {
  out->ino = ino;
  out->what = InodeWhat(Describe(), ino);
  OVT_RETURN_IF_ERROR(GetNode(ino, &out->node));
  if (S_ISDIR(out->node.mode)) return Status::Errno(EISDIR);
  if (!S_ISREG(out->node.mode)) return Status::Errno(EINVAL);
  out->content = FileRecord();
  if (!out->node.has_content) {
    if (out->node.size != 0) {
      return Status::Corruption(out->what + ": a file of " + std::to_string(out->node.size) +
                                " bytes without content in the store");
    }
    return Status::OK();
  }
  Status s = catalog_->GetFile(out->node.content, &out->content);
  if (s.err() == ENOENT) {
    return Status::Corruption(out->what + ": its content (bfid " + out->node.content.ToHex() +
                              ") has no files row");
  }
  if (!s.ok()) return Status::Errno(s.err(), out->what + ": " + s.message());
  if (out->content.size != out->node.size) {
    return Status::Corruption(out->what + ": node size " + std::to_string(out->node.size) +
                              " but content size " + std::to_string(out->content.size));
  }
  return Status::OK();
}

Status ImageView::Read(const ImageFile& file, uint64_t offset, size_t n, char* buf,
                       size_t* got) const {
  *got = 0;
  if (!file.node.has_content || offset >= file.node.size) return Status::OK();
  return reader_->Read(file.node.content, file.content, offset, n, buf, got, file.what);
}

Status ImageView::FindPath(uint64_t ino, std::string* path) const {
  if (ino == root_) {
    *path = "/";
    return Status::OK();
  }
  std::vector<std::pair<uint64_t, std::string>> todo{{root_, ""}};
  // Each directory once: a damaged catalog may name one twice (a loop).
  std::set<uint64_t> seen{root_};
  while (!todo.empty()) {
    // Not a structured binding: the lambda below captures prefix (clang < 16).
    const uint64_t dir = todo.back().first;
    const std::string prefix = std::move(todo.back().second);
    todo.pop_back();
    bool found = false;
    OVT_RETURN_IF_ERROR(ReadDir(dir, "", [&](std::string_view name, const DirentRecord& d) {
      std::string p = prefix + "/" + std::string(name);
      if (d.child_inode == ino) {
        *path = std::move(p);
        found = true;
        return false;
      }
      if (d.type == DT_DIR && seen.insert(d.child_inode).second)
        todo.emplace_back(d.child_inode, std::move(p));
      return true;
    }));
    if (found) return Status::OK();
  }
  return Status::NotFound(InodeWhat(Describe(), ino) + " is not in the tree");
}

Status ImageView::Stat(uint64_t ino, const NodeRecord& node, struct stat* st) const {
  NodeToStat(node, st);
  if (!S_ISREG(node.mode) || !node.has_content) return Status::OK();
  // A file of at most one chunk has one extent covering its data or none:
  // its size says as much as the row would, without a catalog read per
  // stat (most files of a root file system; a cold walk stats them all).
  // Only an all-hole file that small shows its size.
  if (store_ != nullptr && node.size <= store_->config().chunk_size) return Status::OK();
  FileRecord content;
  Status s = catalog_->GetFile(node.content, &content);
  if (s.err() == ENOENT || (s.ok() && content.copies.empty())) return Status::OK();
  if (!s.ok()) return Status::Errno(s.err(), InodeWhat(Describe(), ino) + ": " + s.message());
  st->st_blocks = static_cast<blkcnt_t>(ContentBlocks(content));
  return Status::OK();
}

uint64_t ContentBlocks(const FileRecord& content) {
  if (content.copies.empty()) return (content.size + 511) / 512;
  uint64_t blocks = 0;
  uint64_t counted = 0;  // sectors [0, counted) are counted already
  for (const Extent& e : content.copies[0].extents) {
    uint64_t first = std::max(e.file_offset / 512, counted);
    uint64_t end = (e.file_offset + e.length + 511) / 512;
    if (end > first) blocks += end - first;
    counted = std::max(counted, end);
  }
  return blocks;
}

void NodeToStat(const NodeRecord& node, struct stat* st) {
  *st = {};
  st->st_mode = node.mode;
  st->st_nlink = node.nlink;
  st->st_uid = node.uid;
  st->st_gid = node.gid;
  st->st_rdev = node.rdev;
  st->st_size = static_cast<off_t>(node.size);
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>((node.size + 511) / 512);
  st->st_atim = NsToTimespec(node.atime_ns);
  st->st_mtim = NsToTimespec(node.mtime_ns);
  st->st_ctim = NsToTimespec(node.ctime_ns);
}

}  // namespace overtier
