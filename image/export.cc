#include "image/export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "image/archive_api.h"
#include "image/image_format.h"
#include "image/tar_source.h"
#include "overtier/time_ns.h"
#include "store/content_reader.h"

namespace overtier {

namespace {

constexpr size_t kIoSize = size_t{1} << 20;

struct EntryDeleter {
  void operator()(struct archive_entry* e) const { Archive().archive_entry_free(e); }
};
using EntryPtr = std::unique_ptr<struct archive_entry, EntryDeleter>;

class Exporter {
 public:
  Exporter(Store* store, std::string image, uint64_t image_id, struct archive* a,
           const ExportOptions& options, ExportStats* stats)
      : store_(store),
        image_(std::move(image)),
        id_(image_id),
        a_(a),
        options_(options),
        stats_(stats),
        reader_(store) {}

  Status Tree(uint64_t dir, const std::string& prefix) {
    // Collect first: the scan callback cannot fail, and we recurse.
    std::vector<std::pair<std::string, DirentRecord>> entries;
    OVT_RETURN_IF_ERROR(
        store_->catalog()->ReadDir(id_, dir, "", [&](std::string_view name, const DirentRecord& d) {
          entries.emplace_back(std::string(name), d);
          return true;
        }));
    for (const auto& [name, d] : entries) {
      std::string path = prefix + name;
      if (name.starts_with(kOciWhiteoutPrefix)) {
        return Status::InvalidArgument("image '" + image_ + "': '/" + path +
                                       "' starts with .wh., which a tar layer reserves for "
                                       "whiteouts; it cannot be exported");
      }
      NodeRecord n;
      OVT_RETURN_IF_ERROR(GetNode(d.child_inode, &n));
      if (IsWhiteout(n)) {
        NodeRecord wh = n;
        wh.mode = S_IFREG | (n.mode & 07777);
        OVT_RETURN_IF_ERROR(Write(prefix + std::string(kOciWhiteoutPrefix) + name, wh, 0, ""));
        continue;
      }
      auto seen = links_.find(d.child_inode);
      if (seen != links_.end()) {
        OVT_RETURN_IF_ERROR(Write(path, n, 0, seen->second));
        continue;
      }
      if (!S_ISDIR(n.mode) && n.nlink > 1) links_[d.child_inode] = path;
      // A directory has one name. A damaged catalog whose dirent names a
      // directory already walked (an ancestor: a loop) is refused, not
      // recursed into until the stack runs out.
      if (S_ISDIR(n.mode) && !dirs_.insert(d.child_inode).second) {
        return Status::Corruption("image '" + image_ + "': '/" + path + "' names directory inode " +
                                  std::to_string(d.child_inode) +
                                  ", already in the tree (a loop; overtier fsck tells more)");
      }
      OVT_RETURN_IF_ERROR(Write(path, n, d.child_inode, ""));
      if (S_ISDIR(n.mode)) OVT_RETURN_IF_ERROR(Tree(d.child_inode, path + "/"));
    }
    return Status::OK();
  }

  Status Root(uint64_t root) {
    NodeRecord n;
    OVT_RETURN_IF_ERROR(GetNode(root, &n));
    OVT_RETURN_IF_ERROR(Write(".", n, root, ""));
    dirs_.insert(root);
    return Tree(root, "");
  }

 private:
  Status GetNode(uint64_t ino, NodeRecord* n) {
    Status s = store_->catalog()->GetNode(id_, ino, n);
    if (!s.ok()) {
      return Status::Errno(s.err(), "image '" + image_ + "': inode " + std::to_string(ino) +
                                        (s.message().empty() ? "" : ": " + s.message()));
    }
    return Status::OK();
  }

  Status ArchiveError(const std::string& path, std::string_view doing) {
    const char* m = Archive().archive_error_string(a_);
    int err = Archive().archive_errno(a_);
    return Status::Errno(err > 0 ? err : EIO, "image '" + image_ + "': '" + path +
                                                  "': " + std::string(doing) +
                                                  (m != nullptr ? ": " + std::string(m) : ""));
  }

  // One entry. `ino` != 0: write the content of a regular file. `hardlink`
  // non-empty: a hard link to that earlier path.
  Status Write(const std::string& path, const NodeRecord& n, uint64_t ino,
               const std::string& hardlink) {
    EntryPtr e(Archive().archive_entry_new());
    std::string name = path == "." ? "./" : path;
    Archive().archive_entry_set_pathname(e.get(), name.c_str());
    Archive().archive_entry_set_mode(e.get(), n.mode);
    Archive().archive_entry_set_uid(e.get(), n.uid);
    Archive().archive_entry_set_gid(e.get(), n.gid);
    const struct timespec mtime = NsToTimespec(n.mtime_ns), atime = NsToTimespec(n.atime_ns),
                          ctime = NsToTimespec(n.ctime_ns);
    Archive().archive_entry_set_mtime(e.get(), mtime.tv_sec, mtime.tv_nsec);
    Archive().archive_entry_set_atime(e.get(), atime.tv_sec, atime.tv_nsec);
    Archive().archive_entry_set_ctime(e.get(), ctime.tv_sec, ctime.tv_nsec);
    bool opaque = IsOpaqueDir(n);
    for (const auto& [k, v] : n.xattrs) {
      if (opaque && k == kOpaqueXattr) continue;  // becomes .wh..wh..opq
      Archive().archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    }
    FileRecord content;
    std::vector<std::pair<uint64_t, uint64_t>> regions;  // data: offset, length
    bool sparse = false;
    if (!hardlink.empty()) {
      Archive().archive_entry_set_hardlink(e.get(), hardlink.c_str());
      Archive().archive_entry_set_size(e.get(), 0);
    } else if (S_ISLNK(n.mode)) {
      Archive().archive_entry_set_symlink(e.get(), n.symlink_target.c_str());
      Archive().archive_entry_set_size(e.get(), 0);
    } else if (S_ISCHR(n.mode) || S_ISBLK(n.mode)) {
      Archive().archive_entry_set_rdev(e.get(), static_cast<dev_t>(n.rdev));
      Archive().archive_entry_set_size(e.get(), 0);
    } else if (S_ISREG(n.mode)) {
      Archive().archive_entry_set_size(e.get(), static_cast<la_int64_t>(n.size));
      if (ino != 0 && n.has_content && n.size > 0) {
        Status s = store_->catalog()->GetFile(n.content, &content);
        if (!s.ok()) {
          return Status::Errno(s.err(), "image '" + image_ + "': '" + path + "': content " +
                                            n.content.ToHex() + ": " + s.ToString());
        }
        if (content.size != n.size) {
          return Status::Corruption("image '" + image_ + "': '" + path + "': node size " +
                                    std::to_string(n.size) + " but content size " +
                                    std::to_string(content.size));
        }
        if (!content.copies.empty()) {
          for (const Extent& x : content.copies[0].extents) {
            if (!regions.empty() && regions.back().first + regions.back().second == x.file_offset) {
              regions.back().second += x.length;
            } else {
              regions.emplace_back(x.file_offset, x.length);
            }
          }
        }
        uint64_t covered = 0;
        for (const auto& r : regions) covered += r.second;
        sparse = covered < n.size;
        if (sparse) {
          for (const auto& [off, len] : regions) {
            Archive().archive_entry_sparse_add_entry(e.get(), static_cast<la_int64_t>(off),
                                                     static_cast<la_int64_t>(len));
          }
          if (regions.empty() || regions.back().first + regions.back().second < n.size) {
            // A zero-length block at the end records the size (GNU sparse
            // convention) when the file ends in a hole.
            Archive().archive_entry_sparse_add_entry(e.get(), static_cast<la_int64_t>(n.size), 0);
          }
        }
      } else if (n.size > 0) {
        // A file whose content is not in the store: all zeros, all hole.
        Archive().archive_entry_sparse_add_entry(e.get(), static_cast<la_int64_t>(n.size), 0);
        sparse = true;
      }
    } else {
      Archive().archive_entry_set_size(e.get(), 0);
    }
    if (Archive().archive_write_header(a_, e.get()) < ARCHIVE_WARN) {
      return ArchiveError(path, "writing the header");
    }
    stats_->entries++;
    if (S_ISREG(n.mode) && hardlink.empty() && n.size > 0) {
      OVT_RETURN_IF_ERROR(Data(path, n, content, regions, sparse));
      stats_->files++;
    }
    if (Archive().archive_write_finish_entry(a_) < ARCHIVE_WARN) {
      return ArchiveError(path, "finishing the entry");
    }
    if (opaque) {
      NodeRecord marker;
      marker.mode = S_IFREG;
      marker.atime_ns = marker.mtime_ns = marker.ctime_ns = n.mtime_ns;
      std::string dir = path == "." ? "" : path + "/";
      OVT_RETURN_IF_ERROR(Write(dir + std::string(kOciOpaqueMarker), marker, 0, ""));
    }
    if (options_.progress) options_.progress(*stats_);
    return Status::OK();
  }

  Status Put(const std::string& path, const char* p, size_t n) {
    // With a sparse map, libarchive consumes the whole logical stream and
    // drops the hole parts itself.
    la_ssize_t w = Archive().archive_write_data(a_, p, n);
    if (w < 0) return ArchiveError(path, "writing data");
    return Status::OK();
  }

  Status Zeros(const std::string& path, uint64_t n) {
    if (zeros_.empty()) zeros_.assign(kIoSize, '\0');
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, zeros_.size()));
      OVT_RETURN_IF_ERROR(Put(path, zeros_.data(), k));
      n -= k;
    }
    return Status::OK();
  }

  Status Data(const std::string& path, const NodeRecord& n, const FileRecord& content,
              const std::vector<std::pair<uint64_t, uint64_t>>& regions, bool sparse) {
    (void)sparse;
    // One chunk per Read: each read is verified chunk by chunk anyway, and
    // a read never spans two extents that share a stored chunk.
    const uint64_t chunk = std::max<uint64_t>(store_->config().chunk_size, 4096);
    if (buf_.size() != chunk) buf_.resize(chunk);
    uint64_t pos = 0;
    const std::string what = "image '" + image_ + "': /" + path;
    for (const auto& [off, len] : regions) {
      if (off > pos) OVT_RETURN_IF_ERROR(Zeros(path, off - pos));
      pos = off;
      uint64_t end = std::min<uint64_t>(off + len, n.size);
      while (pos < end) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(end - pos, chunk - pos % chunk));
        size_t got = 0;
        OVT_RETURN_IF_ERROR(reader_.Read(n.content, content, pos, want, buf_.data(), &got, what));
        if (got != want) return Status::Corruption(what + ": short read at " + std::to_string(pos));
        OVT_RETURN_IF_ERROR(Put(path, buf_.data(), got));
        stats_->bytes += got;
        pos += got;
      }
    }
    if (pos < n.size) OVT_RETURN_IF_ERROR(Zeros(path, n.size - pos));
    return Status::OK();
  }

  Store* store_;
  std::string image_;
  uint64_t id_;
  struct archive* a_;
  const ExportOptions& options_;
  ExportStats* stats_;
  ContentReader reader_;
  std::map<uint64_t, std::string> links_;  // inode -> first path written
  std::set<uint64_t> dirs_;                // directories written
  std::string buf_, zeros_;
};

}  // namespace

Status ExportImageToFd(Store* store, std::string_view name, int fd, const ExportOptions& options,
                       ExportStats* stats) {
  *stats = ExportStats();
  ImageRecord img;
  Status s = store->catalog()->GetImage(name, &img);
  if (s.err() == ENOENT)
    return Status::NotFound("image '" + std::string(name) + "' does not exist");
  OVT_RETURN_IF_ERROR(s);
  const ArchiveApi* api = nullptr;
  OVT_RETURN_IF_ERROR(LoadArchiveApi(&api));
  ScopedUtf8Locale utf8;
  struct archive* a = api->archive_write_new();
  if (a == nullptr) return Status::Errno(ENOMEM, "archive_write_new");
  Archive().archive_write_set_format_pax(a);
  // Write blocks as they fill, not padded to 10 KiB records at the end only.
  Archive().archive_write_set_bytes_in_last_block(a, 1);
  if (Archive().archive_write_open_fd(a, fd) != ARCHIVE_OK) {
    s = Status::Errno(EIO,
                      std::string("opening the archive: ") + Archive().archive_error_string(a));
  } else {
    Exporter ex(store, std::string(name), img.image_id, a, options, stats);
    s = ex.Root(img.root_inode);
    if (Archive().archive_write_close(a) != ARCHIVE_OK && s.ok()) {
      const char* m = Archive().archive_error_string(a);
      s = Status::Errno(EIO, "closing the archive: " + std::string(m != nullptr ? m : "error"));
    }
  }
  Archive().archive_write_free(a);
  return s;
}

namespace {
// Replaces *path, when it is a symlink, by the absolute name of what the
// link chain ends at, which need not exist yet (a dangling link names the
// file to create); its directory must.
Status FollowLinks(std::string* path) {
  std::string p = *path;
  struct stat lst;
  int hops = 0;
  while (lstat(p.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    if (++hops > 40) return Status::Errno(ELOOP, "'" + *path + "': too many levels of symlinks");
    char target[PATH_MAX];
    ssize_t n = readlink(p.c_str(), target, sizeof(target) - 1);
    if (n < 0) return Status::FromErrno("readlink '" + p + "'");
    target[n] = '\0';
    if (target[0] == '/') {
      p = target;
    } else {
      const size_t slash = p.rfind('/');
      p = (slash == std::string::npos ? std::string() : p.substr(0, slash + 1)) + target;
    }
  }
  if (hops == 0) return Status::OK();
  // The directory, canonical (a relative link resolves from the link's own
  // directory, already folded in above); the last name as the link gave it.
  const size_t slash = p.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    return Status::Errno(EISDIR, "'" + *path + "' points to a directory ('" + p + "')");
  }
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) {
    return Status::FromErrno("the directory of '" + p + "', where '" + *path + "' points");
  }
  *path = std::string(real) + (std::string_view(real) == "/" ? "" : "/") + base;
  free(real);
  return Status::OK();
}
}  // namespace

Status ExportImage(Store* store, std::string_view name, const std::string& path_in,
                   const ExportOptions& options, ExportStats* stats) {
  if (path_in == "-") return ExportImageToFd(store, name, STDOUT_FILENO, options, stats);
  std::string path = path_in;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A pipe, a device (/dev/null, a tape), a socket: written into, as tar
    // -f does. The rename below would put a regular file in its place
    // (/dev/null replaced for the whole machine, a reader of the pipe left
    // waiting).
    if (S_ISDIR(st.st_mode)) return Status::Errno(EISDIR, "'" + path + "' is a directory");
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return Status::FromErrno("open '" + path + "'");
    Status s = ExportImageToFd(store, name, fd, options, stats);
    if (close(fd) != 0 && s.ok()) s = Status::FromErrno("close '" + path + "'");
    return s;
  }
  // A symlink, to a file or to nothing yet: the file it names is written,
  // the link stays (as `tar -cf LINK` and a shell's `>` do).
  OVT_RETURN_IF_ERROR(FollowLinks(&path));
  // Written under a temporary name in the same directory and renamed: the
  // destination is either the old file or the complete archive.
  std::string tmp = path + ".XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return Status::FromErrno("create '" + tmp + "'");
  mode_t um = umask(0);
  umask(um);
  fchmod(fd, 0666 & ~um);
  Status s = ExportImageToFd(store, name, fd, options, stats);
  if (s.ok() && fsync(fd) != 0) s = Status::FromErrno("fsync '" + tmp + "'");
  if (close(fd) != 0 && s.ok()) s = Status::FromErrno("close '" + tmp + "'");
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::FromErrno("rename '" + tmp + "' to '" + path + "'");
  }
  if (!s.ok()) unlink(tmp.c_str());
  return s;
}

}  // namespace overtier
