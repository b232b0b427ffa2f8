#include "store/vv_reader.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "overtier/status.h"
#include "store/vv_testutil.h"
#include "store/vv_writer.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::MakeId;
using test::Payload;
using test::ScratchStore;

const Id128 kStore = MakeId(0xb0);

// A sealed container of a few records, kept in memory for comparison.
struct Sample {
  std::vector<RecordLocation> locs;
  std::vector<std::string> payloads;
};

Sample WriteSample(ScratchStore* store, uint64_t vv_id, bool seal = true,
                   std::vector<size_t> sizes = {100, 5000, 0, 4096}) {
  Sample s;
  std::unique_ptr<VvWriter> w;
  EXPECT_TRUE(VvWriter::Create(store->set(), kStore, vv_id, VvWriterOptions(), &w).ok());
  for (size_t i = 0; i < sizes.size(); i++) {
    RecordLocation loc;
    std::string p = Payload(sizes[i], vv_id * 100 + i);
    EXPECT_TRUE(w->Append(RecordKind::kFileData, MakeId(static_cast<uint8_t>(i)), i, p, &loc).ok());
    s.locs.push_back(loc);
    s.payloads.push_back(p);
  }
  EXPECT_TRUE((seal ? w->Seal() : w->Sync()).ok());
  return s;
}

std::unique_ptr<VvReader> OpenOk(ScratchStore* store, uint64_t vv_id) {
  std::unique_ptr<VvReader> r;
  Status s = VvReader::Open(store->set(), kStore, vv_id, &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return r;
}

Status OpenStatus(ScratchStore* store, uint64_t vv_id, const Id128& store_id = kStore) {
  std::unique_ptr<VvReader> r;
  return VvReader::Open(store->set(), store_id, vv_id, &r);
}

// Records other than `except` still read back exactly.
void ExpectOthersReadable(const VvReader& r, const Sample& s, size_t except) {
  for (size_t i = 0; i < s.locs.size(); i++) {
    if (i == except) continue;
    RecordHeader h;
    std::string payload;
    Status st = r.ReadRecord(s.locs[i], &h, &payload);
    ASSERT_TRUE(st.ok()) << i << ": " << st.ToString();
    EXPECT_EQ(payload, s.payloads[i]);
  }
}

TEST(VvReaderOpen, MissingContainerIsNotFound) {
  ScratchStore store;
  Status s = OpenStatus(&store, 0x77);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000077"));
  EXPECT_TRUE(HasSubstr(s.message(), "'local'"));
}

TEST(VvReaderOpen, EmptyFileAndTruncatedHeader) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(1, &w).ok());
  ASSERT_TRUE(w->Seal().ok());
  Status s = OpenStatus(&store, 1);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000001 (volume set 'local') at offset 0"));
  EXPECT_TRUE(HasSubstr(s.message(), "empty container"));

  WriteSample(&store, 2);
  store.Truncate(2, 100);
  s = OpenStatus(&store, 2);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "container header truncated (100 of 128 bytes)"));
}

TEST(VvReaderOpen, WrongMagic) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(3, &w).ok());
  ASSERT_TRUE(w->Append(Payload(9000, 3)).ok());
  ASSERT_TRUE(w->Seal().ok());
  Status s = OpenStatus(&store, 3);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000003"));
  EXPECT_TRUE(HasSubstr(s.message(), "not a vv container"));
}

TEST(VvReaderOpen, UnknownVersion) {
  ScratchStore store;
  WriteSample(&store, 4);
  store.WriteBytes(4, 8, std::string("\x02\x00\x00\x00", 4));
  Status s = OpenStatus(&store, 4);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "unknown vv format version 2"));
}

TEST(VvReaderOpen, WrongStoreVvIdOrSet) {
  ScratchStore store;
  WriteSample(&store, 5);
  Status s = OpenStatus(&store, 5, MakeId(0xc0));
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "belongs to store " + Id128Hex(kStore)));
  EXPECT_TRUE(HasSubstr(s.message(), "not to this store " + Id128Hex(MakeId(0xc0))));

  // The container of vv 5 found under the name of vv 6.
  ASSERT_EQ(rename(store.PiecePath(5, 0).c_str(), store.PiecePath(6, 0).c_str()), 0);
  s = OpenStatus(&store, 6);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "the container header names vv-0000000000000005"));

  // Opened through a set of another name.
  std::unique_ptr<VolumeReader> volume;
  ASSERT_TRUE(store.set()->Open(6, &volume).ok());
  std::unique_ptr<VvReader> r;
  ASSERT_TRUE(store.set()->Open(6, &volume).ok());
  WriteSample(&store, 7);
  ASSERT_TRUE(store.set()->Open(7, &volume).ok());
  s = VvReader::Open(std::move(volume), "other", kStore, 7, &r);
  EXPECT_TRUE(HasSubstr(s.message(), "written for volume set 'local'"));
}

TEST(VvReaderOpen, FlippedContainerHeaderByte) {
  ScratchStore store;
  WriteSample(&store, 8);
  store.FlipByte(8, 40 + 8 + 2);  // in the set name
  Status s = OpenStatus(&store, 8);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "container header checksum mismatch"));
}

TEST(VvReaderRecords, FlippedRecordHeaderByte) {
  ScratchStore store;
  Sample sample = WriteSample(&store, 9);
  for (uint64_t at : {0u, 4u, 9u, 20u, 30u, 45u, 60u}) {  // magic, kind, offset, ..., checksum
    uint64_t header = sample.locs[1].offset - kVvRecordHeaderSize;
    store.FlipByte(9, header + at);
    std::unique_ptr<VvReader> r = OpenOk(&store, 9);
    RecordHeader h;
    std::string payload = "stale";
    Status s = r->ReadRecord(sample.locs[1], &h, &payload);
    EXPECT_EQ(s.err(), EIO) << at;
    EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000009 (volume set 'local') at offset " +
                                           std::to_string(header)));
    EXPECT_TRUE(HasSubstr(s.message(), "record header")) << s.message();
    EXPECT_EQ(payload, "");
    ExpectOthersReadable(*r, sample, 1);
    store.FlipByte(9, header + at);  // repair for the next round
  }
}

TEST(VvReaderRecords, FlippedPayloadByte) {
  ScratchStore store;
  Sample sample = WriteSample(&store, 10);
  for (size_t rec : {0u, 1u, 3u}) {
    uint64_t at = sample.locs[rec].offset + sample.locs[rec].length - 1;
    store.FlipByte(10, at, 0x80);
    std::unique_ptr<VvReader> r = OpenOk(&store, 10);
    RecordHeader h;
    std::string payload;
    Status s = r->ReadRecord(sample.locs[rec], &h, &payload);
    EXPECT_EQ(s.err(), EIO);
    EXPECT_TRUE(HasSubstr(s.message(), "at offset " + std::to_string(sample.locs[rec].offset) +
                                           ": payload checksum mismatch"))
        << s.message();
    EXPECT_EQ(payload, "");  // never the damaged bytes
    ExpectOthersReadable(*r, sample, rec);
    store.FlipByte(10, at, 0x80);
  }
}

TEST(VvReaderRecords, FlippedFooterByte) {
  ScratchStore store;
  Sample sample = WriteSample(&store, 11);
  uint64_t footer = NextHeaderOffset(sample.locs.back().offset + sample.locs.back().length);
  for (uint64_t at : {0u, 8u, 16u, 24u + 48 + 3, 24u + 4 * 48 + 15}) {
    store.FlipByte(11, footer + at);
    std::unique_ptr<VvReader> r = OpenOk(&store, 11);
    EXPECT_TRUE(r->sealed());
    RecordList list;
    Status s = r->ListRecords(&list);
    EXPECT_EQ(s.err(), EIO);
    EXPECT_TRUE(HasSubstr(s.message(), "at offset " + std::to_string(footer) + ": "))
        << s.message();
    EXPECT_TRUE(HasSubstr(s.message(), "footer")) << s.message();
    EXPECT_TRUE(list.records.empty());
    // The records themselves are unharmed, and a scan still finds them.
    ExpectOthersReadable(*r, sample, ~size_t{0});
    ASSERT_TRUE(r->ScanRecords(&list).ok());
    EXPECT_EQ(list.records.size(), sample.locs.size());
    EXPECT_EQ(list.stop_reason, "");
    store.FlipByte(11, footer + at);
  }
}

TEST(VvReaderRecords, FlippedTrailerByte) {
  ScratchStore store;
  Sample sample = WriteSample(&store, 12);
  std::unique_ptr<VvReader> good = OpenOk(&store, 12);
  uint64_t trailer = good->size() - kVvTrailerSize;
  store.FlipByte(12, trailer + 17);
  std::unique_ptr<VvReader> r = OpenOk(&store, 12);
  EXPECT_FALSE(r->sealed());
  RecordList list;
  Status s = r->ListRecords(&list);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(),
                        "at offset " + std::to_string(trailer) + ": trailer checksum mismatch"));
  ExpectOthersReadable(*r, sample, ~size_t{0});
  ASSERT_TRUE(r->ScanRecords(&list).ok());
  EXPECT_EQ(list.records.size(), sample.locs.size());
  EXPECT_TRUE(HasSubstr(list.stop_reason, "without a valid trailer"));
}

TEST(VvReaderRecords, LocationsThatCannotBeRecords) {
  ScratchStore store;
  Sample sample = WriteSample(&store, 13);
  std::unique_ptr<VvReader> r = OpenOk(&store, 13);
  RecordHeader h;
  std::string payload;
  RecordLocation loc = sample.locs[1];
  loc.length += 1;
  Status s = r->ReadRecord(loc, &h, &payload);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(),
                        "the record header says the payload is 5000 bytes, the "
                        "location says 5001"));
  loc = sample.locs[1];
  loc.vv_id = 14;
  EXPECT_EQ(r->ReadRecord(loc, &h, &payload).err(), EINVAL);
  loc = sample.locs[1];
  loc.offset += 64;
  EXPECT_TRUE(HasSubstr(r->ReadRecord(loc, &h, &payload).message(), "not a possible record"));
  loc = RecordLocation{13, 0, 10};
  EXPECT_TRUE(HasSubstr(r->ReadRecord(loc, &h, &payload).message(), "not a possible record"));
  loc = RecordLocation{13, 1 << 20, 10};
  EXPECT_TRUE(HasSubstr(r->ReadRecord(loc, &h, &payload).message(), "past the end of the data"));
  loc = RecordLocation{13, 4096, ~uint64_t{0}};
  EXPECT_TRUE(HasSubstr(r->ReadRecord(loc, &h, &payload).message(), "past the end of the data"));
  // A location inside a payload, at a block boundary that is no record.
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 15, VvWriterOptions(), &w).ok());
  RecordLocation big;
  ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(1), 0, Payload(20000, 1), &big).ok());
  ASSERT_TRUE(w->Seal().ok());
  r = OpenOk(&store, 15);
  s = r->ReadRecord(RecordLocation{15, big.offset + 8192, 100}, &h, &payload);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "bad record header magic"));
}

// Cut short, unsealed or sealed (the trailer and footer go with the cut:
// it opens as unsealed): the records before the cut still read.
TEST(VvReaderRecords, TruncatedContainerNamesTheRecord) {
  for (bool seal : {false, true}) {
    SCOPED_TRACE(seal ? "sealed" : "unsealed");
    ScratchStore store;
    const uint64_t id = seal ? 116 : 16;
    Sample sample = WriteSample(&store, id, seal);
    store.Truncate(id, sample.locs[1].offset + 100);
    std::unique_ptr<VvReader> r = OpenOk(&store, id);
    EXPECT_FALSE(r->sealed());
    RecordHeader h;
    std::string payload;
    for (size_t i = 1; i < sample.locs.size(); i++) {
      Status s = r->ReadRecord(sample.locs[i], &h, &payload);
      EXPECT_EQ(s.err(), EIO);
      EXPECT_TRUE(HasSubstr(s.message(), VvName(id) + " (volume set '"));
      EXPECT_TRUE(HasSubstr(s.message(), "at offset " + std::to_string(sample.locs[i].offset)));
      EXPECT_TRUE(HasSubstr(s.message(), "the container is truncated"));
    }
    ExpectOthersReadable(*r, Sample{{sample.locs[0]}, {sample.payloads[0]}}, ~size_t{0});
  }
}

// Every single byte of a small sealed container damaged in turn: every read
// either fails with EIO or returns exactly what was written.
TEST(VvReaderRecords, NoFlippedByteEverYieldsWrongData) {
  ScratchStore store(4096);
  Sample sample = WriteSample(&store, 17, true, {10, 0, 70});
  std::string original = store.ReadAll(17);
  size_t detected = 0;
  for (uint64_t at = 0; at < original.size(); at++) {
    store.FlipByte(17, at, 0x10);
    std::unique_ptr<VvReader> r;
    Status s = VvReader::Open(store.set(), kStore, 17, &r);
    if (!s.ok()) {
      EXPECT_EQ(s.err(), EIO) << at;
      detected++;
    } else {
      bool any = false;
      for (size_t i = 0; i < sample.locs.size(); i++) {
        RecordHeader h;
        std::string payload;
        Status rs = r->ReadRecord(sample.locs[i], &h, &payload);
        if (rs.ok()) {
          EXPECT_EQ(payload, sample.payloads[i]) << "flip at " << at;
          EXPECT_EQ(h.logical_offset, i) << "flip at " << at;
        } else {
          EXPECT_EQ(rs.err(), EIO) << at;
          any = true;
        }
      }
      RecordList list;
      Status ls = r->ListRecords(&list);
      if (ls.ok()) {
        // A damaged trailer magic makes the container look unsealed: the
        // scan then finds every record and reports the orphaned footer.
        if (!list.stop_reason.empty()) any = true;
        ASSERT_EQ(list.records.size(), sample.locs.size()) << "flip at " << at;
        for (size_t i = 0; i < list.records.size(); i++)
          EXPECT_EQ(list.records[i].location, sample.locs[i]) << "flip at " << at;
      } else {
        any = true;
      }
      if (any) detected++;
    }
    store.FlipByte(17, at, 0x10);
  }
  // Only padding is not covered by a checksum: records at 4096 (10 bytes),
  // 8192 (empty) and 12288 (70 bytes), their headers 64 bytes before, the
  // footer at 16320.
  size_t padding = (4032 - 128) + (8128 - 4106) + (12224 - 8192) + (16320 - 12358);
  EXPECT_EQ(detected, original.size() - padding);
}

TEST(VvReaderRecords, DirectReadPlan) {
  ScratchStore store(8192);
  Sample sample = WriteSample(&store, 18, true, {100, 20000, 0});
  std::unique_ptr<VvReader> r = OpenOk(&store, 18);
  DirectRead plan;
  ASSERT_TRUE(r->PlanDirectRead(sample.locs[1], &plan).ok());
  EXPECT_EQ(plan.header.length, 20000u);
  EXPECT_EQ(plan.payload_offset, sample.locs[1].offset);
  EXPECT_EQ(plan.aligned_length, 20480u);
  ASSERT_GE(plan.segments.size(), 2u);  // 20 KiB over 8 KiB pieces
  uint64_t covered = 0;
  std::string payload;
  for (const RawSegment& seg : plan.segments) {
    EXPECT_EQ(seg.container_offset, plan.payload_offset + covered);
    EXPECT_EQ(seg.file_offset % kVvAlign, 0u);
    covered += seg.length;
    // O_DIRECT through a second open of the same file, as documented.
    std::string proc = "/proc/self/fd/" + std::to_string(seg.fd);
    int dfd = open(proc.c_str(), O_RDONLY | O_DIRECT);
    if (dfd < 0 && errno == EINVAL) GTEST_SKIP() << "no O_DIRECT on this file system";
    ASSERT_GE(dfd, 0);
    size_t len = AlignUp(seg.length, kVvAlign);
    void* buf = nullptr;
    ASSERT_EQ(posix_memalign(&buf, kVvAlign, len), 0);
    ssize_t n = pread(dfd, buf, len, static_cast<off_t>(seg.file_offset));
    ASSERT_GE(n, static_cast<ssize_t>(seg.length)) << strerror(errno);
    payload.append(static_cast<char*>(buf), seg.length);
    free(buf);
    close(dfd);
  }
  EXPECT_GE(covered, 20000u);
  payload.resize(plan.header.length);
  EXPECT_TRUE(r->VerifyPayload(sample.locs[1], plan.header, payload).ok());
  EXPECT_EQ(payload, sample.payloads[1]);
  payload[5] ^= 1;
  EXPECT_TRUE(HasSubstr(r->VerifyPayload(sample.locs[1], plan.header, payload).message(),
                        "payload checksum mismatch"));
}

}  // namespace
}  // namespace overtier
