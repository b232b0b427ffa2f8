// Hard links: links made through the mount, and lower files with several
// names, which must stay one object (same st_ino, link count, data) after
// one of their names is copied up.
//
// Kernel reference: that needs index=on (without it, copy-up of one name
// breaks the link: the other names keep showing the lower file). The
// reference mount uses index=on; overtier always keeps the group together.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "harness.h"

namespace overtier::it {
namespace {

class LinkTest : public UnionFsTest {
 protected:
  // lower1: d/a and d/b are two names of one file; e/c is a third.
  void MakeLowerGroup() {
    MakeDirs(L(1, "d"));
    MakeDirs(L(1, "e"));
    WriteFile(L(1, "d/a"), "shared lower data", 0644);
    ASSERT_EQ(link(L(1, "d/a").c_str(), L(1, "d/b").c_str()), 0);
    ASSERT_EQ(link(L(1, "d/a").c_str(), L(1, "e/c").c_str()), 0);
  }
  void ExpectOneObject(const std::vector<std::string>& names, nlink_t nlink,
                       const std::string& data) {
    ino_t ino = Lstat(M(names[0])).st_ino;
    for (const auto& n : names) {
      struct stat st = Lstat(M(n));
      EXPECT_EQ(st.st_ino, ino) << n;
      EXPECT_EQ(st.st_nlink, nlink) << n;
      EXPECT_EQ(st.st_size, static_cast<off_t>(data.size())) << n;
      EXPECT_EQ(ReadFile(M(n)), data) << n;
    }
  }
};

TEST_F(LinkTest, LinkOfUpperFile) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("a"), "one");
  ASSERT_EQ(link(M("a").c_str(), M("b").c_str()), 0);
  ExpectOneObject({"a", "b"}, 2, "one");
  WriteFile(M("b"), "two");
  ExpectOneObject({"a", "b"}, 2, "two");
  EXPECT_EQ(Lstat(U("a")).st_ino, Lstat(U("b")).st_ino);
  ASSERT_EQ(unlink(M("a").c_str()), 0);
  ExpectOneObject({"b"}, 1, "two");
}

TEST_F(LinkTest, LinkOfLowerFile) {
  WriteFile(L(1, "a"), "lower");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(link(M("a").c_str(), M("b").c_str()), 0);
  ExpectOneObject({"a", "b"}, 2, "lower");
  {
    Fd fd(open(M("b").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), "+b", 2), 2);
  }
  ExpectOneObject({"a", "b"}, 2, "lower+b");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectOneObject({"a", "b"}, 2, "lower+b");
}

TEST_F(LinkTest, LowerHardLinksShowOneIdentity) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectOneObject({"d/a", "d/b", "e/c"}, 3, "shared lower data");
  EXPECT_EQ(ListDir(U()), std::vector<std::string>{});
}

TEST_F(LinkTest, WriteThroughOneNameIsSeenThroughTheOthers) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ino_t ino = Lstat(M("d/a")).st_ino;
  {
    Fd fd(open(M("d/a").c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), "SHARED", 6, 0), 6);
  }
  ExpectOneObject({"d/a", "d/b", "e/c"}, 3, "SHARED lower data");
  EXPECT_EQ(Lstat(M("e/c")).st_ino, ino);
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectOneObject({"d/a", "d/b", "e/c"}, 3, "SHARED lower data");
  EXPECT_EQ(Lstat(M("d/b")).st_ino, ino);
}

TEST_F(LinkTest, MetadataChangeThroughOneNameIsSeenThroughTheOthers) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(chmod(M("d/b").c_str(), 0600), 0);
  ASSERT_EQ(chown(M("d/b").c_str(), 1234, 2345), 0);
  ASSERT_EQ(setxattr(M("d/b").c_str(), "user.tag", "t", 1, 0), 0);
  for (const char* n : {"d/a", "d/b", "e/c"}) {
    struct stat st = Lstat(M(n));
    EXPECT_EQ(st.st_mode & 07777, 0600u) << n;
    EXPECT_EQ(st.st_uid, 1234u) << n;
    EXPECT_EQ(GetXattr(M(n), "user.tag"), "t") << n;
  }
  ExpectOneObject({"d/a", "d/b", "e/c"}, 3, "shared lower data");
}

TEST_F(LinkTest, NewLinkToLowerGroupIncrementsEveryName) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(link(M("d/a").c_str(), M("fourth").c_str()), 0);
  ExpectOneObject({"d/a", "d/b", "e/c", "fourth"}, 4, "shared lower data");
  WriteFile(M("fourth"), "via fourth");
  ExpectOneObject({"d/a", "d/b", "e/c", "fourth"}, 4, "via fourth");
}

TEST_F(LinkTest, UnlinkOfOneLowerNameDecrementsTheOthers) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/a"), "copied up");
  ASSERT_EQ(unlink(M("d/b").c_str()), 0);
  EXPECT_FALSE(Exists(M("d/b")));
  ExpectOneObject({"d/a", "e/c"}, 2, "copied up");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectOneObject({"d/a", "e/c"}, 2, "copied up");
}

// The count of lower names an indexed group keeps in the upper layer is
// read strictly: a value that is no count (the upper directory edited by
// hand) counts as none, with a message, instead of a link count of 2^63
// or of its leading digits.
TEST_F(LinkTest, AMalformedLowerLinkCountCountsAsNone) {
  if (IsKernel()) GTEST_SKIP() << "trusted.overtier.nlink is overtier's own";
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/a"), "copied up");
  ExpectOneObject({"d/a", "d/b", "e/c"}, 3, "copied up");
  for (const char* bad : {"99999999999999999999", "12abc", "-5", "", "2 "}) {
    SCOPED_TRACE(std::string("trusted.overtier.nlink=\"") + bad + "\"");
    ASSERT_NO_FATAL_FAILURE(Unmount());
    ASSERT_EQ(setxattr(U("d/a").c_str(), "trusted.overtier.nlink", bad, strlen(bad), 0), 0);
    ASSERT_NO_FATAL_FAILURE(Mount());
    // The upper name and nothing else: the lower names are not counted.
    EXPECT_EQ(Lstat(M("d/a")).st_nlink, 1u);
    EXPECT_EQ(ReadFile(M("d/a")), "copied up");
  }
}

// Unlinking a name of a lower group that was never copied up: the other
// names show the decremented link count, also after a remount (the kernel,
// with index=on, copies the inode up into its index to keep the count).
TEST_F(LinkTest, UnlinkOfOneNameOfUntouchedLowerGroup) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("d/b").c_str()), 0);
  EXPECT_FALSE(Exists(M("d/b")));
  ExpectOneObject({"d/a", "e/c"}, 2, "shared lower data");
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_FALSE(Exists(M("d/b")));
  ExpectOneObject({"d/a", "e/c"}, 2, "shared lower data");
}

TEST_F(LinkTest, RenameOfOneLowerName) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(rename(M("d/a").c_str(), M("renamed").c_str()), 0);
  EXPECT_FALSE(Exists(M("d/a")));
  ExpectOneObject({"renamed", "d/b", "e/c"}, 3, "shared lower data");
  WriteFile(M("renamed"), "after rename");
  ExpectOneObject({"renamed", "d/b", "e/c"}, 3, "after rename");
}

// Found by differential_test: the new name's directory was marked impure
// only after the link, so the union looked the new name up without its
// origin and gave it the upper inode's own number (a second identity).
TEST_F(LinkTest, LinkOfLowerFileIntoAnotherDirectory) {
  WriteFile(L(1, "a"), "lower");
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(link(M("a").c_str(), M("d/b").c_str()), 0);
  ExpectOneObject({"a", "d/b"}, 2, "lower");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectOneObject({"a", "d/b"}, 2, "lower");
}

// Found by differential_test: a name with no lower counterpart moved into
// a directory that was not impure lost its origin at the next lookup.
TEST_F(LinkTest, ASecondNameMovedAfterARemountKeepsItsIdentity) {
  WriteFile(L(1, "a"), "lower");
  MakeDirs(L(1, "d"));
  MakeDirs(L(1, "e"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(link(M("a").c_str(), M("d/b").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(Remount());
  ASSERT_EQ(rename(M("d/b").c_str(), M("e/c").c_str()), 0);
  ExpectOneObject({"a", "e/c"}, 2, "lower");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectOneObject({"a", "e/c"}, 2, "lower");
}

// Found by differential_test: rename over one name of a lower group left
// the others counting it.
TEST_F(LinkTest, RenameOverOneLowerNameDecrementsTheOthers) {
  ASSERT_NO_FATAL_FAILURE(MakeLowerGroup());
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("x"), "new");
  ASSERT_EQ(rename(M("x").c_str(), M("d/b").c_str()), 0);
  ExpectOneObject({"d/a", "e/c"}, 2, "shared lower data");
  ExpectOneObject({"d/b"}, 1, "new");
  ASSERT_NO_FATAL_FAILURE(Remount());
  ExpectOneObject({"d/a", "e/c"}, 2, "shared lower data");
  ExpectOneObject({"d/b"}, 1, "new");
}

TEST_F(LinkTest, LinkToExistingNameIsEEXIST) {
  WriteFile(L(1, "a"), "a");
  WriteFile(L(0, "b"), "b");
  WriteFile(U("c"), "c");
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(link(M("a").c_str(), M("b").c_str())), Errno{EEXIST});
  EXPECT_EQ(Err(link(M("a").c_str(), M("c").c_str())), Errno{EEXIST});
  EXPECT_EQ(Err(link(M("c").c_str(), M("a").c_str())), Errno{EEXIST});
  EXPECT_EQ(ReadFile(M("b")), "b");
}

TEST_F(LinkTest, LinkOfDirectoryIsEPERM) {
  MakeDirs(L(1, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(link(M("d").c_str(), M("d2").c_str())), Errno{EPERM});
}

TEST_F(LinkTest, LinkOfMissingOrWhitedOutSourceIsENOENT) {
  WriteFile(L(1, "gone"), "x");
  MakeWhiteout(U("gone"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(Err(link(M("missing").c_str(), M("x").c_str())), Errno{ENOENT});
  EXPECT_EQ(Err(link(M("gone").c_str(), M("x").c_str())), Errno{ENOENT});
}

TEST_F(LinkTest, LinkOverWhitedOutName) {
  WriteFile(L(1, "src"), "source");
  WriteFile(L(1, "target"), "old");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("target").c_str()), 0);
  ASSERT_EQ(link(M("src").c_str(), M("target").c_str()), 0);
  ExpectOneObject({"src", "target"}, 2, "source");
}

}  // namespace
}  // namespace overtier::it
