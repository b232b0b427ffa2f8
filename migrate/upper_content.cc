#include "migrate/upper_content.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string_view>
#include <vector>

#include "migrate/archive_mark.h"
#include "migrate/file_handle.h"
#include "migrate/residency.h"
#include "overtier/time_ns.h"
#include "store/content_reader.h"

namespace overtier {

namespace {

// Bytes read at a time: the upper file's part, then the archive's over its
// missing ranges.
constexpr size_t kWindow = size_t{1} << 20;

Status PreadFull(int fd, char* buf, size_t n, uint64_t off, const std::string& what) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno("read '" + what + "'");
    if (r == 0) return Status::Errno(EIO, "'" + what + "' shrank while being read");
    done += static_cast<size_t>(r);
  }
  return Status::OK();
}

// The residency of the file as the mount would see it: the row's when it
// says released; else, for a file that carries an archive mark and has
// holes, the row a mount would rebuild (archive_mark.h). nullopt: every
// byte is in the file.
Status MissingBytes(Store* store, int fd, uint64_t size, const std::string& what,
                    std::optional<MigrationRecord>* rec, ResidencyMap* map) {
  rec->reset();
  FileHandle fh;
  Status hs = GetFileHandle(fd, what, &fh);
  if (hs.ok()) {
    MigrationRecord r;
    Status s = store->catalog()->GetMigration(fh.key, &r);
    if (s.ok() && (r.flags & kMigReleased)) {
      OVT_RETURN_IF_ERROR(ResidencyMap::FromRecord(r, size, map));
      *rec = r;
      return Status::OK();
    }
    if (!s.ok() && s.err() != ENOENT) return s;
  } else if (hs.err() != EOPNOTSUPP) {
    return hs;
  }
  const std::optional<Bfid> mark = ReadArchiveMark(fd);
  if (!mark || size == 0) return Status::OK();
  std::vector<ByteRange> data;
  OVT_RETURN_IF_ERROR(DataRanges(fd, size, &data));
  if (data.size() == 1 && data[0] == ByteRange{0, size}) return Status::OK();  // a stale mark
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat '" + what + "'");
  OVT_RETURN_IF_ERROR(TrimZeroEdges(fd, std::max<uint64_t>(st.st_blksize, 512), &data));
  std::optional<uint64_t> archive_size;
  FileRecord file;
  if (store->catalog()->GetFile(*mark, &file).ok()) archive_size = file.size;
  *rec = ReconciledRecord(*mark, archive_size, data, size, 0, ClampedNs(st.st_atim),
                          ClampedNs(st.st_mtim));
  return ResidencyMap::FromRecord(**rec, size, map);
}

}  // namespace

Status WriteUpperContent(Store* store, int fd, uint64_t size, const std::string& what,
                         ContentWriter* w, FileRecord* out, bool* handled) {
  *handled = false;
  std::optional<MigrationRecord> rec;
  ResidencyMap map;
  OVT_RETURN_IF_ERROR(MissingBytes(store, fd, size, what, &rec, &map));
  if (!rec || map.fully_resident()) return Status::OK();
  if (rec->flags & kMigLost) {
    return Status::Errno(EIO, "'" + what + "' is lost: its released bytes " +
                                  map.DescribeRanges(4) + " have no readable archive copy");
  }
  FileRecord archive;
  Status s = store->catalog()->GetFile(rec->bfid, &archive);
  if (!s.ok()) {
    return Status::Errno(
        s.err() == ENOENT ? EIO : s.err(),
        "'" + what + "': its released bytes are in archive " + rec->bfid.ToHex() + ", " +
            (s.err() == ENOENT ? "which this store does not hold (was the file released "
                                 "by a mount of another store?)"
                               : s.message()));
  }
  ContentReader reader(store);
  std::vector<char> buf(kWindow);
  w->BeginFile();
  for (uint64_t off = 0; off < size; off += kWindow) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kWindow, size - off));
    OVT_RETURN_IF_ERROR(PreadFull(fd, buf.data(), n, off, what));
    for (const ByteRange& m : map.Missing(off, n)) {
      size_t got = 0;
      char* at = buf.data() + (m.offset - off);
      OVT_RETURN_IF_ERROR(
          reader.Read(rec->bfid, archive, m.offset, static_cast<size_t>(m.length), at, &got, what));
      if (got != m.length) {
        return Status::Errno(EIO, "'" + what + "': archive " + rec->bfid.ToHex() + " ends at " +
                                      std::to_string(m.offset + got) + ", before its byte " +
                                      std::to_string(m.offset + m.length - 1));
      }
    }
    OVT_RETURN_IF_ERROR(w->Write(off, std::string_view(buf.data(), n)));
  }
  OVT_RETURN_IF_ERROR(w->EndFile(size, out));
  *handled = true;
  return Status::OK();
}

}  // namespace overtier
