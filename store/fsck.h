// fsck: checks a whole store and names every damaged file.
//
// What it checks, in order:
//   - images: each root node exists and is a directory; the parent chain
//     reaches existing images (named, or kept alive as a parent) without a
//     cycle;
//   - containers: every volumes row's set exists and holds the container;
//     its header reads; a sealed one still ends with its trailer and footer
//     (a truncated container loses them) and has the size the row says; an
//     unsealed one is scanned record by record; one shorter than its row
//     is damaged, but only the extents past its end are (the records
//     before the cut are still checked and read like any other);
//   - files rows: every extent lies in a container that has a volumes row
//     and a record of exactly that place and length; unless `quick`, the
//     bytes of every extent (each distinct location once, however many
//     files share it) are read and verified (ContentReader::VerifyAll);
//   - trees of every live image, walked from the root: every dirent names an
//     existing node of a matching type, every node is reachable, a
//     directory has one name, nlink matches (non-directories: the number of
//     dirents naming them; directories: 2 + subdirectories), every node with
//     content has a files row;
//   - chunks rows point into containers that exist.
// Damaged content is reported per file row, listing every image file that
// uses it as "IMAGE:/path" (an image kept only as another's parent is
// "#ID:/path"). Garbage that gc reclaims (rows nothing uses, containers no
// row names, the jobs row of a killed gc) is reported as a notice, which is
// not damage.
//
// fsck only reads: it works on a read-only Store while mounts run.
#ifndef OVERTIER_STORE_FSCK_H_
#define OVERTIER_STORE_FSCK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "overtier/status.h"
#include "store/store.h"

namespace overtier {

struct FsckOptions {
  // Skip reading content (catalog and container structure only).
  bool quick = false;
};

enum class FsckSeverity {
  kError,   // damage
  kNotice,  // garbage gc reclaims, or an interrupted job
};

struct FsckIssue {
  FsckSeverity severity = FsckSeverity::kError;
  // A short class: "image", "tree", "container", "content", "file-row",
  // "chunk-row", "garbage", "job".
  std::string kind;
  std::string message;             // names what is wrong and where
  std::vector<std::string> files;  // image files affected, "IMAGE:/path"
};

struct FsckReport {
  std::vector<FsckIssue> issues;
  uint64_t images = 0;  // live image ids walked
  uint64_t nodes = 0;
  uint64_t files = 0;             // files rows
  uint64_t containers = 0;        // volumes rows
  uint64_t extents_verified = 0;  // distinct locations read back
  uint64_t bytes_verified = 0;

  size_t errors() const;
  size_t notices() const;
  // Every image file named by an error, sorted, once each.
  std::vector<std::string> damaged_files() const;
};

// OK when the check could run (whatever it found: see report->errors());
// an error only when fsck itself could not proceed (catalog unreadable
// mid-way).
Status RunFsck(Store* store, const FsckOptions& options, FsckReport* report);

}  // namespace overtier

#endif  // OVERTIER_STORE_FSCK_H_
