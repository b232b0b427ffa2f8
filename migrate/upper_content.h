// The whole content of an upper file whose bytes are not all in it: a file
// the migration tier released (or a lazy copy-up adopted), whose missing
// bytes are in its archive. For readers that work on the upper directory
// without a mount: `overtier image commit` of an upper layer, which would
// otherwise store the punched holes of a released file as its data (zeros).
//
// What is missing is what the mount would restore: the residency map of the
// file's migration row when the row says released, else (a row lost, or
// older than the release) the holes of a file that still carries its
// archive mark (archive_mark.h, as the mount rebuilds the row). The missing
// bytes are read from the archive through ContentReader (every chunk
// verified, another copy on damage); the file is not changed.
#ifndef OVERTIER_MIGRATE_UPPER_CONTENT_H_
#define OVERTIER_MIGRATE_UPPER_CONTENT_H_

#include <cstdint>
#include <string>

#include "overtier/status.h"
#include "store/content_writer.h"
#include "store/store.h"

namespace overtier {

// fd: the upper file, open for reading, of `size` bytes. When some of its
// bytes are only in an archive of `store`, writes the whole content through
// w (BeginFile ... EndFile into *out) and sets *handled; otherwise leaves w
// and *out alone and *handled false (the caller reads the file as it is).
// EIO naming the file (`what`) when missing bytes cannot be read: the file
// is lost, its archive is not in this store (released by a mount of another
// store), or every copy of a chunk is damaged.
Status WriteUpperContent(Store* store, int fd, uint64_t size, const std::string& what,
                         ContentWriter* w, FileRecord* out, bool* handled);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_UPPER_CONTENT_H_
