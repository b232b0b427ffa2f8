#include "migrate/file_handle.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

namespace fs = std::filesystem;

// Directories to try: the default temp dir (a disk file system here) and
// /dev/shm (tmpfs), when present.
std::vector<std::string> Roots() {
  std::vector<std::string> roots = {fs::temp_directory_path().string()};
  if (access("/dev/shm", W_OK) == 0) roots.push_back("/dev/shm");
  return roots;
}

class FileHandleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string tmpl = GetParam() + "/file_handle_test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_P(FileHandleTest, StableAcrossRenameAndLinksDistinctForOtherFiles) {
  std::string a = dir_ + "/a", b = dir_ + "/b";
  int fa = open(a.c_str(), O_RDWR | O_CREAT, 0644);
  int fb = open(b.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fa, 0);
  ASSERT_GE(fb, 0);
  FileHandle ha, hb;
  ASSERT_TRUE(GetFileHandle(fa, a, &ha).ok());
  ASSERT_TRUE(GetFileHandle(fb, b, &hb).ok());
  EXPECT_NE(ha.key, hb.key);
  EXPECT_GT(ha.key.size(), 4u);
  EXPECT_LE(ha.key.size(), 128u);
  struct stat st;
  ASSERT_EQ(fstat(fa, &st), 0);
  EXPECT_EQ(ha.inode, st.st_ino);
  EXPECT_TRUE(ha.has_generation) << "ext4 and tmpfs both give the generation";

  // Renamed and linked: same file, same handle (opened again by path).
  ASSERT_EQ(rename(a.c_str(), (dir_ + "/renamed").c_str()), 0);
  ASSERT_EQ(link((dir_ + "/renamed").c_str(), (dir_ + "/link").c_str()), 0);
  int f2 = open((dir_ + "/link").c_str(), O_RDONLY);
  ASSERT_GE(f2, 0);
  FileHandle h2;
  ASSERT_TRUE(GetFileHandle(f2, "link", &h2).ok());
  EXPECT_EQ(h2, ha);
  close(f2);
  close(fa);
  close(fb);

  // Deleted and recreated: if the inode number comes back, the generation
  // (hence the handle) differs.
  ASSERT_EQ(unlink((dir_ + "/renamed").c_str()), 0);
  ASSERT_EQ(unlink((dir_ + "/link").c_str()), 0);
  int f3 = open((dir_ + "/new").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(f3, 0);
  FileHandle h3;
  ASSERT_TRUE(GetFileHandle(f3, "new", &h3).ok());
  EXPECT_NE(h3.key, ha.key);
  if (h3.inode == ha.inode) {
    EXPECT_NE(h3.generation, ha.generation);
  }
  close(f3);
}

// The key opens the file again (a mount resuming a restore job has only
// the key), until the file is gone.
// The two-step form (the key at every open, the rest when a record needs
// it) gives what the one-step form gives, tmpfs' generation included.
TEST_P(FileHandleTest, KeyThenGenerationEqualsTheWholeHandle) {
  std::string a = dir_ + "/a";
  int fa = open(a.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fa, 0);
  FileHandle whole, steps;
  ASSERT_TRUE(GetFileHandle(fa, a, &whole).ok());
  ASSERT_TRUE(GetFileHandleKey(fa, a, &steps).ok());
  EXPECT_EQ(steps.key, whole.key);
  EXPECT_FALSE(steps.has_generation);
  ASSERT_TRUE(AddInodeAndGeneration(fa, a, &steps).ok());
  EXPECT_EQ(steps, whole);
  close(fa);
}

// A handle taken earlier (the union keeps one per upper file) gives the
// same key; anything else is refused.
TEST_P(FileHandleTest, KeyFromAnEarlierHandle) {
  std::string a = dir_ + "/a";
  int fa = open(a.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fa, 0);
  struct {
    file_handle fh;
    unsigned char buf[128];
  } h;
  h.fh.handle_bytes = 128;
  int mount_id;
  ASSERT_EQ(name_to_handle_at(fa, "", &h.fh, &mount_id, AT_EMPTY_PATH), 0);
  const std::string raw(reinterpret_cast<const char*>(&h), sizeof(h.fh) + h.fh.handle_bytes);
  FileHandle direct, from_raw;
  ASSERT_TRUE(GetFileHandleKey(fa, a, &direct).ok());
  ASSERT_TRUE(FileHandleKeyFromRaw(raw, &from_raw));
  EXPECT_EQ(from_raw.key, direct.key);
  EXPECT_FALSE(FileHandleKeyFromRaw(raw.substr(0, raw.size() - 1), &from_raw));
  EXPECT_FALSE(FileHandleKeyFromRaw("", &from_raw));
  close(fa);
}

TEST_P(FileHandleTest, TheKeyOpensTheFileUntilItIsGone) {
  std::string a = dir_ + "/a";
  int fa = open(a.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fa, 0);
  ASSERT_EQ(write(fa, "abc", 3), 3);
  FileHandle ha;
  ASSERT_TRUE(GetFileHandle(fa, a, &ha).ok());
  close(fa);
  int dir = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  int fd = -1;
  Status s = OpenFileHandle(dir, ha.key, O_RDONLY, &fd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  char buf[4] = {};
  EXPECT_EQ(read(fd, buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "abc");
  close(fd);
  EXPECT_EQ(OpenFileHandle(dir, "abc", O_RDONLY, &fd).err(), EINVAL);
  ASSERT_EQ(unlink(a.c_str()), 0);
  EXPECT_EQ(OpenFileHandle(dir, ha.key, O_RDONLY, &fd).err(), ESTALE);
  close(dir);
}

TEST_P(FileHandleTest, ErrorNamesTheFile) {
  FileHandle h;
  Status s = GetFileHandle(-1, "nowhere", &h);
  EXPECT_EQ(s.err(), EBADF);
  EXPECT_NE(s.message().find("'nowhere'"), std::string::npos) << s.ToString();
}

INSTANTIATE_TEST_SUITE_P(Roots, FileHandleTest, ::testing::ValuesIn(Roots()));

}  // namespace
}  // namespace overtier
