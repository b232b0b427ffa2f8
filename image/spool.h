// Import sources that can be read only once: standard input ("-") and
// what a path may name that is no file (a pipe: `docker save app |
// overtier image import STORE app -`, `zstdcat rootfs.tar.zst >FIFO`).
//
// The importer reads its source more than once: it looks at the first
// entries to tell a plain tar from a `docker save` or OCI archive, and it
// reads an OCI or docker-save archive from the start again for each layer
// it names. So such a source is first copied into a temporary file, in
// the given directory (the store's, whose disk has to hold the image
// anyway; /tmp may be a small tmpfs) and unlinked from the start (O_TMPFILE,
// or a name removed at once): a killed import leaves nothing behind.
#ifndef OVERTIER_IMAGE_SPOOL_H_
#define OVERTIER_IMAGE_SPOOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "overtier/status.h"

namespace overtier {

class SpooledSource {
 public:
  ~SpooledSource();
  SpooledSource(const SpooledSource&) = delete;
  SpooledSource& operator=(const SpooledSource&) = delete;

  // Whether `source` must be spooled: "-", or a path naming a FIFO, a
  // character device or a socket (which a second open would not read from
  // the start).
  static bool Needed(const std::string& source);

  // Copies all of `source` ("-": standard input) into an unlinked file in
  // `dir`, calling progress (if given) with the bytes copied so far after
  // each piece. A read or write error (ENOSPC) names the source.
  static Status Spool(const std::string& source, const std::string& dir,
                      std::unique_ptr<SpooledSource>* out,
                      const std::function<void(uint64_t)>& progress = {});

  // A path that opens the copy (/proc/self/fd/N), valid while this lives.
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // How the source is named in messages: the path given, or "standard input".
  const std::string& shown() const { return shown_; }

  // s with every mention of path() replaced by shown().
  Status Rename(const Status& s) const;

 private:
  SpooledSource() = default;
  int fd_ = -1;
  std::string path_, shown_;
  uint64_t size_ = 0;
};

}  // namespace overtier

#endif  // OVERTIER_IMAGE_SPOOL_H_
