#include "store/content_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "store/content_writer.h"
#include "store/local_volume.h"
#include "store/vv_format.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::Payload;
using test::TempDir;

constexpr uint64_t kChunk = 64 << 10;

class ContentReaderTest : public ::testing::Test {
 protected:
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

  // Stores `data` (zero runs become holes) and commits it.
  FileRecord Store1(const std::string& data, uint64_t size = UINT64_MAX) {
    ContentWriter w(store_.get());
    w.BeginFile();
    for (size_t off = 0; off < data.size(); off += 50000) {
      Status s = w.Write(off, std::string_view(data).substr(off, 50000));
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    FileRecord rec;
    Status s = w.EndFile(size == UINT64_MAX ? data.size() : size, &rec);
    EXPECT_TRUE(s.ok()) << s.ToString();
    Catalog::Batch b(store_->catalog());
    s = w.Finish(&b);
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = b.Commit();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return rec;
  }

  // The file holding container vv_id (piece 0), wherever its set lives.
  std::string ContainerFile(uint64_t vv_id) {
    const std::string name = LocalPieceName(vv_id, 0);
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path())) {
      if (e.path().filename() == name) return e.path().string();
    }
    ADD_FAILURE() << "no file " << name << " under " << dir_.path();
    return "";
  }

  void FlipByte(uint64_t vv_id, uint64_t offset) {
    int fd = open(ContainerFile(vv_id).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, offset), 1);
    c ^= 0x40;
    ASSERT_EQ(pwrite(fd, &c, 1, offset), 1);
    close(fd);
  }

  static std::string ReadAll(ContentReader* r, const FileRecord& rec, uint64_t off, size_t n,
                             Status* status) {
    std::string out(n, '\x55');
    size_t got = 0;
    *status = r->Read(Bfid{}, rec, off, n, out.data(), &got, "/some/file");
    out.resize(status->ok() ? got : 0);
    return out;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// A file with data, zero chunks (holes), a partial last chunk and a size
// past the data.
std::string ModelFile() {
  std::string data;
  for (int i = 0; i < 9; i++) {
    if (i == 2 || i == 5 || i == 6) {
      data += std::string(kChunk, '\0');
    } else {
      data += Payload(kChunk, 300 + i);
    }
  }
  data += Payload(kChunk / 3, 400);
  return data;
}

TEST_F(ContentReaderTest, RandomReadsMatchTheModel) {
  MakeStore();
  const std::string data = ModelFile();
  const uint64_t size = data.size() + 5000;  // zeros after the data
  const std::string model = data + std::string(5000, '\0');
  FileRecord rec = Store1(data, size);
  ContentReader r(store_.get());
  std::mt19937_64 rng(42);
  for (int i = 0; i < 400; i++) {
    uint64_t off = rng() % (size + 100);
    size_t n = rng() % (3 * kChunk);
    Status s;
    std::string got = ReadAll(&r, rec, off, n, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::string want = off >= size ? "" : model.substr(off, n);
    ASSERT_EQ(got.size(), want.size()) << off << "+" << n;
    ASSERT_TRUE(got == want) << "read " << off << "+" << n << " differs";
  }
  // The end of the file exactly, and a read crossing it.
  Status s;
  EXPECT_EQ(ReadAll(&r, rec, size, 10, &s), "");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(ReadAll(&r, rec, size - 7000, 100000, &s), model.substr(size - 7000));
  EXPECT_EQ(ReadAll(&r, rec, 0, size, &s), model);
  EXPECT_EQ(r.stats().checksum_failures, 0u);
  EXPECT_EQ(r.stats().fallbacks, 0u);
  int damaged = -1;
  EXPECT_TRUE(r.VerifyAll(rec, "/some/file", &damaged).ok());
  EXPECT_EQ(damaged, 0);
}

TEST_F(ContentReaderTest, ReadsSpanningContainers) {
  MakeStore({}, 0, 4 * (kChunk + kVvAlign) + kVvAlign);  // 4 chunks per container
  std::string data;
  for (int i = 0; i < 15; i++) data += Payload(kChunk, 500 + i);
  data += "tail";
  FileRecord rec = Store1(data);
  std::set<uint64_t> vvs;
  for (const Extent& e : rec.copies[0].extents) vvs.insert(e.vv_id);
  ASSERT_EQ(vvs.size(), 4u);
  ContentReader r(store_.get(), ContentReaderOptions{0, 0});  // no cache
  Status s;
  EXPECT_TRUE(ReadAll(&r, rec, 0, data.size(), &s) == data);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.stats().extents_read, 16u);
  // Chunks 3 to 6: across the first two containers.
  EXPECT_TRUE(ReadAll(&r, rec, 3 * kChunk + 5, 3 * kChunk, &s) ==
              data.substr(3 * kChunk + 5, 3 * kChunk));
  EXPECT_EQ(r.stats().extents_read, 20u);
  EXPECT_EQ(r.stats().cache_hits, 0u);
}

// A file whose chunks repeat (deduplicated within the file): one fetch
// serves several extents at different file offsets, and each must get its
// bytes placed at its own offset. Without a cache, so the repeats are not
// served by cache hits instead.
TEST_F(ContentReaderTest, RepeatedChunksInOneReadLandAtTheirOwnOffsets) {
  MakeStore();
  const std::string a = Payload(kChunk, 700), b = Payload(kChunk, 701);
  const std::string data = a + b + a + a + b + "end";
  FileRecord rec = Store1(data);
  std::set<uint64_t> distinct;
  for (const Extent& e : rec.copies[0].extents) distinct.insert(e.vv_offset);
  ASSERT_EQ(distinct.size(), 3u);  // a, b and the tail
  ContentReader r(store_.get(), ContentReaderOptions{0, 0});
  Status s;
  EXPECT_TRUE(ReadAll(&r, rec, 0, data.size(), &s) == data);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ReadAll(&r, rec, kChunk + 9, 3 * kChunk, &s) == data.substr(kChunk + 9, 3 * kChunk));
}

TEST_F(ContentReaderTest, FlippedByteInOneCopyFallsBackToTheOther) {
  MakeStore({"a", "b"}, 2);
  const std::string data = Payload(3 * kChunk, 600);
  FileRecord rec = Store1(data);
  ASSERT_EQ(rec.copies.size(), 2u);
  const Extent& e = rec.copies[0].extents[1];
  FlipByte(e.vv_id, e.vv_offset + 10);
  ContentReader r(store_.get());
  Status s;
  EXPECT_TRUE(ReadAll(&r, rec, kChunk, kChunk, &s) == data.substr(kChunk, kChunk));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.stats().fallbacks, 1u);
  EXPECT_EQ(r.stats().checksum_failures, 1u);

  int damaged = -1;
  ContentReader fsck(store_.get());
  s = fsck.VerifyAll(rec, "/some/file", &damaged);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_EQ(damaged, 1);
  EXPECT_TRUE(HasSubstr(s.message(), "/some/file"));
  EXPECT_TRUE(HasSubstr(s.message(), VvName(e.vv_id)));
  EXPECT_TRUE(HasSubstr(s.message(), "offset " + std::to_string(e.vv_offset)));
}

// The local sources of a read: every range outside the holes, each lying
// verified in a container file (the bytes at fd/fd_offset are the file's),
// from the copy that served it (here the second, the first being damaged),
// and the same again when the chunks come from the cache.
TEST_F(ContentReaderTest, LocalSourcesPlaceEveryServedChunkInItsContainer) {
  MakeStore({"a", "b"}, 2);
  std::string data = Payload(6 * kChunk + 1000, 601);
  std::fill(data.begin() + 2 * kChunk, data.begin() + 3 * kChunk, '\0');  // a hole
  FileRecord rec = Store1(data);
  ASSERT_EQ(rec.copies.size(), 2u);
  const Extent& bad = rec.copies[0].extents[0];
  FlipByte(bad.vv_id, bad.vv_offset + 10);
  ContentReader r(store_.get());
  for (int pass = 0; pass < 2; pass++) {
    std::string buf(data.size(), '\0');
    size_t got = 0;
    std::vector<LocalSource> src;
    Status s = r.Read(Bfid{}, rec, 0, buf.size(), buf.data(), &got, "f", nullptr, &src);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(buf == data);
    uint64_t covered = 0, last_end = 0;
    for (const LocalSource& l : src) {
      EXPECT_GE(l.offset, last_end) << "in order, disjoint";
      last_end = l.offset + l.length;
      EXPECT_TRUE(l.offset >= 3 * kChunk || l.offset + l.length <= 2 * kChunk) << "not the hole";
      std::string on_disk(l.length, '\0');
      ASSERT_EQ(pread(l.fd, on_disk.data(), l.length, static_cast<off_t>(l.fd_offset)),
                static_cast<ssize_t>(l.length));
      EXPECT_TRUE(on_disk == data.substr(l.offset, l.length))
          << "pass " << pass << " at " << l.offset;
      covered += l.length;
    }
    EXPECT_EQ(covered, data.size() - kChunk) << "pass " << pass;
  }
  EXPECT_GT(r.stats().cache_hits, 0u);
}

// Prefetch fills the cache, so that the Read after it goes to no
// container; a chunk whose first copy is damaged comes from the second;
// a chunk no copy has is EIO, and the Read then says why.
TEST_F(ContentReaderTest, PrefetchFillsTheCacheForTheReadThatFollows) {
  MakeStore({"a", "b"}, 2);
  const std::string data = Payload(12 * kChunk, 602);
  FileRecord rec = Store1(data);
  ASSERT_EQ(rec.copies.size(), 2u);
  ContentReader r(store_.get());
  Status s = r.Prefetch(rec, 0, 4 * kChunk);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.stats().extents_read, 4u) << "nothing further ahead";
  Status st;
  EXPECT_TRUE(ReadAll(&r, rec, 0, 4 * kChunk, &st) == data.substr(0, 4 * kChunk));
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.stats().extents_read, 4u) << "all from the cache";
  EXPECT_EQ(r.stats().cache_hits, 4u);

  const Extent& bad = rec.copies[0].extents[5];
  FlipByte(bad.vv_id, bad.vv_offset + 10);
  s = r.Prefetch(rec, 4 * kChunk, 4 * kChunk);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.stats().checksum_failures, 1u);
  EXPECT_TRUE(ReadAll(&r, rec, 4 * kChunk, 4 * kChunk, &st) == data.substr(4 * kChunk, 4 * kChunk));
  ASSERT_TRUE(st.ok()) << st.ToString();

  for (int c = 0; c < 2; c++) {
    const Extent& e = rec.copies[c].extents[9];
    FlipByte(e.vv_id, e.vv_offset + 10);
  }
  ContentReader fresh(store_.get());  // r read chunk 9 ahead, into its cache
  EXPECT_EQ(fresh.Prefetch(rec, 8 * kChunk, 4 * kChunk).err(), EIO);
  ReadAll(&fresh, rec, 8 * kChunk, 4 * kChunk, &st);
  EXPECT_EQ(st.err(), EIO);
  EXPECT_TRUE(HasSubstr(st.message(), "checksum mismatch")) << st.ToString();
}

TEST_F(ContentReaderTest, FlippedByteInBothCopiesIsEio) {
  MakeStore({"a", "b"}, 2);
  const std::string data = Payload(2 * kChunk + 100, 700);
  FileRecord rec = Store1(data);
  const Extent& e0 = rec.copies[0].extents[2];
  const Extent& e1 = rec.copies[1].extents[2];
  FlipByte(e0.vv_id, e0.vv_offset + 99);
  FlipByte(e1.vv_id, e1.vv_offset);
  ContentReader r(store_.get(), ContentReaderOptions{uint64_t{64} << 20, 0});  // no readahead
  Status s;
  // The intact part still reads.
  EXPECT_TRUE(ReadAll(&r, rec, 0, 2 * kChunk, &s) == data.substr(0, 2 * kChunk));
  EXPECT_TRUE(s.ok());
  ReadAll(&r, rec, kChunk, 2 * kChunk, &s);
  EXPECT_EQ(s.err(), EIO);
  const std::string want = "/some/file: chunk at container " + VvName(e0.vv_id) + " offset " +
                           std::to_string(e0.vv_offset) + " (set a): checksum mismatch";
  EXPECT_TRUE(HasSubstr(s.message(), want));
  EXPECT_TRUE(HasSubstr(s.message(), VvName(e1.vv_id)));
  EXPECT_EQ(r.stats().checksum_failures, 2u);
  int damaged = -1;
  EXPECT_EQ(r.VerifyAll(rec, "/some/file", &damaged).err(), EIO);
  EXPECT_EQ(damaged, 2);
}

// The EIO of a chunk past the cut names the file, the container, the
// chunk's offset and the truncation.
void ExpectTruncatedAt(const Status& s, const Extent& e) {
  EXPECT_TRUE(HasSubstr(s.message(), "/some/file: chunk at container " + VvName(e.vv_id) +
                                         " offset " + std::to_string(e.vv_offset)))
      << s.message();
  EXPECT_TRUE(HasSubstr(s.message(), "truncated")) << s.message();
}

TEST_F(ContentReaderTest, TruncatedContainerIsEio) {
  MakeStore();
  const std::string data = Payload(4 * kChunk, 800);
  FileRecord rec = Store1(data);
  const Extent& e = rec.copies[0].extents[2];
  // A reader already using the container when it gets truncated: the
  // chunks still there read, the one cut short is EIO.
  ContentReader r(store_.get(), ContentReaderOptions{0, 0});  // no cache
  Status s;
  EXPECT_TRUE(ReadAll(&r, rec, 0, kChunk, &s) == data.substr(0, kChunk));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(truncate(ContainerFile(e.vv_id).c_str(), e.vv_offset + 1000), 0);
  ReadAll(&r, rec, 2 * kChunk + 5, 10, &s);
  EXPECT_EQ(s.err(), EIO);
  ExpectTruncatedAt(s, e);
  EXPECT_TRUE(ReadAll(&r, rec, 0, 2 * kChunk, &s) == data.substr(0, 2 * kChunk));
  EXPECT_TRUE(s.ok()) << s.ToString();

  // Opened after the damage (a container shorter than its catalog row):
  // the same, the chunks before the cut read, the others are EIO.
  std::unique_ptr<Store> ro;
  s = Store::Open(path_, StoreOpenOptions{true}, &ro);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ContentReader r2(ro.get());
  ReadAll(&r2, rec, 0, data.size(), &s);
  EXPECT_EQ(s.err(), EIO);
  ExpectTruncatedAt(s, e);
  EXPECT_TRUE(ReadAll(&r2, rec, 0, 2 * kChunk, &s) == data.substr(0, 2 * kChunk));
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ReadAll(&r2, rec, kChunk + 7, kChunk - 7, &s) == data.substr(kChunk + 7, kChunk - 7));
  EXPECT_TRUE(s.ok()) << s.ToString();
  ReadAll(&r2, rec, 3 * kChunk, 10, &s);  // wholly past the cut
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "truncated")) << s.message();
  int damaged = -1;
  s = r2.VerifyAll(rec, "/some/file", &damaged);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_EQ(damaged, 1);
}

TEST_F(ContentReaderTest, MissingContainerIsEio) {
  MakeStore();
  const std::string data = Payload(2 * kChunk, 900);
  FileRecord rec = Store1(data);
  const Extent& e = rec.copies[0].extents[0];
  ASSERT_EQ(unlink(ContainerFile(e.vv_id).c_str()), 0);
  ContentReader r(store_.get());
  Status s;
  ReadAll(&r, rec, 0, 10, &s);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "/some/file: chunk at container " + VvName(e.vv_id)))
      << s.message();
  int damaged = -1;
  EXPECT_EQ(r.VerifyAll(rec, "/some/file", &damaged).err(), EIO);
  EXPECT_EQ(damaged, 1);
}

TEST_F(ContentReaderTest, SequentialReadsAreReadAhead) {
  MakeStore();
  std::string data;
  for (int i = 0; i < 20; i++) data += Payload(kChunk, 1000 + i);
  FileRecord rec = Store1(data);
  const Bfid bfid{{1, 2, 3}};
  {
    ContentReader r(store_.get(), ContentReaderOptions{uint64_t{64} << 20, 8});
    for (uint64_t off = 0; off < data.size(); off += kChunk / 2) {
      std::string buf(kChunk / 2, '\0');
      size_t got = 0;
      Status s = r.Read(bfid, rec, off, buf.size(), buf.data(), &got, "f");
      ASSERT_TRUE(s.ok()) << s.ToString();
      ASSERT_TRUE(buf == data.substr(off, kChunk / 2)) << off;
    }
    // Every chunk read once from disk, in 3 submissions (1+8, 1+8, 1+1).
    EXPECT_EQ(r.stats().extents_read, 20u);
    EXPECT_EQ(r.stats().cache_hits, 40u - 3u);
  }
  {
    // Without readahead each chunk's first half is a miss.
    ContentReader r(store_.get(), ContentReaderOptions{uint64_t{64} << 20, 0});
    for (uint64_t off = 0; off < data.size(); off += kChunk / 2) {
      std::string buf(kChunk / 2, '\0');
      size_t got = 0;
      ASSERT_TRUE(r.Read(bfid, rec, off, buf.size(), buf.data(), &got, "f").ok());
    }
    EXPECT_EQ(r.stats().extents_read, 20u);
    EXPECT_EQ(r.stats().cache_hits, 20u);
  }
  {
    // Random reads get no readahead.
    ContentReader r(store_.get());
    std::string buf(100, '\0');
    size_t got = 0;
    ASSERT_TRUE(r.Read(bfid, rec, 5 * kChunk + 1, 100, buf.data(), &got, "f").ok());
    ASSERT_TRUE(r.Read(bfid, rec, 9 * kChunk + 1, 100, buf.data(), &got, "f").ok());
    EXPECT_EQ(r.stats().extents_read, 2u);
  }
}

TEST_F(ContentReaderTest, ConcurrentReadsFromFourThreads) {
  MakeStore({"a", "b"}, 2);
  const std::string data = ModelFile();
  FileRecord rec = Store1(data);
  // A cache of 4 chunks: threads evict each other's chunks all the time.
  ContentReader r(store_.get(), ContentReaderOptions{4 * kChunk, 2});
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      const Bfid bfid{{static_cast<uint8_t>(t + 1)}};
      std::string buf;
      uint64_t off = 0;
      for (int i = 0; i < 200; i++) {
        size_t n = 1 + rng() % (2 * kChunk);
        if (rng() % 2 == 0) off = rng() % data.size();  // else sequential
        if (off >= data.size()) off = 0;
        buf.assign(n, '\0');
        size_t got = 0;
        Status s = r.Read(bfid, rec, off, n, buf.data(), &got, "f");
        if (!s.ok() || got != std::min<uint64_t>(n, data.size() - off) ||
            std::memcmp(buf.data(), data.data() + off, got) != 0) {
          bad++;
        }
        off += got;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(r.stats().checksum_failures, 0u);
}

}  // namespace
}  // namespace overtier
