#include "store/cached_volume.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/coding.h"
#include "store/flock_retry.h"

namespace overtier {

namespace {

constexpr char kMagic[8] = {'O', 'V', 'T', 'R', 'C', 'B', 'L', 'K'};
constexpr uint32_t kVersion = 1;
constexpr char kLockName[] = "LOCK";
constexpr char kTempPrefix[] = "tmp-";
constexpr char kSealSuffix[] = ".seal";
constexpr char kSealMagic[8] = {'O', 'V', 'T', 'S', 'E', 'A', 'L', '1'};
constexpr uint64_t kNoBlock = ~uint64_t{0};

// Header layout (little-endian):
//   0 magic "OVTRCBLK"   8 u32 version      12 u32 page size
//  16 u64 vv id          24 u64 block index  32 u64 data length
//  40 u64 block size     48 u64 XXH3-64 of the page checksum table
//  56 u64 XXH3-64 of bytes [0, 56)
constexpr size_t kOffVersion = 8, kOffPage = 12, kOffVv = 16, kOffBlock = 24, kOffLength = 32,
                 kOffBlockSize = 40, kOffTableHash = 48, kOffHeaderHash = 56;
static_assert(kReadCacheHeaderSize == 64);

// Little-endian fields (store/coding.h).
inline void Put32(char* p, uint32_t v) { EncodeFixed32(p, v); }
inline void Put64(char* p, uint64_t v) { EncodeFixed64(p, v); }
inline uint32_t Get32(const char* p) { return DecodeFixed32(p); }
inline uint64_t Get64(const char* p) { return DecodeFixed64(p); }

uint64_t NumPages(uint64_t length) {
  return (length + kReadCachePageSize - 1) / kReadCachePageSize;
}
uint64_t FileBytes(uint64_t length) { return kReadCacheHeaderSize + length + 8 * NumPages(length); }

bool ParseHex16(std::string_view s, uint64_t* out) {
  if (s.size() != 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

// Full pread: false on error or a short file (a torn cache file).
bool PreadFull(int fd, char* buf, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t r = pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return true;
}

bool WriteFull(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

struct Key {
  uint64_t vv = 0, block = 0;
  auto operator<=>(const Key&) const = default;
};

// The shared state of one cached set: the index of the cache directory,
// the LRU order, fetches in flight, and the prefetch threads.
class Cache {
 public:
  Cache(const ReadCacheOptions& o, int dir_fd, int lock_fd)
      : o_(o), dir_fd_(dir_fd), lock_fd_(lock_fd) {}

  ~Cache() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      queue_.clear();  // drops the remote readers the jobs hold
      queued_.clear();
    }
    queue_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    close(dir_fd_);
    close(lock_fd_);  // releases the flock
  }

  uint64_t block_size() const { return o_.block_size; }
  uint32_t prefetch_depth() const { return o_.prefetch_threads == 0 ? 0 : o_.prefetch_depth; }

  // Started by the first prefetch, not at open: the daemon opens its store
  // before fuse_daemonize forks, and threads started then would be gone in
  // the child while the queue still counted on them. Under mu_.
  void StartWorkersLocked() {
    if (!workers_.empty() || o_.prefetch_depth == 0) return;
    for (uint32_t i = 0; i < o_.prefetch_threads; i++) {
      workers_.emplace_back([this] { WorkerLoop(); });
    }
  }

  // Indexes the files an earlier run left, removing what cannot be used.
  void Scan();

  // Bytes [lo, hi) of block k (whose full length, for this reader, is
  // block_len, starting at container offset block_start) into out: from the
  // cache, else from the remote (the whole block, then cached).
  Status Read(const VolumeReader& remote, Key k, uint64_t block_start, uint64_t block_len,
              uint64_t lo, uint64_t hi, char* out);

  // Asks a prefetch thread to cache block k. Never blocks.
  void Prefetch(const std::shared_ptr<VolumeReader>& remote, Key k, uint64_t block_start,
                uint64_t block_len);

  void DropContainer(uint64_t vv);

  // Sealed containers never change: their size, remembered in a small file
  // "<16 hex digits of vv>.seal" (magic, size, checksum), lets a later run
  // open them without asking the remote (a warm start needs no cluster).
  bool SealedSize(uint64_t vv, uint64_t* size);
  void NoteSealed(uint64_t vv, uint64_t size);

  ReadCacheStats Stats() {
    std::lock_guard<std::mutex> l(mu_);
    ReadCacheStats s = stats_;
    s.blocks = entries_.size();
    s.bytes = bytes_;
    return s;
  }

 private:
  struct Entry {
    uint64_t length = 0;
    uint64_t gen = 0;  // tells a refilled entry from the one a reader looked at
    std::vector<uint64_t> pages;
    std::list<Key>::iterator lru;
  };
  struct Job {
    std::shared_ptr<VolumeReader> remote;
    Key key;
    uint64_t block_start = 0, block_len = 0;
  };

  std::string PathOf(const std::string& name) const { return o_.dir + "/" + name; }
  bool ReadHit(Key k, uint64_t lo, uint64_t hi, char* out);
  void Fill(Key k, const char* data, uint64_t len);
  void EndFetch(Key k);
  void Drop(Key k, uint64_t gen);
  void EraseLocked(std::map<Key, Entry>::iterator it);
  void EvictLocked();
  void WorkerLoop();
  void NoteFillError(const std::string& what, int err);

  const ReadCacheOptions o_;
  const int dir_fd_;
  const int lock_fd_;
  std::atomic<uint64_t> temp_counter_{0};

  std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::list<Key> lru_;  // front: most recently used
  uint64_t bytes_ = 0;
  uint64_t next_gen_ = 1;
  ReadCacheStats stats_;
  bool fill_error_noted_ = false;
  // Blocks being fetched from the remote; others needing one wait for it.
  std::set<Key> in_flight_;
  std::condition_variable fetch_cv_;
  // Containers removed: a fetch finishing after Remove must not cache them.
  std::unordered_set<uint64_t> removed_;
  std::deque<Job> queue_;
  std::set<Key> queued_;
  std::condition_variable queue_cv_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

void Cache::Scan() {
  int fd = dup(dir_fd_);
  if (fd < 0) return;
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return;
  }
  struct Found {
    timespec mtime;
    Key key;
    Entry entry;
  };
  std::vector<Found> found;
  uint64_t other_block_size = 0;
  auto remove = [&](const std::string& name, const char* why) {
    if (why != nullptr) {
      fprintf(stderr, "overtier: read cache: removing %s: %s\n", PathOf(name).c_str(), why);
    }
    unlinkat(dir_fd_, name.c_str(), 0);
  };
  while (dirent* de = readdir(d)) {
    std::string name = de->d_name;
    if (name == "." || name == ".." || name == kLockName) continue;
    struct stat st;
    if (fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(st.st_mode)) continue;  // not ours to delete
    // A temp file is a fill cut short by a crash: nothing to report.
    if (name.rfind(kTempPrefix, 0) == 0) {
      remove(name, nullptr);
      continue;
    }
    uint64_t sealed_vv = 0;
    if (name.size() == 21 && name.substr(16) == kSealSuffix &&
        ParseHex16(std::string_view(name).substr(0, 16), &sealed_vv)) {
      continue;  // checked when used
    }
    Key k;
    if (name.size() != 37 || name[16] != '-' || name.substr(33) != ".blk" ||
        !ParseHex16(std::string_view(name).substr(0, 16), &k.vv) ||
        !ParseHex16(std::string_view(name).substr(17, 16), &k.block)) {
      remove(name, "not a cache file");
      continue;
    }
    int bfd = openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC);
    if (bfd < 0) continue;
    char h[kReadCacheHeaderSize];
    const char* why = nullptr;
    uint64_t length = 0;
    std::vector<uint64_t> pages;
    if (!PreadFull(bfd, h, sizeof h, 0)) {
      why = "shorter than a header";
    } else if (memcmp(h, kMagic, sizeof kMagic) != 0) {
      why = "bad magic";
    } else if (XXH3_64bits(h, kOffHeaderHash) != Get64(h + kOffHeaderHash)) {
      why = "header checksum mismatch";
    } else if (Get32(h + kOffVersion) != kVersion || Get32(h + kOffPage) != kReadCachePageSize) {
      why = "unknown version or page size";
    } else if (Get64(h + kOffVv) != k.vv || Get64(h + kOffBlock) != k.block) {
      why = "header names another block";
    } else if (Get64(h + kOffBlockSize) != o_.block_size) {
      other_block_size++;  // a change of configuration, not damage
    } else if ((length = Get64(h + kOffLength)) == 0 || length > o_.block_size) {
      why = "bad length";
    } else if (static_cast<uint64_t>(st.st_size) != FileBytes(length)) {
      why = "size does not match the header (a torn write?)";
    } else {
      std::string table(8 * NumPages(length), '\0');
      if (!PreadFull(bfd, table.data(), table.size(), kReadCacheHeaderSize + length) ||
          XXH3_64bits(table.data(), table.size()) != Get64(h + kOffTableHash)) {
        why = "checksum table mismatch";
      } else {
        for (size_t i = 0; i < table.size(); i += 8) pages.push_back(Get64(table.data() + i));
      }
    }
    close(bfd);
    if (pages.empty()) {
      remove(name, why);
      continue;
    }
    Found f;
    f.mtime = st.st_mtim;
    f.key = k;
    f.entry.length = length;
    f.entry.pages = std::move(pages);
    found.push_back(std::move(f));
  }
  closedir(d);
  if (other_block_size > 0) {
    fprintf(stderr, "overtier: read cache %s: removed %llu blocks of another block size\n",
            o_.dir.c_str(), static_cast<unsigned long long>(other_block_size));
  }
  // Across runs, the order of use is approximated by the order of filling.
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.mtime.tv_sec, a.mtime.tv_nsec) < std::tie(b.mtime.tv_sec, b.mtime.tv_nsec);
  });
  std::lock_guard<std::mutex> l(mu_);
  for (Found& f : found) {
    lru_.push_front(f.key);
    f.entry.lru = lru_.begin();
    f.entry.gen = next_gen_++;
    bytes_ += FileBytes(f.entry.length);
    entries_[f.key] = std::move(f.entry);
  }
  EvictLocked();  // max_bytes may have shrunk
}

bool Cache::ReadHit(Key k, uint64_t lo, uint64_t hi, char* out) {
  const uint64_t p0 = lo / kReadCachePageSize, p1 = (hi - 1) / kReadCachePageSize;
  uint64_t gen, length;
  std::vector<uint64_t> sums;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(k);
    if (it == entries_.end() || it->second.length < hi) return false;
    gen = it->second.gen;
    length = it->second.length;
    sums.assign(it->second.pages.begin() + static_cast<ptrdiff_t>(p0),
                it->second.pages.begin() + static_cast<ptrdiff_t>(p1 + 1));
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  const std::string name = ReadCacheBlockName(k.vv, k.block);
  int fd = openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Removed behind our back (by hand, or evicted since we looked); any
    // other failure (EMFILE) says nothing about the file.
    if (errno == ENOENT) Drop(k, gen);
    return false;
  }
  // The data sits at a fixed offset, so a file refilled with a longer
  // block since we looked holds the same bytes where we read.
  const uint64_t start = p0 * kReadCachePageSize;
  const uint64_t end = std::min((p1 + 1) * kReadCachePageSize, length);
  std::unique_ptr<char[]> buf(new char[end - start]);
  bool ok = PreadFull(fd, buf.get(), end - start, kReadCacheHeaderSize + start);
  close(fd);
  const char* why = ok ? nullptr : "shorter than its header says (a torn write?)";
  for (uint64_t p = p0; ok && p <= p1; p++) {
    const uint64_t at = p * kReadCachePageSize - start;
    const uint64_t n = std::min(kReadCachePageSize, length - p * kReadCachePageSize);
    if (XXH3_64bits(buf.get() + at, n) != sums[p - p0]) {
      ok = false;
      why = "data checksum mismatch";
    }
  }
  if (!ok) {
    fprintf(stderr, "overtier: read cache: dropping %s: %s; reading from the remote set\n",
            PathOf(name).c_str(), why);
    {
      std::lock_guard<std::mutex> l(mu_);
      stats_.corrupt++;
    }
    Drop(k, gen);
    return false;
  }
  memcpy(out, buf.get() + (lo - start), hi - lo);
  return true;
}

Status Cache::Read(const VolumeReader& remote, Key k, uint64_t block_start, uint64_t block_len,
                   uint64_t lo, uint64_t hi, char* out) {
  bool looked_again = false;
  for (;;) {
    if (ReadHit(k, lo, hi, out)) {
      std::lock_guard<std::mutex> l(mu_);
      stats_.hits++;
      return Status::OK();
    }
    std::unique_lock<std::mutex> l(mu_);
    if (in_flight_.count(k) == 0) {
      // A fetch (a prefetch) may have filled the block and ended between
      // ReadHit's look and this lock: look once more rather than fetch it
      // a second time. Only once: a block that is there but does not read
      // (a descriptor short, say) is fetched.
      auto it = entries_.find(k);
      if (!looked_again && it != entries_.end() && it->second.length >= hi) {
        looked_again = true;
        continue;
      }
      in_flight_.insert(k);
      stats_.misses++;
      break;
    }
    // Being fetched (by prefetch or another reader): wait, then look again.
    fetch_cv_.wait(l, [&] { return in_flight_.count(k) == 0; });
  }
  std::unique_ptr<char[]> buf(new char[block_len]);
  Status s = remote.ReadAt(block_start, block_len, buf.get());
  if (s.ok()) {
    Fill(k, buf.get(), block_len);
    memcpy(out, buf.get() + lo, hi - lo);
  }
  EndFetch(k);
  return s;
}

void Cache::EndFetch(Key k) {
  {
    std::lock_guard<std::mutex> l(mu_);
    in_flight_.erase(k);
  }
  fetch_cv_.notify_all();
}

void Cache::NoteFillError(const std::string& what, int err) {
  std::lock_guard<std::mutex> l(mu_);
  stats_.fill_errors++;
  if (fill_error_noted_) return;
  fill_error_noted_ = true;
  fprintf(stderr, "overtier: read cache %s: %s: %s (reads still work, uncached)\n", o_.dir.c_str(),
          what.c_str(), strerror(err));
}

void Cache::Fill(Key k, const char* data, uint64_t len) {
  if (FileBytes(len) > o_.max_bytes) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (removed_.count(k.vv) != 0) return;
    auto it = entries_.find(k);
    if (it != entries_.end() && it->second.length >= len) return;
  }
  std::vector<uint64_t> pages;
  std::string table;
  for (uint64_t off = 0; off < len; off += kReadCachePageSize) {
    uint64_t h = XXH3_64bits(data + off, std::min(kReadCachePageSize, len - off));
    pages.push_back(h);
    char b[8];
    Put64(b, h);
    table.append(b, 8);
  }
  char h[kReadCacheHeaderSize] = {};
  memcpy(h, kMagic, sizeof kMagic);
  Put32(h + kOffVersion, kVersion);
  Put32(h + kOffPage, static_cast<uint32_t>(kReadCachePageSize));
  Put64(h + kOffVv, k.vv);
  Put64(h + kOffBlock, k.block);
  Put64(h + kOffLength, len);
  Put64(h + kOffBlockSize, o_.block_size);
  Put64(h + kOffTableHash, XXH3_64bits(table.data(), table.size()));
  Put64(h + kOffHeaderHash, XXH3_64bits(h, kOffHeaderHash));

  // Written under a temp name and renamed: the final name never shows a
  // partial file (and if it did, the checksums would refuse it).
  const std::string tmp = kTempPrefix + std::to_string(temp_counter_.fetch_add(1));
  int fd = openat(dir_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    return NoteFillError("create " + tmp, e);
  }
  // WriteFull's false with errno 0 is a write of 0 bytes: call it ENOSPC.
  errno = ENOSPC;
  bool ok = WriteFull(fd, h, sizeof h) && WriteFull(fd, data, len) &&
            WriteFull(fd, table.data(), table.size());
  if (!ok) NoteFillError("write " + tmp, errno);
  if (close(fd) != 0 && ok) {
    ok = false;
    NoteFillError("close " + tmp, errno);
  }
  if (!ok) {
    unlinkat(dir_fd_, tmp.c_str(), 0);
    return;
  }
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(k);
  if (removed_.count(k.vv) != 0 || (it != entries_.end() && it->second.length >= len)) {
    unlinkat(dir_fd_, tmp.c_str(), 0);
    return;
  }
  const std::string name = ReadCacheBlockName(k.vv, k.block);
  if (renameat(dir_fd_, tmp.c_str(), dir_fd_, name.c_str()) != 0) {
    unlinkat(dir_fd_, tmp.c_str(), 0);
    stats_.fill_errors++;
    return;
  }
  if (it != entries_.end()) {  // a shorter tail block, replaced by the rename
    bytes_ -= FileBytes(it->second.length);
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  lru_.push_front(k);
  Entry& e = entries_[k];
  e.length = len;
  e.gen = next_gen_++;
  e.pages = std::move(pages);
  e.lru = lru_.begin();
  bytes_ += FileBytes(len);
  EvictLocked();
}

void Cache::EraseLocked(std::map<Key, Entry>::iterator it) {
  unlinkat(dir_fd_, ReadCacheBlockName(it->first.vv, it->first.block).c_str(), 0);
  bytes_ -= FileBytes(it->second.length);
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void Cache::Drop(Key k, uint64_t gen) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(k);
  if (it != entries_.end() && it->second.gen == gen) EraseLocked(it);
}

void Cache::EvictLocked() {
  while (bytes_ > o_.max_bytes && !lru_.empty()) {
    EraseLocked(entries_.find(lru_.back()));
    stats_.evicted++;
  }
}

std::string SealFileName(uint64_t vv) {
  char name[32];
  snprintf(name, sizeof name, "%016llx%s", static_cast<unsigned long long>(vv), kSealSuffix);
  return name;
}

bool Cache::SealedSize(uint64_t vv, uint64_t* size) {
  int fd = openat(dir_fd_, SealFileName(vv).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  char b[32];
  ssize_t n = pread(fd, b, sizeof b, 0);
  close(fd);
  // A torn or damaged file is not used: the remote is asked instead.
  if (n != 24 || std::memcmp(b, kSealMagic, 8) != 0) return false;
  uint64_t stored, sum;
  std::memcpy(&stored, b + 8, 8);
  std::memcpy(&sum, b + 16, 8);
  if (sum != XXH3_64bits(b, 16)) return false;
  *size = stored;
  return true;
}

void Cache::NoteSealed(uint64_t vv, uint64_t size) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (removed_.count(vv) != 0) return;
  }
  char b[24];
  std::memcpy(b, kSealMagic, 8);
  std::memcpy(b + 8, &size, 8);
  const uint64_t sum = XXH3_64bits(b, 16);
  std::memcpy(b + 16, &sum, 8);
  const std::string tmp = kTempPrefix + std::to_string(temp_counter_.fetch_add(1));
  int fd = openat(dir_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return;  // only a hint: the next run asks the remote
  bool ok = WriteFull(fd, b, sizeof b);
  if (close(fd) != 0) ok = false;
  if (!ok || renameat(dir_fd_, tmp.c_str(), dir_fd_, SealFileName(vv).c_str()) != 0)
    unlinkat(dir_fd_, tmp.c_str(), 0);
}

void Cache::DropContainer(uint64_t vv) {
  unlinkat(dir_fd_, SealFileName(vv).c_str(), 0);
  std::lock_guard<std::mutex> l(mu_);
  removed_.insert(vv);
  auto it = entries_.lower_bound(Key{vv, 0});
  while (it != entries_.end() && it->first.vv == vv) EraseLocked(it++);
}

void Cache::Prefetch(const std::shared_ptr<VolumeReader>& remote, Key k, uint64_t block_start,
                     uint64_t block_len) {
  {
    std::lock_guard<std::mutex> l(mu_);
    StartWorkersLocked();
    if (stop_ || workers_.empty() || queue_.size() >= o_.prefetch_queue ||
        in_flight_.count(k) != 0 || queued_.count(k) != 0 || removed_.count(k.vv) != 0) {
      return;
    }
    auto it = entries_.find(k);
    if (it != entries_.end() && it->second.length >= block_len) return;
    queue_.push_back(Job{remote, k, block_start, block_len});
    queued_.insert(k);
  }
  queue_cv_.notify_one();
}

void Cache::WorkerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      queue_cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_.erase(job.key);
      auto it = entries_.find(job.key);
      if (in_flight_.count(job.key) != 0 ||
          (it != entries_.end() && it->second.length >= job.block_len)) {
        continue;
      }
      in_flight_.insert(job.key);
    }
    std::unique_ptr<char[]> buf(new char[job.block_len]);
    // Errors are left to the foreground read, which will meet them itself.
    if (job.remote->ReadAt(job.block_start, job.block_len, buf.get()).ok()) {
      {
        // Counted before the block shows in the cache: whoever finds it
        // there also finds it counted.
        std::lock_guard<std::mutex> l(mu_);
        stats_.prefetched++;
      }
      Fill(job.key, buf.get(), job.block_len);
    }
    EndFetch(job.key);
  }
}

// The sequential streams of reads seen by one reader. The store shares one
// reader per container among all the files in it, so several files read at
// once interleave their reads here: each is followed on its own, as long as
// there are no more of them than slots.
class ReadStreams {
 public:
  // Notes a read of blocks [first, last]; true if it continues a stream:
  // it starts in the block after the stream's last one, or in that block
  // and goes past it.
  bool Sequential(uint64_t first, uint64_t last) {
    std::lock_guard<std::mutex> l(mu_);
    tick_++;
    Slot* oldest = &slots_[0];
    for (Slot& s : slots_) {
      if (s.last != kNoBlock && (first == s.last + 1 || (first == s.last && last >= s.last))) {
        const bool moved = last > s.last;
        s.last = last;
        s.used = tick_;
        return moved;
      }
      if (s.used < oldest->used) oldest = &s;
    }
    oldest->last = last;  // a new stream, maybe
    oldest->used = tick_;
    return false;
  }

 private:
  struct Slot {
    uint64_t last = kNoBlock;
    uint64_t used = 0;
  };
  std::mutex mu_;
  uint64_t tick_ = 0;
  Slot slots_[8];
};

// Opens (creating) the cache directory and takes its lock. On failure *why
// says what went wrong and *busy whether another user holds the lock.
std::unique_ptr<Cache> OpenCache(const ReadCacheOptions& o, std::string* why, bool* busy) {
  *busy = false;
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  if (ec) {
    *why = "cannot create " + o.dir + ": " + ec.message();
    return nullptr;
  }
  int dir_fd = open(o.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    *why = "cannot open " + o.dir + ": " + strerror(errno);
    return nullptr;
  }
  int lock_fd = openat(dir_fd, kLockName, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    *why = "cannot open " + o.dir + "/" + kLockName + ": " + strerror(errno);
    close(dir_fd);
    return nullptr;
  }
  if (Flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    *busy = errno == EWOULDBLOCK;
    *why = *busy ? o.dir + " is in use by another process (or store handle)"
                 : "cannot lock " + o.dir + "/" + kLockName + ": " + strerror(errno);
    close(lock_fd);
    close(dir_fd);
    return nullptr;
  }
  auto cache = std::make_unique<Cache>(o, dir_fd, lock_fd);
  cache->Scan();
  return cache;
}

// The Cache of a set, once it has one: a set whose cache directory was
// locked by another user runs uncached and tries the lock again now and then
// (at most every lock_retry_ms, when a container is opened or read), so a
// mount started while a command held the cache gets it when the command
// ends, for the readers it already has too.
class CacheSlot {
 public:
  CacheSlot(const ReadCacheOptions& o, std::unique_ptr<Cache> cache)
      : o_(o), cache_(std::move(cache)), active_(cache_.get()) {
    next_try_ns_ = NowNs() + int64_t{o_.lock_retry_ms} * 1000000;
  }

  // The cache, or nullptr while running uncached.
  Cache* Get() {
    Cache* cache = active_.load(std::memory_order_acquire);
    if (cache != nullptr || o_.lock_retry_ms == 0) return cache;
    if (NowNs() < next_try_ns_.load(std::memory_order_relaxed)) return nullptr;
    std::lock_guard<std::mutex> l(mu_);
    if (cache_ != nullptr) return cache_.get();
    const int64_t now = NowNs();
    if (now < next_try_ns_.load(std::memory_order_relaxed)) return nullptr;
    next_try_ns_ = now + int64_t{o_.lock_retry_ms} * 1000000;
    std::string why;
    bool busy;
    cache_ = OpenCache(o_, &why, &busy);
    if (cache_ == nullptr) return nullptr;
    for (uint64_t vv : removed_while_uncached_) cache_->DropContainer(vv);
    removed_while_uncached_.clear();
    active_.store(cache_.get(), std::memory_order_release);
    return cache_.get();
  }

  Cache* active() const { return active_.load(std::memory_order_acquire); }

  void Removed(uint64_t vv) {
    std::lock_guard<std::mutex> l(mu_);
    if (cache_ != nullptr) {
      cache_->DropContainer(vv);
    } else {
      removed_while_uncached_.push_back(vv);  // dropped if the cache comes
    }
  }

 private:
  static int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  const ReadCacheOptions o_;
  std::mutex mu_;
  std::unique_ptr<Cache> cache_;  // set once, under mu_
  std::atomic<Cache*> active_;    // cache_, for reading without mu_
  std::atomic<int64_t> next_try_ns_{0};
  std::vector<uint64_t> removed_while_uncached_;
};

class CachedVolumeReader final : public VolumeReader {
 public:
  CachedVolumeReader(CacheSlot* slot, uint64_t vv, std::unique_ptr<VolumeReader> remote)
      : slot_(slot), vv_(vv), remote_(std::move(remote)), size_(remote_->Size()) {}

  Status ReadAt(uint64_t offset, size_t n, char* buf) const override {
    Cache* cache = slot_->Get();
    // Out of range: the remote reader words the error.
    if (cache == nullptr || offset > size_ || n > size_ - offset) {
      return remote_->ReadAt(offset, n, buf);
    }
    if (n == 0) return Status::OK();
    const uint64_t bs = cache->block_size();
    const uint64_t first = offset / bs, last = (offset + n - 1) / bs;
    // Scheduled before the foreground fetches so both run at once.
    const uint32_t depth = cache->prefetch_depth();
    if (depth > 0 && streams_.Sequential(first, last)) {
      for (uint64_t b = last + 1; b <= last + depth && b * bs < size_; b++) {
        cache->Prefetch(remote_, Key{vv_, b}, b * bs, std::min(bs, size_ - b * bs));
      }
    }
    // A read of several blocks: the prefetch threads fetch the others while
    // this thread fetches the first, instead of one remote round trip after
    // another (the loop below waits for those in flight).
    for (uint64_t b = first + 1; depth > 0 && b <= last; b++) {
      cache->Prefetch(remote_, Key{vv_, b}, b * bs, std::min(bs, size_ - b * bs));
    }
    for (uint64_t b = first; b <= last; b++) {
      const uint64_t start = b * bs;
      const uint64_t len = std::min(bs, size_ - start);
      const uint64_t lo = std::max(offset, start) - start;
      const uint64_t hi = std::min(offset + n, start + len) - start;
      OVT_RETURN_IF_ERROR(
          cache->Read(*remote_, Key{vv_, b}, start, len, lo, hi, buf + (start + lo - offset)));
    }
    return Status::OK();
  }

  uint64_t Size() const override { return size_; }

 private:
  CacheSlot* const slot_;
  const uint64_t vv_;
  // Shared with queued prefetch jobs; the set stops those before it dies.
  const std::shared_ptr<VolumeReader> remote_;
  const uint64_t size_;
  mutable ReadStreams streams_;
};

// The remote reader of a sealed container whose size the cache remembers:
// opened on the first read the cache cannot serve, so reads of cached
// blocks never reach the remote (nor connect to it).
class DeferredRemoteReader final : public VolumeReader {
 public:
  DeferredRemoteReader(VolumeSet* remote, uint64_t vv, uint64_t size)
      : remote_(remote), vv_(vv), size_(size) {}
  Status ReadAt(uint64_t offset, size_t n, char* buf) const override {
    const VolumeReader* r = nullptr;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!reader_) OVT_RETURN_IF_ERROR(remote_->Open(vv_, &reader_));
      r = reader_.get();
    }
    return r->ReadAt(offset, n, buf);
  }
  uint64_t Size() const override { return size_; }
  bool sealed() const override { return true; }

 private:
  VolumeSet* const remote_;
  const uint64_t vv_;
  const uint64_t size_;
  mutable std::mutex mu_;
  mutable std::unique_ptr<VolumeReader> reader_;
};

// The remote set, its readers reading through the cache when there is one.
class CachedVolumeSet final : public VolumeSet {
 public:
  CachedVolumeSet(std::unique_ptr<VolumeSet> remote, const ReadCacheOptions& o,
                  std::unique_ptr<Cache> cache)
      : remote_(std::move(remote)), slot_(std::make_unique<CacheSlot>(o, std::move(cache))) {}
  ~CachedVolumeSet() override {
    slot_.reset();  // joins the prefetch threads before the remote set goes
  }

  const std::string& name() const override { return remote_->name(); }
  Status Create(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    return remote_->Create(vv_id, out);
  }
  Status Open(uint64_t vv_id, std::unique_ptr<VolumeReader>* out) override {
    Cache* cache = slot_->Get();
    uint64_t size = 0;
    std::unique_ptr<VolumeReader> r;
    if (cache != nullptr && cache->SealedSize(vv_id, &size)) {
      r = std::make_unique<DeferredRemoteReader>(remote_.get(), vv_id, size);
    } else {
      OVT_RETURN_IF_ERROR(remote_->Open(vv_id, &r));
      if (cache != nullptr && r->sealed()) cache->NoteSealed(vv_id, r->Size());
    }
    *out = std::make_unique<CachedVolumeReader>(slot_.get(), vv_id, std::move(r));
    return Status::OK();
  }
  Status OpenForAppend(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    return remote_->OpenForAppend(vv_id, out);
  }
  Status Remove(uint64_t vv_id) override {
    Status s = remote_->Remove(vv_id);
    // Also when the remote says it is gone already.
    if (s.ok() || s.err() == ENOENT) slot_->Removed(vv_id);
    return s;
  }
  Status List(std::vector<uint64_t>* ids) override { return remote_->List(ids); }
  // Objects are small and read once (publications): not cached.
  Status PutObject(std::string_view name, std::string_view data) override {
    return remote_->PutObject(name, data);
  }
  Status GetObject(std::string_view name, std::string* data) override {
    return remote_->GetObject(name, data);
  }
  Status RemoveObject(std::string_view name) override { return remote_->RemoveObject(name); }
  Status ListObjects(std::string_view prefix, std::vector<std::string>* names) override {
    return remote_->ListObjects(prefix, names);
  }

  bool Stats(ReadCacheStats* out) {
    Cache* cache = slot_->active();
    if (cache == nullptr) return false;
    *out = cache->Stats();
    return true;
  }

 private:
  std::unique_ptr<VolumeSet> remote_;
  std::unique_ptr<CacheSlot> slot_;
};

}  // namespace

std::string ReadCacheBlockName(uint64_t vv_id, uint64_t block) {
  static const char kHex[] = "0123456789abcdef";
  std::string s = "0000000000000000-0000000000000000.blk";
  for (int i = 0; i < 16; i++) {
    s[i] = kHex[(vv_id >> (60 - 4 * i)) & 0xf];
    s[17 + i] = kHex[(block >> (60 - 4 * i)) & 0xf];
  }
  return s;
}

Status WrapWithReadCache(std::unique_ptr<VolumeSet> remote, const ReadCacheOptions& o,
                         std::unique_ptr<VolumeSet>* out) {
  if (o.dir.empty() || o.dir[0] != '/') {
    return Status::InvalidArgument("read cache directory '" + o.dir + "' is not an absolute path");
  }
  if (o.block_size == 0 || o.block_size % 4096 != 0 || o.block_size > kMaxVolumePiece) {
    return Status::InvalidArgument("read cache block size " + std::to_string(o.block_size) +
                                   " is not a multiple of 4096 in [4096, 64 MiB]");
  }
  if (o.prefetch_depth > 0 && o.prefetch_threads > 0 && o.prefetch_queue == 0) {
    return Status::InvalidArgument("read cache prefetch queue of 0 with prefetch on");
  }
  std::string why;
  bool busy = false;
  std::unique_ptr<Cache> cache = OpenCache(o, &why, &busy);
  if (cache == nullptr) {
    // Once per directory and process: a daemon opening its store again and
    // again would otherwise repeat it.
    static std::mutex noted_mu;
    static std::set<std::string> noted;
    std::lock_guard<std::mutex> l(noted_mu);
    if (noted.insert(o.dir).second) {
      fprintf(stderr, "overtier: volume set '%s' runs without its read cache: %s\n",
              remote->name().c_str(), why.c_str());
    }
    // A lock held by another user is let go some time; a directory we
    // cannot make stays so.
    if (!busy) {
      *out = std::move(remote);
      return Status::OK();
    }
  }
  *out = std::make_unique<CachedVolumeSet>(std::move(remote), o, std::move(cache));
  return Status::OK();
}

bool GetReadCacheStats(VolumeSet* set, ReadCacheStats* out) {
  auto* c = dynamic_cast<CachedVolumeSet*>(set);
  return c != nullptr && c->Stats(out);
}

}  // namespace overtier
