// The container the vv fuzz target reads and its seed generator writes:
// one store id, vv id and set name for both, so that seeds open.
#ifndef OVERTIER_FUZZ_VV_CONTAINER_H_
#define OVERTIER_FUZZ_VV_CONTAINER_H_

#include <cstdint>

#include "store/vv_format.h"

namespace overtier::fuzz {

inline constexpr Id128 kStoreId = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
inline constexpr uint64_t kVvId = 7;
inline constexpr const char* kSetName = "fuzz";

}  // namespace overtier::fuzz

#endif  // OVERTIER_FUZZ_VV_CONTAINER_H_
