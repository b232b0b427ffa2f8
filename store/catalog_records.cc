#include "store/catalog_records.h"

#include <dirent.h>
#include <sys/stat.h>

#include <string>

namespace overtier {

namespace {

constexpr size_t kXattrNameMax = 255;     // XATTR_NAME_MAX
constexpr size_t kXattrValueMax = 65536;  // XATTR_SIZE_MAX
constexpr size_t kSymlinkMax = 4096;      // PATH_MAX, terminator included
constexpr size_t kExtentBytes = 48;       // four fixed64 and a digest
constexpr size_t kRangeBytes = 16;        // two fixed64
constexpr size_t kChunkCopyBytes = 16;    // two fixed64

// Node flag bits (the byte after the version).
constexpr uint8_t kNodeHasContent = 1u << 0;

Status Bad(std::string msg) { return Status::InvalidArgument(std::move(msg)); }
Status Corrupt(std::string msg) { return Status::Corruption(std::move(msg)); }
Status Truncated(const char* what) { return Corrupt(std::string("truncated at ") + what); }

// The version byte every record starts with.
Status ReadVersion(Decoder* d) {
  uint8_t v = 0;
  if (!d->GetU8(&v)) return Corrupt("empty value");
  if (v != kRecordVersion) {
    return Corrupt("record version " + std::to_string(v) + " unknown (this overtier reads " +
                   std::to_string(kRecordVersion) + ")");
  }
  return Status::OK();
}

// What every decoder does last: no leftovers, and the invariants hold. A
// failed check is reported as Corruption, since it is the disk that is wrong.
template <typename R>
Status Finish(const Decoder& d, const R& r) {
  if (!d.done()) return Corrupt(std::to_string(d.remaining()) + " trailing bytes");
  Status s = CheckRecord(r);
  if (!s.ok()) return Corrupt(s.message());
  return Status::OK();
}

bool GetSigned(Decoder* d, int64_t* v) {
  uint64_t u = 0;
  if (!d->GetFixed64(&u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

template <typename Tag>
bool GetId128(Decoder* d, Tagged128<Tag>* id) {
  std::string_view raw;
  return d->GetBytes(16, &raw) && Tagged128<Tag>::FromBytes(raw, id);
}

// Sorted by offset, non-empty, not overlapping, not wrapping around 2^64.
// `what` names the list in messages.
template <typename T, typename OffsetFn>
Status CheckSortedRanges(const std::vector<T>& v, OffsetFn offset, const char* what,
                         uint64_t limit) {
  uint64_t end = 0;
  for (size_t i = 0; i < v.size(); i++) {
    uint64_t off = offset(v[i]);
    uint64_t len = v[i].length;
    std::string where = std::string(what) + " " + std::to_string(i);
    if (len == 0) return Bad(where + " is empty");
    if (off > UINT64_MAX - len) return Bad(where + " wraps past 2^64");
    if (i > 0 && off < end) return Bad(where + " overlaps or precedes the previous one");
    end = off + len;
    if (end > limit)
      return Bad(where + " ends at " + std::to_string(end) + ", past " + std::to_string(limit));
  }
  return Status::OK();
}

bool IsKnownType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

const char* VolumeStateName(VolumeState s) {
  switch (s) {
    case VolumeState::kOpen:
      return "open";
    case VolumeState::kSealed:
      return "sealed";
    case VolumeState::kCompacting:
      return "compacting";
    case VolumeState::kLost:
      return "lost";
    case VolumeState::kRemote:
      return "remote";
  }
  return "unknown";
}

const char* JobKindName(JobKind k) {
  switch (k) {
    case JobKind::kArchive:
      return "archive";
    case JobKind::kRelease:
      return "release";
    case JobKind::kRestore:
      return "restore";
    case JobKind::kGc:
      return "gc";
  }
  return "unknown";
}

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kPending:
      return "pending";
    case JobState::kRunning:
      return "running";
    case JobState::kFailed:
      return "failed";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Key parts and invariants
// ---------------------------------------------------------------------------

Status CheckImageName(std::string_view name) {
  if (name.empty()) return Bad("empty image name");
  if (name.size() > kMaxImageNameLen) return Bad("image name longer than 1024 bytes");
  if (name.find('\0') != std::string_view::npos) return Bad("image name contains a NUL byte");
  return Status::OK();
}

Status CheckDirentName(std::string_view name) {
  if (name.empty()) return Bad("empty entry name");
  if (name.size() > kMaxDirentNameLen) return Bad("entry name longer than 255 bytes");
  if (name == "." || name == "..") return Bad("entry name '" + std::string(name) + "'");
  if (name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return Bad("entry name contains '/' or a NUL byte");
  }
  return Status::OK();
}

Status CheckFileHandle(std::string_view handle) {
  if (handle.empty()) return Bad("empty file handle");
  if (handle.size() > kMaxFileHandleLen) return Bad("file handle longer than 128 bytes");
  return Status::OK();
}

Status CheckRecord(const CatalogMeta& r) {
  if (r.format_version != kCatalogFormatVersion) {
    return Bad("format version " + std::to_string(r.format_version));
  }
  if (r.store_id.IsZero()) return Bad("store id is zero");
  return Status::OK();
}

Status CheckRecord(const ImageRecord& r) {
  // UINT64_MAX is kept out so that "every key of image N" is always the
  // range [N, N+1) (Catalog::Batch::DeleteImageTree).
  if (r.image_id == 0 || r.image_id == UINT64_MAX) return Bad("image id 0 or 2^64-1");
  if (r.root_inode == 0) return Bad("root inode 0");
  if (r.parent_image_id == r.image_id) return Bad("image is its own parent");
  if (r.parent_image_id == UINT64_MAX) return Bad("parent image id 2^64-1");
  return Status::OK();
}

Status CheckRecord(const NodeRecord& r) {
  if (!IsKnownType(r.mode)) return Bad("unknown file type in mode " + std::to_string(r.mode));
  const bool is_link = (r.mode & S_IFMT) == S_IFLNK;
  if (is_link && r.symlink_target.empty()) return Bad("symlink without a target");
  if (!is_link && !r.symlink_target.empty()) return Bad("symlink target on a non-symlink");
  if (r.symlink_target.size() >= kSymlinkMax) return Bad("symlink target of 4096 bytes or more");
  if (r.has_content && (r.mode & S_IFMT) != S_IFREG) return Bad("content on a non-regular file");
  if (!r.has_content && !r.content.IsZero()) return Bad("content bfid without has_content");
  for (const auto& [name, value] : r.xattrs) {
    if (name.empty() || name.size() > kXattrNameMax) return Bad("xattr name of bad length");
    if (value.size() > kXattrValueMax) return Bad("xattr '" + name + "' value over 64 KiB");
  }
  return Status::OK();
}

Status CheckRecord(const DirentRecord& r) {
  if (r.child_inode == 0) return Bad("child inode 0");
  switch (r.type) {
    case DT_FIFO:
    case DT_CHR:
    case DT_DIR:
    case DT_BLK:
    case DT_REG:
    case DT_LNK:
    case DT_SOCK:
      return Status::OK();
    default:
      return Bad("unknown entry type " + std::to_string(r.type));
  }
}

Status CheckRecord(const FileRecord& r) {
  for (size_t c = 0; c < r.copies.size(); c++) {
    const std::vector<Extent>& ex = r.copies[c].extents;
    std::string what = "copy " + std::to_string(c) + " extent";
    for (size_t i = 0; i < ex.size(); i++) {
      if (ex[i].vv_id == 0) return Bad(what + " " + std::to_string(i) + " in vv 0");
      if (ex[i].vv_offset > UINT64_MAX - ex[i].length) {
        return Bad(what + " " + std::to_string(i) + " wraps past 2^64 in its vv");
      }
    }
    OVT_RETURN_IF_ERROR(CheckSortedRanges(
        ex, [](const Extent& e) { return e.file_offset; }, what.c_str(), r.size));
  }
  return Status::OK();
}

Status CheckRecord(const ChunkRecord& r) {
  if (r.length == 0) return Bad("chunk of length 0");
  if (r.copies.empty()) return Bad("chunk without a copy");
  for (size_t i = 0; i < r.copies.size(); i++) {
    const ChunkLocation& c = r.copies[i];
    std::string where = "chunk copy " + std::to_string(i);
    if (c.vv_id == 0) return Bad(where + " in vv 0");
    if (c.vv_offset > UINT64_MAX - r.length) return Bad(where + " wraps past 2^64 in its vv");
    // Two copies in one container protect against nothing; it is a bug of
    // whoever wrote the record (copies go to different sets).
    for (size_t j = 0; j < i; j++) {
      if (r.copies[j].vv_id == c.vv_id) {
        return Bad(where + " is in vv " + std::to_string(c.vv_id) + ", like copy " +
                   std::to_string(j));
      }
    }
  }
  return Status::OK();
}

Status CheckRecord(const VolumeRecord& r) {
  if (r.set.empty() || r.set.size() > kMaxSetNameLen) return Bad("volume set name of bad length");
  bool plain = r.set[0] != '.';
  for (char c : r.set) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-');
  }
  if (!plain) return Bad("volume set name " + HexString(r.set) + " (hex) is not [A-Za-z0-9._-]+");
  switch (r.state) {
    case VolumeState::kOpen:
    case VolumeState::kSealed:
    case VolumeState::kCompacting:
    case VolumeState::kLost:
      if (r.origin_vv_id != 0) return Bad("origin vv id on a volume of this store");
      return Status::OK();
    case VolumeState::kRemote:
      if (r.origin_vv_id == 0) return Bad("remote volume without its origin vv id");
      return Status::OK();
  }
  return Bad("unknown volume state " + std::to_string(static_cast<int>(r.state)));
}

Status CheckRecord(const MigrationRecord& r) {
  if ((r.flags & ~kMigKnownFlags) != 0)
    return Bad("unknown migration flags " + std::to_string(r.flags & ~kMigKnownFlags));
  switch (r.residency) {
    case ResidencyKind::kBarrier:
      if (!r.resident_ranges.empty()) return Bad("resident ranges with a byte barrier");
      return Status::OK();
    case ResidencyKind::kRanges:
      if (r.barrier != 0) return Bad("byte barrier with resident ranges");
      return CheckSortedRanges(
          r.resident_ranges, [](const ByteRange& b) { return b.offset; }, "resident range",
          UINT64_MAX);
  }
  return Bad("unknown residency kind " + std::to_string(static_cast<int>(r.residency)));
}

Status CheckRecord(const JobRecord& r) {
  switch (r.kind) {
    case JobKind::kArchive:
    case JobKind::kRelease:
    case JobKind::kRestore:
    case JobKind::kGc:
      break;
    default:
      return Bad("unknown job kind " + std::to_string(static_cast<int>(r.kind)));
  }
  switch (r.state) {
    case JobState::kPending:
    case JobState::kRunning:
    case JobState::kFailed:
      return Status::OK();
  }
  return Bad("unknown job state " + std::to_string(static_cast<int>(r.state)));
}

// ---------------------------------------------------------------------------
// meta
// ---------------------------------------------------------------------------

// Unlike the records, meta starts with a 4-byte format version: it is what
// tells an older overtier that it must not read anything else.
std::string EncodeRecord(const CatalogMeta& r) {
  std::string out;
  PutFixed32(&out, r.format_version);
  out.append(r.store_id.view());
  return out;
}

Status DecodeRecord(std::string_view in, CatalogMeta* out) {
  Decoder d(in);
  if (!d.GetFixed32(&out->format_version)) return Truncated("format version");
  if (out->format_version == 0) return Corrupt("format version 0 is not valid");
  if (out->format_version > kCatalogFormatVersion) {
    return Status::Errno(ENOTSUP, "format version " + std::to_string(out->format_version) +
                                      " is newer than this overtier (" +
                                      std::to_string(kCatalogFormatVersion) + ")");
  }
  if (!GetId128(&d, &out->store_id)) return Truncated("store id");
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// images
// ---------------------------------------------------------------------------

std::string EncodeRecord(const ImageRecord& r) {
  std::string out;
  PutU8(&out, kRecordVersion);
  PutFixed64(&out, r.image_id);
  PutFixed64(&out, r.root_inode);
  PutFixed64(&out, r.parent_image_id);
  PutFixed64(&out, static_cast<uint64_t>(r.created_ns));
  return out;
}

Status DecodeRecord(std::string_view in, ImageRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  if (!d.GetFixed64(&out->image_id) || !d.GetFixed64(&out->root_inode) ||
      !d.GetFixed64(&out->parent_image_id) || !GetSigned(&d, &out->created_ns)) {
    return Truncated("image fields");
  }
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// nodes
// ---------------------------------------------------------------------------

std::string EncodeRecord(const NodeRecord& r) {
  std::string out;
  PutU8(&out, kRecordVersion);
  PutU8(&out, r.has_content ? kNodeHasContent : 0);
  PutFixed32(&out, r.mode);
  PutFixed32(&out, r.uid);
  PutFixed32(&out, r.gid);
  PutFixed32(&out, r.nlink);
  PutFixed64(&out, r.size);
  PutFixed64(&out, r.rdev);
  PutFixed64(&out, static_cast<uint64_t>(r.atime_ns));
  PutFixed64(&out, static_cast<uint64_t>(r.mtime_ns));
  PutFixed64(&out, static_cast<uint64_t>(r.ctime_ns));
  if (r.has_content) out.append(r.content.view());
  PutLengthPrefixed(&out, r.symlink_target);
  PutVarint32(&out, static_cast<uint32_t>(r.xattrs.size()));
  for (const auto& [name, value] : r.xattrs) {
    PutLengthPrefixed(&out, name);
    PutLengthPrefixed(&out, value);
  }
  return out;
}

Status DecodeRecord(std::string_view in, NodeRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  uint8_t flags = 0;
  if (!d.GetU8(&flags)) return Truncated("node flags");
  if ((flags & ~kNodeHasContent) != 0)
    return Corrupt("unknown node flags " + std::to_string(flags));
  out->has_content = (flags & kNodeHasContent) != 0;
  if (!d.GetFixed32(&out->mode) || !d.GetFixed32(&out->uid) || !d.GetFixed32(&out->gid) ||
      !d.GetFixed32(&out->nlink) || !d.GetFixed64(&out->size) || !d.GetFixed64(&out->rdev) ||
      !GetSigned(&d, &out->atime_ns) || !GetSigned(&d, &out->mtime_ns) ||
      !GetSigned(&d, &out->ctime_ns)) {
    return Truncated("node attributes");
  }
  out->content = Bfid();
  if (out->has_content && !GetId128(&d, &out->content)) return Truncated("content bfid");
  std::string_view target;
  if (!d.GetLengthPrefixed(&target)) return Truncated("symlink target");
  out->symlink_target.assign(target);
  uint32_t count = 0;
  if (!d.GetVarint32(&count)) return Truncated("xattr count");
  // Each xattr takes at least 3 bytes (two lengths, a non-empty name): a
  // count the remaining bytes cannot hold is rejected before any work.
  if (count > d.remaining() / 3)
    return Corrupt("xattr count " + std::to_string(count) + " larger than the value");
  out->xattrs.clear();
  for (uint32_t i = 0; i < count; i++) {
    std::string_view name, value;
    if (!d.GetLengthPrefixed(&name) || !d.GetLengthPrefixed(&value)) return Truncated("xattr");
    if (!out->xattrs.emplace(name, value).second) {
      return Corrupt("duplicate xattr '" + std::string(name) + "'");
    }
  }
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// dirents
// ---------------------------------------------------------------------------

std::string EncodeRecord(const DirentRecord& r) {
  std::string out;
  PutU8(&out, kRecordVersion);
  PutFixed64(&out, r.child_inode);
  PutU8(&out, r.type);
  return out;
}

Status DecodeRecord(std::string_view in, DirentRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  if (!d.GetFixed64(&out->child_inode) || !d.GetU8(&out->type)) return Truncated("dirent fields");
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// files
// ---------------------------------------------------------------------------

std::string EncodeRecord(const FileRecord& r) {
  std::string out;
  PutU8(&out, kRecordVersion);
  PutFixed64(&out, r.size);
  PutVarint32(&out, static_cast<uint32_t>(r.copies.size()));
  for (const FileCopy& c : r.copies) {
    PutVarint32(&out, static_cast<uint32_t>(c.extents.size()));
    for (const Extent& e : c.extents) {
      PutFixed64(&out, e.file_offset);
      PutFixed64(&out, e.vv_id);
      PutFixed64(&out, e.vv_offset);
      PutFixed64(&out, e.length);
      out.append(e.digest.view());
    }
  }
  return out;
}

Status DecodeRecord(std::string_view in, FileRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  if (!d.GetFixed64(&out->size)) return Truncated("file size");
  uint32_t ncopies = 0;
  if (!d.GetVarint32(&ncopies)) return Truncated("copy count");
  if (ncopies > d.remaining())
    return Corrupt("copy count " + std::to_string(ncopies) + " larger than the value");
  out->copies.assign(ncopies, FileCopy());
  for (FileCopy& c : out->copies) {
    uint32_t n = 0;
    if (!d.GetVarint32(&n)) return Truncated("extent count");
    if (n > d.remaining() / kExtentBytes) {
      return Corrupt("extent count " + std::to_string(n) + " larger than the value");
    }
    c.extents.resize(n);
    for (Extent& e : c.extents) {
      if (!d.GetFixed64(&e.file_offset) || !d.GetFixed64(&e.vv_id) || !d.GetFixed64(&e.vv_offset) ||
          !d.GetFixed64(&e.length) || !GetId128(&d, &e.digest)) {
        return Truncated("extent");
      }
    }
  }
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// chunks
// ---------------------------------------------------------------------------

std::string EncodeRecord(const ChunkRecord& r) {
  std::string out;
  out.reserve(1 + 8 + 1 + r.copies.size() * kChunkCopyBytes);
  PutU8(&out, kRecordVersion);
  PutFixed64(&out, r.length);
  PutVarint32(&out, static_cast<uint32_t>(r.copies.size()));
  for (const ChunkLocation& c : r.copies) {
    PutFixed64(&out, c.vv_id);
    PutFixed64(&out, c.vv_offset);
  }
  return out;
}

Status DecodeRecord(std::string_view in, ChunkRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  if (!d.GetFixed64(&out->length)) return Truncated("chunk length");
  uint32_t n = 0;
  if (!d.GetVarint32(&n)) return Truncated("chunk copy count");
  if (n > d.remaining() / kChunkCopyBytes) {
    return Corrupt("chunk copy count " + std::to_string(n) + " larger than the value");
  }
  out->copies.resize(n);
  for (ChunkLocation& c : out->copies) {
    if (!d.GetFixed64(&c.vv_id) || !d.GetFixed64(&c.vv_offset)) return Truncated("chunk copy");
  }
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// volumes
// ---------------------------------------------------------------------------

std::string EncodeRecord(const VolumeRecord& r) {
  std::string out;
  PutU8(&out, kRecordVersion);
  PutU8(&out, static_cast<uint8_t>(r.state));
  PutFixed64(&out, r.size);
  PutFixed64(&out, r.live_bytes);
  PutLengthPrefixed(&out, r.set);
  if (r.state == VolumeState::kRemote) PutFixed64(&out, r.origin_vv_id);
  return out;
}

Status DecodeRecord(std::string_view in, VolumeRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  uint8_t state = 0;
  std::string_view set;
  if (!d.GetU8(&state) || !d.GetFixed64(&out->size) || !d.GetFixed64(&out->live_bytes) ||
      !d.GetLengthPrefixed(&set)) {
    return Truncated("volume fields");
  }
  out->state = static_cast<VolumeState>(state);
  out->set.assign(set);
  out->origin_vv_id = 0;
  if (out->state == VolumeState::kRemote && !d.GetFixed64(&out->origin_vv_id))
    return Truncated("origin vv id");
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// migration
// ---------------------------------------------------------------------------

std::string EncodeRecord(const MigrationRecord& r) {
  std::string out;
  out.reserve(78);
  PutU8(&out, kRecordVersion);
  PutFixed32(&out, r.flags);
  PutFixed64(&out, r.generation);
  PutFixed64(&out, r.archive_size);
  out.append(r.bfid.view());
  PutFixed64(&out, static_cast<uint64_t>(r.atime_ns));
  PutFixed64(&out, static_cast<uint64_t>(r.mtime_ns));
  PutFixed64(&out, static_cast<uint64_t>(r.archive_time_ns));
  PutFixed64(&out, static_cast<uint64_t>(r.restore_time_ns));
  PutU8(&out, static_cast<uint8_t>(r.residency));
  if (r.residency == ResidencyKind::kBarrier) {
    PutFixed64(&out, r.barrier);
  } else {
    PutVarint32(&out, static_cast<uint32_t>(r.resident_ranges.size()));
    for (const ByteRange& b : r.resident_ranges) {
      PutFixed64(&out, b.offset);
      PutFixed64(&out, b.length);
    }
  }
  return out;
}

Status DecodeRecord(std::string_view in, MigrationRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  if (!d.GetFixed32(&out->flags) || !d.GetFixed64(&out->generation) ||
      !d.GetFixed64(&out->archive_size) || !GetId128(&d, &out->bfid) ||
      !GetSigned(&d, &out->atime_ns) || !GetSigned(&d, &out->mtime_ns) ||
      !GetSigned(&d, &out->archive_time_ns) || !GetSigned(&d, &out->restore_time_ns)) {
    return Truncated("migration fields");
  }
  uint8_t kind = 0;
  if (!d.GetU8(&kind)) return Truncated("residency kind");
  out->barrier = 0;
  out->resident_ranges.clear();
  if (kind == static_cast<uint8_t>(ResidencyKind::kBarrier)) {
    out->residency = ResidencyKind::kBarrier;
    if (!d.GetFixed64(&out->barrier)) return Truncated("byte barrier");
  } else if (kind == static_cast<uint8_t>(ResidencyKind::kRanges)) {
    out->residency = ResidencyKind::kRanges;
    uint32_t n = 0;
    if (!d.GetVarint32(&n)) return Truncated("range count");
    if (n > d.remaining() / kRangeBytes) {
      return Corrupt("range count " + std::to_string(n) + " larger than the value");
    }
    out->resident_ranges.resize(n);
    for (ByteRange& b : out->resident_ranges) {
      if (!d.GetFixed64(&b.offset) || !d.GetFixed64(&b.length)) return Truncated("range");
    }
  } else {
    return Corrupt("unknown residency kind " + std::to_string(kind));
  }
  return Finish(d, *out);
}

// ---------------------------------------------------------------------------
// jobs
// ---------------------------------------------------------------------------

std::string EncodeRecord(const JobRecord& r) {
  std::string out;
  PutU8(&out, kRecordVersion);
  PutU8(&out, static_cast<uint8_t>(r.kind));
  PutU8(&out, static_cast<uint8_t>(r.state));
  PutFixed32(&out, r.attempts);
  PutFixed64(&out, r.progress);
  PutFixed64(&out, r.total);
  PutFixed64(&out, static_cast<uint64_t>(r.created_ns));
  PutFixed64(&out, static_cast<uint64_t>(r.updated_ns));
  PutLengthPrefixed(&out, r.target);
  PutLengthPrefixed(&out, r.params);
  PutLengthPrefixed(&out, r.last_error);
  return out;
}

Status DecodeRecord(std::string_view in, JobRecord* out) {
  Decoder d(in);
  OVT_RETURN_IF_ERROR(ReadVersion(&d));
  uint8_t kind = 0, state = 0;
  std::string_view target, params, last_error;
  if (!d.GetU8(&kind) || !d.GetU8(&state) || !d.GetFixed32(&out->attempts) ||
      !d.GetFixed64(&out->progress) || !d.GetFixed64(&out->total) ||
      !GetSigned(&d, &out->created_ns) || !GetSigned(&d, &out->updated_ns) ||
      !d.GetLengthPrefixed(&target) || !d.GetLengthPrefixed(&params) ||
      !d.GetLengthPrefixed(&last_error)) {
    return Truncated("job fields");
  }
  out->kind = static_cast<JobKind>(kind);
  out->state = static_cast<JobState>(state);
  out->target.assign(target);
  out->params.assign(params);
  out->last_error.assign(last_error);
  return Finish(d, *out);
}

}  // namespace overtier
