#include "migrate/range_waiters.h"

namespace overtier {

uint64_t RangeWaiters::Add(const std::string& key, ByteRange range, WaitCallback cb, bool reads) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t id = next_id_++;
  waiters_.emplace(id, Waiter{key, range, std::move(cb), reads});
  return id;
}

size_t RangeWaiters::Notify(const std::string& key, const ResidencyMap& map) {
  std::vector<WaitCallback> ready;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.key == key &&
          map.IsResident(it->second.range.offset, it->second.range.length)) {
        ready.push_back(std::move(it->second.cb));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (WaitCallback& cb : ready) cb(Status::OK());
  return ready.size();
}

size_t RangeWaiters::Fail(const std::string& key, const Status& error) {
  std::vector<WaitCallback> failed;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.key == key) {
        failed.push_back(std::move(it->second.cb));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (WaitCallback& cb : failed) cb(error);
  return failed.size();
}

bool RangeWaiters::Cancel(uint64_t id) {
  WaitCallback cb;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return false;
    cb = std::move(it->second.cb);
    waiters_.erase(it);
  }
  cb(Status::Errno(EINTR, "wait for restore interrupted"));
  return true;
}

std::vector<ByteRange> RangeWaiters::Ranges(const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ByteRange> out;
  for (const auto& [id, w] : waiters_) {
    if (w.key == key) out.push_back(w.range);
  }
  return out;
}

bool RangeWaiters::HasReader(const std::string& key, ByteRange range) const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [id, w] : waiters_) {
    if (w.key != key || !w.reads) continue;
    const uint64_t w_end =
        w.range.length > UINT64_MAX - w.range.offset ? UINT64_MAX : w.range.offset + w.range.length;
    const uint64_t r_end =
        range.length > UINT64_MAX - range.offset ? UINT64_MAX : range.offset + range.length;
    if (w.range.offset < r_end && range.offset < w_end) return true;
  }
  return false;
}

size_t RangeWaiters::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return waiters_.size();
}

}  // namespace overtier
