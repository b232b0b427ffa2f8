#include "migrate/upper_content.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "migrate/archive_mark.h"
#include "migrate/archiver.h"
#include "migrate/migrate_testutil.h"
#include "store/content_reader.h"

namespace overtier {
namespace {

using test::HasSubstr;
using test::Payload;

constexpr size_t kSize = (3 << 20) + 12345;

class UpperContentTest : public test::MigrateFixture {
 protected:
  // A file of kSize bytes, archived and released keeping `keep`.
  int Released(const std::string& name, uint64_t keep) {
    data_ = Payload(kSize, 7);
    int fd = MakeFile(name, data_);
    Archiver a(store_.get());
    Status s = a.Archive(fd, name);
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = a.Release(fd, name, keep);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return fd;
  }
  // What WriteUpperContent makes of fd, read back from the store.
  Status Content(int fd, bool* handled, std::string* got) {
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    ContentWriter w(store_.get());
    FileRecord rec;
    OVT_RETURN_IF_ERROR(WriteUpperContent(store_.get(), fd, static_cast<uint64_t>(st.st_size), "f",
                                          &w, &rec, handled));
    if (!*handled) return Status::OK();
    Catalog::Batch b(store_->catalog());
    OVT_RETURN_IF_ERROR(w.Finish(&b));
    OVT_RETURN_IF_ERROR(b.Commit());
    ContentReader r(store_.get());
    got->assign(rec.size, '\0');
    size_t n = 0;
    Bfid id;
    id.bytes[0] = 1;  // any id: it names the content for the reader's cache
    OVT_RETURN_IF_ERROR(r.Read(id, rec, 0, got->size(), got->data(), &n, "content"));
    EXPECT_EQ(n, got->size());
    return Status::OK();
  }
  std::string data_;
};

TEST_F(UpperContentTest, AResidentFileIsLeftToTheCaller) {
  int fd = MakeFile("f", Payload(100000, 3));
  bool handled = true;
  std::string got;
  ASSERT_TRUE(Content(fd, &handled, &got).ok());
  EXPECT_FALSE(handled);
  // Archived but not released: all its bytes are in it.
  Archiver a(store_.get());
  ASSERT_TRUE(a.Archive(fd, "f").ok());
  ASSERT_TRUE(Content(fd, &handled, &got).ok());
  EXPECT_FALSE(handled);
}

TEST_F(UpperContentTest, AReleasedFileGetsItsBytesFromTheArchive) {
  int fd = Released("f", 4096);
  ASSERT_NE(ReadAll(fd), data_) << "the release punched the file";
  bool handled = false;
  std::string got;
  Status s = Content(fd, &handled, &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(handled);
  EXPECT_TRUE(got == data_) << "the content differs from what was archived";
}

TEST_F(UpperContentTest, UserWritesInAReleasedFileWinOverTheArchive) {
  int fd = Released("f", 0);
  // The row lost (a catalog put back from a backup) and a write into the
  // released range since: the mark and the file's holes say what is
  // missing, as the mount would rebuild the row.
  {
    Catalog::Batch b(store_->catalog());
    b.DeleteMigration(Handle(fd).key);
    ASSERT_TRUE(b.Commit().ok());
  }
  ASSERT_EQ(pwrite(fd, "USERDATA", 8, 2 << 20), 8);
  data_.replace(2 << 20, 8, "USERDATA");
  bool handled = false;
  std::string got;
  Status s = Content(fd, &handled, &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(handled) << "the mark and the holes say released";
  EXPECT_TRUE(got == data_);
}

// A released file whose row was changed by `edit`: the content must fail
// with EIO saying `why`.
class BrokenRowTest : public UpperContentTest {
 protected:
  void ExpectEio(const std::function<void(MigrationRecord*)>& edit, const std::string& why) {
    int fd = Released("f", 4096);
    MigrationRecord r;
    ASSERT_TRUE(store_->catalog()->GetMigration(Handle(fd).key, &r).ok());
    edit(&r);
    Catalog::Batch b(store_->catalog());
    b.PutMigration(Handle(fd).key, r);
    ASSERT_TRUE(b.Commit().ok());
    bool handled = false;
    std::string got;
    Status s = Content(fd, &handled, &got);
    EXPECT_EQ(s.err(), EIO) << s.ToString();
    EXPECT_TRUE(HasSubstr(s.message(), why));
    EXPECT_FALSE(handled);
  }
};

TEST_F(BrokenRowTest, AnArchiveThisStoreDoesNotHoldIsEio) {
  ExpectEio([](MigrationRecord* r) { r->bfid.bytes[0] ^= 1; }, "which this store does not hold");
}

TEST_F(BrokenRowTest, ALostFileIsEio) {
  ExpectEio([](MigrationRecord* r) { r->flags |= kMigLost; }, "is lost");
}

}  // namespace
}  // namespace overtier
