// What the kernel would ask of the process behind a request: its groups
// and whether it holds CAP_FSETID.
//
// The daemon acts on the layers as root, so the upper file system applies
// the rules that depend on the caller (clearing set-user-ID and
// set-group-ID bits) with root's credentials, which exempt it. Where the
// FUSE client leaves such a rule to the file system, the union applies it
// from the caller's credentials, read from /proc/PID/status (what libfuse's
// fuse_req_getgroups reads too).
#ifndef OVERTIER_UNION_CALLER_H_
#define OVERTIER_UNION_CALLER_H_

#include <sys/types.h>

#include <vector>

#include "union/params.h"

namespace overtier {

struct Ctx;

struct CallerCreds {
  bool cap_fsetid = false;
  std::vector<gid_t> groups;  // fsgid and supplementary groups, disk ids

  bool InGroup(gid_t gid) const;
};

// Reads the caller's credentials. Without a process to ask (pid 0, or one
// that is gone), uid 0 stands for the capability and the request's gid for
// the groups.
CallerCreds ReadCallerCreds(const Ctx& ctx, const std::vector<IdMapping>& gidmap);

// The kernel's in_group_or_capable for group `gid` (a disk id).
bool CallerInGroupOrCapable(const Ctx& ctx, const std::vector<IdMapping>& gidmap, gid_t gid);

// The set-user-ID and set-group-ID bits that a write or truncate by a
// caller clears from a regular file of mode `mode` (the kernel's
// setattr_should_drop_suidgid): none for a caller with CAP_FSETID; else
// set-user-ID always, and set-group-ID when the group may execute the file
// or the caller is not in the file's group.
mode_t SuidSgidToDrop(mode_t mode, bool cap_fsetid, bool in_group);

}  // namespace overtier

#endif  // OVERTIER_UNION_CALLER_H_
