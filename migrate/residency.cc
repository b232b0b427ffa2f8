#include "migrate/residency.h"

#include <algorithm>

namespace overtier {

namespace {

uint64_t End(const ByteRange& r) { return RangeEnd(r.offset, r.length); }

// The first range that ends after `pos`: the only candidate to contain pos,
// and otherwise the first range past it.
std::vector<ByteRange>::const_iterator FirstEndingAfter(const std::vector<ByteRange>& ranges,
                                                        uint64_t pos) {
  return std::upper_bound(ranges.begin(), ranges.end(), pos,
                          [](uint64_t p, const ByteRange& r) { return p < End(r); });
}

}  // namespace

ResidencyMap ResidencyMap::FullyResident(uint64_t size) { return WithBarrier(size, size); }

ResidencyMap ResidencyMap::WithBarrier(uint64_t size, uint64_t barrier) {
  ResidencyMap m;
  m.size_ = size;
  uint64_t b = std::min(barrier, size);
  if (b > 0) m.ranges_.push_back({0, b});
  return m;
}

Status ResidencyMap::FromRecord(const MigrationRecord& record, uint64_t size, ResidencyMap* out) {
  switch (record.residency) {
    case ResidencyKind::kBarrier:
      *out = WithBarrier(size, record.barrier);
      return Status::OK();
    case ResidencyKind::kRanges:
      break;
    default:
      return Status::Corruption("migration record: unknown residency kind " +
                                std::to_string(static_cast<int>(record.residency)));
  }
  ResidencyMap m;
  m.size_ = size;
  uint64_t prev_end = 0;
  for (size_t i = 0; i < record.resident_ranges.size(); i++) {
    const ByteRange& r = record.resident_ranges[i];
    if (r.length == 0 || r.length > UINT64_MAX - r.offset || (i > 0 && r.offset < prev_end)) {
      return Status::Corruption("migration record: resident range " + std::to_string(i) + " [" +
                                std::to_string(r.offset) + ", +" + std::to_string(r.length) +
                                ") is empty, wraps or overlaps the previous one");
    }
    prev_end = r.offset + r.length;
    m.MarkResident(r.offset, r.length);  // merges adjacent ranges, clips to size
  }
  *out = std::move(m);
  return Status::OK();
}

void ResidencyMap::ToRecord(MigrationRecord* record) const {
  uint64_t b = 0;
  if (barrier(&b)) {
    record->residency = ResidencyKind::kBarrier;
    record->barrier = b;
    record->resident_ranges.clear();
  } else {
    record->residency = ResidencyKind::kRanges;
    record->barrier = 0;
    record->resident_ranges = ranges_;
  }
}

uint64_t ResidencyMap::resident_bytes() const {
  uint64_t n = 0;
  for (const ByteRange& r : ranges_) n += r.length;
  return n;
}

bool ResidencyMap::fully_resident() const {
  return size_ == 0 ||
         (ranges_.size() == 1 && ranges_[0].offset == 0 && ranges_[0].length == size_);
}

bool ResidencyMap::barrier(uint64_t* barrier) const {
  if (ranges_.empty()) {
    *barrier = 0;
    return true;
  }
  if (ranges_.size() == 1 && ranges_[0].offset == 0) {
    *barrier = ranges_[0].length;
    return true;
  }
  return false;
}

void ResidencyMap::MarkResident(uint64_t offset, uint64_t length) {
  uint64_t end = std::min(RangeEnd(offset, length), size_);
  if (offset >= end) return;
  // Ranges ending before `offset` stay; the first one ending at or after it
  // (adjacent counts) and every one starting at or before `end` merge.
  auto first = std::lower_bound(ranges_.begin(), ranges_.end(), offset,
                                [](const ByteRange& r, uint64_t p) { return End(r) < p; });
  auto last = first;
  uint64_t start = offset;
  while (last != ranges_.end() && last->offset <= end) {
    start = std::min(start, last->offset);
    end = std::max(end, End(*last));
    ++last;
  }
  ByteRange merged{start, end - start};
  if (first == last) {
    ranges_.insert(first, merged);
  } else {
    *first = merged;
    ranges_.erase(first + 1, last);
  }
}

void ResidencyMap::MarkNonResident(uint64_t offset, uint64_t length) {
  uint64_t end = RangeEnd(offset, length);
  if (offset >= end) return;
  std::vector<ByteRange> out;
  out.reserve(ranges_.size() + 1);
  for (const ByteRange& r : ranges_) {
    uint64_t r_end = End(r);
    if (r_end <= offset || r.offset >= end) {
      out.push_back(r);
      continue;
    }
    if (r.offset < offset) out.push_back({r.offset, offset - r.offset});
    if (r_end > end) out.push_back({end, r_end - end});
  }
  ranges_ = std::move(out);
}

void ResidencyMap::Truncate(uint64_t size) {
  if (size < size_) {
    MarkNonResident(size, UINT64_MAX - size);
    size_ = size;
  } else if (size > size_) {
    uint64_t old = size_;
    size_ = size;
    MarkResident(old, size - old);
  }
}

void ResidencyMap::RecordWrite(uint64_t offset, uint64_t length) {
  if (length == 0) return;  // write(2) of nothing does not extend a file
  uint64_t end = RangeEnd(offset, length);
  if (end > size_) Truncate(end);
  MarkResident(offset, length);
}

bool ResidencyMap::IsResident(uint64_t offset, uint64_t length) const {
  ByteRange unused;
  return !NextMissing(offset, length, &unused);
}

bool ResidencyMap::NextMissing(uint64_t offset, uint64_t length, ByteRange* missing) const {
  uint64_t end = std::min(RangeEnd(offset, length), size_);
  uint64_t pos = offset;
  if (pos >= end) return false;
  auto it = FirstEndingAfter(ranges_, pos);
  if (it != ranges_.end() && it->offset <= pos) {
    pos = End(*it);  // resident up to here; ranges never touch, so a gap follows
    ++it;
    if (pos >= end) return false;
  }
  uint64_t gap_end = it == ranges_.end() ? end : std::min(it->offset, end);
  *missing = {pos, gap_end - pos};
  return true;
}

std::vector<ByteRange> ResidencyMap::Missing(uint64_t offset, uint64_t length) const {
  std::vector<ByteRange> out;
  uint64_t end = RangeEnd(offset, length);
  ByteRange m;
  uint64_t pos = offset;
  while (pos < end && NextMissing(pos, end - pos, &m)) {
    out.push_back(m);
    pos = m.offset + m.length;
  }
  return out;
}

std::string ResidencyMap::DescribeRanges(size_t max_ranges) const {
  std::string s;
  for (size_t i = 0; i < ranges_.size() && i < max_ranges; i++) {
    if (!s.empty()) s += ' ';
    s += "[" + std::to_string(ranges_[i].offset) + "," + std::to_string(End(ranges_[i])) + ")";
  }
  if (ranges_.size() > max_ranges) {
    s += " ... (" + std::to_string(ranges_.size() - max_ranges) + " more)";
  }
  return s;
}

}  // namespace overtier
