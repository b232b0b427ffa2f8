// Mount parameters: parsing the fuse-overlayfs-compatible command line and
// checking the layers before anything is mounted (the overlayfs "params.c").
//
// Two command-line forms reach here:
//   overtier mount [-f] [-d] -o OPTS MOUNTPOINT        (people)
//   overtier [-f] [-d] -o OPTS MOUNTPOINT              (containers/storage
//                                                       mount_program form)
// and `--version` / `-V`, `--help` / `-h`. Several -o may be given; their
// options are joined. Empty options (",," and a trailing ",") are ignored.
#ifndef OVERTIER_UNION_PARAMS_H_
#define OVERTIER_UNION_PARAMS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "overtier/status.h"

namespace overtier {

class ServedTree;  // union/layer.h

// One range of an id mapping, fuse-overlayfs' `uidmapping=DISK:MOUNT:COUNT`
// (several ranges joined by ':'; containers/storage writes a leading ':'):
// ids DISK.. as stored on the layers' disks are MOUNT.. as seen through the
// mount. containers/storage writes ContainerID:HostID:Size, since it keeps
// a container's layers with the ids of the container (an image's root owns
// its files as 0) and the container's processes run as host ids.
struct IdMapping {
  uint32_t disk = 0;
  uint32_t mount = 0;
  uint32_t count = 0;
};

// One entry of lowerdir=: a directory, or an image of the store
// (`image:NAME`, which the daemon expands into NAME and the images below it).
struct LowerDir {
  std::string path;   // a directory; empty for an image
  std::string image;  // an image name; empty for a directory
  // An open directory fd of the layer's root, supplied by the daemon for
  // an image layer it serves (src/image_fuse.h); LayerSet uses it (dup'ed)
  // instead of opening `path`. Not owned. -1: open `path`.
  int root_fd = -1;
  // With root_fd: what answers the union's lookups in that layer without
  // system calls (union/layer.h). Not owned; may stay null.
  ServedTree* tree = nullptr;

  LowerDir() = default;
  // A directory (implicit: a list of paths reads as a list of lowers).
  LowerDir(std::string p) : path(std::move(p)) {}  // NOLINT(google-explicit-constructor)
  static LowerDir Dir(std::string p) { return LowerDir(std::move(p)); }
  static LowerDir Image(std::string name) {
    LowerDir l;
    l.image = std::move(name);
    return l;
  }
  bool is_image() const { return !image.empty(); }
  // "image:NAME" or the path, as people wrote it.
  std::string Describe() const { return is_image() ? "image:" + image : path; }
  bool operator==(const LowerDir&) const = default;
};

// policy_interval= when policy= comes without it: every five minutes.
inline constexpr int kDefaultPolicyInterval = 300;
// Default of "spin=": long enough to catch the next request of a serial
// workload (its gap after an answer is ~10-30 us here), short enough that
// a miss costs little CPU (docs/BENCHMARKS.md, "Polling /dev/fuse").
inline constexpr unsigned kDefaultSpinUs = 100;

struct MountOptions {
  // Top-most first, as given. In lowerdir= entries are ':'-separated, so
  // `image:NAME` arrives as an entry "image" followed by the name; a
  // directory named "image" is written "./image" (or with a path).
  std::vector<LowerDir> lowerdirs;
  std::string store;                // "store=PATH": the store image lowers come from
  std::string upperdir;             // empty: read-only union
  std::string workdir;              // required iff upperdir is set
  bool is_volatile = false;         // "volatile": skip fsync (like overlayfs)
  bool read_only = false;           // "ro"
  bool allow_other = false;         // "allow_other": see AllowsOtherUsers
  bool allow_root = false;          // "allow_root"
  bool owner_only = false;          // "noallow_other": see AllowsOtherUsers
  bool default_permissions = true;  // kernel permission checks; always on
  bool userxattr = false;           // overlay xattrs in user.overlay.*
  bool suid = true;                 // "suid"/"nosuid" (root default: suid)
  bool dev = true;                  // "dev"/"nodev" (root default: dev)
  bool exec = true;                 // "exec"/"noexec"
  bool noatime = false;             // "noatime" (relatime etc. accepted)
  std::vector<IdMapping> uidmap;    // empty: identity
  std::vector<IdMapping> gidmap;
  // fuse-overlayfs' "squash_to_uid=N" / "squash_to_gid=N" ("squash_to_root":
  // both 0): every object shows that owner through the mount; the disks
  // keep theirs. containers/storage passes them instead of uidmapping= for
  // a mapping of one id (`podman run --uidmap 0:1000:1`). -1: not given.
  int64_t squash_uid = -1;
  int64_t squash_gid = -1;
  double timeout = 1.0;  // "timeout=SECS" entry/attr cache time
  // "writeback=1" (the default without store=, as fuse-overlayfs): the
  // kernel's writeback cache, which merges small writes into large WRITEs.
  // The kernel then owns size and mtime until it pushes them back, and a
  // full upper file system shows at fsync or close rather than at write
  // (docs/SEMANTICS.md). "writeback=0" writes through. With store= the
  // migration tier must see each write as it is made, so the cache is off
  // there (and writeback=1 is refused): see UsesWritebackCache.
  bool writeback = true;
  bool writeback_given = false;
  // "passthrough=1" (the default without store=): the kernel reads and
  // writes open files of the upper layer (and of the lowers of a read-only
  // mount) itself (src/fuse_passthrough.h). The kernel takes it or the
  // writeback cache, not both: passthrough wins unless writeback=1 is
  // given. "passthrough=0": every read and write goes through the daemon.
  bool passthrough = true;
  int threads = 1;  // "threads=N": request-loop threads (1..64)
  // "spin=MICROSECONDS" (0..1000): how long at most a request-loop thread
  // polls /dev/fuse before it sleeps (adaptive; 0 never polls). See
  // src/session_receive.h for why.
  unsigned spin_us = kDefaultSpinUs;
  // "policy=FILE": the daemon runs the policy engine's rules (docs/POLICY.md)
  // on its own mount every `policy_interval` seconds
  // ("policy_interval=SECS", 1..604800, default kDefaultPolicyInterval).
  // Needs store= and a writable upper.
  std::string policy;
  int policy_interval = 0;  // 0: not given
  // "log=FILE": the daemon appends its messages (a restore that failed, an
  // archive copy repaired, the policy engine's runs) to FILE; without it a
  // daemonized mount sends them to syslog (facility daemon), one in the
  // foreground (-f, -d) leaves them on stderr. See src/daemon_log.h.
  std::string log;
  // "hard" / "soft" (the default), as for NFS: when the store's archive or
  // image content does not answer (a RADOS cluster down or slow), a reader
  // waits until it does (hard) or gets EIO after the volume set's timeout
  // (soft). Needs store=.
  bool hard = false;
  // "restore=whole" (the default) / "restore=ondemand": whether a read of
  // a released range also restores the rest of the file in the background
  // (whole) or only what readers ask for (ondemand: a huge file read in a
  // few places never comes back whole). An explicit `overtier restore`
  // restores what it names either way. Needs store=.
  bool restore_on_demand = false;
  // "lazy_copyup=on" (the default) / "off": a copy-up of an image file
  // adopts the image's content as the upper file's archive instead of
  // copying it (docs/SEMANTICS.md, Lazy copy-up); off copies the data as
  // for a plain lower. Needs store=.
  bool lazy_copyup = true;
  // "restore_clone=on" (the default) / "off": a restore shares the
  // archive's blocks with the upper file where the file system can
  // (migrate/restorer.h); off always writes a copy, so that the restored
  // file and its archive copy share no block (a bad block of the disk then
  // damages one of them, not both). Needs store=.
  bool restore_clone = true;
  // "acl" (the default) / "noacl" (as fuse-overlayfs): the kernel checks
  // POSIX ACLs too (FUSE_POSIX_ACL) and leaves the umask to the daemon, so
  // that new objects inherit default ACLs. noacl: mode bits only; ACLs are
  // then stored and copied as xattrs but not enforced.
  bool acl = true;
  std::string fsname;  // "fsname=NAME"; the command line defaults it to "overtier"
  // Options accepted for compatibility with the kernel overlayfs and
  // fuse-overlayfs whose effect overtier has anyway or that do not apply
  // (redirect_dir=, metacopy=, index=, xino=, fsync=, context=, ...). Kept
  // so the daemon can log that it ignored them.
  std::vector<std::string> ignored;
};

// Whether users other than the daemon's may use the mount (FUSE's
// allow_other). Asked for, or by default when the daemon runs as root, as
// fuse-overlayfs does: containers/storage never passes allow_other, yet a
// container's processes that are not root (`podman run --user 1000`) must
// reach its root file system, and any user may enter a kernel overlayfs.
// default_permissions is always on, so the kernel checks every user's
// access against the modes and ACLs as on a disk. "noallow_other" keeps a
// root mount to root; "allow_root" (root and the owner) also takes the
// place of the default, since FUSE takes one of the two.
inline bool AllowsOtherUsers(const MountOptions& o, uid_t euid) {
  if (o.allow_other) return true;
  return euid == 0 && !o.allow_root && !o.owner_only;
}

// Whether the FUSE connection asks for the kernel's writeback cache.
inline bool UsesWritebackCache(const MountOptions& o) {
  return o.writeback && o.store.empty() && !o.read_only;
}
// Whether the FUSE connection asks for passthrough (the kernel may still
// refuse it; the writeback cache is then asked for instead). With a store,
// only upper files without a migration record take it (src/fuse_ops.cc).
inline bool WantsPassthrough(const MountOptions& o) {
  return o.passthrough && !(o.writeback_given && o.writeback);
}

struct Invocation {
  MountOptions opts;
  std::string mountpoint;
  bool foreground = false;  // -f
  bool debug = false;       // -d (implies foreground)
  bool show_version = false;
  bool show_help = false;
};

// Parses a comma-separated option string (the text after -o) into *opts,
// adding to what is already there. Unknown options are an error naming
// the option.
Status ParseMountOptionString(const std::string& text, MountOptions* opts);

// Parses argv (argv[0] is the program or the "mount" word; options start at
// argv[1]). Fills *inv; errors name the offending argument.
Status ParseMountCommandLine(int argc, const char* const* argv, Invocation* inv);

// Checks the file system side of the options: every directory layer exists
// and is a directory (symlinked paths such as containers/storage's l/SHORT links are
// resolved), upperdir is writable, upperdir is not inside a lowerdir (and no
// lowerdir inside upperdir), workdir is on the same file system as upperdir
// and is neither inside upperdir nor contains it (nor any lowerdir), the mount
// point is a directory, not inside any layer, and not already a mount point of
// a FUSE or overlay file system; the store (when image lowers name one) is a
// directory and not inside the mount point (the daemon opens its containers
// while it serves). Image entries themselves are checked by the daemon,
// which opens the store. Returns the first problem as a message a person can
// act on.
Status ValidateMountOptions(const MountOptions& opts, const std::string& mountpoint);

// A writable union keeps its marks in trusted.overlay.* xattrs of the upper
// layer, which only a process with CAP_SYS_ADMIN may write: a daemon
// without it (a user's mount, a rootless container's mount_program) would
// fail every copy-up with EPERM. So when opts asks for trusted.* (no
// userxattr) and setting one on the work directory is refused with EPERM,
// this switches opts to userxattr (user.overlay.*, as the kernel overlayfs
// uses it in a user namespace and suggests when it meets the same refusal)
// and says so in *note; otherwise it changes nothing and leaves *note
// empty. Other errors (an upper without xattrs) are left to the mount.
void ChooseXattrNamespace(MountOptions* opts, std::string* note);

// Maps an id through the table (identity when empty). ToMount: disk id ->
// id seen through the mount; ToDisk: the reverse. Unmapped ids become the
// overflow id 65534.
uint32_t MapIdToMount(const std::vector<IdMapping>& map, uint32_t disk);
uint32_t MapIdToDisk(const std::vector<IdMapping>& map, uint32_t mount);

}  // namespace overtier

#endif  // OVERTIER_UNION_PARAMS_H_
