// Times as the catalog keeps them: nanoseconds since the epoch in an
// int64_t, which reaches from 1677-09-21 to 2262-04-11. File systems keep
// more (ext4 to 2446, XFS with bigtime to 2486) and a tar header any 64-bit
// number of seconds, so a conversion to nanoseconds can fail: callers say
// what happens then (refuse, or clamp and say so), never multiply blindly.
#ifndef OVERTIER_TIME_NS_H_
#define OVERTIER_TIME_NS_H_

#include <time.h>

#include <cstdint>
#include <limits>

namespace overtier {

inline constexpr int64_t kNsPerSec = 1000000000;
inline constexpr int64_t kMinTimeNs = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kMaxTimeNs = std::numeric_limits<int64_t>::max();

// sec seconds and nsec nanoseconds (nsec may be anything a struct timespec
// or a tar header holds) as nanoseconds since the epoch: false, *out left
// alone, if that is outside what an int64_t holds.
inline bool TimeToNs(int64_t sec, int64_t nsec, int64_t* out) {
  // In 128 bits: the product alone may be out of range where the sum is
  // not (the earliest time, -9223372037 s + 145224192 ns).
  const __int128 ns = static_cast<__int128>(sec) * kNsPerSec + nsec;
  if (ns < kMinTimeNs || ns > kMaxTimeNs) return false;
  *out = static_cast<int64_t>(ns);
  return true;
}
inline bool TimespecToNs(const struct timespec& ts, int64_t* out) {
  return TimeToNs(ts.tv_sec, ts.tv_nsec, out);
}

// The same, clamped to the range: for comparisons and ages, which only need
// the order of times, and for the times a caller has chosen to clamp.
inline int64_t ClampedTimeNs(int64_t sec, int64_t nsec) {
  int64_t ns;
  if (TimeToNs(sec, nsec, &ns)) return ns;
  return sec < 0 ? kMinTimeNs : kMaxTimeNs;
}
inline int64_t ClampedNs(const struct timespec& ts) { return ClampedTimeNs(ts.tv_sec, ts.tv_nsec); }
// The same for callers that say so when a time was clamped: *clamped is
// set then (and never cleared, so that one flag covers several times).
inline int64_t ClampedTimeNs(int64_t sec, int64_t nsec, bool* clamped) {
  int64_t ns;
  if (TimeToNs(sec, nsec, &ns)) return ns;
  *clamped = true;
  return ClampedTimeNs(sec, nsec);
}
inline int64_t ClampedNs(const struct timespec& ts, bool* clamped) {
  return ClampedTimeNs(ts.tv_sec, ts.tv_nsec, clamped);
}

// Back to a struct timespec (tv_nsec in [0, 1e9), before the epoch too).
inline struct timespec NsToTimespec(int64_t ns) {
  int64_t sec = ns / kNsPerSec, nsec = ns % kNsPerSec;
  if (nsec < 0) {
    nsec += kNsPerSec;
    sec -= 1;
  }
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(nsec);
  return ts;
}

}  // namespace overtier

#endif  // OVERTIER_TIME_NS_H_
