#include "image/spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace overtier {

SpooledSource::~SpooledSource() {
  if (fd_ >= 0) close(fd_);
}

bool SpooledSource::Needed(const std::string& source) {
  if (source == "-") return true;
  struct stat st;
  if (stat(source.c_str(), &st) != 0) return false;  // the importer says why
  return S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode);
}

namespace {

// An unlinked file in dir, open for reading and writing.
int OpenUnlinked(const std::string& dir) {
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)) return fd;
  // A file system without O_TMPFILE: a name, removed at once.
  std::string name = dir + "/.overtier-spool-XXXXXX";
  fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return -1;
  if (unlink(name.c_str()) != 0) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

}  // namespace

Status SpooledSource::Spool(const std::string& source, const std::string& dir,
                            std::unique_ptr<SpooledSource>* out,
                            const std::function<void(uint64_t)>& progress) {
  std::unique_ptr<SpooledSource> sp(new SpooledSource);
  sp->shown_ = source == "-" ? "standard input" : source;
  int in = 0;
  if (source != "-") {
    in = open(source.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return Status::FromErrno("open '" + source + "'");
  }
  struct Closer {
    int fd;
    ~Closer() {
      if (fd > 0) close(fd);
    }
  } closer{in};
  sp->fd_ = OpenUnlinked(dir);
  if (sp->fd_ < 0) {
    return Status::FromErrno("a temporary file in '" + dir + "' to hold " + sp->shown_ +
                             " (it is read more than once)");
  }
  std::vector<char> buf(size_t{1} << 20);
  for (;;) {
    ssize_t n = read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read " + sp->shown_);
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(sp->fd_, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        return Status::FromErrno("copy " + sp->shown_ + " into a temporary file in '" + dir + "'");
      }
      done += w;
    }
    sp->size_ += static_cast<uint64_t>(n);
    if (progress) progress(sp->size_);
  }
  sp->path_ = "/proc/self/fd/" + std::to_string(sp->fd_);
  *out = std::move(sp);
  return Status::OK();
}

Status SpooledSource::Rename(const Status& s) const {
  if (s.ok() || path_.empty()) return s;
  std::string m = s.message();
  for (size_t at = m.find(path_); at != std::string::npos; at = m.find(path_, at + shown_.size()))
    m.replace(at, path_.size(), shown_);
  return Status::Errno(s.err(), m);
}

}  // namespace overtier
