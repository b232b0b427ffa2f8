// What the migration commands (tools/cmd_migrate.cc: archive, release,
// restore, status, ls) parse and print, apart from the ioctls themselves,
// so that it can be tested without a mount: sizes and byte ranges from the
// command line, the migration flag column of `overtier ls -l`, the lines of
// `overtier status` (text and JSON), and the messages for the errors the
// control ioctls return (include/overtier/control.h).
#ifndef OVERTIER_TOOLS_MIGRATE_FORMAT_H_
#define OVERTIER_TOOLS_MIGRATE_FORMAT_H_

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "migrate/byte_size.h"
#include "overtier/control.h"

namespace overtier::cli {

// "START-END": the bytes [START, END), both sizes as ParseByteSize
// (migrate/byte_size.h) takes them, START < END; "START-": from START to
// the end of the file (length 0, as OVERTIER_IOC_RESTORE reads it). False
// on anything else.
bool ParseByteRange(std::string_view in, uint64_t* offset, uint64_t* length);

// "resident", "archived", "released", "dirty", "lost"; "unknown(N)".
std::string StateName(uint32_t state);

// The first column of `overtier ls -l` (DESIGN.md, "Migration tier"): `-`
// resident or dirty, `a` archived, `A` archived and released, `!` lost.
// A dirty file is shown as `-` because its data is no longer what was
// archived, even though bytes may still have to come back from the archive.
char MigrationFlagChar(uint32_t state);

// The record bits by name, comma-separated ("archived,released,restoring");
// "none" for 0. Unknown bits as "bitN", so a newer daemon is not misread.
std::string MigFlagNames(uint32_t mig_flags);
std::vector<std::string> MigFlagList(uint32_t mig_flags);

// Lowercase hex of the bfid; "" when it is all zero (no archive).
std::string BfidHex(const uint8_t (&bfid)[16]);

// "2024-05-01 12:00:00.123" in local time; "never" for 0.
std::string FormatTimeNs(int64_t ns);

// One file as `overtier status` shows it.
struct FileStatus {
  std::string path;  // as named on the command line (or found under it)
  overtier_ctl_state state;
  // Complete copies of the archive: from the store's `files` row, which
  // only `status --store` reads (GET_STATE does not carry it).
  std::optional<uint32_t> copies;
};

// Several lines, the first "PATH: STATE (FLAG)", then indented fields, each
// line ending in '\n'.
std::string FormatStatusText(const FileStatus& f);
// One object: path, state, flag, flags[], size, archive_size, barrier (null
// if the resident bytes are not one prefix), resident_bytes, ranges,
// generation, copies (null if unknown), bfid (null if none), atime_ns,
// mtime_ns, archive_time_ns and restore_time_ns (null if never).
nlohmann::json StatusJson(const FileStatus& f);

// "-rw-r--r--", "drwxr-xr-x", "lrwxrwxrwx", with s/S, t/T as ls shows them.
std::string ModeString(mode_t mode);

// The mtime column of ls -l: "May  3 12:34" within six months of `now`,
// else "May  3  2021" (local time).
std::string LsTime(time_t mtime, time_t now);

// One entry of `overtier ls -l`.
struct LsEntry {
  char flag = '-';  // MigrationFlagChar, or '?' when the state is unknown
  struct stat st {};
  std::string owner, group;  // names, or the numeric ids
  std::string name;          // as shown
  std::string link_target;   // symlinks: shown after " -> "
};

// The lines of one listing, columns aligned across the entries as ls does:
// "FLAG MODE LINKS OWNER GROUP SIZE MTIME NAME[ -> TARGET]\n" (devices
// show "MAJOR, MINOR" in the size column).
std::string FormatLsLines(const std::vector<LsEntry>& entries, time_t now);

// The error message for a control ioctl that failed with `err` on `path`
// (without the "overtier: " prefix): EPERM and ENOTTY get their own
// wording, the refusals of the state machine (docs/FORMAT.md, "Migration")
// say what they mean; `op` is "archive", "release", "restore", "status".
std::string ControlErrorMessage(const std::string& path, std::string_view op, int err);

}  // namespace overtier::cli

#endif  // OVERTIER_TOOLS_MIGRATE_FORMAT_H_
