// A local read cache in front of a remote volume set (a RADOS pool), and
// sequential prefetch: a hot image is not fetched twice, and a file read
// from start to end has its next blocks on their way before it asks.
//
// Why caching is simple here: containers are append-only and never
// rewritten in place, and vv ids are never reused, so the bytes at
// (vv_id, offset) below any reader's Size() never change. The cache keeps
// fixed-size blocks of containers, keyed by (vv_id, block index), one file
// per block in a local directory (format in docs/FORMAT.md, "Read cache of
// remote volume sets"). A container's last block may be short: it is cached
// with its length, and a read past that length (the container grew since)
// is a miss that fetches and caches the longer block.
//
// Every cached block carries XXH3-64 checksums of its data (one per 64 KiB
// page, so a small read verifies only the pages it touches), computed from
// the bytes the remote returned and checked on every use: a damaged or torn
// file is dropped (one line on stderr naming it) and the bytes are read from
// the remote again. Total size is kept under max_bytes by evicting the least
// recently used blocks. A cache left by an earlier run is reused.
//
// Writers (Create, OpenForAppend) go straight to the remote set; Remove also
// drops the container's cached blocks. RawSegments is ENOTSUP, as for the
// remote: callers use ReadAt.
//
// One process at a time uses a cache directory (an flock on its LOCK file):
// another process opening the same set, e.g. the CLI while a mount runs,
// reads the remote set uncached, with one note on stderr, until the other
// lets the cache go.
#ifndef OVERTIER_STORE_CACHED_VOLUME_H_
#define OVERTIER_STORE_CACHED_VOLUME_H_

#include <cstdint>
#include <memory>
#include <string>

#include "overtier/status.h"
#include "store/volume.h"

namespace overtier {

struct ReadCacheOptions {
  // The cache directory, created (with its parents) if missing; for a
  // store, STORE/cache/SETNAME.
  std::string dir;
  // Bound on the bytes of the cache files (headers and checksums included).
  uint64_t max_bytes = uint64_t{1} << 30;
  // The unit of caching and of remote reads on a miss: a multiple of 4096,
  // at most kMaxVolumePiece. A cache filled with another block size is
  // emptied when opened.
  uint64_t block_size = uint64_t{4} << 20;
  // Blocks read ahead once a reader reads sequentially (each of up to 8
  // interleaved streams of reads of one reader is followed); 0: no
  // prefetch. With prefetch on, the blocks of a read of several blocks are
  // also fetched in parallel.
  uint32_t prefetch_depth = 4;
  // Background threads doing the prefetch reads; 0: no prefetch.
  uint32_t prefetch_threads = 2;
  // Prefetch requests waiting for a thread; more are dropped (prefetch is
  // only a hint).
  uint32_t prefetch_queue = 64;
  // When another process holds the cache, how often (at most) an Open
  // tries to take it over; 0: never.
  uint32_t lock_retry_ms = 10000;
};

// Wraps `remote` in a read cache. InvalidArgument for bad options. A cache
// is never a reason to fail opening a store: when the directory cannot be
// made, *out is the remote set itself, uncached, after one note on stderr;
// when another process holds it, *out runs uncached (same note) until it
// can take the cache over (lock_retry_ms).
Status WrapWithReadCache(std::unique_ptr<VolumeSet> remote, const ReadCacheOptions& o,
                         std::unique_ptr<VolumeSet>* out);

struct ReadCacheStats {
  uint64_t blocks = 0;       // blocks in the cache now
  uint64_t bytes = 0;        // their file bytes
  uint64_t hits = 0;         // block reads served from the cache
  uint64_t misses = 0;       // block reads a foreground ReadAt fetched itself
  uint64_t prefetched = 0;   // blocks fetched by prefetch
  uint64_t corrupt = 0;      // cache files found damaged and dropped
  uint64_t evicted = 0;      // blocks evicted to stay under max_bytes
  uint64_t fill_errors = 0;  // blocks that could not be written to the cache
};

// The counters of a set made by WrapWithReadCache; false for any other set
// and while the set runs uncached.
bool GetReadCacheStats(VolumeSet* set, ReadCacheStats* out);

// Cache files: a 64-byte header, the data, then one XXH3-64 per page.
inline constexpr uint64_t kReadCacheHeaderSize = 64;
inline constexpr uint64_t kReadCachePageSize = uint64_t{64} << 10;

// The name of a block's file in the cache directory,
// "<16 hex digits of vv_id>-<16 hex digits of block index>.blk".
std::string ReadCacheBlockName(uint64_t vv_id, uint64_t block);

}  // namespace overtier

#endif  // OVERTIER_STORE_CACHED_VOLUME_H_
