#include "store/catalog.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/statistics.h>
#include <rocksdb/write_batch.h>

#include "store/catalog_guard.h"
#include "store/info_log.h"
#include "store/sync_dir.h"
#include "store/thread_pools_env.h"

namespace overtier {

namespace {

// Indexes into Catalog::ColumnFamilyNames() and handles_.
enum Cf : int {
  kDefaultCf = 0,
  kImagesCf,
  kNodesCf,
  kDirentsCf,
  kFilesCf,
  kVolumesCf,
  kChunksCf,
  kMigrationCf,
  kJobsCf,
  kNumCf,
};

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// The RocksDB status as an errno. Most failures of a local database are
// I/O errors or damage, EIO; the distinctions below are the ones a caller
// can act on.
int RocksErrno(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return ENOSPC;
  if (s.IsBusy() || s.IsTryAgain()) return EBUSY;
  if (s.IsNotSupported()) return EOPNOTSUPP;
  if (s.IsIOError()) {
    // Another Catalog (this process or another) holds the LOCK file.
    const std::string text = s.ToString();
    if (text.find("lock hold") != std::string::npos ||
        text.find("While lock file") != std::string::npos) {
      return EBUSY;
    }
  }
  return EIO;
}

Status FromRocks(const rocksdb::Status& s, std::string context) {
  return Status::Errno(RocksErrno(s), std::move(context) + ": " + s.ToString());
}

rocksdb::DBOptions DbOptions() {
  rocksdb::DBOptions o;
  // Never create implicitly: an empty or damaged directory must be an error,
  // not a fresh catalog that forgets every archive.
  o.create_if_missing = false;
  o.create_missing_column_families = false;
  o.paranoid_checks = true;
  o.keep_log_file_num = 4;
  // Open every table file at open time and keep it open (the default, but
  // relied upon, so spelled out). A read-only Catalog (a mount) lives for
  // days beside a writer that imports and compacts: the writer deletes the
  // table files it compacted away, and a reader that opened tables lazily
  // would then fail to find files its (frozen) version still lists. Open
  // descriptors keep deleted files readable.
  o.max_open_files = -1;
  // Those opens happen on the opening thread. RocksDB's default starts 16
  // threads per column family to open its tables, even for one table:
  // some 400 thread creations per writable open of our nine families, most
  // of its cost (and a lazy copy-up may be waiting for it).
  o.max_file_opening_threads = 1;
  // Table statistics serve compaction heuristics; reading them means a
  // cold read per table at open.
  o.skip_stats_update_on_db_open = true;
  // Each writable open starts a new MANIFEST; ours stay a few KiB, and the
  // default reserves 4 MiB of disk for each.
  o.manifest_preallocation_size = 64 << 10;
  return o;
}

// A name, quoted when printable, else in hex: keys are raw bytes.
std::string Printable(std::string_view s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (c < 0x20 || c > 0x7e || c == '\'') plain = false;
  }
  return plain ? "'" + std::string(s) + "'" : "0x" + HexString(s);
}

Status KeyId(uint64_t id, const char* what) {
  if (id == 0) return Status::InvalidArgument(std::string(what) + " 0");
  return Status::OK();
}

Status ImageId(uint64_t id) {
  if (id == 0 || id == UINT64_MAX) return Status::InvalidArgument("image id 0 or 2^64-1");
  return Status::OK();
}

Status Both(Status a, Status b) { return a.ok() ? b : a; }

std::string_view NextIdKey(int space) {
  switch (space) {
    case static_cast<int>(IdSpace::kImage):
      return Catalog::kNextImageIdKey;
    case static_cast<int>(IdSpace::kVolume):
      return Catalog::kNextVolumeIdKey;
    default:
      return Catalog::kNextJobIdKey;
  }
}

std::string Fixed64Value(uint64_t v) {
  std::string s;
  PutFixed64(&s, v);
  return s;
}

}  // namespace

const std::vector<std::string>& Catalog::ColumnFamilyNames() {
  static const std::vector<std::string> kNames = {
      std::string(kDefault), std::string(kImages),    std::string(kNodes),
      std::string(kDirents), std::string(kFiles),     std::string(kVolumes),
      std::string(kChunks),  std::string(kMigration), std::string(kJobs),
  };
  return kNames;
}

std::string Catalog::Context(std::string_view what) const {
  return "catalog '" + path_ + "': " + std::string(what);
}

std::string Catalog::DescribeKey(int cf, std::string_view key) {
  const std::string& family = ColumnFamilyNames()[cf];
  uint64_t a = 0, b = 0;
  std::string_view name;
  Bfid bfid;
  Digest128 digest;
  switch (cf) {
    case kImagesCf:
      return family + " " + Printable(key);
    case kNodesCf:
      if (ParseNodeKey(key, &a, &b)) {
        return family + " (image " + std::to_string(a) + ", inode " + std::to_string(b) + ")";
      }
      break;
    case kDirentsCf:
      if (ParseDirentKey(key, &a, &b, &name)) {
        return family + " (image " + std::to_string(a) + ", parent " + std::to_string(b) +
               ", name " + Printable(name) + ")";
      }
      break;
    case kFilesCf:
      if (ParseFileKey(key, &bfid)) return family + " bfid " + bfid.ToHex();
      break;
    case kVolumesCf:
    case kJobsCf:
      if (ParseU64Key(key, &a))
        return family + (cf == kJobsCf ? " job " : " vv ") + std::to_string(a);
      break;
    case kChunksCf:
      if (Digest128::FromBytes(key, &digest)) return family + " digest " + digest.ToHex();
      break;
    case kMigrationCf:
      return family + " handle 0x" + HexString(key);
    default:
      break;
  }
  return family + " key " + Printable(key);
}

template <typename R>
Status Catalog::DecodeAt(int cf, std::string_view key, std::string_view value, R* out) const {
  Status s = DecodeRecord(value, out);
  if (s.ok()) return s;
  return Status::Corruption(Context(DescribeKey(cf, key) + ": " + s.message()));
}

// ---------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------

Status Catalog::OpenDb(const std::string& path, bool read_only, const CatalogOptions& opts,
                       std::unique_ptr<Catalog>* out) {
  std::unique_ptr<Catalog> cat(new Catalog());
  cat->path_ = path;
  cat->read_only_ = read_only;
  rocksdb::DBOptions options = DbOptions();
  if (opts.quiet_log) options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  options.info_log = InfoLog::ForCatalog(path, options.info_log_level);
  if (opts.statistics) {
    cat->stats_ = rocksdb::CreateDBStatistics();
    options.statistics = cat->stats_;
  }

  if (!read_only) {
    // Deletions wait for read-only opens in progress (catalog_guard.h);
    // flushes and compactions run on threads of this catalog's own, which
    // a fork cannot leave behind (thread_pools_env.h).
    std::unique_ptr<rocksdb::Env> guarded;
    Status gs = NewCatalogWriterEnv(path, &guarded);
    if (!gs.ok()) return Status::Errno(gs.err(), gs.message());
    cat->env_ = WithOwnThreadPools(std::move(guarded));
    options.env = cat->env_.get();
  }

  // RocksDB requires every existing family to be opened (read-write), so
  // open what is there and judge it afterwards, in CheckContents.
  //
  // A read-only open races any writer of the same catalog (an import
  // beside a mount): between reading the MANIFEST and opening the files it
  // lists, the writer may delete a WAL or table file it has flushed or
  // compacted, or roll the MANIFEST itself. The read guard keeps the
  // writer's deletions out while we open; a catalog without the guard's
  // lock file (older overtier) can still fail with "No such file", which is
  // retried, briefly, from the start. A file that is really missing fails
  // every attempt and is reported as damage.
  const int attempts = std::max(opts.open_attempts, 1);
  std::vector<std::string> names;
  rocksdb::Status s;
  for (int attempt = 1;; attempt++) {
    names.clear();
    std::optional<CatalogReadGuard> guard;
    if (read_only) guard.emplace(path);
    s = rocksdb::DB::ListColumnFamilies(options, path, &names);
    if (s.ok()) {
      std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
      for (const std::string& n : names) {
        descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
      }
      if (read_only) {
        s = rocksdb::DB::OpenForReadOnly(options, path, descriptors, &cat->opened_, &cat->db_);
      } else {
        s = rocksdb::DB::Open(options, path, descriptors, &cat->opened_, &cat->db_);
      }
      if (s.ok()) break;
      cat->db_ = nullptr;  // RocksDB leaves it unset on failure; make sure
      cat->opened_.clear();
    }
    guard.reset();  // not while waiting to retry
    const bool vanished =
        s.IsPathNotFound() || s.ToString().find("No such file") != std::string::npos;
    if (read_only && vanished && attempt < attempts) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(attempt, 20)));
      continue;
    }
    if (RocksErrno(s) == EBUSY) return FromRocks(s, cat->Context("in use (its LOCK file is held)"));
    // A writable open writes (a new WAL, the MANIFEST, replayed memtables):
    // on a full disk that is not damage.
    if (RocksErrno(s) == ENOSPC)
      return FromRocks(s, cat->Context("no space left on its disk to open it for writing"));
    return FromRocks(s, cat->Context("RocksDB cannot open it (damaged?)"));
  }
  cat->opened_names_ = std::move(names);
  *out = std::move(cat);
  return Status::OK();
}

Status Catalog::CheckContents() {
  rocksdb::ColumnFamilyHandle* def = db_->DefaultColumnFamily();
  // The format version first: a newer overtier may have changed anything
  // else, and "newer than this overtier" is the message that helps.
  std::string value;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), def, ToSlice(kMetaKey), &value);
  if (rs.IsNotFound()) {
    return Status::Corruption(
        Context("no meta entry: not an overtier catalog, or its creation did not finish"));
  }
  if (!rs.ok()) return FromRocks(rs, Context("reading the meta entry"));
  CatalogMeta meta;
  Status s = DecodeRecord(value, &meta);
  if (s.err() == ENOTSUP) return Status::Errno(ENOTSUP, Context(s.message()));
  if (!s.ok()) return Status::Corruption(Context("meta entry: " + s.message()));
  store_id_ = meta.store_id;

  const std::vector<std::string>& want = ColumnFamilyNames();
  for (const std::string& name : opened_names_) {
    if (std::find(want.begin(), want.end(), name) == want.end()) {
      return Status::Corruption(Context("unexpected column family '" + name + "'"));
    }
  }
  handles_.assign(kNumCf, nullptr);
  for (int cf = 0; cf < kNumCf; cf++) {
    auto it = std::find(opened_names_.begin(), opened_names_.end(), want[cf]);
    if (it == opened_names_.end()) {
      return Status::Corruption(Context("column family '" + want[cf] + "' is missing"));
    }
    handles_[cf] = opened_[it - opened_names_.begin()];
  }

  for (int space = 0; space < 3; space++) {
    std::string_view key = NextIdKey(space);
    rs = db_->Get(rocksdb::ReadOptions(), def, ToSlice(key), &value);
    if (rs.IsNotFound()) return Status::Corruption(Context("no " + std::string(key) + " entry"));
    if (!rs.ok()) return FromRocks(rs, Context("reading " + std::string(key)));
    if (value.size() != 8 || DecodeFixed64(value.data()) == 0) {
      return Status::Corruption(Context(std::string(key) + " entry is malformed"));
    }
    next_id_[space] = DecodeFixed64(value.data());
  }
  return Status::OK();
}

uint64_t Catalog::NextId(IdSpace space) const {
  std::lock_guard<std::mutex> lock(id_mu_);
  return next_id_[static_cast<int>(space)];
}

Status Catalog::Open(const std::string& path, const CatalogOptions& options,
                     std::unique_ptr<Catalog>* out) {
  const std::string where = "catalog '" + path + "'";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound(where + " does not exist");
    return Status::FromErrno(where);
  }
  if (!S_ISDIR(st.st_mode)) return Status::Errno(ENOTDIR, where + " is not a directory");
  if (access((path + "/CURRENT").c_str(), F_OK) != 0) {
    if (errno == ENOENT) return Status::NotFound(where + " holds no database (no CURRENT file)");
    return Status::FromErrno(where + "/CURRENT");
  }

  // Judge the catalog on a read-only open, which writes nothing that
  // matters (RocksDB only starts a new LOG), so that a refused catalog stays
  // as it was for whoever investigates it; unless this process judged it
  // already (CatalogOptions::judged).
  if (options.read_only || !options.judged) {
    std::unique_ptr<Catalog> probe;
    OVT_RETURN_IF_ERROR(OpenDb(path, /*read_only=*/true, options, &probe));
    OVT_RETURN_IF_ERROR(probe->CheckContents());
    if (options.read_only) {
      *out = std::move(probe);
      return Status::OK();
    }
  }

  std::unique_ptr<Catalog> cat;
  OVT_RETURN_IF_ERROR(OpenDb(path, /*read_only=*/false, options, &cat));
  OVT_RETURN_IF_ERROR(cat->CheckContents());
  cat->flush_on_close_ = options.flush_on_close;
  *out = std::move(cat);
  return Status::OK();
}

Status Catalog::Create(const std::string& path_in, const StoreId& store_id,
                       std::unique_ptr<Catalog>* out) {
  std::string path = path_in;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string where = "catalog '" + path + "'";
  if (path.empty()) return Status::InvalidArgument("empty catalog path");
  if (store_id.IsZero()) return Status::InvalidArgument(where + ": store id is zero");

  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    std::error_code ec;
    if (!S_ISDIR(st.st_mode) || !std::filesystem::is_empty(path, ec) || ec) {
      return Status::Errno(EEXIST, where + " already exists; not creating a catalog over it");
    }
  } else if (errno != ENOENT) {
    return Status::FromErrno(where);
  }

  // Build it beside its final place and rename it there: `path` is then
  // either absent or a complete catalog, whenever a crash comes.
  std::filesystem::path final_path(path);
  std::string parent = final_path.parent_path().string();
  if (parent.empty()) parent = ".";
  std::string tmp = parent + "/." + final_path.filename().string() + ".creating-XXXXXX";
  if (mkdtemp(tmp.data()) == nullptr) {
    return Status::FromErrno(where + ": cannot make a temporary directory beside it");
  }
  auto fail = [&tmp](Status s) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);  // our own temporary directory only
    return s;
  };

  {
    rocksdb::DBOptions options = DbOptions();
    options.create_if_missing = true;
    options.info_log = InfoLog::ForCatalog(tmp, options.info_log_level);
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& n : ColumnFamilyNames()) {
      descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, tmp, descriptors, &handles, &db);
    if (!s.ok()) return fail(FromRocks(s, where + ": RocksDB cannot create it"));

    CatalogMeta meta;
    meta.store_id = store_id;
    rocksdb::WriteBatch wb;
    s = wb.Put(handles[kDefaultCf], ToSlice(kMetaKey), EncodeRecord(meta));
    for (int space = 0; s.ok() && space < 3; space++) {
      s = wb.Put(handles[kDefaultCf], ToSlice(NextIdKey(space)), Fixed64Value(1));
    }
    if (s.ok()) {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = db->Write(wo, &wb);
    }
    for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h);
    rocksdb::Status cs = db->Close();
    delete db;
    if (s.ok()) s = cs;
    if (!s.ok()) return fail(FromRocks(s, where + ": writing the new catalog"));
  }

  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    if (err == ENOTEMPTY) err = EEXIST;  // someone filled the directory meanwhile
    return fail(Status::Errno(err, where + ": cannot move the new catalog into place"));
  }
  OVT_RETURN_IF_ERROR(SyncDir(parent));
  return Open(path, CatalogOptions(), out);
}

Catalog::~Catalog() {
  if (db_ == nullptr) return;
  if (!read_only_) DropIdleLogs();
  if (!read_only_ && flush_on_close_) {
    // Every committed batch is in the (synced) WAL; writing the memtables
    // out now leaves the next opens nothing to replay. A mount opens the
    // catalog read-only right after an import: replaying the import's WAL
    // cost it half a second per open (docs/BENCHMARKS.md). A failure only
    // leaves that cost, never a loss.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    db_->Flush(fo, opened_).PermitUncheckedError();
    CompactSmallFiles();
  }
  for (rocksdb::ColumnFamilyHandle* h : opened_) db_->DestroyColumnFamilyHandle(h);
  // Every committed batch is in the WAL already; a failing Close loses
  // nothing that was acknowledged.
  db_->Close().PermitUncheckedError();
  delete db_;
}

// Each flush adds a table file to level 0 of its family, and a catalog
// closed right after flushing (every migration session of a mount, every
// import) never runs the compaction RocksDB schedules after a flush; the
// next open does not schedule it either. Where RocksDB did compact, the
// new keys (file handles of newer inodes, ids counting up) seldom overlap
// the old ones, so it only moved the small files down to level 1 as they
// were. Either way the files multiplied, a few hundred bytes each, one or
// more per session: every writable open opens each of them (a lazy
// copy-up waits for that) and reads look into each. So a closing writer
// merges level 0 and the small files of level 1 into level 1 once there
// are as many as would trigger RocksDB's own compaction. Best effort: a
// failure leaves the files as they were, and loses nothing.
void Catalog::CompactSmallFiles() {
  constexpr size_t kTrigger = 4;                  // RocksDB's level0_file_num_compaction_trigger
  constexpr uint64_t kSmall = uint64_t{1} << 20;  // 1/64 of RocksDB's target file size
  for (rocksdb::ColumnFamilyHandle* h : opened_) {
    rocksdb::ColumnFamilyMetaData meta;
    db_->GetColumnFamilyMetaData(h, &meta);
    if (meta.levels.size() < 2) continue;
    std::vector<std::string> names;
    bool busy = false;
    for (const rocksdb::SstFileMetaData& f : meta.levels[0].files) {
      busy = busy || f.being_compacted;
      names.push_back(f.name);
    }
    for (const rocksdb::SstFileMetaData& f : meta.levels[1].files) {
      busy = busy || f.being_compacted;
      if (f.size < kSmall) names.push_back(f.name);
    }
    if (busy || names.size() < kTrigger) continue;  // or RocksDB's own compaction has them
    db_->CompactFiles(rocksdb::CompactionOptions(), h, names, /*output_level=*/1)
        .PermitUncheckedError();
  }
}

// Every writable open starts a write-ahead log, and RocksDB deletes a log
// only once a flush has moved what the logs before it hold into table
// files; a session that writes nothing has an empty memtable, which is
// never flushed. So sessions that only read while holding the catalog
// writable (a mount's, most of the time) left one empty log each, 28 after
// 28 mounts, and every later open reads them all, until some session
// wrote. Past a few, the meta entry is written again, unchanged: the flush
// that follows has something to write, and RocksDB then drops every log
// before the current one (and the table file that flush writes is merged
// like a short session's). Best effort: a failure leaves the logs, and
// loses nothing.
void Catalog::DropIdleLogs() {
  constexpr size_t kIdleLogs = 4;
  // Counted in the directory: RocksDB's own list of its logs
  // (GetSortedWalFiles) leaves the empty ones out.
  size_t logs = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path_, ec))
    logs += e.path().extension() == ".log";
  if (ec || logs <= kIdleLogs) return;
  rocksdb::ColumnFamilyHandle* def = db_->DefaultColumnFamily();
  std::string meta;
  if (!db_->Get(rocksdb::ReadOptions(), def, ToSlice(kMetaKey), &meta).ok()) return;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (!db_->Put(wo, def, ToSlice(kMetaKey), meta).ok()) return;
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (db_->Flush(fo, def).ok()) CompactSmallFiles();  // the flush's table file
}

uint64_t Catalog::WalSyncs() const {
  return stats_ ? stats_->getTickerCount(rocksdb::WAL_FILE_SYNCED) : 0;
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

Status Catalog::Get(int cf, std::string_view key, std::string* value) const {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[cf], ToSlice(key), value);
  if (s.IsNotFound()) return Status::NotFound();
  if (!s.ok()) return FromRocks(s, Context("reading " + DescribeKey(cf, key)));
  return Status::OK();
}

Status Catalog::Scan(
    int cf, std::string_view prefix, std::string_view after,
    const std::function<Status(std::string_view, std::string_view, bool*)>& fn) const {
  // The smallest key past every key with this prefix, when there is one (a
  // prefix of only 0xff bytes has none): it lets RocksDB stop early.
  std::string limit(prefix);
  while (!limit.empty() && static_cast<uint8_t>(limit.back()) == 0xff) limit.pop_back();
  if (!limit.empty()) limit.back() = static_cast<char>(static_cast<uint8_t>(limit.back()) + 1);
  rocksdb::Slice limit_slice(limit);

  rocksdb::ReadOptions ro;
  if (!limit.empty()) ro.iterate_upper_bound = &limit_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[cf]));
  std::string start = std::string(prefix) + std::string(after);
  it->Seek(start);
  if (it->Valid() && it->key().ToStringView() == start) it->Next();  // `after` is exclusive
  for (; it->Valid(); it->Next()) {
    std::string_view key = it->key().ToStringView();
    if (!key.starts_with(prefix)) break;
    bool more = true;
    OVT_RETURN_IF_ERROR(fn(key, it->value().ToStringView(), &more));
    if (!more) return Status::OK();
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), Context("scanning " + ColumnFamilyNames()[cf]));
  }
  return Status::OK();
}

Status Catalog::GetImage(std::string_view name, ImageRecord* out) const {
  std::string key = ImageKey(name), value;
  OVT_RETURN_IF_ERROR(Get(kImagesCf, key, &value));
  return DecodeAt(kImagesCf, key, value, out);
}

Status Catalog::FindImageById(uint64_t image_id, std::string* name, ImageRecord* out) const {
  bool found = false;
  OVT_RETURN_IF_ERROR(ScanImages("", [&](std::string_view n, const ImageRecord& r) {
    if (r.image_id != image_id) return true;
    found = true;
    name->assign(n);
    *out = r;
    return false;
  }));
  return found ? Status::OK() : Status::NotFound();
}

Status Catalog::GetNode(uint64_t image, uint64_t ino, NodeRecord* out) const {
  std::string key = NodeKey(image, ino), value;
  OVT_RETURN_IF_ERROR(Get(kNodesCf, key, &value));
  return DecodeAt(kNodesCf, key, value, out);
}

Status Catalog::GetDirent(uint64_t image, uint64_t parent, std::string_view name,
                          DirentRecord* out) const {
  std::string key = DirentKey(image, parent, name), value;
  OVT_RETURN_IF_ERROR(Get(kDirentsCf, key, &value));
  return DecodeAt(kDirentsCf, key, value, out);
}

Status Catalog::GetFile(const Bfid& bfid, FileRecord* out) const {
  std::string key = FileKey(bfid), value;
  OVT_RETURN_IF_ERROR(Get(kFilesCf, key, &value));
  return DecodeAt(kFilesCf, key, value, out);
}

Status Catalog::GetVolume(uint64_t vv_id, VolumeRecord* out) const {
  std::string key = U64Key(vv_id), value;
  OVT_RETURN_IF_ERROR(Get(kVolumesCf, key, &value));
  return DecodeAt(kVolumesCf, key, value, out);
}

// A chunk's key is its digest's 16 bytes, as stored (coding.h): the same
// order as the vv footer index.
Status Catalog::GetChunk(const Digest128& digest, ChunkRecord* out) const {
  std::string key(digest.view()), value;
  OVT_RETURN_IF_ERROR(Get(kChunksCf, key, &value));
  return DecodeAt(kChunksCf, key, value, out);
}

Status Catalog::GetMigration(std::string_view handle, MigrationRecord* out) const {
  std::string key = MigrationKey(handle), value;
  OVT_RETURN_IF_ERROR(Get(kMigrationCf, key, &value));
  return DecodeAt(kMigrationCf, key, value, out);
}

Status Catalog::GetJob(uint64_t job_id, JobRecord* out) const {
  std::string key = U64Key(job_id), value;
  OVT_RETURN_IF_ERROR(Get(kJobsCf, key, &value));
  return DecodeAt(kJobsCf, key, value, out);
}

// Each typed scan checks the shape of the keys it meets: a key that does not
// parse is damage, reported like a bad value.
#define OVT_BAD_KEY(cf, key) Status::Corruption(Context(DescribeKey(cf, key) + ": malformed key"))

Status Catalog::ScanImages(std::string_view after, const ImageFn& fn) const {
  return Scan(kImagesCf, "", after, [&](std::string_view key, std::string_view value, bool* more) {
    if (!CheckImageName(key).ok()) return OVT_BAD_KEY(kImagesCf, key);
    ImageRecord r;
    OVT_RETURN_IF_ERROR(DecodeAt(kImagesCf, key, value, &r));
    *more = fn(key, r);
    return Status::OK();
  });
}

Status Catalog::ScanNodes(uint64_t image, uint64_t after_ino, const NodeFn& fn) const {
  return Scan(kNodesCf, ImagePrefix(image), U64Key(after_ino),
              [&](std::string_view key, std::string_view value, bool* more) {
                uint64_t im = 0, ino = 0;
                if (!ParseNodeKey(key, &im, &ino) || ino == 0) return OVT_BAD_KEY(kNodesCf, key);
                NodeRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kNodesCf, key, value, &r));
                *more = fn(ino, r);
                return Status::OK();
              });
}

Status Catalog::ReadDir(uint64_t image, uint64_t parent, std::string_view after,
                        const DirentFn& fn) const {
  return Scan(kDirentsCf, DirentPrefix(image, parent), after,
              [&](std::string_view key, std::string_view value, bool* more) {
                uint64_t im = 0, pa = 0;
                std::string_view name;
                if (!ParseDirentKey(key, &im, &pa, &name) || !CheckDirentName(name).ok()) {
                  return OVT_BAD_KEY(kDirentsCf, key);
                }
                DirentRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kDirentsCf, key, value, &r));
                *more = fn(name, r);
                return Status::OK();
              });
}

Status Catalog::ScanFiles(const Bfid& after, const FileFn& fn) const {
  return Scan(kFilesCf, "", after.view(),
              [&](std::string_view key, std::string_view value, bool* more) {
                Bfid bfid;
                if (!ParseFileKey(key, &bfid) || bfid.IsZero()) return OVT_BAD_KEY(kFilesCf, key);
                FileRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kFilesCf, key, value, &r));
                *more = fn(bfid, r);
                return Status::OK();
              });
}

Status Catalog::ScanVolumes(uint64_t after_vv, const VolumeFn& fn) const {
  return Scan(kVolumesCf, "", U64Key(after_vv),
              [&](std::string_view key, std::string_view value, bool* more) {
                uint64_t id = 0;
                if (!ParseU64Key(key, &id) || id == 0) return OVT_BAD_KEY(kVolumesCf, key);
                VolumeRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kVolumesCf, key, value, &r));
                *more = fn(id, r);
                return Status::OK();
              });
}

Status Catalog::ScanChunks(const Digest128& after, const ChunkFn& fn) const {
  // Any 16 bytes can be a digest, the zero one too: "from the beginning" is
  // the empty `after`, so that a zero digest key is not skipped.
  return Scan(kChunksCf, "", after.IsZero() ? std::string_view() : after.view(),
              [&](std::string_view key, std::string_view value, bool* more) {
                Digest128 digest;
                if (!Digest128::FromBytes(key, &digest)) return OVT_BAD_KEY(kChunksCf, key);
                ChunkRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kChunksCf, key, value, &r));
                *more = fn(digest, r);
                return Status::OK();
              });
}

Status Catalog::ScanVolumesInState(VolumeState state, const VolumeFn& fn) const {
  return ScanVolumes(
      0, [&](uint64_t id, const VolumeRecord& r) { return r.state != state || fn(id, r); });
}

Status Catalog::ScanMigration(std::string_view after_handle, const MigrationFn& fn) const {
  return Scan(kMigrationCf, "", after_handle,
              [&](std::string_view key, std::string_view value, bool* more) {
                if (!CheckFileHandle(key).ok()) return OVT_BAD_KEY(kMigrationCf, key);
                MigrationRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kMigrationCf, key, value, &r));
                *more = fn(key, r);
                return Status::OK();
              });
}

Status Catalog::ScanJobs(uint64_t after_job, const JobFn& fn) const {
  return Scan(kJobsCf, "", U64Key(after_job),
              [&](std::string_view key, std::string_view value, bool* more) {
                uint64_t id = 0;
                if (!ParseU64Key(key, &id) || id == 0) return OVT_BAD_KEY(kJobsCf, key);
                JobRecord r;
                OVT_RETURN_IF_ERROR(DecodeAt(kJobsCf, key, value, &r));
                *more = fn(id, r);
                return Status::OK();
              });
}

#undef OVT_BAD_KEY

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

Status Catalog::Write(rocksdb::WriteBatch* batch, Durability durability) {
  if (read_only_) return Status::Errno(EROFS, Context("opened read-only"));
  rocksdb::WriteOptions wo;
  wo.sync = durability == Durability::kSync;
  rocksdb::Status s = db_->Write(wo, batch);
  if (!s.ok()) {
    write_failed_.store(true, std::memory_order_release);
    return FromRocks(s, Context("commit"));
  }
  return Status::OK();
}

Status Catalog::AllocateIds(IdSpace space, uint64_t count, uint64_t* first, Durability durability) {
  const int i = static_cast<int>(space);
  if (i < 0 || i >= 3) return Status::InvalidArgument(Context("unknown id space"));
  if (count == 0) return Status::InvalidArgument(Context("allocating 0 ids"));
  std::lock_guard<std::mutex> lock(id_mu_);
  // UINT64_MAX itself is never handed out (it is reserved for image ids).
  if (count >= UINT64_MAX - next_id_[i]) {
    return Status::Errno(EOVERFLOW, Context(std::string(NextIdKey(i)) + " exhausted"));
  }
  const uint64_t next = next_id_[i] + count;
  rocksdb::WriteBatch wb;
  rocksdb::Status rs = wb.Put(handles_[kDefaultCf], ToSlice(NextIdKey(i)), Fixed64Value(next));
  if (!rs.ok()) return FromRocks(rs, Context("allocating ids"));
  OVT_RETURN_IF_ERROR(Write(&wb, durability));
  *first = next_id_[i];
  next_id_[i] = next;
  return Status::OK();
}

Catalog::Batch::Batch(Catalog* catalog)
    : catalog_(catalog), wb_(std::make_unique<rocksdb::WriteBatch>()) {}

Catalog::Batch::~Batch() = default;

void Catalog::Batch::Add(int cf, const std::string& key, const Status& check,
                         const std::string* value) {
  if (!error_.ok()) return;
  if (!check.ok()) {
    error_ =
        Status::InvalidArgument(catalog_->Context(DescribeKey(cf, key) + ": " + check.message()));
    return;
  }
  rocksdb::ColumnFamilyHandle* h = catalog_->handles_[cf];
  rocksdb::Status s =
      value != nullptr ? wb_->Put(h, ToSlice(key), ToSlice(*value)) : wb_->Delete(h, ToSlice(key));
  if (!s.ok()) {
    error_ = FromRocks(s, catalog_->Context("queueing " + DescribeKey(cf, key)));
    return;
  }
  ops_++;
}

template <typename R>
void Catalog::Batch::Put(int cf, const std::string& key, Status check, const R& r) {
  if (!error_.ok()) return;
  if (check.ok()) check = CheckRecord(r);
  std::string value = check.ok() ? EncodeRecord(r) : std::string();
  Add(cf, key, check, &value);
}

void Catalog::Batch::PutImage(std::string_view name, const ImageRecord& r) {
  Put(kImagesCf, ImageKey(name), CheckImageName(name), r);
}

void Catalog::Batch::DeleteImage(std::string_view name) {
  Add(kImagesCf, ImageKey(name), CheckImageName(name), nullptr);
}

void Catalog::Batch::PutNode(uint64_t image, uint64_t ino, const NodeRecord& r) {
  Put(kNodesCf, NodeKey(image, ino), Both(ImageId(image), KeyId(ino, "inode")), r);
}

void Catalog::Batch::DeleteNode(uint64_t image, uint64_t ino) {
  Add(kNodesCf, NodeKey(image, ino), Both(ImageId(image), KeyId(ino, "inode")), nullptr);
}

void Catalog::Batch::PutDirent(uint64_t image, uint64_t parent, std::string_view name,
                               const DirentRecord& r) {
  Put(kDirentsCf, DirentKey(image, parent, name),
      Both(Both(ImageId(image), KeyId(parent, "parent inode")), CheckDirentName(name)), r);
}

void Catalog::Batch::DeleteDirent(uint64_t image, uint64_t parent, std::string_view name) {
  Add(kDirentsCf, DirentKey(image, parent, name),
      Both(Both(ImageId(image), KeyId(parent, "parent inode")), CheckDirentName(name)), nullptr);
}

void Catalog::Batch::DeleteImageTree(uint64_t image) {
  if (!error_.ok()) return;
  Status check = ImageId(image);
  if (!check.ok()) {
    error_ = Status::InvalidArgument(catalog_->Context("deleting image tree: " + check.message()));
    return;
  }
  // Keys of image N are exactly those in [be64(N), be64(N+1)).
  const std::string begin = ImagePrefix(image), end = ImagePrefix(image + 1);
  for (int cf : {kNodesCf, kDirentsCf}) {
    rocksdb::Status s = wb_->DeleteRange(catalog_->handles_[cf], begin, end);
    if (!s.ok()) {
      error_ = FromRocks(s, catalog_->Context("deleting image tree"));
      return;
    }
    ops_++;
  }
}

void Catalog::Batch::PutFile(const Bfid& bfid, const FileRecord& r) {
  Put(kFilesCf, FileKey(bfid), bfid.IsZero() ? Status::InvalidArgument("zero bfid") : Status::OK(),
      r);
}

void Catalog::Batch::DeleteFile(const Bfid& bfid) {
  Add(kFilesCf, FileKey(bfid), bfid.IsZero() ? Status::InvalidArgument("zero bfid") : Status::OK(),
      nullptr);
}

void Catalog::Batch::PutVolume(uint64_t vv_id, const VolumeRecord& r) {
  Put(kVolumesCf, U64Key(vv_id), KeyId(vv_id, "vv id"), r);
}

void Catalog::Batch::DeleteVolume(uint64_t vv_id) {
  Add(kVolumesCf, U64Key(vv_id), KeyId(vv_id, "vv id"), nullptr);
}

// Any 16 bytes are a digest, zero included (however unlikely): unlike a
// bfid, a digest is computed, not allocated, so there is nothing to refuse.
void Catalog::Batch::PutChunk(const Digest128& digest, const ChunkRecord& r) {
  Put(kChunksCf, std::string(digest.view()), Status::OK(), r);
}

void Catalog::Batch::DeleteChunk(const Digest128& digest) {
  Add(kChunksCf, std::string(digest.view()), Status::OK(), nullptr);
}

void Catalog::Batch::PutMigration(std::string_view handle, const MigrationRecord& r) {
  Put(kMigrationCf, MigrationKey(handle), CheckFileHandle(handle), r);
}

void Catalog::Batch::DeleteMigration(std::string_view handle) {
  Add(kMigrationCf, MigrationKey(handle), CheckFileHandle(handle), nullptr);
}

void Catalog::Batch::PutJob(uint64_t job_id, const JobRecord& r) {
  Put(kJobsCf, U64Key(job_id), KeyId(job_id, "job id"), r);
}

void Catalog::Batch::DeleteJob(uint64_t job_id) {
  Add(kJobsCf, U64Key(job_id), KeyId(job_id, "job id"), nullptr);
}

Status Catalog::Batch::Commit(Durability durability) {
  Status s = error_;
  if (s.ok() && ops_ > 0) s = catalog_->Write(wb_.get(), durability);
  wb_->Clear();
  ops_ = 0;
  error_ = Status::OK();
  return s;
}

}  // namespace overtier
