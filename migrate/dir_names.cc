#include "migrate/dir_names.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace overtier {

int ReadDirNames(int fd, std::vector<std::string>* names) {
  names->clear();
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return errno;
  DIR* d = fdopendir(dup_fd);
  if (d == nullptr) {
    int e = errno;
    close(dup_fd);
    return e;
  }
  // The duplicate shares the file offset with `fd`: start from the top
  // whatever was read through it before.
  rewinddir(d);
  errno = 0;
  while (struct dirent* de = readdir(d)) {
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    names->push_back(de->d_name);
  }
  int e = errno;
  closedir(d);
  std::sort(names->begin(), names->end());
  return e;
}

}  // namespace overtier
