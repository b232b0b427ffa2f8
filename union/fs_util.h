// Small helpers over raw Linux file-system calls, shared by the union files.
#ifndef OVERTIER_UNION_FS_UTIL_H_
#define OVERTIER_UNION_FS_UTIL_H_

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "overtier/status.h"
#include "overtier/tier_xattrs.h"

namespace overtier {

// "/proc/self/fd/N": names exactly the object an fd refers to (a magic link,
// not a path that could be redirected). Used for the calls that have no
// fd-based form for O_PATH descriptors (xattrs, chmod, utimes, reopen).
class ProcPath {
 public:
  explicit ProcPath(int fd) { std::snprintf(buf_, sizeof(buf_), "/proc/self/fd/%d", fd); }
  const char* c_str() const { return buf_; }

 private:
  char buf_[32];
};

// Removes dirfd/name and, for a directory, everything below it (never
// following symlinks). ENOENT is success.
Status RemoveTreeAt(int dirfd, const char* name);
// Removes everything inside the directory dirfd, leaving it empty.
Status EmptyDirAt(int dirfd);

// Reads an xattr of the object behind fd into *value; false if absent (or
// the file system has no xattrs), errors other than that are returned.
Status GetXattrFd(int fd, const std::string& name, std::string* value, bool* present);

// The names of the xattrs of the object behind fd, each followed by a NUL
// (empty when it has none, or the file system has no xattrs). One
// listxattr when they fit in a small buffer, as they do on most objects.
Status ListXattrNamesFd(int fd, std::string* names);
// Whether a ListXattrNamesFd list holds `name`.
bool HasXattrName(std::string_view names, std::string_view name);

// Copies every xattr of src to dst (both any fds, O_PATH allowed), except
// those for which skip(name) is true. Symlinks included: through the
// fd's magic link the calls act on the symlink itself. ENOTSUP on either side is not an error
// for "security."/"system." names the destination cannot take. adjust,
// when given, may rewrite a value before it is set (an error fails the copy).
Status CopyXattrs(
    int src, int dst, const std::function<bool(std::string_view)>& skip,
    const std::function<Status(std::string_view name, std::string* value)>& adjust = nullptr);

// A unique temporary name for the work directory.
std::string TempName(const char* prefix);

// Whether a message about a bad layer object may go to the log now: once
// a second at most per message (`last` is the message's own), as a lookup
// or open that fails is asked again and again (the kernel's
// pr_warn_ratelimited).
bool LogNow(std::atomic<int64_t>* last);

// A directory's atime and mtime, taken before the union adds an entry the
// user did not make (a copy-up, a name linked from the hard-link index)
// and put back after it: to the user the directory did not change (the
// kernel overlayfs' ovl_set_timestamps of the parent). Best effort.
class DirTimes {
 public:
  explicit DirTimes(int dirfd);
  void Restore() const;

 private:
  int fd_;
  bool valid_;
  struct timespec ts_[2];
};

// A lower file that an overtier mount released while it was an upper file
// (an old upper layer now used as a lower one): it carries the archive mark
// and has holes where its data was. Its bytes are in that mount's store;
// read as they are they would be zeros, and a copy-up would make the zeros
// the user's. EIO (logged) for such a file, OK for any other. fd: the file,
// any mode; ino: its number in the union, for the log (the name is built
// only then: opens of lower files are a hot path).
Status CheckLowerData(int fd, uint64_t ino);

// Copies file data src -> dst (regular files), keeping holes; len bytes.
// start_writeback: the copy will be fsynced; start writing each piece
// back as soon as it is copied, so that the disk writes overlap the reads
// and the fsync finds little left to do.
Status CopyData(int src, int dst, off_t len, bool start_writeback = false);

}  // namespace overtier

#endif  // OVERTIER_UNION_FS_UTIL_H_
