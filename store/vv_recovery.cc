#include "store/vv_recovery.h"

#include <memory>

#include "store/vv_writer.h"

namespace overtier {

Status SealAfterCrash(VolumeSet* set, const Id128& store_id, uint64_t vv_id, RecordList* found) {
  std::unique_ptr<VvReader> reader;
  OVT_RETURN_IF_ERROR(VvReader::Open(set, store_id, vv_id, &reader));
  // Already sealed: nothing to do but list its records.
  if (reader->sealed()) return reader->ListRecords(found);
  // Unsealed: this is the header scan (a damaged trailer fails it instead,
  // leaving the container untouched).
  OVT_RETURN_IF_ERROR(reader->ListRecords(found));
  reader.reset();
  std::unique_ptr<VolumeWriter> w;
  OVT_RETURN_IF_ERROR(set->OpenForAppend(vv_id, &w));
  return AppendVvSeal(w.get(), vv_id, found->records, found->valid_end);
}

}  // namespace overtier
