// The identity of an upper file for the migration tier: the handle
// name_to_handle_at(2) gives (the key of its `migration` record), and its
// inode number and generation.
//
// The handle, not the path, identifies the file: renames and hard links do
// not change it, and a file deleted and replaced by another with the same
// inode number gets another generation, hence another handle. The record's
// generation field repeats the generation so a record found by other means
// (a scan, an inode-keyed index) can be checked against the file.
//
// The generation comes from FS_IOC_GETVERSION (ext4, xfs, btrfs...). tmpfs
// does not answer that ioctl, but its handles are (generation, inode low,
// inode high) as three u32s, which is recognized when the inode matches.
// On other file systems without either, the generation is 0 and
// has_generation is false: the handle still changes with the generation on
// every file system that supports handles, so only the extra check is lost.
#ifndef OVERTIER_MIGRATE_FILE_HANDLE_H_
#define OVERTIER_MIGRATE_FILE_HANDLE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "overtier/status.h"

namespace overtier {

struct FileHandle {
  // The catalog key: the u32 handle type (little-endian), then the handle's
  // bytes; at most kMaxFileHandleLen (128) bytes.
  std::string key;
  uint64_t inode = 0;
  uint64_t generation = 0;
  bool has_generation = false;
  bool operator==(const FileHandle&) const = default;
};

// The handle of the open file fd. `what` names the file in messages.
// EOPNOTSUPP if the file system has no handles, EINVAL for a handle longer
// than a catalog key may be.
Status GetFileHandle(int fd, const std::string& what, FileHandle* out);

// The same in two steps, for callers that need the inode and generation
// only sometimes: GetFileHandleKey fills key alone (one system call), and
// AddInodeAndGeneration the rest (two more), for the same fd.
Status GetFileHandleKey(int fd, const std::string& what, FileHandle* out);
Status AddInodeAndGeneration(int fd, const std::string& what, FileHandle* fh);

// The key of a handle name_to_handle_at(2) gave earlier: `raw` holds its
// struct file_handle (handle_bytes, handle_type, f_handle). False if raw
// is not one.
bool FileHandleKeyFromRaw(std::string_view raw, FileHandle* out);

// Opens the file whose handle key (FileHandle::key) is `key`, on the file
// system of mount_fd (any descriptor on it), with open(2) flags (without
// O_CREAT): ESTALE once the file is gone, EINVAL for a key that is no
// handle. Needs CAP_DAC_READ_SEARCH, as open_by_handle_at(2) does.
Status OpenFileHandle(int mount_fd, std::string_view key, int flags, int* fd);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_FILE_HANDLE_H_
