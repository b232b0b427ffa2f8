// libarchive, loaded when a tar archive is first read or written
// (overtier/dl_api.h says why: it brings libxml2 and ICU, 1.8 ms of every
// start of `overtier`, and only image import and export use it).
#ifndef OVERTIER_IMAGE_ARCHIVE_API_H_
#define OVERTIER_IMAGE_ARCHIVE_API_H_

#include <archive.h>
#include <archive_entry.h>

#include "overtier/status.h"

// The libarchive functions tar_source.cc and export.cc call.
// clang-format off
#define OVERTIER_ARCHIVE_FUNCTIONS(X) \
  X(archive_entry_acl_next) \
  X(archive_entry_acl_reset) \
  X(archive_entry_acl_types) \
  X(archive_entry_atime) \
  X(archive_entry_atime_is_set) \
  X(archive_entry_atime_nsec) \
  X(archive_entry_ctime) \
  X(archive_entry_ctime_is_set) \
  X(archive_entry_ctime_nsec) \
  X(archive_entry_free) \
  X(archive_entry_gid) \
  X(archive_entry_hardlink) \
  X(archive_entry_mode) \
  X(archive_entry_mtime) \
  X(archive_entry_mtime_nsec) \
  X(archive_entry_new) \
  X(archive_entry_pathname) \
  X(archive_entry_rdev) \
  X(archive_entry_set_atime) \
  X(archive_entry_set_ctime) \
  X(archive_entry_set_gid) \
  X(archive_entry_set_hardlink) \
  X(archive_entry_set_mode) \
  X(archive_entry_set_mtime) \
  X(archive_entry_set_pathname) \
  X(archive_entry_set_rdev) \
  X(archive_entry_set_size) \
  X(archive_entry_set_symlink) \
  X(archive_entry_set_uid) \
  X(archive_entry_size) \
  X(archive_entry_size_is_set) \
  X(archive_entry_sparse_add_entry) \
  X(archive_entry_symlink) \
  X(archive_entry_uid) \
  X(archive_entry_xattr_add_entry) \
  X(archive_entry_xattr_next) \
  X(archive_entry_xattr_reset) \
  X(archive_errno) \
  X(archive_error_string) \
  X(archive_filter_bytes) \
  X(archive_read_data) \
  X(archive_read_data_block) \
  X(archive_read_free) \
  X(archive_read_new) \
  X(archive_read_next_header) \
  X(archive_read_open) \
  X(archive_read_open_fd) \
  X(archive_read_support_filter_all) \
  X(archive_read_support_format_gnutar) \
  X(archive_read_support_format_tar) \
  X(archive_set_error) \
  X(archive_write_close) \
  X(archive_write_data) \
  X(archive_write_finish_entry) \
  X(archive_write_free) \
  X(archive_write_header) \
  X(archive_write_new) \
  X(archive_write_open_fd) \
  X(archive_write_set_bytes_in_last_block) \
  X(archive_write_set_format_pax)
// clang-format on

namespace overtier {

// One pointer per function, named as the function.
struct ArchiveApi {
#define OVERTIER_ARCHIVE_FIELD(f) decltype(&::f) f = nullptr;
  OVERTIER_ARCHIVE_FUNCTIONS(OVERTIER_ARCHIVE_FIELD)
#undef OVERTIER_ARCHIVE_FIELD
};

// Loads libarchive once (later calls give the same answer): its functions
// in *out, or ENOTSUP saying what is missing.
Status LoadArchiveApi(const ArchiveApi** out);

// The table LoadArchiveApi loaded, for code that runs only after a
// successful LoadArchiveApi (on an archive it opened).
const ArchiveApi& Archive();

// What LoadArchiveApi does, for any library and every time (for tests).
Status BindArchiveApi(const char* soname, ArchiveApi* out);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_ARCHIVE_API_H_
