// Test helpers for restores that clone blocks (reflink): whether a file
// system can, how much of a file shares its blocks, and whether the test
// run demands it (tests/upper_xfs sets OVERTIER_EXPECT_REFLINK=1, so that a
// test there cannot pass by not cloning).
#ifndef OVERTIER_MIGRATE_REFLINK_TESTUTIL_H_
#define OVERTIER_MIGRATE_REFLINK_TESTUTIL_H_

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace overtier {
namespace test {

// Bytes of fd's extents that share their blocks with another file (FIEMAP).
inline uint64_t SharedBytes(int fd) {
  constexpr unsigned kMax = 512;
  std::vector<char> mem(sizeof(struct fiemap) + kMax * sizeof(struct fiemap_extent));
  uint64_t shared = 0, start = 0;
  for (;;) {
    std::fill(mem.begin(), mem.end(), '\0');
    auto* fm = reinterpret_cast<struct fiemap*>(mem.data());
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kMax;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) return 0;
    if (fm->fm_mapped_extents == 0) return shared;
    for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
      const struct fiemap_extent& e = fm->fm_extents[i];
      if (e.fe_flags & FIEMAP_EXTENT_SHARED) shared += e.fe_length;
      start = e.fe_logical + e.fe_length;
      if (e.fe_flags & FIEMAP_EXTENT_LAST) return shared;
    }
  }
}

// Whether the file system of `dir` clones blocks between files.
inline bool CanClone(const std::string& dir) {
  const std::string a = dir + "/clone-probe-a", b = dir + "/clone-probe-b";
  int fa = open(a.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  int fb = open(b.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  std::string block(4096, 'x');
  bool ok = fa >= 0 && fb >= 0 && pwrite(fa, block.data(), block.size(), 0) == 4096;
  if (ok) {
    struct file_clone_range r {};
    r.src_fd = fa;
    r.src_length = 4096;
    ok = ioctl(fb, FICLONERANGE, &r) == 0;
  }
  if (fa >= 0) close(fa);
  if (fb >= 0) close(fb);
  unlink(a.c_str());
  unlink(b.c_str());
  return ok;
}

// The run says the file systems of TMPDIR clone blocks.
inline bool ExpectReflink() {
  const char* e = std::getenv("OVERTIER_EXPECT_REFLINK");
  return e != nullptr && std::string(e) == "1";
}

}  // namespace test
}  // namespace overtier

#endif  // OVERTIER_MIGRATE_REFLINK_TESTUTIL_H_
