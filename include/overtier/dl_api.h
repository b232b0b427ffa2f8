// Libraries loaded with dlopen when first needed instead of linked.
//
// Why: every library a binary links is loaded, relocated and initialised
// at each start, and a container's start waits for the start of
// `overtier` (containers/storage waits for the mount program to exit).
// An empty program takes 1.3 ms to run here; linked with librados 6.3
// ms, with libarchive (which brings libxml2 and ICU) 3.2 ms, with
// libcrypto 1.7 ms. A mount of plain directories uses none of them. Each
// such library gets a table of the functions overtier calls
// (store/rados_api.h, image/archive_api.h, image/digest_api.h), filled
// once, the first time it is needed; a missing library then fails only
// what needs it, saying what to install.
#ifndef OVERTIER_DL_API_H_
#define OVERTIER_DL_API_H_

#include <dlfcn.h>

#include <cerrno>
#include <string>

#include "overtier/status.h"

namespace overtier {

// dlopen(soname) for the rest of the process (RTLD_NODELETE: threads that
// use it may outlive every handle), or ENOTSUP naming the library, why,
// and `install` (what to install).
inline Status DlOpen(const char* soname, const char* install, void** lib) {
  *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (*lib != nullptr) return Status::OK();
  const char* err = dlerror();
  return Status::Errno(ENOTSUP, std::string("cannot load ") + soname + " (" +
                                    (err != nullptr ? err : "unknown error") + "): " + install);
}

// The symbol `name` of `lib` into *fn; false when missing, naming the first
// missing one in *missing.
template <typename Fn>
bool DlBind(void* lib, const char* name, Fn* fn, std::string* missing) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (*fn != nullptr) return true;
  if (missing->empty()) *missing = name;
  return false;
}

// After binding: OK, or ENOTSUP naming the library and the missing symbol
// (the library is closed then).
inline Status DlBound(void* lib, const char* soname, const std::string& missing) {
  if (missing.empty()) return Status::OK();
  dlclose(lib);
  return Status::Errno(ENOTSUP, std::string(soname) + " has no " + missing +
                                    ": not the library overtier was built for, or too old");
}

// A table of a library's functions and how binding it went.
template <typename Api>
struct DlTable {
  Api api{};
  Status status;
};

// Binds Api from `soname` with bind(soname, &api) the first time, for the
// rest of the process: later calls (from any thread) get that answer.
template <typename Api>
const DlTable<Api>& DlLoadOnce(const char* soname, Status (*bind)(const char*, Api*)) {
  static const DlTable<Api> table = [&] {  // once per Api, thread-safe
    DlTable<Api> t;
    t.status = bind(soname, &t.api);
    return t;
  }();
  return table;
}

// DlLoadOnce's table in *out, or why it could not be bound.
template <typename Api>
Status DlLoad(const char* soname, Status (*bind)(const char*, Api*), const Api** out) {
  const DlTable<Api>& t = DlLoadOnce(soname, bind);
  if (!t.status.ok()) return t.status;
  *out = &t.api;
  return Status::OK();
}

}  // namespace overtier

#endif  // OVERTIER_DL_API_H_
