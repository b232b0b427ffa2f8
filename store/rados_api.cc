#include "store/rados_api.h"

#include <dlfcn.h>

#include <string>

namespace overtier {

namespace {

// The symbol `name` of `lib` into *fn; false (with *why) when missing.
template <typename Fn>
bool Bind(void* lib, const char* name, Fn* fn, std::string* why) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (*fn != nullptr) return true;
  if (why->empty()) *why = name;
  return false;
}

struct Loaded {
  RadosApi api{};
  Status status;
};

}  // namespace

Status BindRadosApi(const char* library, RadosApi* out) {
  // RTLD_NODELETE: the volume sets' threads may outlive every handle.
  void* lib = dlopen(library, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (lib == nullptr) {
    const char* err = dlerror();
    return Status::Errno(ENOTSUP, std::string("cannot load ") + library + " (" +
                                      (err != nullptr ? err : "unknown error") +
                                      "): install librados2 for RADOS volume sets");
  }
  std::string missing;
  RadosApi& a = *out;
  bool ok = true;
  ok &= Bind(lib, "rados_create2", &a.create2, &missing);
  ok &= Bind(lib, "rados_conf_read_file", &a.conf_read_file, &missing);
  ok &= Bind(lib, "rados_conf_set", &a.conf_set, &missing);
  ok &= Bind(lib, "rados_connect", &a.connect, &missing);
  ok &= Bind(lib, "rados_shutdown", &a.shutdown, &missing);
  ok &= Bind(lib, "rados_wait_for_latest_osdmap", &a.wait_for_latest_osdmap, &missing);
  ok &= Bind(lib, "rados_pool_create", &a.pool_create, &missing);
  ok &= Bind(lib, "rados_ioctx_create", &a.ioctx_create, &missing);
  ok &= Bind(lib, "rados_ioctx_destroy", &a.ioctx_destroy, &missing);
  ok &= Bind(lib, "rados_ioctx_set_namespace", &a.ioctx_set_namespace, &missing);
  ok &= Bind(lib, "rados_aio_create_completion2", &a.aio_create_completion2, &missing);
  ok &= Bind(lib, "rados_aio_wait_for_complete", &a.aio_wait_for_complete, &missing);
  ok &= Bind(lib, "rados_aio_get_return_value", &a.aio_get_return_value, &missing);
  ok &= Bind(lib, "rados_aio_release", &a.aio_release, &missing);
  ok &= Bind(lib, "rados_aio_read", &a.aio_read, &missing);
  ok &= Bind(lib, "rados_aio_write", &a.aio_write, &missing);
  ok &= Bind(lib, "rados_create_write_op", &a.create_write_op, &missing);
  ok &= Bind(lib, "rados_write_op_create", &a.write_op_create, &missing);
  ok &= Bind(lib, "rados_write_op_operate", &a.write_op_operate, &missing);
  ok &= Bind(lib, "rados_release_write_op", &a.release_write_op, &missing);
  ok &= Bind(lib, "rados_getxattr", &a.getxattr, &missing);
  ok &= Bind(lib, "rados_setxattr", &a.setxattr, &missing);
  ok &= Bind(lib, "rados_stat", &a.stat, &missing);
  ok &= Bind(lib, "rados_read", &a.read, &missing);
  ok &= Bind(lib, "rados_write_full", &a.write_full, &missing);
  ok &= Bind(lib, "rados_remove", &a.remove, &missing);
  ok &= Bind(lib, "rados_nobjects_list_open", &a.nobjects_list_open, &missing);
  ok &= Bind(lib, "rados_nobjects_list_next", &a.nobjects_list_next, &missing);
  ok &= Bind(lib, "rados_nobjects_list_close", &a.nobjects_list_close, &missing);
  if (!ok) {
    dlclose(lib);
    return Status::Errno(ENOTSUP, std::string(library) + " has no " + missing +
                                      ": not a librados, or one too old for overtier");
  }
  return Status::OK();
}

Status LoadRadosApi(const RadosApi** out) {
  static const Loaded loaded = [] {  // thread-safe, once
    Loaded l;
    l.status = BindRadosApi("librados.so.2", &l.api);
    return l;
  }();
  if (!loaded.status.ok()) return loaded.status;
  *out = &loaded.api;
  return Status::OK();
}

}  // namespace overtier
