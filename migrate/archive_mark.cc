#include "migrate/archive_mark.h"

#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "migrate/residency.h"

namespace overtier {

namespace {

// The f*xattr calls refuse O_PATH descriptors (EBADF), and the daemon
// holds some files by O_PATH only (a truncate by path, an O_TRUNC open):
// those go through the descriptor's /proc/self/fd link, which getxattr(2)
// and friends follow to the very inode (not a path lookup of any layer).
std::string ProcFd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace

Status SetArchiveMark(int fd, const Bfid& bfid, const std::string& what) {
  static_assert(sizeof bfid.bytes == kArchiveMarkSize);
  int r = fsetxattr(fd, kArchiveMarkXattr, bfid.bytes.data(), kArchiveMarkSize, 0);
  if (r != 0 && errno == EBADF)
    r = setxattr(ProcFd(fd).c_str(), kArchiveMarkXattr, bfid.bytes.data(), kArchiveMarkSize, 0);
  if (r == 0 || errno == EOPNOTSUPP) return Status::OK();
  return Status::FromErrno("setting " + std::string(kArchiveMarkXattr) + " on '" + what + "'");
}

std::optional<Bfid> ReadArchiveMark(int fd) {
  char value[kArchiveMarkSize + 1];
  ssize_t n = fgetxattr(fd, kArchiveMarkXattr, value, sizeof value);
  if (n < 0 && errno == EBADF)
    n = getxattr(ProcFd(fd).c_str(), kArchiveMarkXattr, value, sizeof value);
  if (n != static_cast<ssize_t>(kArchiveMarkSize)) return std::nullopt;
  Bfid bfid;
  if (!Bfid::FromBytes(std::string_view(value, kArchiveMarkSize), &bfid) || bfid.IsZero())
    return std::nullopt;
  return bfid;
}

void ClearArchiveMark(int fd) {
  if (fremovexattr(fd, kArchiveMarkXattr) != 0 && errno == EBADF)
    (void)removexattr(ProcFd(fd).c_str(), kArchiveMarkXattr);
}

Status DataRanges(int fd, uint64_t size, std::vector<ByteRange>* out) {
  out->clear();
  uint64_t pos = 0;
  while (pos < size) {
    off_t data = lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole from pos to the end
      if (errno == EINVAL || errno == EOPNOTSUPP) {
        out->assign(1, ByteRange{0, size});  // no SEEK_DATA: all data
        return Status::OK();
      }
      return Status::FromErrno("SEEK_DATA");
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno("SEEK_HOLE");
    const uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    if (static_cast<uint64_t>(data) >= end) break;
    out->push_back(ByteRange{static_cast<uint64_t>(data), end - static_cast<uint64_t>(data)});
    pos = end;
  }
  return Status::OK();
}

Status TrimZeroEdges(int fd, uint64_t block, std::vector<ByteRange>* ranges) {
  std::vector<ByteRange> out;
  std::string buf(block, '\0');
  auto read_at = [&](uint64_t offset, uint64_t length) -> Status {
    size_t done = 0;
    while (done < length) {
      ssize_t n = pread(fd, buf.data() + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("reading the edges of a data range");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    std::fill(buf.begin() + static_cast<ptrdiff_t>(done),
              buf.begin() + static_cast<ptrdiff_t>(length), '\0');
    return Status::OK();
  };
  for (ByteRange r : *ranges) {
    uint64_t head = std::min(block, r.length);
    OVT_RETURN_IF_ERROR(read_at(r.offset, head));
    uint64_t zeros = 0;
    while (zeros < head && buf[zeros] == '\0') ++zeros;
    r.offset += zeros;
    r.length -= zeros;
    if (r.length == 0) continue;
    uint64_t tail = std::min(block, r.length);
    OVT_RETURN_IF_ERROR(read_at(r.offset + r.length - tail, tail));
    zeros = 0;
    while (zeros < tail && buf[tail - 1 - zeros] == '\0') ++zeros;
    r.length -= zeros;
    if (r.length > 0) out.push_back(r);
  }
  *ranges = std::move(out);
  return Status::OK();
}

MigrationRecord ReconciledRecord(const Bfid& bfid, std::optional<uint64_t> archive_size,
                                 const std::vector<ByteRange>& data, uint64_t size,
                                 uint64_t generation, int64_t atime_ns, int64_t mtime_ns) {
  ResidencyMap map = ResidencyMap::WithBarrier(size, 0);
  for (const ByteRange& r : data) map.MarkResident(r.offset, r.length);
  if (archive_size && *archive_size < size) map.MarkResident(*archive_size, size - *archive_size);
  MigrationRecord r;
  r.flags = kMigReleased | kMigDirty;
  r.generation = generation;
  r.archive_size = archive_size.value_or(size);
  r.bfid = bfid;
  r.atime_ns = atime_ns;
  r.mtime_ns = mtime_ns;
  map.ToRecord(&r);
  return r;
}

}  // namespace overtier
