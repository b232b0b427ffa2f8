// Test helpers for import / export / commit: temporary stores, tars built
// with libarchive, and a path-keyed dump of an image's catalog rows (with
// content read back through ContentReader) to compare images field by
// field.
#ifndef OVERTIER_IMAGE_IO_TESTUTIL_H_
#define OVERTIER_IMAGE_IO_TESTUTIL_H_

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "image/image_format.h"
#include "image/tar_source.h"
#include "store/catalog.h"
#include "store/content_reader.h"
#include "store/store.h"

// TarSpec is filled with designated initializers naming only what matters.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace overtier::testing {

inline void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return remove(p); },
      64, FTW_DEPTH | FTW_PHYS);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/imageio-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { RemoveTree(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline std::unique_ptr<Store> NewStore(const std::string& path) {
  std::unique_ptr<Store> s;
  Status st = Store::Init(path, StoreInitOptions(), &s);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (s == nullptr && st.ok()) {
    st = Store::Open(path, StoreOpenOptions(), &s);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return s;
}

inline void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
}

// Writes data into the FIFO at path on a thread, once a reader has it
// open; join() once the reader is done. Opened for writing only after the
// reader: bytes written before (into a FIFO opened read-write, say) are
// thrown away when the writer closes first, and the reader's open then
// waits for ever. Gives up after 60 s without a reader; a reader that
// stops early ends the feeder (EPIPE; SIGPIPE is blocked on its thread).
inline std::thread FeedFifo(const std::string& path, std::string data) {
  return std::thread([path, data = std::move(data)] {
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    int fd = -1;
    for (int i = 0; i < 60000 && fd < 0; i++) {
      fd = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0 && errno != ENXIO) return;  // ENXIO: no reader yet
      if (fd < 0) usleep(1000);
    }
    if (fd < 0 || fcntl(fd, F_SETFL, 0) != 0) return;
    for (size_t done = 0; done < data.size();) {
      ssize_t n = write(fd, data.data() + done, data.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  });
}

// Standard input replaced, while this lives, by a pipe that a thread
// feeds with data. SIGPIPE is ignored meanwhile, so that a reader that
// stops early ends the feeder (EPIPE) instead of the test.
class PipedStdin {
 public:
  explicit PipedStdin(std::string data) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old_sigpipe_);
    saved_ = dup(0);
    int p[2];
    if (saved_ < 0 || pipe2(p, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "no pipe for standard input";
      return;
    }
    dup2(p[0], 0);
    close(p[0]);
    feeder_ = std::thread([w = p[1], data = std::move(data)] {
      for (size_t done = 0; done < data.size();) {
        ssize_t n = write(w, data.data() + done, data.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      close(w);
    });
  }
  ~PipedStdin() {
    if (saved_ >= 0) {
      dup2(saved_, 0);  // the pipe's last reader gone: the feeder ends
      close(saved_);
    }
    if (feeder_.joinable()) feeder_.join();
    sigaction(SIGPIPE, &old_sigpipe_, nullptr);
  }
  PipedStdin(const PipedStdin&) = delete;
  PipedStdin& operator=(const PipedStdin&) = delete;

 private:
  int saved_ = -1;
  std::thread feeder_;
  struct sigaction old_sigpipe_ {};
};

inline std::string ReadFile(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

// One tar entry to write.
struct TarSpec {
  std::string path;
  uint32_t mode = S_IFREG | 0644;  // type and permissions
  std::string data;                // regular files
  std::string symlink;
  std::string hardlink;
  uint64_t rdev = 0;
  uint32_t uid = 0, gid = 0;
  int64_t mtime_s = 1700000000;
  long mtime_ns = 0;
  std::map<std::string, std::string> xattrs;
};

// Writes a pax tar (filter: "none", "gzip", "zstd", "xz").
inline void WriteTar(const std::string& path, const std::vector<TarSpec>& specs,
                     const std::string& filter = "none") {
  ScopedUtf8Locale utf8;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  if (filter == "gzip") archive_write_add_filter_gzip(a);
  if (filter == "zstd") archive_write_add_filter_zstd(a);
  if (filter == "xz") archive_write_add_filter_xz(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  for (const TarSpec& s : specs) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, s.path.c_str());
    archive_entry_set_mode(e, s.mode);
    archive_entry_set_uid(e, s.uid);
    archive_entry_set_gid(e, s.gid);
    archive_entry_set_mtime(e, s.mtime_s, s.mtime_ns);
    if (!s.symlink.empty()) archive_entry_set_symlink(e, s.symlink.c_str());
    if (!s.hardlink.empty()) archive_entry_set_hardlink(e, s.hardlink.c_str());
    if (S_ISCHR(s.mode) || S_ISBLK(s.mode)) archive_entry_set_rdev(e, s.rdev);
    for (const auto& [k, v] : s.xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    int64_t size = S_ISREG(s.mode) && s.hardlink.empty() ? s.data.size() : 0;
    archive_entry_set_size(e, size);
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (!s.data.empty()) archive_write_data(a, s.data.data(), s.data.size());
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK) << archive_error_string(a);
  archive_write_free(a);
}

// An image as rows keyed by path ("/" root, "/a/b"), with content bytes.
struct DumpedNode {
  NodeRecord rec;  // content bfid zeroed
  uint64_t ino = 0;
  uint8_t dtype = 0;
  std::string content;
  std::string first_path;  // of the same inode (hard links)
};

struct DumpedImage {
  ImageRecord image;
  std::map<std::string, DumpedNode> nodes;
};

inline void DumpTree(Store* store, uint64_t id, uint64_t dir, const std::string& prefix,
                     ContentReader* reader, std::map<uint64_t, std::string>* seen,
                     DumpedImage* out) {
  std::vector<std::pair<std::string, DirentRecord>> entries;
  Status s = store->catalog()->ReadDir(id, dir, "", [&](std::string_view n, const DirentRecord& d) {
    entries.emplace_back(std::string(n), d);
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const auto& [name, d] : entries) {
    std::string path = prefix + "/" + name;
    DumpedNode dn;
    dn.ino = d.child_inode;
    dn.dtype = d.type;
    s = store->catalog()->GetNode(id, d.child_inode, &dn.rec);
    ASSERT_TRUE(s.ok()) << path << ": " << s.ToString();
    EXPECT_EQ(d.type, DirentTypeOf(dn.rec.mode)) << path;
    auto it = seen->find(d.child_inode);
    dn.first_path = it == seen->end() ? path : it->second;
    if (it == seen->end()) (*seen)[d.child_inode] = path;
    if (dn.rec.has_content) {
      FileRecord f;
      s = store->catalog()->GetFile(dn.rec.content, &f);
      ASSERT_TRUE(s.ok()) << path << ": " << s.ToString();
      EXPECT_EQ(f.size, dn.rec.size) << path;
      dn.content.resize(f.size);
      // Chunk by chunk (as export and the mount read).
      const uint64_t chunk = store->config().chunk_size;
      for (uint64_t off = 0; off < f.size;) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(f.size - off, chunk - off % chunk));
        size_t got = 0;
        s = reader->Read(dn.rec.content, f, off, want, dn.content.data() + off, &got, path);
        ASSERT_TRUE(s.ok()) << path << ": " << s.ToString();
        ASSERT_EQ(got, want) << path;
        off += got;
      }
      dn.rec.content = Bfid();
    }
    bool is_dir = S_ISDIR(dn.rec.mode);
    out->nodes[path] = dn;
    if (is_dir) DumpTree(store, id, d.child_inode, path, reader, seen, out);
  }
}

inline DumpedImage DumpImage(Store* store, const std::string& name) {
  DumpedImage out;
  Status s = store->catalog()->GetImage(name, &out.image);
  EXPECT_TRUE(s.ok()) << name << ": " << s.ToString();
  if (!s.ok()) return out;
  EXPECT_EQ(out.image.root_inode, kImageRootInode);
  ContentReader reader(store);
  DumpedNode root;
  root.ino = out.image.root_inode;
  s = store->catalog()->GetNode(out.image.image_id, root.ino, &root.rec);
  EXPECT_TRUE(s.ok()) << s.ToString();
  root.first_path = "/";
  out.nodes["/"] = root;
  std::map<uint64_t, std::string> seen;
  DumpTree(store, out.image.image_id, root.ino, "", &reader, &seen, &out);
  // Every node of the image is reachable, and link counts add up.
  std::map<uint64_t, uint32_t> names;
  for (const auto& [p, n] : out.nodes) names[n.ino]++;
  uint64_t count = 0;
  s = store->catalog()->ScanNodes(out.image.image_id, 0, [&](uint64_t ino, const NodeRecord& r) {
    count++;
    EXPECT_TRUE(names.count(ino)) << "unreachable inode " << ino;
    if (!S_ISDIR(r.mode)) {
      EXPECT_EQ(r.nlink, names[ino]) << "inode " << ino;
    }
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(count, names.size());
  return out;
}

// Field-by-field comparison (inode numbers and bfids aside).
inline void ExpectSameImage(const DumpedImage& a, const DumpedImage& b) {
  std::vector<std::string> pa, pb;
  for (const auto& [p, n] : a.nodes) pa.push_back(p);
  for (const auto& [p, n] : b.nodes) pb.push_back(p);
  ASSERT_EQ(pa, pb);
  for (const auto& [p, x] : a.nodes) {
    const DumpedNode& y = b.nodes.at(p);
    EXPECT_EQ(x.rec.mode, y.rec.mode) << p;
    EXPECT_EQ(x.rec.uid, y.rec.uid) << p;
    EXPECT_EQ(x.rec.gid, y.rec.gid) << p;
    EXPECT_EQ(x.rec.nlink, y.rec.nlink) << p;
    EXPECT_EQ(x.rec.size, y.rec.size) << p;
    EXPECT_EQ(x.rec.rdev, y.rec.rdev) << p;
    EXPECT_EQ(x.rec.atime_ns, y.rec.atime_ns) << p;
    EXPECT_EQ(x.rec.mtime_ns, y.rec.mtime_ns) << p;
    EXPECT_EQ(x.rec.ctime_ns, y.rec.ctime_ns) << p;
    EXPECT_EQ(x.rec.xattrs, y.rec.xattrs) << p;
    EXPECT_EQ(x.rec.symlink_target, y.rec.symlink_target) << p;
    EXPECT_EQ(x.rec.has_content, y.rec.has_content) << p;
    EXPECT_TRUE(x.content == y.content) << p << ": content differs";
    EXPECT_EQ(x.first_path, y.first_path) << p;
    EXPECT_EQ(x.dtype, y.dtype) << p;
  }
}

inline std::vector<std::string> ImageNames(Store* store) {
  std::vector<std::string> names;
  Status s = store->catalog()->ScanImages("", [&](std::string_view n, const ImageRecord&) {
    names.emplace_back(n);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return names;
}

}  // namespace overtier::testing

#endif  // OVERTIER_IMAGE_IO_TESTUTIL_H_
