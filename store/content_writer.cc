#include "store/content_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/vv_format.h"
#include "store/vv_reader.h"
#include "store/vv_writer.h"

namespace overtier {

namespace {

bool AllZero(std::string_view data) {
  if (data.empty()) return true;
  if (data[0] != 0) return false;
  // Overlapping compare: every byte equals its predecessor, and the first is 0.
  return std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0;
}

struct DigestHash {
  size_t operator()(const Digest128& d) const {
    size_t h;
    std::memcpy(&h, d.bytes.data(), sizeof(h));  // already a hash
    return h;
  }
};

}  // namespace

struct ContentWriter::Impl {
  // A container this session created.
  struct Container {
    size_t set = 0;                    // index into the store's volume sets
    std::unique_ptr<VvWriter> writer;  // until sealed
    bool sealed = false;
    uint64_t size = 0;        // once sealed
    bool dirty = true;        // appended to or sealed since the last Flush
    uint64_t synced_end = 0;  // bytes known durable (and thus readable)
    uint64_t live_bytes = 0;  // payload bytes appended
    // Opened lazily to compare a dedup candidate against this session's own
    // chunks; reopened when it was opened before the data arrived.
    std::unique_ptr<VvReader> reader;
  };
  // A chunk this session stored (or found in the catalog): later chunks
  // with its digest share it once their bytes compared equal.
  struct SessionChunk {
    uint64_t length = 0;
    std::vector<ChunkLocation> copies;
  };

  Store* store = nullptr;
  uint32_t copies = 0;
  uint64_t chunk_size = 0;
  Status setup;  // why this writer cannot work, if it cannot

  std::map<uint64_t, Container> containers;  // by vv id
  std::vector<uint64_t> current;             // open container per copy slot (0: none)
  std::unordered_map<Digest128, SessionChunk, DigestHash> chunks;
  // Chunks of this session whose digest collided with an indexed chunk of
  // other bytes: shared within the session, never indexed.
  std::unordered_map<Digest128, SessionChunk, DigestHash> collided;
  std::vector<Digest128> new_rows;  // chunks rows to queue at the next Flush
  // The bytes of the chunks this session appended last (first copy), by
  // location: a duplicate of a recent chunk (common among small files) is
  // compared in memory instead of being read back from the container.
  using Key = std::pair<uint64_t, uint64_t>;  // vv id, payload offset
  static constexpr uint64_t kRecentBytes = uint64_t{8} << 20;
  static constexpr uint64_t kRememberBelow = uint64_t{64} << 10;
  std::map<Key, std::string> recent;
  std::deque<Key> recent_order;
  uint64_t recent_bytes = 0;
  void Remember(const ChunkLocation& loc, std::string_view data) {
    // Small chunks only (a small file, a file's tail): those are the
    // duplicates that come in runs. A copy of every full chunk cost a
    // memcpy of every archived byte; a duplicate of one is compared with
    // the container instead.
    if (data.size() >= kRememberBelow) return;
    const Key k{loc.vv_id, loc.vv_offset};
    recent[k] = std::string(data);
    recent_order.push_back(k);
    recent_bytes += data.size();
    while (recent_bytes > kRecentBytes) {
      auto it = recent.find(recent_order.front());
      recent_bytes -= it->second.size();
      recent.erase(it);
      recent_order.pop_front();
    }
  }

  // The file being written.
  bool in_file = false;
  uint64_t pos = 0;  // end of the last Write
  uint64_t chunk_start = 0;
  std::string chunk;  // bytes of the chunk at chunk_start written so far (gaps zeroed)
  bool chunk_live = false;
  std::vector<FileCopy> file_copies;

  Status StoreChunk(uint64_t file_offset, std::string_view data, ContentStats* stats);
  Status Share(const Digest128& digest, std::string_view data, bool* shared,
               std::vector<ChunkLocation>* locs, bool* collision);
  enum class Match { kSame, kDifferent, kUnreadable };
  Match Compare(const SessionChunk& c, std::string_view data);
  Status SameAsStored(const ChunkLocation& loc, uint64_t length, std::string_view data, bool* same);
  Status Append(size_t slot, const Digest128& digest, const Hash128& hash, std::string_view data,
                ChunkLocation* loc);
  Status NewContainer(size_t slot);
  Status SealCurrent(size_t slot);
  Status CompleteChunk(uint64_t length, ContentStats* stats);
  Status QueueRows(Catalog::Batch* batch);
};

ContentWriter::ContentWriter(Store* store, const ContentWriterOptions& options) : impl_(new Impl) {
  Impl& m = *impl_;
  m.store = store;
  const StoreConfig& config = store->config();
  m.copies = options.copies != 0 ? options.copies : config.copies;
  m.chunk_size = config.chunk_size;
  const size_t sets = store->volume_sets().size();
  if (store->read_only()) {
    m.setup = Status::Errno(EROFS, "store '" + store->path() + "' is open read-only");
  } else if (m.copies == 0 || m.copies > sets) {
    m.setup = Status::InvalidArgument("cannot keep " + std::to_string(m.copies) +
                                      " copies of each chunk in store '" + store->path() +
                                      "': it has " + std::to_string(sets) +
                                      " volume set(s) and each copy needs its own");
  } else if (m.chunk_size == 0) {
    m.setup = Status::InvalidArgument("store '" + store->path() + "' has a chunk size of 0");
  }
  m.current.assign(m.copies, 0);
}

ContentWriter::~ContentWriter() = default;

void ContentWriter::BeginFile() {
  Impl& m = *impl_;
  m.in_file = true;
  m.pos = 0;
  m.chunk_start = 0;
  m.chunk.clear();
  m.chunk_live = false;
  m.file_copies.assign(m.copies, FileCopy());
}

Status ContentWriter::Write(uint64_t file_offset, std::string_view data) {
  Impl& m = *impl_;
  OVT_RETURN_IF_ERROR(m.setup);
  if (!m.in_file) return Status::InvalidArgument("ContentWriter::Write outside BeginFile/EndFile");
  if (file_offset < m.pos)
    return Status::InvalidArgument("content write at offset " + std::to_string(file_offset) +
                                   " goes back before " + std::to_string(m.pos));
  while (!data.empty()) {
    const uint64_t start = file_offset - file_offset % m.chunk_size;
    if (m.chunk_live && start != m.chunk_start) {
      // The data moved on to a later chunk: the current one is complete and
      // full-sized (the file extends past it).
      OVT_RETURN_IF_ERROR(m.CompleteChunk(m.chunk_size, &stats_));
    }
    if (!m.chunk_live && file_offset == start && data.size() >= m.chunk_size) {
      // A whole chunk in the caller's buffer: stored from there, uncopied.
      OVT_RETURN_IF_ERROR(m.StoreChunk(start, data.substr(0, m.chunk_size), &stats_));
      data.remove_prefix(m.chunk_size);
      file_offset += m.chunk_size;
      m.pos = file_offset;
      continue;
    }
    if (!m.chunk_live) {
      m.chunk_start = start;
      m.chunk.clear();
      m.chunk_live = true;
    }
    const uint64_t in_chunk = file_offset - start;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), m.chunk_size - in_chunk));
    // A gap before this piece within the chunk is a hole: zeros.
    if (m.chunk.size() < in_chunk) m.chunk.resize(in_chunk, '\0');
    m.chunk.append(data.data(), n);
    data.remove_prefix(n);
    file_offset += n;
    m.pos = file_offset;
    if (m.chunk.size() == m.chunk_size) OVT_RETURN_IF_ERROR(m.CompleteChunk(m.chunk_size, &stats_));
  }
  return Status::OK();
}

Status ContentWriter::Impl::CompleteChunk(uint64_t length, ContentStats* stats) {
  chunk.resize(length, '\0');
  chunk_live = false;
  Status s = StoreChunk(chunk_start, chunk, stats);
  chunk.clear();
  return s;
}

Status ContentWriter::EndFile(uint64_t size, FileRecord* out) {
  Impl& m = *impl_;
  OVT_RETURN_IF_ERROR(m.setup);
  if (!m.in_file) return Status::InvalidArgument("ContentWriter::EndFile without BeginFile");
  if (size < m.pos)
    return Status::InvalidArgument("file size " + std::to_string(size) +
                                   " is less than the end of the data written (" +
                                   std::to_string(m.pos) + ")");
  if (m.chunk_live)
    OVT_RETURN_IF_ERROR(m.CompleteChunk(std::min(m.chunk_size, size - m.chunk_start), &stats_));
  out->size = size;
  out->copies = std::move(m.file_copies);
  m.file_copies.clear();
  m.in_file = false;
  stats_.files++;
  return Status::OK();
}

Status ContentWriter::WriteFd(int fd, uint64_t size, FileRecord* out) {
  Impl& m = *impl_;
  OVT_RETURN_IF_ERROR(m.setup);
  BeginFile();
  std::string buf(m.chunk_size, '\0');
  uint64_t off = 0;
  while (off < size) {
    // Skip holes: SEEK_DATA finds the next data at or after off (ENXIO: none
    // before the end). Filesystems without hole support report all data.
    off_t data = lseek(fd, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0) {
      if (errno != ENXIO)
        return Status::FromErrno("lseek(SEEK_DATA) at offset " + std::to_string(off));
      // No data up to the end of file: a hole to `size`, unless the file
      // is shorter than that now.
      struct stat st;
      if (fstat(fd, &st) != 0) return Status::FromErrno("fstat");
      if (static_cast<uint64_t>(st.st_size) < size) {
        return Status::Errno(ESTALE, "file shrank while being stored: " + std::to_string(size) +
                                         " bytes expected, " + std::to_string(st.st_size) + " now");
      }
      break;
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0 && errno == ENXIO) {
      // The end of file came before `data` since SEEK_DATA found it.
      return Status::Errno(ESTALE, "file shrank while being stored: " + std::to_string(size) +
                                       " bytes expected, no data at offset " +
                                       std::to_string(data) + " any more");
    }
    if (hole < 0) return Status::FromErrno("lseek(SEEK_HOLE) at offset " + std::to_string(data));
    uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    off = static_cast<uint64_t>(data);
    while (off < end) {
      // Reads end on chunk boundaries so that each Write fills one chunk.
      uint64_t want = std::min<uint64_t>(end - off, m.chunk_size - off % m.chunk_size);
      ssize_t n = pread(fd, buf.data(), want, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("read at offset " + std::to_string(off));
      }
      if (n == 0) {
        // ESTALE, as for any change while the file is read: the caller may
        // try again (EIO would say the storage failed).
        return Status::Errno(ESTALE, "file shrank while being stored: " + std::to_string(size) +
                                         " bytes expected, end of file at " + std::to_string(off));
      }
      OVT_RETURN_IF_ERROR(Write(off, std::string_view(buf.data(), static_cast<size_t>(n))));
      off += static_cast<uint64_t>(n);
    }
  }
  return EndFile(size, out);
}

Status ContentWriter::Impl::StoreChunk(uint64_t file_offset, std::string_view data,
                                       ContentStats* stats) {
  if (AllZero(data)) return Status::OK();  // a hole: no extent
  stats->chunks++;
  stats->bytes += data.size();
  const Hash128 hash = PayloadHash(data);
  const Digest128 digest{Hash128Key(hash)};

  bool shared = false, collision = false;
  std::vector<ChunkLocation> locs;
  OVT_RETURN_IF_ERROR(Share(digest, data, &shared, &locs, &collision));
  if (shared) {
    stats->chunks_deduped++;
  } else {
    locs.resize(copies);
    for (size_t slot = 0; slot < copies; slot++) {
      OVT_RETURN_IF_ERROR(Append(slot, digest, hash, data, &locs[slot]));
    }
    stats->bytes_stored += data.size() * copies;
    Remember(locs[0], data);
    // The first chunk with this digest becomes the one later equal chunks
    // share; a colliding one (same digest, other bytes) is not indexed,
    // since the dedup index maps a digest to one location.
    SessionChunk& c = collision ? collided[digest] : chunks[digest];
    c.length = data.size();
    c.copies = locs;
    if (!collision) new_rows.push_back(digest);
  }
  for (size_t i = 0; i < copies; i++) {
    file_copies[i].extents.push_back(
        Extent{file_offset, locs[i].vv_id, locs[i].vv_offset, data.size(), digest});
  }
  return Status::OK();
}

// Finds a stored chunk with this digest whose bytes equal data: first among
// this session's chunks, then in the catalog. *collision: a chunk with this
// digest exists but its bytes differ (or cannot be read to be compared).
Status ContentWriter::Impl::Share(const Digest128& digest, std::string_view data, bool* shared,
                                  std::vector<ChunkLocation>* locs, bool* collision) {
  *shared = false;
  *collision = false;
  auto it = chunks.find(digest);
  if (it == chunks.end()) {
    ChunkRecord rec;
    Status s = store->catalog()->GetChunk(digest, &rec);
    if (s.err() == ENOENT) return Status::OK();
    OVT_RETURN_IF_ERROR(s);
    if (rec.copies.size() < copies) {
      // Stored with fewer copies than this writer keeps: store it anew (and
      // let the new chunk, which has them all, become the indexed one).
      return Status::OK();
    }
    SessionChunk c;
    c.length = rec.length;
    c.copies.assign(rec.copies.begin(), rec.copies.begin() + copies);
    it = chunks.emplace(digest, std::move(c)).first;
  }
  switch (Compare(it->second, data)) {
    case Match::kSame:
      *shared = true;
      *locs = it->second.copies;
      return Status::OK();
    case Match::kUnreadable:
      // No copy of the indexed chunk can be read: the new one is stored and
      // replaces it in the index (files already pointing at the old one
      // keep their extents; fsck reports them).
      chunks.erase(it);
      return Status::OK();
    case Match::kDifferent:
      break;
  }
  *collision = true;
  auto alt = collided.find(digest);
  if (alt != collided.end() && Compare(alt->second, data) == Match::kSame) {
    *shared = true;
    *locs = alt->second.copies;
  }
  return Status::OK();
}

ContentWriter::Impl::Match ContentWriter::Impl::Compare(const SessionChunk& c,
                                                        std::string_view data) {
  if (c.length != data.size()) return Match::kDifferent;
  // One readable copy is enough to compare: the copies were written from
  // the same bytes.
  for (const ChunkLocation& loc : c.copies) {
    bool same = false;
    if (SameAsStored(loc, c.length, data, &same).ok())
      return same ? Match::kSame : Match::kDifferent;
  }
  return Match::kUnreadable;
}

Status ContentWriter::Impl::SameAsStored(const ChunkLocation& loc, uint64_t length,
                                         std::string_view data, bool* same) {
  *same = false;
  auto r = recent.find(Key{loc.vv_id, loc.vv_offset});
  if (r != recent.end()) {
    *same = r->second == data;
    return Status::OK();
  }
  const VvReader* reader = nullptr;
  std::shared_ptr<const VvReader> shared;  // a reader of the store's cache
  const RecordLocation rl{loc.vv_id, loc.vv_offset, length};
  auto it = containers.find(loc.vv_id);
  if (it != containers.end()) {
    // A container of this session, perhaps not in the catalog yet. Appended
    // data is usually readable before it is synced (it left the volume's
    // write buffer); when it is not, Sync makes it so.
    Container& c = it->second;
    const uint64_t end = loc.vv_offset + length;
    VolumeSet* set = store->volume_sets()[c.set];
    const Id128& store_id = store->config().id.bytes;
    if (c.reader == nullptr || c.reader->size() < end) {
      c.reader.reset();
      OVT_RETURN_IF_ERROR(VvReader::Open(set, store_id, loc.vv_id, &c.reader));
      if (c.reader->size() < end && c.writer != nullptr) {
        OVT_RETURN_IF_ERROR(c.writer->Sync());
        c.synced_end = c.writer->size();
        c.reader.reset();
        OVT_RETURN_IF_ERROR(VvReader::Open(set, store_id, loc.vv_id, &c.reader));
      }
    }
    reader = c.reader.get();
  } else {
    OVT_RETURN_IF_ERROR(store->OpenContainer(loc.vv_id, &shared));
    reader = shared.get();
  }
  RecordHeader header;
  std::string payload;
  OVT_RETURN_IF_ERROR(reader->ReadRecord(rl, &header, &payload));
  *same = payload == data;
  return Status::OK();
}

Status ContentWriter::Impl::NewContainer(size_t slot) {
  uint64_t vv_id = 0;
  OVT_RETURN_IF_ERROR(store->catalog()->AllocateIds(IdSpace::kVolume, 1, &vv_id));
  VvWriterOptions wo;
  wo.seal_size = store->config().vv_size;
  Container c;
  c.set = slot;
  OVT_RETURN_IF_ERROR(
      VvWriter::Create(store->volume_sets()[slot], store->config().id.bytes, vv_id, wo, &c.writer));
  c.synced_end = c.writer->size();  // the header is durable after Create
  containers.emplace(vv_id, std::move(c));
  current[slot] = vv_id;
  return Status::OK();
}

Status ContentWriter::Impl::SealCurrent(size_t slot) {
  Container& c = containers.at(current[slot]);
  OVT_RETURN_IF_ERROR(c.writer->Seal());
  c.sealed = true;
  c.dirty = true;
  c.size = c.writer->size();
  c.synced_end = c.size;
  c.writer.reset();
  current[slot] = 0;
  return Status::OK();
}

Status ContentWriter::Impl::Append(size_t slot, const Digest128& digest, const Hash128& hash,
                                   std::string_view data, ChunkLocation* loc) {
  if (current[slot] != 0) {
    Container& c = containers.at(current[slot]);
    if (!c.writer->Fits(data.size())) OVT_RETURN_IF_ERROR(SealCurrent(slot));
  }
  bool fresh = false;
  if (current[slot] == 0) {
    OVT_RETURN_IF_ERROR(NewContainer(slot));
    fresh = true;
  }
  Container& c = containers.at(current[slot]);
  if (fresh && !c.writer->Fits(data.size()))
    return Status::Errno(EFBIG, "a chunk of " + std::to_string(data.size()) +
                                    " bytes does not fit in an empty container of store '" +
                                    store->path() + "' (vv_size " +
                                    std::to_string(store->config().vv_size) + ")");
  RecordLocation rl;
  OVT_RETURN_IF_ERROR(c.writer->Append(RecordKind::kChunk, digest.bytes, 0, data, hash, &rl));
  c.live_bytes += data.size();
  c.dirty = true;
  *loc = ChunkLocation{rl.vv_id, rl.offset};
  return Status::OK();
}

Status ContentWriter::Impl::QueueRows(Catalog::Batch* batch) {
  const std::vector<VolumeSet*>& sets = store->volume_sets();
  for (auto& [vv_id, c] : containers) {
    if (!c.dirty) continue;
    if (!c.sealed) {
      OVT_RETURN_IF_ERROR(c.writer->Sync());
      c.synced_end = c.writer->size();
    }
    VolumeRecord v;
    v.set = sets[c.set]->name();
    v.state = c.sealed ? VolumeState::kSealed : VolumeState::kOpen;
    v.size = c.sealed ? c.size : c.writer->size();
    v.live_bytes = c.live_bytes;
    batch->PutVolume(vv_id, v);
    c.dirty = false;
  }
  for (const Digest128& d : new_rows) {
    const SessionChunk& c = chunks.at(d);
    ChunkRecord r;
    r.length = c.length;
    r.copies = c.copies;
    batch->PutChunk(d, r);
  }
  new_rows.clear();
  // Once the batch is committed the catalog knows these chunks and
  // containers: forgetting them here bounds the writer's memory over a long
  // import (Flush every so many files). Until then, a duplicate of a chunk
  // forgotten here is stored again, which costs space, not correctness.
  chunks.clear();
  for (auto it = containers.begin(); it != containers.end();) {
    it = it->second.sealed ? containers.erase(it) : std::next(it);
  }
  return Status::OK();
}

Status ContentWriter::Flush(Catalog::Batch* batch) {
  OVT_RETURN_IF_ERROR(impl_->setup);
  return impl_->QueueRows(batch);
}

Status ContentWriter::Finish(Catalog::Batch* batch) {
  Impl& m = *impl_;
  OVT_RETURN_IF_ERROR(m.setup);
  for (size_t slot = 0; slot < m.current.size(); slot++) {
    if (m.current[slot] != 0) OVT_RETURN_IF_ERROR(m.SealCurrent(slot));
  }
  return m.QueueRows(batch);
}

Status ContentWriter::DiscardUncommitted() {
  Impl& m = *impl_;
  Status first;
  const bool keep_all = m.store->catalog()->write_failed();
  if (keep_all) {
    first = Status::Errno(EAGAIN, "a catalog commit failed: the containers are left to gc");
  }
  for (auto& [id, c] : m.containers) {
    c.writer.reset();
    c.reader.reset();
    if (keep_all) continue;
    VolumeRecord v;
    Status s = m.store->catalog()->GetVolume(id, &v);
    if (s.ok()) continue;  // committed: its chunks may be named
    if (s.err() != ENOENT) {
      if (first.ok()) first = s;
      continue;
    }
    s = m.store->volume_sets()[c.set]->Remove(id);
    if (!s.ok() && s.err() != ENOENT && first.ok()) first = s;
  }
  m.containers.clear();
  std::fill(m.current.begin(), m.current.end(), 0);
  m.chunks.clear();
  m.collided.clear();
  m.new_rows.clear();
  m.setup = Status::Errno(ECANCELED, "this content writer was discarded");
  return first;
}

}  // namespace overtier
