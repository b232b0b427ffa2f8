// ContentWriter: stores file contents in the store's vv containers.
//
// Content is cut into chunks at file offsets that are multiples of the
// store's chunk_size. A chunk of zeros is not stored (a hole). Every other
// chunk is deduplicated by its XXH3-128 digest against the `chunks` family
// and against the chunks of this writer's session, and shared only after
// its bytes compared equal to the stored chunk's (xxHash is not
// collision-resistant against an adversary). A new chunk is appended as a
// kChunk record to `copies` containers, each in a different volume set;
// a container that fills up is sealed and the next one started (so a large
// file spans containers, and many small files share one).
//
// Durability: nothing the writer produced may be named by the catalog
// before Flush() has synced the containers holding it. The caller's
// pattern is
//
//   ContentWriter w(store);
//   for each file: w.BeginFile(); w.Write(...)...; w.EndFile(size, &rec);
//                  (keep rec for the node / files rows)
//   Catalog::Batch b(store->catalog());
//   OVT_RETURN_IF_ERROR(w.Flush(&b));   // fsync containers; queue volume
//                                       // and chunk rows into b
//   b.PutFile(...); b.PutNode(...); ...
//   OVT_RETURN_IF_ERROR(b.Commit());    // synced WAL
//
// and may repeat Flush/commit every so many files to bound memory. After a
// crash, chunks written but never committed are garbage that gc reclaims.
//
// Not thread-safe: one writer per thread of work. Needs a writable Store.
#ifndef OVERTIER_STORE_CONTENT_WRITER_H_
#define OVERTIER_STORE_CONTENT_WRITER_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "overtier/status.h"
#include "store/catalog.h"
#include "store/catalog_records.h"
#include "store/store.h"

namespace overtier {

struct ContentWriterOptions {
  uint32_t copies = 0;  // 0: the store's copies
};

struct ContentStats {
  uint64_t files = 0;           // EndFile calls
  uint64_t bytes = 0;           // logical bytes written (holes excluded)
  uint64_t chunks = 0;          // non-zero chunks seen
  uint64_t chunks_deduped = 0;  // of those, shared with an existing chunk
  uint64_t bytes_stored = 0;    // payload bytes appended to containers (all copies)
};

class ContentWriter {
 public:
  ContentWriter(Store* store, const ContentWriterOptions& options = {});
  ~ContentWriter();  // containers not flushed are left as a crash would
  ContentWriter(const ContentWriter&) = delete;
  ContentWriter& operator=(const ContentWriter&) = delete;

  // Starts a new file.
  void BeginFile();
  // Data at file_offset. Offsets must not go backwards (data after a gap:
  // the gap is a hole); any size, not necessarily chunk-aligned.
  Status Write(uint64_t file_offset, std::string_view data);
  // Finishes the file, whose size is `size` (>= the end of the last
  // Write), and describes its content: one FileCopy per copy, extents
  // sorted, holes absent. The record is not in the catalog yet.
  Status EndFile(uint64_t size, FileRecord* out);
  // Convenience: stores the whole content of fd (a regular file), keeping
  // its holes (SEEK_DATA/SEEK_HOLE).
  Status WriteFd(int fd, uint64_t size, FileRecord* out);

  // Syncs every container written to and queues, into batch, the volumes
  // rows (size, state: open or sealed) and the chunks rows of new chunks.
  Status Flush(Catalog::Batch* batch);
  // Flush, and seal the containers still open (end of an import).
  Status Finish(Catalog::Batch* batch);

  // After a failed import: removes the containers this writer started that
  // the catalog has no volumes row for, and leaves the writer unusable.
  // Nothing committed can name their chunks (a batch that names a chunk
  // carries its container's row, queued by Flush), so they are garbage gc
  // would remove; removing them now gives the space back at once, also on
  // a full disk, where gc cannot even open the catalog for writing. A
  // container with a row, or whose row cannot be read, is kept, and so is
  // every container once a catalog commit failed (Catalog::write_failed:
  // that batch may come back at the next open). Call with the store still
  // open for writing (its write.lock keeps out other writers, whose new
  // containers have no row yet either).
  Status DiscardUncommitted();

  const ContentStats& stats() const { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ContentStats stats_;
};

// Calls DiscardUncommitted on the writer when it goes out of scope, unless
// Keep() was called: an import holds one from its writer's creation to the
// commit that publishes its images, so that every early return of a
// failure gives the space of its unnamed containers back.
class DiscardUnlessKept {
 public:
  explicit DiscardUnlessKept(ContentWriter* w) : w_(w) {}
  ~DiscardUnlessKept() {
    if (w_ != nullptr) (void)w_->DiscardUncommitted();  // best effort: gc reclaims the rest
  }
  DiscardUnlessKept(const DiscardUnlessKept&) = delete;
  DiscardUnlessKept& operator=(const DiscardUnlessKept&) = delete;
  void Keep() { w_ = nullptr; }

 private:
  ContentWriter* w_;
};

}  // namespace overtier

#endif  // OVERTIER_STORE_CONTENT_WRITER_H_
