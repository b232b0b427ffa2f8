#include "store/rados_api.h"

#include <string>

#include "overtier/dl_api.h"

namespace overtier {

Status BindRadosApi(const char* library, RadosApi* out) {
  void* lib = nullptr;
  OVT_RETURN_IF_ERROR(DlOpen(library, "install librados2 for RADOS volume sets", &lib));
  std::string missing;
  RadosApi& a = *out;
  DlBind(lib, "rados_create2", &a.create2, &missing);
  DlBind(lib, "rados_conf_read_file", &a.conf_read_file, &missing);
  DlBind(lib, "rados_conf_set", &a.conf_set, &missing);
  DlBind(lib, "rados_connect", &a.connect, &missing);
  DlBind(lib, "rados_shutdown", &a.shutdown, &missing);
  DlBind(lib, "rados_wait_for_latest_osdmap", &a.wait_for_latest_osdmap, &missing);
  DlBind(lib, "rados_pool_create", &a.pool_create, &missing);
  DlBind(lib, "rados_ioctx_create", &a.ioctx_create, &missing);
  DlBind(lib, "rados_ioctx_destroy", &a.ioctx_destroy, &missing);
  DlBind(lib, "rados_ioctx_set_namespace", &a.ioctx_set_namespace, &missing);
  DlBind(lib, "rados_aio_create_completion2", &a.aio_create_completion2, &missing);
  DlBind(lib, "rados_aio_wait_for_complete", &a.aio_wait_for_complete, &missing);
  DlBind(lib, "rados_aio_get_return_value", &a.aio_get_return_value, &missing);
  DlBind(lib, "rados_aio_release", &a.aio_release, &missing);
  DlBind(lib, "rados_aio_read", &a.aio_read, &missing);
  DlBind(lib, "rados_aio_write", &a.aio_write, &missing);
  DlBind(lib, "rados_create_write_op", &a.create_write_op, &missing);
  DlBind(lib, "rados_write_op_create", &a.write_op_create, &missing);
  DlBind(lib, "rados_write_op_operate", &a.write_op_operate, &missing);
  DlBind(lib, "rados_release_write_op", &a.release_write_op, &missing);
  DlBind(lib, "rados_getxattr", &a.getxattr, &missing);
  DlBind(lib, "rados_setxattr", &a.setxattr, &missing);
  DlBind(lib, "rados_stat", &a.stat, &missing);
  DlBind(lib, "rados_read", &a.read, &missing);
  DlBind(lib, "rados_write_full", &a.write_full, &missing);
  DlBind(lib, "rados_remove", &a.remove, &missing);
  DlBind(lib, "rados_nobjects_list_open", &a.nobjects_list_open, &missing);
  DlBind(lib, "rados_nobjects_list_next", &a.nobjects_list_next, &missing);
  DlBind(lib, "rados_nobjects_list_close", &a.nobjects_list_close, &missing);
  return DlBound(lib, library, missing);
}

Status LoadRadosApi(const RadosApi** out) { return DlLoad("librados.so.2", BindRadosApi, out); }

}  // namespace overtier
