// Differential test: one random sequence of namespace and data operations,
// run on the kernel overlayfs and on the target over identical lower layers;
// every operation's outcome (its errno, and what reads, stats and listings
// return) and the final view must be the same.
//
// The hand-written tests check the cases someone thought of; this one finds
// the combinations nobody did (a rename over a whiteout of a copied-up hard
// link inside an opaque directory...). The sequence comes from a seeded
// generator and never depends on outcomes, so both mounts get the same one;
// a failure names the seed and the first operation whose outcome differs,
// with the ones before it. Each run remounts halfway; at the end the kernel
// mounts the upper layer the target left and must show the same view.
//
// With a store on the target's mount (image lowers, or plain ones with a
// store), archive-and-release steps run between the others: the migration
// tier must be invisible to every one of them.
//
// Against OVERTIER_TEST_TARGET=kernel both runs are the kernel: that checks
// the test itself (its sequence and its log must be deterministic).
//
// Environment: OVERTIER_DIFF_OPS (operations per seed, default 400),
// OVERTIER_DIFF_SEEDS (run seeds 1..N, default 16), OVERTIER_DIFF_SEED (run
// only that one), OVERTIER_DIFF_DUMP=1 (print both logs).
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "overtier/control.h"

namespace overtier::it {
namespace {

uint64_t SplitMix(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Directories the operations work in ("" is the root) and the names they
// use there: most exist in some layer, a few never do.
const char* const kDirs[] = {"", "dA", "dA/sub", "dB", "dC", "m", "o", "n"};
const char* const kNames[] = {"f0", "f1",  "f2",  "h1",  "x",   "y", "z",      "p",
                              "q",  "l0a", "l1a", "l1b", "vis", "s", "hidden", "e0",
                              "e1", "sub", "dA",  "dB",  "m",   "o", "n",      "big"};

enum class Op {
  kCreate,
  kAppend,
  kPwrite,
  kTruncate,
  kMkdir,
  kRmdir,
  kUnlink,
  kRename,
  kRenameNoReplace,
  kRenameExchange,
  kLink,
  kSymlink,
  kChmod,
  kChown,
  kSetXattr,
  kRemoveXattr,
  kMkfifo,
  kRead,
  kStat,
  kList,
  kUtimes,     // explicit times, which kStat then shows
  kOpenTrunc,  // open(O_TRUNC) and close
  kFallocate,
  kListXattr,
  // Archive and release (the migration tier: overtier with a store, else
  // nothing): must change nothing any other step sees.
  kArchive,
  // Descriptors kept open across other steps (kSlots of them): a copy-up,
  // rename or unlink meets files someone holds open.
  kSlotOpen,
  kSlotWrite,
  kSlotRead,
  kSlotStat,
  kSlotClose,
  kCount,
  kRemount  // not drawn: Sequence puts one halfway
};

struct Step {
  Op op;
  std::string a, b;      // paths relative to the mount
  uint64_t n = 0;        // a number for the operation (offset, mode, ...)
  bool as_user = false;  // run by uid/gid kUser instead of root
};

// The unprivileged caller of some steps (the chown steps give files to
// 1000..1002, so it owns some and not others).
constexpr uid_t kUser = 1000;

bool UsesSlots(Op op) {
  return op == Op::kSlotOpen || op == Op::kSlotWrite || op == Op::kSlotRead ||
         op == Op::kSlotStat || op == Op::kSlotClose;
}

// What the lowers hold (MakeLowers), whited out or not.
const char* const kLowerPaths[] = {"f0",       "f1",    "h1",     "s",        "f2", "dA",
                                   "dA/x",     "dA/y",  "dA/sub", "dA/sub/z", "dB", "dB/p",
                                   "m",        "m/l1a", "m/l0a",  "m/l1b",    "o",  "o/vis",
                                   "o/hidden", "dC",    "dC/q",   "big"};

std::string RandomPath(uint64_t* x) {
  std::string d = kDirs[SplitMix(x) % std::size(kDirs)];
  std::string n = kNames[SplitMix(x) % std::size(kNames)];
  return d.empty() ? n : d + "/" + n;
}

// Most operations should meet something: a path is one the lowers have,
// one an earlier step created (or tried to), or any name in any directory.
std::string PickPath(uint64_t* x, const std::vector<std::string>& made) {
  uint64_t r = SplitMix(x) % 10;
  if (r < 4 && !made.empty()) return made[SplitMix(x) % made.size()];
  if (r < 7) return kLowerPaths[SplitMix(x) % std::size(kLowerPaths)];
  return RandomPath(x);
}

std::vector<Step> Sequence(uint64_t seed, int count) {
  uint64_t x = seed * 0x51ed270b27ULL + 1;
  std::vector<Step> steps;
  std::vector<std::string> made;
  for (int i = 0; i < count; ++i) {
    Step s;
    s.op = static_cast<Op>(SplitMix(&x) % static_cast<uint64_t>(Op::kCount));
    s.a = PickPath(&x, made);
    s.b = PickPath(&x, made);
    s.n = SplitMix(&x);
    // Data operations meet the big file often enough to reach its chunks.
    const bool data_op = s.op == Op::kPwrite || s.op == Op::kTruncate || s.op == Op::kRead ||
                         s.op == Op::kSlotOpen || s.op == Op::kFallocate;
    if (data_op && SplitMix(&x) % 3 == 0) s.a = "big";
    // A quarter of the steps as an unprivileged user: permission checks
    // (EACCES, EPERM) on merged, copied-up and lower objects. Descriptor
    // steps stay with root, whose descriptors they are.
    s.as_user = !UsesSlots(s.op) && s.op != Op::kArchive && SplitMix(&x) % 4 == 0;
    switch (s.op) {
      case Op::kCreate:
      case Op::kMkdir:
      case Op::kSymlink:
      case Op::kMkfifo:
        made.push_back(s.a);
        break;
      case Op::kRename:
      case Op::kRenameNoReplace:
      case Op::kRenameExchange:
      case Op::kLink:
        made.push_back(s.b);
        break;
      default:
        break;
    }
    steps.push_back(std::move(s));
  }
  // Halfway, a remount: what follows works on what the upper layer kept,
  // not on what the daemon remembered.
  Step remount;
  remount.op = Op::kRemount;
  steps.insert(steps.begin() + count / 2, remount);
  // OVERTIER_DIFF_KEEP=i,j,...: only those steps (to shrink a failure).
  if (const char* keep = std::getenv("OVERTIER_DIFF_KEEP")) {
    std::vector<Step> kept;
    std::istringstream in(keep);
    std::string item;
    while (std::getline(in, item, ',')) {
      size_t i = std::strtoul(item.c_str(), nullptr, 10);
      if (i < steps.size()) kept.push_back(steps[i]);
    }
    steps = kept;
  }
  return steps;
}

std::string ErrName(int e) {
  if (e == 0) return "ok";
  const char* name = strerrorname_np(e);
  return name != nullptr ? name : std::to_string(e);
}

const char* TypeName(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "dir";
  if (S_ISLNK(m)) return "symlink";
  if (S_ISFIFO(m)) return "fifo";
  return "other";
}

// Offsets and lengths of writes and truncates: mostly within the first
// bytes (small files meet), sometimes anywhere in the span of the big lower
// file, so that copy-ups (and, with image lowers, the lazy copy-up's chunk
// map) meet writes and truncates on and across chunk boundaries.
constexpr uint64_t kBigSize = 640 * 1024 + 3;
constexpr uint64_t kBigSpan = kBigSize + 64 * 1024;

off_t Offset(uint64_t n) { return static_cast<off_t>((n >> 32) % 4 == 0 ? n % kBigSpan : n % 24); }

// Length and fingerprint of a buffer.
std::string Digest(const std::string& data) {
  uint64_t h = Fingerprint(kFingerprintSeed, data.data(), data.size());
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%zu bytes %016llx", data.size(),
                static_cast<unsigned long long>(h));
  return buf;
}

// Runs one step under root and describes its outcome.
constexpr int kSlots = 3;

// Open descriptors of a run, closed before a remount and at the end.
struct Slots {
  int fd[kSlots] = {-1, -1, -1};
  void CloseAll() {
    for (int& f : fd) {
      if (f >= 0) close(f);
      f = -1;
    }
  }
};

std::string Apply(const std::string& root, const Step& s, int index, Slots* slots);

// Whether kArchive steps reach the migration tier (the target's run over
// image lowers, whose mount has a store).
bool g_archive_steps = false;

// Whether some descriptor steps work on files without a name: a kSlotOpen
// opens O_TMPFILE in the directory of its path instead, and a kSlotClose
// first gives its file a name (linkat with AT_EMPTY_PATH, which names any
// open file, not only a temporary one). Chosen by bits of Step::n that
// nothing else reads, so the sequences stay what they were; off for the
// regression sequences, which must run as when they were found.
bool g_tmpfile_steps = false;

// Whether half of the xattr steps use names of the overlay namespace
// (trusted.overlay.opaque, trusted.overlay.k1), which both targets keep
// escaped as the user's (docs/SEMANTICS.md); the final views then list
// them. Off for the other tests, whose sequences stay what they were.
bool g_overlay_xattr_steps = false;

std::string XattrStepName(uint64_t n) {
  if (g_overlay_xattr_steps && (n >> 12) % 2 == 0)
    return n % 2 == 0 ? "trusted.overlay.opaque" : "trusted.overlay.k1";
  return "user.k" + std::to_string(n % 2);
}

// The times kUtimes sets; any other time (a write's, a creation's) shows
// as "now": two runs minutes apart agree on it.
const struct timespec kFixedTimes[] = {
    {1000000000, 0}, {1100000000, 123456789}, {1200000000, 5}, {1300000000, 999999999}};

std::string TimeName(const struct timespec& t) {
  for (const auto& f : kFixedTimes) {
    if (t.tv_sec == f.tv_sec && t.tv_nsec == f.tv_nsec) return std::to_string(f.tv_sec);
  }
  return "now";
}

// open(2) (mode 0644 if it creates), one write of data (at off; off < 0:
// where the descriptor is), close: 0 or the errno of the call that failed.
int OpenAndWrite(const std::string& path, int flags, const std::string& data, off_t off) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  ssize_t n =
      off < 0 ? write(fd, data.data(), data.size()) : pwrite(fd, data.data(), data.size(), off);
  int e = n < 0 ? errno : 0;
  close(fd);
  return e;
}

// Apply in a child running as kUser; its outcome comes back through a pipe.
std::string ApplyAsUser(const std::string& root, const Step& s, int index) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    std::string out;
    if (setgroups(0, nullptr) != 0 || setgid(kUser) != 0 || setuid(kUser) != 0) {
      out = "could not become the user";
    } else {
      out = "(user) " + Apply(root, s, index, nullptr);
    }
    ssize_t w = write(p[1], out.data(), out.size());
    _exit(w == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    out += " (the child failed)";
  return out;
}

std::string Apply(const std::string& root, const Step& s, int index, Slots* slots) {
  const std::string a = root + "/" + s.a, b = root + "/" + s.b;
  std::ostringstream out;
  auto rc = [](long r) { return r < 0 ? errno : 0; };
  auto put = [&](const char* what, int e, const std::string& extra = "") {
    out << "#" << index << " " << what << " -> " << ErrName(e);
    if (!extra.empty()) out << " " << extra;
  };
  const std::string tag = "<" + std::to_string(index) + ">";
  switch (s.op) {
    case Op::kCreate:
      put(("create " + s.a).c_str(), OpenAndWrite(a, O_CREAT | O_EXCL | O_WRONLY, tag, -1));
      break;
    case Op::kAppend:
      put(("append " + s.a).c_str(),
          OpenAndWrite(a, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK, tag, -1));
      break;
    case Op::kPwrite: {
      off_t off = Offset(s.n);
      put(("pwrite " + s.a + " @" + std::to_string(off)).c_str(),
          OpenAndWrite(a, O_RDWR | O_NOFOLLOW | O_NONBLOCK, tag, off));
      break;
    }
    case Op::kTruncate: {
      off_t len = Offset(s.n);
      put(("truncate " + s.a + " " + std::to_string(len)).c_str(), rc(truncate(a.c_str(), len)));
      break;
    }
    case Op::kMkdir:
      put(("mkdir " + s.a).c_str(), rc(mkdir(a.c_str(), 0755)));
      break;
    case Op::kRmdir:
      put(("rmdir " + s.a).c_str(), rc(rmdir(a.c_str())));
      break;
    case Op::kUnlink:
      put(("unlink " + s.a).c_str(), rc(unlink(a.c_str())));
      break;
    case Op::kRename:
    case Op::kRenameNoReplace:
    case Op::kRenameExchange: {
      unsigned flags = s.op == Op::kRename            ? 0
                       : s.op == Op::kRenameNoReplace ? RENAME_NOREPLACE
                                                      : RENAME_EXCHANGE;
      long r = syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags);
      put(("rename" +
           std::string(flags == 0                  ? ""
                       : flags == RENAME_NOREPLACE ? "(noreplace)"
                                                   : "(exchange)") +
           " " + s.a + " " + s.b)
              .c_str(),
          rc(r));
      break;
    }
    case Op::kLink:
      put(("link " + s.a + " " + s.b).c_str(), rc(link(a.c_str(), b.c_str())));
      break;
    case Op::kSymlink:
      put(("symlink " + s.a).c_str(), rc(symlink(("t" + tag).c_str(), a.c_str())));
      break;
    case Op::kChmod: {
      static const mode_t kModes[] = {0600, 0644, 0755, 0700, 0640};
      mode_t m = kModes[s.n % std::size(kModes)];
      std::ostringstream w;
      w << "chmod " << s.a << " " << std::oct << m;
      put(w.str().c_str(), rc(fchmodat(AT_FDCWD, a.c_str(), m, 0)));
      break;
    }
    case Op::kChown: {
      uid_t u = 1000 + static_cast<uid_t>(s.n % 3);
      put(("lchown " + s.a + " " + std::to_string(u)).c_str(), rc(lchown(a.c_str(), u, 1000)));
      break;
    }
    case Op::kSetXattr: {
      const std::string name = XattrStepName(s.n);
      int flags = (s.n >> 8) % 3 == 0 ? XATTR_CREATE : (s.n >> 8) % 3 == 1 ? XATTR_REPLACE : 0;
      put(("setxattr " + s.a + " " + name + " " + std::to_string(flags)).c_str(),
          rc(lsetxattr(a.c_str(), name.c_str(), tag.data(), tag.size(), flags)));
      break;
    }
    case Op::kRemoveXattr: {
      const std::string name = XattrStepName(s.n);
      put(("removexattr " + s.a + " " + name).c_str(), rc(lremovexattr(a.c_str(), name.c_str())));
      break;
    }
    case Op::kMkfifo:
      put(("mkfifo " + s.a).c_str(), rc(mkfifo(a.c_str(), 0644)));
      break;
    case Op::kRead: {
      // O_NONBLOCK: a fifo must not block (nor below, where a write-only
      // open of a fifo without a reader gives ENXIO).
      int fd = open(a.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      int e = rc(fd);
      std::string data;
      // From the start, or 4 KiB from anywhere in a big file's range.
      const bool far = (s.n >> 40) % 2 == 1;
      const off_t off = far ? static_cast<off_t>(s.n % kBigSpan) : 0;
      if (fd >= 0) {
        char buf[4096];
        ssize_t n = pread(fd, buf, far ? sizeof(buf) : 512, off);
        if (n < 0)
          e = errno;
        else
          data.assign(buf, static_cast<size_t>(n));
        close(fd);
      }
      std::string what = "read " + s.a + (far ? " @" + std::to_string(off) : "");
      put(what.c_str(), e, e != 0 ? "" : far ? Digest(data) : "'" + Printable(data, 512) + "'");
      break;
    }
    case Op::kStat: {
      struct stat st;
      int e = rc(lstat(a.c_str(), &st));
      std::ostringstream d;
      if (e == 0) {
        d << TypeName(st.st_mode) << " " << std::oct << (st.st_mode & 07777) << std::dec << " "
          << st.st_uid << ":" << st.st_gid;
        // A directory's size and link count are the layers' business (the
        // kernel gives merged directories st_nlink 1).
        if (!S_ISDIR(st.st_mode)) d << " size=" << st.st_size << " nlink=" << st.st_nlink;
        // mtime, not atime: when a read or a listing moves atime (relatime,
        // the page cache, a readlink) differs with the layer and the cache
        // in ways no program relies on.
        d << " mtime=" << TimeName(st.st_mtim);
        char target[256];
        if (S_ISLNK(st.st_mode)) {
          ssize_t n = readlink(a.c_str(), target, sizeof(target));
          if (n >= 0) d << " -> " << std::string(target, static_cast<size_t>(n));
        }
      }
      put(("lstat " + s.a).c_str(), e, d.str());
      break;
    }
    case Op::kList: {
      std::string dir = root + "/" + std::string(kDirs[s.n % std::size(kDirs)]);
      // Names and types, sorted; the errno of opendir(3) (ENOTDIR, EACCES).
      std::vector<std::string> entries;
      DIR* d = opendir(dir.c_str());
      int e = d == nullptr ? errno : 0;
      if (d != nullptr) {
        while (dirent* de = readdir(d)) {
          std::string n = de->d_name;
          if (n != "." && n != "..") entries.push_back(n + "/" + std::to_string(de->d_type));
        }
        closedir(d);
      }
      std::sort(entries.begin(), entries.end());
      std::string names;
      for (const auto& n : entries) names += n + ",";
      put(("list " + std::string(kDirs[s.n % std::size(kDirs)])).c_str(), e, names);
      break;
    }
    case Op::kUtimes: {
      const struct timespec t[2] = {kFixedTimes[s.n % std::size(kFixedTimes)],
                                    kFixedTimes[(s.n >> 8) % std::size(kFixedTimes)]};
      put(("utimes " + s.a + " " + TimeName(t[0]) + " " + TimeName(t[1])).c_str(),
          rc(utimensat(AT_FDCWD, a.c_str(), t, AT_SYMLINK_NOFOLLOW)));
      break;
    }
    case Op::kOpenTrunc:
      put(("open(O_TRUNC) " + s.a).c_str(),
          OpenAndWrite(a, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_NONBLOCK, "", -1));
      break;
    case Op::kFallocate: {
      static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE,
                                   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
      const int mode = kModes[(s.n >> 16) % std::size(kModes)];
      const off_t off = Offset(s.n);
      const off_t len = 1 + static_cast<off_t>((s.n >> 24) % 9000);
      int fd = open(a.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      int e = rc(fd);
      if (fd >= 0) {
        e = rc(fallocate(fd, mode, off, len));
        close(fd);
      }
      put(("fallocate " + s.a + " mode " + std::to_string(mode) + " @" + std::to_string(off) + "+" +
           std::to_string(len))
              .c_str(),
          e);
      break;
    }
    case Op::kListXattr: {
      char buf[4096];
      ssize_t n = llistxattr(a.c_str(), buf, sizeof(buf));
      int e = rc(n);
      std::vector<std::string> names;
      for (ssize_t i = 0; i < n;) {
        std::string name(buf + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        // security.* and system.* are the file systems' own.
        if (name.starts_with("user.") || name.starts_with("trusted.")) names.push_back(name);
      }
      std::sort(names.begin(), names.end());
      std::string list;
      for (const auto& name : names) list += name + ",";
      put(("listxattr " + s.a).c_str(), e, list);
      break;
    }
    case Op::kArchive: {
      // As `overtier archive --release --keep N` asks (control::OpenAt's
      // O_NOATIME open). Refusals (a lower file, a file open elsewhere, not
      // resident) are the tier's business: the step shows no outcome.
      if (g_archive_steps) {
        int fd = open(a.c_str(), O_RDONLY | O_NOATIME | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
          overtier_ctl_request r{};
          r.version = OVERTIER_CTL_VERSION;
          r.flags = OVERTIER_CTL_RELEASE;
          r.offset = (s.n >> 20) % 3 == 0 ? 0 : Offset(s.n);
          (void)ioctl(fd, OVERTIER_IOC_ARCHIVE, &r);
          close(fd);
        }
      }
      out << "#" << index << " archive+release " << s.a;
      break;
    }
    case Op::kSlotOpen: {
      int& fd = slots->fd[s.n % kSlots];
      if (fd >= 0) close(fd);
      if (g_tmpfile_steps && (s.n >> 24) % 4 == 0) {
        const size_t slash = s.a.rfind('/');
        const std::string dir = slash == std::string::npos ? "" : s.a.substr(0, slash);
        fd = open((root + "/" + dir).c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
        put(("open[" + std::to_string(s.n % kSlots) + "] tmpfile in /" + dir).c_str(), rc(fd));
        break;
      }
      const bool rw = (s.n >> 16) % 2 == 0;
      fd = open(a.c_str(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
      put(("open[" + std::to_string(s.n % kSlots) + "] " + s.a + (rw ? " rw" : " ro")).c_str(),
          rc(fd));
      break;
    }
    case Op::kSlotWrite: {
      const int fd = slots->fd[s.n % kSlots];
      const off_t off = Offset(s.n);
      std::string what = "write[" + std::to_string(s.n % kSlots) + "] @" + std::to_string(off);
      if (fd < 0) {
        put(what.c_str(), EBADF);
        break;
      }
      put(what.c_str(), rc(pwrite(fd, tag.data(), tag.size(), off)));
      break;
    }
    case Op::kSlotRead: {
      const int fd = slots->fd[s.n % kSlots];
      const off_t off = (s.n >> 40) % 2 == 1 ? static_cast<off_t>(s.n % kBigSpan) : 0;
      std::string what = "pread[" + std::to_string(s.n % kSlots) + "] @" + std::to_string(off);
      char buf[4096];
      ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf), off);
      int e = fd < 0 ? EBADF : rc(n);
      put(what.c_str(), e, e == 0 ? Digest(std::string(buf, static_cast<size_t>(n))) : "");
      break;
    }
    case Op::kSlotStat: {
      const int fd = slots->fd[s.n % kSlots];
      struct stat st;
      int e = fd < 0 ? EBADF : rc(fstat(fd, &st));
      std::ostringstream d;
      if (e == 0) {
        d << TypeName(st.st_mode) << " " << std::oct << (st.st_mode & 07777) << std::dec << " "
          << st.st_uid << ":" << st.st_gid;
        if (!S_ISDIR(st.st_mode)) d << " size=" << st.st_size << " nlink=" << st.st_nlink;
      }
      put(("fstat[" + std::to_string(s.n % kSlots) + "]").c_str(), e, d.str());
      break;
    }
    case Op::kSlotClose: {
      int& fd = slots->fd[s.n % kSlots];
      if (g_tmpfile_steps && fd >= 0 && (s.n >> 24) % 2 == 0) {
        put(("link[" + std::to_string(s.n % kSlots) + "] " + s.b).c_str(),
            rc(linkat(fd, "", AT_FDCWD, (root + "/" + s.b).c_str(), AT_EMPTY_PATH)));
      }
      put(("close[" + std::to_string(s.n % kSlots) + "]").c_str(), fd < 0 ? EBADF : rc(close(fd)));
      fd = -1;
      break;
    }
    case Op::kCount:
    case Op::kRemount:
      break;
  }
  return out.str();
}

int OpsPerSeed() {
  const char* v = std::getenv("OVERTIER_DIFF_OPS");
  int n = v != nullptr ? std::atoi(v) : 0;
  return n > 0 ? n : 400;
}

class DifferentialTest : public UnionFsTest, public ::testing::WithParamInterface<uint64_t> {
 protected:
  // Two lowers with every overlay construct: hard links (h1 a copy of f1
  // without), symlinks, xattrs,
  // owners, a merged directory with a whiteout, an opaque directory, a
  // whited-out directory, directories only in one layer.
  void MakeLowers(bool hard_links) {
    // lower1, the bottom layer.
    WriteFile(L(1, "f0"), "lower1 f0", 0644);
    WriteFile(L(1, "big"), Payload(kBigSize, 7), 0644);  // three 256 KiB chunks
    WriteFile(L(1, "f1"), "lower1 f1 (linked as h1)", 0640);
    if (hard_links) {
      ASSERT_EQ(link(L(1, "f1").c_str(), L(1, "h1").c_str()), 0);
    } else {
      WriteFile(L(1, "h1"), "lower1 f1 (linked as h1)", 0640);
    }
    SetXattr(L(1, "f1"), "user.k0", "from lower1");
    Chown(L(1, "f0"), 1001, 1001);
    MakeSymlink("f0", L(1, "s"));
    MakeDirs(L(1, "dA/sub"));
    WriteFile(L(1, "dA/x"), "dA x");
    WriteFile(L(1, "dA/y"), "dA y");
    WriteFile(L(1, "dA/sub/z"), "deep z");
    MakeDirs(L(1, "dB"));
    WriteFile(L(1, "dB/p"), "dB p");
    MakeDirs(L(1, "m"));
    WriteFile(L(1, "m/l1a"), "m l1a");
    WriteFile(L(1, "m/l1b"), "m l1b (whited out above)");
    MakeDirs(L(1, "o"));
    WriteFile(L(1, "o/hidden"), "hidden by the opaque dir above");
    // lower0, on top.
    MakeDirs(L(0, "m"));
    WriteFile(L(0, "m/l0a"), "m l0a");
    MakeWhiteout(L(0, "m/l1b"));
    MakeDirs(L(0, "o"));
    MakeOpaque(L(0, "o"));
    WriteFile(L(0, "o/vis"), "o vis");
    WriteFile(L(0, "f2"), "lower0 f2", 0600);
    MakeDirs(L(0, "dC"));
    WriteFile(L(0, "dC/q"), "dC q");
    // Places the unprivileged steps may change: a directory and a file of
    // the user's below, a merged directory the user owns on top (with a
    // whiteout), and a sticky world-writable one (as /tmp).
    Chown(L(1, "dB"), kUser, kUser);
    Chown(L(1, "dB/p"), kUser, kUser);
    Chown(L(0, "m"), kUser, kUser);
    ASSERT_EQ(chmod(L(0, "dC").c_str(), 01777), 0);
    MakeDirs(L(0, "dA"));
    WriteFile(L(0, "dA/x"), "dA x from lower0 (hides lower1's)");
  }

  // A fresh upper and work directory for the next mount.
  void ResetUpper() {
    RemoveTree(U());
    RemoveTree(work());
    for (const auto& d : {U(), work()}) {
      ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d;
      ASSERT_EQ(chmod(d.c_str(), 0755), 0);
    }
  }

  // Mounts `cfg`, applies the steps, returns their log and the final view.
  std::vector<std::string> RunOn(const MountConfig& cfg, const std::vector<Step>& steps,
                                 TreeSnapshot* view) {
    std::vector<std::string> log;
    Mount(cfg);
    if (HasFatalFailure()) return log;
    Slots slots;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i].op == Op::kRemount) {
        slots.CloseAll();
        Remount();
        if (HasFatalFailure()) return log;
        log.push_back("#" + std::to_string(i) + " remount");
        continue;
      }
      const Step& st = steps[i];
      const int n = static_cast<int>(i);
      log.push_back(st.as_user ? ApplyAsUser(M(""), st, n) : Apply(M(""), st, n, &slots));
    }
    slots.CloseAll();
    *view = View();
    Unmount();
    return log;
  }

  // Imports each lower into a new store as an image; returns the mount
  // configuration that stacks them (the lowers stay for the kernel).
  // The plain lowers, with a store: the migration tier on, copy-ups whole.
  MountConfig PlainLowersWithAStore() {
    MountConfig cfg = MountConfig::On(Target::kOvertier);
    const std::string store = base() + "/store";
    std::string out;
    EXPECT_EQ(RunCmd({OvertierBin(), "store", "init", store}, &out), 0) << out;
    cfg.overtier_opts = "store=" + store;
    return cfg;
  }

  MountConfig ImageLowers() {
    MountConfig cfg = PlainLowersWithAStore();
    const std::string store = base() + "/store";
    std::string out;
    for (int i : {0, 1}) {
      const std::string name = "l" + std::to_string(i);
      EXPECT_EQ(RunCmd({OvertierBin(), "image", "import", store, name, L(i)}, &out), 0) << out;
    }
    cfg.overtier_lowerdir = "image:l0:image:l1";
    cfg.overtier_opts = "store=" + store;
    return cfg;
  }

  // Which lowers the target mounts, and whether with a store (and so
  // with the migration tier, whose archive steps then run).
  enum class Lowers { kPlain, kPlainWithAStore, kImages };

  void Check(bool lower_hard_links, Lowers lowers = Lowers::kPlain) {
    Check(GetParam(), OpsPerSeed(), lower_hard_links, lowers, /*tmpfiles=*/true);
  }
  void Check(uint64_t seed, int ops, bool lower_hard_links, Lowers lowers, bool tmpfiles = false) {
    g_tmpfile_steps = tmpfiles;
    ASSERT_NO_FATAL_FAILURE(MakeLowers(lower_hard_links));
    const std::vector<Step> steps = Sequence(seed, ops);
    MountConfig target_cfg = MountConfig::On(target());
    if (lowers == Lowers::kImages) target_cfg = ImageLowers();
    if (lowers == Lowers::kPlainWithAStore) target_cfg = PlainLowersWithAStore();
    ASSERT_FALSE(HasFailure()) << "making the store failed";

    // The target's upper and work directories inside a kernel overlayfs,
    // as container storage inside a container has them.
    std::unique_ptr<OuterOverlay> outer;
    if (upper_on_overlay_) {
      outer = std::make_unique<OuterOverlay>(base() + "/outer");
      ASSERT_TRUE(outer->error.empty()) << outer->error;
      target_cfg.overtier_upperdir = outer->path + "/upper";
      target_cfg.overtier_workdir = outer->path + "/work";
    }

    TreeSnapshot kernel_view, target_view;
    // The reference copies data up at once (metacopy=off): the kernel
    // stamps the mtime of the moment on a metadata-only copy that gets its
    // data later (an open for writing that writes nothing), where overtier
    // keeps the user's (docs/SEMANTICS.md, "Times"). With the data copied
    // at once, the kernel keeps the user's times too.
    MountConfig kernel_cfg = MountConfig::On(Target::kKernel);
    kernel_cfg.kernel_opts = "redirect_dir=on,metacopy=off,index=on";
    target_cfg.kernel_opts = kernel_cfg.kernel_opts;  // a kernel target checks the test
    std::vector<std::string> kernel_log = RunOn(kernel_cfg, steps, &kernel_view);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_NO_FATAL_FAILURE(ResetUpper());
    g_archive_steps = lowers != Lowers::kPlain;
    std::vector<std::string> target_log = RunOn(target_cfg, steps, &target_view);
    g_archive_steps = false;
    ASSERT_FALSE(HasFatalFailure());

    const char* name = TargetName(target());
    if (std::getenv("OVERTIER_DIFF_DUMP") != nullptr) {
      for (size_t i = 0; i < steps.size(); ++i)
        std::fprintf(stderr, "%s\n  %s\n", kernel_log[i].c_str(), target_log[i].c_str());
    }
    for (size_t i = 0; i < steps.size(); ++i) {
      if (kernel_log[i] == target_log[i]) continue;
      std::ostringstream ctx;
      for (size_t j = i >= 12 ? i - 12 : 0; j < i; ++j) ctx << "    " << kernel_log[j] << "\n";
      ADD_FAILURE() << "seed " << seed << ": the outcome of step " << i
                    << " differs (steps before it, as the kernel logged them:)\n"
                    << ctx.str() << "  kernel: " << kernel_log[i] << "\n  " << name << ": "
                    << target_log[i];
      return;  // what follows depends on this one
    }
    std::string diff = DiffTrees(kernel_view, "kernel", target_view, name);
    ASSERT_TRUE(diff.empty()) << "seed " << seed << ": the final views differ:\n" << diff;
    if (lower_hard_links || upper_on_overlay_) return;

    // The upper layer the target left, read by the kernel.
    ASSERT_NO_FATAL_FAILURE(Mount(MountConfig::On(Target::kKernel)));
    diff = DiffTrees(kernel_view, "kernel's own run", View(), "kernel over the upper layer");
    EXPECT_TRUE(diff.empty()) << "seed " << seed << ": the kernel reads " << name
                              << "'s upper layer differently:\n"
                              << diff;
    Unmount();

    // That upper layer as the top lower one (a saved session under the
    // next): its metadata-only copies and renamed directories lead to the
    // layers below, for the kernel (metacopy=on) as for the target.
    MountConfig stacked = MountConfig::On(Target::kKernel);
    stacked.upper = false;
    stacked.follow_metacopy = true;
    stacked.overtier_lowerdir = U() + ":" + L(0) + ":" + L(1);
    ASSERT_NO_FATAL_FAILURE(Mount(stacked));
    const TreeSnapshot kernel_stacked = View();
    Unmount();
    stacked.target = target();
    ASSERT_NO_FATAL_FAILURE(Mount(stacked));
    diff = DiffTrees(kernel_stacked, "kernel", View(), name);
    EXPECT_TRUE(diff.empty()) << "seed " << seed << ": " << name << "'s upper layer as a lower one "
                              << "reads differently:\n"
                              << diff;
    Unmount();
  }

  // A kernel overlayfs at `path` (its layers beside it), unmounted at the
  // end; `error` says why it could not be mounted.
  struct OuterOverlay {
    explicit OuterOverlay(std::string p) : path(std::move(p)) {
      for (const char* d : {"-lower", "-upper", "-work", ""}) mkdir((path + d).c_str(), 0755);
      const std::string opts =
          "lowerdir=" + path + "-lower,upperdir=" + path + "-upper,workdir=" + path + "-work";
      if (mount("overlay", path.c_str(), "overlay", 0, opts.c_str()) != 0) {
        error = "mount -t overlay " + path + ": " + std::strerror(errno);
        return;
      }
      mounted = true;
      for (const char* d : {"/upper", "/work"}) {
        if (mkdir((path + d).c_str(), 0755) != 0) error = path + d + ": " + std::strerror(errno);
      }
    }
    ~OuterOverlay() {
      if (mounted) umount2(path.c_str(), MNT_DETACH);
    }
    std::string path, error;
    bool mounted = false;
  };
  bool upper_on_overlay_ = false;

  TreeSnapshot View() {
    SnapshotOptions o;
    o.mtime = false;  // the two runs happen at different times
    o.overlay_xattrs = g_overlay_xattr_steps;
    return SnapshotTree(M(""), o);
  }
};

TEST_P(DifferentialTest, SameOutcomesAsTheKernel) { Check(/*lower_hard_links=*/true); }

// Without hard links in the lowers, the kernel must read the upper layer the
// target left exactly as its own: overtier joins the names of a lower
// hard-link group through WORK/overtier-index, which the kernel does not
// know (docs/FORMAT.md, "Reading an upper layer with the kernel").
// The lowers as images of a store (lowerdir=image:..., store=): lookups and
// listings answered by the image tree, copy-up of image files lazy (the
// image's content becomes the upper file's archive, restored where
// written), and the migration tier on. The view must still be the kernel's
// over the same lowers as plain directories.
TEST_P(DifferentialTest, ImageLowersGiveTheSameOutcomes) {
  if (IsKernel()) GTEST_SKIP() << "images are overtier's";
  Check(/*lower_hard_links=*/true, Lowers::kImages);
}

// Plain lowers and a store: files archived and released between the
// steps (kArchive) must look exactly as if they had never been.
TEST_P(DifferentialTest, ArchivedFilesGiveTheSameOutcomes) {
  if (IsKernel()) GTEST_SKIP() << "the migration tier is overtier's";
  Check(/*lower_hard_links=*/true, Lowers::kPlainWithAStore);
}

TEST_P(DifferentialTest, TheKernelReadsTheUpperLayerAsItsOwn) { Check(/*lower_hard_links=*/false); }

// Names of the overlay namespace set, listed and removed through the
// mount (kept escaped, as the user's, by both), directories among them
// marked "trusted.overlay.opaque" that must stay merged; and the kernel
// must read the upper layer the target left the same way.
TEST_P(DifferentialTest, OverlayXattrNamesGiveTheSameOutcomes) {
  g_overlay_xattr_steps = true;
  Check(/*lower_hard_links=*/false);
  g_overlay_xattr_steps = false;
}

// The upper and work directories inside a kernel overlayfs (podman's
// storage inside a container, where fuse-overlayfs is the usual mount
// program): the upper file system refuses whiteout devices and
// RENAME_WHITEOUT, so whiteouts are ".wh.NAME" files there
// (LayerSet::whiteout_files); the view must still be the kernel's.
TEST_P(DifferentialTest, AnUpperOnAnOverlayfsGivesTheSameOutcomes) {
  if (IsKernel()) GTEST_SKIP() << "the kernel overlayfs takes no upper on an overlayfs";
  upper_on_overlay_ = true;
  Check(/*lower_hard_links=*/true);
}

// Sequences longer runs found a difference in, kept after the fix.
class DifferentialRegression : public DifferentialTest {};

// Image lowers, seed 19, 1500 steps: a symlink hard-linked through the
// mount lost the name the daemon knew it by, and setting its times by the
// remaining name was EINVAL (union/attr.cc).
TEST_F(DifferentialRegression, ImageLowersSeed19Of1500Steps) {
  if (IsKernel()) GTEST_SKIP() << "images are overtier's";
  Check(19, 1500, /*lower_hard_links=*/true, Lowers::kImages);
}

// Image lowers, seed 1227 (a run of 2000 steps): a fallocate with
// KEEP_SIZE past the end of a lazily copied-up file moved its mtime, as on
// any file system, but changed no byte, so the migration record kept the
// old time and the next archive put it back (src/migration.cc,
// KeepUserTimes).
TEST_F(DifferentialRegression, ImageLowersSeed1227Of400Steps) {
  if (IsKernel()) GTEST_SKIP() << "images are overtier's";
  Check(1227, 400, /*lower_hard_links=*/true, Lowers::kImages);
}

// Image lowers, seed 1861 (2000 steps): a file opened read-only before
// its lazy copy-up, then appended to and unlinked, read zeros where the
// image's bytes were: the unlink dropped the record while that reader,
// which follows the copy-up, still needed it (src/fuse_ops.cc, OpUnlink).
TEST_F(DifferentialRegression, ImageLowersSeed1861Of2000Steps) {
  if (IsKernel()) GTEST_SKIP() << "images are overtier's";
  Check(1861, 2000, /*lower_hard_links=*/true, Lowers::kImages);
}

std::vector<uint64_t> Seeds() {
  std::vector<uint64_t> seeds;
  if (const char* one = std::getenv("OVERTIER_DIFF_SEED")) {
    seeds.push_back(std::strtoull(one, nullptr, 10));
    return seeds;
  }
  const char* v = std::getenv("OVERTIER_DIFF_SEEDS");
  uint64_t n = v != nullptr ? std::strtoull(v, nullptr, 10) : 0;
  for (uint64_t i = 1; i <= (n > 0 ? n : 16); ++i) seeds.push_back(i);
  return seeds;
}

INSTANTIATE_TEST_SUITE_P(Seeds, DifferentialTest, ::testing::ValuesIn(Seeds()));

}  // namespace
}  // namespace overtier::it
