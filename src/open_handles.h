// OpenHandles: the file and directory handles a FUSE session gave the
// kernel (fi->fh), kept until their RELEASE or RELEASEDIR, and whatever is
// left at the end of the session.
//
// Why not a bare pointer in fi->fh, freed by the release: the kernel does
// not promise a release for every open. It sends them in the background,
// and a connection that goes away drops the ones it has not handed over
// yet: after an abort (fusectl, a killed fusermount), and in a race when
// the last reference to a lazily unmounted mount was an open file (the
// directory a periodic policy run held open, seen in CI as LeakSanitizer
// reports). What is left here when the request loop has ended is freed
// then, before the objects the handles point into (nodes, the migration
// service, passthrough backing files) go.
#ifndef OVERTIER_SRC_OPEN_HANDLES_H_
#define OVERTIER_SRC_OPEN_HANDLES_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace overtier {

template <typename T>
class OpenHandles {
 public:
  OpenHandles() = default;
  OpenHandles(const OpenHandles&) = delete;
  OpenHandles& operator=(const OpenHandles&) = delete;

  // Keeps h from now on; returns the value for fi->fh. Before the reply
  // goes: once it has, a RELEASE may come on another thread at once.
  uint64_t Add(std::unique_ptr<T> h) {
    T* p = h.get();
    std::lock_guard<std::mutex> g(mu_);
    open_.emplace(p, std::move(h));
    return reinterpret_cast<uint64_t>(p);
  }

  // The handle fh names, or null (a value this session never gave).
  static T* Get(uint64_t fh) { return reinterpret_cast<T*>(fh); }

  // The kernel let go of fh (its release), or never got it (the reply
  // failed): the caller's now. Null for a value not (or no longer) here.
  std::unique_ptr<T> Take(uint64_t fh) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = open_.find(Get(fh));
    if (it == open_.end()) return nullptr;
    std::unique_ptr<T> h = std::move(it->second);
    open_.erase(it);
    return h;
  }

  // Every handle still here, the caller's now: at the end of a session,
  // once no request can use them.
  std::vector<std::unique_ptr<T>> TakeAll() {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<std::unique_ptr<T>> all;
    all.reserve(open_.size());
    for (auto& [p, h] : open_) all.push_back(std::move(h));
    open_.clear();
    return all;
  }

  size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return open_.size();
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<T*, std::unique_ptr<T>> open_;
};

}  // namespace overtier

#endif  // OVERTIER_SRC_OPEN_HANDLES_H_
