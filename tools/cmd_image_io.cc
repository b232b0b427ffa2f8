// overtier image import | export | commit
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "image/commit.h"
#include "image/export.h"
#include "image/import.h"
#include "migrate/upper_content.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/json_out.h"
#include "tools/progress.h"
#include "tools/shown_name.h"

namespace overtier::cli {

namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "overtier: %s\n", MessageSafe(s.ToString()).c_str());
  return 1;
}

int OpenWritable(const std::string& path, std::unique_ptr<Store>* store) {
  StoreOpenOptions so;
  so.flush_on_close = true;  // a mount opens the catalog next: nothing to replay
  Status s = Store::Open(path, so, store);
  if (!s.ok()) return Fail(s);
  return 0;
}

// The summary of an import or commit, as text or one JSON object.
void Summary(const char* verb, const ImportResult& r, bool as_json) {
  const ImportCounters& c = r.counters;
  double mbs = r.seconds > 0 ? c.bytes / 1e6 / r.seconds : 0;
  if (as_json) {
    nlohmann::json j;
    j["images"] = r.images;
    j["image_ids"] = r.image_ids;
    j["entries"] = c.entries;
    j["files"] = c.files;
    j["bytes"] = c.bytes;
    j["bytes_stored"] = c.bytes_stored;
    j["seconds"] = r.seconds;
    j["mb_per_s"] = mbs;
    std::printf("%s\n", JsonText(j).c_str());
    return;
  }
  std::string names;
  for (const std::string& n : r.images) names += (names.empty() ? "" : ", ") + n;
  std::printf("%s %s: %llu entries, %llu files, %s, %s stored after dedup, %.1f s, %.1f MB/s\n",
              verb, names.c_str(), static_cast<unsigned long long>(c.entries),
              static_cast<unsigned long long>(c.files), HumanBytes(c.bytes).c_str(),
              HumanBytes(c.bytes_stored).c_str(), r.seconds, mbs);
}

}  // namespace

int ImageImport(int argc, char** argv) {
  CLI::App app{
      "Import a directory, tar (plain, gzip, zstd, xz), OCI image layout or "
      "docker save archive as an image",
      "overtier image import"};
  std::string store_path, name, source, parent;
  bool replace = false, as_json = false;
  app.add_option("STORE", store_path, "the store")->required();
  app.add_option("NAME", name, "image name (a multi-layer image also gets NAME@1..NAME@N-1)")
      ->required();
  app.add_option("SOURCE", source,
                 "directory, tar archive, OCI layout or docker save archive; - for standard "
                 "input (a pipe is copied to a temporary file in the store first)")
      ->required();
  app.add_flag("--replace", replace, "replace an existing image of that name");
  app.add_option("--parent", parent, "stack the (bottom) image on this image");
  app.add_flag("--json", as_json, "print the summary as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::unique_ptr<Store> store;
  if (int rc = OpenWritable(store_path, &store)) return rc;
  struct stat st;
  uint64_t total = 0;
  if (stat(source.c_str(), &st) == 0 && S_ISREG(st.st_mode)) total = st.st_size;
  Progress progress("import " + name, total);
  ImportOptions opt;
  opt.replace = replace;
  opt.parent = parent;
  opt.progress = [&](const ImportCounters& c) {
    if (c.entries == 0 && c.spooled_bytes > 0) return progress.Update(c.spooled_bytes, 0);
    progress.Update(total > 0 ? c.input_bytes : c.bytes, c.entries);
  };
  opt.warn = [&](const std::string& m) {
    progress.Clear();
    std::fprintf(stderr, "overtier: warning: %s\n", MessageSafe(m).c_str());
  };
  ImportResult res;
  Status s = ImportImage(store.get(), name, source, opt, &res);
  progress.Clear();
  if (!s.ok()) return Fail(s);
  Summary("imported", res, as_json);
  return 0;
}

int ImageCommit(int argc, char** argv) {
  CLI::App app{"Turn an upper directory (overlayfs format) into an image", "overtier image commit"};
  std::string store_path, name, upper, parent;
  bool replace = false, as_json = false;
  app.add_option("STORE", store_path, "the store")->required();
  app.add_option("NAME", name, "name of the new image")->required();
  app.add_option("--from", upper, "the upper directory")->required();
  app.add_option("--parent", parent, "the image the upper was mounted over");
  app.add_flag("--replace", replace, "replace an existing image of that name");
  app.add_flag("--json", as_json, "print the summary as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::unique_ptr<Store> store;
  if (int rc = OpenWritable(store_path, &store)) return rc;
  Progress progress("commit " + name, 0);
  ImportOptions opt;
  opt.replace = replace;
  opt.parent = parent;
  opt.progress = [&](const ImportCounters& c) { progress.Update(c.bytes, c.entries); };
  opt.warn = [&](const std::string& m) {
    progress.Clear();
    std::fprintf(stderr, "overtier: warning: %s\n", MessageSafe(m).c_str());
  };
  ImportResult res;
  // Released files: their missing bytes come from their archives.
  Store* st = store.get();
  auto released = [st](int fd, uint64_t size, const std::string& what, ContentWriter* w,
                       FileRecord* out, bool* handled) {
    return WriteUpperContent(st, fd, size, what, w, out, handled);
  };
  Status s = CommitUpper(store.get(), name, upper, opt, &res, released);
  progress.Clear();
  if (!s.ok()) return Fail(s);
  Summary("committed", res, as_json);
  return 0;
}

int ImageExport(int argc, char** argv) {
  CLI::App app{"Write an image (one layer) as a pax tar archive", "overtier image export"};
  std::string store_path, name, out;
  bool as_json = false;
  app.add_option("STORE", store_path, "the store")->required();
  app.add_option("NAME", name, "the image")->required();
  app.add_option("OUT", out, "the archive to write ('-': standard output)")->required();
  app.add_flag("--json", as_json, "print the summary as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // The archive on standard output, named "-" or otherwise (/dev/stdout):
  // the summary goes to stderr then. And never a tar onto a terminal (tar
  // refuses too).
  struct stat out_st, stdout_st;
  const bool to_stdout =
      out == "-" || (stat(out.c_str(), &out_st) == 0 && fstat(STDOUT_FILENO, &stdout_st) == 0 &&
                     out_st.st_dev == stdout_st.st_dev && out_st.st_ino == stdout_st.st_ino);
  if (to_stdout && isatty(STDOUT_FILENO) == 1) {
    std::fprintf(stderr,
                 "overtier image export: refusing to write an archive to a terminal (redirect "
                 "standard output, or name a file)\n");
    return 2;
  }
  std::unique_ptr<Store> store;
  StoreOpenOptions so;
  so.read_only = true;
  Status s = Store::Open(store_path, so, &store);
  if (!s.ok()) return Fail(s);
  Progress progress("export " + name, 0);
  ExportOptions opt;
  opt.progress = [&](const ExportStats& st) { progress.Update(st.bytes, st.entries); };
  ExportStats stats;
  s = ExportImage(store.get(), name, out, opt, &stats);
  progress.Clear();
  if (!s.ok()) return Fail(s);
  FILE* f = to_stdout ? stderr : stdout;
  if (as_json) {
    nlohmann::json j;
    j["image"] = name;
    j["entries"] = stats.entries;
    j["files"] = stats.files;
    j["bytes"] = stats.bytes;
    std::fprintf(f, "%s\n", JsonText(j).c_str());
  } else {
    std::fprintf(f, "exported %s: %llu entries, %llu files, %s\n", name.c_str(),
                 static_cast<unsigned long long>(stats.entries),
                 static_cast<unsigned long long>(stats.files), HumanBytes(stats.bytes).c_str());
  }
  return 0;
}

}  // namespace overtier::cli
