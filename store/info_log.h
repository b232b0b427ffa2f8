// The catalog's info log (RocksDB's LOG file), written by us, best effort.
//
// Why not RocksDB's own logger: librocksdb 7.8 as Debian 12 builds it keeps
// its assertions, and its logger appends again after a failed append, which
// trips one (`sync_without_flush_called_`, fixed upstream in 2023 by
// facebook/rocksdb#11314). A full disk under the catalog then turned a
// clean "No space left on device" into SIGABRT of the whole process (an
// import, gc, a mount's daemon). Here a line that cannot be written is
// dropped; the catalog's data writes still report their own errors.
#ifndef OVERTIER_STORE_INFO_LOG_H_
#define OVERTIER_STORE_INFO_LOG_H_

#include <rocksdb/env.h>

#include <cstdarg>
#include <memory>
#include <string>

namespace overtier {

class InfoLog : public rocksdb::Logger {
 public:
  // Logs to DIR/LOG, as RocksDB does: an existing LOG is renamed to
  // LOG.old.<microseconds> first (RocksDB's keep_log_file_num prunes
  // those). A LOG that cannot be created (a read-only store, a full disk)
  // gives a logger that drops everything: logging never fails an open.
  static std::shared_ptr<rocksdb::Logger> ForCatalog(const std::string& dir,
                                                     rocksdb::InfoLogLevel level);

  // Logs to fd (taken: closed by the destructor; -1 drops everything).
  InfoLog(int fd, rocksdb::InfoLogLevel level);
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;

 protected:
  rocksdb::Status CloseImpl() override;

 private:
  int fd_;
};

}  // namespace overtier

#endif  // OVERTIER_STORE_INFO_LOG_H_
