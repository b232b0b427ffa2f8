#include "union/params.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string_view>

namespace overtier {
namespace {

constexpr uint32_t kOverflowId = 65534;

// statfs f_type values; <linux/magic.h> lacks FUSE's.
constexpr long kFuseSuperMagic = 0x65735546;
constexpr long kOverlaySuperMagic = 0x794c7630;

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Splits at commas that are neither backslash-escaped (the overlayfs
// convention for paths) nor inside double quotes (the mount(8) convention;
// containers/storage writes SELinux labels as context="u:r:t:s0:c1,c2").
// Escapes and quotes stay in the pieces so each option can interpret them.
Status SplitOptions(std::string_view text, std::vector<std::string>* out) {
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\') {
      if (i + 1 == text.size()) {
        return Status::InvalidArgument("mount options end in a lone backslash: " + Quoted(text));
      }
      cur += c;
      cur += text[++i];
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      if (!cur.empty()) out->push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (quoted) return Status::InvalidArgument("unbalanced double quote in mount options");
  if (!cur.empty()) out->push_back(std::move(cur));
  return Status::OK();
}

// Every piece reaching here has its escapes paired (SplitOptions checked).
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out += s[i];
  }
  return out;
}

Status ParsePath(std::string_view key, std::string_view value, std::string* out) {
  std::string path = Unescape(value);
  if (path.empty()) return Status::InvalidArgument(std::string(key) + "= needs a path");
  *out = std::move(path);
  return Status::OK();
}

// The word that, as a whole lowerdir entry, makes the next entry an image
// name: "image:NAME" reads naturally although ':' separates entries.
constexpr std::string_view kImagePrefixWord = "image";

Status ParseLowerdirs(std::string_view value, std::vector<LowerDir>* out) {
  std::vector<LowerDir> dirs;
  std::string cur;
  bool escaped = false;  // cur holds an escape: never the "image" word
  bool image_next = false;
  // at_end: the entry ends the value (else a ':' follows it).
  auto finish = [&](bool at_end) -> Status {
    if (cur.empty()) {
      if (image_next) {
        return Status::InvalidArgument("lowerdir " + Quoted(value) +
                                       ": 'image:' needs an image name");
      }
      // "L1::D1" is the kernel's (Linux 6.5) mark of data-only lower
      // layers, read only through metacopy redirects (composefs).
      if (!dirs.empty() && !at_end) {
        return Status::InvalidArgument(
            "lowerdir " + Quoted(value) +
            " has an empty entry: '::' marks data-only lower layers in the kernel overlayfs, "
            "which overtier does not support (write '\\:' for a ':' in a path)");
      }
      return Status::InvalidArgument("lowerdir " + Quoted(value) +
                                     " has an empty entry (write '\\:' for a ':' in a path)");
    }
    if (image_next) {
      dirs.push_back(LowerDir::Image(Unescape(cur)));
      image_next = false;
    } else if (!escaped && cur == kImagePrefixWord) {
      image_next = true;
    } else {
      dirs.push_back(LowerDir::Dir(Unescape(cur)));
    }
    cur.clear();
    escaped = false;
    return Status::OK();
  };
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      cur += value[i];
      cur += value[++i];
      escaped = true;
    } else if (value[i] == ':') {
      OVT_RETURN_IF_ERROR(finish(/*at_end=*/false));
    } else {
      cur += value[i];
    }
  }
  OVT_RETURN_IF_ERROR(finish(/*at_end=*/true));
  if (image_next) {
    return Status::InvalidArgument("lowerdir " + Quoted(value) + ": 'image:' needs an image name");
  }
  // A later lowerdir= replaces an earlier one, as with the kernel overlayfs.
  *out = std::move(dirs);
  return Status::OK();
}

bool ParseUint32(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool RangesOverlap(uint64_t a, uint64_t a_count, uint64_t b, uint64_t b_count) {
  return a < b + b_count && b < a + a_count;
}

Status ParseIdMapping(std::string_view key, std::string_view value, std::vector<IdMapping>* out) {
  std::string what = std::string(key) + "=" + std::string(value);
  if (value.starts_with(':')) value.remove_prefix(1);
  std::vector<std::string_view> fields;
  while (true) {
    size_t colon = value.find(':');
    fields.push_back(value.substr(0, colon));
    if (colon == std::string_view::npos) break;
    value.remove_prefix(colon + 1);
  }
  if (fields.size() % 3 != 0) {
    return Status::InvalidArgument(Quoted(what) +
                                   ": expected DISK:MOUNT:COUNT ranges joined by ':'");
  }
  std::vector<IdMapping> map;
  for (size_t i = 0; i < fields.size(); i += 3) {
    IdMapping m;
    if (!ParseUint32(fields[i], &m.disk) || !ParseUint32(fields[i + 1], &m.mount) ||
        !ParseUint32(fields[i + 2], &m.count)) {
      return Status::InvalidArgument(Quoted(what) + ": " +
                                     Quoted(std::string(fields[i]) + ":" +
                                            std::string(fields[i + 1]) + ":" +
                                            std::string(fields[i + 2])) +
                                     " is not three unsigned 32-bit numbers");
    }
    std::string range =
        std::to_string(m.disk) + ":" + std::to_string(m.mount) + ":" + std::to_string(m.count);
    if (m.count == 0) {
      return Status::InvalidArgument(Quoted(what) + ": range " + Quoted(range) + " has count 0");
    }
    constexpr uint64_t kIdSpace = uint64_t{1} << 32;
    if (uint64_t{m.mount} + m.count > kIdSpace || uint64_t{m.disk} + m.count > kIdSpace) {
      return Status::InvalidArgument(Quoted(what) + ": range " + Quoted(range) +
                                     " goes past id 4294967295");
    }
    // Both sides must be disjoint or the mapping would not be reversible.
    for (const IdMapping& o : map) {
      if (RangesOverlap(m.mount, m.count, o.mount, o.count) ||
          RangesOverlap(m.disk, m.count, o.disk, o.count)) {
        return Status::InvalidArgument(
            Quoted(what) + ": range " + Quoted(range) + " overlaps range " +
            Quoted(std::to_string(o.disk) + ":" + std::to_string(o.mount) + ":" +
                   std::to_string(o.count)));
      }
    }
    map.push_back(m);
  }
  *out = std::move(map);
  return Status::OK();
}

Status ParseTimeout(std::string_view value, double* out) {
  double v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
      !std::isfinite(v) || v < 0) {
    return Status::InvalidArgument("timeout=" + std::string(value) +
                                   ": expected a non-negative number of seconds");
  }
  *out = v;
  return Status::OK();
}

struct FlagOption {
  std::string_view name;
  void (*apply)(MountOptions*);
};

constexpr FlagOption kFlagOptions[] = {
    {"volatile", [](MountOptions* o) { o->is_volatile = true; }},
    {"ro", [](MountOptions* o) { o->read_only = true; }},
    {"rw", [](MountOptions* o) { o->read_only = false; }},
    {"allow_other",
     [](MountOptions* o) {
       o->allow_other = true;
       o->owner_only = false;
     }},
    {"noallow_other",
     [](MountOptions* o) {
       o->allow_other = false;
       o->owner_only = true;
     }},
    {"allow_root", [](MountOptions* o) { o->allow_root = true; }},
    {"default_permissions", [](MountOptions* o) { o->default_permissions = true; }},
    {"acl", [](MountOptions* o) { o->acl = true; }},
    {"noacl", [](MountOptions* o) { o->acl = false; }},
    {"userxattr", [](MountOptions* o) { o->userxattr = true; }},
    {"suid", [](MountOptions* o) { o->suid = true; }},
    {"nosuid", [](MountOptions* o) { o->suid = false; }},
    {"dev", [](MountOptions* o) { o->dev = true; }},
    {"nodev", [](MountOptions* o) { o->dev = false; }},
    {"exec", [](MountOptions* o) { o->exec = true; }},
    {"noexec", [](MountOptions* o) { o->exec = false; }},
    {"noatime", [](MountOptions* o) { o->noatime = true; }},
    // Like mount(8), a later atime mode overrides an earlier noatime.
    {"atime", [](MountOptions* o) { o->noatime = false; }},
    {"relatime", [](MountOptions* o) { o->noatime = false; }},
    {"strictatime", [](MountOptions* o) { o->noatime = false; }},
    {"nodiratime", [](MountOptions*) {}},
    {"squash_to_root",
     [](MountOptions* o) {
       o->squash_uid = 0;
       o->squash_gid = 0;
     }},
    {"hard", [](MountOptions* o) { o->hard = true; }},
    {"soft", [](MountOptions* o) { o->hard = false; }},
};

// Options with no effect on overtier, taken so that command lines written for
// the kernel overlayfs or fuse-overlayfs keep working. Kept explicit: a typo
// must not be swallowed as "ignored".
// clang-format off
constexpr std::string_view kIgnoredFlags[] = {
    // fuse-overlayfs
    "static_nlink",
    // libfuse / mount(8); -d is the way to get debug output
    "debug", "sync", "async", "kernel_cache", "auto_unmount",
};
constexpr std::string_view kIgnoredKeys[] = {
    // kernel overlayfs features whose behaviour overtier has fixed
    "redirect_dir", "metacopy", "index", "xino", "nfs_export", "fsync",
    // SELinux labels, applied by the kernel's LSM on real mounts only
    "context", "fscontext", "defcontext", "rootcontext",
    // fuse-overlayfs tuning and features
    "xattr_permissions", "plugins", "max_idle_threads",
    "threaded", "fast_ino",
};
// clang-format on
constexpr std::string_view kValueKeys[] = {
    "lowerdir",      "upperdir",      "workdir", "uidmapping",  "gidmapping", "timeout",
    "fsname",        "writeback",     "threads", "store",       "policy",     "policy_interval",
    "restore",       "lazy_copyup",   "spin",    "passthrough", "log",        "restore_clone",
    "squash_to_uid", "squash_to_gid",
};

template <typename Range>
bool Contains(const Range& r, std::string_view s) {
  return std::find(std::begin(r), std::end(r), s) != std::end(r);
}

Status ParseValueOption(std::string_view key, std::string_view value, MountOptions* opts) {
  if (key == "lowerdir") return ParseLowerdirs(value, &opts->lowerdirs);
  if (key == "upperdir") return ParsePath(key, value, &opts->upperdir);
  if (key == "workdir") return ParsePath(key, value, &opts->workdir);
  if (key == "store") return ParsePath(key, value, &opts->store);
  if (key == "uidmapping") return ParseIdMapping(key, value, &opts->uidmap);
  if (key == "gidmapping") return ParseIdMapping(key, value, &opts->gidmap);
  if (key == "timeout") return ParseTimeout(value, &opts->timeout);
  if (key == "squash_to_uid" || key == "squash_to_gid") {
    uint32_t id = 0;
    if (!ParseUint32(value, &id)) {
      return Status::InvalidArgument(std::string(key) + "=" + std::string(value) +
                                     ": expected an unsigned 32-bit id");
    }
    (key == "squash_to_uid" ? opts->squash_uid : opts->squash_gid) = id;
    return Status::OK();
  }
  if (key == "threads") {
    int n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || ptr != value.data() + value.size() || n < 1 || n > 64)
      return Status::InvalidArgument("threads= takes a number from 1 to 64");
    opts->threads = n;
    return Status::OK();
  }
  if (key == "spin") {
    unsigned n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || ptr != value.data() + value.size() || n > 1000)
      return Status::InvalidArgument("spin= takes a number of microseconds from 0 to 1000");
    opts->spin_us = n;
    return Status::OK();
  }
  if (key == "policy") return ParsePath(key, value, &opts->policy);
  if (key == "log") return ParsePath(key, value, &opts->log);
  if (key == "policy_interval") {
    int n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || ptr != value.data() + value.size() || n < 1 || n > 604800)
      return Status::InvalidArgument(
          "policy_interval= takes a number of seconds from 1 to 604800 (a week)");
    opts->policy_interval = n;
    return Status::OK();
  }
  if (key == "restore") {
    if (value != "whole" && value != "ondemand")
      return Status::InvalidArgument("restore= takes 'whole' or 'ondemand'");
    opts->restore_on_demand = value == "ondemand";
    return Status::OK();
  }
  if (key == "restore_clone") {
    if (value != "on" && value != "off")
      return Status::InvalidArgument("restore_clone= takes 'on' or 'off'");
    opts->restore_clone = value == "on";
    return Status::OK();
  }
  if (key == "lazy_copyup") {
    if (value != "on" && value != "off")
      return Status::InvalidArgument("lazy_copyup= takes 'on' or 'off'");
    opts->lazy_copyup = value == "on";
    return Status::OK();
  }
  if (key == "passthrough") {
    if (value != "0" && value != "1") return Status::InvalidArgument("passthrough= takes 0 or 1");
    opts->passthrough = value == "1";
    return Status::OK();
  }
  if (key == "writeback") {  // fuse-overlayfs' writeback=0|1
    if (value != "0" && value != "1") return Status::InvalidArgument("writeback= takes 0 or 1");
    opts->writeback = value == "1";
    opts->writeback_given = true;
    return Status::OK();
  }
  // key == "fsname"
  std::string name = Unescape(value);
  if (name.empty()) return Status::InvalidArgument("fsname= needs a name");
  opts->fsname = std::move(name);
  return Status::OK();
}

Status ParseOneOption(const std::string& opt, MountOptions* opts) {
  size_t eq = opt.find('=');
  std::string_view key = std::string_view(opt).substr(0, eq);
  if (eq == std::string::npos) {
    for (const FlagOption& f : kFlagOptions) {
      if (f.name == key) {
        f.apply(opts);
        return Status::OK();
      }
    }
    if (Contains(kIgnoredFlags, key)) {
      opts->ignored.push_back(opt);
      return Status::OK();
    }
    if (Contains(kValueKeys, key) || Contains(kIgnoredKeys, key)) {
      return Status::InvalidArgument("mount option " + Quoted(key) + " needs a value (" +
                                     std::string(key) + "=...)");
    }
  } else {
    std::string_view value = std::string_view(opt).substr(eq + 1);
    if (Contains(kValueKeys, key)) return ParseValueOption(key, value, opts);
    // containers/storage adds xattr_permissions=2 when storage.conf sets
    // force_mask: the files' real owners and modes are then kept in
    // user.containers.override_stat, which the mount must show. Ignoring it
    // would show the masked ones; refuse it, saying so.
    if (key == "xattr_permissions" && value != "0") {
      return Status::InvalidArgument(
          "mount option xattr_permissions=" + std::string(value) +
          " (owners and modes kept in xattrs, which containers/storage asks for when "
          "storage.conf sets force_mask) is not supported");
    }
    if (Contains(kIgnoredKeys, key)) {
      opts->ignored.push_back(opt);
      return Status::OK();
    }
    bool is_flag = Contains(kIgnoredFlags, key) ||
                   std::any_of(std::begin(kFlagOptions), std::end(kFlagOptions),
                               [&](const FlagOption& f) { return f.name == key; });
    if (is_flag) {
      return Status::InvalidArgument("mount option " + Quoted(key) + " takes no value");
    }
  }
  // "user_xattr" is ext4's spelling and easy to confuse with "userxattr",
  // which moves overlay metadata to another xattr namespace; silently
  // accepting it would leave a mistake unnoticed.
  if (key == "user_xattr") {
    return Status::InvalidArgument("unknown mount option 'user_xattr' (did you mean 'userxattr'?)");
  }
  return Status::InvalidArgument("unknown mount option " + Quoted(opt));
}

// Checks that need every -o seen, so they run after the whole command line.
Status CheckConsistency(const MountOptions& opts) {
  if (opts.lowerdirs.empty()) {
    if (!opts.upperdir.empty()) {
      return Status::InvalidArgument("upperdir needs at least one lowerdir (lowerdir= is missing)");
    }
    return Status::InvalidArgument("missing lowerdir= mount option");
  }
  if (!opts.upperdir.empty() && opts.workdir.empty()) {
    return Status::InvalidArgument("upperdir= needs workdir= as well");
  }
  if (opts.upperdir.empty() && !opts.workdir.empty()) {
    return Status::InvalidArgument("workdir= needs upperdir= as well");
  }
  for (const LowerDir& l : opts.lowerdirs) {
    if (l.is_image() && opts.store.empty()) {
      return Status::InvalidArgument("lowerdir " + l.Describe() + " needs store=");
    }
  }
  if (opts.hard && opts.store.empty()) {
    return Status::InvalidArgument(
        "hard needs store= (it is about the store's archive and images)");
  }
  // Both are about the migration tier: a store and an upper to restore into.
  if (opts.restore_on_demand && opts.store.empty())
    return Status::InvalidArgument(
        "restore=ondemand needs store= (it is about the migration tier)");
  if (!opts.lazy_copyup && opts.store.empty())
    return Status::InvalidArgument("lazy_copyup=off needs store= (it is about the migration tier)");
  if (!opts.restore_clone && opts.store.empty())
    return Status::InvalidArgument(
        "restore_clone=off needs store= (it is about the migration tier)");
  // Through the writeback cache, a write of part of a page of a released
  // file would first read the page back from the archive, and the tier
  // would see the write only when the kernel pushes it.
  if (opts.writeback_given && opts.writeback && !opts.store.empty())
    return Status::InvalidArgument(
        "writeback=1 cannot be combined with store= (the migration tier must see each write as "
        "it is made)");
  // The policy engine archives into the store and releases upper files.
  if (opts.policy_interval != 0 && opts.policy.empty()) {
    return Status::InvalidArgument("policy_interval= needs policy=FILE");
  }
  if (!opts.policy.empty()) {
    if (opts.store.empty()) return Status::InvalidArgument("policy= needs store=");
    if (opts.upperdir.empty() || opts.read_only) {
      return Status::InvalidArgument("policy= needs a writable upper layer (upperdir=, not ro)");
    }
  }
  return Status::OK();
}

// ---- ValidateMountOptions helpers ----

struct Dir {
  std::string what;      // "lowerdir '/x'" (as given, for messages)
  std::string resolved;  // realpath()
  struct stat st {};
};

Status ResolveDir(std::string_view kind, const std::string& path, Dir* out) {
  out->what = std::string(kind) + " " + Quoted(path);
  if (path.empty()) return Status::InvalidArgument(std::string(kind) + " is empty");
  std::unique_ptr<char, decltype(&free)> real(realpath(path.c_str(), nullptr), &free);
  if (!real) return Status::FromErrno(out->what);
  out->resolved = real.get();
  if (out->resolved != path) out->what += " (" + Quoted(out->resolved) + ")";
  if (stat(real.get(), &out->st) != 0) return Status::FromErrno(out->what);
  if (!S_ISDIR(out->st.st_mode)) return Status::Errno(ENOTDIR, out->what);
  return Status::OK();
}

enum class Nesting { kNone, kSame, kInside };

// Whether `inner` is `outer` or below it. Paths are compared by component
// (/a/bc is not below /a/b); the inode check also catches one directory
// reached through two bind mounts.
Nesting NestingOf(const Dir& inner, const Dir& outer) {
  if (inner.resolved == outer.resolved ||
      (inner.st.st_dev == outer.st.st_dev && inner.st.st_ino == outer.st.st_ino)) {
    return Nesting::kSame;
  }
  const std::string& a = inner.resolved;
  const std::string& b = outer.resolved;
  if (b == "/") return Nesting::kInside;
  if (a.size() > b.size() && a.compare(0, b.size(), b) == 0 && a[b.size()] == '/') {
    return Nesting::kInside;
  }
  return Nesting::kNone;
}

// Errors if either directory is inside (or is) the other.
Status CheckDisjoint(const Dir& a, const Dir& b) {
  switch (NestingOf(a, b)) {
    case Nesting::kSame:
      return Status::InvalidArgument(a.what + " and " + b.what + " are the same directory");
    case Nesting::kInside:
      return Status::InvalidArgument(a.what + " is inside " + b.what);
    case Nesting::kNone:
      break;
  }
  if (NestingOf(b, a) == Nesting::kInside) {
    return Status::InvalidArgument(b.what + " is inside " + a.what);
  }
  return Status::OK();
}

Status CheckWritable(const Dir& d) {
  // Permission bits never refuse root, so for root a read-only mount is the
  // usual reason an upper is unwritable; test it first so the message says so.
  struct statvfs vfs {};
  if (statvfs(d.resolved.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0) {
    return Status::Errno(EROFS, d.what + " is not writable");
  }
  if (access(d.resolved.c_str(), W_OK | X_OK) != 0) {
    return Status::FromErrno(d.what + " is not writable");
  }
  return Status::OK();
}

// Renames from workdir into upperdir fail with EXDEV across mounts, even of
// one file system, so compare the mount ids where the kernel reports them.
bool SameMount(const Dir& a, const Dir& b) {
#ifdef STATX_MNT_ID
  struct statx sa {};
  struct statx sb {};
  if (statx(AT_FDCWD, a.resolved.c_str(), 0, STATX_MNT_ID, &sa) == 0 &&
      statx(AT_FDCWD, b.resolved.c_str(), 0, STATX_MNT_ID, &sb) == 0 &&
      (sa.stx_mask & STATX_MNT_ID) != 0 && (sb.stx_mask & STATX_MNT_ID) != 0) {
    return sa.stx_mnt_id == sb.stx_mnt_id;
  }
#else
  (void)a;
  (void)b;
#endif
  return true;
}

// Mount points in /proc/self/mountinfo escape space, tab, newline and
// backslash as \ooo.
std::string DecodeMountinfoPath(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        if (s[i + j] < '0' || s[i + j] > '7') octal = false;
        v = v * 8 + (s[i + j] - '0');
      }
      if (octal) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// The file system type of the top-most mount at `path` according to
// /proc/self/mountinfo, or "" if `path` is not listed as a mount point.
std::string MountinfoType(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, type;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
    std::string_view v(line);
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string_view::npos; ++field) {
      pos = v.find(' ', pos);
      if (pos != std::string_view::npos) ++pos;
    }
    if (pos == std::string_view::npos) continue;
    size_t end = v.find(' ', pos);
    if (end == std::string_view::npos) continue;
    if (DecodeMountinfoPath(v.substr(pos, end - pos)) != path) continue;
    size_t sep = v.find(" - ", end);
    if (sep == std::string_view::npos) continue;
    std::string_view rest = v.substr(sep + 3);
    type = std::string(rest.substr(0, rest.find(' ')));  // later lines are mounted on top
  }
  return type;
}

Status CheckMountPoint(const std::string& mountpoint, const std::vector<const Dir*>& layers,
                       const Dir* store) {
  Dir mp;
  Status s = ResolveDir("mount point", mountpoint, &mp);
  if (s.err() == ENOTCONN) {
    return Status::Errno(ENOTCONN, "mount point " + Quoted(mountpoint) +
                                       " is a FUSE mount whose daemon has gone; unmount it "
                                       "first (fusermount3 -u)");
  }
  OVT_RETURN_IF_ERROR(s);

  // A FUSE daemon reaching one of its own layers through its own mount
  // would call back into itself.
  for (const Dir* layer : layers) {
    if (NestingOf(mp, *layer) == Nesting::kInside) {
      return Status::InvalidArgument(mp.what + " is inside " + layer->what);
    }
  }
  // The daemon opens containers of the store while it serves: through its
  // own mount it would wait on itself.
  if (store != nullptr) OVT_RETURN_IF_ERROR(CheckDisjoint(*store, mp));

  // Stacking on an ordinary mount point is fine (the kernel allows it); a
  // union or FUSE file system already mounted here is a double mount.
  std::string type = MountinfoType(mp.resolved);
  bool is_mount_point = !type.empty() || mp.resolved == "/";
  if (!is_mount_point) {
    std::string parent = mp.resolved.substr(0, mp.resolved.rfind('/'));
    if (parent.empty()) parent = "/";
    struct stat pst {};
    is_mount_point = stat(parent.c_str(), &pst) == 0 && pst.st_dev != mp.st.st_dev;
  }
  if (!is_mount_point) return Status::OK();
  struct statfs sfs {};
  if (statfs(mp.resolved.c_str(), &sfs) != 0) return Status::FromErrno(mp.what);
  if (sfs.f_type != kFuseSuperMagic && sfs.f_type != kOverlaySuperMagic) return Status::OK();
  if (type.empty()) type = sfs.f_type == kFuseSuperMagic ? "fuse" : "overlay";
  return Status::Errno(EBUSY, mp.what + " is already mounted (" + type + ")");
}

uint32_t MapId(const std::vector<IdMapping>& map, uint32_t id, bool to_mount) {
  if (map.empty()) return id;
  for (const IdMapping& m : map) {
    uint32_t from = to_mount ? m.disk : m.mount;
    uint32_t to = to_mount ? m.mount : m.disk;
    if (id >= from && uint64_t{id} < uint64_t{from} + m.count) return to + (id - from);
  }
  return kOverflowId;
}

}  // namespace

Status ParseMountOptionString(const std::string& text, MountOptions* opts) {
  std::vector<std::string> pieces;
  OVT_RETURN_IF_ERROR(SplitOptions(text, &pieces));
  for (const std::string& opt : pieces) OVT_RETURN_IF_ERROR(ParseOneOption(opt, opts));
  return Status::OK();
}

Status ParseMountCommandLine(int argc, const char* const* argv, Invocation* inv) {
  *inv = Invocation{};
  // Keep going after an error so that --help / --version anywhere still
  // work; otherwise the first error is the one reported.
  Status first_error;
  auto fail = [&first_error](Status s) {
    if (first_error.ok() && !s.ok()) first_error = std::move(s);
  };
  std::vector<std::string> positional;
  int i = 1;
  if (argc > 1 && argv[1] != nullptr && std::string_view(argv[1]) == "mount") i = 2;
  bool options_done = false;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i] != nullptr ? argv[i] : "";
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      positional.emplace_back(arg);
    } else if (arg == "--") {
      options_done = true;
    } else if (arg == "-f") {
      inv->foreground = true;
    } else if (arg == "-d") {
      inv->debug = true;
      inv->foreground = true;
    } else if (arg == "-V" || arg == "--version") {
      inv->show_version = true;
    } else if (arg == "-h" || arg == "--help") {
      inv->show_help = true;
    } else if (arg == "-o") {
      if (i + 1 >= argc || argv[i + 1] == nullptr) {
        fail(Status::InvalidArgument("'-o' needs an option list"));
      } else {
        fail(ParseMountOptionString(argv[++i], &inv->opts));
      }
    } else if (arg.starts_with("-o")) {
      fail(ParseMountOptionString(std::string(arg.substr(2)), &inv->opts));
    } else {
      fail(Status::InvalidArgument("unknown argument " + Quoted(arg)));
    }
  }
  if (inv->show_help || inv->show_version) return Status::OK();
  OVT_RETURN_IF_ERROR(first_error);
  if (positional.empty()) return Status::InvalidArgument("missing mount point");
  if (positional.size() > 1) {
    return Status::InvalidArgument("unexpected argument " + Quoted(positional[1]) +
                                   " (only one mount point, " + Quoted(positional[0]) +
                                   ", may be given)");
  }
  if (positional[0].empty()) return Status::InvalidArgument("mount point is empty");
  inv->mountpoint = positional[0];
  OVT_RETURN_IF_ERROR(CheckConsistency(inv->opts));
  if (inv->opts.fsname.empty()) inv->opts.fsname = "overtier";
  return Status::OK();
}

Status ValidateMountOptions(const MountOptions& opts, const std::string& mountpoint) {
  std::vector<Dir> lowers;
  for (const LowerDir& l : opts.lowerdirs) {
    if (l.is_image()) continue;  // the daemon opens the store and checks the image
    Dir d;
    OVT_RETURN_IF_ERROR(ResolveDir("lowerdir", l.path, &d));
    if (access(d.resolved.c_str(), R_OK | X_OK) != 0) {
      return Status::FromErrno(d.what + " is not readable");
    }
    lowers.push_back(std::move(d));
  }
  Dir store;
  if (!opts.store.empty()) OVT_RETURN_IF_ERROR(ResolveDir("store", opts.store, &store));
  std::vector<const Dir*> layers;
  for (const Dir& d : lowers) layers.push_back(&d);

  Dir upper, work;
  if (!opts.upperdir.empty()) {
    OVT_RETURN_IF_ERROR(ResolveDir("upperdir", opts.upperdir, &upper));
    OVT_RETURN_IF_ERROR(ResolveDir("workdir", opts.workdir, &work));
    // A read-only union never writes, so its upper may live on read-only
    // media (an inspected snapshot, say).
    if (!opts.read_only) {
      OVT_RETURN_IF_ERROR(CheckWritable(upper));
      OVT_RETURN_IF_ERROR(CheckWritable(work));
    }
    // overlayfs semantics need rename(2) from workdir into upperdir.
    if (work.st.st_dev != upper.st.st_dev) {
      return Status::Errno(EXDEV, work.what + " is not on the same file system as " + upper.what);
    }
    if (!SameMount(work, upper)) {
      return Status::Errno(EXDEV, work.what + " is not on the same mount as " + upper.what);
    }
    for (const Dir& lower : lowers) OVT_RETURN_IF_ERROR(CheckDisjoint(upper, lower));
    OVT_RETURN_IF_ERROR(CheckDisjoint(work, upper));
    // Work files showing up in a lower layer, or a cleanup of the workdir
    // deleting a layer, would corrupt the union.
    for (const Dir& lower : lowers) OVT_RETURN_IF_ERROR(CheckDisjoint(work, lower));
    layers.push_back(&upper);
    layers.push_back(&work);
  }
  return CheckMountPoint(mountpoint, layers, opts.store.empty() ? nullptr : &store);
}

void ChooseXattrNamespace(MountOptions* opts, std::string* note) {
  note->clear();
  if (opts->userxattr || opts->read_only || opts->upperdir.empty()) return;
  // The probe leaves nothing behind: removed at once, and a daemon killed
  // in between leaves a name no reader looks at.
  static constexpr char kProbe[] = "trusted.overtier.probe";
  if (setxattr(opts->workdir.c_str(), kProbe, "", 0, 0) == 0) {
    (void)removexattr(opts->workdir.c_str(), kProbe);
    return;
  }
  if (errno != EPERM) return;
  opts->userxattr = true;
  *note = "the daemon (uid " + std::to_string(geteuid()) +
          ") may not write trusted.* xattrs: the upper layer keeps its marks in user.overlay.* "
          "(as with -o userxattr)";
}

uint32_t MapIdToMount(const std::vector<IdMapping>& map, uint32_t disk) {
  return MapId(map, disk, /*to_mount=*/true);
}

uint32_t MapIdToDisk(const std::vector<IdMapping>& map, uint32_t mount) {
  return MapId(map, mount, /*to_mount=*/false);
}

}  // namespace overtier
