// librados, loaded when a RADOS volume set is first opened instead of
// linked into every binary.
//
// Why: librados drags in libceph-common, boost, ICU, libibverbs and more.
// Loading them took about 5 ms of every start of `overtier` (measured:
// an empty program linked with librados takes 6.3 ms to run here, one
// without 0.9 ms), and a container's mount waits for that start; most
// stores have no RADOS set at all. It also lets the binary run where
// librados is not installed: only a RADOS set then fails, saying why.
#ifndef OVERTIER_STORE_RADOS_API_H_
#define OVERTIER_STORE_RADOS_API_H_

#include <rados/librados.h>

#include "overtier/status.h"

namespace overtier {

// The librados functions rados_volume.cc calls, by their names without
// the "rados_" prefix.
struct RadosApi {
  decltype(&::rados_create2) create2;
  decltype(&::rados_conf_read_file) conf_read_file;
  decltype(&::rados_conf_set) conf_set;
  decltype(&::rados_connect) connect;
  decltype(&::rados_shutdown) shutdown;
  decltype(&::rados_wait_for_latest_osdmap) wait_for_latest_osdmap;
  decltype(&::rados_pool_create) pool_create;
  decltype(&::rados_ioctx_create) ioctx_create;
  decltype(&::rados_ioctx_destroy) ioctx_destroy;
  decltype(&::rados_ioctx_set_namespace) ioctx_set_namespace;
  decltype(&::rados_aio_create_completion2) aio_create_completion2;
  decltype(&::rados_aio_wait_for_complete) aio_wait_for_complete;
  decltype(&::rados_aio_get_return_value) aio_get_return_value;
  decltype(&::rados_aio_release) aio_release;
  decltype(&::rados_aio_read) aio_read;
  decltype(&::rados_aio_write) aio_write;
  decltype(&::rados_create_write_op) create_write_op;
  decltype(&::rados_write_op_create) write_op_create;
  decltype(&::rados_write_op_operate) write_op_operate;
  decltype(&::rados_release_write_op) release_write_op;
  decltype(&::rados_getxattr) getxattr;
  decltype(&::rados_setxattr) setxattr;
  decltype(&::rados_stat) stat;
  decltype(&::rados_read) read;
  decltype(&::rados_write_full) write_full;
  decltype(&::rados_remove) remove;
  decltype(&::rados_nobjects_list_open) nobjects_list_open;
  decltype(&::rados_nobjects_list_next) nobjects_list_next;
  decltype(&::rados_nobjects_list_close) nobjects_list_close;
};

// Loads librados.so.2 once (later calls return the same answer): its
// functions in *out, or ENOTSUP saying which library or symbol is missing.
Status LoadRadosApi(const RadosApi** out);

// What LoadRadosApi does, for any library and every time (for tests).
Status BindRadosApi(const char* library, RadosApi* out);

}  // namespace overtier

#endif  // OVERTIER_STORE_RADOS_API_H_
