#include "store/vv_format.h"

#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::MakeId;

uint64_t Le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

TEST(VvPlacement, PayloadsOnBlockBoundariesHeadersJustBefore) {
  EXPECT_EQ(kVvFirstPayload, 4096u);
  EXPECT_EQ(NextHeaderOffset(kVvContainerHeaderSize), 4032u);
  // A 1-byte payload at 4096: the next header fits in the same block.
  EXPECT_EQ(NextPayloadOffset(4097), 8192u);
  EXPECT_EQ(NextHeaderOffset(4097), 8128u);
  // Data ending exactly where a header would start: no gap.
  EXPECT_EQ(NextHeaderOffset(8128), 8128u);
  // One byte later the header no longer fits before 8192.
  EXPECT_EQ(NextHeaderOffset(8129), 12224u);
  EXPECT_EQ(NextPayloadOffset(8192), 12288u);
  EXPECT_EQ(FooterLength(0), 40u);
  EXPECT_EQ(FooterLength(3), 24u + 3 * 48 + 16);
}

TEST(VvNames, HexIdsAndKinds) {
  EXPECT_EQ(VvName(0x2a), "vv-000000000000002a");
  EXPECT_EQ(Id128Hex(MakeId(0)), "000102030405060708090a0b0c0d0e0f");
  EXPECT_STREQ(RecordKindName(RecordKind::kChunk), "chunk");
  EXPECT_FALSE(IsKnownRecordKind(0));
  EXPECT_FALSE(IsKnownRecordKind(4));
}

TEST(VvHash, StoredLowThenHighLittleEndian) {
  std::string data = test::Payload(1000, 7);
  XXH128_hash_t ref = XXH3_128bits(data.data(), data.size());
  Hash128 h = PayloadHash(data);
  EXPECT_EQ(h.lo, ref.low64);
  EXPECT_EQ(h.hi, ref.high64);
  Id128 key = Hash128Key(h);
  EXPECT_EQ(Le64(reinterpret_cast<const char*>(key.data())), ref.low64);
  EXPECT_EQ(Le64(reinterpret_cast<const char*>(key.data()) + 8), ref.high64);
}

ContainerHeader SampleHeader() {
  ContainerHeader h;
  h.store_id = MakeId(0x10);
  h.vv_id = 0x0102030405060708ull;
  h.set_name = "disk-a";
  return h;
}

TEST(VvContainerHeader, LayoutAndRoundTrip) {
  char buf[kVvContainerHeaderSize];
  EncodeContainerHeader(SampleHeader(), buf);
  EXPECT_EQ(std::string(buf, 8), "OVTIERVV");
  EXPECT_EQ(buf[8], 1);  // version, little-endian u32
  EXPECT_EQ(buf[9] | buf[10] | buf[11], 0);
  EXPECT_EQ(static_cast<uint8_t>(buf[12]), kVvContainerHeaderSize);
  EXPECT_EQ(static_cast<uint8_t>(buf[16]), 0x10);  // store id
  EXPECT_EQ(Le64(buf + 32), 0x0102030405060708ull);
  EXPECT_EQ(buf[40], 6);  // set name length
  EXPECT_EQ(std::string(buf + 48, 6), "disk-a");
  EXPECT_EQ(Le64(buf + 120), XXH3_64bits(buf, 120));

  ContainerHeader out;
  ASSERT_TRUE(DecodeContainerHeader(buf, &out).ok());
  EXPECT_EQ(out.version, kVvFormatVersion);
  EXPECT_EQ(out.store_id, MakeId(0x10));
  EXPECT_EQ(out.vv_id, 0x0102030405060708ull);
  EXPECT_EQ(out.set_name, "disk-a");
}

TEST(VvContainerHeader, EveryFlippedBitIsRefused) {
  char good[kVvContainerHeaderSize];
  EncodeContainerHeader(SampleHeader(), good);
  for (size_t i = 0; i < kVvContainerHeaderSize; i++) {
    for (int bit = 0; bit < 8; bit++) {
      char buf[kVvContainerHeaderSize];
      std::memcpy(buf, good, sizeof(buf));
      buf[i] ^= static_cast<char>(1 << bit);
      ContainerHeader out;
      Status s = DecodeContainerHeader(buf, &out);
      ASSERT_FALSE(s.ok()) << "byte " << i << " bit " << bit;
      EXPECT_EQ(s.err(), EIO);
    }
  }
}

TEST(VvContainerHeader, BadMagicAndUnknownVersionAreNamed) {
  char buf[kVvContainerHeaderSize];
  EncodeContainerHeader(SampleHeader(), buf);
  buf[0] = 'X';
  ContainerHeader out;
  EXPECT_TRUE(HasSubstr(DecodeContainerHeader(buf, &out).message(), "not a vv container"));

  EncodeContainerHeader(SampleHeader(), buf);
  buf[8] = 2;
  Status s = DecodeContainerHeader(buf, &out);
  EXPECT_TRUE(HasSubstr(s.message(), "unknown vv format version 2"));
  EXPECT_TRUE(HasSubstr(s.message(), "reads version 1"));
}

RecordHeader SampleRecord() {
  RecordHeader h;
  h.kind = RecordKind::kFileData;
  h.key = MakeId(0x40);
  h.logical_offset = 1ull << 40;
  h.length = 123456;
  h.payload_hash = Hash128{0x1111222233334444ull, 0x5555666677778888ull};
  return h;
}

TEST(VvRecordHeader, LayoutAndRoundTrip) {
  char buf[kVvRecordHeaderSize];
  EncodeRecordHeader(SampleRecord(), 9, buf);
  EXPECT_EQ(std::string(buf, 4), "VVRC");
  EXPECT_EQ(buf[4], 1);
  EXPECT_EQ(Le64(buf + 8), 1ull << 40);
  EXPECT_EQ(Le64(buf + 16), 123456u);
  EXPECT_EQ(static_cast<uint8_t>(buf[24]), 0x40);
  EXPECT_EQ(Le64(buf + 40), 0x1111222233334444ull);
  EXPECT_EQ(Le64(buf + 48), 0x5555666677778888ull);
  EXPECT_EQ(Le64(buf + 56), XXH3_64bits_withSeed(buf, 56, 9));

  RecordHeader out;
  ASSERT_TRUE(DecodeRecordHeader(buf, 9, &out).ok());
  EXPECT_EQ(out.kind, RecordKind::kFileData);
  EXPECT_EQ(out.key, MakeId(0x40));
  EXPECT_EQ(out.logical_offset, 1ull << 40);
  EXPECT_EQ(out.length, 123456u);
  EXPECT_EQ(out.payload_hash, SampleRecord().payload_hash);
}

TEST(VvRecordHeader, BoundToItsContainer) {
  char buf[kVvRecordHeaderSize];
  EncodeRecordHeader(SampleRecord(), 9, buf);
  RecordHeader out;
  Status s = DecodeRecordHeader(buf, 10, &out);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "record header checksum mismatch"));
}

TEST(VvRecordHeader, EveryFlippedBitIsRefused) {
  char good[kVvRecordHeaderSize];
  EncodeRecordHeader(SampleRecord(), 9, good);
  for (size_t i = 0; i < kVvRecordHeaderSize; i++) {
    for (int bit = 0; bit < 8; bit++) {
      char buf[kVvRecordHeaderSize];
      std::memcpy(buf, good, sizeof(buf));
      buf[i] ^= static_cast<char>(1 << bit);
      RecordHeader out;
      ASSERT_FALSE(DecodeRecordHeader(buf, 9, &out).ok()) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(VvRecordHeader, ZerosAndUnknownKind) {
  char buf[kVvRecordHeaderSize] = {};
  RecordHeader out;
  EXPECT_TRUE(HasSubstr(DecodeRecordHeader(buf, 9, &out).message(), "all zero"));
  // A kind this version does not know, even with a valid checksum.
  RecordHeader h = SampleRecord();
  h.kind = static_cast<RecordKind>(7);
  EncodeRecordHeader(h, 9, buf);
  EXPECT_TRUE(HasSubstr(DecodeRecordHeader(buf, 9, &out).message(), "unknown kind 7"));
}

std::vector<RecordInfo> SampleEntries() {
  std::vector<RecordInfo> v;
  uint64_t end = kVvContainerHeaderSize;
  for (uint64_t i = 0; i < 5; i++) {
    RecordInfo r;
    r.location = RecordLocation{3, NextPayloadOffset(end), i * 3000};
    r.kind = i == 2 ? RecordKind::kChunk : RecordKind::kFileData;
    r.key = MakeId(static_cast<uint8_t>(i));
    r.logical_offset = i * 7;
    end = r.location.offset + r.location.length;
    v.push_back(r);
  }
  return v;
}

TEST(VvFooter, RoundTrip) {
  std::vector<RecordInfo> in = SampleEntries();
  uint64_t data_end = in.back().location.offset + in.back().location.length;
  std::string buf(FooterLength(in.size()), '\0');
  EncodeFooter(in.data(), in.size(), data_end, 3, buf.data());
  EXPECT_EQ(buf.substr(0, 8), "VVFOOTER");
  EXPECT_TRUE(IsFooterMagic(buf.data()));
  EXPECT_EQ(Le64(buf.data() + 8), 5u);
  EXPECT_EQ(Le64(buf.data() + 16), data_end);
  EXPECT_EQ(Le64(buf.data() + 24), in[0].location.offset);  // first entry

  std::vector<RecordInfo> out;
  uint64_t end = 0;
  ASSERT_TRUE(DecodeFooter(buf.data(), buf.size(), 3, &end, &out).ok());
  EXPECT_EQ(end, data_end);
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); i++) {
    EXPECT_EQ(out[i].location, in[i].location);
    EXPECT_EQ(out[i].kind, in[i].kind);
    EXPECT_EQ(out[i].key, in[i].key);
    EXPECT_EQ(out[i].logical_offset, in[i].logical_offset);
  }
}

TEST(VvFooter, EveryFlippedByteIsRefused) {
  std::vector<RecordInfo> in = SampleEntries();
  std::string good(FooterLength(in.size()), '\0');
  EncodeFooter(in.data(), in.size(), 1 << 20, 3, good.data());
  for (size_t i = 0; i < good.size(); i++) {
    std::string buf = good;
    buf[i] ^= 0x20;
    std::vector<RecordInfo> out;
    uint64_t end;
    Status s = DecodeFooter(buf.data(), buf.size(), 3, &end, &out);
    ASSERT_FALSE(s.ok()) << "byte " << i;
    EXPECT_EQ(s.err(), EIO);
  }
}

TEST(VvFooter, EntriesMustBeOrderedAlignedAndInsideTheData) {
  std::vector<uint64_t> data_ends = {1 << 20, 1 << 20, 1 << 20, 12000};
  for (int c = 0; c < 4; c++) {
    std::vector<RecordInfo> in = SampleEntries();
    if (c == 0) std::swap(in[1], in[3]);     // out of order
    if (c == 1) in[2].location.offset += 8;  // not on a block boundary
    if (c == 2) in[0].location.offset = 0;   // inside the container header
    // c == 3: the last records end past data_end
    std::string buf(FooterLength(in.size()), '\0');
    EncodeFooter(in.data(), in.size(), data_ends[c], 3, buf.data());
    std::vector<RecordInfo> out;
    uint64_t end;
    Status s = DecodeFooter(buf.data(), buf.size(), 3, &end, &out);
    EXPECT_TRUE(HasSubstr(s.message(), "out of order or past the end")) << c << s.ToString();
  }
}

TEST(VvTrailer, RoundTripAbsentAndDamaged) {
  char buf[kVvTrailerSize];
  EncodeTrailer(Trailer{8128, FooterLength(2), 2}, 5, buf);
  EXPECT_EQ(std::string(buf, 8), "VVTRAILR");
  Trailer t;
  ASSERT_TRUE(DecodeTrailer(buf, 5, &t).ok());
  EXPECT_EQ(t.footer_offset, 8128u);
  EXPECT_EQ(t.footer_length, FooterLength(2));
  EXPECT_EQ(t.record_count, 2u);

  EXPECT_EQ(DecodeTrailer(buf, 6, &t).err(), EIO);  // another container's
  buf[20] ^= 1;
  EXPECT_TRUE(HasSubstr(DecodeTrailer(buf, 5, &t).message(), "trailer checksum mismatch"));
  buf[0] = 0;
  EXPECT_EQ(DecodeTrailer(buf, 5, &t).err(), ENOENT);  // no trailer at all
}

}  // namespace
}  // namespace overtier
