#include "store/catalog.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>

#include "store/catalog_guard.h"

namespace overtier {
namespace {

namespace fs = std::filesystem;

::testing::AssertionResult HasSubstr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

std::string MakeTempDir() {
  std::string tmpl = (fs::temp_directory_path() / "catalog_test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

StoreId TestStoreId() {
  StoreId id;
  for (int i = 0; i < 16; i++) id.bytes[i] = static_cast<uint8_t>(0xa0 + i);
  return id;
}

Bfid MakeBfid(uint8_t n) {
  Bfid b;
  b.bytes[0] = 0xb0;
  b.bytes[15] = n;
  return b;
}

NodeRecord RegularNode(uint64_t size) {
  NodeRecord n;
  n.mode = S_IFREG | 0644;
  n.nlink = 1;
  n.size = size;
  return n;
}

// Everything in a directory except RocksDB's info LOG files, by content:
// what a refused open must not change.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.starts_with("LOG")) continue;
    std::ifstream f(e.path(), std::ios::binary);
    out[name] = std::string(std::istreambuf_iterator<char>(f), {});
  }
  return out;
}

// Direct RocksDB access, to damage a catalog the way bugs and disks do.
class RawDb {
 public:
  // A writer like the catalog's own: deletions wait for read-only opens
  // (store/catalog_guard.h).
  explicit RawDb(const std::string& path) {
    rocksdb::DBOptions o;
    EXPECT_TRUE(NewCatalogWriterEnv(path, &env_).ok());
    o.env = env_.get();
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(o, path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> d;
    for (const std::string& n : names) d.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::Status s = rocksdb::DB::Open(o, path, d, &handles_, &db_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    names_ = names;
  }
  ~RawDb() {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    EXPECT_TRUE(db_->Close().ok());
    delete db_;
  }
  rocksdb::ColumnFamilyHandle* cf(std::string_view name) {
    for (size_t i = 0; i < names_.size(); i++) {
      if (names_[i] == name) return handles_[i];
    }
    ADD_FAILURE() << "no family " << name;
    return nullptr;
  }
  void Put(std::string_view family, std::string_view key, std::string_view value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), cf(family),
                         rocksdb::Slice(key.data(), key.size()),
                         rocksdb::Slice(value.data(), value.size()))
                    .ok());
  }
  void Delete(std::string_view family, std::string_view key) {
    EXPECT_TRUE(
        db_->Delete(rocksdb::WriteOptions(), cf(family), rocksdb::Slice(key.data(), key.size()))
            .ok());
  }
  void Drop(std::string_view family) {
    rocksdb::ColumnFamilyHandle* h = cf(family);
    EXPECT_TRUE(db_->DropColumnFamily(h).ok());
  }
  // Turns the memtables into table files, then rewrites all of them into
  // new ones: the old files are deleted, as a writer's compactions do.
  void Flush() {
    for (auto* h : handles_) EXPECT_TRUE(db_->Flush(rocksdb::FlushOptions(), h).ok());
  }
  void CompactAll() {
    rocksdb::CompactRangeOptions o;
    o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    for (auto* h : handles_) EXPECT_TRUE(db_->CompactRange(o, h, nullptr, nullptr).ok());
  }
  void AddFamily(const std::string& name) {
    rocksdb::ColumnFamilyHandle* h = nullptr;
    EXPECT_TRUE(db_->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), name, &h).ok());
    handles_.push_back(h);
    names_.push_back(name);
  }

 private:
  std::unique_ptr<rocksdb::Env> env_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::vector<std::string> names_;
};

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir();
    path_ = root_ + "/catalog";
  }
  void TearDown() override {
    cat_.reset();
    fs::remove_all(root_);
  }

  void CreateCatalog() {
    Status s = Catalog::Create(path_, TestStoreId(), &cat_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void Reopen(const CatalogOptions& options = CatalogOptions()) {
    cat_.reset();
    Status s = Catalog::Open(path_, options, &cat_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // A closed catalog whose meta says format version 7 (newer than ours).
  void CreateCatalogOfVersion7() {
    ASSERT_NO_FATAL_FAILURE(CreateCatalog());
    cat_.reset();
    RawDb raw(path_);
    CatalogMeta meta;
    meta.store_id = TestStoreId();
    std::string v = EncodeRecord(meta);
    v[0] = 7;
    raw.Put("default", Catalog::kMetaKey, v);
  }
  // Opens what should be refused; returns the refusal.
  Status OpenRefused() {
    std::unique_ptr<Catalog> c;
    Status s = Catalog::Open(path_, &c);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(c, nullptr);
    return s;
  }
  std::vector<std::string> Dir(uint64_t image, uint64_t parent, std::string_view after = "",
                               size_t max = SIZE_MAX) {
    std::vector<std::string> names;
    Status s = cat_->ReadDir(image, parent, after, [&](std::string_view n, const DirentRecord&) {
      names.emplace_back(n);
      return names.size() < max;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return names;
  }

  std::string root_, path_;
  std::unique_ptr<Catalog> cat_;
};

// ---------------------------------------------------------------------------
// Create and open
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, CreateThenReopen) {
  CreateCatalog();
  EXPECT_EQ(cat_->store_id(), TestStoreId());
  EXPECT_EQ(cat_->path(), path_);
  EXPECT_FALSE(cat_->read_only());
  Reopen();
  EXPECT_EQ(cat_->store_id(), TestStoreId());

  cat_.reset();
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path_, &names).ok());
  std::sort(names.begin(), names.end());
  std::vector<std::string> want = Catalog::ColumnFamilyNames();
  std::sort(want.begin(), want.end());
  EXPECT_EQ(names, want);
  // Nothing left behind by the build-and-rename.
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 1);
}

TEST_F(CatalogTest, OpenMissingIsNotFoundAndCreatesNothing) {
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "catalog '" + path_ + "' does not exist"));
  EXPECT_FALSE(fs::exists(path_));

  ASSERT_EQ(mkdir(path_.c_str(), 0755), 0);
  s = OpenRefused();
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "holds no database"));
  EXPECT_TRUE(fs::is_empty(path_));
}

TEST_F(CatalogTest, OpenAFileIsENOTDIR) {
  std::ofstream(path_) << "x";
  EXPECT_EQ(OpenRefused().err(), ENOTDIR);
}

TEST_F(CatalogTest, CreateRefusesAnythingThere) {
  CreateCatalog();
  cat_.reset();
  std::unique_ptr<Catalog> c;
  Status s = Catalog::Create(path_, TestStoreId(), &c);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "already exists"));

  std::string other = root_ + "/nonempty";
  ASSERT_EQ(mkdir(other.c_str(), 0755), 0);
  std::ofstream(other + "/keep") << "precious";
  EXPECT_EQ(Catalog::Create(other, TestStoreId(), &c).err(), EEXIST);
  EXPECT_TRUE(fs::exists(other + "/keep"));

  EXPECT_EQ(Catalog::Create(root_ + "/z", StoreId(), &c).err(), EINVAL);  // zero store id
  EXPECT_FALSE(fs::exists(root_ + "/z"));
}

TEST_F(CatalogTest, CreateIntoEmptyDirectory) {
  ASSERT_EQ(mkdir(path_.c_str(), 0755), 0);
  CreateCatalog();
  Reopen();
  EXPECT_EQ(cat_->store_id(), TestStoreId());
}

// ---------------------------------------------------------------------------
// Records in every family
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, RoundTripEveryFamilyAcrossReopen) {
  CreateCatalog();
  ImageRecord image{5, 1, 0, 1700000000000000000};
  NodeRecord node = RegularNode(11);
  node.has_content = true;
  node.content = MakeBfid(1);
  node.xattrs = {{"user.k", "v"}};
  DirentRecord dirent{2, DT_REG};
  FileRecord file;
  file.size = 11;
  file.copies = {FileCopy{{Extent{0, 3, 4096, 11, Digest128()}}}};
  VolumeRecord volume{"a", VolumeState::kOpen, 8192, 4096};
  ChunkRecord chunk{11, {{3, 4096}, {4, 8192}}};
  Digest128 digest;
  digest.bytes[0] = 0xd1;
  MigrationRecord mig;
  mig.flags = kMigArchived;
  mig.generation = 77;
  mig.bfid = MakeBfid(1);
  JobRecord job;
  job.kind = JobKind::kArchive;
  job.target = "handle";
  const std::string handle("\x08\0\0\0\x01\0\0\0\x4d\0\0\0", 12);

  Catalog::Batch b(cat_.get());
  b.PutImage("base", image);
  b.PutNode(5, 2, node);
  b.PutDirent(5, 1, "file", dirent);
  b.PutFile(MakeBfid(1), file);
  b.PutVolume(3, volume);
  b.PutChunk(digest, chunk);
  b.PutMigration(handle, mig);
  b.PutJob(1, job);
  EXPECT_EQ(b.size(), 8u);
  ASSERT_TRUE(b.Commit().ok());
  EXPECT_EQ(b.size(), 0u);

  for (int round = 0; round < 2; round++) {
    ImageRecord gi;
    ASSERT_TRUE(cat_->GetImage("base", &gi).ok());
    EXPECT_EQ(gi, image);
    NodeRecord gn;
    ASSERT_TRUE(cat_->GetNode(5, 2, &gn).ok());
    EXPECT_EQ(gn, node);
    DirentRecord gd;
    ASSERT_TRUE(cat_->GetDirent(5, 1, "file", &gd).ok());
    EXPECT_EQ(gd, dirent);
    FileRecord gf;
    ASSERT_TRUE(cat_->GetFile(MakeBfid(1), &gf).ok());
    EXPECT_EQ(gf, file);
    VolumeRecord gv;
    ASSERT_TRUE(cat_->GetVolume(3, &gv).ok());
    EXPECT_EQ(gv, volume);
    ChunkRecord gc;
    ASSERT_TRUE(cat_->GetChunk(digest, &gc).ok());
    EXPECT_EQ(gc, chunk);
    MigrationRecord gm;
    ASSERT_TRUE(cat_->GetMigration(handle, &gm).ok());
    EXPECT_EQ(gm, mig);
    JobRecord gj;
    ASSERT_TRUE(cat_->GetJob(1, &gj).ok());
    EXPECT_EQ(gj, job);
    Reopen();
  }
}

TEST_F(CatalogTest, AbsentIsENOENTWithoutMessage) {
  CreateCatalog();
  ImageRecord i;
  NodeRecord n;
  DirentRecord d;
  FileRecord f;
  VolumeRecord v;
  ChunkRecord c;
  MigrationRecord m;
  JobRecord j;
  for (const Status& s :
       {cat_->GetImage("x", &i), cat_->GetNode(1, 1, &n), cat_->GetDirent(1, 1, "x", &d),
        cat_->GetFile(MakeBfid(9), &f), cat_->GetVolume(1, &v), cat_->GetChunk(Digest128(), &c),
        cat_->GetMigration("h", &m), cat_->GetJob(1, &j)}) {
    EXPECT_EQ(s.err(), ENOENT);
    EXPECT_TRUE(s.message().empty());
  }
  std::string name;
  EXPECT_EQ(cat_->FindImageById(1, &name, &i).err(), ENOENT);
}

// ---------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, BatchInvisibleUntilCommitThenAllAtOnce) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutNode(1, 10, RegularNode(1));
  b.PutDirent(1, 1, "a", DirentRecord{10, DT_REG});
  b.PutJob(4, JobRecord{});
  NodeRecord n;
  DirentRecord d;
  JobRecord j;
  EXPECT_EQ(cat_->GetNode(1, 10, &n).err(), ENOENT);
  EXPECT_EQ(cat_->GetDirent(1, 1, "a", &d).err(), ENOENT);
  EXPECT_EQ(cat_->GetJob(4, &j).err(), ENOENT);
  ASSERT_TRUE(b.Commit().ok());
  EXPECT_TRUE(cat_->GetNode(1, 10, &n).ok());
  EXPECT_TRUE(cat_->GetDirent(1, 1, "a", &d).ok());
  EXPECT_TRUE(cat_->GetJob(4, &j).ok());

  // Deletes and puts across families, in one step.
  b.DeleteNode(1, 10);
  b.DeleteDirent(1, 1, "a");
  b.DeleteJob(4);
  b.PutVolume(2, VolumeRecord{"s", VolumeState::kOpen, 0, 0});
  ASSERT_TRUE(b.Commit().ok());
  EXPECT_EQ(cat_->GetNode(1, 10, &n).err(), ENOENT);
  EXPECT_EQ(cat_->GetDirent(1, 1, "a", &d).err(), ENOENT);
  EXPECT_EQ(cat_->GetJob(4, &j).err(), ENOENT);
  VolumeRecord v;
  EXPECT_TRUE(cat_->GetVolume(2, &v).ok());
}

TEST_F(CatalogTest, InvalidOperationFailsTheWholeBatch) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutNode(1, 10, RegularNode(1));  // valid, but must not be written
  FileRecord bad;
  bad.size = 1;
  bad.copies = {FileCopy{{Extent{0, 3, 0, 2, Digest128()}}}};  // ends past the size
  b.PutFile(MakeBfid(2), bad);
  b.PutJob(5, JobRecord{});  // after the failure: ignored
  Status s = b.Commit();
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "catalog '" + path_ + "': files bfid "));
  EXPECT_TRUE(HasSubstr(s.message(), "copy 0 extent 0 ends at 2, past 1"));
  NodeRecord n;
  EXPECT_EQ(cat_->GetNode(1, 10, &n).err(), ENOENT);
  JobRecord j;
  EXPECT_EQ(cat_->GetJob(5, &j).err(), ENOENT);

  // The batch is reusable after a failed commit.
  b.PutJob(5, JobRecord{});
  ASSERT_TRUE(b.Commit().ok());
  EXPECT_TRUE(cat_->GetJob(5, &j).ok());
}

TEST_F(CatalogTest, InvalidKeysRefused) {
  CreateCatalog();
  struct Case {
    const char* what;
    std::function<void(Catalog::Batch*)> op;
    const char* message;
  };
  std::vector<Case> cases = {
      {"empty name",
       [](Catalog::Batch* b) {
         b->PutDirent(1, 1, "", DirentRecord{2, DT_REG});
       },
       "empty entry name"},
      {"slash",
       [](Catalog::Batch* b) {
         b->PutDirent(1, 1, "a/b", DirentRecord{2, DT_REG});
       },
       "'/'"},
      {"dotdot", [](Catalog::Batch* b) { b->DeleteDirent(1, 1, ".."); }, "'..'"},
      {"parent 0",
       [](Catalog::Batch* b) {
         b->PutDirent(1, 0, "a", DirentRecord{2, DT_REG});
       },
       "parent inode 0"},
      {"inode 0", [](Catalog::Batch* b) { b->PutNode(1, 0, RegularNode(0)); }, "inode 0"},
      {"image 0", [](Catalog::Batch* b) { b->PutNode(0, 1, RegularNode(0)); }, "image id 0"},
      {"image max", [](Catalog::Batch* b) { b->DeleteImageTree(UINT64_MAX); }, "image id 0"},
      {"zero bfid", [](Catalog::Batch* b) { b->PutFile(Bfid(), FileRecord{}); }, "zero bfid"},
      {"vv 0", [](Catalog::Batch* b) { b->DeleteVolume(0); }, "vv id 0"},
      {"job 0", [](Catalog::Batch* b) { b->PutJob(0, JobRecord{}); }, "job id 0"},
      {"chunk",
       [](Catalog::Batch* b) {
         b->PutChunk(Digest128(), ChunkRecord{4, {}});
       },
       "chunks digest 00000000000000000000000000000000: chunk without a copy"},
      {"handle", [](Catalog::Batch* b) { b->PutMigration(std::string(129, 'h'), {}); },
       "file handle longer"},
      {"image name",
       [](Catalog::Batch* b) {
         b->PutImage("", ImageRecord{1, 1, 0, 0});
       },
       "empty image name"},
      {"bad record", [](Catalog::Batch* b) { b->PutImage("x", ImageRecord{}); }, "image id 0"},
  };
  for (const Case& c : cases) {
    Catalog::Batch b(cat_.get());
    c.op(&b);
    Status s = b.Commit();
    EXPECT_EQ(s.err(), EINVAL) << c.what;
    EXPECT_TRUE(HasSubstr(s.message(), c.message)) << c.what;
  }
}

TEST_F(CatalogTest, EmptyBatchCommitsNothing) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  EXPECT_TRUE(b.Commit().ok());
}

// ---------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, CommitsAreSyncedUnlessAskedOtherwise) {
  CreateCatalog();
  CatalogOptions o;
  o.statistics = true;
  Reopen(o);
  Catalog::Batch b(cat_.get());
  uint64_t before = cat_->WalSyncs();
  b.PutJob(1, JobRecord{});
  ASSERT_TRUE(b.Commit().ok());
  uint64_t after_sync = cat_->WalSyncs();
  EXPECT_GT(after_sync, before) << "a default Commit must sync the WAL";

  b.PutJob(2, JobRecord{});
  ASSERT_TRUE(b.Commit(Durability::kNoSync).ok());
  EXPECT_EQ(cat_->WalSyncs(), after_sync) << "kNoSync must not sync";

  uint64_t id = 0;
  ASSERT_TRUE(cat_->AllocateIds(IdSpace::kVolume, 1, &id).ok());
  EXPECT_GT(cat_->WalSyncs(), after_sync) << "volume ids must be durable before use";
}

// A process that dies right after Commit returns (no close, no flush) loses
// nothing: the child commits and _exit()s; the parent reopens.
TEST(CatalogCrash, CommittedBatchSurvivesProcessDeath) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The threadsafe style re-runs this test in a new process up to the
  // EXPECT_EXIT; the directory reaches the child through the environment.
  const char* env = getenv("OVT_CATALOG_CRASH_DIR");
  std::string root = env != nullptr ? env : MakeTempDir();
  if (env == nullptr) setenv("OVT_CATALOG_CRASH_DIR", root.c_str(), 1);
  std::string path = root + "/catalog";
  EXPECT_EXIT(
      {
        std::unique_ptr<Catalog> cat;
        if (!Catalog::Create(path, TestStoreId(), &cat).ok()) _exit(2);
        Catalog::Batch b(cat.get());
        b.PutNode(1, 2, RegularNode(3));
        b.PutDirent(1, 1, "f", DirentRecord{2, DT_REG});
        if (!b.Commit().ok()) _exit(3);
        b.PutJob(9, JobRecord{});
        if (!b.Commit(Durability::kNoSync).ok()) _exit(4);
        cat.release();  // never closed
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "");
  unsetenv("OVT_CATALOG_CRASH_DIR");
  std::unique_ptr<Catalog> cat;
  Status s = Catalog::Open(path, &cat);
  ASSERT_TRUE(s.ok()) << s.ToString();
  NodeRecord n;
  EXPECT_TRUE(cat->GetNode(1, 2, &n).ok());
  DirentRecord d;
  EXPECT_TRUE(cat->GetDirent(1, 1, "f", &d).ok());
  JobRecord j;
  EXPECT_TRUE(cat->GetJob(9, &j).ok()) << "an unsynced commit survives a process crash";
  cat.reset();
  fs::remove_all(root);
}

// ---------------------------------------------------------------------------
// Scans
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, ReadDirInNameOrderWithResume) {
  CreateCatalog();
  const std::vector<std::string> names = {"b", "a", "Z", "ab", "\xff", "\xff\x01", "a.b", "0"};
  Catalog::Batch b(cat_.get());
  uint64_t ino = 100;
  for (const std::string& n : names) b.PutDirent(1, 256, n, DirentRecord{ino++, DT_REG});
  // Neighbours that must never show up: other parents (255 and 257 sort
  // next to 256 in big-endian) and the same parent in other images.
  for (uint64_t parent : {255ull, 257ull, 1ull}) b.PutDirent(1, parent, "x", {7, DT_DIR});
  b.PutDirent(2, 256, "a", DirentRecord{8, DT_DIR});
  b.PutDirent(0x100000001ull, 256, "a", DirentRecord{8, DT_DIR});
  ASSERT_TRUE(b.Commit().ok());

  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(Dir(1, 256), sorted);

  // Resume after each name gives exactly the rest.
  for (size_t i = 0; i < sorted.size(); i++) {
    std::vector<std::string> rest(sorted.begin() + i + 1, sorted.end());
    EXPECT_EQ(Dir(1, 256, sorted[i]), rest) << "after " << i;
  }
  // Page through 3 at a time, as FUSE readdir does with a small buffer.
  std::vector<std::string> paged;
  std::string after;
  for (int pages = 0;; pages++) {
    ASSERT_LT(pages, 10) << "paging does not advance";
    std::vector<std::string> page = Dir(1, 256, after, 3);
    if (page.empty()) break;
    paged.insert(paged.end(), page.begin(), page.end());
    after = page.back();
  }
  EXPECT_EQ(paged, sorted);

  // Resume after a name that was removed meanwhile.
  b.DeleteDirent(1, 256, "ab");
  ASSERT_TRUE(b.Commit().ok());
  EXPECT_EQ(Dir(1, 256, "ab"), (std::vector<std::string>{"b", "\xff", "\xff\x01"}));
  EXPECT_EQ(Dir(1, 3), std::vector<std::string>{});
  EXPECT_EQ(Dir(1, 255), std::vector<std::string>{"x"});
}

TEST_F(CatalogTest, ScanNodesOfOneImage) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  for (uint64_t ino : {300ull, 1ull, 256ull, 2ull}) b.PutNode(4, ino, RegularNode(ino));
  b.PutNode(3, 5, RegularNode(0));
  b.PutNode(5, 5, RegularNode(0));
  ASSERT_TRUE(b.Commit().ok());
  std::vector<uint64_t> seen;
  ASSERT_TRUE(cat_->ScanNodes(4, 0,
                              [&](uint64_t ino, const NodeRecord& n) {
                                EXPECT_EQ(n.size, ino);
                                seen.push_back(ino);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 256, 300}));
  seen.clear();
  ASSERT_TRUE(cat_->ScanNodes(4, 2,
                              [&](uint64_t ino, const NodeRecord&) {
                                seen.push_back(ino);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{256, 300}));
}

TEST_F(CatalogTest, DeleteImageTreeTouchesOnlyThatImage) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  for (uint64_t image : {6ull, 7ull, 8ull}) {
    b.PutImage("img" + std::to_string(image), ImageRecord{image, 1, 0, 0});
    b.PutNode(image, 1, RegularNode(0));
    b.PutNode(image, UINT64_MAX, RegularNode(0));
    b.PutDirent(image, 1, "a", DirentRecord{2, DT_REG});
    b.PutDirent(image, UINT64_MAX, "\xff\xff", DirentRecord{2, DT_REG});
  }
  ASSERT_TRUE(b.Commit().ok());
  b.DeleteImageTree(7);
  b.DeleteImage("img7");
  ASSERT_TRUE(b.Commit().ok());
  for (uint64_t image : {6ull, 7ull, 8ull}) {
    const int want = image == 7 ? ENOENT : 0;
    NodeRecord n;
    DirentRecord d;
    ImageRecord i;
    EXPECT_EQ(cat_->GetNode(image, 1, &n).err(), want) << image;
    EXPECT_EQ(cat_->GetNode(image, UINT64_MAX, &n).err(), want) << image;
    EXPECT_EQ(cat_->GetDirent(image, 1, "a", &d).err(), want) << image;
    EXPECT_EQ(cat_->GetDirent(image, UINT64_MAX, "\xff\xff", &d).err(), want) << image;
    EXPECT_EQ(cat_->GetImage("img" + std::to_string(image), &i).err(), want) << image;
  }
  Reopen();  // range deletions survive a reopen too
  NodeRecord n;
  EXPECT_EQ(cat_->GetNode(7, 1, &n).err(), ENOENT);
  EXPECT_TRUE(cat_->GetNode(8, 1, &n).ok());
}

TEST_F(CatalogTest, ImagesByNameAndById) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutImage("debian:12", ImageRecord{2, 1, 0, 10});
  b.PutImage("app", ImageRecord{3, 1, 2, 20});
  b.PutImage("zz", ImageRecord{4, 1, 3, 30});
  ASSERT_TRUE(b.Commit().ok());
  std::vector<std::string> names;
  ASSERT_TRUE(cat_->ScanImages("",
                               [&](std::string_view n, const ImageRecord&) {
                                 names.emplace_back(n);
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(names, (std::vector<std::string>{"app", "debian:12", "zz"}));
  std::string name;
  ImageRecord r;
  ASSERT_TRUE(cat_->FindImageById(2, &name, &r).ok());
  EXPECT_EQ(name, "debian:12");
  EXPECT_EQ(r.created_ns, 10);
}

TEST_F(CatalogTest, ScanMigrationJobsFilesVolumesWithResume) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  const std::vector<std::string> handles = {std::string("\x02\x00", 2), "\x01",
                                            std::string("\x01\x00\xff", 3), "\xfe"};
  for (size_t i = 0; i < handles.size(); i++) {
    MigrationRecord m;
    m.generation = i;
    b.PutMigration(handles[i], m);
  }
  for (uint64_t id : {3ull, 1ull, 1000ull, 256ull}) {
    JobRecord j;
    j.progress = id;
    b.PutJob(id, j);
  }
  for (uint8_t n : {5, 1, 3}) b.PutFile(MakeBfid(n), FileRecord{});
  b.PutVolume(1, VolumeRecord{"a", VolumeState::kSealed, 0, 0});
  b.PutVolume(2, VolumeRecord{"a", VolumeState::kOpen, 0, 0});
  b.PutVolume(3, VolumeRecord{"b", VolumeState::kSealed, 0, 0});
  b.PutVolume(4, VolumeRecord{"b", VolumeState::kLost, 0, 0});
  ASSERT_TRUE(b.Commit().ok());

  std::vector<std::string> hs;
  auto collect_handles = [&](std::string_view after) {
    hs.clear();
    return cat_->ScanMigration(after, [&](std::string_view h, const MigrationRecord& m) {
      EXPECT_EQ(handles[m.generation], h);
      hs.emplace_back(h);
      return true;
    });
  };
  ASSERT_TRUE(collect_handles("").ok());
  std::vector<std::string> sorted = handles;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(hs, sorted);
  ASSERT_TRUE(collect_handles("\x01").ok());
  EXPECT_EQ(hs, std::vector<std::string>(sorted.begin() + 1, sorted.end()));

  std::vector<uint64_t> jobs;
  ASSERT_TRUE(cat_->ScanJobs(3,
                             [&](uint64_t id, const JobRecord& j) {
                               EXPECT_EQ(j.progress, id);
                               jobs.push_back(id);
                               return true;
                             })
                  .ok());
  EXPECT_EQ(jobs, (std::vector<uint64_t>{256, 1000}));
  jobs.clear();
  ASSERT_TRUE(cat_->ScanJobs(0,
                             [&](uint64_t id, const JobRecord&) {
                               jobs.push_back(id);
                               return jobs.size() < 2;  // stop early
                             })
                  .ok());
  EXPECT_EQ(jobs, (std::vector<uint64_t>{1, 3}));

  std::vector<int> files;
  ASSERT_TRUE(cat_->ScanFiles(MakeBfid(1),
                              [&](const Bfid& b, const FileRecord&) {
                                files.push_back(b.bytes[15]);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(files, (std::vector<int>{3, 5}));

  std::vector<uint64_t> sealed;
  ASSERT_TRUE(cat_->ScanVolumesInState(VolumeState::kSealed,
                                       [&](uint64_t id, const VolumeRecord&) {
                                         sealed.push_back(id);
                                         return true;
                                       })
                  .ok());
  EXPECT_EQ(sealed, (std::vector<uint64_t>{1, 3}));
  std::vector<uint64_t> all;
  ASSERT_TRUE(cat_->ScanVolumes(1,
                                [&](uint64_t id, const VolumeRecord&) {
                                  all.push_back(id);
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(all, (std::vector<uint64_t>{2, 3, 4}));
}

TEST_F(CatalogTest, ChunksByDigestWithResumeAndDelete) {
  CreateCatalog();
  auto digest = [](uint8_t first, uint8_t last) {
    Digest128 d;
    d.bytes[0] = first;
    d.bytes[15] = last;
    return d;
  };
  // The zero digest is a key like any other (digests are computed).
  const std::vector<Digest128> digests = {digest(0xff, 0), digest(0, 1), Digest128(),
                                          digest(0x80, 7)};
  Catalog::Batch b(cat_.get());
  for (size_t i = 0; i < digests.size(); i++) {
    b.PutChunk(digests[i], ChunkRecord{i + 1, {{10 + i, 4096 * i}}});
  }
  ASSERT_TRUE(b.Commit().ok());

  std::vector<Digest128> seen;
  auto scan = [&](const Digest128& after) {
    seen.clear();
    return cat_->ScanChunks(after, [&](const Digest128& d, const ChunkRecord& r) {
      size_t i = std::find(digests.begin(), digests.end(), d) - digests.begin();
      EXPECT_EQ(r.length, i + 1);
      seen.push_back(d);
      return true;
    });
  };
  ASSERT_TRUE(scan(Digest128()).ok());
  std::vector<Digest128> sorted = digests;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(seen, sorted);  // byte order, the zero digest first
  ASSERT_TRUE(scan(digest(0, 1)).ok());
  EXPECT_EQ(seen, (std::vector<Digest128>{digest(0x80, 7), digest(0xff, 0)}));

  b.DeleteChunk(digest(0x80, 7));
  ASSERT_TRUE(b.Commit().ok());
  ChunkRecord r;
  EXPECT_EQ(cat_->GetChunk(digest(0x80, 7), &r).err(), ENOENT);
  ASSERT_TRUE(cat_->GetChunk(Digest128(), &r).ok());
  EXPECT_EQ(r, (ChunkRecord{3, {{12, 8192}}}));
  ASSERT_TRUE(scan(Digest128()).ok());
  EXPECT_EQ(seen.size(), 3u);
}

// A scan reads one snapshot: writes made during it do not show.
TEST_F(CatalogTest, ScanSeesOneSnapshot) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutJob(1, JobRecord{});
  b.PutJob(2, JobRecord{});
  ASSERT_TRUE(b.Commit().ok());
  std::vector<uint64_t> seen;
  ASSERT_TRUE(cat_->ScanJobs(0,
                             [&](uint64_t id, const JobRecord&) {
                               seen.push_back(id);
                               if (id == 1) {
                                 Catalog::Batch inner(cat_.get());
                                 inner.PutJob(3, JobRecord{});
                                 EXPECT_TRUE(inner.Commit().ok());
                               }
                               return true;
                             })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
}

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, IdsAreNeverReused) {
  CreateCatalog();
  uint64_t a = 0, b = 0, c = 0, j = 0;
  ASSERT_TRUE(cat_->AllocateIds(IdSpace::kVolume, 1, &a).ok());
  ASSERT_TRUE(cat_->AllocateIds(IdSpace::kVolume, 10, &b).ok());
  ASSERT_TRUE(cat_->AllocateIds(IdSpace::kJob, 1, &j, Durability::kNoSync).ok());
  EXPECT_EQ(a, 1u);
  EXPECT_EQ(b, 2u);
  EXPECT_EQ(j, 1u);  // spaces are independent
  EXPECT_EQ(cat_->NextId(IdSpace::kVolume), 12u);
  Reopen();
  EXPECT_EQ(cat_->NextId(IdSpace::kVolume), 12u);  // NextId allocates nothing
  EXPECT_EQ(cat_->NextId(IdSpace::kVolume), 12u);
  ASSERT_TRUE(cat_->AllocateIds(IdSpace::kVolume, 1, &c).ok());
  EXPECT_EQ(c, 12u);
  ASSERT_TRUE(cat_->AllocateIds(IdSpace::kImage, 1, &c).ok());
  EXPECT_EQ(c, 1u);
  EXPECT_EQ(cat_->AllocateIds(IdSpace::kJob, 0, &c).err(), EINVAL);
}

TEST_F(CatalogTest, ConcurrentAllocationsAreDistinct) {
  CreateCatalog();
  std::vector<std::vector<uint64_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; i++) {
        uint64_t id = 0;
        EXPECT_TRUE(cat_->AllocateIds(IdSpace::kJob, 2, &id, Durability::kNoSync).ok());
        got[t].push_back(id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<uint64_t> all;
  for (const auto& v : got) {
    for (uint64_t id : v) {
      EXPECT_TRUE(all.insert(id).second);
      EXPECT_TRUE(all.insert(id + 1).second);
    }
  }
  EXPECT_EQ(all.size(), 400u);
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), 400u);
}

// ---------------------------------------------------------------------------
// Locking and read-only
// ---------------------------------------------------------------------------

// A writer's close writes its memtables out: the next open (a mount right
// after an import) has no WAL to replay.
TEST_F(CatalogTest, ClosedWriterLeavesNothingToReplay) {
  CreateCatalog();
  CatalogOptions flush;
  flush.flush_on_close = true;
  Reopen(flush);
  for (uint64_t id = 1; id <= 200; id++) {
    Catalog::Batch b(cat_.get());
    JobRecord j;
    j.progress = id;
    b.PutJob(id, j);
    ASSERT_TRUE(b.Commit().ok());
  }
  cat_.reset();
  uint64_t wal_bytes = 0;
  for (const auto& e : fs::directory_iterator(path_)) {
    if (e.path().extension() == ".log") wal_bytes += e.file_size();
  }
  EXPECT_EQ(wal_bytes, 0u) << "the WAL still holds the batches";
  CatalogOptions ro;
  ro.read_only = true;
  Reopen(ro);
  JobRecord j;
  ASSERT_TRUE(cat_->GetJob(200, &j).ok());
  EXPECT_EQ(j.progress, 200u);
}

// A mount's migration sessions: a writer opened, one record committed,
// flushed and closed, again and again. Each flush writes a table file, and
// nothing merged them: a mount of some hours had hundreds, all opened by
// each later open.
// The info log is ours (store/info_log.h), but RocksDB still prunes the
// rotated ones: a writable open keeps the newest keep_log_file_num (4).
TEST_F(CatalogTest, InfoLogsAreRotatedAndPruned) {
  CreateCatalog();
  for (int i = 0; i < 8; i++) {
    Reopen();
    cat_.reset();
  }
  int old = 0;
  for (const auto& e : fs::directory_iterator(path_))
    old += e.path().filename().string().rfind("LOG.old.", 0) == 0;
  EXPECT_GE(old, 1);
  EXPECT_LE(old, 4);
  std::ifstream log(path_ + "/LOG");
  std::string first;
  std::getline(log, first);
  EXPECT_NE(first.find("RocksDB version"), std::string::npos) << first;
}

TEST_F(CatalogTest, ShortWriterSessionsDoNotPileUpTableFiles) {
  CreateCatalog();
  auto tables = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(path_)) n += e.path().extension() == ".sst";
    return n;
  };
  const int at_start = tables();
  CatalogOptions session;
  session.flush_on_close = true;
  session.judged = true;
  session.quiet_log = true;
  constexpr int kSessions = 24;
  for (int i = 0; i < kSessions; i++) {
    Reopen(session);
    MigrationRecord m;
    m.flags = kMigArchived;
    m.generation = static_cast<uint64_t>(i);
    m.bfid = MakeBfid(i + 1);
    Catalog::Batch b(cat_.get());
    // Rising keys, as the handles of newer inodes: no overlap with the
    // tables written before.
    b.PutMigration("handle-" + std::to_string(1000 + i), m);
    ASSERT_TRUE(b.Commit().ok());
    cat_.reset();
  }
  EXPECT_LE(tables(), at_start + 4) << "table files left by " << kSessions << " sessions";
  CatalogOptions ro;
  ro.read_only = true;
  Reopen(ro);
  for (int i = 0; i < kSessions; i++) {
    MigrationRecord m;
    ASSERT_TRUE(cat_->GetMigration("handle-" + std::to_string(1000 + i), &m).ok()) << i;
    EXPECT_EQ(m.generation, static_cast<uint64_t>(i));
    EXPECT_EQ(m.bfid, MakeBfid(i + 1));
  }
}

// Writable sessions that write nothing (a mount that only reads) must not
// leave a write-ahead log each: every later open would read them all.
TEST_F(CatalogTest, IdleWriterSessionsDoNotPileUpLogs) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutJob(7, JobRecord{});
  ASSERT_TRUE(b.Commit().ok());
  auto count = [&](const char* ext) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(path_)) n += e.path().extension() == ext;
    return n;
  };
  cat_.reset();
  const int tables = count(".sst");
  for (const bool flush_on_close : {false, true}) {
    CatalogOptions session;
    session.flush_on_close = flush_on_close;
    session.quiet_log = true;
    for (int i = 0; i < 32; i++) Reopen(session);
    cat_.reset();
    EXPECT_LE(count(".log"), 5) << "flush_on_close " << flush_on_close;
    // Dropping them writes a table file now and then: merged, not piled up.
    EXPECT_LE(count(".sst"), tables + 4) << "flush_on_close " << flush_on_close;
  }
  Reopen();
  JobRecord j;
  EXPECT_TRUE(cat_->GetJob(7, &j).ok());
}

TEST_F(CatalogTest, SecondWriterIsBusyReadOnlyWorks) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutJob(1, JobRecord{});
  ASSERT_TRUE(b.Commit().ok());

  std::unique_ptr<Catalog> second;
  Status s = Catalog::Open(path_, &second);
  EXPECT_EQ(s.err(), EBUSY) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "in use"));

  CatalogOptions ro;
  ro.read_only = true;
  std::unique_ptr<Catalog> reader;
  s = Catalog::Open(path_, ro, &reader);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(reader->read_only());
  JobRecord j;
  EXPECT_TRUE(reader->GetJob(1, &j).ok());
  Catalog::Batch rb(reader.get());
  rb.PutJob(2, JobRecord{});
  EXPECT_EQ(rb.Commit().err(), EROFS);
  uint64_t id = 0;
  EXPECT_EQ(reader->AllocateIds(IdSpace::kJob, 1, &id).err(), EROFS);
}

// A mount keeps a read-only catalog open for days while another process
// imports and compacts, deleting the table files it compacted away. The
// reader must still read everything it saw when it opened.
TEST_F(CatalogTest, ReadOnlyOpenSurvivesWriterDeletingTableFiles) {
  CreateCatalog();
  cat_.reset();
  auto tables = [&] {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) {
      if (e.path().extension() == ".sst") out.insert(e.path().filename().string());
    }
    return out;
  };
  {
    RawDb raw(path_);
    for (uint64_t id = 1; id <= 200; id++) {
      JobRecord j;
      j.progress = id;
      raw.Put("jobs", U64Key(id), EncodeRecord(j));
    }
    raw.Flush();
  }
  const std::set<std::string> before = tables();
  ASSERT_FALSE(before.empty());

  CatalogOptions ro;
  ro.read_only = true;
  Reopen(ro);
  {
    // The writer (RocksDB directly: the reader holds no lock) rewrites every
    // table file into new ones and deletes the old.
    RawDb raw(path_);
    for (uint64_t id = 1; id <= 200; id++) {
      JobRecord j;
      j.progress = id + 1000;
      raw.Put("jobs", U64Key(id), EncodeRecord(j));
    }
    raw.Flush();
    raw.CompactAll();
  }
  for (const std::string& t : tables()) EXPECT_EQ(before.count(t), 0u) << t << " survived";

  int seen = 0;
  Status s = cat_->ScanJobs(0, [&](uint64_t id, const JobRecord& j) {
    EXPECT_EQ(j.progress, id);  // the view as of the open
    seen++;
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(seen, 200);
  JobRecord j;
  ASSERT_TRUE(cat_->GetJob(77, &j).ok());
  EXPECT_EQ(j.progress, 77u);
}

// Read-only opens while a writer flushes and compacts (deleting WAL and
// table files, and rolling the MANIFEST) all succeed: a mount starting
// beside an import must not fail for a file that vanished mid-open.
TEST_F(CatalogTest, ReadOnlyOpensRaceAWriter) {
  CreateCatalog();
  cat_.reset();
  RawDb raw(path_);
  {
    JobRecord j;
    raw.Put("jobs", U64Key(1), EncodeRecord(j));
    raw.Flush();
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t round = 0; !stop; round++) {
      for (uint64_t id = 2; id < 50; id++) {
        JobRecord j;
        j.progress = round;
        raw.Put("jobs", U64Key(id), EncodeRecord(j));
      }
      raw.Flush();
      if (round % 4 == 3) raw.CompactAll();
      // A flush storm with no pause at all is not what an import does; a
      // millisecond between rounds still rolls files under every open.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  CatalogOptions ro;
  ro.read_only = true;
  // No retries: every open must win through the read guard alone.
  ro.open_attempts = 1;
  int failures = 0;
  std::string first_failure;
  for (int i = 0; i < 25; i++) {
    std::unique_ptr<Catalog> reader;
    Status s = Catalog::Open(path_, ro, &reader);
    JobRecord j;
    if (s.ok()) s = reader->GetJob(1, &j);
    if (!s.ok() && failures++ == 0) first_failure = s.ToString();
  }
  stop = true;
  writer.join();
  EXPECT_EQ(failures, 0) << first_failure;
}

// ---------------------------------------------------------------------------
// Refusals: every one leaves the catalog as it was
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, NewerFormatVersionRefused) {
  ASSERT_NO_FATAL_FAILURE(CreateCatalogOfVersion7());
  auto before = Snapshot(path_);
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_EQ(s.message(),
            "catalog '" + path_ + "': format version 7 is newer than this overtier (1)");
  EXPECT_EQ(Snapshot(path_), before);
  CatalogOptions ro;
  ro.read_only = true;
  std::unique_ptr<Catalog> c;
  EXPECT_EQ(Catalog::Open(path_, ro, &c).err(), ENOTSUP);
}

// A writer that skips the read-only probe (the catalog was judged by its
// process before) still refuses what it finds after opening.
TEST_F(CatalogTest, AJudgedWriterStillRefusesANewerFormat) {
  ASSERT_NO_FATAL_FAILURE(CreateCatalogOfVersion7());
  CatalogOptions judged;
  judged.judged = true;
  std::unique_ptr<Catalog> c;
  Status s = Catalog::Open(path_, judged, &c);
  EXPECT_EQ(s.err(), ENOTSUP) << s.ToString();
  EXPECT_EQ(c, nullptr);
}

TEST_F(CatalogTest, DamagedMetaRefused) {
  CreateCatalog();
  cat_.reset();
  {
    RawDb raw(path_);
    raw.Put("default", Catalog::kMetaKey, std::string("\0\0\0\0", 4));
  }
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "meta entry: format version 0 is not valid"));
  {
    RawDb raw(path_);
    raw.Put("default", Catalog::kMetaKey, std::string("\x01\0\0\0short", 9));
  }
  EXPECT_TRUE(HasSubstr(OpenRefused().message(), "meta entry: truncated"));
  {
    RawDb raw(path_);
    raw.Delete("default", Catalog::kMetaKey);
  }
  s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "no meta entry"));
}

TEST_F(CatalogTest, DamagedCounterRefused) {
  CreateCatalog();
  cat_.reset();
  {
    RawDb raw(path_);
    raw.Put("default", Catalog::kNextVolumeIdKey, "x");
  }
  EXPECT_TRUE(HasSubstr(OpenRefused().message(), "next-volume-id entry is malformed"));
  {
    RawDb raw(path_);
    raw.Delete("default", Catalog::kNextVolumeIdKey);
  }
  EXPECT_TRUE(HasSubstr(OpenRefused().message(), "no next-volume-id entry"));
}

TEST_F(CatalogTest, MissingColumnFamilyRefused) {
  CreateCatalog();
  cat_.reset();
  {
    RawDb raw(path_);
    raw.Drop("jobs");
  }
  auto before = Snapshot(path_);
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_EQ(s.message(), "catalog '" + path_ + "': column family 'jobs' is missing");
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(CatalogTest, UnexpectedColumnFamilyRefused) {
  CreateCatalog();
  cat_.reset();
  {
    RawDb raw(path_);
    raw.AddFamily("extra");
  }
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "unexpected column family 'extra'"));
}

TEST_F(CatalogTest, GarbageCurrentRefusedAndNotRecreated) {
  CreateCatalog();
  cat_.reset();
  std::ofstream(path_ + "/CURRENT", std::ios::trunc) << "\x13garbage\x07 not a manifest\n";
  auto before = Snapshot(path_);
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "catalog '" + path_ + "': RocksDB cannot"));
  EXPECT_EQ(Snapshot(path_), before);
  std::unique_ptr<Catalog> c;
  EXPECT_EQ(Catalog::Create(path_, TestStoreId(), &c).err(), EEXIST);
  EXPECT_EQ(Snapshot(path_), before);

  // A CURRENT without its newline, and an empty one.
  std::ofstream(path_ + "/CURRENT", std::ios::trunc) << "MANIFEST-000001";
  EXPECT_EQ(OpenRefused().err(), EIO);
  std::ofstream(path_ + "/CURRENT", std::ios::trunc);
  EXPECT_EQ(OpenRefused().err(), EIO);
}

TEST_F(CatalogTest, MissingCurrentIsNotFound) {
  CreateCatalog();
  cat_.reset();
  ASSERT_EQ(unlink((path_ + "/CURRENT").c_str()), 0);
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "no CURRENT file"));
  EXPECT_FALSE(fs::exists(path_ + "/CURRENT"));  // and not re-created
}

TEST_F(CatalogTest, GarbageManifestRefused) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutJob(1, JobRecord{});
  ASSERT_TRUE(b.Commit().ok());
  cat_.reset();
  int manifests = 0;
  for (const auto& e : fs::directory_iterator(path_)) {
    if (!e.path().filename().string().starts_with("MANIFEST-")) continue;
    std::string size_garbage(fs::file_size(e.path()), '\0');
    for (size_t i = 0; i < size_garbage.size(); i++)
      size_garbage[i] = static_cast<char>(i * 31 + 7);
    std::ofstream(e.path(), std::ios::trunc | std::ios::binary) << size_garbage;
    manifests++;
  }
  ASSERT_GT(manifests, 0);
  auto before = Snapshot(path_);
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "catalog '" + path_ + "': RocksDB cannot"));
  EXPECT_EQ(Snapshot(path_), before);
}

// ---------------------------------------------------------------------------
// Damaged records: Corruption naming the family and the key
// ---------------------------------------------------------------------------

TEST_F(CatalogTest, DamagedValueNamesFamilyAndKey) {
  CreateCatalog();
  Catalog::Batch b(cat_.get());
  b.PutNode(1, 4, RegularNode(0));
  ASSERT_TRUE(b.Commit().ok());
  cat_.reset();
  {
    RawDb raw(path_);
    raw.Put("nodes", NodeKey(1, 5), "\x01garbage");
    raw.Put("dirents", DirentKey(1, 1, "bad"), "\x09");
    raw.Put("migration", "\xab\xcd", std::string(78, '\0'));
    raw.Put("jobs", U64Key(3), "");
    Digest128 dup;
    dup.bytes[1] = 0xc4;
    raw.Put("chunks", dup.view(), EncodeRecord(ChunkRecord{8, {{2, 0}, {2, 4096}}}));
  }
  Reopen();

  NodeRecord n;
  Status s = cat_->GetNode(1, 5, &n);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "catalog '" + path_ + "': nodes (image 1, inode 5): "));
  EXPECT_TRUE(HasSubstr(s.message(), "unknown node flags 103"));  // 'g'
  // A scan stops at the damage with the same kind of message.
  int seen = 0;
  s = cat_->ScanNodes(1, 0, [&](uint64_t, const NodeRecord&) { return ++seen > 0; });
  EXPECT_EQ(s.err(), EIO);
  EXPECT_EQ(seen, 1);  // inode 4 came first
  EXPECT_TRUE(HasSubstr(s.message(), "nodes (image 1, inode 5)"));

  DirentRecord d;
  s = cat_->GetDirent(1, 1, "bad", &d);
  EXPECT_TRUE(HasSubstr(s.message(), "dirents (image 1, parent 1, name 'bad'): record version 9"));
  MigrationRecord m;
  s = cat_->GetMigration("\xab\xcd", &m);
  EXPECT_TRUE(HasSubstr(s.message(), "migration handle 0xabcd: record version 0"));
  JobRecord j;
  s = cat_->GetJob(3, &j);
  EXPECT_TRUE(HasSubstr(s.message(), "jobs job 3: empty value"));
  Digest128 dup;
  dup.bytes[1] = 0xc4;
  ChunkRecord c;
  s = cat_->GetChunk(dup, &c);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(),
                        "chunks digest 00c4000000000000000000000000000"
                        "0: chunk copy 1 is in vv 2, like copy 0"));
}

TEST_F(CatalogTest, MalformedKeysInScansAreCorruption) {
  CreateCatalog();
  cat_.reset();
  {
    RawDb raw(path_);
    raw.Put("dirents", DirentKey(1, 1, "a/b"), EncodeRecord(DirentRecord{2, DT_REG}));
    raw.Put("jobs", "short", EncodeRecord(JobRecord{}));
    raw.Put("nodes", NodeKey(2, 1) + "x", EncodeRecord(RegularNode(0)));
    raw.Put("chunks", "15 bytes only..", EncodeRecord(ChunkRecord{1, {{1, 0}}}));
  }
  Reopen();
  auto all = [](auto&&...) { return true; };
  Status s = cat_->ReadDir(1, 1, "", all);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "name 'a/b'): malformed key"));
  s = cat_->ScanJobs(0, all);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "jobs key 'short': malformed key"));
  s = cat_->ScanNodes(2, 0, all);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "malformed key"));
  s = cat_->ScanChunks(Digest128(), all);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "chunks key '15 bytes only..': malformed key"));
}

}  // namespace
}  // namespace overtier
