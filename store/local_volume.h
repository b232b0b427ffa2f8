// The local-folder volume backend: a volume set is a directory (by default
// STORE/volumes/<set>/, or any folder store.conf names) and a container is a run of files in it,
//
//   vv-<16 hex digits>.vv        piece 0 (bytes [0, piece_size))
//   vv-<16 hex digits>.vv.<n>    piece n >= 1 (n in decimal)
//
// every piece but the last exactly piece_size bytes. Containers smaller than
// one piece are thus a single plain file. Pieces exist locally only to keep
// the piecing logic that object stores need exercised on every machine.
//
// All access is through the set directory's fd (openat and friends). New
// files and pieces are created under their final names with O_EXCL (object
// stores cannot rename), and their directory entries are fsynced.
#ifndef OVERTIER_STORE_LOCAL_VOLUME_H_
#define OVERTIER_STORE_LOCAL_VOLUME_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "overtier/status.h"
#include "store/volume.h"

namespace overtier {

struct LocalVolumeOptions {
  // Size of each piece but the last: a multiple of 4096, at most
  // kMaxVolumePiece. Readers must use the value the writer used (it is
  // part of the store configuration, like the seal size).
  uint64_t piece_size = kMaxVolumePiece;
  // Appends smaller than this are gathered and written in one pwrite
  // (many small files are packed into each container).
  size_t write_buffer = size_t{1} << 20;
  // Create volumes/ and volumes/<set>/ if they do not exist.
  bool create_if_missing = true;
  // Room kept for the catalog: an append that would leave less than
  // keep_free bytes free on the file system of the set's folder fails with
  // ENOSPC, when that is the catalog's file system (st_dev keep_free_dev).
  // A restore writes the catalog, and RocksDB cannot even open on a full
  // disk: without room kept, archives that fill the store's disk made
  // every released file unreadable. 0: nothing kept.
  uint64_t keep_free = 0;
  dev_t keep_free_dev = 0;
};

// Set names: 1..64 characters of [A-Za-z0-9._-], not starting with '.'.
bool IsValidVolumeSetName(const std::string& name);

// Opens (and by default creates) the volume set `set_name` of the store in
// store_dir. The only place a path enters the volume layer.
Status OpenLocalVolumeSet(const std::string& store_dir, const std::string& set_name,
                          const LocalVolumeOptions& options, std::unique_ptr<VolumeSet>* out);

// Opens the volume set `set_name` kept in `folder` (any absolute path: a
// set may live on another disk than the store). The folder itself is
// created if missing and options.create_if_missing; its parents must exist.
Status OpenLocalVolumeSetAt(const std::string& folder, const std::string& set_name,
                            const LocalVolumeOptions& options, std::unique_ptr<VolumeSet>* out);

// The file name of piece n of container vv_id ("vv-<hex>.vv" for n = 0).
std::string LocalPieceName(uint64_t vv_id, uint64_t n);

}  // namespace overtier

#endif  // OVERTIER_STORE_LOCAL_VOLUME_H_
