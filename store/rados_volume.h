// The Ceph RADOS volume backend: a volume set is a RADOS pool (optionally
// one namespace of it) and a container is a run of objects in it,
//
//   vv.<16 hex digits>.<n>     piece n (n in decimal, from 0), bytes
//                              [n * piece_size, (n + 1) * piece_size)
//
// every piece but the last exactly piece_size bytes (at most 64 MiB: RADOS
// caps objects at 128 MiB and one write at 90 MiB). Seal() records the
// container's final size and piece size in the xattr "overtier.seal" of
// piece 0 ("<size> <piece_size>"), so opening a sealed container takes one
// round trip and its readers need not trust the options they were given.
// An unsealed container is measured like a local one: piece by piece, a
// short piece ending it.
//
// Writes are asynchronous (aio, up to max_in_flight operations at once);
// Sync() waits for all of them, and an acknowledged RADOS write is durable.
// Every operation is bounded by the spec's timeout (librados would otherwise
// wait 5 minutes or forever for a down cluster): an unreachable cluster
// gives ETIMEDOUT with a message naming the pool and the object.
//
// The spec of a RADOS volume set, as `overtier store init --volume-set
// NAME=SPEC` and store.conf write it:
//
//   rados:POOL[?key=value&key=value...]
//     conf=PATH       ceph.conf to read (default: librados' own search,
//                     CEPH_CONF, /etc/ceph/ceph.conf)
//     id=client.NAME  the cephx user (default client.admin); "NAME" alone
//                     means client.NAME
//     keyring=PATH    keyring file (default: what ceph.conf says)
//     ns=NAMESPACE    a RADOS namespace inside the pool (stores sharing one
//                     pool keep their containers apart this way)
//     timeout=SECONDS connection and operation timeout, 1..3600 (default 10)
//     cache=BYTES     bound of the local read cache of this set, in
//                     STORE/cache/SETNAME (store/cached_volume.h); a number
//                     with an optional K, M, G or T suffix (powers of 1024),
//                     0 (no cache) or 16M..1024T (default 1G)
#ifndef OVERTIER_STORE_RADOS_VOLUME_H_
#define OVERTIER_STORE_RADOS_VOLUME_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "overtier/status.h"
#include "store/volume.h"

namespace overtier {

struct RadosVolumeSpec {
  std::string pool;
  std::string conf;                 // empty: librados' default search
  std::string id = "client.admin";  // always "client.<name>" once parsed
  std::string keyring;              // empty: from ceph.conf
  std::string ns;                   // empty: the default namespace
  uint32_t timeout_seconds = 10;
  uint64_t cache_bytes = uint64_t{1} << 30;  // 0: no read cache
};

// True when s starts with "rados:" (whether or not the rest is valid).
bool IsRadosVolumeSpec(std::string_view s);

// Parses "rados:POOL?..." (above). InvalidArgument naming what is wrong:
// an empty or odd pool name, an unknown or repeated key, a relative path,
// a bad timeout or cache size.
Status ParseRadosVolumeSpec(std::string_view spec, RadosVolumeSpec* out);

// The canonical spec string of a parsed spec (what store.conf records).
std::string FormatRadosVolumeSpec(const RadosVolumeSpec& spec);

// False when overtier was built without librados: opening a RADOS set then
// fails with ENOTSUP "built without RADOS support".
bool RadosSupported();

struct RadosVolumeOptions {
  // Size of each piece but the last: a multiple of 4096, at most
  // kMaxVolumePiece. Used for new containers and for unsealed ones (sealed
  // ones record theirs).
  uint64_t piece_size = kMaxVolumePiece;
  // Appends are gathered into writes of this size (many small files are
  // packed into each container, and each RADOS op has a fixed cost).
  size_t write_buffer = size_t{4} << 20;
  // Asynchronous writes in flight at once per writer.
  int max_in_flight = 8;
  // Reads of more than this are split into ops run in parallel.
  size_t max_read_op = size_t{16} << 20;
  // Create the pool if it does not exist (tests; a real pool is an
  // administrator's decision).
  bool create_pool_if_missing = false;
};

// Connects to the cluster and opens the pool. Clear errors for: a missing
// or unreadable ceph.conf / keyring (ENOENT, EACCES), a cluster that does
// not answer within the timeout (ETIMEDOUT), a refused key (EACCES /
// EPERM), a missing pool (ENOENT).
Status OpenRadosVolumeSet(const std::string& set_name, const RadosVolumeSpec& spec,
                          const RadosVolumeOptions& options, std::unique_ptr<VolumeSet>* out);

// The object name of piece n of container vv_id ("vv.<hex>.<n>").
std::string RadosPieceName(uint64_t vv_id, uint64_t n);

}  // namespace overtier

#endif  // OVERTIER_STORE_RADOS_VOLUME_H_
