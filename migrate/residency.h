// ResidencyMap: which bytes of an upper file hold the file's data, and which
// exist only in the archive.
//
// DMFS keeps one number per file, the byte barrier: [0, barrier) is on disk,
// the rest is in the archive. That stays the common case here (a release
// keeping N bytes, a restore from the start), but range restore (the part
// being read first) and writes into a released file make holes in the
// pattern, so the map is a set of resident ranges: sorted, disjoint and never
// adjacent (adjacent ranges are merged), all within [0, size).
//
// The map knows the file's current size because residency is a property of
// existing bytes: bytes past the size do not exist (a truncate that shrinks
// drops them, so nothing past the new size is ever restored), and bytes a
// truncate or a write adds past the old size are the user's (zeros or new
// data), never the archive's, so they are resident from birth.
//
// Invariant relied on by the restorer: a non-resident byte of the upper file
// reads as zero (it was punched out, or never written) or already holds the
// archive's byte (a crash between committing a release and punching), so a
// restore may skip writing runs of zeros.
//
// A value type, not thread-safe; offsets and lengths saturate at 2^64 - 1.
#ifndef OVERTIER_MIGRATE_RESIDENCY_H_
#define OVERTIER_MIGRATE_RESIDENCY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "overtier/status.h"
#include "store/catalog_records.h"

namespace overtier {

class ResidencyMap {
 public:
  // An empty file.
  ResidencyMap() = default;
  // A file of `size` bytes, all resident (never archived, or just archived).
  static ResidencyMap FullyResident(uint64_t size);
  // A file of `size` bytes with [0, min(barrier, size)) resident (DMFS).
  static ResidencyMap WithBarrier(uint64_t size, uint64_t barrier);

  // The residency stored in a migration record, for a file whose current
  // size is `size` (the upper file's st_size). Ranges past the size are
  // clipped away (those bytes do not exist any more); adjacent ranges are
  // merged. Corruption if the record's ranges are not sorted and disjoint.
  static Status FromRecord(const MigrationRecord& record, uint64_t size, ResidencyMap* out);
  // Stores the map into record->residency, barrier and resident_ranges:
  // kBarrier when the map is empty or a single range starting at 0, else
  // kRanges. Other fields are left alone.
  void ToRecord(MigrationRecord* record) const;

  uint64_t size() const { return size_; }
  // Sorted, disjoint, non-adjacent, non-empty, within [0, size).
  const std::vector<ByteRange>& ranges() const { return ranges_; }
  uint64_t resident_bytes() const;
  bool fully_resident() const;
  // The byte barrier, if the map has one: true with *barrier set when the
  // resident bytes are exactly [0, *barrier).
  bool barrier(uint64_t* barrier) const;

  // Marks [offset, offset + length) as holding the data (restored, or
  // written by the user), clipped to the size.
  void MarkResident(uint64_t offset, uint64_t length);
  // Marks [offset, offset + length) as being only in the archive (release).
  void MarkNonResident(uint64_t offset, uint64_t length);
  // Keeps only what is resident within [0, keep) (release keeping N bytes).
  void KeepPrefix(uint64_t keep) { MarkNonResident(keep, UINT64_MAX - keep); }
  // Sets the size (truncate). Shrinking drops everything at or past the new
  // size; growing makes the new tail [old size, new size) resident.
  void Truncate(uint64_t size);
  // A user write of [offset, offset + length): grows the file if it ends
  // past the size (the gap in between is zeros, resident), then marks the
  // written bytes resident. Writing 0 bytes changes nothing.
  void RecordWrite(uint64_t offset, uint64_t length);

  // Whether every byte of [offset, offset + length) that exists (is below
  // the size) is resident. An empty or past-the-end range is resident.
  bool IsResident(uint64_t offset, uint64_t length) const;
  // The first non-resident subrange of [offset, offset + length) clipped to
  // the size: false if there is none.
  bool NextMissing(uint64_t offset, uint64_t length, ByteRange* missing) const;
  // Every non-resident subrange of [offset, offset + length), in order.
  std::vector<ByteRange> Missing(uint64_t offset, uint64_t length) const;

  // "[0,4096) [8192,12288)" (at most `max_ranges`, then "... (N more)"), for
  // messages and the state xattr.
  std::string DescribeRanges(size_t max_ranges = 16) const;

  bool operator==(const ResidencyMap&) const = default;

 private:
  uint64_t size_ = 0;
  std::vector<ByteRange> ranges_;
};

// offset + length, saturating at 2^64 - 1 instead of wrapping.
inline uint64_t RangeEnd(uint64_t offset, uint64_t length) {
  return length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
}

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_RESIDENCY_H_
