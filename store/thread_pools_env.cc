#include "store/thread_pools_env.h"

#include <functional>
#include <mutex>

#include <rocksdb/env.h>
#include <rocksdb/threadpool.h>

namespace overtier {

namespace {

class OwnPoolsEnv : public rocksdb::EnvWrapper {
 public:
  explicit OwnPoolsEnv(std::unique_ptr<rocksdb::Env> base)
      : EnvWrapper(std::move(base)),
        // Threads start on the first job, not here.
        high_(rocksdb::NewThreadPool(1)),
        low_(rocksdb::NewThreadPool(1)) {}

  ~OwnPoolsEnv() override {
    // The database is closed by now; anything still queued (a job RocksDB
    // scheduled while closing) runs, as the default Env would run it.
    high_->WaitForJobsAndJoinAllThreads();
    low_->WaitForJobsAndJoinAllThreads();
  }

  const char* Name() const override { return "OvertierOwnPoolsEnv"; }

  void Schedule(void (*function)(void*), void* arg, Priority pri, void* /*tag*/,
                void (* /*unschedule*/)(void*)) override {
    Pool(pri)->SubmitJob([function, arg] { function(arg); });
  }

  // The pools cannot take a queued job back by tag. Answering "none" is
  // allowed: a closing database then waits for its queued jobs to run, and
  // each of them sees the shutdown and returns at once.
  int UnSchedule(void* /*tag*/, Priority /*pri*/) override { return 0; }

  unsigned int GetThreadPoolQueueLen(Priority pri) const override {
    return Pool(pri)->GetQueueLen();
  }

  void SetBackgroundThreads(int number, Priority pri) override {
    std::lock_guard<std::mutex> l(mu_);
    Pool(pri)->SetBackgroundThreads(number);
  }

  int GetBackgroundThreads(Priority pri) override {
    // No bottom-priority pool: RocksDB then keeps bottommost compactions in
    // the low pool.
    if (pri == Priority::BOTTOM) return 0;
    return Pool(pri)->GetBackgroundThreads();
  }

  void IncBackgroundThreadsIfNeeded(int number, Priority pri) override {
    std::lock_guard<std::mutex> l(mu_);
    rocksdb::ThreadPool* p = Pool(pri);
    if (p->GetBackgroundThreads() < number) p->SetBackgroundThreads(number);
  }

  int ReserveThreads(int /*threads*/, Priority /*pri*/) override { return 0; }
  int ReleaseThreads(int /*threads*/, Priority /*pri*/) override { return 0; }

 private:
  rocksdb::ThreadPool* Pool(Priority pri) const {
    return pri == Priority::HIGH ? high_.get() : low_.get();
  }

  std::mutex mu_;                              // thread-count changes
  std::unique_ptr<rocksdb::ThreadPool> high_;  // flushes
  std::unique_ptr<rocksdb::ThreadPool> low_;   // compactions (and the rest)
};

}  // namespace

std::unique_ptr<rocksdb::Env> WithOwnThreadPools(std::unique_ptr<rocksdb::Env> base) {
  return std::make_unique<OwnPoolsEnv>(std::move(base));
}

}  // namespace overtier
