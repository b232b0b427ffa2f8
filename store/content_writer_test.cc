#include "store/content_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/local_volume.h"
#include "store/vv_format.h"
#include "store/vv_reader.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::Payload;
using test::TempDir;

constexpr uint64_t kChunk = 64 << 10;

class ContentWriterTest : public ::testing::Test {
 protected:
  // A store with the given sets (each at STORE/volumes/<name>) and copies.
  void MakeStore(std::vector<std::string> sets = {}, uint32_t copies = 0, uint64_t vv_size = 0) {
    path_ = dir_.path() + "/store";
    StoreInitOptions o;
    for (const std::string& s : sets) o.sets.push_back({s, path_ + "/volumes/" + s});
    o.copies = copies;
    o.vv_size = vv_size;
    o.chunk_size = kChunk;
    Status s = Store::Init(path_, o, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  Status Commit(ContentWriter* w, bool finish = false) {
    Catalog::Batch b(store_->catalog());
    OVT_RETURN_IF_ERROR(finish ? w->Finish(&b) : w->Flush(&b));
    return b.Commit();
  }

  // Writes data as one file in pieces of `piece` bytes.
  FileRecord WriteFile(ContentWriter* w, const std::string& data, size_t piece = 100000) {
    w->BeginFile();
    for (size_t off = 0; off < data.size(); off += piece) {
      Status s = w->Write(off, std::string_view(data).substr(off, piece));
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    FileRecord rec;
    Status s = w->EndFile(data.size(), &rec);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return rec;
  }

  // The payload an extent points at, read back through the store (after
  // the volumes rows were committed).
  std::string ReadExtent(const Extent& e) {
    std::shared_ptr<const VvReader> r;
    Status s = store_->OpenContainer(e.vv_id, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return "";
    RecordHeader h;
    std::string payload;
    s = r->ReadRecord(RecordLocation{e.vv_id, e.vv_offset, e.length}, &h, &payload);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(h.kind, RecordKind::kChunk);
    EXPECT_EQ(Digest128{h.key}, e.digest);
    return payload;
  }

  // The file's content rebuilt from one copy's extents (holes as zeros).
  std::string Rebuild(const FileRecord& rec, size_t copy) {
    std::string out(rec.size, '\0');
    for (const Extent& e : rec.copies.at(copy).extents) {
      std::string p = ReadExtent(e);
      EXPECT_EQ(p.size(), e.length);
      EXPECT_LE(e.file_offset + p.size(), out.size());
      out.replace(e.file_offset, p.size(), p);
    }
    return out;
  }

  size_t CountChunkRows() {
    size_t n = 0;
    Status s =
        store_->catalog()->ScanChunks(Digest128{}, [&](const Digest128&, const ChunkRecord&) {
          n++;
          return true;
        });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }
  size_t CountVolumeRows() {
    size_t n = 0;
    Status s = store_->catalog()->ScanVolumes(0, [&](uint64_t, const VolumeRecord&) {
      n++;
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(ContentWriterTest, DedupWithinAFile) {
  MakeStore();
  const std::string a = Payload(kChunk, 1), b = Payload(kChunk, 2);
  const std::string data = a + b + a + a;
  ContentWriter w(store_.get());
  FileRecord rec = WriteFile(&w, data);
  ASSERT_EQ(rec.copies.size(), 1u);
  const std::vector<Extent>& ex = rec.copies[0].extents;
  ASSERT_EQ(ex.size(), 4u);
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(ex[i].file_offset, i * kChunk);
    EXPECT_EQ(ex[i].length, kChunk);
  }
  EXPECT_EQ(ex[0].vv_offset, ex[2].vv_offset);
  EXPECT_EQ(ex[0].vv_offset, ex[3].vv_offset);
  EXPECT_NE(ex[0].vv_offset, ex[1].vv_offset);
  EXPECT_EQ(ex[0].digest, ex[2].digest);
  EXPECT_EQ(w.stats().chunks, 4u);
  EXPECT_EQ(w.stats().chunks_deduped, 2u);
  EXPECT_EQ(w.stats().bytes, 4 * kChunk);
  EXPECT_EQ(w.stats().bytes_stored, 2 * kChunk);
  EXPECT_EQ(w.stats().files, 1u);
  ASSERT_TRUE(Commit(&w).ok());
  EXPECT_EQ(CountChunkRows(), 2u);
  EXPECT_EQ(Rebuild(rec, 0), data);
}

TEST_F(ContentWriterTest, DedupAcrossFiles) {
  MakeStore();
  const std::string a = Payload(kChunk, 1), b = Payload(kChunk, 2), c = Payload(kChunk, 3);
  ContentWriter w(store_.get());
  FileRecord r1 = WriteFile(&w, a + b);
  FileRecord r2 = WriteFile(&w, b + c, 7777);  // fed in odd pieces
  EXPECT_EQ(r2.copies[0].extents[0].vv_id, r1.copies[0].extents[1].vv_id);
  EXPECT_EQ(r2.copies[0].extents[0].vv_offset, r1.copies[0].extents[1].vv_offset);
  EXPECT_EQ(r2.copies[0].extents[0].file_offset, 0u);
  EXPECT_EQ(w.stats().chunks_deduped, 1u);
  EXPECT_EQ(w.stats().files, 2u);
  ASSERT_TRUE(Commit(&w).ok());
  EXPECT_EQ(CountChunkRows(), 3u);
  EXPECT_EQ(Rebuild(r1, 0), a + b);
  EXPECT_EQ(Rebuild(r2, 0), b + c);
}

TEST_F(ContentWriterTest, DedupAcrossSessionsAfterCommit) {
  MakeStore();
  const std::string a = Payload(kChunk, 1), b = Payload(kChunk, 2);
  FileRecord r1;
  {
    ContentWriter w(store_.get());
    r1 = WriteFile(&w, a);
    ASSERT_TRUE(Commit(&w).ok());
  }
  ChunkRecord row;
  ASSERT_TRUE(store_->catalog()->GetChunk(r1.copies[0].extents[0].digest, &row).ok());
  EXPECT_EQ(row.length, kChunk);
  ASSERT_EQ(row.copies.size(), 1u);
  EXPECT_EQ(row.copies[0].vv_id, r1.copies[0].extents[0].vv_id);
  EXPECT_EQ(row.copies[0].vv_offset, r1.copies[0].extents[0].vv_offset);

  ContentWriter w2(store_.get());
  FileRecord r2 = WriteFile(&w2, b + a);
  EXPECT_EQ(w2.stats().chunks_deduped, 1u);
  EXPECT_EQ(w2.stats().bytes_stored, kChunk);
  EXPECT_EQ(r2.copies[0].extents[1].vv_id, r1.copies[0].extents[0].vv_id);
  EXPECT_EQ(r2.copies[0].extents[1].vv_offset, r1.copies[0].extents[0].vv_offset);
  // The second session writes to containers of its own.
  EXPECT_NE(r2.copies[0].extents[0].vv_id, r1.copies[0].extents[0].vv_id);
  ASSERT_TRUE(Commit(&w2, true).ok());
  EXPECT_EQ(Rebuild(r2, 0), b + a);
}

TEST_F(ContentWriterTest, DedupOfAnOldChunkOfTheSessionReadsItBack) {
  // More than the writer keeps in memory (8 MiB) between a chunk and its
  // duplicate: the comparison reads the open container back.
  MakeStore();
  ContentWriter w(store_.get());
  const std::string first = Payload(kChunk, 1);
  FileRecord r1 = WriteFile(&w, first);
  std::string filler;
  for (int i = 0; i < 150; i++) filler += Payload(kChunk, 1000 + i);
  WriteFile(&w, filler);
  FileRecord r2 = WriteFile(&w, first + Payload(kChunk, 2));
  EXPECT_EQ(w.stats().chunks_deduped, 1u);
  EXPECT_EQ(r2.copies[0].extents[0].vv_offset, r1.copies[0].extents[0].vv_offset);
  EXPECT_EQ(r2.copies[0].extents[0].vv_id, r1.copies[0].extents[0].vv_id);
  ASSERT_TRUE(Commit(&w).ok());
  EXPECT_EQ(Rebuild(r2, 0), first + Payload(kChunk, 2));
}

TEST_F(ContentWriterTest, DedupAfterAFlushInTheSameSession) {
  // Flush forgets the session's chunks; the catalog then finds them, in a
  // container that is still open and has grown since its row was written.
  MakeStore();
  ContentWriter w(store_.get());
  const std::string first = Payload(kChunk, 1);
  FileRecord r1 = WriteFile(&w, first);
  ASSERT_TRUE(Commit(&w).ok());
  std::string filler;
  for (int i = 0; i < 150; i++) filler += Payload(kChunk, 2000 + i);
  WriteFile(&w, filler);
  ASSERT_TRUE(Commit(&w).ok());
  WriteFile(&w, filler.substr(0, 10 * kChunk) + Payload(kChunk, 3));
  FileRecord r2 = WriteFile(&w, first);
  EXPECT_EQ(w.stats().chunks_deduped, 11u);
  EXPECT_EQ(r2.copies[0].extents[0].vv_id, r1.copies[0].extents[0].vv_id);
  EXPECT_EQ(r2.copies[0].extents[0].vv_offset, r1.copies[0].extents[0].vv_offset);
  ASSERT_TRUE(Commit(&w, true).ok());
  EXPECT_EQ(Rebuild(r2, 0), first);
}

TEST_F(ContentWriterTest, ZeroChunksAreHoles) {
  MakeStore();
  const std::string zeros(kChunk, '\0');
  std::string partial(kChunk, '\0');
  partial[kChunk - 1] = 'x';  // mostly zero: still data
  const std::string d = Payload(kChunk, 5);
  ContentWriter w(store_.get());
  w.BeginFile();
  ASSERT_TRUE(w.Write(0, zeros).ok());
  ASSERT_TRUE(w.Write(kChunk, d).ok());
  ASSERT_TRUE(w.Write(2 * kChunk, zeros).ok());
  // A gap (never written) then a byte at the end of chunk 3: the chunk is
  // stored whole, its gap as zeros.
  ASSERT_TRUE(w.Write(4 * kChunk - 1, "x").ok());
  FileRecord rec;
  // Chunks 4 and 5 never written: holes up to the size.
  ASSERT_TRUE(w.EndFile(6 * kChunk, &rec).ok());
  const std::vector<Extent>& ex = rec.copies[0].extents;
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].file_offset, kChunk);
  EXPECT_EQ(ex[1].file_offset, 3 * kChunk);
  EXPECT_EQ(ex[1].length, kChunk);
  EXPECT_EQ(w.stats().chunks, 2u);
  EXPECT_EQ(rec.size, 6 * kChunk);
  ASSERT_TRUE(Commit(&w).ok());
  EXPECT_EQ(Rebuild(rec, 0), zeros + d + zeros + partial + zeros + zeros);

  // A file of zeros only has no extents at all, and so has an empty one.
  FileRecord z = WriteFile(&w, std::string(3 * kChunk + 5, '\0'));
  EXPECT_TRUE(z.copies[0].extents.empty());
  EXPECT_EQ(z.size, 3 * kChunk + 5);
  FileRecord e = WriteFile(&w, "");
  ASSERT_EQ(e.copies.size(), 1u);
  EXPECT_TRUE(e.copies[0].extents.empty());
  EXPECT_EQ(e.size, 0u);
}

TEST_F(ContentWriterTest, SizesNotMultipleOfTheChunkSize) {
  MakeStore();
  ContentWriter w(store_.get());
  const std::string big = Payload(2 * kChunk + kChunk / 2 + 3, 7);
  const std::string small = Payload(100, 8);
  FileRecord r1 = WriteFile(&w, big, 12345);
  FileRecord r2 = WriteFile(&w, small);
  ASSERT_EQ(r1.copies[0].extents.size(), 3u);
  EXPECT_EQ(r1.copies[0].extents[2].length, kChunk / 2 + 3);
  ASSERT_EQ(r2.copies[0].extents.size(), 1u);
  EXPECT_EQ(r2.copies[0].extents[0].length, 100u);
  // The size may extend past the data: the last chunk ends at the size
  // (its tail zeros are part of it).
  w.BeginFile();
  ASSERT_TRUE(w.Write(0, small).ok());
  FileRecord r3;
  ASSERT_TRUE(w.EndFile(5000, &r3).ok());
  ASSERT_EQ(r3.copies[0].extents.size(), 1u);
  EXPECT_EQ(r3.copies[0].extents[0].length, 5000u);
  ASSERT_TRUE(Commit(&w).ok());
  EXPECT_EQ(Rebuild(r1, 0), big);
  EXPECT_EQ(Rebuild(r2, 0), small);
  EXPECT_EQ(Rebuild(r3, 0), small + std::string(4900, '\0'));
}

TEST_F(ContentWriterTest, LargeFileSpansContainers) {
  // Room for 4 chunks per container (the smallest vv_size the store allows
  // for this chunk size).
  MakeStore({}, 0, 4 * (kChunk + kVvAlign) + kVvAlign);
  std::string data;
  for (int i = 0; i < 10; i++) data += Payload(kChunk, 100 + i);
  ContentWriter w(store_.get());
  FileRecord rec = WriteFile(&w, data);
  std::set<uint64_t> vvs;
  for (const Extent& e : rec.copies[0].extents) vvs.insert(e.vv_id);
  EXPECT_EQ(vvs.size(), 3u);  // 4 + 4 + 2
  ASSERT_TRUE(Commit(&w).ok());
  // Full containers were sealed on the way, the last one is still open.
  int sealed = 0, open = 0;
  uint64_t live = 0;
  Status s = store_->catalog()->ScanVolumes(0, [&](uint64_t id, const VolumeRecord& v) {
    EXPECT_TRUE(vvs.count(id)) << id;
    (v.state == VolumeState::kSealed ? sealed : open)++;
    live += v.live_bytes;
    EXPECT_GT(v.size, v.live_bytes);
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(sealed, 2);
  EXPECT_EQ(open, 1);
  EXPECT_EQ(live, 10 * kChunk);
  EXPECT_EQ(Rebuild(rec, 0), data);

  // Finish seals the last one; its row says so.
  Catalog::Batch b(store_->catalog());
  ASSERT_TRUE(w.Finish(&b).ok());
  ASSERT_TRUE(b.Commit().ok());
  s = store_->catalog()->ScanVolumes(0, [&](uint64_t, const VolumeRecord& v) {
    EXPECT_EQ(v.state, VolumeState::kSealed);
    return true;
  });
  ASSERT_TRUE(s.ok());
}

TEST_F(ContentWriterTest, TwoCopiesGoToDifferentSets) {
  MakeStore({"a", "b"}, 2);
  const std::string data = Payload(3 * kChunk + 10, 9);
  ContentWriter w(store_.get());
  FileRecord rec = WriteFile(&w, data);
  ASSERT_EQ(rec.copies.size(), 2u);
  EXPECT_EQ(w.stats().bytes_stored, 2 * data.size());
  ASSERT_TRUE(Commit(&w, true).ok());
  for (size_t c = 0; c < 2; c++) {
    ASSERT_EQ(rec.copies[c].extents.size(), 4u);
    for (const Extent& e : rec.copies[c].extents) {
      VolumeRecord v;
      ASSERT_TRUE(store_->catalog()->GetVolume(e.vv_id, &v).ok());
      EXPECT_EQ(v.set, c == 0 ? "a" : "b");
    }
    EXPECT_EQ(Rebuild(rec, c), data);
  }
  ChunkRecord row;
  ASSERT_TRUE(store_->catalog()->GetChunk(rec.copies[0].extents[0].digest, &row).ok());
  ASSERT_EQ(row.copies.size(), 2u);
  EXPECT_EQ(row.copies[0].vv_id, rec.copies[0].extents[0].vv_id);
  EXPECT_EQ(row.copies[1].vv_id, rec.copies[1].extents[0].vv_id);

  // A writer asked for one copy uses the first set only.
  ContentWriter one(store_.get(), ContentWriterOptions{1});
  FileRecord r1 = WriteFile(&one, Payload(kChunk, 77));
  EXPECT_EQ(r1.copies.size(), 1u);
  // More copies than sets cannot be.
  ContentWriter three(store_.get(), ContentWriterOptions{3});
  three.BeginFile();
  Status s = three.Write(0, "x");
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(test::HasSubstr(s.message(), "2 volume set"));
}

TEST_F(ContentWriterTest, DigestCollisionIsNotShared) {
  MakeStore();
  const std::string x = Payload(kChunk, 11), y = Payload(kChunk, 12);
  FileRecord rx;
  {
    ContentWriter w(store_.get());
    rx = WriteFile(&w, x);
    ASSERT_TRUE(Commit(&w).ok());
  }
  // A row that claims y's digest for x's bytes: what a real XXH3 collision
  // between x and y would look like.
  const Digest128 dy{Hash128Key(PayloadHash(y))};
  const Extent& ex = rx.copies[0].extents[0];
  ChunkRecord fake{kChunk, {ChunkLocation{ex.vv_id, ex.vv_offset}}};
  {
    Catalog::Batch b(store_->catalog());
    b.PutChunk(dy, fake);
    ASSERT_TRUE(b.Commit().ok());
  }
  ContentWriter w(store_.get());
  FileRecord ry = WriteFile(&w, y + y);
  const std::vector<Extent>& e = ry.copies[0].extents;
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].digest, dy);
  EXPECT_FALSE(e[0].vv_id == ex.vv_id && e[0].vv_offset == ex.vv_offset);
  // Within the file the two y chunks are still one (bytes compared equal),
  // but the collision is neither shared nor indexed.
  EXPECT_EQ(e[1].vv_offset, e[0].vv_offset);
  EXPECT_EQ(w.stats().chunks_deduped, 1u);
  ASSERT_TRUE(Commit(&w).ok());
  ChunkRecord row;
  ASSERT_TRUE(store_->catalog()->GetChunk(dy, &row).ok());
  EXPECT_EQ(row, fake);  // the index keeps its one mapping
  EXPECT_EQ(Rebuild(ry, 0), y + y);
  EXPECT_EQ(Rebuild(rx, 0), x);
}

TEST_F(ContentWriterTest, UnreadableIndexedChunkIsReplaced) {
  MakeStore();
  const std::string x = Payload(kChunk, 31);
  FileRecord r1;
  {
    ContentWriter w(store_.get());
    r1 = WriteFile(&w, x);
    ASSERT_TRUE(Commit(&w, true).ok());
  }
  const Extent& e1 = r1.copies[0].extents[0];
  std::string file;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path())) {
    if (e.path().filename() == LocalPieceName(e1.vv_id, 0)) file = e.path().string();
  }
  ASSERT_FALSE(file.empty());
  ASSERT_EQ(unlink(file.c_str()), 0);
  ContentWriter w(store_.get());
  FileRecord r2 = WriteFile(&w, x);
  EXPECT_EQ(w.stats().chunks_deduped, 0u);
  const Extent& e2 = r2.copies[0].extents[0];
  EXPECT_NE(e2.vv_id, e1.vv_id);
  ASSERT_TRUE(Commit(&w).ok());
  ChunkRecord row;
  ASSERT_TRUE(store_->catalog()->GetChunk(e1.digest, &row).ok());
  EXPECT_EQ(row.copies.at(0).vv_id, e2.vv_id);
  EXPECT_EQ(Rebuild(r2, 0), x);
}

TEST_F(ContentWriterTest, NothingInTheCatalogBeforeFlush) {
  MakeStore();
  {
    ContentWriter w(store_.get());
    WriteFile(&w, Payload(3 * kChunk, 13));
    // Flush into a batch that is never committed: still nothing.
    Catalog::Batch b(store_->catalog());
    ASSERT_TRUE(w.Flush(&b).ok());
    EXPECT_GT(b.size(), 0u);
  }
  EXPECT_EQ(CountChunkRows(), 0u);
  EXPECT_EQ(CountVolumeRows(), 0u);
  {
    ContentWriter w(store_.get());
    WriteFile(&w, Payload(3 * kChunk, 14));
  }
  EXPECT_EQ(CountChunkRows(), 0u);
  EXPECT_EQ(CountVolumeRows(), 0u);
}

TEST_F(ContentWriterTest, WriteFdKeepsHoles) {
  MakeStore();
  const std::string file = dir_.path() + "/sparse";
  int fd = open(file.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  const std::string d1 = Payload(kChunk + 10, 21), d2 = Payload(300, 22);
  ASSERT_EQ(pwrite(fd, d1.data(), d1.size(), 0), static_cast<ssize_t>(d1.size()));
  const uint64_t far = 40 * kChunk + 17;
  ASSERT_EQ(pwrite(fd, d2.data(), d2.size(), far), static_cast<ssize_t>(d2.size()));
  const uint64_t size = far + d2.size() + 1000;
  ASSERT_EQ(ftruncate(fd, size), 0);
  ContentWriter w(store_.get());
  FileRecord rec;
  Status s = w.WriteFd(fd, size, &rec);
  close(fd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rec.size, size);
  const std::vector<Extent>& e = rec.copies[0].extents;
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].file_offset, 0u);
  EXPECT_EQ(e[1].file_offset, kChunk);
  EXPECT_EQ(e[2].file_offset, 40 * kChunk);
  EXPECT_EQ(e[2].length, size - 40 * kChunk);
  EXPECT_LT(w.stats().bytes, 4 * kChunk);  // the hole was not read as data
  ASSERT_TRUE(Commit(&w).ok());
  std::string want(size, '\0');
  want.replace(0, d1.size(), d1);
  want.replace(far, d2.size(), d2);
  EXPECT_EQ(Rebuild(rec, 0), want);
}

// A file shorter than the size it is stored with (it shrank since the
// caller looked): ESTALE, the caller's "changed while being read", not a
// file stored with zeros for a tail it no longer has.
TEST_F(ContentWriterTest, WriteFdOfAFileThatShrankIsStale) {
  MakeStore();
  const std::string file = dir_.path() + "/shrunk";
  int fd = open(file.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  const std::string d = Payload(1000, 23);
  ASSERT_EQ(pwrite(fd, d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));
  ContentWriter w(store_.get());
  FileRecord rec;
  Status s = w.WriteFd(fd, 5 * kChunk, &rec);
  close(fd);
  EXPECT_EQ(s.err(), ESTALE) << s.ToString();
  EXPECT_NE(s.message().find("shrank"), std::string::npos) << s.ToString();
}

TEST_F(ContentWriterTest, RefusesBadCalls) {
  MakeStore();
  ContentWriter w(store_.get());
  w.BeginFile();
  ASSERT_TRUE(w.Write(1000, "abc").ok());
  EXPECT_EQ(w.Write(10, "x").err(), EINVAL);  // backwards
  FileRecord rec;
  EXPECT_EQ(w.EndFile(1001, &rec).err(), EINVAL);  // size before the data's end
  ASSERT_TRUE(w.EndFile(1003, &rec).ok());
  EXPECT_EQ(w.EndFile(1003, &rec).err(), EINVAL);  // no file begun
}

// The containers of each volume set, by id.
std::vector<std::vector<uint64_t>> Containers(Store* store) {
  std::vector<std::vector<uint64_t>> out;
  for (VolumeSet* set : store->volume_sets()) {
    std::vector<uint64_t> ids;
    EXPECT_TRUE(set->List(&ids).ok());
    out.push_back(ids);
  }
  return out;
}

// A failed import gives back the containers nothing committed names, and
// keeps the ones a committed batch does.
TEST_F(ContentWriterTest, DiscardUncommittedRemovesOnlyUnnamedContainers) {
  MakeStore({"a", "b"}, 2, 256 << 10);  // small containers: several per file
  ContentWriter w(store_.get());
  const std::string first = Payload(300 << 10, 1);
  FileRecord rec = WriteFile(&w, first);
  ASSERT_TRUE(Commit(&w).ok());
  const auto committed = Containers(store_.get());
  ASSERT_EQ(committed.size(), 2u);
  ASSERT_GE(committed[0].size(), 2u);
  // More, never committed: new containers in both sets.
  WriteFile(&w, Payload(600 << 10, 2));
  const auto all = Containers(store_.get());
  ASSERT_GT(all[0].size(), committed[0].size());
  ASSERT_GT(all[1].size(), committed[1].size());

  EXPECT_TRUE(w.DiscardUncommitted().ok());
  EXPECT_EQ(Containers(store_.get()), committed);
  // What was committed still reads back, from either copy.
  EXPECT_TRUE(Rebuild(rec, 0) == first);
  EXPECT_TRUE(Rebuild(rec, 1) == first);
  // The writer is done.
  w.BeginFile();
  EXPECT_EQ(w.Write(0, "x").err(), ECANCELED);
}

TEST_F(ContentWriterTest, DiscardUncommittedOfAWriterThatCommittedNothingLeavesNoContainer) {
  MakeStore();
  {
    ContentWriter w(store_.get());
    DiscardUnlessKept discard(&w);
    WriteFile(&w, Payload(200 << 10, 3));
    ASSERT_FALSE(Containers(store_.get())[0].empty());
  }
  EXPECT_TRUE(Containers(store_.get())[0].empty());
  // Kept: nothing is removed.
  {
    ContentWriter w(store_.get());
    DiscardUnlessKept discard(&w);
    WriteFile(&w, Payload(200 << 10, 4));
    discard.Keep();
  }
  EXPECT_FALSE(Containers(store_.get())[0].empty());
}

}  // namespace
}  // namespace overtier
