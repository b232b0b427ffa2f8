// The RADOS volume backend against a real single-node Ceph cluster, started
// by scripts/ceph-test-cluster.sh for this test binary and stopped at the
// end (a watchdog process stops it too if this process dies). The spec
// tests need no cluster.
#include "store/rados_volume.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "store/cached_volume.h"
#include "store/ceph_testutil.h"
#include "store/store.h"
#include "store/vv_testutil.h"

#if OVERTIER_HAVE_RADOS
#include <rados/librados.h>
#endif

namespace overtier {
namespace {

using test::HasSubstr;
using test::Payload;

// ---------------------------------------------------------------------------
// Specs (no cluster)
// ---------------------------------------------------------------------------

TEST(RadosSpec, ParsesAllKeys) {
  RadosVolumeSpec s;
  Status st = ParseRadosVolumeSpec(
      "rados:cold-1?conf=/tmp/c1/ceph.conf&id=client.ovt&keyring=/k/r&ns=store.a&timeout=3", &s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(s.pool, "cold-1");
  EXPECT_EQ(s.conf, "/tmp/c1/ceph.conf");
  EXPECT_EQ(s.id, "client.ovt");
  EXPECT_EQ(s.keyring, "/k/r");
  EXPECT_EQ(s.ns, "store.a");
  EXPECT_EQ(s.timeout_seconds, 3u);
  EXPECT_EQ(FormatRadosVolumeSpec(s),
            "rados:cold-1?conf=/tmp/c1/ceph.conf&id=client.ovt&keyring=/k/r&ns=store.a&timeout=3");
  RadosVolumeSpec again;
  ASSERT_TRUE(ParseRadosVolumeSpec(FormatRadosVolumeSpec(s), &again).ok());
  EXPECT_EQ(FormatRadosVolumeSpec(again), FormatRadosVolumeSpec(s));
}

TEST(RadosSpec, DefaultsAndBareId) {
  RadosVolumeSpec s;
  ASSERT_TRUE(ParseRadosVolumeSpec("rados:p", &s).ok());
  EXPECT_EQ(s.pool, "p");
  EXPECT_EQ(s.conf, "");
  EXPECT_EQ(s.id, "client.admin");
  EXPECT_EQ(s.timeout_seconds, 10u);
  EXPECT_EQ(FormatRadosVolumeSpec(s), "rados:p?id=client.admin");
  ASSERT_TRUE(ParseRadosVolumeSpec("rados:p?id=bob", &s).ok());
  EXPECT_EQ(s.id, "client.bob");
  EXPECT_TRUE(IsRadosVolumeSpec("rados:"));
  EXPECT_FALSE(IsRadosVolumeSpec("/srv/volumes/a"));
}

TEST(RadosSpec, CacheSize) {
  RadosVolumeSpec s;
  ASSERT_TRUE(ParseRadosVolumeSpec("rados:p", &s).ok());
  EXPECT_EQ(s.cache_bytes, uint64_t{1} << 30);
  struct {
    const char* value;
    uint64_t bytes;
    const char* canonical;  // nullptr: the default, not written
  } cases[] = {{"0", 0, "0"},
               {"16M", uint64_t{16} << 20, "16M"},
               {"1G", uint64_t{1} << 30, nullptr},
               {"1024M", uint64_t{1} << 30, nullptr},
               {"3G", uint64_t{3} << 30, "3G"},
               {"2048T", 0, ""},  // refused below: over 1024T
               {"17000000", 17000000, "17000000"},
               {"1024T", uint64_t{1} << 50, "1024T"}};
  for (auto c : cases) {
    std::string spec = std::string("rados:p?cache=") + c.value;
    Status st = ParseRadosVolumeSpec(spec, &s);
    if (c.canonical != nullptr && *c.canonical == '\0') {
      EXPECT_EQ(st.err(), EINVAL) << spec;
      continue;
    }
    ASSERT_TRUE(st.ok()) << spec << ": " << st.ToString();
    EXPECT_EQ(s.cache_bytes, c.bytes) << spec;
    EXPECT_EQ(FormatRadosVolumeSpec(s),
              c.canonical == nullptr
                  ? std::string("rados:p?id=client.admin")
                  : std::string("rados:p?cache=") + c.canonical + "&id=client.admin")
        << spec;
    RadosVolumeSpec again;
    ASSERT_TRUE(ParseRadosVolumeSpec(FormatRadosVolumeSpec(s), &again).ok());
    EXPECT_EQ(again.cache_bytes, c.bytes);
  }
}

TEST(RadosSpec, BadSpecsSayWhatIsWrong) {
  struct Case {
    const char* spec;
    const char* why;
  } cases[] = {
      {"/srv/x", "does not start with 'rados:'"},
      {"rados:", "no pool name"},
      {"rados:?conf=/a", "no pool name"},
      {"rados:my pool", "pool name 'my pool' is not"},
      {"rados:p/q", "pool name 'p/q' is not"},
      {"rados:p?", "nothing after '?'"},
      {"rados:p?conf", "'conf' is not key=value"},
      {"rados:p?=x", "'=x' is not key=value"},
      {"rados:p?conf=relative/ceph.conf", "not an absolute path"},
      {"rados:p?conf=/a&conf=/b", "'conf' is given twice"},
      {"rados:p?colour=red", "unknown key 'colour'"},
      {"rados:p?timeout=0", "timeout = '0' is not a number of seconds"},
      {"rados:p?timeout=10s", "timeout = '10s'"},
      {"rados:p?timeout=99999", "timeout = '99999'"},
      {"rados:p?id=", "'id' has an empty value"},
      {"rados:p?id=client.", "id = 'client.' is not client.NAME"},
      {"rados:p?ns=a/b", "ns = 'a/b'"},
      {"rados:p?conf=/a&", "'' is not key=value"},
      {"rados:p?cache=1M", "cache = '1M' is not 0 (no read cache) or a size of 16M..1024T"},
      {"rados:p?cache=2P", "cache = '2P'"},
      {"rados:p?cache=-1", "cache = '-1'"},
      {"rados:p?cache=2000T", "cache = '2000T'"},
      {"rados:p?cache=99999999999999999999G", "cache = '99999999999999999999G'"},
  };
  for (const Case& c : cases) {
    RadosVolumeSpec s;
    Status st = ParseRadosVolumeSpec(c.spec, &s);
    EXPECT_EQ(st.err(), EINVAL) << c.spec;
    EXPECT_TRUE(HasSubstr(st.message(), c.why)) << c.spec;
    EXPECT_TRUE(HasSubstr(st.message(), std::string("'") + c.spec + "'")) << c.spec;
  }
}

TEST(RadosSpec, PieceNames) {
  EXPECT_EQ(RadosPieceName(0x1f, 0), "vv.000000000000001f.0");
  EXPECT_EQ(RadosPieceName(~uint64_t{0}, 12), "vv.ffffffffffffffff.12");
}

#if !OVERTIER_HAVE_RADOS

TEST(RadosVolume, BuiltWithoutRadosSaysSo) {
  EXPECT_FALSE(RadosSupported());
  RadosVolumeSpec spec;
  ASSERT_TRUE(ParseRadosVolumeSpec("rados:p", &spec).ok());
  std::unique_ptr<VolumeSet> set;
  Status s = OpenRadosVolumeSet("cold", spec, RadosVolumeOptions{}, &set);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(HasSubstr(s.message(), "built without RADOS support"));
}

#else  // OVERTIER_HAVE_RADOS

// ---------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------

constexpr const char* kPool = "ovt";

class Cluster : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    start_error_ = test::TestCeph::Start(&skip_);
    if (!skip_.empty() || !start_error_.empty()) return;
    dir_ = test::TestCeph::dir();
    // The pool all tests share (each test in its own namespace).
    RadosVolumeSpec spec = Spec("setup");
    RadosVolumeOptions o;
    o.create_pool_if_missing = true;
    std::unique_ptr<VolumeSet> set;
    Status s = OpenRadosVolumeSet("setup", spec, o, &set);
    if (!s.ok()) start_error_ = "create pool: " + s.ToString();
  }

  static void TearDownTestSuite() { test::TestCeph::Stop(); }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(start_error_.empty()) << start_error_;
  }

  // A spec for the test cluster, in namespace ns.
  static RadosVolumeSpec Spec(const std::string& ns, uint32_t timeout = 10) {
    RadosVolumeSpec s;
    s.pool = kPool;
    s.conf = dir_ + "/ceph.conf";
    s.ns = ns;
    s.timeout_seconds = timeout;
    return s;
  }

  // The current test's name: its namespace.
  static std::string TestNs() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  std::unique_ptr<VolumeSet> OpenSet(uint64_t piece_size, uint32_t timeout = 10,
                                     size_t write_buffer = 10000) {
    RadosVolumeOptions o;
    o.piece_size = piece_size;
    o.write_buffer = write_buffer;
    o.max_in_flight = 3;
    o.max_read_op = 20000;
    std::unique_ptr<VolumeSet> set;
    Status s = OpenRadosVolumeSet("cold", Spec(TestNs(), timeout), o, &set);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return set;
  }

  // Raw librados access to the test's namespace, to look at the objects.
  struct Raw {
    rados_t cluster = nullptr;
    rados_ioctx_t io = nullptr;
    Raw() {
      EXPECT_EQ(rados_create2(&cluster, "ceph", "client.admin", 0), 0);
      EXPECT_EQ(rados_conf_read_file(cluster, (dir_ + "/ceph.conf").c_str()), 0);
      rados_conf_set(cluster, "rados_osd_op_timeout", "10");
      EXPECT_EQ(rados_connect(cluster), 0);
      EXPECT_EQ(rados_ioctx_create(cluster, kPool, &io), 0);
      rados_ioctx_set_namespace(io, TestNs().c_str());
    }
    ~Raw() {
      if (io != nullptr) rados_ioctx_destroy(io);
      rados_shutdown(cluster);
    }
    // Object size, or -1 if absent.
    int64_t Size(const std::string& oid) {
      uint64_t len = 0;
      time_t mtime;
      int r = rados_stat(io, oid.c_str(), &len, &mtime);
      return r == 0 ? static_cast<int64_t>(len) : -1;
    }
    void Put(const std::string& oid, const std::string& data) {
      EXPECT_EQ(rados_write_full(io, oid.c_str(), data.data(), data.size()), 0) << oid;
    }
  };

  static std::string dir_;

 private:
  static std::string skip_, start_error_;
};

std::string Cluster::dir_, Cluster::skip_, Cluster::start_error_;

std::string ReadRange(const VolumeReader* r, uint64_t off, size_t n) {
  std::string buf(n, '\0');
  Status s = r->ReadAt(off, n, buf.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return buf;
}

TEST_F(Cluster, WriteSyncSealReadAcrossPieces) {
  auto set = OpenSet(65536);
  ASSERT_TRUE(set);
  Raw raw;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(0x2a, &w).ok());
  EXPECT_EQ(raw.Size("vv.000000000000002a.0"), 0);  // created at once, durably
  std::string data = Payload(300000, 2);
  // Appends of assorted sizes: buffered, flushing the buffer, bigger than
  // the buffer, crossing pieces, bigger than a piece.
  size_t sizes[] = {1, 4095, 4097, 100, 20000, 70000, 1707, 130000, 30000};
  size_t at = 0;
  for (size_t n : sizes) {
    ASSERT_TRUE(w->Append(std::string_view(data).substr(at, n)).ok());
    at += n;
    EXPECT_EQ(w->Size(), at);
  }
  ASSERT_EQ(at, 260000u);
  data.resize(at);
  ASSERT_TRUE(w->Sync().ok());
  EXPECT_EQ(raw.Size("vv.000000000000002a.0"), 65536);
  EXPECT_EQ(raw.Size("vv.000000000000002a.3"), 260000 - 3 * 65536);
  ASSERT_TRUE(w->Seal().ok());
  EXPECT_EQ(raw.Size("vv.000000000000002a.4"), -1);
  EXPECT_EQ(w->Append("x").err(), EBADF);
  EXPECT_EQ(w->Sync().err(), EBADF);
  char seal[64];
  int n = rados_getxattr(raw.io, "vv.000000000000002a.0", "overtier.seal", seal, sizeof seal);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(seal, static_cast<size_t>(n)), "260000 65536");

  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(0x2a, &r).ok());
  EXPECT_EQ(r->Size(), 260000u);
  EXPECT_TRUE(ReadRange(r.get(), 0, 260000) == data);  // no dump of 260 kB
  for (uint64_t off : {65535u, 65536u, 100000u, 131071u, 196608u, 259000u}) {
    size_t len = std::min<size_t>(70000, 260000 - off);
    EXPECT_TRUE(ReadRange(r.get(), off, len) == data.substr(off, len)) << off;
  }
  EXPECT_EQ(ReadRange(r.get(), 260000, 0), "");
  char buf[4];
  Status s = r->ReadAt(259999, 2, buf);
  EXPECT_EQ(s.err(), ENODATA);
  EXPECT_TRUE(HasSubstr(s.message(), "past the end of vv-000000000000002a"));
  EXPECT_EQ(r->ReadAt(~uint64_t{0}, 2, buf).err(), ENODATA);
  std::vector<RawSegment> segs;
  EXPECT_EQ(r->RawSegments(0, 10, &segs).err(), ENOTSUP);

  // Reopened through a new connection with another piece size: a sealed
  // container is read with the piece size it records.
  auto other = OpenSet(4096);
  ASSERT_TRUE(other);
  std::unique_ptr<VolumeReader> r2;
  ASSERT_TRUE(other->Open(0x2a, &r2).ok());
  EXPECT_EQ(r2->Size(), 260000u);
  EXPECT_TRUE(ReadRange(r2.get(), 0, 260000) == data);
  // Sealed means immutable.
  std::unique_ptr<VolumeWriter> w2;
  s = other->OpenForAppend(0x2a, &w2);
  EXPECT_EQ(s.err(), EBADF);
  EXPECT_TRUE(HasSubstr(s.message(), "is sealed"));
}

TEST_F(Cluster, FullSizePiecesOver64MiB) {
  auto set = OpenSet(kMaxVolumePiece, 30, size_t{4} << 20);
  ASSERT_TRUE(set);
  Raw raw;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(1, &w).ok());
  const size_t total = (size_t{65} << 20) + 12345;
  std::string data = Payload(total, 7);
  // One append bigger than a piece (goes out as piece-sized ops) and
  // small ones around it.
  ASSERT_TRUE(w->Append(std::string_view(data).substr(0, 1000)).ok());
  ASSERT_TRUE(w->Append(std::string_view(data).substr(1000, total - 2000)).ok());
  ASSERT_TRUE(w->Append(std::string_view(data).substr(total - 1000)).ok());
  ASSERT_TRUE(w->Seal().ok());
  EXPECT_EQ(raw.Size("vv.0000000000000001.0"), static_cast<int64_t>(kMaxVolumePiece));
  EXPECT_EQ(raw.Size("vv.0000000000000001.1"), static_cast<int64_t>(total - kMaxVolumePiece));
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(1, &r).ok());
  ASSERT_EQ(r->Size(), total);
  std::string back(total, '\0');
  ASSERT_TRUE(r->ReadAt(0, total, back.data()).ok());
  EXPECT_TRUE(back == data);
  EXPECT_EQ(ReadRange(r.get(), kMaxVolumePiece - 5, 10), data.substr(kMaxVolumePiece - 5, 10));
}

TEST_F(Cluster, UnsealedContainerAfterTheWriterIsDropped) {
  for (uint64_t first : {5000u, 8192u, 20000u}) {  // mid-piece, a full piece, past one
    auto set = OpenSet(8192);
    ASSERT_TRUE(set);
    const uint64_t id = 100 + first;
    std::unique_ptr<VolumeWriter> w;
    ASSERT_TRUE(set->Create(id, &w).ok());
    std::string data = Payload(40000, id);
    ASSERT_TRUE(w->Append(std::string_view(data).substr(0, first)).ok());
    ASSERT_TRUE(w->Sync().ok());
    w.reset();  // as if the writer had crashed after its Sync

    std::unique_ptr<VolumeReader> r;
    ASSERT_TRUE(set->Open(id, &r).ok());
    EXPECT_EQ(r->Size(), first) << first;
    EXPECT_EQ(ReadRange(r.get(), 0, first), data.substr(0, first));

    ASSERT_TRUE(set->OpenForAppend(id, &w).ok());
    EXPECT_EQ(w->Size(), first);
    ASSERT_TRUE(w->Append(std::string_view(data).substr(first)).ok());
    ASSERT_TRUE(w->Seal().ok());
    ASSERT_TRUE(set->Open(id, &r).ok());
    EXPECT_EQ(r->Size(), 40000u);
    EXPECT_TRUE(ReadRange(r.get(), 0, 40000) == data) << first;
    // The old reader still sees the container as it was.
    EXPECT_EQ(r->Size(), 40000u);
  }
}

TEST_F(Cluster, StrayPieceAfterAShortOneIsIgnoredAndRefusesAppend) {
  auto set = OpenSet(8192);
  ASSERT_TRUE(set);
  Raw raw;
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(5, &w).ok());
  ASSERT_TRUE(w->Append(Payload(3000, 5)).ok());
  ASSERT_TRUE(w->Sync().ok());
  w.reset();
  raw.Put("vv.0000000000000005.1", "left by a writer with writes in flight");
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(5, &r).ok());
  EXPECT_EQ(r->Size(), 3000u);
  Status s = set->OpenForAppend(5, &w);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "pieces after a short piece"));
  // Remove takes the stray piece too.
  ASSERT_TRUE(set->Remove(5).ok());
  EXPECT_EQ(raw.Size("vv.0000000000000005.1"), -1);
}

TEST_F(Cluster, CreateTwiceAndMissingContainers) {
  auto set = OpenSet(8192);
  ASSERT_TRUE(set);
  std::unique_ptr<VolumeWriter> w, w2;
  ASSERT_TRUE(set->Create(4, &w).ok());
  Status s = set->Create(4, &w2);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000004 already exists in volume set 'cold'"));
  std::unique_ptr<VolumeReader> r;
  s = set->Open(99, &r);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "vv-0000000000000063 does not exist in volume set 'cold'"));
  EXPECT_TRUE(HasSubstr(s.message(), "RADOS pool 'ovt'"));
  EXPECT_EQ(set->OpenForAppend(99, &w2).err(), ENOENT);
  EXPECT_EQ(set->Remove(99).err(), ENOENT);
}

TEST_F(Cluster, ListSkipsForeignObjectsRemoveTakesAllPieces) {
  auto set = OpenSet(4096);
  ASSERT_TRUE(set);
  Raw raw;
  for (uint64_t id : {0x30u, 0x5u, 0xabcdefu}) {
    std::unique_ptr<VolumeWriter> w;
    ASSERT_TRUE(set->Create(id, &w).ok());
    ASSERT_TRUE(w->Append(Payload(10000, id)).ok());
    ASSERT_TRUE(w->Seal().ok());
  }
  for (const char* junk :
       {"notes", "vv.00000000000000zz.0", "vv.0000000000000001.00", "vv.000000000000001.0",
        "vv.0000000000000002.1", "vv-0000000000000003.vv"}) {
    raw.Put(junk, "x");
  }
  std::vector<uint64_t> ids;
  ASSERT_TRUE(set->List(&ids).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{0x5, 0x30, 0xabcdef}));

  EXPECT_EQ(raw.Size("vv.0000000000000030.2"), 10000 - 2 * 4096);
  ASSERT_TRUE(set->Remove(0x30).ok());
  for (uint64_t n = 0; n < 3; n++) EXPECT_EQ(raw.Size(RadosPieceName(0x30, n)), -1) << n;
  ASSERT_TRUE(set->List(&ids).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{0x5, 0xabcdef}));
  std::unique_ptr<VolumeReader> r;
  EXPECT_EQ(set->Open(0x30, &r).err(), ENOENT);

  // Another namespace of the same pool is another set.
  RadosVolumeOptions o;
  std::unique_ptr<VolumeSet> elsewhere;
  ASSERT_TRUE(OpenRadosVolumeSet("cold", Spec(TestNs() + ".other"), o, &elsewhere).ok());
  ASSERT_TRUE(elsewhere->List(&ids).ok());
  EXPECT_TRUE(ids.empty());
}

TEST_F(Cluster, NamedObjectsBesideTheContainers) {
  auto set = OpenSet(4096);
  ASSERT_TRUE(set);
  test::ExpectNamedObjectsWork(set.get());
  Raw raw;
  EXPECT_EQ(raw.Size("obj.img-a.1"), 100000);
}

TEST_F(Cluster, AReaderOfARemovedContainerGetsAClearError) {
  auto set = OpenSet(4096);
  ASSERT_TRUE(set);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(8, &w).ok());
  ASSERT_TRUE(w->Append(Payload(9000, 8)).ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(8, &r).ok());
  ASSERT_TRUE(set->Remove(8).ok());
  char buf[100];
  Status s = r->ReadAt(5000, 100, buf);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "vv.0000000000000008.1 is gone from RADOS pool 'ovt'"));
}

TEST_F(Cluster, MissingPoolBadConfAndWrongKey) {
  RadosVolumeOptions o;
  std::unique_ptr<VolumeSet> set;
  RadosVolumeSpec spec = Spec("x");
  spec.pool = "no-such-pool";
  Status s = OpenRadosVolumeSet("cold", spec, o, &set);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "pool 'no-such-pool' does not exist"));

  spec = Spec("x");
  spec.conf = dir_ + "/nothing.conf";
  s = OpenRadosVolumeSet("cold", spec, o, &set);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "ceph.conf '" + dir_ + "/nothing.conf'"));

  // A key the cluster does not know: refused, quickly.
  std::string keyring = dir_ + "/wrong.keyring";
  std::ofstream(keyring) << "[client.admin]\n\tkey = AQBrDG1mAAAAABAAxRwyvVoEpcXjxoY5H0Ln7w==\n";
  spec = Spec("x", 3);
  spec.keyring = keyring;
  auto t0 = std::chrono::steady_clock::now();
  s = OpenRadosVolumeSet("cold", spec, o, &set);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.err() == EACCES || s.err() == EPERM || s.err() == ETIMEDOUT) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "connect to the cluster as client.admin"));
  EXPECT_LT(took, 10.0);
}

TEST_F(Cluster, NoMonitorTimesOutInsteadOfHanging) {
  // A conf whose monitor address nothing listens on.
  std::string conf = dir_ + "/dead.conf";
  std::ofstream(conf) << "[global]\nmon host = v2:127.0.0.1:9\nkeyring = " << dir_
                      << "/keyring\nauth client required = cephx\n";
  RadosVolumeSpec spec = Spec("x", 2);
  spec.conf = conf;
  std::unique_ptr<VolumeSet> set;
  auto t0 = std::chrono::steady_clock::now();
  Status s = OpenRadosVolumeSet("cold", spec, RadosVolumeOptions{}, &set);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.err(), ETIMEDOUT) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "no answer within 2 s")) << s.ToString();
  EXPECT_LT(took, 8.0);
}

// Runs a command line, its output into the test log; the exit code.
int RunLine(const std::string& line) {
  std::printf("+ %s\n", line.c_str());
  std::fflush(stdout);
  int rc = std::system(("timeout 120 " + line + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A store whose only volume set is RADOS, through the overtier command:
// import a tree, export it back, compare.
TEST_F(Cluster, StoreWithOnlyARadosSetImportsAndExports) {
  const char* build = std::getenv("OVERTIER_BUILD_ROOT");
  ASSERT_NE(build, nullptr) << "OVERTIER_BUILD_ROOT not set (run through meson test)";
  const std::string overtier = std::string(build) + "/tools/overtier";
  ASSERT_EQ(access(overtier.c_str(), X_OK), 0) << overtier << " not built";
  test::TempDir tmp;
  const std::string store = tmp.path() + "/store", src = tmp.path() + "/src";
  std::filesystem::create_directories(src + "/sub");
  std::vector<std::pair<std::string, std::string> > files = {
      {"small", "hello\n"},
      {"sub/big", Payload((size_t{3} << 20) + 777, 1)},
      {"sub/copy-of-big", Payload((size_t{3} << 20) + 777, 1)},
      {"empty", ""},
  };
  for (auto& [name, data] : files) std::ofstream(src + "/" + name, std::ios::binary) << data;

  StoreInitOptions o;
  RadosVolumeSpec spec = Spec(TestNs());
  o.sets.push_back(VolumeSetConfig{"cold", FormatRadosVolumeSpec(spec)});
  o.vv_size = 8 << 20;  // several containers
  std::unique_ptr<Store> st;
  Status s = Store::Init(store, o, &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(st->config().sets.at(0).path, FormatRadosVolumeSpec(spec));
  st.reset();
  EXPECT_TRUE(HasSubstr(ReadFile(store + "/store.conf"),
                        "volume_set = cold " + FormatRadosVolumeSpec(spec) + "\n"));
  EXPECT_FALSE(std::filesystem::exists(store + "/volumes"));

  ASSERT_EQ(RunLine(overtier + " image import " + store + " img " + src), 0);
  ASSERT_EQ(RunLine(overtier + " image export " + store + " img " + tmp.path() + "/img.tar"), 0);
  // The export read the pool through the store's read cache.
  size_t cached = 0;
  for (const auto& e : std::filesystem::directory_iterator(store + "/cache/cold")) {
    cached += e.path().extension() == ".blk" ? 1 : 0;
  }
  EXPECT_GT(cached, 0u);
  ASSERT_EQ(RunLine("mkdir " + tmp.path() + "/out"), 0);
  ASSERT_EQ(RunLine("tar -xf " + tmp.path() + "/img.tar -C " + tmp.path() + "/out"), 0);
  for (auto& [name, data] : files) {
    EXPECT_TRUE(ReadFile(tmp.path() + "/out/" + name) == data) << name;
  }
  // The content is in the pool.
  std::unique_ptr<VolumeSet> set;
  ASSERT_TRUE(OpenRadosVolumeSet("cold", spec, RadosVolumeOptions{}, &set).ok());
  std::vector<uint64_t> ids;
  ASSERT_TRUE(set->List(&ids).ok());
  EXPECT_FALSE(ids.empty());

  // A second store cannot take a pool namespace that holds containers.
  s = Store::Init(tmp.path() + "/store2", o, nullptr);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "already holds")) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/store2"));
}

TEST_F(Cluster, ReadCacheServesRepeatedAndSequentialReads) {
  std::unique_ptr<VolumeSet> remote = OpenSet(kMaxVolumePiece);
  ASSERT_TRUE(remote);
  std::string data = Payload((size_t{10} << 20) + 123, 5);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(remote->Create(1, &w).ok());
  ASSERT_TRUE(w->Append(data).ok());
  ASSERT_TRUE(w->Seal().ok());
  w.reset();
  test::TempDir tmp;
  ReadCacheOptions co;
  co.dir = tmp.path() + "/cache/cold";
  co.block_size = size_t{1} << 20;  // 11 blocks, the last short
  co.prefetch_depth = 2;
  std::unique_ptr<VolumeSet> set;
  ASSERT_TRUE(WrapWithReadCache(std::move(remote), co, &set).ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(1, &r).ok());
  // Read twice from start to end in 128 KiB reads, as FUSE does.
  ReadCacheStats st[2];
  for (int pass = 0; pass < 2; pass++) {
    std::string got(data.size(), '\0');
    for (size_t off = 0; off < data.size(); off += size_t{128} << 10) {
      size_t n = std::min(size_t{128} << 10, data.size() - off);
      Status s = r->ReadAt(off, n, got.data() + off);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    EXPECT_TRUE(got == data) << pass;
    ASSERT_TRUE(GetReadCacheStats(set.get(), &st[pass]));
  }
  EXPECT_EQ(st[0].blocks, 11u);
  EXPECT_GT(st[0].prefetched, 0u);
  EXPECT_EQ(st[0].misses + st[0].prefetched, 11u);  // each block fetched once
  EXPECT_EQ(st[1].misses, st[0].misses);            // the second pass: all cached
  EXPECT_EQ(st[1].prefetched, st[0].prefetched);
  EXPECT_EQ(st[1].hits - st[0].hits, (data.size() + (size_t{128} << 10) - 1) / (size_t{128} << 10));
}

// Last: it stops the OSD (and starts it again).
TEST_F(Cluster, StoppedOsdGivesATimelyErrorAndRecovers) {
  auto set = OpenSet(8192, 3);
  ASSERT_TRUE(set);
  std::unique_ptr<VolumeWriter> w;
  ASSERT_TRUE(set->Create(9, &w).ok());
  std::string data = Payload(20000, 9);
  ASSERT_TRUE(w->Append(data).ok());
  ASSERT_TRUE(w->Seal().ok());
  std::unique_ptr<VolumeReader> r;
  ASSERT_TRUE(set->Open(9, &r).ok());

  ASSERT_EQ(test::TestCeph::Run("osd-stop"), 0);
  auto t0 = std::chrono::steady_clock::now();
  std::string buf(20000, '\0');
  Status s = r->ReadAt(0, 20000, buf.data());
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.err(), ETIMEDOUT) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "no answer within 3 s: is the cluster up?"));
  EXPECT_LT(took, 10.0);
  EXPECT_GT(took, 2.0);
  std::unique_ptr<VolumeWriter> w2;
  t0 = std::chrono::steady_clock::now();
  s = set->Create(10, &w2);
  took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.err(), ETIMEDOUT) << s.ToString();
  EXPECT_LT(took, 10.0);

  // The OSD comes back: the same reader works again.
  ASSERT_EQ(test::TestCeph::Run("osd-start"), 0);
  s = r->ReadAt(0, 20000, buf.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(buf == data);
}

#endif  // OVERTIER_HAVE_RADOS

}  // namespace
}  // namespace overtier
