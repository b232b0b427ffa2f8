// Garbage collection of a store: mark what the images (and the migration
// tier) still use, delete the catalog rows nothing uses, and give back the
// container space they held.
//
// Live, from the roots down (image/image_format.h, "Write order"):
//   images rows -> their image ids, and transitively the parent_image_id of
//   a live image -> the nodes of live images -> content bfids (and the bfid
//   of every migration row) -> files rows -> extents -> container locations
//   (vv id, payload offset).
// Garbage:
//   - nodes and dirents of image ids that are not live (a killed import, or
//     `image rm`): one range deletion per image id (Batch::DeleteImageTree);
//   - files rows no live node or migration row names;
//   - chunks rows none of whose locations a live extent uses;
//   - containers without live bytes: retired;
//   - containers whose live fraction (live payload bytes / payload bytes
//     recorded in the container) is under the threshold: compacted, i.e.
//     their live records are copied into new containers of the same volume
//     set, then the catalog is repointed in one batch and the old container
//     retired;
//   - containers in a volume set that no volumes row names (a writer killed
//     before its first catalog commit): removed.
//
// Shared images (store/publication.h): every container a publication of
// this store points into is live and kept whole (never compacted) until
// the publication is withdrawn; the rows of another store's containers
// (kRemote, from pulls) are deleted once no extent points into them, and
// those containers are never touched.
//
// Retiring a container sets its volumes row to kCompacting (no live byte
// points into it any more). Its file is removed, and then its row deleted,
// only while Store::TryExclusiveOfMounts() holds: a mount reads through the
// catalog snapshot of its open time and may still read the old locations.
// With a mount running, retired containers stay in kCompacting and a later
// gc removes them.
//
// Crash safety: every step leaves a consistent store when the process dies
// right after it, because of its order:
//   1. a jobs row (JobKind::kGc) records that gc runs and its phase; a gc
//      that finds one left by a killed run says so and simply runs again
//      (each step below is idempotent or undone by the next run);
//   2. unsealed containers of killed writers are sealed (vv_recovery.h),
//      then their rows say kSealed;
//   3. one synced batch deletes the garbage rows, retires containers without
//      live bytes and records every container's live bytes;
//   4. compaction writes and seals (fsyncs) the new containers BEFORE the
//      batch that names them; a kill in between leaves containers no row
//      names, which step 6 of the next run removes;
//   5. retired containers: file removed, then row deleted (a kill in between
//      leaves a kCompacting row whose file is gone: the next run deletes it);
//   6. containers no row names are removed (write.lock guarantees no writer
//      is filling them, and no mount can know them: a row is only deleted
//      while no mount runs).
// gc needs a writable Store (it then holds write.lock: no import or commit
// runs meanwhile), except with dry_run.
#ifndef OVERTIER_STORE_GC_H_
#define OVERTIER_STORE_GC_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/store.h"

namespace overtier {

struct GcOptions {
  // Compact containers whose live fraction is under this (0: never; 1:
  // every container with any dead byte).
  double threshold = 0.5;
  // Compute and report, change nothing (works on a read-only Store).
  bool dry_run = false;
  // Test hook: called at each named point (kGcPoint* below) after that
  // step is durable. A non-OK return makes gc stop right there and return
  // it, doing nothing more, as if the process had been killed.
  std::function<Status(std::string_view point)> hook;
};

// The points passed to GcOptions::hook, in the order gc reaches them.
inline constexpr std::string_view kGcPointJobStarted = "job-started";
inline constexpr std::string_view kGcPointSealed = "open-containers-sealed";
inline constexpr std::string_view kGcPointSwept = "rows-swept";
inline constexpr std::string_view kGcPointCompactWritten = "compact-written";
inline constexpr std::string_view kGcPointCompactCommitted = "compact-committed";
inline constexpr std::string_view kGcPointFileRemoved = "container-file-removed";
inline constexpr std::string_view kGcPointRetired = "containers-retired";
inline constexpr std::string_view kGcPointOrphansRemoved = "orphans-removed";

struct GcReport {
  bool resumed = false;              // a jobs row of a killed gc was found
  std::string resumed_phase;         // the phase it had reached
  uint64_t image_trees_deleted = 0;  // image ids whose nodes/dirents went
  uint64_t files_deleted = 0;        // files rows
  uint64_t chunks_deleted = 0;       // chunks rows (or trimmed locations)
  uint64_t containers_sealed = 0;    // unsealed containers of killed writers
  uint64_t containers_retired = 0;   // set to kCompacting (no live bytes left)
  uint64_t containers_compacted = 0;
  uint64_t containers_created = 0;   // by compaction
  uint64_t containers_removed = 0;   // files removed and rows deleted
  uint64_t containers_deferred = 0;  // retired, but a mount runs: kept for now
  uint64_t orphan_containers_removed = 0;
  // Rows of other stores' containers (pulled images) nothing points into
  // any more; the containers themselves are never touched.
  uint64_t remote_volumes_forgotten = 0;
  uint64_t bytes_copied = 0;     // live payload bytes rewritten by compaction
  uint64_t bytes_reclaimed = 0;  // container bytes removed from the volume sets
  uint64_t bytes_deferred = 0;   // container bytes of deferred containers
  uint64_t live_bytes = 0;       // live payload bytes after gc
  uint64_t stored_bytes = 0;     // container bytes after gc (rows' sizes)
  // Damage that made gc skip something (a container it could not read):
  // fsck tells more.
  std::vector<std::string> warnings;
};

Status RunGc(Store* store, const GcOptions& options, GcReport* report);

}  // namespace overtier

#endif  // OVERTIER_STORE_GC_H_
