// A small fixed pool of threads for the requests that may take long
// (copy-up of a large file, fsync): the request loop hands them over and
// goes on answering the others.
#ifndef OVERTIER_MIGRATE_WORKER_POOL_H_
#define OVERTIER_MIGRATE_WORKER_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace overtier {

// Threads of the pools that serve reads of image content under -o hard
// (the union's and the image file system's): those reads may wait as long
// as the cold tier does not answer, so this many readers wait at once
// before the next one queues (docs/RADOS.md, "Soft and hard mounts").
inline constexpr int kHardReadThreads = 16;

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  // Runs every task already submitted, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_WORKER_POOL_H_
