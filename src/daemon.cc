#include "src/daemon.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "migrate/policy.h"
#include "migrate/policy_engine.h"
#include "overtier/printable.h"
#include "src/daemon_log.h"
#include "src/fuse_ops.h"
#include "src/image_fuse.h"
#include "src/lazy_copy_up.h"
#include "src/migration.h"
#include "store/store.h"
#include "union/union_fs.h"

namespace overtier {

namespace {

int Fail(const Status& s) {
  // Invalid-argument messages are whole sentences; the others are context
  // that still needs the errno text.
  const std::string msg = s.err() == EINVAL && !s.message().empty() ? s.message() : s.ToString();
  std::fprintf(stderr, "overtier: %s\n", MessageSafe(msg).c_str());
  return 2;
}

bool HasImageLowers(const MountOptions& opts) {
  return std::any_of(opts.lowerdirs.begin(), opts.lowerdirs.end(),
                     [](const LowerDir& l) { return l.is_image(); });
}

// Opens the store, serves every image lower through `images` and rewrites
// opts->lowerdirs: each `image:NAME` becomes NAME and the images below it,
// top-most first, each with the root descriptor the union will use.
Status ServeImages(const Invocation& inv, MountOptions* opts, std::unique_ptr<Store>* store,
                   std::unique_ptr<ImageFs>* images) {
  StoreOpenOptions so;
  so.read_only = true;
  OVT_RETURN_IF_ERROR(Store::Open(opts->store, so, store));
  // gc must not delete a container this mount may still read.
  OVT_RETURN_IF_ERROR((*store)->PinForMount());
  OVT_RETURN_IF_ERROR(ImageFs::Create(store->get(), images));
  (*images)->set_hard(opts->hard);
  std::vector<LowerDir> expanded;
  std::vector<uint64_t> ids;  // parallel to expanded; 0 for a directory
  for (const LowerDir& l : opts->lowerdirs) {
    if (!l.is_image()) {
      expanded.push_back(l);
      ids.push_back(0);
      continue;
    }
    std::vector<ImageLayer> layers;
    Status s = (*images)->AddImage(l.image, &layers);
    if (!s.ok()) return Status::Errno(s.err(), "lowerdir " + l.Describe() + ": " + s.message());
    for (const ImageLayer& layer : layers) {
      expanded.push_back(LowerDir::Image(layer.name));
      ids.push_back(layer.image_id);
    }
  }
  OVT_RETURN_IF_ERROR((*images)->Mount(inv.debug));
  for (size_t i = 0; i < expanded.size(); ++i)
    if (ids[i] != 0) {
      expanded[i].root_fd = (*images)->LayerRootFd(ids[i]);
      expanded[i].tree = (*images)->Tree();
    }
  opts->lowerdirs = std::move(expanded);
  return Status::OK();
}

// The periodic policy mode (-o policy=FILE,policy_interval=SECS,
// docs/POLICY.md): every interval, the policy engine walks this daemon's own
// mount point through the kernel, like `overtier policy run` would, from a
// thread of its own: its requests are served by the FUSE workers like any
// process's, and no request thread ever waits on it. One line per run on
// stderr (the daemon's log). Started after the fork (threads do not
// survive fuse_daemonize), stopped once the session has ended.
//
// A run holds files and directories of the mount open, which would make an
// unmount at that moment fail with EBUSY. So each run walks from a thread
// of its own in a private copy of the mount namespace: the user's unmount
// succeeds, the copy keeps the FUSE connection alive until the run ends,
// and the watching thread ends the run early once the mount is gone from
// the daemon's namespace. (Without CAP_SYS_ADMIN the run walks the shared
// namespace, as before: an unmount during a run fails with EBUSY.)
class PolicyThread {
 public:
  // rules: read from rules_path (absolute), whose stat `version` was.
  PolicyThread(PolicyRules rules, std::string rules_path, const struct stat& version,
               std::string mountpoint, int interval_s)
      : rules_(std::move(rules)),
        rules_path_(std::move(rules_path)),
        rules_version_(version),
        mountpoint_(std::move(mountpoint)),
        interval_s_(interval_s) {}
  ~PolicyThread() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }

  // Interrupts the wait, or the run between two files, and joins.
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    stop_flag_.store(true);
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, std::chrono::seconds(interval_s_), [this] { return stop_; })) {
      l.unlock();
      RunOnce();
      l.lock();
    }
  }

  // The path must still lead to this daemon's mount: after a lazy unmount
  // it leads to the directory below, which is not ours to manage.
  Status CheckMount() {
    struct statfs sfs;
    struct stat st;
    constexpr long kFuseSuperMagic = 0x65735546;
    if (statfs(mountpoint_.c_str(), &sfs) != 0 || stat(mountpoint_.c_str(), &st) != 0)
      return Status::FromErrno(mountpoint_);
    if (sfs.f_type != kFuseSuperMagic || (dev_ != 0 && st.st_dev != dev_))
      return Status::Errno(ENOTCONN, mountpoint_ + " is no longer this daemon's mount");
    dev_ = st.st_dev;
    return Status::OK();
  }

  // The rules file is read again when it changed (another inode, size or
  // mtime: editors replace files, `cat >` rewrites them), so an edit takes
  // effect at the next run without a remount. A file that is gone or no
  // longer parses keeps the rules in force, with one line in the log per
  // change of the file.
  void ReloadRules() {
    struct stat st;
    if (stat(rules_path_.c_str(), &st) != 0) {
      if (rules_version_.st_ino != 0)
        std::fprintf(stderr, "overtier: policy: %s: %s; keeping the rules read before\n",
                     rules_path_.c_str(), std::strerror(errno));
      rules_version_ = {};
      return;
    }
    if (st.st_ino == rules_version_.st_ino && st.st_dev == rules_version_.st_dev &&
        st.st_size == rules_version_.st_size &&
        st.st_mtim.tv_sec == rules_version_.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == rules_version_.st_mtim.tv_nsec)
      return;
    rules_version_ = st;
    PolicyRules rules;
    Status s = LoadPolicyRules(rules_path_, &rules);
    if (!s.ok()) {
      std::fprintf(stderr, "overtier: policy: rules %s; keeping the rules read before\n",
                   s.message().c_str());
      return;
    }
    rules_ = std::move(rules);
    std::fprintf(stderr, "overtier: policy: rules read again from %s\n", rules_path_.c_str());
  }

  // Where a run starts: a detached clone of the mount itself (open_tree
  // with OPEN_TREE_CLONE), so that an unmount of the mount point during the
  // run is not refused for the run's open files. The clone keeps the file
  // system alive until the run notices the mount gone and ends (RunOnce);
  // it holds nothing else. (Runs used to enter a private copy of the whole
  // mount namespace, which kept every mount of the machine alive while a
  // run lasted: a container's overlay unmounted meanwhile stayed "in use",
  // and its upper directory could not be mounted again.) Where open_tree is
  // refused (a kernel older than 5.2, a seccomp filter), the mount point
  // itself, and an unmount during a run fails with EBUSY, which is logged
  // once. The caller closes the descriptor; -1 if neither opens.
  int OpenRunRoot() {
    int fd = open_tree(AT_FDCWD, mountpoint_.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd >= 0) return fd;
    if (!said_no_clone_) {
      said_no_clone_ = true;
      std::fprintf(stderr,
                   "overtier: policy: runs walk the mount point itself (open_tree: %s): an "
                   "unmount during a run fails with EBUSY\n",
                   std::strerror(errno));
    }
    return open(mountpoint_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }

  void RunOnce() {
    ReloadRules();
    Status s = CheckMount();
    PolicyRunResult r;
    if (s.ok()) {
      PolicyRunOptions o;
      o.stop = &stop_flag_;
      std::mutex run_mu;
      std::condition_variable run_cv;
      bool run_done = false;
      std::thread run([&] {
        const int root = OpenRunRoot();
        Status rs =
            root >= 0 ? RunPolicyAt(rules_, root, o, &r) : Status::FromErrno("open " + mountpoint_);
        if (root >= 0) close(root);
        std::lock_guard<std::mutex> l(run_mu);
        s = rs;
        run_done = true;
        run_cv.notify_all();
      });
      // Ends the run once the mount is gone from here (unmounted while
      // the run's clone kept it alive), or at Stop.
      std::unique_lock<std::mutex> l(run_mu);
      while (!run_cv.wait_for(l, std::chrono::milliseconds(200), [&] { return run_done; })) {
        if (!stop_flag_.load() && !CheckMount().ok()) stop_flag_.store(true);
      }
      l.unlock();
      run.join();
    }
    if (!s.ok()) {
      if (!stop_flag_.load())
        std::fprintf(stderr, "overtier: policy: run failed: %s\n",
                     MessageSafe(s.ToString()).c_str());
      return;
    }
    std::string line = "overtier: policy: " + std::to_string(r.files.size()) + " files, archived " +
                       std::to_string(r.archived) + ", released " + std::to_string(r.released) +
                       " (" + std::to_string(r.released_bytes) + " bytes)";
    if (r.plan.pinned + r.plan.norelease > 0)
      line += ", " + std::to_string(r.plan.pinned + r.plan.norelease) + " pinned";
    char pct[64];
    if (r.before && r.after) {
      std::snprintf(pct, sizeof pct, ", usage %.1f%% -> %.1f%%", r.before->percent(),
                    r.after->percent());
      line += pct;
    }
    line += ", " + std::to_string(r.errors.size()) + " failed";
    if (!r.errors.empty()) {
      const PolicyError& e = r.errors.front();
      line += " (first: " + MessageSafe(e.path) + ": " + e.op + ": " + std::strerror(e.err) + ")";
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  PolicyRules rules_;  // the policy thread's own
  const std::string rules_path_;
  struct stat rules_version_;  // of the file rules_ came from; zeroed: gone
  const std::string mountpoint_;
  const int interval_s_;
  dev_t dev_ = 0;               // the mount's device, from the first run
  bool said_no_clone_ = false;  // logged that runs cannot walk a clone of the mount
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> stop_flag_{false};
  std::thread thread_;
};

// Reads the rules before anything is mounted, so that a bad file fails the
// mount (exit 2) instead of a later run; the mount point is made absolute
// since fuse_daemonize changes to "/".
Status MakePolicyThread(const MountOptions& opts, const std::string& mountpoint,
                        std::unique_ptr<PolicyThread>* out) {
  std::unique_ptr<char, decltype(&free)> rules_path(realpath(opts.policy.c_str(), nullptr), &free);
  if (!rules_path) return Status::FromErrno("policy rules " + opts.policy);
  struct stat version;
  if (stat(rules_path.get(), &version) != 0)
    return Status::FromErrno("policy rules " + opts.policy);
  PolicyRules rules;
  Status s = LoadPolicyRules(opts.policy, &rules);
  if (!s.ok()) return Status::Errno(s.err(), "policy rules " + s.message());
  std::unique_ptr<char, decltype(&free)> real(realpath(mountpoint.c_str(), nullptr), &free);
  if (!real) return Status::FromErrno("mount point " + mountpoint);
  const int interval = opts.policy_interval > 0 ? opts.policy_interval : kDefaultPolicyInterval;
  *out = std::make_unique<PolicyThread>(std::move(rules), rules_path.get(), version, real.get(),
                                        interval);
  return Status::OK();
}

}  // namespace

int RunMount(const Invocation& inv) {
  Status s = ValidateMountOptions(inv.opts, inv.mountpoint);
  if (!s.ok()) return Fail(s);
  // Opened now, so that a log file we cannot write fails the mount;
  // started once daemonized (it takes stderr over).
  std::unique_ptr<DaemonLog> log;
  if (!inv.opts.log.empty() || !(inv.foreground || inv.debug)) {
    s = DaemonLog::Open(inv.opts.log, &log);
    if (!s.ok()) return Fail(s);
  }
  for (const auto& o : inv.opts.ignored)
    if (inv.debug) std::fprintf(stderr, "overtier: ignoring option '%s'\n", o.c_str());

  // Declared before the union: destroyed after it, since the union holds
  // descriptors into the image file system and the store's containers.
  std::unique_ptr<Store> store;
  std::unique_ptr<ImageFs> images;
  MountOptions opts = inv.opts;
  std::string note;
  ChooseXattrNamespace(&opts, &note);
  if (!note.empty()) std::fprintf(stderr, "overtier: %s\n", note.c_str());
  // fuse_daemonize() changes to "/", and the migration service opens the
  // store again each time work starts: a relative store= would then name
  // another directory (or none), and every copy-up or archive fail.
  if (!opts.store.empty()) {
    std::unique_ptr<char, decltype(&free)> real(realpath(opts.store.c_str(), nullptr), &free);
    if (!real) return Fail(Status::FromErrno("store " + opts.store));
    opts.store = real.get();
  }
  if (HasImageLowers(opts)) {
    s = ServeImages(inv, &opts, &store, &images);
    if (!s.ok()) return Fail(s);
  }
  // The migration tier, for the upper files of a writable mount with a
  // store (src/migration.h).
  std::unique_ptr<MigrationService> mig;
  if (!opts.store.empty() && !opts.upperdir.empty() && !opts.read_only) {
    s = MigrationService::Create(opts.store, &mig, store.get());
    if (!s.ok()) return Fail(Status::Errno(s.err(), "store " + opts.store + ": " + s.message()));
    mig->set_hard(opts.hard);
    mig->set_reads_on_demand(opts.restore_on_demand);
    mig->set_restore_clone(opts.restore_clone);
    // A container's first writes go to image files (/etc/hosts,
    // /etc/resolv.conf): copy-ups that need the store open for writing.
    mig->set_keep_open(images && opts.lazy_copyup);
  }
  std::unique_ptr<PolicyThread> policy;
  if (!opts.policy.empty()) {
    s = MakePolicyThread(opts, inv.mountpoint, &policy);
    if (!s.ok()) return Fail(s);
  }
  std::unique_ptr<UnionFs> fs;
  s = UnionFs::Create(opts, &fs);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
    return 2;
  }
  if (mig && !fs->upper_has_handles()) {
    // Records are keyed by the upper file's handle (inode and generation).
    std::fprintf(stderr,
                 "overtier: store=: upperdir '%s' is on a file system without file handles "
                 "(name_to_handle_at; an overlayfs has them only with nfs_export=on): the "
                 "migration tier cannot keep its records there\n",
                 MessageSafe(opts.upperdir).c_str());
    return 2;
  }
  if (fs->whiteout_files()) {
    std::fprintf(stderr,
                 "overtier: upperdir '%s' takes no whiteout devices (an overlayfs?): whiteouts "
                 "there are '.wh.NAME' files, as fuse-overlayfs writes them\n",
                 MessageSafe(opts.upperdir).c_str());
  }
  if (images && mig && opts.lazy_copyup) InstallLazyCopyUp(fs.get(), images.get(), mig.get());
  int rc;
  if (images) {
    // fuse_daemonize forks, and threads do not survive a fork: the image
    // file system pauses across it and starts its threads in the child.
    images->PauseForFork();
    const int threads = std::max(2, opts.threads);
    rc = ServeFuse(
        fs.get(), inv,
        [&images, &policy, &log, threads] {
          if (log) log->Start();
          images->Start(threads);
          if (policy) policy->Start();
        },
        mig.get());
  } else {
    rc = ServeFuse(
        fs.get(), inv,
        [&policy, &log] {
          if (log) log->Start();
          if (policy) policy->Start();
        },
        mig.get());
  }
  // The session is over: a run still going meets a dead mount and ends.
  if (policy) policy->Stop();
  mig.reset();
  // The union first: its descriptors into image layers must be closed for
  // the image file system to end.
  fs.reset();
  if (images) images->Stop();
  if (!(inv.foreground || inv.debug)) {
    // A forked daemon (fuse_daemonize): the store was opened before the
    // fork (to check the mount), and RocksDB's default environment may have
    // started its thread pool then. At exit its static destructor joins
    // those threads, which do not exist in this process, and waits
    // forever (seen as a daemon still alive 20 s after fusermount3 -u).
    // Everything of ours is closed by now: skip the exit handlers.
    std::fflush(nullptr);
    _exit(rc);
  }
  return rc;
}

}  // namespace overtier
