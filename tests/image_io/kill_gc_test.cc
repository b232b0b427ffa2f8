// `overtier gc` killed (SIGKILL, by the process itself: OVERTIER_CRASH_AT,
// migrate/crash_point.h) at each of its named points, on a store with a
// removed image, containers to compact and a publication-free set; then
// run again: the re-run completes, the live image reads back identical,
// the removed one's space is reclaimed, and fsck finds no damage.
//
// The binary is $OVERTIER_BIN (set by meson to BUILD/tools/overtier).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../integration/test_util.h"
#include "image/io_testutil.h"
#include "store/fsck.h"
#include "store/gc.h"

namespace overtier {
namespace {

using testing::DumpedImage;
using testing::DumpImage;
using testing::ImageNames;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

int RunCli(const std::vector<std::string>& args, const std::string& log,
           const std::vector<std::string>& env = {}) {
  pid_t pid = it::Spawn(args, log, env);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// Two images sharing some files; `old` is removed, so gc has rows to
// sweep, containers to retire and (threshold 1) live bytes to compact.
void MakeStore(const std::string& dir, const std::string& store) {
  const std::string keep = dir + "/keep", old = dir + "/old";
  ASSERT_EQ(mkdir(keep.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(old.c_str(), 0755), 0);
  for (int i = 0; i < 40; i++) {
    std::string data(20000 + i * 997, static_cast<char>('a' + i % 26));
    data += std::to_string(i);
    WriteFile(keep + "/k" + std::to_string(i), data);
    WriteFile(old + "/o" + std::to_string(i), data + "old");
    if (i % 4 == 0) WriteFile(old + "/shared" + std::to_string(i), data);
  }
  const std::string log = dir + "/setup.log";
  ASSERT_EQ(RunCli({it::OvertierBin(), "store", "init", store, "--vv-size", "1M"}, log), 0)
      << ReadFile(log);
  ASSERT_EQ(RunCli({it::OvertierBin(), "image", "import", store, "old", old}, log), 0)
      << ReadFile(log);
  ASSERT_EQ(RunCli({it::OvertierBin(), "image", "import", store, "keep", keep}, log), 0)
      << ReadFile(log);
  ASSERT_EQ(RunCli({it::OvertierBin(), "image", "rm", store, "old"}, log), 0) << ReadFile(log);
}

// Image "keep" reads back equal to `src` (all 40 files), and fsck finds
// no error; `finished`: gc ran to its end, so "old" is gone and no garbage
// is left either.
void ExpectKeepIntact(const std::string& store, const std::string& src, const std::string& point,
                      bool finished) {
  std::unique_ptr<Store> st;
  StoreOpenOptions o;
  o.read_only = true;
  ASSERT_TRUE(Store::Open(store, o, &st).ok());
  if (finished) {
    EXPECT_EQ(ImageNames(st.get()), std::vector<std::string>{"keep"});
  }
  DumpedImage img = DumpImage(st.get(), "keep");
  size_t files = 0;
  for (const auto& [path, n] : img.nodes) {
    if (!S_ISREG(n.rec.mode)) continue;
    files++;
    EXPECT_TRUE(n.content == ReadFile(src + path)) << point << " " << path;
  }
  EXPECT_EQ(files, 40u) << point;
  FsckReport report;
  ASSERT_TRUE(RunFsck(st.get(), FsckOptions(), &report).ok());
  for (const FsckIssue& i : report.issues) {
    EXPECT_NE(i.severity, FsckSeverity::kError) << point << ": " << i.message;
    if (finished) {
      EXPECT_NE(i.kind, "garbage") << point << ": left after gc: " << i.message;
    }
  }
}

class KillGcTest : public ::testing::TestWithParam<std::string_view> {};

TEST_P(KillGcTest, AKilledGcLeavesAStoreTheNextGcFinishes) {
  TempDir tmp;
  const std::string store = tmp / "store";
  ASSERT_NO_FATAL_FAILURE(MakeStore(tmp.path(), store));
  const std::string point = "gc-" + std::string(GetParam());
  const std::string log = tmp / "gc.log";
  int status = RunCli({it::OvertierBin(), "gc", store, "--threshold", "1"}, log,
                      {"OVERTIER_CRASH_AT=" + point});
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << point << " was not reached: status " << status << "\n"
      << ReadFile(log);
  // The killed run left a store that reads correctly...
  ASSERT_NO_FATAL_FAILURE(ExpectKeepIntact(store, tmp.path() + "/keep", point, false));
  // ...and the next gc finishes the work.
  const std::string log2 = tmp / "gc2.log";
  ASSERT_EQ(RunCli({it::OvertierBin(), "gc", store, "--threshold", "1", "--json"}, log2), 0)
      << ReadFile(log2);
  EXPECT_NE(ReadFile(log2).find("\"resumed\": true"), std::string::npos) << ReadFile(log2);
  ASSERT_NO_FATAL_FAILURE(ExpectKeepIntact(store, tmp.path() + "/keep", point, true));
}

INSTANTIATE_TEST_SUITE_P(Points, KillGcTest,
                         ::testing::Values(kGcPointJobStarted, kGcPointSealed, kGcPointSwept,
                                           kGcPointCompactWritten, kGcPointCompactCommitted,
                                           kGcPointFileRemoved, kGcPointRetired,
                                           kGcPointOrphansRemoved),
                         [](const ::testing::TestParamInfo<std::string_view>& info) {
                           std::string n(info.param);
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace overtier
