#include "store/local_volume.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "store/vv_format.h"

namespace overtier {

namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// pwrite/pread until done: both may transfer less than asked (signals,
// large requests).
Status WriteFull(int fd, const char* p, size_t n, uint64_t off, const std::string& what) {
  while (n > 0) {
    ssize_t r = pwrite(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + what);
    }
    p += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

Status ReadFull(int fd, char* p, size_t n, uint64_t off, const std::string& what) {
  while (n > 0) {
    ssize_t r = pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read " + what);
    }
    if (r == 0) return Status::Corruption("read " + what + ": file is shorter than when opened");
    p += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

// Opens the pieces of a container in order and works out its length. A
// piece shorter than piece_size ends the container: pieces after it can only
// be left over from a crash (appends were not all synced), and are ignored.
// flags: O_RDONLY or O_WRONLY.
Status OpenPieces(int dir_fd, uint64_t vv_id, uint64_t piece_size, int flags,
                  const std::string& set, std::vector<int>* fds, uint64_t* size,
                  bool* stray_pieces) {
  fds->clear();
  *size = 0;
  *stray_pieces = false;
  for (uint64_t n = 0;; n++) {
    std::string name = LocalPieceName(vv_id, n);
    int fd = openat(dir_fd, name.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      if (errno == ENOENT && n > 0) return Status::OK();
      Status s =
          errno == ENOENT
              ? Status::NotFound(VvName(vv_id) + " does not exist in volume set '" + set + "'")
              : Status::FromErrno("open " + name + " in volume set '" + set + "'");
      for (int& f : *fds) CloseFd(&f);
      return s;
    }
    fds->push_back(fd);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      Status s = Status::FromErrno("stat " + name);
      for (int& f : *fds) CloseFd(&f);
      return s;
    }
    uint64_t len = static_cast<uint64_t>(st.st_size);
    if (!S_ISREG(st.st_mode) || len > piece_size) {
      for (int& f : *fds) CloseFd(&f);
      return Status::Corruption(name + " in volume set '" + set + "' is not a piece of at most " +
                                std::to_string(piece_size) + " bytes");
    }
    *size += len;
    if (len < piece_size) {
      struct stat next;
      *stray_pieces =
          fstatat(dir_fd, LocalPieceName(vv_id, n + 1).c_str(), &next, AT_SYMLINK_NOFOLLOW) == 0;
      return Status::OK();
    }
  }
}

class LocalVolumeWriter final : public VolumeWriter {
 public:
  LocalVolumeWriter(int dir_fd, uint64_t vv_id, std::string set, const LocalVolumeOptions& opts,
                    std::vector<int> fds, uint64_t size)
      : dir_fd_(dir_fd),
        vv_id_(vv_id),
        set_(std::move(set)),
        piece_size_(opts.piece_size),
        buffer_cap_(opts.write_buffer),
        fds_(std::move(fds)),
        size_(size),
        kicked_(size),
        first_unsynced_(fds_.empty() ? 0 : fds_.size() - 1) {
    struct stat st;
    if (opts.keep_free > 0 && fstat(dir_fd_, &st) == 0 && st.st_dev == opts.keep_free_dev)
      keep_free_ = opts.keep_free;
  }

  ~LocalVolumeWriter() override {
    for (int& fd : fds_) CloseFd(&fd);
    CloseFd(&dir_fd_);
  }

  Status Append(std::string_view data) override {
    OVT_RETURN_IF_ERROR(Usable());
    // A large append (a chunk's payload) is written from the caller's
    // memory: copying it into the buffer first cost a memcpy of every
    // archived byte. The buffer gathers the small ones (record headers).
    if (data.size() >= kUnbufferedAppend) {
      OVT_RETURN_IF_ERROR(Flush());
      return Fail(WriteOut(data));
    }
    if (buffer_.size() + data.size() <= buffer_cap_) {
      buffer_.append(data);
      return Status::OK();
    }
    OVT_RETURN_IF_ERROR(Flush());
    if (data.size() >= buffer_cap_) return Fail(WriteOut(data));
    buffer_.append(data);
    return Status::OK();
  }

  Status Sync() override {
    OVT_RETURN_IF_ERROR(Usable());
    OVT_RETURN_IF_ERROR(Flush());
    // fdatasync is enough: it also persists the file size, the only
    // metadata a later read needs.
    for (size_t i = first_unsynced_; i < fds_.size(); i++) {
      if (fdatasync(fds_[i]) != 0)
        return Fail(Status::FromErrno("fdatasync " + LocalPieceName(vv_id_, i)));
      if (i + 1 < fds_.size()) CloseFd(&fds_[i]);  // full: never written again
    }
    if (!fds_.empty()) first_unsynced_ = fds_.size() - 1;
    if (dir_dirty_) {
      if (fsync(dir_fd_) != 0) return Fail(Status::FromErrno("fsync volume set '" + set_ + "'"));
      dir_dirty_ = false;
    }
    return Status::OK();
  }

  Status Seal() override {
    OVT_RETURN_IF_ERROR(Sync());
    for (int& fd : fds_) CloseFd(&fd);
    sealed_ = true;
    return Status::OK();
  }

  uint64_t Size() const override { return size_ + buffer_.size(); }

 private:
  Status Usable() const {
    if (!error_.ok()) return error_;
    if (sealed_) return Status::Errno(EBADF, VvName(vv_id_) + " is sealed");
    return Status::OK();
  }

  Status Fail(Status s) {
    if (!s.ok() && error_.ok()) error_ = s;
    return s;
  }

  Status Flush() {
    if (buffer_.empty()) return Status::OK();
    Status s = WriteOut(buffer_);
    buffer_.clear();
    return Fail(std::move(s));
  }

  // Writes at the end of the files, creating pieces as the end crosses
  // piece boundaries.
  Status WriteOut(std::string_view data) {
    OVT_RETURN_IF_ERROR(CheckRoom(data.size()));
    while (!data.empty()) {
      uint64_t piece = size_ / piece_size_;
      if (piece == fds_.size()) OVT_RETURN_IF_ERROR(CreatePiece(piece));
      uint64_t off = size_ % piece_size_;
      size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), piece_size_ - off));
      OVT_RETURN_IF_ERROR(
          WriteFull(fds_[piece], data.data(), n, off, LocalPieceName(vv_id_, piece)));
      size_ += n;
      data.remove_prefix(n);
    }
    KickWriteback();
    return Status::OK();
  }

  // Starts the disk writes of what was written since the last kick, once
  // kWritebackKick bytes gathered, without waiting for them: the Sync (at
  // a commit, and of every piece when the container is sealed) then waits
  // for writes mostly done. Without it an archive wrote 256 MiB into the
  // page cache, then stood still while the seal's fdatasyncs wrote them
  // out (a fifth of a GiB's archive, with a fast disk). A failed kick is
  // no error: the Sync writes and reports.
  void KickWriteback() {
    if (size_ - kicked_ < kWritebackKick) return;
    while (kicked_ < size_) {
      const uint64_t piece = kicked_ / piece_size_, off = kicked_ % piece_size_;
      const uint64_t len = std::min(size_ - kicked_, piece_size_ - off);
      if (piece < fds_.size() && fds_[piece] >= 0) {
        (void)sync_file_range(fds_[piece], static_cast<off_t>(off), static_cast<off_t>(len),
                              SYNC_FILE_RANGE_WRITE);
      }
      kicked_ += len;
    }
  }

  // LocalVolumeOptions::keep_free.
  Status CheckRoom(uint64_t n) const {
    if (keep_free_ == 0) return Status::OK();
    struct statvfs v;
    if (fstatvfs(dir_fd_, &v) != 0) return Status::OK();  // cannot tell: write, and see
    const uint64_t avail = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
    if (avail >= n && avail - n >= keep_free_) return Status::OK();
    return Status::Errno(ENOSPC, "volume set '" + set_ + "': " + std::to_string(avail) +
                                     " bytes free on the disk it shares with the catalog, "
                                     "which keeps " +
                                     std::to_string(keep_free_) + " bytes for restores");
  }

  Status CreatePiece(uint64_t piece) {
    std::string name = LocalPieceName(vv_id_, piece);
    int fd =
        openat(dir_fd_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return Status::FromErrno("create " + name + " in volume set '" + set_ + "'");
    fds_.push_back(fd);
    dir_dirty_ = true;
    return Status::OK();
  }

  static constexpr size_t kUnbufferedAppend = size_t{64} << 10;
  static constexpr uint64_t kWritebackKick = uint64_t{8} << 20;
  int dir_fd_;
  const uint64_t vv_id_;
  const std::string set_;
  const uint64_t piece_size_;
  const size_t buffer_cap_;
  std::vector<int> fds_;    // one per piece so far; -1 once full and synced
  uint64_t size_;           // bytes in the files (buffer_ excluded)
  uint64_t kicked_;         // writeback started for the bytes before (KickWriteback)
  uint64_t keep_free_ = 0;  // LocalVolumeOptions::keep_free, if the catalog's disk
  size_t first_unsynced_;   // pieces from here on may hold unsynced data
  std::string buffer_;
  bool dir_dirty_ = false;  // a piece was created since the last Sync
  bool sealed_ = false;
  Status error_;
};

class LocalVolumeReader final : public VolumeReader {
 public:
  LocalVolumeReader(uint64_t vv_id, uint64_t piece_size, std::vector<int> fds, uint64_t size)
      : vv_id_(vv_id), piece_size_(piece_size), fds_(std::move(fds)), size_(size) {}
  ~LocalVolumeReader() override {
    for (int& fd : fds_) CloseFd(&fd);
    for (int& fd : direct_fds_) CloseFd(&fd);
  }

  Status ReadAt(uint64_t offset, size_t n, char* buf) const override {
    if (offset > size_ || n > size_ - offset)
      return Status::Errno(ENODATA, "read of " + std::to_string(n) + " bytes at offset " +
                                        std::to_string(offset) + " past the end of " +
                                        VvName(vv_id_) + " (" + std::to_string(size_) + " bytes)");
    while (n > 0) {
      uint64_t piece = offset / piece_size_, off = offset % piece_size_;
      size_t len = static_cast<size_t>(std::min<uint64_t>(n, piece_size_ - off));
      OVT_RETURN_IF_ERROR(ReadFull(fds_[piece], buf, len, off, LocalPieceName(vv_id_, piece)));
      buf += len;
      offset += len;
      n -= len;
    }
    return Status::OK();
  }

  uint64_t Size() const override { return size_; }

  Status RawSegments(uint64_t offset, uint64_t n, std::vector<RawSegment>* out) const override {
    out->clear();
    if (offset > size_) return Status::Errno(ENODATA, "offset past the end of " + VvName(vv_id_));
    n = std::min(n, size_ - offset);
    while (n > 0) {
      uint64_t piece = offset / piece_size_, off = offset % piece_size_;
      uint64_t len = std::min(n, piece_size_ - off);
      out->push_back(RawSegment{fds_[piece], DirectFd(piece), off, offset, len});
      offset += len;
      n -= len;
    }
    return Status::OK();
  }

 private:
  // Piece `piece` opened O_DIRECT, at its first use: through /proc/self/fd,
  // a new open file description of the very file fds_ holds (setting
  // O_DIRECT on fds_ itself would change ReadAt's reads too).
  int DirectFd(uint64_t piece) const {
    std::lock_guard<std::mutex> l(direct_mu_);
    if (direct_fds_.empty()) direct_fds_.assign(fds_.size(), kNotTried);
    int& fd = direct_fds_[piece];
    if (fd == kNotTried) {
      const std::string proc = "/proc/self/fd/" + std::to_string(fds_[piece]);
      fd = open(proc.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);  // -1: refused (tmpfs)
    }
    return fd;
  }

  static constexpr int kNotTried = -2;
  const uint64_t vv_id_;
  const uint64_t piece_size_;
  std::vector<int> fds_;
  const uint64_t size_;
  mutable std::mutex direct_mu_;
  mutable std::vector<int> direct_fds_;  // per piece: an fd, -1 (refused) or kNotTried
};

class LocalVolumeSet final : public VolumeSet {
 public:
  LocalVolumeSet(int dir_fd, std::string name, const LocalVolumeOptions& opts)
      : dir_fd_(dir_fd), name_(std::move(name)), opts_(opts) {}
  ~LocalVolumeSet() override { CloseFd(&dir_fd_); }

  const std::string& name() const override { return name_; }

  Status Create(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    int dir = fcntl(dir_fd_, F_DUPFD_CLOEXEC, 0);
    if (dir < 0) return Status::FromErrno("dup volume set fd");
    std::string name = LocalPieceName(vv_id, 0);
    int fd =
        openat(dir_fd_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      Status s = errno == EEXIST
                     ? Status::Errno(
                           EEXIST, VvName(vv_id) + " already exists in volume set '" + name_ + "'")
                     : Status::FromErrno("create " + name + " in volume set '" + name_ + "'");
      close(dir);
      return s;
    }
    // The name must be durable before anyone records that the container
    // exists.
    if (fsync(dir_fd_) != 0) {
      Status s = Status::FromErrno("fsync volume set '" + name_ + "'");
      close(fd);
      close(dir);
      return s;
    }
    *out = std::make_unique<LocalVolumeWriter>(dir, vv_id, name_, opts_, std::vector<int>{fd}, 0);
    return Status::OK();
  }

  Status Open(uint64_t vv_id, std::unique_ptr<VolumeReader>* out) override {
    std::vector<int> fds;
    uint64_t size = 0;
    bool stray = false;
    OVT_RETURN_IF_ERROR(
        OpenPieces(dir_fd_, vv_id, opts_.piece_size, O_RDONLY, name_, &fds, &size, &stray));
    *out = std::make_unique<LocalVolumeReader>(vv_id, opts_.piece_size, std::move(fds), size);
    return Status::OK();
  }

  Status OpenForAppend(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    std::vector<int> fds;
    uint64_t size = 0;
    bool stray = false;
    OVT_RETURN_IF_ERROR(
        OpenPieces(dir_fd_, vv_id, opts_.piece_size, O_WRONLY, name_, &fds, &size, &stray));
    if (stray) {
      // Appending would have to overwrite those pieces: refuse, the
      // container stays readable as it is.
      for (int& fd : fds) CloseFd(&fd);
      return Status::Corruption(VvName(vv_id) + " in volume set '" + name_ +
                                "' has pieces after a short piece; cannot append");
    }
    int dir = fcntl(dir_fd_, F_DUPFD_CLOEXEC, 0);
    if (dir < 0) {
      Status s = Status::FromErrno("dup volume set fd");
      for (int& fd : fds) CloseFd(&fd);
      return s;
    }
    for (size_t i = 0; i + 1 < fds.size(); i++) CloseFd(&fds[i]);
    *out = std::make_unique<LocalVolumeWriter>(dir, vv_id, name_, opts_, std::move(fds), size);
    return Status::OK();
  }

  Status Remove(uint64_t vv_id) override {
    uint64_t count = 0;
    struct stat st;
    while (fstatat(dir_fd_, LocalPieceName(vv_id, count).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      count++;
    if (count == 0)
      return Status::NotFound(VvName(vv_id) + " does not exist in volume set '" + name_ + "'");
    // Last piece first: until piece 0 goes the container is still listed,
    // so a crash midway leaves something that Remove finishes later, never
    // orphaned pieces.
    for (uint64_t n = count; n-- > 0;) {
      std::string name = LocalPieceName(vv_id, n);
      if (unlinkat(dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT)
        return Status::FromErrno("remove " + name + " from volume set '" + name_ + "'");
    }
    if (fsync(dir_fd_) != 0) return Status::FromErrno("fsync volume set '" + name_ + "'");
    return Status::OK();
  }

  Status List(std::vector<uint64_t>* ids) override {
    ids->clear();
    OVT_RETURN_IF_ERROR(ForEachName([&](const char* n) {
      uint64_t id;
      if (ParsePiece0Name(n, &id)) ids->push_back(id);
    }));
    std::sort(ids->begin(), ids->end());
    return Status::OK();
  }

  // Objects are files "obj-NAME" beside the containers (List ignores
  // them); Put writes a temporary name, fsyncs, renames over and fsyncs
  // the folder, so a reader sees a whole old or a whole new object.
  Status PutObject(std::string_view name, std::string_view data) override {
    OVT_RETURN_IF_ERROR(CheckVolumeObjectPut(name, data.size()));
    const std::string final_name = "obj-" + std::string(name);
    const std::string tmp = ".obj-tmp-" + std::to_string(getpid()) + "-" + std::string(name);
    const std::string what = "object '" + std::string(name) + "' in volume set '" + name_ + "'";
    int fd =
        openat(dir_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return Status::FromErrno("create " + what);
    Status s = WriteFull(fd, data.data(), data.size(), 0, what);
    if (s.ok() && fsync(fd) != 0) s = Status::FromErrno("fsync " + what);
    close(fd);
    if (s.ok() && renameat(dir_fd_, tmp.c_str(), dir_fd_, final_name.c_str()) != 0)
      s = Status::FromErrno("rename " + what + " into place");
    if (!s.ok()) {
      unlinkat(dir_fd_, tmp.c_str(), 0);
      return s;
    }
    if (fsync(dir_fd_) != 0) return Status::FromErrno("fsync volume set '" + name_ + "'");
    return Status::OK();
  }

  Status GetObject(std::string_view name, std::string* data) override {
    OVT_RETURN_IF_ERROR(CheckVolumeObjectName(name));
    const std::string file = "obj-" + std::string(name);
    const std::string what = "object '" + std::string(name) + "' in volume set '" + name_ + "'";
    int fd = openat(dir_fd_, file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound(what + " does not exist");
      return Status::FromErrno("open " + what);
    }
    struct stat st;
    Status s;
    if (fstat(fd, &st) != 0) {
      s = Status::FromErrno("stat " + what);
    } else if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kMaxVolumePiece) {
      s = Status::Corruption(what + " is not a regular file of at most " +
                             std::to_string(kMaxVolumePiece) + " bytes");
    } else {
      data->resize(static_cast<size_t>(st.st_size));
      s = ReadFull(fd, data->data(), data->size(), 0, what);
    }
    close(fd);
    return s;
  }

  Status RemoveObject(std::string_view name) override {
    OVT_RETURN_IF_ERROR(CheckVolumeObjectName(name));
    const std::string file = "obj-" + std::string(name);
    const std::string what = "object '" + std::string(name) + "' in volume set '" + name_ + "'";
    if (unlinkat(dir_fd_, file.c_str(), 0) != 0) {
      if (errno == ENOENT) return Status::NotFound(what + " does not exist");
      return Status::FromErrno("remove " + what);
    }
    if (fsync(dir_fd_) != 0) return Status::FromErrno("fsync volume set '" + name_ + "'");
    return Status::OK();
  }

  Status ListObjects(std::string_view prefix, std::vector<std::string>* names) override {
    names->clear();
    OVT_RETURN_IF_ERROR(ForEachName([&](const char* stored) {
      std::string_view name;
      if (VolumeObjectFromStored(stored, "obj-", prefix, &name)) names->emplace_back(name);
    }));
    std::sort(names->begin(), names->end());
    return Status::OK();
  }

 private:
  // Calls fn with the name of every entry of the set's folder.
  template <typename Fn>
  Status ForEachName(Fn fn) {
    int fd = openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open volume set '" + name_ + "'");
    DIR* d = fdopendir(fd);
    if (d == nullptr) {
      Status s = Status::FromErrno("fdopendir volume set '" + name_ + "'");
      close(fd);
      return s;
    }
    while (struct dirent* e = readdir(d)) fn(e->d_name);
    closedir(d);
    return Status::OK();
  }

  // "vv-" + 16 lowercase hex digits + ".vv", exactly as LocalPieceName
  // writes it; anything else (pieces, foreign files) is not a container.
  static bool ParsePiece0Name(const char* name, uint64_t* id) {
    if (std::strlen(name) != 22 || std::strncmp(name, "vv-", 3) != 0 ||
        std::strcmp(name + 19, ".vv") != 0)
      return false;
    uint64_t v = 0;
    for (int i = 3; i < 19; i++) {
      char c = name[i];
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) return false;
      v = (v << 4) | static_cast<uint64_t>(digit);
    }
    *id = v;
    return true;
  }

  int dir_fd_;
  const std::string name_;
  const LocalVolumeOptions opts_;
};

// Opens dir_fd/name as a directory, creating it (durably) if allowed.
Status OpenOrCreateDir(int dir_fd, const char* name, bool create, const std::string& what,
                       int* out) {
  int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT && create) {
    if (mkdirat(dir_fd, name, 0755) != 0 && errno != EEXIST)
      return Status::FromErrno("create " + what);
    if (fsync(dir_fd) != 0) return Status::FromErrno("fsync the parent of " + what);
    fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound(what + " does not exist");
    return Status::FromErrno("open " + what);
  }
  *out = fd;
  return Status::OK();
}

}  // namespace

bool IsValidVolumeSetName(const std::string& name) {
  if (name.empty() || name.size() > kVvMaxSetName || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string LocalPieceName(uint64_t vv_id, uint64_t n) {
  std::string s = VvName(vv_id) + ".vv";
  if (n > 0) s += "." + std::to_string(n);
  return s;
}

Status OpenLocalVolumeSet(const std::string& store_dir, const std::string& set_name,
                          const LocalVolumeOptions& options, std::unique_ptr<VolumeSet>* out) {
  if (!IsValidVolumeSetName(set_name))
    return Status::InvalidArgument("invalid volume set name '" + set_name + "'");
  int store = open(store_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store < 0) return Status::FromErrno("open store directory " + store_dir);
  int volumes = -1;
  Status s = OpenOrCreateDir(store, "volumes", options.create_if_missing, store_dir + "/volumes",
                             &volumes);
  CloseFd(&store);
  CloseFd(&volumes);
  if (!s.ok()) return s;
  return OpenLocalVolumeSetAt(store_dir + "/volumes/" + set_name, set_name, options, out);
}

Status OpenLocalVolumeSetAt(const std::string& folder, const std::string& set_name,
                            const LocalVolumeOptions& options, std::unique_ptr<VolumeSet>* out) {
  if (!IsValidVolumeSetName(set_name))
    return Status::InvalidArgument("invalid volume set name '" + set_name + "'");
  if (options.piece_size == 0 || options.piece_size % kVvAlign != 0 ||
      options.piece_size > kMaxVolumePiece)
    return Status::InvalidArgument("volume piece size " + std::to_string(options.piece_size) +
                                   " is not a multiple of 4096 up to 64 MiB");
  std::string parent = folder, leaf = folder;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
  size_t slash = parent.rfind('/');
  if (slash == std::string::npos) {
    leaf = parent;
    parent = ".";
  } else {
    leaf = parent.substr(slash + 1);
    parent = slash == 0 ? "/" : parent.substr(0, slash);
  }
  if (leaf.empty() || leaf == "." || leaf == "..")
    return Status::InvalidArgument("volume set folder '" + folder + "' has no last component");
  int dir = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    if (errno == ENOENT)
      return Status::NotFound("volume set '" + set_name + "' (" + folder + "): " + parent +
                              " does not exist");
    return Status::FromErrno("open " + parent);
  }
  int set = -1;
  Status s = OpenOrCreateDir(dir, leaf.c_str(), options.create_if_missing,
                             "volume set '" + set_name + "' (" + folder + ")", &set);
  CloseFd(&dir);
  if (!s.ok()) return s;
  *out = std::make_unique<LocalVolumeSet>(set, set_name, options);
  return Status::OK();
}

}  // namespace overtier
