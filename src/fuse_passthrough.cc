#include "src/fuse_passthrough.h"

#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace overtier {
namespace {

// From the kernel's uapi <linux/fuse.h> of 6.9 (protocol 7.40); Debian 12's
// copy is older. Offsets are those of the structs there.
constexpr uint32_t kInitExt = 1u << 30;           // FUSE_INIT_EXT
constexpr uint32_t kKillprivV2 = 1u << 28;        // FUSE_HANDLE_KILLPRIV_V2
constexpr uint32_t kWritebackCache = 1u << 16;    // FUSE_WRITEBACK_CACHE
constexpr uint32_t kFlags2Passthrough = 1u << 5;  // FUSE_PASSTHROUGH >> 32
constexpr uint32_t kFopenPassthrough = 1u << 7;   // FOPEN_PASSTHROUGH
constexpr size_t kInitInFlags = 12;               // fuse_init_in.flags
constexpr size_t kInitInFlags2 = 16;              // fuse_init_in.flags2
constexpr size_t kInitOutFlags = 12;              // fuse_init_out.flags
constexpr size_t kInitOutFlags2 = 32;             // fuse_init_out.flags2
constexpr size_t kInitOutMaxStackDepth = 36;      // fuse_init_out.max_stack_depth
constexpr size_t kOpenOutSize = 16;               // fuse_open_out
constexpr size_t kOpenOutFlags = 8;               // fuse_open_out.open_flags
constexpr size_t kOpenOutBackingId = 12;          // fuse_open_out.backing_id

struct BackingMap {  // struct fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);  // FUSE_DEV_IOC_BACKING_OPEN
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);   // FUSE_DEV_IOC_BACKING_CLOSE

uint32_t Get32(const void* base, size_t off) {
  uint32_t v;
  std::memcpy(&v, static_cast<const char*>(base) + off, sizeof(v));
  return v;
}
void Put32(void* base, size_t off, uint32_t v) {
  std::memcpy(static_cast<char*>(base) + off, &v, sizeof(v));
}

}  // namespace

bool TmpfileAsCreate(void* msg, size_t len) {
  constexpr uint32_t kTmpfile = 51;  // FUSE_TMPFILE
  fuse_in_header h;
  if (len < sizeof(h)) return false;
  std::memcpy(&h, msg, sizeof(h));
  if (h.opcode != kTmpfile) return false;
  h.opcode = FUSE_CREATE;
  std::memcpy(msg, &h, sizeof(h));
  return true;
}

InitOffer ParseInitRequest(const void* msg, size_t len) {
  InitOffer offer;
  if (len < sizeof(fuse_in_header) + kInitInFlags2 + 4) return offer;
  fuse_in_header h;
  std::memcpy(&h, msg, sizeof(h));
  if (h.opcode != FUSE_INIT) return offer;
  const char* in = static_cast<const char*>(msg) + sizeof(fuse_in_header);
  const uint32_t flags = Get32(in, kInitInFlags);
  offer.killpriv_v2 = (flags & kKillprivV2) != 0;
  offer.passthrough = (flags & kInitExt) && (Get32(in, kInitInFlags2) & kFlags2Passthrough);
  return offer;
}

bool PatchInitReply(struct iovec* iov, int count, const InitPatch& patch) {
  if (count < 2 || iov[0].iov_len != sizeof(fuse_out_header) ||
      iov[1].iov_len < kInitOutMaxStackDepth + 4)
    return false;
  fuse_out_header h;
  std::memcpy(&h, iov[0].iov_base, sizeof(h));
  void* out = iov[1].iov_base;
  if (h.error != 0 || Get32(out, 0) != FUSE_KERNEL_VERSION) return false;
  uint32_t flags = Get32(out, kInitOutFlags);
  if (patch.killpriv_v2) flags |= kKillprivV2;
  if (patch.passthrough) {
    flags = (flags | kInitExt) & ~kWritebackCache;
    Put32(out, kInitOutFlags2, Get32(out, kInitOutFlags2) | kFlags2Passthrough);
    // Backing files are on ordinary file systems (stack depth 0).
    Put32(out, kInitOutMaxStackDepth, 1);
  }
  Put32(out, kInitOutFlags, flags);
  return true;
}

bool PatchOpenReply(struct iovec* iov, int count, int32_t backing_id) {
  if (count < 2 || iov[count - 1].iov_len < kOpenOutSize) return false;
  char* open_out =
      static_cast<char*>(iov[count - 1].iov_base) + iov[count - 1].iov_len - kOpenOutSize;
  Put32(open_out, kOpenOutFlags, Get32(open_out, kOpenOutFlags) | kFopenPassthrough);
  Put32(open_out, kOpenOutBackingId, static_cast<uint32_t>(backing_id));
  return true;
}

int PassthroughFiles::Opened(const void* node, int fd, bool eligible,
                             const std::atomic<bool>* veto) {
  std::lock_guard<std::mutex> g(mu_);
  PerNode& n = nodes_[node];
  if (n.passthrough > 0) {
    // The inode is open for passthrough: so must this open be (same file).
    ++n.passthrough;
    return n.backing_id;
  }
  if (veto != nullptr && veto->load(std::memory_order_acquire)) eligible = false;
  if (disabled_ || !eligible || n.cached > 0) {
    ++n.cached;
    return 0;
  }
  BackingMap map{fd, 0, 0};
  int id = ioctl(dev_fd_, kBackingOpen, &map);
  if (id <= 0) {
    // EPERM (no CAP_SYS_ADMIN, a user namespace), EOPNOTSUPP (the kernel
    // did not take the INIT flag): cached opens from now on.
    std::fprintf(stderr,
                 "overtier: FUSE passthrough unavailable (%s); reads and writes go "
                 "through the daemon\n",
                 std::strerror(errno));
    disabled_ = true;
    ++n.cached;
    return 0;
  }
  n.backing_id = id;
  n.passthrough = 1;
  return id;
}

void PassthroughFiles::Released(const void* node, bool passthrough) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  PerNode& n = it->second;
  if (passthrough) {
    if (--n.passthrough == 0) {
      // The kernel keeps its own reference while the inode is open.
      uint32_t id = static_cast<uint32_t>(n.backing_id);
      ioctl(dev_fd_, kBackingClose, &id);
      n.backing_id = 0;
    }
  } else {
    --n.cached;
  }
  if (n.passthrough == 0 && n.cached == 0) nodes_.erase(it);
}

bool PassthroughFiles::InUse(const void* node) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.passthrough > 0;
}

}  // namespace overtier
