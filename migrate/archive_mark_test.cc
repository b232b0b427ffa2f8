#include "migrate/archive_mark.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "migrate/archiver.h"
#include "migrate/migrate_testutil.h"
#include "migrate/migration_state.h"
#include "migrate/residency.h"

namespace overtier {
namespace {

class ArchiveMarkTest : public test::MigrateFixture {};

std::vector<ByteRange> Ranges(const MigrationRecord& r, uint64_t size) {
  ResidencyMap m;
  EXPECT_TRUE(ResidencyMap::FromRecord(r, size, &m).ok());
  return m.ranges();
}

TEST_F(ArchiveMarkTest, AReleaseMarksTheFileBeforeItPunches) {
  const std::string data(1 << 20, 'x');
  int fd = MakeFile("f", data);
  Archiver a(store_.get());
  MigrationRecord rec;
  ASSERT_TRUE(a.Archive(fd, "f", &rec).ok());
  EXPECT_FALSE(ReadArchiveMark(fd)) << "an archive alone punches nothing";
  ASSERT_TRUE(a.Release(fd, "f", 4096, &rec).ok());
  std::optional<Bfid> mark = ReadArchiveMark(fd);
  ASSERT_TRUE(mark);
  EXPECT_EQ(*mark, rec.bfid);
}

TEST_F(ArchiveMarkTest, OnlyOurValueIsAMark) {
  int fd = MakeFile("f", "abc");
  EXPECT_FALSE(ReadArchiveMark(fd));
  ASSERT_EQ(fsetxattr(fd, kArchiveMarkXattr, "short", 5, 0), 0);
  EXPECT_FALSE(ReadArchiveMark(fd));
  std::string v(17, '\x07');  // another size: another format
  ASSERT_EQ(fsetxattr(fd, kArchiveMarkXattr, v.data(), v.size(), 0), 0);
  EXPECT_FALSE(ReadArchiveMark(fd));
  ASSERT_EQ(fsetxattr(fd, kArchiveMarkXattr, std::string(16, '\0').data(), 16, 0), 0);
  EXPECT_FALSE(ReadArchiveMark(fd)) << "a zero bfid names no archive";
  Bfid b;
  b.bytes[3] = 9;
  ASSERT_TRUE(SetArchiveMark(fd, b, "f").ok());
  ASSERT_TRUE(ReadArchiveMark(fd));
  EXPECT_EQ(*ReadArchiveMark(fd), b);
  ClearArchiveMark(fd);
  EXPECT_FALSE(ReadArchiveMark(fd));
}

// The daemon holds some files by O_PATH only (a truncate by path, an
// O_TRUNC open), and fgetxattr and friends refuse those: the mark must be
// read, set and cleared through them all the same (a mark left behind by a
// truncate made the next open take the file's own holes for the archive's).
TEST_F(ArchiveMarkTest, AnOPathDescriptorReadsSetsAndClearsTheMark) {
  MakeFile("p", "abc");
  int fd = open((upper_ + "/p").c_str(), O_PATH | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  fds_.push_back(fd);
  char c;
  ASSERT_LT(fgetxattr(fd, kArchiveMarkXattr, &c, 1), 0);
  ASSERT_EQ(errno, EBADF) << "O_PATH descriptors are refused by f*xattr";
  Bfid b;
  b.bytes[5] = 3;
  ASSERT_TRUE(SetArchiveMark(fd, b, "p").ok());
  ASSERT_TRUE(ReadArchiveMark(fd));
  EXPECT_EQ(*ReadArchiveMark(fd), b);
  ClearArchiveMark(fd);
  EXPECT_FALSE(ReadArchiveMark(fd));
  EXPECT_LT(getxattr((upper_ + "/p").c_str(), kArchiveMarkXattr, nullptr, 0), 0);
}

TEST_F(ArchiveMarkTest, DataRangesAreWhatIsNotAHole) {
  const uint64_t kMiB = 1 << 20;
  int fd = MakeFile("s", "");
  ASSERT_EQ(ftruncate(fd, 8 * kMiB), 0);
  ASSERT_EQ(pwrite(fd, "a", 1, 0), 1);
  ASSERT_EQ(pwrite(fd, std::string(kMiB, 'b').data(), kMiB, 3 * kMiB), static_cast<ssize_t>(kMiB));
  std::vector<ByteRange> d;
  ASSERT_TRUE(DataRanges(fd, 8 * kMiB, &d).ok());
  // Block granularity: the 1-byte write is one block of data.
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].offset, 0u);
  EXPECT_GE(d[0].length, 1u);
  EXPECT_LE(d[0].length, 64u << 10);
  EXPECT_EQ(d[1], (ByteRange{3 * kMiB, kMiB}));
  // Clipped to the size asked about.
  ASSERT_TRUE(DataRanges(fd, 3 * kMiB + 10, &d).ok());
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1], (ByteRange{3 * kMiB, 10}));
  // An all-hole file has none.
  int h = MakeFile("h", "");
  ASSERT_EQ(ftruncate(h, kMiB), 0);
  ASSERT_TRUE(DataRanges(h, kMiB, &d).ok());
  EXPECT_TRUE(d.empty());
}

TEST_F(ArchiveMarkTest, ZerosAtTheEdgesOfADataRangeAreNotTakenForTheUsers) {
  std::string data(3 * 4096, '\0');
  data.replace(4096 + 7, 100, std::string(100, 'u'));  // block 1: zeros, u, zeros
  data.replace(2 * 4096, 4096, std::string(4096, 'w'));
  data[2 * 4096 + 50] = '\0';  // a zero inside stays
  int fd = MakeFile("z", data);
  std::vector<ByteRange> r = {{0, 4096}, {4096, 2 * 4096}};
  ASSERT_TRUE(TrimZeroEdges(fd, 4096, &r).ok());
  // The all-zero block is gone, the second range starts at the first 'u'.
  EXPECT_EQ(r, (std::vector<ByteRange>{{4096 + 7, 4096 - 7 + 4096}}));
  // At most one block each side: a range that ends in 2 blocks of zeros
  // keeps the first of them.
  int g = MakeFile("g", std::string(4096, 'a') + std::string(2 * 4096, '\0'));
  r = {{0, 3 * 4096}};
  ASSERT_TRUE(TrimZeroEdges(g, 4096, &r).ok());
  EXPECT_EQ(r, (std::vector<ByteRange>{{0, 2 * 4096}}));
}

TEST_F(ArchiveMarkTest, TheRebuiltRowTakesTheHolesFromTheArchive) {
  Bfid b;
  b.bytes[0] = 1;
  // Data at [0, 10) and [50, 60); the archive held 80 bytes of the 100.
  MigrationRecord r = ReconciledRecord(b, 80, {{0, 10}, {50, 10}}, 100, 7, 11, 22);
  EXPECT_EQ(StateOf(r), MigState::kDirty);
  EXPECT_EQ(r.bfid, b);
  EXPECT_EQ(r.archive_size, 80u);
  EXPECT_EQ(r.generation, 7u);
  EXPECT_EQ(r.atime_ns, 11);
  EXPECT_EQ(r.mtime_ns, 22);
  EXPECT_EQ(Ranges(r, 100), (std::vector<ByteRange>{{0, 10}, {50, 10}, {80, 20}}));
  // The files row gone: every hole is the archive's, which cannot give it.
  r = ReconciledRecord(b, std::nullopt, {{0, 10}}, 100, 7, 11, 22);
  EXPECT_EQ(r.archive_size, 100u);
  EXPECT_EQ(Ranges(r, 100), (std::vector<ByteRange>{{0, 10}}));
}

}  // namespace
}  // namespace overtier
