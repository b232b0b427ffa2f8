#include "store/thread_pools_env.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include "store/catalog.h"

namespace overtier {
namespace {

namespace fs = std::filesystem;

std::string MakeTempDir() {
  std::string tmpl = (fs::temp_directory_path() / "thread_pools_env_test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

StoreId TestStoreId() {
  StoreId id;
  for (int i = 0; i < 16; i++) id.bytes[i] = static_cast<uint8_t>(0x50 + i);
  return id;
}

// Runs one job on each of the default Env's pools and waits for it: from
// then on those pools count a thread each, as after any catalog writer's
// first flush and compaction.
void StartDefaultPoolThreads() {
  std::atomic<int> ran{0};
  auto job = [](void* arg) { static_cast<std::atomic<int>*>(arg)->fetch_add(1); };
  rocksdb::Env::Default()->Schedule(job, &ran, rocksdb::Env::Priority::HIGH);
  rocksdb::Env::Default()->Schedule(job, &ran, rocksdb::Env::Priority::LOW);
  while (ran.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Waits up to `limit` for `pid`; kills it if it is still running. Returns
// its wait status, or -1 if it had to be killed.
int WaitBounded(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// The daemon's case: a process whose default pools have threads forks
// (fuse_daemonize), and the child opens a catalog for writing. Its flushes
// must run; with the default Env's pools they waited forever.
TEST(ThreadPoolsEnvTest, AWriterOpenedAfterAForkCanFlush) {
  const std::string dir = MakeTempDir();
  const std::string path = dir + "/catalog";
  {
    std::unique_ptr<Catalog> c;
    ASSERT_TRUE(Catalog::Create(path, TestStoreId(), &c).ok());
  }
  StartDefaultPoolThreads();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    CatalogOptions o;
    o.flush_on_close = true;  // waits for a flush job at close
    std::unique_ptr<Catalog> c;
    if (!Catalog::Open(path, o, &c).ok()) _exit(3);
    uint64_t first = 0;
    if (!c->AllocateIds(IdSpace::kJob, 5, &first).ok()) _exit(4);
    c.reset();
    _exit(0);
  }
  const int status = WaitBounded(pid, std::chrono::seconds(30));
  ASSERT_NE(status, -1) << "the child's flush never ran";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The flush wrote a table: the ids the child took are there.
  std::unique_ptr<Catalog> c;
  ASSERT_TRUE(Catalog::Open(path, &c).ok());
  EXPECT_GE(c->NextId(IdSpace::kJob), 6u);
  c.reset();
  fs::remove_all(dir);
}

// Many writes in one process: memtable switches flush on the catalog's own
// pool, and closing joins it.
TEST(ThreadPoolsEnvTest, FlushesAndCloseInOneProcess) {
  const std::string dir = MakeTempDir();
  const std::string path = dir + "/catalog";
  {
    std::unique_ptr<Catalog> c;
    ASSERT_TRUE(Catalog::Create(path, TestStoreId(), &c).ok());
  }
  for (int round = 0; round < 3; round++) {
    CatalogOptions o;
    o.flush_on_close = true;
    std::unique_ptr<Catalog> c;
    ASSERT_TRUE(Catalog::Open(path, o, &c).ok());
    uint64_t first = 0;
    for (int i = 0; i < 100; i++)
      ASSERT_TRUE(c->AllocateIds(IdSpace::kJob, 1, &first, Durability::kNoSync).ok());
  }
  std::unique_ptr<Catalog> c;
  ASSERT_TRUE(Catalog::Open(path, &c).ok());
  EXPECT_EQ(c->NextId(IdSpace::kJob), 301u);
  c.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace overtier
