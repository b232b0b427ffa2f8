// RangeWaiters: readers waiting for byte ranges of files to become resident.
//
// A read of a non-resident range registers (file key, range, callback) and
// returns; the FUSE worker is free. The restorer calls Notify after every
// piece it writes, so each waiter is answered as soon as its own range is
// resident, not when the whole file is back; Fail answers every waiter of a
// file with the restore's error (EIO); Cancel answers one waiter with EINTR
// (the reader was interrupted). Each callback runs exactly once, never
// under the registry's lock (it may call back into the registry).
//
// Thread-safe.
#ifndef OVERTIER_MIGRATE_RANGE_WAITERS_H_
#define OVERTIER_MIGRATE_RANGE_WAITERS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "migrate/residency.h"
#include "overtier/status.h"
#include "store/catalog_records.h"

namespace overtier {

using WaitCallback = std::function<void(const Status&)>;

class RangeWaiters {
 public:
  // Registers a waiter; returns its id (> 0) for Cancel. reads: the
  // waiter reads the range once answered (a FUSE read), rather than only
  // waiting for it (an explicit restore).
  uint64_t Add(const std::string& key, ByteRange range, WaitCallback cb, bool reads = true);
  // Answers OK every waiter of `key` whose range is resident in `map`
  // (bytes past the map's size count as resident: the file got shorter).
  // Returns how many were answered.
  size_t Notify(const std::string& key, const ResidencyMap& map);
  // Answers every waiter of `key` with `error`.
  size_t Fail(const std::string& key, const Status& error);
  // Answers waiter `id` with EINTR; false if it was already answered.
  bool Cancel(uint64_t id);
  // The ranges waited for in `key`, oldest first.
  std::vector<ByteRange> Ranges(const std::string& key) const;
  // Whether a waiter that reads (Add) waits on some byte of `range` of `key`.
  bool HasReader(const std::string& key, ByteRange range) const;
  size_t size() const;

 private:
  struct Waiter {
    std::string key;
    ByteRange range;
    WaitCallback cb;
    bool reads = true;
  };
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Waiter> waiters_;  // by id: oldest first
};

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_RANGE_WAITERS_H_
