#include "store/info_log.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

namespace overtier {

std::shared_ptr<rocksdb::Logger> InfoLog::ForCatalog(const std::string& dir,
                                                     rocksdb::InfoLogLevel level) {
  const std::string log = dir + "/LOG";
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const uint64_t micros =
      static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  // ENOENT: the first open. Any other failure: we append to the old LOG.
  (void)rename(log.c_str(), (log + ".old." + std::to_string(micros)).c_str());
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return std::make_shared<InfoLog>(fd, level);
}

InfoLog::InfoLog(int fd, rocksdb::InfoLogLevel level) : rocksdb::Logger(level), fd_(fd) {}

InfoLog::~InfoLog() {
  if (!closed_) {
    closed_ = true;
    (void)CloseImpl();
  }
}

rocksdb::Status InfoLog::CloseImpl() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return rocksdb::Status::OK();
}

void InfoLog::Logv(const char* format, va_list ap) {
  if (fd_ < 0) return;
  // One line, one write(2) (O_APPEND): lines of concurrent threads do not
  // interleave. Same prefix as RocksDB's: local time and thread id.
  char line[1024];
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  tm t;
  localtime_r(&now.tv_sec, &t);
  int n = std::snprintf(line, sizeof(line), "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %lx ",
                        t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        now.tv_nsec / 1000, static_cast<long>(syscall(SYS_gettid)));
  if (n < 0) return;
  va_list copy;
  va_copy(copy, ap);
  const int m = std::vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n), format, copy);
  va_end(copy);
  if (m < 0) return;
  size_t len = std::min(sizeof(line) - 1, static_cast<size_t>(n) + static_cast<size_t>(m));
  if (len == sizeof(line) - 1) len = sizeof(line) - 2;  // cut: keep room for the newline
  if (len == 0 || line[len - 1] != '\n') line[len++] = '\n';
  // A failed or short write drops the line: the log is best effort.
  ssize_t w;
  do {
    w = write(fd_, line, len);
  } while (w < 0 && errno == EINTR);
}

}  // namespace overtier
