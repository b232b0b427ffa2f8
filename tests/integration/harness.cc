#include "harness.h"

#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace overtier::it {
namespace {

std::string ErrnoText(int err) {
  const char* name = strerrorname_np(err);
  std::string s = name != nullptr ? name : std::to_string(err);
  s += " (";
  s += std::strerror(err);
  s += ")";
  return s;
}

std::string LastError() { return ErrnoText(errno); }

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

bool EnvFlag(const char* name) {
  const char* v = Env(name);
  return v != nullptr && std::string_view(v) != "0";
}

std::string JoinPath(std::string_view dir, std::string_view rel) {
  std::string p(dir);
  if (!rel.empty()) {
    p += '/';
    p += rel;
  }
  return p;
}

const char* TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "reg";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "lnk";
    case S_IFCHR:
      return "chr";
    case S_IFBLK:
      return "blk";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "sock";
    default:
      return "???";
  }
}

std::string Octal(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", v);
  return buf;
}

struct SnapshotWalker {
  const SnapshotOptions& opts;
  TreeSnapshot out;
  std::map<std::pair<dev_t, ino_t>, std::string> link_groups;

  std::string ProcPath(int dirfd, const std::string& name) {
    return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  }

  std::string Xattrs(const std::string& path) {
    std::string names(65536, '\0');
    ssize_t n = llistxattr(path.c_str(), names.data(), names.size());
    if (n < 0) {
      if (errno == ENOTSUP) return "";
      return " xattrs{error " + LastError() + "}";
    }
    std::vector<std::string> list;
    for (size_t i = 0; i < static_cast<size_t>(n);) {
      std::string name(names.c_str() + i);
      i += name.size() + 1;
      if (opts.all_xattrs || name.starts_with("user.") ||
          (opts.overlay_xattrs && name.starts_with("trusted.overlay.")))
        list.push_back(name);
    }
    if (list.empty()) return "";
    std::sort(list.begin(), list.end());
    std::string s = " xattrs{";
    for (size_t i = 0; i < list.size(); ++i) {
      std::string value(65536, '\0');
      ssize_t m = lgetxattr(path.c_str(), list[i].c_str(), value.data(), value.size());
      if (i > 0) s += ",";
      s += list[i] + "=";
      if (m < 0) {
        s += "<" + LastError() + ">";
      } else {
        value.resize(static_cast<size_t>(m));
        s += "\"" + Printable(value, 128) + "\"";
      }
    }
    return s + "}";
  }

  std::string Describe(int dirfd, const std::string& name, const std::string& rel,
                       const struct stat& st) {
    std::ostringstream d;
    d << TypeName(st.st_mode) << " " << Octal(st.st_mode & 07777) << " " << st.st_uid << ":"
      << st.st_gid;
    if (opts.ino) d << " ino=" << st.st_ino;
    bool is_dir = S_ISDIR(st.st_mode);
    if (!is_dir || opts.dir_nlink) d << " nlink=" << st.st_nlink;
    if (!is_dir && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = link_groups.find(key);
      if (it == link_groups.end()) it = link_groups.emplace(key, rel).first;
      d << " link-group=" << it->second;
    }
    if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) || (is_dir && opts.dir_size)) {
      d << " size=" << st.st_size;
    }
    if ((!is_dir && opts.mtime) || (is_dir && opts.dir_mtime)) {
      d << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      d << " rdev=" << major(st.st_rdev) << ":" << minor(st.st_rdev);
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(PATH_MAX + 1, '\0');
      ssize_t n = readlinkat(dirfd, name.c_str(), target.data(), target.size());
      if (n < 0) {
        d << " -> <" << LastError() << ">";
      } else {
        target.resize(static_cast<size_t>(n));
        d << " -> \"" << Printable(target, 4096) << "\"";
      }
    }
    if (S_ISREG(st.st_mode)) {
      // O_NOATIME: taking a snapshot must not change what the next one sees
      // (reading a lower file would otherwise move its atime, which copy-up
      // then preserves). No O_NOFOLLOW: the entry was just lstat'ed, and
      // file_test checks O_NOFOLLOW on its own.
      int fd = openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
      if (fd < 0 && errno == EPERM) fd = openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        d << " data=<" << LastError() << ">";
      } else {
        uint64_t h = kFingerprintSeed;
        std::string head;
        char buf[65536];
        ssize_t n;
        uint64_t total = 0;
        while ((n = read(fd, buf, sizeof(buf))) > 0) {
          h = Fingerprint(h, buf, static_cast<size_t>(n));
          if (head.size() < 32) head.append(buf, std::min<size_t>(32 - head.size(), n));
          total += static_cast<uint64_t>(n);
        }
        if (n < 0) d << " data=<" << LastError() << ">";
        char hex[20];
        std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
        d << " read=" << total << " data=" << hex << " \"" << Printable(head, 32) << "\"";
        close(fd);
      }
    }
    d << Xattrs(ProcPath(dirfd, name));
    return d.str();
  }

  void Walk(int dirfd, const std::string& prefix) {
    int dup_fd = dup(dirfd);
    DIR* dir = dup_fd >= 0 ? fdopendir(dup_fd) : nullptr;
    if (dir == nullptr) {
      out[prefix.empty() ? "." : prefix] += " <opendir: " + LastError() + ">";
      if (dup_fd >= 0) close(dup_fd);
      return;
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = readdir(dir)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      std::string rel = prefix.empty() ? name : prefix + "/" + name;
      struct stat st;
      if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        out[rel] = "<lstat: " + LastError() + ">";
        continue;
      }
      out[rel] = Describe(dirfd, name, rel, st);
      if (S_ISDIR(st.st_mode)) {
        int sub = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          out[rel] += " <open: " + LastError() + ">";
          continue;
        }
        Walk(sub, rel);
        close(sub);
      }
    }
  }
};

void RemoveAt(int dirfd, const char* name, dev_t dev) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) {
      ADD_FAILURE() << "RemoveTree: not crossing into another file system at " << name;
      return;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      int dup_fd = dup(fd);
      DIR* dir = fdopendir(dup_fd);
      std::vector<std::string> names;
      if (dir != nullptr) {
        while (struct dirent* e = readdir(dir)) {
          std::string n = e->d_name;
          if (n != "." && n != "..") names.push_back(n);
        }
        closedir(dir);
      }
      for (const auto& n : names) RemoveAt(fd, n.c_str(), dev);
      close(fd);
    }
    if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0) {
      ADD_FAILURE() << "RemoveTree: rmdir " << name << ": " << LastError();
    }
  } else if (unlinkat(dirfd, name, 0) != 0) {
    ADD_FAILURE() << "RemoveTree: unlink " << name << ": " << LastError();
  }
}

}  // namespace

uint64_t Fingerprint(uint64_t h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ULL;
  }
  return h;
}

// ---------------------------------------------------------------------------

Target SelectedTarget() {
  const char* t = Env("OVERTIER_TEST_TARGET");
  if (t != nullptr && std::string_view(t) == "kernel") return Target::kKernel;
  return Target::kOvertier;
}

const char* TargetName(Target t) { return t == Target::kKernel ? "kernel" : "overtier"; }

void PrintTo(const Errno& e, std::ostream* os) {
  if (e.value == 0) {
    *os << "success";
  } else {
    *os << ErrnoText(e.value);
  }
}

Errno Err(long rc) { return rc >= 0 ? kOk : Errno{errno}; }

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

void WriteFile(const std::string& path, std::string_view data, mode_t mode) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) {
    ADD_FAILURE() << "WriteFile: open " << path << ": " << LastError();
    return;
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n <= 0) {
      ADD_FAILURE() << "WriteFile: write " << path << ": " << LastError();
      return;
    }
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd.get(), mode) != 0) ADD_FAILURE() << "WriteFile: fchmod " << path;
}

std::string ReadFd(int fd) {
  std::string out;
  char buf[65536];
  off_t off = 0;
  while (true) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0) {
      ADD_FAILURE() << "ReadFd: " << LastError();
      break;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    ADD_FAILURE() << "ReadFile: open " << path << ": " << LastError();
    return "";
  }
  return ReadFd(fd.get());
}

void MakeDirs(const std::string& path, mode_t mode) {
  size_t pos = 1;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), mode) == 0) {
      if (chmod(prefix.c_str(), mode) != 0) ADD_FAILURE() << "MakeDirs: chmod " << prefix;
    } else if (errno != EEXIST) {
      ADD_FAILURE() << "MakeDirs: mkdir " << prefix << ": " << LastError();
      return;
    }
  }
}

void MakeSymlink(const std::string& target, const std::string& path) {
  if (symlink(target.c_str(), path.c_str()) != 0) {
    ADD_FAILURE() << "symlink " << path << ": " << LastError();
  }
}

void MakeWhiteout(const std::string& path) {
  if (mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
    ADD_FAILURE() << "MakeWhiteout " << path << ": " << LastError();
  }
}

void MakeOpaque(const std::string& dir) { SetXattr(dir, "trusted.overlay.opaque", "y"); }

void SetXattr(const std::string& path, const std::string& name, std::string_view value) {
  if (lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
    ADD_FAILURE() << "lsetxattr " << path << " " << name << ": " << LastError();
  }
}

std::optional<std::string> GetXattr(const std::string& path, const std::string& name) {
  std::string value(65536, '\0');
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
  if (n < 0) {
    if (errno != ENODATA)
      ADD_FAILURE() << "lgetxattr " << path << " " << name << ": " << LastError();
    return std::nullopt;
  }
  value.resize(static_cast<size_t>(n));
  return value;
}

std::vector<std::string> ListXattrs(const std::string& path) {
  std::string names(65536, '\0');
  ssize_t n = llistxattr(path.c_str(), names.data(), names.size());
  std::vector<std::string> out;
  if (n < 0) {
    ADD_FAILURE() << "llistxattr " << path << ": " << LastError();
    return out;
  }
  for (size_t i = 0; i < static_cast<size_t>(n);) {
    std::string name(names.c_str() + i);
    i += name.size() + 1;
    out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void SetTimes(const std::string& path, time_t atime, time_t mtime) {
  struct timespec ts[2] = {{atime, 0}, {mtime, 0}};
  if (utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    ADD_FAILURE() << "utimensat " << path << ": " << LastError();
  }
}

void Chown(const std::string& path, uid_t uid, gid_t gid) {
  if (lchown(path.c_str(), uid, gid) != 0)
    ADD_FAILURE() << "lchown " << path << ": " << LastError();
}

struct stat Lstat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    ADD_FAILURE() << "lstat " << path << ": " << LastError();
    std::memset(&st, 0, sizeof(st));
  }
  return st;
}

struct stat Fstat(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ADD_FAILURE() << "fstat: " << LastError();
    std::memset(&st, 0, sizeof(st));
  }
  return st;
}

bool Exists(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) return true;
  if (errno != ENOENT && errno != ENOTDIR) ADD_FAILURE() << "lstat " << path << ": " << LastError();
  return false;
}

bool IsWhiteout(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return false;
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) {
    ADD_FAILURE() << "opendir " << path << ": " << LastError();
    return out;
  }
  while (struct dirent* e = readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<DirEntry> ReadDirRaw(int fd, size_t buf_size) {
  std::vector<DirEntry> out;
  std::vector<char> buf(buf_size);
  while (true) {
    long n = syscall(SYS_getdents64, fd, buf.data(), buf.size());
    if (n < 0) {
      ADD_FAILURE() << "getdents64: " << LastError();
      break;
    }
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
      const char* rec = buf.data() + pos;
      DirEntry e;
      uint16_t reclen;
      std::memcpy(&e.ino, rec, 8);
      std::memcpy(&e.off, rec + 8, 8);
      std::memcpy(&reclen, rec + 16, 2);
      e.type = static_cast<unsigned char>(rec[18]);
      e.name = rec + 19;
      out.push_back(e);
      pos += reclen;
    }
  }
  return out;
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  size_t slash = path.rfind('/');
  std::string parent = slash == 0 ? "/" : path.substr(0, slash);
  Fd pfd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pfd.valid()) {
    ADD_FAILURE() << "RemoveTree: open " << parent << ": " << LastError();
    return;
  }
  RemoveAt(pfd.get(), path.c_str() + slash + 1, st.st_dev);
}

std::string Printable(std::string_view data, size_t max) {
  std::string s;
  for (size_t i = 0; i < data.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == '\n') {
      s += "\\n";
    } else if (c == '\\' || c == '"') {
      s += '\\';
      s += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      s += buf;
    } else {
      s += static_cast<char>(c);
    }
  }
  if (data.size() > max) s += "...";
  return s;
}

TreeSnapshot SnapshotTree(const std::string& root, const SnapshotOptions& opts) {
  SnapshotWalker w{opts, {}, {}};
  Fd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    ADD_FAILURE() << "SnapshotTree: open " << root << ": " << LastError();
    return {};
  }
  struct stat st;
  if (fstat(fd.get(), &st) == 0) {
    // The root itself, described through its parent-independent /proc path.
    SnapshotWalker root_w{opts, {}, {}};
    std::ostringstream d;
    d << "dir " << Octal(st.st_mode & 07777) << " " << st.st_uid << ":" << st.st_gid;
    if (opts.dir_mtime) d << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    d << root_w.Xattrs("/proc/self/fd/" + std::to_string(fd.get()));
    w.out["."] = d.str();
  }
  w.Walk(fd.get(), "");
  return w.out;
}

std::string DiffTrees(const TreeSnapshot& a, std::string_view a_name, const TreeSnapshot& b,
                      std::string_view b_name) {
  std::ostringstream d;
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  for (const auto& k : keys) {
    auto ia = a.find(k);
    auto ib = b.find(k);
    if (ib == b.end()) {
      d << "  only in " << a_name << ": " << k << "  [" << ia->second << "]\n";
    } else if (ia == a.end()) {
      d << "  only in " << b_name << ": " << k << "  [" << ib->second << "]\n";
    } else if (ia->second != ib->second) {
      d << "  differs: " << k << "\n    " << a_name << ": " << ia->second << "\n    " << b_name
        << ": " << ib->second << "\n";
    }
  }
  return d.str();
}

// ---------------------------------------------------------------------------
// Fixture.

void UnionFsTest::SetUp() {
  if (geteuid() != 0) GTEST_SKIP() << "mount-level tests need root";
  target_ = SelectedTarget();
  if (const char* t = Env("OVERTIER_TEST_TARGET")) {
    std::string_view v(t);
    ASSERT_TRUE(v == "kernel" || v == "overtier") << "OVERTIER_TEST_TARGET must be kernel|overtier";
  }
  if (target_ == Target::kOvertier) {
    std::string bin = OvertierBin();
    ASSERT_EQ(access(bin.c_str(), X_OK), 0)
        << "overtier binary " << bin << " not executable (set OVERTIER_BIN): " << LastError();
    ASSERT_EQ(access("/dev/fuse", R_OK | W_OK), 0) << "/dev/fuse: " << LastError();
  }
  umask(022);
  keep_ = EnvFlag("OVERTIER_TEST_KEEP");
  std::string tmpl = TempTemplate("overtier-it");
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << LastError();
  base_ = tmpl;
  // World-searchable so the unprivileged child of RunAs can reach mnt.
  ASSERT_EQ(chmod(base_.c_str(), 0755), 0);
  lowers_ = {base_ + "/lower0", base_ + "/lower1"};
  upper_dir_ = base_ + "/upper";
  work_ = base_ + "/work";
  mnt_ = base_ + "/mnt";
  for (const auto& d : {lowers_[0], lowers_[1], upper_dir_, work_, mnt_}) {
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d << ": " << LastError();
    ASSERT_EQ(chmod(d.c_str(), 0755), 0);
  }
  daemon_.set_mount_point(mnt_);
  daemon_.set_log(base_ + "/daemon.log");
  auto limit = Watchdog::LimitFromEnv(60);
  watchdog_.Start(limit, [this, limit] {
    wd_fired_ = true;
    std::fprintf(stderr,
                 "[harness] watchdog: test exceeded %d s; killing the daemon and detaching %s\n",
                 static_cast<int>(limit.count()), mnt_.c_str());
    daemon_.Kill();
  });
}

void UnionFsTest::TearDown() {
  if (base_.empty()) return;
  if (mounted_) Unmount();
  if (IsMountPoint()) {
    ADD_FAILURE() << "mount still present at teardown; detaching";
    DetachAll();
  }
  watchdog_.Stop();
  if (wd_fired_) {
    ADD_FAILURE() << "watchdog fired: the test exceeded its time limit";
  } else {
    for (size_t i = 0; i < lower_snapshots_.size(); ++i) {
      SnapshotOptions all{true, true, true, true, true, true};
      std::string diff =
          DiffTrees(lower_snapshots_[i], "before", SnapshotTree(lowers_[i], all), "after");
      EXPECT_TRUE(diff.empty()) << "lower layer " << i << " was modified:\n" << diff;
    }
  }
  if (keep_ || IsMountPoint()) {
    std::fprintf(stderr, "[harness] keeping %s\n", base_.c_str());
  } else {
    RemoveTree(base_);
  }
}

std::string UnionFsTest::L(int i, std::string_view rel) const {
  return JoinPath(lowers_.at(static_cast<size_t>(i)), rel);
}
std::string UnionFsTest::U(std::string_view rel) const { return JoinPath(upper_dir_, rel); }
std::string UnionFsTest::M(std::string_view rel) const { return JoinPath(mnt_, rel); }

bool UnionFsTest::IsMountPoint() const { return it::IsMountPoint(mnt_); }

void UnionFsTest::DetachAll() {
  for (int i = 0; i < 8 && IsMountPoint(); ++i) umount2(mnt_.c_str(), MNT_DETACH);
}

void UnionFsTest::Mount(const MountConfig& cfg) {
  ASSERT_FALSE(mounted_) << "already mounted";
  ASSERT_GE(cfg.lowers, 1);
  ASSERT_LE(cfg.lowers, static_cast<int>(lowers_.size()));
  cfg_ = cfg;
  cfg_target_ = cfg.target.value_or(target_);
  if (lower_snapshots_.empty()) {
    SnapshotOptions all{true, true, true, true, true, true};
    for (const auto& l : lowers_) lower_snapshots_.push_back(SnapshotTree(l, all));
  }
  if (cfg_target_ == Target::kKernel) {
    MountKernel(cfg);
  } else {
    MountOvertier(cfg);
  }
}

void UnionFsTest::MountKernel(const MountConfig& cfg) {
  std::string opts = "lowerdir=";
  for (int i = 0; i < cfg.lowers && cfg.overtier_lowerdir.empty(); ++i) {
    if (i > 0) opts += ":";
    opts += lowers_[static_cast<size_t>(i)];
  }
  opts += cfg.overtier_lowerdir;
  if (cfg.upper) {
    opts += ",upperdir=" + upper_dir_ + ",workdir=" + work_ + "," + cfg.kernel_opts;
  } else {
    // Without an upper layer the kernel rejects index=on/metacopy=on only
    // with a warning; keep the read-only mount minimal.
    opts += ",redirect_dir=on";
    if (cfg.follow_metacopy) opts += ",metacopy=on";
  }
  ASSERT_EQ(mount("overlay", mnt_.c_str(), "overlay", 0, opts.c_str()), 0)
      << "mount -t overlay -o " << opts << ": " << LastError() << " (see dmesg)";
  mounted_ = true;
}

void UnionFsTest::MountOvertier(const MountConfig& cfg) {
  std::string bin = OvertierBin();
  std::string opts = "lowerdir=";
  for (int i = 0; i < cfg.lowers && cfg.overtier_lowerdir.empty(); ++i) {
    if (i > 0) opts += ":";
    opts += lowers_[static_cast<size_t>(i)];
  }
  opts += cfg.overtier_lowerdir;
  if (cfg.upper) {
    opts += ",upperdir=" + (cfg.overtier_upperdir.empty() ? upper_dir_ : cfg.overtier_upperdir);
    opts += ",workdir=" + (cfg.overtier_workdir.empty() ? work_ : cfg.overtier_workdir);
  }
  // Root mounts; the RunAs children are other users.
  opts += ",allow_other";
  if (!cfg.overtier_opts.empty()) opts += "," + cfg.overtier_opts;
  if (const char* extra = Env("OVERTIER_TEST_EXTRA_OPTS")) opts += std::string(",") + extra;
  std::vector<std::string> args = {bin, "-f"};
  if (EnvFlag("OVERTIER_TEST_DEBUG")) args.push_back("-d");
  args.insert(args.end(), {"-o", opts, mnt_});

  std::string log = base_ + "/daemon.log";
  {
    std::ofstream l(log, std::ios::app);
    l << "=== " << bin << " -f -o " << opts << " " << mnt_ << "\n";
  }
  int status = 0;
  if (!daemon_.Start(args, {}, &status, std::chrono::seconds(10))) {
    FAIL() << "overtier did not mount within 10 s (wait status " << status << ")"
           << "\n--- daemon log ---\n"
           << daemon_.LogTail();
  }
  mounted_ = true;
}

void UnionFsTest::Unmount() {
  if (!mounted_) return;
  mounted_ = false;
  if (cfg_target_ == Target::kKernel) {
    bool ok = PollUntil([&] { return umount2(mnt_.c_str(), 0) == 0 || errno != EBUSY; },
                        std::chrono::seconds(2));
    if (IsMountPoint()) {
      ADD_FAILURE() << "umount " << mnt_ << " failed (" << (ok ? LastError() : "busy")
                    << "); detaching";
      DetachAll();
    }
    return;
  }
  // After the watchdog the mount is already detached and the daemon killed:
  // only reap it.
  daemon_.Stop(/*expect_clean=*/!wd_fired_, std::chrono::seconds(2));
  DetachAll();
}

void UnionFsTest::Remount() {
  ASSERT_TRUE(mounted_);
  MountConfig cfg = cfg_;
  cfg.target = cfg_target_;
  Unmount();
  ASSERT_NO_FATAL_FAILURE(Mount(cfg));
}

int UnionFsTest::RunInChild(const std::function<int()>& fn) {
  return RunAs(static_cast<uid_t>(-1), static_cast<gid_t>(-1), fn);
}

int UnionFsTest::RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << LastError();
    return INT_MIN;
  }
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << LastError();
    return INT_MIN;
  }
  if (pid == 0) {
    close(pipefd[0]);
    alarm(30);
    if (uid != static_cast<uid_t>(-1)) {
      if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(3);
    }
    int result = fn();
    if (write(pipefd[1], &result, sizeof(result)) != sizeof(result)) _exit(4);
    _exit(0);
  }
  close(pipefd[1]);
  int result = INT_MIN;
  ssize_t n = read(pipefd[0], &result, sizeof(result));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (n != sizeof(result) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << "child process failed: "
                  << (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                          : "exit " + std::to_string(WEXITSTATUS(status)));
    return INT_MIN;
  }
  return result;
}

Errno UnionFsTest::AsNobody(const std::function<Errno()>& fn) {
  return Errno{RunAs(kNobody, kNogroup, [&] { return fn().value; })};
}

}  // namespace overtier::it
