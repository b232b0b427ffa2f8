// The image file system's in-process tree (ImageFs::Tree, union/layer.h's
// ServedTree) must answer exactly as the mount does: the union mixes the two
// ways of reaching an image object (a lookup through the tree, then an fd
// opened by the handle the tree made), and inode numbers, stats and
// handles from either must agree. Every object of an image with every kind
// of node is compared. Mounts the image file system: needs root.
#include "src/image_fuse.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "image/image_format.h"
#include "image/view_testutil.h"
#include "store/vv_testutil.h"

namespace overtier {
namespace {

using test::ImageBuilder;
using test::TempDir;

// What fstat through the mount gives and the tree must give too (st_dev
// included: the tree reports the mount's).
void ExpectSameStat(const struct stat& a, const struct stat& b, const std::string& what) {
  EXPECT_EQ(a.st_dev, b.st_dev) << what;
  EXPECT_EQ(a.st_ino, b.st_ino) << what;
  EXPECT_EQ(a.st_mode, b.st_mode) << what;
  EXPECT_EQ(a.st_nlink, b.st_nlink) << what;
  EXPECT_EQ(a.st_uid, b.st_uid) << what;
  EXPECT_EQ(a.st_gid, b.st_gid) << what;
  EXPECT_EQ(a.st_rdev, b.st_rdev) << what;
  EXPECT_EQ(a.st_size, b.st_size) << what;
  EXPECT_EQ(a.st_blocks, b.st_blocks) << what;
  EXPECT_EQ(a.st_blksize, b.st_blksize) << what;
  EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec) << what;
  EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec) << what;
  EXPECT_EQ(a.st_ctim.tv_sec, b.st_ctim.tv_sec) << what;
  EXPECT_EQ(a.st_ctim.tv_nsec, b.st_ctim.tv_nsec) << what;
  EXPECT_EQ(a.st_atim.tv_sec, b.st_atim.tv_sec) << what;
  EXPECT_EQ(a.st_atim.tv_nsec, b.st_atim.tv_nsec) << what;
}

std::string Handle(int dirfd, const char* name) {
  std::string h;
  EXPECT_TRUE(GetHandle(dirfd, name, &h).ok()) << name;
  return h;
}

std::map<std::string, unsigned char> ListFd(int dirfd) {
  std::map<std::string, unsigned char> out;
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = fdopendir(fd);
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out[n] = e->d_type;
  }
  closedir(d);
  return out;
}

class ImageTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0)
      GTEST_SKIP() << "needs root and /dev/fuse (mounts the image file system)";
    StoreInitOptions o;
    o.chunk_size = 64 << 10;
    Status s = Store::Init(dir_.path() + "/store", o, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (fs_) fs_->Stop();
  }

  // Mounts the file system serving `name`; the top layer's root fd.
  int Mount(const std::string& name) {
    Status s = ImageFs::Create(store_.get(), &fs_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::vector<ImageLayer> layers;
    s = fs_->AddImage(name, &layers);
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = fs_->Mount(false);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok() || layers.empty()) return -1;
    return fs_->LayerRootFd(layers[0].image_id);
  }

  // Compares the tree with the mount below directory dirfd (inode dino).
  void CompareDir(ServedTree* tree, int dirfd, uint64_t dino, const std::string& path) {
    std::map<std::string, unsigned char> via_tree;
    Status s = tree->ReadDir(dino, [&](const char* name, uint64_t ino, unsigned char type) {
      via_tree[name] = type;
      struct stat st;
      EXPECT_EQ(fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW), 0) << path << name;
      EXPECT_EQ(st.st_ino, ino) << path << name;
      return Status::OK();
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(via_tree, ListFd(dirfd)) << path;
    for (const auto& [name, type] : via_tree) {
      const std::string what = path + name;
      ++compared_;
      struct stat mst, tst;
      ASSERT_EQ(fstatat(dirfd, name.c_str(), &mst, AT_SYMLINK_NOFOLLOW), 0) << what;
      s = tree->Lookup(dino, name, &tst);
      ASSERT_TRUE(s.ok()) << what << ": " << s.ToString();
      ExpectSameStat(mst, tst, what + " (lookup)");
      s = tree->Stat(tst.st_ino, &tst);
      ASSERT_TRUE(s.ok()) << what << ": " << s.ToString();
      ExpectSameStat(mst, tst, what + " (stat)");
      // The handle the tree makes is the kernel's, and opens the object.
      const std::string h = tree->Handle(tst.st_ino);
      EXPECT_EQ(h, Handle(dirfd, name.c_str())) << what;
      std::string hb = h;
      int hfd = open_by_handle_at(dirfd, reinterpret_cast<struct file_handle*>(hb.data()),
                                  O_PATH | O_CLOEXEC);
      ASSERT_GE(hfd, 0) << what << ": " << strerror(errno);
      struct stat hst;
      ASSERT_EQ(fstat(hfd, &hst), 0);
      EXPECT_EQ(hst.st_ino, mst.st_ino) << what;
      close(hfd);
      if (S_ISLNK(mst.st_mode)) {
        char buf[4096];
        ssize_t n = readlinkat(dirfd, name.c_str(), buf, sizeof(buf));
        ASSERT_GE(n, 0) << what;
        std::string target;
        ASSERT_TRUE(tree->ReadLink(tst.st_ino, &target).ok()) << what;
        EXPECT_EQ(target, std::string(buf, n)) << what;
      }
      if (S_ISLNK(mst.st_mode)) continue;
      int fd = openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      ASSERT_GE(fd, 0) << what;
      for (const char* x : {"trusted.overlay.opaque", "user.note", "trusted.absent"}) {
        char buf[256];
        ssize_t n = getxattr(("/proc/self/fd/" + std::to_string(fd)).c_str(), x, buf, sizeof(buf));
        std::string v;
        bool present = true;
        ASSERT_TRUE(tree->GetXattr(tst.st_ino, x, &v, &present).ok()) << what << " " << x;
        EXPECT_EQ(present, n >= 0) << what << " " << x;
        if (n >= 0) {
          EXPECT_EQ(v, std::string(buf, n)) << what << " " << x;
        }
      }
      close(fd);
      if (S_ISDIR(mst.st_mode)) {
        int sub = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        ASSERT_GE(sub, 0) << what;
        CompareDir(tree, sub, tst.st_ino, what + "/");
        close(sub);
      }
    }
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ImageFs> fs_;
  int compared_ = 0;
};

TEST_F(ImageTreeTest, AnswersAsTheMountDoes) {
  ImageBuilder b(store_.get(), "img");
  uint64_t etc = b.Dir(kImageRootInode, "etc", 0750);
  uint64_t passwd = b.File(etc, "passwd", "root:x:0:0\n", 0644);
  b.node(passwd).uid = 1000;
  b.node(passwd).gid = 100;
  b.node(passwd).xattrs["user.note"] = "kept";
  b.Link(kImageRootInode, "passwd-link", passwd);
  b.File(etc, "empty", "");
  b.SparseFile(kImageRootInode, "sparse", 1 << 20, {{0, "head"}, {512 << 10, "middle"}});
  b.File(kImageRootInode, "big", std::string(300 << 10, 'x'));
  b.Symlink(kImageRootInode, "link", "etc/passwd");
  b.Symlink(etc, "dangling", "/nowhere/at/all");
  b.Whiteout(kImageRootInode, "gone");
  uint64_t opq = b.Dir(kImageRootInode, "opaque");
  b.node(opq).xattrs["trusted.overlay.opaque"] = "y";
  b.File(opq, "inside", "1");
  uint64_t aufs = b.Dir(kImageRootInode, "aufs");
  b.File(aufs, ".wh..wh..opq", "");
  b.File(aufs, ".wh.hidden", "");
  NodeRecord dev;
  dev.mode = S_IFCHR | 0600;
  dev.rdev = makedev(1, 3);
  b.Add(kImageRootInode, "null", dev);
  NodeRecord fifo;
  fifo.mode = S_IFIFO | 0644;
  b.Add(etc, "fifo", fifo);
  uint64_t deep = kImageRootInode;
  for (int i = 0; i < 8; ++i) deep = b.Dir(deep, "d" + std::to_string(i));
  b.File(deep, std::string(255, 'n'), "long name");
  ASSERT_TRUE(b.Commit().ok());

  int root = Mount("img");
  ASSERT_GE(root, 0);
  ServedTree* tree = fs_->Tree();
  ASSERT_NE(tree, nullptr) << "the tree is off: handle layout check failed on this kernel";
  struct stat rst, tst;
  ASSERT_EQ(fstat(root, &rst), 0);
  ASSERT_TRUE(tree->Stat(rst.st_ino, &tst).ok());
  ExpectSameStat(rst, tst, "the image root");
  EXPECT_EQ(tree->Handle(rst.st_ino), Handle(root, ""));
  CompareDir(tree, root, rst.st_ino, "/");
  EXPECT_EQ(compared_, 25);

  // Misses and wrong kinds answer with the mount's errnos.
  struct stat st;
  EXPECT_EQ(tree->Lookup(rst.st_ino, "absent", &st).err(), ENOENT);
  EXPECT_EQ(fstatat(root, "absent", &st, AT_SYMLINK_NOFOLLOW), -1);
  EXPECT_EQ(errno, ENOENT);
  std::string target;
  EXPECT_EQ(tree->ReadLink(rst.st_ino, &target).err(), EINVAL);
}

TEST_F(ImageTreeTest, ADamagedEntryIsEioThroughTheTreeAsThroughTheMount) {
  // A dirent naming an inode the image has no node for: the catalog is
  // damaged. Both ways answer EIO for that name and go on for the others.
  ImageBuilder b(store_.get(), "img");
  b.File(kImageRootInode, "fine", "data");
  uint64_t id = 0;
  ASSERT_TRUE(b.Commit(&id).ok());
  Catalog::Batch batch(store_->catalog());
  batch.PutDirent(id, kImageRootInode, "dangling", DirentRecord{9999, DT_REG});
  ASSERT_TRUE(batch.Commit().ok());
  int root = Mount("img");
  ASSERT_GE(root, 0);
  ServedTree* tree = fs_->Tree();
  ASSERT_NE(tree, nullptr);
  struct stat rst, st;
  ASSERT_EQ(fstat(root, &rst), 0);
  EXPECT_EQ(fstatat(root, "dangling", &st, AT_SYMLINK_NOFOLLOW), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(tree->Lookup(rst.st_ino, "dangling", &st).err(), EIO);
  EXPECT_TRUE(tree->Lookup(rst.st_ino, "fine", &st).ok());
  std::vector<std::string> names;
  Status s = tree->ReadDir(rst.st_ino, [&](const char* name, uint64_t, unsigned char) {
    names.push_back(name);
    return Status::OK();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(names, (std::vector<std::string>{"dangling", "fine"}));
}

TEST_F(ImageTreeTest, DirectoriesFoundByTheTreeReopenByHandleFromAFreshMount) {
  // open_by_handle_at of a directory makes the kernel reconnect it through
  // ".." lookups: the image file system must know the parents of
  // directories only the tree looked up (no lookup through the mount).
  ImageBuilder b(store_.get(), "img");
  uint64_t d = kImageRootInode;
  for (int i = 0; i < 5; ++i) d = b.Dir(d, "level" + std::to_string(i));
  b.File(d, "f", "data");
  ASSERT_TRUE(b.Commit().ok());
  int root = Mount("img");
  ASSERT_GE(root, 0);
  ServedTree* tree = fs_->Tree();
  ASSERT_NE(tree, nullptr);
  struct stat st;
  ASSERT_EQ(fstat(root, &st), 0);
  uint64_t ino = st.st_ino;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(tree->Lookup(ino, "level" + std::to_string(i), &st).ok());
    ino = st.st_ino;
  }
  std::string h = tree->Handle(ino);
  int fd = open_by_handle_at(root, reinterpret_cast<struct file_handle*>(h.data()),
                             O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  struct stat fst;
  EXPECT_EQ(fstatat(fd, "f", &fst, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(fst.st_size, 4);
  close(fd);
}

// Files left open in the file system when it stops (a union lazily
// unmounted while a file in it is open) hold its threads; after a while
// Stop aborts the connection, and the kernel never releases those files.
// Stop frees what their handles held (LeakSanitizer reported them before)
// and returns; the open files answer ENOTCONN (statfs: reads may come from
// the page cache).
TEST_F(ImageTreeTest, StopFreesWhatTheKernelNeverReleased) {
  ImageBuilder b(store_.get(), "img");
  b.File(kImageRootInode, "f", "data");
  uint64_t d = b.Dir(kImageRootInode, "d");
  b.File(d, "inside", "1");
  ASSERT_TRUE(b.Commit().ok());
  int root = Mount("img");
  ASSERT_GE(root, 0);
  int f = openat(root, "f", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(f, 0) << strerror(errno);
  char buf[8];
  ASSERT_EQ(pread(f, buf, sizeof(buf), 0), 4);
  int dir = openat(root, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0) << strerror(errno);
  char dents[1024];
  ASSERT_GT(syscall(SYS_getdents64, dir, dents, sizeof(dents)), 0);

  struct statfs sf;
  ASSERT_EQ(fstatfs(f, &sf), 0) << strerror(errno);
  fs_->Stop();
  EXPECT_EQ(fstatfs(f, &sf), -1);
  EXPECT_EQ(errno, ENOTCONN);
  close(f);
  close(dir);
}

}  // namespace
}  // namespace overtier
