// Helpers shared by the vv container and volume tests: a scratch store
// directory, deterministic payloads, and ways to damage container files the
// way crashes and bad disks do. Tests only: this is where paths of container
// files are allowed to be known above the volume layer.
#ifndef OVERTIER_STORE_VV_TESTUTIL_H_
#define OVERTIER_STORE_VV_TESTUTIL_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "store/local_volume.h"
#include "store/vv_format.h"

namespace overtier {
namespace test {

inline ::testing::AssertionResult HasSubstr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// A fresh directory (mkdtemp), removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/overtier-vv-test.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// n bytes that differ from record to record (seed) and within a record.
inline std::string Payload(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

inline Id128 MakeId(uint8_t fill) {
  Id128 id;
  for (size_t i = 0; i < id.size(); i++) id[i] = static_cast<uint8_t>(fill + i);
  return id;
}

// A store with one local volume set, and direct access to its files.
class ScratchStore {
 public:
  explicit ScratchStore(uint64_t piece_size = kMaxVolumePiece, std::string set = "local")
      : set_name_(std::move(set)) {
    LocalVolumeOptions o;
    o.piece_size = piece_size;
    Status s = OpenLocalVolumeSet(dir_.path(), set_name_, o, &set_);
    if (!s.ok()) {
      ADD_FAILURE() << s.ToString();
      std::abort();
    }
    piece_size_ = piece_size;
  }

  VolumeSet* set() { return set_.get(); }
  const std::string& store_dir() const { return dir_.path(); }
  uint64_t piece_size() const { return piece_size_; }
  std::string set_dir() const { return dir_.path() + "/volumes/" + set_name_; }
  std::string PiecePath(uint64_t vv_id, uint64_t n) const {
    return set_dir() + "/" + LocalPieceName(vv_id, n);
  }

  // The byte at container offset off, in the piece that holds it.
  void FlipByte(uint64_t vv_id, uint64_t off, uint8_t mask = 0x01) {
    std::string path = PiecePath(vv_id, off / piece_size_);
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << path;
    char c;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(off % piece_size_)), 1);
    c = static_cast<char>(c ^ mask);
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(off % piece_size_)), 1);
    close(fd);
  }
  void WriteBytes(uint64_t vv_id, uint64_t off, const std::string& bytes) {
    for (size_t i = 0; i < bytes.size(); i++) {
      std::string path = PiecePath(vv_id, (off + i) / piece_size_);
      int fd = open(path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0) << path;
      ASSERT_EQ(pwrite(fd, &bytes[i], 1, static_cast<off_t>((off + i) % piece_size_)), 1);
      close(fd);
    }
  }

  // Cuts the container to its first `size` bytes, as a crash can.
  void Truncate(uint64_t vv_id, uint64_t size) {
    for (uint64_t n = 0;; n++) {
      std::string path = PiecePath(vv_id, n);
      if (access(path.c_str(), F_OK) != 0) break;
      uint64_t start = n * piece_size_;
      if (start >= size && n > 0) {
        ASSERT_EQ(unlink(path.c_str()), 0) << path;
      } else {
        uint64_t len = size - start < piece_size_ ? size - start : piece_size_;
        ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(len)), 0) << path;
      }
    }
  }

  // Bytes of the whole container, through its pieces.
  std::string ReadAll(uint64_t vv_id) {
    std::string all;
    for (uint64_t n = 0;; n++) {
      std::string path = PiecePath(vv_id, n);
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) break;
      int fd = open(path.c_str(), O_RDONLY);
      char buf[65536];
      ssize_t r;
      while ((r = read(fd, buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(r));
      close(fd);
    }
    return all;
  }

 private:
  TempDir dir_;
  std::string set_name_;
  std::unique_ptr<VolumeSet> set_;
  uint64_t piece_size_ = 0;
};

// The named objects of a volume set (VolumeSet::PutObject...), the same
// for every backend: put, replace, get, list by prefix, remove, the name
// rules, and that objects are not containers.
inline void ExpectNamedObjectsWork(VolumeSet* set) {
  std::string got;
  EXPECT_EQ(set->GetObject("img-a", &got).err(), ENOENT);
  ASSERT_TRUE(set->PutObject("img-a", "first").ok());
  ASSERT_TRUE(set->PutObject("img-a.1", std::string(100000, 'p')).ok());
  ASSERT_TRUE(set->PutObject("other", "").ok());
  ASSERT_TRUE(set->GetObject("img-a", &got).ok());
  EXPECT_EQ(got, "first");
  ASSERT_TRUE(set->PutObject("img-a", "second, longer").ok());  // replaced whole
  ASSERT_TRUE(set->GetObject("img-a", &got).ok());
  EXPECT_EQ(got, "second, longer");
  ASSERT_TRUE(set->GetObject("img-a.1", &got).ok());
  EXPECT_EQ(got, std::string(100000, 'p'));
  ASSERT_TRUE(set->GetObject("other", &got).ok());
  EXPECT_EQ(got, "");
  std::vector<std::string> names;
  ASSERT_TRUE(set->ListObjects("img-", &names).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"img-a", "img-a.1"}));
  ASSERT_TRUE(set->ListObjects("", &names).ok());
  EXPECT_EQ(names.size(), 3u);
  std::vector<uint64_t> ids;
  ASSERT_TRUE(set->List(&ids).ok());
  EXPECT_TRUE(ids.empty());  // objects are not containers
  ASSERT_TRUE(set->RemoveObject("img-a").ok());
  EXPECT_EQ(set->RemoveObject("img-a").err(), ENOENT);
  EXPECT_EQ(set->GetObject("img-a", &got).err(), ENOENT);
  ASSERT_TRUE(set->ListObjects("img-", &names).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"img-a.1"}));
  for (const char* bad : {"", ".hidden", "Upper", "a/b", "sp ace"})
    EXPECT_EQ(set->PutObject(bad, "x").err(), EINVAL) << bad;
  EXPECT_EQ(set->PutObject(std::string(kMaxVolumeObjectName + 1, 'a'), "x").err(), EINVAL);
}

}  // namespace test
}  // namespace overtier

#endif  // OVERTIER_STORE_VV_TESTUTIL_H_
