#include "tools/migrate_format.h"

#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "overtier/time_ns.h"
#include "tools/json_out.h"

namespace overtier::cli {

bool ParseByteRange(std::string_view in, uint64_t* offset, uint64_t* length) {
  const size_t dash = in.find('-');
  if (dash == std::string_view::npos) return false;
  uint64_t start, end;
  if (!ParseByteSize(in.substr(0, dash), &start)) return false;
  std::string_view rest = in.substr(dash + 1);
  if (rest.empty()) {
    *offset = start;
    *length = 0;  // to the end of the file
    return true;
  }
  if (!ParseByteSize(rest, &end) || end <= start) return false;
  *offset = start;
  *length = end - start;
  return true;
}

std::string StateName(uint32_t state) {
  switch (state) {
    case OVERTIER_STATE_RESIDENT:
      return "resident";
    case OVERTIER_STATE_ARCHIVED:
      return "archived";
    case OVERTIER_STATE_RELEASED:
      return "released";
    case OVERTIER_STATE_DIRTY:
      return "dirty";
    case OVERTIER_STATE_LOST:
      return "lost";
  }
  return "unknown(" + std::to_string(state) + ")";
}

char MigrationFlagChar(uint32_t state) {
  switch (state) {
    case OVERTIER_STATE_ARCHIVED:
      return 'a';
    case OVERTIER_STATE_RELEASED:
      return 'A';
    case OVERTIER_STATE_LOST:
      return '!';
    case OVERTIER_STATE_RESIDENT:
    case OVERTIER_STATE_DIRTY:
      return '-';
  }
  return '?';
}

std::vector<std::string> MigFlagList(uint32_t mig_flags) {
  static const struct {
    uint32_t bit;
    const char* name;
  } kNames[] = {
      {OVERTIER_MIG_ARCHIVED, "archived"},
      {OVERTIER_MIG_RELEASED, "released"},
      {OVERTIER_MIG_DIRTY, "dirty"},
      {OVERTIER_MIG_LOST, "lost"},
      {OVERTIER_MIG_ARCHIVE_IN_PROGRESS, "archiving"},
      {OVERTIER_MIG_RESTORE_IN_PROGRESS, "restoring"},
      {OVERTIER_MIG_ON_DEMAND, "on-demand"},
      {OVERTIER_MIG_LOWER, "lower"},
      {OVERTIER_MIG_PINNED, "pinned"},
  };
  std::vector<std::string> out;
  uint32_t known = 0;
  for (const auto& n : kNames) {
    known |= n.bit;
    if (mig_flags & n.bit) out.push_back(n.name);
  }
  for (int b = 0; b < 32; ++b) {
    if ((mig_flags & ~known) & (1u << b)) out.push_back("bit" + std::to_string(b));
  }
  return out;
}

std::string MigFlagNames(uint32_t mig_flags) {
  std::string s;
  for (const std::string& n : MigFlagList(mig_flags)) s += (s.empty() ? "" : ",") + n;
  return s.empty() ? "none" : s;
}

std::string BfidHex(const uint8_t (&bfid)[16]) {
  if (std::all_of(std::begin(bfid), std::end(bfid), [](uint8_t b) { return b == 0; })) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bfid) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

std::string FormatTimeNs(int64_t ns) {
  if (ns == 0) return "never";
  // Times before 1970 keep a positive fraction.
  const struct timespec ts = NsToTimespec(ns);
  const time_t t = ts.tv_sec;
  struct tm tm;
  char buf[64];
  if (localtime_r(&t, &tm) == nullptr || strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    return std::to_string(ns) + " ns";
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03d", static_cast<int>(ts.tv_nsec / 1000000));
  return std::string(buf) + ms;
}

std::string FormatStatusText(const FileStatus& f) {
  const overtier_ctl_state& s = f.state;
  std::string out = f.path + ": " + StateName(s.state) + " (" + MigrationFlagChar(s.state) + ")\n";
  auto line = [&](const char* key, const std::string& value) {
    char head[32];
    std::snprintf(head, sizeof head, "  %-10s ", key);
    out += head + value + "\n";
  };
  line("flags", MigFlagNames(s.mig_flags));
  line("size", std::to_string(s.size));
  std::string res = std::to_string(s.resident_bytes) + " bytes";
  if (s.barrier != UINT64_MAX)
    res += ", barrier " + std::to_string(s.barrier);
  else
    res += " in " + std::to_string(s.nranges) + (s.nranges == 1 ? " range" : " ranges");
  line("resident", res);
  const std::string bfid = BfidHex(s.bfid);
  if (!bfid.empty() || s.archive_time_ns != 0) {
    std::string arch = std::to_string(s.archive_size) + " bytes";
    if (f.copies) arch += ", " + std::to_string(*f.copies) + (*f.copies == 1 ? " copy" : " copies");
    line("archive", arch);
    line("bfid", bfid.empty() ? "-" : bfid);
    line("generation", std::to_string(s.generation));
  }
  line("archived", FormatTimeNs(s.archive_time_ns));
  line("restored", FormatTimeNs(s.restore_time_ns));
  return out;
}

nlohmann::json StatusJson(const FileStatus& f) {
  using nlohmann::json;
  const overtier_ctl_state& s = f.state;
  auto time_or_null = [](int64_t ns) { return ns == 0 ? json(nullptr) : json(ns); };
  const std::string bfid = BfidHex(s.bfid);
  json j;
  SetPath(&j, "path", f.path);
  j["state"] = StateName(s.state);
  j["flag"] = std::string(1, MigrationFlagChar(s.state));
  j["flags"] = MigFlagList(s.mig_flags);
  j["size"] = s.size;
  j["archive_size"] = s.archive_size;
  j["barrier"] = s.barrier == UINT64_MAX ? json(nullptr) : json(s.barrier);
  j["resident_bytes"] = s.resident_bytes;
  j["ranges"] = s.nranges;
  j["generation"] = s.generation;
  j["copies"] = f.copies ? json(*f.copies) : json(nullptr);
  j["bfid"] = bfid.empty() ? json(nullptr) : json(bfid);
  j["atime_ns"] = s.atime_ns;
  j["mtime_ns"] = s.mtime_ns;
  j["archive_time_ns"] = time_or_null(s.archive_time_ns);
  j["restore_time_ns"] = time_or_null(s.restore_time_ns);
  return j;
}

std::string ModeString(mode_t mode) {
  std::string s(10, '-');
  switch (mode & S_IFMT) {
    case S_IFDIR:
      s[0] = 'd';
      break;
    case S_IFLNK:
      s[0] = 'l';
      break;
    case S_IFCHR:
      s[0] = 'c';
      break;
    case S_IFBLK:
      s[0] = 'b';
      break;
    case S_IFIFO:
      s[0] = 'p';
      break;
    case S_IFSOCK:
      s[0] = 's';
      break;
  }
  static const char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (mode & (1u << (8 - i))) s[1 + i] = kRwx[i];
  // The execute slot shows the special bits: lowercase when x is set too.
  auto special = [&](int pos, mode_t bit, char with_x, char without_x) {
    if (mode & bit) s[pos] = s[pos] == 'x' ? with_x : without_x;
  };
  special(3, S_ISUID, 's', 'S');
  special(6, S_ISGID, 's', 'S');
  special(9, S_ISVTX, 't', 'T');
  return s;
}

std::string LsTime(time_t mtime, time_t now) {
  // GNU ls: the year instead of the time for files older than six months
  // (or in the future).
  constexpr time_t kSixMonths = 31556952 / 2;
  struct tm tm;
  char buf[64];
  if (localtime_r(&mtime, &tm) == nullptr) return std::to_string(mtime);
  const bool recent = mtime <= now && now - mtime < kSixMonths;
  if (strftime(buf, sizeof buf, recent ? "%b %e %H:%M" : "%b %e  %Y", &tm) == 0)
    return std::to_string(mtime);
  return buf;
}

std::string FormatLsLines(const std::vector<LsEntry>& entries, time_t now) {
  struct Row {
    std::string links, size;
  };
  std::vector<Row> rows;
  size_t wl = 0, wo = 0, wg = 0, ws = 0;
  for (const LsEntry& e : entries) {
    Row r;
    r.links = std::to_string(e.st.st_nlink);
    if (S_ISCHR(e.st.st_mode) || S_ISBLK(e.st.st_mode))
      r.size = std::to_string(major(e.st.st_rdev)) + ", " + std::to_string(minor(e.st.st_rdev));
    else
      r.size = std::to_string(e.st.st_size);
    wl = std::max(wl, r.links.size());
    wo = std::max(wo, e.owner.size());
    wg = std::max(wg, e.group.size());
    ws = std::max(ws, r.size.size());
    rows.push_back(std::move(r));
  }
  auto pad_left = [](const std::string& s, size_t w) { return std::string(w - s.size(), ' ') + s; };
  auto pad_right = [](const std::string& s, size_t w) {
    return s + std::string(w - s.size(), ' ');
  };
  std::string out;
  for (size_t i = 0; i < entries.size(); ++i) {
    const LsEntry& e = entries[i];
    out += e.flag;
    out += ' ' + ModeString(e.st.st_mode) + ' ' + pad_left(rows[i].links, wl) + ' ' +
           pad_right(e.owner, wo) + ' ' + pad_right(e.group, wg) + ' ' +
           pad_left(rows[i].size, ws) + ' ' + LsTime(e.st.st_mtim.tv_sec, now) + ' ' + e.name;
    if (S_ISLNK(e.st.st_mode)) out += " -> " + e.link_target;
    out += '\n';
  }
  return out;
}

std::string ControlErrorMessage(const std::string& path, std::string_view op, int err) {
  const std::string o(op);
  switch (err) {
    case EPERM:
      return path + ": permission denied (control operations need root)";
    case EACCES:
      return path + ": " + o +
             ": pinned (user.overtier.norelease, or chattr +i or +a): never released";
    case ENOTTY:
      return path + " is not on an overtier mount (or the mount has no store=)";
    case EALREADY:
      return path + ": " + o + ": already archived";
    case EBUSY:
      return path + ": " + o +
             ": busy (another archive or restore of this file is running, or it is open with FUSE "
             "passthrough)";
    case ENODATA:
      return path + ": " + o + ": no valid archive (never archived, or too few readable copies)";
    case ESTALE:
      return path + ": " + o + ": the file changed during the operation (try again)";
    case EINVAL:
      // The daemon's EINVAL: not a regular file of the upper layer (a file
      // still only in a lower layer has nothing of its own to archive),
      // or a control request of another version.
      return path + ": " + o +
             ": not a regular file of the upper layer (a file only in a lower layer is not "
             "archived until it is written through the mount)";
    case EIO:
      return path + ": " + o + ": input/output error (the archive may be lost)";
    case EOVERFLOW:
      return path + ": " + o +
             ": its atime or mtime is outside the years 1677 to 2262 a migration record holds "
             "(touch the file to archive it)";
  }
  return path + ": " + o + ": " + std::strerror(err);
}

}  // namespace overtier::cli
