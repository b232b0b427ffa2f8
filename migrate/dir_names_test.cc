#include "migrate/dir_names.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/vv_testutil.h"

namespace overtier {
namespace {

void Touch(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  close(fd);
}

TEST(DirNames, SortedWithoutDots) {
  test::TempDir dir;
  Touch(dir.path() + "/b");
  Touch(dir.path() + "/.hidden");
  ASSERT_EQ(mkdir((dir.path() + "/a").c_str(), 0755), 0);
  Touch(dir.path() + "/C");
  int fd = open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<std::string> names;
  EXPECT_EQ(ReadDirNames(fd, &names), 0);
  EXPECT_EQ(names, (std::vector<std::string>{".hidden", "C", "a", "b"}));
  // Again on the same descriptor, whose offset the first listing moved to
  // the end: the whole directory once more.
  EXPECT_EQ(ReadDirNames(fd, &names), 0);
  EXPECT_EQ(names, (std::vector<std::string>{".hidden", "C", "a", "b"}));
  // The descriptor is still open and usable.
  struct stat st;
  EXPECT_EQ(fstat(fd, &st), 0);
  close(fd);
}

TEST(DirNames, NotADirectory) {
  test::TempDir dir;
  Touch(dir.path() + "/f");
  int fd = open((dir.path() + "/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<std::string> names{"stale"};
  EXPECT_EQ(ReadDirNames(fd, &names), ENOTDIR);
  EXPECT_TRUE(names.empty());
  EXPECT_EQ(ReadDirNames(-1, &names), EBADF);
  close(fd);
}

}  // namespace
}  // namespace overtier
