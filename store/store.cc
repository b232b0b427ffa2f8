#include "store/store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "store/cached_volume.h"
#include "store/flock_retry.h"
#include "store/lazy_volume_set.h"
#include "store/local_volume.h"
#include "store/rados_volume.h"
#include "store/sync_dir.h"

namespace overtier {

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfName = "store.conf";
constexpr const char* kCatalogName = "catalog";
constexpr const char* kWriteLockName = "write.lock";
// Held shared by whoever waits for write.lock: a writer that keeps the
// store open while idle (Store::WriterWanted) lets go when it sees that.
constexpr const char* kWriteWantedName = "write.wanted";
constexpr const char* kMountsLockName = "mounts.lock";
constexpr uint32_t kStoreFormatVersion = 1;
constexpr uint64_t kMinChunkSize = uint64_t{4} << 10;
constexpr uint64_t kMaxChunkSize = uint64_t{16} << 20;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// A plain unsigned decimal: no sign, no spaces, no overflow.
bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool ParseHexId(std::string_view s, StoreId* out) {
  if (s.size() != 32) return false;
  for (size_t i = 0; i < 16; i++) {
    uint8_t b = 0;
    auto [end, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, b, 16);
    if (ec != std::errc() || end != s.data() + 2 * i + 2) return false;
    out->bytes[i] = b;
  }
  return true;
}

// Paths compared as the kernel would resolve them lexically ("/a/b/" and
// "/a//b" are one folder).
std::string NormalPath(const std::string& p) {
  std::string n = fs::path(p).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}

// The store's folder as Init and Open name it: absolute and normal, and
// "store '<path>'" for messages.
Status StorePath(const std::string& path_in, std::string* path, std::string* where) {
  if (path_in.empty()) return Status::InvalidArgument("empty store path");
  std::error_code ec;
  const fs::path abs = fs::absolute(path_in, ec);
  if (ec) return Status::Errno(ec.value(), "store '" + path_in + "': " + ec.message());
  *path = NormalPath(abs.string());
  *where = "store '" + *path + "'";
  return Status::OK();
}

// Where a set's containers are, as one string per location: a folder's
// normal path, or one pool namespace of one cluster (whoever connects to
// it). InvalidArgument, naming `what`, for a relative path or a bad spec.
Status LocationOf(const std::string& what, const std::string& path, std::string* key) {
  if (IsRadosVolumeSpec(path)) {
    RadosVolumeSpec spec;
    Status st = ParseRadosVolumeSpec(path, &spec);
    if (!st.ok()) return Status::InvalidArgument(what + ": " + st.message());
    *key = "rados:" + spec.conf + "?" + spec.pool + "?" + spec.ns;
    return Status::OK();
  }
  if (path.empty() || path[0] != '/')
    return Status::InvalidArgument(what + ": path '" + path + "' is not absolute");
  *key = NormalPath(path);
  return Status::OK();
}

// What both Init and Parse require of a configuration (InvalidArgument).
Status CheckConfig(const StoreConfig& c) {
  if (c.id.IsZero()) return Status::InvalidArgument("store id is zero");
  if (c.sets.empty()) return Status::InvalidArgument("no volume set");
  std::set<std::string> names, paths;
  // Set names are one name space, remote sets included.
  auto check_name = [&](const std::string& kind, const std::string& name) {
    if (!IsValidVolumeSetName(name)) {
      return Status::InvalidArgument(kind + " name '" + name +
                                     "' is not 1 to 64 of [A-Za-z0-9._-] not starting with '.'");
    }
    if (!names.insert(name).second)
      return Status::InvalidArgument(kind + " '" + name + "' is listed twice");
    return Status::OK();
  };
  for (const VolumeSetConfig& s : c.sets) {
    OVT_RETURN_IF_ERROR(check_name("volume set", s.name));
    std::string where;
    OVT_RETURN_IF_ERROR(LocationOf("volume set '" + s.name + "'", s.path, &where));
    if (!paths.insert(where).second) {
      return Status::InvalidArgument("volume set '" + s.name + "': " + s.path +
                                     (IsRadosVolumeSpec(s.path)
                                          ? " is the pool (and namespace) of another set too"
                                          : " is the folder of another set too"));
    }
  }
  std::set<std::string> remote_paths;
  for (const RemoteSetConfig& r : c.remote_sets) {
    OVT_RETURN_IF_ERROR(check_name("remote set", r.name));
    if (!IsValidVolumeSetName(r.origin_set)) {
      return Status::InvalidArgument("remote set '" + r.name + "': origin set name '" +
                                     r.origin_set + "' is not a volume set name");
    }
    if (r.owner.IsZero() || r.owner == c.id) {
      return Status::InvalidArgument("remote set '" + r.name +
                                     "': its owner must be another store than this one");
    }
    std::string where;
    OVT_RETURN_IF_ERROR(LocationOf("remote set '" + r.name + "'", r.path, &where));
    // One location holds one store's set: two remote sets there would be one.
    if (!remote_paths.insert(where).second) {
      return Status::InvalidArgument("remote set '" + r.name + "': " + r.path +
                                     " is the location of another remote set too");
    }
  }
  if (c.copies < 1 || c.copies > c.sets.size()) {
    return Status::InvalidArgument("copies = " + std::to_string(c.copies) +
                                   ": must be between 1 and the number of volume sets (" +
                                   std::to_string(c.sets.size()) +
                                   "), each copy being in another set");
  }
  if (c.vv_size < kVvMinSealSize) {
    return Status::InvalidArgument("vv_size = " + std::to_string(c.vv_size) + ": less than " +
                                   std::to_string(kVvMinSealSize));
  }
  const uint64_t cs = c.chunk_size;
  if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0) {
    return Status::InvalidArgument("chunk_size = " + std::to_string(cs) +
                                   ": not a power of two from 4096 to 16777216");
  }
  if (cs > c.vv_size / 4) {
    return Status::InvalidArgument("chunk_size = " + std::to_string(cs) +
                                   ": more than a quarter of vv_size (" +
                                   std::to_string(c.vv_size) + ")");
  }
  return Status::OK();
}

Status WriteAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// Writes `data` as dir/name: a temporary file, fsynced, renamed over the
// name, and the directory fsynced. A crash leaves the old file or the new,
// never a part (and at worst a stray temporary, which Open ignores).
Status WriteFileAtomic(const std::string& dir, const std::string& name, std::string_view data) {
  const std::string final_path = dir + "/" + name;
  std::string tmp = dir + "/." + name + ".tmp-XXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("create a temporary file for '" + final_path + "'");
  Status s = WriteAll(fd, data, "'" + tmp + "'");
  if (s.ok() && fchmod(fd, 0644) != 0) s = Status::FromErrno("chmod '" + tmp + "'");
  if (s.ok() && fsync(fd) != 0) s = Status::FromErrno("fsync '" + tmp + "'");
  if (close(fd) != 0 && s.ok()) s = Status::FromErrno("close '" + tmp + "'");
  if (s.ok() && rename(tmp.c_str(), final_path.c_str()) != 0) {
    s = Status::FromErrno("rename '" + tmp + "' to '" + final_path + "'");
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return SyncDir(dir);
}

Status ReadWholeFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open '" + path + "'");
  out->clear();
  char buf[4096];
  Status s;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      s = Status::FromErrno("read '" + path + "'");
      break;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    // store.conf is a few hundred bytes; a huge file is not one.
    if (out->size() > (size_t{1} << 20)) {
      s = Status::InvalidArgument("'" + path + "' is larger than 1 MiB: not a store.conf");
      break;
    }
  }
  close(fd);
  return s;
}

// A RADOS set behind its read cache, unless there is none (cache=0, or no
// store: Init's look at the pool).
Status WrapRemote(const std::string& store_dir, const VolumeSetConfig& set,
                  const RadosVolumeSpec& spec, std::unique_ptr<VolumeSet> remote,
                  std::unique_ptr<VolumeSet>* out) {
  if (store_dir.empty() || spec.cache_bytes == 0) {
    *out = std::move(remote);
    return Status::OK();
  }
  ReadCacheOptions co;
  co.dir = store_dir + "/cache/" + set.name;
  co.max_bytes = spec.cache_bytes;
  return WrapWithReadCache(std::move(remote), co, out);
}

// Opens an existing volume set: a local folder (never created here) or a
// RADOS pool, behind a local read cache in STORE/cache/SETNAME unless the
// spec says cache=0 or store_dir is empty (Init's look at the pool).
// `lazy`: a RADOS set connects on first use (lazy_volume_set.h says why);
// its spec is still checked now.
Status OpenVolumeSet(const std::string& store_dir, const VolumeSetConfig& set,
                     std::unique_ptr<VolumeSet>* out, bool lazy = false,
                     LocalVolumeOptions lo = {}) {
  if (IsRadosVolumeSpec(set.path)) {
    RadosVolumeSpec spec;
    OVT_RETURN_IF_ERROR(ParseRadosVolumeSpec(set.path, &spec));
    if (lazy) {
      // The cache (opened at first use) in front of the connection (made
      // at the first miss): what the cache holds is read without
      // connecting at all.
      *out = NewLazyVolumeSet(set.name, [store_dir, set, spec](std::unique_ptr<VolumeSet>* s) {
        std::unique_ptr<VolumeSet> conn =
            NewLazyVolumeSet(set.name, [set, spec](std::unique_ptr<VolumeSet>* r) {
              return OpenRadosVolumeSet(set.name, spec, RadosVolumeOptions(), r);
            });
        return WrapRemote(store_dir, set, spec, std::move(conn), s);
      });
      return Status::OK();
    }
    std::unique_ptr<VolumeSet> remote;
    OVT_RETURN_IF_ERROR(OpenRadosVolumeSet(set.name, spec, RadosVolumeOptions(), &remote));
    return WrapRemote(store_dir, set, spec, std::move(remote), out);
  }
  lo.create_if_missing = false;
  return OpenLocalVolumeSetAt(set.path, set.name, lo, out);
}

// A remote set connects (or opens its folder) on first use, always: the
// store stays usable while another store's location is unreachable, and
// only the reads of what was pulled from it fail.
std::unique_ptr<VolumeSet> OpenRemoteSet(const std::string& store_dir, const RemoteSetConfig& r) {
  VolumeSetConfig as_set{r.name, r.path};
  std::unique_ptr<VolumeSet> rados;
  if (IsRadosVolumeSpec(r.path) && OpenVolumeSet(store_dir, as_set, &rados, true).ok())
    return rados;  // connects on first use, its read cache in front
  return NewLazyVolumeSet(r.name, [store_dir, as_set](std::unique_ptr<VolumeSet>* s) {
    Status st = OpenVolumeSet(store_dir, as_set, s, false);
    if (!st.ok())
      return Status::Errno(st.err(), "remote set '" + as_set.name + "': " + st.message());
    return st;
  });
}

// Opens a lock file of the store; a read-only opener may not be allowed to
// create it, so creating is only tried when it is missing.
Status OpenLockFile(const std::string& path, int* fd) {
  *fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0 && errno == ENOENT) *fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (*fd < 0) return Status::FromErrno("open lock file '" + path + "'");
  return Status::OK();
}

}  // namespace

Status OpenVolumeLocation(const std::string& path, const std::string& name,
                          std::unique_ptr<VolumeSet>* out) {
  if (!IsRadosVolumeSpec(path) && (path.empty() || path[0] != '/'))
    return Status::InvalidArgument("'" + path +
                                   "' is neither an absolute folder path nor a RADOS spec");
  return OpenVolumeSet("", VolumeSetConfig{name, path}, out, false);
}

// ---------------------------------------------------------------------------
// store.conf
// ---------------------------------------------------------------------------

Status ParseStoreConfig(std::string_view text, StoreConfig* out) {
  struct Line {
    int number;
    std::string_view key, value;
  };
  std::vector<Line> lines;
  int number = 0;
  if (!text.empty() && text.back() != '\n') {
    return Status::InvalidArgument("the last line does not end in a newline (a truncated file?)");
  }
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    number++;
    std::string_view line = Trim(raw);
    // Comments are whole lines: a value (a path) may contain '#'.
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument("line " + std::to_string(number) + ": no '=' in '" +
                                     std::string(line) + "'");
    }
    lines.push_back({number, Trim(line.substr(0, eq)), Trim(line.substr(eq + 1))});
  }
  auto bad = [](const Line& l, const std::string& what) {
    return Status::InvalidArgument("line " + std::to_string(l.number) + ": " + std::string(l.key) +
                                   " = '" + std::string(l.value) + "': " + what);
  };

  // The format first: a newer store may have other keys, and "newer than
  // this overtier" is the message that helps then.
  StoreConfig c;
  const Line* format = nullptr;
  for (const Line& l : lines) {
    if (l.key != "format") continue;
    if (format != nullptr) {
      return bad(l, "format given twice (line " + std::to_string(format->number) + ")");
    }
    format = &l;
    uint64_t v = 0;
    if (!ParseU64(l.value, &v) || v == 0 || v > UINT32_MAX) return bad(l, "not a format version");
    if (v > kStoreFormatVersion) {
      return Status::Errno(ENOTSUP, "format " + std::to_string(v) +
                                        " is newer than this overtier (" +
                                        std::to_string(kStoreFormatVersion) + ")");
    }
    c.format_version = static_cast<uint32_t>(v);
  }
  if (format == nullptr) return Status::InvalidArgument("no 'format' line");

  std::map<std::string_view, int> seen;  // key -> line, for the keys given once
  c.sets.clear();
  for (const Line& l : lines) {
    if (l.key == "format") continue;
    if (l.key != "volume_set" && l.key != "remote_set") {
      auto [it, fresh] = seen.emplace(l.key, l.number);
      if (!fresh) return bad(l, "given twice (line " + std::to_string(it->second) + ")");
    }
    uint64_t v = 0;
    if (l.key == "id") {
      if (!ParseHexId(l.value, &c.id) || c.id.IsZero()) {
        return bad(l, "not a store id (32 hex digits, not all zero)");
      }
    } else if (l.key == "copies") {
      if (!ParseU64(l.value, &v) || v > UINT32_MAX) return bad(l, "not a number of copies");
      c.copies = static_cast<uint32_t>(v);
    } else if (l.key == "vv_size") {
      if (!ParseU64(l.value, &c.vv_size)) return bad(l, "not a size in bytes");
    } else if (l.key == "chunk_size") {
      if (!ParseU64(l.value, &c.chunk_size)) return bad(l, "not a size in bytes");
    } else if (l.key == "volume_set") {
      size_t sp = l.value.find_first_of(" \t");
      if (sp == std::string_view::npos) return bad(l, "expected NAME PATH");
      VolumeSetConfig set;
      set.name = std::string(l.value.substr(0, sp));
      set.path = std::string(Trim(l.value.substr(sp)));
      c.sets.push_back(std::move(set));
    } else if (l.key == "remote_set") {
      // NAME OWNER ORIGIN PATH: three words, then the path (which may
      // hold blanks) to the end of the line.
      std::string_view rest = l.value;
      std::string words[3];
      for (std::string& w : words) {
        size_t sp = rest.find_first_of(" \t");
        if (sp == std::string_view::npos) return bad(l, "expected NAME OWNER ORIGIN PATH");
        w = std::string(rest.substr(0, sp));
        rest = Trim(rest.substr(sp));
      }
      RemoteSetConfig r;
      r.name = words[0];
      if (!ParseHexId(words[1], &r.owner)) return bad(l, "owner is not a store id (32 hex digits)");
      r.origin_set = words[2];
      r.path = std::string(rest);
      c.remote_sets.push_back(std::move(r));
    } else {
      return Status::InvalidArgument("line " + std::to_string(l.number) + ": unknown key '" +
                                     std::string(l.key) + "'");
    }
  }
  for (const char* key : {"id", "copies", "vv_size", "chunk_size"}) {
    if (!seen.count(key)) return Status::InvalidArgument("no '" + std::string(key) + "' line");
  }
  if (c.sets.empty()) return Status::InvalidArgument("no 'volume_set' line");
  OVT_RETURN_IF_ERROR(CheckConfig(c));
  *out = std::move(c);
  return Status::OK();
}

std::string FormatStoreConfig(const StoreConfig& c) {
  std::string out =
      "# overtier store configuration, written by 'overtier store init'.\n"
      "# The store id must match the catalog's; volume set paths are where the\n"
      "# containers are (a moved set needs its path edited here).\n";
  out += "format = " + std::to_string(c.format_version) + "\n";
  out += "id = " + c.id.ToHex() + "\n";
  // The sets (and remote sets) before the required one-line keys, and a
  // newline at the end:
  // a store.conf cut short anywhere then lacks a required key or ends in
  // the middle of a line, and Parse refuses it.
  for (const VolumeSetConfig& s : c.sets) out += "volume_set = " + s.name + " " + s.path + "\n";
  for (const RemoteSetConfig& r : c.remote_sets)
    out +=
        "remote_set = " + r.name + " " + r.owner.ToHex() + " " + r.origin_set + " " + r.path + "\n";
  out += "copies = " + std::to_string(c.copies) + "\n";
  out += "vv_size = " + std::to_string(c.vv_size) + "\n";
  out += "chunk_size = " + std::to_string(c.chunk_size) + "\n";
  return out;
}

// ---------------------------------------------------------------------------
// The reader cache
// ---------------------------------------------------------------------------

// How long OpenContainer keeps using the reader of a container found
// shorter than its catalog row before opening it again (to see whether it
// was repaired): a truncated container must not cost a reopen per chunk.
constexpr auto kShortRecheck = std::chrono::seconds(10);

struct Store::ReaderCache {
  struct Entry {
    // Shared with the callers reading through it: a reader replaced (its
    // open container grew) or evicted closes its files once the last of
    // them lets go. (Kept until the Store went, before: a mount archiving
    // into an open container and restoring from it opened a reader per
    // catalog commit and ran out of file descriptors within minutes.)
    std::shared_ptr<VvReader> reader;
    uint64_t last_used = 0;  // ReaderCache::clock when last handed out
    // The reader is shorter than the catalog row said (`short_of` bytes)
    // even freshly opened: the container was truncated. It is used as it
    // is (the records before the cut still read and verify) until
    // `recheck`.
    bool short_reader = false;
    uint64_t short_of = 0;
    std::chrono::steady_clock::time_point recheck;
  };
  // Drops the least recently used entries beyond kMaxReaders (their
  // readers live on while callers hold them).
  void Trim() {
    while (entries.size() > kMaxReaders) {
      auto oldest = entries.begin();
      for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->second.last_used < oldest->second.last_used) oldest = it;
      }
      entries.erase(oldest);
    }
  }
  // Readers kept open. A container has a file per 64 MiB piece (five for a
  // full 256 MiB one) and an O_DIRECT description of each once the
  // io_uring engine read it: this bounds what the cache holds to about
  // 1300 descriptors however many containers a store has (the union's
  // cached layer descriptors take half of the daemon's limit).
  static constexpr size_t kMaxReaders = 128;
  uint64_t clock = 0;
  std::mutex mu;
  std::map<uint64_t, Entry> entries;
  // Not about readers, but private state with nowhere else to live
  // (store.h): whether mounts_lock_fd_ is held exclusively (gc) or shared.
  bool mounts_exclusive = false;
};

// ---------------------------------------------------------------------------
// Init
// ---------------------------------------------------------------------------

namespace {

// Readies the location of a set a store is about to list (Init, AddVolumeSet):
// a RADOS pool must be reachable and hold no containers (another store's
// would collide with ours by id); a folder is made, with its missing
// ancestors (appended to *made_dirs, for the caller to take back on
// failure), or must be empty.
Status PrepareNewSet(const std::string& where, const VolumeSetConfig& set,
                     std::vector<std::string>* made_dirs) {
  if (IsRadosVolumeSpec(set.path)) {
    std::unique_ptr<VolumeSet> vs;
    Status s = OpenVolumeSet("", set, &vs);
    if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
    std::vector<uint64_t> ids;
    s = vs->List(&ids);
    if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
    if (!ids.empty()) {
      return Status::Errno(EEXIST, where + ": volume set '" + set.name + "' (" + set.path +
                                       ") already holds " + std::to_string(ids.size()) +
                                       " containers; use another pool or ns=");
    }
    return Status::OK();
  }
  std::vector<std::string> missing;
  struct stat st;
  for (fs::path p(set.path); !p.empty() && p != p.root_path(); p = p.parent_path()) {
    if (lstat(p.c_str(), &st) == 0) break;
    if (errno != ENOENT) return Status::FromErrno("volume set '" + set.name + "'");
    missing.push_back(p.string());
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (mkdir(it->c_str(), 0755) != 0) {
      return Status::FromErrno(where + ": create '" + *it + "' for volume set '" + set.name + "'");
    }
    made_dirs->push_back(*it);
    OVT_RETURN_IF_ERROR(SyncDir(fs::path(*it).parent_path().string()));
  }
  if (missing.empty()) {
    // An existing folder is taken only if empty: containers of another
    // store there would be silently shadowed, or worse, overwritten.
    std::error_code ec;
    if (!fs::is_directory(set.path, ec) || !fs::is_empty(set.path, ec) || ec) {
      return Status::Errno(EEXIST, where + ": volume set '" + set.name + "' folder '" + set.path +
                                       "' exists and is not an empty folder");
    }
  }
  LocalVolumeOptions lo;
  lo.create_if_missing = false;
  std::unique_ptr<VolumeSet> vs;
  Status s = OpenLocalVolumeSetAt(set.path, set.name, lo, &vs);
  if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
  return Status::OK();
}

// A set as given, in the form store.conf keeps: an empty path is
// STORE/volumes/NAME, a RADOS spec canonical (a bad one is left for
// CheckConfig to name), a folder path normal.
void NormalizeSetPath(const std::string& store_path, VolumeSetConfig* s) {
  if (s->path.empty()) {
    s->path = store_path + "/volumes/" + s->name;
  } else if (IsRadosVolumeSpec(s->path)) {
    RadosVolumeSpec spec;
    if (ParseRadosVolumeSpec(s->path, &spec).ok()) s->path = FormatRadosVolumeSpec(spec);
  } else {
    s->path = NormalPath(s->path);  // CheckConfig refuses a relative one
  }
}

}  // namespace

Status Store::Init(const std::string& path_in, const StoreInitOptions& options,
                   std::unique_ptr<Store>* out) {
  std::string path, where;
  OVT_RETURN_IF_ERROR(StorePath(path_in, &path, &where));

  StoreConfig c;
  c.format_version = kStoreFormatVersion;
  OVT_RETURN_IF_ERROR(RandomId(&c.id));
  c.sets = options.sets;
  if (c.sets.empty()) c.sets.push_back({"default", ""});
  for (VolumeSetConfig& s : c.sets) NormalizeSetPath(path, &s);
  c.copies = options.copies != 0 ? options.copies
                                 : static_cast<uint32_t>(std::min<size_t>(2, c.sets.size()));
  c.vv_size = options.vv_size != 0 ? options.vv_size : kVvDefaultSealSize;
  c.chunk_size = options.chunk_size != 0 ? options.chunk_size : kDefaultChunkSize;
  Status s = CheckConfig(c);
  if (!s.ok()) return Status::InvalidArgument(where + ": " + s.message());

  // The store folder: absent (made here) or empty.
  bool made_root = false;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    std::error_code ec;
    if (!S_ISDIR(st.st_mode)) return Status::Errno(EEXIST, where + " exists and is not a folder");
    if (!fs::is_empty(path, ec) || ec) {
      struct stat lock_st, conf_st;
      if (stat((path + "/" + kWriteLockName).c_str(), &lock_st) == 0 &&
          stat((path + "/" + kConfName).c_str(), &conf_st) != 0) {
        return Status::Errno(EEXIST, where +
                                         " is not empty: it has a write.lock but no store.conf, "
                                         "what an interrupted init leaves; remove it first");
      }
      return Status::Errno(EEXIST, where + " is not empty; not making a store over it");
    }
  } else if (errno != ENOENT) {
    return Status::FromErrno(where);
  } else {
    if (mkdir(path.c_str(), 0755) != 0) return Status::FromErrno("create " + where);
    made_root = true;
  }

  // write.lock first, with O_EXCL: two Inits racing on one empty folder
  // cannot both get past this, and the lock file is there for every Open.
  const std::string lock_path = path + "/" + kWriteLockName;
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    int err = errno;
    if (made_root) rmdir(path.c_str());
    return Status::Errno(err, where + ": cannot create " + kWriteLockName);
  }

  // Everything made from here on, to undo on failure (a set folder outside
  // the store is only removed if made here, and only while empty).
  std::vector<std::string> made_dirs;
  bool made_catalog = false;
  auto fail = [&](Status why) {
    if (made_catalog) {
      std::error_code ec;
      fs::remove_all(path + "/" + kCatalogName, ec);
    }
    for (auto it = made_dirs.rbegin(); it != made_dirs.rend(); ++it) rmdir(it->c_str());
    unlink((path + "/" + kMountsLockName).c_str());
    unlink(lock_path.c_str());
    close(lock_fd);
    if (made_root) rmdir(path.c_str());
    return why;
  };

  for (const VolumeSetConfig& set : c.sets) {
    s = PrepareNewSet(where, set, &made_dirs);
    if (!s.ok()) return fail(s);
  }

  int mounts_fd =
      open((path + "/" + kMountsLockName).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (mounts_fd < 0) return fail(Status::FromErrno(where + ": cannot create " + kMountsLockName));
  close(mounts_fd);

  std::unique_ptr<Catalog> catalog;
  s = Catalog::Create(path + "/" + kCatalogName, c.id, &catalog);
  if (!s.ok()) return fail(Status::Errno(s.err(), where + ": " + s.message()));
  made_catalog = true;
  catalog.reset();

  // Last: with store.conf in place this is a store.
  s = WriteFileAtomic(path, kConfName, FormatStoreConfig(c));
  if (!s.ok()) return fail(Status::Errno(s.err(), where + ": " + s.message()));
  if (made_root) {
    s = SyncDir(fs::path(path).parent_path().string());
    if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
  }
  close(lock_fd);
  if (out == nullptr) return Status::OK();
  return Open(path, StoreOpenOptions(), out);
}

Status Store::AddVolumeSet(const std::string& path_in, VolumeSetConfig set, uint32_t copies,
                           StoreConfig* result) {
  // Open for writing: the write lock keeps every other writer out while
  // store.conf changes (a mount's migration session waits, and reads the
  // new configuration when it opens next).
  std::unique_ptr<Store> store;
  OVT_RETURN_IF_ERROR(Open(path_in, StoreOpenOptions(), &store));
  const std::string where = "store '" + store->path_ + "'";
  StoreConfig c = store->config_;
  NormalizeSetPath(store->path_, &set);
  c.sets.push_back(set);
  if (copies != 0) c.copies = copies;
  Status s = CheckConfig(c);
  if (!s.ok()) return Status::InvalidArgument(where + ": " + s.message());
  std::vector<std::string> made_dirs;
  s = PrepareNewSet(where, set, &made_dirs);
  // Last: with the new store.conf in place the set is part of the store.
  if (s.ok()) s = WriteFileAtomic(store->path_, kConfName, FormatStoreConfig(c));
  if (!s.ok()) {
    for (auto it = made_dirs.rbegin(); it != made_dirs.rend(); ++it) rmdir(it->c_str());
    return s;
  }
  if (result != nullptr) *result = c;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Open
// ---------------------------------------------------------------------------

Status Store::Open(const std::string& path_in, const StoreOpenOptions& options,
                   std::unique_ptr<Store>* out) {
  std::string path, where;
  OVT_RETURN_IF_ERROR(StorePath(path_in, &path, &where));

  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound(where + " does not exist");
    return Status::FromErrno(where);
  }
  if (!S_ISDIR(st.st_mode)) return Status::Errno(ENOTDIR, where + " is not a folder");
  const std::string conf_path = path + "/" + kConfName;
  std::string text;
  Status s = ReadWholeFile(conf_path, &text);
  if (!s.ok()) {
    if (s.err() == ENOENT) {
      return Status::NotFound(where + " is not an overtier store (no " + kConfName +
                              "; 'overtier store init' makes one)");
    }
    return Status::Errno(s.err(), where + ": " + s.message());
  }

  std::unique_ptr<Store> store(new Store());
  store->path_ = path;
  store->read_only_ = options.read_only;
  store->readers_ = std::make_unique<ReaderCache>();
  s = ParseStoreConfig(text, &store->config_);
  if (!s.ok()) return Status::Errno(s.err(), where + ": " + conf_path + ": " + s.message());

  // One writer at a time, in line: before the catalog, whose own lock would
  // only say "busy".
  if (!options.read_only) {
    const std::string lock_path = path + "/" + kWriteLockName;
    store->write_lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (store->write_lock_fd_ < 0) return Status::FromErrno(where + ": open " + lock_path);
    const std::string wanted_path = path + "/" + kWriteWantedName;
    if (Flock(store->write_lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return Status::FromErrno(where + ": lock " + lock_path);
      if (!options.wait) return Status::Errno(EBUSY, where + ": another process writes it");
      fprintf(stderr, "overtier: waiting for another writer of %s\n", path.c_str());
      // Shared, so wanting never waits for another who wants; the holder
      // only tries it exclusively. Without it (an unwritable folder) we
      // still wait, for as long as the holder keeps the store.
      int wanted = open(wanted_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (wanted >= 0 && Flock(wanted, LOCK_SH) != 0) {
        close(wanted);
        wanted = -1;
      }
      const bool locked = Flock(store->write_lock_fd_, LOCK_EX) == 0;
      const int err = errno;
      if (wanted >= 0) close(wanted);
      if (!locked) return Status::Errno(err, where + ": lock " + lock_path);
    }
    store->wanted_fd_ = open(wanted_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }

  const std::string catalog_path = path + "/" + kCatalogName;
  CatalogOptions co;
  co.read_only = options.read_only;
  co.flush_on_close = options.flush_on_close;
  co.judged = options.judged;
  co.quiet_log = options.quiet_log;
  s = Catalog::Open(catalog_path, co, &store->catalog_);
  if (!s.ok()) {
    if (s.err() == ENOENT) {
      return Status::Errno(EIO, where + ": the catalog is missing (" + s.message() + ")");
    }
    return Status::Errno(s.err(), where + ": " + s.message());
  }
  if (store->catalog_->store_id() != store->config_.id) {
    return Status::Corruption(where + ": the catalog belongs to store " +
                              store->catalog_->store_id().ToHex() + " but " + kConfName + " says " +
                              store->config_.id.ToHex());
  }

  LocalVolumeOptions lo;
  if (options.keep_catalog_room && !options.read_only) {
    struct stat cst;
    struct statvfs cv;
    const std::string catalog_dir = path + "/catalog";
    if (stat(catalog_dir.c_str(), &cst) == 0 && statvfs(catalog_dir.c_str(), &cv) == 0) {
      lo.keep_free = CatalogRoom(static_cast<uint64_t>(cv.f_blocks) * cv.f_frsize);
      lo.keep_free_dev = cst.st_dev;
    }
  }
  for (const VolumeSetConfig& set : store->config_.sets) {
    std::unique_ptr<VolumeSet> vs;
    s = OpenVolumeSet(path, set, &vs, /*lazy=*/true, lo);
    if (!s.ok()) {
      if (IsRadosVolumeSpec(set.path)) return Status::Errno(s.err(), where + ": " + s.message());
      if (s.err() == ENOENT) {
        return Status::NotFound(where + ": the folder of volume set '" + set.name + "', '" +
                                set.path + "', is missing (a disk not mounted?)");
      }
      return Status::Errno(s.err(), where + ": volume set '" + set.name + "': " + s.message());
    }
    store->set_ptrs_.push_back(vs.get());
    store->sets_.push_back(std::move(vs));
  }
  for (const RemoteSetConfig& r : store->config_.remote_sets)
    store->remote_sets_.push_back(OpenRemoteSet(path, r));
  *out = std::move(store);
  return Status::OK();
}

uint64_t CatalogRoom(uint64_t fs_bytes) {
  return std::clamp<uint64_t>(fs_bytes / 50, uint64_t{1} << 20, uint64_t{64} << 20);
}

Store::~Store() {
  // Readers before their sets, the catalog before write.lock: the next
  // writer must find RocksDB's own lock free once it has ours.
  readers_.reset();
  catalog_.reset();
  set_ptrs_.clear();
  sets_.clear();
  if (mounts_lock_fd_ >= 0) close(mounts_lock_fd_);
  if (write_lock_fd_ >= 0) close(write_lock_fd_);
  if (wanted_fd_ >= 0) close(wanted_fd_);
}

bool Store::WriterWanted() const {
  if (wanted_fd_ < 0) return false;
  if (flock(wanted_fd_, LOCK_EX | LOCK_NB) == 0) {
    flock(wanted_fd_, LOCK_UN);
    return false;
  }
  return errno == EWOULDBLOCK;
}

VolumeSet* Store::remote_set(std::string_view name) const {
  for (const auto& s : remote_sets_) {
    if (s->name() == name) return s.get();
  }
  return nullptr;
}

Status Store::AddRemoteSet(const StoreId& owner, const std::string& origin_set,
                           const std::string& path_in, std::string* name) {
  const std::string where = "store '" + path_ + "'";
  if (read_only_) return Status::Errno(EROFS, where + ": opened read-only");
  VolumeSetConfig as_set{"", path_in};
  NormalizeSetPath(path_, &as_set);
  const std::string& path = as_set.path;
  for (const RemoteSetConfig& r : config_.remote_sets) {
    if (r.owner == owner && r.origin_set == origin_set && r.path == path) {
      *name = r.name;
      return Status::OK();
    }
  }
  StoreConfig c = config_;
  RemoteSetConfig r{"", owner, origin_set, path};
  for (int n = 1; r.name.empty(); n++) {
    std::string candidate = "remote" + std::to_string(n);
    if (volume_set(candidate) == nullptr && remote_set(candidate) == nullptr) r.name = candidate;
  }
  c.remote_sets.push_back(r);
  Status s = CheckConfig(c);
  if (!s.ok()) return Status::InvalidArgument(where + ": " + s.message());
  OVT_RETURN_IF_ERROR(WriteFileAtomic(path_, kConfName, FormatStoreConfig(c)));
  config_ = std::move(c);
  remote_sets_.push_back(OpenRemoteSet(path_, r));
  *name = r.name;
  return Status::OK();
}

VolumeSet* Store::volume_set(std::string_view name) const {
  for (VolumeSet* s : set_ptrs_) {
    if (s->name() == name) return s;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

Status Store::OpenContainer(uint64_t vv_id, std::shared_ptr<const VvReader>* out) {
  std::lock_guard<std::mutex> lock(readers_->mu);
  auto it = readers_->entries.find(vv_id);
  if (it != readers_->entries.end()) it->second.last_used = ++readers_->clock;
  // A sealed container never changes: its reader is good forever.
  if (it != readers_->entries.end() && it->second.reader->sealed()) {
    *out = it->second.reader;
    return Status::OK();
  }

  VolumeRecord vr;
  Status s = catalog_->GetVolume(vv_id, &vr);
  if (s.err() == ENOENT) {
    return Status::NotFound("store '" + path_ + "': vv " + std::to_string(vv_id) +
                            " is not in the catalog");
  }
  OVT_RETURN_IF_ERROR(s);
  if (vr.state == VolumeState::kLost) {
    return Status::Corruption("store '" + path_ + "': vv " + std::to_string(vv_id) + " (set '" +
                              vr.set + "') is marked lost in the catalog");
  }
  // An open container grows; a reader sees it as of its opening. The
  // catalog's size is what has been committed, so a reader at least that
  // large sees every record the catalog can point to.
  if (it != readers_->entries.end() && it->second.reader->size() >= vr.size) {
    *out = it->second.reader;
    return Status::OK();
  }
  // Known to be truncated: no reopen per chunk read.
  const auto now = std::chrono::steady_clock::now();
  if (it != readers_->entries.end() && it->second.short_reader && it->second.short_of == vr.size &&
      now < it->second.recheck) {
    *out = it->second.reader;
    return Status::OK();
  }

  std::unique_ptr<VvReader> reader;
  if (vr.state == VolumeState::kRemote) {
    OVT_RETURN_IF_ERROR(OpenRemoteContainer(vv_id, vr, &reader));
  } else {
    VolumeSet* set = volume_set(vr.set);
    if (set == nullptr) {
      return Status::Corruption("store '" + path_ + "': the catalog puts vv " +
                                std::to_string(vv_id) + " in volume set '" + vr.set +
                                "', which store.conf does not list");
    }
    OVT_RETURN_IF_ERROR(VvReader::Open(set, config_.id.bytes, vv_id, &reader));
  }
  ReaderCache::Entry& e = readers_->entries[vv_id];
  e.last_used = ++readers_->clock;
  const bool short_reader = reader->size() < vr.size;
  if (short_reader) {
    // Rows are committed only after the container bytes they name are
    // durable, so a reader opened after the row was read and still shorter
    // is not behind a writer: the container lost its end. Its header is
    // intact (VvReader::Open checked it), and a sealed one, having lost its
    // trailer, reads as unsealed with every read checked against its real
    // end: the records before the cut still read and verify, those past it
    // are EIO naming the container and the offset. Said once per container
    // and size.
    e.recheck = now + kShortRecheck;
    if (e.reader && e.short_reader && e.reader->size() == reader->size()) {
      e.short_of = vr.size;
      *out = e.reader;
      return Status::OK();  // no change: keep the reader callers already have
    }
    std::fprintf(stderr,
                 "overtier: store '%s': %s (set '%s') is truncated: %llu bytes, the catalog "
                 "says %llu; its data past byte %llu is unreadable (EIO), the rest is read "
                 "and verified\n",
                 path_.c_str(), VvName(vv_id).c_str(), vr.set.c_str(),
                 static_cast<unsigned long long>(reader->size()),
                 static_cast<unsigned long long>(vr.size),
                 static_cast<unsigned long long>(reader->size()));
  }
  e.short_reader = short_reader;
  e.short_of = vr.size;
  e.reader = std::move(reader);
  *out = e.reader;
  readers_->Trim();  // after *out: the entry may be the one dropped
  return Status::OK();
}

// Another store's container: its header and checksums carry the owner's
// store id, set name and vv id, which the reader checks instead of ours.
Status Store::OpenRemoteContainer(uint64_t vv_id, const VolumeRecord& vr,
                                  std::unique_ptr<VvReader>* out) {
  const RemoteSetConfig* rc = nullptr;
  for (const RemoteSetConfig& r : config_.remote_sets) {
    if (r.name == vr.set) rc = &r;
  }
  VolumeSet* set = remote_set(vr.set);
  if (rc == nullptr || set == nullptr) {
    return Status::Corruption("store '" + path_ + "': the catalog puts vv " +
                              std::to_string(vv_id) + " in remote set '" + vr.set +
                              "', which store.conf does not list");
  }
  std::unique_ptr<VolumeReader> volume;
  Status s = set->Open(vr.origin_vv_id, &volume);
  if (s.ok())
    s = VvReader::Open(std::move(volume), rc->origin_set, rc->owner.bytes, vr.origin_vv_id, out);
  if (!s.ok()) {
    return Status::Errno(s.err(), "vv " + std::to_string(vv_id) + " (" + VvName(vr.origin_vv_id) +
                                      " of store " + rc->owner.ToHex() + ", remote set '" + vr.set +
                                      "'): " + s.message());
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Mounts and gc
// ---------------------------------------------------------------------------

Status Store::PinForMount() {
  if (mounts_lock_fd_ >= 0) {
    if (!readers_->mounts_exclusive) return Status::OK();
    return Status::InvalidArgument("store '" + path_ +
                                   "': holds mounts.lock exclusively (gc), cannot also mount");
  }
  const std::string lock_path = path_ + "/" + kMountsLockName;
  int fd = -1;
  OVT_RETURN_IF_ERROR(OpenLockFile(lock_path, &fd));
  if (Flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      Status s = Status::FromErrno("lock '" + lock_path + "'");
      close(fd);
      return s;
    }
    fprintf(stderr, "overtier: waiting for gc to finish with %s\n", path_.c_str());
    if (Flock(fd, LOCK_SH) != 0) {
      Status s = Status::FromErrno("lock '" + lock_path + "'");
      close(fd);
      return s;
    }
  }
  mounts_lock_fd_ = fd;
  readers_->mounts_exclusive = false;
  return Status::OK();
}

bool Store::TryExclusiveOfMounts() {
  if (mounts_lock_fd_ >= 0) return readers_->mounts_exclusive;
  int fd = -1;
  if (!OpenLockFile(path_ + "/" + kMountsLockName, &fd).ok()) return false;
  if (Flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return false;
  }
  mounts_lock_fd_ = fd;
  readers_->mounts_exclusive = true;
  return true;
}

}  // namespace overtier
