#include "image/archive_api.h"

#include <string>

#include "overtier/dl_api.h"

namespace overtier {

namespace {

// libarchive's soname has been .13 since 3.0 (2011).
constexpr const char kSoname[] = "libarchive.so.13";

}  // namespace

Status BindArchiveApi(const char* soname, ArchiveApi* out) {
  void* lib = nullptr;
  OVT_RETURN_IF_ERROR(
      DlOpen(soname, "install libarchive13 to import or export tar archives", &lib));
  std::string missing;
#define OVERTIER_ARCHIVE_BIND(f) DlBind(lib, #f, &out->f, &missing);
  OVERTIER_ARCHIVE_FUNCTIONS(OVERTIER_ARCHIVE_BIND)
#undef OVERTIER_ARCHIVE_BIND
  return DlBound(lib, soname, missing);
}

Status LoadArchiveApi(const ArchiveApi** out) { return DlLoad(kSoname, BindArchiveApi, out); }

const ArchiveApi& Archive() { return DlLoadOnce(kSoname, BindArchiveApi).api; }

}  // namespace overtier
