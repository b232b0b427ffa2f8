#include "migrate/policy_engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "migrate/control_client.h"
#include "migrate/crash_point.h"
#include "migrate/dir_names.h"
#include "overtier/control.h"
#include "overtier/time_ns.h"

namespace overtier {

namespace {

constexpr int kOpenDir = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

class Walk {
 public:
  Walk(dev_t dev, const PolicyRunOptions& o, PolicyRunResult* r) : dev_(dev), opts_(o), res_(r) {}

  bool stopped() const { return opts_.stop != nullptr && opts_.stop->load(); }

  void Dir(int fd, const std::string& rel) {
    std::vector<std::string> names;
    if (int e = ReadDirNames(fd, &names); e != 0) return Error(rel, "walk", e);
    for (const std::string& name : names) {
      if (stopped()) return;
      const std::string child = Join(rel, name);
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) Error(child, "walk", errno);  // ENOENT: gone meanwhile
        continue;
      }
      if (st.st_dev != dev_) {  // another mount below the root
        res_->skipped++;
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        Fd sub(openat(fd, name.c_str(), kOpenDir));
        if (sub.get() < 0) {
          if (errno != ENOENT && errno != ELOOP) Error(child, "walk", errno);
          continue;
        }
        Dir(sub.get(), child);
      } else if (S_ISREG(st.st_mode)) {
        File(fd, name, child);
      } else {
        res_->skipped++;
      }
    }
  }

  void Error(const std::string& rel, const char* op, int err, std::string msg = {}) {
    res_->errors.push_back(PolicyError{rel, op, err, std::move(msg)});
  }

 private:
  void File(int dirfd, const std::string& name, const std::string& rel) {
    Fd fd(control::OpenAt(dirfd, name.c_str()));
    if (fd.get() < 0) {
      if (errno != ENOENT && errno != ELOOP) Error(rel, "walk", errno);
      return;
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return Error(rel, "walk", errno);
    if (!S_ISREG(st.st_mode)) {  // replaced since we looked
      res_->skipped++;
      return;
    }
    PausePoint("policy-file");  // tests: a run holding a file of the mount open
    overtier_ctl_state cs;
    if (int e = control::GetState(fd.get(), &cs); e != 0) return Error(rel, "status", e);
    FileFacts f;
    f.rel_path = rel;
    f.size = static_cast<uint64_t>(st.st_size);
    f.atime_ns = ClampedNs(st.st_atim);
    f.mtime_ns = ClampedNs(st.st_mtim);
    f.uid = st.st_uid;
    f.state = cs.state;
    f.mig_flags = cs.mig_flags;
    f.resident_bytes = cs.resident_bytes;
    // user.overtier.norelease (any value), chattr +i or +a: the daemon
    // looks at the upper file and would refuse the release. (Asked here
    // through the mount, that was three more round trips a file: the
    // kernel opens the file for FS_IOC_GETFLAGS.)
    f.norelease = (cs.mig_flags & OVERTIER_MIG_PINNED) != 0;
    res_->files.push_back(std::move(f));
  }

  dev_t dev_;
  const PolicyRunOptions& opts_;
  PolicyRunResult* res_;
};

// Opens `rel` below root one component at a time, never following a
// symlink, so that a directory swapped for a link since the walk does not
// lead elsewhere.
int OpenBeneath(int root, const std::string& rel) {
  int dir = fcntl(root, F_DUPFD_CLOEXEC, 0);
  size_t start = 0;
  while (dir >= 0) {
    size_t slash = rel.find('/', start);
    const std::string part = rel.substr(start, slash - start);
    const int next = slash == std::string::npos ? control::OpenAt(dir, part.c_str())
                                                : openat(dir, part.c_str(), kOpenDir);
    const int e = errno;
    close(dir);
    errno = e;
    if (slash == std::string::npos) return next;
    dir = next;
    start = slash + 1;
  }
  return -1;
}

// Carries out one action on the file it names; 0 or an errno.
int Act(int root, const FileFacts& f, const PlannedAction& a) {
  Fd fd(OpenBeneath(root, f.rel_path));
  if (fd.get() < 0) return errno;
  // Archived meanwhile (or by an earlier run) is fine: then an
  // archive+release only releases.
  bool already = false;
  switch (a.op) {
    case PlanOp::kArchive:
      return control::Archive(fd.get(), /*release=*/false, 0, &already);
    case PlanOp::kRelease:
      return control::Release(fd.get(), a.keep);
    case PlanOp::kArchiveRelease:
      return control::Archive(fd.get(), /*release=*/true, a.keep, &already);
  }
  return EINVAL;
}

}  // namespace

Status UsageOf(int fd, Usage* out) {
  struct statvfs sv;
  if (fstatvfs(fd, &sv) != 0) return Status::FromErrno("statvfs");
  const uint64_t frsize = sv.f_frsize != 0 ? sv.f_frsize : sv.f_bsize;
  out->used_bytes = (static_cast<uint64_t>(sv.f_blocks) - sv.f_bfree) * frsize;
  out->avail_bytes = static_cast<uint64_t>(sv.f_bavail) * frsize;
  return Status::OK();
}

Status RunPolicy(const PolicyRules& rules, const std::string& root, const PolicyRunOptions& options,
                 PolicyRunResult* result) {
  *result = PolicyRunResult{};
  Fd rfd(open(root.c_str(), kOpenDir));
  if (rfd.get() < 0) return Status::FromErrno(root);
  return RunPolicyAt(rules, rfd.get(), options, result);
}

Status RunPolicyAt(const PolicyRules& rules, int root_fd, const PolicyRunOptions& options,
                   PolicyRunResult* result) {
  *result = PolicyRunResult{};
  Fd rfd(openat(root_fd, ".", kOpenDir));
  if (rfd.get() < 0) return Status::FromErrno("the policy run's root");
  struct stat st;
  if (fstat(rfd.get(), &st) != 0) return Status::FromErrno("the policy run's root");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  result->now_ns = ClampedNs(now);
  Usage u;
  if (UsageOf(rfd.get(), &u).ok()) result->before = u;

  Walk walk(st.st_dev, options, result);
  walk.Dir(rfd.get(), "");
  if (walk.stopped()) return Status::Errno(ECANCELED, "policy run stopped");

  result->plan = MakePlan(rules, result->files, result->before, result->now_ns);
  result->outcome.assign(result->plan.actions.size(), -1);
  if (options.dry_run) return Status::OK();
  for (size_t i = 0; i < result->plan.actions.size(); ++i) {
    if (walk.stopped()) return Status::Errno(ECANCELED, "policy run stopped");
    const PlannedAction& a = result->plan.actions[i];
    const FileFacts& f = result->files[a.file];
    const int e = Act(rfd.get(), f, a);
    result->outcome[i] = e;
    if (e != 0) {
      walk.Error(f.rel_path, a.op == PlanOp::kArchive ? "archive" : "release", e);
      continue;
    }
    if (a.op != PlanOp::kRelease) result->archived++;
    if (a.op != PlanOp::kArchive) {
      result->released++;
      result->released_bytes += a.freeing;
    }
  }
  if (UsageOf(rfd.get(), &u).ok()) result->after = u;
  return Status::OK();
}

}  // namespace overtier
