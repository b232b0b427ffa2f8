#include "store/catalog_records.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/record_samples.h"

namespace overtier {
namespace {

::testing::AssertionResult HasSubstr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

using samples::Filled;

// One record of each kind with every field set to something distinctive
// (store/record_samples.h).
CatalogMeta SampleMeta() { return samples::Meta(); }
ImageRecord SampleImage() { return samples::Image(); }
NodeRecord SampleNode() { return samples::Node(); }
DirentRecord SampleDirent() { return samples::Dirent(); }
FileRecord SampleFile() { return samples::File(); }
ChunkRecord SampleChunk() { return samples::Chunk(); }
VolumeRecord SampleVolume() { return samples::Volume(); }
MigrationRecord SampleMigrationBarrier() { return samples::MigrationBarrier(); }
MigrationRecord SampleMigrationRanges() { return samples::MigrationRanges(); }
JobRecord SampleJob() { return samples::Job(); }

// ---------------------------------------------------------------------------
// Properties every record type must have: a typed test over all of them.
// ---------------------------------------------------------------------------

template <typename R>
struct Samples;
template <>
struct Samples<CatalogMeta> {
  static std::vector<CatalogMeta> Get() { return {SampleMeta()}; }
};
template <>
struct Samples<ImageRecord> {
  static std::vector<ImageRecord> Get() { return {SampleImage(), ImageRecord{1, 1, 0, 0}}; }
};
template <>
struct Samples<NodeRecord> {
  static std::vector<NodeRecord> Get() {
    NodeRecord link;
    link.mode = S_IFLNK | 0777;
    link.symlink_target = "../target";
    NodeRecord dev;
    dev.mode = S_IFCHR;  // an overlay whiteout: char device 0/0
    NodeRecord blk;
    blk.mode = S_IFBLK | 0600;
    blk.rdev = 0x0801;
    return {SampleNode(), link, dev, blk};
  }
};
template <>
struct Samples<DirentRecord> {
  static std::vector<DirentRecord> Get() { return {SampleDirent(), DirentRecord{1, DT_REG}}; }
};
template <>
struct Samples<FileRecord> {
  static std::vector<FileRecord> Get() { return {SampleFile(), FileRecord{}}; }
};
template <>
struct Samples<ChunkRecord> {
  static std::vector<ChunkRecord> Get() { return {SampleChunk(), ChunkRecord{1, {{1, 0}}}}; }
};
template <>
struct Samples<VolumeRecord> {
  static std::vector<VolumeRecord> Get() {
    return {SampleVolume(), VolumeRecord{"s", VolumeState::kOpen, 0, 0},
            VolumeRecord{"remote1", VolumeState::kRemote, 8192, 4096, 42}};
  }
};
template <>
struct Samples<MigrationRecord> {
  static std::vector<MigrationRecord> Get() {
    return {SampleMigrationBarrier(), SampleMigrationRanges(), MigrationRecord{}};
  }
};
template <>
struct Samples<JobRecord> {
  static std::vector<JobRecord> Get() { return {SampleJob(), JobRecord{}}; }
};

template <typename R>
class RecordTest : public ::testing::Test {};
using RecordTypes = ::testing::Types<CatalogMeta, ImageRecord, NodeRecord, DirentRecord, FileRecord,
                                     ChunkRecord, VolumeRecord, MigrationRecord, JobRecord>;
TYPED_TEST_SUITE(RecordTest, RecordTypes);

TYPED_TEST(RecordTest, RoundTrip) {
  for (const TypeParam& r : Samples<TypeParam>::Get()) {
    ASSERT_TRUE(CheckRecord(r).ok()) << CheckRecord(r).ToString();
    std::string enc = EncodeRecord(r);
    TypeParam got;
    Status s = DecodeRecord(enc, &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(got == r);
  }
}

TYPED_TEST(RecordTest, EveryTruncationIsCorruption) {
  for (const TypeParam& r : Samples<TypeParam>::Get()) {
    std::string enc = EncodeRecord(r);
    for (size_t len = 0; len < enc.size(); len++) {
      // An exact-size copy, so that ASan sees any read past the end.
      std::vector<char> buf(enc.begin(), enc.begin() + len);
      TypeParam got;
      Status s = DecodeRecord(std::string_view(buf.data(), buf.size()), &got);
      EXPECT_FALSE(s.ok()) << "decoded from " << len << " of " << enc.size() << " bytes";
      EXPECT_EQ(s.err(), EIO);
    }
  }
}

TYPED_TEST(RecordTest, TrailingBytesAreCorruption) {
  for (const TypeParam& r : Samples<TypeParam>::Get()) {
    TypeParam got;
    Status s = DecodeRecord(EncodeRecord(r) + '\0', &got);
    EXPECT_EQ(s.err(), EIO);
    EXPECT_TRUE(HasSubstr(s.message(), "1 trailing bytes"));
  }
}

// Random bytes, and valid encodings with random damage: never a crash, and
// whatever decodes passes the invariants and survives a round trip.
TYPED_TEST(RecordTest, GarbageNeverCrashes) {
  std::mt19937 rng(1234);
  std::vector<std::string> seeds;
  for (const TypeParam& r : Samples<TypeParam>::Get()) seeds.push_back(EncodeRecord(r));
  int decoded = 0;
  for (int iter = 0; iter < 30000; iter++) {
    std::string in;
    if (iter % 2 == 0) {
      in.resize(rng() % 200);
      for (char& c : in) c = static_cast<char>(rng());
      if (!in.empty() && rng() % 2) in[0] = static_cast<char>(kRecordVersion);
      if constexpr (std::is_same_v<TypeParam, CatalogMeta>) {
        if (in.size() >= 4 && rng() % 2) in.replace(0, 4, std::string("\x01\0\0\0", 4));
      }
    } else {
      in = seeds[rng() % seeds.size()];
      int flips = 1 + rng() % 3;
      for (int f = 0; f < flips && !in.empty(); f++) {
        in[rng() % in.size()] ^= static_cast<char>(1 << (rng() % 8));
      }
      if (rng() % 4 == 0) in.resize(rng() % (in.size() + 1));
    }
    std::vector<char> buf(in.begin(), in.end());
    TypeParam got;
    Status s = DecodeRecord(std::string_view(buf.data(), buf.size()), &got);
    if (!s.ok()) {
      EXPECT_TRUE(s.err() == EIO || s.err() == ENOTSUP) << s.ToString();
      EXPECT_FALSE(s.message().empty());
      continue;
    }
    decoded++;
    ASSERT_TRUE(CheckRecord(got).ok()) << CheckRecord(got).ToString();
    TypeParam again;
    ASSERT_TRUE(DecodeRecord(EncodeRecord(got), &again).ok());
    EXPECT_TRUE(again == got);
  }
  // Bit flips in data fields (sizes, times) still decode: the mutations did
  // exercise the success path too.
  EXPECT_GT(decoded, 0);
}

// ---------------------------------------------------------------------------
// Exact layouts (docs/FORMAT.md must agree with these)
// ---------------------------------------------------------------------------

std::string Hex(const std::string& s) { return HexString(s); }

TEST(Layout, Dirent) {
  EXPECT_EQ(Hex(EncodeRecord(DirentRecord{0x0102, DT_LNK})),
            "01"
            "0201000000000000"
            "0a");
}

TEST(Layout, Image) {
  EXPECT_EQ(Hex(EncodeRecord(ImageRecord{1, 2, 0, -1})),
            "01"
            "0100000000000000"
            "0200000000000000"
            "0000000000000000"
            "ffffffffffffffff");
}

TEST(Layout, Meta) {
  EXPECT_EQ(Hex(EncodeRecord(SampleMeta())),
            "01000000"
            "404142434445464748494a4b4c4d4e4f");
}

TEST(Layout, Volume) {
  EXPECT_EQ(Hex(EncodeRecord(VolumeRecord{"ab", VolumeState::kCompacting, 16, 8})),
            "01"
            "03"
            "1000000000000000"
            "0800000000000000"
            "02"
            "6162");
}

// A remote volume carries its owner's vv id after the set name.
TEST(Layout, RemoteVolume) {
  EXPECT_EQ(Hex(EncodeRecord(VolumeRecord{"ab", VolumeState::kRemote, 16, 8, 0x2a})),
            "01"
            "05"
            "1000000000000000"
            "0800000000000000"
            "02"
            "6162"
            "2a00000000000000");
}

TEST(Check, OriginVvIdOnlyOnRemoteVolumes) {
  VolumeRecord v = SampleVolume();
  v.origin_vv_id = 7;
  EXPECT_TRUE(HasSubstr(CheckRecord(v).message(), "origin vv id on a volume of this store"));
  v.state = VolumeState::kRemote;
  EXPECT_TRUE(CheckRecord(v).ok());
  v.origin_vv_id = 0;
  EXPECT_TRUE(HasSubstr(CheckRecord(v).message(), "without its origin vv id"));
  // A remote volume cut before its origin id is refused, not read as 0.
  std::string enc = EncodeRecord(VolumeRecord{"ab", VolumeState::kRemote, 16, 8, 9});
  enc.resize(enc.size() - 8);
  VolumeRecord out;
  EXPECT_FALSE(DecodeRecord(enc, &out).ok());
}

// The DMFS record in its common form stays near the paper's ~80 bytes.
TEST(Layout, MigrationBarrierIs78Bytes) {
  std::string enc = EncodeRecord(SampleMigrationBarrier());
  EXPECT_EQ(enc.size(), 78u);
  EXPECT_EQ(Hex(enc),
            "01"                                // version
            "03000000"                          // flags: archived | released
            "efbeadde00000000"                  // generation
            "0000500000000000"                  // archive size 5 MiB
            "202122232425262728292a2b2c2d2e2f"  // bfid
            "0b00000000000000"                  // atime 11
            "f4ffffffffffffff"                  // mtime -12
            "0d00000000000000"                  // archive time 13
            "0e00000000000000"                  // restore time 14
            "00"                                // residency: barrier
            "0010000000000000");                // barrier 4096
}

TEST(Layout, MigrationRanges) {
  MigrationRecord m;
  m.residency = ResidencyKind::kRanges;
  m.resident_ranges = {{1, 2}};
  std::string enc = EncodeRecord(m);
  EXPECT_EQ(Hex(enc.substr(69)),
            "01"
            "01"
            "0100000000000000"
            "0200000000000000");
}

TEST(Layout, NodeSymlink) {
  NodeRecord n;
  n.mode = S_IFLNK | 0777;
  n.nlink = 1;
  n.symlink_target = "t";
  n.xattrs = {{"k", "v"}};
  EXPECT_EQ(Hex(EncodeRecord(n)),
            "01"                // version
            "00"                // flags: no content
            "ffa10000"          // mode 0120777
            "00000000"          // uid
            "00000000"          // gid
            "01000000"          // nlink
            "0000000000000000"  // size
            "0000000000000000"  // rdev
            "0000000000000000"  // atime
            "0000000000000000"  // mtime
            "0000000000000000"  // ctime
            "0174"              // symlink target "t"
            "01"                // one xattr
            "016b"              // "k"
            "0176");            // "v"
}

TEST(Layout, File) {
  FileRecord f;
  f.size = 4;
  FileCopy c;
  c.extents = {{0, 5, 4096, 4, Filled<Digest128>(0xa0)}};
  f.copies = {c};
  EXPECT_EQ(Hex(EncodeRecord(f)),
            "01"
            "0400000000000000"  // size
            "01"                // one copy
            "01"                // one extent
            "0000000000000000"  // file offset
            "0500000000000000"  // vv id
            "0010000000000000"  // vv offset
            "0400000000000000"  // length
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
}

TEST(Layout, Chunk) {
  EXPECT_EQ(Hex(EncodeRecord(ChunkRecord{4, {{5, 4096}, {6, 8192}}})),
            "01"
            "0400000000000000"  // length
            "02"                // two copies
            "0500000000000000"  // vv id
            "0010000000000000"  // vv offset
            "0600000000000000"
            "0020000000000000");
}

TEST(Layout, Job) {
  JobRecord j;
  j.kind = JobKind::kGc;
  j.state = JobState::kFailed;
  j.target = "t";
  EXPECT_EQ(Hex(EncodeRecord(j)),
            "01"
            "04"
            "03"
            "00000000"
            "0000000000000000"
            "0000000000000000"
            "0000000000000000"
            "0000000000000000"
            "0174"
            "00"
            "00");
}

// ---------------------------------------------------------------------------
// Versions and specific damage
// ---------------------------------------------------------------------------

TEST(Versions, UnknownRecordVersionNamed) {
  std::string enc = EncodeRecord(SampleDirent());
  enc[0] = 9;
  DirentRecord d;
  Status s = DecodeRecord(enc, &d);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "record version 9 unknown (this overtier reads 1)"));
  enc[0] = 0;
  EXPECT_EQ(DecodeRecord(enc, &d).err(), EIO);
}

TEST(Versions, NewerCatalogFormatIsNotSupported) {
  std::string enc = EncodeRecord(SampleMeta());
  enc[0] = 7;
  CatalogMeta m;
  Status s = DecodeRecord(enc, &m);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_EQ(m.format_version, 7u);
  EXPECT_EQ(s.message(), "format version 7 is newer than this overtier (1)");
  enc[0] = 0;
  EXPECT_EQ(DecodeRecord(enc, &m).err(), EIO);
  // A newer version is refused whatever follows it (it may be longer).
  EXPECT_EQ(DecodeRecord(std::string("\x02\0\0\0", 4) + std::string(100, 'x'), &m).err(), ENOTSUP);
}

TEST(Damage, HugeCountsRejectedBeforeAllocating) {
  // Claims 2^32-1 extents in 10 bytes: must fail fast, not allocate 200 GB.
  std::string f;
  PutU8(&f, kRecordVersion);
  PutFixed64(&f, 100);
  PutVarint32(&f, 1);
  PutVarint32(&f, UINT32_MAX);
  FileRecord fr;
  Status s = DecodeRecord(f, &fr);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "extent count"));

  std::string c;
  PutU8(&c, kRecordVersion);
  PutFixed64(&c, 100);
  PutVarint32(&c, UINT32_MAX);
  EXPECT_TRUE(HasSubstr(DecodeRecord(c, &fr).message(), "copy count"));

  ChunkRecord cr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(c, &cr).message(), "chunk copy count"));

  std::string m = EncodeRecord(SampleMigrationRanges());
  m.resize(69);  // up to the residency kind
  m.push_back(1);
  PutVarint32(&m, UINT32_MAX);
  MigrationRecord mr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(m, &mr).message(), "range count"));

  NodeRecord n;
  n.mode = S_IFDIR | 0755;
  std::string ne = EncodeRecord(n);
  ne.back() = '\xff';  // the xattr count (0) becomes a truncated varint
  ne += std::string("\xff\xff\xff\x0f", 4);
  NodeRecord nr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(ne, &nr).message(), "xattr count"));
}

TEST(Damage, UnknownEnumsAndFlags) {
  std::string v = EncodeRecord(SampleVolume());
  v[1] = 9;
  VolumeRecord vr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(v, &vr).message(), "unknown volume state 9"));

  std::string j = EncodeRecord(SampleJob());
  j[1] = 0;
  JobRecord jr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(j, &jr).message(), "unknown job kind 0"));
  j = EncodeRecord(SampleJob());
  j[2] = 4;
  EXPECT_TRUE(HasSubstr(DecodeRecord(j, &jr).message(), "unknown job state 4"));

  std::string m = EncodeRecord(SampleMigrationBarrier());
  m[1] = static_cast<char>(0x80);  // flag bit 7
  MigrationRecord mr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(m, &mr).message(), "unknown migration flags 128"));
  m = EncodeRecord(SampleMigrationBarrier());
  m[69] = 2;  // residency kind
  EXPECT_TRUE(HasSubstr(DecodeRecord(m, &mr).message(), "unknown residency kind 2"));

  std::string n = EncodeRecord(SampleNode());
  n[1] = 3;
  NodeRecord nr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(n, &nr).message(), "unknown node flags 3"));

  std::string d = EncodeRecord(SampleDirent());
  d[9] = 0;  // DT_UNKNOWN
  DirentRecord dr;
  EXPECT_TRUE(HasSubstr(DecodeRecord(d, &dr).message(), "unknown entry type 0"));
}

TEST(Damage, DuplicateXattr) {
  NodeRecord n;
  n.mode = S_IFREG;
  n.xattrs = {{"a", "1"}, {"b", "2"}};
  std::string enc = EncodeRecord(n);
  // The names are one byte each: turn "b" into "a".
  size_t pos = enc.rfind(
      "\x01"
      "b");
  ASSERT_NE(pos, std::string::npos);
  enc[pos + 1] = 'a';
  NodeRecord got;
  EXPECT_TRUE(HasSubstr(DecodeRecord(enc, &got).message(), "duplicate xattr 'a'"));
}

// ---------------------------------------------------------------------------
// Invariants (the same checks guard writes and reads)
// ---------------------------------------------------------------------------

TEST(Check, Image) {
  EXPECT_TRUE(CheckRecord(SampleImage()).ok());
  EXPECT_FALSE(CheckRecord(ImageRecord{0, 1, 0, 0}).ok());
  EXPECT_FALSE(CheckRecord(ImageRecord{UINT64_MAX, 1, 0, 0}).ok());
  EXPECT_FALSE(CheckRecord(ImageRecord{1, 0, 0, 0}).ok());
  EXPECT_FALSE(CheckRecord(ImageRecord{3, 1, 3, 0}).ok());
}

TEST(Check, Node) {
  NodeRecord n = SampleNode();
  n.mode = 0644;  // no type bits
  EXPECT_FALSE(CheckRecord(n).ok());
  n = SampleNode();
  n.symlink_target = "x";
  EXPECT_FALSE(CheckRecord(n).ok());
  n.mode = S_IFLNK | 0777;
  n.has_content = false;
  n.content = Bfid();
  EXPECT_TRUE(CheckRecord(n).ok());
  n.symlink_target.clear();
  EXPECT_FALSE(CheckRecord(n).ok());
  n = SampleNode();
  n.mode = S_IFDIR | 0755;
  EXPECT_TRUE(HasSubstr(CheckRecord(n).message(), "content on a non-regular file"));
  n = SampleNode();
  n.has_content = false;
  EXPECT_FALSE(CheckRecord(n).ok());  // a bfid without the flag
  n = SampleNode();
  n.xattrs[""] = "v";
  EXPECT_FALSE(CheckRecord(n).ok());
  n = SampleNode();
  n.xattrs["user.big"] = std::string(65537, 'v');
  EXPECT_FALSE(CheckRecord(n).ok());
}

TEST(Check, FileExtents) {
  FileRecord f = SampleFile();
  EXPECT_TRUE(CheckRecord(f).ok());
  f.copies[0].extents[1].file_offset = (1 << 20) - 1;  // overlaps the first
  EXPECT_TRUE(HasSubstr(CheckRecord(f).message(), "copy 0 extent 1 overlaps"));
  f = SampleFile();
  std::swap(f.copies[0].extents[0], f.copies[0].extents[1]);  // unsorted
  EXPECT_FALSE(CheckRecord(f).ok());
  f = SampleFile();
  f.copies[1].extents[0].length = 0;
  EXPECT_TRUE(HasSubstr(CheckRecord(f).message(), "copy 1 extent 0 is empty"));
  f = SampleFile();
  f.size -= 1;  // the last extents now end past the size
  EXPECT_TRUE(HasSubstr(CheckRecord(f).message(), "past"));
  f = SampleFile();
  f.copies[0].extents[0].vv_id = 0;
  EXPECT_FALSE(CheckRecord(f).ok());
  f = SampleFile();
  f.size = UINT64_MAX;
  f.copies[0].extents[1].file_offset = UINT64_MAX - 1;
  f.copies[0].extents[1].length = 2;
  EXPECT_TRUE(HasSubstr(CheckRecord(f).message(), "wraps"));
}

TEST(Check, Chunk) {
  ChunkRecord c = SampleChunk();
  EXPECT_TRUE(CheckRecord(c).ok());
  c.length = 0;
  EXPECT_TRUE(HasSubstr(CheckRecord(c).message(), "length 0"));
  c = SampleChunk();
  c.copies.clear();
  EXPECT_TRUE(HasSubstr(CheckRecord(c).message(), "without a copy"));
  c = SampleChunk();
  c.copies[1].vv_id = 0;
  EXPECT_TRUE(HasSubstr(CheckRecord(c).message(), "chunk copy 1 in vv 0"));
  c = SampleChunk();
  c.copies[1].vv_id = c.copies[0].vv_id;
  EXPECT_TRUE(HasSubstr(CheckRecord(c).message(), "chunk copy 1 is in vv 3, like copy 0"));
  c = SampleChunk();
  c.copies[0].vv_offset = UINT64_MAX - c.length + 1;
  EXPECT_TRUE(HasSubstr(CheckRecord(c).message(), "wraps"));

  // The same invariants hold on decoding, as Corruption.
  ChunkRecord dup = SampleChunk();
  dup.copies[1].vv_id = dup.copies[0].vv_id;
  ChunkRecord got;
  Status s = DecodeRecord(EncodeRecord(dup), &got);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "like copy 0"));
  ChunkRecord none{4, {}};
  EXPECT_EQ(DecodeRecord(EncodeRecord(none), &got).err(), EIO);
}

TEST(Check, MigrationResidency) {
  MigrationRecord m = SampleMigrationRanges();
  EXPECT_TRUE(CheckRecord(m).ok());
  m.resident_ranges = {{0, 10}, {5, 10}};
  EXPECT_FALSE(CheckRecord(m).ok());
  m.resident_ranges = {{0, 10}, {10, 10}};  // adjacent is fine
  EXPECT_TRUE(CheckRecord(m).ok());
  m.resident_ranges = {{0, 0}};
  EXPECT_FALSE(CheckRecord(m).ok());
  m = SampleMigrationRanges();
  m.barrier = 1;
  EXPECT_FALSE(CheckRecord(m).ok());
  m = SampleMigrationBarrier();
  m.resident_ranges = {{0, 1}};
  EXPECT_FALSE(CheckRecord(m).ok());
  m = SampleMigrationBarrier();
  m.flags |= 1u << 31;
  EXPECT_FALSE(CheckRecord(m).ok());
}

TEST(Check, VolumeSetNames) {
  VolumeRecord v = SampleVolume();
  for (const char* bad : {"", ".", "..", ".hidden", "a/b", "sp ace", "\xc3\xa9"}) {
    v.set = bad;
    EXPECT_FALSE(CheckRecord(v).ok()) << bad;
  }
  v.set = std::string(65, 's');
  EXPECT_FALSE(CheckRecord(v).ok());
  for (const char* good : {"a", "fast-ssd", "tape_2.b", "A0"}) {
    v.set = good;
    EXPECT_TRUE(CheckRecord(v).ok()) << good;
  }
  v.set = std::string(64, 's');
  EXPECT_TRUE(CheckRecord(v).ok());
}

TEST(Check, KeyParts) {
  EXPECT_TRUE(CheckDirentName("a").ok());
  EXPECT_TRUE(CheckDirentName(std::string(255, 'n')).ok());
  EXPECT_TRUE(CheckDirentName("\xff\x01 odd").ok());
  for (std::string bad : {std::string(), std::string("."), std::string(".."), std::string("a/b"),
                          std::string("a\0b", 3), std::string(256, 'n')}) {
    EXPECT_EQ(CheckDirentName(bad).err(), EINVAL) << bad;
  }
  EXPECT_TRUE(CheckImageName("docker.io/library/debian:12").ok());
  EXPECT_FALSE(CheckImageName("").ok());
  EXPECT_FALSE(CheckImageName(std::string("a\0", 2)).ok());
  EXPECT_TRUE(CheckFileHandle(std::string(128, 'h')).ok());
  EXPECT_FALSE(CheckFileHandle(std::string(129, 'h')).ok());
  EXPECT_FALSE(CheckFileHandle("").ok());
}

TEST(Names, Enums) {
  EXPECT_STREQ(VolumeStateName(VolumeState::kCompacting), "compacting");
  EXPECT_STREQ(VolumeStateName(static_cast<VolumeState>(99)), "unknown");
  EXPECT_STREQ(JobKindName(JobKind::kGc), "gc");
  EXPECT_STREQ(JobStateName(JobState::kFailed), "failed");
}

}  // namespace
}  // namespace overtier
