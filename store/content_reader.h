// ContentReader: reads file contents described by FileRecords back from vv
// containers, with io_uring, verifying every byte.
//
// A read covers whole chunks (extents): each extent touched is read
// entirely and its XXH3-128 checked before any of its bytes is handed out.
// A mismatch or an I/O error tries the next copy of the extent; when every
// copy fails the read fails with EIO and a message naming the file (`what`),
// the container and the offset, and the failure is logged once to stderr.
// When every range that failed had a copy that merely did not answer (a
// remote volume set down or slow), the error is ETIMEDOUT instead: trying
// again later may work (hard semantics wait; everyone else answers EIO).
// Holes read as zeros.
//
// Extents of one read are submitted together (one io_uring submission,
// O_DIRECT where the container piece allows it). A reader that goes
// sequentially through a file also gets the following chunks fetched in the
// same submission (readahead) into a small cache of verified chunks, which
// later reads use without going to disk again.
//
// Thread-safe: each thread gets its own ring.
#ifndef OVERTIER_STORE_CONTENT_READER_H_
#define OVERTIER_STORE_CONTENT_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/store.h"

namespace overtier {

struct ContentReaderOptions {
  uint64_t cache_bytes = uint64_t{64} << 20;  // verified chunks kept
  uint32_t readahead_chunks = 8;              // 0: no readahead
};

// Where verified bytes of a read lie in a local container file: a caller
// may share those blocks (FICLONERANGE, migrate/restorer.cc) instead of
// writing a copy of them. fd is the container file's, opened without
// O_DIRECT; valid while `keep` lives.
struct LocalSource {
  uint64_t offset = 0;  // in the archived file
  uint64_t length = 0;
  int fd = -1;
  uint64_t fd_offset = 0;  // where offset lies in fd
  std::shared_ptr<const void> keep;
};

struct ContentReadStats {
  uint64_t extents_read = 0;  // from containers
  uint64_t cache_hits = 0;
  uint64_t checksum_failures = 0;  // copies that failed verification
  uint64_t fallbacks = 0;          // extents served by a later copy
};

class ContentReader {
 public:
  ContentReader(Store* store, const ContentReaderOptions& options = {});
  ~ContentReader();
  ContentReader(const ContentReader&) = delete;
  ContentReader& operator=(const ContentReader&) = delete;

  // Reads up to n bytes at offset of the file `file` (identified by `bfid`
  // for the cache and the readahead) into buf: *got = min(n, size - offset),
  // 0 at or past the end.
  // damaged (optional): on success, the extents of copies that failed
  // verification (or could not be read) where another copy then served
  // the bytes, so that a writer may rewrite them (store/repair.h). Copies
  // that only did not answer (a remote set down) are not damage.
  // sources (optional): on success, the ranges of the read whose verified
  // copy lies whole in one local file, in file order (not holes, not
  // chunks of remote sets or cut across a container's pieces).
  Status Read(const Bfid& bfid, const FileRecord& file, uint64_t offset, size_t n, char* buf,
              size_t* got, std::string_view what, std::vector<Extent>* damaged = nullptr,
              std::vector<LocalSource>* sources = nullptr);

  // Read-ahead for a caller that will Read [offset, offset + n) of `file`
  // soon: reads the chunks of it not cached yet into the cache, each from
  // the first copy that verifies; hands out no bytes, reads nothing
  // further ahead, logs nothing. Reporting and repairing are left to that
  // Read (which meets a damaged copy again): the status only says whether
  // some chunk could not be had at all, ETIMEDOUT when it may later (as
  // Read).
  Status Prefetch(const FileRecord& file, uint64_t offset, uint64_t n);

  // Reads and verifies every extent of every copy (fsck): OK, or the first
  // damage found (and *damaged_copies counts the copies that failed).
  Status VerifyAll(const FileRecord& file, std::string_view what, int* damaged_copies);

  ContentReadStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace overtier

#endif  // OVERTIER_STORE_CONTENT_READER_H_
