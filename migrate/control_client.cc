#include "migrate/control_client.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace overtier::control {

overtier_ctl_request Request(uint32_t flags, uint64_t offset, uint64_t length) {
  overtier_ctl_request r;
  std::memset(&r, 0, sizeof r);
  r.version = OVERTIER_CTL_VERSION;
  r.flags = flags;
  r.offset = offset;
  r.length = length;
  return r;
}

int Ioctl(int fd, unsigned long cmd, const overtier_ctl_request& request) {
  // The kernel copies the argument in; work on a copy so that `request`
  // can stay const.
  overtier_ctl_request r = request;
  return ioctl(fd, cmd, &r) == 0 ? 0 : errno;
}

int GetState(int fd, overtier_ctl_state* st) {
  std::memset(st, 0, sizeof *st);
  st->version = OVERTIER_CTL_VERSION;
  return ioctl(fd, OVERTIER_IOC_GET_STATE, st) == 0 ? 0 : errno;
}

int Archive(int fd, bool release, uint64_t keep, bool* already) {
  *already = false;
  const int err = Ioctl(fd, OVERTIER_IOC_ARCHIVE,
                        Request(release ? OVERTIER_CTL_RELEASE : 0, release ? keep : 0));
  if (err != EALREADY) return err;
  *already = true;
  return release ? Release(fd, keep) : 0;
}

int Release(int fd, uint64_t keep) { return Ioctl(fd, OVERTIER_IOC_RELEASE, Request(0, keep)); }

int OpenAt(int dirfd, const char* name) {
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  int fd = openat(dirfd, name, kFlags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = openat(dirfd, name, kFlags);  // not the owner
  return fd;
}

}  // namespace overtier::control
