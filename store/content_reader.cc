#include "store/content_reader.h"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/vv_format.h"
#include "store/vv_reader.h"

namespace overtier {

namespace {

constexpr unsigned kRingDepth = 64;
// Extents verified per submission by VerifyAll (bounds its memory).
constexpr size_t kVerifyBatch = 16;

// A verified chunk: the payload of one extent, in a 4096-aligned buffer
// (the O_DIRECT target it was read into).
struct Chunk {
  char* data = nullptr;
  uint64_t length = 0;
  Digest128 digest;
  Chunk() = default;
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;
  ~Chunk() { std::free(data); }
};
using ChunkRef = std::shared_ptr<const Chunk>;

struct Key {
  uint64_t vv_id = 0;
  uint64_t vv_offset = 0;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    return std::hash<uint64_t>()(k.vv_id * 0x9e3779b97f4a7c15ull ^ k.vv_offset);
  }
};
struct BfidHash {
  size_t operator()(const Bfid& b) const {
    size_t h;
    std::memcpy(&h, b.bytes.data(), sizeof(h));  // random bytes
    return h;
  }
};

// One io_uring per thread: requests of one read are submitted together,
// and threads never contend for a ring.
class Ring {
 public:
  Ring() { ok_ = io_uring_queue_init(kRingDepth, &ring_, 0) == 0; }
  ~Ring() {
    if (ok_) io_uring_queue_exit(&ring_);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  bool ok() const { return ok_; }
  io_uring* get() { return &ring_; }
  void Reset() {
    if (ok_) io_uring_queue_exit(&ring_);
    ok_ = io_uring_queue_init(kRingDepth, &ring_, 0) == 0;
  }

 private:
  io_uring ring_;
  bool ok_ = false;
};

Ring& ThreadRing() {
  static thread_local Ring ring;
  return ring;
}

// One extent to fetch and verify.
struct Fetch {
  Extent extent;
  std::string set;  // the container's volume set, for messages
  std::shared_ptr<Chunk> chunk;
  Status status;
  bool checksum = false;  // status is a checksum mismatch
  // Held until the fetch is done: the ops read its file descriptors.
  std::shared_ptr<const VvReader> reader;
};

// A chunk of a container without local files (RADOS), read with
// VolumeReader::ReadAt once the whole read is planned, so that chunks lying
// next to each other in one container are fetched with one request.
struct RemoteRead {
  size_t fetch = 0;
  const VolumeReader* volume = nullptr;
};

// Chunks further apart than this are read with separate requests (the
// bytes between them would be fetched for nothing); a request spans at
// most kMaxRemoteSpan bytes.
constexpr uint64_t kMaxRemoteGap = uint64_t{64} << 10;
constexpr uint64_t kMaxRemoteSpan = uint64_t{64} << 20;

// One read request (a piece of an extent in one local file).
struct Op {
  size_t fetch = 0;
  int fd = -1;      // the fd read (O_DIRECT or not)
  int raw_fd = -1;  // the buffered fd of the same file
  uint64_t file_offset = 0;
  char* dst = nullptr;
  uint64_t want = 0;  // bytes needed
  uint64_t len = 0;   // bytes requested (want rounded up for O_DIRECT)
  bool direct = false;
  int res = 0;  // bytes read, or -errno
};

// pread until n bytes or the end of the file.
Status PreadFull(int fd, char* dst, uint64_t n, uint64_t off, uint64_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = pread(fd, dst + *got, n - *got, static_cast<off_t>(off + *got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read at file offset " + std::to_string(off + *got));
    }
    if (r == 0) break;
    *got += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

// A failure that says nothing about the data: the backend did not answer
// (RADOS times out, a connection was refused or lost).
bool Unanswered(const Status& s) {
  switch (s.err()) {
    case ETIMEDOUT:
    case ENOTCONN:
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ESHUTDOWN:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct ContentReader::Impl {
  Store* store = nullptr;
  ContentReaderOptions options;

  std::atomic<uint64_t> extents_read{0}, cache_hits{0}, checksum_failures{0}, fallbacks{0};

  // LRU cache of verified chunks.
  std::mutex cache_mu;
  std::list<std::pair<Key, ChunkRef>> lru;  // most recent first
  std::unordered_map<Key, std::list<std::pair<Key, ChunkRef>>::iterator, KeyHash> index;
  uint64_t cached_bytes = 0;

  // Where the last read of each file ended (sequential detection).
  std::mutex seq_mu;
  std::unordered_map<Bfid, uint64_t, BfidHash> last_end;

  std::mutex report_mu;
  std::unordered_set<Key, KeyHash> reported;

  ChunkRef CacheGet(const Extent& e) {
    std::lock_guard<std::mutex> l(cache_mu);
    auto it = index.find(Key{e.vv_id, e.vv_offset});
    if (it == index.end()) return nullptr;
    const ChunkRef& c = it->second->second;
    if (c->length != e.length || c->digest != e.digest) return nullptr;
    lru.splice(lru.begin(), lru, it->second);
    return c;
  }
  bool CacheHas(const Extent& e) {
    std::lock_guard<std::mutex> l(cache_mu);
    return index.count(Key{e.vv_id, e.vv_offset}) != 0;
  }
  void CachePut(const Extent& e, ChunkRef c) {
    if (c->length > options.cache_bytes) return;
    std::lock_guard<std::mutex> l(cache_mu);
    Key k{e.vv_id, e.vv_offset};
    auto it = index.find(k);
    if (it != index.end()) {
      cached_bytes -= it->second->second->length;
      lru.erase(it->second);
      index.erase(it);
    }
    cached_bytes += c->length;
    lru.emplace_front(k, std::move(c));
    index[k] = lru.begin();
    while (cached_bytes > options.cache_bytes) {
      cached_bytes -= lru.back().second->length;
      index.erase(lru.back().first);
      lru.pop_back();
    }
  }

  bool Sequential(const Bfid& bfid, uint64_t offset) {
    if (offset == 0) return true;
    std::lock_guard<std::mutex> l(seq_mu);
    auto it = last_end.find(bfid);
    return it != last_end.end() && it->second == offset;
  }
  void SetLastEnd(const Bfid& bfid, uint64_t end) {
    std::lock_guard<std::mutex> l(seq_mu);
    if (last_end.size() >= 4096 && last_end.count(bfid) == 0) last_end.clear();
    last_end[bfid] = end;
  }

  void Plan(size_t i, Fetch* f, std::vector<Op>* ops, std::vector<RemoteRead>* remote);
  void ReadRemote(std::vector<Fetch>* fetches, const std::vector<RemoteRead>& remote);
  void Submit(std::vector<Op>* ops);
  void FetchAll(std::vector<Fetch>* fetches);
  static std::string Describe(const Fetch& f);
};

// Opens the extent's container and plans the reads of its payload.
void ContentReader::Impl::Plan(size_t i, Fetch* f, std::vector<Op>* ops,
                               std::vector<RemoteRead>* remote) {
  const Extent& e = f->extent;
  Status s = store->OpenContainer(e.vv_id, &f->reader);
  if (!s.ok()) {
    VolumeRecord v;
    if (store->catalog()->GetVolume(e.vv_id, &v).ok()) f->set = v.set;
    f->status = s;
    return;
  }
  const VvReader* vr = f->reader.get();
  f->set = vr->header().set_name;
  const uint64_t alen = std::max<uint64_t>(AlignUp(e.length, kVvAlign), kVvAlign);
  void* p = nullptr;
  if (posix_memalign(&p, kVvAlign, alen) != 0) {
    f->status = Status::Errno(ENOMEM, "no memory for a chunk of " + std::to_string(e.length));
    return;
  }
  auto chunk = std::make_shared<Chunk>();
  chunk->data = static_cast<char*>(p);
  chunk->length = e.length;
  chunk->digest = e.digest;
  f->chunk = chunk;

  const VolumeReader* vol = vr->volume();
  if (e.vv_offset > vol->Size() || e.length > vol->Size() - e.vv_offset) {
    f->status = Status::Errno(EIO, "the container is truncated (" + std::to_string(vol->Size()) +
                                       " bytes), the chunk would end at " +
                                       std::to_string(e.vv_offset + e.length));
    return;
  }
  std::vector<RawSegment> segs;
  s = vol->RawSegments(e.vv_offset, alen, &segs);
  if (s.err() == ENOTSUP) {
    // No local files (an object store): ReadAt, after planning.
    remote->push_back(RemoteRead{i, vol});
    return;
  }
  if (!s.ok()) {
    f->status = s;
    return;
  }
  uint64_t pos = 0;
  for (const RawSegment& seg : segs) {
    if (pos >= e.length) break;
    Op op;
    op.fetch = i;
    op.raw_fd = seg.fd;
    op.file_offset = seg.file_offset;
    op.dst = chunk->data + pos;
    op.want = std::min(seg.length, e.length - pos);
    // O_DIRECT needs the file offset, the buffer and the length aligned;
    // the length is rounded up (the buffer has room: it is alen long), and
    // a read past the end of the file just comes back short.
    op.direct = seg.direct_fd >= 0 && seg.file_offset % kVvAlign == 0 && pos % kVvAlign == 0;
    op.fd = op.direct ? seg.direct_fd : seg.fd;
    op.len = op.direct ? AlignUp(op.want, kVvAlign) : op.want;
    ops->push_back(op);
    pos += seg.length;
  }
  if (pos < e.length) {
    f->status = Status::Errno(EIO, "the container's files end before the chunk does");
  }
}

// Runs every op, through the thread's ring when there is one: one
// submission per kRingDepth requests (one for a read of any usual size).
void ContentReader::Impl::Submit(std::vector<Op>* ops) {
  Ring& ring = ThreadRing();
  size_t base = 0;
  while (ring.ok() && base < ops->size()) {
    io_uring* r = ring.get();
    const size_t k = std::min<size_t>(ops->size() - base, kRingDepth);
    for (size_t i = base; i < base + k; i++) {
      Op& op = (*ops)[i];
      io_uring_sqe* sqe = io_uring_get_sqe(r);  // the ring is empty: never null
      io_uring_prep_read(sqe, op.fd, op.dst, static_cast<unsigned>(op.len), op.file_offset);
      io_uring_sqe_set_data(sqe, &op);
    }
    size_t submitted = 0;
    int tries = 0;
    while (submitted < k) {
      int ret = io_uring_submit(r);
      if (ret > 0) {
        submitted += static_cast<size_t>(ret);
      } else if (!((ret == -EINTR || ret == -EAGAIN || ret == -EBUSY || ret == 0) &&
                   ++tries < 100)) {
        break;
      }
    }
    for (size_t done = 0; done < submitted;) {
      io_uring_cqe* cqe = nullptr;
      int ret = io_uring_wait_cqe(r, &cqe);
      if (ret == -EINTR) continue;
      if (ret < 0) break;  // cannot happen with requests in flight
      static_cast<Op*>(io_uring_cqe_get_data(cqe))->res = cqe->res;
      io_uring_cqe_seen(r, cqe);
      done++;
    }
    if (submitted < k) {
      // The ring refused requests: they may still sit in its queue, so it is
      // rebuilt before anything else is submitted, and the rest is read with
      // pread.
      ring.Reset();
      base += submitted;
      break;
    }
    base += k;
  }
  for (size_t i = base; i < ops->size(); i++) {
    Op& op = (*ops)[i];
    ssize_t r;
    do {
      r = pread(op.fd, op.dst, op.len, static_cast<off_t>(op.file_offset));
    } while (r < 0 && errno == EINTR);
    op.res = r < 0 ? -errno : static_cast<int>(r);
  }
}

// Reads the remote chunks, one ReadAt per run of chunks of one container
// that follow each other closely, in order (the records between them and
// the headers come along and are dropped). A failed request fails every
// chunk it was for.
void ContentReader::Impl::ReadRemote(std::vector<Fetch>* fetches,
                                     const std::vector<RemoteRead>& remote) {
  std::string span;
  // A container that did not answer is not asked again within this read
  // (as in FetchAll).
  std::unordered_map<const VolumeReader*, Status> unanswered;
  for (size_t a = 0; a < remote.size();) {
    const Extent& first = (*fetches)[remote[a].fetch].extent;
    uint64_t end = first.vv_offset + first.length;
    size_t b = a + 1;
    for (; b < remote.size(); b++) {
      const Extent& e = (*fetches)[remote[b].fetch].extent;
      if (remote[b].volume != remote[a].volume || e.vv_offset < end ||
          e.vv_offset - end > kMaxRemoteGap ||
          e.vv_offset + e.length - first.vv_offset > kMaxRemoteSpan)
        break;
      end = e.vv_offset + e.length;
    }
    Status st;
    auto down = unanswered.find(remote[a].volume);
    if (down != unanswered.end()) {
      st = down->second;
    } else if (b == a + 1) {
      Fetch& f = (*fetches)[remote[a].fetch];
      st = remote[a].volume->ReadAt(first.vv_offset, first.length, f.chunk->data);
    } else {
      span.resize(end - first.vv_offset);
      st = remote[a].volume->ReadAt(first.vv_offset, span.size(), span.data());
      for (size_t k = a; st.ok() && k < b; k++) {
        Fetch& f = (*fetches)[remote[k].fetch];
        std::memcpy(f.chunk->data, span.data() + (f.extent.vv_offset - first.vv_offset),
                    f.extent.length);
      }
    }
    if (Unanswered(st)) unanswered.emplace(remote[a].volume, st);
    for (size_t k = a; k < b; k++) {
      if (!st.ok()) (*fetches)[remote[k].fetch].status = st;
    }
    a = b;
  }
}

void ContentReader::Impl::FetchAll(std::vector<Fetch>* fetches) {
  std::vector<Op> ops;
  std::vector<RemoteRead> remote;
  // A container that did not answer (its remote set is down) is not asked
  // again within this read: each try would wait out the set's timeout.
  std::unordered_map<uint64_t, const Fetch*> unanswered;
  for (size_t i = 0; i < fetches->size(); i++) {
    Fetch& f = (*fetches)[i];
    auto it = unanswered.find(f.extent.vv_id);
    if (it != unanswered.end()) {
      f.status = it->second->status;
      f.set = it->second->set;
      continue;
    }
    Plan(i, &f, &ops, &remote);
    if (Unanswered(f.status)) unanswered.emplace(f.extent.vv_id, &f);
  }
  ReadRemote(fetches, remote);
  Submit(&ops);
  for (Op& op : ops) {
    Fetch& f = (*fetches)[op.fetch];
    if (!f.status.ok()) continue;
    uint64_t got = 0;
    if (op.res < 0 && !(op.direct && op.res == -EINVAL)) {
      f.status = Status::Errno(-op.res, "read at file offset " + std::to_string(op.file_offset));
      continue;
    }
    // EINVAL from O_DIRECT (an alignment the filesystem wants larger): read
    // it buffered. A short read: read the rest buffered (the end of the
    // file means the container was truncated after it was opened).
    if (op.res > 0) got = std::min<uint64_t>(static_cast<uint64_t>(op.res), op.want);
    if (got < op.want) {
      uint64_t more = 0;
      Status s = PreadFull(op.raw_fd, op.dst + got, op.want - got, op.file_offset + got, &more);
      if (!s.ok()) {
        f.status = s;
        continue;
      }
      if (got + more < op.want) {
        f.status = Status::Errno(EIO, "unexpected end of file at file offset " +
                                          std::to_string(op.file_offset + got + more) +
                                          ": the container is truncated");
        continue;
      }
    }
  }
  for (Fetch& f : *fetches) {
    extents_read.fetch_add(1, std::memory_order_relaxed);
    if (f.status.ok()) {
      const Digest128 d{Hash128Key(PayloadHash(std::string_view(f.chunk->data, f.chunk->length)))};
      if (d != f.extent.digest) {
        f.status = Status::Corruption("checksum mismatch");
        f.checksum = true;
      }
    }
    if (!f.status.ok()) {
      if (f.checksum) checksum_failures.fetch_add(1, std::memory_order_relaxed);
      f.chunk.reset();  // never hand out unverified bytes
    }
  }
}

std::string ContentReader::Impl::Describe(const Fetch& f) {
  std::string s = "chunk at container " + VvName(f.extent.vv_id) + " offset " +
                  std::to_string(f.extent.vv_offset) + " (set " +
                  (f.set.empty() ? std::string("?") : f.set) + "): ";
  if (f.checksum) {
    s += "checksum mismatch";
  } else if (f.status.err() == EIO && !f.status.message().empty()) {
    s += f.status.message();
  } else {
    s += f.status.ToString();
  }
  return s;
}

ContentReader::ContentReader(Store* store, const ContentReaderOptions& options) : impl_(new Impl) {
  impl_->store = store;
  impl_->options = options;
}

ContentReader::~ContentReader() = default;

namespace {

// The first extent that ends after `offset` (extents are sorted, disjoint).
size_t FirstOverlap(const std::vector<Extent>& ex, uint64_t offset) {
  auto it = std::upper_bound(ex.begin(), ex.end(), offset,
                             [](uint64_t o, const Extent& e) { return o < e.file_offset; });
  size_t i = static_cast<size_t>(it - ex.begin());
  if (i > 0 && ex[i - 1].file_offset + ex[i - 1].length > offset) i--;
  return i;
}

}  // namespace

Status ContentReader::Read(const Bfid& bfid, const FileRecord& file, uint64_t offset, size_t n,
                           char* buf, size_t* got, std::string_view what,
                           std::vector<Extent>* damaged, std::vector<LocalSource>* sources) {
  Impl& m = *impl_;
  *got = 0;
  if (sources != nullptr) sources->clear();
  // Served ranges whose chunk lies in one local file (for `sources`). A
  // cached chunk keeps no container open (the cache would hold the
  // descriptors of containers long since reopened larger): the container
  // is looked up again, through the store's own cache of readers.
  std::vector<LocalSource> local;
  auto add_local = [&](const Extent& e, uint64_t a, uint64_t b, uint64_t extent_offset) {
    if (sources == nullptr) return;
    std::shared_ptr<const VvReader> vr;
    std::vector<RawSegment> segs;
    if (!m.store->OpenContainer(e.vv_id, &vr).ok() ||
        !vr->volume()->RawSegments(e.vv_offset, e.length, &segs).ok() || segs.empty() ||
        segs[0].length < e.length)
      return;
    local.push_back(LocalSource{a, b - a, segs[0].fd, segs[0].file_offset + (a - extent_offset),
                                std::move(vr)});
  };
  if (offset >= file.size || n == 0) return Status::OK();
  const uint64_t end = offset + std::min<uint64_t>(n, file.size - offset);
  if (file.copies.empty())
    return Status::Errno(EIO, std::string(what) + ": no copy of its content is recorded");
  // Holes read as zeros; the rest is copied over from the chunks below
  // (zeroing all of it first cost a pass over every restored byte). The
  // copies all hold the same chunks at the same file offsets.
  {
    const std::vector<Extent>& ex = file.copies[0].extents;
    uint64_t pos = offset;
    for (size_t j = FirstOverlap(ex, offset); j < ex.size() && ex[j].file_offset < end; j++) {
      if (ex[j].file_offset > pos) std::memset(buf + (pos - offset), 0, ex[j].file_offset - pos);
      pos = std::max(pos, ex[j].file_offset + ex[j].length);
    }
    if (pos < end) std::memset(buf + (pos - offset), 0, end - pos);
  }
  const bool sequential = m.Sequential(bfid, offset);

  // Ranges still to be served, and why earlier copies could not.
  struct Need {
    uint64_t a, b;
    std::string why;
    Key first;  // the failing extent of the first copy (for the log)
    // Some copy failed only for want of an answer (a remote set down or
    // slow): trying again later may succeed.
    bool unanswered = false;
  };
  std::vector<Need> needs{{offset, end, "", Key{}, false}};
  // Chunks another copy had to serve, reported once per read below.
  size_t fell_back = 0;
  std::string fallback_why;
  std::vector<Extent> failed;  // extents of copies that were damaged
  for (size_t c = 0; c < file.copies.size() && !needs.empty(); c++) {
    const std::vector<Extent>& ex = file.copies[c].extents;
    std::vector<Fetch> fetches;
    std::unordered_map<Key, size_t, KeyHash> fetch_of;
    struct Use {
      size_t need;
      uint64_t a, b;
      size_t fetch;
      // This use's own extent start: a chunk repeated within a file is one
      // fetch serving extents at several file offsets.
      uint64_t extent_offset;
    };
    std::vector<Use> uses;
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < needs.size(); i++) {
      for (size_t j = FirstOverlap(ex, needs[i].a); j < ex.size() && ex[j].file_offset < needs[i].b;
           j++) {
        const Extent& e = ex[j];
        const uint64_t a = std::max(needs[i].a, e.file_offset);
        const uint64_t b = std::min(needs[i].b, e.file_offset + e.length);
        if (a >= b) continue;
        if (last == SIZE_MAX || j > last) last = j;
        if (ChunkRef hit = m.CacheGet(e)) {
          m.cache_hits.fetch_add(1, std::memory_order_relaxed);
          if (c > 0) m.fallbacks.fetch_add(1, std::memory_order_relaxed);
          std::memcpy(buf + (a - offset), hit->data + (a - e.file_offset), b - a);
          add_local(e, a, b, e.file_offset);
          continue;
        }
        const Key k{e.vv_id, e.vv_offset};
        auto [it, fresh] = fetch_of.emplace(k, fetches.size());
        if (fresh) fetches.push_back(Fetch{e, "", nullptr, Status::OK(), false, nullptr});
        uses.push_back(Use{i, a, b, it->second, e.file_offset});
      }
    }
    if (fetches.empty()) {  // all from the cache (or holes)
      needs.clear();
      break;
    }
    // A sequential reader that had to go to disk gets the next chunks in the
    // same submission.
    if (c == 0 && sequential && last != SIZE_MAX && m.options.readahead_chunks > 0 &&
        m.options.cache_bytes > 0) {
      for (size_t j = last + 1; j < ex.size() && j <= last + m.options.readahead_chunks; j++) {
        const Extent& e = ex[j];
        if (m.CacheHas(e)) continue;
        if (fetch_of.emplace(Key{e.vv_id, e.vv_offset}, fetches.size()).second)
          fetches.push_back(Fetch{e, "", nullptr, Status::OK(), false, nullptr});
      }
    }
    m.FetchAll(&fetches);
    std::vector<bool> counted(fetches.size(), false);
    for (size_t i = 0; i < fetches.size(); i++) {
      if (fetches[i].status.ok()) m.CachePut(fetches[i].extent, fetches[i].chunk);
    }
    std::vector<Need> next;
    for (const Use& u : uses) {
      const Fetch& f = fetches[u.fetch];
      if (f.status.ok()) {
        std::memcpy(buf + (u.a - offset), f.chunk->data + (u.a - u.extent_offset), u.b - u.a);
        add_local(f.extent, u.a, u.b, u.extent_offset);
        if (c > 0 && !counted[u.fetch]) {
          counted[u.fetch] = true;
          m.fallbacks.fetch_add(1, std::memory_order_relaxed);
          if (fell_back++ == 0) fallback_why = needs[u.need].why;
        }
        continue;
      }
      const Need& old = needs[u.need];
      Need nd{u.a, u.b, old.why, old.first, old.unanswered || Unanswered(f.status)};
      if (damaged != nullptr && !Unanswered(f.status) &&
          (failed.empty() || !(failed.back() == f.extent)))
        failed.push_back(f.extent);
      if (c == 0) {
        nd.why = Impl::Describe(f);
        nd.first = Key{f.extent.vv_id, f.extent.vv_offset};
      } else {
        nd.why += "; copy " + std::to_string(c + 1) + ": " + Impl::Describe(f);
      }
      next.push_back(std::move(nd));
    }
    needs = std::move(next);
  }
  if (!needs.empty()) {
    const Need& n0 = needs[0];
    // ETIMEDOUT when every failure may pass (callers with hard semantics
    // wait and retry; the others answer EIO), EIO when some range has no
    // copy left that could ever be read.
    const bool unanswered =
        std::all_of(needs.begin(), needs.end(), [](const Need& nd) { return nd.unanswered; });
    Status s = Status::Errno(unanswered ? ETIMEDOUT : EIO, std::string(what) + ": " + n0.why);
    bool first_time;
    {
      std::lock_guard<std::mutex> l(m.report_mu);
      first_time = m.reported.insert(n0.first).second;
    }
    if (first_time) std::fprintf(stderr, "overtier: %s\n", s.message().c_str());
    return s;
  }
  if (damaged != nullptr) damaged->insert(damaged->end(), failed.begin(), failed.end());
  if (fell_back > 0) {
    // The damaged copy is reported (fsck finds it too); the read went on.
    std::fprintf(stderr, "overtier: %.*s: %zu chunk(s) read from another copy; first: %s\n",
                 static_cast<int>(what.size()), what.data(), fell_back, fallback_why.c_str());
  }
  m.SetLastEnd(bfid, end);
  if (sources != nullptr) {
    std::sort(local.begin(), local.end(),
              [](const LocalSource& x, const LocalSource& y) { return x.offset < y.offset; });
    *sources = std::move(local);
  }
  *got = static_cast<size_t>(end - offset);
  return Status::OK();
}

Status ContentReader::Prefetch(const FileRecord& file, uint64_t offset, uint64_t n) {
  Impl& m = *impl_;
  if (file.copies.empty() || offset >= file.size || n == 0) return Status::OK();
  const uint64_t end = offset + std::min<uint64_t>(n, file.size - offset);
  // Indexes of the extents still wanted; the copies list the same chunks at
  // the same file offsets, so an index means the same bytes in each copy.
  std::vector<size_t> want;
  {
    const std::vector<Extent>& ex = file.copies[0].extents;
    for (size_t j = FirstOverlap(ex, offset); j < ex.size() && ex[j].file_offset < end; j++)
      want.push_back(j);
  }
  // Per wanted extent: some copy of it did not answer (it may later).
  std::unordered_map<size_t, bool> unanswered;
  Status last;
  for (size_t c = 0; c < file.copies.size() && !want.empty(); c++) {
    const std::vector<Extent>& ex = file.copies[c].extents;
    std::vector<Fetch> fetches;
    std::vector<size_t> index;
    std::unordered_set<Key, KeyHash> planned;
    for (size_t j : want) {
      if (j >= ex.size()) continue;
      const Extent& e = ex[j];
      if (m.CacheHas(e) || !planned.insert(Key{e.vv_id, e.vv_offset}).second) continue;
      fetches.push_back(Fetch{e, "", nullptr, Status::OK(), false, nullptr});
      index.push_back(j);
    }
    m.FetchAll(&fetches);
    std::vector<size_t> failed;
    for (size_t i = 0; i < fetches.size(); i++) {
      if (fetches[i].status.ok()) {
        m.CachePut(fetches[i].extent, fetches[i].chunk);
        continue;
      }
      failed.push_back(index[i]);
      last = fetches[i].status;
      unanswered[index[i]] = unanswered[index[i]] || Unanswered(last);
    }
    want = std::move(failed);
  }
  if (want.empty()) return Status::OK();
  // As Read: ETIMEDOUT when every failure may pass, else EIO.
  const bool may_pass =
      std::all_of(want.begin(), want.end(), [&](size_t j) { return unanswered[j]; });
  return Status::Errno(may_pass ? ETIMEDOUT : EIO, "read ahead: " + last.ToString());
}

Status ContentReader::VerifyAll(const FileRecord& file, std::string_view what,
                                int* damaged_copies) {
  Impl& m = *impl_;
  *damaged_copies = 0;
  Status first;
  for (size_t c = 0; c < file.copies.size(); c++) {
    const std::vector<Extent>& ex = file.copies[c].extents;
    bool damaged = false;
    for (size_t i = 0; i < ex.size(); i += kVerifyBatch) {
      std::vector<Fetch> fetches;
      for (size_t j = i; j < ex.size() && j < i + kVerifyBatch; j++) {
        fetches.push_back(Fetch{ex[j], "", nullptr, Status::OK(), false, nullptr});
      }
      m.FetchAll(&fetches);
      for (const Fetch& f : fetches) {
        if (f.status.ok()) continue;
        if (!damaged) {
          damaged = true;
          (*damaged_copies)++;
        }
        if (first.ok()) {
          first =
              Status::Errno(EIO, std::string(what) + ": copy " + std::to_string(c + 1) + " of " +
                                     std::to_string(file.copies.size()) + ": " + Impl::Describe(f));
        }
      }
    }
  }
  return first;
}

ContentReadStats ContentReader::stats() const {
  ContentReadStats s;
  s.extents_read = impl_->extents_read.load(std::memory_order_relaxed);
  s.cache_hits = impl_->cache_hits.load(std::memory_order_relaxed);
  s.checksum_failures = impl_->checksum_failures.load(std::memory_order_relaxed);
  s.fallbacks = impl_->fallbacks.load(std::memory_order_relaxed);
  return s;
}

}  // namespace overtier
