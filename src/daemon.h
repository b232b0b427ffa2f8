// The mount daemon: from a parsed command line to a served mount.
#ifndef OVERTIER_SRC_DAEMON_H_
#define OVERTIER_SRC_DAEMON_H_

#include "union/params.h"

namespace overtier {

// Checks the layers, serves the image lowers (lowerdir=image:NAME, from
// store=; src/image_fuse.h), builds the union and serves it. Returns the process
// exit status; every failure before the mount is ready prints one clear
// line on stderr and returns 2 with nothing mounted.
int RunMount(const Invocation& inv);

}  // namespace overtier

#endif  // OVERTIER_SRC_DAEMON_H_
