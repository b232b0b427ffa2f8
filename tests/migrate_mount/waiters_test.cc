// Readers of released files through the mount, as issue 4 asks: answered
// progressively (a reader of the last MiB before the whole file is back),
// one restore however many readers, EINTR on a signal, EIO when every copy
// is unreadable and success on retry, fallback to the second copy, and
// rename, unlink and hard links while a restore runs.
//
// Tests that need a reader to stay parked slow the daemon's disk reads down
// (slow_disk.h: a blkio cgroup, no hook in the daemon) and skip where the
// machine cannot.
#include <pthread.h>

#include <cctype>
#include <future>
#include <map>

#include "mount_fixture.h"
#include "slow_disk.h"

namespace overtier {
namespace {

// Bytes the process `pid` (all its threads) caused to be read from disks.
int64_t DiskReadBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  int64_t v;
  while (in >> key >> v) {
    if (key == "read_bytes:") return v;
  }
  return -1;
}

uint64_t UpperAllocated(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

// Regular files under dir (the container pieces of a volume set).
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) out.push_back(it->path().string());
  }
  return out;
}

// Flips one byte in every 4 KiB of each file's middle (not its first and
// last 64 KiB: container headers stay readable, so what fails is the
// chunks' checksums), in place (the daemon may hold the files open).
void Corrupt(const std::vector<std::string>& files) {
  for (const std::string& f : files) {
    int fd = open(f.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << f;
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    for (off_t off = 64 * 1024; off + 64 * 1024 < st.st_size; off += 4096) {
      char c;
      ASSERT_EQ(pread(fd, &c, 1, off), 1);
      c = static_cast<char>(~c);
      ASSERT_EQ(pwrite(fd, &c, 1, off), 1);
    }
    fsync(fd);
    close(fd);
  }
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void NoteSignal(int) {}

// A pread on its own thread, with SIGUSR1 handled without SA_RESTART, so
// that the test can interrupt it.
class Reader {
 public:
  // flags: added to O_RDONLY (O_DIRECT: see SignalEndsTheWaitWithEintr).
  Reader(const std::string& path, uint64_t offset, size_t n, int flags = 0) : buf_(n, '\0') {
    struct sigaction sa {};
    sa.sa_handler = NoteSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    sigaction(SIGUSR1, &sa, nullptr);
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
    open_errno_ = fd_ < 0 ? errno : 0;
    started_ = Clock::now();
    thread_ = std::thread([this, offset] {
      tid_.set_value(pthread_self());
      if (fd_ < 0) {
        done_ = true;
        return;
      }
      ssize_t r = pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(offset));
      err_ = r < 0 ? errno : 0;
      rc_ = r;
      ended_ = Clock::now();
      done_ = true;
    });
    thread_id_ = tid_.get_future().get();
  }
  ~Reader() { Join(); }

  int open_errno() const { return open_errno_; }
  bool done() const { return done_.load(); }
  bool WaitDone(std::chrono::milliseconds timeout) {
    return PollUntil([this] { return done(); }, timeout);
  }
  void Interrupt() { pthread_kill(thread_id_, SIGUSR1); }
  void Join() {
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  ssize_t rc() const { return rc_; }
  int err() const { return err_; }
  const std::string& data() const { return buf_; }
  double seconds() const { return std::chrono::duration<double>(ended_ - started_).count(); }

 private:
  std::string buf_;
  int fd_ = -1, open_errno_ = 0;
  std::promise<pthread_t> tid_;
  pthread_t thread_id_{};
  std::thread thread_;
  std::atomic<bool> done_{false};
  ssize_t rc_ = 0;
  int err_ = 0;
  Clock::time_point started_, ended_;
};

class WaitersTest : public MigrateMountTest {
 protected:
  void TearDown() override {
    slow_.Stop();
    MigrateMountTest::TearDown();
  }

  // Slows the daemon's disk reads to bytes_per_s and drops the containers
  // from the cache; skips the test where the machine cannot.
  void SlowRestores(uint64_t bytes_per_s) {
    WaitStoreIdle();  // containers sealed and closed
    std::string why;
    if (!slow_.Start(store_, DaemonPid(), bytes_per_s, &why)) {
      GTEST_SKIP() << "cannot slow the restore on this machine (" << why
                   << "); a restorer test hook (delay per piece) would avoid this";
    }
    SlowDisk::Evict(store_ + "/volumes");
  }

  bool ArchivedAgain(const std::string& name, std::chrono::seconds timeout) {
    return PollUntil([&] { return StateXattr(M(name)).starts_with("archived"); }, timeout);
  }

  SlowDisk slow_;
};

// The reader of the last MiB of a released 256 MiB file is answered with
// its data while most of the file is still not back.
TEST_F(WaitersTest, ReaderOfTheLastMiBIsAnsweredBeforeTheWholeFileIsBack) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const uint64_t size = 256 * kMiB;
  const std::string data = Payload(size, 21);
  MakeFile("big", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("big"));
  ASSERT_LT(UpperAllocated(B("upper/big")), kMiB) << "released: the upper file is sparse";
  // Not needed for correctness, but it keeps the rest of the restore well
  // behind the reader on a fast disk (64 MiB/s: 4 s for the file).
  std::string why;
  WaitStoreIdle();
  bool slow = slow_.Start(store_, DaemonPid(), 64 * kMiB, &why);
  if (slow) SlowDisk::Evict(store_ + "/volumes");

  int fd = open(M("big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf(kMiB, '\0');
  auto t0 = Clock::now();
  ASSERT_EQ(pread(fd, buf.data(), buf.size(), size - kMiB), static_cast<ssize_t>(kMiB));
  double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  // At the moment the read returned: how much of the file is back, by the
  // upper file itself (restored bytes are written there) and by the state.
  const uint64_t allocated = UpperAllocated(B("upper/big"));
  overtier_ctl_state st;
  ASSERT_EQ(GetState(M("big"), &st), 0);
  EXPECT_TRUE(buf == data.substr(size - kMiB)) << "wrong bytes for the last MiB";
  EXPECT_LT(allocated, size / 2) << "the reader was answered only after " << allocated
                                 << " bytes were back (waited " << waited << " s)";
  EXPECT_EQ(st.state, OVERTIER_STATE_RELEASED) << StateXattr(M("big"));
  EXPECT_LT(st.resident_bytes, size);
  std::fprintf(stderr, "last MiB after %.3f s with %llu of %llu bytes back (slow disk: %s)\n",
               waited, static_cast<unsigned long long>(allocated),
               static_cast<unsigned long long>(size), slow ? "yes" : why.c_str());
  close(fd);
  // Then the rest follows in the background.
  slow_.Stop();
  EXPECT_TRUE(ArchivedAgain("big", std::chrono::seconds(90))) << StateXattr(M("big"));
  EXPECT_TRUE(ReadFile(B("upper/big")) == data);
  Unmount();
}

// Eight readers wait on one released file at once: all get the right
// bytes, and the daemon reads the archive from disk about once (a restore
// per reader would read it eight times).
TEST_F(WaitersTest, ManyReadersOneRestore) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  // Larger than the reader's chunk cache (64 MiB), so a second restore
  // would have to go to the disk again.
  const uint64_t size = 96 * kMiB;
  const std::string data = Payload(size, 22);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(SlowRestores(32 * kMiB));  // about 3 s for the file
  if (IsSkipped()) return;
  const pid_t daemon = DaemonPid();
  const int64_t read_before = DiskReadBytes(daemon);
  ASSERT_GE(read_before, 0);

  constexpr int kReaders = 8;
  std::atomic<int> good{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; i++) {
    readers.emplace_back([&, i] {
      int fd = open(M("f").c_str(), O_RDONLY);
      if (fd < 0) return;
      std::string got(size, '\0');
      const uint64_t start = i * size / kReaders / kMiB * kMiB;  // each from its own place
      bool ok = true;
      for (uint64_t done = 0; done < size && ok;) {
        uint64_t off = (start + done) % size;
        size_t n = std::min<uint64_t>(kMiB, size - off);
        ok = pread(fd, got.data() + off, n, static_cast<off_t>(off)) == static_cast<ssize_t>(n);
        done += n;
      }
      close(fd);
      if (ok && got == data) good++;
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(good.load(), kReaders);
  EXPECT_TRUE(ArchivedAgain("f", std::chrono::seconds(60))) << StateXattr(M("f"));
  const int64_t read = DiskReadBytes(daemon) - read_before;
  std::fprintf(stderr, "%d readers: the daemon read %lld bytes from disk for a %llu-byte file\n",
               kReaders, static_cast<long long>(read), static_cast<unsigned long long>(size));
  EXPECT_GE(read, static_cast<int64_t>(size / 2)) << "the archive was not read from the disk: "
                                                     "this check sees nothing";
  EXPECT_LT(read, static_cast<int64_t>(size + size / 2)) << "more than one restore ran";
  overtier_ctl_state st;
  ASSERT_EQ(GetState(M("f"), &st), 0);
  EXPECT_GT(st.restore_time_ns, 0);
  Unmount();
}

// A reader parked on a slow restore gets EINTR when a signal (handler
// without SA_RESTART) arrives, at once; the restore goes on and the mount
// keeps working.
//
// O_DIRECT: a buffered read of a FUSE file is served by the kernel's
// readahead, whose requests are asynchronous (FUSE_CAP_ASYNC_READ): the
// reader sleeps on a page lock that only a fatal signal breaks, so no
// handled signal can make it return EINTR, whatever the daemon does. A
// direct read is a synchronous request: the kernel sends FUSE_INTERRUPT and
// the daemon's answer (EINTR) is what the reader gets. The buffered case,
// Ctrl-C with its default action, is CtrlCEndsABufferedReaderAtOnce.
TEST_F(WaitersTest, SignalEndsTheWaitWithEintr) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const uint64_t size = 32 * kMiB;
  const std::string data = Payload(size, 23);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  // 256 KiB/s: the reader's first piece (1 MiB, plus readahead) takes
  // seconds.
  ASSERT_NO_FATAL_FAILURE(SlowRestores(256 * 1024));
  if (IsSkipped()) return;
  Reader r(M("f"), 16 * kMiB, 128 * 1024, O_DIRECT);
  ASSERT_EQ(r.open_errno(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_FALSE(r.done()) << "the read was answered before the signal: the restore was not slow";
  auto t0 = Clock::now();
  r.Interrupt();
  EXPECT_TRUE(r.WaitDone(std::chrono::seconds(2))) << "no answer within 2 s of the signal";
  r.Join();
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.rc(), -1);
  EXPECT_EQ(r.err(), EINTR) << strerror(r.err()) << " after " << took << " s";
  // The mount keeps working: at full speed, everything reads back.
  slow_.Stop();
  EXPECT_TRUE(ReadFile(M("f")) == data);
  EXPECT_TRUE(ArchivedAgain("f", std::chrono::seconds(30))) << StateXattr(M("f"));
  Unmount();
}

// Ctrl-C (SIGINT, default action) on a process blocked in a buffered read
// of a released file ends it at once, while the restore is slow.
TEST_F(WaitersTest, CtrlCEndsABufferedReaderAtOnce) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const uint64_t size = 32 * kMiB;
  const std::string data = Payload(size, 30);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(SlowRestores(256 * 1024));
  if (IsSkipped()) return;
  const std::string path = M("f");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGINT, SIG_DFL);
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) _exit(2);
    std::string buf(kMiB, '\0');
    ssize_t r = pread(fd, buf.data(), buf.size(), 20 * kMiB);
    _exit(r == static_cast<ssize_t>(kMiB) ? 0 : 3);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int status = 0;
  bool early = waitpid(child, &status, WNOHANG) == child;
  EXPECT_FALSE(early) << "the read was answered before the signal: the restore was not slow";
  if (!early) {
    kill(child, SIGINT);
    bool gone = PollUntil([&] { return waitpid(child, &status, WNOHANG) == child; },
                          std::chrono::seconds(2));
    EXPECT_TRUE(gone) << "the reader did not die within 2 s of SIGINT";
    if (!gone) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
    }
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << "status " << status;
  }
  slow_.Stop();
  EXPECT_TRUE(ReadFile(M("f")) == data);
  EXPECT_TRUE(ArchivedAgain("f", std::chrono::seconds(30))) << StateXattr(M("f"));
  Unmount();
}

// A reader waiting because the store is busy (another process holds its
// write lock, as `overtier image import` does) is also interruptible
// (O_DIRECT: see above).
TEST_F(WaitersTest, SignalEndsAWaitForTheStoreWithEintr) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(4 * kMiB, 24);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  WaitStoreIdle();
  std::unique_ptr<Store> busy;
  Status s = Store::Open(store_, StoreOpenOptions{}, &busy);
  ASSERT_TRUE(s.ok()) << s.ToString();
  Reader r(M("f"), 2 * kMiB, 4096, O_DIRECT);
  ASSERT_EQ(r.open_errno(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(r.done()) << "answered while the store was locked: rc " << r.rc();
  r.Interrupt();
  bool prompt = r.WaitDone(std::chrono::seconds(2));
  EXPECT_TRUE(prompt) << "the interrupted reader is still waiting for the store lock "
                         "(MigrationService::CancelWait only marks a wait whose restore is not "
                         "registered yet; it is answered once the store opens)";
  busy.reset();  // lets the daemon open the store (and answers the reader if not yet)
  ASSERT_TRUE(r.WaitDone(std::chrono::seconds(20)));
  r.Join();
  EXPECT_EQ(r.rc(), -1);
  EXPECT_EQ(r.err(), EINTR) << strerror(r.err());
  EXPECT_TRUE(ReadFile(M("f")) == data);
  Unmount();
}

// Two copies in two volume sets: with one copy corrupt, reads still return
// the right bytes (and the corrupt copy is reported); with both corrupt, EIO
// and the file stays released; repaired, the next read succeeds.
TEST_F(WaitersTest, SecondCopyServesReadsWhenTheFirstIsCorrupt) {
  MakeDirs(B("va"));
  MakeDirs(B("vb"));
  ASSERT_NO_FATAL_FAILURE(
      ReinitStore({"--volume-set", "a=" + B("va"), "--volume-set", "b=" + B("vb")}));
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string f = Payload(3 * kMiB, 25), g = Payload(2 * kMiB + 777, 26);
  MakeFile("f", f);
  MakeFile("g", g);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("g"));
  WaitStoreIdle();
  const std::vector<std::string> a = FilesUnder(B("va")), b = FilesUnder(B("vb"));
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  std::map<std::string, std::string> saved;
  for (const auto& p : a) saved[p] = ReadFile(p);
  for (const auto& p : b) saved[p] = ReadFile(p);

  ASSERT_NO_FATAL_FAILURE(Corrupt(a));
  EXPECT_TRUE(ReadFile(M("f")) == f) << "one corrupt copy: the other must serve the read";
  EXPECT_TRUE(ArchivedAgain("f", std::chrono::seconds(30))) << StateXattr(M("f"));
  const std::string log = Lower(Slurp(log_));
  EXPECT_TRUE(log.find("checksum") != std::string::npos || log.find("corrupt") != std::string::npos)
      << "the corrupt copy in set a is not reported (issue 4: 'a corrupt copy falls back to "
         "the other copy and is reported'); daemon log:\n"
      << log;
  // ... and written again from the good copy into a new container of set
  // a: with set b corrupt too (below), f still reads.
  EXPECT_TRUE(log.find("written again from another copy") != std::string::npos) << log;
  ASSERT_EQ(Ctl(M("f"), OVERTIER_IOC_RELEASE, 0, 0), 0) << Slurp(log_);

  ASSERT_NO_FATAL_FAILURE(Corrupt(b));
  EXPECT_TRUE(ReadFile(M("f")) == f) << "the repaired copy in set a serves the read";
  int fd = open(M("g").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_EQ(pread(fd, &c, 1, kMiB), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_TRUE(StateXattr(M("g")).starts_with("released")) << StateXattr(M("g"));

  for (const auto& [p, bytes] : saved) it::WriteFile(p, bytes);
  std::string got(g.size(), '\0');
  EXPECT_EQ(pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(g.size()));
  EXPECT_TRUE(got == g) << "the retry after the repair returns other bytes";
  close(fd);
  EXPECT_TRUE(ArchivedAgain("g", std::chrono::seconds(30))) << StateXattr(M("g"));
  Unmount();
  std::string out;
  EXPECT_EQ(RunCmd({OvertierBin(), "fsck", store_}, &out), 0) << out;
}

// A released file renamed while a reader waits on its restore: the reader
// gets its bytes, the new name is the restored file.
TEST_F(WaitersTest, RenameDuringARestore) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const uint64_t size = 16 * kMiB;
  const std::string data = Payload(size, 27);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(SlowRestores(2 * kMiB));
  if (IsSkipped()) return;
  Reader r(M("f"), 12 * kMiB, 1 * kMiB);
  ASSERT_EQ(r.open_errno(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(r.done()) << "answered before the rename: the restore was not slow";
  ASSERT_EQ(rename(M("f").c_str(), M("g").c_str()), 0) << strerror(errno);
  ASSERT_TRUE(r.WaitDone(std::chrono::seconds(60)));
  r.Join();
  EXPECT_EQ(r.rc(), static_cast<ssize_t>(kMiB)) << strerror(r.err());
  EXPECT_TRUE(r.data() == data.substr(12 * kMiB, kMiB));
  slow_.Stop();
  EXPECT_TRUE(ArchivedAgain("g", std::chrono::seconds(60))) << StateXattr(M("g"));
  EXPECT_TRUE(ReadFile(M("g")) == data);
  EXPECT_FALSE(it::Exists(M("f")));
  Unmount();
}

// The last link of a released file unlinked while a reader (holding it
// open) waits on its restore: the reader gets its bytes, and once the file
// is gone the catalog keeps no record of it (its archive is free for gc).
TEST_F(WaitersTest, UnlinkDuringARestore) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const uint64_t size = 16 * kMiB;
  const std::string data = Payload(size, 28);
  MakeFile("f", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("f"));
  ASSERT_NO_FATAL_FAILURE(SlowRestores(2 * kMiB));
  if (IsSkipped()) return;
  {
    Reader r(M("f"), 8 * kMiB, 1 * kMiB);
    ASSERT_EQ(r.open_errno(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(r.done()) << "answered before the unlink: the restore was not slow";
    ASSERT_EQ(unlink(M("f").c_str()), 0) << strerror(errno);
    ASSERT_TRUE(r.WaitDone(std::chrono::seconds(60)));
    r.Join();  // closes the file: it is gone now
    EXPECT_EQ(r.rc(), static_cast<ssize_t>(kMiB)) << strerror(r.err());
    EXPECT_TRUE(r.data() == data.substr(8 * kMiB, kMiB));
  }
  slow_.Stop();
  // The background restore of the rest ends (or is dropped); the session
  // closes.
  std::this_thread::sleep_for(std::chrono::seconds(10));
  Unmount();
  std::unique_ptr<Store> st;
  StoreOpenOptions so;
  so.read_only = true;
  Status s = Store::Open(store_, so, &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::vector<std::string> left;
  ASSERT_TRUE(st->catalog()
                  ->ScanMigration("",
                                  [&](std::string_view key, const MigrationRecord& r) {
                                    std::string hex;
                                    char h[3];
                                    for (unsigned char c : key) {
                                      std::snprintf(h, sizeof(h), "%02x", c);
                                      hex += h;
                                    }
                                    left.push_back("key " + hex + " flags " +
                                                   std::to_string(r.flags));
                                    return true;
                                  })
                  .ok());
  EXPECT_TRUE(left.empty()) << "the unlinked file's record came back (the restore job committed "
                               "it after Unlinked deleted it): "
                            << left[0];
}

// A released file with two names: read through the other name, both names
// see the restore.
TEST_F(WaitersTest, HardLinkOfAReleasedFileReadsThroughTheOtherName) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = Payload(6 * kMiB + 5, 29);
  MakeFile("b", data);
  ASSERT_NO_FATAL_FAILURE(ArchiveRelease("b"));
  ASSERT_EQ(link(M("b").c_str(), M("b2").c_str()), 0) << strerror(errno);
  EXPECT_TRUE(StateXattr(M("b2")).starts_with("released")) << StateXattr(M("b2"));
  struct stat s1, s2;
  ASSERT_EQ(stat(M("b").c_str(), &s1), 0);
  ASSERT_EQ(stat(M("b2").c_str(), &s2), 0);
  EXPECT_EQ(s1.st_ino, s2.st_ino);
  EXPECT_EQ(s2.st_nlink, 2u);
  EXPECT_EQ(s2.st_size, static_cast<off_t>(data.size()));
  EXPECT_TRUE(ReadFile(M("b2")) == data);
  EXPECT_TRUE(ArchivedAgain("b", std::chrono::seconds(30))) << StateXattr(M("b"));
  EXPECT_TRUE(StateXattr(M("b2")).starts_with("archived")) << StateXattr(M("b2"));
  EXPECT_TRUE(ReadFile(M("b")) == data);
  Unmount();
}

}  // namespace
}  // namespace overtier
