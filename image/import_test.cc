#include "image/import.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "image/blob_digest.h"
#include "image/export.h"
#include "image/io_testutil.h"
#include "image/oci.h"
#include "image/posix_acl.h"

namespace overtier {
namespace {

using testing::DumpedImage;
using testing::DumpImage;
using testing::ExpectSameImage;
using testing::FeedFifo;
using testing::ImageNames;
using testing::NewStore;
using testing::PipedStdin;
using testing::ReadFile;
using testing::TarSpec;
using testing::TempDir;
using testing::WriteFile;
using testing::WriteTar;

int64_t Ns(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = NewStore(tmp_ / "store"); }

  Status Import(const std::string& name, const std::string& source, ImportOptions opt = {}) {
    ImportResult r;
    if (!opt.warn) opt.warn = [this](const std::string& m) { warnings_.push_back(m); };
    Status s = ImportImage(store_.get(), name, source, opt, &r);
    result_ = r;
    return s;
  }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
  std::vector<std::string> warnings_;
  ImportResult result_;
};

// Builds a directory with every kind of entry and checks the rows against
// lstat of the source, field by field.
TEST_F(ImportTest, DirectoryKeepsEverything) {
  std::string src = tmp_ / "src";
  ASSERT_EQ(mkdir(src.c_str(), 0750), 0);
  WriteFile(src + "/file", "hello world\n");
  WriteFile(src + "/empty", "");
  ASSERT_EQ(chmod((src + "/file").c_str(), 04755), 0);
  ASSERT_EQ(lchown((src + "/file").c_str(), 1234, 5678), 0);
  ASSERT_EQ(setxattr((src + "/file").c_str(), "user.color", "blue", 4, 0), 0);
  ASSERT_EQ(setxattr((src + "/file").c_str(), "trusted.t", "T\0x", 3, 0), 0);
  ASSERT_EQ(setxattr((src + "/file").c_str(), "security.s", "S", 1, 0), 0);
  ASSERT_EQ(mkdir((src + "/dir").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((src + "/dir/sub").c_str(), 0755), 0);
  ASSERT_EQ(link((src + "/file").c_str(), (src + "/dir/hard1").c_str()), 0);
  ASSERT_EQ(link((src + "/file").c_str(), (src + "/dir/sub/hard2").c_str()), 0);
  ASSERT_EQ(symlink("../file", (src + "/dir/link").c_str()), 0);
  ASSERT_EQ(lsetxattr((src + "/dir/link").c_str(), "trusted.onlink", "L", 1, 0), 0);
  ASSERT_EQ(mkfifo((src + "/fifo").c_str(), 0640), 0);
  ASSERT_EQ(mknod((src + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(mknod((src + "/blk").c_str(), S_IFBLK | 0600, makedev(8, 1)), 0);
  ASSERT_EQ(mknod((src + "/whiteout").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(setxattr((src + "/dir").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  // Sparse: 64 MiB with data at 1 MiB and at the end.
  {
    int fd = open((src + "/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "abc", 3, 1 << 20), 3);
    ASSERT_EQ(pwrite(fd, "end", 3, (64 << 20) - 3), 3);
    close(fd);
  }
  // Random content bigger than a chunk.
  {
    std::string big(3 << 20, '\0');
    for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>((i * 7919) >> 5);
    WriteFile(src + "/big", big);
  }
  // A socket: skipped with a warning.
  {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::string sp = src + "/sock";
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sp.c_str());
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(s);
  }
  // ns times.
  struct timespec ts[2] = {{1111, 222333444}, {1600000000, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/empty").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/dir/link").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);

  // Attributes as they are before the import (reading a symlink updates
  // its atime).
  std::map<std::string, struct stat> before;
  for (const char* p : {"", "/file", "/empty", "/dir", "/dir/sub", "/dir/hard1", "/dir/sub/hard2",
                        "/dir/link", "/fifo", "/null", "/blk", "/whiteout", "/sparse", "/big"}) {
    ASSERT_EQ(lstat((src + p).c_str(), &before[*p ? p : "/"]), 0) << p;
  }
  ASSERT_TRUE(Import("img", src).ok());
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("sock"), std::string::npos) << warnings_[0];
  DumpedImage img = DumpImage(store_.get(), "img");
  EXPECT_EQ(img.image.parent_image_id, 0u);
  EXPECT_EQ(img.nodes.count("/sock"), 0u);

  std::vector<std::string> paths = {
      "/",         "/file", "/empty", "/dir", "/dir/sub",  "/dir/hard1", "/dir/sub/hard2",
      "/dir/link", "/fifo", "/null",  "/blk", "/whiteout", "/sparse",    "/big"};
  EXPECT_EQ(img.nodes.size(), paths.size());
  for (const std::string& p : paths) {
    SCOPED_TRACE(p);
    ASSERT_TRUE(img.nodes.count(p));
    const NodeRecord& r = img.nodes[p].rec;
    const struct stat& st = before.at(p);
    EXPECT_EQ(r.mode, st.st_mode);
    EXPECT_EQ(r.uid, st.st_uid);
    EXPECT_EQ(r.gid, st.st_gid);
    EXPECT_EQ(r.mtime_ns, Ns(st.st_mtim));
    EXPECT_EQ(r.ctime_ns, Ns(st.st_ctim));
    if (!S_ISDIR(st.st_mode)) {
      EXPECT_EQ(r.nlink, st.st_nlink);
      EXPECT_EQ(r.atime_ns, Ns(st.st_atim));
    } else {
      EXPECT_EQ(r.nlink, st.st_nlink);  // 2 + subdirectories, on ext4 too
      EXPECT_EQ(r.size, kImageDirSize);
    }
    if (S_ISREG(st.st_mode)) {
      EXPECT_EQ(r.size, static_cast<uint64_t>(st.st_size));
      EXPECT_EQ(r.has_content, st.st_size > 0);
      std::string want = ReadFile(src + p);
      EXPECT_TRUE(img.nodes[p].content == want) << "content";
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      EXPECT_EQ(r.rdev, st.st_rdev);
    }
    if (S_ISLNK(st.st_mode)) {
      EXPECT_EQ(r.symlink_target, "../file");
      EXPECT_EQ(r.size, 7u);
    }
  }
  EXPECT_EQ(img.nodes["/file"].ino, img.nodes["/dir/hard1"].ino);
  EXPECT_EQ(img.nodes["/file"].ino, img.nodes["/dir/sub/hard2"].ino);
  EXPECT_EQ(img.nodes["/file"].rec.nlink, 3u);
  std::map<std::string, std::string> want_x = {
      {"security.s", "S"}, {"trusted.t", std::string("T\0x", 3)}, {"user.color", "blue"}};
  EXPECT_EQ(img.nodes["/file"].rec.xattrs, want_x);
  EXPECT_EQ(img.nodes["/dir/link"].rec.xattrs.at("trusted.onlink"), "L");
  EXPECT_TRUE(IsOpaqueDir(img.nodes["/dir"].rec));
  EXPECT_TRUE(IsWhiteout(img.nodes["/whiteout"].rec));
  EXPECT_EQ(img.nodes["/dir/link"].rec.mtime_ns, 1600000000123456789);
  EXPECT_EQ(img.nodes["/empty"].rec.atime_ns, 1111222333444);
  EXPECT_EQ(img.nodes["/"].ino, kImageRootInode);
  // The sparse file's holes are not stored: at most two chunks for it.
  FileRecord f;
  ASSERT_TRUE(store_->catalog()
                  ->GetNode(img.image.image_id, img.nodes["/sparse"].ino, &img.nodes["/sparse"].rec)
                  .ok());
  ASSERT_TRUE(store_->catalog()->GetFile(img.nodes["/sparse"].rec.content, &f).ok());
  ASSERT_EQ(f.copies.size(), 1u);
  EXPECT_EQ(f.copies[0].extents.size(), 2u);
  EXPECT_EQ(result_.counters.files, 3u);  // file, sparse, big: the empty one has no content
}

// A tar with every kind of entry, in every compression, gives the same
// image each time; a dedup'd second import stores nothing new.
TEST_F(ImportTest, TarCompressionsAndPaxFeatures) {
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  std::vector<TarSpec> specs;
  specs.push_back({.path = "./", .mode = S_IFDIR | 0755});
  specs.push_back({.path = "etc/", .mode = S_IFDIR | 0755, .uid = 7, .gid = 8});
  specs.push_back(
      {.path = "etc/passwd",
       .data = "root:x:0:0\n",
       .mtime_ns = 987654321,
       .xattrs = {{"user.a", "1"}, {"security.capability", std::string("\x01\0\0\x02", 4)}}});
  specs.push_back({.path = "etc/big", .data = big});
  specs.push_back({.path = "etc/link", .mode = S_IFLNK | 0777, .symlink = "passwd"});
  specs.push_back({.path = "etc/hard", .hardlink = "etc/passwd"});
  specs.push_back({.path = "dev/null", .mode = S_IFCHR | 0666, .rdev = makedev(1, 3)});
  specs.push_back({.path = "dev/fifo", .mode = S_IFIFO | 0600});
  specs.push_back({.path = "dev/blk", .mode = S_IFBLK | 0600, .rdev = makedev(259, 7)});
  std::vector<std::string> names;
  for (const char* filter : {"none", "gzip", "zstd", "xz"}) {
    std::string tar = tmp_ / (std::string("t.") + filter);
    WriteTar(tar, specs, filter);
    SourceKind kind;
    ASSERT_TRUE(DetectSource(tar, &kind).ok());
    EXPECT_EQ(kind, SourceKind::kTar);
    std::string name = std::string("img-") + filter;
    Status s = Import(name, tar);
    ASSERT_TRUE(s.ok()) << filter << ": " << s.ToString();
    if (names.empty()) {
      EXPECT_GT(result_.counters.bytes_stored, 0u);
    } else {
      EXPECT_EQ(result_.counters.bytes_stored, 0u) << filter << ": dedup";
    }
    names.push_back(name);
  }
  DumpedImage first = DumpImage(store_.get(), names[0]);
  for (size_t i = 1; i < names.size(); i++)
    ExpectSameImage(first, DumpImage(store_.get(), names[i]));
  const auto& n = first.nodes;
  ASSERT_EQ(n.count("/etc/passwd"), 1u);
  EXPECT_EQ(n.at("/etc/passwd").content, "root:x:0:0\n");
  EXPECT_EQ(n.at("/etc/passwd").rec.mtime_ns, 1700000000987654321);
  EXPECT_EQ(n.at("/etc/passwd").rec.nlink, 2u);
  EXPECT_EQ(n.at("/etc/hard").ino, n.at("/etc/passwd").ino);
  EXPECT_EQ(n.at("/etc/passwd").rec.xattrs.at("security.capability"),
            std::string("\x01\0\0\x02", 4));
  EXPECT_EQ(n.at("/etc/big").content, big);
  EXPECT_EQ(n.at("/etc/link").rec.symlink_target, "passwd");
  EXPECT_EQ(n.at("/etc").rec.uid, 7u);
  EXPECT_EQ(n.at("/dev/null").rec.rdev, makedev(1, 3));
  EXPECT_EQ(n.at("/dev/blk").rec.rdev, makedev(259, 7));
  EXPECT_TRUE(S_ISFIFO(n.at("/dev/fifo").rec.mode));
  // dev/ was never an entry: created 0755 root.
  EXPECT_EQ(n.at("/dev").rec.mode, static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(n.at("/").rec.nlink, 4u);
}

// ---- malicious and broken archives: refused, nothing visible ----

class MaliciousTarTest : public ImportTest {
 protected:
  // Imports specs; expects failure with `err` and a message containing
  // `needle`, and no image afterwards.
  void ExpectRefused(const std::vector<TarSpec>& specs, int err, const std::string& needle) {
    std::string tar = tmp_ / "evil.tar";
    WriteTar(tar, specs);
    Status s = Import("evil", tar);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.err(), err) << s.ToString();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.ToString();
    EXPECT_TRUE(ImageNames(store_.get()).empty());
  }
};

TEST_F(MaliciousTarTest, DotDotEscapingIsRefused) {
  ExpectRefused({{.path = "a", .data = "x"}, {.path = "../../etc/evil", .data = "pwned"}}, EPERM,
                "'../../etc/evil'");
  ExpectRefused({{.path = "a/../../evil", .data = "x"}}, EPERM, "a/../../evil");
}

TEST_F(MaliciousTarTest, AbsoluteAndInnerDotDotAreContained) {
  std::string tar = tmp_ / "abs.tar";
  WriteTar(tar, {{.path = "/etc/abs", .data = "1"},
                 {.path = "x/../y", .data = "2"},
                 {.path = "./z/./w", .data = "3"}});
  ASSERT_TRUE(Import("abs", tar).ok());
  DumpedImage img = DumpImage(store_.get(), "abs");
  EXPECT_EQ(img.nodes.at("/etc/abs").content, "1");
  EXPECT_EQ(img.nodes.at("/y").content, "2");
  EXPECT_EQ(img.nodes.at("/z/w").content, "3");
  // "x/.." is resolved lexically: no "x" appears.
  EXPECT_EQ(img.nodes.count("/x"), 0u);
}

TEST_F(MaliciousTarTest, WritingThroughASymlinkIsRefused) {
  ExpectRefused({{.path = "l", .mode = S_IFLNK | 0777, .symlink = "/etc"},
                 {.path = "l/passwd", .data = "pwned"}},
                ENOTDIR, "'/l' is a symlink");
  ExpectRefused({{.path = "f", .data = "file"}, {.path = "f/x", .data = "x"}}, ENOTDIR,
                "'/f' is a regular file");
}

TEST_F(MaliciousTarTest, HardLinkToMissingTargetIsRefused) {
  ExpectRefused({{.path = "h", .hardlink = "nowhere"}}, ENOENT, "hard link to 'nowhere'");
  ExpectRefused({{.path = "d/", .mode = S_IFDIR | 0755}, {.path = "h", .hardlink = "d"}}, EPERM,
                "hard link to a directory");
}

TEST_F(MaliciousTarTest, TruncatedArchiveFailsCleanly) {
  std::string data(1 << 20, 'q');
  std::string tar = tmp_ / "full.tar";
  WriteTar(tar, {{.path = "a", .data = "small"}, {.path = "big", .data = data}});
  std::string bytes = ReadFile(tar);
  for (size_t cut : {bytes.size() / 2, size_t{700}, size_t{100}}) {
    std::string t = tmp_ / "cut.tar";
    WriteFile(t, bytes.substr(0, cut));
    Status s = Import("cut", t);
    EXPECT_FALSE(s.ok()) << "cut at " << cut;
    EXPECT_NE(s.message().find("cut.tar"), std::string::npos) << s.ToString();
    EXPECT_TRUE(ImageNames(store_.get()).empty());
  }
  // And the same store imports the whole archive afterwards.
  ASSERT_TRUE(Import("cut", tar).ok());
  EXPECT_EQ(DumpImage(store_.get(), "cut").nodes.at("/big").content, data);
}

std::string Padded(std::string data) {
  data.resize((data.size() + 511) / 512 * 512, '\0');
  return data;
}

// A ustar header by hand for `name`: mode (type bits give the typeflag
// unless `typeflag` is set), `size` bytes of data declared.
std::string TarHeader(const std::string& name, uint32_t mode, uint64_t size, char typeflag = 0,
                      const std::string& linkname = "") {
  std::string h(512, '\0');
  h.replace(0, name.size(), name);
  std::snprintf(&h[100], 8, "%07o", mode & 07777);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 1700000000);
  if (typeflag == 0) typeflag = S_ISDIR(mode) ? '5' : S_ISLNK(mode) ? '2' : '0';
  h[156] = typeflag;
  h.replace(157, linkname.size(), linkname);
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(263, 2, "00");
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  return h;
}

// A ustar entry whose header declares `size` bytes while only `data`
// follows (libarchive's writer would pad the entry to its declared size).
std::string UstarWithSize(const std::string& name, uint64_t size, const std::string& data) {
  return TarHeader(name, S_IFREG | 0644, size) + Padded(data);
}

// ---- POSIX.1e ACLs (SCHILY.acl.*) ----

// One pax entry as GNU tar writes it: an 'x' header with `records`
// (key, value) and then the entry itself.
std::string PaxEntry(const std::string& name, uint32_t mode,
                     const std::vector<std::pair<std::string, std::string>>& records,
                     const std::string& data = "", const std::string& symlink = "") {
  std::string pax;
  for (const auto& [k, v] : records) {
    std::string rest = " " + k + "=" + v + "\n";
    size_t len = rest.size() + 1;
    while (std::to_string(len).size() + rest.size() != len) len++;
    pax += std::to_string(len) + rest;
  }
  return TarHeader("PaxHeaders/" + name.substr(0, 80), 0644, pax.size(), 'x') + Padded(pax) +
         TarHeader(name, mode, data.size(), 0, symlink) + Padded(data);
}

std::string Unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// What the kernel gave (getfattr -e hex) after `setfacl -m
// u:1234:rw-,g:77:r--` on a 0640 file, and `setfacl -d -m u:55:rwx` on a
// 0755 directory: the values GNU tar --acls --xattrs also stores as
// SCHILY.xattr.system.posix_acl_*.
const std::string kFileAclHex =
    "0200000001000600ffffffff02000600d204000004000400ffffffff080004004d000000"
    "10000600ffffffff20000000ffffffff";
const std::string kDirDefaultAclHex =
    "0200000001000700ffffffff020007003700000004000500ffffffff10000700ffffffff"
    "20000500ffffffff";

// SCHILY.acl.access / .default (as GNU tar --acls and bsdtar write them)
// become the system.posix_acl_* xattrs, byte for byte what the kernel
// keeps; the mode stays the header's.
// Tar headers hold any 64-bit time (pax, GNU base-256); an image holds
// nanoseconds in an int64_t, 1677 to 2262. A time outside is clamped to
// the nearest end, with a warning naming the entry, not refused, and not
// multiplied past the range (found by fuzz/tar_import_fuzz: signed
// overflow).
TEST_F(ImportTest, TarTimesOutsideWhatAnImageHoldsAreClamped) {
  std::string tar = PaxEntry("late", S_IFREG | 0644, {{"mtime", "99999999999999.5"}}, "x") +
                    PaxEntry("early", S_IFREG | 0644, {{"atime", "-99999999999999"}}, "y") +
                    PaxEntry("fine", S_IFREG | 0644, {{"mtime", "9000000000.25"}}, "z") +
                    std::string(1024, '\0');
  WriteFile(tmp_ / "times.tar", tar);
  Status s = Import("times", tmp_ / "times.tar");
  ASSERT_TRUE(s.ok()) << s.ToString();
  DumpedImage img = DumpImage(store_.get(), "times");
  EXPECT_EQ(img.nodes.at("/late").rec.mtime_ns, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(img.nodes.at("/early").rec.atime_ns, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(img.nodes.at("/early").rec.mtime_ns, int64_t{1700000000} * 1000000000);
  EXPECT_EQ(img.nodes.at("/fine").rec.mtime_ns, int64_t{9000000000} * 1000000000 + 250000000);
  ASSERT_EQ(warnings_.size(), 2u);
  EXPECT_NE(warnings_[0].find("'late'"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("clamped"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[1].find("'early'"), std::string::npos) << warnings_[1];
}

// The same for a directory: ext4 and XFS keep times past 2262.
TEST_F(ImportTest, DirectoryTimesOutsideWhatAnImageHoldsAreClamped) {
  std::string src = tmp_ / "late";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/f", "x");
  struct timespec ts[2] = {{UTIME_OMIT, UTIME_OMIT}, {10413792000, 0}};  // 2300-01-01
  if (utimensat(AT_FDCWD, (src + "/f").c_str(), ts, 0) != 0)
    GTEST_SKIP() << "this file system keeps no time past 2038";
  struct stat st;
  ASSERT_EQ(stat((src + "/f").c_str(), &st), 0);
  if (st.st_mtim.tv_sec != 10413792000) GTEST_SKIP() << "this file system clamps 2300 itself";
  Status s = Import("late", src);
  ASSERT_TRUE(s.ok()) << s.ToString();
  DumpedImage img = DumpImage(store_.get(), "late");
  EXPECT_EQ(img.nodes.at("/f").rec.mtime_ns, std::numeric_limits<int64_t>::max());
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("/f'"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("clamped"), std::string::npos) << warnings_[0];
}

TEST_F(ImportTest, TarAclsBecomeXattrs) {
  const std::string file_acl =
      "user::rw-\nuser:1234:rw-\ngroup::r--\ngroup:77:r--\nmask::rw-\n"
      "other::---\n";
  std::string tar =
      PaxEntry("./", S_IFDIR | 0755, {}) +
      // GNU tar: the mode has the mask as group bits (0660, group:: is r--).
      PaxEntry("f", S_IFREG | 0660, {{"SCHILY.acl.access", file_acl}}, "data") +
      // A trivial access ACL (GNU tar writes it for every file) and a
      // default ACL.
      PaxEntry(
          "d/", S_IFDIR | 0755,
          {{"SCHILY.acl.access", "user::rwx\ngroup::r-x\nother::r-x\n"},
           {"SCHILY.acl.default", "user::rwx\nuser:55:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n"}}) +
      // GNU tar names users and groups that have names: looked up here.
      PaxEntry(
          "named", S_IFREG | 0640,
          {{"SCHILY.acl.access",
            "user::rw-\nuser:root:r--\ngroup::r--\ngroup:root:r--\nmask::r--\nother::---\n"}}) +
      // bsdtar: name and id; the id is taken (the name is unknown here).
      PaxEntry("bsd", S_IFREG | 0640,
               {{"SCHILY.acl.access",
                 "user::rw-,user:no-such-user-overtier:rw-:1234,group::r--,"
                 "group:no-such-group-overtier:r--:77,mask::rw-,other::---"}}) +
      // A name unknown here, no id: the ACL is skipped with a warning.
      PaxEntry("unknown", S_IFREG | 0640,
               {{"SCHILY.acl.access",
                 "user::rw-\nuser:no-such-user-overtier:r--\ngroup::r--\nmask::r--\n"
                 "other::---\n"}}) +
      // The xattr wins over SCHILY.acl (here they differ: user:99).
      PaxEntry(
          "both", S_IFREG | 0660,
          {{"SCHILY.acl.access", "user::rw-\nuser:99:rw-\ngroup::r--\nmask::rw-\nother::---\n"},
           {"SCHILY.xattr.system.posix_acl_access", Unhex(kFileAclHex)}}) +
      PaxEntry("link", S_IFLNK | 0777, {{"SCHILY.acl.access", file_acl}}, "", "f") +
      PaxEntry("filedefault", S_IFREG | 0644,
               {{"SCHILY.acl.default", "user::rwx\ngroup::r-x\nother::r-x\n"}}) +
      PaxEntry("nfs4", S_IFREG | 0640,
               {{"SCHILY.acl.ace", "owner@:rwxp--aARWcCos:-------:allow"}}) +
      PaxEntry("invalid/", S_IFDIR | 0755,
               {{"SCHILY.acl.default", "user::rwx\nuser:5:r--\ngroup::r-x\nother::r-x\n"}}) +
      std::string(1024, '\0');
  WriteFile(tmp_ / "acl.tar", tar);
  Status s = Import("acl", tmp_ / "acl.tar");
  ASSERT_TRUE(s.ok()) << s.ToString();
  DumpedImage img = DumpImage(store_.get(), "acl");
  const std::string access(kAclAccessXattr), dflt(kAclDefaultXattr);
  using XA = std::map<std::string, std::string>;

  const NodeRecord& f = img.nodes.at("/f").rec;
  EXPECT_EQ(f.mode, S_IFREG | 0660u);  // not 0640 (group::)
  EXPECT_EQ(f.xattrs, (XA{{access, Unhex(kFileAclHex)}}));
  EXPECT_EQ(img.nodes.at("/f").content, "data");

  const NodeRecord& d = img.nodes.at("/d").rec;
  EXPECT_EQ(d.mode, S_IFDIR | 0755u);
  EXPECT_EQ(d.xattrs, (XA{{dflt, Unhex(kDirDefaultAclHex)}}));  // no access xattr

  PosixAclEntry root_acl[] = {{kAclUserObj, 6},  {kAclUser, 4, 0}, {kAclGroupObj, 4},
                              {kAclGroup, 4, 0}, {kAclMask, 4},    {kAclOther, 0}};
  std::string root_value;
  ASSERT_TRUE(EncodePosixAcl({std::begin(root_acl), std::end(root_acl)}, &root_value).ok());
  EXPECT_EQ(img.nodes.at("/named").rec.xattrs, (XA{{access, root_value}}));
  EXPECT_EQ(img.nodes.at("/named").rec.mode, S_IFREG | 0640u);

  EXPECT_EQ(img.nodes.at("/bsd").rec.xattrs, (XA{{access, Unhex(kFileAclHex)}}));
  EXPECT_EQ(img.nodes.at("/bsd").rec.mode, S_IFREG | 0660u);

  EXPECT_TRUE(img.nodes.at("/unknown").rec.xattrs.empty());
  EXPECT_EQ(img.nodes.at("/unknown").rec.mode, S_IFREG | 0640u);
  EXPECT_EQ(img.nodes.at("/both").rec.xattrs, (XA{{access, Unhex(kFileAclHex)}}));
  EXPECT_TRUE(img.nodes.at("/link").rec.xattrs.empty());
  EXPECT_TRUE(img.nodes.at("/filedefault").rec.xattrs.empty());
  EXPECT_TRUE(img.nodes.at("/nfs4").rec.xattrs.empty());
  EXPECT_EQ(img.nodes.at("/nfs4").rec.mode, S_IFREG | 0640u);
  EXPECT_TRUE(img.nodes.at("/invalid").rec.xattrs.empty());

  // One warning for each ACL skipped, naming the entry and why.
  std::vector<std::pair<std::string, std::string>> expected = {
      {"'unknown'", "user 'no-such-user-overtier' is not known"},
      {"'link'", "a symlink has no ACLs"},
      {"'filedefault'", "only a directory has a default ACL"},
      {"'nfs4'", "NFSv4 ACL"},
      {"'invalid/'", "SCHILY.acl.default (ACL with named entries but no mask"}};
  ASSERT_EQ(warnings_.size(), expected.size()) << ::testing::PrintToString(warnings_);
  for (size_t i = 0; i < expected.size(); i++) {
    EXPECT_NE(warnings_[i].find(expected[i].first), std::string::npos) << warnings_[i];
    EXPECT_NE(warnings_[i].find(expected[i].second), std::string::npos) << warnings_[i];
  }

  // Export writes them as xattrs; importing that gives the same image.
  ExportStats st;
  s = ExportImage(store_.get(), "acl", tmp_ / "out.tar", ExportOptions(), &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  warnings_.clear();
  s = Import("again", tmp_ / "out.tar");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(warnings_.empty()) << ::testing::PrintToString(warnings_);
  ExpectSameImage(img, DumpImage(store_.get(), "again"));
}

TEST_F(MaliciousTarTest, HugeDeclaredSizeFailsCleanly) {
  std::string tar = tmp_ / "huge.tar";
  WriteFile(tar, UstarWithSize("huge", uint64_t{64} << 30, std::string(3000, 'h')));
  Status s = Import("huge", tar);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'huge'"), std::string::npos) << s.ToString();
  EXPECT_TRUE(ImageNames(store_.get()).empty());
  // The hand-made header is right: with the declared size matching the
  // data, the same archive imports.
  WriteFile(tar, UstarWithSize("huge", 3000, std::string(3000, 'h')) + std::string(1024, '\0'));
  s = Import("huge", tar);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(DumpImage(store_.get(), "huge").nodes.at("/huge").content, std::string(3000, 'h'));
}

TEST_F(MaliciousTarTest, DuplicatesLaterWins) {
  std::string tar = tmp_ / "dup.tar";
  WriteTar(tar, {{.path = "f", .data = "first"},
                 {.path = "f", .data = "second"},
                 {.path = "d/", .mode = S_IFDIR | 0700},
                 {.path = "d/child", .data = "kept"},
                 {.path = "d/", .mode = S_IFDIR | 0755, .uid = 9},
                 {.path = "g/", .mode = S_IFDIR | 0755},
                 {.path = "g/lost", .data = "gone"},
                 {.path = "g", .data = "now a file"},
                 {.path = "s", .mode = S_IFLNK | 0777, .symlink = "f"},
                 {.path = "s/", .mode = S_IFDIR | 0755}});
  ASSERT_TRUE(Import("dup", tar).ok());
  DumpedImage img = DumpImage(store_.get(), "dup");
  EXPECT_EQ(img.nodes.at("/f").content, "second");
  EXPECT_EQ(img.nodes.at("/d/child").content, "kept");
  EXPECT_EQ(img.nodes.at("/d").rec.mode, static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(img.nodes.at("/d").rec.uid, 9u);
  EXPECT_EQ(img.nodes.at("/g").content, "now a file");
  EXPECT_EQ(img.nodes.count("/g/lost"), 0u);
  EXPECT_TRUE(S_ISDIR(img.nodes.at("/s").rec.mode));
}

TEST_F(MaliciousTarTest, NotATar) {
  std::string f = tmp_ / "zip";
  WriteFile(f, std::string("PK\x03\x04", 4) + std::string(600, 'z'));
  Status s = Import("zip", f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("zip"), std::string::npos) << s.ToString();
  EXPECT_TRUE(ImageNames(store_.get()).empty());
}

TEST(NormalizeTarPathTest, Cases) {
  std::vector<std::string> p;
  ASSERT_TRUE(NormalizeTarPath("./a//b/./c/", &p).ok());
  EXPECT_EQ(p, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_TRUE(NormalizeTarPath("/", &p).ok());
  EXPECT_TRUE(p.empty());
  ASSERT_TRUE(NormalizeTarPath("a/b/../c", &p).ok());
  EXPECT_EQ(p, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(NormalizeTarPath("..", &p).err(), EPERM);
  EXPECT_EQ(NormalizeTarPath(std::string(256, 'n'), &p).err(), ENAMETOOLONG);
}

// ---- names, replace, parent ----

// A directory holding a file an overtier mount released (its archive mark
// and holes where the data was: an upper directory given to import rather
// than commit) is refused naming the file, nothing published; the same mark
// on a file without holes (stale) is no obstacle.
TEST_F(ImportTest, AFileReleasedByAMountIsRefused) {
  std::string src = tmp_ / "src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  const std::string mark(16, 'm');
  const std::string data(256 << 10, 'x');
  for (const char* name : {"stale", "released"}) {
    std::string p = src + "/" + name;
    int fd = open(p.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(fsetxattr(fd, "user.overtier.archive", mark.data(), mark.size(), 0), 0);
    if (std::string(name) == "released") {
      ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 128 << 10), 0);
    }
    close(fd);
  }
  Status s = Import("img", src);
  EXPECT_EQ(s.err(), EIO) << s.ToString();
  EXPECT_NE(s.message().find(src + "/released' was released by an overtier mount"),
            std::string::npos)
      << s.message();
  ImageRecord rec;
  EXPECT_EQ(store_->catalog()->GetImage("img", &rec).err(), ENOENT);
  ASSERT_EQ(unlink((src + "/released").c_str()), 0);
  s = Import("img", src);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ImportTest, ExistingNameReplaceAndParent) {
  std::string tar = tmp_ / "a.tar";
  WriteTar(tar, {{.path = "a", .data = "1"}});
  ASSERT_TRUE(Import("base", tar).ok());
  ImageRecord old;
  ASSERT_TRUE(store_->catalog()->GetImage("base", &old).ok());
  Status s = Import("base", tar);
  EXPECT_EQ(s.err(), EEXIST) << s.ToString();
  EXPECT_NE(s.message().find("'base'"), std::string::npos);
  ImportOptions opt;
  opt.replace = true;
  ASSERT_TRUE(Import("base", tar, opt).ok());
  ImageRecord now;
  ASSERT_TRUE(store_->catalog()->GetImage("base", &now).ok());
  EXPECT_NE(now.image_id, old.image_id);
  ImportOptions child;
  child.parent = "base";
  ASSERT_TRUE(Import("child", tar, child).ok());
  ImageRecord c;
  ASSERT_TRUE(store_->catalog()->GetImage("child", &c).ok());
  EXPECT_EQ(c.parent_image_id, now.image_id);
  child.parent = "nosuch";
  s = Import("orphan", tar, child);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find("nosuch"), std::string::npos);
  EXPECT_EQ(ImageNames(store_.get()), (std::vector<std::string>{"base", "child"}));
  // "base" is child's parent now: replacing it would strand child's chain.
  s = Import("base", tar, opt);
  EXPECT_EQ(s.err(), EBUSY) << s.ToString();
  EXPECT_NE(s.message().find("parent of image 'child'"), std::string::npos) << s.message();
  ImageRecord still;
  ASSERT_TRUE(store_->catalog()->GetImage("base", &still).ok());
  EXPECT_EQ(still.image_id, now.image_id);
}

// ---- OCI ----

// A two-layer OCI layout made by hand: the top layer deletes a file, a file
// in a directory, and replaces a directory's content (opaque).
class OciTest : public ImportTest {
 protected:
  void MakeLayers(const std::string& dir) {
    WriteTar(dir + "/l1", {{.path = "a", .data = "A"},
                           {.path = "d/x", .data = "X"},
                           {.path = "d/y", .data = "Y"},
                           {.path = "e/f", .data = "F"},
                           {.path = "r/old", .data = "old"}});
    WriteTar(dir + "/l2",
             {{.path = ".wh.a", .mode = S_IFREG | 0},
              {.path = "d/.wh.x", .mode = S_IFREG | 0},
              {.path = "e/.wh..wh..opq", .mode = S_IFREG | 0},
              {.path = "e/g", .data = "G"},
              {.path = ".wh.r", .mode = S_IFREG | 0},
              {.path = "r/", .mode = S_IFDIR | 0755},
              {.path = "r/new", .data = "new"},
              {.path = ".wh.q", .mode = S_IFREG | 0},
              {.path = "q/made", .data = "again"}},
             "gzip");
  }
  void CheckLayers(const std::string& name) {
    ASSERT_EQ(ImageNames(store_.get()), (std::vector<std::string>{name, name + "@1"}));
    DumpedImage bottom = DumpImage(store_.get(), name + "@1");
    DumpedImage top = DumpImage(store_.get(), name);
    EXPECT_EQ(bottom.image.parent_image_id, 0u);
    EXPECT_EQ(top.image.parent_image_id, bottom.image.image_id);
    EXPECT_EQ(bottom.nodes.at("/d/x").content, "X");
    EXPECT_TRUE(IsWhiteout(top.nodes.at("/a").rec));
    EXPECT_TRUE(IsWhiteout(top.nodes.at("/d/x").rec));
    EXPECT_EQ(top.nodes.at("/d/x").dtype, DT_CHR);
    EXPECT_FALSE(IsOpaqueDir(top.nodes.at("/d").rec));
    EXPECT_TRUE(IsOpaqueDir(top.nodes.at("/e").rec));
    EXPECT_EQ(top.nodes.at("/e/g").content, "G");
    EXPECT_TRUE(IsOpaqueDir(top.nodes.at("/r").rec)) << "a directory over its layer's whiteout";
    EXPECT_EQ(top.nodes.at("/r/new").content, "new");
    EXPECT_TRUE(IsOpaqueDir(top.nodes.at("/q").rec)) << "a path through its layer's whiteout";
    EXPECT_EQ(top.nodes.at("/q/made").content, "again");
    EXPECT_EQ(top.nodes.count("/e/.wh..wh..opq"), 0u);
    EXPECT_EQ(top.nodes.count("/.wh.a"), 0u);
  }
};

// Writes `content` as a blob of an OCI layout, named by its SHA-256 as
// OCI names blobs; returns the hex digest.
std::string PutBlob(const std::string& blobs, const std::string& content) {
  std::unique_ptr<BlobHasher> h;
  EXPECT_TRUE(BlobHasher::Create("sha256", &h).ok());
  h->Update(content);
  std::string hex = h->FinishHex();
  WriteFile(blobs + "/" + hex, content);
  return hex;
}

TEST_F(OciTest, LayoutDirectory) {
  std::string oci = tmp_ / "oci";
  std::string blobs = oci + "/blobs/sha256";
  ASSERT_EQ(system(("mkdir -p " + blobs).c_str()), 0);
  MakeLayers(tmp_ / "");
  const std::string h1 = PutBlob(blobs, ReadFile(tmp_ / "l1"));
  const std::string h2 = PutBlob(blobs, ReadFile(tmp_ / "l2"));
  const std::string hc = PutBlob(blobs, "{}");
  const std::string hm =
      PutBlob(blobs, R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
                         hc + R"(","size":2},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:)" +
                         h1 + R"(","size":1},
                      {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:)" +
                         h2 + R"(","size":1}]})");
  // A nested index, with an attestation manifest that must be skipped.
  const std::string hi = PutBlob(
      blobs,
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:)" +
          hc +
          R"(","size":2,"platform":{"os":"unknown","architecture":"unknown"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:)" +
          hm + R"(","size":2}]})");
  WriteFile(oci + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  WriteFile(
      oci + "/index.json",
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:)" +
          hi + R"(","size":1}]})");
  SourceKind kind;
  ASSERT_TRUE(DetectSource(oci, &kind).ok());
  EXPECT_EQ(kind, SourceKind::kOciLayout);
  Status s = Import("app", oci);
  ASSERT_TRUE(s.ok()) << s.ToString();
  CheckLayers("app");
  EXPECT_EQ(result_.images, (std::vector<std::string>{"app@1", "app"}));
  // Existing names refuse the whole import (the lower layer's too).
  EXPECT_EQ(Import("app", oci).err(), EEXIST);

  // A digest trying to leave the layout is refused.
  const std::string index = ReadFile(oci + "/index.json");
  WriteFile(oci + "/index.json",
            R"({"schemaVersion":2,"manifests":[{"digest":"sha256:../../../etc/passwd"}]})");
  s = Import("evil", oci);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("malformed digest"), std::string::npos) << s.ToString();
  WriteFile(oci + "/index.json", index);

  // A layer whose bytes are not the ones its digest names (one byte
  // flipped, in its gzip stream) is refused before anything is stored,
  // naming the blob; so is a damaged manifest.
  std::string layer = ReadFile(blobs + "/" + h2);
  std::string bad = layer;
  bad[bad.size() / 2] ^= 1;
  WriteFile(blobs + "/" + h2, bad);
  s = Import("damaged", oci);
  EXPECT_EQ(s.err(), EIO) << s.ToString();
  EXPECT_NE(s.message().find("blobs/sha256/" + h2 + ": content digest mismatch"), std::string::npos)
      << s.ToString();
  WriteFile(blobs + "/" + h2, layer);
  std::string manifest = ReadFile(blobs + "/" + hm);
  WriteFile(blobs + "/" + hm, manifest + " ");
  s = Import("damaged", oci);
  EXPECT_NE(s.message().find("blobs/sha256/" + hm + ": content digest mismatch"), std::string::npos)
      << s.ToString();
  EXPECT_EQ(ImageNames(store_.get()), (std::vector<std::string>{"app", "app@1"}));
}

// An index is input: fields of the wrong type, missing or nested without
// end are refused with a message naming the layout, never an exception.
// (A platform whose "os" was a number ended the importer with an uncaught
// nlohmann::json type_error.)
TEST_F(OciTest, MalformedIndexesAreRefusedWithAMessage) {
  std::string oci = tmp_ / "oci";
  std::string blobs = oci + "/blobs/sha256";
  ASSERT_EQ(system(("mkdir -p " + blobs).c_str()), 0);
  WriteFile(oci + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  const std::string hm = PutBlob(blobs, R"({"schemaVersion":2,"layers":7})");
  const std::string m = R"("digest":"sha256:)" + hm + R"(")";
  const std::vector<std::string> indexes = {
      R"({"manifests":[{"platform":{"os":1,"architecture":["amd64"]},)" + m + "}]}",
      R"({"manifests":[{"platform":"linux",)" + m + "}]}",
      R"({"manifests":[{"mediaType":5,)" + m + "}]}",
      R"({"manifests":[{"digest":17}]})",
      R"({"manifests":[3,"x",null]})",
      R"({"manifests":{"a":1}})",
      R"({"manifests":[{)" + m + "}]}",
      R"([])",
      R"({"manifests":)" + std::string(100000, '[') + std::string(100000, ']') + "}",
      "{\"manifests\":[{\"digest\":\"sha256:\xff\"}]}",
      "",
  };
  for (const std::string& index : indexes) {
    WriteFile(oci + "/index.json", index);
    Status s = Import("bad", oci);
    EXPECT_FALSE(s.ok()) << index.substr(0, 200);
    EXPECT_NE(s.message().find(oci), std::string::npos) << s.ToString();
  }

  // A layout (marked by its oci-layout file) whose index.json is missing or
  // no file is refused, not imported as a plain tree of blobs.
  ASSERT_EQ(unlink((oci + "/index.json").c_str()), 0);
  SourceKind kind;
  Status s = DetectSource(oci, &kind);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_NE(s.message().find("has no index.json"), std::string::npos) << s.ToString();
  for (const char* make : {"mkdir", "mkfifo", "ln -s oci-layout"}) {
    ASSERT_EQ(system((std::string(make) + " " + oci + "/index.json").c_str()), 0) << make;
    s = Import("broken", oci);
    EXPECT_EQ(s.err(), EINVAL) << make;
    EXPECT_NE(s.message().find("its index.json is not a regular file"), std::string::npos)
        << s.ToString();
    ASSERT_EQ(system(("rm -r " + oci + "/index.json").c_str()), 0);
  }
  ASSERT_EQ(unlink((oci + "/oci-layout").c_str()), 0);
  ASSERT_EQ(mkdir((oci + "/oci-layout").c_str(), 0755), 0);
  WriteFile(oci + "/index.json", "{}");
  s = Import("broken", oci);
  EXPECT_NE(s.message().find("its oci-layout is not a regular file"), std::string::npos)
      << s.ToString();
  ASSERT_EQ(rmdir((oci + "/oci-layout").c_str()), 0);
  WriteFile(oci + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");

  // A FIFO where the index names a blob: refused, not waited on for ever
  // in open(2).
  const std::string fifo_hex(64, 'f');
  ASSERT_EQ(mkfifo((blobs + "/" + fifo_hex).c_str(), 0644), 0);
  WriteFile(oci + "/index.json", R"({"manifests":[{"digest":"sha256:)" + fifo_hex + R"("}]})");
  s = Import("fifo", oci);
  EXPECT_EQ(s.err(), EINVAL) << s.ToString();
  EXPECT_NE(s.message().find("blobs/sha256/" + fifo_hex + "' is not a regular file"),
            std::string::npos)
      << s.ToString();
  EXPECT_TRUE(ImageNames(store_.get()).empty());
}

TEST_F(OciTest, DockerSaveArchive) {
  std::string work = tmp_ / "ds";
  ASSERT_EQ(mkdir(work.c_str(), 0755), 0);
  MakeLayers(work);
  std::string id1(64, 'd'), id2(64, 'e');
  std::vector<TarSpec> outer;
  outer.push_back({.path = id1 + "/", .mode = S_IFDIR | 0755});
  outer.push_back({.path = id1 + "/layer.tar", .data = ReadFile(work + "/l1")});
  outer.push_back({.path = id2 + "/", .mode = S_IFDIR | 0755});
  outer.push_back({.path = id2 + "/real.tar", .data = ReadFile(work + "/l2")});
  // docker links a layer it already stored.
  outer.push_back({.path = id2 + "/layer.tar", .mode = S_IFLNK | 0777, .symlink = "real.tar"});
  outer.push_back({.path = "manifest.json",
                   .data = R"([{"Config":"c.json","RepoTags":["app:latest"],"Layers":[")" + id1 +
                           "/layer.tar\",\"" + id2 + "/layer.tar\"]}]"});
  std::string archive = tmp_ / "save.tar";
  WriteTar(archive, outer);
  SourceKind kind;
  ASSERT_TRUE(DetectSource(archive, &kind).ok());
  EXPECT_EQ(kind, SourceKind::kDockerSave);
  std::vector<std::string> layers;
  ASSERT_TRUE(ReadOciLayers(archive, kind, &layers).ok());
  EXPECT_EQ(layers.size(), 2u);
  Status s = Import("app", archive);
  ASSERT_TRUE(s.ok()) << s.ToString();
  CheckLayers("app");

  // Layers named with '..' are refused before anything is read.
  outer.back().data = R"([{"Layers":["../../etc/shadow"]}])";
  WriteTar(archive, outer);
  s = Import("evil", archive);
  EXPECT_EQ(s.err(), EPERM) << s.ToString();
}

// A docker-save archive through a pipe, as `docker save app | overtier
// image import STORE app PIPE` gives it: read whole into a temporary file
// first (the importer reads it more than once), which leaves nothing in
// the store's directory.
TEST_F(OciTest, APipeIsReadLikeTheArchiveItCarries) {
  std::string work = tmp_ / "ds";
  ASSERT_EQ(mkdir(work.c_str(), 0755), 0);
  MakeLayers(work);
  const std::string id1(64, 'd'), id2(64, 'e');
  const std::string archive = tmp_ / "save.tar";
  WriteTar(archive,
           {{.path = id1 + "/layer.tar", .data = ReadFile(work + "/l1")},
            {.path = id2 + "/layer.tar", .data = ReadFile(work + "/l2")},
            {.path = "manifest.json",
             .data = R"([{"Layers":[")" + id1 + "/layer.tar\",\"" + id2 + "/layer.tar\"]}]"}});
  const std::string fifo = tmp_ / "pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::set<std::string> before;
  for (const auto& e : std::filesystem::directory_iterator(store_->path()))
    before.insert(e.path().filename());
  std::thread writer = FeedFifo(fifo, ReadFile(archive));
  Status s = Import("piped", fifo);
  writer.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  CheckLayers("piped");
  std::set<std::string> after;
  for (const auto& e : std::filesystem::directory_iterator(store_->path()))
    after.insert(e.path().filename());
  EXPECT_EQ(after, before) << "a spool file was left in the store's directory";

  // What is not an archive is refused, named as the pipe, not as the copy.
  writer = FeedFifo(fifo, std::string(20000, 'x'));
  s = Import("garbage", fifo);
  writer.join();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(fifo), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find("/proc/self/fd"), std::string::npos) << s.ToString();
}

// "-" is standard input. Progress reports its copy, then the import.
TEST_F(OciTest, StandardInputIsASource) {
  const std::string tar = tmp_ / "plain.tar";
  WriteTar(tar, {{.path = "etc/hostname", .data = "box\n"}});
  const std::string data = ReadFile(tar);
  uint64_t spooled = 0, entries = 0;
  ImportOptions opt;
  opt.progress = [&](const ImportCounters& c) {
    if (c.spooled_bytes > 0) {
      EXPECT_EQ(c.entries, 0u) << "the copy comes first";
    }
    spooled = std::max(spooled, c.spooled_bytes);
    entries = std::max(entries, c.entries);
  };
  Status s;
  {
    PipedStdin in(data);
    s = Import("stdin", "-", opt);
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(spooled, data.size());
  EXPECT_GT(entries, 0u);
  DumpedImage img = DumpImage(store_.get(), "stdin");
  EXPECT_EQ(img.nodes.at("/etc/hostname").content, "box\n");
}

}  // namespace
}  // namespace overtier
