#include "migrate/file_handle.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cstring>
#include <memory>

#include "store/catalog_records.h"
#include "store/coding.h"

namespace overtier {

Status GetFileHandleKey(int fd, const std::string& what, FileHandle* out) {
  // MAX_HANDLE_SZ is 128: room for any handle the kernel produces.
  constexpr unsigned kRoom = 128;
  auto buf = std::make_unique<char[]>(sizeof(file_handle) + kRoom);
  auto* h = reinterpret_cast<file_handle*>(buf.get());
  h->handle_bytes = kRoom;
  int mount_id = 0;
  if (name_to_handle_at(fd, "", h, &mount_id, AT_EMPTY_PATH) != 0) {
    return Status::FromErrno("name_to_handle_at of '" + what + "'");
  }
  FileHandle fh;
  PutFixed32(&fh.key, static_cast<uint32_t>(h->handle_type));
  fh.key.append(reinterpret_cast<const char*>(h->f_handle), h->handle_bytes);
  if (fh.key.size() > kMaxFileHandleLen) {
    return Status::InvalidArgument("file handle of '" + what + "' is " +
                                   std::to_string(fh.key.size()) + " bytes, more than " +
                                   std::to_string(kMaxFileHandleLen));
  }
  *out = std::move(fh);
  return Status::OK();
}

Status AddInodeAndGeneration(int fd, const std::string& what, FileHandle* fh) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat of '" + what + "'");
  fh->inode = st.st_ino;
  fh->generation = 0;
  fh->has_generation = false;
  int gen = 0;
  if (ioctl(fd, FS_IOC_GETVERSION, &gen) == 0) {
    fh->generation = static_cast<uint32_t>(gen);
    fh->has_generation = true;
  } else if (fh->key.size() == 4 + 12) {
    // tmpfs (shmem_encode_fh): generation, inode low 32 bits, inode high.
    uint32_t w[3];
    std::memcpy(w, fh->key.data() + 4, sizeof(w));
    if ((uint64_t{w[2]} << 32 | w[1]) == static_cast<uint64_t>(st.st_ino)) {
      fh->generation = w[0];
      fh->has_generation = true;
    }
  }
  return Status::OK();
}

bool FileHandleKeyFromRaw(std::string_view raw, FileHandle* out) {
  file_handle h;
  if (raw.size() < sizeof(h)) return false;
  std::memcpy(&h, raw.data(), sizeof(h));
  if (raw.size() != sizeof(h) + h.handle_bytes || 4 + h.handle_bytes > kMaxFileHandleLen)
    return false;
  FileHandle fh;
  PutFixed32(&fh.key, static_cast<uint32_t>(h.handle_type));
  fh.key.append(raw.substr(sizeof(h)));
  *out = std::move(fh);
  return true;
}

Status GetFileHandle(int fd, const std::string& what, FileHandle* out) {
  FileHandle fh;
  OVT_RETURN_IF_ERROR(GetFileHandleKey(fd, what, &fh));
  OVT_RETURN_IF_ERROR(AddInodeAndGeneration(fd, what, &fh));
  *out = std::move(fh);
  return Status::OK();
}

Status OpenFileHandle(int mount_fd, std::string_view key, int flags, int* fd) {
  if (key.size() <= 4 || key.size() > kMaxFileHandleLen)
    return Status::InvalidArgument("a key of " + std::to_string(key.size()) +
                                   " bytes is not a file handle");
  auto buf = std::make_unique<char[]>(sizeof(file_handle) + key.size() - 4);
  auto* h = reinterpret_cast<file_handle*>(buf.get());
  h->handle_type = static_cast<int>(DecodeFixed32(key.data()));
  h->handle_bytes = static_cast<unsigned>(key.size() - 4);
  std::memcpy(h->f_handle, key.data() + 4, key.size() - 4);
  *fd = open_by_handle_at(mount_fd, h, flags | O_CLOEXEC);
  if (*fd < 0) return Status::FromErrno("open a file by its handle");
  return Status::OK();
}

}  // namespace overtier
