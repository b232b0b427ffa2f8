// The image file system: image layers of the store served to the union as
// plain directories.
//
// The union (union/) works on layers as directory file descriptors. An
// image has no directory on disk, so the daemon serves its images through
// a second, read-only FUSE file system inside the same process, and hands
// the union a descriptor of each layer's root in it: the union reaches an
// image layer as it reaches a plain directory lower. For the questions a
// walk asks (lookup, stat, listing, readlink) it also gets Tree(), which
// answers them in the process instead of through a FUSE round trip
// (docs/ARCHITECTURE-IMAGES.md says why this shape and not another).
//
// One file system serves every image layer of a mount: its root holds one
// directory per layer, named by the image id ("17"), never listed to users.
// It is mounted detached (fsopen/fsconfig/fsmount): the mount exists only
// as a descriptor of this process, appears in no mount table, and goes
// away with the process.
//
// Life cycle, as the daemon drives it around fuse_daemonize's fork (threads
// do not survive a fork, yet the union must read its layers before it):
//
//   ImageFs::Create(store)        store opened read-only and pinned
//   AddImage("NAME")...           the layers to serve
//   Mount()                       mounted; one bootstrap thread answers
//   LayerRootFd(id) -> union      the union opens its layers
//   PauseForFork()                the bootstrap thread ends
//   ... fuse_daemonize ...
//   Start(threads)                the serving threads start
//   ... the union mount is served, then unmounted ...
//   (the union closes every descriptor it had into this file system)
//   Stop()                        mount closed, session ended, threads joined
#ifndef OVERTIER_SRC_IMAGE_FUSE_H_
#define OVERTIER_SRC_IMAGE_FUSE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/store.h"
#include "union/layer.h"

namespace overtier {

// One layer of an image chain, as AddImage reports it.
struct ImageLayer {
  uint64_t image_id = 0;
  std::string name;  // the image's name ("NAME@1" for an OCI lower layer)
};

class ImageFs {
 public:
  // `store` must outlive this (opened read-only, pinned for the mount).
  static Status Create(Store* store, std::unique_ptr<ImageFs>* out);
  ~ImageFs();  // Stop()
  ImageFs(const ImageFs&) = delete;
  ImageFs& operator=(const ImageFs&) = delete;

  // Adds image `name` and every image below it; *layers gets them
  // top-most first. Only before Mount.
  Status AddImage(std::string_view name, std::vector<ImageLayer>* layers);

  // Mounts the file system (detached) and starts answering requests on one
  // bootstrap thread, so that the layer roots can be opened right away.
  // `debug`: log every request on stderr (libfuse's -d).
  Status Mount(bool debug);
  // An O_RDONLY|O_DIRECTORY descriptor of the root of layer `image_id`,
  // owned by this ImageFs (valid until Stop). -1 for an unknown id.
  int LayerRootFd(uint64_t image_id) const;
  // What answers the union's lookups, stats, listings and readlinks in
  // every layer of this file system without a round trip through it
  // (union/layer.h), owned by this ImageFs; valid from Mount until Stop.
  // Null when this kernel's FUSE file handles are not the layout the tree
  // makes (then the union goes through the layer roots).
  ServedTree* Tree() const;

  // The store content of the file open as fd, if fd is a regular file of
  // this file system with content (lazy copy-up adopts it): *found false
  // for anything else (another file system, an empty file).
  Status ContentOf(int fd, Bfid* bfid, bool* found) const;

  // Hard semantics (mount option "hard"): a read whose content does not
  // answer (a RADOS set down: ContentReader's ETIMEDOUT) waits and tries
  // again until it does, or the request is interrupted (EINTR), instead of
  // failing with EIO. Before Mount.
  void set_hard(bool hard);

  // Ends the bootstrap thread: nothing may touch the file system until
  // Start (a request would wait for it).
  void PauseForFork();
  // Starts `threads` serving threads.
  void Start(int threads);
  // Closes the layer roots and the mount, which ends the session once no
  // descriptor into the file system is left (the union's must be closed
  // first), and joins the threads. Idempotent.
  void Stop();

  struct Impl;

 private:
  ImageFs() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace overtier

#endif  // OVERTIER_SRC_IMAGE_FUSE_H_
