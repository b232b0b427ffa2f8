// fsync(2) of a directory by its path: what makes a file created, renamed
// or removed in it durable (store.cc: the store's files; catalog.cc: a new
// catalog's folder).
#ifndef OVERTIER_STORE_SYNC_DIR_H_
#define OVERTIER_STORE_SYNC_DIR_H_

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "overtier/status.h"

namespace overtier {

inline Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open '" + dir + "'");
  Status s;
  if (fsync(fd) != 0) s = Status::FromErrno("fsync '" + dir + "'");
  close(fd);
  return s;
}

}  // namespace overtier

#endif  // OVERTIER_STORE_SYNC_DIR_H_
