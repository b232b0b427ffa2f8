#include "image/archive_api.h"

#include <string>

#include "overtier/dl_api.h"

namespace overtier {

namespace {

// libarchive's soname has been .13 since 3.0 (2011).
constexpr const char kSoname[] = "libarchive.so.13";

struct Loaded {
  ArchiveApi api;
  Status status;
};

const Loaded& TheLoaded() {
  static const Loaded loaded = [] {  // thread-safe, once
    Loaded l;
    l.status = BindArchiveApi(kSoname, &l.api);
    return l;
  }();
  return loaded;
}

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

Status LoadArchiveApi(const ArchiveApi** out) {
  const Loaded& l = TheLoaded();
  if (!l.status.ok()) return l.status;
  *out = &l.api;
  return Status::OK();
}

const ArchiveApi& Archive() { return TheLoaded().api; }

}  // namespace overtier
