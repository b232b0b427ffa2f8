// An Env whose background work runs on thread pools of its own.
//
// RocksDB's default Env is a process-wide singleton whose flush and
// compaction pools start their threads once and keep them. The daemon
// forks (fuse_daemonize) after it has opened catalogs, and threads do not
// survive a fork: in the child, the singleton's pools still count the
// parent's threads as running, start no new ones, and a flush scheduled
// there waits forever. That hung the daemon's unmount when its writer
// flushed at close, and would stall any writer whose memtables fill up.
//
// So a writer gets pools that belong to its own Catalog: created with it
// (in whatever process opens it, after any fork), joined when it closes.
// Files and clocks still come from the wrapped Env.
#ifndef OVERTIER_STORE_THREAD_POOLS_ENV_H_
#define OVERTIER_STORE_THREAD_POOLS_ENV_H_

#include <memory>

namespace rocksdb {
class Env;
}

namespace overtier {

// Wraps `base`: everything but background scheduling goes to it.
std::unique_ptr<rocksdb::Env> WithOwnThreadPools(std::unique_ptr<rocksdb::Env> base);

}  // namespace overtier

#endif  // OVERTIER_STORE_THREAD_POOLS_ENV_H_
