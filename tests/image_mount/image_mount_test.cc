// Images of the store as lower layers of a mount (lowerdir=image:NAME,
// store=STORE), and `overtier image mount`.
//
// Each test gets a fresh directory under /tmp with a store, source trees,
// upper, work and mount point; imports with `overtier image import` (the
// CLI), mounts the daemon (foreground, as a child of the test, unless the
// test is about daemon mode), and always unmounts in TearDown. A watchdog
// bounds every test: when it fires, the daemon is killed (which aborts the
// FUSE connection, so no syscall stays stuck) and the mount detached.
//
// Needs root (FUSE mounts, mknod, trusted.* xattrs, chroot). Environment:
//   OVERTIER_BIN            the overtier binary (set by meson)
//   OVERTIER_TEST_TIMEOUT   per-test limit in seconds (default 120)
//   OVERTIER_TEST_KEEP=1    keep the temp directory
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <future>

#include <gtest/gtest.h>

#include "../integration/daemon_fixture.h"
#include "../integration/harness.h"
#include "image/view.h"
#include "store/catalog_testutil.h"
#include "store/content_reader.h"
#include "store/local_volume.h"
#include "store/store.h"

namespace overtier {
namespace {

using it::Contains;
using it::Exists;
using it::IsMountPoint;
using it::ListDir;
using it::Lstat;
using it::MakeDirs;
using it::OvertierBin;
using it::PollUntil;
using it::ReadFile;
using it::RunCmd;
using it::Slurp;
using it::WriteFile;

int CountLines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

class ImageMountTest : public it::MountFixture {
 protected:
  ImageMountTest()
      : MountFixture("image-mount", "needs root (FUSE mounts, mknod, chroot)",
                     {"upper", "work", "src"}) {}

  void Prepare() override { ASSERT_NO_FATAL_FAILURE(InitStore()); }

  // overtier image import STORE NAME SRC [--parent P]
  void Import(const std::string& name, const std::string& src, const std::string& parent = "") {
    std::vector<std::string> args = {OvertierBin(), "image", "import", store_, name, src};
    if (!parent.empty()) {
      args.push_back("--parent");
      args.push_back(parent);
    }
    std::string out;
    int rc = RunCmd(args, &out, 120);
    ASSERT_EQ(rc, 0) << "import " << name << " failed:\n" << out;
  }

  // The daemon in the foreground, as our child (env: added to its
  // environment); returns once mounted.
  // extra: more options, each starting with a comma.
  void MountUnion(const std::string& lowerdir, bool upper = true,
                  const std::vector<std::string>& env = {}, const std::string& extra = "") {
    std::string opts = "lowerdir=" + lowerdir + ",store=" + store_;
    if (upper) opts += ",upperdir=" + B("upper") + ",workdir=" + B("work");
    MountDaemon(opts + extra, env);
  }

  // Appends one byte to the file at path (a copy-up of a lower file).
  void AppendOne(const std::string& path) {
    it::Fd w(open(path.c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid()) << path << ": " << strerror(errno);
    ASSERT_EQ(write(w.get(), "!", 1), 1);
  }

  // How many migration records the store's catalog holds (no mount).
  int MigrationRecords() { return CountMigrationRecords(store_); }

  // Where the first extent of image file /rel lives (read before mounting).
  Extent ExtentOf(const std::string& image, const std::string& rel) {
    std::unique_ptr<Store> st;
    StoreOpenOptions so;
    so.read_only = true;
    Status s = Store::Open(store_, so, &st);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return {};
    ContentReader reader(st.get());
    std::unique_ptr<ImageView> v;
    s = ImageView::Open(st.get(), &reader, image, &v);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return {};
    uint64_t ino = v->root();
    NodeRecord n;
    std::stringstream parts(rel);
    std::string part;
    while (std::getline(parts, part, '/')) {
      s = v->Lookup(ino, part, &ino, &n);
      EXPECT_TRUE(s.ok()) << rel << ": " << s.ToString();
      if (!s.ok()) return {};
    }
    ImageFile f;
    s = v->OpenFile(ino, &f);
    EXPECT_TRUE(s.ok() && !f.content.copies.empty()) << s.ToString();
    if (!s.ok() || f.content.copies.empty()) return {};
    return f.content.copies[0].extents.at(0);
  }

  void FlipByte(const Extent& e, uint64_t at) {
    std::string file;
    for (const auto& ent : std::filesystem::recursive_directory_iterator(store_)) {
      if (ent.path().filename() == LocalPieceName(e.vv_id, 0)) file = ent.path().string();
    }
    ASSERT_FALSE(file.empty()) << "no container " << e.vv_id;
    int fd = open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, e.vv_offset + at), 1);
    c ^= 0x20;
    ASSERT_EQ(pwrite(fd, &c, 1, e.vv_offset + at), 1);
    close(fd);
  }
  // Cuts e's container short, `at` bytes into e.
  void TruncateAt(const Extent& e, uint64_t at) {
    std::string file;
    for (const auto& ent : std::filesystem::recursive_directory_iterator(store_)) {
      if (ent.path().filename() == LocalPieceName(e.vv_id, 0)) file = ent.path().string();
    }
    ASSERT_FALSE(file.empty()) << "no container " << e.vv_id;
    ASSERT_EQ(truncate(file.c_str(), static_cast<off_t>(e.vv_offset + at)), 0) << file;
  }
};

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

void SetNsTimes(const std::string& path, long sec, long nsec) {
  struct timespec ts[2] = {{sec, nsec}, {sec + 7, nsec + 1}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// A tree with one of everything the image format keeps.
void BuildRichTree(const std::string& src) {
  MakeDirs(src + "/etc");
  MakeDirs(src + "/usr/share/doc", 0750);
  MakeDirs(src + "/dev");
  WriteFile(src + "/etc/hostname", "image-host\n", 0644);
  WriteFile(src + "/etc/shadow", "root:*:1::::::\n", 0600);
  WriteFile(src + "/empty", "", 0644);
  WriteFile(src + "/usr/big", Pattern(700 * 1024 + 13, 1), 0755);  // several chunks
  WriteFile(src + "/usr/share/doc/setuid", "x", 04755);
  ASSERT_EQ(link((src + "/usr/big").c_str(), (src + "/usr/big-link").c_str()), 0);
  ASSERT_EQ(symlink("../etc/hostname", (src + "/usr/hn").c_str()), 0);
  ASSERT_EQ(symlink("/nowhere/at/all", (src + "/dangling").c_str()), 0);
  ASSERT_EQ(mknod((src + "/dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(mknod((src + "/dev/sda").c_str(), S_IFBLK | 0660, makedev(8, 0)), 0);
  ASSERT_EQ(mkfifo((src + "/dev/fifo").c_str(), 0640), 0);
  ASSERT_EQ(chown((src + "/etc/shadow").c_str(), 0, 42), 0);
  ASSERT_EQ(lchown((src + "/usr/hn").c_str(), 1234, 5678), 0);
  ASSERT_EQ(chown((src + "/usr/share").c_str(), 1000, 1000), 0);
  ASSERT_EQ(setxattr((src + "/etc/hostname").c_str(), "user.origin", "image", 5, 0), 0);
  ASSERT_EQ(setxattr((src + "/usr").c_str(), "trusted.note", "t", 1, 0), 0);
  SetNsTimes(src + "/etc/hostname", 1500000000, 123456789);
  SetNsTimes(src + "/usr/big", 1400000000, 987654321);
  SetNsTimes(src + "/usr/hn", 1300000000, 5);
  SetNsTimes(src + "/etc", 1200000000, 42);
}

// A tree as the comparisons see it: everything below the root. (The root
// of a union takes its attributes from the upper directory, as overlayfs.)
it::TreeSnapshot Snapshot(const std::string& root) {
  it::SnapshotOptions o;
  o.dir_mtime = true;
  o.all_xattrs = true;
  it::TreeSnapshot s = it::SnapshotTree(root, o);
  s.erase(".");
  return s;
}

TEST_F(ImageMountTest, UnionOfAnImageMatchesTheSourceTree) {
  ASSERT_NO_FATAL_FAILURE(BuildRichTree(B("src")));
  ASSERT_NO_FATAL_FAILURE(Import("rich", B("src")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:rich"));
  auto want = Snapshot(B("src"));
  auto got = Snapshot(M());
  EXPECT_EQ(it::DiffTrees(want, "source", got, "mount"), "");
  // Hard links share st_ino through the mount.
  EXPECT_EQ(Lstat(M("usr/big")).st_ino, Lstat(M("usr/big-link")).st_ino);
  EXPECT_EQ(Lstat(M("usr/big")).st_nlink, 2u);
  // Nothing was copied up by reading.
  EXPECT_EQ(ListDir(B("upper")), std::vector<std::string>{});
  // Remounted, the same view (nothing cached in the daemon matters).
  Unmount();
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:rich"));
  EXPECT_EQ(it::DiffTrees(want, "source", Snapshot(M()), "mount"), "");
}

// st_blocks of image files through the union: a sparse file counts the
// chunks holding data, not its size (du of the original at chunk
// granularity); a small dense file its size, as on disk.
TEST_F(ImageMountTest, SparseImageFilesShowTheirDataBlocks) {
  MakeDirs(B("img"));
  {
    it::Fd fd(open(B("img/sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    ASSERT_TRUE(fd.valid());
    const std::string data = Pattern(4096, 41);
    ASSERT_EQ(pwrite(fd.get(), data.data(), data.size(), 40 << 20), 4096);
    ASSERT_EQ(ftruncate(fd.get(), 64 << 20), 0);
  }
  WriteFile(B("img/small"), Pattern(10000, 42));
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img", /*upper=*/false));
  struct stat st = Lstat(M("sparse"));
  EXPECT_EQ(st.st_size, 64 << 20);
  EXPECT_GT(st.st_blocks, 0);
  EXPECT_LE(st.st_blocks * 512, 256 << 10) << "one chunk of data, not 64 MiB";
  EXPECT_EQ(Lstat(M("small")).st_blocks, (10000 + 511) / 512);
  std::string got = ReadFile(M("sparse"));
  ASSERT_EQ(got.size(), size_t{64} << 20);
  EXPECT_EQ(got.substr(40 << 20, 4096), Pattern(4096, 41));
  EXPECT_EQ(got.find_first_not_of('\0'), size_t{40} << 20);
  Unmount();
}

TEST_F(ImageMountTest, WhiteoutsAndOpaqueDirsOfAChainHideLowerEntries) {
  // base: a, b, d/{x,y}, o/{p}
  MakeDirs(B("base/d"));
  MakeDirs(B("base/o"));
  for (const char* f : {"a", "b", "d/x", "d/y", "o/p"}) WriteFile(B("base/") + f, f);
  ASSERT_NO_FATAL_FAILURE(Import("base", B("base")));
  // top over base: whiteout a and d/x, o opaque with q, new c.
  MakeDirs(B("top/d"));
  MakeDirs(B("top/o"));
  it::MakeWhiteout(B("top/a"));
  it::MakeWhiteout(B("top/d/x"));
  it::MakeOpaque(B("top/o"));
  WriteFile(B("top/o/q"), "q");
  WriteFile(B("top/c"), "c");
  ASSERT_NO_FATAL_FAILURE(Import("top", B("top"), "base"));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:top"));
  EXPECT_EQ(ListDir(M()), (std::vector<std::string>{"b", "c", "d", "o"}));
  EXPECT_EQ(ListDir(M("d")), std::vector<std::string>{"y"});
  EXPECT_EQ(ListDir(M("o")), std::vector<std::string>{"q"});
  EXPECT_FALSE(Exists(M("a")));
  EXPECT_FALSE(Exists(M("o/p")));
  EXPECT_EQ(ReadFile(M("b")), "b");
  EXPECT_EQ(ReadFile(M("d/y")), "d/y");
  // The overlay markers are not visible through the union.
  EXPECT_EQ(it::GetXattr(M("o"), "trusted.overlay.opaque"), std::nullopt);
  // Creating over a whiteout of an image works (upper wins).
  WriteFile(M("a"), "new a");
  EXPECT_EQ(ReadFile(M("a")), "new a");
  EXPECT_EQ(ReadFile(B("upper/a")), "new a");
}

TEST_F(ImageMountTest, ImageLowersMixWithPlainDirectories) {
  MakeDirs(B("img"));
  WriteFile(B("img/shared"), "from image");
  WriteFile(B("img/image-only"), "i");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  MakeDirs(B("plain"));
  WriteFile(B("plain/shared"), "from plain");
  WriteFile(B("plain/plain-only"), "p");
  // Image above the plain directory...
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img:" + B("plain")));
  EXPECT_EQ(ListDir(M()), (std::vector<std::string>{"image-only", "plain-only", "shared"}));
  EXPECT_EQ(ReadFile(M("shared")), "from image");
  EXPECT_EQ(ReadFile(M("plain-only")), "p");
  Unmount();
  // ... and below it.
  ASSERT_NO_FATAL_FAILURE(MountUnion(B("plain") + ":image:img", /*upper=*/false));
  EXPECT_EQ(ReadFile(M("shared")), "from plain");
  EXPECT_EQ(ReadFile(M("image-only")), "i");
  EXPECT_EQ(it::Err(open(M("new").c_str(), O_CREAT | O_WRONLY, 0644)), it::Errno{EROFS});
}

// An image imported from a directory keeps AUFS markers (".wh.NAME",
// ".wh..wh..opq") as the plain files they are there, and a lower layer's
// markers hide what is below, as in a plain-directory lower: the union asks
// the image's tree for them in the process, and must hide the same things.
TEST_F(ImageMountTest, AufsMarkersInAnImageHideWhatIsBelow) {
  MakeDirs(B("img/dir"));
  MakeDirs(B("img/opq"));
  WriteFile(B("img/.wh.gone"), "");
  WriteFile(B("img/dir/.wh.gone-too"), "");
  WriteFile(B("img/dir/kept"), "img");
  WriteFile(B("img/opq/.wh..wh..opq"), "");
  WriteFile(B("img/opq/mine"), "img");
  ASSERT_NO_FATAL_FAILURE(Import("aufs", B("img")));
  MakeDirs(B("plain/dir"));
  MakeDirs(B("plain/opq"));
  WriteFile(B("plain/gone"), "plain");
  WriteFile(B("plain/shown"), "plain");
  WriteFile(B("plain/dir/gone-too"), "plain");
  WriteFile(B("plain/dir/below"), "plain");
  WriteFile(B("plain/opq/hidden"), "plain");
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:aufs:" + B("plain")));
  EXPECT_EQ(ListDir(M()), (std::vector<std::string>{"dir", "opq", "shown"}));
  EXPECT_EQ(ListDir(M("dir")), (std::vector<std::string>{"below", "kept"}));
  EXPECT_EQ(ListDir(M("opq")), (std::vector<std::string>{"mine"}));
  struct stat st;
  for (const char* p : {"gone", "dir/gone-too", "opq/hidden", ".wh.gone", "opq/.wh..wh..opq"})
    EXPECT_EQ(it::Err(lstat(M(p).c_str(), &st)), it::Errno{ENOENT}) << p;
  EXPECT_EQ(ReadFile(M("dir/below")), "plain");
  // A new file over the hidden name, and rmdir of the opaque directory
  // once emptied, behave as over a plain lower.
  WriteFile(M("gone"), "new");
  EXPECT_EQ(ReadFile(M("gone")), "new");
  ASSERT_EQ(unlink(M("opq/mine").c_str()), 0);
  EXPECT_EQ(rmdir(M("opq").c_str()), 0);
  EXPECT_EQ(ListDir(M()), (std::vector<std::string>{"dir", "gone", "shown"}));
}

// Whiteouts kept as xattrs (an empty file with trusted.overlay.whiteout in
// a directory whose trusted.overlay.opaque is "x") in an image hide what is
// below as in a plain-directory lower: asked of the image's tree.
TEST_F(ImageMountTest, XattrWhiteoutsInAnImageHideWhatIsBelow) {
  MakeDirs(B("img/dir"));
  ASSERT_EQ(setxattr(B("img/dir").c_str(), "trusted.overlay.opaque", "x", 1, 0), 0);
  WriteFile(B("img/dir/gone"), "");
  ASSERT_EQ(setxattr(B("img/dir/gone").c_str(), "trusted.overlay.whiteout", "", 0, 0), 0);
  WriteFile(B("img/dir/kept"), "img");
  ASSERT_NO_FATAL_FAILURE(Import("xwh", B("img")));
  MakeDirs(B("plain/dir"));
  WriteFile(B("plain/dir/gone"), "plain");
  WriteFile(B("plain/dir/below"), "plain");
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:xwh:" + B("plain")));
  EXPECT_EQ(ListDir(M("dir")), (std::vector<std::string>{"below", "kept"}));
  struct stat st;
  EXPECT_EQ(it::Err(lstat(M("dir/gone").c_str(), &st)), it::Errno{ENOENT});
  EXPECT_EQ(ReadFile(M("dir/below")), "plain");
}

// An upper layer kept as an image (imported with its overlay xattrs) over
// the layer it was an upper of: its metadata-only copy and its renamed
// directory lead to that layer, read through the image's tree as through a
// directory (copy_up_test AnUpperLayerReusedAsALowerOne... for plain ones).
TEST_F(ImageMountTest, AnUpperKeptAsAnImageKeepsItsMetadataOnlyCopies) {
  MakeDirs(B("img/d2"));
  for (const char* dir : {"img", "img/d2"})
    ASSERT_EQ(setxattr(B(dir).c_str(), "trusted.overlay.impure", "y", 1, 0), 0);
  ASSERT_EQ(setxattr(B("img/d2").c_str(), "trusted.overlay.redirect", "/d", 2, 0), 0);
  WriteFile(B("img/f"), "");
  ASSERT_EQ(truncate(B("img/f").c_str(), 10), 0);  // a hole: the data is below
  ASSERT_EQ(chmod(B("img/f").c_str(), 0600), 0);
  ASSERT_EQ(setxattr(B("img/f").c_str(), "trusted.overlay.metacopy", "", 0, 0), 0);
  ASSERT_NO_FATAL_FAILURE(Import("session", B("img")));
  MakeDirs(B("plain/d"));
  WriteFile(B("plain/f"), "plain data");
  WriteFile(B("plain/d/g"), "g below");
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:session:" + B("plain")));
  EXPECT_EQ(ReadFile(M("f")), "plain data");
  struct stat st;
  ASSERT_EQ(lstat(M("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the metadata is the image's";
  EXPECT_EQ(ListDir(M("d2")), (std::vector<std::string>{"g"}));
  EXPECT_EQ(ReadFile(M("d2/g")), "g below");
}

// A damaged catalog entry (a name whose inode has no node) is listed and
// fails its stat with EIO, with the damage in the daemon's log; the other
// entries read on. (A listing that carries attributes must not drop it.)
TEST_F(ImageMountTest, ADamagedEntryIsListedAndItsStatIsEio) {
  MakeDirs(B("img"));
  WriteFile(B("img/fine"), "ok");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  {
    std::unique_ptr<Store> st;
    Status s = Store::Open(store_, StoreOpenOptions(), &st);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ImageRecord rec;
    ASSERT_TRUE(st->catalog()->GetImage("img", &rec).ok());
    Catalog::Batch b(st->catalog());
    b.PutDirent(rec.image_id, rec.root_inode, "broken", DirentRecord{999999, DT_REG});
    ASSERT_TRUE(b.Commit().ok());
  }
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  EXPECT_EQ(ListDir(M()), (std::vector<std::string>{"broken", "fine"}));
  struct stat st;
  EXPECT_EQ(it::Err(lstat(M("broken").c_str(), &st)), it::Errno{EIO});
  EXPECT_EQ(ReadFile(M("fine")), "ok");
  EXPECT_NE(Slurp(log_).find("entry 'broken' of inode"), std::string::npos) << Slurp(log_);
}

// LOOKUP requests the daemon logged (-d) since the log had `from` bytes.
int LookupsSince(const std::string& log, size_t from) {
  const std::string text = Slurp(log);
  int n = 0;
  for (size_t at = from; (at = text.find("opcode: LOOKUP", at)) != std::string::npos; ++at) ++n;
  return n;
}

// What `ls -l` does: list the directory (names only), then lstat each.
size_t ListThenStat(const std::string& dir) {
  std::vector<std::string> names = ListDir(dir);
  for (const auto& n : names) {
    struct stat st;
    EXPECT_EQ(lstat((dir + "/" + n).c_str(), &st), 0) << n;
  }
  return names.size();
}

void ManyFiles(const std::string& dir, int n) {
  MakeDirs(dir);
  for (int i = 0; i < n; ++i) {
    it::Fd fd(open((dir + "/f" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT, 0644));
    ASSERT_TRUE(fd.valid());
  }
}

// A listing of an image directory carries every entry's attributes (the
// image file system's tree answers them in the process), so stat-ing what
// was listed asks the daemon nothing. The kernel's own choice
// (READDIRPLUS_AUTO) sent attributes with the first chunk only: a LOOKUP
// request for each later entry.
TEST_F(ImageMountTest, ListingAnImageDirectoryGivesEveryEntryItsAttributes) {
  ASSERT_NO_FATAL_FAILURE(ManyFiles(B("src/many"), 2000));
  ASSERT_NO_FATAL_FAILURE(Import("many", B("src")));
  ASSERT_NO_FATAL_FAILURE(MountWith(
      {OvertierBin(), "-f", "-d", "-o",
       "lowerdir=image:many,store=" + store_ + ",upperdir=" + B("upper") + ",workdir=" + B("work"),
       mnt_}));
  struct stat st;
  ASSERT_EQ(lstat(M("many").c_str(), &st), 0);
  const size_t from = Slurp(log_).size();
  EXPECT_EQ(ListThenStat(M("many")), 2000u);
  EXPECT_LE(LookupsSince(log_, from), 5);
}

// A directory whose entries were looked up after it was listed is listed
// with attributes the next time: a second `ls -l` (or find, or walk) of a
// plain lower directory asks nothing per entry, where the kernel's choice
// gave the first chunk attributes and left a LOOKUP per later entry.
TEST_F(ImageMountTest, ASecondLongListingOfADirectoryAsksNothingPerEntry) {
  ASSERT_NO_FATAL_FAILURE(ManyFiles(B("src/many"), 2000));
  ASSERT_NO_FATAL_FAILURE(MountWith(
      {OvertierBin(), "-f", "-d", "-o",
       "lowerdir=" + B("src") + ",upperdir=" + B("upper") + ",workdir=" + B("work") + ",timeout=1",
       mnt_}));
  struct stat st;
  ASSERT_EQ(lstat(M("many").c_str(), &st), 0);
  size_t from = Slurp(log_).size();
  EXPECT_EQ(ListThenStat(M("many")), 2000u);
  EXPECT_GT(LookupsSince(log_, from), 100) << "the first listing is names only past its first "
                                              "chunk: its later entries are looked up";
  // Let the kernel's entries expire (timeout=1), then list again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  ASSERT_EQ(lstat(M("many").c_str(), &st), 0);
  from = Slurp(log_).size();
  EXPECT_EQ(ListThenStat(M("many")), 2000u);
  EXPECT_LE(LookupsSince(log_, from), 5);
}

TEST_F(ImageMountTest, WritingAnImageFileCopiesItUp) {
  MakeDirs(B("img/dir"));
  const std::string data = Pattern(600 * 1024, 9);
  WriteFile(B("img/dir/file"), data, 0640);
  ASSERT_EQ(setxattr(B("img/dir/file").c_str(), "user.k", "v", 1, 0), 0);
  SetNsTimes(B("img/dir/file"), 1600000000, 1);
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  {
    it::Fd w(open(M("dir/file").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid()) << strerror(errno);
    ASSERT_EQ(write(w.get(), "tail", 4), 4);
  }
  EXPECT_EQ(ReadFile(M("dir/file")), data + "tail");
  // The upper now holds a plain, complete file with the attributes.
  struct stat st = Lstat(B("upper/dir/file"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(ReadFile(B("upper/dir/file")), data + "tail");
  EXPECT_EQ(it::GetXattr(B("upper/dir/file"), "user.k"), std::optional<std::string>("v"));
  // After a remount the copy-up is what the union shows.
  Unmount();
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  EXPECT_EQ(ReadFile(M("dir/file")), data + "tail");
}

TEST_F(ImageMountTest, ADamagedChunkGivesEioForThatFileOnly) {
  MakeDirs(B("img"));
  WriteFile(B("img/bad"), Pattern(300 * 1024, 3));
  WriteFile(B("img/good"), Pattern(200 * 1024, 4));
  WriteFile(B("img/small"), "small file");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  Extent e = ExtentOf("img", "bad");
  ASSERT_GT(e.length, 100u);
  ASSERT_NO_FATAL_FAILURE(FlipByte(e, 100));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  it::Fd fd(open(M("bad").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  char buf[4096];
  EXPECT_EQ(it::Err(pread(fd.get(), buf, sizeof(buf), 0)), it::Errno{EIO});
  EXPECT_EQ(ReadFile(M("good")), Pattern(200 * 1024, 4));
  EXPECT_EQ(ReadFile(M("small")), "small file");
  EXPECT_EQ(Lstat(M("bad")).st_size, 300 * 1024);  // metadata still fine
  // Copy-up is lazy (the image's content becomes the upper file's
  // archive): the open for writing copies nothing and succeeds, and the
  // damaged bytes stay unreadable through the upper file, even after a
  // write elsewhere in it.
  {
    it::Fd w(open(M("bad").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid());
    EXPECT_EQ(write(w.get(), "tail", 4), 4);
  }
  fd.reset();
  fd = it::Fd(open(M("bad").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(it::Err(pread(fd.get(), buf, sizeof(buf), 0)), it::Errno{EIO});
  EXPECT_EQ(it::Err(pread(fd.get(), buf, 4, 300 * 1024)), it::kOk);
  EXPECT_EQ(std::string(buf, 4), "tail");
  fd.reset();
  Unmount();
  // The log names the file, the container and the offset.
  std::string log = Slurp(log_);
  EXPECT_TRUE(Contains(log, "read of /bad"));
  EXPECT_TRUE(Contains(log, "checksum mismatch"));
  EXPECT_TRUE(Contains(log, "container"));
  EXPECT_TRUE(Contains(log, "offset"));
}

// Under hard semantics (-o hard) only an archive that does not answer is
// waited for: damage is EIO at once, through the image and through a lazy
// copy-up's restore alike (docs/RADOS.md, "Soft and hard mounts").
TEST_F(ImageMountTest, ADamagedChunkIsEioAtOnceEvenUnderHard) {
  MakeDirs(B("img"));
  WriteFile(B("img/bad"), Pattern(300 * 1024, 3));
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(FlipByte(ExtentOf("img", "bad"), 100));
  MountDaemon("lowerdir=image:img,store=" + store_ + ",upperdir=" + B("upper") +
              ",workdir=" + B("work") + ",hard");
  // Bounded: a wait here is the bug.
  auto read_err = [this] {
    return std::async(std::launch::async, [this] {
      it::Fd fd(open(M("bad").c_str(), O_RDONLY));
      char buf[4096];
      return fd.valid() ? it::Err(pread(fd.get(), buf, sizeof(buf), 0)) : it::Errno{errno};
    });
  };
  auto image_read = read_err();
  ASSERT_EQ(image_read.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "a read of damaged image content waits under hard";
  EXPECT_EQ(image_read.get(), it::Errno{EIO});
  {
    it::Fd w(open(M("bad").c_str(), O_WRONLY | O_APPEND));  // lazy copy-up
    ASSERT_TRUE(w.valid());
    EXPECT_EQ(write(w.get(), "tail", 4), 4);
  }
  auto restore_read = read_err();
  ASSERT_EQ(restore_read.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "a restore of damaged content waits under hard";
  EXPECT_EQ(restore_read.get(), it::Errno{EIO});
  Unmount();
}

// A container cut short on disk: the files wholly before the cut still
// read through the mount, those past it are EIO (and fsck names exactly
// them).
TEST_F(ImageMountTest, ATruncatedContainerKeepsItsIntactFilesReadable) {
  MakeDirs(B("img"));
  WriteFile(B("img/a"), Pattern(200 * 1024, 11));
  WriteFile(B("img/b"), Pattern(200 * 1024, 12));
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  const Extent ea = ExtentOf("img", "a");
  const Extent eb = ExtentOf("img", "b");
  ASSERT_EQ(ea.vv_id, eb.vv_id) << "the test wants both files in one container";
  // Whichever file the import wrote last loses its data.
  const bool a_first = ea.vv_offset < eb.vv_offset;
  const std::string intact = a_first ? "a" : "b";
  const std::string cut = a_first ? "b" : "a";
  const unsigned intact_seed = a_first ? 11 : 12;
  ASSERT_NO_FATAL_FAILURE(TruncateAt(a_first ? eb : ea, 100));
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out, 60), 1) << out;
  EXPECT_TRUE(Contains(out, "damaged files (1):\n  img:/" + cut + "\n")) << out;
  EXPECT_FALSE(Contains(out, "img:/" + intact)) << out;
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  EXPECT_EQ(ReadFile(M(intact)), Pattern(200 * 1024, intact_seed));
  it::Fd fd(open(M(cut).c_str(), O_RDONLY));
  ASSERT_TRUE(fd.valid());
  char buf[4096];
  EXPECT_EQ(it::Err(pread(fd.get(), buf, sizeof(buf), 0)), it::Errno{EIO});
  fd.reset();
  EXPECT_EQ(ReadFile(M(intact)), Pattern(200 * 1024, intact_seed));  // still
  Unmount();
  const std::string log = Slurp(log_);
  EXPECT_TRUE(Contains(log, "read of /" + cut)) << log;
  EXPECT_TRUE(Contains(log, "truncated")) << log;
}

// ---------------------------------------------------------------------------
// Lazy copy-up (src/lazy_copy_up.h): a write to an image file copies
// nothing; the image's content becomes the upper file's archive.

// Bytes of the upper file on disk.
uint64_t Allocated(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

std::string StateOf(const std::string& path) {
  char buf[256];
  ssize_t n = getxattr(path.c_str(), "user.overtier.state", buf, sizeof(buf));
  return n < 0 ? "error " + std::string(strerror(errno)) : std::string(buf, n);
}

TEST_F(ImageMountTest, LazyCopyUpAppendsWithoutCopyingTheFile) {
  constexpr size_t kBig = 48 << 20;
  const std::string big = Pattern(kBig, 21);
  const std::string other = Pattern(6 << 20, 22);
  MakeDirs(B("img/d"));
  WriteFile(B("img/d/big"), big);
  WriteFile(B("img/other"), other);
  WriteFile(B("img/cut"), Pattern(3 << 20, 23));
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));

  // A reader of `other` from before its copy-up.
  it::Fd old_reader(open(M("other").c_str(), O_RDONLY));
  ASSERT_TRUE(old_reader.valid());
  char c;
  ASSERT_EQ(pread(old_reader.get(), &c, 1, 0), 1);

  // Appending one byte: the upper file holds that byte's block, no more.
  {
    it::Fd w(open(M("d/big").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(write(w.get(), "!", 1), 1);
  }
  EXPECT_LT(Allocated(B("upper/d/big")), uint64_t{1} << 20);
  EXPECT_EQ(Lstat(B("upper/d/big")).st_size, static_cast<off_t>(kBig + 1));
  EXPECT_EQ(StateOf(M("d/big")), "dirty resident=[" + std::to_string(kBig) + "," +
                                     std::to_string(kBig + 1) +
                                     ") size=" + std::to_string(kBig + 1));
  EXPECT_FALSE(it::GetXattr(B("upper/d/big"), "trusted.overlay.metacopy"))
      << "the copy-up is complete: the archive, not the lower, is the source";

  // A write in the middle lands; a read of one range restores only that
  // range (on demand: never the rest of the file).
  {
    it::Fd w(open(M("d/big").c_str(), O_WRONLY));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(pwrite(w.get(), "MIDDLE", 6, 20 << 20), 6);
  }
  std::string expect = big + "!";
  expect.replace(20 << 20, 6, "MIDDLE");
  {
    it::Fd r(open(M("d/big").c_str(), O_RDONLY));
    ASSERT_TRUE(r.valid());
    std::string part(100000, '\0');
    ASSERT_EQ(pread(r.get(), part.data(), part.size(), 30 << 20), 100000);
    EXPECT_TRUE(part == expect.substr(30 << 20, 100000));
  }
  EXPECT_LT(Allocated(B("upper/d/big")), uint64_t{4} << 20);

  // The old reader follows the copy-up: the write at 0 and the image's
  // bytes elsewhere (not the upper file's holes).
  {
    it::Fd w(open(M("other").c_str(), O_WRONLY));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(pwrite(w.get(), "Y", 1, 0), 1);
  }
  std::string head(4096, '\0');
  ASSERT_EQ(pread(old_reader.get(), head.data(), head.size(), 0), 4096);
  EXPECT_EQ(head[0], 'Y');
  EXPECT_TRUE(head.substr(1) == other.substr(1, 4095));
  std::string mid(8192, '\0');
  ASSERT_EQ(pread(old_reader.get(), mid.data(), mid.size(), 5 << 20), 8192);
  EXPECT_TRUE(mid == other.substr(5 << 20, 8192));
  old_reader.reset();

  // A truncate by path copies up lazily and restores nothing.
  ASSERT_EQ(truncate(M("cut").c_str(), 1 << 20), 0);
  EXPECT_EQ(Allocated(B("upper/cut")), 0u);
  // The copy-up, once complete, left the archive mark (MarkAdopted), and
  // it fits in the inode (no xattr block above).
  EXPECT_EQ(getxattr(B("upper/cut").c_str(), "user.overtier.archive", nullptr, 0), 16);
  EXPECT_EQ(ReadFile(M("cut")), Pattern(3 << 20, 23).substr(0, 1 << 20));

  // Everything reads back, and again after a remount (the records are in
  // the catalog).
  EXPECT_TRUE(ReadFile(M("d/big")) == expect);
  Unmount();
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  EXPECT_TRUE(ReadFile(M("d/big")) == expect);
  std::string other_now = other;
  other_now[0] = 'Y';
  EXPECT_TRUE(ReadFile(M("other")) == other_now);
  Unmount();
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

// A reader that opened an image file before its lazy copy-up reads the
// upper file after it (as on the kernel overlayfs), also once that file is
// unlinked: its record (and the archive behind the ranges the copy-up
// left in the image) stays until that reader closes, then goes. Found by
// the differential test (seed 1861, image lowers): the record went at the
// unlink and the reader saw the upper file's holes as zeros.
TEST_F(ImageMountTest, AReaderFromBeforeALazyCopyUpReadsTheFileAfterItsUnlink) {
  const std::string data = Pattern(3 << 20, 41);
  MakeDirs(B("img"));
  WriteFile(B("img/f"), data);
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  it::Fd reader(open(M("f").c_str(), O_RDONLY));
  ASSERT_TRUE(reader.valid());
  ASSERT_NO_FATAL_FAILURE(AppendOne(M("f")));  // the lazy copy-up
  ASSERT_EQ(unlink(M("f").c_str()), 0);
  std::string got(data.size() + 10, '\0');
  ssize_t n = pread(reader.get(), got.data(), got.size(), 0);
  ASSERT_EQ(n, static_cast<ssize_t>(data.size() + 1));
  got.resize(static_cast<size_t>(n));
  EXPECT_TRUE(got == data + "!") << "the image's bytes, not the upper file's holes";
  // Its record goes once the reader lets go (on the daemon's pool, soon
  // after the release; the catalog is read once the mount is gone).
  reader.reset();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Unmount();
  EXPECT_EQ(MigrationRecords(), 0)
      << "the record of the unlinked file stayed after its last reader closed";
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

// lazy_copyup=off: a copy-up of an image file copies its data, as for a
// plain lower; the upper file has no migration record.
TEST_F(ImageMountTest, LazyCopyUpOffCopiesTheData) {
  const std::string data = Pattern(8 << 20, 24);
  MakeDirs(B("img"));
  WriteFile(B("img/f"), data);
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img", true, {}, ",lazy_copyup=off"));
  ASSERT_NO_FATAL_FAILURE(AppendOne(M("f")));
  EXPECT_GE(Allocated(B("upper/f")), data.size()) << "the data was copied";
  EXPECT_EQ(StateOf(M("f")), "resident");
  EXPECT_TRUE(ReadFile(B("upper/f")) == data + "!");
  Unmount();
}

TEST_F(ImageMountTest, LazyCopyUpKeepsTheContentAfterTheImageIsRemoved) {
  const std::string data = Pattern(5 << 20, 31);
  MakeDirs(B("img"));
  WriteFile(B("img/f"), data);
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  {
    it::Fd w(open(M("f").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(write(w.get(), "+", 1), 1);
  }
  Unmount();
  // The image goes, and gc runs: the upper file's record keeps its archive.
  std::string out;
  ASSERT_EQ(RunCmd({OvertierBin(), "image", "rm", store_, "img"}, &out), 0) << out;
  ASSERT_EQ(RunCmd({OvertierBin(), "gc", store_}, &out), 0) << out;
  MakeDirs(B("empty"));
  ASSERT_NO_FATAL_FAILURE(MountUnion(B("empty")));
  EXPECT_TRUE(ReadFile(M("f")) == data + "+");
  Unmount();
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

// A mount with lazy copy-up keeps its store open for writing from the start
// (a container's first writes copy image files up), and gives it up as soon
// as another writer waits for it: an import into the same store, while the
// mount is idle, goes through at once; copy-ups after it reopen the store.
// `image commit` of an upper layer whose files are not all there: a file
// lazily copied up (its bytes still in the image) and a released one (in
// its archive) keep every byte in the new image, read from the store; a
// metadata-only copy (its data in the lower layer) is refused, naming it,
// and nothing is published. Before, all three became zeros.
TEST_F(ImageMountTest, ACommitKeepsTheBytesTheUpperFileDoesNotHold) {
  const std::string big = Pattern(6 << 20, 41);
  const std::string meta = Pattern(1 << 20, 42);
  const std::string fresh = Pattern(3 << 20, 43);
  MakeDirs(B("img"));
  WriteFile(B("img/big"), big);
  WriteFile(B("img/meta"), meta);
  WriteFile(B("img/meta2"), "second");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img", true, {}, ",restore=ondemand"));
  ASSERT_NO_FATAL_FAILURE(AppendOne(M("big")));
  WriteFile(M("fresh"), fresh);
  std::string out;
  ASSERT_EQ(RunCmd({OvertierBin(), "archive", "--release", M("fresh")}, &out), 0) << out;
  ASSERT_EQ(chmod(M("meta").c_str(), 0600), 0);
  ASSERT_EQ(chown(M("meta2").c_str(), 7, 7), 0);
  Unmount();
  EXPECT_LT(Allocated(B("upper/big")), uint64_t{1} << 20) << "lazily copied up";
  EXPECT_EQ(Allocated(B("upper/fresh")), 0u) << "released";
  EXPECT_EQ(Allocated(B("upper/meta")), 0u) << "a metadata-only copy";

  auto commit = [&](const std::string& name, std::string* out) {
    return RunCmd(
        {OvertierBin(), "image", "commit", "--from", B("upper"), "--parent", "img", store_, name},
        out, 120);
  };
  EXPECT_NE(commit("c", &out), 0) << out;
  EXPECT_TRUE(Contains(out, "2 metadata-only copies")) << out;
  EXPECT_TRUE(Contains(out, "'" + B("upper/meta") + "', '" + B("upper/meta2") + "'")) << out;
  EXPECT_EQ(RunCmd({OvertierBin(), "image", "inspect", store_, "c"}, &out), 1) << out;

  // Opened for writing through the union, it gets its data (lazily: the
  // image's content becomes its archive), and the commit goes through.
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img", true, {}, ",restore=ondemand"));
  for (const char* name : {"meta", "meta2"}) {
    it::Fd w(open(M(name).c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid());
  }
  Unmount();
  ASSERT_EQ(commit("c", &out), 0) << out;
  EXPECT_EQ(Allocated(B("upper/fresh")), 0u) << "commit only reads the upper layer";

  ASSERT_NO_FATAL_FAILURE(MountUnion("image:c", /*upper=*/false));
  EXPECT_TRUE(ReadFile(M("big")) == big + "!");
  EXPECT_TRUE(ReadFile(M("fresh")) == fresh);
  EXPECT_TRUE(ReadFile(M("meta")) == meta);
  EXPECT_EQ(Lstat(M("meta")).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(M("meta2")), "second");
  EXPECT_EQ(Lstat(M("meta2")).st_uid, 7u);
  Unmount();
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

TEST_F(ImageMountTest, AMountKeepsItsStoreOpenUntilAnotherWriterWaits) {
  MakeDirs(B("img"));
  WriteFile(B("img/a"), "alpha");
  WriteFile(B("img/b"), "beta");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  const std::string lock = store_ + "/write.lock";
  auto held = [&] {
    it::Fd fd(open(lock.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return false;
    if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return false;  // closed again with fd
    return errno == EWOULDBLOCK;
  };
  EXPECT_TRUE(PollUntil(held, std::chrono::seconds(10))) << "the store was not opened at mount";
  // Idle for longer than a mount without lazy copy-up keeps it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(held());
  {
    it::Fd w(open(M("a").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid()) << strerror(errno);
    ASSERT_EQ(write(w.get(), "!", 1), 1);
  }
  // Another writer: it waits only until the mount notices.
  MakeDirs(B("more"));
  WriteFile(B("more/c"), "gamma");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(Import("more", B("more")));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // The mount reopens the store for the next copy-up.
  {
    it::Fd w(open(M("b").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid()) << strerror(errno);
    ASSERT_EQ(write(w.get(), "!", 1), 1) << strerror(errno);
  }
  // Lazy: only the appended byte is in the upper file. (Before the reads:
  // a read restores what it reads, and the restore's last commit, which
  // makes the file resident, may come after the read is answered.)
  EXPECT_TRUE(StateOf(M("b")).starts_with("dirty")) << StateOf(M("b"));
  EXPECT_EQ(ReadFile(M("a")), "alpha!");
  EXPECT_EQ(ReadFile(M("b")), "beta!");
  EXPECT_TRUE(held());
  Unmount();
  EXPECT_FALSE(held()) << "the store stays locked after the unmount";
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

// The pid holding STORE/write.lock (flock), from /proc/locks; -1 if none.
pid_t WriteLockHolder(const std::string& store) { return it::FlockHolder(store + "/write.lock"); }

// Two such mounts of one store (two containers of one image): each keeps
// the store while idle, and hands it over when the other needs it. Their
// copy-ups, alternating, each wait only for a handover.
TEST_F(ImageMountTest, TwoMountsOfOneStoreHandItOverInTurn) {
  constexpr int kFiles = 5;
  MakeDirs(B("img"));
  for (int i = 0; i < kFiles; i++)
    WriteFile(B("img/f" + std::to_string(i)), "file " + std::to_string(i));
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  MakeDirs(B("upper2"));
  MakeDirs(B("work2"));
  MakeDirs(B("mnt2"));
  const std::string mnt2 = B("mnt2");
  // The second mount in daemon mode: unmounted however the test ends.
  struct Unmounter {
    std::string mnt;
    ~Unmounter() {
      if (!IsMountPoint(mnt)) return;
      std::string out;
      if (RunCmd({"fusermount3", "-u", mnt}, &out) != 0) umount2(mnt.c_str(), MNT_DETACH);
    }
  } second{mnt2};
  std::string out;
  ASSERT_EQ(RunCmd({OvertierBin(), "-o",
                    "lowerdir=image:img,store=" + store_ + ",upperdir=" + B("upper2") +
                        ",workdir=" + B("work2"),
                    mnt2},
                   &out),
            0)
      << out;
  // The second mount did not take the store from the first, which opened
  // it at its start: a mount opens it at start only if nobody writes it.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(WriteLockHolder(store_), daemon_.pid());
  auto append = [](const std::string& path) {
    const auto t0 = std::chrono::steady_clock::now();
    it::Fd w(open(path.c_str(), O_WRONLY | O_APPEND));
    EXPECT_TRUE(w.valid()) << path << ": " << strerror(errno);
    if (w.valid()) {
      EXPECT_EQ(write(w.get(), "!", 1), 1) << path << ": " << strerror(errno);
    }
    return std::chrono::steady_clock::now() - t0;
  };
  for (int i = 0; i < kFiles; i++) {
    const std::string f = "f" + std::to_string(i);
    EXPECT_LT(append(M(f)), std::chrono::seconds(5)) << f << " in the first mount";
    EXPECT_LT(append(mnt2 + "/" + f), std::chrono::seconds(5)) << f << " in the second mount";
  }
  for (int i = 0; i < kFiles; i++) {
    const std::string f = "f" + std::to_string(i);
    // Lazy copy-ups in both mounts (checked before the reads, which
    // restore the files).
    EXPECT_TRUE(StateOf(M(f)).starts_with("dirty")) << StateOf(M(f));
    EXPECT_TRUE(StateOf(mnt2 + "/" + f).starts_with("dirty")) << StateOf(mnt2 + "/" + f);
    EXPECT_EQ(ReadFile(M(f)), "file " + std::to_string(i) + "!");
    EXPECT_EQ(ReadFile(mnt2 + "/" + f), "file " + std::to_string(i) + "!");
    // The read restored the file: resident once the restore commits.
    EXPECT_TRUE(
        PollUntil([&] { return StateOf(mnt2 + "/" + f) == "resident"; }, std::chrono::seconds(10)))
        << StateOf(mnt2 + "/" + f);
  }
  ASSERT_EQ(RunCmd({"fusermount3", "-u", mnt2}, &out), 0) << out;
  Unmount();
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

// ---------------------------------------------------------------------------
// Crash safety of the migration tier: the daemon kills itself at a named
// point (migrate/crash_point.h) inside a lazy copy-up, an archive, a
// release or a restore; after a remount every byte that was written is
// there, fsck is clean, and the files can be archived, released and
// restored again (no stale in-progress state).

class MigrationCrashTest : public ImageMountTest,
                           public ::testing::WithParamInterface<const char*> {
 protected:
  // Whether the daemon has exited (not reaped: Unmount does that).
  bool DaemonGone() { return daemon_.Exited(); }
  int Cli(const std::vector<std::string>& words) {
    std::vector<std::string> args = {OvertierBin()};
    args.insert(args.end(), words.begin(), words.end());
    int rc = RunCmd(args, &cli_out_);
    if (rc != 0)
      std::fprintf(stderr, "overtier %s: rc %d: %s\n", words[0].c_str(), rc, cli_out_.c_str());
    return rc;
  }
  std::string cli_out_;
};

TEST_P(MigrationCrashTest, NothingIsLost) {
  const std::string point = GetParam();
  const std::string image_data = Pattern(1 << 20, 41);
  const std::string data = Pattern(3 << 20, 42);
  MakeDirs(B("img"));
  WriteFile(B("img/f"), image_data);
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));

  MountUnion("image:img", /*upper=*/true, {"OVERTIER_CRASH_AT=" + point});
  ASSERT_FALSE(HasFatalFailure());

  // The workload, step by step, until the daemon is gone.
  bool appended = false, written = false;
  {
    it::Fd w(open(M("f").c_str(), O_WRONLY | O_APPEND));
    appended = w.valid() && write(w.get(), "!", 1) == 1;
  }
  if (!DaemonGone()) {
    it::Fd w(open(M("u").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644));
    written = w.valid() && write(w.get(), data.data(), data.size()) == ssize_t(data.size()) &&
              fsync(w.get()) == 0;
  }
  struct timespec mtime {};
  if (written) mtime = Lstat(M("u")).st_mtim;
  if (!DaemonGone()) Cli({"archive", M("u")});
  if (!DaemonGone()) Cli({"release", M("u")});
  if (!DaemonGone()) (void)it::Err(open(M("u").c_str(), O_RDONLY));
  if (!DaemonGone()) {
    it::Fd r(open(M("u").c_str(), O_RDONLY));
    std::string buf(data.size(), '\0');
    if (r.valid()) (void)pread(r.get(), buf.data(), buf.size(), 0);
  }
  ASSERT_TRUE(PollUntil([&] { return DaemonGone(); }, std::chrono::seconds(10)))
      << "the daemon never reached " << point;
  Unmount(/*expect_clean=*/false);

  // Remounted: what was written is there.
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:img"));
  EXPECT_TRUE(ReadFile(M("f")) == image_data + (appended ? "!" : "")) << point;
  if (written) {
    EXPECT_TRUE(ReadFile(M("u")) == data) << point;
    // The agents' own time changes never show, crash or not (once the
    // restore the read started has put the times back: docs/SEMANTICS.md).
    EXPECT_TRUE(PollUntil(
        [&] {
          std::string st = StateOf(M("u"));
          return st.rfind("archived", 0) == 0 || st == "resident";
        },
        std::chrono::seconds(20)))
        << StateOf(M("u"));
    struct timespec now = Lstat(M("u")).st_mtim;
    EXPECT_EQ(now.tv_sec, mtime.tv_sec) << point;
    EXPECT_EQ(now.tv_nsec, mtime.tv_nsec) << point;
  }
  // And the migration tier works on both files again.
  if (written) {
    Cli({"archive", M("u")});  // may be archived already
    EXPECT_EQ(Cli({"release", M("u")}), 0) << point;
    EXPECT_TRUE(ReadFile(M("u")) == data) << point;
  }
  {
    it::Fd w(open(M("f").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(write(w.get(), "?", 1), 1);
  }
  EXPECT_TRUE(ReadFile(M("f")) == image_data + (appended ? "!" : "") + "?") << point;
  Unmount();
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << point << "\n" << out;
}

INSTANTIATE_TEST_SUITE_P(Points, MigrationCrashTest,
                         ::testing::Values("adopt-committed", "archive-written",
                                           "archive-committed", "release-marked",
                                           "release-committed", "release-punched",
                                           "restore-written", "restore-unmarked",
                                           "restore-committed"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// An image with more objects than the daemon may have descriptors: image
// layers have file handles (src/image_fuse.cc answers "." and ".."), so
// the union closes cold descriptors and reopens them by handle, as for a
// plain lower; without that every object seen kept one (EMFILE).
TEST_F(ImageMountTest, AnImageLargerThanTheFdLimitIsServedWhole) {
  constexpr int kDirs = 20, kFiles = 100;
  for (int d = 0; d < kDirs; d++) {
    MakeDirs(B("img/d" + std::to_string(d) + "/sub"));
    for (int f = 0; f < kFiles; f++)
      WriteFile(B("img/d" + std::to_string(d) + "/sub/f" + std::to_string(f)),
                std::to_string(d) + "-" + std::to_string(f));
  }
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  const std::string opts =
      "lowerdir=image:img,store=" + store_ + ",upperdir=" + B("upper") + ",workdir=" + B("work");
  ASSERT_NO_FATAL_FAILURE(
      MountWith({"/usr/bin/prlimit", "--nofile=300:300", OvertierBin(), "-f", "-o", opts, mnt_}));
  // Twice: the second pass reopens what the first let go.
  for (int pass = 0; pass < 2; pass++) {
    int bad = 0;
    std::string first;
    for (int d = 0; d < kDirs; d++) {
      for (int f = 0; f < kFiles; f++) {
        const std::string rel = "d" + std::to_string(d) + "/sub/f" + std::to_string(f);
        struct stat st;
        const std::string want = std::to_string(d) + "-" + std::to_string(f);
        if (stat(M(rel).c_str(), &st) != 0 || ReadFile(M(rel)) != want) {
          if (bad++ == 0) first = rel + ": " + strerror(errno);
        }
      }
    }
    EXPECT_EQ(bad, 0) << "pass " << pass << ", first: " << first;
  }
  // A copy-up deep in the tree after all that.
  {
    it::Fd w(open(M("d3/sub/f7").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid()) << strerror(errno);
    ASSERT_EQ(write(w.get(), "+", 1), 1);
  }
  EXPECT_EQ(ReadFile(M("d3/sub/f7")), "3-7+");
  Unmount();
}

TEST_F(ImageMountTest, ChrootIntoABusyboxImage) {
  if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "no /bin/busybox (busybox-static)";
  std::string root = B("rootfs");
  for (const char* d : {"bin", "etc", "tmp", "root"}) MakeDirs(root + "/" + d);
  ASSERT_EQ(chmod((root + "/tmp").c_str(), 01777), 0);
  std::string out;
  ASSERT_EQ(RunCmd({"cp", "/bin/busybox", root + "/bin/busybox"}, &out), 0) << out;
  for (const char* app : {"sh", "ls", "cat", "echo", "mkdir", "rm", "true"}) {
    ASSERT_EQ(symlink("busybox", (root + "/bin/" + app).c_str()), 0);
  }
  WriteFile(root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  ASSERT_NO_FATAL_FAILURE(Import("rootfs", root));
  ASSERT_NO_FATAL_FAILURE(MountUnion("image:rootfs"));
  int rc = RunCmd({"chroot", M(), "/bin/sh", "-c",
                   "ls /bin; echo hi > /tmp/x; cat /tmp/x; echo more >> /etc/passwd"},
                  &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(Contains(out, "busybox"));
  EXPECT_TRUE(Contains(out, "cat"));
  EXPECT_TRUE(Contains(out, "hi\n"));
  EXPECT_EQ(ReadFile(M("etc/passwd")), "root:x:0:0:root:/root:/bin/sh\nmore\n");
  EXPECT_EQ(ReadFile(B("upper/etc/passwd")), "root:x:0:0:root:/root:/bin/sh\nmore\n");
  EXPECT_EQ(ReadFile(B("upper/tmp/x")), "hi\n");
  // The busybox binary was executed from the image, not copied up.
  EXPECT_FALSE(Exists(B("upper/bin/busybox")));
}

TEST_F(ImageMountTest, DaemonModeLeavesOneMountAndExitsOnUnmount) {
  MakeDirs(B("img"));
  WriteFile(B("img/f"), "daemon");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  const std::string before = Slurp("/proc/self/mounts");
  std::string opts =
      "lowerdir=image:img,store=" + store_ + ",upperdir=" + B("upper") + ",workdir=" + B("work");
  std::string out;
  // Without -f: forks, and exits 0 once the mount is ready (as
  // containers/storage runs a mount_program).
  ASSERT_EQ(RunCmd({OvertierBin(), "-o", opts, mnt_}, &out), 0) << out;
  ASSERT_TRUE(IsMountPoint(mnt_));
  // Find the daemon: the overtier process whose command line names mnt_.
  pid_t daemon = -1;
  for (const auto& ent : std::filesystem::directory_iterator("/proc")) {
    std::string name = ent.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = Slurp(ent.path().string() + "/cmdline");
    if (cmd.find(OvertierBin()) != std::string::npos && cmd.find(mnt_) != std::string::npos)
      daemon = std::stoi(name);
  }
  ASSERT_GT(daemon, 0);
  EXPECT_EQ(ReadFile(M("f")), "daemon");
  // Exactly one more mount: the union. The image file system is detached.
  const std::string during = Slurp("/proc/self/mounts");
  EXPECT_EQ(CountLines(during), CountLines(before) + 1) << during;
  EXPECT_FALSE(Contains(during, "overtier-image"));
  EXPECT_FALSE(Contains(Slurp("/proc/self/mountinfo"), "overtier-image"));
  // Both FUSE connections belong to the daemon.
  int fuse_fds = 0;
  for (const auto& ent :
       std::filesystem::directory_iterator("/proc/" + std::to_string(daemon) + "/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(ent.path(), ec) == "/dev/fuse") ++fuse_fds;
  }
  EXPECT_EQ(fuse_fds, 2);
  // Some migration work (a lazy copy-up: the store opened for writing in
  // the forked daemon, closed again when it unmounts).
  {
    it::Fd w(open(M("f").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(write(w.get(), "!", 1), 1);
  }
  EXPECT_EQ(ReadFile(M("f")), "daemon!");
  ASSERT_EQ(RunCmd({"fusermount3", "-u", mnt_}, &out), 0) << out;
  bool gone =
      PollUntil([&] { return kill(daemon, 0) != 0 && errno == ESRCH; }, std::chrono::seconds(15));
  if (!gone) kill(daemon, SIGKILL);
  EXPECT_TRUE(gone) << "the daemon did not exit after fusermount3 -u";
  EXPECT_FALSE(IsMountPoint(mnt_));
}

// containers/storage and people alike may name the layers and the store
// relative to their working directory. The daemon runs in "/" once it is in
// the background and opens the store again whenever migration work starts.
TEST_F(ImageMountTest, DaemonModeTakesRelativePaths) {
  MakeDirs(B("img"));
  WriteFile(B("img/f"), "relative");
  ASSERT_NO_FATAL_FAILURE(Import("img", B("img")));
  const std::filesystem::path base = std::filesystem::path(store_).parent_path();
  auto rel = [&](const std::string& p) { return std::filesystem::relative(p, base).string(); };
  const std::string opts = "lowerdir=image:img,store=" + rel(store_) +
                           ",upperdir=" + rel(B("upper")) + ",workdir=" + rel(B("work"));
  it::Fd cwd(open(".", O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(cwd.valid());
  ASSERT_EQ(chdir(base.c_str()), 0);
  std::string out;
  const int rc = RunCmd({OvertierBin(), "-o", opts, rel(mnt_)}, &out);
  ASSERT_EQ(fchdir(cwd.get()), 0);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(IsMountPoint(mnt_));
  // A lazy copy-up: it needs the store opened for writing, from "/".
  {
    it::Fd w(open(M("f").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(w.valid()) << strerror(errno);
    EXPECT_EQ(write(w.get(), "!", 1), 1) << strerror(errno);
  }
  // Before the read, which restores the file (its last commit may land
  // after the read is answered).
  char state[64] = {};
  EXPECT_GT(getxattr(M("f").c_str(), "user.overtier.state", state, sizeof(state) - 1), 0)
      << strerror(errno);
  EXPECT_TRUE(Contains(state, "dirty")) << state;
  EXPECT_EQ(ReadFile(M("f")), "relative!");
  ASSERT_EQ(RunCmd({"fusermount3", "-u", mnt_}, &out), 0) << out;
  EXPECT_TRUE(PollUntil([&] { return !IsMountPoint(mnt_); }, std::chrono::seconds(15)));
}

TEST_F(ImageMountTest, ImageMountCommandIsReadOnly) {
  ASSERT_NO_FATAL_FAILURE(BuildRichTree(B("src")));
  ASSERT_NO_FATAL_FAILURE(Import("rich", B("src")));
  ASSERT_NO_FATAL_FAILURE(MountWith({OvertierBin(), "image", "mount", "-f", store_, "rich", mnt_}));
  EXPECT_EQ(it::DiffTrees(Snapshot(B("src")), "source", Snapshot(M()), "mount"), "");
  EXPECT_EQ(it::Err(open(M("etc/hostname").c_str(), O_WRONLY)), it::Errno{EROFS});
  EXPECT_EQ(it::Err(mkdir(M("newdir").c_str(), 0755)), it::Errno{EROFS});
}

TEST_F(ImageMountTest, MountErrorsNameWhatIsWrong) {
  std::string out;
  // No store=.
  EXPECT_EQ(RunCmd({OvertierBin(), "-f", "-o", "lowerdir=image:x", mnt_}, &out), 2);
  EXPECT_TRUE(Contains(out, "lowerdir image:x needs store="));
  // An image the store does not have.
  EXPECT_EQ(RunCmd({OvertierBin(), "-f", "-o", "lowerdir=image:nope,store=" + store_, mnt_}, &out),
            2);
  EXPECT_TRUE(Contains(out, "no image 'nope'"));
  // Not a store.
  EXPECT_EQ(RunCmd({OvertierBin(), "-f", "-o", "lowerdir=image:x,store=" + B("src"), mnt_}, &out),
            2);
  EXPECT_TRUE(Contains(out, B("src")));
  EXPECT_FALSE(IsMountPoint(mnt_));
}

}  // namespace
}  // namespace overtier
