// The archive mark: an xattr on the upper file itself saying "some of this
// file's bytes may be only in archive BFID", set before a release commits,
// so before any byte is punched out (and on a lazily copied-up file right
// after its copy-up: MigrationService::MarkAdopted).
//
// The catalog's migration row is what says which bytes are resident; the
// mark is the file's own memory of having an archive, as DMF keeps its
// state in the inode and its locations in a database. It matters when the
// catalog lost the row or holds an older one: a catalog put back from a
// backup taken between the file's archive and its release, a row lost to
// a bug. Without the mark the released file would read as the zeros of
// its punched holes; with it, the first open of the file through the
// mount rebuilds the row (MigrationService's ReconcileMarked, with
// ReconciledRecord below): what is data in the upper file is resident,
// the holes come from the archive, and if the archive is gone too the
// holes read as EIO, never as zeros.
//
// The mark lives exactly as long as the row says "released": it is removed
// before any commit that makes the row say otherwise (a restore finished,
// a write that dropped the archive, a truncate, an agent's RESTORE_DONE:
// MigrationService's Apply, the Restorer's sync, the Archiver's archive).
// Removed before, not after: a mark left on a file whose row is gone would
// have the next open take the file's own holes (a sparse write of the
// user's) for the archive's bytes. A file with no hole is never rebuilt,
// whatever its mark says.
#ifndef OVERTIER_MIGRATE_ARCHIVE_MARK_H_
#define OVERTIER_MIGRATE_ARCHIVE_MARK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "overtier/status.h"
#include "overtier/tier_xattrs.h"
#include "store/catalog_records.h"
#include "store/coding.h"

namespace overtier {

// The mark (kArchiveMarkXattr, overtier/tier_xattrs.h) is in the user
// namespace, like user.overtier.norelease, so it works without
// CAP_SYS_ADMIN (userxattr mounts) too; the union hides every
// user.overtier.* name (but norelease) from users: none can set, change,
// remove or list it through the mount.
//
// Value: the 16 bytes of the bfid, nothing else. Its size is its version
// (a later format will have another size): one more byte, and ext4 with
// 256-byte inodes no longer has room for the mark beside
// trusted.overtier.origin inside the inode and gives the file a 4 KiB
// xattr block, which a lazy copy-up (no data block at all) cannot afford.
inline constexpr size_t kArchiveMarkSize = 16;

// Sets the mark on the upper file open as fd (any mode, O_PATH too). A file
// system without user xattrs (EOPNOTSUPP) is not an error: the release
// goes on without the safety net.
Status SetArchiveMark(int fd, const Bfid& bfid, const std::string& what);
// The bfid of the mark; nullopt if there is none (or it is not ours: a
// value of another size is ignored).
std::optional<Bfid> ReadArchiveMark(int fd);
// Best effort.
void ClearArchiveMark(int fd);

// The data ranges of [0, size) of the file open as fd (SEEK_DATA and
// SEEK_HOLE): everything that is not a hole. A file system without
// SEEK_HOLE reports the whole file as data.
Status DataRanges(int fd, uint64_t size, std::vector<ByteRange>* out);

// File systems allocate whole blocks: a user's write of a few bytes into a
// punched range makes a block of data whose other bytes are zeros the file
// system filled in, where the archive has the file's bytes. Trims from each
// range the zero bytes at its start and at its end, at most `block` bytes
// each side, so those come from the archive (which costs a user's own
// zeros at the very edge of a write: the archive's bytes come back there).
Status TrimZeroEdges(int fd, uint64_t block, std::vector<ByteRange>* ranges);

// The migration row rebuilt for a marked file that has none: released and
// dirty (the archive is the source of the holes only: what the upper file
// holds may be newer than the archive), `data` resident, and everything at
// or past `archive_size` resident too (bytes the archive never held are the
// user's). archive_size: the files row's size, or nullopt if the row is
// gone (then every hole is non-resident and a read of it fails: EIO).
MigrationRecord ReconciledRecord(const Bfid& bfid, std::optional<uint64_t> archive_size,
                                 const std::vector<ByteRange>& data, uint64_t size,
                                 uint64_t generation, int64_t atime_ns, int64_t mtime_ns);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_ARCHIVE_MARK_H_
