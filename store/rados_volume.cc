#include "store/rados_volume.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <utility>

namespace overtier {

namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Names we put in specs, store.conf lines and object names: no separators
// of the spec itself, no blanks, nothing a shell or a log would mangle.
bool IsPlainName(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// "123", "64M", "2G": bytes, with an optional suffix of a power of 1024.
bool ParseBytes(std::string_view s, uint64_t* out) {
  int shift = 0;
  if (!s.empty()) {
    switch (s.back()) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        break;
    }
  }
  if (shift != 0) s.remove_suffix(1);
  uint64_t v = 0;
  if (!ParseU64(s, &v) || v > (~uint64_t{0} >> shift)) return false;
  *out = v << shift;
  return true;
}

// The shortest way ParseBytes reads back.
std::string FormatBytes(uint64_t v) {
  static const char kSuffix[] = {'T', 'G', 'M', 'K'};
  for (int i = 0; i < 4; i++) {
    const int shift = 40 - 10 * i;
    if (v != 0 && v % (uint64_t{1} << shift) == 0) {
      return std::to_string(v >> shift) + kSuffix[i];
    }
  }
  return std::to_string(v);
}

bool IsPlainPath(std::string_view s) {
  if (s.empty() || s[0] != '/') return false;
  for (char c : s) {
    if (c == '&' || c == '?' || c == '=' || c == ' ' || c == '\t' || c == '\n') return false;
  }
  return true;
}

}  // namespace

bool IsRadosVolumeSpec(std::string_view s) { return s.substr(0, 6) == "rados:"; }

Status ParseRadosVolumeSpec(std::string_view spec, RadosVolumeSpec* out) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("RADOS volume set spec '" + std::string(spec) + "': " + why);
  };
  if (!IsRadosVolumeSpec(spec)) return bad("does not start with 'rados:'");
  std::string_view rest = spec.substr(6);
  size_t q = rest.find('?');
  std::string_view pool = rest.substr(0, q);
  RadosVolumeSpec r;
  if (pool.empty()) return bad("no pool name (expected rados:POOL[?key=value&...])");
  if (!IsPlainName(pool, 128)) {
    return bad("pool name '" + std::string(pool) + "' is not 1 to 128 of [A-Za-z0-9._-]");
  }
  r.pool = pool;
  std::set<std::string> seen;
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    if (query.empty()) return bad("nothing after '?'");
    while (true) {
      size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return bad("'" + std::string(kv) + "' is not key=value");
      }
      std::string key(kv.substr(0, eq));
      std::string_view value = kv.substr(eq + 1);
      if (!seen.insert(key).second) return bad("'" + key + "' is given twice");
      if (value.empty()) return bad("'" + key + "' has an empty value");
      if (key == "conf" || key == "keyring") {
        if (!IsPlainPath(value)) {
          return bad(key + " = '" + std::string(value) +
                     "' is not an absolute path without blanks, '&', '?' or '='");
        }
        (key == "conf" ? r.conf : r.keyring) = value;
      } else if (key == "id") {
        std::string_view name = value.substr(0, 7) == "client." ? value.substr(7) : value;
        if (!IsPlainName(name, 128)) {
          return bad("id = '" + std::string(value) +
                     "' is not client.NAME with NAME of [A-Za-z0-9._-]");
        }
        r.id = "client." + std::string(name);
      } else if (key == "ns") {
        if (!IsPlainName(value, 128)) {
          return bad("ns = '" + std::string(value) + "' is not 1 to 128 of [A-Za-z0-9._-]");
        }
        r.ns = value;
      } else if (key == "timeout") {
        uint64_t t = 0;
        if (!ParseU64(value, &t) || t < 1 || t > 3600) {
          return bad("timeout = '" + std::string(value) + "' is not a number of seconds, 1..3600");
        }
        r.timeout_seconds = static_cast<uint32_t>(t);
      } else if (key == "cache") {
        uint64_t b = 0;
        if (!ParseBytes(value, &b) ||
            (b != 0 && (b < (uint64_t{16} << 20) || b > (uint64_t{1} << 50)))) {
          return bad(
              "cache = '" + std::string(value) +
              "' is not 0 (no read cache) or a size of 16M..1024T (bytes, or with K, M, G, T)");
        }
        r.cache_bytes = b;
      } else {
        return bad("unknown key '" + key + "' (known: cache, conf, id, keyring, ns, timeout)");
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  *out = std::move(r);
  return Status::OK();
}

std::string FormatRadosVolumeSpec(const RadosVolumeSpec& spec) {
  std::string s = "rados:" + spec.pool;
  std::string q;
  auto add = [&](const char* key, const std::string& value) {
    q += (q.empty() ? "?" : "&") + std::string(key) + "=" + value;
  };
  if (spec.cache_bytes != RadosVolumeSpec{}.cache_bytes)
    add("cache", FormatBytes(spec.cache_bytes));
  if (!spec.conf.empty()) add("conf", spec.conf);
  add("id", spec.id);
  if (!spec.keyring.empty()) add("keyring", spec.keyring);
  if (!spec.ns.empty()) add("ns", spec.ns);
  if (spec.timeout_seconds != RadosVolumeSpec{}.timeout_seconds) {
    add("timeout", std::to_string(spec.timeout_seconds));
  }
  return s + q;
}

std::string RadosPieceName(uint64_t vv_id, uint64_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s = "vv.0000000000000000.";
  for (int i = 0; i < 16; i++) s[3 + i] = kHex[(vv_id >> (60 - 4 * i)) & 0xf];
  return s + std::to_string(n);
}

}  // namespace overtier

#if !OVERTIER_HAVE_RADOS

namespace overtier {

bool RadosSupported() { return false; }

Status OpenRadosVolumeSet(const std::string& set_name, const RadosVolumeSpec& spec,
                          const RadosVolumeOptions& options, std::unique_ptr<VolumeSet>* out) {
  (void)options;
  (void)out;
  return Status::Errno(ENOTSUP, "volume set '" + set_name + "' (" + FormatRadosVolumeSpec(spec) +
                                    "): overtier was built without RADOS support "
                                    "(install librados-dev and rebuild)");
}

}  // namespace overtier

#else  // OVERTIER_HAVE_RADOS

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/rados_api.h"
#include "store/vv_format.h"

namespace overtier {

namespace {

constexpr const char* kSealXattr = "overtier.seal";

// librados, loaded (store/rados_api.h). Only reached once
// OpenRadosVolumeSet has loaded it: every other use is of what it made.
const RadosApi& Api() {
  const RadosApi* api = nullptr;
  if (!LoadRadosApi(&api).ok()) std::abort();
  return *api;
}

// A cluster handle, shut down when its last user lets go: the connection,
// or a map refresh still waiting for the monitors (see Conn::Error).
struct Cluster {
  rados_t handle = nullptr;
  std::atomic<bool> refreshing{false};
  ~Cluster() {
    if (handle != nullptr) Api().shutdown(handle);
  }
};

// The connection and pool of one set, shared by its writers and readers
// (an ioctx is thread-safe).
struct Conn {
  std::shared_ptr<Cluster> cluster = std::make_shared<Cluster>();
  rados_ioctx_t io = nullptr;
  std::string set;    // volume set name, for messages
  std::string where;  // "RADOS pool 'p'" (and namespace), for messages
  uint32_t timeout = 10;

  ~Conn() {
    if (io != nullptr) Api().ioctx_destroy(io);
  }

  // A librados return code (negative errno) as a Status. Timeouts say what
  // they most likely mean, and refresh the OSD map.
  Status Error(int r, const std::string& what) const {
    int e = r < 0 ? -r : EIO;
    std::string msg = what + " in " + where + ": " + std::strerror(e);
    if (e == ETIMEDOUT) {
      msg += " (no answer within " + std::to_string(timeout) + " s: is the cluster up?)";
      RefreshMap();
    }
    return Status::Errno(e, msg);
  }

  // An op that timed out may have gone to an OSD address that is no longer
  // right: librados only fetches a newer OSD map when it sees a target
  // down, so a client whose first op to an OSD fell into that OSD's outage
  // keeps sending to its old address after it is back, and times out for
  // good (measured: rados_stat fails forever; one
  // rados_wait_for_latest_osdmap and the next op succeeds). That call has
  // no timeout (it waits for a monitor), so it runs on a thread of its
  // own, one at a time, holding the cluster handle until it returns.
  void RefreshMap() const {
    if (cluster->refreshing.exchange(true)) return;
    std::thread([c = cluster] {
      Api().wait_for_latest_osdmap(c->handle);
      c->refreshing.store(false);
    }).detach();
  }
};

// One asynchronous op and the completion librados signals.
class Completion {
 public:
  Completion() { Api().aio_create_completion2(nullptr, nullptr, &c_); }
  // An op in flight still writes into (or reads from) its buffer: wait for
  // it before the buffer can go.
  ~Completion() {
    if (c_ == nullptr) return;
    if (started_) Api().aio_wait_for_complete(c_);
    Api().aio_release(c_);
  }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  rados_completion_t get() const { return c_; }
  // The op was handed to librados (which will complete it).
  void Started() { started_ = true; }
  // Waits; the op's return value (bytes read, 0, or a negative errno).
  int Wait() {
    Api().aio_wait_for_complete(c_);
    return Api().aio_get_return_value(c_);
  }

 private:
  rados_completion_t c_ = nullptr;
  bool started_ = false;
};

// Parses the seal xattr "<size> <piece_size>".
bool ParseSeal(std::string_view v, uint64_t* size, uint64_t* piece) {
  size_t sp = v.find(' ');
  if (sp == std::string_view::npos) return false;
  return ParseU64(v.substr(0, sp), size) && ParseU64(v.substr(sp + 1), piece) && *piece > 0 &&
         *piece <= kMaxVolumePiece;
}

// Reads the seal of piece 0: *sealed false if it has none. ENOENT (as
// NotFound naming the container) when piece 0 does not exist.
Status ReadSeal(const Conn& c, uint64_t vv_id, bool* sealed, uint64_t* size, uint64_t* piece) {
  const std::string oid = RadosPieceName(vv_id, 0);
  char buf[64];
  int r = Api().getxattr(c.io, oid.c_str(), kSealXattr, buf, sizeof buf);
  if (r == -ENOENT) {
    return Status::NotFound(VvName(vv_id) + " does not exist in volume set '" + c.set + "' (" +
                            c.where + ")");
  }
  if (r == -ENODATA) {
    *sealed = false;
    return Status::OK();
  }
  if (r < 0) return c.Error(r, "read the seal of " + oid);
  if (!ParseSeal(std::string_view(buf, static_cast<size_t>(r)), size, piece)) {
    return Status::Corruption(oid + " in " + c.where + ": bad " + kSealXattr + " '" +
                              std::string(buf, static_cast<size_t>(r)) + "'");
  }
  *sealed = true;
  return Status::OK();
}

// Measures an unsealed container like a local one: pieces in order, a piece
// shorter than piece_size ends it; *stray when a piece follows that one
// (left by a writer that died with writes in flight).
Status MeasureUnsealed(const Conn& c, uint64_t vv_id, uint64_t piece_size, uint64_t* size,
                       uint64_t* pieces, bool* stray) {
  *size = 0;
  *stray = false;
  for (uint64_t n = 0;; n++) {
    const std::string oid = RadosPieceName(vv_id, n);
    uint64_t len = 0;
    time_t mtime;
    int r = Api().stat(c.io, oid.c_str(), &len, &mtime);
    if (r == -ENOENT && n > 0) {
      *pieces = n;
      return Status::OK();
    }
    if (r == -ENOENT) {
      return Status::NotFound(VvName(vv_id) + " does not exist in volume set '" + c.set + "' (" +
                              c.where + ")");
    }
    if (r < 0) return c.Error(r, "stat " + oid);
    if (len > piece_size) {
      return Status::Corruption(oid + " in " + c.where + " is not a piece of at most " +
                                std::to_string(piece_size) + " bytes");
    }
    *size += len;
    if (len < piece_size) {
      *pieces = n + 1;
      uint64_t next_len;
      int rn = Api().stat(c.io, RadosPieceName(vv_id, n + 1).c_str(), &next_len, &mtime);
      if (rn < 0 && rn != -ENOENT) return c.Error(rn, "stat " + RadosPieceName(vv_id, n + 1));
      *stray = rn == 0;
      return Status::OK();
    }
  }
}

class RadosVolumeWriter final : public VolumeWriter {
 public:
  RadosVolumeWriter(std::shared_ptr<const Conn> conn, uint64_t vv_id,
                    const RadosVolumeOptions& opts, uint64_t size)
      : conn_(std::move(conn)),
        vv_id_(vv_id),
        piece_size_(opts.piece_size),
        buffer_cap_(opts.write_buffer),
        max_in_flight_(std::max(1, opts.max_in_flight)),
        size_(size) {}

  // Waits for the writes in flight (their buffers are ours); their outcome
  // no longer matters, as after a crash.
  ~RadosVolumeWriter() override { inflight_.clear(); }

  Status Append(std::string_view data) override {
    OVT_RETURN_IF_ERROR(Usable());
    if (buffer_.size() + data.size() <= buffer_cap_) {
      buffer_.append(data);
      return Status::OK();
    }
    OVT_RETURN_IF_ERROR(Flush());
    if (data.size() >= buffer_cap_) return Fail(WriteOut(std::make_shared<std::string>(data)));
    buffer_.append(data);
    return Status::OK();
  }

  Status Sync() override {
    OVT_RETURN_IF_ERROR(Usable());
    OVT_RETURN_IF_ERROR(Flush());
    while (!inflight_.empty()) OVT_RETURN_IF_ERROR(Fail(WaitOldest()));
    return Status::OK();
  }

  Status Seal() override {
    OVT_RETURN_IF_ERROR(Sync());
    const std::string oid = RadosPieceName(vv_id_, 0);
    std::string seal = std::to_string(size_) + " " + std::to_string(piece_size_);
    int r = Api().setxattr(conn_->io, oid.c_str(), kSealXattr, seal.data(), seal.size());
    if (r < 0) return Fail(conn_->Error(r, "seal " + oid));
    sealed_ = true;
    return Status::OK();
  }

  uint64_t Size() const override { return size_ + buffer_.size(); }

 private:
  struct InFlight {
    std::unique_ptr<Completion> completion;
    std::shared_ptr<std::string> data;  // kept alive until the op completes
    std::string oid;
    size_t len;
  };

  Status Usable() const {
    if (!error_.ok()) return error_;
    if (sealed_) return Status::Errno(EBADF, VvName(vv_id_) + " is sealed");
    return Status::OK();
  }

  Status Fail(Status s) {
    if (!s.ok() && error_.ok()) error_ = s;
    return s;
  }

  Status Flush() {
    if (buffer_.empty()) return Status::OK();
    auto data = std::make_shared<std::string>(std::move(buffer_));
    buffer_ = std::string();
    buffer_.reserve(buffer_cap_);
    return Fail(WriteOut(std::move(data)));
  }

  // Starts writes of data at the end of the container, one per piece
  // crossed. Writes to one object are applied in the order sent, so after
  // a crash each piece holds a prefix of what was sent to it.
  Status WriteOut(std::shared_ptr<std::string> data) {
    size_t at = 0;
    while (at < data->size()) {
      while (static_cast<int>(inflight_.size()) >= max_in_flight_) {
        OVT_RETURN_IF_ERROR(WaitOldest());
      }
      uint64_t piece = size_ / piece_size_, off = size_ % piece_size_;
      size_t n = static_cast<size_t>(std::min<uint64_t>(data->size() - at, piece_size_ - off));
      InFlight f{std::make_unique<Completion>(), data, RadosPieceName(vv_id_, piece), n};
      int r =
          Api().aio_write(conn_->io, f.oid.c_str(), f.completion->get(), data->data() + at, n, off);
      if (r < 0) return conn_->Error(r, "write " + f.oid);
      f.completion->Started();
      inflight_.push_back(std::move(f));
      size_ += n;
      at += n;
    }
    return Status::OK();
  }

  Status WaitOldest() {
    InFlight f = std::move(inflight_.front());
    inflight_.pop_front();
    int r = f.completion->Wait();
    if (r < 0) return conn_->Error(r, "write " + std::to_string(f.len) + " bytes to " + f.oid);
    return Status::OK();
  }

  std::shared_ptr<const Conn> conn_;
  const uint64_t vv_id_;
  const uint64_t piece_size_;
  const size_t buffer_cap_;
  const int max_in_flight_;
  uint64_t size_;  // bytes sent to RADOS (buffer_ excluded)
  std::string buffer_;
  std::deque<InFlight> inflight_;
  bool sealed_ = false;
  Status error_;
};

class RadosVolumeReader final : public VolumeReader {
 public:
  RadosVolumeReader(std::shared_ptr<const Conn> conn, uint64_t vv_id, uint64_t piece_size,
                    uint64_t size, size_t max_op, bool sealed)
      : conn_(std::move(conn)),
        vv_id_(vv_id),
        piece_size_(piece_size),
        size_(size),
        max_op_(std::max<size_t>(max_op, 4096)),
        sealed_(sealed) {}

  bool sealed() const override { return sealed_; }

  Status ReadAt(uint64_t offset, size_t n, char* buf) const override {
    if (offset > size_ || n > size_ - offset) {
      return Status::Errno(ENODATA, "read of " + std::to_string(n) + " bytes at offset " +
                                        std::to_string(offset) + " past the end of " +
                                        VvName(vv_id_) + " (" + std::to_string(size_) + " bytes)");
    }
    // All the ops of a batch run at once: a read across pieces, or a big
    // one, costs about one round trip.
    constexpr size_t kBatch = 16;
    while (n > 0) {
      struct Op {
        Completion completion;
        std::string oid;
        size_t len;
      };
      std::vector<std::unique_ptr<Op> > ops;
      Status first;
      while (n > 0 && ops.size() < kBatch) {
        uint64_t piece = offset / piece_size_, off = offset % piece_size_;
        size_t len = static_cast<size_t>(std::min<uint64_t>({n, piece_size_ - off, max_op_}));
        auto op = std::make_unique<Op>();
        op->oid = RadosPieceName(vv_id_, piece);
        op->len = len;
        int r = Api().aio_read(conn_->io, op->oid.c_str(), op->completion.get(), buf, len, off);
        if (r < 0) {
          first = conn_->Error(r, "read " + op->oid);
          break;
        }
        op->completion.Started();
        ops.push_back(std::move(op));
        buf += len;
        offset += len;
        n -= len;
      }
      for (auto& op : ops) {
        int r = op->completion.Wait();
        if (!first.ok()) continue;
        if (r == -ENOENT) {
          first = Status::Errno(ENOENT, op->oid + " is gone from " + conn_->where + " (" +
                                            VvName(vv_id_) + " was removed?)");
        } else if (r < 0) {
          first = conn_->Error(r, "read " + std::to_string(op->len) + " bytes of " + op->oid);
        } else if (static_cast<size_t>(r) != op->len) {
          first =
              Status::Corruption(op->oid + " in " + conn_->where + " is shorter than when opened");
        }
      }
      OVT_RETURN_IF_ERROR(first);
    }
    return Status::OK();
  }

  uint64_t Size() const override { return size_; }

 private:
  std::shared_ptr<const Conn> conn_;
  const uint64_t vv_id_;
  const uint64_t piece_size_;
  const uint64_t size_;
  const uint64_t max_op_;
  const bool sealed_;
};

class RadosVolumeSet final : public VolumeSet {
 public:
  RadosVolumeSet(std::shared_ptr<const Conn> conn, std::string name, const RadosVolumeOptions& opts)
      : conn_(std::move(conn)), name_(std::move(name)), opts_(opts) {}

  const std::string& name() const override { return name_; }

  Status Create(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    // Piece 0 is created exclusively: the name exists, durably, once this
    // returns, and two writers cannot both get it.
    const std::string oid = RadosPieceName(vv_id, 0);
    rados_write_op_t op = Api().create_write_op();
    Api().write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, nullptr);
    int r = Api().write_op_operate(op, conn_->io, oid.c_str(), nullptr, 0);
    Api().release_write_op(op);
    if (r == -EEXIST) {
      return Status::Errno(EEXIST, VvName(vv_id) + " already exists in volume set '" + name_ +
                                       "' (" + conn_->where + ")");
    }
    if (r < 0) return conn_->Error(r, "create " + oid);
    *out = std::make_unique<RadosVolumeWriter>(conn_, vv_id, opts_, 0);
    return Status::OK();
  }

  Status Open(uint64_t vv_id, std::unique_ptr<VolumeReader>* out) override {
    bool sealed = false;
    uint64_t size = 0, piece = opts_.piece_size;
    OVT_RETURN_IF_ERROR(ReadSeal(*conn_, vv_id, &sealed, &size, &piece));
    if (!sealed) {
      uint64_t pieces = 0;
      bool stray = false;
      OVT_RETURN_IF_ERROR(MeasureUnsealed(*conn_, vv_id, piece, &size, &pieces, &stray));
    }
    *out =
        std::make_unique<RadosVolumeReader>(conn_, vv_id, piece, size, opts_.max_read_op, sealed);
    return Status::OK();
  }

  Status OpenForAppend(uint64_t vv_id, std::unique_ptr<VolumeWriter>* out) override {
    bool sealed = false;
    uint64_t size = 0, piece = opts_.piece_size;
    OVT_RETURN_IF_ERROR(ReadSeal(*conn_, vv_id, &sealed, &size, &piece));
    if (sealed) {
      return Status::Errno(
          EBADF, VvName(vv_id) + " in volume set '" + name_ + "' is sealed; cannot append");
    }
    uint64_t pieces = 0;
    bool stray = false;
    OVT_RETURN_IF_ERROR(MeasureUnsealed(*conn_, vv_id, piece, &size, &pieces, &stray));
    if (stray) {
      // Appending would have to overwrite those pieces: refuse, the
      // container stays readable as it is.
      return Status::Corruption(VvName(vv_id) + " in volume set '" + name_ +
                                "' has pieces after a short piece; cannot append");
    }
    *out = std::make_unique<RadosVolumeWriter>(conn_, vv_id, opts_, size);
    return Status::OK();
  }

  Status Remove(uint64_t vv_id) override {
    // Count the pieces; sealed or not, they are consecutive from 0 (a stray
    // piece after a short one included).
    uint64_t count = 0;
    for (;; count++) {
      uint64_t len;
      time_t mtime;
      int r = Api().stat(conn_->io, RadosPieceName(vv_id, count).c_str(), &len, &mtime);
      if (r == -ENOENT) break;
      if (r < 0) return conn_->Error(r, "stat " + RadosPieceName(vv_id, count));
    }
    if (count == 0) {
      return Status::NotFound(VvName(vv_id) + " does not exist in volume set '" + name_ + "' (" +
                              conn_->where + ")");
    }
    // Last piece first: until piece 0 goes the container is still listed,
    // so a crash midway leaves something Remove finishes later, never
    // orphaned pieces.
    for (uint64_t n = count; n-- > 0;) {
      const std::string oid = RadosPieceName(vv_id, n);
      int r = Api().remove(conn_->io, oid.c_str());
      if (r < 0 && r != -ENOENT) return conn_->Error(r, "remove " + oid);
    }
    return Status::OK();
  }

  Status List(std::vector<uint64_t>* ids) override {
    ids->clear();
    OVT_RETURN_IF_ERROR(ForEachObject([&](const char* entry) {
      uint64_t id;
      if (ParsePiece0Name(entry, &id)) ids->push_back(id);
    }));
    std::sort(ids->begin(), ids->end());
    return Status::OK();
  }

  // Objects are "obj.NAME" (containers are "vv.*"): one write_full each,
  // which RADOS applies atomically.
  Status PutObject(std::string_view name, std::string_view data) override {
    OVT_RETURN_IF_ERROR(CheckVolumeObjectPut(name, data.size()));
    const std::string oid = "obj." + std::string(name);
    int r = Api().write_full(conn_->io, oid.c_str(), data.data(), data.size());
    if (r < 0) return conn_->Error(r, "write " + oid);
    return Status::OK();
  }

  Status GetObject(std::string_view name, std::string* data) override {
    OVT_RETURN_IF_ERROR(CheckVolumeObjectName(name));
    const std::string oid = "obj." + std::string(name);
    uint64_t len = 0;
    time_t mtime;
    int r = Api().stat(conn_->io, oid.c_str(), &len, &mtime);
    if (r == -ENOENT)
      return Status::NotFound("object " + oid + " does not exist in " + conn_->where);
    if (r < 0) return conn_->Error(r, "stat " + oid);
    if (len > kMaxVolumePiece)
      return Status::Corruption("object " + oid + " in " + conn_->where + " is " +
                                std::to_string(len) + " bytes, more than an object may hold");
    data->resize(len);
    for (uint64_t done = 0; done < len;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, opts_.max_read_op));
      r = Api().read(conn_->io, oid.c_str(), data->data() + done, n, done);
      if (r < 0) return conn_->Error(r, "read " + oid);
      if (r == 0)
        return Status::Corruption("object " + oid + " in " + conn_->where +
                                  " shrank while it was read");
      done += static_cast<uint64_t>(r);
    }
    return Status::OK();
  }

  Status RemoveObject(std::string_view name) override {
    OVT_RETURN_IF_ERROR(CheckVolumeObjectName(name));
    const std::string oid = "obj." + std::string(name);
    int r = Api().remove(conn_->io, oid.c_str());
    if (r == -ENOENT)
      return Status::NotFound("object " + oid + " does not exist in " + conn_->where);
    if (r < 0) return conn_->Error(r, "remove " + oid);
    return Status::OK();
  }

  Status ListObjects(std::string_view prefix, std::vector<std::string>* names) override {
    names->clear();
    OVT_RETURN_IF_ERROR(ForEachObject([&](const char* stored) {
      std::string_view name;
      if (VolumeObjectFromStored(stored, "obj.", prefix, &name)) names->emplace_back(name);
    }));
    std::sort(names->begin(), names->end());
    return Status::OK();
  }

 private:
  // Calls fn with the name of every object of the pool (namespace).
  template <typename Fn>
  Status ForEachObject(Fn fn) {
    rados_list_ctx_t ctx;
    int r = Api().nobjects_list_open(conn_->io, &ctx);
    if (r < 0) return conn_->Error(r, "list objects");
    for (;;) {
      const char* entry = nullptr;
      r = Api().nobjects_list_next(ctx, &entry, nullptr, nullptr);
      if (r == -ENOENT) break;
      if (r < 0) {
        Api().nobjects_list_close(ctx);
        return conn_->Error(r, "list objects");
      }
      fn(entry);
    }
    Api().nobjects_list_close(ctx);
    return Status::OK();
  }

  // "vv." + 16 lowercase hex digits + ".0", exactly as RadosPieceName
  // writes it; anything else (other pieces, foreign objects) is not a
  // container.
  static bool ParsePiece0Name(const char* name, uint64_t* id) {
    if (std::strlen(name) != 21 || std::strncmp(name, "vv.", 3) != 0 ||
        std::strcmp(name + 19, ".0") != 0) {
      return false;
    }
    uint64_t v = 0;
    for (int i = 3; i < 19; i++) {
      char c = name[i];
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) return false;
      v = (v << 4) | static_cast<uint64_t>(digit);
    }
    *id = v;
    return true;
  }

  std::shared_ptr<const Conn> conn_;
  const std::string name_;
  const RadosVolumeOptions opts_;
};

Status CheckReadable(const std::string& path, const std::string& what, const std::string& set) {
  if (access(path.c_str(), R_OK) != 0) {
    return Status::FromErrno("volume set '" + set + "': " + what + " '" + path + "'");
  }
  return Status::OK();
}

}  // namespace

bool RadosSupported() { return true; }

Status OpenRadosVolumeSet(const std::string& set_name, const RadosVolumeSpec& spec,
                          const RadosVolumeOptions& options, std::unique_ptr<VolumeSet>* out) {
  const std::string what = "volume set '" + set_name + "' (" + FormatRadosVolumeSpec(spec) + ")";
  if (options.piece_size == 0 || options.piece_size % 4096 != 0 ||
      options.piece_size > kMaxVolumePiece) {
    return Status::InvalidArgument(what + ": piece size " + std::to_string(options.piece_size) +
                                   " is not a multiple of 4096 up to " +
                                   std::to_string(kMaxVolumePiece));
  }
  const RadosApi* api = nullptr;
  Status loaded = LoadRadosApi(&api);
  if (!loaded.ok()) return Status::Errno(loaded.err(), what + ": " + loaded.message());
  if (!spec.conf.empty()) OVT_RETURN_IF_ERROR(CheckReadable(spec.conf, "ceph.conf", set_name));
  if (!spec.keyring.empty()) OVT_RETURN_IF_ERROR(CheckReadable(spec.keyring, "keyring", set_name));

  auto conn = std::make_shared<Conn>();
  conn->set = set_name;
  conn->timeout = spec.timeout_seconds;
  conn->where =
      "RADOS pool '" + spec.pool + "'" + (spec.ns.empty() ? "" : " namespace '" + spec.ns + "'");
  auto fail = [&](int r, const std::string& step) {
    int e = r < 0 ? -r : EIO;
    std::string msg = what + ": " + step + ": " + std::strerror(e);
    if (e == ETIMEDOUT) {
      msg += " (no answer within " + std::to_string(spec.timeout_seconds) +
             " s: is the cluster up, and are the monitor addresses in ceph.conf right?)";
    } else if (e == EACCES || e == EPERM) {
      msg += " (is the key of " + spec.id + " right, and allowed on this pool?)";
    }
    return Status::Errno(e, msg);
  };
  int r = Api().create2(&conn->cluster->handle, "ceph", spec.id.c_str(), 0);
  if (r < 0) {
    conn->cluster->handle = nullptr;
    return fail(r, "rados_create2");
  }
  rados_t cluster = conn->cluster->handle;
  // An explicit conf is read alone; otherwise librados' own search
  // (CEPH_CONF, /etc/ceph/ceph.conf).
  r = Api().conf_read_file(cluster, spec.conf.empty() ? nullptr : spec.conf.c_str());
  if (r < 0) return fail(r, "read ceph.conf" + (spec.conf.empty() ? "" : " '" + spec.conf + "'"));
  if (!spec.keyring.empty()) {
    r = Api().conf_set(cluster, "keyring", spec.keyring.c_str());
    if (r < 0) return fail(r, "set keyring");
  }
  // Bounded waits everywhere: connecting, monitor commands, every OSD op.
  const std::string t = std::to_string(spec.timeout_seconds);
  for (const char* key : {"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"}) {
    r = Api().conf_set(cluster, key, t.c_str());
    if (r < 0) return fail(r, std::string("set ") + key);
  }
  r = Api().connect(cluster);
  if (r < 0) {
    // A cluster handle whose connect failed must still be shut down.
    return fail(r, "connect to the cluster as " + spec.id);
  }
  r = Api().ioctx_create(cluster, spec.pool.c_str(), &conn->io);
  if (r == -ENOENT && options.create_pool_if_missing) {
    r = Api().pool_create(cluster, spec.pool.c_str());
    if (r < 0 && r != -EEXIST) return fail(r, "create pool '" + spec.pool + "'");
    r = Api().ioctx_create(cluster, spec.pool.c_str(), &conn->io);
  }
  if (r == -ENOENT) {
    conn->io = nullptr;
    return Status::NotFound(what + ": pool '" + spec.pool +
                            "' does not exist (create it: ceph osd pool create " + spec.pool + ")");
  }
  if (r < 0) {
    conn->io = nullptr;
    return fail(r, "open pool '" + spec.pool + "'");
  }
  if (!spec.ns.empty()) Api().ioctx_set_namespace(conn->io, spec.ns.c_str());
  *out = std::make_unique<RadosVolumeSet>(std::move(conn), set_name, options);
  return Status::OK();
}

}  // namespace overtier

#endif  // OVERTIER_HAVE_RADOS
