#include "store/cached_volume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "store/local_volume.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::Payload;
using test::TempDir;

// What the "remote" set was asked: every ReadAt, in order.
struct RemoteLog {
  struct Read {
    uint64_t vv, offset, n;
  };
  std::mutex mu;
  std::vector<Read> reads;
  std::atomic<int> delay_ms{0};
  std::atomic<bool> fail{false};
  std::atomic<bool> sealed{false};  // what the readers say (RADOS readers know)
  std::atomic<int> opens{0};        // Open calls

  size_t Count() {
    std::lock_guard<std::mutex> l(mu);
    return reads.size();
  }
  size_t CountAt(uint64_t vv, uint64_t offset) {
    std::lock_guard<std::mutex> l(mu);
    size_t c = 0;
    for (const Read& r : reads) c += (r.vv == vv && r.offset == offset) ? 1 : 0;
    return c;
  }
  std::vector<Read> Snapshot() {
    std::lock_guard<std::mutex> l(mu);
    return reads;
  }
};

class CountingReader final : public VolumeReader {
 public:
  CountingReader(std::unique_ptr<VolumeReader> r, uint64_t vv, std::shared_ptr<RemoteLog> log)
      : r_(std::move(r)), vv_(vv), log_(std::move(log)) {}
  Status ReadAt(uint64_t offset, size_t n, char* buf) const override {
    {
      std::lock_guard<std::mutex> l(log_->mu);
      log_->reads.push_back({vv_, offset, n});
    }
    if (int ms = log_->delay_ms.load(); ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    if (log_->fail) return Status::Errno(ETIMEDOUT, "remote down (test)");
    return r_->ReadAt(offset, n, buf);
  }
  uint64_t Size() const override { return r_->Size(); }
  bool sealed() const override { return log_->sealed; }

 private:
  std::unique_ptr<VolumeReader> r_;
  uint64_t vv_;
  std::shared_ptr<RemoteLog> log_;
};

class CountingSet final : public VolumeSet {
 public:
  CountingSet(std::unique_ptr<VolumeSet> inner, std::shared_ptr<RemoteLog> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}
  const std::string& name() const override { return inner_->name(); }
  Status Create(uint64_t id, std::unique_ptr<VolumeWriter>* out) override {
    return inner_->Create(id, out);
  }
  Status Open(uint64_t id, std::unique_ptr<VolumeReader>* out) override {
    log_->opens++;
    std::unique_ptr<VolumeReader> r;
    OVT_RETURN_IF_ERROR(inner_->Open(id, &r));
    *out = std::make_unique<CountingReader>(std::move(r), id, log_);
    return Status::OK();
  }
  Status OpenForAppend(uint64_t id, std::unique_ptr<VolumeWriter>* out) override {
    return inner_->OpenForAppend(id, out);
  }
  Status Remove(uint64_t id) override { return inner_->Remove(id); }
  Status List(std::vector<uint64_t>* ids) override { return inner_->List(ids); }

 private:
  std::unique_ptr<VolumeSet> inner_;
  std::shared_ptr<RemoteLog> log_;
};

uint64_t BlockFileBytes(uint64_t length) {
  return kReadCacheHeaderSize + length +
         8 * ((length + kReadCachePageSize - 1) / kReadCachePageSize);
}

// A local set standing in for a remote one, counted, and a cache dir.
class Env {
 public:
  Env() : log_(std::make_shared<RemoteLog>()) {}

  RemoteLog& log() { return *log_; }
  std::string cache_dir() const { return dir_.path() + "/cache/remote"; }
  std::string BlockPath(uint64_t vv, uint64_t b) const {
    return cache_dir() + "/" + ReadCacheBlockName(vv, b);
  }

  ReadCacheOptions Options(uint64_t block_size) const {
    ReadCacheOptions o;
    o.dir = cache_dir();
    o.block_size = block_size;
    o.max_bytes = uint64_t{1} << 30;
    o.prefetch_depth = 0;  // tests of prefetch turn it on
    return o;
  }

  std::unique_ptr<VolumeSet> Remote() {
    std::unique_ptr<VolumeSet> local;
    Status s = OpenLocalVolumeSet(dir_.path(), "remote", LocalVolumeOptions(), &local);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::make_unique<CountingSet>(std::move(local), log_);
  }

  std::unique_ptr<VolumeSet> Cached(const ReadCacheOptions& o) {
    std::unique_ptr<VolumeSet> out;
    Status s = WrapWithReadCache(Remote(), o, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  // A sealed container of the given bytes, written around the cache.
  void Write(uint64_t vv, const std::string& data) {
    std::unique_ptr<VolumeSet> set = Remote();
    std::unique_ptr<VolumeWriter> w;
    ASSERT_TRUE(set->Create(vv, &w).ok());
    ASSERT_TRUE(w->Append(data).ok());
    ASSERT_TRUE(w->Seal().ok());
  }

 private:
  TempDir dir_;
  std::shared_ptr<RemoteLog> log_;
};

std::string Read(VolumeSet* set, uint64_t vv, uint64_t off, size_t n) {
  std::unique_ptr<VolumeReader> r;
  Status s = set->Open(vv, &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return "";
  std::string buf(n, '\0');
  s = r->ReadAt(off, n, buf.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return buf;
}

std::string ReadWith(VolumeReader* r, uint64_t off, size_t n) {
  std::string buf(n, '\0');
  Status s = r->ReadAt(off, n, buf.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return buf;
}

ReadCacheStats Stats(VolumeSet* set) {
  ReadCacheStats st;
  EXPECT_TRUE(GetReadCacheStats(set, &st));
  return st;
}

void FlipFileByte(const std::string& path, uint64_t off) {
  int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  char c;
  ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(off)), 1);
  c = static_cast<char>(c ^ 0x20);
  ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(off)), 1);
  close(fd);
}

uint64_t DirBytes(const std::string& dir, int* files) {
  uint64_t total = 0;
  *files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename() == "LOCK") continue;
    total += e.file_size();
    (*files)++;
  }
  return total;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Polls cond for up to 10 s.
template <typename F>
bool Eventually(F cond) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

TEST(ReadCache, SecondReadDoesNotHitTheRemote) {
  Env env;
  std::string data = Payload(10000, 1);
  env.Write(1, data);
  auto set = env.Cached(env.Options(4096));
  EXPECT_EQ(Read(set.get(), 1, 100, 100), data.substr(100, 100));
  ASSERT_EQ(env.log().Count(), 1u);
  // The whole block was fetched, once.
  EXPECT_EQ(env.log().Snapshot()[0].offset, 0u);
  EXPECT_EQ(env.log().Snapshot()[0].n, 4096u);
  EXPECT_EQ(Read(set.get(), 1, 100, 100), data.substr(100, 100));
  EXPECT_EQ(Read(set.get(), 1, 0, 4096), data.substr(0, 4096));
  EXPECT_EQ(env.log().Count(), 1u);
  ReadCacheStats st = Stats(set.get());
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.blocks, 1u);
  EXPECT_TRUE(Exists(env.BlockPath(1, 0)));
}

TEST(ReadCache, BlockBoundariesAndTheTail) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(3 * bs + 1000, 2);  // a tail block of 1000
  env.Write(5, data);
  auto set = env.Cached(env.Options(bs));
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(5, &r).ok());
  EXPECT_EQ(r->Size(), data.size());
  struct {
    uint64_t off, n;
  } cases[] = {{bs - 1, 2},       {bs - 10, bs + 20}, {0, data.size()},           {3 * bs, 1000},
               {3 * bs + 999, 1}, {2 * bs + 5, 1500}, {data.size() - 3000, 3000}, {17, 0}};
  for (auto c : cases) {
    EXPECT_EQ(ReadWith(r.get(), c.off, c.n), data.substr(c.off, c.n)) << c.off << "+" << c.n;
  }
  // Each block fetched once, whole (the tail with its own length).
  EXPECT_EQ(env.log().Count(), 4u);
  for (const auto& rd : env.log().Snapshot()) {
    EXPECT_EQ(rd.offset % bs, 0u);
    EXPECT_EQ(rd.n, std::min<uint64_t>(bs, data.size() - rd.offset));
  }
  struct stat st;
  ASSERT_EQ(stat(env.BlockPath(5, 3).c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), BlockFileBytes(1000));
  // Past the end: an error, as from the remote.
  std::string buf(10, '\0');
  Status s = r->ReadAt(data.size() - 5, 10, buf.data());
  EXPECT_EQ(s.err(), ENODATA) << s.ToString();
}

TEST(ReadCache, AReadPastACachedShortTailIsAMiss) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(8000, 3);
  auto set = env.Cached(env.Options(bs));
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(9, &w).ok());  // writers pass through
  ASSERT_TRUE(w->Append(std::string_view(data).substr(0, 5000)).ok());
  ASSERT_TRUE(w->Sync().ok());
  std::unique_ptr<VolumeReader> r1;
  ASSERT_TRUE(set->Open(9, &r1).ok());
  EXPECT_EQ(ReadWith(r1.get(), bs, 904), data.substr(bs, 904));
  EXPECT_EQ(env.log().Count(), 1u);

  ASSERT_TRUE(w->Append(std::string_view(data).substr(5000)).ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r2;
  ASSERT_TRUE(set->Open(9, &r2).ok());
  EXPECT_EQ(r2->Size(), 8000u);
  EXPECT_EQ(ReadWith(r2.get(), bs + 100, 3804), data.substr(bs + 100, 3804));
  EXPECT_EQ(env.log().Count(), 2u);  // the cached 904 bytes were not enough
  // The longer block serves both readers now.
  EXPECT_EQ(ReadWith(r1.get(), bs, 904), data.substr(bs, 904));
  EXPECT_EQ(ReadWith(r2.get(), bs, 3904), data.substr(bs, 3904));
  EXPECT_EQ(env.log().Count(), 2u);
  struct stat st;
  ASSERT_EQ(stat(env.BlockPath(9, 1).c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), BlockFileBytes(3904));
  EXPECT_EQ(Stats(set.get()).bytes, BlockFileBytes(3904));
}

TEST(ReadCache, ACorruptedBlockIsDroppedAndRefetched) {
  Env env;
  const uint64_t bs = 4 * kReadCachePageSize;
  std::string data = Payload(2 * bs, 4);
  env.Write(2, data);
  auto set = env.Cached(env.Options(bs));
  EXPECT_EQ(Read(set.get(), 2, 0, 2 * bs), data);
  ASSERT_EQ(env.log().Count(), 2u);

  // A flipped byte in page 2 of block 0: a read of page 0 does not look at
  // it; a read of page 2 finds it, drops the file and asks the remote.
  const uint64_t bad = 2 * kReadCachePageSize + 77;
  FlipFileByte(env.BlockPath(2, 0), kReadCacheHeaderSize + bad);
  EXPECT_EQ(Read(set.get(), 2, 10, 1000), data.substr(10, 1000));
  EXPECT_EQ(env.log().Count(), 2u);
  testing::internal::CaptureStderr();
  EXPECT_EQ(Read(set.get(), 2, bad - 5, 10), data.substr(bad - 5, 10));
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(2, 0)));
  EXPECT_TRUE(HasSubstr(err, "checksum mismatch"));
  EXPECT_EQ(env.log().Count(), 3u);
  EXPECT_EQ(env.log().Snapshot()[2].offset, 0u);
  EXPECT_EQ(Stats(set.get()).corrupt, 1u);
  // Cached again, good this time.
  EXPECT_EQ(Read(set.get(), 2, 0, bs), data.substr(0, bs));
  EXPECT_EQ(env.log().Count(), 3u);

  // A torn file (cut short) is never served either.
  ASSERT_EQ(truncate(env.BlockPath(2, 1).c_str(), static_cast<off_t>(kReadCacheHeaderSize + 100)),
            0);
  testing::internal::CaptureStderr();
  EXPECT_EQ(Read(set.get(), 2, bs + 50, 200), data.substr(bs + 50, 200));
  err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(2, 1)));
  EXPECT_EQ(env.log().Count(), 4u);
  EXPECT_EQ(Stats(set.get()).corrupt, 2u);

  // A file removed by hand: a miss, fetched and cached again.
  ASSERT_EQ(unlink(env.BlockPath(2, 1).c_str()), 0);
  EXPECT_EQ(Read(set.get(), 2, bs + 50, 200), data.substr(bs + 50, 200));
  EXPECT_EQ(env.log().Count(), 5u);
  EXPECT_TRUE(Exists(env.BlockPath(2, 1)));
  EXPECT_EQ(Stats(set.get()).blocks, 2u);
  EXPECT_EQ(Stats(set.get()).corrupt, 2u);
}

TEST(ReadCache, EvictionKeepsTheBoundInLruOrder) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(5 * bs, 5);
  env.Write(3, data);
  ReadCacheOptions o = env.Options(bs);
  o.max_bytes = 3 * BlockFileBytes(bs);
  auto set = env.Cached(o);
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(3, &r).ok());
  for (uint64_t b : {0, 1, 2}) EXPECT_EQ(ReadWith(r.get(), b * bs, 10), data.substr(b * bs, 10));
  EXPECT_EQ(ReadWith(r.get(), 0, 10), data.substr(0, 10));  // 0 is now the most recent
  EXPECT_EQ(ReadWith(r.get(), 3 * bs, 10), data.substr(3 * bs, 10));
  ReadCacheStats st = Stats(set.get());
  EXPECT_EQ(st.evicted, 1u);
  EXPECT_EQ(st.blocks, 3u);
  EXPECT_LE(st.bytes, o.max_bytes);
  int files = 0;
  EXPECT_LE(DirBytes(env.cache_dir(), &files), o.max_bytes);
  EXPECT_EQ(files, 3);
  EXPECT_FALSE(Exists(env.BlockPath(3, 1)));  // the least recently used
  EXPECT_TRUE(Exists(env.BlockPath(3, 0)));
  size_t before = env.log().Count();
  EXPECT_EQ(ReadWith(r.get(), 0, 10), data.substr(0, 10));
  EXPECT_EQ(env.log().Count(), before);
  EXPECT_EQ(ReadWith(r.get(), bs, 10), data.substr(bs, 10));
  EXPECT_EQ(env.log().Count(), before + 1);
  EXPECT_LE(Stats(set.get()).bytes, o.max_bytes);
  EXPECT_LE(DirBytes(env.cache_dir(), &files), o.max_bytes);
}

TEST(ReadCache, RemoveDropsTheContainersBlocks) {
  Env env;
  const uint64_t bs = 4096;
  std::string a = Payload(2 * bs, 6), b = Payload(bs + 1, 7);
  env.Write(10, a);
  env.Write(11, b);
  auto set = env.Cached(env.Options(bs));
  EXPECT_EQ(Read(set.get(), 10, 0, a.size()), a);
  EXPECT_EQ(Read(set.get(), 11, 0, b.size()), b);
  EXPECT_EQ(Stats(set.get()).blocks, 4u);
  ASSERT_TRUE(set->Remove(10).ok());
  EXPECT_FALSE(Exists(env.BlockPath(10, 0)));
  EXPECT_FALSE(Exists(env.BlockPath(10, 1)));
  EXPECT_TRUE(Exists(env.BlockPath(11, 0)));
  EXPECT_TRUE(Exists(env.BlockPath(11, 1)));
  ReadCacheStats st = Stats(set.get());
  EXPECT_EQ(st.blocks, 2u);
  EXPECT_EQ(st.bytes, BlockFileBytes(bs) + BlockFileBytes(1));
  std::unique_ptr<VolumeReader> r;
  EXPECT_EQ(set->Open(10, &r).err(), ENOENT);  // gone from the remote too
  EXPECT_EQ(set->Remove(10).err(), ENOENT);
}

TEST(ReadCache, AReopenedCacheIsReusedAndCleaned) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(3 * bs, 8);
  env.Write(4, data);
  {
    auto set = env.Cached(env.Options(bs));
    EXPECT_EQ(Read(set.get(), 4, 0, data.size()), data);
    EXPECT_EQ(env.log().Count(), 3u);
  }
  // Litter a crash or a person could leave, and a damaged header.
  auto put = [&](const std::string& name, const std::string& bytes) {
    int fd = open((env.cache_dir() + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
  };
  put("tmp-7", "half a block");
  put("junk.txt", "hello");
  put(ReadCacheBlockName(4, 9), std::string(200, 'x'));
  FlipFileByte(env.BlockPath(4, 2), 20);  // in the header (vv id)
  // A good block under another block's name must not pass for it.
  std::filesystem::copy_file(env.BlockPath(4, 0), env.BlockPath(99, 0));
  std::filesystem::create_directory(env.cache_dir() + "/subdir");

  testing::internal::CaptureStderr();
  auto set = env.Cached(env.Options(bs));
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(HasSubstr(err, "junk.txt"));
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(4, 9)));
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(4, 2)));
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(99, 0) + ": header names another block"));
  EXPECT_FALSE(Exists(env.BlockPath(99, 0)));
  EXPECT_FALSE(Exists(env.cache_dir() + "/tmp-7"));
  EXPECT_FALSE(Exists(env.cache_dir() + "/junk.txt"));
  EXPECT_FALSE(Exists(env.BlockPath(4, 9)));
  EXPECT_FALSE(Exists(env.BlockPath(4, 2)));
  EXPECT_TRUE(Exists(env.cache_dir() + "/subdir"));  // not a file of ours
  ReadCacheStats st = Stats(set.get());
  EXPECT_EQ(st.blocks, 2u);
  EXPECT_EQ(Read(set.get(), 4, 0, 2 * bs), data.substr(0, 2 * bs));
  EXPECT_EQ(env.log().Count(), 3u);  // reused: no remote read
  EXPECT_EQ(Read(set.get(), 4, 2 * bs, bs), data.substr(2 * bs));
  EXPECT_EQ(env.log().Count(), 4u);
  set.reset();

  // Another block size: the old blocks cannot be used and are removed.
  testing::internal::CaptureStderr();
  set = env.Cached(env.Options(2 * bs));
  err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(HasSubstr(err, "removed 3 blocks of another block size"));
  EXPECT_EQ(Stats(set.get()).blocks, 0u);
  EXPECT_EQ(Read(set.get(), 4, 0, data.size()), data);
  EXPECT_EQ(env.log().Count(), 6u);
}

// A sealed container never changes: the cache remembers its size, and a
// later run opens it and reads its cached blocks without the remote (a
// warm container start needs no cluster); only a miss opens the remote.
TEST(ReadCache, SealedContainersOpenWithoutTheRemote) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(3 * bs + 100, 9);
  env.Write(5, data);
  env.log().sealed = true;
  {
    auto set = env.Cached(env.Options(bs));
    EXPECT_EQ(Read(set.get(), 5, 0, 2 * bs), data.substr(0, 2 * bs));
  }
  EXPECT_EQ(env.log().opens.load(), 1);
  EXPECT_TRUE(Exists(env.cache_dir() + "/0000000000000005.seal"));
  const size_t reads = env.log().Count();

  auto set = env.Cached(env.Options(bs));
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(5, &r).ok());
  EXPECT_EQ(r->Size(), data.size());
  EXPECT_EQ(ReadWith(r.get(), 0, 2 * bs), data.substr(0, 2 * bs));
  EXPECT_EQ(env.log().opens.load(), 1) << "cached blocks of a sealed container: no remote open";
  EXPECT_EQ(env.log().Count(), reads);
  EXPECT_EQ(ReadWith(r.get(), 2 * bs, bs + 100), data.substr(2 * bs));  // a miss
  EXPECT_EQ(env.log().opens.load(), 2);
  EXPECT_EQ(ReadWith(r.get(), 3 * bs, 100), data.substr(3 * bs));  // cached now
  EXPECT_EQ(env.log().opens.load(), 2);

  // A damaged size file is not trusted; Remove forgets the size.
  FlipFileByte(env.cache_dir() + "/0000000000000005.seal", 9);
  ASSERT_TRUE(set->Open(5, &r).ok());
  EXPECT_EQ(env.log().opens.load(), 3);
  EXPECT_EQ(r->Size(), data.size());
  ASSERT_TRUE(set->Remove(5).ok());
  EXPECT_FALSE(Exists(env.cache_dir() + "/0000000000000005.seal"));
  // Unsealed containers (the remote does not say sealed) are not remembered.
  env.log().sealed = false;
  env.Write(6, data);
  EXPECT_EQ(Read(set.get(), 6, 0, 10), data.substr(0, 10));
  EXPECT_FALSE(Exists(env.cache_dir() + "/0000000000000006.seal"));
}

TEST(ReadCache, TornOrGrownFilesAreRemovedAtOpen) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(3 * bs, 19);
  env.Write(19, data);
  {
    auto set = env.Cached(env.Options(bs));
    EXPECT_EQ(Read(set.get(), 19, 0, data.size()), data);
  }
  ASSERT_EQ(truncate(env.BlockPath(19, 0).c_str(), static_cast<off_t>(kReadCacheHeaderSize + 100)),
            0);
  { std::ofstream(env.BlockPath(19, 1), std::ios::app) << "x"; }
  testing::internal::CaptureStderr();
  auto set = env.Cached(env.Options(bs));
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(19, 0) + ": size does not match"));
  EXPECT_TRUE(HasSubstr(err, env.BlockPath(19, 1) + ": size does not match"));
  EXPECT_EQ(Stats(set.get()).blocks, 1u);
  EXPECT_EQ(Read(set.get(), 19, 0, data.size()), data);
  EXPECT_EQ(env.log().Count(), 5u);
}

TEST(ReadCache, AShrunkBoundEvictsAtOpen) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(4 * bs, 9);
  env.Write(6, data);
  {
    auto set = env.Cached(env.Options(bs));
    EXPECT_EQ(Read(set.get(), 6, 0, data.size()), data);
  }
  ReadCacheOptions o = env.Options(bs);
  o.max_bytes = 2 * BlockFileBytes(bs);
  auto set = env.Cached(o);
  EXPECT_EQ(Stats(set.get()).blocks, 2u);
  int files = 0;
  EXPECT_LE(DirBytes(env.cache_dir(), &files), o.max_bytes);
  EXPECT_EQ(files, 2);
}

TEST(ReadCache, SequentialReadsPrefetchTheNextBlocks) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(12 * bs, 10);
  env.Write(7, data);
  ReadCacheOptions o = env.Options(bs);
  o.prefetch_depth = 3;
  o.prefetch_threads = 2;
  auto set = env.Cached(o);
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(7, &r).ok());
  EXPECT_EQ(ReadWith(r.get(), 0, 1000), data.substr(0, 1000));
  EXPECT_EQ(ReadWith(r.get(), 1000, 3096), data.substr(1000, 3096));  // same block: no hint
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(env.log().Count(), 1u);
  EXPECT_EQ(ReadWith(r.get(), bs, bs), data.substr(bs, bs));  // the next block: sequential
  ASSERT_TRUE(Eventually([&] {
    return env.log().CountAt(7, 2 * bs) == 1 && env.log().CountAt(7, 3 * bs) == 1 &&
           env.log().CountAt(7, 4 * bs) == 1 && Stats(set.get()).prefetched == 3;
  }));
  EXPECT_EQ(env.log().CountAt(7, 5 * bs), 0u);  // only `depth` ahead
  size_t before = env.log().Count();
  EXPECT_EQ(ReadWith(r.get(), 2 * bs, 3 * bs), data.substr(2 * bs, 3 * bs));
  // Reading 2..4 asked for 5..7 in the background, not for 2..4 again.
  for (uint64_t b : {2, 3, 4}) EXPECT_EQ(env.log().CountAt(7, b * bs), 1u);
  ASSERT_TRUE(Eventually([&] {
    return env.log().CountAt(7, 5 * bs) == 1 && env.log().CountAt(7, 6 * bs) == 1 &&
           env.log().CountAt(7, 7 * bs) == 1;
  }));
  EXPECT_EQ(env.log().Count(), before + 3);

  // A jump is not sequential: nothing is read ahead of it.
  std::unique_ptr<VolumeReader> r2;
  ASSERT_TRUE(set->Open(7, &r2).ok());
  EXPECT_EQ(ReadWith(r2.get(), 0, 10), data.substr(0, 10));
  EXPECT_EQ(ReadWith(r2.get(), 9 * bs, 10), data.substr(9 * bs, 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(env.log().CountAt(7, 10 * bs), 0u);
}

TEST(ReadCache, InterleavedSequentialReadsOfOneReaderAreFollowedEach) {
  // The store shares one reader per container among the files in it.
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(40 * bs, 18);
  env.Write(18, data);
  ReadCacheOptions o = env.Options(bs);
  o.prefetch_depth = 2;
  auto set = env.Cached(o);
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(18, &r).ok());
  for (uint64_t b : {0, 20, 30, 1, 21, 31}) {
    EXPECT_EQ(ReadWith(r.get(), b * bs, 100), data.substr(b * bs, 100)) << b;
  }
  ASSERT_TRUE(Eventually([&] { return Stats(set.get()).prefetched == 6; }));
  for (uint64_t b : {2, 3, 22, 23, 32, 33}) EXPECT_EQ(env.log().CountAt(18, b * bs), 1u) << b;
  EXPECT_EQ(env.log().Count(), 12u);
}

TEST(ReadCache, ThePrefetchQueueIsBounded) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(8 * bs, 17);
  env.Write(17, data);
  ReadCacheOptions o = env.Options(bs);
  o.prefetch_depth = 4;
  o.prefetch_threads = 1;
  o.prefetch_queue = 1;
  auto set = env.Cached(o);
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(17, &r).ok());
  EXPECT_EQ(ReadWith(r.get(), 0, 10), data.substr(0, 10));
  env.log().delay_ms = 200;
  EXPECT_EQ(ReadWith(r.get(), bs, 10), data.substr(bs, 10));  // asks for 2..5
  // One being fetched and one waiting at most: the rest were dropped.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  size_t ahead = 0;
  for (uint64_t b = 2; b <= 5; b++) ahead += env.log().CountAt(17, b * bs);
  EXPECT_GE(ahead, 1u);
  EXPECT_LE(ahead, 2u);
}

TEST(ReadCache, AForegroundReadWaitsForThePrefetchOfItsBlock) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(8 * bs, 11);
  env.Write(8, data);
  ReadCacheOptions o = env.Options(bs);
  o.prefetch_depth = 4;
  o.prefetch_threads = 4;
  auto set = env.Cached(o);
  // Block 1 cached by another reader, so that the sequential read of it
  // below returns at once while its prefetches are still running.
  EXPECT_EQ(Read(set.get(), 8, bs, bs), data.substr(bs, bs));
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(8, &r).ok());
  EXPECT_EQ(ReadWith(r.get(), 0, bs), data.substr(0, bs));
  env.log().delay_ms = 400;  // remote reads now slow: prefetches stay in flight
  EXPECT_EQ(ReadWith(r.get(), bs, bs), data.substr(bs, bs));
  ASSERT_TRUE(Eventually([&] { return env.log().CountAt(8, 5 * bs) == 1; }));
  // Blocks 2..5 are being fetched; reading them must not fetch them again.
  EXPECT_EQ(ReadWith(r.get(), 2 * bs, 4 * bs), data.substr(2 * bs, 4 * bs));
  EXPECT_EQ(Stats(set.get()).hits, 5u);  // block 1, then 2..5 after waiting for them
  for (uint64_t b = 2; b <= 5; b++) EXPECT_EQ(env.log().CountAt(8, b * bs), 1u) << b;
  ReadCacheStats st = Stats(set.get());
  EXPECT_EQ(st.misses, 2u);  // blocks 1 and 0 only
  EXPECT_GE(st.prefetched, 4u);
}

TEST(ReadCache, AReadOfSeveralBlocksFetchesThemInParallel) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(4 * bs, 14);
  env.Write(14, data);
  ReadCacheOptions o = env.Options(bs);
  o.prefetch_depth = 1;
  o.prefetch_threads = 3;
  auto set = env.Cached(o);
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(14, &r).ok());
  env.log().delay_ms = 400;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadWith(r.get(), 0, data.size()), data);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  EXPECT_LT(ms, 1200) << "4 blocks of 400 ms each, one after another";
  for (uint64_t b = 0; b < 4; b++) EXPECT_EQ(env.log().CountAt(14, b * bs), 1u) << b;
}

TEST(ReadCache, ConcurrentReadersGetTheRightBytes) {
  Env env;
  const uint64_t bs = 4096;
  std::vector<std::string> data;
  for (uint64_t vv = 1; vv <= 3; vv++) {
    data.push_back(Payload(40 * bs + 123 * vv, 20 + vv));
    env.Write(vv, data.back());
  }
  ReadCacheOptions o = env.Options(bs);
  o.max_bytes = 16 * BlockFileBytes(bs);  // evicting all the time
  o.prefetch_depth = 3;
  o.prefetch_threads = 2;
  auto set = env.Cached(o);
  std::vector<std::unique_ptr<VolumeReader>> readers;
  for (uint64_t vv = 1; vv <= 3; vv++) {
    readers.emplace_back();
    ASSERT_TRUE(set->Open(vv, &readers.back()).ok());
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      uint64_t seq = 0;
      for (int i = 0; i < 300; i++) {
        size_t c = rng() % 3;
        const std::string& d = data[c];
        uint64_t off, n;
        if (t % 2 == 0) {  // sequential, to drive prefetch
          n = 3000;
          off = seq % (d.size() - n);
          seq += n;
        } else {
          off = rng() % d.size();
          n = 1 + rng() % std::min<uint64_t>(3 * bs, d.size() - off);
        }
        std::string buf(n, '\0');
        Status s = readers[c]->ReadAt(off, n, buf.data());
        if (!s.ok() || buf != d.substr(off, n)) bad++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  ReadCacheStats st = Stats(set.get());
  EXPECT_LE(st.bytes, o.max_bytes);
  EXPECT_GT(st.hits, 0u);
  EXPECT_GT(st.evicted, 0u);
  EXPECT_EQ(st.corrupt, 0u);
}

TEST(ReadCache, RemoteErrorsReachTheReader) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(2 * bs, 12);
  env.Write(12, data);
  auto set = env.Cached(env.Options(bs));
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(12, &r).ok());
  EXPECT_EQ(ReadWith(r.get(), 0, 10), data.substr(0, 10));
  env.log().fail = true;
  EXPECT_EQ(ReadWith(r.get(), 5, 10), data.substr(5, 10));  // cached: no remote needed
  std::string buf(10, '\0');
  Status s = r->ReadAt(bs, 10, buf.data());
  EXPECT_EQ(s.err(), ETIMEDOUT) << s.ToString();
  EXPECT_FALSE(Exists(env.BlockPath(12, 1)));
  env.log().fail = false;
  EXPECT_EQ(ReadWith(r.get(), bs, 10), data.substr(bs, 10));
}

TEST(ReadCache, ASecondUserOfTheDirectoryRunsUncachedUntilItCanTakeOver) {
  Env env;
  const uint64_t bs = 4096;
  std::string data = Payload(2 * bs, 13);
  env.Write(13, data);
  env.Write(15, Payload(bs, 15));
  auto first = env.Cached(env.Options(bs));
  EXPECT_EQ(Read(first.get(), 13, 0, 100), data.substr(0, 100));
  EXPECT_EQ(Read(first.get(), 15, 0, 100), Payload(bs, 15).substr(0, 100));
  EXPECT_EQ(env.log().Count(), 2u);

  ReadCacheOptions o2 = env.Options(bs);
  o2.lock_retry_ms = 50;
  testing::internal::CaptureStderr();
  auto second = env.Cached(o2);
  std::string err = testing::internal::GetCapturedStderr();
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(HasSubstr(err, "without its read cache"));
  EXPECT_TRUE(HasSubstr(err, env.cache_dir()));
  ReadCacheStats st;
  EXPECT_FALSE(GetReadCacheStats(second.get(), &st));
  EXPECT_EQ(Read(second.get(), 13, 0, 100), data.substr(0, 100));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // a retry: still busy
  EXPECT_EQ(Read(second.get(), 13, 0, 100), data.substr(0, 100));
  EXPECT_EQ(env.log().Count(), 4u);  // both went to the remote
  EXPECT_FALSE(GetReadCacheStats(second.get(), &st));
  EXPECT_EQ(Stats(first.get()).blocks, 2u);
  // Said once per directory, not at every open of the store.
  testing::internal::CaptureStderr();
  auto again = env.Cached(env.Options(bs));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  again.reset();

  // Another process, likewise.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::unique_ptr<VolumeSet> local, out;
    if (!OpenLocalVolumeSet(std::filesystem::path(env.cache_dir()).parent_path().parent_path(),
                            "remote", LocalVolumeOptions(), &local)
             .ok()) {
      _exit(2);
    }
    if (!WrapWithReadCache(std::move(local), env.Options(bs), &out).ok()) _exit(3);
    ReadCacheStats s;
    if (GetReadCacheStats(out.get(), &s)) _exit(4);  // it got the cache: wrong
    std::unique_ptr<VolumeReader> r;
    if (!out->Open(13, &r).ok()) _exit(5);
    std::string buf(100, '\0');
    if (!r->ReadAt(bs, 100, buf.data()).ok() || buf != data.substr(bs, 100)) _exit(6);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  // A container removed while uncached, then the first lets go: the
  // second takes the cache over at its next Open, with the blocks the first
  // left, but not the removed container's.
  // A reader opened while uncached (the store keeps its readers) reads
  // through the cache too once there is one.
  std::unique_ptr<VolumeReader> held;
  ASSERT_TRUE(second->Open(13, &held).ok());
  ASSERT_TRUE(second->Remove(15).ok());
  EXPECT_TRUE(Exists(env.BlockPath(15, 0)));
  first.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(ReadWith(held.get(), 0, 100), data.substr(0, 100));
  ASSERT_TRUE(GetReadCacheStats(second.get(), &st));
  EXPECT_EQ(st.blocks, 1u);
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(env.log().Count(), 4u);
  EXPECT_FALSE(Exists(env.BlockPath(15, 0)));
  EXPECT_EQ(Read(second.get(), 13, 10, 100), data.substr(10, 100));
  EXPECT_EQ(Stats(second.get()).hits, 2u);
  EXPECT_EQ(env.log().Count(), 4u);
}

TEST(ReadCache, AnUnusableDirectoryRunsUncached) {
  Env env;
  std::string data = Payload(5000, 16);
  env.Write(16, data);
  ReadCacheOptions o = env.Options(4096);
  // Where a folder should be, a file: it cannot be made.
  o.dir = std::filesystem::path(env.cache_dir()).parent_path().string() + "/file/remote";
  std::filesystem::create_directories(std::filesystem::path(o.dir).parent_path().parent_path());
  { std::ofstream(std::filesystem::path(o.dir).parent_path()) << "not a folder"; }
  testing::internal::CaptureStderr();
  auto set = env.Cached(o);
  std::string err = testing::internal::GetCapturedStderr();
  ASSERT_NE(set, nullptr);
  EXPECT_TRUE(HasSubstr(err, "runs without its read cache: cannot create " + o.dir));
  ReadCacheStats st;
  EXPECT_FALSE(GetReadCacheStats(set.get(), &st));
  EXPECT_EQ(Read(set.get(), 16, 0, data.size()), data);
  EXPECT_EQ(Read(set.get(), 16, 0, data.size()), data);
  EXPECT_EQ(env.log().Count(), 2u);
}

TEST(ReadCache, BadOptionsAreRefused) {
  Env env;
  ReadCacheOptions o = env.Options(4096);
  std::unique_ptr<VolumeSet> out;
  o.block_size = 1000;
  Status s = WrapWithReadCache(env.Remote(), o, &out);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "block size 1000"));
  o.block_size = 2 * kMaxVolumePiece;
  EXPECT_EQ(WrapWithReadCache(env.Remote(), o, &out).err(), EINVAL);
  o = env.Options(4096);
  o.dir = "relative/cache";
  s = WrapWithReadCache(env.Remote(), o, &out);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "relative/cache"));
}

TEST(ReadCache, BlockNames) {
  EXPECT_EQ(ReadCacheBlockName(0x1234, 0xab), "0000000000001234-00000000000000ab.blk");
}

}  // namespace
}  // namespace overtier
