#include "image/view.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "image/image_format.h"
#include "image/view_testutil.h"
#include "store/local_volume.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::ImageBuilder;
using test::Payload;
using test::TempDir;

class ImageViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/store";
    StoreInitOptions o;
    o.chunk_size = 64 << 10;
    Status s = Store::Init(path_, o, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    reader_ = std::make_unique<ContentReader>(store_.get());
  }

  std::unique_ptr<ImageView> OpenView(const std::string& name) {
    std::unique_ptr<ImageView> v;
    Status s = ImageView::Open(store_.get(), reader_.get(), name, &v);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }

  std::string ReadAll(const ImageView& v, uint64_t ino, size_t step = 4096) {
    ImageFile f;
    Status s = v.OpenFile(ino, &f);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::string out;
    std::vector<char> buf(step);
    while (true) {
      size_t got = 0;
      s = v.Read(f, out.size(), step, buf.data(), &got);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok() || got == 0) break;
      out.append(buf.data(), got);
    }
    return out;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ContentReader> reader_;
};

TEST_F(ImageViewTest, LookupGetNodeAndStat) {
  ImageBuilder b(store_.get(), "img");
  uint64_t etc = b.Dir(kImageRootInode, "etc", 0750);
  uint64_t passwd = b.File(etc, "passwd", "root:x:0:0\n", 0644);
  b.node(passwd).uid = 0;
  uint64_t dev = b.Add(etc, "null", [] {
    NodeRecord n;
    n.mode = S_IFCHR | 0666;
    n.rdev = makedev(1, 3);
    return n;
  }());
  ASSERT_TRUE(b.Commit().ok());

  auto v = OpenView("img");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->root(), kImageRootInode);
  uint64_t ino = 0;
  NodeRecord n;
  ASSERT_TRUE(v->Lookup(kImageRootInode, "etc", &ino, &n).ok());
  EXPECT_EQ(ino, etc);
  EXPECT_EQ(n.mode, S_IFDIR | 0750u);
  EXPECT_EQ(n.nlink, 2u);
  ASSERT_TRUE(v->Lookup(etc, "passwd", &ino, &n).ok());
  EXPECT_EQ(ino, passwd);
  struct stat st;
  NodeToStat(n, &st);
  EXPECT_EQ(st.st_mode, S_IFREG | 0644u);
  EXPECT_EQ(st.st_size, 11);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'700'000'000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 2);
  ASSERT_TRUE(v->Lookup(etc, "null", &ino, &n).ok());
  EXPECT_EQ(ino, dev);
  NodeToStat(n, &st);
  EXPECT_EQ(st.st_rdev, makedev(1, 3));

  NodeRecord root;
  ASSERT_TRUE(v->GetNode(kImageRootInode, &root).ok());
  EXPECT_EQ(root.nlink, 3u);  // 2 + etc
}

// st_blocks counts what the extents cover, not the holes between them.
// Extents are whole chunks (chunk_size), a file's last one up to its size:
// a hole shows when a whole chunk is zeros.
TEST_F(ImageViewTest, StatBlocksSkipHoles) {
  ImageBuilder b(store_.get(), "img");
  const uint64_t kGiB = uint64_t{1} << 30;
  const uint64_t chunk = store_->config().chunk_size;
  ASSERT_EQ(chunk % 512, 0u);
  uint64_t sparse =
      b.SparseFile(kImageRootInode, "sparse", kGiB, {{kGiB / 2, std::string(4096, 's')}});
  // Data in the first chunk and in the last, partial one (100 bytes).
  uint64_t tail =
      b.SparseFile(kImageRootInode, "tail", 3 * chunk + 100, {{10, "a"}, {3 * chunk + 99, "z"}});
  uint64_t dense = b.File(kImageRootInode, "dense", std::string(5000, 'd'));
  uint64_t empty = b.File(kImageRootInode, "empty", "");
  uint64_t holes = b.SparseFile(kImageRootInode, "holes", 1 << 20, {});
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  ASSERT_TRUE(v);
  auto blocks = [&](uint64_t ino) -> uint64_t {
    NodeRecord n;
    EXPECT_TRUE(v->GetNode(ino, &n).ok());
    struct stat st;
    Status s = v->Stat(ino, n, &st);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), n.size);
    return static_cast<uint64_t>(st.st_blocks);
  };
  EXPECT_EQ(blocks(sparse), chunk / 512);  // 4 KiB of data in 1 GiB: one chunk
  EXPECT_EQ(blocks(tail), chunk / 512 + 1);
  EXPECT_EQ(blocks(dense), 10u);  // (5000 + 511) / 512, as before
  EXPECT_EQ(blocks(empty), 0u);
  EXPECT_EQ(blocks(holes), 0u);
  EXPECT_EQ(blocks(kImageRootInode), (kImageDirSize + 511) / 512);

  // Without its files row the file still stats (st_blocks from the size);
  // opening it reports the damage.
  NodeRecord n;
  ASSERT_TRUE(v->GetNode(sparse, &n).ok());
  Catalog::Batch del(store_->catalog());
  del.DeleteFile(n.content);
  ASSERT_TRUE(del.Commit().ok());
  EXPECT_EQ(blocks(sparse), kGiB / 512);
  ImageFile file;
  EXPECT_EQ(v->OpenFile(sparse, &file).err(), EIO);
}

TEST(ContentBlocksTest, CountsSectorsTouchedOnce) {
  FileRecord f;
  f.size = 10000;
  EXPECT_EQ(ContentBlocks(f), 20u);  // no copy: from the size
  f.copies.resize(1);
  EXPECT_EQ(ContentBlocks(f), 0u);
  auto extent = [](uint64_t off, uint64_t len) {
    Extent e;
    e.file_offset = off;
    e.length = len;
    e.vv_id = 1;
    return e;
  };
  // Two extents sharing sector 1, one ending mid-sector 9 and the next
  // starting in it, one far off.
  f.copies[0].extents = {extent(0, 700), extent(700, 300), extent(1000, 4000), extent(5000, 1),
                         extent(9000, 1000)};
  // Sectors 0-9 (up to byte 5001: 0..9), then 9000..9999: sectors 17..19.
  EXPECT_EQ(ContentBlocks(f), 10u + 3u);
}

TEST_F(ImageViewTest, LookupErrors) {
  ImageBuilder b(store_.get(), "img");
  uint64_t f = b.File(kImageRootInode, "f", "x");
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  uint64_t ino;
  NodeRecord n;
  EXPECT_EQ(v->Lookup(kImageRootInode, "missing", &ino, &n).err(), ENOENT);
  EXPECT_EQ(v->Lookup(f, "below-a-file", &ino, &n).err(), ENOTDIR);
  EXPECT_EQ(v->Lookup(kImageRootInode, std::string(300, 'a'), &ino, &n).err(), ENAMETOOLONG);
  EXPECT_EQ(v->GetNode(999, &n).err(), ENOENT);
  std::string t;
  EXPECT_EQ(v->ReadLink(f, &t).err(), EINVAL);
  ImageFile file;
  EXPECT_EQ(v->OpenFile(kImageRootInode, &file).err(), EISDIR);
}

TEST_F(ImageViewTest, MissingImageIsNamed) {
  std::unique_ptr<ImageView> v;
  Status s = ImageView::Open(store_.get(), reader_.get(), "nope", &v);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "no image 'nope'"));
}

TEST_F(ImageViewTest, ReadDirInNameOrderAndResumes) {
  ImageBuilder b(store_.get(), "img");
  for (const char* name : {"b", "a", "c", "d"}) b.File(kImageRootInode, name, name);
  uint64_t sub = b.Dir(kImageRootInode, "sub");
  b.Symlink(sub, "l", "../a");
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  std::vector<std::string> names;
  ASSERT_TRUE(v->ReadDir(kImageRootInode, "", [&](std::string_view n, const DirentRecord& d) {
                 names.emplace_back(n);
                 EXPECT_EQ(d.type, n == "sub" ? DT_DIR : DT_REG);
                 return true;
               }).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "d", "sub"}));
  names.clear();
  ASSERT_TRUE(v->ReadDir(kImageRootInode, "b", [&](std::string_view n, const DirentRecord&) {
                 names.emplace_back(n);
                 return names.size() < 2;
               }).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"c", "d"}));
  std::string target;
  uint64_t l;
  NodeRecord n;
  ASSERT_TRUE(v->Lookup(sub, "l", &l, &n).ok());
  ASSERT_TRUE(v->ReadLink(l, &target).ok());
  EXPECT_EQ(target, "../a");
  EXPECT_EQ(n.size, 4u);
}

TEST_F(ImageViewTest, ReadsContentAtAnyOffset) {
  const std::string big = Payload(300 << 10, 7);  // several 64 KiB chunks
  ImageBuilder b(store_.get(), "img");
  uint64_t f = b.File(kImageRootInode, "big", big);
  uint64_t e = b.File(kImageRootInode, "empty", "");
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  EXPECT_EQ(ReadAll(*v, f, 4096), big);
  EXPECT_EQ(ReadAll(*v, f, 100000), big);
  EXPECT_EQ(ReadAll(*v, e), "");
  ImageFile file;
  ASSERT_TRUE(v->OpenFile(f, &file).ok());
  char buf[10];
  size_t got = 0;
  ASSERT_TRUE(v->Read(file, 70000, 10, buf, &got).ok());
  EXPECT_EQ(std::string(buf, got), big.substr(70000, 10));
  ASSERT_TRUE(v->Read(file, big.size() - 3, 10, buf, &got).ok());
  EXPECT_EQ(got, 3u);
  ASSERT_TRUE(v->Read(file, big.size() + 5, 10, buf, &got).ok());
  EXPECT_EQ(got, 0u);
}

TEST_F(ImageViewTest, HardLinksAreOneInode) {
  ImageBuilder b(store_.get(), "img");
  uint64_t f = b.File(kImageRootInode, "one", "shared");
  uint64_t d = b.Dir(kImageRootInode, "d");
  b.Link(d, "two", f);
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  uint64_t i1, i2;
  NodeRecord n1, n2;
  ASSERT_TRUE(v->Lookup(kImageRootInode, "one", &i1, &n1).ok());
  ASSERT_TRUE(v->Lookup(d, "two", &i2, &n2).ok());
  EXPECT_EQ(i1, i2);
  EXPECT_EQ(n1.nlink, 2u);
  EXPECT_EQ(ReadAll(*v, i2), "shared");
  std::string path;
  ASSERT_TRUE(v->FindPath(d, &path).ok());
  EXPECT_EQ(path, "/d");
}

// A damaged catalog may name a directory twice (here a dirent of /d
// naming the root: a loop). FindPath, which walks the tree for an error
// message's path, visits each directory once and ends.
TEST_F(ImageViewTest, FindPathEndsOnALoop) {
  ImageBuilder b(store_.get(), "loop");
  uint64_t d = b.Dir(kImageRootInode, "d");
  b.Link(d, "up", kImageRootInode);
  uint64_t f = b.File(d, "f", "x");
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("loop");
  std::string path;
  ASSERT_TRUE(v->FindPath(f, &path).ok());
  EXPECT_EQ(path, "/d/f");
  EXPECT_EQ(v->FindPath(f + 100, &path).err(), ENOENT);
}

TEST_F(ImageViewTest, XattrsIncludeOverlayMarkers) {
  ImageBuilder b(store_.get(), "img");
  uint64_t d = b.Dir(kImageRootInode, "opaque");
  b.node(d).xattrs[std::string(kOpaqueXattr)] = "y";
  b.node(d).xattrs["user.note"] = "hello";
  uint64_t f = b.File(kImageRootInode, "cap", "bin");
  b.node(f).xattrs["security.capability"] = std::string("\x01\x00\x00\x02", 4);
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  std::string val;
  ASSERT_TRUE(v->GetXattr(d, kOpaqueXattr, &val).ok());
  EXPECT_EQ(val, "y");
  EXPECT_EQ(v->GetXattr(d, "user.absent", &val).err(), ENODATA);
  std::string list;
  ASSERT_TRUE(v->ListXattr(d, &list).ok());
  EXPECT_EQ(list, std::string("trusted.overlay.opaque\0user.note\0", 33));
  ASSERT_TRUE(v->GetXattr(f, "security.capability", &val).ok());
  EXPECT_EQ(val, std::string("\x01\x00\x00\x02", 4));
  ASSERT_TRUE(v->ListXattr(kImageRootInode, &list).ok());
  EXPECT_EQ(list, "");
}

TEST_F(ImageViewTest, ChainTopMostFirst) {
  uint64_t base_id, mid_id;
  {
    ImageBuilder b(store_.get(), "base");
    b.File(kImageRootInode, "a", "base");
    ASSERT_TRUE(b.Commit(&base_id).ok());
  }
  {
    ImageBuilder b(store_.get(), "mid", base_id);
    b.Whiteout(kImageRootInode, "a");
    ASSERT_TRUE(b.Commit(&mid_id).ok());
  }
  {
    ImageBuilder b(store_.get(), "top", mid_id);
    ASSERT_TRUE(b.Commit().ok());
  }
  std::vector<std::unique_ptr<ImageView>> chain;
  Status s = ImageView::OpenChain(store_.get(), reader_.get(), "top", &chain);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0]->name(), "top");
  EXPECT_EQ(chain[1]->name(), "mid");
  EXPECT_EQ(chain[1]->image_id(), mid_id);
  EXPECT_EQ(chain[2]->name(), "base");
  uint64_t ino;
  NodeRecord n;
  ASSERT_TRUE(chain[1]->Lookup(kImageRootInode, "a", &ino, &n).ok());
  EXPECT_TRUE(IsWhiteout(n));
}

TEST_F(ImageViewTest, ChainWithAMissingParentIsRefused) {
  ImageBuilder b(store_.get(), "orphan", 4242);
  ASSERT_TRUE(b.Commit().ok());
  std::vector<std::unique_ptr<ImageView>> chain;
  Status s = ImageView::OpenChain(store_.get(), reader_.get(), "orphan", &chain);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "image id 4242 has no images row"));
}

TEST_F(ImageViewTest, ChainLoopIsCorruption) {
  // Two images naming each other as parent (only a damaged catalog can).
  uint64_t first;
  ASSERT_TRUE(store_->catalog()->AllocateIds(IdSpace::kImage, 2, &first).ok());
  Catalog::Batch b(store_->catalog());
  b.PutImage("x", ImageRecord{first, kImageRootInode, first + 1, 1});
  b.PutImage("y", ImageRecord{first + 1, kImageRootInode, first, 1});
  ASSERT_TRUE(b.Commit().ok());
  std::vector<std::unique_ptr<ImageView>> chain;
  Status s = ImageView::OpenChain(store_.get(), reader_.get(), "x", &chain);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "loops"));
}

TEST_F(ImageViewTest, DamagedContentIsEioNamingTheFile) {
  const std::string data = Payload(100 << 10, 3);
  ImageBuilder b(store_.get(), "img");
  uint64_t f = b.File(kImageRootInode, "f", data);
  uint64_t g = b.File(kImageRootInode, "g", Payload(5000, 4));
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("img");
  ImageFile file;
  ASSERT_TRUE(v->OpenFile(f, &file).ok());
  ASSERT_FALSE(file.content.copies.empty());
  const Extent& e = file.content.copies[0].extents[0];
  // Flip a byte of the first extent's payload in its container.
  std::string container;
  for (const auto& ent : std::filesystem::recursive_directory_iterator(path_ + "/volumes")) {
    if (ent.path().filename() == LocalPieceName(e.vv_id, 0)) container = ent.path().string();
  }
  ASSERT_FALSE(container.empty());
  int fd = open(container.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c;
  ASSERT_EQ(pread(fd, &c, 1, e.vv_offset + 10), 1);
  c ^= 1;
  ASSERT_EQ(pwrite(fd, &c, 1, e.vv_offset + 10), 1);
  close(fd);
  // A fresh reader: nothing cached from before the damage.
  ContentReader fresh(store_.get());
  std::unique_ptr<ImageView> v2;
  ASSERT_TRUE(ImageView::Open(store_.get(), &fresh, "img", &v2).ok());
  std::vector<char> buf(4096);
  size_t got = 0;
  Status s = v2->Read(file, 0, buf.size(), buf.data(), &got);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "image 'img' inode " + std::to_string(f)));
  // The other file still reads.
  ImageFile other;
  ASSERT_TRUE(v2->OpenFile(g, &other).ok());
  s = v2->Read(other, 0, buf.size(), buf.data(), &got);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(std::string(buf.data(), got), Payload(5000, 4).substr(0, 4096));
}

TEST_F(ImageViewTest, ImportsARealTreeWithTheTestBuilder) {
  // The helper the mount tests fall back on: a directory in, rows out.
  std::string src = dir_.path() + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((src + "/d").c_str(), 0700), 0);
  int fd = open((src + "/d/f").c_str(), O_WRONLY | O_CREAT, 0640);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "content", 7), 7);
  close(fd);
  ASSERT_EQ(link((src + "/d/f").c_str(), (src + "/h").c_str()), 0);
  ASSERT_EQ(symlink("d/f", (src + "/s").c_str()), 0);
  ImageBuilder b(store_.get(), "tree");
  int dfd = open(src.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  Status s = b.AddRootAttrs(dfd);
  if (s.ok()) s = b.AddTree(dfd, kImageRootInode);
  close(dfd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(b.Commit().ok());
  auto v = OpenView("tree");
  uint64_t d, f, h, l;
  NodeRecord n;
  ASSERT_TRUE(v->Lookup(kImageRootInode, "d", &d, &n).ok());
  EXPECT_EQ(n.mode, S_IFDIR | 0700u);
  ASSERT_TRUE(v->Lookup(d, "f", &f, &n).ok());
  EXPECT_EQ(n.nlink, 2u);
  ASSERT_TRUE(v->Lookup(kImageRootInode, "h", &h, &n).ok());
  EXPECT_EQ(h, f);
  EXPECT_EQ(ReadAll(*v, h), "content");
  ASSERT_TRUE(v->Lookup(kImageRootInode, "s", &l, &n).ok());
  EXPECT_EQ(n.symlink_target, "d/f");
}

}  // namespace
}  // namespace overtier
