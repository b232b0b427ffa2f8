#include "store/vv_writer.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/vv_reader.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::MakeId;
using test::Payload;
using test::ScratchStore;

const Id128 kStore = MakeId(0xa0);

struct Written {
  RecordLocation loc;
  RecordKind kind;
  Id128 key;
  uint64_t logical_offset;
  std::string payload;
};

// Appends records of the given sizes: file data, with every third a chunk
// and the empty ones tombstones.
std::vector<Written> AppendAll(VvWriter* w, const std::vector<size_t>& sizes) {
  std::vector<Written> out;
  for (size_t i = 0; i < sizes.size(); i++) {
    Written r;
    r.payload = Payload(sizes[i], i + 1);
    r.logical_offset = i * 1000003;
    r.key = MakeId(static_cast<uint8_t>(i));
    r.kind = RecordKind::kFileData;
    if (sizes[i] == 0) {
      r.kind = RecordKind::kTombstone;
    } else if (i % 3 == 2) {
      r.kind = RecordKind::kChunk;
      r.key = Hash128Key(PayloadHash(r.payload));
      r.logical_offset = 0;
    }
    Status s = w->Append(r.kind, r.key, r.logical_offset, r.payload, &r.loc);
    EXPECT_TRUE(s.ok()) << "record " << i << ": " << s.ToString();
    out.push_back(r);
  }
  return out;
}

void ExpectAllReadable(const VvReader& reader, const std::vector<Written>& recs) {
  for (size_t i = 0; i < recs.size(); i++) {
    RecordHeader h;
    std::string payload;
    Status s = reader.ReadRecord(recs[i].loc, &h, &payload);
    ASSERT_TRUE(s.ok()) << "record " << i << ": " << s.ToString();
    EXPECT_EQ(payload, recs[i].payload) << "record " << i;
    EXPECT_EQ(h.kind, recs[i].kind);
    EXPECT_EQ(h.key, recs[i].key);
    EXPECT_EQ(h.logical_offset, recs[i].logical_offset);
    EXPECT_EQ(h.length, recs[i].payload.size());
    EXPECT_EQ(h.payload_hash, PayloadHash(recs[i].payload));
  }
}

void ExpectListed(const RecordList& list, const std::vector<Written>& recs) {
  ASSERT_EQ(list.records.size(), recs.size());
  for (size_t i = 0; i < recs.size(); i++) {
    EXPECT_EQ(list.records[i].location, recs[i].loc) << i;
    EXPECT_EQ(list.records[i].kind, recs[i].kind) << i;
    EXPECT_EQ(list.records[i].key, recs[i].key) << i;
    EXPECT_EQ(list.records[i].logical_offset, recs[i].logical_offset) << i;
  }
  uint64_t end =
      recs.empty() ? kVvContainerHeaderSize : recs.back().loc.offset + recs.back().loc.length;
  EXPECT_EQ(list.valid_end, end);
  EXPECT_EQ(list.stop_reason, "");
}

// Record sizes around the block size, empty ones, and a few MiB.
const std::vector<size_t> kSizes = {
    0, 1, 4095, 4096, 4097, 100, 0, 65536, 65537, (3 << 20) + 123, 12345, 1 << 20, 1};

class VvRoundTrip : public ::testing::TestWithParam<uint64_t> {};

TEST_P(VvRoundTrip, UnsealedThenSealedAndReopened) {
  ScratchStore store(GetParam());
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 42, VvWriterOptions(), &w).ok());
  std::vector<Written> recs = AppendAll(w.get(), kSizes);
  ASSERT_EQ(w->record_count(), kSizes.size());
  uint64_t prev_end = kVvContainerHeaderSize;
  for (const Written& r : recs) {
    EXPECT_EQ(r.loc.vv_id, 42u);
    EXPECT_EQ(r.loc.offset % kVvAlign, 0u);  // O_DIRECT-ready
    EXPECT_EQ(r.loc.offset, NextPayloadOffset(prev_end));
    EXPECT_EQ(r.loc.length, r.payload.size());
    prev_end = r.loc.offset + r.loc.length;
  }
  ASSERT_TRUE(w->Sync().ok());

  {  // Synced but not sealed: what a reader finds after a crash here.
    std::unique_ptr<VvReader> reader;
    ASSERT_TRUE(VvReader::Open(store.set(), kStore, 42, &reader).ok());
    EXPECT_FALSE(reader->sealed());
    EXPECT_EQ(reader->header().set_name, "local");
    EXPECT_EQ(reader->header().store_id, kStore);
    ExpectAllReadable(*reader, recs);
    RecordList list;
    ASSERT_TRUE(reader->ListRecords(&list).ok());
    EXPECT_FALSE(list.from_footer);
    ExpectListed(list, recs);
  }

  ASSERT_TRUE(w->Seal().ok());
  EXPECT_TRUE(w->sealed());
  uint64_t sealed_size = w->size();
  EXPECT_EQ(sealed_size, NextHeaderOffset(prev_end) + FooterLength(kSizes.size()) + kVvTrailerSize);
  w.reset();

  std::unique_ptr<VvReader> reader;
  ASSERT_TRUE(VvReader::Open(store.set(), kStore, 42, &reader).ok());
  EXPECT_TRUE(reader->sealed());
  EXPECT_EQ(reader->size(), sealed_size);
  ExpectAllReadable(*reader, recs);
  RecordList list;
  ASSERT_TRUE(reader->ListRecords(&list).ok());
  EXPECT_TRUE(list.from_footer);
  ExpectListed(list, recs);
  RecordList scanned;
  ASSERT_TRUE(reader->ScanRecords(&scanned).ok());
  EXPECT_FALSE(scanned.from_footer);
  ExpectListed(scanned, recs);
}

// One piece for everything, and 64 KiB pieces that many records cross.
INSTANTIATE_TEST_SUITE_P(PieceSizes, VvRoundTrip, ::testing::Values(kMaxVolumePiece, 65536));

TEST(VvWriter, RecordsSpanningSmallPieces) {
  ScratchStore store(8192);
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 1, VvWriterOptions(), &w).ok());
  std::vector<Written> recs = AppendAll(w.get(), {10000, 8192, 8191, 1, 0, 20000, 4096});
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VvReader> reader;
  ASSERT_TRUE(VvReader::Open(store.set(), kStore, 1, &reader).ok());
  ExpectAllReadable(*reader, recs);
  RecordList list;
  ASSERT_TRUE(reader->ListRecords(&list).ok());
  ExpectListed(list, recs);
}

TEST(VvWriter, ExactLayoutOfASmallContainer) {
  ScratchStore store;
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 5, VvWriterOptions(), &w).ok());
  EXPECT_EQ(store.ReadAll(5).size(), kVvContainerHeaderSize);  // the header is synced
  RecordLocation loc;
  ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(1), 0, "x", &loc).ok());
  EXPECT_EQ(loc, (RecordLocation{5, 4096, 1}));
  ASSERT_TRUE(w->Sync().ok());
  std::string bytes = store.ReadAll(5);
  ASSERT_EQ(bytes.size(), 4097u);
  EXPECT_EQ(bytes.substr(0, 8), "OVTIERVV");
  EXPECT_EQ(bytes.substr(kVvContainerHeaderSize, 4032 - kVvContainerHeaderSize),
            std::string(4032 - kVvContainerHeaderSize, '\0'));
  EXPECT_EQ(bytes.substr(4032, 4), "VVRC");
  EXPECT_EQ(bytes[4096], 'x');

  ASSERT_TRUE(w->Seal().ok());
  bytes = store.ReadAll(5);
  // Footer where the next header would be (8128), 24 + 48 + 16 bytes, then
  // the 64-byte trailer.
  ASSERT_EQ(bytes.size(), 8128u + 88 + 64);
  EXPECT_EQ(bytes.substr(4097, 8128 - 4097), std::string(8128 - 4097, '\0'));
  EXPECT_EQ(bytes.substr(8128, 8), "VVFOOTER");
  EXPECT_EQ(bytes.substr(8216, 8), "VVTRAILR");
}

TEST(VvWriter, EmptyContainerSealedAndUnsealed) {
  ScratchStore store;
  for (bool seal : {false, true}) {
    uint64_t id = seal ? 2 : 1;
    std::unique_ptr<VvWriter> w;
    ASSERT_TRUE(VvWriter::Create(store.set(), kStore, id, VvWriterOptions(), &w).ok());
    if (seal) {
      ASSERT_TRUE(w->Seal().ok());
    }
    w.reset();
    std::unique_ptr<VvReader> reader;
    ASSERT_TRUE(VvReader::Open(store.set(), kStore, id, &reader).ok());
    EXPECT_EQ(reader->sealed(), seal);
    RecordList list;
    ASSERT_TRUE(reader->ListRecords(&list).ok());
    EXPECT_EQ(list.from_footer, seal);
    EXPECT_TRUE(list.records.empty());
    EXPECT_EQ(list.valid_end, kVvContainerHeaderSize);
    EXPECT_EQ(list.stop_reason, "");
  }
}

TEST(VvWriter, SealSizeBoundsTheRecords) {
  ScratchStore store;
  VvWriterOptions o;
  o.seal_size = 16384;
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 3, o, &w).ok());
  EXPECT_EQ(w->Room(), 16384u - 4096);
  RecordLocation loc;
  Status s = w->Append(RecordKind::kFileData, MakeId(1), 0, Payload(12289, 1), &loc);
  EXPECT_EQ(s.err(), EFBIG);
  EXPECT_TRUE(HasSubstr(s.message(), "room for 12288"));
  ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(1), 0, Payload(8000, 1), &loc).ok());
  // The next payload would start at 12288.
  EXPECT_EQ(w->Room(), 4096u);
  EXPECT_TRUE(w->Fits(4096));
  EXPECT_FALSE(w->Fits(4097));
  ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(1), 8000, Payload(4096, 2), &loc).ok());
  EXPECT_EQ(w->Room(), 0u);
  EXPECT_FALSE(w->Fits(0));
  EXPECT_EQ(w->Append(RecordKind::kTombstone, MakeId(1), 0, "", &loc).err(), EFBIG);
  ASSERT_TRUE(w->Seal().ok());
}

// How the archive engine stores a file larger than one container: records
// of at most Room() bytes, a new container when the current one is full.
TEST(VvWriter, LargeFileSpansContainers) {
  ScratchStore store;
  VvWriterOptions o;
  o.seal_size = 3 * 4096;
  const std::string file = Payload(40000, 77);
  std::vector<RecordLocation> extents;
  uint64_t next_id = 100, done = 0;
  std::unique_ptr<VvWriter> w;
  while (done < file.size()) {
    if (w == nullptr || w->Room() == 0) {
      if (w != nullptr) {
        ASSERT_TRUE(w->Seal().ok());
      }
      ASSERT_TRUE(VvWriter::Create(store.set(), kStore, next_id++, o, &w).ok());
    }
    uint64_t n = std::min<uint64_t>(w->Room(), file.size() - done);
    RecordLocation loc;
    ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(9), done, file.substr(done, n), &loc).ok());
    extents.push_back(loc);
    done += n;
  }
  ASSERT_TRUE(w->Seal().ok());
  EXPECT_GT(next_id - 100, 2u);
  std::string back;
  for (const RecordLocation& loc : extents) {
    std::unique_ptr<VvReader> reader;
    ASSERT_TRUE(VvReader::Open(store.set(), kStore, loc.vv_id, &reader).ok());
    RecordHeader h;
    std::string payload;
    ASSERT_TRUE(reader->ReadRecord(loc, &h, &payload).ok());
    EXPECT_EQ(h.logical_offset, back.size());
    back += payload;
  }
  EXPECT_EQ(back, file);
}

TEST(VvWriter, NoAppendAfterSeal) {
  ScratchStore store;
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 4, VvWriterOptions(), &w).ok());
  ASSERT_TRUE(w->Seal().ok());
  RecordLocation loc;
  EXPECT_EQ(w->Append(RecordKind::kFileData, MakeId(1), 0, "x", &loc).err(), EBADF);
  EXPECT_EQ(w->Seal().err(), EBADF);
  EXPECT_EQ(w->Room(), 0u);
}

TEST(VvWriter, CreateRefusesTakenIdsAndTinySealSizes) {
  ScratchStore store;
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 6, VvWriterOptions(), &w).ok());
  std::unique_ptr<VvWriter> w2;
  EXPECT_EQ(VvWriter::Create(store.set(), kStore, 6, VvWriterOptions(), &w2).err(), EEXIST);
  VvWriterOptions o;
  o.seal_size = 4096;
  EXPECT_EQ(VvWriter::Create(store.set(), kStore, 7, o, &w2).err(), EINVAL);
}

}  // namespace
}  // namespace overtier
