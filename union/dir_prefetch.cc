#include "union/dir_prefetch.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace overtier {

DirPrefetcher::DirPrefetcher() = default;

DirPrefetcher::~DirPrefetcher() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& fds : queue_)
    for (int fd : fds) close(fd);
}

void DirPrefetcher::Noted(const void* key, const std::function<std::vector<int>()>& open_dirs) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> l(mu_);
    // Forget old directories, at most once per window (a walk of a large
    // tree meets thousands of directories a second: a sweep per lookup
    // would cost more than the lookup); past twice the bound, all of them
    // when a new one comes (a count lost only delays a prefetch).
    if (seen_.size() > kMaxSeen && now - last_sweep_ > kWindow) {
      last_sweep_ = now;
      for (auto it = seen_.begin(); it != seen_.end();) {
        const bool old = now - it->second.since > kWindow &&
                         (!it->second.ran || now - it->second.last_run > kRepeat);
        it = old ? seen_.erase(it) : std::next(it);
      }
    }
    auto found = seen_.find(key);
    if (found == seen_.end()) {
      if (seen_.size() > 2 * kMaxSeen) seen_.clear();
      found = seen_.emplace(key, Seen{}).first;
    }
    Seen& s = found->second;
    if (s.count == 0 || now - s.since > kWindow) {
      s.count = 0;
      s.since = now;
    }
    if (++s.count != kTrigger) return;
    if (s.ran && now - s.last_run < kRepeat) return;
    if (queue_.size() >= 4) return;  // busy with others: this run goes without
    s.ran = true;
    s.last_run = now;
  }
  std::vector<int> fds = open_dirs();
  if (fds.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(fds));
    // Started on first use, not with the union: the union is made before
    // the daemon forks into the background, and a thread does not survive
    // the fork (its std::thread would then name another thread).
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  }
  cv_.notify_all();
}

void DirPrefetcher::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::vector<int> fds = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    runs_++;
    l.unlock();
    for (int fd : fds) {
      Warm(fd);  // closes fd
    }
    l.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void DirPrefetcher::Warm(int fd) {
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return;
  }
  const int dfd = dirfd(d);
  uint64_t n = 0;
  const auto start = std::chrono::steady_clock::now();
  while (struct dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    (void)fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW);
    if (++n == kProbe) {
      // Already cached (a directory looked up again after its entries
      // expired from the FUSE client, not from the file system): done.
      const auto spent = std::chrono::steady_clock::now() - start;
      if (spent < std::chrono::microseconds(3 * kProbe)) break;
    }
    if (n >= kMaxEntries) break;
    if ((n & 1023) == 0) {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) break;
    }
  }
  closedir(d);
  std::lock_guard<std::mutex> l(mu_);
  warmed_ += n;
}

uint64_t DirPrefetcher::entries_warmed() const {
  std::lock_guard<std::mutex> l(mu_);
  return warmed_;
}

uint64_t DirPrefetcher::runs() const {
  std::lock_guard<std::mutex> l(mu_);
  return runs_;
}

void DirPrefetcher::Drain() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return queue_.empty() && !busy_; });
}

}  // namespace overtier
