#include "image/tar_source.h"

#include <locale.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "image/archive_api.h"
#include "image/posix_acl.h"
#include "overtier/time_ns.h"

namespace overtier {

namespace {

// libarchive's POSIX.1e tag as the kernel's, 0 for another (NFSv4's).
uint16_t KernelAclTag(int tag) {
  switch (tag) {
    case ARCHIVE_ENTRY_ACL_USER_OBJ:
      return kAclUserObj;
    case ARCHIVE_ENTRY_ACL_USER:
      return kAclUser;
    case ARCHIVE_ENTRY_ACL_GROUP_OBJ:
      return kAclGroupObj;
    case ARCHIVE_ENTRY_ACL_GROUP:
      return kAclGroup;
    case ARCHIVE_ENTRY_ACL_MASK:
      return kAclMask;
    case ARCHIVE_ENTRY_ACL_OTHER:
      return kAclOther;
  }
  return 0;
}

// The POSIX.1e ACLs of `ae` into `e`.
//
// libarchive keeps the access ACL's user::, group:: and other:: entries as
// the entry's permission bits: parsing SCHILY.acl.access overwrote the
// header's bits with them, and acl_next gives them back from the mode. With
// a mask:: the header's group bits were the mask (the archiver wrote
// st_mode, and Linux shows the mask there), not group::; put them back, so
// that the mode is the header's again and agrees with the ACL as the kernel
// would have it after `tar -x --acls`.
void ReadAcls(struct archive_entry* ae, TarEntry* e) {
  const int types = Archive().archive_entry_acl_types(ae);
  e->has_nfs4_acl = (types & ARCHIVE_ENTRY_ACL_TYPE_NFS4) != 0;
  const int posix = ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_TYPE_DEFAULT;
  if ((types & posix) == 0) return;
  Archive().archive_entry_acl_reset(ae, posix);
  int type, perm, tag, id;
  const char* name;
  bool extended = false;
  while (Archive().archive_entry_acl_next(ae, posix, &type, &perm, &tag, &id, &name) ==
         ARCHIVE_OK) {
    TarAclEntry a;
    a.tag = KernelAclTag(tag);
    if (a.tag == 0) continue;
    a.perm = static_cast<uint16_t>(perm & 7);
    if (a.tag == kAclUser || a.tag == kAclGroup) {
      a.id = id;
      if (name != nullptr) a.name = name;
    }
    if (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS) {
      if (a.tag == kAclUser || a.tag == kAclGroup || a.tag == kAclMask) extended = true;
      if (a.tag == kAclMask) e->mode = (e->mode & ~uint32_t{070}) | uint32_t{a.perm} << 3;
      e->acl_access.push_back(std::move(a));
    } else if (type == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) {
      e->acl_default.push_back(std::move(a));
    }
  }
  if (!extended) e->acl_access.clear();
}

locale_t Utf8Locale() {
  static locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    return l;
  }();
  return loc;
}

}  // namespace

ScopedUtf8Locale::ScopedUtf8Locale() {
  locale_t l = Utf8Locale();
  if (l != static_cast<locale_t>(0)) old_ = uselocale(l);
}

ScopedUtf8Locale::~ScopedUtf8Locale() {
  if (old_ != nullptr) uselocale(static_cast<locale_t>(old_));
}

TarReader::~TarReader() {
  if (a_ != nullptr) Archive().archive_read_free(a_);
}

Status TarReader::Error(std::string_view doing) const {
  int err = a_ != nullptr ? Archive().archive_errno(a_) : 0;
  const char* msg = a_ != nullptr ? Archive().archive_error_string(a_) : nullptr;
  std::string m = "tar '" + what_ + "'";
  if (!entry_path_.empty()) m += ", entry '" + entry_path_ + "'";
  m += ": " + std::string(doing);
  if (msg != nullptr) m += ": " + std::string(msg);
  // libarchive reports a damaged or truncated archive with errno -1 or
  // ARCHIVE_ERRNO_FILE_FORMAT (EILSEQ on Linux): that is EIO for us.
  if (err <= 0 || err == EILSEQ) err = EIO;
  return Status::Errno(err, m);
}

Status TarReader::Start(std::string what) {
  what_ = std::move(what);
  const ArchiveApi* api = nullptr;
  Status s = LoadArchiveApi(&api);
  if (!s.ok()) return Status::Errno(s.err(), "tar '" + what_ + "': " + s.message());
  a_ = api->archive_read_new();
  if (a_ == nullptr) return Status::Errno(ENOMEM, "tar '" + what_ + "': archive_read_new");
  // Every compression libarchive knows (gzip, zstd, xz, bzip2, lz4...), but
  // only tar formats: a zip or cpio is not an image.
  Archive().archive_read_support_filter_all(a_);
  Archive().archive_read_support_format_tar(a_);
  Archive().archive_read_support_format_gnutar(a_);
  return Status::OK();
}

Status TarReader::OpenFd(int fd, std::string what, std::unique_ptr<TarReader>* out) {
  std::unique_ptr<TarReader> r(new TarReader);
  OVT_RETURN_IF_ERROR(r->Start(std::move(what)));
  if (Archive().archive_read_open_fd(r->a_, fd, 1 << 20) != ARCHIVE_OK)
    return r->Error("cannot open");
  *out = std::move(r);
  return Status::OK();
}

long TarReader::ReadCallback(struct archive*, void* data, const void** buf) {
  auto* self = static_cast<TarReader*>(data);
  self->outer_buf_.resize(1 << 20);
  la_ssize_t n = Archive().archive_read_data(self->outer_->a_, self->outer_buf_.data(),
                                             self->outer_buf_.size());
  if (n < 0) {
    Archive().archive_set_error(self->a_, EIO, "reading the enclosing archive '%s': %s",
                                self->outer_->what_.c_str(),
                                Archive().archive_error_string(self->outer_->a_) != nullptr
                                    ? Archive().archive_error_string(self->outer_->a_)
                                    : "error");
    return -1;
  }
  *buf = self->outer_buf_.data();
  self->outer_pos_ += n;
  return n;
}

Status TarReader::OpenEntry(TarReader* outer, std::string what, std::unique_ptr<TarReader>* out) {
  std::unique_ptr<TarReader> r(new TarReader);
  OVT_RETURN_IF_ERROR(r->Start(std::move(what)));
  r->outer_ = outer;
  outer->data_consumed_ = true;
  if (Archive().archive_read_open(r->a_, r.get(), nullptr, &TarReader::ReadCallback, nullptr) !=
      ARCHIVE_OK) {
    return r->Error("cannot open");
  }
  *out = std::move(r);
  return Status::OK();
}

uint64_t TarReader::input_bytes() const {
  if (outer_ != nullptr) return outer_pos_;
  la_int64_t n = Archive().archive_filter_bytes(a_, -1);
  return n > 0 ? static_cast<uint64_t>(n) : 0;
}

Status TarReader::Next(TarEntry* e, bool* eof) {
  *eof = false;
  ScopedUtf8Locale utf8;
  struct archive_entry* ae = nullptr;
  int r = Archive().archive_read_next_header(a_, &ae);
  if (r == ARCHIVE_EOF) {
    *eof = true;
    return Status::OK();
  }
  // ARCHIVE_WARN: the header was read but something in it was not fully
  // understood (e.g. a name that is not valid in the charset). Anything that
  // matters is checked below; a warning is not worth refusing an image for.
  if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return Error("cannot read the next header");
  data_consumed_ = false;
  const char* path = Archive().archive_entry_pathname(ae);
  if (path == nullptr) return Error("entry without a (readable) path name");
  entry_path_ = path;
  *e = TarEntry();
  e->path = path;
  if (const char* h = Archive().archive_entry_hardlink(ae)) e->hardlink = h;
  if (const char* s = Archive().archive_entry_symlink(ae)) e->symlink = s;
  e->mode = Archive().archive_entry_mode(ae);
  e->uid = Archive().archive_entry_uid(ae);
  e->gid = Archive().archive_entry_gid(ae);
  e->rdev = Archive().archive_entry_rdev(ae);
  e->size = Archive().archive_entry_size_is_set(ae) ? Archive().archive_entry_size(ae) : 0;
  e->mtime_ns = ClampedTimeNs(Archive().archive_entry_mtime(ae),
                              Archive().archive_entry_mtime_nsec(ae), &e->times_clamped);
  if (Archive().archive_entry_atime_is_set(ae)) {
    e->has_atime = true;
    e->atime_ns = ClampedTimeNs(Archive().archive_entry_atime(ae),
                                Archive().archive_entry_atime_nsec(ae), &e->times_clamped);
  }
  if (Archive().archive_entry_ctime_is_set(ae)) {
    e->has_ctime = true;
    e->ctime_ns = ClampedTimeNs(Archive().archive_entry_ctime(ae),
                                Archive().archive_entry_ctime_nsec(ae), &e->times_clamped);
  }
  Archive().archive_entry_xattr_reset(ae);
  const char* name;
  const void* value;
  size_t len;
  while (Archive().archive_entry_xattr_next(ae, &name, &value, &len) == ARCHIVE_OK) {
    if (name == nullptr || *name == '\0') continue;
    e->xattrs[name] = std::string(static_cast<const char*>(value), len);
  }
  ReadAcls(ae, e);
  return Status::OK();
}

Status TarReader::ReadData(
    const std::function<Status(uint64_t offset, std::string_view data)>& fn) {
  data_consumed_ = true;
  for (;;) {
    const void* buf = nullptr;
    size_t n = 0;
    la_int64_t off = 0;
    int r = Archive().archive_read_data_block(a_, &buf, &n, &off);
    if (r == ARCHIVE_EOF) return Status::OK();
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return Error("cannot read the data");
    if (off < 0) return Error("data at a negative offset");
    if (n > 0) {
      OVT_RETURN_IF_ERROR(
          fn(static_cast<uint64_t>(off), std::string_view(static_cast<const char*>(buf), n)));
    }
  }
}

Status TarReader::ReadAll(std::string* out, size_t limit) {
  out->clear();
  return ReadData([&](uint64_t off, std::string_view d) -> Status {
    if (off + d.size() > limit) {
      return Status::Errno(EFBIG, "tar '" + what_ + "', entry '" + entry_path_ + "': larger than " +
                                      std::to_string(limit) + " bytes");
    }
    if (out->size() < off) out->resize(off, '\0');
    out->replace(off, d.size(), d);
    return Status::OK();
  });
}

}  // namespace overtier
