// ImageView: one image of the store (one layer, not its parents) seen as a
// read-only tree, straight from the catalog and the vv containers.
//
// This is what a mount serves for a `lowerdir=image:NAME` entry (through the
// image file system, src/image_fuse.h), kept free of FUSE so that it can be
// tested, and reused by tools, on its own. Inode numbers are the image's
// own (image/image_format.h): the root is ImageRecord::root_inode, a hard
// link is one inode under several names.
//
// Nothing is cached here: the catalog is RocksDB (its block cache keeps the
// hot rows) and the kernel caches what the image file system hands out for
// as long as it likes, since an image never changes.
//
// Thread-safe: every method is const and only reads.
#ifndef OVERTIER_IMAGE_VIEW_H_
#define OVERTIER_IMAGE_VIEW_H_

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/catalog.h"
#include "store/catalog_records.h"
#include "store/content_reader.h"
#include "store/store.h"

namespace overtier {

// A regular file opened for reading: its node and content record, read
// once at open so that reads go straight to the containers.
struct ImageFile {
  uint64_t ino = 0;
  NodeRecord node;
  FileRecord content;  // empty when !node.has_content
  std::string what;    // "image 'NAME' inode N", for messages
};

class ImageView {
 public:
  // The image named `name`. NotFound (naming the image) if there is none.
  static Status Open(Store* store, ContentReader* reader, std::string_view name,
                     std::unique_ptr<ImageView>* out);
  // The image with id `image_id`; `label` names it in messages. A parent
  // layer may have no images row of its own any more (a replaced NAME@1
  // still under the NAME that stacks on it, image_format.h): its root is
  // then kImageRootInode and its parent unknown (0).
  static Status OpenById(Store* store, ContentReader* reader, uint64_t image_id,
                         std::string_view label, std::unique_ptr<ImageView>* out);
  // The image `name` and every image below it (parent_image_id), top-most
  // first: the layers a mount of `name` stacks. Corruption for a loop in
  // the chain or a chain deeper than kMaxChainDepth.
  static Status OpenChain(Store* store, ContentReader* reader, std::string_view name,
                          std::vector<std::unique_ptr<ImageView>>* out);
  static constexpr size_t kMaxChainDepth = 500;  // as overlayfs' lower layer limit

  const std::string& name() const { return name_; }
  uint64_t image_id() const { return image_id_; }
  uint64_t parent_image_id() const { return parent_image_id_; }
  uint64_t root() const { return root_; }

  // The node of inode `ino`. ENOENT for an inode the image does not have.
  Status GetNode(uint64_t ino, NodeRecord* out) const;
  // The entry `name` of directory `parent`: ENOENT if absent, ENOTDIR if
  // parent is not a directory, ENAMETOOLONG / EINVAL for a name no
  // directory can hold. A dirent naming a missing node is Corruption.
  Status Lookup(uint64_t parent, std::string_view name, uint64_t* ino, NodeRecord* out) const;
  // The entries of directory `ino` in name order, starting strictly after
  // `after` ("" from the start). fn returns false to stop.
  Status ReadDir(uint64_t ino, std::string_view after, const Catalog::DirentFn& fn) const;
  // EINVAL if `ino` is not a symlink.
  Status ReadLink(uint64_t ino, std::string* target) const;
  // ENODATA if the node has no such xattr.
  Status GetXattr(uint64_t ino, std::string_view name, std::string* value) const;
  // The xattr names, each followed by a NUL (the listxattr(2) format).
  Status ListXattr(uint64_t ino, std::string* names) const;

  // Loads what reading a regular file needs. EISDIR for a directory,
  // EINVAL for another non-regular node; Corruption when the node and its
  // content record disagree.
  Status OpenFile(uint64_t ino, ImageFile* out) const;
  // Up to n bytes at offset: *got = min(n, size - offset), 0 at the end.
  // Content is verified (ContentReader): damage gives EIO, never wrong data.
  Status Read(const ImageFile& file, uint64_t offset, size_t n, char* buf, size_t* got) const;

  // NodeToStat of `node` (inode `ino`), with st_blocks from where the
  // file's content is (ContentBlocks) for a regular file with content of
  // more than one chunk (a smaller one keeps st_blocks from its size): its
  // extents are in its `files` row, one catalog read (no container is
  // read). A missing files row leaves st_blocks from the size (stat still
  // answers; reading the file reports the damage); on another error *st is
  // filled all the same (st_blocks from the size).
  Status Stat(uint64_t ino, const NodeRecord& node, struct stat* st) const;

  // A path of `ino` from the image root ("/" for the root), found by
  // walking the tree: slow, for messages about a file only.
  Status FindPath(uint64_t ino, std::string* path) const;

  // "image 'NAME'" as messages name it.
  std::string Describe() const;

 private:
  ImageView() = default;

  Store* store_ = nullptr;
  Catalog* catalog_ = nullptr;
  ContentReader* reader_ = nullptr;
  std::string name_;
  uint64_t image_id_ = 0;
  uint64_t parent_image_id_ = 0;
  uint64_t root_ = 0;
};

// st_* from a node: every field the image keeps. st_ino and st_dev are the
// caller's (the image file system numbers inodes of several images).
// st_blocks counts the whole size (a node does not say where its holes
// are): ImageView::Stat subtracts them.
void NodeToStat(const NodeRecord& node, struct stat* st);

// The 512-byte blocks (st_blocks) of a file's content: the 512-byte
// sectors of the file that its extents (of the first copy: every copy
// holds the same bytes) touch. A hole (a gap between extents) counts
// nothing. Extents are whole chunks (store.conf chunk_size) but for a
// file's last one, so this is `du` of the original at chunk granularity:
// a 1 GiB sparse file with 4 KiB of data shows one chunk (256 KiB by
// default), a dense file its size rounded up to 512 as before.
uint64_t ContentBlocks(const FileRecord& content);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_VIEW_H_
