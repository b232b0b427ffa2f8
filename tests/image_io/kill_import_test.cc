// `overtier image import` killed with SIGKILL at random points, then run
// again: no half image is ever visible, the re-run completes, the image is
// identical to the source, and fsck finds no damage.
//
// The binary is $OVERTIER_BIN (set by meson to BUILD/tools/overtier).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../integration/test_util.h"
#include "image/io_testutil.h"
#include "store/fsck.h"

namespace overtier {
namespace {

using testing::DumpedImage;
using testing::DumpImage;
using testing::ImageNames;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

// Starts `overtier image import STORE NAME SRC`, output to a log.
pid_t StartImport(const std::string& store, const std::string& name, const std::string& src,
                  const std::string& log) {
  return it::Spawn({it::OvertierBin(), "image", "import", store, name, src}, log);
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// ~200 MB: 80 files of 2 MiB (random bytes), 2000 small files, a few
// duplicates (dedup), some hard links.
void MakeSource(const std::string& src) {
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  std::mt19937_64 rng(42);
  std::string buf(2 << 20, '\0');
  for (int i = 0; i < 80; i++) {
    uint64_t* p = reinterpret_cast<uint64_t*>(buf.data());
    for (size_t k = 0; k < buf.size() / 8; k++) p[k] = rng();
    std::string d = src + "/big" + std::to_string(i % 8);
    mkdir(d.c_str(), 0755);
    WriteFile(d + "/f" + std::to_string(i), buf);
  }
  for (int i = 0; i < 2000; i++) {
    std::string d = src + "/small" + std::to_string(i % 20);
    mkdir(d.c_str(), 0755);
    WriteFile(d + "/s" + std::to_string(i), "small file " + std::to_string(i * 7919) + "\n");
  }
  WriteFile(src + "/dup1", buf);
  WriteFile(src + "/dup2", buf);
  ASSERT_EQ(link((src + "/dup1").c_str(), (src + "/dup1-link").c_str()), 0);
}

TEST(KillImportTest, KilledImportsLeaveNothingAndTheRerunIsComplete) {
  TempDir tmp;
  std::string src = tmp / "src";
  MakeSource(src);
  std::string store_path = tmp / "store";
  std::string calib = tmp / "calib";
  {
    std::unique_ptr<Store> s;
    ASSERT_TRUE(Store::Init(store_path, StoreInitOptions(), &s).ok());
    ASSERT_TRUE(Store::Init(calib, StoreInitOptions(), &s).ok());
  }
  // How long a whole import takes here, on a store of its own.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(Wait(StartImport(calib, "img", src, tmp / "calib.log")), 0)
      << ReadFile(tmp / "calib.log");
  double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  testing::RemoveTree(calib);

  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> when(0.02, 0.98);
  int killed = 0;
  // Rounds until 6 imports were killed (at most 12): an import that
  // finishes before its kill (a later one dedups what the killed ones left,
  // and goes faster) shrinks the window the next kill is drawn from.
  double window_ms = total_ms;
  for (int round = 0; round < 12 && killed < 6; round++) {
    int ms = static_cast<int>(window_ms * when(rng));
    std::string log = tmp / ("kill" + std::to_string(round) + ".log");
    pid_t pid = StartImport(store_path, "img", src, log);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    kill(pid, SIGKILL);
    int status = Wait(pid);
    if (WIFEXITED(status)) {
      // Finished before the kill. Remove it to keep testing.
      ASSERT_EQ(WEXITSTATUS(status), 0) << ReadFile(log);
      ASSERT_EQ(it::RunCmd({it::OvertierBin(), "image", "rm", store_path, "img"}), 0);
      window_ms *= 0.6;
      continue;
    }
    ASSERT_TRUE(WIFSIGNALED(status));
    killed++;
    // No half image: the name is not there, or the image is whole.
    std::unique_ptr<Store> ro;
    StoreOpenOptions o;
    o.read_only = true;
    Status s = Store::Open(store_path, o, &ro);
    ASSERT_TRUE(s.ok()) << "after a kill at " << ms << " ms: " << s.ToString();
    if (ImageNames(ro.get()).empty()) continue;
    // Killed after its commit (while the catalog was being closed): the
    // image must then be whole, never half of one.
    size_t files = 0;
    for (const auto& [path, n] : DumpImage(ro.get(), "img").nodes) {
      if (!S_ISREG(n.rec.mode)) continue;
      files++;
      EXPECT_TRUE(n.content == ReadFile(src + path)) << "kill at " << ms << " ms: " << path;
    }
    EXPECT_EQ(files, 80u + 2000u + 3u) << "kill at " << ms << " ms left a partial image";
    ro.reset();
    ASSERT_EQ(it::RunCmd({it::OvertierBin(), "image", "rm", store_path, "img"}), 0);
  }
  EXPECT_GE(killed, 3);
  // The re-run completes.
  ASSERT_EQ(Wait(StartImport(store_path, "img", src, tmp / "final.log")), 0)
      << ReadFile(tmp / "final.log");

  std::unique_ptr<Store> st;
  StoreOpenOptions o;
  o.read_only = true;
  ASSERT_TRUE(Store::Open(store_path, o, &st).ok());
  EXPECT_EQ(ImageNames(st.get()), std::vector<std::string>{"img"});
  DumpedImage img = DumpImage(st.get(), "img");
  // Every file of the source, with its bytes.
  size_t files = 0;
  for (const auto& [path, n] : img.nodes) {
    if (!S_ISREG(n.rec.mode)) continue;
    files++;
    EXPECT_TRUE(n.content == ReadFile(src + path)) << path;
  }
  EXPECT_EQ(files, 80u + 2000u + 3u);
  EXPECT_EQ(img.nodes.at("/dup1").ino, img.nodes.at("/dup1-link").ino);
  // fsck: no damage (garbage from the killed runs is a notice, not an error).
  FsckReport report;
  ASSERT_TRUE(RunFsck(st.get(), FsckOptions(), &report).ok());
  for (const FsckIssue& i : report.issues) {
    if (i.severity == FsckSeverity::kError) ADD_FAILURE() << i.kind << ": " << i.message;
  }
}

}  // namespace
}  // namespace overtier
