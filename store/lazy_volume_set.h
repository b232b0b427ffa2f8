// A volume set opened on first use.
//
// A RADOS set's connection starts librados' messenger and timer threads.
// The daemon opens its store before fuse_daemonize forks, and threads do
// not survive a fork: a connection made before it hangs every operation in
// the child, forever (the timeouts are librados threads too). So
// Store::Open connects remote sets only when a container is first created,
// opened, listed or removed, in whatever process that happens; a failure
// is returned to that caller and the next use tries again (a cluster that
// was down at mount time is picked up once it is back).
#ifndef OVERTIER_STORE_LAZY_VOLUME_SET_H_
#define OVERTIER_STORE_LAZY_VOLUME_SET_H_

#include <functional>
#include <memory>
#include <string>

#include "store/volume.h"

namespace overtier {

using VolumeSetOpener = std::function<Status(std::unique_ptr<VolumeSet>*)>;

// `name` is what name() answers before (and after) the set is open.
std::unique_ptr<VolumeSet> NewLazyVolumeSet(std::string name, VolumeSetOpener open);

}  // namespace overtier

#endif  // OVERTIER_STORE_LAZY_VOLUME_SET_H_
