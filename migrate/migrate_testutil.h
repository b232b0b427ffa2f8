// Test helpers shared by the archiver and restorer tests: a real store in a
// temporary directory, upper files with known content.
#ifndef OVERTIER_MIGRATE_MIGRATE_TESTUTIL_H_
#define OVERTIER_MIGRATE_MIGRATE_TESTUTIL_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "migrate/file_handle.h"
#include "store/store.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace test {

constexpr uint64_t kTestChunk = 64 << 10;

// A store with two volume sets and copies = 2, 64 KiB chunks, and an
// "upper" directory beside it.
class MigrateFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreInitOptions o;
    std::string path = dir_.path() + "/store";
    o.sets = {{"a", path + "/volumes/a"}, {"b", path + "/volumes/b"}};
    o.copies = 2;
    o.chunk_size = kTestChunk;
    Status s = Store::Init(path, o, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    upper_ = dir_.path() + "/upper";
    ASSERT_EQ(mkdir(upper_.c_str(), 0755), 0);
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
  }

  // Creates upper/name holding data; returns an O_RDWR fd (closed at the end).
  int MakeFile(const std::string& name, const std::string& data) {
    std::string p = upper_ + "/" + name;
    int fd = open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    fds_.push_back(fd);
    return fd;
  }

  static std::string ReadAll(int fd) {
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    std::string s(static_cast<size_t>(st.st_size), '\0');
    EXPECT_EQ(pread(fd, s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
    return s;
  }

  static FileHandle Handle(int fd) {
    FileHandle h;
    Status s = GetFileHandle(fd, "test file", &h);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return h;
  }

  static int64_t Ns(const struct timespec& ts) {
    return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  }

  // Sets the file's atime/mtime to recognizable values in the past.
  static void SetOldTimes(int fd) {
    struct timespec t[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
    ASSERT_EQ(futimens(fd, t), 0);
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::string upper_;
  std::vector<int> fds_;
};

}  // namespace test
}  // namespace overtier

#endif  // OVERTIER_MIGRATE_MIGRATE_TESTUTIL_H_
