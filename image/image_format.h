// How an image is laid out in the catalog: the conventions shared by what
// writes images (import, commit: image/import.h, image/commit.h), what reads
// them (the mount's view, export) and what reclaims them (gc). The bytes of
// each record are in docs/FORMAT.md ("Catalog"); this file says what the
// records *mean* for an image, and docs/FORMAT.md ("Images") repeats it.
//
// An image is ONE layer in the kernel overlayfs format, so a mounted image
// is exactly an overlayfs lower (or a committed upper):
//
//   images  NAME -> ImageRecord{image_id, root_inode = 1, parent_image_id,
//                               created_ns}
//   nodes   (image_id, ino) -> NodeRecord      one per inode, ino >= 1
//   dirents (image_id, parent ino, name) -> DirentRecord{child ino, d_type}
//   files   bfid -> FileRecord                 content of regular files
//
// Inodes: numbered per image, from 1; the root directory is always inode 1
// (kImageRootInode). Numbers are unique within the image but need not be
// dense (an import that replaced a duplicate tar entry leaves a gap). A
// hard-linked file is one node named by several dirents; its nlink is the
// number of those dirents. A directory's nlink is 2 + the number of its
// subdirectories (whiteouts are not directories). Every node except the
// root is named by at least one dirent; a directory by exactly one.
//
// Node fields:
//  - mode: st_mode (type and all 12 permission bits incl. setuid/sticky).
//  - size: regular file: its length (content size when has_content);
//    symlink: the length of the target; directory: kImageDirSize (a
//    fixed value, since tar archives carry no directory size and
//    import(export(X)) must reproduce X); others 0.
//  - rdev: the makedev() value of a character/block device, 0 otherwise.
//  - times: ns since the epoch, as the source gave them (a tar entry
//    without atime/ctime gets its mtime for them).
//  - xattrs: every xattr of the source, any namespace (trusted.*,
//    security.*, user.*, system.posix_acl_*), except that commit drops
//    trusted.overtier.* / user.overtier.* (private to an overtier upper).
//  - content: a regular file with size > 0 has has_content = true and
//    content = a bfid of its own (fresh random, never shared between
//    nodes: dedup happens below, at the chunk level), whose `files` row
//    is written in the same batch as the node. An empty file has no
//    content. Holes are extents absent from the FileRecord.
//
// Overlay markers, stored exactly as the kernel's overlayfs stores them in
// an upper directory:
//  - whiteout: a node S_IFCHR with rdev 0 (makedev(0, 0)), named like the
//    hidden entry. IsWhiteout(). Its permission bits, owner and times are
//    whatever the source had (an OCI `.wh.NAME` entry's).
//  - opaque directory: xattr "trusted.overlay.opaque" = "y" (kOpaqueXattr).
//  - renamed directory in a committed upper: xattr
//    "trusted.overlay.redirect" (kRedirectXattr), value as overlayfs
//    writes it (absolute path from the layer root, or a relative name).
// OCI sources are converted on import: `.wh.NAME` -> whiteout node NAME,
// `.wh..wh..opq` -> kOpaqueXattr on its directory; export converts back.
// Other `.wh..wh.`-prefixed names (aufs internals) are refused, and so is
// an image entry whose own name starts with `.wh.` on export.
//
// Layer chains: parent_image_id is the image directly below (0: none). A
// mount of image X stacks X over parent(X) over parent(parent(X))...; OCI
// import of an N-layer image creates NAME@1 .. NAME@(N-1) for the lower
// layers, bottom first, and NAME for the top (LayerImageName()).
//
// Write order (crash safety). A writer (import, commit) holds the store's
// write.lock for its whole run, so gc (also a writer) never runs
// concurrently with it. It:
//   1. allocates the image id (Catalog::AllocateIds(kImage), synced): every
//      later row is under an id no images row names yet;
//   2. writes nodes, dirents and files rows in batches, each preceded by
//      ContentWriter::Flush (containers fsynced before the catalog names
//      their chunks);
//   3. writes the images row LAST, in its own synced batch (with --replace,
//      that batch overwrites the old row: the name switches atomically).
// A writer killed at any point therefore leaves no visible image; what it
// wrote is garbage that gc reclaims:
//   - an image id is LIVE if an images row names it, or if it is the
//     parent_image_id (transitively) of a live image (a replaced NAME@1
//     stays alive while the NAME above it still stacks on it);
//   - nodes and dirents rows of an image id that is not live are garbage;
//   - a files row no node of a live image references (has_content) is
//     garbage; so are chunks no files row references, and container bytes
//     no live chunk / files row covers.
// A re-run of the same import after a kill just allocates a new id.
#ifndef OVERTIER_IMAGE_IMAGE_FORMAT_H_
#define OVERTIER_IMAGE_IMAGE_FORMAT_H_

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "store/catalog_records.h"

namespace overtier {

inline constexpr uint64_t kImageRootInode = 1;

// The size every directory node records.
inline constexpr uint64_t kImageDirSize = 4096;

// The overlay xattrs an image keeps (trusted namespace, as overlayfs
// without `userxattr`).
inline constexpr std::string_view kOpaqueXattr = "trusted.overlay.opaque";
inline constexpr std::string_view kOpaqueValue = "y";
inline constexpr std::string_view kRedirectXattr = "trusted.overlay.redirect";
// A metadata-only copy in an upper directory: its data is in a lower layer
// (never in an image: commit refuses such a file).
inline constexpr std::string_view kMetacopyXattr = "trusted.overlay.metacopy";

// OCI layer tar conventions.
inline constexpr std::string_view kOciWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOciOpaqueMarker = ".wh..wh..opq";

// Private xattrs of an overtier upper, dropped by commit.
inline constexpr std::string_view kOvertierTrustedPrefix = "trusted.overtier.";
inline constexpr std::string_view kOvertierUserPrefix = "user.overtier.";

inline bool IsWhiteout(const NodeRecord& n) { return S_ISCHR(n.mode) && n.rdev == 0; }

inline bool IsOpaqueDir(const NodeRecord& n) {
  if (!S_ISDIR(n.mode)) return false;
  auto it = n.xattrs.find(std::string(kOpaqueXattr));
  return it != n.xattrs.end() && it->second == kOpaqueValue;
}

// d_type for a mode, as stored in DirentRecord::type (DT_UNKNOWN for an
// invalid type, which the catalog refuses).
inline uint8_t DirentTypeOf(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFSOCK:
      return DT_SOCK;
  }
  return DT_UNKNOWN;
}

// The name of layer `index` (1 = bottom .. count = top) of a multi-layer
// import named `name`: "name@index" below the top, "name" for the top.
inline std::string LayerImageName(std::string_view name, size_t index, size_t count) {
  if (index == count) return std::string(name);
  return std::string(name) + "@" + std::to_string(index);
}

}  // namespace overtier

#endif  // OVERTIER_IMAGE_IMAGE_FORMAT_H_
