#include "image/commit.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>

namespace overtier {

Status CommitUpper(Store* store, std::string_view name, const std::string& upper,
                   const ImportOptions& options, ImportResult* result,
                   const UpperContentFn& upper_content) {
  auto start = std::chrono::steady_clock::now();
  *result = ImportResult();
  struct stat st;
  if (stat(upper.c_str(), &st) != 0) return Status::FromErrno("upper directory '" + upper + "'");
  if (!S_ISDIR(st.st_mode)) {
    return Status::Errno(ENOTDIR, "upper '" + upper + "' is not a directory");
  }
  std::string n(name);
  OVT_RETURN_IF_ERROR(CheckNewNames(store, {n}, options.replace));
  uint64_t parent = 0;
  if (!options.parent.empty()) OVT_RETURN_IF_ERROR(ResolveParent(store, options.parent, &parent));
  ContentWriter w(store);
  DiscardUnlessKept discard(&w);
  ImageBuilder b(store, &w, &result->counters);
  OVT_RETURN_IF_ERROR(b.Begin());
  DirectoryImportOptions dopt;
  dopt.drop_overtier_xattrs = true;
  dopt.upper_content = upper_content;
  OVT_RETURN_IF_ERROR(ImportDirectory(&b, &w, upper, dopt, options, &result->counters));
  ImageRecord rec;
  OVT_RETURN_IF_ERROR(FinishLayer(&b, parent, &rec));
  OVT_RETURN_IF_ERROR(PublishImages(store, &w, {{n, rec}}, options.replace));
  discard.Keep();
  result->counters.bytes_stored = w.stats().bytes_stored;
  result->images.push_back(n);
  result->image_ids.push_back(rec.image_id);
  result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Status::OK();
}

}  // namespace overtier
