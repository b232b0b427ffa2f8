// overtier archive [--release [--keep BYTES]] [-r] PATH...
// overtier release [--keep BYTES] [-r] PATH...
// overtier restore [--range START-END] [--wait] [-r] PATH...
// overtier status [--json] [--store STORE] [-r] PATH...
// overtier ls [-l] [-a] [-r] [PATH...]
//
// All of them act through the control ioctls (include/overtier/control.h)
// on files of a mounted overtier union: the daemon's agents do the work.
// Every file is opened O_RDONLY | O_NOFOLLOW | O_NONBLOCK (and O_NOATIME
// where allowed: control::OpenAt): the ioctls need an open file, not write
// access (the daemon checks that the caller is uid 0), a symlink is never
// followed, and opening a fifo never hangs. Directories
// are walked with openat() relative to the directory's own descriptor, so a
// symlink swapped in for a directory during the walk is not followed
// either. One file's error is reported and the next one goes on; the exit
// status is 1 if any failed.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "migrate/control_client.h"
#include "migrate/dir_names.h"
#include "overtier/control.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/json_out.h"
#include "tools/migrate_format.h"
#include "tools/progress.h"
#include "tools/shown_name.h"

namespace overtier::cli {

namespace {

using nlohmann::json;

constexpr int kOpenDir = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// Parses; returns -1 to go on, else the exit status (0 for --help, 2 for
// bad usage).
int Parse(CLI::App* app, int argc, char** argv) {
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app->exit(e);
    std::fprintf(stderr, "%s: %s\n", app->get_name().c_str(), MessageSafe(e.what()).c_str());
    return 2;
  }
  return -1;
}

// Messages on stderr, clearing the progress bar first so that they do not
// end up glued to it.
class Reporter {
 public:
  explicit Reporter(bool quiet = false) : quiet_(quiet) {}
  void set_progress(Progress* p) { progress_ = p; }
  void Error(const std::string& msg) {
    Note(msg);
    failures_++;
  }
  void Note(const std::string& msg) {
    if (quiet_) return;
    if (progress_ != nullptr) progress_->Clear();
    std::fprintf(stderr, "overtier: %s\n", MessageSafe(msg).c_str());
  }
  int failures() const { return failures_; }

 private:
  const bool quiet_;
  Progress* progress_ = nullptr;
  int failures_ = 0;
};

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

// The regular files named by the arguments and, with `recursive`, under
// the directories named. For each: fn(path, fd, st, named), with fd open as
// control::OpenAt (or -1 when `open_files` is false: counting only);
// named: the file was an argument, not met in a walk.
// Non-regular files named on the command line are skipped with a note;
// those met in a walk are only counted (a tree holds many symlinks).
class Walker {
 public:
  using Fn =
      std::function<void(const std::string& path, int fd, const struct stat& st, bool named)>;
  Walker(Reporter* rep, bool recursive, bool open_files, Fn fn)
      : rep_(rep), recursive_(recursive), open_files_(open_files), fn_(std::move(fn)) {}

  void Visit(const std::string& path) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return rep_->Error(path + ": " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) {
      if (!recursive_) return rep_->Error(path + ": is a directory (use -r)");
      int fd = open(path.c_str(), kOpenDir);
      if (fd < 0) return rep_->Error(path + ": " + std::strerror(errno));
      VisitDir(fd, path);
      close(fd);
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      rep_->Note(path + ": not a regular file, skipped");
      return;
    }
    VisitFile(AT_FDCWD, path, path, /*named=*/true);
  }

  uint64_t skipped() const { return skipped_; }

 private:
  void VisitFile(int dirfd, const std::string& name, const std::string& path, bool named) {
    if (!open_files_) {
      struct stat st;
      if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        fn_(path, -1, st, named);
      return;
    }
    int fd = control::OpenAt(dirfd, name.c_str());
    if (fd < 0) {
      // ELOOP: replaced by a symlink since we looked.
      if (errno == ELOOP) {
        skipped_++;
        return;
      }
      return rep_->Error(path + ": " + std::strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      rep_->Error(path + ": " + std::strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
      skipped_++;  // replaced by something else since we looked
    } else {
      fn_(path, fd, st, named);
    }
    close(fd);
  }

  void VisitDir(int fd, const std::string& path) {
    std::vector<std::string> names;
    if (int e = ReadDirNames(fd, &names); e != 0)
      return rep_->Error(path + ": " + std::strerror(e));
    for (const std::string& name : names) {
      const std::string child = Join(path, name);
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) rep_->Error(child + ": " + std::strerror(errno));
        continue;  // ENOENT: removed while we walk
      }
      if (S_ISDIR(st.st_mode)) {
        int sub = openat(fd, name.c_str(), kOpenDir);
        if (sub < 0) {
          if (errno != ENOENT && errno != ELOOP) rep_->Error(child + ": " + std::strerror(errno));
          continue;
        }
        VisitDir(sub, child);
        close(sub);
      } else if (S_ISREG(st.st_mode)) {
        VisitFile(fd, name, child, /*named=*/false);
      } else {
        skipped_++;
      }
    }
  }

  Reporter* rep_;
  bool recursive_, open_files_;
  Fn fn_;
  uint64_t skipped_ = 0;
};

// The total size of the regular files a command will visit, for the
// progress bar; only walked when there is a terminal to draw it on.
uint64_t TotalBytes(const std::vector<std::string>& paths, bool recursive) {
  Reporter quiet(/*quiet=*/true);  // the real walk reports the errors
  uint64_t total = 0;
  Walker w(&quiet, recursive, /*open_files=*/false,
           [&](const std::string&, int, const struct stat& st, bool) { total += st.st_size; });
  for (const std::string& p : paths) w.Visit(p);
  return total;
}

// What archive, release and restore share: the walk, the progress bar, the
// counts for the summary line.
struct JobRun {
  Reporter rep;
  uint64_t files = 0, bytes = 0, already = 0;  // done (or already done)
  uint64_t whole = 0;  // released, but nothing freed (all within --keep, or empty)
  uint64_t lower = 0;  // met in a walk, only in a lower layer: nothing to do
  uint64_t done = 0;   // bytes visited, for the progress bar

  // Runs op on every regular file; op returns 0 (done), -1 (nothing to do:
  // counted in `already`), -2 (done, nothing freed: counted in `whole`) or
  // an errno, which is reported.
  int Run(const char* label, const char* op_name, const std::vector<std::string>& paths,
          bool recursive, const std::function<int(int fd)>& op, uint64_t* skipped) {
    std::unique_ptr<Progress> progress;
    if (isatty(STDERR_FILENO) == 1) {
      progress = std::make_unique<Progress>(label, TotalBytes(paths, recursive));
      rep.set_progress(progress.get());
    }
    Walker w(&rep, recursive, /*open_files=*/true,
             [&](const std::string& path, int fd, const struct stat& st, bool named) {
               int err = op(fd);
               overtier_ctl_state cs;
               if (err == EINVAL && !named && control::GetState(fd, &cs) == 0 &&
                   (cs.mig_flags & OVERTIER_MIG_LOWER)) {
                 // A tree of a mount holds many files of its lower layers:
                 // counted, not failures (named on the command line, it is
                 // one: the user asked for that file).
                 lower++;
               } else if (err > 0) {
                 rep.Error(ControlErrorMessage(path, op_name, err));
               } else {
                 files++;
                 bytes += st.st_size;
                 if (err == -1) already++;
                 if (err == -2) whole++;
               }
               done += st.st_size;
               if (progress) progress->Update(done, files);
             });
    for (const std::string& p : paths) w.Visit(p);
    *skipped = w.skipped();
    progress.reset();
    rep.set_progress(nullptr);
    return rep.failures() > 0 ? 1 : 0;
  }
};

std::string Summary(const std::string& verb, uint64_t files, uint64_t bytes) {
  return verb + " " + std::to_string(files) + (files == 1 ? " file" : " files") + " (" +
         HumanBytes(bytes) + ")";
}

// After a release of fd succeeded: -2 if the file is still all resident
// (--keep covers it, or it is empty: nothing was freed), else 0.
int FreedOrWhole(int fd) {
  overtier_ctl_state cs;
  if (control::GetState(fd, &cs) == 0 && cs.resident_bytes >= cs.size) return -2;
  return 0;
}

std::string WholeNote(uint64_t whole) {
  if (whole == 0) return "";
  return ", " + std::to_string(whole) + " of them kept whole (within --keep, or empty)";
}

void PrintSummary(std::string line, uint64_t skipped, uint64_t failures, uint64_t lower = 0) {
  if (lower > 0) line += ", " + std::to_string(lower) + " only in lower layers (nothing to do)";
  if (skipped > 0) line += ", " + std::to_string(skipped) + " non-regular entries skipped";
  if (failures > 0) line += ", " + std::to_string(failures) + " failed";
  std::printf("%s\n", line.c_str());
}

CLI::Option* AddSize(CLI::App& app, const std::string& name, uint64_t* out,
                     const std::string& help) {
  return app
      .add_option_function<std::string>(
          name,
          [out, name](const std::string& v) {
            if (!ParseByteSize(v, out))
              throw CLI::ValidationError(name,
                                         "'" + v + "' is not a size (BYTES, or with K/M/G/T)");
          },
          help)
      ->type_name("BYTES");
}

}  // namespace

int MigArchive(int argc, char** argv) {
  CLI::App app{"Archive files of an overtier mount into the store", "overtier archive"};
  bool release = false, recursive = false;
  uint64_t keep = 0;
  std::vector<std::string> paths;
  CLI::Option* rel = app.add_flag("--release", release, "release each file once it is archived");
  AddSize(app, "--keep", &keep, "with --release: bytes at the start to keep resident")->needs(rel);
  app.add_flag("-r,--recursive", recursive, "archive the regular files under directories");
  app.add_option("PATH", paths, "files (or directories, with -r)")->required();
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;

  JobRun run;
  uint64_t skipped = 0;
  int rc = run.Run(
      "archive", "archive", paths, recursive,
      [&](int fd) {
        // Already archived: fine for an archive; --release then still
        // asks for the release (control::Archive does).
        bool already = false;
        const int err = control::Archive(fd, release, keep, &already);
        if (err == 0 && release && FreedOrWhole(fd) == -2) return -2;
        return err == 0 && already ? -1 : err;
      },
      &skipped);
  std::string line = Summary(release ? "archived and released" : "archived", run.files, run.bytes);
  if (run.already > 0) line += ", " + std::to_string(run.already) + " of them already archived";
  line += WholeNote(run.whole);
  PrintSummary(line, skipped, run.rep.failures(), run.lower);
  return rc;
}

int MigRelease(int argc, char** argv) {
  CLI::App app{"Release archived files of an overtier mount (drop their resident data)",
               "overtier release"};
  bool recursive = false;
  uint64_t keep = 0;
  std::vector<std::string> paths;
  AddSize(app, "--keep", &keep, "bytes at the start of each file to keep resident (default 0)");
  app.add_flag("-r,--recursive", recursive, "release the regular files under directories");
  app.add_option("PATH", paths, "files (or directories, with -r)")->required();
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;

  JobRun run;
  uint64_t skipped = 0;
  int rc = run.Run(
      "release", "release", paths, recursive,
      [&](int fd) {
        const int err = control::Release(fd, keep);
        return err == 0 ? FreedOrWhole(fd) : err;
      },
      &skipped);
  PrintSummary(Summary("released", run.files, run.bytes) + WholeNote(run.whole), skipped,
               run.rep.failures(), run.lower);
  return rc;
}

int MigRestore(int argc, char** argv) {
  CLI::App app{"Restore released files of an overtier mount from the store", "overtier restore"};
  bool wait = false, recursive = false;
  std::string range;
  std::vector<std::string> paths;
  app.add_option("--range", range,
                 "only the bytes [START, END) (sizes with K/M/G/T; END empty: to the end)")
      ->type_name("START-END");
  app.add_flag("--wait", wait,
               "return once the data is resident and the restore recorded (default: restore in "
               "background)");
  app.add_flag("-r,--recursive", recursive, "restore the regular files under directories");
  app.add_option("PATH", paths, "files (or directories, with -r)")->required();
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  uint64_t offset = 0, length = 0;
  uint32_t flags = wait ? OVERTIER_CTL_WAIT : 0;
  if (!range.empty()) {
    if (!ParseByteRange(range, &offset, &length)) {
      std::fprintf(stderr,
                   "overtier restore: --range: '%s' is not START-END with START < END "
                   "(e.g. 0-1M, 4K-)\n",
                   range.c_str());
      return 2;
    }
    flags |= OVERTIER_CTL_RANGE_ONLY;
  }

  JobRun run;
  uint64_t skipped = 0;
  int rc = run.Run(
      "restore", "restore", paths, recursive,
      [&](int fd) {
        int err = control::Ioctl(fd, OVERTIER_IOC_RESTORE, control::Request(flags, offset, length));
        return err == EALREADY ? -1 : err;  // nothing non-resident
      },
      &skipped);
  PrintSummary(Summary(wait ? "restored" : "restore started for", run.files, run.bytes), skipped,
               run.rep.failures());
  return rc;
}

int MigStatus(int argc, char** argv) {
  CLI::App app{"The migration state of files of an overtier mount", "overtier status"};
  bool as_json = false, recursive = false;
  std::string store_path;
  std::vector<std::string> paths;
  app.add_flag("--json", as_json, "one JSON array of objects");
  app.add_option("--store", store_path,
                 "the mount's store: also show the number of archive copies (read-only)")
      ->type_name("STORE");
  app.add_flag("-r,--recursive", recursive, "the regular files under directories");
  app.add_option("PATH", paths, "files (or directories, with -r)")->required();
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;

  Reporter rep;
  std::unique_ptr<Store> store;
  if (!store_path.empty()) {
    StoreOpenOptions o;
    o.read_only = true;
    Status s = Store::Open(store_path, o, &store);
    if (!s.ok()) {
      rep.Error("status: " + s.ToString());
      return 1;
    }
  }
  json all = json::array();
  Walker w(&rep, recursive, /*open_files=*/true,
           [&](const std::string& path, int fd, const struct stat&, bool) {
             FileStatus f;
             f.path = path;
             if (int err = control::GetState(fd, &f.state); err != 0)
               return rep.Error(ControlErrorMessage(path, "status", err));
             Bfid bfid;
             if (store && !BfidHex(f.state.bfid).empty() &&
                 Bfid::FromBytes(std::string_view(reinterpret_cast<const char*>(f.state.bfid),
                                                  sizeof f.state.bfid),
                                 &bfid)) {
               FileRecord rec;
               Status s = store->catalog()->GetFile(bfid, &rec);
               if (s.ok())
                 f.copies = static_cast<uint32_t>(rec.copies.size());
               else
                 rep.Note(path + ": archive " + bfid.ToHex() + " not in " + store_path + ": " +
                          s.ToString());
             }
             if (as_json) {
               all.push_back(StatusJson(f));
             } else {
               f.path = ShownName(f.path, StdoutIsTerminal());
               std::fputs(FormatStatusText(f).c_str(), stdout);
             }
           });
  for (const std::string& p : paths) w.Visit(p);
  if (as_json) std::printf("%s\n", JsonText(all, 2).c_str());
  return rep.failures() > 0 ? 1 : 0;
}

namespace {

// overtier ls: one listing per directory, like ls(1) with -l (and -R for
// -r), plus the migration flag.
class Lister {
 public:
  Lister(Reporter* rep, bool long_format, bool all, bool recursive)
      : rep_(rep), long_(long_format), all_(all), recursive_(recursive), now_(time(nullptr)) {}

  // Files named first (one listing), then each directory, headed "DIR:"
  // when there are several or with -r.
  void Run(const std::vector<std::string>& paths) {
    std::vector<LsEntry> files;
    std::vector<std::string> dirs;
    for (const std::string& p : paths) {
      struct stat st;
      if (lstat(p.c_str(), &st) != 0) {
        rep_->Error(p + ": " + std::strerror(errno));
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        dirs.push_back(p);
        continue;
      }
      LsEntry e;
      if (Entry(AT_FDCWD, p, p, p, st, &e)) files.push_back(std::move(e));
    }
    Print(files);
    bool first = files.empty();
    const bool headers = paths.size() > 1 || recursive_;
    for (const std::string& d : dirs) {
      int fd = open(d.c_str(), kOpenDir);
      if (fd < 0) {
        rep_->Error(d + ": " + std::strerror(errno));
        continue;
      }
      ListDir(fd, d, headers, &first);
      close(fd);
    }
  }

 private:
  void ListDir(int fd, const std::string& path, bool header, bool* first) {
    if (!*first) std::fputs("\n", stdout);
    *first = false;
    if (header) std::printf("%s:\n", ShownName(path, StdoutIsTerminal()).c_str());
    std::vector<std::string> names;
    if (int e = ReadDirNames(fd, &names); e != 0)
      return rep_->Error(path + ": " + std::strerror(e));
    std::vector<LsEntry> entries;
    std::vector<std::string> subdirs;
    for (const std::string& name : names) {
      if (!all_ && name[0] == '.') continue;
      const std::string child = Join(path, name);
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) rep_->Error(child + ": " + std::strerror(errno));
        continue;
      }
      LsEntry e;
      if (Entry(fd, name, child, name, st, &e)) entries.push_back(std::move(e));
      if (S_ISDIR(st.st_mode)) subdirs.push_back(name);
    }
    if (long_) {
      blkcnt_t blocks = 0;
      for (const LsEntry& e : entries) blocks += e.st.st_blocks;
      std::printf("total %lld\n", static_cast<long long>(blocks / 2));  // 1 KiB units, as ls
    }
    Print(entries);
    if (!recursive_) return;
    for (const std::string& name : subdirs) {
      int sub = openat(fd, name.c_str(), kOpenDir);
      if (sub < 0) {
        if (errno != ENOENT && errno != ELOOP)
          rep_->Error(Join(path, name) + ": " + std::strerror(errno));
        continue;
      }
      ListDir(sub, Join(path, name), true, first);
      close(sub);
    }
  }

  // Fills *e for `name` in dirfd (`path` for messages, `shown` for the
  // listing); false if it vanished.
  bool Entry(int dirfd, const std::string& name, const std::string& path, const std::string& shown,
             const struct stat& st, LsEntry* e) {
    e->st = st;
    e->name = ShownName(shown, StdoutIsTerminal());
    e->owner = Owner(st.st_uid);
    e->group = Group(st.st_gid);
    e->flag = '-';
    if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX];
      ssize_t n = readlinkat(dirfd, name.c_str(), buf, sizeof buf);
      if (n >= 0) e->link_target = ShownName(std::string_view(buf, n), StdoutIsTerminal());
    }
    if (!S_ISREG(st.st_mode)) return true;
    int fd = control::OpenAt(dirfd, name.c_str());
    if (fd < 0) {
      if (errno == ENOENT) return false;
      e->flag = '?';
      rep_->Error(path + ": " + std::strerror(errno));
      return true;
    }
    overtier_ctl_state s;
    if (int err = control::GetState(fd, &s); err != 0) {
      e->flag = '?';
      rep_->Error(ControlErrorMessage(path, "status", err));
    } else {
      e->flag = MigrationFlagChar(s.state);
    }
    close(fd);
    return true;
  }

  void Print(std::vector<LsEntry>& entries) {
    AlignQuoted(&entries);
    if (long_) {
      std::fputs(FormatLsLines(entries, now_).c_str(), stdout);
      return;
    }
    for (const LsEntry& e : entries) std::printf("%c %s\n", e.flag, e.name.c_str());
  }

  // As GNU ls on a terminal: when some names of a listing are quoted, the
  // others get a space in front, so that the names still line up.
  static void AlignQuoted(std::vector<LsEntry>* entries) {
    if (!StdoutIsTerminal()) return;
    auto quoted = [](const LsEntry& e) {
      return !e.name.empty() && (e.name[0] == '\'' || e.name[0] == '$' || e.name[0] == '\\');
    };
    if (std::none_of(entries->begin(), entries->end(), quoted)) return;
    for (LsEntry& e : *entries)
      if (!quoted(e)) e.name.insert(0, 1, ' ');
  }

  std::string Owner(uid_t uid) {
    auto it = users_.find(uid);
    if (it != users_.end()) return it->second;
    struct passwd pw, *res = nullptr;
    char buf[4096];
    std::string name = getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res != nullptr
                           ? res->pw_name
                           : std::to_string(uid);
    return users_[uid] = name;
  }

  std::string Group(gid_t gid) {
    auto it = groups_.find(gid);
    if (it != groups_.end()) return it->second;
    struct group gr, *res = nullptr;
    char buf[4096];
    std::string name = getgrgid_r(gid, &gr, buf, sizeof buf, &res) == 0 && res != nullptr
                           ? res->gr_name
                           : std::to_string(gid);
    return groups_[gid] = name;
  }

  Reporter* rep_;
  bool long_, all_, recursive_;
  time_t now_;
  std::map<uid_t, std::string> users_;
  std::map<gid_t, std::string> groups_;
};

}  // namespace

int MigLs(int argc, char** argv) {
  CLI::App app{"List files of an overtier mount with their migration flag", "overtier ls"};
  bool long_format = false, all = false, recursive = false;
  std::vector<std::string> paths;
  app.add_flag("-l", long_format, "long format: mode, links, owner, group, size, mtime");
  app.add_flag("-a,--all", all, "include names starting with '.'");
  app.add_flag("-r,-R,--recursive", recursive, "list subdirectories too");
  app.add_option("PATH", paths, "files and directories (default: .)");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  if (paths.empty()) paths.push_back(".");
  Reporter rep;
  Lister(&rep, long_format, all, recursive).Run(paths);
  return rep.failures() > 0 ? 1 : 0;
}

}  // namespace overtier::cli
