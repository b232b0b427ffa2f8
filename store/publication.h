// Sharing images between stores: a store publishes an image as a manifest
// object beside the containers holding its content (`overtier image push`),
// and other stores pull the manifest into their own catalogs (`overtier
// image pull`), reading the content from those containers where they are:
// many machines mount one image kept once in a RADOS pool, each with its
// own upper layer.
//
//   publisher A                         pool (A's namespace)       puller B
//   catalog rows of IMG  --push-->  obj.img-<hash>  + vv.* <--pull/read--  catalog rows
//                                                                           + remote set
//
// A pulled image's containers stay the publisher's: B records them as
// remote volumes (VolumeRecord::kRemote, the publisher's vv id beside B's
// own) in a remote set of its store.conf (RemoteSetConfig), reads them
// checking the publisher's store id, set name and vv id, and never writes,
// compacts or removes them. The publisher's gc in turn keeps every
// container a publication points into, whole (no compaction), until the
// publication is withdrawn (`overtier image push --delete`), even after
// the image itself was removed from its catalog.
//
// Layers: a pulled image brings the layers it stacks on. The top one gets
// the name asked for; each layer below is named
// "NAME@<first 16 hex digits of the publisher's store id>.<its image id
// there>", an identity (images are immutable and ids never reused), so a
// later pull of another image on the same base reuses it.
#ifndef OVERTIER_STORE_PUBLICATION_H_
#define OVERTIER_STORE_PUBLICATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/publication_format.h"
#include "store/store.h"

namespace overtier {

struct PushReport {
  std::string set;  // where it was published
  std::string object;
  size_t layers = 0, files = 0, volumes = 0, pieces = 0;
  uint64_t manifest_bytes = 0;
};

// Publishes image `name` of `store` (opened for writing: gc must not move
// content meanwhile) in volume set `set_name`; empty: the store's only
// RADOS set. Every file of the image and of its layers needs a copy all in
// that set (EINVAL naming the first that has none); a publication of the
// same name is replaced.
Status PushImage(Store* store, std::string_view name, std::string set_name, PushReport* report);

// Withdraws the publication of `name` from `set_name` (empty: as above).
// Stores that pulled it keep their rows, but their reads fail once the
// publisher's gc removes the containers. ENOENT if there is none.
Status WithdrawImage(Store* store, std::string_view name, std::string set_name,
                     std::string* set_used);

struct PullReport {
  std::string name;        // the pulled image's name in this store
  std::string remote_set;  // the remote set its content is read through
  size_t layers_added = 0, layers_reused = 0, files = 0, volumes_added = 0;
};

// Pulls the publication of image `name` from the location `from` (a RADOS
// spec "rados:POOL?...ns=..." or a volume set folder of the publisher) into
// `store` (opened for writing), as image `as` (empty: `name`). One catalog
// batch: the pull happens whole or not at all. EEXIST if the store already
// has an image of that name.
Status PullImage(Store* store, std::string_view name, const std::string& from, std::string as,
                 PullReport* report);

// Reads the publication of `image_name` from `set`. ENOENT if none.
Status ReadPublication(VolumeSet* set, std::string_view image_name, Publication* out);

// Every publication in `set` (for gc). A manifest that cannot be read is
// named in *unreadable (its object name and why) instead of failing.
Status ReadAllPublications(VolumeSet* set, std::vector<Publication>* out,
                           std::vector<std::string>* unreadable);

}  // namespace overtier

#endif  // OVERTIER_STORE_PUBLICATION_H_
