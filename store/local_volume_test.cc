#include "store/local_volume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/store.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::ExpectNamedObjectsWork;
using test::HasSubstr;
using test::Payload;
using test::ScratchStore;

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ~uint64_t{0};
  return static_cast<uint64_t>(st.st_size);
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::string ReadRange(VolumeReader* r, uint64_t off, size_t n) {
  std::string buf(n, '\0');
  Status s = r->ReadAt(off, n, buf.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return buf;
}

TEST(LocalVolume, CreateAppendSyncRead) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(7, &w).ok());
  EXPECT_TRUE(Exists(store.set_dir() + "/vv-0000000000000007.vv"));
  std::string data = Payload(10000, 1);
  ASSERT_TRUE(w->Append(std::string_view(data).substr(0, 3)).ok());
  ASSERT_TRUE(w->Append(std::string_view(data).substr(3)).ok());
  EXPECT_EQ(w->Size(), 10000u);
  ASSERT_TRUE(w->Sync().ok());
  EXPECT_EQ(FileSize(store.PiecePath(7, 0)), 10000u);

  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(store.set()->Open(7, &r).ok());
  EXPECT_EQ(r->Size(), 10000u);
  EXPECT_EQ(ReadRange(r.get(), 0, 10000), data);
  EXPECT_EQ(ReadRange(r.get(), 9999, 1), data.substr(9999));
  EXPECT_EQ(ReadRange(r.get(), 10000, 0), "");
}

// LocalVolumeOptions::keep_free: on the catalog's file system an append
// that would leave less than keep_free bytes free fails (ENOSPC, saying
// why); elsewhere (another st_dev) it does not apply.
TEST(LocalVolume, AppendsLeaveTheRoomKeptForTheCatalog) {
  ScratchStore scratch;
  struct stat st;
  ASSERT_EQ(stat(scratch.store_dir().c_str(), &st), 0);
  for (bool same_disk : {true, false}) {
    LocalVolumeOptions o;
    o.keep_free = uint64_t{1} << 62;  // more than any disk has
    o.keep_free_dev = same_disk ? st.st_dev : st.st_dev + 1;
    std::unique_ptr<VolumeSet> set;
    const std::string name = same_disk ? "same" : "other";
    ASSERT_TRUE(OpenLocalVolumeSet(scratch.store_dir(), name, o, &set).ok());
    std::unique_ptr<VolumeWriter> w;
    ASSERT_TRUE(set->Create(1, &w).ok());
    const std::string data = Payload(200000, 3);  // unbuffered: written at once
    Status s = w->Append(data);
    if (same_disk) {
      EXPECT_EQ(s.err(), ENOSPC) << s.ToString();
      EXPECT_TRUE(HasSubstr(s.message(), "keeps")) << s.ToString();
      EXPECT_EQ(w->Size(), 0u) << "nothing written";
    } else {
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
  }
  EXPECT_EQ(CatalogRoom(0), uint64_t{1} << 20);
  EXPECT_EQ(CatalogRoom(uint64_t{1} << 30), (uint64_t{1} << 30) / 50);
  EXPECT_EQ(CatalogRoom(uint64_t{1} << 40), uint64_t{64} << 20);
}

TEST(LocalVolume, NamedObjectsBesideTheContainers) {
  ScratchStore store;
  ExpectNamedObjectsWork(store.set());
  // As files that no container listing takes for a container.
  EXPECT_TRUE(Exists(store.set_dir() + "/obj-img-a.1"));
}

TEST(LocalVolume, BufferedAppendsReachTheFileOnSync) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(1, &w).ok());
  ASSERT_TRUE(w->Append("small").ok());
  EXPECT_EQ(w->Size(), 5u);
  EXPECT_EQ(FileSize(store.PiecePath(1, 0)), 0u);  // still in the write buffer
  ASSERT_TRUE(w->Sync().ok());
  EXPECT_EQ(FileSize(store.PiecePath(1, 0)), 5u);
}

TEST(LocalVolume, PiecesSplitAtThePieceSize) {
  ScratchStore store(8192);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(2, &w).ok());
  std::string data = Payload(30000, 2);
  // Appends of assorted sizes, some crossing piece boundaries, one bigger
  // than a piece.
  size_t sizes[] = {1, 4095, 4097, 100, 20000, 1707};
  size_t at = 0;
  for (size_t n : sizes) {
    ASSERT_TRUE(w->Append(std::string_view(data).substr(at, n)).ok());
    at += n;
  }
  ASSERT_EQ(at, data.size());
  ASSERT_TRUE(w->Seal().ok());
  EXPECT_EQ(FileSize(store.PiecePath(2, 0)), 8192u);
  EXPECT_EQ(FileSize(store.PiecePath(2, 1)), 8192u);
  EXPECT_EQ(FileSize(store.PiecePath(2, 2)), 8192u);
  EXPECT_EQ(FileSize(store.PiecePath(2, 3)), 30000u - 3 * 8192);
  EXPECT_TRUE(Exists(store.set_dir() + "/vv-0000000000000002.vv.3"));
  EXPECT_FALSE(Exists(store.PiecePath(2, 4)));

  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(store.set()->Open(2, &r).ok());
  EXPECT_EQ(r->Size(), 30000u);
  EXPECT_EQ(ReadRange(r.get(), 0, 30000), data);
  for (uint64_t off : {8191u, 8192u, 16000u, 24575u, 24576u}) {
    EXPECT_EQ(ReadRange(r.get(), off, 1000 < 30000 - off ? 1000 : 30000 - off),
              data.substr(off, 1000))
        << off;
  }
}

// cachestat(2) (Linux 6.5): the page cache state of a file's range. Not
// in Debian 12's headers.
struct CacheStat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
int CacheStatOf(int fd, CacheStat* out) {
  struct {
    uint64_t off, len;
  } range{0, 0};                    // len 0: to the end of the file
  constexpr long kCacheStat = 451;  // the same on every architecture
  return static_cast<int>(syscall(kCacheStat, fd, &range, out, 0));
}

// A writer starts the disk writes of what it appended every few MiB
// (sync_file_range), so that a Sync, or the seal of a full container,
// finds them mostly done instead of writing all at once while the archive
// waits (measured: bench/migrate's archive row, 0.71 -> 1.07 of dd).
TEST(LocalVolume, AppendsAreOnTheirWayToDiskBeforeTheSync) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(3, &w).ok());
  const std::string mib = Payload(1 << 20, 3);
  for (int i = 0; i < 16; i++) ASSERT_TRUE(w->Append(mib).ok());
  const int fd = open(store.PiecePath(3, 0).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  CacheStat cs{};
  const int rc = CacheStatOf(fd, &cs);
  const int err = errno;
  close(fd);
  if (rc != 0 && err == ENOSYS) GTEST_SKIP() << "no cachestat(2) in this kernel";
  ASSERT_EQ(rc, 0) << strerror(err);
  if (cs.nr_cache == 0) GTEST_SKIP() << "the scratch file system keeps no page cache";
  // 16 MiB appended, none synced: without the kicks, all 4096 pages would
  // be dirty (the flusher waits 30 s, or for GBs of dirty data).
  EXPECT_LT(cs.nr_dirty, 1024u) << cs.nr_cache << " cached, " << cs.nr_writeback
                                << " under writeback";
  ASSERT_TRUE(w->Sync().ok());
}

TEST(LocalVolume, ReadPastTheEndIsAnError) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(3, &w).ok());
  ASSERT_TRUE(w->Append("abc").ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(store.set()->Open(3, &r).ok());
  char buf[4];
  Status s = r->ReadAt(1, 3, buf);
  EXPECT_EQ(s.err(), ENODATA);
  EXPECT_TRUE(HasSubstr(s.message(), "past the end of vv-0000000000000003"));
  EXPECT_EQ(r->ReadAt(4, 0, buf).err(), ENODATA);
  EXPECT_EQ(r->ReadAt(~uint64_t{0}, 2, buf).err(), ENODATA);
}

TEST(LocalVolume, AppendAfterSealIsRefused) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(3, &w).ok());
  ASSERT_TRUE(w->Seal().ok());
  EXPECT_EQ(w->Append("x").err(), EBADF);
  EXPECT_EQ(w->Sync().err(), EBADF);
}

TEST(LocalVolume, CreateTwiceIsEEXIST) {
  ScratchStore store;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(4, &w).ok());
  Status s = store.set()->Create(4, &w);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000004 already exists in volume set 'local'"));
}

TEST(LocalVolume, MissingContainerIsNotFound) {
  ScratchStore store;
  std::unique_ptr<VolumeReader> r;
  Status s = store.set()->Open(99, &r);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000063 does not exist in volume set 'local'"));
  std::unique_ptr<VolumeWriter> w;
  EXPECT_EQ(store.set()->OpenForAppend(99, &w).err(), ENOENT);
  EXPECT_EQ(store.set()->Remove(99).err(), ENOENT);
}

TEST(LocalVolume, ListSkipsPiecesAndForeignFilesRemoveTakesAllPieces) {
  ScratchStore store(4096);
  for (uint64_t id : {0x30u, 0x5u, 0xabcdefu}) {
    std::unique_ptr<VolumeWriter> w;
    ASSERT_TRUE(store.set()->Create(id, &w).ok());
    ASSERT_TRUE(w->Append(Payload(10000, id)).ok());
    ASSERT_TRUE(w->Seal().ok());
  }
  for (const char* junk : {"notes.txt", "vv-00000000000000zz.vv", "vv-0000000000000001.vvx",
                           "vv-000000000000001.vv", "vv-0000000000000001.vv.tmp"}) {
    std::ofstream(store.set_dir() + "/" + junk) << "x";
  }
  std::vector<uint64_t> ids;
  ASSERT_TRUE(store.set()->List(&ids).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{0x5, 0x30, 0xabcdef}));

  EXPECT_TRUE(Exists(store.PiecePath(0x30, 2)));
  ASSERT_TRUE(store.set()->Remove(0x30).ok());
  for (uint64_t n = 0; n < 3; n++) EXPECT_FALSE(Exists(store.PiecePath(0x30, n))) << n;
  ASSERT_TRUE(store.set()->List(&ids).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{0x5, 0xabcdef}));
  std::unique_ptr<VolumeReader> r;
  EXPECT_EQ(store.set()->Open(0x30, &r).err(), ENOENT);
}

TEST(LocalVolume, AReaderKeepsItsDataWhenTheContainerIsRemoved) {
  ScratchStore store(4096);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(8, &w).ok());
  std::string data = Payload(9000, 8);
  ASSERT_TRUE(w->Append(data).ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(store.set()->Open(8, &r).ok());
  ASSERT_TRUE(store.set()->Remove(8).ok());
  EXPECT_EQ(ReadRange(r.get(), 0, 9000), data);
}

TEST(LocalVolume, OpenForAppendContinuesAtTheEnd) {
  for (uint64_t first : {5000u, 8192u}) {  // mid-piece, and exactly a full piece
    ScratchStore store(8192);
    std::unique_ptr<VolumeWriter> w;
    ASSERT_TRUE(store.set()->Create(9, &w).ok());
    std::string data = Payload(20000, 9);
    ASSERT_TRUE(w->Append(std::string_view(data).substr(0, first)).ok());
    ASSERT_TRUE(w->Sync().ok());
    w.reset();  // as if the writer had crashed after its Sync

    ASSERT_TRUE(store.set()->OpenForAppend(9, &w).ok());
    EXPECT_EQ(w->Size(), first);
    ASSERT_TRUE(w->Append(std::string_view(data).substr(first)).ok());
    ASSERT_TRUE(w->Seal().ok());
    std::unique_ptr<VolumeReader> r;
    ASSERT_TRUE(store.set()->Open(9, &r).ok());
    EXPECT_EQ(r->Size(), 20000u);
    EXPECT_EQ(ReadRange(r.get(), 0, 20000), data) << first;
  }
}

TEST(LocalVolume, PiecesAfterAShortPieceAreIgnoredAndBlockAppends) {
  ScratchStore store(4096);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(10, &w).ok());
  std::string data = Payload(10000, 10);
  ASSERT_TRUE(w->Append(data).ok());
  ASSERT_TRUE(w->Seal().ok());
  // A crash that lost the end of piece 1 but kept piece 2.
  ASSERT_EQ(truncate(store.PiecePath(10, 1).c_str(), 1000), 0);
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(store.set()->Open(10, &r).ok());
  EXPECT_EQ(r->Size(), 4096u + 1000);
  EXPECT_EQ(ReadRange(r.get(), 0, 5096), data.substr(0, 5096));
  std::unique_ptr<VolumeWriter> a;
  Status s = store.set()->OpenForAppend(10, &a);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "pieces after a short piece"));
}

TEST(LocalVolume, APieceLargerThanThePieceSizeIsCorruption) {
  test::TempDir dir;
  std::unique_ptr<VolumeSet> big, small;
  LocalVolumeOptions o;
  o.piece_size = 16384;
  ASSERT_TRUE(OpenLocalVolumeSet(dir.path(), "s", o, &big).ok());
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(big->Create(1, &w).ok());
  ASSERT_TRUE(w->Append(Payload(10000, 1)).ok());
  ASSERT_TRUE(w->Seal().ok());
  o.piece_size = 4096;  // misconfigured reader
  ASSERT_TRUE(OpenLocalVolumeSet(dir.path(), "s", o, &small).ok());
  std::unique_ptr<VolumeReader> r;
  Status s = small->Open(1, &r);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "not a piece of at most 4096 bytes"));
}

TEST(LocalVolume, SetOptionsAreValidated) {
  test::TempDir dir;
  std::unique_ptr<VolumeSet> set;
  LocalVolumeOptions o;
  for (std::string bad : {"", ".hidden", "a/b", "..", "sp ace", "\xc3\xa9"}) {
    EXPECT_EQ(OpenLocalVolumeSet(dir.path(), bad, o, &set).err(), EINVAL) << bad;
  }
  EXPECT_EQ(OpenLocalVolumeSet(dir.path(), std::string(65, 'a'), o, &set).err(), EINVAL);
  ASSERT_TRUE(OpenLocalVolumeSet(dir.path(), std::string(64, 'a'), o, &set).ok());
  for (uint64_t piece : {0ull, 1000ull, (64ull << 20) + 4096}) {
    o.piece_size = piece;
    EXPECT_EQ(OpenLocalVolumeSet(dir.path(), "a", o, &set).err(), EINVAL) << piece;
  }
  o = LocalVolumeOptions();
  o.create_if_missing = false;
  Status s = OpenLocalVolumeSet(dir.path(), "a", o, &set);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "does not exist"));
  EXPECT_EQ(OpenLocalVolumeSet(dir.path() + "/nope", "a", LocalVolumeOptions(), &set).err(),
            ENOENT);
  // Created once, then found without create_if_missing.
  ASSERT_TRUE(OpenLocalVolumeSet(dir.path(), "a", LocalVolumeOptions(), &set).ok());
  ASSERT_TRUE(OpenLocalVolumeSet(dir.path(), "a", o, &set).ok());
  EXPECT_EQ(set->name(), "a");
  EXPECT_TRUE(Exists(dir.path() + "/volumes/a"));
}

TEST(LocalVolume, RawSegmentsMapRangesOntoPieceFiles) {
  ScratchStore store(8192);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(store.set()->Create(11, &w).ok());
  std::string data = Payload(20000, 11);
  ASSERT_TRUE(w->Append(data).ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(store.set()->Open(11, &r).ok());

  std::vector<RawSegment> segs;
  // 4096..24576 crosses pieces 0, 1, 2 and runs past the end (20000).
  ASSERT_TRUE(r->RawSegments(4096, 20480, &segs).ok());
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_EQ(segs[0].file_offset, 4096u);
  EXPECT_EQ(segs[0].container_offset, 4096u);
  EXPECT_EQ(segs[0].length, 4096u);
  EXPECT_EQ(segs[1].file_offset, 0u);
  EXPECT_EQ(segs[1].container_offset, 8192u);
  EXPECT_EQ(segs[1].length, 8192u);
  EXPECT_EQ(segs[2].container_offset, 16384u);
  EXPECT_EQ(segs[2].length, 20000u - 16384);
  for (const RawSegment& seg : segs) {
    std::string buf(seg.length, '\0');
    ASSERT_EQ(pread(seg.fd, buf.data(), buf.size(), static_cast<off_t>(seg.file_offset)),
              static_cast<ssize_t>(buf.size()));
    EXPECT_EQ(buf, data.substr(seg.container_offset, seg.length));
  }
  EXPECT_EQ(r->RawSegments(20001, 1, &segs).err(), ENODATA);
}

}  // namespace
}  // namespace overtier
