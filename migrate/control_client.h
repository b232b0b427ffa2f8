// The caller's side of the control ABI (include/overtier/control.h): the
// ioctls a program issues on an open file of an overtier mount to read a
// file's migration state and to have the daemon archive, release or
// restore it. Used by the command line (tools/cmd_migrate.cc) and by the
// policy engine (migrate/policy_engine.cc), which must agree on how a
// request is built and on what EALREADY means.
//
// Every function returns 0 or the errno of the failed ioctl (EPERM for a
// caller that is not uid 0, ENOTTY on a file outside an overtier mount or
// on a mount without a store, the state machine's refusals as
// docs/FORMAT.md, "Migration", lists them); none of them keeps state.
#ifndef OVERTIER_MIGRATE_CONTROL_CLIENT_H_
#define OVERTIER_MIGRATE_CONTROL_CLIENT_H_

#include <cstdint>

#include "overtier/control.h"

namespace overtier::control {

// A request for the commands that take overtier_ctl_request: the current
// version, the given fields, everything else (generation, reserved) zero,
// since the daemon refuses non-zero reserved fields.
overtier_ctl_request Request(uint32_t flags, uint64_t offset, uint64_t length = 0);

// Issues `cmd`, one of the OVERTIER_IOC_* taking overtier_ctl_request.
int Ioctl(int fd, unsigned long cmd, const overtier_ctl_request& request);

// OVERTIER_IOC_GET_STATE: fills *st (zeroed and versioned first).
int GetState(int fd, overtier_ctl_state* st);

// OVERTIER_IOC_ARCHIVE, with `release` asking for the release afterwards,
// keeping the first `keep` bytes resident. A file archived already is not
// an error (*already is set): the daemon answers EALREADY without
// releasing anything, so with `release` the release is asked for then,
// and its result is returned.
int Archive(int fd, bool release, uint64_t keep, bool* already);

// OVERTIER_IOC_RELEASE, keeping the first `keep` bytes resident.
int Release(int fd, uint64_t keep);

// Opens dirfd/name for the control ioctls: read-only, never following a
// symlink, never hanging on a fifo, and with O_NOATIME where the caller may
// (the owner, or root): an agent's open is not a user access, and the
// daemon never serves an O_NOATIME open by FUSE passthrough, whose
// descriptor would hold back the release of the file (docs/SEMANTICS.md,
// "Migration tier"). Returns the fd, or -1 with errno set.
int OpenAt(int dirfd, const char* name);

}  // namespace overtier::control

#endif  // OVERTIER_MIGRATE_CONTROL_CLIENT_H_
