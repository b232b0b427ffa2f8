// Repair of damaged copies: the re-archive of a copy that failed
// verification, from a copy that passed it.
//
// A file's content is kept in `copies` independent copies (FileRecord), so
// that one damaged container costs nothing but a fallback. Left alone,
// though, the damage stays: every later read falls back again, fsck keeps
// reporting the file, and the file has one readable copy fewer than the
// store promises. A reader that fell back (ContentReader::Read reports the
// extents of the damaged copy) hands them to RepairCopies, which writes the
// chunk again, from a verified copy, into a new container of the damaged
// copy's volume set, and repoints the file's extent and the chunk's
// dedup entry to it.
//
// Order (the store's rule, DESIGN.md): the new container is sealed
// (fsynced) before the one synced catalog batch that names it; a crash in
// between leaves a container no row names, which gc removes.
//
// What is repointed: the extent of this file, and the chunk's copy in the
// `chunks` row. Other files sharing the damaged chunk (dedup) keep their
// extents until a read of theirs repairs them too (or fsck reports them):
// finding them would mean scanning every `files` row. The damaged record
// stays in its container, dead once nothing names it, for gc to reclaim
// (gc recomputes every container's live bytes).
//
// Needs a writable Store (write.lock held). Not thread-safe against other
// writers of the same file's row within the process: callers serialize
// (the restorer repairs from its job, one job per file).
#ifndef OVERTIER_STORE_REPAIR_H_
#define OVERTIER_STORE_REPAIR_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/store.h"

namespace overtier {

struct RepairReport {
  uint64_t rewritten = 0;  // extents written again and repointed
  // Damaged extents left as they were, with the reason (no verified copy
  // to take the bytes from; another store's container; ...).
  std::vector<std::string> skipped;
};

// Rewrites the damaged extents (as ContentReader::Read reported them) of
// the file `bfid`, reading the catalog's current record of it: an extent
// it no longer names (already repaired, or the file changed) is ignored,
// and so is one that now verifies (the failure was passing). `what` names
// the file in messages.
Status RepairCopies(Store* store, const Bfid& bfid, const std::vector<Extent>& damaged,
                    std::string_view what, RepairReport* report);

}  // namespace overtier

#endif  // OVERTIER_STORE_REPAIR_H_
