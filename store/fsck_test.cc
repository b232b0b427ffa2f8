#include "store/fsck.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/gc_fsck_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::ImageFiles;
using test::Payload;

class FsckTest : public test::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    MakeStore();
    AddImage("base", base_);
    AddImage("app", app_);
  }

  FsckReport Fsck(bool quick = false) {
    Reopen(true);  // fsck opens the store read-only, as the CLI does
    FsckOptions o;
    o.quick = quick;
    FsckReport r;
    Status s = RunFsck(store_.get(), o, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }

  static std::string Dump(const FsckReport& r) { return test::DumpFsck(r); }

  // The extent of an image file's first chunk.
  Extent FirstExtent(const std::string& image, const std::string& path) {
    NodeRecord n;
    EXPECT_TRUE(Lookup(store_.get(), image, path, &n).ok());
    FileRecord f;
    EXPECT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
    return f.copies.at(0).extents.at(0);
  }

  void FlipByte(uint64_t vv_id, uint64_t offset) {
    int fd = open(ContainerPath(vv_id).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c ^= 0x20;
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    close(fd);
  }

  const ImageFiles base_{{"bin/sh", Payload(20000, 1)},
                         {"etc/passwd", Payload(700, 2)},
                         {"lib/libc.so", Payload(30000, 3)}};
  const ImageFiles app_{{"app/run", Payload(9000, 4)}, {"app/data/x", Payload(100, 5)}};
};

TEST_F(FsckTest, CleanStoreHasNoIssues) {
  FsckReport r = Fsck();
  EXPECT_EQ(r.errors(), 0u) << Dump(r);
  EXPECT_EQ(r.images, 2u);
  EXPECT_EQ(r.files, 5u);
  EXPECT_GT(r.extents_verified, 0u);
  EXPECT_EQ(r.bytes_verified, 20000u + 700 + 30000 + 9000 + 100);  // every byte, once
  r = Fsck(true);
  EXPECT_EQ(r.errors(), 0u) << Dump(r);
  EXPECT_EQ(r.bytes_verified, 0u);
}

TEST_F(FsckTest, FlippedPayloadByteNamesThatFileOnly) {
  const Extent e = FirstExtent("base", "etc/passwd");
  store_.reset();
  FlipByte(e.vv_id, e.vv_offset + 10);
  FsckReport r = Fsck();
  EXPECT_EQ(r.errors(), 1u) << Dump(r);
  EXPECT_EQ(r.damaged_files(), std::vector<std::string>{"base:/etc/passwd"}) << Dump(r);
  ASSERT_FALSE(r.issues.empty());
  bool named = false;
  for (const FsckIssue& i : r.issues) named |= i.message.find(VvName(e.vv_id)) != std::string::npos;
  EXPECT_TRUE(named) << "no issue names the container\n" << Dump(r);
  // The rest of the store is still readable.
  std::string got;
  ASSERT_TRUE(ReadFile(store_.get(), "base", "bin/sh", &got).ok());
  EXPECT_TRUE(got == base_.at("bin/sh"));
  EXPECT_FALSE(ReadFile(store_.get(), "base", "etc/passwd", &got).ok());
  // --quick does not read payloads.
  EXPECT_EQ(Fsck(true).errors(), 0u);
}

TEST_F(FsckTest, SharedDamagedChunkNamesEveryFileUsingIt) {
  const std::string same = Payload(4096, 77);
  AddImage("twin1", {{"a", same}});
  AddImage("twin2", {{"b/c", same}});
  const Extent e = FirstExtent("twin1", "a");
  EXPECT_EQ(FirstExtent("twin2", "b/c").vv_offset, e.vv_offset);
  store_.reset();
  FlipByte(e.vv_id, e.vv_offset + 4000);
  FsckReport r = Fsck();
  EXPECT_EQ(r.damaged_files(), (std::vector<std::string>{"twin1:/a", "twin2:/b/c"})) << Dump(r);
}

// Two copies in two sets: one damaged copy is still damage (reported as
// degraded), and the file still reads.
class FsckCopiesTest : public test::StoreFixture {};

TEST_F(FsckCopiesTest, DamagedCopyIsReportedAsDegraded) {
  MakeStore(test::kTestVvSize, {"s1", "s2"});
  const std::string data = Payload(10000, 9);
  AddImage("img", {{"f", data}, {"g", Payload(300, 8)}});
  NodeRecord n;
  ASSERT_TRUE(Lookup(store_.get(), "img", "f", &n).ok());
  FileRecord f;
  ASSERT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
  ASSERT_EQ(f.copies.size(), 2u);
  const Extent e = f.copies[1].extents[1];
  const std::string file = ContainerPath(e.vv_id);
  int fd = open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c = 0;
  ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(e.vv_offset)), 1);
  c ^= 1;
  ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(e.vv_offset)), 1);
  close(fd);
  Reopen(true);
  FsckReport r;
  ASSERT_TRUE(RunFsck(store_.get(), FsckOptions(), &r).ok());
  EXPECT_EQ(r.damaged_files(), std::vector<std::string>{"img:/f"});
  ASSERT_EQ(r.errors(), 1u);
  bool degraded = false;
  for (const FsckIssue& i : r.issues) degraded |= HasSubstr(i.message, "degraded").operator bool();
  EXPECT_TRUE(degraded);
  std::string got;
  ASSERT_TRUE(ReadFile(store_.get(), "img", "f", &got).ok());
  EXPECT_TRUE(got == data);
}

TEST_F(FsckTest, TruncatedContainerIsReported) {
  const Extent e = FirstExtent("base", "lib/libc.so");
  store_.reset();
  struct stat st;
  ASSERT_EQ(stat(ContainerPath(e.vv_id).c_str(), &st), 0);
  // Cut inside libc.so's data: the trailer goes, and so does what follows.
  ASSERT_EQ(truncate(ContainerPath(e.vv_id).c_str(), static_cast<off_t>(e.vv_offset + 100)), 0);
  for (bool quick : {false, true}) {
    FsckReport r = Fsck(quick);
    EXPECT_GE(r.errors(), 2u) << Dump(r);
    bool container = false;
    for (const FsckIssue& i : r.issues)
      container |= i.kind == "container" && HasSubstr(i.message, VvName(e.vv_id));
    EXPECT_TRUE(container) << Dump(r);
    std::vector<std::string> damaged = r.damaged_files();
    EXPECT_TRUE(std::count(damaged.begin(), damaged.end(), "base:/lib/libc.so")) << Dump(r);
    // app's files live in another container (another writer session).
    for (const std::string& f : damaged) EXPECT_NE(f.rfind("app:", 0), 0u) << f;
  }
  std::string got;
  ASSERT_TRUE(ReadFile(store_.get(), "app", "app/run", &got).ok());
  EXPECT_TRUE(got == app_.at("app/run"));
}

// Several files packed in one container, cut in the middle: exactly the
// files with a byte past the cut are damaged; the others still read back
// byte for byte, from the same Store that found the damage.
class FsckTruncatedTest : public test::StoreFixture {};

TEST_F(FsckTruncatedTest, OnlyTheFilesPastTheCutAreDamaged) {
  MakeStore(1 << 20);  // one container holds them all
  ImageFiles files;
  for (int i = 0; i < 8; i++)
    files["f" + std::to_string(i)] = Payload(3000 + 2500 * static_cast<size_t>(i), 40 + i);
  AddImage("img", files);
  // Every file's extents, and the container they share.
  std::map<std::string, std::vector<Extent>> extents;
  uint64_t vv = 0;
  for (auto& [path, data] : files) {
    NodeRecord n;
    ASSERT_TRUE(Lookup(store_.get(), "img", path, &n).ok());
    FileRecord f;
    ASSERT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
    extents[path] = f.copies.at(0).extents;
    for (const Extent& e : extents[path]) {
      if (vv == 0) vv = e.vv_id;
      ASSERT_EQ(e.vv_id, vv) << path;
    }
  }
  // The cut: inside the second chunk of f4, which is not the first file
  // in the container nor the last.
  const Extent& at = extents.at("f4").at(1);
  const uint64_t cut = at.vv_offset + 1000;
  std::vector<std::string> damaged, intact;
  for (auto& [path, ex] : extents) {
    bool past = false;
    for (const Extent& e : ex) past |= e.vv_offset + e.length > cut;
    (past ? damaged : intact).push_back("img:/" + path);
  }
  ASSERT_GE(intact.size(), 2u);
  ASSERT_GE(damaged.size(), 2u);
  store_.reset();
  ASSERT_EQ(truncate(ContainerPath(vv).c_str(), static_cast<off_t>(cut)), 0);

  for (bool quick : {false, true}) {
    SCOPED_TRACE(quick ? "quick" : "full");
    Reopen(true);
    FsckReport r;
    ASSERT_TRUE(RunFsck(store_.get(), FsckOptions{quick}, &r).ok());
    EXPECT_EQ(r.damaged_files(), damaged) << test::DumpFsck(r);
    bool container = false;
    for (const FsckIssue& i : r.issues) {
      if (i.severity != FsckSeverity::kError) continue;
      if (i.kind == "container") {
        container = true;
        EXPECT_TRUE(HasSubstr(i.message, VvName(vv))) << i.message;
        EXPECT_TRUE(HasSubstr(i.message, "truncated")) << i.message;
      } else {
        EXPECT_EQ(i.kind, "content") << i.message;
        EXPECT_TRUE(HasSubstr(i.message, "truncated")) << i.message;
      }
    }
    EXPECT_TRUE(container) << test::DumpFsck(r);
    if (!quick) {
      uint64_t intact_bytes = 0;
      for (auto& [path, ex] : extents) {
        for (const Extent& e : ex) intact_bytes += e.vv_offset + e.length <= cut ? e.length : 0;
      }
      EXPECT_EQ(r.bytes_verified, intact_bytes);
    }
    for (auto& [path, data] : files) {
      std::string got;
      Status s = ReadFile(store_.get(), "img", path, &got);
      if (std::count(damaged.begin(), damaged.end(), "img:/" + path)) {
        EXPECT_EQ(s.err(), EIO) << path;
        EXPECT_TRUE(HasSubstr(s.message(), "chunk at container " + VvName(vv)) &&
                    HasSubstr(s.message(), "truncated"))
            << s.message();
      } else {
        ASSERT_TRUE(s.ok()) << path << ": " << s.ToString();
        EXPECT_TRUE(got == data) << path << " differs";
      }
    }
  }
}

TEST_F(FsckTest, MissingContainerIsReportedWithItsFiles) {
  const Extent e = FirstExtent("app", "app/run");
  store_.reset();
  ASSERT_EQ(unlink(ContainerPath(e.vv_id).c_str()), 0);
  FsckReport r = Fsck(true);
  bool missing = false;
  for (const FsckIssue& i : r.issues)
    missing |= i.kind == "container" && HasSubstr(i.message, "missing");
  EXPECT_TRUE(missing) << Dump(r);
  EXPECT_EQ(r.damaged_files(), (std::vector<std::string>{"app:/app/data/x", "app:/app/run"}))
      << Dump(r);
  r = Fsck();
  EXPECT_EQ(r.damaged_files(), (std::vector<std::string>{"app:/app/data/x", "app:/app/run"}))
      << Dump(r);
}

TEST_F(FsckTest, DanglingDirentIsReported) {
  ImageRecord img;
  ASSERT_TRUE(store_->catalog()->GetImage("app", &img).ok());
  Catalog::Batch b(store_->catalog());
  b.PutDirent(img.image_id, kImageRootInode, "ghost", DirentRecord{999, DT_REG});
  ASSERT_TRUE(b.Commit().ok());
  FsckReport r = Fsck(true);
  EXPECT_EQ(r.errors(), 1u) << Dump(r);
  EXPECT_EQ(r.damaged_files(), std::vector<std::string>{"app:/ghost"}) << Dump(r);
}

TEST_F(FsckTest, WrongNlinkAndMissingRootAreReported) {
  ImageRecord img;
  ASSERT_TRUE(store_->catalog()->GetImage("base", &img).ok());
  NodeRecord n;
  ASSERT_TRUE(Lookup(store_.get(), "base", "etc/passwd", &n).ok());
  DirentRecord d;
  ASSERT_TRUE(Lookup(store_.get(), "base", "etc", &n).ok());
  ASSERT_TRUE(store_->catalog()->GetDirent(img.image_id, kImageRootInode, "etc", &d).ok());
  DirentRecord p;
  ASSERT_TRUE(store_->catalog()->GetDirent(img.image_id, d.child_inode, "passwd", &p).ok());
  NodeRecord file;
  ASSERT_TRUE(store_->catalog()->GetNode(img.image_id, p.child_inode, &file).ok());
  file.nlink = 3;
  Catalog::Batch b(store_->catalog());
  b.PutNode(img.image_id, p.child_inode, file);
  // And an image whose root is gone.
  ImageRecord app;
  ASSERT_TRUE(store_->catalog()->GetImage("app", &app).ok());
  b.DeleteNode(app.image_id, kImageRootInode);
  ASSERT_TRUE(b.Commit().ok());
  FsckReport r = Fsck(true);
  EXPECT_EQ(r.errors(), 2u) << Dump(r);
  std::string all = Dump(r);
  EXPECT_TRUE(HasSubstr(all, "base:/etc/passwd: nlink 3"));
  EXPECT_TRUE(HasSubstr(all, "image 'app': root node 1 does not exist"));
}

// Migration records whose archive has no files row: a released file's
// released bytes are lost (an error naming its handle), an archived one
// is whole but must be archived again (a notice).
TEST_F(FsckTest, AMigrationRecordWithoutItsArchiveIsReported) {
  Bfid gone;
  gone.bytes[0] = 0x42;
  MigrationRecord released;
  released.flags = kMigArchived | kMigReleased;
  released.archive_size = 100;
  released.bfid = gone;
  MigrationRecord archived = released;
  archived.flags = kMigArchived;
  archived.barrier = 100;
  {
    Catalog::Batch b(store_->catalog());
    b.PutMigration(std::string("\x01\x00\x00\x00handle-a", 12), released);
    b.PutMigration(std::string("\x01\x00\x00\x00handle-b", 12), archived);
    ASSERT_TRUE(b.Commit().ok());
  }
  FsckReport r = Fsck(true);
  EXPECT_EQ(r.errors(), 1u) << Dump(r);
  const std::string all = Dump(r);
  EXPECT_TRUE(HasSubstr(all, "1 released upper file(s) name an archive with no files row")) << all;
  EXPECT_TRUE(HasSubstr(all, gone.ToHex())) << all;
  EXPECT_TRUE(HasSubstr(all, "1 archived upper file(s)")) << all;
}

TEST_F(FsckTest, GarbageIsANoticeNotAnError) {
  RemoveImage("app");
  FsckReport r = Fsck();
  EXPECT_EQ(r.errors(), 0u) << Dump(r);
  EXPECT_GE(r.notices(), 1u) << Dump(r);
}

}  // namespace
}  // namespace overtier
