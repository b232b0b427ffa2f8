// Where a daemonized mount's messages go.
//
// fuse_daemonize points stderr at /dev/null, and the daemon reports what
// nobody is waiting for on stderr: a restore that failed (and why: a
// container missing, both copies damaged), an archive copy written again
// from the other, a policy run. Lost, an administrator would see only EIO.
// So the daemon sends stderr to the file of `log=FILE` when given (appended,
// opened before the mount so that a bad path fails it), and a daemonized
// mount without it to syslog (facility daemon, tagged overtier[PID]), line
// by line, through a pipe and a thread. In the foreground (-f, -d) without
// log=, stderr stays as it is.
//
// Writing to the pipe never blocks the daemon: if the thread cannot keep
// up (syslog stuck), messages are dropped rather than stalling a request.
#ifndef OVERTIER_SRC_DAEMON_LOG_H_
#define OVERTIER_SRC_DAEMON_LOG_H_

#include <memory>
#include <string>
#include <thread>

#include "overtier/status.h"

namespace overtier {

class DaemonLog {
 public:
  // Before the fork: opens `path` for appending (created 0640), or, empty,
  // prepares for syslog.
  static Status Open(const std::string& path, std::unique_ptr<DaemonLog>* out);
  ~DaemonLog();
  DaemonLog(const DaemonLog&) = delete;
  DaemonLog& operator=(const DaemonLog&) = delete;

  // After fuse_daemonize: stderr goes to the log from now on.
  void Start();

 private:
  DaemonLog() = default;
  void Forward(int read_fd);  // the syslog thread

  int file_fd_ = -1;  // log=FILE
  std::thread thread_;
};

}  // namespace overtier

#endif  // OVERTIER_SRC_DAEMON_LOG_H_
