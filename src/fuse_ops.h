// The FUSE transport of the daemon (see fuse_ops.cc).
#ifndef OVERTIER_SRC_FUSE_OPS_H_
#define OVERTIER_SRC_FUSE_OPS_H_

#include <functional>

#include "union/params.h"

namespace overtier {

class UnionFs;
class MigrationService;

// Mounts fs on inv.mountpoint, daemonizes unless inv.foreground, and serves
// requests until the file system is unmounted. Returns the exit status:
// 0 after a clean unmount, 2 if the mount could not be made.
// after_daemonize (if set) runs in the process that serves, once the fork
// is behind: the place to start threads of other sessions (image layers).
// mig (if set): the migration tier (store=): control ioctls, the state
// xattr, reads of released files; started after the fork, shut down
// before the session ends.
int ServeFuse(UnionFs* fs, const Invocation& inv, const std::function<void()>& after_daemonize = {},
              MigrationService* mig = nullptr);

}  // namespace overtier

#endif  // OVERTIER_SRC_FUSE_OPS_H_
