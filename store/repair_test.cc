#include "store/repair.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/gc_fsck_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::Payload;

class RepairTest : public test::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    MakeStore(test::kTestVvSize, {"a", "b"});  // two copies, one per set
    AddImage("img", {{"f", data_}, {"g", Payload(5000, 2)}});
    NodeRecord n;
    ASSERT_TRUE(Lookup(store_.get(), "img", "f", &n).ok());
    bfid_ = n.content;
    file_ = File();
    ASSERT_EQ(file_.copies.size(), 2u);
    ASSERT_GE(file_.copies[0].extents.size(), 3u);
  }

  FileRecord File() {
    FileRecord f;
    Status s = store_->catalog()->GetFile(bfid_, &f);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return f;
  }

  void FlipByte(const Extent& e, uint64_t at) {
    int fd = open(ContainerPath(e.vv_id).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(e.vv_offset + at)), 1);
    c ^= 0x40;
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(e.vv_offset + at)), 1);
    close(fd);
  }

  // Reads the whole file; returns what the reader found damaged.
  std::vector<Extent> ReadAll(const FileRecord& f, std::string* out) {
    ContentReader r(store_.get());
    out->assign(f.size, '\0');
    size_t got = 0;
    std::vector<Extent> damaged;
    Status s = r.Read(bfid_, f, 0, f.size, out->data(), &got, "f", &damaged);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(got, f.size);
    return damaged;
  }

  const std::string data_ = Payload(3 * test::kTestChunk + 100, 1);
  Bfid bfid_;
  FileRecord file_;
};

TEST_F(RepairTest, ADamagedCopyIsWrittenAgainFromTheOtherOne) {
  const Extent bad = file_.copies[0].extents[1];
  FlipByte(bad, 17);
  std::string got;
  std::vector<Extent> damaged = ReadAll(file_, &got);
  EXPECT_TRUE(got == data_) << "the other copy served the bytes";
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_EQ(damaged[0], bad);

  RepairReport rep;
  Status s = RepairCopies(store_.get(), bfid_, damaged, "f", &rep);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rep.rewritten, 1u);
  EXPECT_TRUE(rep.skipped.empty());

  // The extent now lies in a new container of the same set, the chunk's
  // dedup entry follows, and the rest of the record is as it was.
  FileRecord now = File();
  const Extent& moved = now.copies[0].extents[1];
  EXPECT_NE(moved.vv_id, bad.vv_id);
  EXPECT_EQ(moved.digest, bad.digest);
  EXPECT_EQ(moved.file_offset, bad.file_offset);
  EXPECT_EQ(now.copies[1], file_.copies[1]);
  EXPECT_EQ(now.copies[0].extents[0], file_.copies[0].extents[0]);
  VolumeRecord v;
  ASSERT_TRUE(store_->catalog()->GetVolume(moved.vv_id, &v).ok());
  EXPECT_EQ(v.set, "a");
  EXPECT_EQ(v.state, VolumeState::kSealed);
  EXPECT_EQ(v.live_bytes, bad.length);
  ChunkRecord c;
  ASSERT_TRUE(store_->catalog()->GetChunk(bad.digest, &c).ok());
  EXPECT_NE(
      std::find(c.copies.begin(), c.copies.end(), ChunkLocation{moved.vv_id, moved.vv_offset}),
      c.copies.end());
  EXPECT_EQ(std::find(c.copies.begin(), c.copies.end(), ChunkLocation{bad.vv_id, bad.vv_offset}),
            c.copies.end());

  // Every copy verifies again, in this process and after a reopen; fsck
  // finds nothing.
  EXPECT_TRUE(ReadAll(now, &got).empty());
  EXPECT_TRUE(got == data_);
  Reopen(true);
  ContentReader r(store_.get());
  int bad_copies = -1;
  EXPECT_TRUE(r.VerifyAll(now, "f", &bad_copies).ok());
  EXPECT_EQ(bad_copies, 0);
  FsckReport fr;
  ASSERT_TRUE(RunFsck(store_.get(), FsckOptions{}, &fr).ok());
  EXPECT_EQ(fr.errors(), 0u) << test::DumpFsck(fr);
}

TEST_F(RepairTest, RepairingTwiceOrWhatReadsFineChangesNothing) {
  const Extent bad = file_.copies[1].extents[0];
  FlipByte(bad, 0);
  std::string got;
  std::vector<Extent> damaged = ReadAll(file_, &got);
  ASSERT_EQ(damaged.size(), 0u) << "copy 1 is not read while copy 0 verifies";
  // As a reader of copy 1 would report it (e.g. copy 0's set was away).
  damaged = {bad};
  RepairReport rep;
  ASSERT_TRUE(RepairCopies(store_.get(), bfid_, damaged, "f", &rep).ok());
  EXPECT_EQ(rep.rewritten, 1u);
  VolumeRecord v;
  ASSERT_TRUE(store_->catalog()->GetVolume(File().copies[1].extents[0].vv_id, &v).ok());
  EXPECT_EQ(v.set, "b");
  const FileRecord once = File();
  // The same report again: the record no longer names that place.
  ASSERT_TRUE(RepairCopies(store_.get(), bfid_, damaged, "f", &rep).ok());
  EXPECT_EQ(rep.rewritten, 0u);
  EXPECT_TRUE(rep.skipped.empty());
  EXPECT_EQ(File(), once);
  // An extent that verifies is left alone.
  ASSERT_TRUE(RepairCopies(store_.get(), bfid_, {once.copies[0].extents[2]}, "f", &rep).ok());
  EXPECT_EQ(rep.rewritten, 0u);
  EXPECT_EQ(File(), once);
}

TEST_F(RepairTest, NoVerifiedCopyLeavesTheRecordAsItWas) {
  const Extent b0 = file_.copies[0].extents[2];
  const Extent b1 = file_.copies[1].extents[2];
  FlipByte(b0, 5);
  FlipByte(b1, 6);
  RepairReport rep;
  ASSERT_TRUE(RepairCopies(store_.get(), bfid_, {b0, b1}, "f", &rep).ok());
  EXPECT_EQ(rep.rewritten, 0u);
  ASSERT_EQ(rep.skipped.size(), 2u);
  for (const std::string& why : rep.skipped)
    EXPECT_TRUE(HasSubstr(why, "no verified copy to rewrite it from")) << why;
  const std::string both = rep.skipped[0] + "\n" + rep.skipped[1];
  EXPECT_TRUE(HasSubstr(both, "f: " + VvName(b0.vv_id) + " offset " + std::to_string(b0.vv_offset)))
      << both;
  EXPECT_EQ(File(), file_);
}

// A container gone altogether (a lost disk, a deleted file): the copies
// in it are rewritten like damaged ones.
TEST_F(RepairTest, ACopyInAMissingContainerIsWrittenAgain) {
  const uint64_t gone = file_.copies[0].extents[0].vv_id;
  ASSERT_EQ(unlink(ContainerPath(gone).c_str()), 0);
  Reopen();  // no reader of the deleted container cached
  file_ = File();
  std::string got;
  std::vector<Extent> damaged = ReadAll(file_, &got);
  EXPECT_TRUE(got == data_);
  size_t in_gone = 0;
  for (const Extent& e : file_.copies[0].extents) in_gone += e.vv_id == gone;
  ASSERT_EQ(damaged.size(), in_gone);
  RepairReport rep;
  Status s = RepairCopies(store_.get(), bfid_, damaged, "f", &rep);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rep.rewritten, in_gone);
  const FileRecord now = File();
  for (const Extent& e : now.copies[0].extents) EXPECT_NE(e.vv_id, gone);
  EXPECT_TRUE(ReadAll(now, &got).empty()) << "copy 0 reads again";
  EXPECT_TRUE(got == data_);
}

}  // namespace
}  // namespace overtier
