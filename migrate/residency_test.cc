#include "migrate/residency.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

ByteRange R(uint64_t off, uint64_t len) { return {off, len}; }

TEST(ResidencyMapTest, BarrierBasics) {
  ResidencyMap m = ResidencyMap::WithBarrier(100, 40);
  EXPECT_EQ(m.size(), 100u);
  EXPECT_EQ(m.resident_bytes(), 40u);
  EXPECT_FALSE(m.fully_resident());
  uint64_t b = 0;
  ASSERT_TRUE(m.barrier(&b));
  EXPECT_EQ(b, 40u);
  EXPECT_TRUE(m.IsResident(0, 40));
  EXPECT_FALSE(m.IsResident(39, 2));
  EXPECT_TRUE(m.IsResident(100, 50));  // past the end: nothing to wait for
  ByteRange miss;
  ASSERT_TRUE(m.NextMissing(0, 1000, &miss));
  EXPECT_EQ(miss, R(40, 60));  // clipped to the size
  EXPECT_FALSE(m.NextMissing(0, 40, &miss));

  // A barrier past the size is the size.
  EXPECT_TRUE(ResidencyMap::WithBarrier(10, 50).fully_resident());
  EXPECT_TRUE(ResidencyMap().fully_resident());
  EXPECT_EQ(ResidencyMap::WithBarrier(10, 0).resident_bytes(), 0u);
}

TEST(ResidencyMapTest, MarkResidentMergesOverlappingAndAdjacent) {
  ResidencyMap m = ResidencyMap::WithBarrier(100, 0);
  m.MarkResident(10, 10);
  m.MarkResident(30, 10);
  ASSERT_EQ(m.ranges().size(), 2u);
  m.MarkResident(20, 10);  // touches both: one range
  ASSERT_EQ(m.ranges().size(), 1u);
  EXPECT_EQ(m.ranges()[0], R(10, 30));
  m.MarkResident(0, 10);  // adjacent on the left: the barrier is back
  uint64_t b = 0;
  ASSERT_TRUE(m.barrier(&b));
  EXPECT_EQ(b, 40u);
  m.MarkResident(90, 1000);  // clipped
  EXPECT_EQ(m.ranges().back(), R(90, 10));
  m.MarkResident(5, 0);  // empty: nothing
  EXPECT_EQ(m.ranges().size(), 2u);
  EXPECT_EQ(m.DescribeRanges(), "[0,40) [90,100)");
  EXPECT_EQ(m.DescribeRanges(1), "[0,40) ... (1 more)");
}

TEST(ResidencyMapTest, MissingListsEveryGap) {
  ResidencyMap m = ResidencyMap::WithBarrier(100, 0);
  m.MarkResident(10, 10);
  m.MarkResident(50, 10);
  std::vector<ByteRange> want = {R(5, 5), R(20, 30), R(60, 5)};
  EXPECT_EQ(m.Missing(5, 60), want);
  want = {R(0, 10), R(20, 30), R(60, 40)};
  EXPECT_EQ(m.Missing(0, UINT64_MAX), want);
}

TEST(ResidencyMapTest, TruncateShrinkDropsAndGrowIsResident) {
  ResidencyMap m = ResidencyMap::WithBarrier(1000, 100);
  m.MarkResident(500, 100);
  m.Truncate(550);  // drops [550, 600) and everything that was past 550
  EXPECT_EQ(m.size(), 550u);
  std::vector<ByteRange> want = {R(0, 100), R(500, 50)};
  EXPECT_EQ(m.ranges(), want);
  m.Truncate(50);  // nothing past 50 will ever be restored
  EXPECT_TRUE(m.fully_resident());
  m.Truncate(2000);  // the new tail is the user's zeros
  EXPECT_TRUE(m.fully_resident());
  EXPECT_EQ(m.resident_bytes(), 2000u);

  ResidencyMap w = ResidencyMap::WithBarrier(100, 10);
  w.RecordWrite(150, 10);  // grows to 160: [100, 160) is resident, [10, 100) is not
  std::vector<ByteRange> want2 = {R(0, 10), R(100, 60)};
  EXPECT_EQ(w.ranges(), want2);
  EXPECT_EQ(w.size(), 160u);
}

TEST(ResidencyMapTest, SaturatesInsteadOfWrapping) {
  ResidencyMap m = ResidencyMap::WithBarrier(UINT64_MAX, 0);
  m.MarkResident(UINT64_MAX - 10, UINT64_MAX);
  EXPECT_EQ(m.ranges().back(), R(UINT64_MAX - 10, 10));
  EXPECT_TRUE(m.IsResident(UINT64_MAX - 5, 100));
  m.MarkNonResident(UINT64_MAX - 3, UINT64_MAX);
  EXPECT_EQ(m.ranges().back(), R(UINT64_MAX - 10, 7));
}

TEST(ResidencyMapTest, RecordRoundTrip) {
  MigrationRecord rec;
  ResidencyMap m = ResidencyMap::WithBarrier(100, 40);
  m.ToRecord(&rec);
  EXPECT_EQ(rec.residency, ResidencyKind::kBarrier);
  EXPECT_EQ(rec.barrier, 40u);
  EXPECT_TRUE(CheckRecord(rec).ok());
  ResidencyMap back;
  ASSERT_TRUE(ResidencyMap::FromRecord(rec, 100, &back).ok());
  EXPECT_EQ(back, m);

  m.MarkResident(60, 10);
  m.ToRecord(&rec);
  EXPECT_EQ(rec.residency, ResidencyKind::kRanges);
  EXPECT_EQ(rec.barrier, 0u);
  EXPECT_EQ(rec.resident_ranges.size(), 2u);
  EXPECT_TRUE(CheckRecord(rec).ok());
  ASSERT_TRUE(ResidencyMap::FromRecord(rec, 100, &back).ok());
  EXPECT_EQ(back, m);

  // Only ranges not starting at 0 -> kRanges, even a single one.
  ResidencyMap tail = ResidencyMap::WithBarrier(100, 0);
  tail.MarkResident(90, 10);
  tail.ToRecord(&rec);
  EXPECT_EQ(rec.residency, ResidencyKind::kRanges);

  // And back to a barrier: the ranges are dropped from the record.
  ResidencyMap::WithBarrier(100, 0).ToRecord(&rec);
  EXPECT_EQ(rec.residency, ResidencyKind::kBarrier);
  EXPECT_EQ(rec.barrier, 0u);
  EXPECT_TRUE(rec.resident_ranges.empty());
}

TEST(ResidencyMapTest, FromRecordMergesClipsAndRefusesOverlap) {
  MigrationRecord rec;
  rec.residency = ResidencyKind::kRanges;
  rec.resident_ranges = {R(0, 10), R(10, 10), R(50, 100)};  // adjacent: legal in the catalog
  ResidencyMap m;
  ASSERT_TRUE(ResidencyMap::FromRecord(rec, 60, &m).ok());
  std::vector<ByteRange> want = {R(0, 20), R(50, 10)};
  EXPECT_EQ(m.ranges(), want);

  rec.resident_ranges = {R(0, 10), R(5, 10)};
  Status s = ResidencyMap::FromRecord(rec, 60, &m);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_NE(s.message().find("resident range 1"), std::string::npos) << s.ToString();

  rec.resident_ranges = {R(UINT64_MAX, 2)};
  EXPECT_EQ(ResidencyMap::FromRecord(rec, 60, &m).err(), EIO);
  rec.resident_ranges = {R(3, 0)};
  EXPECT_EQ(ResidencyMap::FromRecord(rec, 60, &m).err(), EIO);

  rec.residency = static_cast<ResidencyKind>(7);
  EXPECT_EQ(ResidencyMap::FromRecord(rec, 60, &m).err(), EIO);
}

// ---------------------------------------------------------------------------
// Property test: random operations against a bitmap, one bit per byte.
// ---------------------------------------------------------------------------

struct Model {
  std::vector<bool> bits;  // size = file size

  void Mark(uint64_t off, uint64_t len, bool v) {
    for (uint64_t i = off; i < off + len && i < bits.size(); i++) bits[i] = v;
  }
  void Truncate(uint64_t size) {
    bits.resize(size, true);  // a grown tail is the user's, resident
  }
  bool Resident(uint64_t off, uint64_t len) const {
    for (uint64_t i = off; i < off + len && i < bits.size(); i++)
      if (!bits[i]) return false;
    return true;
  }
  bool NextMissing(uint64_t off, uint64_t len, ByteRange* out) const {
    uint64_t end = std::min<uint64_t>(off + len, bits.size());
    uint64_t i = off;
    while (i < end && bits[i]) i++;
    if (i >= end) return false;
    uint64_t j = i;
    while (j < end && !bits[j]) j++;
    *out = {i, j - i};
    return true;
  }
  uint64_t Count() const {
    uint64_t n = 0;
    for (bool b : bits) n += b;
    return n;
  }
};

void CheckInvariants(const ResidencyMap& m, const Model& model, const std::string& trace) {
  ASSERT_EQ(m.size(), model.bits.size()) << trace;
  uint64_t prev_end = 0;
  for (size_t i = 0; i < m.ranges().size(); i++) {
    const ByteRange& r = m.ranges()[i];
    ASSERT_GT(r.length, 0u) << trace;
    if (i > 0) {
      ASSERT_GT(r.offset, prev_end) << "adjacent or overlapping\n" << trace;
    }
    prev_end = r.offset + r.length;
    ASSERT_LE(prev_end, m.size()) << trace;
  }
  // Byte by byte.
  for (uint64_t i = 0; i < model.bits.size(); i++) {
    ASSERT_EQ(m.IsResident(i, 1), model.bits[i]) << "byte " << i << "\n" << trace;
  }
  ASSERT_EQ(m.resident_bytes(), model.Count()) << trace;
  ASSERT_EQ(m.fully_resident(), model.Count() == model.bits.size()) << trace;
}

TEST(ResidencyMapTest, RandomOperationsMatchBitmap) {
  std::mt19937_64 rng(20240611);
  for (int round = 0; round < 300; round++) {
    uint64_t size = rng() % 300;
    uint64_t barrier = rng() % (size + 20);
    ResidencyMap m = ResidencyMap::WithBarrier(size, barrier);
    Model model;
    model.bits.assign(size, false);
    model.Mark(0, barrier, true);
    std::string trace = "size " + std::to_string(size) + " barrier " + std::to_string(barrier);
    for (int step = 0; step < 60; step++) {
      uint64_t cap = m.size() + 40;
      uint64_t off = rng() % cap;
      uint64_t len = rng() % 80;
      switch (rng() % 7) {
        case 0:
        case 1:
          m.MarkResident(off, len);
          model.Mark(off, len, true);
          trace += "\nMarkResident(" + std::to_string(off) + "," + std::to_string(len) + ")";
          break;
        case 2:
          m.MarkNonResident(off, len);
          model.Mark(off, len, false);
          trace += "\nMarkNonResident(" + std::to_string(off) + "," + std::to_string(len) + ")";
          break;
        case 3: {
          uint64_t n = rng() % cap;
          m.Truncate(n);
          model.Truncate(n);
          trace += "\nTruncate(" + std::to_string(n) + ")";
          break;
        }
        case 4:
          m.RecordWrite(off, len);
          if (len > 0 && off + len > model.bits.size()) model.Truncate(off + len);
          model.Mark(off, len, true);
          trace += "\nRecordWrite(" + std::to_string(off) + "," + std::to_string(len) + ")";
          break;
        case 5:
          m.KeepPrefix(off);
          model.Mark(off, model.bits.size(), false);
          trace += "\nKeepPrefix(" + std::to_string(off) + ")";
          break;
        case 6: {
          // Through a record and back, as the catalog stores it.
          MigrationRecord rec;
          m.ToRecord(&rec);
          ASSERT_TRUE(CheckRecord(rec).ok()) << trace;
          std::string enc = EncodeRecord(rec);
          MigrationRecord dec;
          ASSERT_TRUE(DecodeRecord(enc, &dec).ok()) << trace;
          ResidencyMap back;
          ASSERT_TRUE(ResidencyMap::FromRecord(dec, m.size(), &back).ok()) << trace;
          ASSERT_EQ(back, m) << trace;
          uint64_t b = 0;
          ASSERT_EQ(rec.residency == ResidencyKind::kBarrier, m.barrier(&b)) << trace;
          trace += "\n(record round trip)";
          break;
        }
      }
      ASSERT_NO_FATAL_FAILURE(CheckInvariants(m, model, trace));
      // Queries on random ranges.
      for (int q = 0; q < 10; q++) {
        uint64_t qo = rng() % cap;
        uint64_t ql = rng() % 100;
        ASSERT_EQ(m.IsResident(qo, ql), model.Resident(qo, ql))
            << "IsResident(" << qo << "," << ql << ")\n"
            << trace;
        ByteRange got{}, want{};
        bool g = m.NextMissing(qo, ql, &got);
        bool w = model.NextMissing(qo, ql, &want);
        ASSERT_EQ(g, w) << "NextMissing(" << qo << "," << ql << ")\n" << trace;
        if (g) {
          ASSERT_EQ(got, want) << "NextMissing(" << qo << "," << ql << ")\n" << trace;
        }
        // Missing() is the NextMissing walk.
        uint64_t total = 0;
        for (const ByteRange& r : m.Missing(qo, ql)) {
          ASSERT_TRUE(model.NextMissing(r.offset, r.length, &want)) << trace;
          ASSERT_EQ(want, r) << trace;
          total += r.length;
        }
        uint64_t model_missing = 0;
        for (uint64_t i = qo; i < qo + ql && i < model.bits.size(); i++)
          model_missing += !model.bits[i];
        ASSERT_EQ(total, model_missing) << trace;
      }
    }
  }
}

}  // namespace
}  // namespace overtier
