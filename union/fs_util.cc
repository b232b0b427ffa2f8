#include "union/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <vector>

namespace overtier {

Status EmptyDirAt(int dirfd) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Status::FromErrno("open directory to empty it");
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return Status::FromErrno("fdopendir");
  }
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  Status s;
  for (const auto& n : names) {
    s = RemoveTreeAt(dirfd, n.c_str());
    if (!s.ok()) break;
  }
  closedir(d);
  return s;
}

Status RemoveTreeAt(int dirfd, const char* name) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return Status::OK();
  if (errno != EISDIR && errno != EPERM) return Status::FromErrno(std::string("unlink ") + name);
  int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (sub < 0) return Status::FromErrno(std::string("open ") + name);
  Status s = EmptyDirAt(sub);
  close(sub);
  if (!s.ok()) return s;
  if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    return Status::FromErrno(std::string("rmdir ") + name);
  return Status::OK();
}

Status GetXattrFd(int fd, const std::string& name, std::string* value, bool* present) {
  ProcPath p(fd);
  char buf[4096];
  // Through the magic link: one call whether fd is O_PATH or not.
  ssize_t n = getxattr(p.c_str(), name.c_str(), buf, sizeof(buf));
  if (n < 0 && errno == ERANGE) {
    ssize_t want = getxattr(p.c_str(), name.c_str(), nullptr, 0);
    if (want >= 0) {
      value->resize(want);
      n = getxattr(p.c_str(), name.c_str(), value->data(), value->size());
      if (n >= 0) {
        value->resize(n);
        *present = true;
        return Status::OK();
      }
    }
  }
  if (n < 0) {
    *present = false;
    if (errno == ENODATA || errno == ENOTSUP) return Status::OK();
    return Status::FromErrno("getxattr " + name);
  }
  value->assign(buf, n);
  *present = true;
  return Status::OK();
}

Status ListXattrNamesFd(int fd, std::string* names) {
  ProcPath p(fd);
  char buf[1024];
  ssize_t len = listxattr(p.c_str(), buf, sizeof(buf));
  if (len >= 0) {
    names->assign(buf, len);
    return Status::OK();
  }
  for (int attempt = 0; errno == ERANGE && attempt < 4; ++attempt) {
    len = listxattr(p.c_str(), nullptr, 0);  // grown meanwhile? ask again
    if (len < 0) break;
    names->resize(len);
    len = listxattr(p.c_str(), names->data(), names->size());
    if (len >= 0) {
      names->resize(len);
      return Status::OK();
    }
  }
  names->clear();
  if (errno == ENOTSUP) return Status::OK();
  return Status::FromErrno("listxattr");
}

bool HasXattrName(std::string_view names, std::string_view name) {
  for (size_t pos = 0; pos < names.size();) {
    const size_t end = names.find('\0', pos);
    const std::string_view n =
        names.substr(pos, (end == std::string_view::npos ? names.size() : end) - pos);
    if (n == name) return true;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return false;
}

Status CopyXattrs(int src, int dst, const std::function<bool(std::string_view)>& skip,
                  const std::function<Status(std::string_view, std::string*)>& adjust) {
  ProcPath dp(dst);
  std::string names;
  OVT_RETURN_IF_ERROR(ListXattrNamesFd(src, &names));
  std::string value;
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty() || skip(name)) continue;
    bool present = false;
    OVT_RETURN_IF_ERROR(GetXattrFd(src, name, &value, &present));
    if (!present) continue;
    if (adjust) OVT_RETURN_IF_ERROR(adjust(name, &value));
    if (setxattr(dp.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
      // A destination that cannot hold security labels or ACLs of this kind
      // is not a reason to fail a copy-up (overlayfs behaves the same).
      if ((errno == ENOTSUP || errno == EPERM) &&
          (name.starts_with("security.") || name.starts_with("system.")))
        continue;
      return Status::FromErrno("copy xattr " + name);
    }
  }
  return Status::OK();
}

std::string TempName(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s%d.%llu", prefix, static_cast<int>(getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1) + 1));
  return buf;
}

DirTimes::DirTimes(int dirfd) : fd_(dirfd), valid_(false), ts_{} {
  struct stat st;
  if (fstat(dirfd, &st) == 0) {
    ts_[0] = st.st_atim;
    ts_[1] = st.st_mtim;
    valid_ = true;
  }
}

void DirTimes::Restore() const {
  if (valid_) (void)utimensat(AT_FDCWD, ProcPath(fd_).c_str(), ts_, 0);
}

bool LogNow(std::atomic<int64_t>* last) {
  const int64_t now = static_cast<int64_t>(time(nullptr));
  int64_t prev = last->load(std::memory_order_relaxed);
  return now != prev && last->compare_exchange_strong(prev, now);
}

Status CheckLowerData(int fd, uint64_t ino) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat lower file");
  // A file whose blocks cover its size has no hole (the common case: one
  // fstat, no xattr read).
  if (!S_ISREG(st.st_mode) || st.st_blocks * 512 >= st.st_size) return Status::OK();
  if (fgetxattr(fd, kArchiveMarkXattr, nullptr, 0) < 0) return Status::OK();
  const off_t hole = lseek(fd, 0, SEEK_HOLE);
  if (hole < 0 || hole >= st.st_size) return Status::OK();  // a stale mark: all data
  static std::atomic<int64_t> last{0};
  if (LogNow(&last)) {
    std::fprintf(
        stderr,
        "overtier: lower file (inode %llu) was released by an overtier mount (it carries an "
        "archive mark and has holes): its data is in that mount's store, not in the "
        "file; restore it there (overtier restore --wait) before using its directory "
        "as a lower layer: EIO\n",
        static_cast<unsigned long long>(ino));
  }
  return Status::Errno(EIO, "lower file released by an overtier mount");
}

Status CopyData(int src, int dst, off_t len, bool start_writeback) {
  // Pieces of 8 MiB: large enough for few calls, small enough that the
  // writeback of one runs while the next is read.
  constexpr off_t kPiece = 8 << 20;
  off_t pos = 0;
  while (pos < len) {
    // Keep holes: copy only the data segments.
    off_t data = lseek(src, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno != EINVAL) return Status::FromErrno("seek data");
      data = pos;  // file system without SEEK_DATA: copy everything
    }
    if (data >= len) break;
    off_t hole = lseek(src, data, SEEK_HOLE);
    if (hole < 0 || hole > len) hole = len;
    off_t in = data, out = data;
    while (in < hole) {
      const off_t piece_start = out;
      ssize_t n = copy_file_range(src, &in, dst, &out,
                                  start_writeback ? std::min(kPiece, hole - in) : hole - in, 0);
      if (n > 0 && start_writeback) {
        // Asynchronous: queues the writeback and returns (errors show at
        // the fsync).
        sync_file_range(dst, piece_start, n, SYNC_FILE_RANGE_WRITE);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
          return Status::FromErrno("copy data");
        // Fallback for file systems copy_file_range cannot pair.
        std::vector<char> buf(1 << 20);
        while (in < hole) {
          ssize_t r = pread(src, buf.data(), std::min<off_t>(buf.size(), hole - in), in);
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) return Status::FromErrno("read for copy");
          if (r == 0) break;
          for (ssize_t done = 0; done < r;) {
            ssize_t w = pwrite(dst, buf.data() + done, r - done, out);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return Status::FromErrno("write for copy");
            done += w;
            out += w;
          }
          in += r;
        }
        break;
      }
      if (n == 0) break;  // source shrank
    }
    pos = hole;
  }
  // Holes at the end are not written: set the size explicitly.
  if (ftruncate(dst, len) != 0) return Status::FromErrno("set size after copy");
  return Status::OK();
}

}  // namespace overtier
