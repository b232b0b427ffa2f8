// IoGate: the shared mutex a migrated file's readers hold from their look at
// the residency map until they have read (shared), and a release takes while
// it publishes the ranges it will punch (exclusive) (src/migration.h).
//
// Writer-preferring: once a release waits, new readers wait behind it. With
// std::shared_mutex (glibc's default rwlock prefers readers), a file read
// without pause by a few threads could keep the gate shared for ever: the
// release would wait as long, and with it every write to the file, which
// waits for the lock the release holds meanwhile (the file's modify_mu).
// No thread may take the gate shared twice (a waiting release would then
// deadlock it); none does.
#ifndef OVERTIER_SRC_IO_GATE_H_
#define OVERTIER_SRC_IO_GATE_H_

#include <pthread.h>

namespace overtier {

class IoGate {
 public:
  IoGate() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&rw_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~IoGate() { pthread_rwlock_destroy(&rw_); }
  IoGate(const IoGate&) = delete;
  IoGate& operator=(const IoGate&) = delete;

  // Lockable and SharedLockable: for std::unique_lock and std::shared_lock.
  void lock() { pthread_rwlock_wrlock(&rw_); }
  bool try_lock() { return pthread_rwlock_trywrlock(&rw_) == 0; }
  void unlock() { pthread_rwlock_unlock(&rw_); }
  void lock_shared() { pthread_rwlock_rdlock(&rw_); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&rw_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&rw_); }

 private:
  pthread_rwlock_t rw_;
};

}  // namespace overtier

#endif  // OVERTIER_SRC_IO_GATE_H_
