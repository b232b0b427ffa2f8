// The FUSE transport of the daemon (see fuse_ops.cc).
#ifndef OVERTIER_SRC_FUSE_OPS_H_
#define OVERTIER_SRC_FUSE_OPS_H_

#include "union/params.h"

namespace overtier {

class UnionFs;

// Mounts fs on inv.mountpoint, daemonizes unless inv.foreground, and serves
// requests until the file system is unmounted. Returns the exit status:
// 0 after a clean unmount, 2 if the mount could not be made.
int ServeFuse(UnionFs* fs, const Invocation& inv);

}  // namespace overtier

#endif  // OVERTIER_SRC_FUSE_OPS_H_
