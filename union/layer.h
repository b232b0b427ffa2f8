// Layers: the upper directory, the lower directories and the work directory,
// each held as a directory file descriptor. Nothing in union/ reaches a layer
// by joining path strings: every access is *at() relative to these fds or to
// fds derived from them, with O_NOFOLLOW, so a symlink inside a layer can
// never lead the daemon out of it.
#ifndef OVERTIER_UNION_LAYER_H_
#define OVERTIER_UNION_LAYER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "overtier/status.h"
#include "union/params.h"

namespace overtier {

// An owned file descriptor. Shared (FdPtr) so that an fd handed to a request
// stays open even if the cache evicts it from its node meanwhile.
class Fd {
 public:
  explicit Fd(int fd);
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

  // Number of Fd objects alive in the process (for the fd budget).
  static long live();

 private:
  int fd_;
};
using FdPtr = std::shared_ptr<const Fd>;

struct Layer {
  int index = 0;  // 0..n-1; the upper layer (if any) is index 0
  bool upper = false;
  std::string path;  // as given ("image:NAME" for an image layer), for messages only
  int root_fd = -1;  // O_RDONLY|O_DIRECTORY
  dev_t dev = 0;
  unsigned fsidx = 0;   // distinct st_dev number, for inode numbering
  bool handles = true;  // file handles supported (name_to_handle_at)
  // Served by the daemon (an image layer): its files' content is in the
  // store, so a copy-up may adopt it instead of copying (lazy copy-up).
  bool served = false;
};

class LayerSet {
 public:
  ~LayerSet();

  // Opens every layer of opts and prepares the work directory (work/work
  // for atomic copy-up, emptied; work/overtier-index for hard links). A
  // lower with a root_fd (an image layer the daemon serves) is taken from
  // that descriptor (duplicated) instead of a path; an image lower without
  // one is refused.
  static Status Open(const MountOptions& opts, std::unique_ptr<LayerSet>* out);

  bool has_upper() const { return has_upper_; }
  int size() const { return static_cast<int>(layers_.size()); }
  const Layer& layer(int i) const { return layers_[i]; }
  const Layer& upper() const { return layers_[0]; }
  int first_lower() const { return has_upper_ ? 1 : 0; }

  int work_fd() const { return work_fd_; }    // work/work: temporary objects
  int index_fd() const { return index_fd_; }  // work/overtier-index

  // The stable inode number of an object with inode `ino` in layer `i`:
  // the real inode number when all layers share one file system (so `ls
  // -i` matches the layers), else the file-system number in the top bits
  // (overlayfs' "xino" idea).
  uint64_t MixIno(int layer, ino_t ino) const;

 private:
  std::vector<Layer> layers_;
  bool has_upper_ = false;
  unsigned xino_shift_ = 0;  // 0: all layers on one fs
  int work_fd_ = -1;
  int index_fd_ = -1;
  int workdir_fd_ = -1;
};

// Opens, relative to a layer fd, an object again from its file handle, or
// returns an error (ESTALE when the object is gone).
Status OpenByHandle(const Layer& layer, const std::string& handle, int flags, int* fd);
// Gets the file handle of dirfd/name (AT_EMPTY_PATH with name ""); an empty
// handle when the file system has none.
Status GetHandle(int dirfd, const char* name, std::string* handle);

}  // namespace overtier

#endif  // OVERTIER_UNION_LAYER_H_
