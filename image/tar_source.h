// Reading tar archives with libarchive, for image import.
//
// A TarReader gives the entries of one tar archive (plain, gzip, zstd, xz,
// bzip2: libarchive detects the compression; only tar formats are
// accepted, not zip or cpio) as TarEntry values, with the pax extensions
// libarchive understands: ns times, xattrs (SCHILY.xattr.* and
// LIBARCHIVE.xattr.*), sparse files (GNU and pax sparse), long names,
// POSIX.1e ACLs (SCHILY.acl.access / SCHILY.acl.default).
//
// The input is a file descriptor, or another TarReader's current entry (a
// layer tar inside a `docker save` archive, read without extracting it).
//
// Everything here is written for hostile input: a truncated archive, a
// damaged header or a size the data does not back gives an error naming
// the archive (and the entry), never a crash or a short file passed off as
// complete.
#ifndef OVERTIER_IMAGE_TAR_SOURCE_H_
#define OVERTIER_IMAGE_TAR_SOURCE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"

struct archive;
struct archive_entry;

namespace overtier {

// One entry of a POSIX.1e ACL as the archive gives it.
struct TarAclEntry {
  uint16_t tag = 0;   // kAclUserObj... (image/posix_acl.h)
  uint16_t perm = 0;  // r 4, w 2, x 1
  // user:X: / group:X: only. The numeric id when the archive has one
  // (bsdtar writes `user:NAME:rwx:ID`, GNU tar a bare number for a user
  // without a name), else -1 and only `name` (GNU tar writes names).
  int64_t id = -1;
  std::string name;
};

struct TarEntry {
  std::string path;      // as stored (not normalized)
  std::string hardlink;  // non-empty: a hard link to this (stored) path
  std::string symlink;   // symlink target
  uint32_t mode = 0;     // type and permission bits
  int64_t uid = 0;
  int64_t gid = 0;
  uint64_t rdev = 0;
  int64_t size = 0;  // declared size of the content
  int64_t mtime_ns = 0;
  bool has_atime = false, has_ctime = false;
  int64_t atime_ns = 0;
  int64_t ctime_ns = 0;
  // A time of the header lay outside what an image holds (1677 to 2262)
  // and was clamped.
  bool times_clamped = false;
  std::map<std::string, std::string> xattrs;
  // SCHILY.acl.access, complete (user::, group::, other:: from the mode
  // bits, mask:: when it has one), or empty when it says no more than the
  // mode (only user::, group::, other::: the kernel keeps no xattr then).
  std::vector<TarAclEntry> acl_access;
  std::vector<TarAclEntry> acl_default;  // SCHILY.acl.default, as written
  bool has_nfs4_acl = false;             // SCHILY.acl.ace (not kept)
};

// Makes libarchive treat names as UTF-8 on this thread while it lives
// (uselocale: the process locale is left alone). In the "C" locale
// libarchive would fail to convert every non-ASCII name of a pax archive;
// with UTF-8 it passes names through, and non-UTF-8 bytes go to and come
// from pax as hdrcharset=BINARY.
class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale();
  ~ScopedUtf8Locale();
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;

 private:
  void* old_ = nullptr;  // locale_t
};

class TarReader {
 public:
  // Reads the archive from fd (not taken over; the caller closes it after
  // the reader). `what` names it in messages (a path).
  static Status OpenFd(int fd, std::string what, std::unique_ptr<TarReader>* out);
  // Reads the archive held in `outer`'s current entry.
  static Status OpenEntry(TarReader* outer, std::string what, std::unique_ptr<TarReader>* out);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next entry; *eof = true at the end of the archive.
  Status Next(TarEntry* entry, bool* eof);
  // The data of the current entry, in increasing offsets (holes of a sparse
  // entry are skipped): fn(offset, bytes). Fails, naming the entry, when the
  // archive ends before the entry's declared data does.
  Status ReadData(const std::function<Status(uint64_t offset, std::string_view data)>& fn);
  // Reads the whole current entry into *out (small metadata files only:
  // refuses more than `limit` bytes).
  Status ReadAll(std::string* out, size_t limit);

  // Bytes consumed from the underlying input so far (compressed bytes),
  // for progress.
  uint64_t input_bytes() const;
  const std::string& what() const { return what_; }

 private:
  TarReader() = default;
  Status Start(std::string what);
  Status Error(std::string_view doing) const;
  static long ReadCallback(struct archive*, void* data, const void** buf);

  struct archive* a_ = nullptr;
  std::string what_;
  std::string entry_path_;  // of the current entry, for messages
  bool data_consumed_ = false;
  TarReader* outer_ = nullptr;  // OpenEntry
  std::string outer_buf_;
  uint64_t outer_pos_ = 0;
};

}  // namespace overtier

#endif  // OVERTIER_IMAGE_TAR_SOURCE_H_
