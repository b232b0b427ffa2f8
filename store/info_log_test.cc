#include "store/info_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "store/vv_testutil.h"

namespace overtier {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Log(rocksdb::Logger* log, rocksdb::InfoLogLevel level, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  log->Logv(level, format, ap);
  va_end(ap);
}

TEST(InfoLogTest, WritesLinesAndRotatesTheOldLog) {
  test::TempDir dir;
  { std::ofstream(dir.path() + "/LOG") << "the previous open's log\n"; }
  auto log = InfoLog::ForCatalog(dir.path(), rocksdb::InfoLogLevel::INFO_LEVEL);
  Log(log.get(), rocksdb::InfoLogLevel::INFO_LEVEL, "opened %d families", 9);
  Log(log.get(), rocksdb::InfoLogLevel::WARN_LEVEL, "a warning");
  Log(log.get(), rocksdb::InfoLogLevel::DEBUG_LEVEL, "below the level");
  const std::string text = Slurp(dir.path() + "/LOG");
  EXPECT_NE(text.find("opened 9 families\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[WARN] a warning\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("below the level"), std::string::npos) << text;
  EXPECT_EQ(text.find("previous"), std::string::npos) << text;
  int old = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().filename().string().rfind("LOG.old.", 0) == 0) {
      old++;
      EXPECT_EQ(Slurp(e.path().string()), "the previous open's log\n");
    }
  }
  EXPECT_EQ(old, 1);
}

TEST(InfoLogTest, LongLinesAreCutNotOverrun) {
  test::TempDir dir;
  auto log = InfoLog::ForCatalog(dir.path(), rocksdb::InfoLogLevel::INFO_LEVEL);
  const std::string big(5000, 'x');
  Log(log.get(), rocksdb::InfoLogLevel::INFO_LEVEL, "%s", big.c_str());
  Log(log.get(), rocksdb::InfoLogLevel::INFO_LEVEL, "after");
  const std::string text = Slurp(dir.path() + "/LOG");
  const size_t nl = text.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_LT(nl, 1024u);
  EXPECT_NE(text.find("after\n", nl), std::string::npos) << text;
}

// The case RocksDB's own logger aborted on: every write fails (ENOSPC from
// /dev/full), and logging goes on.
TEST(InfoLogTest, AFullDiskDropsLinesAndNothingElse) {
  const int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "no /dev/full";
  InfoLog log(fd, rocksdb::InfoLogLevel::INFO_LEVEL);
  for (int i = 0; i < 1000; i++) Log(&log, rocksdb::InfoLogLevel::INFO_LEVEL, "line %d", i);
  EXPECT_TRUE(log.Close().ok());
}

TEST(InfoLogTest, AnUncreatableLogDropsEverything) {
  auto log = InfoLog::ForCatalog("/nonexistent/dir", rocksdb::InfoLogLevel::INFO_LEVEL);
  ASSERT_NE(log, nullptr);
  Log(log.get(), rocksdb::InfoLogLevel::INFO_LEVEL, "nowhere");
}

}  // namespace
}  // namespace overtier
