// libfuse 3.12 API, as the other users of the session (fuse_ops.cc).
#define FUSE_USE_VERSION 312
#include "src/session_receive.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

namespace overtier {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

void SpinWindow::Record(uint64_t waited_ns, bool hit) {
  if (max_ns_ == 0 || hit) return;
  uint64_t w = window_ns_.load(std::memory_order_relaxed);
  if (waited_ns > max_ns_) {
    // Idle for longer than we would ever poll: polling was wasted.
    w /= 2;
    if (w < kGrowStartNs) w = 0;
  } else if (w < max_ns_) {
    // The request came soon after: a longer window would have caught it.
    w = w == 0 ? std::min(kGrowStartNs, max_ns_) : std::min(w * 2, max_ns_);
  }
  window_ns_.store(w, std::memory_order_relaxed);
}

SessionReceiver::SessionReceiver(fuse_session* se, unsigned max_spin_us)
    : se_(se), fd_(fuse_session_fd(se)), window_(uint64_t{max_spin_us} * 1000) {
  // Polling needs reads that return EAGAIN. O_NONBLOCK belongs to the open
  // file, so every thread of the session now sleeps in poll(2) instead of
  // read(2).
  if (window_.max_ns() > 0) fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

int SessionReceiver::Receive(fuse_buf* buf) {
  if (window_.max_ns() == 0) return fuse_session_receive_buf(se_, buf);
  int res = fuse_session_receive_buf(se_, buf);
  if (res != -EAGAIN) return res;
  const uint64_t start = NowNs();
  const uint64_t window = window_.window_ns();
  if (window > 0 && !polling_.exchange(true, std::memory_order_acquire)) {
    do {
      CpuRelax();
      res = fuse_session_receive_buf(se_, buf);
    } while (res == -EAGAIN && NowNs() - start < window);
    polling_.store(false, std::memory_order_release);
    if (res != -EAGAIN) {
      window_.Record(NowNs() - start, true);
      return res;
    }
  }
  while (true) {
    pollfd pfd{fd_, POLLIN, 0};
    // EINTR goes back to the caller, which checks whether the session ended.
    if (poll(&pfd, 1, -1) < 0) return -errno;
    res = fuse_session_receive_buf(se_, buf);
    if (res == -EAGAIN) continue;  // another thread took it
    window_.Record(NowNs() - start, false);
    return res;
  }
}

}  // namespace overtier
