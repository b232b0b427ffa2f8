// How a request-loop thread waits for the next FUSE request: it polls
// /dev/fuse for a short, adaptive while before it sleeps.
//
// Why: a FUSE request is a round trip between two tasks. When the daemon
// sleeps in read(/dev/fuse), every request has to wake it, and on the
// virtual machines we run on a cross-CPU wakeup is an IPI plus a halt exit
// (guest halt polling is off): measured, a serial workload (untar of
// 20,000 entries) took 12.5 s with a sleeping reader and 6.9 s with one
// that polls 50 us after each answer (docs/BENCHMARKS.md). A reader that
// polls all the time would burn a CPU on an idle mount, so the window
// adapts like the kernel's guest halt-polling: it grows while requests
// arrive soon after the previous answer and shrinks to nothing when they
// do not (a compiler's sparse opens, an idle container).
#ifndef OVERTIER_SRC_SESSION_RECEIVE_H_
#define OVERTIER_SRC_SESSION_RECEIVE_H_

#include <atomic>
#include <cstdint>

struct fuse_session;
struct fuse_buf;

namespace overtier {

// The adaptive poll window, shared by a session's threads. Pure logic.
class SpinWindow {
 public:
  // max_ns 0: never poll.
  explicit SpinWindow(uint64_t max_ns) : max_ns_(max_ns) {}

  uint64_t max_ns() const { return max_ns_; }
  uint64_t window_ns() const { return window_ns_.load(std::memory_order_relaxed); }

  // One wait is over: the next request came waited_ns after the wait began,
  // hit telling whether it came while polling. A miss that came soon after
  // (within max) grows the window; a long wait shrinks it.
  void Record(uint64_t waited_ns, bool hit);

  // The first window after an empty one, and the smallest kept.
  static constexpr uint64_t kGrowStartNs = 10'000;

 private:
  const uint64_t max_ns_;
  std::atomic<uint64_t> window_ns_{0};
};

// Receives requests of one session like fuse_session_receive_buf, polling
// first as the window allows. At most one thread of the session polls at
// a time; the others sleep in poll(2) until the device is readable.
class SessionReceiver {
 public:
  // max_spin_us 0 keeps the descriptor blocking: a plain read.
  SessionReceiver(fuse_session* se, unsigned max_spin_us);

  // As fuse_session_receive_buf: > 0 a request in *buf, 0 the session
  // ended, < 0 -errno (-EINTR: call again). Never -EAGAIN.
  int Receive(fuse_buf* buf);

  const SpinWindow& window() const { return window_; }

 private:
  fuse_session* const se_;
  const int fd_;
  SpinWindow window_;
  std::atomic<bool> polling_{false};
};

}  // namespace overtier

#endif  // OVERTIER_SRC_SESSION_RECEIVE_H_
