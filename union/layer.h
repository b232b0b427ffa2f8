// Layers: the upper directory, the lower directories and the work directory,
// each held as a directory file descriptor. Nothing in union/ reaches a layer
// by joining path strings: every access is *at() relative to these fds or to
// fds derived from them, with O_NOFOLLOW, so a symlink inside a layer can
// never lead the daemon out of it.
#ifndef OVERTIER_UNION_LAYER_H_
#define OVERTIER_UNION_LAYER_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// A lower layer the daemon serves itself (an image layer, src/image_fuse.h)
// can also answer the union's questions about its tree in the process.
// The layer stays a directory (root_fd, in the daemon's image file system)
// and every object in it can still be opened there, by file handle; but a
// lookup, stat, listing or readlink through that file system is a FUSE
// round trip inside the process plus a kernel inode and dentry, where the
// tree answers from memory and the catalog. Numbers are those of the
// layer's file system: `ino` is st_ino there, Handle() is what
// name_to_handle_at there gives, Stat() what fstat there gives (st_dev
// aside), so the two ways of reaching an object agree and mix freely.
// Implementations are thread-safe.
class ServedTree {
 public:
  virtual ~ServedTree() = default;
  // The entry `name` of directory `dir`: ENOENT when absent.
  virtual Status Lookup(uint64_t dir, const std::string& name, struct stat* st) = 0;
  virtual Status Stat(uint64_t ino, struct stat* st) = 0;
  // fn(name, ino, d_type) for every entry of directory `dir` but "." and
  // ".."; stops at fn's first error and returns it.
  using DirentFn = std::function<Status(const char* name, uint64_t ino, unsigned char type)>;
  virtual Status ReadDir(uint64_t dir, const DirentFn& fn) = 0;
  // *present false when the object has no such xattr.
  virtual Status GetXattr(uint64_t ino, const std::string& name, std::string* value,
                          bool* present) = 0;
  // Several of the object's xattrs with one read of it: (*values)[i] for
  // names[i], std::nullopt when absent.
  virtual Status GetXattrs(uint64_t ino, const std::vector<std::string_view>& names,
                           std::vector<std::optional<std::string>>* values) = 0;
  virtual Status ReadLink(uint64_t ino, std::string* target) = 0;
  // The file handle of `ino` (the bytes GetHandle stores), for
  // OpenByHandle through the layer's root.
  virtual std::string Handle(uint64_t ino) = 0;
};

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
  // Served layers only: answers lookups, stats and listings in the process
  // (null: every access goes through root_fd).
  ServedTree* tree = nullptr;
  // A lower reached through an id-mapped mount (MOUNT_ATTR_IDMAP): the ids
  // it reports are those of the mount's users already, so uidmapping= and
  // gidmapping= do not apply to what it shows, and a copy-up maps them back
  // to disk ids for the upper. containers/storage of Debian 12's podman
  // (4.3) hands a mount program its lowers like that for a container with
  // --uidmap, and the mapping as well, which the upper needs.
  bool idmapped = false;
};

// Whether fd's mount is id-mapped (its /proc/self/mountinfo entry says
// "idmapped"). False when that cannot be told.
bool OnIdmappedMount(int fd);

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

  // Whiteouts in the upper are ".wh.NAME" files beside the name (AUFS
  // style, as fuse-overlayfs writes them there) instead of 0/0 character
  // devices, which the upper file system refuses (an overlayfs). Renames
  // then leave their whiteout in two steps (no RENAME_WHITEOUT there).
  bool whiteout_files() const { return whiteout_files_; }

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
  bool whiteout_files_ = false;
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
