// Status: the result of an operation that can fail.
//
// overtier is a file system, so every failure must in the end become an
// errno for the kernel. A Status therefore carries an errno value (0 = OK)
// and, for the failures a person will read (command line, logs), a message.
// The OK path carries no allocation, which matters on FUSE request paths.
#ifndef OVERTIER_STATUS_H_
#define OVERTIER_STATUS_H_

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace overtier {

class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status OK() { return Status(); }
  // An errno value with an optional human-readable context.
  static Status Errno(int err, std::string msg = {}) { return Status(err, std::move(msg)); }
  // The current errno, with context (call right after the failing syscall).
  static Status FromErrno(std::string msg = {}) { return Status(errno, std::move(msg)); }
  static Status InvalidArgument(std::string msg) { return Status(EINVAL, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(EIO, std::move(msg)); }
  static Status NotFound(std::string msg = {}) { return Status(ENOENT, std::move(msg)); }

  bool ok() const { return err_ == 0; }
  // Positive errno value; 0 when ok().
  int err() const { return err_; }
  const std::string& message() const { return msg_; }

  // "context: strerror" or "OK".
  std::string ToString() const {
    if (ok()) return "OK";
    std::string s = msg_;
    if (!s.empty()) s += ": ";
    s += std::strerror(err_);
    return s;
  }

 private:
  Status(int err, std::string msg) : err_(err == 0 ? EIO : err), msg_(std::move(msg)) {}

  int err_ = 0;
  std::string msg_;
};

// Evaluates an expression yielding a Status and returns it if not ok.
#define OVT_RETURN_IF_ERROR(expr)       \
  do {                                  \
    ::overtier::Status _ovt_s = (expr); \
    if (!_ovt_s.ok()) return _ovt_s;    \
  } while (0)

}  // namespace overtier

#endif  // OVERTIER_STATUS_H_
