#include "store/vv_recovery.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/vv_reader.h"
#include "store/vv_testutil.h"
#include "store/vv_writer.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::MakeId;
using test::Payload;
using test::ScratchStore;

const Id128 kStore = MakeId(0xd0);
const std::vector<size_t> kSizes = {1000, 0, 5000, 4096, 70000};

struct Written {
  std::vector<RecordLocation> locs;
  std::vector<std::string> payloads;
};

Written WriteContainer(ScratchStore* store, uint64_t vv_id, bool seal) {
  Written out;
  std::unique_ptr<VvWriter> w;
  EXPECT_TRUE(VvWriter::Create(store->set(), kStore, vv_id, VvWriterOptions(), &w).ok());
  for (size_t i = 0; i < kSizes.size(); i++) {
    std::string p = Payload(kSizes[i], i);
    RecordLocation loc;
    EXPECT_TRUE(w->Append(RecordKind::kFileData, MakeId(1), i, p, &loc).ok());
    out.locs.push_back(loc);
    out.payloads.push_back(p);
  }
  EXPECT_TRUE((seal ? w->Seal() : w->Sync()).ok());
  return out;
}

void ExpectRecords(const RecordList& list, const Written& w, size_t n) {
  ASSERT_EQ(list.records.size(), n);
  for (size_t i = 0; i < n; i++) EXPECT_EQ(list.records[i].location, w.locs[i]) << i;
  uint64_t end = n == 0 ? kVvContainerHeaderSize : w.locs[n - 1].offset + w.locs[n - 1].length;
  EXPECT_EQ(list.valid_end, end);
}

void ExpectReadable(const VvReader& r, const Written& w, size_t n) {
  for (size_t i = 0; i < n; i++) {
    RecordHeader h;
    std::string payload;
    Status s = r.ReadRecord(w.locs[i], &h, &payload);
    ASSERT_TRUE(s.ok()) << i << ": " << s.ToString();
    EXPECT_EQ(payload, w.payloads[i]);
  }
}

// Cuts a sealed container at every boundary that matters and checks what a
// scan recovers, then that SealAfterCrash makes a sealed container of it.
TEST(VvRecovery, TruncationAtEveryInterestingBoundary) {
  ScratchStore store(16384);  // records cross pieces too
  Written ref = WriteContainer(&store, 1, true);
  const uint64_t data_end = ref.locs.back().offset + ref.locs.back().length;
  const uint64_t footer = NextHeaderOffset(data_end);
  const uint64_t trailer = footer + FooterLength(kSizes.size());
  const uint64_t full = trailer + kVvTrailerSize;

  struct Cut {
    uint64_t at;
    std::string what;
  };
  std::vector<Cut> cuts = {{kVvContainerHeaderSize, "after the container header"},
                           {1000, "in the padding before the first header"}};
  for (size_t i = 0; i < ref.locs.size(); i++) {
    uint64_t p = ref.locs[i].offset, len = ref.locs[i].length;
    std::string r = "record " + std::to_string(i) + ": ";
    cuts.push_back({p - 64, r + "header start"});
    cuts.push_back({p - 54, r + "mid-header"});
    cuts.push_back({p - 1, r + "last header byte missing"});
    cuts.push_back({p, r + "payload start"});
    if (len > 1) {
      cuts.push_back({p + len / 2, r + "mid-payload"});
      cuts.push_back({p + len - 1, r + "last payload byte missing"});
    }
    cuts.push_back({p + len, r + "record end"});
    if (p % 16384 != 0) cuts.push_back({(p / 16384 + 1) * 16384, r + "piece boundary"});
  }
  cuts.push_back({footer, "footer start"});
  cuts.push_back({footer + 4, "inside the footer magic"});
  cuts.push_back({footer + 30, "mid-footer"});
  cuts.push_back({trailer - 1, "last footer byte missing"});
  cuts.push_back({trailer, "missing trailer"});
  cuts.push_back({trailer + 32, "mid-trailer"});
  cuts.push_back({full - 1, "last trailer byte missing"});

  uint64_t id = 100;
  for (const Cut& cut : cuts) {
    SCOPED_TRACE(cut.what + " (" + std::to_string(cut.at) + ")");
    ++id;
    Written w = WriteContainer(&store, id, true);
    for (size_t i = 0; i < w.locs.size(); i++) w.locs[i].vv_id = ref.locs[i].vv_id;
    store.Truncate(id, cut.at);

    // Records wholly before the cut survive.
    size_t kept = 0;
    while (kept < ref.locs.size() && ref.locs[kept].offset + ref.locs[kept].length <= cut.at)
      kept++;
    uint64_t valid_end =
        kept == 0 ? kVvContainerHeaderSize : ref.locs[kept - 1].offset + ref.locs[kept - 1].length;
    for (RecordLocation& loc : w.locs) loc.vv_id = id;

    std::unique_ptr<VvReader> r;
    ASSERT_TRUE(VvReader::Open(store.set(), kStore, id, &r).ok());
    EXPECT_FALSE(r->sealed());
    EXPECT_EQ(r->size(), cut.at);
    RecordList list;
    ASSERT_TRUE(r->ListRecords(&list).ok());
    EXPECT_FALSE(list.from_footer);
    ExpectRecords(list, w, kept);
    // A clean end only where the cut falls exactly after a record.
    EXPECT_EQ(list.stop_reason.empty(), cut.at == valid_end) << list.stop_reason;
    if (cut.at >= footer + 8) {
      EXPECT_TRUE(HasSubstr(list.stop_reason, "footer at offset " + std::to_string(footer)));
    }
    ExpectReadable(*r, w, kept);
    if (kept < w.locs.size()) {
      RecordHeader h;
      std::string payload;
      Status s = r->ReadRecord(w.locs[kept], &h, &payload);
      EXPECT_EQ(s.err(), EIO);
      EXPECT_TRUE(HasSubstr(s.message(), "the container is truncated")) << s.message();
    }
    r.reset();

    RecordList found;
    ASSERT_TRUE(SealAfterCrash(store.set(), kStore, id, &found).ok());
    ExpectRecords(found, w, kept);
    ASSERT_TRUE(VvReader::Open(store.set(), kStore, id, &r).ok());
    EXPECT_TRUE(r->sealed());
    ASSERT_TRUE(r->ListRecords(&list).ok());
    EXPECT_TRUE(list.from_footer);
    ExpectRecords(list, w, kept);
    ExpectReadable(*r, w, kept);
    uint64_t size = r->size();
    EXPECT_GE(size, cut.at + FooterLength(kept) + kVvTrailerSize);

    // Recovering a sealed container changes nothing.
    ASSERT_TRUE(SealAfterCrash(store.set(), kStore, id, &found).ok());
    ExpectRecords(found, w, kept);
    ASSERT_TRUE(VvReader::Open(store.set(), kStore, id, &r).ok());
    EXPECT_EQ(r->size(), size);
  }
}

TEST(VvRecovery, WriterLostBeforeSealKeepsWhatWasSynced) {
  ScratchStore store;
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(store.set(), kStore, 2, VvWriterOptions(), &w).ok());
  Written synced;
  for (size_t i = 0; i < 3; i++) {
    RecordLocation loc;
    synced.payloads.push_back(Payload(3000 + i, i));
    ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(2), i, synced.payloads[i], &loc).ok());
    synced.locs.push_back(loc);
  }
  ASSERT_TRUE(w->Sync().ok());
  RecordLocation loc;
  ASSERT_TRUE(w->Append(RecordKind::kFileData, MakeId(2), 3, Payload(500, 9), &loc).ok());
  w.reset();  // the process dies: the unsynced record was never written

  RecordList found;
  ASSERT_TRUE(SealAfterCrash(store.set(), kStore, 2, &found).ok());
  ExpectRecords(found, synced, 3);
  EXPECT_EQ(found.stop_reason, "");
  std::unique_ptr<VvReader> r;
  ASSERT_TRUE(VvReader::Open(store.set(), kStore, 2, &r).ok());
  EXPECT_TRUE(r->sealed());
  ExpectReadable(*r, synced, 3);
}

TEST(VvRecovery, GarbageAfterTheLastRecord) {
  ScratchStore store;
  Written w = WriteContainer(&store, 3, false);
  // A torn append: bytes that are not a record where the next header goes.
  std::unique_ptr<VolumeWriter> v;
  ASSERT_TRUE(store.set()->OpenForAppend(3, &v).ok());
  ASSERT_TRUE(v->Append(std::string(100, '\0') + Payload(5000, 99)).ok());
  ASSERT_TRUE(v->Sync().ok());
  v.reset();

  RecordList found;
  ASSERT_TRUE(SealAfterCrash(store.set(), kStore, 3, &found).ok());
  ExpectRecords(found, w, kSizes.size());
  EXPECT_TRUE(HasSubstr(found.stop_reason, "record header at offset ")) << found.stop_reason;
  std::unique_ptr<VvReader> r;
  ASSERT_TRUE(VvReader::Open(store.set(), kStore, 3, &r).ok());
  RecordList list;
  ASSERT_TRUE(r->ListRecords(&list).ok());
  EXPECT_TRUE(list.from_footer);
  ExpectRecords(list, w, kSizes.size());
  ExpectReadable(*r, w, kSizes.size());
  // A header walk still stops at the garbage, which stays where it was.
  ASSERT_TRUE(r->ScanRecords(&list).ok());
  ExpectRecords(list, w, kSizes.size());
  EXPECT_FALSE(list.stop_reason.empty());
}

TEST(VvRecovery, RefusesWhatIsNotACrash) {
  ScratchStore store(4096);
  RecordList found;
  EXPECT_EQ(SealAfterCrash(store.set(), kStore, 4, &found).err(), ENOENT);

  // An empty file (crash inside Create): no header to trust.
  std::unique_ptr<VolumeWriter> v;
  ASSERT_TRUE(store.set()->Create(5, &v).ok());
  v.reset();
  Status s = SealAfterCrash(store.set(), kStore, 5, &found);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "empty container"));

  // A damaged trailer: left alone.
  WriteContainer(&store, 6, true);
  std::string before = store.ReadAll(6);
  store.FlipByte(6, before.size() - 3);
  s = SealAfterCrash(store.set(), kStore, 6, &found);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "trailer checksum mismatch"));
  EXPECT_EQ(store.ReadAll(6).size(), before.size());

  // Pieces after a short piece: cannot append, but still readable.
  Written w = WriteContainer(&store, 7, false);
  store.Truncate(7, 4096 + 100);
  ASSERT_EQ(truncate(store.PiecePath(7, 1).c_str(), 100), 0);
  {
    // Recreate a stray piece 2 behind the short piece 1.
    FILE* f = fopen(store.PiecePath(7, 2).c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("stray", f);
    fclose(f);
  }
  s = SealAfterCrash(store.set(), kStore, 7, &found);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "pieces after a short piece"));
  std::unique_ptr<VvReader> r;
  ASSERT_TRUE(VvReader::Open(store.set(), kStore, 7, &r).ok());
  ExpectReadable(*r, w, 0);
}

}  // namespace
}  // namespace overtier
