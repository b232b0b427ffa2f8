#include "store/store.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "store/local_volume.h"
#include "store/vv_writer.h"

namespace overtier {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

::testing::AssertionResult HasSubstr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A valid configuration, for the parser tests.
StoreConfig SampleConfig() {
  StoreConfig c;
  for (int i = 0; i < 16; i++) c.id.bytes[i] = static_cast<uint8_t>(0x10 + i);
  c.sets = {{"fast", "/srv/a/volumes/fast"}, {"slow", "/mnt/disk 2/x#y/volumes/slow"}};
  c.copies = 2;
  c.vv_size = 64 << 20;
  c.chunk_size = 1 << 20;
  return c;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "store_test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    path_ = root_ + "/store";
  }
  void TearDown() override { fs::remove_all(root_); }

  void InitStore(const StoreInitOptions& o = StoreInitOptions()) {
    Status s = Store::Init(path_, o);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::unique_ptr<Store> OpenStore(bool read_only = false) {
    std::unique_ptr<Store> st;
    StoreOpenOptions o;
    o.read_only = read_only;
    Status s = Store::Open(path_, o, &st);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return st;
  }
  Status OpenRefused(bool read_only = false) {
    std::unique_ptr<Store> st;
    StoreOpenOptions o;
    o.read_only = read_only;
    Status s = Store::Open(path_, o, &st);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(st, nullptr);
    return s;
  }
  std::string conf() const { return path_ + "/store.conf"; }

  std::string root_, path_;
};

// ---------------------------------------------------------------------------
// store.conf
// ---------------------------------------------------------------------------

TEST(StoreConfigTest, FormatParseRoundTrip) {
  StoreConfig c = SampleConfig();
  std::string text = FormatStoreConfig(c);
  StoreConfig got;
  Status s = ParseStoreConfig(text, &got);
  ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << text;
  EXPECT_EQ(got.format_version, 1u);
  EXPECT_EQ(got.id, c.id);
  ASSERT_EQ(got.sets.size(), 2u);
  EXPECT_EQ(got.sets[1].name, "slow");
  EXPECT_EQ(got.sets[1].path, "/mnt/disk 2/x#y/volumes/slow");  // spaces and '#' kept
  EXPECT_EQ(got.copies, 2u);
  EXPECT_EQ(got.vv_size, uint64_t{64} << 20);
  EXPECT_EQ(got.chunk_size, uint64_t{1} << 20);
}

TEST(StoreConfigTest, CommentsBlankLinesSpacesAnyOrder) {
  StoreConfig got;
  Status s = ParseStoreConfig(
      "\n# a comment\n  volume_set =  a   /s/volumes/a  \r\n"
      "chunk_size=4096\n\tcopies = 1\nvv_size = 16384\n"
      "   # indented comment\nid = 000102030405060708090a0b0c0d0e0F\nformat = 1\n",
      &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(got.sets[0].path, "/s/volumes/a");
  EXPECT_EQ(got.id.bytes[15], 0x0f);
}

TEST(StoreConfigTest, RefusalsNameTheLine) {
  const std::string good = FormatStoreConfig(SampleConfig());
  StoreConfig got;
  ASSERT_TRUE(ParseStoreConfig(good, &got).ok());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  struct Case {
    std::string text;
    int err;
    std::string message;
  };
  const std::vector<Case> cases = {
      {good + "colour = blue\n", EINVAL, "line 11: unknown key 'colour'"},
      {good + "just words\n", EINVAL, "line 11: no '=' in 'just words'"},
      {with("format = 1", "format = 2"), ENOTSUP, "format 2 is newer than this overtier (1)"},
      // A newer format is reported even when it brings keys we do not know.
      {with("format = 1", "format = 9\nshiny = yes"), ENOTSUP, "format 9 is newer"},
      {with("format = 1", "format = 0"), EINVAL, "not a format version"},
      {with("format = 1\n", ""), EINVAL, "no 'format' line"},
      {good + "format = 1\n", EINVAL, "format given twice (line 4)"},
      {good + "copies = 1\n", EINVAL, "line 11: copies = '1': given twice (line 8)"},
      {with("id = 1011", "id = zz11"), EINVAL, "line 5: id = 'zz11"},
      {with("id = 101112131415161718191a1b1c1d1e1f", "id = 00000000000000000000000000000000"),
       EINVAL, "not all zero"},
      {with("id = 101112131415161718191a1b1c1d1e1f", "id = 1011"), EINVAL, "32 hex digits"},
      {with("copies = 2", "copies = -2"), EINVAL, "line 8: copies = '-2': not a number"},
      {with("copies = 2", "copies = 3"), EINVAL, "copies = 3: must be between 1 and"},
      {with("copies = 2", "copies = 0"), EINVAL, "copies = 0"},
      {with("vv_size = 67108864", "vv_size = 64M"), EINVAL, "vv_size = '64M': not a size"},
      {with("vv_size = 67108864", "vv_size = 99999999999999999999999"), EINVAL, "not a size"},
      {with("vv_size = 67108864", "vv_size = 4096"), EINVAL, "vv_size = 4096: less than"},
      {with("chunk_size = 1048576", "chunk_size = 1048577"), EINVAL, "not a power of two"},
      {with("chunk_size = 1048576", "chunk_size = 2048"), EINVAL, "not a power of two"},
      {with("chunk_size = 1048576", "chunk_size = 33554432"), EINVAL, "not a power of two"},
      {with("vv_size = 67108864", "vv_size = 2097152"), EINVAL, "more than a quarter of vv_size"},
      {with("copies = 2\n", ""), EINVAL, "no 'copies' line"},
      {with("volume_set = fast /srv/a/volumes/fast", "volume_set = fast"), EINVAL,
       "expected NAME PATH"},
      {with("volume_set = fast /srv/a/volumes/fast", "volume_set = .fast /srv/volumes/.fast"),
       EINVAL, "volume set name '.fast'"},
      {with("volume_set = fast /srv/a/volumes/fast", "volume_set = slow /srv/a/volumes/slow"),
       EINVAL, "volume set 'slow' is listed twice"},
      {with("volume_set = fast /srv/a/volumes/fast", "volume_set = fast srv/volumes/fast"), EINVAL,
       "path 'srv/volumes/fast' is not absolute"},
  };
  for (const Case& c : cases) {
    Status s = ParseStoreConfig(c.text, &got);
    EXPECT_EQ(s.err(), c.err) << c.message << ": " << s.ToString();
    EXPECT_TRUE(HasSubstr(s.message(), c.message));
  }
  // Paths are compared as folders: "/srv/a//volumes/fast/" is
  // "/srv/a/volumes/fast", and is accepted as such.
  StoreConfig odd = SampleConfig();
  odd.sets[0].path = "/srv/a//volumes/fast/";
  EXPECT_TRUE(ParseStoreConfig(FormatStoreConfig(odd), &got).ok());
  // Every proper prefix of a valid file (a truncated store.conf) is
  // refused, down to the last line (the set path cut short).
  for (size_t n = 0; n + 1 < good.size(); n++) {
    EXPECT_FALSE(ParseStoreConfig(good.substr(0, n), &got).ok()) << "accepted " << n << " bytes";
  }
}

// A set may be a RADOS pool (store/rados_volume.h): its spec stands where
// a path would. The cluster tests are in rados_volume_test.
TEST(StoreConfigTest, RadosSets) {
  StoreConfig c = SampleConfig();
  c.sets[1].path = "rados:cold?conf=/etc/ceph/ceph.conf&id=client.ovt&ns=s1";
  StoreConfig got;
  Status s = ParseStoreConfig(FormatStoreConfig(c), &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(got.sets[1].path, c.sets[1].path);

  struct Case {
    std::string fast, slow, message;
  };
  const std::vector<Case> cases = {
      {"/srv/a", "rados:", "volume set 'slow': RADOS volume set spec 'rados:': no pool name"},
      {"/srv/a", "rados:p?colour=red", "unknown key 'colour'"},
      {"rados:p?ns=x", "rados:p?ns=x&id=client.other", "is the pool (and namespace) of another"},
      {"rados:p", "rados:p?timeout=3", "is the pool (and namespace) of another set too"},
  };
  for (const Case& k : cases) {
    c.sets[0].path = k.fast;
    c.sets[1].path = k.slow;
    s = ParseStoreConfig(FormatStoreConfig(c), &got);
    EXPECT_EQ(s.err(), EINVAL) << k.message;
    EXPECT_TRUE(HasSubstr(s.message(), k.message));
  }
  // The same pool in two namespaces, or of two clusters, is two places.
  c.sets[0].path = "rados:p?ns=x";
  c.sets[1].path = "rados:p?ns=y";
  EXPECT_TRUE(ParseStoreConfig(FormatStoreConfig(c), &got).ok());
  c.sets[1].path = "rados:p?conf=/etc/ceph/other.conf&ns=x";
  EXPECT_TRUE(ParseStoreConfig(FormatStoreConfig(c), &got).ok());
}

// ---------------------------------------------------------------------------
// Init and Open
// ---------------------------------------------------------------------------

// A RADOS set that cannot be opened (here: its ceph.conf is missing, or
// overtier lacks librados) fails Init, which leaves nothing behind.
TEST_F(StoreTest, InitWithAnUnreachableRadosSetLeavesNothing) {
  StoreInitOptions o;
  o.sets.push_back({"cold", "rados:p?conf=" + root_ + "/no-such/ceph.conf"});
  Status s = Store::Init(path_, o);
  EXPECT_TRUE(s.err() == ENOENT || s.err() == ENOTSUP) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "volume set 'cold'"));
  EXPECT_FALSE(fs::exists(path_));
  o.sets[0].path = "rados:p?conf=relative.conf";
  s = Store::Init(path_, o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "not an absolute path"));
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(StoreTest, InitThenOpenRoundTrip) {
  std::unique_ptr<Store> st;
  Status s = Store::Init(path_, StoreInitOptions(), &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->read_only());
  const StoreConfig c = st->config();
  EXPECT_EQ(c.copies, 1u);
  EXPECT_EQ(c.vv_size, kVvDefaultSealSize);
  EXPECT_EQ(c.chunk_size, kDefaultChunkSize);
  ASSERT_EQ(c.sets.size(), 1u);
  EXPECT_EQ(c.sets[0].name, "default");
  EXPECT_EQ(c.sets[0].path, path_ + "/volumes/default");
  EXPECT_FALSE(c.id.IsZero());
  EXPECT_EQ(st->catalog()->store_id(), c.id);
  EXPECT_EQ(st->path(), path_);
  ASSERT_EQ(st->volume_sets().size(), 1u);
  EXPECT_EQ(st->volume_set("default"), st->volume_sets()[0]);
  EXPECT_EQ(st->volume_set("nope"), nullptr);
  EXPECT_TRUE(fs::is_directory(path_ + "/volumes/default"));
  EXPECT_TRUE(fs::exists(path_ + "/write.lock"));
  EXPECT_TRUE(fs::exists(path_ + "/mounts.lock"));
  // Nothing temporary left.
  for (const auto& e : fs::directory_iterator(path_)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
  st.reset();

  StoreConfig parsed;
  ASSERT_TRUE(ParseStoreConfig(ReadFile(conf()), &parsed).ok());
  EXPECT_EQ(parsed.id, c.id);

  st = OpenStore();
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->config().id, c.id);
  EXPECT_FALSE(st->catalog()->read_only());
  st.reset();
  st = OpenStore(/*read_only=*/true);
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(st->read_only());
  EXPECT_TRUE(st->catalog()->read_only());

  // A relative path names the same store.
  std::string cwd = fs::current_path();
  fs::current_path(root_);
  std::unique_ptr<Store> rel;
  s = Store::Open("store/", StoreOpenOptions{true}, &rel);
  fs::current_path(cwd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rel->path(), path_);
}

TEST_F(StoreTest, InitWithSetsElsewhere) {
  StoreInitOptions o;
  // Any folder will do (another disk): not only STORE/volumes/NAME.
  const std::string disk2 = root_ + "/disk2/cold tier";
  o.sets = {{"fast", ""}, {"slow", disk2}};
  o.vv_size = 1 << 20;
  o.chunk_size = 64 << 10;
  InitStore(o);
  EXPECT_TRUE(fs::is_directory(path_ + "/volumes/fast"));
  EXPECT_TRUE(fs::is_directory(disk2));
  std::unique_ptr<Store> st = OpenStore();
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->config().copies, 2u);  // min(2, sets)
  EXPECT_EQ(st->config().vv_size, uint64_t{1} << 20);
  EXPECT_EQ(st->config().chunk_size, uint64_t{64} << 10);
  ASSERT_EQ(st->volume_sets().size(), 2u);
  EXPECT_EQ(st->volume_sets()[0]->name(), "fast");
  EXPECT_EQ(st->volume_sets()[1]->name(), "slow");
  EXPECT_EQ(st->config().sets[1].path, disk2);
}

TEST_F(StoreTest, AddVolumeSetToAnExistingStore) {
  StoreInitOptions o;
  o.sets = {{"fast", ""}};
  InitStore(o);
  // A folder elsewhere, made with its missing parents, and copies raised.
  const std::string disk2 = root_ + "/disk2/cold";
  StoreConfig c;
  Status s = Store::AddVolumeSet(path_, {"cold", disk2}, 2, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.sets.size(), 2u);
  EXPECT_TRUE(fs::is_directory(disk2));
  std::unique_ptr<Store> st = OpenStore();
  ASSERT_NE(st, nullptr);
  ASSERT_EQ(st->volume_sets().size(), 2u);
  EXPECT_EQ(st->volume_sets()[1]->name(), "cold");
  EXPECT_EQ(st->config().sets[1].path, disk2);
  EXPECT_EQ(st->config().copies, 2u);
  st.reset();
  // An empty path is STORE/volumes/NAME; copies stay as they are.
  ASSERT_TRUE(Store::AddVolumeSet(path_, {"third", ""}, 0, &c).ok());
  EXPECT_EQ(c.copies, 2u);
  EXPECT_TRUE(fs::is_directory(path_ + "/volumes/third"));

  // Refusals change nothing: a name already there, copies above the sets,
  // a folder that is not empty, a path not absolute, no store.
  const std::string before = ReadFile(path_ + "/store.conf");
  s = Store::AddVolumeSet(path_, {"cold", root_ + "/other"}, 0);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "volume set 'cold' is listed twice")) << s.message();
  EXPECT_FALSE(fs::exists(root_ + "/other"));
  s = Store::AddVolumeSet(path_, {"four", root_ + "/four"}, 9);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "copies = 9")) << s.message();
  fs::create_directories(root_ + "/busy");
  std::ofstream(root_ + "/busy/x") << "x";
  s = Store::AddVolumeSet(path_, {"busy", root_ + "/busy"}, 0);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "exists and is not an empty folder")) << s.message();
  s = Store::AddVolumeSet(path_, {"rel", "relative/dir"}, 0);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "is not absolute")) << s.message();
  EXPECT_EQ(ReadFile(path_ + "/store.conf"), before);
  EXPECT_FALSE(Store::AddVolumeSet(root_ + "/nothing", {"x", root_ + "/x"}, 0).ok());
  EXPECT_FALSE(fs::exists(root_ + "/x"));
}

TEST_F(StoreTest, InitRefusalsLeaveNothingBehind) {
  struct Case {
    const char* what;
    StoreInitOptions o;
    std::string message;
  };
  auto opts = [](std::vector<VolumeSetConfig> sets, uint32_t copies, uint64_t vv = 0,
                 uint64_t chunk = 0) {
    StoreInitOptions o;
    o.sets = std::move(sets);
    o.copies = copies;
    o.vv_size = vv;
    o.chunk_size = chunk;
    return o;
  };
  const std::vector<Case> cases = {
      {"copies > sets", opts({{"a", ""}}, 2), "copies = 2: must be between 1 and"},
      {"bad name", opts({{"a/b", ""}}, 0), "volume set name 'a/b'"},
      {"dot name", opts({{".a", ""}}, 0), "volume set name '.a'"},
      {"duplicate name", opts({{"a", ""}, {"a", "/x/volumes/a"}}, 1), "listed twice"},
      {"same path", opts({{"a", ""}, {"b", "/x/volumes/b"}, {"c", "/x/volumes/b"}}, 1),
       "is the folder of another set too"},
      {"relative", opts({{"a", "rel/volumes/a"}}, 0), "not absolute"},
      {"vv too small", opts({}, 0, 4096), "vv_size = 4096"},
      {"chunk not pow2", opts({}, 0, 0, 5000), "chunk_size = 5000"},
      {"chunk too big", opts({}, 0, 0, 32 << 20), "chunk_size = 33554432"},
      {"chunk vs vv", opts({}, 0, 1 << 20, 512 << 10), "more than a quarter"},
  };
  for (const Case& c : cases) {
    Status s = Store::Init(path_, c.o);
    EXPECT_EQ(s.err(), EINVAL) << c.what << ": " << s.ToString();
    EXPECT_TRUE(HasSubstr(s.message(), c.message)) << c.what;
    EXPECT_FALSE(fs::exists(path_)) << c.what;
  }

  // A set folder that exists and holds something: refused, and everything
  // Init made is taken back (the existing folder is left alone).
  const std::string other = root_ + "/other/volumes/b";
  fs::create_directories(other);
  WriteFile(other + "/vv-0000000000000001.vv", "someone's data");
  StoreInitOptions o = opts({{"a", ""}, {"b", other}}, 1);
  Status s = Store::Init(path_, o);
  EXPECT_EQ(s.err(), EEXIST) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "volume set 'b' folder '" + other + "'"));
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_EQ(ReadFile(other + "/vv-0000000000000001.vv"), "someone's data");

  // An existing empty store folder is used; a non-empty one is refused.
  ASSERT_EQ(mkdir(path_.c_str(), 0755), 0);
  InitStore();
  s = Store::Init(path_, StoreInitOptions());
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "is not empty"));
  const std::string file = root_ + "/afile";
  WriteFile(file, "x");
  EXPECT_EQ(Store::Init(file, StoreInitOptions()).err(), EEXIST);
}

// What a crash in the middle of Init leaves (everything but store.conf) is
// not a store, and Init refuses to build over it with a hint.
TEST_F(StoreTest, InterruptedInitIsNotAStore) {
  InitStore();
  ASSERT_EQ(unlink(conf().c_str()), 0);
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "is not an overtier store (no store.conf"));
  s = Store::Init(path_, StoreInitOptions());
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "what an interrupted init leaves"));
}

// A crash while store.conf is rewritten leaves a temporary beside it, which
// does not matter to Open.
TEST_F(StoreTest, StrayTemporaryConfIgnored) {
  InitStore();
  WriteFile(path_ + "/.store.conf.tmp-AbC123", "format = 1\nid = trunc");
  EXPECT_NE(OpenStore(), nullptr);
  EXPECT_NE(OpenStore(/*read_only=*/true), nullptr);
}

TEST_F(StoreTest, OpenRefusals) {
  Status s = OpenRefused();
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "store '" + path_ + "' does not exist"));
  ASSERT_EQ(mkdir(path_.c_str(), 0755), 0);
  s = OpenRefused(true);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "not an overtier store"));
  ASSERT_EQ(rmdir(path_.c_str()), 0);

  InitStore();
  const std::string good = ReadFile(conf());

  // Bad store.conf contents, named with the file and line.
  WriteFile(conf(), good + "colour = blue\n");
  s = OpenRefused();
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), conf() + ": line 10: unknown key 'colour'"));
  WriteFile(conf(), good.substr(0, good.size() / 2));  // truncated
  s = OpenRefused(true);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), conf() + ": "));
  WriteFile(conf(), "");
  EXPECT_TRUE(HasSubstr(OpenRefused().message(), "no 'format' line"));
  std::string newer = good;
  newer.replace(newer.find("format = 1"), 10, "format = 2");
  WriteFile(conf(), newer);
  s = OpenRefused();
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(HasSubstr(s.message(), "format 2 is newer than this overtier"));
  WriteFile(conf(), std::string(2 << 20, 'x'));
  EXPECT_TRUE(HasSubstr(OpenRefused().message(), "larger than 1 MiB"));

  // store.conf of another store: the catalog's id disagrees.
  std::string other = good;
  size_t at = other.find("id = ") + 5;
  other[at] = other[at] == '0' ? '1' : '0';
  WriteFile(conf(), other);
  s = OpenRefused(true);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "the catalog belongs to store "));
  WriteFile(conf(), good);

  // A missing set folder (a disk not mounted).
  fs::rename(path_ + "/volumes/default", root_ + "/moved");
  s = OpenRefused();
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "the folder of volume set 'default', '" + path_ +
                                         "/volumes/default', is missing"));
  EXPECT_FALSE(fs::exists(path_ + "/volumes/default"));  // not re-created
  fs::rename(root_ + "/moved", path_ + "/volumes/default");
  EXPECT_NE(OpenStore(), nullptr);

  // A missing catalog, then one that is garbage.
  fs::rename(path_ + "/catalog", root_ + "/catalog.away");
  s = OpenRefused();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "the catalog is missing"));
  ASSERT_EQ(mkdir((path_ + "/catalog").c_str(), 0755), 0);
  WriteFile(path_ + "/catalog/CURRENT", "\x01\x02 garbage\n");
  WriteFile(path_ + "/catalog/MANIFEST-000001", std::string(300, '\x5a'));
  for (bool ro : {false, true}) {
    s = OpenRefused(ro);
    EXPECT_EQ(s.err(), EIO) << s.ToString();
    EXPECT_TRUE(HasSubstr(s.message(), "store '" + path_ + "': catalog '" + path_ + "/catalog'"));
  }
  fs::remove_all(path_ + "/catalog");
  fs::rename(root_ + "/catalog.away", path_ + "/catalog");
  EXPECT_NE(OpenStore(), nullptr);
}

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

class StoreContainerTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    StoreInitOptions o;
    o.sets = {{"a", ""}, {"b", ""}};
    o.vv_size = 1 << 20;
    o.chunk_size = 64 << 10;
    InitStore(o);
    st_ = OpenStore();
    ASSERT_NE(st_, nullptr);
  }
  void TearDown() override {
    st_.reset();
    StoreTest::TearDown();
  }
  void PutVolume(uint64_t id, const std::string& set, VolumeState state, uint64_t size) {
    Catalog::Batch b(st_->catalog());
    b.PutVolume(id, VolumeRecord{set, state, size, 0});
    Status s = b.Commit();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  RecordLocation Append(VvWriter* w, const std::string& payload) {
    RecordLocation loc;
    Id128 key{};
    key[0] = 1;
    Status s = w->Append(RecordKind::kFileData, key, 0, payload, &loc);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return loc;
  }
  static size_t OpenFds() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n++;
    return n;
  }
  std::string Read(const std::shared_ptr<const VvReader>& r, const RecordLocation& loc) {
    return Read(r.get(), loc);
  }
  std::string Read(const VvReader* r, const RecordLocation& loc) {
    RecordHeader h;
    std::string payload;
    Status s = r->ReadRecord(loc, &h, &payload);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return payload;
  }

  std::string ContainerPath(const std::string& set, uint64_t vv_id) {
    return path_ + "/volumes/" + set + "/" + LocalPieceName(vv_id, 0);
  }
  // The error of reading the record at loc (OK if it reads).
  static Status ReadError(const std::shared_ptr<const VvReader>& r, const RecordLocation& loc) {
    return ReadError(r.get(), loc);
  }
  static Status ReadError(const VvReader* r, const RecordLocation& loc) {
    RecordHeader h;
    std::string payload;
    return r->ReadRecord(loc, &h, &payload);
  }

  std::unique_ptr<Store> st_;
};

TEST_F(StoreContainerTest, OpenContainerCachesAndFollowsGrowth) {
  std::unique_ptr<VvWriter> w;
  VvWriterOptions wo;
  wo.seal_size = st_->config().vv_size;
  ASSERT_TRUE(VvWriter::Create(st_->volume_set("b"), st_->config().id.bytes, 7, wo, &w).ok());
  RecordLocation first = Append(w.get(), "first record");
  ASSERT_TRUE(w->Sync().ok());
  PutVolume(7, "b", VolumeState::kOpen, w->size());

  std::shared_ptr<const VvReader> r1;
  ASSERT_TRUE(st_->OpenContainer(7, &r1).ok());
  ASSERT_NE(r1, nullptr);
  EXPECT_FALSE(r1->sealed());
  EXPECT_EQ(r1->header().set_name, "b");
  EXPECT_EQ(Read(r1.get(), first), "first record");
  std::shared_ptr<const VvReader> again;
  ASSERT_TRUE(st_->OpenContainer(7, &again).ok());
  EXPECT_EQ(again, r1);  // cached

  // The container grows; the catalog learns of it: a new reader sees the
  // new record, and the old one stays valid while held, its files closed
  // once let go.
  RecordLocation second = Append(w.get(), "second record");
  ASSERT_TRUE(w->Sync().ok());
  ASSERT_TRUE(st_->OpenContainer(7, &again).ok());
  EXPECT_EQ(again, r1);  // the catalog does not know yet
  PutVolume(7, "b", VolumeState::kOpen, w->size());
  again.reset();
  std::shared_ptr<const VvReader> r2;
  ASSERT_TRUE(st_->OpenContainer(7, &r2).ok());
  EXPECT_NE(r2, r1);
  EXPECT_EQ(Read(r2.get(), second), "second record");
  EXPECT_EQ(Read(r1.get(), first), "first record");
  const size_t fds = OpenFds();
  r1.reset();
  EXPECT_EQ(OpenFds(), fds - 1) << "the replaced reader's file stays open";

  // Sealed: cached forever, even without a catalog lookup.
  ASSERT_TRUE(w->Seal().ok());
  PutVolume(7, "b", VolumeState::kSealed, w->size());
  std::shared_ptr<const VvReader> r3;
  ASSERT_TRUE(st_->OpenContainer(7, &r3).ok());
  EXPECT_TRUE(r3->sealed());
  Catalog::Batch b(st_->catalog());
  b.DeleteVolume(7);
  ASSERT_TRUE(b.Commit().ok());
  ASSERT_TRUE(st_->OpenContainer(7, &again).ok());
  EXPECT_EQ(again, r3);
  EXPECT_EQ(Read(r3.get(), second), "second record");
}

// However many containers a mount reads, the cache keeps a bounded number
// of readers (and so of open files); a reader dropped from it opens again.
TEST_F(StoreContainerTest, TheReaderCacheIsBounded) {
  constexpr uint64_t kContainers = 400;
  std::vector<RecordLocation> locs;
  for (uint64_t id = 100; id < 100 + kContainers; id++) {
    std::unique_ptr<VvWriter> w;
    VvWriterOptions wo;
    wo.seal_size = st_->config().vv_size;
    ASSERT_TRUE(VvWriter::Create(st_->volume_set("a"), st_->config().id.bytes, id, wo, &w).ok());
    locs.push_back(Append(w.get(), "record " + std::to_string(id)));
    ASSERT_TRUE(w->Seal().ok());
    PutVolume(id, "a", VolumeState::kSealed, w->size());
  }
  const size_t before = OpenFds();
  for (int pass = 0; pass < 2; pass++) {
    for (uint64_t i = 0; i < kContainers; i++) {
      std::shared_ptr<const VvReader> r;
      ASSERT_TRUE(st_->OpenContainer(100 + i, &r).ok());
      ASSERT_EQ(Read(r.get(), locs[i]), "record " + std::to_string(100 + i));
    }
  }
  EXPECT_LT(OpenFds(), before + kContainers * 3 / 4);
}

TEST_F(StoreContainerTest, OpenContainerErrors) {
  std::shared_ptr<const VvReader> r;
  Status s = st_->OpenContainer(99, &r);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "vv 99 is not in the catalog"));

  PutVolume(3, "nowhere", VolumeState::kSealed, 4096);
  s = st_->OpenContainer(3, &r);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "volume set 'nowhere', which store.conf does not list"));

  PutVolume(4, "a", VolumeState::kLost, 4096);
  s = st_->OpenContainer(4, &r);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "vv 4 (set 'a') is marked lost"));

  PutVolume(5, "a", VolumeState::kSealed, 4096);  // in the catalog, not on disk
  s = st_->OpenContainer(5, &r);
  EXPECT_EQ(s.err(), ENOENT) << s.ToString();

  // A container whose header is cut short cannot be opened at all.
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(st_->volume_set("a"), st_->config().id.bytes, 6, {}, &w).ok());
  Append(w.get(), "x");
  ASSERT_TRUE(w->Seal().ok());
  PutVolume(6, "a", VolumeState::kSealed, w->size());
  ASSERT_EQ(truncate(ContainerPath("a", 6).c_str(), 100), 0);
  s = st_->OpenContainer(6, &r);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "container header truncated")) << s.message();

  // A container written for another store id.
  StoreId other = st_->config().id;
  other.bytes[0] ^= 1;
  std::unique_ptr<VvWriter> w2;
  ASSERT_TRUE(VvWriter::Create(st_->volume_set("a"), other.bytes, 8, {}, &w2).ok());
  ASSERT_TRUE(w2->Seal().ok());
  PutVolume(8, "a", VolumeState::kSealed, w2->size());
  s = st_->OpenContainer(8, &r);
  EXPECT_EQ(s.err(), EIO) << s.ToString();
}

// A container cut short on disk (sealed: its trailer is gone; or open)
// still opens: what lies before the cut reads and verifies, what lies past
// it is EIO naming the container, the offset and the truncation.
TEST_F(StoreContainerTest, TruncatedContainerOpensAndItsPrefixReads) {
  for (VolumeState state : {VolumeState::kSealed, VolumeState::kOpen}) {
    SCOPED_TRACE(VolumeStateName(state));
    const uint64_t id = state == VolumeState::kSealed ? 10 : 11;
    std::unique_ptr<VvWriter> w;
    ASSERT_TRUE(VvWriter::Create(st_->volume_set("a"), st_->config().id.bytes, id, {}, &w).ok());
    const std::string p1(10000, '1'), p2(20000, '2'), p3(5000, '3');
    const RecordLocation l1 = Append(w.get(), p1);
    const RecordLocation l2 = Append(w.get(), p2);
    const RecordLocation l3 = Append(w.get(), p3);
    ASSERT_TRUE((state == VolumeState::kSealed ? w->Seal() : w->Sync()).ok());
    const uint64_t full = w->size();
    PutVolume(id, "a", state, full);
    const uint64_t cut = l2.offset + 5000;  // inside the second record's payload
    ASSERT_EQ(truncate(ContainerPath("a", id).c_str(), static_cast<off_t>(cut)), 0);

    std::shared_ptr<const VvReader> r;
    Status s = st_->OpenContainer(id, &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_FALSE(r->sealed());
    EXPECT_EQ(r->size(), cut);
    EXPECT_EQ(Read(r, l1), p1);
    for (const RecordLocation& l : {l2, l3}) {
      s = ReadError(r, l);
      EXPECT_EQ(s.err(), EIO) << s.ToString();
      EXPECT_TRUE(HasSubstr(
          s.message(), VvName(id) + " (volume set 'a') at offset " + std::to_string(l.offset)));
      EXPECT_TRUE(HasSubstr(s.message(), "the container is truncated"));
    }
    // The damaged reader is kept: no reopen per read.
    std::shared_ptr<const VvReader> again;
    ASSERT_TRUE(st_->OpenContainer(id, &again).ok());
    EXPECT_EQ(again, r);
    // A catalog row that changes makes it look again; the container is
    // still as short, so callers keep the reader they have.
    PutVolume(id, "a", state, full + 4096);
    ASSERT_TRUE(st_->OpenContainer(id, &again).ok());
    EXPECT_EQ(again, r);
    EXPECT_EQ(Read(again, l1), p1);
    // Truncated further: a new reader, at the new end (the old one stays
    // valid).
    ASSERT_EQ(truncate(ContainerPath("a", id).c_str(), static_cast<off_t>(l1.offset + 100)), 0);
    PutVolume(id, "a", state, full);
    ASSERT_TRUE(st_->OpenContainer(id, &again).ok());
    EXPECT_NE(again, r);
    EXPECT_EQ(again->size(), l1.offset + 100);
    EXPECT_EQ(ReadError(again, l1).err(), EIO);
    // A new Store (another process) opens it the same way.
    std::unique_ptr<Store> other = OpenStore(true);
    ASSERT_NE(other, nullptr);
    ASSERT_TRUE(other->OpenContainer(id, &again).ok());
    EXPECT_EQ(again->size(), l1.offset + 100);
  }
}

TEST_F(StoreContainerTest, ConcurrentOpensShareOneReader) {
  std::unique_ptr<VvWriter> w;
  ASSERT_TRUE(VvWriter::Create(st_->volume_set("a"), st_->config().id.bytes, 1, {}, &w).ok());
  RecordLocation loc = Append(w.get(), "shared");
  ASSERT_TRUE(w->Seal().ok());
  PutVolume(1, "a", VolumeState::kSealed, w->size());
  std::vector<const VvReader*> got(8, nullptr);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; i++) {
        std::shared_ptr<const VvReader> r;
        ASSERT_TRUE(st_->OpenContainer(1, &r).ok());
        if (got[t] != nullptr) {
          ASSERT_EQ(got[t], r.get());
        }
        got[t] = r.get();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const VvReader* r : got) EXPECT_EQ(r, got[0]);
  EXPECT_EQ(Read(got[0], loc), "shared");
}

// ---------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------

TEST_F(StoreTest, SecondWriterWaitsForTheFirst) {
  InitStore();
  std::unique_ptr<Store> first = OpenStore();
  ASSERT_NE(first, nullptr);
  EXPECT_FALSE(first->WriterWanted());

  testing::internal::CaptureStderr();
  std::atomic<bool> opened{false};
  std::unique_ptr<Store> second;
  Status second_status;
  std::thread t([&] {
    second_status = Store::Open(path_, StoreOpenOptions(), &second);
    opened = true;
  });
  // Readers are not held up meanwhile.
  std::unique_ptr<Store> reader = OpenStore(/*read_only=*/true);
  EXPECT_NE(reader, nullptr);
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(opened.load());
  // The first writer can see that the second waits (a mount keeping its
  // store open while idle lets go then).
  bool wanted = false;
  for (int i = 0; i < 500 && !wanted; i++) {
    wanted = first->WriterWanted();
    if (!wanted) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(wanted);
  EXPECT_TRUE(first->WriterWanted());  // asking takes nothing away
  first.reset();
  t.join();
  std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(second_status.ok()) << second_status.ToString();
  EXPECT_TRUE(opened.load());
  EXPECT_EQ(err, "overtier: waiting for another writer of " + path_ + "\n");
  EXPECT_FALSE(second->WriterWanted()) << "nobody waits any more";
  // A writer that does not wait fails at once, and asks nothing of the
  // holder.
  StoreOpenOptions no_wait;
  no_wait.wait = false;
  std::unique_ptr<Store> third;
  Status third_status = Store::Open(path_, no_wait, &third);
  EXPECT_EQ(third_status.err(), EBUSY) << third_status.ToString();
  EXPECT_EQ(third, nullptr);
  EXPECT_FALSE(second->WriterWanted());
  // And the second writer can write.
  uint64_t id = 0;
  EXPECT_TRUE(second->catalog()->AllocateIds(IdSpace::kVolume, 1, &id).ok());
}

TEST_F(StoreTest, GcExclusiveOnlyWithoutMounts) {
  InitStore();
  std::unique_ptr<Store> mount = OpenStore(/*read_only=*/true);
  ASSERT_NE(mount, nullptr);
  ASSERT_TRUE(mount->PinForMount().ok());
  ASSERT_TRUE(mount->PinForMount().ok());  // idempotent
  std::unique_ptr<Store> mount2 = OpenStore(/*read_only=*/true);
  ASSERT_TRUE(mount2->PinForMount().ok());  // shared with the first

  std::unique_ptr<Store> gc = OpenStore();
  ASSERT_NE(gc, nullptr);
  EXPECT_FALSE(gc->TryExclusiveOfMounts());
  mount.reset();
  EXPECT_FALSE(gc->TryExclusiveOfMounts());
  mount2.reset();
  EXPECT_TRUE(gc->TryExclusiveOfMounts());
  EXPECT_TRUE(gc->TryExclusiveOfMounts());  // still held
  EXPECT_EQ(gc->PinForMount().err(), EINVAL);

  // A mount starting now waits for gc to finish.
  testing::internal::CaptureStderr();
  std::unique_ptr<Store> late = OpenStore(/*read_only=*/true);
  std::atomic<bool> pinned{false};
  Status pin_status;
  std::thread t([&] {
    pin_status = late->PinForMount();
    pinned = true;
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(pinned.load());
  gc.reset();
  t.join();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(pin_status.ok()) << pin_status.ToString();
  EXPECT_TRUE(HasSubstr(err, "waiting for gc"));

  std::unique_ptr<Store> gc2 = OpenStore();
  EXPECT_FALSE(gc2->TryExclusiveOfMounts());
}

}  // namespace
}  // namespace overtier
