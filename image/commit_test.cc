#include "image/commit.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "image/io_testutil.h"

namespace overtier {
namespace {

using testing::DumpedImage;
using testing::DumpImage;
using testing::ImageNames;
using testing::NewStore;
using testing::TarSpec;
using testing::TempDir;
using testing::WriteFile;
using testing::WriteTar;

class CommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewStore(tmp_ / "store");
    std::string base = tmp_ / "base.tar";
    WriteTar(base, {{.path = "etc/passwd", .data = "root\n"},
                    {.path = "etc/old/", .mode = S_IFDIR | 0755},
                    {.path = "etc/old/x", .data = "x"},
                    {.path = "var/log/", .mode = S_IFDIR | 0755}});
    ImportResult r;
    Status s = ImportImage(store_.get(), "base", base, ImportOptions(), &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  Status Commit(const std::string& name, const std::string& upper, const std::string& parent) {
    ImportOptions opt;
    opt.parent = parent;
    opt.warn = [this](const std::string& m) { warnings_.push_back(m); };
    ImportResult r;
    return CommitUpper(store_.get(), name, upper, opt, &r);
  }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
  std::vector<std::string> warnings_;
};

// An upper as overlayfs (and overtier) leave it: whiteouts, an opaque
// directory, a renamed directory with its redirect, overtier's private
// xattrs, the shared whiteout inode of newer kernels, a socket.
TEST_F(CommitTest, UpperBecomesAnImageOnItsParent) {
  std::string up = tmp_ / "upper";
  ASSERT_EQ(mkdir(up.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((up + "/etc").c_str(), 0755), 0);
  WriteFile(up + "/etc/passwd", "root\nuser\n");
  ASSERT_EQ(
      setxattr((up + "/etc/passwd").c_str(), "trusted.overtier.origin", "\x02\0\0\0\0\0\0\0", 8, 0),
      0);
  ASSERT_EQ(setxattr((up + "/etc/passwd").c_str(), "user.overtier.nlink", "1", 1, 0), 0);
  ASSERT_EQ(setxattr((up + "/etc/passwd").c_str(), "user.keep", "k", 1, 0), 0);
  ASSERT_EQ(setxattr((up + "/etc").c_str(), "trusted.overlay.impure", "y", 1, 0), 0);
  ASSERT_EQ(mknod((up + "/etc/old").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  // Kernel overlayfs may link whiteouts to one inode: still separate nodes.
  ASSERT_EQ(link((up + "/etc/old").c_str(), (up + "/etc/gone").c_str()), 0);
  ASSERT_EQ(mkdir((up + "/var").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((up + "/var/log").c_str(), 0700), 0);
  ASSERT_EQ(setxattr((up + "/var/log").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  WriteFile(up + "/var/log/new.log", "fresh");
  ASSERT_EQ(mkdir((up + "/renamed").c_str(), 0755), 0);
  ASSERT_EQ(setxattr((up + "/renamed").c_str(), "trusted.overlay.redirect", "/etc/old", 8, 0), 0);
  {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::string sp = up + "/sock";
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sp.c_str());
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(s);
  }

  Status s = Commit("snap", up, "base");
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(warnings_.size(), 1u);
  ImageRecord base;
  ASSERT_TRUE(store_->catalog()->GetImage("base", &base).ok());
  DumpedImage img = DumpImage(store_.get(), "snap");
  EXPECT_EQ(img.image.parent_image_id, base.image_id);
  const auto& n = img.nodes;
  EXPECT_EQ(n.at("/etc/passwd").content, "root\nuser\n");
  std::map<std::string, std::string> want = {{"user.keep", "k"}};
  EXPECT_EQ(n.at("/etc/passwd").rec.xattrs, want);
  EXPECT_EQ(n.at("/etc").rec.xattrs.at("trusted.overlay.impure"), "y");
  EXPECT_TRUE(IsWhiteout(n.at("/etc/old").rec));
  EXPECT_TRUE(IsWhiteout(n.at("/etc/gone").rec));
  EXPECT_NE(n.at("/etc/old").ino, n.at("/etc/gone").ino);
  EXPECT_EQ(n.at("/etc/old").rec.nlink, 1u);
  EXPECT_TRUE(IsOpaqueDir(n.at("/var/log").rec));
  EXPECT_EQ(n.at("/var/log").rec.mode, static_cast<uint32_t>(S_IFDIR | 0700));
  EXPECT_EQ(n.at("/renamed").rec.xattrs.at("trusted.overlay.redirect"), "/etc/old");
  EXPECT_EQ(n.count("/sock"), 0u);
  // Committing again on top of the snapshot: a chain.
  ASSERT_TRUE(Commit("snap2", up, "snap").ok());
  ImageRecord s2;
  ASSERT_TRUE(store_->catalog()->GetImage("snap2", &s2).ok());
  EXPECT_EQ(s2.parent_image_id, img.image.image_id);
}

TEST_F(CommitTest, Errors) {
  std::string up = tmp_ / "upper";
  ASSERT_EQ(mkdir(up.c_str(), 0755), 0);
  Status s = Commit("x", up, "missing");
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find("'missing'"), std::string::npos);
  s = Commit("x", tmp_ / "nodir", "base");
  EXPECT_EQ(s.err(), ENOENT);
  s = Commit("base", up, "");
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_EQ(ImageNames(store_.get()), std::vector<std::string>{"base"});
}

}  // namespace
}  // namespace overtier
