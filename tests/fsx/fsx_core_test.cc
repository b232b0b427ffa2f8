// Unit tests for the fsx model and op stream. The exerciser is only as good as its model: a
// model bug shows up as a false failure on every filesystem, or worse, hides a real one.

#include "fsx_core.h"

#include <gtest/gtest.h>
#include <linux/falloc.h>

#include <set>

namespace fsx {
namespace {

Params SmallParams(uint64_t seed) {
  Params p;
  p.seed = seed;
  p.files = 4;
  p.ops = 5000;
  p.max_size = 64 * 1024;
  p.max_len = 16 * 1024;
  p.stale_fds = true;
  return p;
}

TEST(RngTest, DeterministicAndInRange) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = a.Below(1000);
    EXPECT_EQ(x, b.Below(1000));
    EXPECT_LT(x, 1000u);
    differs = differs || x != c.Below(1000);
    uint64_t r = a.Range(5, 9);
    b.Range(5, 9);
    EXPECT_GE(r, 5u);
    EXPECT_LE(r, 9u);
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(a.Below(0), 0u);
}

TEST(FillDataTest, NeverZeroAndSeedDependent) {
  std::vector<uint8_t> a(100000), b(100000);
  FillData(7, a.data(), a.size());
  FillData(8, b.data(), b.size());
  for (uint8_t x : a) ASSERT_NE(x, 0);
  EXPECT_NE(a, b);
}

TEST(DigestTest, SensitiveToContentAndSize) {
  std::vector<uint8_t> a(1000, 1);
  const uint64_t d = Digest(a.data(), a.size());
  a[999] = 2;
  EXPECT_NE(d, Digest(a.data(), a.size()));
  std::vector<uint8_t> z1(10, 0), z2(11, 0);
  EXPECT_NE(Digest(z1.data(), z1.size()), Digest(z2.data(), z2.size()));
}

TEST(FeaturesTest, RoundTrip) {
  Features f;
  f.zero_range = false;
  f.mmap = false;
  Features g;
  ASSERT_TRUE(Features::Parse(f.ToString(), &g));
  EXPECT_EQ(g.ToString(), f.ToString());
  EXPECT_FALSE(Features::Parse("falloc=1", &g));
}

TEST(FileModelTest, ResizeWriteZero) {
  FileModel f;
  f.Resize(10, 1);
  const uint8_t buf[3] = {7, 8, 9};
  f.Write(20, buf, 3, 2);  // past EOF: leaves a hole
  ASSERT_EQ(f.size(), 23u);
  EXPECT_EQ(f.data[15], 0);
  EXPECT_EQ(f.data[21], 8);
  EXPECT_EQ(f.writer[21], 2u);
  f.Zero(21, 100, 3);  // clipped at EOF, does not extend
  EXPECT_EQ(f.size(), 23u);
  EXPECT_EQ(f.data[20], 7);
  EXPECT_EQ(f.data[22], 0);
  f.Resize(21, 4);
  f.Resize(30, 5);  // truncate down then up: the regrown tail is zero
  EXPECT_EQ(f.data[20], 7);
  EXPECT_EQ(f.data[21], 0);
  EXPECT_EQ(f.writer[25], 5u);
}

TEST(JobsTest, FilesAndOpsPartition) {
  Params p = SmallParams(1);
  p.files = 10;
  p.jobs = 3;
  p.ops = 100;
  std::set<uint32_t> all;
  uint64_t ops = 0;
  for (uint32_t j = 0; j < p.jobs; ++j) {
    for (uint32_t f : JobFiles(p, j)) EXPECT_TRUE(all.insert(f).second);
    ops += JobOps(p, j);
  }
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(ops, 100u);
}

TEST(InitialContentTest, DeterministicWithHolesAndDecoys) {
  std::vector<uint8_t> a, b, decoy;
  std::vector<std::pair<uint64_t, uint64_t>> ha, hb;
  bool saw_hole = false;
  for (uint32_t i = 0; i < 64; ++i) {
    InitialContent(9, i, 65536, &a, &ha);
    InitialContent(9, i, 65536, &b, &hb);
    ASSERT_EQ(a, b);
    ASSERT_LE(a.size(), 65536u);
    for (const auto& [lo, hi] : ha) {
      saw_hole = true;
      for (uint64_t k = lo; k < hi; ++k) ASSERT_EQ(a[k], 0);
    }
    DecoyContent(9, i, 1, 65536, &decoy);
    if (!a.empty()) {
      EXPECT_NE(a, decoy);
    }
    EXPECT_LT(FileLayer(9, i, 3), 3u);
  }
  EXPECT_TRUE(saw_hole);
}

TEST(SimulationTest, ReplayIsDeterministic) {
  Simulation a(SmallParams(5), 0), b(SmallParams(5), 0), c(SmallParams(6), 0);
  a.RunToEnd();
  b.RunToEnd();
  c.RunToEnd();
  bool differs = false;
  for (size_t i = 0; i < a.files().size(); ++i) {
    EXPECT_EQ(a.files()[i].data, b.files()[i].data);
    differs = differs || a.files()[i].data != c.files()[i].data;
  }
  EXPECT_TRUE(differs);
}

// Every generated op must be something the executor can perform as modeled.
TEST(SimulationTest, OpsRespectBoundsAndPhases) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Params p = SmallParams(seed);
    Simulation s(p, 0);
    std::set<OpType> seen;
    while (s.ops_done() < s.total_ops()) {
      Op op = s.Generate();
      seen.insert(op.type);
      const FileModel& f = s.files()[op.file];
      const bool writable = op.n >= f.writable_from;
      OpenMode mode = op.reopen_first ? op.reopen_to : f.mode;
      switch (op.type) {
        case OpType::kWrite:
        case OpType::kMapWrite:
        case OpType::kFallocate:
          ASSERT_TRUE(writable);
          ASSERT_NE(mode, OpenMode::kReadOnly);
          ASSERT_LE(op.off + op.len, p.max_size);
          ASSERT_GE(op.len, 1u);
          break;
        case OpType::kTruncate:
          ASSERT_TRUE(writable);
          ASSERT_LE(op.off, p.max_size);
          break;
        case OpType::kCopyRange:
          ASSERT_TRUE(writable);
          ASSERT_EQ(mode, OpenMode::kReadWrite);  // copy_file_range refuses O_APPEND
          ASSERT_LE(op.off + op.len, p.max_size);
          if (op.file == op.file2) {
            ASSERT_TRUE(op.off >= op.off2 + op.len || op.off2 >= op.off + op.len);
          }
          break;
        case OpType::kMapRead:
          ASSERT_LT(op.off, f.size());
          ASSERT_LE(op.off + op.len, f.size());
          break;
        case OpType::kReopen:
          if (!writable) {
            ASSERT_EQ(op.open_mode, OpenMode::kReadOnly);
          }
          break;
        default:
          break;
      }
      if (!writable) {
        ASSERT_FALSE(op.reopen_first);
      }
      s.Apply(op);
      for (const FileModel& m : s.files()) ASSERT_LE(m.size(), p.max_size);
    }
    if (seed == 1) {
      EXPECT_GE(seen.size(), 10u);
    }
  }
}

TEST(SimulationTest, DisabledFeaturesAreNeverUsed) {
  Params p = SmallParams(3);
  p.features.mmap = false;
  p.features.copy_range = false;
  p.features.zero_range = false;
  p.stale_fds = false;
  Simulation s(p, 0);
  while (s.ops_done() < s.total_ops()) {
    Op op = s.Generate();
    ASSERT_NE(op.type, OpType::kMapRead);
    ASSERT_NE(op.type, OpType::kMapWrite);
    ASSERT_NE(op.type, OpType::kCopyRange);
    ASSERT_NE(op.type, OpType::kStaleRead);
    if (op.type == OpType::kFallocate) {
      ASSERT_EQ(op.falloc_mode & FALLOC_FL_ZERO_RANGE, 0);
    }
    s.Apply(op);
  }
}

TEST(SimulationTest, FallocateSemantics) {
  Params p = SmallParams(11);
  p.files = 1;
  Simulation s(p, 0);
  FileModel& f = s.files()[0];
  f.data.assign(100, 9);
  f.writer.assign(100, 0);
  f.mode = OpenMode::kReadWrite;
  Op op;
  op.file = 0;
  op.type = OpType::kFallocate;

  op.n = 1;
  op.falloc_mode = FALLOC_FL_KEEP_SIZE;
  op.off = 90;
  op.len = 50;
  s.Apply(op);
  EXPECT_EQ(f.size(), 100u);  // KEEP_SIZE never changes the size

  op.n = 2;
  op.falloc_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  op.off = 10;
  op.len = 5;
  s.Apply(op);
  EXPECT_EQ(f.data[9], 9);
  EXPECT_EQ(f.data[10], 0);
  EXPECT_EQ(f.data[14], 0);
  EXPECT_EQ(f.data[15], 9);

  op.n = 3;
  op.falloc_mode = FALLOC_FL_ZERO_RANGE;
  op.off = 95;
  op.len = 20;
  s.Apply(op);
  EXPECT_EQ(f.size(), 115u);
  EXPECT_EQ(f.data[94], 9);
  EXPECT_EQ(f.data[95], 0);

  op.n = 4;
  op.falloc_mode = 0;
  op.off = 0;
  op.len = 200;
  s.Apply(op);
  EXPECT_EQ(f.size(), 200u);
  EXPECT_EQ(f.data[0], 9);  // existing data is kept
}

}  // namespace
}  // namespace fsx
