// overtier-fsx: a randomized data-integrity exerciser for (union) filesystems.
//
//   overtier-fsx prepare --lower L1[:L2...] --files K --seed S [--max-size B]
//   overtier-fsx run     --dir MNT --files K --seed S --ops N [--jobs J] [--state FILE] ...
//   overtier-fsx verify  --dir MNT --state FILE
//
// `prepare` writes the initial files into the lower layer(s) before the mount; `run` derives the
// same initial model from the seed, so every file starts life in a lower layer and is copied up
// by its first write (files are read for a while before that). Each read is checked against the
// in-memory model. `run --state` records the parameters and final digests; `verify` replays the
// op stream in memory (it does not depend on anything the filesystem returned) and checks the
// files, e.g. after an unmount and remount. Run `overtier-fsx --help` for all options.

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fsx_core.h"

namespace fsx {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFail = 1;   // the filesystem misbehaved
constexpr int kExitUsage = 2;  // bad arguments or environment
constexpr size_t kHistory = 20;

constexpr char kUsage[] = R"(usage:
  overtier-fsx prepare --lower DIR[:DIR...] --files K --seed S [--max-size BYTES]
  overtier-fsx run --dir DIR --files K --seed S --ops N [options]
  overtier-fsx verify --dir DIR --state FILE

prepare writes the initial content of files f0000.. into the lower layer dirs (top layer
first, as in lowerdir=); files sit in random layers, shadowing different "decoy" content in
the layers below. run expects exactly that content in DIR (the mount, or the prepared dir
itself when testing a plain directory) and must get the same --files/--seed/--max-size.

run options:
  --ops N            total operations (split over the jobs)          [10000]
  --jobs J           processes, each on its own subset of the files  [1]
  --max-size BYTES   largest file size                               [262144]
  --max-len BYTES    largest single op length                        [65536]
  --state FILE       write parameters + final digests for verify (keep it off the mount)
  --verify-every N   full verification of all files every N ops per job (0 = never) [1000]
  --stale-fds        also read through O_RDONLY fds opened before any copy-up, which must
                     see later writes (kernel overlayfs semantics since 4.19)
  --require LIST     fail if a probed feature is missing: falloc,keep_size,punch,zero_range,
                     mmap,copy_range (comma separated)
  --disable LIST     do not use these features even if supported
  --trace-from N     print every op from op number N on
  --quiet            no progress output
)";

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
  std::string cmd;
  std::string dir;
  std::string lower;
  std::string state;
  Params p;
  uint64_t verify_every = 1000;
  uint64_t trace_from = 0;
  std::vector<std::string> require;
  std::vector<std::string> disable;
  bool quiet = false;
  bool have_files = false;
  bool have_seed = false;
};

[[noreturn]] void UsageError(const std::string& msg) {
  std::fprintf(stderr, "overtier-fsx: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(kExitUsage);
}

uint64_t ParseU64(const std::string& name, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v.c_str(), &end, 0);
  if (v.empty() || *end != '\0' || errno != 0 || v[0] == '-') {
    UsageError("bad number for " + name + ": '" + v + "'");
  }
  return x;
}

std::vector<std::string> SplitList(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  if (argc < 2) UsageError("missing subcommand");
  o.cmd = argv[1];
  if (o.cmd == "--help" || o.cmd == "-h") {
    std::fputs(kUsage, stdout);
    std::exit(kExitOk);
  }
  if (o.cmd != "prepare" && o.cmd != "run" && o.cmd != "verify") {
    UsageError("unknown subcommand '" + o.cmd + "'");
  }
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto val = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) UsageError("missing value for " + a);
      return argv[++i];
    };
    if (a == "--dir") {
      o.dir = val();
    } else if (a == "--lower") {
      o.lower = val();
    } else if (a == "--state") {
      o.state = val();
    } else if (a == "--files") {
      o.p.files = static_cast<uint32_t>(ParseU64(a, val()));
      o.have_files = true;
    } else if (a == "--seed") {
      o.p.seed = ParseU64(a, val());
      o.have_seed = true;
    } else if (a == "--ops") {
      o.p.ops = ParseU64(a, val());
    } else if (a == "--jobs") {
      o.p.jobs = static_cast<uint32_t>(ParseU64(a, val()));
    } else if (a == "--max-size") {
      o.p.max_size = ParseU64(a, val());
    } else if (a == "--max-len") {
      o.p.max_len = ParseU64(a, val());
    } else if (a == "--verify-every") {
      o.verify_every = ParseU64(a, val());
    } else if (a == "--trace-from") {
      o.trace_from = ParseU64(a, val());
    } else if (a == "--require") {
      o.require = SplitList(val(), ',');
    } else if (a == "--disable") {
      o.disable = SplitList(val(), ',');
    } else if (a == "--stale-fds") {
      o.p.stale_fds = true;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(kExitOk);
    } else {
      UsageError("unknown option '" + a + "'");
    }
  }
  return o;
}

void ValidateParams(const Options& o) {
  if (o.p.files == 0) UsageError("--files must be at least 1");
  if (o.p.max_size == 0) UsageError("--max-size must be at least 1");
  if (o.p.jobs == 0 || o.p.jobs > o.p.files) UsageError("--jobs must be in [1, --files]");
  if (o.p.max_len == 0) UsageError("--max-len must be at least 1");
}

// ---------------------------------------------------------------------------------------------
// Small I/O helpers. Short transfers are legal for some calls, so loop until done or EOF.

// Returns bytes read (stops at EOF), or -1 with errno set.
ssize_t PreadFull(int fd, uint8_t* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

// append: use write() (the fd is O_APPEND), else pwrite() at off. Returns false with errno set.
bool WriteFull(int fd, const uint8_t* buf, size_t len, uint64_t off, bool append) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = append ? write(fd, buf + done, len - done)
                       : pwrite(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) {
      errno = EIO;  // a regular file must make progress
      return false;
    }
    done += static_cast<size_t>(r);
  }
  return true;
}

std::string Errno(int e) { return std::strerror(e); }

std::string Hex(const uint8_t* p, size_t n) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof(b), "%02x", p[i]);
    if (i) s += (i % 8 == 0) ? "  " : " ";
    s += b;
  }
  return s;
}

std::string JoinPath(const std::string& dir, const std::string& name) { return dir + "/" + name; }

int OpenFlags(OpenMode m) {
  switch (m) {
    case OpenMode::kReadOnly:
      return O_RDONLY;
    case OpenMode::kReadWrite:
      return O_RDWR;
    case OpenMode::kAppend:
      return O_RDWR | O_APPEND;
  }
  return O_RDONLY;
}

// Features the run did not use, as a --disable list (reproducing needs the same op stream).
std::string DisabledFeatures(const Features& f) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) return;
    if (!s.empty()) s += ",";
    s += name;
  };
  add(f.falloc, "falloc");
  add(f.falloc_keep, "keep_size");
  add(f.punch, "punch");
  add(f.zero_range, "zero_range");
  add(f.mmap, "mmap");
  add(f.copy_range, "copy_range");
  return s;
}

// Says which op last set byte `at` of a file (op `n` of `job`), replaying the stream up to it:
// the run only keeps the last few ops, but a failure report wants to name the op that last
// wrote a corrupted byte, and whether it wrote data there or zero-filled it.
std::string DescribeWriter(const Params& p, uint32_t job, uint64_t n, uint64_t at) {
  if (n == 0) return "initial content (written by prepare into the lower layer)";
  Simulation s(p, job);
  while (s.ops_done() + 1 < n) s.Apply(s.Generate());
  const Op op = s.Generate();
  const bool data_op =
      op.type == OpType::kWrite || op.type == OpType::kMapWrite || op.type == OpType::kCopyRange;
  const bool in_range = at >= op.off && at < op.off + op.len;
  return std::string(data_op && in_range ? "data of" : "zero-fill (hole, truncate or punch) by") +
         " op " + DescribeOp(op, s.files());
}

// Compares `got` with the model's bytes at [off, off + len). Returns "" when equal, else a
// multi-line report that pinpoints the first bad byte and guesses what went wrong.
std::string MismatchReport(const Params& p, uint32_t job, const FileModel& f, uint64_t off,
                           const uint8_t* got, uint64_t len) {
  const uint8_t* want = f.data.data() + off;
  uint64_t first = len, last = 0, bad = 0;
  for (uint64_t i = 0; i < len; ++i) {
    if (got[i] != want[i]) {
      if (first == len) first = i;
      last = i;
      ++bad;
    }
  }
  if (bad == 0) return "";
  std::ostringstream o;
  const uint64_t at = off + first;
  o << "  " << FileName(f.index) << ": model size " << f.size() << ", checked [" << off << ", "
    << off + len << ")\n";
  o << "  first bad byte at offset " << at << " (0x" << std::hex << at << std::dec
    << "): expected 0x" << Hex(want + first, 1) << ", got 0x" << Hex(got + first, 1) << "; " << bad
    << " bad byte(s), last at offset " << off + last << "\n";
  const uint64_t show_from = first & ~uint64_t{15};
  const uint64_t show_len = std::min<uint64_t>(32, len - show_from);
  o << "  expected @" << off + show_from << ": " << Hex(want + show_from, show_len) << "\n";
  o << "  actual   @" << off + show_from << ": " << Hex(got + show_from, show_len) << "\n";
  o << "  expected byte comes from: " << DescribeWriter(p, job, f.writer[at], at) << "\n";
  // Common union-filesystem failure shapes: reading the lower copy after copy-up, or zeros
  // where data was written (lost write, wrong truncate/punch).
  std::vector<uint8_t> init;
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  InitialContent(p.seed, f.index, p.max_size, &init, &holes);
  bool all_zero = true, all_init = true;
  for (uint64_t i = first; i <= last; ++i) {
    if (got[i] != want[i]) {
      all_zero = all_zero && got[i] == 0;
      const uint64_t pos = off + i;
      all_init = all_init && pos < init.size() && got[i] == init[pos];
    }
  }
  if (all_init) {
    o << "  hint: every bad byte equals the file's initial lower-layer content there "
         "(stale read of the lower file after copy-up, or a lost write)\n";
  } else if (all_zero) {
    o << "  hint: every bad byte is zero (lost write, or a wrong truncate/punch/zero-range)\n";
  }
  return o.str();
}

// ---------------------------------------------------------------------------------------------
// SIGBUS guard for mapped accesses: a filesystem that loses track of the file size makes the
// access fault; report that like any other failure instead of dying silently.

sigjmp_buf g_bus_jmp;
volatile sig_atomic_t g_in_map = 0;

void OnSigbus(int sig) {
  if (g_in_map) siglongjmp(g_bus_jmp, 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

// ---------------------------------------------------------------------------------------------
// Feature probing, on scratch files in the target directory (created by the run itself, so on a
// union mount they live in the upper layer).

Features Probe(const std::string& dir, const Options& o, bool quiet) {
  Features f;
  const std::string a = JoinPath(dir, ".fsx-probe-a." + std::to_string(getpid()));
  const std::string b = JoinPath(dir, ".fsx-probe-b." + std::to_string(getpid()));
  int fa = open(a.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  int fb = open(b.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fa < 0 || fb < 0) {
    std::fprintf(stderr, "overtier-fsx: cannot create probe files in %s: %s\n", dir.c_str(),
                 Errno(errno).c_str());
    std::exit(kExitUsage);
  }
  std::vector<uint8_t> buf(65536);
  FillData(1, buf.data(), buf.size());
  if (!WriteFull(fa, buf.data(), buf.size(), 0, false)) {
    std::fprintf(stderr, "overtier-fsx: cannot write probe file: %s\n", Errno(errno).c_str());
    std::exit(kExitUsage);
  }
  std::vector<std::string> notes;
  auto check = [&](bool* flag, const char* what, int r) {
    if (r != 0) {
      *flag = false;
      notes.push_back(std::string(what) + " not supported here (" + Errno(errno) +
                      "); those ops are skipped");
    }
  };
  check(&f.falloc, "fallocate(mode 0)", fallocate(fa, 0, 65536, 8192));
  check(&f.falloc_keep, "fallocate(KEEP_SIZE)", fallocate(fa, FALLOC_FL_KEEP_SIZE, 100000, 4096));
  check(&f.punch, "fallocate(PUNCH_HOLE|KEEP_SIZE)",
        fallocate(fa, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096));
  check(&f.zero_range, "fallocate(ZERO_RANGE)", fallocate(fa, FALLOC_FL_ZERO_RANGE, 8192, 4096));
  {
    void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fa, 0);
    if (m == MAP_FAILED) {
      check(&f.mmap, "mmap(MAP_SHARED, PROT_WRITE)", -1);
    } else {
      static_cast<volatile uint8_t*>(m)[0] = 1;
      check(&f.mmap, "msync(MS_SYNC)", msync(m, 4096, MS_SYNC));
      munmap(m, 4096);
    }
  }
  {
    loff_t in = 0, out = 0;
    ssize_t r = copy_file_range(fa, &in, fb, &out, 4096, 0);
    check(&f.copy_range, "copy_file_range", r < 0 ? -1 : 0);
  }
  close(fa);
  close(fb);
  unlink(a.c_str());
  unlink(b.c_str());

  struct Named {
    const char* name;
    bool* flag;
  };
  const Named names[] = {{"falloc", &f.falloc}, {"keep_size", &f.falloc_keep},
                         {"punch", &f.punch},   {"zero_range", &f.zero_range},
                         {"mmap", &f.mmap},     {"copy_range", &f.copy_range}};
  auto lookup = [&](const std::string& n) -> bool* {
    for (const auto& e : names) {
      if (n == e.name) return e.flag;
    }
    UsageError("unknown feature '" + n + "'");
  };
  for (const auto& n : o.require) {
    if (!*lookup(n)) {
      for (const auto& note : notes) std::fprintf(stderr, "overtier-fsx: %s\n", note.c_str());
      std::fprintf(stderr, "overtier-fsx: FAILURE: required feature '%s' is not supported\n",
                   n.c_str());
      std::exit(kExitFail);
    }
  }
  for (const auto& n : o.disable) {
    bool* flag = lookup(n);
    if (*flag) notes.push_back(n + " disabled by --disable");
    *flag = false;
  }
  if (!quiet || !notes.empty()) {
    for (const auto& note : notes) std::fprintf(stderr, "overtier-fsx: NOTE: %s\n", note.c_str());
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// One job: its files, its op stream, its checks.

struct FileResult {
  uint32_t index;
  uint64_t size;
  uint64_t digest;
};

struct Stats {
  std::array<uint64_t, static_cast<size_t>(OpType::kCount)> by_type{};
  std::map<std::string, uint64_t> extra;  // sub-kinds worth seeing in the summary
};

struct JobResult {
  std::vector<FileResult> files;
  Stats stats;
};

class Runner {
 public:
  Runner(const Options& o, uint32_t job) : o_(o), sim_(o.p, job) {}

  JobResult Run();

 private:
  std::string Path(uint32_t file) const {
    return JoinPath(o_.dir, FileName(sim_.files()[file].index));
  }
  std::string Prefix() const {
    return o_.p.jobs > 1 ? "[job " + std::to_string(sim_.job()) + "] " : "";
  }
  [[noreturn]] void Fail(const std::string& what, const std::string& details = "");
  void CheckBytes(uint32_t file, uint64_t off, const uint8_t* got, uint64_t len,
                  const std::string& how);
  void CheckFdSize(uint32_t file, int fd, const std::string& how);
  void Reopen(uint32_t file, OpenMode mode, bool trunc);
  void VerifyAll(const std::string& why);
  void Execute(const Op& op);
  void DoRead(const Op& op, int fd, const std::string& how);
  void DoMapRead(const Op& op);
  void DoMapWrite(const Op& op);
  void DoCopyRange(const Op& op);

  const Options& o_;
  Simulation sim_;
  std::vector<int> fd_;
  std::vector<int> stale_fd_;
  std::deque<Op> history_;
  const Op* cur_ = nullptr;
  Stats stats_;
};

void Runner::Fail(const std::string& what, const std::string& details) {
  std::ostringstream o;
  const std::string pre = Prefix();
  o << "\n" << pre << "FSX FAILURE: " << what << "\n";
  if (cur_ != nullptr) {
    o << "  at op " << cur_->n << " of " << sim_.total_ops() << " (job " << sim_.job()
      << "): " << DescribeOp(*cur_, sim_.files()) << "\n";
  }
  o << details;
  if (!history_.empty()) {
    o << "  last " << history_.size() << " ops of job " << sim_.job() << " (oldest first):\n";
    for (const Op& h : history_) o << "    " << DescribeOp(h, sim_.files()) << "\n";
  }
  const Params& p = o_.p;
  o << "  seed " << p.seed << "; reproduce: overtier-fsx prepare --lower LOWER[:...] --files "
    << p.files << " --seed " << p.seed << " --max-size " << p.max_size
    << "; mount; overtier-fsx run --dir MNT --files " << p.files << " --seed " << p.seed
    << " --ops " << p.ops << " --jobs " << p.jobs << " --max-size " << p.max_size << " --max-len "
    << p.max_len << (p.stale_fds ? " --stale-fds" : "");
  const std::string off = DisabledFeatures(p.features);
  if (!off.empty()) o << " --disable " << off;
  o << "\n";
  std::fputs(o.str().c_str(), stderr);
  std::fflush(stderr);
  std::_Exit(kExitFail);
}

void Runner::CheckBytes(uint32_t file, uint64_t off, const uint8_t* got, uint64_t len,
                        const std::string& how) {
  const FileModel& f = sim_.files()[file];
  std::string r = MismatchReport(o_.p, sim_.job(), f, off, got, len);
  if (!r.empty()) Fail("data mismatch in " + FileName(f.index) + " (" + how + ")", r);
}

void Runner::CheckFdSize(uint32_t file, int fd, const std::string& how) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    Fail("fstat " + FileName(sim_.files()[file].index) + ": " + Errno(errno));
  const uint64_t want = sim_.files()[file].size();
  if (static_cast<uint64_t>(st.st_size) != want) {
    Fail("size mismatch in " + FileName(sim_.files()[file].index) + " (" + how + ")",
         "  fstat size " + std::to_string(st.st_size) + ", model size " + std::to_string(want) +
             "\n");
  }
}

void Runner::Reopen(uint32_t file, OpenMode mode, bool trunc) {
  if (fd_[file] >= 0 && close(fd_[file]) != 0) {
    Fail("close " + FileName(sim_.files()[file].index) + ": " + Errno(errno));
  }
  fd_[file] = open(Path(file).c_str(), OpenFlags(mode) | (trunc ? O_TRUNC : 0));
  if (fd_[file] < 0) {
    Fail("open " + Path(file) + " " + OpenModeName(mode) + ": " + Errno(errno));
  }
}

void Runner::VerifyAll(const std::string& why) {
  std::vector<uint8_t> buf;
  for (uint32_t i = 0; i < sim_.files().size(); ++i) {
    const FileModel& f = sim_.files()[i];
    const std::string path = Path(i);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) Fail("stat " + path + " (" + why + "): " + Errno(errno));
    if (static_cast<uint64_t>(st.st_size) != f.size()) {
      Fail("size mismatch in " + FileName(f.index) + " (stat by path, " + why + ")",
           "  stat size " + std::to_string(st.st_size) + ", model size " +
               std::to_string(f.size()) + "\n");
    }
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) Fail("open " + path + " (" + why + "): " + Errno(errno));
    CheckFdSize(i, fd, "fstat of a fresh fd, " + why);
    // Ask for more than the size: nothing may follow EOF.
    buf.resize(f.size() + 4096);
    ssize_t r = PreadFull(fd, buf.data(), buf.size(), 0);
    if (r < 0) Fail("read " + path + " (" + why + "): " + Errno(errno));
    if (static_cast<uint64_t>(r) != f.size()) {
      Fail("wrong read length in " + FileName(f.index) + " (whole-file read, " + why + ")",
           "  read returned " + std::to_string(r) + " bytes, model size " +
               std::to_string(f.size()) + "\n");
    }
    CheckBytes(i, 0, buf.data(), f.size(), "whole-file read, " + why);
    close(fd);
  }
}

void Runner::DoRead(const Op& op, int fd, const std::string& how) {
  const FileModel& f = sim_.files()[op.file];
  std::vector<uint8_t> buf(op.len);
  ssize_t r = PreadFull(fd, buf.data(), op.len, op.off);
  if (r < 0) Fail(how + " failed: " + Errno(errno));
  const uint64_t want = op.off < f.size() ? std::min(op.len, f.size() - op.off) : 0;
  if (static_cast<uint64_t>(r) != want) {
    Fail("wrong " + how + " length in " + FileName(f.index),
         "  got " + std::to_string(r) + " bytes, expected " + std::to_string(want) +
             " (model size " + std::to_string(f.size()) + ")\n");
  }
  CheckBytes(op.file, op.off, buf.data(), want, how);
  stats_.extra["bytes read"] += want;
  if (want < op.len) ++stats_.extra["reads reaching EOF"];
}

void Runner::DoMapRead(const Op& op) {
  const FileModel& f = sim_.files()[op.file];
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t map_off = op.off & ~(page - 1);
  const uint64_t delta = op.off - map_off;
  const uint64_t map_len = delta + op.len;
  void* m =
      mmap(nullptr, map_len, PROT_READ, MAP_SHARED, fd_[op.file], static_cast<off_t>(map_off));
  if (m == MAP_FAILED) Fail("mmap(PROT_READ) failed: " + Errno(errno));
  const uint8_t* p = static_cast<const uint8_t*>(m);
  std::vector<uint8_t> buf(op.len);
  // The bytes after EOF in the last page of a mapping must read as zero (POSIX); a stale
  // page cache after a truncate shows up here.
  const uint64_t end = op.off + op.len;
  const uint64_t tail = (end == f.size() && end % page) ? page - end % page : 0;
  std::vector<uint8_t> tail_buf(tail);
  if (sigsetjmp(g_bus_jmp, 1) != 0) {
    g_in_map = 0;
    Fail("SIGBUS reading a shared mapping (the file is shorter than the model says?)");
  }
  g_in_map = 1;
  std::memcpy(buf.data(), p + delta, op.len);
  if (tail) std::memcpy(tail_buf.data(), p + map_len, tail);
  g_in_map = 0;
  munmap(m, map_len);
  CheckBytes(op.file, op.off, buf.data(), op.len, "mapped read");
  for (uint64_t i = 0; i < tail; ++i) {
    if (tail_buf[i] != 0) {
      Fail("non-zero bytes after EOF in the last mapped page of " + FileName(f.index),
           "  offset " + std::to_string(end + i) + " (EOF " + std::to_string(end) + ") reads 0x" +
               Hex(&tail_buf[i], 1) + "\n");
    }
  }
  stats_.extra["bytes read"] += op.len;
}

void Runner::DoMapWrite(const Op& op) {
  const FileModel& f = sim_.files()[op.file];
  const uint64_t end = op.off + op.len;
  if (end > f.size()) {
    // A mapping cannot extend a file: grow it first, as a program would.
    if (ftruncate(fd_[op.file], static_cast<off_t>(end)) != 0) {
      Fail("ftruncate before mapped write failed: " + Errno(errno));
    }
    ++stats_.extra["mapwrites extending the file"];
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t map_off = op.off & ~(page - 1);
  const uint64_t delta = op.off - map_off;
  const uint64_t map_len = delta + op.len;
  void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd_[op.file],
                 static_cast<off_t>(map_off));
  if (m == MAP_FAILED) Fail("mmap(PROT_READ|PROT_WRITE) failed: " + Errno(errno));
  std::vector<uint8_t> buf(op.len);
  FillData(op.data_seed, buf.data(), buf.size());
  if (sigsetjmp(g_bus_jmp, 1) != 0) {
    g_in_map = 0;
    Fail("SIGBUS writing a shared mapping (the file is shorter than the model says?)");
  }
  g_in_map = 1;
  std::memcpy(static_cast<uint8_t*>(m) + delta, buf.data(), op.len);
  g_in_map = 0;
  if (op.msync != Op::Msync::kNone &&
      msync(m, map_len, op.msync == Op::Msync::kSync ? MS_SYNC : MS_ASYNC) != 0) {
    Fail("msync failed: " + Errno(errno));
  }
  munmap(m, map_len);
  stats_.extra["bytes written"] += op.len;
}

void Runner::DoCopyRange(const Op& op) {
  const FileModel& src = sim_.files()[op.file2];
  const uint64_t want = op.off2 < src.size() ? std::min(op.len, src.size() - op.off2) : 0;
  loff_t in = static_cast<loff_t>(op.off2);
  loff_t out = static_cast<loff_t>(op.off);
  uint64_t done = 0;
  // Ask for the full length once (the source EOF must clip it to `want`), then only for what is
  // missing: a same-file copy past EOF grows the source, so asking again for the full length
  // would legitimately copy more.
  bool first = true;
  while (first || done < want) {
    const uint64_t ask = first ? op.len : want - done;
    first = false;
    ssize_t r = copy_file_range(fd_[op.file2], &in, fd_[op.file], &out, ask, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      Fail("copy_file_range failed: " + Errno(errno));
    }
    if (r == 0) break;
    done += static_cast<uint64_t>(r);
  }
  if (done != want) {
    Fail("wrong copy_file_range length", "  copied " + std::to_string(done) + " bytes, expected " +
                                             std::to_string(want) + " (source size " +
                                             std::to_string(src.size()) + ")\n");
  }
  stats_.extra["bytes copied"] += done;
}

void Runner::Execute(const Op& op) {
  FileModel& f = sim_.files()[op.file];
  if (op.reopen_first) {
    if (f.mode == OpenMode::kReadOnly) ++stats_.extra["reopens for a first write"];
    Reopen(op.file, op.reopen_to, false);
  }
  const bool append = (op.reopen_first ? op.reopen_to : f.mode) == OpenMode::kAppend;
  const int fd = fd_[op.file];
  bool changes_size = false;
  switch (op.type) {
    case OpType::kRead:
      DoRead(op, fd, "pread");
      break;
    case OpType::kStaleRead:
      DoRead(op, stale_fd_[op.file], "pread via an fd opened before copy-up");
      break;
    case OpType::kWrite: {
      std::vector<uint8_t> buf(op.len);
      FillData(op.data_seed, buf.data(), buf.size());
      if (!WriteFull(fd, buf.data(), op.len, op.off, append)) {
        Fail(std::string(append ? "append write" : "pwrite") + " failed: " + Errno(errno));
      }
      if (append) ++stats_.extra["O_APPEND writes"];
      if (op.off > f.size()) ++stats_.extra["writes past EOF (hole)"];
      stats_.extra["bytes written"] += op.len;
      changes_size = true;
      break;
    }
    case OpType::kMapRead:
      DoMapRead(op);
      break;
    case OpType::kMapWrite:
      DoMapWrite(op);
      changes_size = true;
      break;
    case OpType::kTruncate:
      if (ftruncate(fd, static_cast<off_t>(op.off)) != 0) Fail("ftruncate failed: " + Errno(errno));
      ++stats_.extra[op.off < f.size() ? "truncates down" : "truncates up/same"];
      changes_size = true;
      break;
    case OpType::kFallocate: {
      if (fallocate(fd, op.falloc_mode, static_cast<off_t>(op.off), static_cast<off_t>(op.len)) !=
          0) {
        Fail("fallocate failed: " + Errno(errno) +
             (errno == EOPNOTSUPP ? " (the probe said this mode works)" : ""));
      }
      ++stats_.extra["fallocate " + FallocModeName(op.falloc_mode)];
      changes_size = true;
      break;
    }
    case OpType::kCopyRange:
      DoCopyRange(op);
      changes_size = true;
      break;
    case OpType::kReopen:
      Reopen(op.file, op.open_mode, op.trunc);
      if (op.trunc) ++stats_.extra["O_TRUNC reopens"];
      changes_size = true;
      break;
    case OpType::kFsync:
      if (fsync(fd) != 0) Fail("fsync failed: " + Errno(errno));
      break;
    case OpType::kFdatasync:
      if (fdatasync(fd) != 0) Fail("fdatasync failed: " + Errno(errno));
      break;
    case OpType::kCount:
      break;
  }
  sim_.Apply(op);
  if (changes_size || op.reopen_first) CheckFdSize(op.file, fd_[op.file], "after the op");
  ++stats_.by_type[static_cast<size_t>(op.type)];
}

JobResult Runner::Run() {
  const size_t n = sim_.files().size();
  fd_.assign(n, -1);
  stale_fd_.assign(n, -1);
  for (uint32_t i = 0; i < n; ++i) {
    // Everything starts read-only: on a union mount nothing is copied up until an op needs it.
    fd_[i] = open(Path(i).c_str(), O_RDONLY);
    if (fd_[i] < 0) {
      std::fprintf(stderr, "%sovertier-fsx: open %s: %s (did prepare run with --files %u?)\n",
                   Prefix().c_str(), Path(i).c_str(), Errno(errno).c_str(), o_.p.files);
      std::_Exit(kExitUsage);
    }
    if (o_.p.stale_fds) {
      stale_fd_[i] = open(Path(i).c_str(), O_RDONLY);
      if (stale_fd_[i] < 0) Fail("open " + Path(i) + ": " + Errno(errno));
    }
  }
  VerifyAll("initial content, before any op");

  const uint64_t total = sim_.total_ops();
  uint64_t next_progress = total / 4;
  while (sim_.ops_done() < total) {
    Op op = sim_.Generate();
    history_.push_back(op);
    if (history_.size() > kHistory) history_.pop_front();
    cur_ = &history_.back();
    if (o_.trace_from != 0 && op.n >= o_.trace_from) {
      std::fprintf(stderr, "%s%s\n", Prefix().c_str(), DescribeOp(op, sim_.files()).c_str());
    }
    Execute(op);
    if (o_.verify_every != 0 && op.n % o_.verify_every == 0) {
      VerifyAll("periodic check after op " + std::to_string(op.n));
      ++stats_.extra["full verifications"];
    }
    if (!o_.quiet && next_progress != 0 && op.n == next_progress && op.n != total) {
      std::fprintf(stderr, "%sovertier-fsx: %" PRIu64 "/%" PRIu64 " ops\n", Prefix().c_str(), op.n,
                   total);
      next_progress += total / 4;
    }
  }
  cur_ = nullptr;
  VerifyAll("final check after all ops");
  for (uint32_t i = 0; i < n; ++i) {
    if (close(fd_[i]) != 0) Fail("close " + Path(i) + ": " + Errno(errno));
    if (stale_fd_[i] >= 0) close(stale_fd_[i]);
  }
  // And once more after the last close: flush-on-close paths are where FUSE writeback bites.
  VerifyAll("after closing all fds");

  JobResult res;
  for (const FileModel& f : sim_.files()) {
    res.files.push_back({f.index, f.size(), Digest(f.data.data(), f.data.size())});
  }
  res.stats = stats_;
  return res;
}

// ---------------------------------------------------------------------------------------------
// Child <-> parent serialization of a job's result (jobs > 1 run in forked processes).

std::string Serialize(const JobResult& r) {
  std::ostringstream o;
  for (const auto& f : r.files) o << "file " << f.index << " " << f.size << " " << f.digest << "\n";
  for (size_t t = 0; t < r.stats.by_type.size(); ++t) {
    o << "op " << t << " " << r.stats.by_type[t] << "\n";
  }
  for (const auto& [k, v] : r.stats.extra) o << "extra " << v << " " << k << "\n";
  return o.str();
}

bool Deserialize(const std::string& s, JobResult* r) {
  std::istringstream in(s);
  std::string kind;
  while (in >> kind) {
    if (kind == "file") {
      FileResult f;
      if (!(in >> f.index >> f.size >> f.digest)) return false;
      r->files.push_back(f);
    } else if (kind == "op") {
      size_t t;
      uint64_t v;
      if (!(in >> t >> v) || t >= r->stats.by_type.size()) return false;
      r->stats.by_type[t] += v;
    } else if (kind == "extra") {
      uint64_t v;
      std::string k;
      if (!(in >> v) || !std::getline(in, k)) return false;
      r->stats.extra[k.substr(1)] += v;
    } else {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// State file

constexpr char kStateMagic[] = "overtier-fsx-state 1";

bool WriteState(const std::string& path, const Params& p, std::vector<FileResult> files) {
  std::sort(files.begin(), files.end(),
            [](const FileResult& a, const FileResult& b) { return a.index < b.index; });
  const std::string tmp = path + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    o << kStateMagic << "\n"
      << "seed " << p.seed << "\nfiles " << p.files << "\nops " << p.ops << "\njobs " << p.jobs
      << "\nmax_size " << p.max_size << "\nmax_len " << p.max_len << "\nstale_fds "
      << (p.stale_fds ? 1 : 0) << "\nfeatures " << p.features.ToString() << "\n";
    for (const auto& f : files) {
      char d[17];
      std::snprintf(d, sizeof(d), "%016" PRIx64, f.digest);
      o << "file " << f.index << " " << f.size << " " << d << "\n";
    }
    o.flush();
    if (!o) return false;
  }
  return rename(tmp.c_str(), path.c_str()) == 0;
}

bool ReadState(const std::string& path, Params* p, std::map<uint32_t, FileResult>* files) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line) || line != kStateMagic) return false;
  int fields = 0;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string key;
    l >> key;
    if (key == "seed") {
      l >> p->seed;
    } else if (key == "files") {
      l >> p->files;
    } else if (key == "ops") {
      l >> p->ops;
    } else if (key == "jobs") {
      l >> p->jobs;
    } else if (key == "max_size") {
      l >> p->max_size;
    } else if (key == "max_len") {
      l >> p->max_len;
    } else if (key == "stale_fds") {
      int v = 0;
      l >> v;
      p->stale_fds = v != 0;
    } else if (key == "features") {
      std::string v;
      l >> v;
      if (!Features::Parse(v, &p->features)) return false;
    } else if (key == "file") {
      FileResult f;
      std::string d;
      l >> f.index >> f.size >> d;
      f.digest = std::strtoull(d.c_str(), nullptr, 16);
      (*files)[f.index] = f;
      continue;
    } else {
      return false;
    }
    if (!l) return false;
    ++fields;
  }
  return fields == 8 && files->size() == p->files;
}

// ---------------------------------------------------------------------------------------------
// Subcommands

int CmdPrepare(const Options& o) {
  if (o.lower.empty()) UsageError("prepare needs --lower");
  if (!o.have_files || !o.have_seed) UsageError("prepare needs --files and --seed");
  ValidateParams(o);
  const std::vector<std::string> layers = SplitList(o.lower, ':');
  if (layers.empty()) UsageError("empty --lower");
  for (const auto& l : layers) {
    if (mkdir(l.c_str(), 0755) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "overtier-fsx: mkdir %s: %s\n", l.c_str(), Errno(errno).c_str());
      return kExitUsage;
    }
  }
  auto write_file = [&](const std::string& path, const std::vector<uint8_t>& data,
                        const std::vector<std::pair<uint64_t, uint64_t>>& holes) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(data.size())) != 0) {
      std::fprintf(stderr, "overtier-fsx: create %s: %s\n", path.c_str(), Errno(errno).c_str());
      std::exit(kExitUsage);
    }
    // Write around the holes so the lower file is really sparse.
    uint64_t pos = 0;
    auto put = [&](uint64_t a, uint64_t b) {
      if (b > a && !WriteFull(fd, data.data() + a, b - a, a, false)) {
        std::fprintf(stderr, "overtier-fsx: write %s: %s\n", path.c_str(), Errno(errno).c_str());
        std::exit(kExitUsage);
      }
    };
    for (const auto& [a, b] : holes) {
      put(pos, a);
      pos = b;
    }
    put(pos, data.size());
    close(fd);
  };
  std::vector<uint8_t> data;
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  const uint32_t nl = static_cast<uint32_t>(layers.size());
  for (uint32_t i = 0; i < o.p.files; ++i) {
    const uint32_t layer = FileLayer(o.p.seed, i, nl);
    InitialContent(o.p.seed, i, o.p.max_size, &data, &holes);
    write_file(JoinPath(layers[layer], FileName(i)), data, holes);
    for (uint32_t below = layer + 1; below < nl; ++below) {
      DecoyContent(o.p.seed, i, below, o.p.max_size, &data);
      write_file(JoinPath(layers[below], FileName(i)), data, {});
    }
  }
  std::printf("overtier-fsx: prepared %u files in %u layer(s), seed %" PRIu64 "\n", o.p.files, nl,
              o.p.seed);
  return kExitOk;
}

void PrintSummary(const Stats& s, double secs, uint64_t ops) {
  std::ostringstream o;
  o << "overtier-fsx: " << ops << " ops in " << secs << " s";
  if (secs > 0) o << " (" << static_cast<uint64_t>(ops / secs) << " ops/s)";
  o << "\n  ops:";
  for (size_t t = 0; t < s.by_type.size(); ++t) {
    if (s.by_type[t] != 0) o << " " << OpTypeName(static_cast<OpType>(t)) << "=" << s.by_type[t];
  }
  o << "\n";
  for (const auto& [k, v] : s.extra) o << "  " << k << ": " << v << "\n";
  std::fputs(o.str().c_str(), stdout);
}

int CmdRun(Options& o) {
  if (o.dir.empty()) UsageError("run needs --dir");
  if (!o.have_files || !o.have_seed) UsageError("run needs --files and --seed");
  ValidateParams(o);
  if (o.p.max_len > o.p.max_size) o.p.max_len = o.p.max_size;
  std::printf("overtier-fsx: run seed=%" PRIu64 " ops=%" PRIu64
              " files=%u jobs=%u max_size=%" PRIu64 " max_len=%" PRIu64 "%s dir=%s\n",
              o.p.seed, o.p.ops, o.p.files, o.p.jobs, o.p.max_size, o.p.max_len,
              o.p.stale_fds ? " stale_fds" : "", o.dir.c_str());
  std::fflush(stdout);
  o.p.features = Probe(o.dir, o, o.quiet);
  std::printf("overtier-fsx: features %s\n", o.p.features.ToString().c_str());
  std::fflush(stdout);

  struct sigaction sa {};
  sa.sa_handler = OnSigbus;
  sigaction(SIGBUS, &sa, nullptr);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<FileResult> files;
  Stats total;
  int rc = kExitOk;
  if (o.p.jobs == 1) {
    JobResult r = Runner(o, 0).Run();
    files = r.files;
    total = r.stats;
  } else {
    struct Child {
      pid_t pid;
      int fd;
      std::string out;
      bool open;
    };
    std::vector<Child> kids;
    const pid_t parent = getpid();
    for (uint32_t j = 0; j < o.p.jobs; ++j) {
      int p[2];
      if (pipe(p) != 0) {
        std::perror("pipe");
        return kExitUsage;
      }
      std::fflush(nullptr);
      pid_t pid = fork();
      if (pid < 0) {
        std::perror("fork");
        return kExitUsage;
      }
      if (pid == 0) {
        // Die with the parent (e.g. when `timeout` kills it) rather than keep the mount busy.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) std::_Exit(kExitFail);
        close(p[0]);
        for (const auto& k : kids) close(k.fd);
        std::string s = Serialize(Runner(o, j).Run());
        WriteFull(p[1], reinterpret_cast<const uint8_t*>(s.data()), s.size(), 0, true);
        std::fflush(nullptr);
        std::_Exit(kExitOk);
      }
      close(p[1]);
      kids.push_back({pid, p[0], "", true});
    }
    // Drain all pipes while waiting, and stop the others as soon as one job fails.
    size_t running = kids.size();
    while (running > 0) {
      std::vector<pollfd> pfds;
      std::vector<size_t> which;
      for (size_t k = 0; k < kids.size(); ++k) {
        if (kids[k].open) {
          pfds.push_back({kids[k].fd, POLLIN, 0});
          which.push_back(k);
        }
      }
      if (!pfds.empty()) poll(pfds.data(), pfds.size(), 200);
      for (size_t x = 0; x < pfds.size(); ++x) {
        if (!(pfds[x].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Child& c = kids[which[x]];
        char buf[4096];
        ssize_t r = read(c.fd, buf, sizeof(buf));
        if (r > 0) {
          c.out.append(buf, static_cast<size_t>(r));
        } else if (r == 0 || errno != EINTR) {
          close(c.fd);
          c.open = false;
        }
      }
      int st;
      pid_t pid;
      while ((pid = waitpid(-1, &st, pfds.empty() ? 0 : WNOHANG)) > 0) {
        --running;
        const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == kExitOk;
        if (!ok) {
          if (rc == kExitOk) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : kExitFail;
            if (WIFSIGNALED(st)) {
              std::fprintf(stderr, "overtier-fsx: job pid %d killed by signal %d\n", pid,
                           WTERMSIG(st));
            }
            for (const auto& k : kids) {
              if (k.pid != pid) kill(k.pid, SIGTERM);
            }
          }
        }
        if (running == 0) break;
      }
    }
    for (auto& k : kids) {
      if (k.open) close(k.fd);
      if (rc != kExitOk) continue;
      JobResult r;
      if (!Deserialize(k.out, &r)) {
        std::fprintf(stderr, "overtier-fsx: garbled result from job pid %d\n", k.pid);
        rc = kExitFail;
        continue;
      }
      files.insert(files.end(), r.files.begin(), r.files.end());
      for (size_t t = 0; t < total.by_type.size(); ++t) total.by_type[t] += r.stats.by_type[t];
      for (const auto& [key, v] : r.stats.extra) total.extra[key] += v;
    }
  }
  if (rc != kExitOk) {
    std::fprintf(stderr, "overtier-fsx: FAILED (seed %" PRIu64 ")\n", o.p.seed);
    return rc;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PrintSummary(total, secs, o.p.ops);
  if (!o.state.empty() && !WriteState(o.state, o.p, files)) {
    std::fprintf(stderr, "overtier-fsx: cannot write state file %s\n", o.state.c_str());
    return kExitUsage;
  }
  std::printf("overtier-fsx: PASSED (seed %" PRIu64 ")\n", o.p.seed);
  return kExitOk;
}

int CmdVerify(const Options& o) {
  if (o.dir.empty() || o.state.empty()) UsageError("verify needs --dir and --state");
  Params p;
  std::map<uint32_t, FileResult> want;
  if (!ReadState(o.state, &p, &want)) {
    std::fprintf(stderr, "overtier-fsx: cannot parse state file %s\n", o.state.c_str());
    return kExitUsage;
  }
  int bad = 0;
  std::vector<uint8_t> buf;
  for (uint32_t j = 0; j < p.jobs; ++j) {
    // Replay the job in memory to get the exact expected bytes, then check that the replay
    // agrees with what `run` recorded before blaming the filesystem.
    Simulation sim(p, j);
    sim.RunToEnd();
    for (const FileModel& f : sim.files()) {
      const FileResult& w = want[f.index];
      const uint64_t d = Digest(f.data.data(), f.data.size());
      if (w.size != f.size() || w.digest != d) {
        std::fprintf(stderr,
                     "overtier-fsx: replay of %s disagrees with the state file (size %" PRIu64
                     " vs %" PRIu64 "); state from another build or run?\n",
                     FileName(f.index).c_str(), f.size(), w.size);
        return kExitUsage;
      }
      const std::string path = JoinPath(o.dir, FileName(f.index));
      int fd = open(path.c_str(), O_RDONLY);
      if (fd < 0) {
        std::fprintf(stderr, "VERIFY FAILURE: open %s: %s\n", path.c_str(), Errno(errno).c_str());
        ++bad;
        continue;
      }
      buf.assign(f.size() + 4096, 0);
      ssize_t r = PreadFull(fd, buf.data(), buf.size(), 0);
      close(fd);
      if (r < 0) {
        std::fprintf(stderr, "VERIFY FAILURE: read %s: %s\n", path.c_str(), Errno(errno).c_str());
        ++bad;
        continue;
      }
      const uint64_t got = static_cast<uint64_t>(r);
      std::string report;
      if (got != f.size()) {
        report = "  size " + std::to_string(got) + ", expected " + std::to_string(f.size()) + "\n";
      }
      std::string diff = MismatchReport(p, j, f, 0, buf.data(), std::min(got, f.size()));
      if (!report.empty() || !diff.empty()) {
        std::fprintf(stderr, "VERIFY FAILURE: %s differs from the final model (job %u)\n%s%s",
                     path.c_str(), j, report.c_str(), diff.c_str());
        ++bad;
      }
    }
  }
  if (bad != 0) {
    std::fprintf(stderr, "overtier-fsx: verify FAILED: %d of %u files wrong (seed %" PRIu64 ")\n",
                 bad, p.files, p.seed);
    return kExitFail;
  }
  std::printf("overtier-fsx: verify PASSED: %u files match the replayed model (seed %" PRIu64
              ", %" PRIu64 " ops)\n",
              p.files, p.seed, p.ops);
  return kExitOk;
}

}  // namespace
}  // namespace fsx

int main(int argc, char** argv) {
  fsx::Options o = fsx::ParseArgs(argc, argv);
  if (o.cmd == "prepare") return fsx::CmdPrepare(o);
  if (o.cmd == "run") return fsx::CmdRun(o);
  return fsx::CmdVerify(o);
}
