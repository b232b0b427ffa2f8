// Image export: one image (one layer) as a pax tar archive, the inverse of
// importing a tar (image/import.h), so that import(export(X)) reproduces X:
// modes, owners, ns times (mtime, atime, ctime in pax headers), xattrs
// (LIBARCHIVE.xattr / SCHILY.xattr), symlinks, devices, fifos, hard links
// (the first name carries the data, later names are tar hard links),
// sparse files (pax sparse map: holes are not stored).
//
// Overlay markers become their OCI forms: a whiteout node NAME is written
// as an empty regular file `.wh.NAME` (keeping the node's mode bits, owner,
// times and xattrs), an opaque directory loses its trusted.overlay.opaque
// xattr and gets a `.wh..wh..opq` entry. An image entry whose own name
// starts with `.wh.` cannot be told apart from those and is refused.
//
// The root directory is the entry "./". Entries come in directory order
// (parents before children, names in byte order), so the archive of an
// image is deterministic. File content is read through ContentReader, so
// every byte is verified against its checksum on the way out.
#ifndef OVERTIER_IMAGE_EXPORT_H_
#define OVERTIER_IMAGE_EXPORT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "overtier/status.h"
#include "store/store.h"

namespace overtier {

struct ExportStats {
  uint64_t entries = 0;  // tar entries written
  uint64_t files = 0;    // regular files with content
  uint64_t bytes = 0;    // bytes of file data written (holes excluded)
};

struct ExportOptions {
  std::function<void(const ExportStats&)> progress;
};

// Writes image `name` to fd as a tar archive (fd is not closed).
Status ExportImageToFd(Store* store, std::string_view name, int fd, const ExportOptions& options,
                       ExportStats* stats);
// Writes it to the file `path` ("-": standard output). A regular file is
// written under a temporary name and renamed over it (through a symlink:
// the link stays): it holds the old archive or the whole new one, and a
// failure leaves nothing half-written. A pipe or a device (/dev/null, a
// tape) is written into, as tar -f does.
Status ExportImage(Store* store, std::string_view name, const std::string& path,
                   const ExportOptions& options, ExportStats* stats);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_EXPORT_H_
