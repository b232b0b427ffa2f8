#include "src/daemon.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "src/fuse_ops.h"
#include "src/image_fuse.h"
#include "src/migration.h"
#include "store/store.h"
#include "union/union_fs.h"

namespace overtier {

namespace {

int Fail(const Status& s) {
  // Invalid-argument messages are whole sentences; the others are context
  // that still needs the errno text.
  const std::string msg = s.err() == EINVAL && !s.message().empty() ? s.message() : s.ToString();
  std::fprintf(stderr, "overtier: %s\n", msg.c_str());
  return 2;
}

bool HasImageLowers(const MountOptions& opts) {
  return std::any_of(opts.lowerdirs.begin(), opts.lowerdirs.end(),
                     [](const LowerDir& l) { return l.is_image(); });
}

// Opens the store, serves every image lower through `images` and rewrites
// opts->lowerdirs: each `image:NAME` becomes NAME and the images below it,
// top-most first, each with the root descriptor the union will use.
Status ServeImages(const Invocation& inv, MountOptions* opts, std::unique_ptr<Store>* store,
                   std::unique_ptr<ImageFs>* images) {
  StoreOpenOptions so;
  so.read_only = true;
  OVT_RETURN_IF_ERROR(Store::Open(opts->store, so, store));
  // gc must not delete a container this mount may still read.
  OVT_RETURN_IF_ERROR((*store)->PinForMount());
  OVT_RETURN_IF_ERROR(ImageFs::Create(store->get(), images));
  std::vector<LowerDir> expanded;
  std::vector<uint64_t> ids;  // parallel to expanded; 0 for a directory
  for (const LowerDir& l : opts->lowerdirs) {
    if (!l.is_image()) {
      expanded.push_back(l);
      ids.push_back(0);
      continue;
    }
    std::vector<ImageLayer> layers;
    Status s = (*images)->AddImage(l.image, &layers);
    if (!s.ok()) return Status::Errno(s.err(), "lowerdir " + l.Describe() + ": " + s.message());
    for (const ImageLayer& layer : layers) {
      expanded.push_back(LowerDir::Image(layer.name));
      ids.push_back(layer.image_id);
    }
  }
  OVT_RETURN_IF_ERROR((*images)->Mount(inv.debug));
  for (size_t i = 0; i < expanded.size(); ++i)
    if (ids[i] != 0) expanded[i].root_fd = (*images)->LayerRootFd(ids[i]);
  opts->lowerdirs = std::move(expanded);
  return Status::OK();
}

}  // namespace

int RunMount(const Invocation& inv) {
  Status s = ValidateMountOptions(inv.opts, inv.mountpoint);
  if (!s.ok()) return Fail(s);
  for (const auto& o : inv.opts.ignored)
    if (inv.debug) std::fprintf(stderr, "overtier: ignoring option '%s'\n", o.c_str());

  // Declared before the union: destroyed after it, since the union holds
  // descriptors into the image file system and the store's containers.
  std::unique_ptr<Store> store;
  std::unique_ptr<ImageFs> images;
  MountOptions opts = inv.opts;
  if (HasImageLowers(opts)) {
    s = ServeImages(inv, &opts, &store, &images);
    if (!s.ok()) return Fail(s);
  }
  // The migration tier, for the upper files of a writable mount with a
  // store (src/migration.h).
  std::unique_ptr<MigrationService> mig;
  if (!opts.store.empty() && !opts.upperdir.empty() && !opts.read_only) {
    s = MigrationService::Create(opts.store, &mig);
    if (!s.ok()) return Fail(Status::Errno(s.err(), "store " + opts.store + ": " + s.message()));
  }
  std::unique_ptr<UnionFs> fs;
  s = UnionFs::Create(opts, &fs);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: %s\n", s.ToString().c_str());
    return 2;
  }
  int rc;
  if (images) {
    // fuse_daemonize forks, and threads do not survive a fork: the image
    // file system pauses across it and starts its threads in the child.
    images->PauseForFork();
    const int threads = std::max(2, opts.threads);
    rc = ServeFuse(
        fs.get(), inv, [&images, threads] { images->Start(threads); }, mig.get());
  } else {
    rc = ServeFuse(fs.get(), inv, {}, mig.get());
  }
  mig.reset();
  // The union first: its descriptors into image layers must be closed for
  // the image file system to end.
  fs.reset();
  if (images) images->Stop();
  return rc;
}

}  // namespace overtier
