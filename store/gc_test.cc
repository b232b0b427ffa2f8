#include "store/gc.h"

#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/fsck.h"
#include "store/gc_fsck_testutil.h"
#include "store/vv_writer.h"

namespace overtier {
namespace {

using test::ImageFiles;
using test::Payload;

class GcTest : public test::StoreFixture {
 protected:
  GcReport Gc(double threshold = 0.5, std::function<Status(std::string_view)> hook = nullptr) {
    GcOptions o;
    o.threshold = threshold;
    o.hook = std::move(hook);
    GcReport r;
    Status s = RunGc(store_.get(), o, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }

  void ExpectFsckClean() {
    FsckReport r;
    Status s = RunFsck(store_.get(), FsckOptions(), &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (const FsckIssue& i : r.issues) {
      EXPECT_NE(i.severity, FsckSeverity::kError) << i.kind << ": " << i.message;
    }
  }

  // No leftovers: every container file has a row and vice versa, none is
  // retired, no gc job is pending.
  void ExpectTidy() {
    auto vols = Volumes();
    std::vector<uint64_t> rows;
    for (auto& [id, v] : vols) {
      rows.push_back(id);
      EXPECT_NE(v.state, VolumeState::kCompacting) << VvName(id);
      EXPECT_NE(v.state, VolumeState::kOpen) << VvName(id);
    }
    EXPECT_EQ(rows, ContainerFiles());
    size_t jobs = Count([&](auto fn) { return store_->catalog()->ScanJobs(0, fn); });
    EXPECT_EQ(jobs, 0u);
  }

  // Image A: a big file of its own and a file whose content image B shares.
  const std::string shared_ = Payload(3 * 4096, 7);
  const ImageFiles a_{{"own", Payload(40 * 1024, 1)}, {"dir/shared", shared_}};
  const ImageFiles b_{{"copy", shared_}, {"mine", Payload(5000, 3)}};
};

TEST_F(GcTest, NothingToDoOnAFreshStore) {
  MakeStore();
  GcReport r = Gc();
  EXPECT_EQ(r.files_deleted, 0u);
  EXPECT_EQ(r.containers_removed, 0u);
  ExpectTidy();
}

TEST_F(GcTest, RemovedImageIsReclaimedAndSharedContentKept) {
  MakeStore();
  AddImage("A", a_);
  AddImage("B", b_);
  const size_t files_before = FilesRows();
  RemoveImage("A");
  GcReport r = Gc();
  EXPECT_EQ(r.image_trees_deleted, 1u);
  EXPECT_EQ(r.files_deleted, 2u);
  EXPECT_EQ(FilesRows(), files_before - 2);
  // A's container held 40 KiB of its own and the 12 KiB B shares: under the
  // threshold, compacted; the old one removed (no mount runs).
  EXPECT_GE(r.containers_compacted, 1u);
  EXPECT_GE(r.containers_removed, 1u);
  EXPECT_GT(r.bytes_reclaimed, 40u * 1024);
  EXPECT_EQ(r.bytes_copied, shared_.size());
  ExpectImage("B", b_);
  ExpectTidy();
  ExpectFsckClean();
  // A's nodes are gone.
  bool any = false;
  ASSERT_TRUE(store_->catalog()
                  ->ScanNodes(1, 0,
                              [&](uint64_t, const NodeRecord&) {
                                any = true;
                                return false;
                              })
                  .ok());
  EXPECT_FALSE(any);

  // Then B too: nothing at all remains.
  RemoveImage("B");
  r = Gc();
  EXPECT_EQ(r.files_deleted, 2u);
  EXPECT_EQ(FilesRows(), 0u);
  EXPECT_EQ(ChunksRows(), 0u);
  EXPECT_TRUE(Volumes().empty());
  EXPECT_TRUE(ContainerFiles().empty());
  EXPECT_EQ(r.stored_bytes, 0u);
  ExpectTidy();
}

TEST_F(GcTest, CompactionKeepsEveryLiveFileByteIdentical) {
  MakeStore();
  // One import packs many files into a few containers; a second image
  // shares (dedup) the content of every other file. Removing the first
  // leaves each container about half live.
  ImageFiles big, keep;
  for (int i = 0; i < 24; i++) {
    std::string data = Payload(3000 + 250 * i, 100 + i);
    big["d" + std::to_string(i % 4) + "/f" + std::to_string(i)] = data;
    if (i % 2) keep["k/f" + std::to_string(i)] = data;
  }
  AddImage("big", big);
  AddImage("keep", keep);
  const auto before = Volumes();
  ASSERT_GE(before.size(), 2u);
  RemoveImage("big");
  GcReport r = Gc(0.9);
  EXPECT_GT(r.containers_compacted, 0u);
  EXPECT_GT(r.bytes_copied, 0u);
  EXPECT_EQ(r.containers_removed, r.containers_compacted);
  ExpectImage("keep", keep);
  // Old containers are gone from disk and catalog.
  const auto after = Volumes();
  for (auto& [id, v] : before) {
    if (after.count(id)) continue;
    EXPECT_NE(access(ContainerPath(id).c_str(), F_OK), 0) << VvName(id);
  }
  uint64_t live = 0;
  for (auto& [id, v] : after) live += v.live_bytes;
  EXPECT_EQ(live, r.live_bytes);
  ExpectTidy();
  ExpectFsckClean();
  // A second gc finds nothing more to do, and a new process reads the same.
  r = Gc(0.9);
  EXPECT_EQ(r.containers_compacted, 0u);
  EXPECT_EQ(r.files_deleted, 0u);
  Reopen(true);
  ExpectImage("keep", keep);
}

TEST_F(GcTest, TwoCopiesStayInTwoSets) {
  MakeStore(test::kTestVvSize, {"disk1", "disk2"});
  AddImage("A", a_);
  AddImage("B", b_);
  RemoveImage("A");
  GcReport r = Gc(0.9);
  EXPECT_GE(r.containers_compacted, 2u);  // A's container in each set
  ExpectImage("B", b_);
  // Every file keeps one copy per set.
  auto vols = Volumes();
  ASSERT_TRUE(store_->catalog()
                  ->ScanFiles(Bfid(),
                              [&](const Bfid&, const FileRecord& f) {
                                EXPECT_EQ(f.copies.size(), 2u);
                                std::set<std::string> sets;
                                for (const FileCopy& c : f.copies) {
                                  for (const Extent& e : c.extents) sets.insert(vols[e.vv_id].set);
                                }
                                EXPECT_EQ(sets, (std::set<std::string>{"disk1", "disk2"}));
                                return true;
                              })
                  .ok());
  ExpectTidy();
  ExpectFsckClean();
}

TEST_F(GcTest, DryRunChangesNothing) {
  MakeStore();
  AddImage("A", a_);
  AddImage("B", b_);
  RemoveImage("A");
  const auto vols = Volumes();
  const auto files = ContainerFiles();
  const size_t rows = FilesRows();
  GcOptions o;
  o.dry_run = true;
  GcReport r;
  ASSERT_TRUE(RunGc(store_.get(), o, &r).ok());
  EXPECT_EQ(r.files_deleted, 2u);
  EXPECT_GE(r.containers_compacted, 1u);
  EXPECT_EQ(Volumes(), vols);
  EXPECT_EQ(ContainerFiles(), files);
  EXPECT_EQ(FilesRows(), rows);
  // Also on a read-only store.
  Reopen(true);
  ASSERT_TRUE(RunGc(store_.get(), o, &r).ok());
  EXPECT_EQ(r.files_deleted, 2u);
  o.dry_run = false;
  EXPECT_EQ(RunGc(store_.get(), o, &r).err(), EROFS);
}

TEST_F(GcTest, LeftoversOfAKilledWriterAreReclaimed) {
  MakeStore();
  AddImage("B", b_);
  {
    // An import killed after its first Flush + commit (nodes under an id no
    // images row names, an open container with a row) ...
    uint64_t id = 0;
    ASSERT_TRUE(store_->catalog()->AllocateIds(IdSpace::kImage, 1, &id).ok());
    ContentWriter w(store_.get());
    w.BeginFile();
    ASSERT_TRUE(w.Write(0, Payload(9000, 42)).ok());
    FileRecord f;
    ASSERT_TRUE(w.EndFile(9000, &f).ok());
    Catalog::Batch b(store_->catalog());
    ASSERT_TRUE(w.Flush(&b).ok());
    NodeRecord n;
    n.mode = S_IFREG | 0644;
    n.nlink = 1;
    n.size = 9000;
    n.has_content = true;
    ASSERT_TRUE(RandomId(&n.content).ok());
    b.PutFile(n.content, f);
    b.PutNode(id, 5, n);
    b.PutDirent(id, 1, "partial", DirentRecord{5, DT_REG});
    ASSERT_TRUE(b.Commit().ok());
    // ... and one killed before any commit: a container no row names.
    uint64_t vv = 0;
    ASSERT_TRUE(store_->catalog()->AllocateIds(IdSpace::kVolume, 1, &vv).ok());
    std::unique_ptr<VvWriter> vw;
    VvWriterOptions wo;
    wo.seal_size = test::kTestVvSize;
    ASSERT_TRUE(
        VvWriter::Create(store_->volume_sets()[0], store_->config().id.bytes, vv, wo, &vw).ok());
    RecordLocation loc;
    std::string p = Payload(5000, 9);
    ASSERT_TRUE(vw->Append(RecordKind::kChunk, Hash128Key(PayloadHash(p)), 0, p, &loc).ok());
    ASSERT_TRUE(vw->Sync().ok());
  }
  bool open_seen = false;
  for (auto& [id, v] : Volumes()) open_seen |= v.state == VolumeState::kOpen;
  EXPECT_TRUE(open_seen);
  GcReport r = Gc();
  EXPECT_EQ(r.image_trees_deleted, 1u);
  EXPECT_EQ(r.files_deleted, 1u);
  EXPECT_EQ(r.containers_sealed, 1u);
  EXPECT_EQ(r.orphan_containers_removed, 1u);
  ExpectImage("B", b_);
  ExpectTidy();
  ExpectFsckClean();
}

TEST_F(GcTest, MigrationRowsKeepTheirContentAlive) {
  MakeStore();
  AddImage("A", a_);
  NodeRecord n;
  ASSERT_TRUE(Lookup(store_.get(), "A", "own", &n).ok());
  MigrationRecord m;
  m.flags = kMigArchived;
  m.archive_size = n.size;
  m.bfid = n.content;
  Catalog::Batch b(store_->catalog());
  b.PutMigration("handle-1", m);
  ASSERT_TRUE(b.Commit().ok());
  RemoveImage("A");
  GcReport r = Gc(0.99);
  EXPECT_EQ(r.files_deleted, 1u);  // dir/shared only
  FileRecord f;
  ASSERT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
  std::string got;
  ASSERT_TRUE(ReadRecord(store_.get(), n.content, f, &got).ok());
  EXPECT_TRUE(got == a_.at("own"));
}

TEST_F(GcTest, RetiredContainersWaitWhileAMountRuns) {
  MakeStore();
  AddImage("A", a_);
  AddImage("B", b_);
  // A mount of A: its own Store, pinned, reading through its snapshot.
  std::unique_ptr<Store> mount;
  StoreOpenOptions ro;
  ro.read_only = true;
  ASSERT_TRUE(Store::Open(path_, ro, &mount).ok());
  ASSERT_TRUE(mount->PinForMount().ok());
  NodeRecord n;
  ASSERT_TRUE(Lookup(mount.get(), "A", "own", &n).ok());
  FileRecord f;
  ASSERT_TRUE(mount->catalog()->GetFile(n.content, &f).ok());

  RemoveImage("A");
  GcReport r = Gc();
  EXPECT_GE(r.containers_deferred, 1u);
  EXPECT_EQ(r.containers_removed, 0u);
  bool retired = false;
  for (auto& [id, v] : Volumes()) {
    if (v.state != VolumeState::kCompacting) continue;
    retired = true;
    EXPECT_EQ(access(ContainerPath(id).c_str(), F_OK), 0) << VvName(id) << " removed too early";
  }
  EXPECT_TRUE(retired);
  // The mount still reads A's file from the old location.
  std::string got;
  Status s = ReadRecord(mount.get(), n.content, f, &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(got == a_.at("own"));
  ExpectImage("B", b_);
  ExpectFsckClean();

  // Unmounted: a new gc (a new process) removes them.
  mount.reset();
  Reopen();
  r = Gc();
  EXPECT_GE(r.containers_removed, 1u);
  EXPECT_GT(r.bytes_reclaimed, 0u);
  ExpectImage("B", b_);
  ExpectTidy();
  ExpectFsckClean();
}

// gc killed at each of its steps, then run again: the store is consistent
// after the kill and tidy after the rerun.
class GcCrashTest : public GcTest, public ::testing::WithParamInterface<std::string_view> {};

TEST_P(GcCrashTest, KilledThenRerun) {
  MakeStore();
  AddImage("A", a_);
  AddImage("B", b_);
  RemoveImage("A");
  bool hit = false;
  GcOptions o;
  o.hook = [&](std::string_view point) {
    if (point != GetParam()) return Status::OK();
    hit = true;
    return Status::Errno(EINTR, "killed at " + std::string(point));
  };
  GcReport r;
  Status s = RunGc(store_.get(), o, &r);
  ASSERT_TRUE(hit) << "gc never reached " << GetParam();
  EXPECT_EQ(s.err(), EINTR);
  Reopen();
  ExpectImage("B", b_);
  ExpectFsckClean();
  r = Gc();
  EXPECT_TRUE(r.resumed);
  ExpectImage("B", b_);
  ExpectTidy();
  ExpectFsckClean();
  EXPECT_EQ(FilesRows(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Points, GcCrashTest,
                         ::testing::Values(kGcPointJobStarted, kGcPointSealed, kGcPointSwept,
                                           kGcPointCompactWritten, kGcPointCompactCommitted,
                                           kGcPointFileRemoved, kGcPointRetired,
                                           kGcPointOrphansRemoved),
                         [](const auto& info) {
                           std::string n(info.param);
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace overtier
