#include "store/lazy_volume_set.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "store/local_volume.h"

namespace overtier {
namespace {

namespace fs = std::filesystem;

class LazyVolumeSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lazy_volume_set_test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Opens a local set in dir_, counting the calls; fails while fail_ is set.
  VolumeSetOpener Opener() {
    return [this](std::unique_ptr<VolumeSet>* out) {
      opens_++;
      if (fail_) return Status::Errno(ETIMEDOUT, "the cluster does not answer");
      LocalVolumeOptions o;
      o.create_if_missing = true;
      return OpenLocalVolumeSetAt(dir_ + "/set", "cold", o, out);
    };
  }

  std::string dir_;
  std::atomic<int> opens_{0};
  std::atomic<bool> fail_{false};
};

TEST_F(LazyVolumeSetTest, OpensOnFirstUseOnly) {
  std::unique_ptr<VolumeSet> set = NewLazyVolumeSet("cold", Opener());
  EXPECT_EQ(set->name(), "cold");
  EXPECT_EQ(opens_.load(), 0) << "nothing is opened before a container is used";
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(7, &w).ok());
  ASSERT_TRUE(w->Append("hello").ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(7, &r).ok());
  std::string buf(5, '\0');
  ASSERT_TRUE(r->ReadAt(0, 5, buf.data()).ok());
  EXPECT_EQ(buf, "hello");
  std::vector<uint64_t> ids;
  ASSERT_TRUE(set->List(&ids).ok());
  EXPECT_EQ(ids, std::vector<uint64_t>{7});
  ASSERT_TRUE(set->Remove(7).ok());
  EXPECT_EQ(set->Open(7, &r).err(), ENOENT);
  EXPECT_EQ(opens_.load(), 1);
}

TEST_F(LazyVolumeSetTest, AFailedOpenIsReturnedAndTriedAgain) {
  fail_ = true;
  std::unique_ptr<VolumeSet> set = NewLazyVolumeSet("cold", Opener());
  std::vector<uint64_t> ids;
  Status s = set->List(&ids);
  EXPECT_EQ(s.err(), ETIMEDOUT);
  EXPECT_EQ(s.message(), "the cluster does not answer");
  EXPECT_EQ(set->List(&ids).err(), ETIMEDOUT);
  EXPECT_EQ(opens_.load(), 2);
  fail_ = false;  // the cluster is back
  EXPECT_TRUE(set->List(&ids).ok());
  EXPECT_TRUE(set->List(&ids).ok());
  EXPECT_EQ(opens_.load(), 3);
}

TEST_F(LazyVolumeSetTest, ConcurrentFirstUsesOpenOnce) {
  std::unique_ptr<VolumeSet> set = NewLazyVolumeSet("cold", Opener());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; i++) {
    threads.emplace_back([&] {
      std::vector<uint64_t> ids;
      if (set->List(&ids).ok()) ok++;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(opens_.load(), 1);
}

}  // namespace
}  // namespace overtier
