// SlowDisk: makes the daemon's restores slow without any hook in the daemon,
// so that tests can act while readers are parked (signal them, rename or
// unlink the file, count how many restores run).
//
// How: a cgroup v1 blkio group with a read bandwidth limit on the disk that
// holds the store; the daemon process (all its threads, and the io_uring
// workers it creates later) is moved into it; the store's container files
// are dropped from the page cache (fsync + POSIX_FADV_DONTNEED, only those
// files, not the whole machine's cache), so the restorer has to read them
// from the disk at the limited rate. The catalog's files stay cached.
//
// Not every machine allows this (cgroup v2 only, a store on tmpfs, no
// CONFIG_BLK_DEV_THROTTLING): Start() then returns false with the reason,
// and the test skips. A restorer test hook (a delay per piece, e.g. from an
// environment variable) would make these tests run everywhere.
#ifndef OVERTIER_TESTS_MIGRATE_MOUNT_SLOW_DISK_H_
#define OVERTIER_TESTS_MIGRATE_MOUNT_SLOW_DISK_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace overtier {
namespace {

class SlowDisk {
 public:
  SlowDisk() = default;
  SlowDisk(const SlowDisk&) = delete;
  SlowDisk& operator=(const SlowDisk&) = delete;
  ~SlowDisk() { Stop(); }

  // Limits reads by `pid` from the disk holding `path` to bytes_per_s.
  // False (and *why) if this machine cannot.
  bool Start(const std::string& path, pid_t pid, uint64_t bytes_per_s, std::string* why) {
    const std::string root = "/sys/fs/cgroup/blkio";
    if (access((root + "/blkio.throttle.read_bps_device").c_str(), W_OK) != 0 &&
        access((root + "/cgroup.procs").c_str(), W_OK) != 0) {
      *why = "no writable cgroup v1 blkio hierarchy at " + root;
      return false;
    }
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      *why = "stat " + path + ": " + strerror(errno);
      return false;
    }
    std::string dev = DiskOf(major(st.st_dev), minor(st.st_dev));
    if (dev.empty()) {
      *why = path + " is not on a block device (tmpfs, overlay?)";
      return false;
    }
    dir_ = root + "/ovt-test-slow-" + std::to_string(getpid()) + "-" + std::to_string(pid);
    if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      *why = "mkdir " + dir_ + ": " + strerror(errno);
      dir_.clear();
      return false;
    }
    if (!Write(dir_ + "/blkio.throttle.read_bps_device", dev + " " + std::to_string(bytes_per_s))) {
      *why = "setting a read limit on " + dev + " failed (no blkio throttling?)";
      Stop();
      return false;
    }
    if (!Write(dir_ + "/cgroup.procs", std::to_string(pid))) {
      *why = "moving pid " + std::to_string(pid) + " into " + dir_ + " failed";
      Stop();
      return false;
    }
    pid_ = pid;
    return true;
  }

  // Moves the daemon back to the root group (full speed) and removes ours.
  void Stop() {
    if (dir_.empty()) return;
    if (pid_ > 0) {
      // Every thread: in v1, cgroup.procs moves the whole thread group.
      Write("/sys/fs/cgroup/blkio/cgroup.procs", std::to_string(pid_));
      pid_ = -1;
    }
    // Threads may take a moment to leave (exiting ones included).
    for (int i = 0; i < 50 && rmdir(dir_.c_str()) != 0 && errno == EBUSY; i++) usleep(20000);
    dir_.clear();
  }

  // Drops every regular file under `dir` from the page cache.
  static void Evict(const std::string& dir) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      int fd = open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      fsync(fd);
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      close(fd);
    }
  }

 private:
  static bool Write(const std::string& file, const std::string& value) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    close(fd);
    return ok;
  }

  // "MAJ:MIN" of the whole disk holding device maj:min ("" if not a block
  // device): throttling applies to disks, not partitions.
  static std::string DiskOf(unsigned maj, unsigned min) {
    std::string sys = "/sys/dev/block/" + std::to_string(maj) + ":" + std::to_string(min);
    if (access(sys.c_str(), F_OK) != 0) return "";
    if (access((sys + "/partition").c_str(), F_OK) == 0) {
      std::ifstream in(sys + "/../dev");
      std::string parent;
      if (in >> parent) return parent;
      return "";
    }
    return std::to_string(maj) + ":" + std::to_string(min);
  }

  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace
}  // namespace overtier

#endif  // OVERTIER_TESTS_MIGRATE_MOUNT_SLOW_DISK_H_
