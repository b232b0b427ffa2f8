// Test helper: writes an image's rows directly (Catalog::Batch +
// ContentWriter), following image/image_format.h, so that the view and the
// mount can be tested without the importer. Header-only; for tests.
#ifndef OVERTIER_IMAGE_VIEW_TESTUTIL_H_
#define OVERTIER_IMAGE_VIEW_TESTUTIL_H_

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "image/image_format.h"
#include "store/catalog.h"
#include "store/content_writer.h"
#include "store/store.h"

namespace overtier::test {

class ImageBuilder {
 public:
  ImageBuilder(Store* store, std::string name, uint64_t parent_image_id = 0)
      : store_(store), writer_(store), name_(std::move(name)), parent_(parent_image_id) {
    NodeRecord root;
    root.mode = S_IFDIR | 0755;
    root.size = kImageDirSize;
    root.atime_ns = root.mtime_ns = root.ctime_ns = 1'600'000'000'123'456'789;
    nodes_[kImageRootInode] = root;
  }

  // Adds a node under parent; returns its inode.
  uint64_t Add(uint64_t parent, const std::string& name, NodeRecord n) {
    uint64_t ino = next_++;
    if (S_ISDIR(n.mode) && n.size == 0) n.size = kImageDirSize;
    if (S_ISLNK(n.mode)) n.size = n.symlink_target.size();
    nodes_[ino] = std::move(n);
    dirents_.push_back({parent, name, ino});
    return ino;
  }
  uint64_t Dir(uint64_t parent, const std::string& name, uint32_t perm = 0755) {
    NodeRecord n = Base(S_IFDIR | perm);
    return Add(parent, name, n);
  }
  uint64_t File(uint64_t parent, const std::string& name, std::string_view data,
                uint32_t perm = 0644) {
    NodeRecord n = Base(S_IFREG | perm);
    n.size = data.size();
    if (!data.empty()) {
      writer_.BeginFile();
      Check(writer_.Write(0, data));
      FileRecord rec;
      Check(writer_.EndFile(data.size(), &rec));
      Check(RandomId(&n.content));
      n.has_content = true;
      files_.emplace_back(n.content, rec);
    }
    return Add(parent, name, n);
  }
  // A regular file of `size` bytes holding only `pieces` (offset -> data):
  // the rest are holes, extents absent from its files row.
  uint64_t SparseFile(uint64_t parent, const std::string& name, uint64_t size,
                      const std::map<uint64_t, std::string>& pieces, uint32_t perm = 0644) {
    NodeRecord n = Base(S_IFREG | perm);
    n.size = size;
    writer_.BeginFile();
    for (const auto& [off, data] : pieces) Check(writer_.Write(off, data));
    FileRecord rec;
    Check(writer_.EndFile(size, &rec));
    Check(RandomId(&n.content));
    n.has_content = true;
    files_.emplace_back(n.content, rec);
    return Add(parent, name, n);
  }
  uint64_t Symlink(uint64_t parent, const std::string& name, const std::string& target) {
    NodeRecord n = Base(S_IFLNK | 0777);
    n.symlink_target = target;
    return Add(parent, name, n);
  }
  uint64_t Whiteout(uint64_t parent, const std::string& name) {
    return Add(parent, name, Base(S_IFCHR | 0000));
  }
  // Another name for an existing inode.
  void Link(uint64_t parent, const std::string& name, uint64_t ino) {
    dirents_.push_back({parent, name, ino});
  }
  NodeRecord& node(uint64_t ino) { return nodes_[ino]; }

  // Writes everything, the images row last. *image_id: the id allocated.
  Status Commit(uint64_t* image_id = nullptr) {
    OVT_RETURN_IF_ERROR(status_);
    uint64_t id;
    OVT_RETURN_IF_ERROR(store_->catalog()->AllocateIds(IdSpace::kImage, 1, &id));
    // Link counts as image_format.h defines them.
    for (auto& [ino, n] : nodes_) n.nlink = S_ISDIR(n.mode) ? 2 : 0;
    for (const auto& d : dirents_) {
      NodeRecord& c = nodes_[d.ino];
      if (S_ISDIR(c.mode)) {
        nodes_[d.parent].nlink++;
      } else {
        c.nlink++;
      }
    }
    Catalog::Batch b(store_->catalog());
    OVT_RETURN_IF_ERROR(writer_.Finish(&b));
    for (const auto& [bfid, rec] : files_) b.PutFile(bfid, rec);
    for (const auto& [ino, n] : nodes_) b.PutNode(id, ino, n);
    for (const auto& d : dirents_)
      b.PutDirent(id, d.parent, d.name, DirentRecord{d.ino, DirentTypeOf(nodes_[d.ino].mode)});
    OVT_RETURN_IF_ERROR(b.Commit());
    ImageRecord r;
    r.image_id = id;
    r.root_inode = kImageRootInode;
    r.parent_image_id = parent_;
    r.created_ns = 1;
    b.PutImage(name_, r);
    OVT_RETURN_IF_ERROR(b.Commit());
    if (image_id != nullptr) *image_id = id;
    return Status::OK();
  }

  // Adds the tree under directory fd `dir` (its entries, recursively) below
  // parent: types, modes, owners, ns times, xattrs, hard links, devices.
  Status AddTree(int dir, uint64_t parent) {
    int dup_fd = dup(dir);
    DIR* d = fdopendir(dup_fd);
    if (d == nullptr) return Status::FromErrno("fdopendir");
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    for (const auto& name : names) {
      struct stat st;
      if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return Status::FromErrno("stat " + name);
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto it = links_.find({st.st_dev, st.st_ino});
        if (it != links_.end()) {
          Link(parent, name, it->second);
          continue;
        }
      }
      NodeRecord n = FromStat(st);
      int fd = openat(dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Status::FromErrno("open " + name);
      Status s = ReadXattrs(fd, S_ISLNK(st.st_mode), &n);
      uint64_t ino = 0;
      if (s.ok() && S_ISLNK(st.st_mode)) {
        std::string t(4096, '\0');
        ssize_t len = readlinkat(dir, name.c_str(), t.data(), t.size());
        if (len < 0) s = Status::FromErrno("readlink " + name);
        t.resize(len < 0 ? 0 : len);
        n.symlink_target = t;
      }
      if (s.ok() && S_ISREG(st.st_mode) && st.st_size > 0) {
        int rfd = openat(dir, name.c_str(), O_RDONLY | O_CLOEXEC);
        if (rfd < 0) {
          s = Status::FromErrno("open " + name);
        } else {
          FileRecord rec;
          s = writer_.WriteFd(rfd, st.st_size, &rec);
          close(rfd);
          if (s.ok()) s = RandomId(&n.content);
          n.has_content = true;
          files_.emplace_back(n.content, rec);
        }
      }
      if (s.ok()) {
        ino = Add(parent, name, n);
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) links_[{st.st_dev, st.st_ino}] = ino;
        if (S_ISDIR(st.st_mode)) {
          int sub = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (sub < 0) {
            s = Status::FromErrno("open " + name);
          } else {
            s = AddTree(sub, ino);
            close(sub);
          }
        }
      }
      close(fd);
      OVT_RETURN_IF_ERROR(s);
    }
    return Status::OK();
  }

  // The root directory takes the attributes of `dir` too.
  Status AddRootAttrs(int dir) {
    struct stat st;
    if (fstat(dir, &st) != 0) return Status::FromErrno("stat root");
    NodeRecord n = FromStat(st);
    OVT_RETURN_IF_ERROR(ReadXattrs(dir, false, &n));
    nodes_[kImageRootInode] = n;
    return Status::OK();
  }

 private:
  struct Dirent {
    uint64_t parent;
    std::string name;
    uint64_t ino;
  };

  static NodeRecord Base(uint32_t mode) {
    NodeRecord n;
    n.mode = mode;
    n.uid = 1000;
    n.gid = 100;
    n.atime_ns = 1'700'000'000'000'000'001;
    n.mtime_ns = 1'700'000'000'000'000'002;
    n.ctime_ns = 1'700'000'000'000'000'003;
    return n;
  }

  static NodeRecord FromStat(const struct stat& st) {
    NodeRecord n;
    n.mode = st.st_mode;
    n.uid = st.st_uid;
    n.gid = st.st_gid;
    n.size = S_ISREG(st.st_mode) ? st.st_size : 0;
    if (S_ISDIR(st.st_mode)) n.size = kImageDirSize;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) n.rdev = st.st_rdev;
    auto ns = [](const struct timespec& t) {
      return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
    };
    n.atime_ns = ns(st.st_atim);
    n.mtime_ns = ns(st.st_mtim);
    n.ctime_ns = ns(st.st_ctim);
    return n;
  }

  static Status ReadXattrs(int fd, bool symlink, NodeRecord* n) {
    // O_PATH fds take no f*xattr calls: go through /proc.
    std::string p = "/proc/self/fd/" + std::to_string(fd);
    std::string names(65536, '\0');
    ssize_t len = llistxattr(p.c_str(), names.data(), names.size());
    if (len < 0) return errno == ENOTSUP ? Status::OK() : Status::FromErrno("listxattr");
    for (size_t i = 0; i < static_cast<size_t>(len);) {
      std::string name(names.c_str() + i);
      i += name.size() + 1;
      std::string v(65536, '\0');
      ssize_t m = lgetxattr(p.c_str(), name.c_str(), v.data(), v.size());
      if (m < 0) return Status::FromErrno("getxattr " + name);
      v.resize(m);
      n->xattrs[name] = v;
    }
    (void)symlink;
    return Status::OK();
  }

  void Check(const Status& s) {
    if (status_.ok() && !s.ok()) status_ = s;
  }

  Store* store_;
  ContentWriter writer_;
  std::string name_;
  uint64_t parent_;
  uint64_t next_ = kImageRootInode + 1;
  std::map<uint64_t, NodeRecord> nodes_;
  std::vector<Dirent> dirents_;
  std::vector<std::pair<Bfid, FileRecord>> files_;
  std::map<std::pair<dev_t, ino_t>, uint64_t> links_;
  Status status_;
};

}  // namespace overtier::test

#endif  // OVERTIER_IMAGE_VIEW_TESTUTIL_H_
