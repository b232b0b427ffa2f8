// The store commands as users run them: the `overtier` binary (OVERTIER_BIN)
// on stores made by `overtier store init`, filled either by `overtier image
// import` (when that exists) or directly through the store library the way
// import writes images (store/gc_fsck_testutil.h).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../integration/test_util.h"
#include "store/gc_fsck_testutil.h"

namespace overtier {
namespace {

using nlohmann::json;
using test::HasSubstr;
using test::ImageFiles;
using test::Payload;

using it::Result;

class StoreCliTest : public test::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    const char* bin = std::getenv("OVERTIER_BIN");
    ASSERT_TRUE(bin != nullptr && *bin) << "OVERTIER_BIN is not set (run through meson test)";
    bin_ = bin;
  }

  // Runs `overtier ARGS` (words split at spaces: test paths have none).
  Result Run(const std::string& args) {
    std::vector<std::string> argv = {bin_};
    std::istringstream words(args);
    for (std::string w; words >> w;) argv.push_back(w);
    return it::RunArgs(argv);
  }

  // `overtier store init`, then images written through the library, then
  // the store closed (the CLI takes the locks).
  void InitWithImages() {
    Result r = Run("store init " + path_ + " --vv-size 64K --chunk-size 4K");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(HasSubstr(r.out, "created store " + path_));
    Reopen();
    AddImage("A", a_);
    ImageRecord a;
    ASSERT_TRUE(store_->catalog()->GetImage("A", &a).ok());
    AddImage("B", b_);
    AddImage("C", c_, a.image_id);  // stacked on A
    store_.reset();
  }

  void FlipByte(const std::string& file, uint64_t offset) {
    int fd = open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c ^= 0x01;
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    close(fd);
  }

  std::string bin_;
  const std::string shared_ = Payload(2 * 4096, 11);
  const ImageFiles a_{{"big", Payload(30000, 1)}, {"etc/shared", shared_}};
  const ImageFiles b_{{"copy", shared_}, {"mine", Payload(5000, 2)}};
  const ImageFiles c_{{"layer/file", Payload(100, 3)}};
};

TEST_F(StoreCliTest, InitRefusesAnExistingStoreAndBadSizes) {
  ASSERT_EQ(Run("store init " + path_).rc, 0);
  Result r = Run("store init " + path_);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(HasSubstr(r.err, "overtier: "));
  EXPECT_EQ(Run("store init " + dir_.path() + "/x --vv-size 12Q").rc, 2);
  EXPECT_EQ(Run("store init " + dir_.path() + "/x --chunk-size 3000").rc, 2);
  EXPECT_EQ(Run("store init").rc, 2);
  EXPECT_EQ(Run("store frobnicate " + path_).rc, 2);
  r = Run("store init " + dir_.path() + "/j --vv-size 1M --chunk-size 64K --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["vv_size"], 1u << 20);
  EXPECT_EQ(j["chunk_size"], 64u << 10);
  EXPECT_EQ(j["volume_sets"][0]["name"], "default");
}

TEST_F(StoreCliTest, LsInspectRmGcFsck) {
  InitWithImages();
  Result r = Run("image ls " + path_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(HasSubstr(r.out, "NAME"));
  r = Run("image ls " + path_ + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json ls = json::parse(r.out);
  ASSERT_EQ(ls.size(), 3u);
  EXPECT_EQ(ls[0]["name"], "A");
  EXPECT_EQ(ls[0]["files"], 2);
  EXPECT_EQ(ls[0]["logical_bytes"], 30000 + shared_.size());
  EXPECT_EQ(ls[2]["parent"], "A");

  r = Run("image inspect " + path_ + " A --json --path /etc/shared");
  ASSERT_EQ(r.rc, 0) << r.err;
  json in = json::parse(r.out);
  EXPECT_EQ(in["counts"]["file"], 2);
  EXPECT_EQ(in["counts"]["directory"], 2);
  EXPECT_EQ(in["node"]["size"], shared_.size());
  EXPECT_EQ(in["node"]["copies"][0].size(), 2u);  // two 4 KiB chunks
  r = Run("image inspect " + path_ + " C");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(HasSubstr(r.out, "parents  A"));
  EXPECT_EQ(Run("image inspect " + path_ + " nosuch").rc, 1);
  EXPECT_EQ(Run("image inspect " + path_ + " A --path /nope").rc, 1);

  // A is C's parent: refused, naming C.
  r = Run("image rm " + path_ + " A");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(HasSubstr(r.err, "'C'"));
  EXPECT_EQ(Run("image rm " + path_ + " nosuch").rc, 1);
  r = Run("image rm " + path_ + " C A");
  ASSERT_EQ(r.rc, 0) << r.err;
  r = Run("image ls " + path_ + " --json");
  ASSERT_EQ(json::parse(r.out).size(), 1u);

  r = Run("gc " + path_ + " --dry-run --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["files_deleted"], 3);
  r = Run("gc " + path_ + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json gc = json::parse(r.out);
  EXPECT_EQ(gc["files_deleted"], 3);
  EXPECT_EQ(gc["image_trees_deleted"], 2);
  EXPECT_GT(gc["bytes_reclaimed"].get<uint64_t>(), 30000u);
  r = Run("gc " + path_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(HasSubstr(r.out, "reclaimed"));

  r = Run("fsck " + path_);
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  r = Run("fsck " + path_ + " --json");
  EXPECT_EQ(r.rc, 0) << r.out;
  json f = json::parse(r.out);
  EXPECT_EQ(f["ok"], true);
  EXPECT_EQ(f["bytes_verified"], shared_.size() + 5000);
  // B still reads back.
  Reopen(true);
  ExpectImage("B", b_);
}

TEST_F(StoreCliTest, FsckNamesDamagedFilesAndExitsOne) {
  InitWithImages();
  Reopen(true);
  NodeRecord n;
  ASSERT_TRUE(Lookup(store_.get(), "B", "mine", &n).ok());
  FileRecord f;
  ASSERT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
  const Extent e = f.copies[0].extents[0];
  // The container of the chunks A:/etc/shared and B:/copy share, and the
  // files with any extent in it (the oracle for the second check).
  ASSERT_TRUE(Lookup(store_.get(), "A", "etc/shared", &n).ok());
  ASSERT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
  const uint64_t gone = f.copies[0].extents[0].vv_id;
  ASSERT_NE(gone, e.vv_id);
  std::vector<std::string> in_gone;
  for (auto [image, path] : std::vector<std::pair<std::string, std::string>>{
           {"A", "big"}, {"A", "etc/shared"}, {"B", "copy"}, {"B", "mine"}, {"C", "layer/file"}}) {
    ASSERT_TRUE(Lookup(store_.get(), image, path, &n).ok());
    ASSERT_TRUE(store_->catalog()->GetFile(n.content, &f).ok());
    bool uses = false;
    for (const Extent& x : f.copies[0].extents) uses |= x.vv_id == gone;
    if (uses) in_gone.push_back(image + ":/" + path);
  }
  ASSERT_GE(in_gone.size(), 2u);
  store_.reset();
  FlipByte(ContainerPath(e.vv_id), e.vv_offset + 123);
  Result r = Run("fsck " + path_);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(HasSubstr(r.out, "B:/mine"));
  EXPECT_TRUE(HasSubstr(r.out, VvName(e.vv_id)));
  r = Run("fsck " + path_ + " --json");
  EXPECT_EQ(r.rc, 1);
  json j = json::parse(r.out);
  EXPECT_EQ(j["damaged_files"], json::array({"B:/mine"}));
  EXPECT_EQ(Run("fsck " + path_ + " --quick").rc, 0);
  // The rest is still listed and inspectable.
  EXPECT_EQ(Run("image ls " + path_).rc, 0);

  // A container gone: its files are named, in every image using them (B's
  // copy shares A's chunks).
  ASSERT_EQ(unlink(ContainerPath(gone).c_str()), 0);
  r = Run("fsck " + path_ + " --quick --json");
  EXPECT_EQ(r.rc, 1);
  j = json::parse(r.out);
  std::vector<std::string> damaged = j["damaged_files"];
  EXPECT_EQ(damaged, in_gone) << r.out;
  EXPECT_TRUE(std::count(damaged.begin(), damaged.end(), "B:/copy")) << r.out;
}

TEST_F(StoreCliTest, UnopenableStoreIsReported) {
  EXPECT_EQ(Run("fsck " + dir_.path() + "/nothing").rc, 1);
  InitWithImages();
  // A catalog RocksDB cannot open.
  ASSERT_EQ(unlink((path_ + "/catalog/CURRENT").c_str()), 0);
  Result r = Run("fsck " + path_);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(HasSubstr(r.out, "catalog")) << r.out;
  r = Run("image ls " + path_);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(HasSubstr(r.err, "overtier: image ls: ")) << r.err;
  EXPECT_EQ(Run("gc " + path_).rc, 1);
}

// A store on a full disk, catalog and containers alike: the commands fail
// with the disk's error, never by a signal (librocksdb's own info logger
// aborted the process on its first failed append: store/info_log.h), what
// was committed before stays readable and consistent, and a failed import
// leaves no container behind (ContentWriter::DiscardUncommitted).
TEST_F(StoreCliTest, AFullDiskIsAnErrorNotACrash) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a small tmpfs)";
  const std::string small = dir_.path() + "/small";
  ASSERT_EQ(mkdir(small.c_str(), 0755), 0);
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=3m"), 0) << strerror(errno);
  struct Unmounter {
    std::string dir;
    ~Unmounter() { umount2(dir.c_str(), MNT_DETACH); }
  } unmounter{small};
  const std::string store = small + "/store";
  Result r = Run("store init " + store + " --vv-size 4M");
  ASSERT_EQ(r.rc, 0) << r.err;
  // A first image that fits.
  const std::string first = dir_.path() + "/first", big = dir_.path() + "/big";
  ASSERT_EQ(mkdir(first.c_str(), 0755), 0);
  std::ofstream(first + "/kept") << Payload(1000, 1);
  r = Run("image import " + store + " first " + first);
  ASSERT_EQ(r.rc, 0) << r.err;
  // Then more than the disk holds: 3000 small files and 4 MiB.
  ASSERT_EQ(mkdir(big.c_str(), 0755), 0);
  for (int i = 0; i < 3000; i++) std::ofstream(big + "/f" + std::to_string(i)) << Payload(150, i);
  std::ofstream(big + "/large") << Payload(4 << 20, 7);
  for (int attempt = 0; attempt < 3; attempt++) {
    r = Run("image import " + store + " big" + std::to_string(attempt) + " " + big);
    EXPECT_EQ(r.rc, 1) << "attempt " << attempt << ": " << r.err;
    EXPECT_TRUE(HasSubstr(r.err, "No space left on device")) << r.err;
  }
  r = Run("image ls " + store + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json images = json::parse(r.out);
  ASSERT_EQ(images.size(), 1u) << r.out;
  EXPECT_EQ(images[0]["name"], "first");
  // The failed imports took their containers back with them: no garbage,
  // and a small image fits without a gc.
  r = Run("fsck " + store);
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_FALSE(HasSubstr(r.out + r.err, "garbage")) << r.out << r.err;
  const std::string out = dir_.path() + "/first.tar";
  r = Run("image export " + store + " first " + out);
  EXPECT_EQ(r.rc, 0) << r.err;
  r = Run("image import " + store + " second " + first);
  EXPECT_EQ(r.rc, 0) << r.err;
  r = Run("fsck " + store);
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
}

TEST_F(StoreCliTest, BadUsageExitsTwo) {
  EXPECT_EQ(Run("gc").rc, 2);
  EXPECT_EQ(Run("fsck").rc, 2);
  EXPECT_EQ(Run("image ls").rc, 2);
  EXPECT_EQ(Run("image rm " + path_).rc, 2);
  EXPECT_EQ(Run("gc " + path_ + " --threshold 7").rc, 2);
  EXPECT_EQ(Run("fsck " + path_ + " --bogus").rc, 2);
  EXPECT_EQ(Run("gc --help").rc, 0);
}

// With `overtier image import` (the imageio work), the whole cycle on a
// real directory tree.
TEST_F(StoreCliTest, ImportedImageCycle) {
  if (Run("image import --help").rc != 0) GTEST_SKIP() << "overtier image import not built yet";
  ASSERT_EQ(Run("store init " + path_ + " --vv-size 1M --chunk-size 4K").rc, 0);
  const std::string src = dir_.path() + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((src + "/d").c_str(), 0755), 0);
  for (int i = 0; i < 20; i++) {
    std::ofstream(src + "/d/f" + std::to_string(i)) << Payload(1000 * i + 1, i);
  }
  ASSERT_EQ(link((src + "/d/f3").c_str(), (src + "/hard").c_str()), 0);
  ASSERT_EQ(symlink("d/f1", (src + "/sym").c_str()), 0);
  Result r = Run("image import " + path_ + " one " + src);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = Run("image import " + path_ + " two " + src);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = Run("fsck " + path_);
  EXPECT_EQ(r.rc, 0) << r.out;
  r = Run("image ls " + path_ + " --json");
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(json::parse(r.out).size(), 2u);
  ASSERT_EQ(Run("image rm " + path_ + " one").rc, 0);
  r = Run("gc " + path_ + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(json::parse(r.out)["files_deleted"].get<int>(), 0);
  r = Run("fsck " + path_);
  EXPECT_EQ(r.rc, 0) << r.out;
  ASSERT_EQ(Run("image rm " + path_ + " two").rc, 0);
  ASSERT_EQ(Run("gc " + path_).rc, 0);
  Reopen(true);
  EXPECT_TRUE(Volumes().empty());
  EXPECT_TRUE(ContainerFiles().empty());
}

// `overtier image export STORE A - | overtier image import STORE B -`: the
// pipe is read like the file it carries, and B is A. Export to standard
// output, named so or /dev/stdout, never to a terminal.
TEST_F(StoreCliTest, ImportFromAPipe) {
  ASSERT_EQ(Run("store init " + path_ + " --vv-size 1M --chunk-size 4K").rc, 0);
  const std::string src = dir_.path() + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  for (int i = 0; i < 5; i++) std::ofstream(src + "/f" + std::to_string(i)) << Payload(70000, i);
  ASSERT_EQ(symlink("f1", (src + "/sym").c_str()), 0);
  Result r = Run("image import " + path_ + " one " + src);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = it::RunArgs({"/bin/bash", "-o", "pipefail", "-c",
                   bin_ + " image export " + path_ + " one - | " + bin_ + " image import " + path_ +
                       " piped -"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(HasSubstr(r.out, "imported piped: 7 entries, 5 files")) << r.out;
  const std::string a = dir_.path() + "/one.tar", b = dir_.path() + "/piped.tar";
  ASSERT_EQ(Run("image export " + path_ + " one " + a).rc, 0);
  ASSERT_EQ(Run("image export " + path_ + " piped " + b).rc, 0);
  EXPECT_TRUE(it::Slurp(a) == it::Slurp(b)) << "the piped image differs";
  // Standard output named as /dev/stdout: the archive alone goes there,
  // the summary to stderr.
  const std::string c = dir_.path() + "/stdout.tar";
  r = it::RunArgs({"/bin/bash", "-o", "pipefail", "-c",
                   bin_ + " image export " + path_ + " one /dev/stdout | cat > " + c});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(HasSubstr(r.err, "exported one")) << r.err;
  EXPECT_TRUE(it::Slurp(c) == it::Slurp(a)) << "the archive on stdout differs";
  // Never onto a terminal.
  r = it::CliOnTerminal({"image", "export", path_, "one", "-"});
  EXPECT_EQ(r.rc, 2) << it::Describe(r);
  EXPECT_TRUE(HasSubstr(r.err, "refusing to write an archive to a terminal")) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out.size() << " bytes on the terminal";
  // Not an archive: refused, named as standard input.
  r = it::RunArgs(
      {"/bin/bash", "-c",
       "yes 'not an archive' | head -c 20000 | " + bin_ + " image import " + path_ + " bad -"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(HasSubstr(r.err, "'standard input'")) << r.err;
  r = Run("fsck " + path_);
  EXPECT_EQ(r.rc, 0) << r.out;
}

}  // namespace
}  // namespace overtier
