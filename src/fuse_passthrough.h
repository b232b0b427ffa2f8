// FUSE passthrough (Linux 6.9+) on libfuse 3.14, which predates it.
//
// With passthrough the kernel reads and writes an open file's backing file
// itself: no READ or WRITE request reaches the daemon. Sequential I/O then
// runs at the speed of the kernel overlayfs (docs/BENCHMARKS.md).
//
// libfuse 3.14 knows neither the INIT flag nor the open reply's backing id,
// so the transport (fuse_ops.cc) sends its messages through a custom I/O
// hook (fuse_session_custom_io) that patches the two replies with the
// helpers below; the rest of the protocol is libfuse's. The same hook asks
// for FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33), which libfuse 3.14 does not
// know either. The kernel
// refuses passthrough together with the writeback cache: a mount uses one
// or the other.
//
// The kernel holds one backing file per inode: every passthrough open of
// an inode must name the same backing id, and an inode open in the cached
// mode cannot be opened for passthrough (nor the reverse: the open fails
// with EIO). PassthroughFiles keeps that bookkeeping.
#ifndef OVERTIER_SRC_FUSE_PASSTHROUGH_H_
#define OVERTIER_SRC_FUSE_PASSTHROUGH_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace overtier {

// What a raw FUSE_INIT request (header included) offers that libfuse 3.14
// cannot ask for.
struct InitOffer {
  bool passthrough = false;
  bool killpriv_v2 = false;  // FUSE_HANDLE_KILLPRIV_V2
};
InitOffer ParseInitRequest(const void* msg, size_t len);

// What to ask for in the INIT reply.
struct InitPatch {
  bool passthrough = false;  // and not the writeback cache
  // The daemon clears set-user-ID and set-group-ID bits on write, truncate
  // and chown (union/caller.h); the kernel stops asking for
  // security.capability before every write.
  bool killpriv_v2 = false;
};

// Turns libfuse's INIT reply (iov as given to writev) into one that asks
// for `patch`. False when iov is not an INIT reply.
bool PatchInitReply(struct iovec* iov, int count, const InitPatch& patch);

// Makes an OPEN or CREATE reply (its open_out last) a passthrough open of
// backing_id. False when iov has no room for it.
bool PatchOpenReply(struct iovec* iov, int count, int32_t backing_id);

// open(2) with O_TMPFILE (FUSE_TMPFILE, protocol 7.37), which libfuse 3.14
// would answer ENOSYS, and the kernel would then refuse with EOPNOTSUPP
// for the rest of the mount. Its request is a CREATE's (fuse_create_in,
// then the name, which is "/" for a file without one) and so is its
// answer (entry and open), so the request (header included, len bytes)
// becomes a CREATE, which the transport tells from a real one by that name:
// no directory entry can be called "/". True if it was a TMPFILE.
bool TmpfileAsCreate(void* msg, size_t len);
inline constexpr char kTmpfileName[] = "/";

class PassthroughFiles {
 public:
  // dev_fd: the session's /dev/fuse descriptor.
  explicit PassthroughFiles(int dev_fd) : dev_fd_(dev_fd) {}

  // An open of `node` (fd: its real file) is about to be answered. Returns
  // the backing id to answer with, or 0 for a cached open. eligible: the
  // caller allows passthrough for this open; veto (if given, read under
  // the same lock as InUse): true forbids it. A node already open for
  // passthrough gets passthrough whatever these say (the kernel's rule).
  int Opened(const void* node, int fd, bool eligible, const std::atomic<bool>* veto = nullptr);
  // The open (passthrough: as Opened answered) is released or its answer
  // was not delivered.
  void Released(const void* node, bool passthrough);
  // Whether node has passthrough opens. With a veto that was set before
  // this call, no later Opened of node can start one (unless one exists:
  // then this says so).
  bool InUse(const void* node);

 private:
  struct PerNode {
    int backing_id = 0;
    int passthrough = 0;  // open passthrough files
    int cached = 0;       // other open regular files
  };
  const int dev_fd_;
  std::mutex mu_;
  bool disabled_ = false;  // the kernel refused a backing file
  std::unordered_map<const void*, PerNode> nodes_;
};

}  // namespace overtier

#endif  // OVERTIER_SRC_FUSE_PASSTHROUGH_H_
