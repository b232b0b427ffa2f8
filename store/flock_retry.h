// flock(2) for the store's lock files (store.cc: write.lock, mounts.lock;
// catalog_guard.cc: OVERTIER-READERS.lock).
#ifndef OVERTIER_STORE_FLOCK_RETRY_H_
#define OVERTIER_STORE_FLOCK_RETRY_H_

#include <sys/file.h>

#include <cerrno>

namespace overtier {

// flock(fd, op), restarted when a signal interrupts a blocking wait (a
// handled signal makes flock return EINTR without the lock). 0, or -1
// with errno set as flock sets it (EWOULDBLOCK for a busy LOCK_NB).
inline int Flock(int fd, int op) {
  int r;
  do {
    r = flock(fd, op);
  } while (r != 0 && errno == EINTR);
  return r;
}

}  // namespace overtier

#endif  // OVERTIER_STORE_FLOCK_RETRY_H_
