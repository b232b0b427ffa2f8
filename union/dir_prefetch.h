// Warms the kernel's caches of a layer directory's entries ahead of a run of
// lookups in it.
//
// After the caches were dropped (a cold `stat` of every file of a large
// directory, `git status` in a cold tree, a build checking its sources), a
// lookup pays a FUSE round trip and, inside it, the disk read of the real
// entry. The kernel overlayfs pays only the second, and ext4's inode
// readahead makes that cheap in a run; through the daemon the two add up,
// one lookup at a time. Measured on 20,000 files: 0.72 s cold, 0.52 s
// when the upper directory's inodes were already cached (docs/BENCHMARKS.md).
//
// So when one directory sees a run of lookups (kTrigger within kWindow),
// a background thread stats every entry of its real directories in
// readdir order (the file system reads its inode tables in order), and the
// lookups that follow find them cached. A directory is prefetched at most
// once per kRepeat; a prefetch whose first kProbe entries were already
// cached stops there, so warm directories cost a few fstatat calls.
#ifndef OVERTIER_UNION_DIR_PREFETCH_H_
#define OVERTIER_UNION_DIR_PREFETCH_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace overtier {

class DirPrefetcher {
 public:
  static constexpr int kTrigger = 64;
  static constexpr std::chrono::milliseconds kWindow{2000};
  static constexpr std::chrono::seconds kRepeat{30};
  static constexpr int kProbe = 64;
  static constexpr size_t kMaxEntries = 1 << 20;
  static constexpr size_t kMaxSeen = 4096;  // directories counted at once

  DirPrefetcher();
  ~DirPrefetcher();  // stops the thread, closes what it still holds
  DirPrefetcher(const DirPrefetcher&) = delete;
  DirPrefetcher& operator=(const DirPrefetcher&) = delete;

  // A lookup in the directory `key` (any stable identity: the union node).
  // When this completes a run, open_dirs is called (on this thread) for
  // descriptors of the directory's real directories, which the prefetcher
  // then owns and closes.
  void Noted(const void* key, const std::function<std::vector<int>()>& open_dirs);

  // Entries stat'ed so far, for tests.
  uint64_t entries_warmed() const;
  // Prefetches started so far, for tests.
  uint64_t runs() const;
  // Waits until the queue is empty and no prefetch runs (tests).
  void Drain();

 private:
  struct Seen {
    int count = 0;
    std::chrono::steady_clock::time_point since{};
    std::chrono::steady_clock::time_point last_run{};
    bool ran = false;
  };
  void Loop();
  void Warm(int fd);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<const void*, Seen> seen_;
  std::chrono::steady_clock::time_point last_sweep_{};
  std::deque<std::vector<int>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  uint64_t warmed_ = 0, runs_ = 0;
  std::thread thread_;
};

}  // namespace overtier

#endif  // OVERTIER_UNION_DIR_PREFETCH_H_
