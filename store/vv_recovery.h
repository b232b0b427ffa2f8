// Crash recovery of vv containers.
//
// A writer that dies before Seal() leaves an unsealed container: a valid
// prefix of records (everything up to its last Sync() at least), possibly
// followed by a partly written record or footer. Nothing is truncated or
// rewritten (object stores append; and a record the catalog references is
// never at risk): recovery scans the records and appends a footer indexing
// the valid ones plus a trailer after whatever the container ends with.
// From then on it is sealed like any other, and its footer's data end says
// where the valid records stop.
#ifndef OVERTIER_STORE_VV_RECOVERY_H_
#define OVERTIER_STORE_VV_RECOVERY_H_

#include <cstdint>

#include "overtier/status.h"
#include "store/volume.h"
#include "store/vv_format.h"
#include "store/vv_reader.h"

namespace overtier {

// Seals container vv_id of set if it is unsealed (no writer may have it
// open); *found receives its records as indexed (for a scan,
// found->stop_reason says what ended it).
// OK without change if it is already sealed. Corruption if its header is
// unreadable or its trailer damaged (that is not a crash: fsck territory);
// the container is then left untouched.
Status SealAfterCrash(VolumeSet* set, const Id128& store_id, uint64_t vv_id, RecordList* found);

}  // namespace overtier

#endif  // OVERTIER_STORE_VV_RECOVERY_H_
