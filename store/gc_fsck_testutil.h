// Helpers of gc_test and fsck_test: a real store (Store::Init) holding
// images written the way image import writes them (image/image_format.h):
// content through ContentWriter, then nodes, dirents, files and finally the
// images row through Catalog::Batch. Tests only.
#ifndef OVERTIER_STORE_GC_FSCK_TESTUTIL_H_
#define OVERTIER_STORE_GC_FSCK_TESTUTIL_H_

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "image/image_format.h"
#include "store/content_reader.h"
#include "store/content_writer.h"
#include "store/fsck.h"
#include "store/local_volume.h"
#include "store/store.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace test {

// Small chunks and containers, so that a few KiB of test data spread over
// several of each.
constexpr uint64_t kTestChunk = 4096;
constexpr uint64_t kTestVvSize = 64 << 10;

// One image to write: files by path ("a", "dir/b"), directories implied.
using ImageFiles = std::map<std::string, std::string>;

class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.path() + "/store"; }

  // sets: names of volume sets (each at STORE/volumes/NAME), copies = all
  // of them; none: the default single set.
  void MakeStore(uint64_t vv_size = kTestVvSize, const std::vector<std::string>& sets = {}) {
    StoreInitOptions o;
    for (const std::string& n : sets) o.sets.push_back({n, path_ + "/volumes/" + n});
    o.copies = static_cast<uint32_t>(std::max<size_t>(sets.size(), 1));
    o.vv_size = vv_size;
    o.chunk_size = kTestChunk;
    Status s = Store::Init(path_, o, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Closes and reopens (what a new process would see).
  void Reopen(bool read_only = false) {
    store_.reset();
    StoreOpenOptions o;
    o.read_only = read_only;
    Status s = Store::Open(path_, o, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Writes an image in one writer session and one batch (images row last,
  // in the same batch: the tests need no partial import).
  void AddImage(const std::string& name, const ImageFiles& files, uint64_t parent = 0) {
    Catalog* cat = store_->catalog();
    uint64_t id = 0;
    ASSERT_TRUE(cat->AllocateIds(IdSpace::kImage, 1, &id).ok());
    ContentWriter w(store_.get());
    Catalog::Batch b(cat);
    std::map<std::string, uint64_t> dirs{{"", kImageRootInode}};
    std::map<uint64_t, uint32_t> subdirs;
    uint64_t next_ino = 2;
    const int64_t t = 1700000000000000000;
    auto dir_of = [&](const std::string& path) -> uint64_t {
      // Creates the directories of path's parent, returns the parent ino.
      std::string cur;
      uint64_t ino = kImageRootInode;
      size_t pos = 0;
      while (true) {
        size_t slash = path.find('/', pos);
        if (slash == std::string::npos) return ino;
        std::string next = path.substr(0, slash);
        auto it = dirs.find(next);
        if (it == dirs.end()) {
          uint64_t d = next_ino++;
          b.PutDirent(id, ino, path.substr(pos, slash - pos), DirentRecord{d, DT_DIR});
          subdirs[ino]++;
          it = dirs.emplace(next, d).first;
        }
        ino = it->second;
        pos = slash + 1;
      }
    };
    for (auto& [path, data] : files) {
      uint64_t parent_ino = dir_of(path);
      std::string base =
          path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
      NodeRecord n;
      n.mode = S_IFREG | 0644;
      n.nlink = 1;
      n.size = data.size();
      n.atime_ns = n.mtime_ns = n.ctime_ns = t;
      if (!data.empty()) {
        w.BeginFile();
        ASSERT_TRUE(w.Write(0, data).ok());
        FileRecord f;
        ASSERT_TRUE(w.EndFile(data.size(), &f).ok());
        ASSERT_TRUE(RandomId(&n.content).ok());
        n.has_content = true;
        b.PutFile(n.content, f);
      }
      uint64_t ino = next_ino++;
      b.PutNode(id, ino, n);
      b.PutDirent(id, parent_ino, base, DirentRecord{ino, DT_REG});
    }
    for (auto& [p, d] : dirs) {
      NodeRecord n;
      n.mode = S_IFDIR | 0755;
      n.nlink = 2 + subdirs[d];
      n.size = kImageDirSize;
      n.atime_ns = n.mtime_ns = n.ctime_ns = t;
      b.PutNode(id, d, n);
    }
    b.PutImage(name, ImageRecord{id, kImageRootInode, parent, t});
    // Containers durable before the rows naming them (ContentWriter's
    // contract): Finish queues the volumes and chunks rows.
    Catalog::Batch rows(cat);
    Status s = w.Finish(&rows);
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = rows.Commit();
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = b.Commit();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // What `overtier image rm` does.
  void RemoveImage(const std::string& name) {
    Catalog::Batch b(store_->catalog());
    b.DeleteImage(name);
    Status s = b.Commit();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Looks up a path of an image: node, or ENOENT.
  Status Lookup(Store* store, const std::string& image, const std::string& path, NodeRecord* out) {
    ImageRecord img;
    OVT_RETURN_IF_ERROR(store->catalog()->GetImage(image, &img));
    uint64_t ino = img.root_inode;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string::npos) slash = path.size();
      DirentRecord d;
      OVT_RETURN_IF_ERROR(
          store->catalog()->GetDirent(img.image_id, ino, path.substr(pos, slash - pos), &d));
      ino = d.child_inode;
      pos = slash + 1;
    }
    return store->catalog()->GetNode(img.image_id, ino, out);
  }

  // The content of an image file, read through ContentReader.
  Status ReadFile(Store* store, const std::string& image, const std::string& path,
                  std::string* out) {
    NodeRecord n;
    OVT_RETURN_IF_ERROR(Lookup(store, image, path, &n));
    out->clear();
    if (!n.has_content) return Status::OK();
    FileRecord f;
    OVT_RETURN_IF_ERROR(store->catalog()->GetFile(n.content, &f));
    return ReadRecord(store, n.content, f, out);
  }

  static Status ReadRecord(Store* store, const Bfid& bfid, const FileRecord& f, std::string* out) {
    ContentReader r(store);
    out->assign(f.size, '\0');
    size_t got = 0;
    OVT_RETURN_IF_ERROR(r.Read(bfid, f, 0, f.size, out->data(), &got, "test file"));
    if (got != f.size) return Status::Errno(EIO, "short read");
    return Status::OK();
  }

  // Every image's files read back equal to what was written (from
  // `store`, by default the fixture's).
  void ExpectImage(const std::string& image, const ImageFiles& files, Store* store = nullptr) {
    for (auto& [path, data] : files) {
      std::string got;
      Status s = ReadFile(store != nullptr ? store : store_.get(), image, path, &got);
      ASSERT_TRUE(s.ok()) << image << ":" << path << ": " << s.ToString();
      EXPECT_TRUE(got == data) << image << ":" << path << " differs";
    }
  }

  std::map<uint64_t, VolumeRecord> Volumes() {
    std::map<uint64_t, VolumeRecord> v;
    EXPECT_TRUE(store_->catalog()
                    ->ScanVolumes(0,
                                  [&](uint64_t id, const VolumeRecord& r) {
                                    v[id] = r;
                                    return true;
                                  })
                    .ok());
    return v;
  }

  // Containers on disk, in every set, ascending.
  std::vector<uint64_t> ContainerFiles() {
    std::vector<uint64_t> all;
    for (VolumeSet* set : store_->volume_sets()) {
      std::vector<uint64_t> ids;
      EXPECT_TRUE(set->List(&ids).ok());
      all.insert(all.end(), ids.begin(), ids.end());
    }
    std::sort(all.begin(), all.end());
    return all;
  }

  template <typename Scan>
  size_t Count(Scan scan) {
    size_t n = 0;
    Status s = scan([&](auto&&...) {
      n++;
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }
  size_t FilesRows() {
    return Count([&](auto fn) { return store_->catalog()->ScanFiles(Bfid(), fn); });
  }
  size_t ChunksRows() {
    return Count([&](auto fn) { return store_->catalog()->ScanChunks(Digest128(), fn); });
  }

  // The local file of container vv_id (tests may damage it).
  // (Found on disk: the store may be closed while a test damages it.)
  std::string ContainerPath(uint64_t vv_id) {
    const std::string name = LocalPieceName(vv_id, 0);
    std::error_code ec;
    for (const auto& set : std::filesystem::directory_iterator(path_ + "/volumes", ec)) {
      std::string p = set.path().string() + "/" + name;
      if (access(p.c_str(), F_OK) == 0) return p;
    }
    return path_ + "/volumes/default/" + name;  // absent: where it would be
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// An fsck report as text, for failure messages.
inline std::string DumpFsck(const FsckReport& r) {
  std::string out;
  for (const FsckIssue& i : r.issues) {
    out += (i.severity == FsckSeverity::kError ? "error " : "notice ") + i.kind + ": " + i.message +
           "\n";
    for (const std::string& f : i.files) out += "  " + f + "\n";
  }
  return out;
}

}  // namespace test
}  // namespace overtier

#endif  // OVERTIER_STORE_GC_FSCK_TESTUTIL_H_
