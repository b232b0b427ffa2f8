#include "image/export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "image/import.h"
#include "image/io_testutil.h"
#include "image/tar_source.h"
#include "image/view_testutil.h"

namespace overtier {
namespace {

using testing::DumpedImage;
using testing::DumpImage;
using testing::ExpectSameImage;
using testing::ImageNames;
using testing::NewStore;
using testing::ReadFile;
using testing::TarSpec;
using testing::TempDir;
using testing::WriteFile;
using testing::WriteTar;

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = NewStore(tmp_ / "store"); }

  void Import(const std::string& name, const std::string& source) {
    ImportResult r;
    ImportOptions opt;
    opt.warn = [](const std::string&) {};
    Status s = ImportImage(store_.get(), name, source, opt, &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  Status Export(const std::string& name, const std::string& out) {
    ExportStats st;
    return ExportImage(store_.get(), name, out, ExportOptions(), &st);
  }

  // A directory with every kind of thing an image can hold.
  std::string MakeTree() {
    std::string src = tmp_ / "src";
    EXPECT_EQ(mkdir(src.c_str(), 0751), 0);
    WriteFile(src + "/file", "hello\n");
    EXPECT_EQ(chmod((src + "/file").c_str(), 06711), 0);
    EXPECT_EQ(lchown((src + "/file").c_str(), 100000, 200000), 0);
    EXPECT_EQ(setxattr((src + "/file").c_str(), "user.u", "v", 1, 0), 0);
    EXPECT_EQ(setxattr((src + "/file").c_str(), "trusted.bin", "\x00\xff\x01", 3, 0), 0);
    std::string cap(
        "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
    EXPECT_EQ(setxattr((src + "/file").c_str(), "security.capability", cap.data(), cap.size(), 0),
              0);
    WriteFile(src + "/empty", "");
    EXPECT_EQ(mkdir((src + "/opaque").c_str(), 0755), 0);
    EXPECT_EQ(setxattr((src + "/opaque").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    WriteFile(src + "/opaque/inside", "in");
    EXPECT_EQ(mkdir((src + "/moved").c_str(), 0755), 0);
    EXPECT_EQ(setxattr((src + "/moved").c_str(), "trusted.overlay.redirect", "/orig", 5, 0), 0);
    EXPECT_EQ(mknod((src + "/gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
    EXPECT_EQ(mknod((src + "/opaque/gone2").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
    EXPECT_EQ(lchown((src + "/gone").c_str(), 5, 6), 0);
    EXPECT_EQ(link((src + "/file").c_str(), (src + "/moved/hard").c_str()), 0);
    EXPECT_EQ(symlink("/abs/target", (src + "/sym").c_str()), 0);
    EXPECT_EQ(symlink("file", (src + "/sym2").c_str()), 0);
    EXPECT_EQ(link((src + "/sym2").c_str(), (src + "/sym2-hard").c_str()), 0);
    EXPECT_EQ(mknod((src + "/tty").c_str(), S_IFCHR | 0620, makedev(4, 1)), 0);
    EXPECT_EQ(mknod((src + "/disk").c_str(), S_IFBLK | 0660, makedev(259, 65537)), 0);
    EXPECT_EQ(mkfifo((src + "/fifo").c_str(), 0600), 0);
    // Not valid UTF-8, and spaces/newlines.
    WriteFile(src + "/bad\xff\xfe name", "latin");
    WriteFile(src + "/line\nbreak", "nl");
    // A long path.
    std::string deep = src;
    for (int i = 0; i < 12; i++) {
      deep += "/" + std::string(40, static_cast<char>('a' + i));
      EXPECT_EQ(mkdir(deep.c_str(), 0755), 0);
    }
    WriteFile(deep + "/leaf", "deep");
    // Sparse, ending in a hole; and one starting with a hole.
    int fd = open((src + "/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
    EXPECT_EQ(pwrite(fd, "data", 4, 300000), 4);
    EXPECT_EQ(ftruncate(fd, 50 << 20), 0);
    close(fd);
    fd = open((src + "/allhole").c_str(), O_WRONLY | O_CREAT, 0644);
    EXPECT_EQ(ftruncate(fd, 10 << 20), 0);
    close(fd);
    std::string big(5 << 20, '\0');
    for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>((i * 2654435761u) >> 13);
    WriteFile(src + "/big", big);
    // ns times, atime distinct, and times before 1970.
    struct timespec ts[2] = {{12345, 678901234}, {1500000000, 999999999}};
    EXPECT_EQ(utimensat(AT_FDCWD, (src + "/big").c_str(), ts, 0), 0);
    struct timespec old[2] = {{-100, 500}, {-1, 1}};
    EXPECT_EQ(utimensat(AT_FDCWD, (src + "/sym").c_str(), old, AT_SYMLINK_NOFOLLOW), 0);
    return src;
  }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
};

TEST_F(ExportTest, ImportOfExportReproducesTheImage) {
  std::string src = MakeTree();
  Import("orig", src);
  std::string out = tmp_ / "out.tar";
  Status s = Export("orig", out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  Import("again", out);
  DumpedImage a = DumpImage(store_.get(), "orig");
  DumpedImage b = DumpImage(store_.get(), "again");
  ExpectSameImage(a, b);
  // And once more: export(import(export(X))) is byte-identical.
  std::string out2 = tmp_ / "out2.tar";
  ASSERT_TRUE(Export("again", out2).ok());
  EXPECT_TRUE(ReadFile(out) == ReadFile(out2));
  // Sanity of what was compared.
  EXPECT_TRUE(IsWhiteout(b.nodes.at("/gone").rec));
  EXPECT_EQ(b.nodes.at("/gone").rec.uid, 5u);
  EXPECT_TRUE(IsOpaqueDir(b.nodes.at("/opaque").rec));
  EXPECT_EQ(b.nodes.at("/moved").rec.xattrs.at("trusted.overlay.redirect"), "/orig");
  EXPECT_EQ(b.nodes.at("/file").rec.nlink, 2u);
  EXPECT_EQ(b.nodes.at("/sym2").rec.nlink, 2u);
  EXPECT_EQ(b.nodes.at("/sym").rec.mtime_ns, -999999999);
  EXPECT_EQ(b.nodes.at("/sparse").rec.size, uint64_t{50} << 20);
  EXPECT_EQ(b.nodes.at("/disk").rec.rdev, makedev(259, 65537));
  EXPECT_EQ(b.nodes.count("/bad\xff\xfe name"), 1u);
  // The archive is small: holes are not in it.
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_LT(st.st_size, 8 << 20);
}

// The exported archive is an OCI-style layer tar that GNU tar reads.
TEST_F(ExportTest, OciFormsInTheArchive) {
  std::string src = MakeTree();
  Import("orig", src);
  std::string out = tmp_ / "out.tar";
  ASSERT_TRUE(Export("orig", out).ok());
  std::string list = tmp_ / "list";
  ASSERT_EQ(system(("tar -tf " + out + " > " + list + " 2>/dev/null").c_str()), 0);
  std::string names = ReadFile(list);
  EXPECT_NE(names.find("./\n"), std::string::npos);
  EXPECT_NE(names.find("\n.wh.gone\n"), std::string::npos) << names;
  EXPECT_NE(names.find("\nopaque/.wh..wh..opq\n"), std::string::npos);
  EXPECT_NE(names.find("\nopaque/.wh.gone2\n"), std::string::npos);
  // GNU tar extracts the data, holes included.
  std::string x = tmp_ / "x";
  ASSERT_EQ(mkdir(x.c_str(), 0755), 0);
  ASSERT_EQ(system(("tar -xf " + out + " -C " + x + " 2>/dev/null").c_str()), 0);
  EXPECT_EQ(ReadFile(x + "/file"), "hello\n");
  EXPECT_TRUE(ReadFile(x + "/big") == ReadFile(src + "/big"));
  EXPECT_TRUE(ReadFile(x + "/sparse") == ReadFile(src + "/sparse"));
}

TEST_F(ExportTest, RefusesNamesThatLookLikeWhiteouts) {
  std::string src = tmp_ / "wh";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/.wh.real-file", "x");
  Import("wh", src);
  std::string out = tmp_ / "out.tar";
  WriteFile(out, "previous");
  Status s = Export("wh", out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(".wh.real-file"), std::string::npos) << s.ToString();
  EXPECT_EQ(ReadFile(out), "previous") << "a failed export leaves the old file";
  // No temporary left behind.
  std::string ls = tmp_ / "ls";
  ASSERT_EQ(system(("ls -a " + tmp_.path() + " > " + ls).c_str()), 0);
  EXPECT_EQ(ReadFile(ls).find("out.tar."), std::string::npos);
}

// A damaged catalog whose dirent names a directory already in the tree (a
// loop) is refused with a message, not recursed into until the stack runs
// out.
TEST_F(ExportTest, ALoopInADamagedCatalogIsRefused) {
  overtier::test::ImageBuilder b(store_.get(), "loop");
  uint64_t d = b.Dir(kImageRootInode, "d");
  b.Link(d, "up", kImageRootInode);
  b.File(d, "f", "x");
  ASSERT_TRUE(b.Commit().ok());
  std::string out = tmp_ / "loop.tar";
  Status s = Export("loop", out);
  EXPECT_EQ(s.err(), EIO) << s.ToString();
  EXPECT_NE(s.message().find("'/d/up'"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("loop"), std::string::npos) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(ExportTest, MissingImage) {
  Status s = Export("nope", tmp_ / "o.tar");
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find("'nope'"), std::string::npos);
}

// Export of an OCI layer imported from a tar gives back the same entries
// (a layer tar round trip).
TEST_F(ExportTest, LayerTarRoundTrip) {
  std::string layer = tmp_ / "layer.tar";
  WriteTar(layer, {{.path = "./", .mode = S_IFDIR | 0755},
                   {.path = ".wh.etc", .mode = S_IFREG | 0},
                   {.path = "usr/", .mode = S_IFDIR | 0755},
                   {.path = "usr/.wh..wh..opq", .mode = S_IFREG | 0},
                   {.path = "usr/bin", .data = "#!/bin/sh\n", .mtime_ns = 5}});
  Import("l", layer);
  ASSERT_TRUE(Export("l", tmp_ / "l2.tar").ok());
  Import("l2", tmp_ / "l2.tar");
  ExpectSameImage(DumpImage(store_.get(), "l"), DumpImage(store_.get(), "l2"));
}

// The destination is what the user named: a pipe or a device is written
// into (as tar -f does), a symlink to a file keeps pointing at the new
// archive. (A device node or FIFO was replaced by a regular file: as root,
// `overtier image export STORE img /dev/null` replaced /dev/null.)
TEST_F(ExportTest, PipesDevicesAndSymlinksAreWrittenThrough) {
  const std::string src = tmp_ / "small";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/f", std::string(100000, 'x'));
  Import("img", src);
  const std::string plain = tmp_ / "plain.tar";
  ASSERT_TRUE(Export("img", plain).ok());
  const std::string want = ReadFile(plain);
  ASSERT_FALSE(want.empty());

  const std::string fifo = tmp_ / "pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = ReadFile(fifo); });
  Status s = Export("img", fifo);
  reader.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(got == want) << "the reader of the pipe got " << got.size() << " bytes";
  struct stat st;
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the pipe was replaced";

  const std::string link = tmp_ / "link.tar";
  ASSERT_EQ(symlink("plain.tar", link.c_str()), 0);
  WriteFile(plain, "old");
  ASSERT_TRUE(Export("img", link).ok());
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the symlink was replaced";
  EXPECT_TRUE(ReadFile(plain) == want);

  // A link to nothing yet names the file to create; a chain of them too,
  // each relative to its own directory.
  ASSERT_EQ(mkdir((tmp_ / "out").c_str(), 0755), 0);
  const std::string dangling = tmp_ / "dangling.tar";
  ASSERT_EQ(symlink("out/new.tar", dangling.c_str()), 0);
  ASSERT_EQ(symlink("../chained.tar", (tmp_ / "out/hop.tar").c_str()), 0);
  const std::string chain = tmp_ / "chain.tar";
  ASSERT_EQ(symlink("out/hop.tar", chain.c_str()), 0);
  for (const auto& [named, written] :
       {std::pair{dangling, tmp_ / "out/new.tar"}, std::pair{chain, tmp_ / "chained.tar"}}) {
    SCOPED_TRACE(named);
    ASSERT_TRUE(Export("img", named).ok());
    ASSERT_EQ(lstat(named.c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the symlink was replaced";
    EXPECT_TRUE(ReadFile(written) == want);
  }
  // ...whose directory must exist; a loop is refused.
  const std::string nowhere = tmp_ / "nowhere.tar";
  ASSERT_EQ(symlink("missing/x.tar", nowhere.c_str()), 0);
  s = Export("img", nowhere);
  EXPECT_EQ(s.err(), ENOENT) << s.ToString();
  EXPECT_NE(s.ToString().find("missing/x.tar"), std::string::npos) << s.ToString();
  const std::string loop = tmp_ / "loop.tar";
  ASSERT_EQ(symlink("loop.tar", loop.c_str()), 0);
  EXPECT_EQ(Export("img", loop).err(), ELOOP);

  EXPECT_EQ(Export("img", tmp_.path()).err(), EISDIR);

  if (geteuid() == 0) {  // mknod
    const std::string null = tmp_ / "null";
    ASSERT_EQ(mknod(null.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_TRUE(Export("img", null).ok());
    ASSERT_EQ(lstat(null.c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << "the device node was replaced";
  }
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(tmp_.path()))
    if (e.path().filename().string().find(".tar.") != std::string::npos ||
        e.path().filename().string().find("pipe.") != std::string::npos)
      left.push_back(e.path().filename());
  EXPECT_TRUE(left.empty()) << left.front();
}

}  // namespace
}  // namespace overtier
