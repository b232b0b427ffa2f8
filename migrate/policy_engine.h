// The policy engine's I/O half (docs/POLICY.md): walks a directory tree
// of an overtier mount through the kernel, gathers each regular file's
// facts (stat, the control ioctl GET_STATE, the xattr
// user.overtier.norelease), lets migrate/policy.h decide, and carries the
// plan out with the control ioctls ARCHIVE and RELEASE
// (include/overtier/control.h).
//
// Used by `overtier policy run|check` (tools/cmd_policy.cc) and by the
// daemon's periodic mode (-o policy=FILE, src/daemon.cc), which walks its
// own mount point from a thread of its own: never call it on a FUSE
// request thread of the mount it walks.
//
// The walk opens every file O_RDONLY | O_NOFOLLOW | O_NONBLOCK, goes down
// directories with openat() relative to their parent's descriptor, never
// follows a symlink and never leaves the file system of the root (another
// mount below it is skipped). Only regular files are candidates: whiteouts
// are never visible through a mount, and opaque and redirect directories
// are directories, so neither can be archived or released.
#ifndef OVERTIER_MIGRATE_POLICY_ENGINE_H_
#define OVERTIER_MIGRATE_POLICY_ENGINE_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "migrate/policy.h"
#include "overtier/status.h"

namespace overtier {

struct PolicyRunOptions {
  bool dry_run = false;  // gather and plan only
  // Checked between files: a set flag ends the run early (ECANCELED).
  const std::atomic<bool>* stop = nullptr;
};

// One failure of the run; the run goes on with the next file.
struct PolicyError {
  std::string path;  // relative to the root ("" for the root itself)
  std::string op;    // "walk", "status", "archive", "release"
  int err = 0;
  std::string message;  // the system's words, when more than strerror
};

struct PolicyRunResult {
  int64_t now_ns = 0;  // the time ages were measured against
  std::vector<FileFacts> files;
  Plan plan;
  std::vector<int> outcome;             // per plan action: 0 done, -1 not run, else the errno
  std::optional<Usage> before, after;   // after: only when not a dry run
  uint64_t skipped = 0;                 // entries neither regular files nor directories
  uint64_t archived = 0, released = 0;  // files (archive+release counts in both)
  uint64_t released_bytes = 0;          // expected frees of the releases done
  std::vector<PolicyError> errors;
};

// Runs the rules on the tree at `root` (a directory of an overtier mount).
// Returns an error only when the run could not start (root missing, not a
// directory) or was stopped; per-file failures are in result->errors.
Status RunPolicy(const PolicyRules& rules, const std::string& root, const PolicyRunOptions& options,
                 PolicyRunResult* result);
// The same for the directory root_fd refers to (an O_PATH descriptor will
// do: the daemon's runs walk a detached clone of the mount, src/daemon.cc).
Status RunPolicyAt(const PolicyRules& rules, int root_fd, const PolicyRunOptions& options,
                   PolicyRunResult* result);

// The usage of the file system holding `fd` (statvfs; an overtier mount
// reports its upper file system's).
Status UsageOf(int fd, Usage* out);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_POLICY_ENGINE_H_
