// readdir of merged directories: the union of all layers, the upper-most
// entry winning, whiteouts hidden, no duplicates, opaque directories ending
// the fall-through, and offsets (getdents64 d_off, telldir/seekdir) that stay
// valid across the whole listing.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "harness.h"

namespace overtier::it {
namespace {

unsigned char DtypeOf(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFSOCK:
      return DT_SOCK;
  }
  return DT_UNKNOWN;
}

std::string Name(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%s%04d", prefix, i);
  return buf;
}

class ReaddirTest : public UnionFsTest {
 protected:
  Fd OpenDir(const std::string& rel) {
    Fd fd(open(M(rel).c_str(), O_RDONLY | O_DIRECTORY));
    EXPECT_TRUE(fd.valid()) << rel;
    return fd;
  }

  // Every name exactly once; "." and ".." exactly once each.
  std::vector<std::string> NamesOnce(const std::vector<DirEntry>& entries) {
    std::map<std::string, int> count;
    for (const auto& e : entries) count[e.name]++;
    std::vector<std::string> names;
    for (const auto& [name, n] : count) {
      EXPECT_EQ(n, 1) << "'" << name << "' listed " << n << " times";
      if (name != "." && name != "..") names.push_back(name);
    }
    EXPECT_EQ(count["."], 1);
    EXPECT_EQ(count[".."], 1);
    return names;
  }
};

TEST_F(ReaddirTest, UnionOfAllLayersWithoutDuplicates) {
  for (const std::string& layer : {L(1, "d"), L(0, "d"), U("d")}) MakeDirs(layer);
  WriteFile(L(1, "d/only_l1"), "x");
  WriteFile(L(0, "d/only_l0"), "x");
  WriteFile(U("d/only_u"), "x");
  for (const std::string& p : {L(1, "d/everywhere"), L(0, "d/everywhere"), U("d/everywhere")}) {
    WriteFile(p, "x");
  }
  WriteFile(L(1, "d/l1_and_l0"), "x");
  WriteFile(L(0, "d/l1_and_l0"), "x");
  MakeDirs(L(1, "d/subdir_everywhere"));
  MakeDirs(L(0, "d/subdir_everywhere"));
  MakeDirs(U("d/subdir_everywhere"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd = OpenDir("d");
  EXPECT_EQ(NamesOnce(ReadDirRaw(fd.get())),
            (std::vector<std::string>{"everywhere", "l1_and_l0", "only_l0", "only_l1", "only_u",
                                      "subdir_everywhere"}));
}

TEST_F(ReaddirTest, TypeComesFromTheUppermostLayer) {
  MakeDirs(L(1, "x"));
  WriteFile(U("x"), "file over dir");
  WriteFile(L(1, "y"), "file");
  MakeDirs(L(0, "y"));  // dir over file
  MakeSymlink("somewhere", L(0, "z"));
  MakeDirs(L(1, "z"));
  ASSERT_EQ(mkfifo(L(1, "fifo").c_str(), 0644), 0);
  ASSERT_EQ(mknod(L(1, "chr").c_str(), S_IFCHR | 0644, makedev(1, 3)), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd = OpenDir("");
  std::map<std::string, unsigned char> types;
  for (const auto& e : ReadDirRaw(fd.get())) types[e.name] = e.type;
  EXPECT_EQ(types["x"], DT_REG);
  EXPECT_EQ(types["y"], DT_DIR);
  EXPECT_EQ(types["z"], DT_LNK);
  EXPECT_EQ(types["fifo"], DT_FIFO);
  EXPECT_EQ(types["chr"], DT_CHR) << "a real char device is not a whiteout";
  EXPECT_EQ(types["."], DT_DIR);
  for (const auto& [name, type] : types) {
    if (name == "." || name == "..") continue;
    EXPECT_EQ(type, DtypeOf(Lstat(M(name)).st_mode)) << name;
  }
}

TEST_F(ReaddirTest, WhiteoutsAreHidden) {
  MakeDirs(L(1, "d"));
  MakeDirs(L(0, "d"));
  MakeDirs(U("d"));
  WriteFile(L(1, "d/hidden_by_upper"), "x");
  WriteFile(L(1, "d/hidden_by_lower0"), "x");
  WriteFile(L(1, "d/visible"), "x");
  MakeWhiteout(U("d/hidden_by_upper"));
  MakeWhiteout(L(0, "d/hidden_by_lower0"));
  MakeWhiteout(U("d/whiteout_of_nothing"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd = OpenDir("d");
  EXPECT_EQ(NamesOnce(ReadDirRaw(fd.get())), std::vector<std::string>{"visible"});
}

TEST_F(ReaddirTest, OpaqueDirectoryEndsFallThrough) {
  MakeDirs(L(1, "d"));
  MakeDirs(L(0, "d"));
  MakeDirs(U("d"));
  WriteFile(L(1, "d/bottom"), "x");
  WriteFile(L(0, "d/middle"), "x");
  WriteFile(U("d/top"), "x");
  MakeOpaque(L(0, "d"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd = OpenDir("d");
  EXPECT_EQ(NamesOnce(ReadDirRaw(fd.get())), (std::vector<std::string>{"middle", "top"}));
}

TEST_F(ReaddirTest, EmptyAfterWhitingOutEverything) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/a"), "x");
  WriteFile(L(1, "d/b"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(unlink(M("d/a").c_str()), 0);
  ASSERT_EQ(unlink(M("d/b").c_str()), 0);
  Fd fd = OpenDir("d");
  EXPECT_EQ(NamesOnce(ReadDirRaw(fd.get())), std::vector<std::string>{});
}

TEST_F(ReaddirTest, CopyUpDoesNotDuplicateEntries) {
  MakeDirs(L(1, "d"));
  WriteFile(L(1, "d/f"), "x");
  WriteFile(L(1, "d/g"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/f"), "changed");
  ASSERT_EQ(chmod(M("d/g").c_str(), 0600), 0);
  Fd fd = OpenDir("d");
  EXPECT_EQ(NamesOnce(ReadDirRaw(fd.get())), (std::vector<std::string>{"f", "g"}));
}

// d_ino of an entry is the st_ino that lstat reports for it.
TEST_F(ReaddirTest, DinoMatchesStIno) {
  MakeDirs(L(1, "d/sub"));
  MakeDirs(U("d/upper_sub"));
  WriteFile(L(1, "d/lower"), "x");
  WriteFile(L(1, "d/copied"), "x");
  WriteFile(U("d/upper"), "x");
  ASSERT_NO_FATAL_FAILURE(Mount());
  WriteFile(M("d/copied"), "changed");
  WriteFile(M("d/new"), "n");
  Fd fd = OpenDir("d");
  for (const auto& e : ReadDirRaw(fd.get())) {
    if (e.name == "..") continue;
    EXPECT_EQ(e.ino, Lstat(M("d/" + e.name)).st_ino) << e.name;
  }
}

// A large merged directory: the listing, read through a small buffer, is the
// union; every d_off seeks back to the entry that followed it; telldir/
// seekdir agree.
TEST_F(ReaddirTest, LargeMergedDirectoryHasStableOffsets) {
  for (const std::string& layer : {L(1, "big"), L(0, "big"), U("big")}) MakeDirs(layer);
  std::set<std::string> expected;
  for (int i = 0; i < 500; ++i) {
    WriteFile(L(1, "big/" + Name("l1_", i)), "");
    WriteFile(L(0, "big/" + Name("l0_", i)), "");
    WriteFile(U("big/" + Name("up_", i)), "");
    expected.insert({Name("l1_", i), Name("l0_", i), Name("up_", i)});
  }
  for (int i = 0; i < 100; ++i) {
    for (const std::string& layer : {L(1, "big/"), L(0, "big/"), U("big/")}) {
      WriteFile(layer + Name("all_", i), "");
    }
    expected.insert(Name("all_", i));
  }
  for (int i = 0; i < 500; i += 10) {  // 50 lower1 names whited out
    MakeWhiteout(U("big/" + Name("l1_", i)));
    expected.erase(Name("l1_", i));
  }
  ASSERT_NO_FATAL_FAILURE(Mount());

  Fd fd = OpenDir("big");
  std::vector<DirEntry> all = ReadDirRaw(fd.get(), 1024);
  std::vector<std::string> names = NamesOnce(all);
  ASSERT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  ASSERT_EQ(all.size(), expected.size() + 2);

  // Seek to each recorded d_off: the rest of the listing follows.
  for (size_t i = 0; i + 1 < all.size(); i += 37) {
    ASSERT_EQ(lseek(fd.get(), all[i].off, SEEK_SET), all[i].off) << i;
    std::vector<DirEntry> rest = ReadDirRaw(fd.get(), 1024);
    ASSERT_EQ(rest.size(), all.size() - i - 1) << "after entry " << i;
    EXPECT_EQ(rest.front().name, all[i + 1].name) << "after entry " << i;
    EXPECT_EQ(rest.back().name, all.back().name);
  }
  // Back to the start.
  ASSERT_EQ(lseek(fd.get(), 0, SEEK_SET), 0);
  EXPECT_EQ(ReadDirRaw(fd.get(), 4096).size(), all.size());

  // telldir/seekdir through libc.
  std::unique_ptr<DIR, int (*)(DIR*)> dir_owner(opendir(M("big").c_str()), closedir);
  DIR* dir = dir_owner.get();
  ASSERT_NE(dir, nullptr);
  std::vector<std::pair<long, std::string>> positions;
  while (true) {
    long pos = telldir(dir);
    struct dirent* e = readdir(dir);
    if (e == nullptr) break;
    positions.emplace_back(pos, e->d_name);
  }
  ASSERT_EQ(positions.size(), all.size());
  for (size_t i = positions.size(); i-- > 0;) {
    if (i % 53 != 0 && i != positions.size() - 1) continue;
    seekdir(dir, positions[i].first);
    struct dirent* e = readdir(dir);
    ASSERT_NE(e, nullptr) << "seekdir to entry " << i;
    EXPECT_EQ(e->d_name, positions[i].second) << "seekdir to entry " << i;
  }
}

// An offset obtained from one open of a directory is valid in another open
// of the same (unchanged) directory (what NFS export and Samba rely on).
TEST_F(ReaddirTest, OffsetsAreValidAcrossOpens) {
  for (const std::string& layer : {L(1, "d"), L(0, "d"), U("d")}) MakeDirs(layer);
  for (int i = 0; i < 100; ++i) {
    WriteFile(L(1, "d/" + Name("a", i)), "");
    WriteFile(L(0, "d/" + Name("b", i)), "");
    WriteFile(U("d/" + Name("c", i)), "");
  }
  ASSERT_NO_FATAL_FAILURE(Mount());
  std::vector<DirEntry> first;
  {
    Fd fd = OpenDir("d");
    first = ReadDirRaw(fd.get(), 2048);
  }
  ASSERT_EQ(first.size(), 302u);
  for (size_t i : {size_t{0}, size_t{1}, size_t{50}, size_t{150}, size_t{250}, size_t{300}}) {
    Fd fd = OpenDir("d");
    ASSERT_EQ(lseek(fd.get(), first[i].off, SEEK_SET), first[i].off);
    std::vector<DirEntry> rest = ReadDirRaw(fd.get(), 2048);
    ASSERT_EQ(rest.size(), first.size() - i - 1) << i;
    EXPECT_EQ(rest.front().name, first[i + 1].name) << i;
  }
}

// Entries created or removed while a listing is in progress: every entry
// that was not touched is returned exactly once, nothing is returned twice.
TEST_F(ReaddirTest, ModificationDuringIteration) {
  for (const std::string& layer : {L(1, "d"), U("d")}) MakeDirs(layer);
  for (int i = 0; i < 200; ++i) {
    WriteFile(L(1, "d/" + Name("l", i)), "");
    WriteFile(U("d/" + Name("u", i)), "");
  }
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd = OpenDir("d");
  std::vector<char> buf(2048);
  std::map<std::string, int> seen;
  std::set<std::string> touched;
  bool modified = false;
  while (true) {
    std::vector<DirEntry> chunk;
    {
      // One getdents64 call.
      long n = syscall(SYS_getdents64, fd.get(), buf.data(), buf.size());
      ASSERT_GE(n, 0);
      if (n == 0) break;
      for (long pos = 0; pos < n;) {
        uint16_t reclen;
        std::memcpy(&reclen, buf.data() + pos + 16, 2);
        seen[buf.data() + pos + 19]++;
        pos += reclen;
      }
    }
    if (!modified && seen.size() > 100) {
      modified = true;
      for (int i = 150; i < 200; ++i) {
        for (const char* p : {"l", "u"}) {
          std::string n = Name(p, i);
          if (seen.count(n) == 0) {
            ASSERT_EQ(unlink(M("d/" + n).c_str()), 0);
            touched.insert(n);
          }
        }
      }
      for (int i = 0; i < 20; ++i) {
        WriteFile(M("d/" + Name("new", i)), "");
        touched.insert(Name("new", i));
      }
    }
  }
  ASSERT_TRUE(modified);
  for (const auto& [name, n] : seen) EXPECT_EQ(n, 1) << name;
  for (int i = 0; i < 200; ++i) {
    for (const char* p : {"l", "u"}) {
      std::string n = Name(p, i);
      if (touched.count(n) == 0) {
        EXPECT_EQ(seen.count(n), 1u) << n;
      }
    }
  }
}

TEST_F(ReaddirTest, RootDirectoryIsMerged) {
  WriteFile(L(1, "a"), "");
  WriteFile(L(0, "b"), "");
  WriteFile(U("c"), "");
  ASSERT_NO_FATAL_FAILURE(Mount());
  Fd fd = OpenDir("");
  EXPECT_EQ(NamesOnce(ReadDirRaw(fd.get())), (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace overtier::it
