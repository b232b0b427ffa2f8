#include "src/daemon_log.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace overtier {

Status DaemonLog::Open(const std::string& path, std::unique_ptr<DaemonLog>* out) {
  std::unique_ptr<DaemonLog> log(new DaemonLog());
  if (!path.empty()) {
    log->file_fd_ = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log->file_fd_ < 0) return Status::FromErrno("log file " + path);
  }
  *out = std::move(log);
  return Status::OK();
}

DaemonLog::~DaemonLog() {
  if (file_fd_ >= 0) close(file_fd_);
  // The syslog thread reads until every write end is closed, which is at
  // the process's exit: it is left to end with the process.
  if (thread_.joinable()) thread_.detach();
}

void DaemonLog::Start() {
  std::fflush(stderr);
  if (file_fd_ >= 0) {
    dup2(file_fd_, STDERR_FILENO);
    return;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return;  // stderr stays /dev/null
  // Never block a writer: a message the thread has no room for is lost.
  fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
  dup2(p[1], STDERR_FILENO);
  close(p[1]);
  openlog("overtier", LOG_PID, LOG_DAEMON);
  const int read_fd = p[0];
  thread_ = std::thread([this, read_fd] { Forward(read_fd); });
}

void DaemonLog::Forward(int read_fd) {
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = read(read_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = pending.substr(start, nl - start);
      // The daemon's own prefix is syslog's tag already.
      if (line.rfind("overtier: ", 0) == 0) line.erase(0, 10);
      if (!line.empty()) syslog(LOG_WARNING, "%s", line.c_str());
    }
    pending.erase(0, start);
  }
  if (!pending.empty()) syslog(LOG_WARNING, "%s", pending.c_str());
  close(read_fd);
}

}  // namespace overtier
