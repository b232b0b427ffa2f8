#include "image/spool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "image/io_testutil.h"

namespace overtier {
namespace {

using testing::FeedFifo;
using testing::PipedStdin;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return s;
}

bool Empty(const std::string& dir) {
  return std::filesystem::directory_iterator(dir) == std::filesystem::directory_iterator();
}

TEST(SpooledSource, WhatIsReadOnlyOnceIsSpooled) {
  TempDir tmp;
  const std::string file = tmp.path() + "/f", fifo = tmp.path() + "/p";
  WriteFile(file, "x");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(SpooledSource::Needed("-"));
  EXPECT_TRUE(SpooledSource::Needed(fifo));
  EXPECT_TRUE(SpooledSource::Needed("/dev/null"));
  EXPECT_FALSE(SpooledSource::Needed(file));
  EXPECT_FALSE(SpooledSource::Needed(tmp.path()));
  EXPECT_FALSE(SpooledSource::Needed(tmp.path() + "/absent"));
  const std::string sock = tmp.path() + "/s";
  int sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sfd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock.c_str());
  ASSERT_EQ(bind(sfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_TRUE(SpooledSource::Needed(sock));
  close(sfd);
}

// A pipe's bytes, all of them, in a file that opens as often as needed and
// that no directory shows.
TEST(SpooledSource, ThePipeIsCopiedWhole) {
  TempDir tmp;
  const std::string fifo = tmp.path() + "/p", dir = tmp.path() + "/spool";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string data = Bytes(3 << 20);
  std::thread writer = FeedFifo(fifo, data);
  std::unique_ptr<SpooledSource> sp;
  std::vector<uint64_t> seen;
  Status s = SpooledSource::Spool(fifo, dir, &sp, [&](uint64_t n) { seen.push_back(n); });
  writer.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(sp->size(), data.size());
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), data.size()) << "progress reaches the whole copy";
  EXPECT_EQ(sp->shown(), fifo);
  EXPECT_TRUE(ReadFile(sp->path()) == data);
  EXPECT_TRUE(ReadFile(sp->path()) == data) << "a second open reads from the start";
  EXPECT_TRUE(Empty(dir));
  const std::string path = sp->path();
  sp.reset();
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0) << "the copy goes with the object";
}

TEST(SpooledSource, StandardInputIsNamedSo) {
  TempDir tmp;
  std::unique_ptr<SpooledSource> sp;
  Status s;
  {
    PipedStdin in("hello");
    s = SpooledSource::Spool("-", tmp.path(), &sp);
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(sp->path()), "hello");
  EXPECT_EQ(sp->shown(), "standard input");
  // Messages about the copy name the source instead.
  Status bad = Status::Corruption("tar '" + sp->path() + "': not an archive (" + sp->path() + ")");
  EXPECT_EQ(sp->Rename(bad).message(), "tar 'standard input': not an archive (standard input)");
  EXPECT_EQ(sp->Rename(bad).err(), EIO);
  EXPECT_TRUE(sp->Rename(Status::OK()).ok());
}

TEST(SpooledSource, ErrorsNameTheSource) {
  TempDir tmp;
  std::unique_ptr<SpooledSource> sp;
  Status s = SpooledSource::Spool(tmp.path() + "/absent", tmp.path(), &sp);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find("/absent"), std::string::npos) << s.ToString();
  s = SpooledSource::Spool("/dev/null", tmp.path() + "/no-such-dir", &sp);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find("no-such-dir"), std::string::npos) << s.ToString();
}

// A full disk: the copy fails naming the source and the disk's error, and
// leaves nothing on it.
TEST(SpooledSource, AFullDiskIsAnError) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a small tmpfs)";
  TempDir tmp;
  const std::string small = tmp.path() + "/small", fifo = tmp.path() + "/p";
  ASSERT_EQ(mkdir(small.c_str(), 0755), 0);
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  struct Unmounter {
    std::string dir;
    ~Unmounter() { umount2(dir.c_str(), MNT_DETACH); }
  } unmounter{small};
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // Write-only, so that the writer gets EPIPE (not SIGPIPE: ignored here)
  // once the copy gave up, instead of waiting for a reader for ever.
  struct sigaction ignore {
  }, old{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ignore, &old), 0);
  std::thread writer([fifo] {
    int fd = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    const std::string data = Bytes(3 << 20);
    for (size_t done = 0; fd >= 0 && done < data.size();) {
      ssize_t n = write(fd, data.data() + done, data.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (fd >= 0) close(fd);
  });
  std::unique_ptr<SpooledSource> sp;
  Status s = SpooledSource::Spool(fifo, small, &sp);
  writer.join();
  sigaction(SIGPIPE, &old, nullptr);
  EXPECT_EQ(s.err(), ENOSPC) << s.ToString();
  EXPECT_NE(s.message().find(fifo), std::string::npos) << s.ToString();
  EXPECT_TRUE(Empty(small));
  EXPECT_EQ(sp, nullptr);
}

}  // namespace
}  // namespace overtier
