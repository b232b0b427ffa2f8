#include "store/catalog_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include "store/flock_retry.h"

namespace overtier {

namespace {

// The default file system, with deletions under the exclusive lock.
class GuardedFs : public rocksdb::FileSystemWrapper {
 public:
  GuardedFs(std::shared_ptr<rocksdb::FileSystem> base, int lock_fd)
      : FileSystemWrapper(std::move(base)), lock_fd_(lock_fd) {}
  ~GuardedFs() override { close(lock_fd_); }

  const char* Name() const override { return "OvertierGuardedFs"; }

  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    // Without the lock the deletion still happens: refusing it would only
    // stop the writer; an unlucky reader retries.
    const bool locked = Flock(lock_fd_, LOCK_EX) == 0;
    rocksdb::IOStatus s = FileSystemWrapper::DeleteFile(f, options, dbg);
    if (locked) Flock(lock_fd_, LOCK_UN);
    return s;
  }

 private:
  const int lock_fd_;
};

}  // namespace

Status NewCatalogWriterEnv(const std::string& dir, std::unique_ptr<rocksdb::Env>* out) {
  const std::string path = dir + "/" + kReadersLockName;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::FromErrno("catalog '" + dir + "': cannot create " + kReadersLockName);
  auto fs = std::make_shared<GuardedFs>(rocksdb::FileSystem::Default(), fd);
  *out = rocksdb::NewCompositeEnv(fs);
  return Status::OK();
}

CatalogReadGuard::CatalogReadGuard(const std::string& dir) {
  const std::string path = dir + "/" + kReadersLockName;
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd_ >= 0 && Flock(fd_, LOCK_SH) != 0) {
    close(fd_);
    fd_ = -1;
  }
}

CatalogReadGuard::~CatalogReadGuard() {
  if (fd_ >= 0) close(fd_);  // closing the last descriptor drops the lock
}

}  // namespace overtier
